//! The two ends of a message queue the session client drives, written from `docs/shm.md` §4:
//!
//! * [`MqProducer`]: an app producing into a **server** mq of the VPP mqs segment, in the mode
//!   without eventfds — lock the process-shared robust pthread mutex that lives in the queue
//!   header (marking it consistent on `EOWNERDEAD`), check room in the queue and the ring,
//!   allocate the ring element at the ring's `tail`, write it, publish its handle at the queue's
//!   `tail`, add to `cursize` (release), broadcast the condvar when the queue was empty, unlock.
//! * [`MqConsumer`]: the app consuming its own **app** mq in eventfd mode — take handles from the
//!   queue's `head` in order, free each element at its ring's `head` (elements are freed in
//!   ring order), and write the eventfd when the queue or a ring was full before (the server
//!   may be waiting for room); wait by polling the eventfd, never by reading it in a blocking
//!   way.
//!
//! Layout (queue and ring lengths, element sizes, where ring data starts) comes from the suite's
//! own decoder, [`crate::shm::Segment::mq_at`], and is checked against the session-layer shape
//! (two rings, 18- and 256-byte elements) once; every index read back from shared memory is
//! checked against it before use.
//!
//! Must never: produce into an eventfd-mode mq (only the server may, `docs/sessions.md` §3.4),
//! hold the mutex across a wait, trust a handle or index the target wrote, or block without a
//! bound.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::mem::{MemError, Shm};
use crate::shm::{self, ShmError};

/// Offsets inside an mq, from the `svm_msg_q_shared_t` (`docs/shm.md` §4.1).
mod off {
    pub const QUEUE: u64 = 8;
    pub const MUTEX: u64 = 0;
    pub const MUTEX_LEN: u64 = 40;
    pub const CONDVAR: u64 = 40;
    pub const CONDVAR_LEN: u64 = 48;
    pub const HEAD: u64 = 88;
    pub const TAIL: u64 = 92;
    pub const CURSIZE: u64 = 96;
    pub const DATA: u64 = 112;
    pub const HANDLE_LEN: u64 = 8;
    pub const R_CURSIZE: u64 = 0;
    pub const R_HEAD: u64 = 8;
    pub const R_TAIL: u64 = 12;
    pub const RING_HEADER_LEN: u64 = 20;
}

/// Why an mq operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MqError {
    #[error("mq at {mq:#x}: {source}")]
    Mem { mq: u64, source: MemError },
    #[error("mq at {mq:#x}: {source}")]
    Layout { mq: u64, source: ShmError },
    #[error("mq at {mq:#x} is not a session-layer mq: {why}")]
    Shape { mq: u64, why: String },
    #[error("mq at {mq:#x}: {field} = {value} is out of range (limit {limit})")]
    Index {
        mq: u64,
        field: &'static str,
        value: u32,
        limit: u32,
    },
    #[error(
        "mq at {mq:#x}: the queue names element {elt} of ring {ring}, but elements are freed in order and the ring's head is {head}"
    )]
    OutOfOrder {
        mq: u64,
        ring: u32,
        elt: u32,
        head: u32,
    },
    #[error("mq at {mq:#x}: {len}-byte element for ring {ring} of {elsize}-byte elements")]
    TooLong {
        mq: u64,
        ring: usize,
        len: usize,
        elsize: u32,
    },
    #[error("mq at {mq:#x}: full (queue {cursize}/{maxsize}, ring {ring} {ring_cursize}/{nitems})")]
    Full {
        mq: u64,
        cursize: u32,
        maxsize: u32,
        ring: usize,
        ring_cursize: u32,
        nitems: u32,
    },
    #[error("mq at {mq:#x}: {op} returned {errno}")]
    Pthread {
        mq: u64,
        op: &'static str,
        errno: Errno,
    },
    #[error("{op} on the mq eventfd: {errno}")]
    Eventfd { op: &'static str, errno: Errno },
}

/// One ring of an mq: where its header and data are (fifo-segment-header relative).
#[derive(Clone, Copy, Debug)]
struct Ring {
    header: u64,
    data: u64,
    nitems: u32,
    elsize: u32,
}

/// The geometry of a session-layer mq, read once and checked.
#[derive(Clone, Debug)]
pub struct MqLayout {
    /// Offset of the mq from the fifo-segment header.
    pub offset: u64,
    pub maxsize: u32,
    rings: [Ring; 2],
}

