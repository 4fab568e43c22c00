//! The suite's own readers of what a target hands out after ATTACH: memfd segments (ssvm header,
//! fifo-segment header located through `opaque[0]`) and message queues (prefix, queue header,
//! ring headers, queued messages), written from `docs/shm.md` §2–§4 and §6.
//!
//! Layout assumptions (the spec's): x86_64 Linux, LP64, little-endian, 64-byte cache lines,
//! glibc `pthread_mutex_t` 40 bytes and `pthread_cond_t` 48 bytes.
//!
//! Everything in a segment is written by the target and is untrusted: every read is bounds-checked
//! against the mapping and names the field it reads, so a wrong offset or a corrupt header is an
//! [`ShmError`] a scenario turns into a FAIL with evidence — never a panic, never a read outside
//! the mapping. Reads are byte-wise volatile because the target may write concurrently.
//!
//! Must never: use the reference's shm code, trust an offset without checking it, or write into a
//! segment except where a client legitimately does (nothing, for the suite's inspections).

use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;

use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// `ssvm_shared_header_t` field offsets (§2).
pub mod ssvm {
    pub const SSVM_VA: usize = 24;
    pub const SSVM_SIZE: usize = 32;
    pub const SERVER_PID: usize = 40;
    pub const CLIENT_PID: usize = 44;
    pub const OPAQUE0: usize = 56;
    pub const READY: usize = 112;
    pub const TYPE: usize = 116;
    pub const HEADER_LEN: usize = 120;
    pub const TYPE_MEMFD: u32 = 1;
}

/// `fifo_segment_header_t` field offsets (§3.1), relative to the fifo-segment header.
pub mod fsh {
    pub const N_CACHED_BYTES: usize = 0;
    pub const N_ACTIVE_FIFOS: usize = 8;
    pub const N_RESERVED_BYTES: usize = 12;
    pub const MAX_LOG2_FIFO_SIZE: usize = 16;
    pub const N_SLICES: usize = 20;
    pub const PCT_FIRST_ALLOC: usize = 21;
    pub const N_MQS: usize = 22;
    pub const BYTE_INDEX: usize = 64;
    pub const MAX_BYTE_INDEX: usize = 72;
    pub const START_BYTE_INDEX: usize = 80;
    pub const HEADER_LEN: usize = 128;
    pub const SLICE_LEN: usize = 192;
}

/// Message-queue offsets (§4.1), relative to the mq (the `svm_msg_q_shared_t`).
pub mod mq {
    pub const N_RINGS: usize = 0;
    pub const QUEUE: usize = 8;
    /// Within the queue header.
    pub const Q_HEAD: usize = 88;
    pub const Q_TAIL: usize = 92;
    pub const Q_CURSIZE: usize = 96;
    pub const Q_MAXSIZE: usize = 100;
    pub const Q_ELSIZE: usize = 104;
    pub const Q_DATA: usize = 112;
    pub const MSG_LEN: usize = 8;
    /// Within a ring header.
    pub const R_CURSIZE: usize = 0;
    pub const R_NITEMS: usize = 4;
    pub const R_HEAD: usize = 8;
    pub const R_TAIL: usize = 12;
    pub const R_ELSIZE: usize = 16;
    pub const RING_HEADER_LEN: usize = 20;
    /// Session-layer ring element sizes: ring 0 `session_event_t`, ring 1 control events.
    pub const IO_EVENT_ELSIZE: u32 = 18;
    pub const CTRL_EVENT_ELSIZE: u32 = 256;
}

/// `session_app_add_segment_msg_t` offsets within a ring-1 element (§6.3).
pub mod add_segment_evt {
    pub const EVENT_TYPE: usize = 0;
    pub const FD_FLAGS: usize = 10;
    pub const SEGMENT_SIZE: usize = 14;
    pub const SEGMENT_NAME: usize = 18;
    pub const SEGMENT_NAME_LEN: usize = 128;
    pub const SEGMENT_HANDLE: usize = 146;
    /// `SESSION_CTRL_EVT_APP_ADD_SEGMENT` at HEAD (26 before 2021-05-09).
    pub const TYPE_HEAD: u8 = 28;
    pub const TYPE_SEED: u8 = 26;
}

