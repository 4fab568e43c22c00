//! Byte-addressed shared memory, the storage every shared-memory algorithm runs on.
//!
//! Owns: the [`Memory`] trait (atomics and plain bytes addressed by their offset from the
//! fifo-segment header — the same offsets the protocol exchanges), its two implementations and
//! the single copy routine [`copy_bytes`]:
//!
//! * [`RawRegion`] — bytes of a real mapping. Atomics are `std` atomics placed on the mapped
//!   bytes with `AtomicU32::from_ptr`, so they are the very words a VPP or VCL peer touches.
//! * [`HeapMemory`] — a heap model of a segment whose atomics and data cells come from
//!   [`super::sync`]; under `--cfg loom` that makes every access visible to the model checker.
//!
//! The mq, fifo and allocator algorithms are written once, generic over [`Memory`], so the code
//! that ships is the code that `loom` explores.
//!
//! Must never: hand out a reference or pointer outside the region, or perform an unaligned
//! atomic access — every access is bounds- and alignment-checked and fails with an [`OutOfBounds`]
//! that carries the offending offset, because offsets come from peer-writable memory.

use std::collections::BTreeMap;
use std::ptr::NonNull;

use super::sync::{self, Atomic, DataCell};

/// An access outside the region (or a misaligned atomic access).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "access of {len} bytes at offset {offset:#x} is outside the {size:#x}-byte region or misaligned"
)]
pub struct OutOfBounds {
    /// Offset of the access from the fifo-segment header.
    pub offset: u64,
    /// Length of the access.
    pub len: u64,
    /// Size of the region.
    pub size: u64,
}

/// Shared memory addressed by offset from the fifo-segment header.
///
/// Every location is used consistently either as one atomic word of one width or as plain
/// bytes; the model implementation checks that discipline.
pub trait Memory {
    /// Atomic 32-bit word type.
    type A32: Atomic<u32>;
    /// Atomic 64-bit word type.
    type A64: Atomic<u64>;

    /// Number of addressable bytes (offsets `0..len`).
    fn len(&self) -> u64;
    /// Whether the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The 4-byte-aligned atomic word at `off`.
    fn atomic_u32(&self, off: u64) -> Result<&Self::A32, OutOfBounds>;
    /// The 8-byte-aligned atomic word at `off`.
    fn atomic_u64(&self, off: u64) -> Result<&Self::A64, OutOfBounds>;
    /// Copies plain bytes out of the region.
    fn read(&self, off: u64, dst: &mut [u8]) -> Result<(), OutOfBounds>;
    /// Copies plain bytes into the region.
    fn write(&self, off: u64, src: &[u8]) -> Result<(), OutOfBounds>;
    /// log2 of the smallest fifo chunk: 12 (4 KiB) in every real segment. Models may shrink
    /// it so that per-byte race tracking stays affordable; the algorithms do not change.
    fn min_chunk_log2(&self) -> u32 {
        12
    }