impl MqLayout {
    /// Reads and checks the mq at `offset` of `shm`.
    pub fn read(shm: &Shm, offset: u64) -> Result<Self, MqError> {
        let img = shm
            .seg
            .mq_at(offset)
            .map_err(|source| MqError::Layout { mq: offset, source })?;
        let v = shm::mq_violations(&img, None, None);
        if !v.is_empty() || img.queue.maxsize == 0 {
            return Err(MqError::Shape {
                mq: offset,
                why: if v.is_empty() {
                    "queue maxsize 0".into()
                } else {
                    v.join("; ")
                },
            });
        }
        let ring = |i: usize| Ring {
            header: img.rings[i].data_offset - off::RING_HEADER_LEN,
            data: img.rings[i].data_offset,
            nitems: img.rings[i].nitems,
            elsize: img.rings[i].elsize,
        };
        Ok(MqLayout {
            offset,
            maxsize: img.queue.maxsize,
            rings: [ring(0), ring(1)],
        })
    }

    fn q(&self, field: u64) -> u64 {
        self.offset + off::QUEUE + field
    }
}

fn mem(mq: u64) -> impl Fn(MemError) -> MqError {
    move |source| MqError::Mem { mq, source }
}

/// An app's producing end of a server mq (mutex and condvar mode).
#[derive(Debug, Clone)]
pub struct MqProducer {
    shm: Arc<Shm>,
    pub layout: MqLayout,
}

/// Unlocks the mq mutex when dropped.
struct Locked(*mut libc::pthread_mutex_t);

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: the mutex was locked by this thread in `MqProducer::lock`.
        unsafe { libc::pthread_mutex_unlock(self.0) };
    }
}

impl MqProducer {
    pub fn new(shm: Arc<Shm>, offset: u64) -> Result<Self, MqError> {
        let layout = MqLayout::read(&shm, offset)?;
        Ok(MqProducer { shm, layout })
    }

    fn lock(&self) -> Result<Locked, MqError> {
        let mq = self.layout.offset;
        let m = self
            .shm
            .object(
                self.layout.q(off::MUTEX),
                off::MUTEX_LEN,
                8,
                "mq.queue.mutex",
            )
            .map_err(mem(mq))?
            .cast::<libc::pthread_mutex_t>();
        // SAFETY: a glibc pthread_mutex_t the server set up process-shared and robust
        // (`docs/shm.md` §4.1), in bounds and aligned (checked by `object`).
        let rc = unsafe { libc::pthread_mutex_lock(m) };
        match rc {
            0 => Ok(Locked(m)),
            libc::EOWNERDEAD => {
                // The previous holder died with it: the queue state it protects is the queue's
                // own (cursize and indices are updated in an order that leaves it usable).
                // SAFETY: we own the lock now (EOWNERDEAD means acquired).
                let rc = unsafe { libc::pthread_mutex_consistent(m) };
                let held = Locked(m);
                if rc != 0 {
                    return Err(MqError::Pthread {
                        mq,
                        op: "pthread_mutex_consistent",
                        errno: Errno::from_raw(rc),
                    });
                }
                Ok(held)
            }
            rc => Err(MqError::Pthread {
                mq,
                op: "pthread_mutex_lock",
                errno: Errno::from_raw(rc),
            }),
        }
    }