/// A read that could not be done, naming the field and where it was looked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShmError {
    #[error(
        "{field}: {width} bytes at segment offset {offset:#x} lie outside the {len:#x}-byte mapping"
    )]
    OutOfBounds {
        field: String,
        offset: u64,
        width: usize,
        len: usize,
    },
    #[error("mmap of {len} bytes failed: {errno}")]
    Map {
        len: usize,
        errno: nix::errno::Errno,
    },
    #[error("fstat failed: {0}")]
    Stat(nix::errno::Errno),
    #[error("segment is empty (file size 0)")]
    Empty,
    #[error("{field} = {value:#x}: {why}")]
    Corrupt {
        field: String,
        value: u64,
        why: &'static str,
    },
}

/// A shared mapping of a whole memfd, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; all access goes through byte-wise volatile reads.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the whole file behind `fd` (its `fstat` size), shared, read-only or read-write.
    pub fn map(fd: impl AsFd, writable: bool) -> Result<Self, ShmError> {
        let st = nix::sys::stat::fstat(fd.as_fd()).map_err(ShmError::Stat)?;
        let len = usize::try_from(st.st_size).map_err(|_| ShmError::Corrupt {
            field: "st_size".into(),
            value: st.st_size as u64,
            why: "negative file size",
        })?;
        let nz = NonZeroUsize::new(len).ok_or(ShmError::Empty)?;
        let prot = if writable {
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
        } else {
            ProtFlags::PROT_READ
        };
        // SAFETY: a fresh mapping at an address the kernel chooses; nothing aliases it in Rust.
        let ptr = unsafe { mmap(None, nz, prot, MapFlags::MAP_SHARED, fd, 0) }
            .map_err(|errno| ShmError::Map { len, errno })?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte of the mapping, for [`crate::session::mem`], which bounds-checks every
    /// access it makes through it.
    pub(crate) fn base_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Copies `N` bytes at `offset`, or names `field` in the error if they are not all mapped.
    pub fn read<const N: usize>(&self, offset: u64, field: &str) -> Result<[u8; N], ShmError> {
        let oob = || ShmError::OutOfBounds {
            field: field.to_string(),
            offset,
            width: N,
            len: self.len,
        };
        let start = usize::try_from(offset).map_err(|_| oob())?;
        let end = start.checked_add(N).ok_or_else(oob)?;
        if end > self.len {
            return Err(oob());
        }
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: start + i < len, inside the live mapping; volatile because another process
            // may write the byte concurrently.
            *b = unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(start + i)) };
        }
        Ok(out)
    }

    pub fn u8(&self, offset: u64, field: &str) -> Result<u8, ShmError> {
        Ok(self.read::<1>(offset, field)?[0])
    }
    pub fn u32(&self, offset: u64, field: &str) -> Result<u32, ShmError> {
        Ok(u32::from_le_bytes(self.read::<4>(offset, field)?))
    }
    pub fn u64(&self, offset: u64, field: &str) -> Result<u64, ShmError> {
        Ok(u64::from_le_bytes(self.read::<8>(offset, field)?))
    }
    /// Reads `len` bytes (bounded by the caller) at `offset`.
    pub fn bytes(&self, offset: u64, len: usize, field: &str) -> Result<Vec<u8>, ShmError> {
        let mut v = Vec::with_capacity(len);
        for i in 0..len as u64 {
            v.push(self.u8(offset.saturating_add(i), field)?);
        }
        Ok(v)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing borrows the memory past drop.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// The ssvm header at offset 0 of every memfd segment (§2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SsvmHeader {
    pub ssvm_va: u64,
    pub ssvm_size: u64,
    pub server_pid: u32,
    pub client_pid: u32,
    pub opaque0: u64,
    pub ready: u32,
    pub seg_type: u32,
}

/// The fifo-segment header (§3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FifoSegmentHeader {
    pub n_cached_bytes: u64,
    pub n_active_fifos: u32,
    pub n_reserved_bytes: u32,
    pub max_log2_fifo_size: u32,
    pub n_slices: u8,
    pub pct_first_alloc: u8,
    pub n_mqs: u8,
    pub byte_index: u64,
    pub max_byte_index: u64,
    pub start_byte_index: u64,
}

/// The queue header of an mq (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QueueHeader {
    pub head: u32,
    pub tail: u32,
    pub cursize: u32,
    pub maxsize: u32,
    pub elsize: u32,
}

