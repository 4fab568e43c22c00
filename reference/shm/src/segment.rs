//! Memfd-backed shared-memory segments (shm spec §1–§3).
//!
//! Owns: creating a segment the way VPP does (memfd, `ftruncate`, shared mapping, the
//! `ssvm_shared_header_t` at offset 0 and the fifo-segment header at `opaque[0]`), in two steps
//! a server may take apart ([`BlankSegment`]: the system calls, which depend only on the size;
//! then the headers, which are plain writes), attaching to a
//! segment received as an fd (map one page, read `ssvm_size`, remap, find the header through
//! `opaque[0]`), and the one [`Segment`] value that owns the fd and the mapping: dropping it
//! unmaps and closes, on every path including every error path.
//!
//! Offsets handed to the mq, fifo and allocator are relative to the fifo-segment header
//! ([`Memory`] for [`Segment`] starts there), as in the protocol.
//!
//! Platform: x86_64 Linux, glibc, 4 KiB pages; see [`super::layout`].
//!
//! Must never: assume the header is at 8192 when attaching, map more than the file holds, or
//! panic on anything found in a segment — it is writable by the peer.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use super::alloc::{self, FifoSegmentView};
use super::layout::{fsh, ssvm};
use super::memory::{Memory, OutOfBounds, RawRegion};

use super::error::SegmentError;

fn sys(op: &'static str) -> SegmentError {
    SegmentError::Sys {
        op,
        err: nix::errno::Errno::last(),
    }
}

/// Page size VPP assumes for segment placement (VPP hard-codes 4096 in `fifo_segment_init`).
pub const PAGE_SIZE: u64 = 4096;

/// Offset of the fifo-segment header in segments we create: `round_up_8(2 × 4096)`.
pub const HEADER_OFFSET: u64 = 2 * PAGE_SIZE;

const MIB: u64 = 1 << 20;

fn round_up_page(v: u64) -> u64 {
    v.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

/// `ssvm_size` of an app (worker) fifo segment for a requested SEGMENT_SIZE, as observed on
/// VPP 26.10: `round_up_page(max(requested, 1 MiB) + 12 KiB)` (16 MiB → 16 789 504; 0 or
/// 4096 → 1 060 864).
pub fn app_segment_ssvm_size(requested: u64) -> u64 {
    round_up_page(requested.max(MIB).saturating_add(3 * PAGE_SIZE))
}

/// `ssvm_size` of an mqs segment holding `n_mqs` queues of `mq_bytes` each:
/// `n × mq_bytes + 1 MiB` (not page-rounded; the file is). One 2048-deep ctrl mq → 0x14d0a0.
pub fn mqs_segment_ssvm_size(n_mqs: u64, mq_bytes: u64) -> u64 {
    n_mqs.saturating_mul(mq_bytes).saturating_add(MIB)
}

/// How to lay out a new segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLayout {
    /// `ssvm_size`: bytes mapped (the memfd is this rounded up to a page).
    pub ssvm_size: u64,
    /// Number of slices (VPP threads for app segments; 1 for mqs segments).
    pub n_slices: u8,
}

/// The `ssvm_shared_header_t` fields a client or `show` cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsvmHeader {
    /// Required map address (0 = anywhere).
    pub ssvm_va: u64,
    /// Mapping size.
    pub ssvm_size: u64,
    /// Creator's pid.
    pub server_pid: u32,
    /// Last attacher's pid.
    pub client_pid: u32,
    /// `opaque[0]`: offset of the fifo-segment header.
    pub header_offset: u64,
    /// 1 when initialised.
    pub ready: u32,
    /// Segment type (1 = memfd).
    pub segment_type: u32,
}