    /// Enqueues `element` into ring `ring` (0: io events, 1: control messages), or fails with
    /// [`MqError::Full`] without waiting.
    pub fn try_send(&self, ring: usize, element: &[u8]) -> Result<(), MqError> {
        let mq = self.layout.offset;
        let r = self.layout.rings[ring.min(1)];
        if element.len() > r.elsize as usize {
            return Err(MqError::TooLong {
                mq,
                ring,
                len: element.len(),
                elsize: r.elsize,
            });
        }
        let s = &*self.shm;
        let e = mem(mq);
        let _held = self.lock()?;
        let qcur = s
            .atomic_u32(self.layout.q(off::CURSIZE), "mq.queue.cursize")
            .map_err(&e)?;
        let rcur = s
            .atomic_u32(r.header + off::R_CURSIZE, "mq.ring.cursize")
            .map_err(&e)?;
        let (cursize, ring_cursize) = (qcur.load(Ordering::Acquire), rcur.load(Ordering::Acquire));
        if cursize >= self.layout.maxsize || ring_cursize >= r.nitems {
            return Err(MqError::Full {
                mq,
                cursize,
                maxsize: self.layout.maxsize,
                ring,
                ring_cursize,
                nitems: r.nitems,
            });
        }
        // Allocate the ring element at the ring's tail.
        let rtail = s
            .atomic_u32(r.header + off::R_TAIL, "mq.ring.tail")
            .map_err(&e)?;
        let elt = rtail.load(Ordering::Relaxed);
        if elt >= r.nitems {
            return Err(MqError::Index {
                mq,
                field: "ring.tail",
                value: elt,
                limit: r.nitems,
            });
        }
        rtail.store((elt + 1) % r.nitems, Ordering::Relaxed);
        rcur.fetch_add(1, Ordering::Release);
        let mut full = vec![0u8; r.elsize as usize];
        full[..element.len()].copy_from_slice(element);
        s.write(
            r.data + u64::from(elt) * u64::from(r.elsize),
            &full,
            "mq.ring element",
        )
        .map_err(&e)?;
        // Publish the handle at the queue's tail.
        let qtail = s
            .atomic_u32(self.layout.q(off::TAIL), "mq.queue.tail")
            .map_err(&e)?;
        let slot = qtail.load(Ordering::Relaxed);
        if slot >= self.layout.maxsize {
            return Err(MqError::Index {
                mq,
                field: "queue.tail",
                value: slot,
                limit: self.layout.maxsize,
            });
        }
        let mut handle = [0u8; 8];
        handle[..4].copy_from_slice(&(ring as u32).to_le_bytes());
        handle[4..].copy_from_slice(&elt.to_le_bytes());
        s.write(
            self.layout.q(off::DATA) + u64::from(slot) * off::HANDLE_LEN,
            &handle,
            "mq.queue.data",
        )
        .map_err(&e)?;
        qtail.store((slot + 1) % self.layout.maxsize, Ordering::Relaxed);
        let old = qcur.fetch_add(1, Ordering::Release);
        if old == 0 {
            let cv = s
                .object(
                    self.layout.q(off::CONDVAR),
                    off::CONDVAR_LEN,
                    8,
                    "mq.queue.condvar",
                )
                .map_err(&e)?
                .cast::<libc::pthread_cond_t>();
            // SAFETY: a process-shared glibc condvar in bounds and aligned; we hold its mutex.
            let rc = unsafe { libc::pthread_cond_broadcast(cv) };
            if rc != 0 {
                return Err(MqError::Pthread {
                    mq,
                    op: "pthread_cond_broadcast",
                    errno: Errno::from_raw(rc),
                });
            }
        }
        Ok(())
    }
}

/// One element taken from an mq: its ring and a copy of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    pub ring: u32,
    pub bytes: Vec<u8>,
}

/// The app's consuming end of its own app mq, in eventfd mode.
#[derive(Debug)]
pub struct MqConsumer {
    shm: Arc<Shm>,
    pub layout: MqLayout,
    eventfd: OwnedFd,
}