/// One ring header of an mq (§4.1) and where its data starts (fifo-header relative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RingHeader {
    pub cursize: u32,
    pub nitems: u32,
    pub head: u32,
    pub tail: u32,
    pub elsize: u32,
    pub data_offset: u64,
}

/// A decoded message-queue image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MqImage {
    /// Offset of the mq from the fifo-segment header.
    pub offset: u64,
    pub n_rings: u32,
    pub queue: QueueHeader,
    pub rings: Vec<RingHeader>,
    /// Total bytes the image spans: 8 + 112 + 8·Q + Σ(20 + nitems·elsize).
    pub total_len: u64,
}

/// A queued message: which ring element it names, and that element's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqMessage {
    pub ring_index: u32,
    pub elt_index: u32,
    pub element: Vec<u8>,
}

/// Rings beyond this many are treated as corruption (session-layer mqs have 2).
const MAX_RINGS: u32 = 16;

/// A mapped memfd segment with its headers located.
#[derive(Debug)]
pub struct Segment {
    pub map: Mapping,
    pub ssvm: SsvmHeader,
    /// Segment offset of the fifo-segment header (= `opaque[0]`).
    pub fsh_base: u64,
    pub fsh: FifoSegmentHeader,
}

impl Segment {
    /// Maps `fd` and reads its ssvm and fifo-segment headers, bounds-checked.
    pub fn open(fd: impl AsFd, writable: bool) -> Result<Self, ShmError> {
        let map = Mapping::map(fd, writable)?;
        Self::from_mapping(map)
    }

    pub fn from_mapping(map: Mapping) -> Result<Self, ShmError> {
        let ssvm = read_ssvm(&map)?;
        if ssvm.opaque0 == 0 {
            return Err(ShmError::Corrupt {
                field: "ssvm.opaque[0]".into(),
                value: 0,
                why: "no fifo-segment header in this segment",
            });
        }
        let fsh_base = ssvm.opaque0;
        let fsh = read_fsh(&map, fsh_base)?;
        Ok(Segment {
            map,
            ssvm,
            fsh_base,
            fsh,
        })
    }

    fn at(&self, rel: u64, field: &str) -> Result<u64, ShmError> {
        self.fsh_base
            .checked_add(rel)
            .ok_or_else(|| ShmError::OutOfBounds {
                field: field.to_string(),
                offset: rel,
                width: 0,
                len: self.map.len(),
            })
    }
    /// u32 at a fifo-header-relative offset.
    pub fn rel_u32(&self, rel: u64, field: &str) -> Result<u32, ShmError> {
        self.map.u32(self.at(rel, field)?, field)
    }

    /// Decodes the mq at `offset` (relative to the fifo-segment header), checking that the whole
    /// image lies inside the mapping.
    pub fn mq_at(&self, offset: u64) -> Result<MqImage, ShmError> {
        let base = self.at(offset, "mq offset")?;
        let m = &self.map;
        let n_rings = m.u32(base + mq::N_RINGS as u64, "mq.n_rings")?;
        if n_rings > MAX_RINGS {
            return Err(ShmError::Corrupt {
                field: format!("mq@{offset:#x}.n_rings"),
                value: n_rings.into(),
                why: "more rings than any session-layer mq has",
            });
        }
        let q = base + mq::QUEUE as u64;
        let queue = QueueHeader {
            head: m.u32(q + mq::Q_HEAD as u64, "mq.queue.head")?,
            tail: m.u32(q + mq::Q_TAIL as u64, "mq.queue.tail")?,
            cursize: m.u32(q + mq::Q_CURSIZE as u64, "mq.queue.cursize")?,
            maxsize: m.u32(q + mq::Q_MAXSIZE as u64, "mq.queue.maxsize")?,
            elsize: m.u32(q + mq::Q_ELSIZE as u64, "mq.queue.elsize")?,
        };
        let qbytes = u64::from(queue.maxsize) * u64::from(queue.elsize);
        let mut cur = q + mq::Q_DATA as u64 + qbytes;
        // The queue's handle array must itself be mapped.
        if cur > m.len() as u64 {
            return Err(ShmError::OutOfBounds {
                field: format!("mq@{offset:#x}.queue.data[{}]", queue.maxsize),
                offset: q + mq::Q_DATA as u64,
                width: usize::try_from(qbytes).unwrap_or(usize::MAX),
                len: m.len(),
            });
        }
        let mut rings = Vec::new();
        for r in 0..n_rings {
            let name = |f: &str| format!("mq@{offset:#x}.ring[{r}].{f}");
            let ring = RingHeader {
                cursize: m.u32(cur + mq::R_CURSIZE as u64, &name("cursize"))?,
                nitems: m.u32(cur + mq::R_NITEMS as u64, &name("nitems"))?,
                head: m.u32(cur + mq::R_HEAD as u64, &name("head"))?,
                tail: m.u32(cur + mq::R_TAIL as u64, &name("tail"))?,
                elsize: m.u32(cur + mq::R_ELSIZE as u64, &name("elsize"))?,
                data_offset: cur + mq::RING_HEADER_LEN as u64 - self.fsh_base,
            };
            let data = u64::from(ring.nitems) * u64::from(ring.elsize);
            cur = cur + mq::RING_HEADER_LEN as u64 + data;
            if cur > m.len() as u64 {
                return Err(ShmError::OutOfBounds {
                    field: name("data"),
                    offset: cur - data,
                    width: usize::try_from(data).unwrap_or(usize::MAX),
                    len: m.len(),
                });
            }
            rings.push(ring);
        }
        Ok(MqImage {
            offset,
            n_rings,
            queue,
            rings,
            total_len: cur - base,
        })
    }