    /// Fails unless `off..off+len` lies inside the region.
    fn check(&self, off: u64, len: u64) -> Result<(), OutOfBounds> {
        match off.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(OutOfBounds {
                offset: off,
                len,
                size: self.len(),
            }),
        }
    }
    /// Plain little-endian `u8` read.
    fn read_u8(&self, off: u64) -> Result<u8, OutOfBounds> {
        let mut b = [0u8; 1];
        self.read(off, &mut b)?;
        Ok(b[0])
    }
    /// Plain little-endian `u32` read.
    fn read_u32(&self, off: u64) -> Result<u32, OutOfBounds> {
        let mut b = [0u8; 4];
        self.read(off, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Plain little-endian `u64` read.
    fn read_u64(&self, off: u64) -> Result<u64, OutOfBounds> {
        let mut b = [0u8; 8];
        self.read(off, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Plain `u8` write.
    fn write_u8(&self, off: u64, v: u8) -> Result<(), OutOfBounds> {
        self.write(off, &[v])
    }
    /// Plain little-endian `u32` write.
    fn write_u32(&self, off: u64, v: u32) -> Result<(), OutOfBounds> {
        self.write(off, &v.to_le_bytes())
    }
    /// Plain little-endian `u64` write.
    fn write_u64(&self, off: u64, v: u64) -> Result<(), OutOfBounds> {
        self.write(off, &v.to_le_bytes())
    }
}

/// Copies `len` bytes between non-overlapping buffers.
///
/// Kept as the single copy routine of the fifo and mq; it is [`super::copy`]'s, because glibc
/// `memcpy` is 12–22× slower than aligned when source and destination are 1–31 bytes apart
/// mod 4096 on the target machines.
///
/// # Safety
/// `src` must be valid for `len` reads, `dst` for `len` writes, and they must not overlap.
#[inline]
pub unsafe fn copy_bytes(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { super::copy::copy_nonoverlapping(dst, src, len) }
}

/// A window of a live mapping, addressed from its start.
///
/// Holds no ownership: the [`super::segment::Segment`] that created it keeps the mapping alive
/// for as long as the region is reachable.
#[derive(Debug)]
pub struct RawRegion {
    base: NonNull<u8>,
    len: u64,
}

// SAFETY: the region is plain shared memory; all concurrent access goes through atomics or
// through protocol-ordered plain copies, exactly as for the peer process.
unsafe impl Send for RawRegion {}
// SAFETY: as above.
unsafe impl Sync for RawRegion {}

impl RawRegion {
    /// A region of `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base+len` must stay mapped read/write for the life of the region, and `base`
    /// must be 8-byte aligned.
    pub unsafe fn new(base: NonNull<u8>, len: u64) -> Self {
        Self { base, len }
    }

    /// Address of the byte at `off` (not dereferenced).
    pub fn addr(&self, off: u64) -> Result<*mut u8, OutOfBounds> {
        self.check(off, 0)?;
        // SAFETY: off <= len, so the result is inside or one past the mapping.
        Ok(unsafe { self.base.as_ptr().add(off as usize) })
    }

    #[inline]
    fn aligned(&self, off: u64, size: u64) -> Result<*mut u8, OutOfBounds> {
        self.check(off, size)?;
        if !off.is_multiple_of(size) {
            return Err(OutOfBounds {
                offset: off,
                len: size,
                size: self.len,
            });
        }
        // SAFETY: checked to be inside the mapping.
        Ok(unsafe { self.base.as_ptr().add(off as usize) })
    }
}

impl Memory for RawRegion {
    type A32 = std::sync::atomic::AtomicU32;
    type A64 = std::sync::atomic::AtomicU64;

    #[inline]
    fn len(&self) -> u64 {
        self.len
    }

    #[inline]
    fn atomic_u32(&self, off: u64) -> Result<&Self::A32, OutOfBounds> {
        let p = self.aligned(off, 4)?;
        // SAFETY: in bounds, 4-aligned (base is 8-aligned), mapped for the region's life;
        // the location is only ever accessed atomically by this crate and by VPP.
        Ok(unsafe { std::sync::atomic::AtomicU32::from_ptr(p.cast()) })
    }

    #[inline]
    fn atomic_u64(&self, off: u64) -> Result<&Self::A64, OutOfBounds> {
        let p = self.aligned(off, 8)?;
        // SAFETY: as for `atomic_u32`, with 8-byte alignment.
        Ok(unsafe { std::sync::atomic::AtomicU64::from_ptr(p.cast()) })
    }

    #[inline]
    fn read(&self, off: u64, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(off, dst.len() as u64)?;
        // SAFETY: in bounds; dst is a distinct Rust buffer so they cannot overlap.
        unsafe {
            copy_bytes(
                dst.as_mut_ptr(),
                self.base.as_ptr().add(off as usize),
                dst.len(),
            )
        };
        Ok(())
    }

    #[inline]
    fn write(&self, off: u64, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(off, src.len() as u64)?;
        // SAFETY: in bounds; src is a distinct Rust buffer so they cannot overlap.
        unsafe {
            copy_bytes(
                self.base.as_ptr().add(off as usize),
                src.as_ptr(),
                src.len(),
            )
        };
        Ok(())
    }
}

enum Slot {
    W32(Box<sync::AtomicU32>),
    W64(Box<sync::AtomicU64>),
}

/// A heap model of a segment: plain bytes as race-checked [`DataCell`]s, atomics created
/// on first use from [`super::sync`] (loom's under `--cfg loom`).
///
/// Starts all-zero, like a fresh memfd. Panics (a bug in the algorithm, not peer input) if a
/// location is used both as plain bytes and as an atomic, or as atomics of two widths.
pub struct HeapMemory {
    cells: Box<[DataCell]>,
    atomics: std::sync::Mutex<BTreeMap<u64, Slot>>,
    min_chunk_log2: u32,
}

impl std::fmt::Debug for HeapMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapMemory")
            .field("len", &self.cells.len())
            .field("min_chunk_log2", &self.min_chunk_log2)
            .finish()
    }
}

impl HeapMemory {
    /// A zeroed model region of `len` bytes whose smallest fifo chunk is `2^min_chunk_log2`.
    pub fn new(len: usize, min_chunk_log2: u32) -> Self {
        Self {
            cells: (0..len).map(|_| DataCell::new(0)).collect(),
            atomics: std::sync::Mutex::new(BTreeMap::new()),
            min_chunk_log2,
        }
    }

    fn assert_plain(&self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let map = self.atomics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((&at, slot)) = map.range(..off + len).next_back() {
            let width = match slot {
                Slot::W32(_) => 4,
                Slot::W64(_) => 8,
            };
            assert!(
                at + width <= off,
                "plain access {off:#x}+{len} overlaps the atomic at {at:#x}"
            );
        }
    }

    fn slot<R>(&self, off: u64, width: u64, f: impl FnOnce(&Slot) -> R) -> R {
        let mut map = self.atomics.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&off) {
            if let Some((&at, s)) = map.range(..off + width).next_back() {
                let w = match s {
                    Slot::W32(_) => 4,
                    Slot::W64(_) => 8,
                };
                assert!(
                    at + w <= off,
                    "atomic at {off:#x} overlaps the atomic at {at:#x}"
                );
            }
            let slot = if width == 4 {
                Slot::W32(Box::new(sync::AtomicU32::new(0)))
            } else {
                Slot::W64(Box::new(sync::AtomicU64::new(0)))
            };
            map.insert(off, slot);
        }
        match map.get(&off) {
            Some(s) => f(s),
            None => unreachable!("inserted above"),
        }
    }
}