impl MqConsumer {
    /// The consumer of the mq at `offset`, signalled through `eventfd` (made non-blocking, as
    /// VCL makes it).
    pub fn new(shm: Arc<Shm>, offset: u64, eventfd: OwnedFd) -> Result<Self, MqError> {
        let layout = MqLayout::read(&shm, offset)?;
        let fl = nix::fcntl::fcntl(&eventfd, nix::fcntl::FcntlArg::F_GETFL).map_err(|errno| {
            MqError::Eventfd {
                op: "fcntl(F_GETFL)",
                errno,
            }
        })?;
        let fl = nix::fcntl::OFlag::from_bits_retain(fl) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&eventfd, nix::fcntl::FcntlArg::F_SETFL(fl)).map_err(|errno| {
            MqError::Eventfd {
                op: "fcntl(F_SETFL)",
                errno,
            }
        })?;
        Ok(MqConsumer {
            shm,
            layout,
            eventfd,
        })
    }

    pub fn eventfd(&self) -> &OwnedFd {
        &self.eventfd
    }

    /// Messages queued right now.
    pub fn queued(&self) -> Result<u32, MqError> {
        let mq = self.layout.offset;
        Ok(self
            .shm
            .atomic_u32(self.layout.q(off::CURSIZE), "mq.queue.cursize")
            .map_err(mem(mq))?
            .load(Ordering::Acquire))
    }

    fn signal(&self) -> Result<(), MqError> {
        match nix::unistd::write(&self.eventfd, &1u64.to_ne_bytes()) {
            // EAGAIN: the counter is saturated, so the peer is signalled already.
            Ok(_) | Err(Errno::EAGAIN) => Ok(()),
            Err(errno) => Err(MqError::Eventfd { op: "write", errno }),
        }
    }

    /// Takes the next element, if one is queued, and frees it.
    pub fn try_recv(&self) -> Result<Option<Element>, MqError> {
        let mq = self.layout.offset;
        let s = &*self.shm;
        let e = mem(mq);
        let qcur = s
            .atomic_u32(self.layout.q(off::CURSIZE), "mq.queue.cursize")
            .map_err(&e)?;
        let n = qcur.load(Ordering::Acquire);
        if n == 0 {
            return Ok(None);
        }
        if n > self.layout.maxsize {
            return Err(MqError::Index {
                mq,
                field: "queue.cursize",
                value: n,
                limit: self.layout.maxsize,
            });
        }
        let qhead = s
            .atomic_u32(self.layout.q(off::HEAD), "mq.queue.head")
            .map_err(&e)?;
        let slot = qhead.load(Ordering::Relaxed);
        if slot >= self.layout.maxsize {
            return Err(MqError::Index {
                mq,
                field: "queue.head",
                value: slot,
                limit: self.layout.maxsize,
            });
        }
        let mut h = [0u8; 8];
        s.read(
            self.layout.q(off::DATA) + u64::from(slot) * off::HANDLE_LEN,
            &mut h,
            "mq.queue.data",
        )
        .map_err(&e)?;
        let ring = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let elt = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        qhead.store((slot + 1) % self.layout.maxsize, Ordering::Relaxed);
        if qcur.fetch_sub(1, Ordering::AcqRel) == self.layout.maxsize {
            self.signal()?;
        }
        let r = *self.layout.rings.get(ring as usize).ok_or(MqError::Index {
            mq,
            field: "msg.ring_index",
            value: ring,
            limit: 2,
        })?;
        if elt >= r.nitems {
            return Err(MqError::Index {
                mq,
                field: "msg.elt_index",
                value: elt,
                limit: r.nitems,
            });
        }
        let rhead = s
            .atomic_u32(r.header + off::R_HEAD, "mq.ring.head")
            .map_err(&e)?;
        let head = rhead.load(Ordering::Relaxed);
        if head != elt {
            return Err(MqError::OutOfOrder {
                mq,
                ring,
                elt,
                head,
            });
        }
        let mut bytes = vec![0u8; r.elsize as usize];
        s.read(
            r.data + u64::from(elt) * u64::from(r.elsize),
            &mut bytes,
            "mq.ring element",
        )
        .map_err(&e)?;
        // Free it: elements go back in ring order.
        rhead.store((elt + 1) % r.nitems, Ordering::Relaxed);
        let rcur = s
            .atomic_u32(r.header + off::R_CURSIZE, "mq.ring.cursize")
            .map_err(&e)?;
        if rcur.fetch_sub(1, Ordering::AcqRel) == r.nitems {
            self.signal()?;
        }
        Ok(Some(Element { ring, bytes }))
    }

    /// Waits until an element is queued or `within` passes: true when one is queued. The
    /// eventfd is drained before the queue is looked at, so a publish after the look (into an
    /// empty queue, which the producer must signal) wakes the poll.
    pub fn wait(&self, within: Duration) -> Result<bool, MqError> {
        let deadline = Instant::now() + within;
        loop {
            let mut buf = [0u8; 8];
            match nix::unistd::read(&self.eventfd, &mut buf) {
                Ok(_) | Err(Errno::EAGAIN) => {}
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(MqError::Eventfd { op: "read", errno }),
            }
            if self.queued()? > 0 {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            match crate::client::wait_readable(self.eventfd.as_fd(), left) {
                Ok(_) => {}
                Err(crate::client::ClientError::Sys { errno, .. }) => {
                    return Err(MqError::Eventfd { op: "poll", errno });
                }
                Err(_) => {
                    return Err(MqError::Eventfd {
                        op: "poll",
                        errno: Errno::EIO,
                    });
                }
            }
        }
    }
}