    /// Copies the messages queued in `mq` (without consuming them): handles from `head`,
    /// `cursize` of them, each resolved to its ring element. Indices are checked.
    pub fn peek(&self, mqi: &MqImage) -> Result<Vec<MqMessage>, ShmError> {
        let q = &mqi.queue;
        if q.cursize > q.maxsize || (q.maxsize > 0 && q.head >= q.maxsize) {
            return Err(ShmError::Corrupt {
                field: format!("mq@{:#x}.queue.cursize/head", mqi.offset),
                value: u64::from(q.cursize),
                why: "cursize above maxsize or head out of range",
            });
        }
        let data = self.at(
            mqi.offset + (mq::QUEUE + mq::Q_DATA) as u64,
            "mq.queue.data",
        )?;
        let mut out = Vec::new();
        for k in 0..q.cursize {
            let slot = (q.head + k) % q.maxsize;
            let at = data + u64::from(slot) * mq::MSG_LEN as u64;
            let ring_index = self.map.u32(at, "svm_msg_q_msg.ring_index")?;
            let elt_index = self.map.u32(at + 4, "svm_msg_q_msg.elt_index")?;
            let ring = mqi
                .rings
                .get(ring_index as usize)
                .ok_or(ShmError::Corrupt {
                    field: format!("queued msg {k}.ring_index"),
                    value: ring_index.into(),
                    why: "no such ring",
                })?;
            if elt_index >= ring.nitems {
                return Err(ShmError::Corrupt {
                    field: format!("queued msg {k}.elt_index"),
                    value: elt_index.into(),
                    why: "element index beyond ring nitems",
                });
            }
            let el = self.at(
                ring.data_offset + u64::from(elt_index) * u64::from(ring.elsize),
                "ring element",
            )?;
            let element = self
                .map
                .bytes(el, ring.elsize.min(4096) as usize, "ring element")?;
            out.push(MqMessage {
                ring_index,
                elt_index,
                element,
            });
        }
        Ok(out)
    }
}

fn read_ssvm(m: &Mapping) -> Result<SsvmHeader, ShmError> {
    Ok(SsvmHeader {
        ssvm_va: m.u64(ssvm::SSVM_VA as u64, "ssvm.ssvm_va")?,
        ssvm_size: m.u64(ssvm::SSVM_SIZE as u64, "ssvm.ssvm_size")?,
        server_pid: m.u32(ssvm::SERVER_PID as u64, "ssvm.server_pid")?,
        client_pid: m.u32(ssvm::CLIENT_PID as u64, "ssvm.client_pid")?,
        opaque0: m.u64(ssvm::OPAQUE0 as u64, "ssvm.opaque[0]")?,
        ready: m.u32(ssvm::READY as u64, "ssvm.ready")?,
        seg_type: m.u32(ssvm::TYPE as u64, "ssvm.type")?,
    })
}