/// The fifo-segment header fields, read out (for `show` and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FifoSegmentHeaderInfo {
    /// `n_slices`.
    pub n_slices: u8,
    /// `n_mqs`.
    pub n_mqs: u8,
    /// `n_reserved_bytes`.
    pub n_reserved_bytes: u32,
    /// `max_log2_fifo_size`.
    pub max_log2_fifo_size: u32,
    /// `byte_index`.
    pub byte_index: u64,
    /// `max_byte_index`.
    pub max_byte_index: u64,
    /// `start_byte_index`.
    pub start_byte_index: u64,
    /// `n_cached_bytes`.
    pub n_cached_bytes: u64,
}

/// A shared mapping, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a shared mapping is plain memory; see `RawRegion`.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: u64) -> Result<Self, SegmentError> {
        let len_usize = usize::try_from(len).map_err(|_| SegmentError::TooSmall {
            needed: len,
            available: usize::MAX as u64,
        })?;
        // SAFETY: a fresh shared mapping of a valid fd; the kernel picks the address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len_usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(sys("mmap"));
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| sys("mmap"))?;
        Ok(Self {
            base,
            len: len_usize,
        })
    }

    /// The whole mapping as a region addressed from the segment base.
    fn region(&self) -> RawRegion {
        // SAFETY: page-aligned base, mapped for `len` bytes while `self` lives; callers keep
        // the region no longer than the mapping (both live in the same `Segment`).
        unsafe { RawRegion::new(self.base, self.len as u64) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the range mapped in `new`, unmapped once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// A mapped memfd segment: owns the fd and the mapping.
///
/// Implements [`Memory`] with offset 0 at the fifo-segment header.
#[derive(Debug)]
pub struct Segment {
    // Field order: the region must not outlive the mapping (it is only a view of it).
    region: RawRegion,
    whole: RawRegion,
    map: Mapping,
    fd: OwnedFd,
    // An attached segment's memfd name is looked up (a readlink in /proc) only when asked:
    // it is diagnostics, and the lookup was a tenth of an app's attach.
    name: std::sync::OnceLock<String>,
    ssvm_size: u64,
    header_offset: u64,
}

fn file_size(fd: BorrowedFd<'_>) -> Result<u64, SegmentError> {
    // SAFETY: fstat writes into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(sys("fstat"));
    }
    Ok(st.st_size.max(0) as u64)
}

fn memfd_name(fd: BorrowedFd<'_>) -> String {
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match std::fs::read_link(link) {
        Ok(p) => {
            let s = p.to_string_lossy();
            s.strip_prefix("/memfd:")
                .map(|n| n.strip_suffix(" (deleted)").unwrap_or(n).to_owned())
                .unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// A memfd of a segment's size, sealed against resizing and mapped, with nothing laid out in it
/// yet: the part of [`Segment::create`] that depends only on the size, so that a server can do
/// it ahead of the request that will need it. Dropping it unmaps and closes.
///
/// Its memfd keeps the name it was created with (the kernel cannot rename one); every byte of
/// it is still zero, and the pages asked for at creation are already allocated, so laying the
/// segment out takes no page fault there.
#[derive(Debug)]
pub struct BlankSegment {
    map: Mapping,
    fd: OwnedFd,
    name: String,
    ssvm_size: u64,
}

impl BlankSegment {
    /// `memfd_create`, `ftruncate` to `ssvm_size` rounded up to a page, seals against shrinking
    /// and growing, `mmap`, then writes a zero into each page of the first `populate` bytes (at
    /// most `ssvm_size`) so the kernel allocates them now.
    pub fn create(name: &str, ssvm_size: u64, populate: u64) -> Result<BlankSegment, SegmentError> {
        if ssvm_size < HEADER_OFFSET + ssvm::SIZE {
            return Err(SegmentError::TooSmall {
                needed: HEADER_OFFSET + ssvm::SIZE,
                available: ssvm_size,
            });
        }
        if name.len() > 249 {
            return Err(SegmentError::BadName(name.to_owned()));
        }
        let cname = CString::new(name).map_err(|_| SegmentError::BadName(name.to_owned()))?;
        // SAFETY: valid C string; flags are plain constants.
        let raw = unsafe {
            libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if raw < 0 {
            return Err(sys("memfd_create"));
        }
        // SAFETY: memfd_create returned a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let file_len = round_up_page(ssvm_size);
        let file_len_off = i64::try_from(file_len).map_err(|_| SegmentError::TooSmall {
            needed: file_len,
            available: i64::MAX as u64,
        })?;
        // SAFETY: valid fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), file_len_off) } != 0 {
            return Err(sys("ftruncate"));
        }
        // A peer must not be able to shrink the file under our mapping (SIGBUS).
        // SAFETY: valid fd, plain flags.
        if unsafe {
            libc::fcntl(
                fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
            )
        } != 0
        {
            return Err(sys("fcntl(F_ADD_SEALS)"));
        }
        let map = Mapping::new(fd.as_fd(), ssvm_size)?;
        let whole = map.region();
        let mut at = 0;
        while at < populate.min(ssvm_size) {
            // A zero is what the page holds already: the write only makes the kernel allocate it.
            whole.write(at, &[0])?;
            at += PAGE_SIZE;
        }
        Ok(BlankSegment {
            map,
            fd,
            name: name.to_owned(),
            ssvm_size,
        })
    }

    /// `ssvm_size`: bytes mapped.
    pub fn ssvm_size(&self) -> u64 {
        self.ssvm_size
    }

    /// The memfd's name (given at creation).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lays the segment out as VPP's `fifo_segment_create` does: the fifo-segment header with
    /// `n_slices` slices at [`HEADER_OFFSET`], then the `ssvm_shared_header_t` at offset 0, its
    /// `ready` last. Writes only; no system call.
    pub fn lay_out(self, n_slices: u8) -> Result<Segment, SegmentError> {
        let n_slices = n_slices.max(1);
        let needed = HEADER_OFFSET + alloc::start_byte_index(n_slices) + 8;
        if self.ssvm_size < needed {
            return Err(SegmentError::TooSmall {
                needed,
                available: self.ssvm_size,
            });
        }
        let BlankSegment {
            map,
            fd,
            name,
            ssvm_size,
        } = self;
        let whole = map.region();
        // SAFETY: HEADER_OFFSET < ssvm_size (checked above) and is 8-aligned.
        let region = unsafe {
            RawRegion::new(
                NonNull::new_unchecked(whole.addr(HEADER_OFFSET)?),
                ssvm_size - HEADER_OFFSET,
            )
        };
        let seg = Segment {
            region,
            whole,
            map,
            fd,
            name: name.into(),
            ssvm_size,
            header_offset: HEADER_OFFSET,
        };
        let max_byte_index = ssvm_size - HEADER_OFFSET;
        let max_log2 = alloc::max_log2_fifo_size(max_byte_index, n_slices);
        seg.fifo_segment()
            .init(n_slices, max_byte_index, max_log2)?;
        let w = &seg.whole;
        w.write_u64(ssvm::SSVM_VA, 0)?;
        w.write_u64(ssvm::SSVM_SIZE, ssvm_size)?;
        w.write_u32(ssvm::SERVER_PID, std::process::id())?;
        w.write_u64(ssvm::OPAQUE, HEADER_OFFSET)?;
        w.write_u32(ssvm::TYPE, ssvm::TYPE_MEMFD)?;
        w.atomic_u32(ssvm::READY)?
            .store(1, std::sync::atomic::Ordering::Release);
        Ok(seg)
    }
}

impl Segment {
    /// Creates a memfd segment named `name` laid out as VPP's `fifo_segment_create` does
    /// ([`BlankSegment::create`] then [`BlankSegment::lay_out`], nothing populated ahead).
    pub fn create(name: &str, layout: SegmentLayout) -> Result<Segment, SegmentError> {
        let needed = HEADER_OFFSET + alloc::start_byte_index(layout.n_slices.max(1)) + 8;
        if layout.ssvm_size < needed {
            return Err(SegmentError::TooSmall {
                needed,
                available: layout.ssvm_size,
            });
        }
        BlankSegment::create(name, layout.ssvm_size, 0)?.lay_out(layout.n_slices)
    }

    /// Maps a segment received as `fd` (the client side of §1): reads `ssvm_size` from one
    /// page, checks it against the file, maps it, writes `client_pid` and locates the
    /// fifo-segment header through `opaque[0]`.
    pub fn attach(fd: OwnedFd) -> Result<Segment, SegmentError> {
        let file_size = file_size(fd.as_fd())?;
        if file_size < ssvm::SIZE {
            return Err(SegmentError::TooSmall {
                needed: ssvm::SIZE,
                available: file_size,
            });
        }
        let (ssvm_size, ssvm_va) = {
            // Read, not mapped: a probe mapping's munmap cost a TLB shootdown of every CPU the
            // process runs on.
            let mut h = [0u8; ssvm::SIZE as usize];
            // The file holds at least this much (checked above): one read returns it all.
            let n = nix::sys::uio::pread(fd.as_fd(), &mut h, 0)
                .map_err(|err| SegmentError::Sys { op: "pread", err })?;
            if n < h.len() {
                return Err(SegmentError::TooSmall {
                    needed: ssvm::SIZE,
                    available: n as u64,
                });
            }
            let word = |off: u64| {
                let o = off as usize;
                h.get(o..o + 8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_le_bytes)
            };
            (word(ssvm::SSVM_SIZE), word(ssvm::SSVM_VA))
        };
        if ssvm_size == 0 {
            return Err(SegmentError::ZeroSize);
        }
        if ssvm_size > file_size {
            return Err(SegmentError::SizeBeyondFile {
                ssvm_size,
                file_size,
            });
        }
        if ssvm_va != 0 {
            return Err(SegmentError::FixedAddress(ssvm_va));
        }
        let map = Mapping::new(fd.as_fd(), ssvm_size)?;
        let whole = map.region();
        whole.write_u32(ssvm::CLIENT_PID, std::process::id())?;
        let header_offset = whole.read_u64(ssvm::OPAQUE)?;
        if header_offset == 0 {
            return Err(SegmentError::NoFifoHeader);
        }
        if !header_offset.is_multiple_of(8)
            || header_offset
                .checked_add(fsh::SIZE)
                .is_none_or(|end| end > ssvm_size)
        {
            return Err(SegmentError::HeaderOutsideMapping {
                offset: header_offset,
                size: ssvm_size,
            });
        }
        // SAFETY: header_offset + 128 <= ssvm_size (checked), 8-aligned.
        let region = unsafe {
            RawRegion::new(
                NonNull::new_unchecked(whole.addr(header_offset)?),
                ssvm_size - header_offset,
            )
        };
        let seg = Segment {
            region,
            whole,
            map,
            fd,
            name: std::sync::OnceLock::new(),
            ssvm_size,
            header_offset,
        };
        let n_slices = seg.fifo_segment().n_slices()?;
        let needed = alloc::start_byte_index(n_slices);
        if needed > seg.region.len() {
            return Err(SegmentError::TooSmall {
                needed,
                available: seg.region.len(),
            });
        }
        Ok(seg)
    }

    /// The memfd (to pass with `SCM_RIGHTS`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
    /// `ssvm_size` (bytes mapped).
    pub fn ssvm_size(&self) -> u64 {
        self.ssvm_size
    }
    /// Name given at creation, or the memfd's name when attached.
    pub fn name(&self) -> &str {
        self.name.get_or_init(|| memfd_name(self.fd.as_fd()))
    }
    /// Offset of the fifo-segment header from the segment base (`opaque[0]`).
    pub fn header_offset(&self) -> u64 {
        self.header_offset
    }
    /// Address of the fifo-segment header in this process (for diagnostics only).
    pub fn base_addr(&self) -> usize {
        self.map.base.as_ptr() as usize
    }
    /// Typed view of the fifo-segment header and its allocator.
    pub fn fifo_segment(&self) -> FifoSegmentView<'_, Segment> {
        FifoSegmentView::new(self)
    }

    /// Reads the ssvm header at offset 0.
    pub fn ssvm_header(&self) -> Result<SsvmHeader, SegmentError> {
        let w = &self.whole;
        Ok(SsvmHeader {
            ssvm_va: w.read_u64(ssvm::SSVM_VA)?,
            ssvm_size: w.read_u64(ssvm::SSVM_SIZE)?,
            server_pid: w.read_u32(ssvm::SERVER_PID)?,
            client_pid: w.read_u32(ssvm::CLIENT_PID)?,
            header_offset: w.read_u64(ssvm::OPAQUE)?,
            ready: w
                .atomic_u32(ssvm::READY)?
                .load(std::sync::atomic::Ordering::Acquire),
            segment_type: w.read_u32(ssvm::TYPE)?,
        })
    }

    /// Reads the fifo-segment header.
    pub fn fifo_segment_header(&self) -> Result<FifoSegmentHeaderInfo, SegmentError> {
        let v = self.fifo_segment();
        Ok(FifoSegmentHeaderInfo {
            n_slices: v.n_slices()?,
            n_mqs: v.n_mqs()?,
            n_reserved_bytes: v.n_reserved_bytes()?,
            max_log2_fifo_size: v.max_log2_fifo_size()?,
            byte_index: v.byte_index()?,
            max_byte_index: v.max_byte_index()?,
            start_byte_index: v.start_byte_index()?,
            n_cached_bytes: v.n_cached_bytes()?,
        })
    }

    /// Bump-allocates `size` bytes aligned to `align`; returns the offset from the
    /// fifo-segment header.
    pub fn alloc(&self, size: u64, align: u64) -> Result<u64, SegmentError> {
        self.fifo_segment().alloc(size, align)
    }

    /// Allocates `size` bytes for an mq and grows `n_reserved_bytes` by it (as VPP does).
    pub fn alloc_reserved(&self, size: u64) -> Result<u64, SegmentError> {
        self.fifo_segment().alloc_reserved(size)
    }

    /// Sets `n_mqs`.
    pub fn set_n_mqs(&self, n: u8) -> Result<(), SegmentError> {
        self.fifo_segment().set_n_mqs(n)
    }

    /// Raw bytes of the whole segment from its base (offset 0 = ssvm header), for tests
    /// and dumps.
    pub fn base_region(&self) -> &RawRegion {
        &self.whole
    }
}

impl Memory for Segment {
    type A32 = std::sync::atomic::AtomicU32;
    type A64 = std::sync::atomic::AtomicU64;
    #[inline]
    fn len(&self) -> u64 {
        self.region.len()
    }
    #[inline]
    fn atomic_u32(&self, off: u64) -> Result<&Self::A32, OutOfBounds> {
        self.region.atomic_u32(off)
    }
    #[inline]
    fn atomic_u64(&self, off: u64) -> Result<&Self::A64, OutOfBounds> {
        self.region.atomic_u64(off)
    }
    #[inline]
    fn read(&self, off: u64, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.region.read(off, dst)
    }
    #[inline]
    fn write(&self, off: u64, src: &[u8]) -> Result<(), OutOfBounds> {
        self.region.write(off, src)
    }
}

impl RawRegion {
    /// The `pthread` object at `off` as a raw pointer, for the mq's mutex and condvar.
    pub(crate) fn ptr_at<T>(&self, off: u64) -> Result<*mut T, OutOfBounds> {
        let size = std::mem::size_of::<T>() as u64;
        let p = self.addr(off)?;
        self.check(off, size)?;
        if !(p as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return Err(OutOfBounds {
                offset: off,
                len: size,
                size: self.len(),
            });
        }
        Ok(p.cast())
    }
}

impl Segment {
    /// Raw pointer to a `T` at `off` from the fifo-segment header (bounds- and
    /// alignment-checked), for process-shared pthread objects.
    pub(crate) fn ptr_at<T>(&self, off: u64) -> Result<*mut T, OutOfBounds> {
        self.region.ptr_at(off)
    }
}