impl Memory for HeapMemory {
    type A32 = sync::AtomicU32;
    type A64 = sync::AtomicU64;

    fn len(&self) -> u64 {
        self.cells.len() as u64
    }

    fn min_chunk_log2(&self) -> u32 {
        self.min_chunk_log2
    }

    fn atomic_u32(&self, off: u64) -> Result<&Self::A32, OutOfBounds> {
        self.check(off, 4)?;
        if !off.is_multiple_of(4) {
            return Err(OutOfBounds {
                offset: off,
                len: 4,
                size: self.len(),
            });
        }
        let p: *const sync::AtomicU32 = self.slot(off, 4, |s| match s {
            Slot::W32(b) => &**b as *const _,
            Slot::W64(_) => panic!("atomic at {off:#x} used as both u64 and u32"),
        });
        // SAFETY: the box is never removed or moved until `self` drops.
        Ok(unsafe { &*p })
    }

    fn atomic_u64(&self, off: u64) -> Result<&Self::A64, OutOfBounds> {
        self.check(off, 8)?;
        if !off.is_multiple_of(8) {
            return Err(OutOfBounds {
                offset: off,
                len: 8,
                size: self.len(),
            });
        }
        let p: *const sync::AtomicU64 = self.slot(off, 8, |s| match s {
            Slot::W64(b) => &**b as *const _,
            Slot::W32(_) => panic!("atomic at {off:#x} used as both u32 and u64"),
        });
        // SAFETY: the box is never removed or moved until `self` drops.
        Ok(unsafe { &*p })
    }

    fn read(&self, off: u64, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(off, dst.len() as u64)?;
        self.assert_plain(off, dst.len() as u64);
        let cells = &self.cells[off as usize..off as usize + dst.len()];
        for (d, c) in dst.iter_mut().zip(cells) {
            // SAFETY: the protocol orders this read after the write; loom checks it.
            *d = unsafe { c.read() };
        }
        Ok(())
    }

    fn write(&self, off: u64, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(off, src.len() as u64)?;
        self.assert_plain(off, src.len() as u64);
        let cells = &self.cells[off as usize..off as usize + src.len()];
        for (s, c) in src.iter().zip(cells) {
            // SAFETY: the protocol gives this writer exclusive access; loom checks it.
            unsafe { c.write(*s) };
        }
        Ok(())
    }
}
