//! A segment the session client maps read-write: the suite's [`crate::shm::Segment`] (ssvm and
//! fifo-segment headers already read and checked, `docs/shm.md` §1–§3) plus the bounds- and
//! alignment-checked accesses a client makes into it — atomics over shared words, byte copies
//! in and out, and raw addresses for the process-shared pthread objects of an mq.
//!
//! Every offset is relative to the fifo-segment header (`docs/shm.md` §3.4), as the protocol's
//! offsets are. Every access checks that the whole span lies inside the mapping and that an
//! atomic is naturally aligned, and names the field it was for: an offset the target wrote is
//! untrusted, so a wrong one is a [`MemError`] carrying it, never a fault.
//!
//! Must never: hand out a reference or pointer past the mapping, or touch memory that is not a
//! client's to write (the scenarios decide what to write; this module only checks where).

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::fds;
use crate::shm::{Segment, ShmError};

/// An access the segment cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    #[error(
        "{field}: {len} bytes at offset {offset:#x} from the fifo-segment header lie outside the {mapping:#x}-byte mapping (header at {fsh_base:#x})"
    )]
    OutOfBounds {
        field: &'static str,
        offset: u64,
        len: u64,
        mapping: usize,
        fsh_base: u64,
    },
    #[error("{field}: offset {offset:#x} is not {align}-byte aligned")]
    Misaligned {
        field: &'static str,
        offset: u64,
        align: u64,
    },
    #[error("mapping the segment: {0}")]
    Map(#[from] ShmError),
    #[error("inspecting the segment's fd: {0}")]
    Fd(#[from] fds::FdError),
}

/// A memfd segment mapped read-write by the session client.
#[derive(Debug)]
pub struct Shm {
    pub seg: Segment,
    /// The memfd's inode, which names the segment across processes and mappings.
    pub inode: u64,
}

impl Shm {
    /// Maps `fd` read-write and locates its fifo-segment header through `opaque[0]`; writes the
    /// client's pid into `client_pid` (offset 44) as VCL does (`docs/shm.md` §1 step 3).
    pub fn open(fd: impl AsFd) -> Result<Self, MemError> {
        let inode = fds::info_of(fd.as_fd())?.ino;
        let seg = Segment::open(fd, true)?;
        let shm = Shm { seg, inode };
        let pid = std::process::id();
        // client_pid sits before the fifo-segment header: write it through the mapping base.
        if shm.seg.map.len() >= crate::shm::ssvm::CLIENT_PID + 4 {
            // SAFETY: offset 44..48 is inside the mapping (checked above); a u32 store into
            // shared memory the client is meant to write.
            unsafe {
                std::ptr::write_volatile(
                    shm.seg
                        .map
                        .base_ptr()
                        .add(crate::shm::ssvm::CLIENT_PID)
                        .cast::<[u8; 4]>(),
                    pid.to_le_bytes(),
                )
            };
        }
        Ok(shm)
    }

    /// Bytes from the fifo-segment header to the end of the mapping.
    pub fn span_len(&self) -> u64 {
        (self.seg.map.len() as u64).saturating_sub(self.seg.fsh_base)
    }

    /// The address of `len` bytes at `rel`, after checking they are mapped.
    fn at(&self, rel: u64, len: u64, field: &'static str) -> Result<*mut u8, MemError> {
        let oob = || MemError::OutOfBounds {
            field,
            offset: rel,
            len,
            mapping: self.seg.map.len(),
            fsh_base: self.seg.fsh_base,
        };
        let start = self.seg.fsh_base.checked_add(rel).ok_or_else(oob)?;
        let end = start.checked_add(len).ok_or_else(oob)?;
        if end > self.seg.map.len() as u64 {
            return Err(oob());
        }
        let start = usize::try_from(start).map_err(|_| oob())?;
        // SAFETY: start + len ≤ the mapping's length, checked just above.
        Ok(unsafe { self.seg.map.base_ptr().add(start) })
    }

    fn aligned(&self, rel: u64, align: u64, field: &'static str) -> Result<(), MemError> {
        // The header itself is 8-aligned in every segment the suite accepts (opaque[0] is
        // checked to be a multiple of 8), so alignment of `rel` is alignment of the address.
        if !self.seg.fsh_base.wrapping_add(rel).is_multiple_of(align) {
            return Err(MemError::Misaligned {
                field,
                offset: rel,
                align,
            });
        }
        Ok(())
    }

    /// The shared u32 at `rel`.
    pub fn atomic_u32(&self, rel: u64, field: &'static str) -> Result<&AtomicU32, MemError> {
        self.aligned(rel, 4, field)?;
        let p = self.at(rel, 4, field)?;
        // SAFETY: in bounds and aligned (checked); the mapping lives as long as `self`, and the
        // word is only ever accessed atomically by this client.
        Ok(unsafe { AtomicU32::from_ptr(p.cast()) })
    }

    /// The shared u64 at `rel`.
    pub fn atomic_u64(&self, rel: u64, field: &'static str) -> Result<&AtomicU64, MemError> {
        self.aligned(rel, 8, field)?;
        let p = self.at(rel, 8, field)?;
        // SAFETY: as for `atomic_u32`.
        Ok(unsafe { AtomicU64::from_ptr(p.cast()) })
    }

    /// A plain (volatile) read of one byte.
    pub fn u8(&self, rel: u64, field: &'static str) -> Result<u8, MemError> {
        let p = self.at(rel, 1, field)?;
        // SAFETY: in bounds (checked).
        Ok(unsafe { std::ptr::read_volatile(p) })
    }

    /// A plain (volatile) store of one byte.
    pub fn set_u8(&self, rel: u64, v: u8, field: &'static str) -> Result<(), MemError> {
        let p = self.at(rel, 1, field)?;
        // SAFETY: in bounds (checked).
        unsafe { std::ptr::write_volatile(p, v) };
        Ok(())
    }

    /// Copies `src` into the segment at `rel`.
    pub fn write(&self, rel: u64, src: &[u8], field: &'static str) -> Result<(), MemError> {
        let p = self.at(rel, src.len() as u64, field)?;
        // SAFETY: the destination span is inside the mapping (checked) and cannot overlap a
        // Rust slice; the bytes are data another process reads only after a release store.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
        Ok(())
    }

    /// Copies `dst.len()` bytes at `rel` out of the segment.
    pub fn read(&self, rel: u64, dst: &mut [u8], field: &'static str) -> Result<(), MemError> {
        let p = self.at(rel, dst.len() as u64, field)?;
        // SAFETY: the source span is inside the mapping (checked).
        unsafe { std::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// The address of a `len`-byte, `align`-aligned object at `rel` (a pthread mutex or condvar
    /// in an mq's queue header, `docs/shm.md` §4.1).
    pub fn object(
        &self,
        rel: u64,
        len: u64,
        align: u64,
        field: &'static str,
    ) -> Result<*mut u8, MemError> {
        self.aligned(rel, align, field)?;
        self.at(rel, len, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A real memfd with an ssvm header whose opaque[0] puts the fifo-segment header at 0x2000.
    fn segment(len: usize) -> Shm {
        let fd = nix::sys::memfd::memfd_create(c"mem-test", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .expect("memfd");
        let mut b = vec![0u8; len];
        b[32..40].copy_from_slice(&(len as u64).to_le_bytes());
        b[56..64].copy_from_slice(&0x2000u64.to_le_bytes());
        b[0x2000 + 20] = 1; // n_slices
        let mut f = std::fs::File::from(fd);
        f.write_all(&b).expect("write");
        Shm::open(&f).expect("open")
    }

    #[test]
    fn accesses_are_checked_and_named() {
        let s = segment(0x3000);
        assert_eq!(s.span_len(), 0x1000);
        s.atomic_u32(0xffc, "last word").expect("in bounds");
        let e = s.atomic_u32(0x1000, "past").expect_err("oob");
        assert!(
            matches!(e, MemError::OutOfBounds { field: "past", .. }),
            "{e}"
        );
        let e = s.atomic_u64(4, "odd").expect_err("misaligned");
        assert!(matches!(e, MemError::Misaligned { align: 8, .. }), "{e}");
        let e = s
            .write(u64::MAX - 2, &[1, 2, 3, 4], "wrap")
            .expect_err("wrap");
        assert!(matches!(e, MemError::OutOfBounds { .. }), "{e}");
        s.write(0x100, b"abc", "bytes").expect("write");
        let mut out = [0u8; 3];
        s.read(0x100, &mut out, "bytes").expect("read");
        assert_eq!(&out, b"abc");
    }
}
