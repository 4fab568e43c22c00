//! Application buffers whose address relative to the other side of a copy is chosen.
//!
//! glibc's `memcpy` runs 12–22× slower between addresses 1–31 bytes apart modulo 4096 than
//! between equal ones on this project's machines, so every copy bench states the distance:
//! [`PageBuf::congruent`] hands out the window whose start is `delta` bytes after the peer
//! address, modulo 4096.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

/// The page size the distances are taken modulo.
pub const PAGE: usize = 4096;

/// A zeroed, page-aligned heap buffer.
#[derive(Debug)]
pub struct PageBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a plain owned allocation.
unsafe impl Send for PageBuf {}

impl PageBuf {
    /// A buffer that can hold a `len`-byte window at any offset modulo 4096.
    pub fn for_windows(len: usize) -> Self {
        Self::new(len + PAGE)
    }

    /// `len` zeroed bytes on a page boundary.
    pub fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len.max(1), PAGE).expect("layout");
        // SAFETY: non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(p).expect("allocation");
        Self { ptr, len }
    }

    /// The whole buffer.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: owned, initialised (zeroed) allocation of `len` bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The `len`-byte window starting at an address equal to `peer + delta` modulo 4096.
    pub fn congruent(&mut self, peer: usize, delta: usize, len: usize) -> &mut [u8] {
        let off = peer.wrapping_add(delta) % PAGE;
        &mut self.as_mut_slice()[off..off + len]
    }

    /// Fills the buffer with a non-zero pattern (so copies move real data).
    pub fn fill_pattern(&mut self) {
        for (i, b) in self.as_mut_slice().iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(13) ^ 0x5a;
        }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.len.max(1), PAGE).expect("layout");
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout) }
    }
}
