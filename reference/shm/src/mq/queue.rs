//! The mq image (`docs/shm.md` §4.1): the geometry a producer and a consumer agree on, its
//! validation when attaching, the message handle, and creating a fresh image in a segment.
//!
//! Must never: accept an image whose handle array or rings reach outside the memory, or re-read the
//! geometry after attaching: [`MqGeometry`] keeps private copies, so a peer that rewrites
//! `maxsize`, `n_rings`, `nitems` or `elsize` later cannot widen a bound an index is checked
//! against.

use crate::alloc::FifoSegmentView;
use crate::error::SegmentError;
use crate::layout::mq as l;
use crate::memory::{Memory, OutOfBounds};
use crate::segment::Segment;
use crate::sync::{Atomic, Ordering};

use super::signal::PthreadSignal;

/// Element size of ring 0 (`sizeof(session_event_t)`).
pub const IO_EVENT_ELSIZE: u32 = 18;
/// Element size of ring 1 (control events).
pub const CTRL_EVENT_ELSIZE: u32 = 256;
/// Rings beyond this count are rejected as corrupt (the session layer uses 2).
pub const MAX_RINGS: u32 = 16;

/// One ring's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSpec {
    /// Number of elements.
    pub nitems: u32,
    /// Bytes per element.
    pub elsize: u32,
}

/// The geometry of a message queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqSpec {
    /// Number of handle slots (`maxsize`).
    pub queue_len: u32,
    /// The rings, in order.
    pub rings: Vec<RingSpec>,
}

impl MqSpec {
    /// The app (worker) event queue (§3.5): queue and ring 0 of `EVT_QUEUE_SIZE` (0 means the
    /// default 128) 18-byte elements, ring 1 of `max(16, q/16)` 256-byte elements.
    pub fn app_event_queue(evt_queue_size: u32) -> Self {
        let q = if evt_queue_size == 0 {
            128
        } else {
            evt_queue_size
        };
        Self::two_rings(q, q, (q / 16).max(16))
    }

    /// A VPP per-thread ctrl mq of the wrk-mqs segment: `L = max(2048, len)`, ring 0 of `L`
    /// 18-byte elements, ring 1 of `L/2` 256-byte elements.
    pub fn vpp_ctrl(len: u32) -> Self {
        let l = len.max(2048);
        Self::two_rings(l, l, l / 2)
    }

    /// A private rx mq (`use-private-rx-mqs`): `L = max(EVT_QUEUE_SIZE, 128)`, ring 0 of `L`
    /// 18-byte elements, ring 1 of `L/2` 256-byte elements.
    pub fn private_rx(evt_queue_size: u32) -> Self {
        let l = evt_queue_size.max(128);
        Self::two_rings(l, l, l / 2)
    }

    pub(super) fn two_rings(q: u32, n0: u32, n1: u32) -> Self {
        Self {
            queue_len: q,
            rings: vec![
                RingSpec {
                    nitems: n0,
                    elsize: IO_EVENT_ELSIZE,
                },
                RingSpec {
                    nitems: n1,
                    elsize: CTRL_EVENT_ELSIZE,
                },
            ],
        }
    }

    /// Bytes the mq occupies: `8 + 112 + 8·Q + Σ (20 + nitems·elsize)`.
    pub fn size_bytes(&self) -> u64 {
        l::PREFIX_SIZE
            + l::QUEUE_HEADER_SIZE
            + l::HANDLE_SIZE * self.queue_len as u64
            + self
                .rings
                .iter()
                .map(|r| l::RING_HEADER_SIZE + r.nitems as u64 * r.elsize as u64)
                .sum::<u64>()
    }
}

/// Errors of the message queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqError {
    /// The queue or every ring that fits the message is full.
    #[error("message queue full")]
    Full,
    /// Nothing queued.
    #[error("message queue empty")]
    Empty,
    /// Another producer holds the shared mutex (non-blocking send only).
    #[error("message queue locked by another producer")]
    Busy,
    /// A blocking call's deadline passed.
    #[error("timed out waiting on the message queue")]
    Timeout,
    /// No ring has elements this large.
    #[error("message of {len} bytes fits no ring (largest element {max})")]
    TooLarge {
        /// Message length.
        len: usize,
        /// Largest element size.
        max: u32,
    },
    /// A freed element is not the ring's oldest (elements must be freed in order).
    #[error("ring {ring}: freed element {got} but the ring head is {expected}")]
    OutOfOrderFree {
        /// Ring index.
        ring: u32,
        /// The ring's head.
        expected: u32,
        /// The element freed.
        got: u32,
    },
    /// A header field is inconsistent with the geometry.
    #[error("corrupt message queue at {offset:#x}: {field} = {value}")]
    Corrupt {
        /// Offset of the mq.
        offset: u64,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A ring header is not 4-byte aligned (odd queue lengths with 18-byte elements), so its
    /// atomics cannot be accessed portably.
    #[error("ring {ring} header at {offset:#x} is not 4-byte aligned")]
    MisalignedRing {
        /// Ring index.
        ring: u32,
        /// Offset of its header.
        offset: u64,
    },
    /// A system call failed.
    #[error("{op} failed: {err}")]
    Sys {
        /// The call.
        op: &'static str,
        /// Its error.
        err: nix::errno::Errno,
    },
    /// Allocation of the mq in its segment failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// An access outside the segment.
    #[error(transparent)]
    OutOfBounds(#[from] OutOfBounds),
}

/// A message handle (`svm_msg_q_msg_t`): which ring element holds the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgHandle {
    /// Ring index.
    pub ring: u32,
    /// Element index in the ring.
    pub elt: u32,
}