fn read_fsh(m: &Mapping, b: u64) -> Result<FifoSegmentHeader, ShmError> {
    let o = |off: usize| b.saturating_add(off as u64);
    let h = FifoSegmentHeader {
        n_cached_bytes: m.u64(o(fsh::N_CACHED_BYTES), "fsh.n_cached_bytes")?,
        n_active_fifos: m.u32(o(fsh::N_ACTIVE_FIFOS), "fsh.n_active_fifos")?,
        n_reserved_bytes: m.u32(o(fsh::N_RESERVED_BYTES), "fsh.n_reserved_bytes")?,
        max_log2_fifo_size: m.u32(o(fsh::MAX_LOG2_FIFO_SIZE), "fsh.max_log2_fifo_size")?,
        n_slices: m.u8(o(fsh::N_SLICES), "fsh.n_slices")?,
        pct_first_alloc: m.u8(o(fsh::PCT_FIRST_ALLOC), "fsh.pct_first_alloc")?,
        n_mqs: m.u8(o(fsh::N_MQS), "fsh.n_mqs")?,
        byte_index: m.u64(o(fsh::BYTE_INDEX), "fsh.byte_index")?,
        max_byte_index: m.u64(o(fsh::MAX_BYTE_INDEX), "fsh.max_byte_index")?,
        start_byte_index: m.u64(o(fsh::START_BYTE_INDEX), "fsh.start_byte_index")?,
    };
    // The slices array must be mapped too.
    let slices_end = (fsh::HEADER_LEN + fsh::SLICE_LEN * usize::from(h.n_slices)) as u64;
    if b.saturating_add(slices_end) > m.len() as u64 {
        return Err(ShmError::OutOfBounds {
            field: format!("fsh.slices[{}]", h.n_slices),
            offset: b + fsh::HEADER_LEN as u64,
            width: fsh::SLICE_LEN * usize::from(h.n_slices),
            len: m.len(),
        });
    }
    Ok(h)
}

/// Semantic checks of a fifo-segment header against §3.1 (as violations, for evidence).
pub fn fsh_violations(h: &FifoSegmentHeader, seg: &Segment) -> Vec<String> {
    let mut v = Vec::new();
    let expect_start = (fsh::HEADER_LEN + fsh::SLICE_LEN * usize::from(h.n_slices)) as u64;
    if h.n_slices == 0 {
        v.push("fsh.n_slices = 0, expected ≥ 1".to_string());
    }
    if h.start_byte_index != expect_start {
        v.push(format!(
            "fsh.start_byte_index = {:#x}, expected 128 + 192 × n_slices = {expect_start:#x}",
            h.start_byte_index
        ));
    }
    if h.byte_index < h.start_byte_index || h.byte_index > h.max_byte_index {
        v.push(format!(
            "fsh.byte_index = {:#x} outside [start_byte_index {:#x}, max_byte_index {:#x}]",
            h.byte_index, h.start_byte_index, h.max_byte_index
        ));
    }
    if seg.fsh_base.saturating_add(h.max_byte_index) > seg.map.len() as u64 {
        v.push(format!(
            "fsh.max_byte_index = {:#x} reaches past the mapping ({:#x} bytes from header at {:#x})",
            h.max_byte_index,
            seg.map.len(),
            seg.fsh_base
        ));
    }
    if u64::from(h.n_reserved_bytes) < h.start_byte_index {
        v.push(format!(
            "fsh.n_reserved_bytes = {:#x} below start_byte_index {:#x}",
            h.n_reserved_bytes, h.start_byte_index
        ));
    }
    v
}

/// Semantic checks of an ssvm header against §2 for a memfd fifo segment of `file_size` bytes.
pub fn ssvm_violations(h: &SsvmHeader, file_size: u64) -> Vec<String> {
    let mut v = Vec::new();
    if h.ssvm_va != 0 {
        v.push(format!("ssvm.ssvm_va = {:#x}, expected 0", h.ssvm_va));
    }
    if h.ssvm_size == 0 || h.ssvm_size > file_size {
        v.push(format!(
            "ssvm.ssvm_size = {:#x}, expected 1..=file size {file_size:#x}",
            h.ssvm_size
        ));
    }
    if h.ready != 1 {
        v.push(format!("ssvm.ready = {}, expected 1", h.ready));
    }
    if h.seg_type != ssvm::TYPE_MEMFD {
        v.push(format!("ssvm.type = {}, expected 1 (MEMFD)", h.seg_type));
    }
    if h.opaque0 < ssvm::HEADER_LEN as u64 || !h.opaque0.is_multiple_of(8) || h.opaque0 >= file_size
    {
        v.push(format!(
            "ssvm.opaque[0] = {:#x}, expected an 8-aligned offset past the 120-byte header and inside the file",
            h.opaque0
        ));
    }
    v
}

/// Checks an mq against the session-layer shape (§3.5/§4.1): 2 rings with element sizes 18 and
/// 256, 8-byte handles, and when given, the queue length and ring lengths.
pub fn mq_violations(
    m: &MqImage,
    queue_len: Option<u32>,
    ring_lens: Option<[u32; 2]>,
) -> Vec<String> {
    let mut v = Vec::new();
    let at = m.offset;
    if m.n_rings != 2 {
        v.push(format!("mq@{at:#x}.n_rings = {}, expected 2", m.n_rings));
    }
    if m.queue.elsize != 8 {
        v.push(format!(
            "mq@{at:#x}.queue.elsize = {}, expected 8",
            m.queue.elsize
        ));
    }
    if let Some(q) = queue_len
        && m.queue.maxsize != q
    {
        v.push(format!(
            "mq@{at:#x}.queue.maxsize = {}, expected {q}",
            m.queue.maxsize
        ));
    }
    for (i, (r, want)) in m
        .rings
        .iter()
        .zip([mq::IO_EVENT_ELSIZE, mq::CTRL_EVENT_ELSIZE])
        .enumerate()
    {
        if r.elsize != want {
            v.push(format!(
                "mq@{at:#x}.ring[{i}].elsize = {}, expected {want}",
                r.elsize
            ));
        }
        if r.nitems == 0 {
            v.push(format!("mq@{at:#x}.ring[{i}].nitems = 0"));
        }
        if let Some(lens) = ring_lens
            && r.nitems != lens[i]
        {
            v.push(format!(
                "mq@{at:#x}.ring[{i}].nitems = {}, expected {}",
                r.nitems, lens[i]
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Builds a segment image as `docs/shm.md` describes it (§2, §3.1, §4.1), in a real memfd.
    fn memfd_with(image: &[u8]) -> std::fs::File {
        let fd = nix::sys::memfd::memfd_create(
            c"conformance-test",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .expect("memfd");
        let mut f = std::fs::File::from(fd);
        f.write_all(image).expect("write");
        f
    }

    fn put32(b: &mut [u8], o: usize, v: u32) {
        b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(b: &mut [u8], o: usize, v: u64) {
        b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// The observed VPP app segment: fsh at 0x2000, one slice, app mq at 0x140 with Q = 256,
    /// rings 256 × 18 and 16 × 256.
    fn observed_app_segment() -> Vec<u8> {
        let len = 0x2000 + 0x140 + 8 + 112 + 256 * 8 + 20 + 256 * 18 + 20 + 16 * 256 + 4096;
        let mut b = vec![0u8; len];
        put64(&mut b, ssvm::SSVM_SIZE, len as u64);
        put64(&mut b, ssvm::OPAQUE0, 0x2000);
        put32(&mut b, ssvm::READY, 1);
        put32(&mut b, ssvm::TYPE, 1);
        let h = 0x2000;
        put32(&mut b, h + fsh::N_RESERVED_BYTES, 0x140);
        b[h + fsh::N_SLICES] = 1;
        put64(&mut b, h + fsh::BYTE_INDEX, 0x140);
        put64(&mut b, h + fsh::MAX_BYTE_INDEX, (len - h - 8192) as u64);
        put64(&mut b, h + fsh::START_BYTE_INDEX, 0x140);
        let m = h + 0x140;
        put32(&mut b, m, 2);
        let q = m + 8;
        put32(&mut b, q + mq::Q_MAXSIZE, 256);
        put32(&mut b, q + mq::Q_ELSIZE, 8);
        let r0 = q + 112 + 256 * 8;
        put32(&mut b, r0 + mq::R_NITEMS, 256);
        put32(&mut b, r0 + mq::R_ELSIZE, 18);
        let r1 = r0 + 20 + 256 * 18;
        put32(&mut b, r1 + mq::R_NITEMS, 16);
        put32(&mut b, r1 + mq::R_ELSIZE, 256);
        b
    }

    #[test]
    fn reads_the_observed_app_segment_layout() {
        let f = memfd_with(&observed_app_segment());
        let seg = Segment::open(&f, false).expect("segment");
        assert_eq!(seg.fsh_base, 0x2000);
        assert!(ssvm_violations(&seg.ssvm, seg.map.len() as u64).is_empty());
        assert_eq!(fsh_violations(&seg.fsh, &seg), Vec::<String>::new());
        let m = seg.mq_at(0x140).expect("mq");
        assert_eq!(
            m.total_len,
            8 + 112 + 256 * 8 + 20 + 256 * 18 + 20 + 16 * 256
        );
        assert_eq!(
            mq_violations(&m, Some(256), Some([256, 16])),
            Vec::<String>::new()
        );
        assert!(seg.peek(&m).expect("empty").is_empty());
    }

    #[test]
    fn wrong_ring_size_is_named() {
        let mut img = observed_app_segment();
        let r0 = 0x2000 + 0x140 + 8 + 112 + 256 * 8;
        put32(&mut img, r0 + mq::R_ELSIZE, 19);
        let f = memfd_with(&img);
        let seg = Segment::open(&f, false).expect("segment");
        let m = seg.mq_at(0x140);
        // 19-byte elements push ring 1 past the end: either an OOB error or a named violation.
        match m {
            Ok(m) => assert!(mq_violations(&m, None, None)[0].contains("ring[0].elsize = 19")),
            Err(e) => assert!(e.to_string().contains("ring")),
        }
    }

    #[test]
    fn offsets_outside_the_mapping_are_errors_not_faults() {
        let f = memfd_with(&observed_app_segment());
        let seg = Segment::open(&f, false).expect("segment");
        let e = seg.mq_at(u64::MAX - 4).expect_err("overflow");
        assert!(matches!(e, ShmError::OutOfBounds { .. }), "{e}");
        let e = seg.mq_at(0x10_0000_0000).expect_err("far");
        assert!(e.to_string().contains("mq.n_rings"), "{e}");
        let mut img = observed_app_segment();
        put64(&mut img, ssvm::OPAQUE0, 1 << 40);
        let e = Segment::open(memfd_with(&img), false).expect_err("bad opaque");
        assert!(e.to_string().contains("fsh."), "{e}");
        // A huge queue length must not make the reader walk off the mapping.
        let mut img = observed_app_segment();
        put32(&mut img, 0x2000 + 0x140 + 8 + mq::Q_MAXSIZE, u32::MAX);
        let seg = Segment::open(memfd_with(&img), false).expect("segment");
        assert!(seg.mq_at(0x140).is_err());
    }

    #[test]
    fn peek_resolves_a_queued_ctrl_event() {
        let mut img = observed_app_segment();
        let q = 0x2000 + 0x140 + 8;
        put32(&mut img, q + mq::Q_CURSIZE, 1);
        put32(&mut img, q + mq::Q_TAIL, 1);
        put32(&mut img, q + mq::Q_DATA, 1); // ring 1
        put32(&mut img, q + mq::Q_DATA + 4, 3); // element 3
        let r1data = q + 112 + 256 * 8 + 20 + 256 * 18 + 20;
        let el = r1data + 3 * 256;
        img[el] = add_segment_evt::TYPE_HEAD;
        img[el + add_segment_evt::FD_FLAGS] = 2;
        put32(&mut img, el + add_segment_evt::SEGMENT_SIZE, 0x0400_0000);
        put64(
            &mut img,
            el + add_segment_evt::SEGMENT_HANDLE,
            0x1_0000_0001,
        );
        let seg = Segment::open(memfd_with(&img), false).expect("segment");
        let m = seg.mq_at(0x140).expect("mq");
        let msgs = seg.peek(&m).expect("one");
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].ring_index, msgs[0].elt_index), (1, 3));
        assert_eq!(msgs[0].element[0], 28);
        assert_eq!(msgs[0].element[146], 1);
    }
}