impl MsgHandle {
    /// The 8 bytes of a handle slot: ring index, then element index.
    pub(super) fn to_bytes(self) -> [u8; 8] {
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&self.ring.to_le_bytes());
        h[4..].copy_from_slice(&self.elt.to_le_bytes());
        h
    }

    pub(super) fn from_bytes(h: [u8; 8]) -> Self {
        Self {
            ring: u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
            elt: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        }
    }
}

/// `i + 1` modulo `n`, for indices already checked to be below `n`.
pub(super) fn next_index(i: u32, n: u32) -> u32 {
    if i + 1 == n { 0 } else { i + 1 }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct RingGeom {
    pub(super) hdr: u64,
    pub(super) nitems: u32,
    pub(super) elsize: u32,
}

impl RingGeom {
    pub(super) fn data(&self, elt: u32) -> u64 {
        self.hdr + l::RING_HEADER_SIZE + elt as u64 * self.elsize as u64
    }
}

/// The validated geometry of an mq image (private copies; never re-read from the segment).
#[derive(Debug, Clone)]
pub struct MqGeometry {
    pub(super) offset: u64,
    pub(super) queue_len: u32,
    pub(super) rings: Vec<RingGeom>,
}

impl MqGeometry {
    pub(super) fn q(&self) -> u64 {
        self.offset + l::PREFIX_SIZE
    }
    pub(super) fn handle(&self, slot: u32) -> u64 {
        self.q() + l::QUEUE_HEADER_SIZE + l::HANDLE_SIZE * slot as u64
    }
    /// Offset of the mq (of its 8-byte prefix) from the fifo-segment header.
    /// The ring `msg` names, with `msg.elt` checked against it: what every use of a handle read
    /// from the segment goes through.
    pub(super) fn ring_of(&self, msg: MsgHandle) -> Result<RingGeom, MqError> {
        match self.rings.get(msg.ring as usize) {
            None => Err(self.corrupt("handle ring_index", msg.ring as u64)),
            Some(r) if msg.elt >= r.nitems => Err(self.corrupt("handle elt_index", msg.elt as u64)),
            Some(r) => Ok(*r),
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// `maxsize`.
    pub fn queue_len(&self) -> u32 {
        self.queue_len
    }
    /// The rings' geometry.
    pub fn rings(&self) -> Vec<RingSpec> {
        self.rings
            .iter()
            .map(|r| RingSpec {
                nitems: r.nitems,
                elsize: r.elsize,
            })
            .collect()
    }
    /// Offset of ring `i`'s 20-byte header.
    pub fn ring_header_offset(&self, i: usize) -> Option<u64> {
        self.rings.get(i).map(|r| r.hdr)
    }

    /// Reads and validates the mq image at `offset`: ring count, queue and ring sizes, element
    /// sizes, and that everything lies inside `mem`.
    pub fn read<M: Memory>(mem: &M, offset: u64) -> Result<Self, MqError> {
        let corrupt = |field, value: u64| MqError::Corrupt {
            offset,
            field,
            value,
        };
        if !offset.is_multiple_of(8) {
            return Err(corrupt("offset alignment", offset));
        }
        let n_rings = mem.read_u32(offset + l::N_RINGS)?;
        if n_rings == 0 || n_rings > MAX_RINGS {
            return Err(corrupt("n_rings", n_rings as u64));
        }
        let q = offset + l::PREFIX_SIZE;
        let maxsize = mem.read_u32(q + l::MAXSIZE)?;
        if maxsize == 0 {
            return Err(corrupt("maxsize", 0));
        }
        let elsize = mem.read_u32(q + l::ELSIZE)?;
        if elsize as u64 != l::HANDLE_SIZE {
            return Err(corrupt("elsize", elsize as u64));
        }
        let mut g = MqGeometry {
            offset,
            queue_len: maxsize,
            rings: Vec::with_capacity(n_rings as usize),
        };
        mem.check(q, l::QUEUE_HEADER_SIZE + l::HANDLE_SIZE * maxsize as u64)?;
        let mut hdr = g.handle(maxsize);
        for i in 0..n_rings {
            if !hdr.is_multiple_of(4) {
                return Err(MqError::MisalignedRing {
                    ring: i,
                    offset: hdr,
                });
            }
            let nitems = mem.read_u32(hdr + l::RING_NITEMS)?;
            let elsize = mem.read_u32(hdr + l::RING_ELSIZE)?;
            if nitems == 0 {
                return Err(corrupt("ring nitems", 0));
            }
            if elsize == 0 {
                return Err(corrupt("ring elsize", 0));
            }
            let data = nitems as u64 * elsize as u64;
            mem.check(hdr, l::RING_HEADER_SIZE + data)?;
            g.rings.push(RingGeom {
                hdr,
                nitems,
                elsize,
            });
            hdr += l::RING_HEADER_SIZE + data;
        }
        Ok(g)
    }

    /// As [`MqGeometry::read`], and also checks the live head/tail/cursize indices against the
    /// geometry. Only for a queue nobody is using (inspection, tests): the indices are plain
    /// fields owned by the running producer and consumer, which validate their own at every
    /// use instead.
    pub fn read_quiescent<M: Memory>(mem: &M, offset: u64) -> Result<Self, MqError> {
        let g = Self::read(mem, offset)?;
        g.check_cursors(mem)?;
        Ok(g)
    }

    /// Checks the live indices against the geometry.
    pub(super) fn check_cursors<M: Memory>(&self, mem: &M) -> Result<(), MqError> {
        let q = self.q();
        for (field, off) in [("queue head", l::HEAD), ("queue tail", l::TAIL)] {
            let v = mem.read_u32(q + off)?;
            if v >= self.queue_len {
                return Err(self.corrupt(field, v as u64));
            }
        }
        let cur = mem.atomic_u32(q + l::CURSIZE)?.load(Ordering::Relaxed);
        if cur > self.queue_len {
            return Err(self.corrupt("queue cursize", cur as u64));
        }
        for r in &self.rings {
            for (field, off) in [("ring head", l::RING_HEAD), ("ring tail", l::RING_TAIL)] {
                let v = mem.read_u32(r.hdr + off)?;
                if v >= r.nitems {
                    return Err(self.corrupt(field, v as u64));
                }
            }
            let cur = mem
                .atomic_u32(r.hdr + l::RING_CURSIZE)?
                .load(Ordering::Relaxed);
            if cur > r.nitems {
                return Err(self.corrupt("ring cursize", cur as u64));
            }
        }
        Ok(())
    }

    pub(super) fn corrupt(&self, field: &'static str, value: u64) -> MqError {
        MqError::Corrupt {
            offset: self.offset,
            field,
            value,
        }
    }
}

/// Writes a fresh mq image for `spec` at `offset` (zeroed memory): header fields, ring
/// headers; not the pthread objects (see [`create`]).
pub fn init_image<M: Memory>(mem: &M, offset: u64, spec: &MqSpec) -> Result<MqGeometry, MqError> {
    if spec.queue_len == 0 || spec.rings.is_empty() || spec.rings.len() as u32 > MAX_RINGS {
        return Err(MqError::Corrupt {
            offset,
            field: "spec",
            value: spec.rings.len() as u64,
        });
    }
    mem.check(offset, spec.size_bytes())?;
    mem.write_u32(offset + l::N_RINGS, spec.rings.len() as u32)?;
    let q = offset + l::PREFIX_SIZE;
    mem.write_u32(q + l::HEAD, 0)?;
    mem.write_u32(q + l::TAIL, 0)?;
    mem.atomic_u32(q + l::CURSIZE)?.store(0, Ordering::Relaxed);
    mem.write_u32(q + l::MAXSIZE, spec.queue_len)?;
    mem.write_u32(q + l::ELSIZE, l::HANDLE_SIZE as u32)?;
    let mut hdr = q + l::QUEUE_HEADER_SIZE + l::HANDLE_SIZE * spec.queue_len as u64;
    for (i, r) in spec.rings.iter().enumerate() {
        if !hdr.is_multiple_of(4) {
            return Err(MqError::MisalignedRing {
                ring: i as u32,
                offset: hdr,
            });
        }
        mem.atomic_u32(hdr + l::RING_CURSIZE)?
            .store(0, Ordering::Relaxed);
        mem.write_u32(hdr + l::RING_NITEMS, r.nitems)?;
        mem.write_u32(hdr + l::RING_HEAD, 0)?;
        mem.write_u32(hdr + l::RING_TAIL, 0)?;
        mem.write_u32(hdr + l::RING_ELSIZE, r.elsize)?;
        hdr += l::RING_HEADER_SIZE + r.nitems as u64 * r.elsize as u64;
    }
    MqGeometry::read_quiescent(mem, offset)
}

/// Allocates an mq for `spec` in `seg` (growing `n_reserved_bytes`, as VPP does), writes its
/// image and initialises the process-shared robust mutex and the process-shared condvar.
/// Returns its offset from the fifo-segment header.
pub fn create(seg: &Segment, spec: &MqSpec) -> Result<u64, MqError> {
    let offset = FifoSegmentView::new(seg).alloc_reserved(spec.size_bytes())?;
    init_image(seg, offset, spec)?;
    PthreadSignal::init(seg, offset)?;
    Ok(offset)
}
