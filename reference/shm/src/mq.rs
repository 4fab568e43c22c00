//! The shared-memory message queue `svm_msg_q` (shm spec §4): a queue of 8-byte handles plus
//! rings holding the message bodies, placed in a segment.
//!
//! Owns: the mq memory image (8-byte prefix, 112-byte queue header with a process-shared
//! robust mutex and condvar, handle array, 20-byte ring headers back to back), its validation
//! when attaching, the producer and consumer algorithms of §4.2, and both signalling modes
//! behind [`Signal`]: an eventfd ([`EventFdSignal`]) or the shared mutex/condvar
//! ([`PthreadSignal`]); [`ModelEventFd`] and [`ModelCondvar`] are in-process stand-ins built
//! from [`super::sync`] primitives, which is how the `loom` models see the signalling.
//!
//! Producer and consumer are separate handle types taking `&mut self`: within a process the
//! type system serialises each side. Across processes, eventfd mode trusts that only one
//! process produces (as VPP does); mutex mode excludes producers with the shared mutex.
//!
//! Must never: index a ring or the handle array with a value read from the segment without
//! checking it against the geometry validated at attach time — a corrupt or hostile peer
//! gets a typed [`MqError`], never an out-of-bounds access.

use std::cell::OnceCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::alloc::FifoSegmentView;
use super::layout::mq as l;
use super::memory::{Memory, OutOfBounds};
use super::segment::{Segment, SegmentError};
use super::sync::{self, Atomic, Ordering};

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

    fn two_rings(q: u32, n0: u32, n1: u32) -> Self {
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
    fn to_bytes(self) -> [u8; 8] {
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&self.ring.to_le_bytes());
        h[4..].copy_from_slice(&self.elt.to_le_bytes());
        h
    }

    fn from_bytes(h: [u8; 8]) -> Self {
        Self {
            ring: u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
            elt: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        }
    }
}

/// `i + 1` modulo `n`, for indices already checked to be below `n`.
fn next_index(i: u32, n: u32) -> u32 {
    if i + 1 == n { 0 } else { i + 1 }
}

#[derive(Debug, Clone, Copy)]
struct RingGeom {
    hdr: u64,
    nitems: u32,
    elsize: u32,
}

impl RingGeom {
    fn data(&self, elt: u32) -> u64 {
        self.hdr + l::RING_HEADER_SIZE + elt as u64 * self.elsize as u64
    }
}

/// The validated geometry of an mq image (private copies; never re-read from the segment).
#[derive(Debug, Clone)]
pub struct MqGeometry {
    offset: u64,
    queue_len: u32,
    rings: Vec<RingGeom>,
}

impl MqGeometry {
    fn q(&self) -> u64 {
        self.offset + l::PREFIX_SIZE
    }
    fn handle(&self, slot: u32) -> u64 {
        self.q() + l::QUEUE_HEADER_SIZE + l::HANDLE_SIZE * slot as u64
    }
    /// Offset of the mq (of its 8-byte prefix) from the fifo-segment header.
    /// The ring `msg` names, with `msg.elt` checked against it: what every use of a handle read
    /// from the segment goes through.
    fn ring_of(&self, msg: MsgHandle) -> Result<RingGeom, MqError> {
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
    fn check_cursors<M: Memory>(&self, mem: &M) -> Result<(), MqError> {
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

    fn corrupt(&self, field: &'static str, value: u64) -> MqError {
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

/// How the two sides of an mq lock and wake each other (§4.2 "Signal").
pub trait Signal {
    /// Held by a producer for the whole enqueue.
    type Guard<'g>
    where
        Self: 'g;
    /// Takes the producer lock; `Ok(None)` if `block` is false and it is taken.
    fn lock(&self, block: bool) -> Result<Option<Self::Guard<'_>>, MqError>;
    /// Producer, holding the lock: the queue went from empty to non-empty.
    fn notify_from_producer<'g>(&'g self, guard: &mut Self::Guard<'g>) -> Result<(), MqError>;
    /// Producer, holding the lock: wait until `ready()` or `deadline`; true if ready.
    fn wait_in_producer<'g>(
        &'g self,
        guard: &mut Self::Guard<'g>,
        ready: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, MqError>;
    /// Consumer: the queue or a ring went from full to not full.
    fn notify_from_consumer(&self) -> Result<(), MqError>;
    /// Consumer: wait until `ready()` or `deadline`; true if ready.
    fn wait_in_consumer(
        &self,
        ready: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, MqError>;
}

impl<S: Signal> Signal for &S {
    type Guard<'g>
        = S::Guard<'g>
    where
        Self: 'g;
    fn lock(&self, block: bool) -> Result<Option<Self::Guard<'_>>, MqError> {
        (**self).lock(block)
    }
    fn notify_from_producer<'g>(&'g self, guard: &mut Self::Guard<'g>) -> Result<(), MqError> {
        (**self).notify_from_producer(guard)
    }
    fn wait_in_producer<'g>(
        &'g self,
        guard: &mut Self::Guard<'g>,
        ready: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        (**self).wait_in_producer(guard, ready, deadline)
    }
    fn notify_from_consumer(&self) -> Result<(), MqError> {
        (**self).notify_from_consumer()
    }
    fn wait_in_consumer(
        &self,
        ready: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        (**self).wait_in_consumer(ready, deadline)
    }
}

/// Eventfd mode: both directions write `1` to one eventfd (VPP's design: one eventfd per mq
/// since 2021-01-22); a waiter sleeps in an **edge-triggered** epoll instance of its own on that
/// eventfd and never reads the counter.
///
/// Why edges and not VPP's `read` loop: a waiter that consumes the counter can absorb a wake-up
/// meant for the other side (a producer waiting for room and a consumer waiting for data share
/// one eventfd), so token-reading waits need a periodic re-check to recover, and a timed `poll`
/// then `read` costs two system calls per wake-up plus a timer (measured: 6.5 µs round trip with a
/// 1 ms re-check against 1.7 µs for a blocking `read` ping-pong). With `EPOLLET` every post
/// wakes every side's instance once, nothing is consumed, so nothing can be stolen, and a
/// wake-up is one `epoll_wait` (1.85 µs round trip). The counter only grows; a post that finds
/// it saturated (only a hostile peer can make it so) drains it and posts again, so the edge
/// still happens. Works on blocking and non-blocking eventfds alike (the reference server
/// makes them non-blocking so a saturated counter can never block its writes; VPP makes them
/// blocking).
///
/// One `EventFdSignal` per waiting side: two threads waiting on one instance would share its
/// edges (it is `!Sync`, so they cannot).
#[derive(Debug)]
pub struct EventFdSignal<'fd> {
    fd: BorrowedFd<'fd>,
    /// The edge-triggered epoll instance on `fd`, made by the first wait (producers that never
    /// wait never make one). Registering while the counter is non-zero reports an edge at
    /// once: a spurious wake-up, never a lost one.
    waiter: OnceCell<OwnedFd>,
}

impl<'fd> EventFdSignal<'fd> {
    /// Signals through `fd`.
    pub fn new(fd: BorrowedFd<'fd>) -> Self {
        Self {
            fd,
            waiter: OnceCell::new(),
        }
    }

    fn write_one(&self) -> nix::Result<()> {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to a valid fd.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), 8) };
        if n == 8 {
            Ok(())
        } else {
            Err(nix::errno::Errno::last())
        }
    }

    fn post(&self) -> Result<(), MqError> {
        use nix::errno::Errno;
        match self.write_one() {
            Ok(()) => Ok(()),
            Err(Errno::EAGAIN) => {
                // Saturated counter: drain it (edge waiters never read it, token readers get
                // the 1 posted next) and post again so the edge happens. If a hostile peer
                // saturates it again in between, its own write was the edge.
                let mut buf = [0u8; 8];
                // SAFETY: reads 8 bytes into a live buffer; the counter is non-zero, so even
                // a blocking eventfd returns at once.
                unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
                match self.write_one() {
                    Ok(()) | Err(Errno::EAGAIN) => Ok(()),
                    Err(err) => Err(MqError::Sys {
                        op: "write(eventfd)",
                        err,
                    }),
                }
            }
            Err(err) => Err(MqError::Sys {
                op: "write(eventfd)",
                err,
            }),
        }
    }

    fn epoll(&self) -> Result<BorrowedFd<'_>, MqError> {
        if let Some(ep) = self.waiter.get() {
            return Ok(ep.as_fd());
        }
        let last_error = |op| MqError::Sys {
            op,
            err: nix::errno::Errno::last(),
        };
        // SAFETY: plain syscall; the fd is owned right below.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(last_error("epoll_create1"));
        }
        // SAFETY: a fresh fd nobody else owns.
        let ep = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: 0,
        };
        // SAFETY: both fds are valid; `ev` is live for the call.
        let rc = unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                self.fd.as_raw_fd(),
                &mut ev,
            )
        };
        if rc < 0 {
            return Err(last_error("epoll_ctl(eventfd)"));
        }
        Ok(self.waiter.get_or_init(|| ep).as_fd())
    }

    fn wait(
        &self,
        ready: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        loop {
            if ready() {
                return Ok(true);
            }
            let ms = match deadline {
                None => -1,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    // Rounded up: waking before the deadline would only spin.
                    let us = (d - now).as_micros();
                    us.div_ceil(1000).min(i32::MAX as u128) as i32
                }
            };
            let ep = self.epoll()?;
            let mut ev = libc::epoll_event { events: 0, u64: 0 };
            // SAFETY: a valid epoll fd and room for one event.
            let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), &mut ev, 1, ms) };
            if n < 0 {
                let err = nix::errno::Errno::last();
                if err != nix::errno::Errno::EINTR {
                    return Err(MqError::Sys {
                        op: "epoll_wait",
                        err,
                    });
                }
            }
        }
    }
}

impl Signal for EventFdSignal<'_> {
    type Guard<'g>
        = ()
    where
        Self: 'g;
    fn lock(&self, _block: bool) -> Result<Option<()>, MqError> {
        // Producers of one process are serialised by `&mut MqProducer`; eventfd mode has no
        // cross-process producer lock (VPP uses a process-private spin lock).
        Ok(Some(()))
    }
    fn notify_from_producer(&self, _g: &mut ()) -> Result<(), MqError> {
        self.post()
    }
    fn wait_in_producer(
        &self,
        _g: &mut (),
        ready: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        self.wait(ready, deadline)
    }
    fn notify_from_consumer(&self) -> Result<(), MqError> {
        self.post()
    }
    fn wait_in_consumer(
        &self,
        ready: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        self.wait(ready, deadline)
    }
}

/// Mutex/condvar mode: the process-shared robust `pthread_mutex_t` and `pthread_cond_t` in the
/// queue header. Producers hold the mutex for the whole enqueue; signals broadcast.
#[derive(Debug)]
pub struct PthreadSignal<'s> {
    mutex: *mut libc::pthread_mutex_t,
    cond: *mut libc::pthread_cond_t,
    _seg: std::marker::PhantomData<&'s Segment>,
}

// SAFETY: the pointers target process-shared pthread objects in a mapping that outlives 's;
// pthread functions are thread-safe.
unsafe impl Send for PthreadSignal<'_> {}
// SAFETY: as above.
unsafe impl Sync for PthreadSignal<'_> {}

/// Unlocks the shared mutex on drop.
#[derive(Debug)]
pub struct PthreadGuard {
    mutex: *mut libc::pthread_mutex_t,
}

impl Drop for PthreadGuard {
    fn drop(&mut self) {
        // SAFETY: we hold the mutex (taken in `lock_raw`).
        unsafe { libc::pthread_mutex_unlock(self.mutex) };
    }
}

fn check(op: &'static str, rc: i32) -> Result<(), MqError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(MqError::Sys {
            op,
            err: nix::errno::Errno::from_raw(rc),
        })
    }
}

impl<'s> PthreadSignal<'s> {
    /// The mutex and condvar of the mq at `mq_offset` in `seg`.
    pub fn new(seg: &'s Segment, mq_offset: u64) -> Result<Self, MqError> {
        let q = mq_offset + l::PREFIX_SIZE;
        Ok(Self {
            mutex: seg.ptr_at(q + l::MUTEX)?,
            cond: seg.ptr_at(q + l::CONDVAR)?,
            _seg: std::marker::PhantomData,
        })
    }

    /// Initialises the mutex (process-shared, robust) and condvar (process-shared) of the mq
    /// at `mq_offset`, as VPP's `svm_msg_q_init` does.
    pub fn init(seg: &Segment, mq_offset: u64) -> Result<(), MqError> {
        let s = PthreadSignal::new(seg, mq_offset)?;
        // SAFETY: attribute objects live on the stack for the duration; the targets are
        // properly aligned, in-bounds, and not yet in use by anyone.
        unsafe {
            let mut ma: libc::pthread_mutexattr_t = std::mem::zeroed();
            check(
                "pthread_mutexattr_init",
                libc::pthread_mutexattr_init(&mut ma),
            )?;
            let r = check(
                "pthread_mutexattr_setpshared",
                libc::pthread_mutexattr_setpshared(&mut ma, libc::PTHREAD_PROCESS_SHARED),
            )
            .and_then(|_| {
                check(
                    "pthread_mutexattr_setrobust",
                    libc::pthread_mutexattr_setrobust(&mut ma, libc::PTHREAD_MUTEX_ROBUST),
                )
            })
            .and_then(|_| check("pthread_mutex_init", libc::pthread_mutex_init(s.mutex, &ma)));
            libc::pthread_mutexattr_destroy(&mut ma);
            r?;
            let mut ca: libc::pthread_condattr_t = std::mem::zeroed();
            check(
                "pthread_condattr_init",
                libc::pthread_condattr_init(&mut ca),
            )?;
            let r = check(
                "pthread_condattr_setpshared",
                libc::pthread_condattr_setpshared(&mut ca, libc::PTHREAD_PROCESS_SHARED),
            )
            .and_then(|_| check("pthread_cond_init", libc::pthread_cond_init(s.cond, &ca)));
            libc::pthread_condattr_destroy(&mut ca);
            r
        }
    }

    fn lock_raw(&self, block: bool) -> Result<Option<PthreadGuard>, MqError> {
        // SAFETY: valid process-shared mutex.
        let rc = unsafe {
            if block {
                libc::pthread_mutex_lock(self.mutex)
            } else {
                libc::pthread_mutex_trylock(self.mutex)
            }
        };
        match rc {
            0 => Ok(Some(PthreadGuard { mutex: self.mutex })),
            libc::EBUSY if !block => Ok(None),
            libc::EOWNERDEAD => {
                // The previous owner died holding it; the mq state it protects is
                // single-field updates, so mark it consistent and carry on (as VPP does).
                // SAFETY: we own the mutex now.
                check("pthread_mutex_consistent", unsafe {
                    libc::pthread_mutex_consistent(self.mutex)
                })?;
                Ok(Some(PthreadGuard { mutex: self.mutex }))
            }
            rc => check("pthread_mutex_lock", rc).map(|_| None),
        }
    }

    fn wait_locked(
        &self,
        ready: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        loop {
            if ready() {
                return Ok(true);
            }
            let rc = match deadline {
                None => {
                    // SAFETY: we hold the mutex.
                    unsafe { libc::pthread_cond_wait(self.cond, self.mutex) }
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    // The condvar uses CLOCK_REALTIME (VPP's default attributes).
                    let abs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        + (d - now);
                    let ts = libc::timespec {
                        tv_sec: abs.as_secs() as libc::time_t,
                        tv_nsec: abs.subsec_nanos() as libc::c_long,
                    };
                    // SAFETY: we hold the mutex; valid timespec.
                    unsafe { libc::pthread_cond_timedwait(self.cond, self.mutex, &ts) }
                }
            };
            match rc {
                0 | libc::ETIMEDOUT => {}
                libc::EOWNERDEAD => {
                    // SAFETY: we own the mutex again.
                    check("pthread_mutex_consistent", unsafe {
                        libc::pthread_mutex_consistent(self.mutex)
                    })?;
                }
                rc => check("pthread_cond_wait", rc)?,
            }
        }
    }
}

impl Signal for PthreadSignal<'_> {
    type Guard<'g>
        = PthreadGuard
    where
        Self: 'g;
    fn lock(&self, block: bool) -> Result<Option<PthreadGuard>, MqError> {
        self.lock_raw(block)
    }
    fn notify_from_producer(&self, _g: &mut PthreadGuard) -> Result<(), MqError> {
        // SAFETY: valid condvar; the mutex is held by the guard.
        check("pthread_cond_broadcast", unsafe {
            libc::pthread_cond_broadcast(self.cond)
        })
    }
    fn wait_in_producer(
        &self,
        _g: &mut PthreadGuard,
        ready: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        self.wait_locked(ready, deadline)
    }
    fn notify_from_consumer(&self) -> Result<(), MqError> {
        let _g = self.lock_raw(true)?;
        // SAFETY: valid condvar.
        check("pthread_cond_broadcast", unsafe {
            libc::pthread_cond_broadcast(self.cond)
        })
    }
    fn wait_in_consumer(
        &self,
        ready: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        let _g = self.lock_raw(true)?;
        self.wait_locked(ready, deadline)
    }
}

/// An in-process eventfd as [`EventFdSignal`] uses it: every post raises a pending edge for
/// each side (the producer's and the consumer's epoll instances); a wait sleeps until its own
/// side's edge and clears only that one. Built from [`super::sync`] (so `loom` explores it).
/// Deadlines are ignored: a wait that can never be satisfied is a deadlock the model checker
/// reports.
#[derive(Debug, Default)]
pub struct ModelEventFd {
    /// Pending edges: `[producer side, consumer side]`.
    edges: sync::Mutex<[bool; 2]>,
    cv: sync::Condvar,
}

impl ModelEventFd {
    const PRODUCER: usize = 0;
    const CONSUMER: usize = 1;

    /// No edge pending.
    pub fn new() -> Self {
        Self {
            edges: sync::Mutex::new([false; 2]),
            cv: sync::Condvar::new(),
        }
    }
    fn post(&self) {
        let mut e = self.edges.lock().unwrap_or_else(|e| e.into_inner());
        *e = [true; 2];
        self.cv.notify_all();
    }
    fn wait(&self, side: usize, ready: &mut dyn FnMut() -> bool) {
        loop {
            if ready() {
                return;
            }
            let mut e = self.edges.lock().unwrap_or_else(|e| e.into_inner());
            while !e[side] {
                e = self.cv.wait(e).unwrap_or_else(|e| e.into_inner());
            }
            e[side] = false;
        }
    }
}

impl Signal for ModelEventFd {
    type Guard<'g>
        = ()
    where
        Self: 'g;
    fn lock(&self, _block: bool) -> Result<Option<()>, MqError> {
        Ok(Some(()))
    }
    fn notify_from_producer(&self, _g: &mut ()) -> Result<(), MqError> {
        self.post();
        Ok(())
    }
    fn wait_in_producer(
        &self,
        _g: &mut (),
        ready: &mut dyn FnMut() -> bool,
        _deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        self.wait(Self::PRODUCER, ready);
        Ok(true)
    }
    fn notify_from_consumer(&self) -> Result<(), MqError> {
        self.post();
        Ok(())
    }
    fn wait_in_consumer(
        &self,
        ready: &mut dyn FnMut() -> bool,
        _deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        self.wait(Self::CONSUMER, ready);
        Ok(true)
    }
}

/// An in-process mutex + condvar pair from [`super::sync`], standing in for the shared
/// pthread objects. Deadlines are ignored (see [`ModelEventFd`]).
#[derive(Debug, Default)]
pub struct ModelCondvar {
    mutex: sync::Mutex<()>,
    cv: sync::Condvar,
}

impl ModelCondvar {
    /// A fresh pair.
    pub fn new() -> Self {
        Self {
            mutex: sync::Mutex::new(()),
            cv: sync::Condvar::new(),
        }
    }
}

impl Signal for ModelCondvar {
    type Guard<'g>
        = Option<sync::MutexGuard<'g, ()>>
    where
        Self: 'g;
    fn lock(&self, _block: bool) -> Result<Option<Self::Guard<'_>>, MqError> {
        Ok(Some(Some(
            self.mutex.lock().unwrap_or_else(|e| e.into_inner()),
        )))
    }
    fn notify_from_producer<'g>(&'g self, _g: &mut Self::Guard<'g>) -> Result<(), MqError> {
        self.cv.notify_all();
        Ok(())
    }
    fn wait_in_producer<'g>(
        &'g self,
        g: &mut Self::Guard<'g>,
        ready: &mut dyn FnMut() -> bool,
        _deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        while !ready() {
            if let Some(held) = g.take() {
                *g = Some(self.cv.wait(held).unwrap_or_else(|e| e.into_inner()));
            }
        }
        Ok(true)
    }
    fn notify_from_consumer(&self) -> Result<(), MqError> {
        let _g = self.mutex.lock().unwrap_or_else(|e| e.into_inner());
        self.cv.notify_all();
        Ok(())
    }
    fn wait_in_consumer(
        &self,
        ready: &mut dyn FnMut() -> bool,
        _deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        let mut g = self.mutex.lock().unwrap_or_else(|e| e.into_inner());
        while !ready() {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        Ok(true)
    }
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

/// The producing side of an mq.
#[derive(Debug)]
pub struct MqProducer<'m, M: Memory, S: Signal> {
    mem: &'m M,
    g: MqGeometry,
    signal: S,
}

impl<'m, M: Memory, S: Signal> MqProducer<'m, M, S> {
    /// Attaches to the mq at `offset` in `mem`, validating its image.
    pub fn attach(mem: &'m M, offset: u64, signal: S) -> Result<Self, MqError> {
        Ok(Self {
            mem,
            g: MqGeometry::read(mem, offset)?,
            signal,
        })
    }

    /// The validated geometry.
    pub fn geometry(&self) -> &MqGeometry {
        &self.g
    }

    /// The signalling in use.
    pub fn signal(&self) -> &S {
        &self.signal
    }

    /// Number of queued handles.
    pub fn len(&self) -> Result<u32, MqError> {
        Ok(self
            .mem
            .atomic_u32(self.g.q() + l::CURSIZE)?
            .load(Ordering::Acquire))
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> Result<bool, MqError> {
        Ok(self.len()? == 0)
    }

    fn pick_ring(&self, len: usize) -> Result<Option<(usize, u32)>, MqError> {
        let mut fits = false;
        for (i, r) in self.g.rings.iter().enumerate() {
            if (r.elsize as usize) < len {
                continue;
            }
            fits = true;
            // Acquire pairs with the consumer's release when freeing: its reads of the element
            // we are about to overwrite happened before.
            let cur = self
                .mem
                .atomic_u32(r.hdr + l::RING_CURSIZE)?
                .load(Ordering::Acquire);
            if cur < r.nitems {
                return Ok(Some((i, r.nitems - cur)));
            }
        }
        if !fits {
            let max = self.g.rings.iter().map(|r| r.elsize).max().unwrap_or(0);
            return Err(MqError::TooLarge { len, max });
        }
        Ok(None)
    }

    fn queue_full(&self) -> Result<bool, MqError> {
        // Acquire pairs with the consumer's release decrement: it has read the handle slot
        // we will overwrite.
        let cur = self
            .mem
            .atomic_u32(self.g.q() + l::CURSIZE)?
            .load(Ordering::Acquire);
        Ok(cur >= self.g.queue_len)
    }

    fn enqueue_locked<'g>(
        &'g self,
        ring: usize,
        data: &[u8],
        guard: &mut S::Guard<'g>,
    ) -> Result<(), MqError> {
        let r = self.g.rings[ring];
        let mem = self.mem;
        // Allocate the element (§4.2 step 3).
        let elt = mem.read_u32(r.hdr + l::RING_TAIL)?;
        if elt >= r.nitems {
            return Err(self.g.corrupt("ring tail", elt as u64));
        }
        mem.write_u32(r.hdr + l::RING_TAIL, next_index(elt, r.nitems))?;
        mem.atomic_u32(r.hdr + l::RING_CURSIZE)?
            .fetch_add(1, Ordering::Release);
        // Fill it (step 4).
        mem.write(r.data(elt), data)?;
        // Publish the handle (step 5).
        let q = self.g.q();
        let tail = mem.read_u32(q + l::TAIL)?;
        if tail >= self.g.queue_len {
            return Err(self.g.corrupt("queue tail", tail as u64));
        }
        let h = MsgHandle {
            ring: ring as u32,
            elt,
        };
        mem.write(self.g.handle(tail), &h.to_bytes())?;
        mem.write_u32(q + l::TAIL, next_index(tail, self.g.queue_len))?;
        // Release: the element and handle bytes above are visible to a consumer that
        // acquires `cursize`.
        let old = mem
            .atomic_u32(q + l::CURSIZE)?
            .fetch_add(1, Ordering::Release);
        if old == 0 {
            self.signal.notify_from_producer(guard)?;
        }
        Ok(())
    }

    /// Enqueues `data` into the first ring whose elements are large enough and not full,
    /// without blocking: [`MqError::Full`] if the queue or those rings are full,
    /// [`MqError::Busy`] if another producer holds the shared mutex.
    pub fn try_send(&mut self, data: &[u8]) -> Result<(), MqError> {
        let Some(mut guard) = self.signal.lock(false)? else {
            return Err(MqError::Busy);
        };
        if self.queue_full()? {
            return Err(MqError::Full);
        }
        let Some((ring, _)) = self.pick_ring(data.len())? else {
            return Err(MqError::Full);
        };
        self.enqueue_locked(ring, data, &mut guard)
    }

    /// Enqueues as many of `msgs` as fit, in order, without blocking, and returns how many:
    /// all into the first ring whose elements hold the longest of them and that has room,
    /// with one release increment of the ring's and of the queue's `cursize` and at most one
    /// signal for the whole batch — what makes small events cheap when the consumer keeps the
    /// queue near empty (each single send from empty is a signal, i.e. a system call).
    /// A consumer sees the batch exactly as it would see the same messages sent one by one in
    /// quick succession. [`MqError::Full`] if not even one fits.
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, MqError> {
        let Some(longest) = msgs.iter().map(|m| m.len()).max() else {
            return Ok(0);
        };
        let Some(mut guard) = self.signal.lock(false)? else {
            return Err(MqError::Busy);
        };
        let mem = self.mem;
        let q = self.g.q();
        let queued = mem.atomic_u32(q + l::CURSIZE)?.load(Ordering::Acquire);
        let queue_room = self.g.queue_len.saturating_sub(queued);
        let Some((ring, ring_room)) = self.pick_ring(longest)? else {
            return Err(MqError::Full);
        };
        let r = self.g.rings[ring];
        let n = (msgs.len() as u64)
            .min(u64::from(queue_room))
            .min(u64::from(ring_room)) as u32;
        if n == 0 {
            return Err(MqError::Full);
        }
        let elt0 = mem.read_u32(r.hdr + l::RING_TAIL)?;
        if elt0 >= r.nitems {
            return Err(self.g.corrupt("ring tail", elt0 as u64));
        }
        let tail0 = mem.read_u32(q + l::TAIL)?;
        if tail0 >= self.g.queue_len {
            return Err(self.g.corrupt("queue tail", tail0 as u64));
        }
        mem.write_u32(r.hdr + l::RING_TAIL, (elt0 + n) % r.nitems)?;
        mem.atomic_u32(r.hdr + l::RING_CURSIZE)?
            .fetch_add(n, Ordering::Release);
        let (mut elt, mut tail) = (elt0, tail0);
        for data in &msgs[..n as usize] {
            mem.write(r.data(elt), data)?;
            let h = MsgHandle {
                ring: ring as u32,
                elt,
            };
            mem.write(self.g.handle(tail), &h.to_bytes())?;
            elt = next_index(elt, r.nitems);
            tail = next_index(tail, self.g.queue_len);
        }
        mem.write_u32(q + l::TAIL, tail)?;
        // Release: every element and handle above is visible to a consumer that acquires
        // `cursize`.
        let old = mem
            .atomic_u32(q + l::CURSIZE)?
            .fetch_add(n, Ordering::Release);
        if old == 0 {
            self.signal.notify_from_producer(&mut guard)?;
        }
        Ok(n as usize)
    }

    /// Enqueues `data`, waiting up to `timeout` (forever if `None`) for room.
    pub fn send(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<(), MqError> {
        let deadline = deadline(timeout);
        let Some(mut guard) = self.signal.lock(true)? else {
            return Err(MqError::Busy);
        };
        loop {
            if !self.queue_full()?
                && let Some((ring, _)) = self.pick_ring(data.len())?
            {
                return self.enqueue_locked(ring, data, &mut guard);
            }
            let mut err = None;
            let mut ready = || match (self.queue_full(), self.pick_ring(data.len())) {
                (Ok(false), Ok(Some(_))) => true,
                (Ok(_), Ok(_)) => false,
                (Err(e), _) | (_, Err(e)) => {
                    err = Some(e);
                    true
                }
            };
            let ok = self
                .signal
                .wait_in_producer(&mut guard, &mut ready, deadline)?;
            if let Some(e) = err {
                return Err(e);
            }
            if !ok {
                return Err(MqError::Timeout);
            }
        }
    }
}

/// What [`MqConsumer::try_recv`] delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Ring the message came from.
    pub ring: u32,
    /// Bytes copied (the ring's element size, or the buffer length if shorter).
    pub len: usize,
}

/// The consuming side of an mq (single consumer).
#[derive(Debug)]
pub struct MqConsumer<'m, M: Memory, S: Signal> {
    mem: &'m M,
    g: MqGeometry,
    signal: S,
}

impl<'m, M: Memory, S: Signal> MqConsumer<'m, M, S> {
    /// Attaches to the mq at `offset` in `mem`, validating its image.
    pub fn attach(mem: &'m M, offset: u64, signal: S) -> Result<Self, MqError> {
        Ok(Self {
            mem,
            g: MqGeometry::read(mem, offset)?,
            signal,
        })
    }

    /// The validated geometry.
    pub fn geometry(&self) -> &MqGeometry {
        &self.g
    }

    /// Number of queued handles. Acquire: a consumer that sees `n > 0` must also see the
    /// handle and element bytes the producer wrote before its release increment (VPP loads
    /// relaxed and relies on x86 TSO; acquire costs nothing there and is portable).
    pub fn len(&self) -> Result<u32, MqError> {
        Ok(self
            .mem
            .atomic_u32(self.g.q() + l::CURSIZE)?
            .load(Ordering::Acquire))
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> Result<bool, MqError> {
        Ok(self.len()? == 0)
    }

    /// Dequeues one handle without blocking ([`MqError::Empty`] if none). The element stays
    /// allocated until [`MqConsumer::free`].
    pub fn try_dequeue(&mut self) -> Result<MsgHandle, MqError> {
        if self.len()? == 0 {
            return Err(MqError::Empty);
        }
        let mem = self.mem;
        let q = self.g.q();
        let head = mem.read_u32(q + l::HEAD)?;
        if head >= self.g.queue_len {
            return Err(self.g.corrupt("queue head", head as u64));
        }
        let mut h = [0u8; 8];
        mem.read(self.g.handle(head), &mut h)?;
        mem.write_u32(q + l::HEAD, next_index(head, self.g.queue_len))?;
        // Release: our read of the handle slot happens before the producer reuses it.
        let old = mem
            .atomic_u32(q + l::CURSIZE)?
            .fetch_sub(1, Ordering::AcqRel);
        if old == self.g.queue_len {
            self.signal.notify_from_consumer()?;
        }
        let msg = MsgHandle::from_bytes(h);
        self.g.ring_of(msg)?;
        Ok(msg)
    }

    /// Copies the body of `msg` into `buf` (up to the element size); returns bytes copied.
    pub fn read(&self, msg: MsgHandle, buf: &mut [u8]) -> Result<usize, MqError> {
        let r = self.g.ring_of(msg)?;
        let n = buf.len().min(r.elsize as usize);
        self.mem.read(r.data(msg.elt), &mut buf[..n])?;
        Ok(n)
    }

    /// Frees the element of `msg`; it must be its ring's oldest (in-order free).
    pub fn free(&mut self, msg: MsgHandle) -> Result<(), MqError> {
        let r = self.g.ring_of(msg)?;
        let head = self.mem.read_u32(r.hdr + l::RING_HEAD)?;
        if head != msg.elt {
            return Err(MqError::OutOfOrderFree {
                ring: msg.ring,
                expected: head,
                got: msg.elt,
            });
        }
        self.mem
            .write_u32(r.hdr + l::RING_HEAD, next_index(head, r.nitems))?;
        // Release: our reads of the element happen before the producer reallocates it.
        let old = self
            .mem
            .atomic_u32(r.hdr + l::RING_CURSIZE)?
            .fetch_sub(1, Ordering::Release);
        if old == r.nitems {
            self.signal.notify_from_consumer()?;
        }
        Ok(())
    }

    /// Dequeues, copies and frees up to `out.len()` messages without blocking (VPP's
    /// `svm_msg_q_sub_raw_batch` followed by in-order frees): one acquire and one release on the
    /// queue's `cursize` and one release per ring touched, at most one signal per counter that
    /// leaves "full". Message `i` goes to `out[i]` (its first `N` bytes, zero-padded); returns
    /// how many, [`MqError::Empty`] if none.
    pub fn try_recv_batch<const N: usize>(
        &mut self,
        out: &mut [[u8; N]],
    ) -> Result<usize, MqError> {
        let mem = self.mem;
        let q = self.g.q();
        let queued = mem.atomic_u32(q + l::CURSIZE)?.load(Ordering::Acquire);
        if queued == 0 {
            return Err(MqError::Empty);
        }
        let n = (out.len() as u64).min(u64::from(queued)) as u32;
        let head0 = mem.read_u32(q + l::HEAD)?;
        if head0 >= self.g.queue_len {
            return Err(self.g.corrupt("queue head", head0 as u64));
        }
        // Elements freed per ring, and each ring's head as we advance it.
        let mut freed = [0u32; MAX_RINGS as usize];
        let mut ring_head = [u32::MAX; MAX_RINGS as usize];
        let mut head = head0;
        for slot in out.iter_mut().take(n as usize) {
            let mut h = [0u8; 8];
            mem.read(self.g.handle(head), &mut h)?;
            head = next_index(head, self.g.queue_len);
            let msg = MsgHandle::from_bytes(h);
            let r = self.g.ring_of(msg)?;
            let i = msg.ring as usize;
            if ring_head[i] == u32::MAX {
                ring_head[i] = mem.read_u32(r.hdr + l::RING_HEAD)?;
            }
            if ring_head[i] != msg.elt {
                return Err(MqError::OutOfOrderFree {
                    ring: msg.ring,
                    expected: ring_head[i],
                    got: msg.elt,
                });
            }
            let len = N.min(r.elsize as usize);
            let (body, pad) = slot.split_at_mut(len);
            mem.read(r.data(msg.elt), body)?;
            pad.fill(0);
            ring_head[i] = next_index(msg.elt, r.nitems);
            freed[i] += 1;
        }
        mem.write_u32(q + l::HEAD, head)?;
        // Release: our reads of the handle slots happen before the producer reuses them.
        let old = mem
            .atomic_u32(q + l::CURSIZE)?
            .fetch_sub(n, Ordering::AcqRel);
        let mut signal = old == self.g.queue_len;
        for (i, r) in self.g.rings.iter().enumerate() {
            if freed[i] == 0 {
                continue;
            }
            mem.write_u32(r.hdr + l::RING_HEAD, ring_head[i])?;
            // Release: our reads of the elements happen before the producer reallocates them.
            let old = mem
                .atomic_u32(r.hdr + l::RING_CURSIZE)?
                .fetch_sub(freed[i], Ordering::Release);
            signal |= old == r.nitems;
        }
        if signal {
            self.signal.notify_from_consumer()?;
        }
        Ok(n as usize)
    }

    /// Dequeues, copies and frees one message without blocking.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Delivered, MqError> {
        let msg = self.try_dequeue()?;
        let len = self.read(msg, buf)?;
        self.free(msg)?;
        Ok(Delivered {
            ring: msg.ring,
            len,
        })
    }

    /// Waits up to `timeout` (forever if `None`) until a message is queued.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<(), MqError> {
        let deadline = deadline(timeout);
        let mut err = None;
        let mut ready = || match self.len() {
            Ok(n) => n > 0,
            Err(e) => {
                err = Some(e);
                true
            }
        };
        let ok = self.signal.wait_in_consumer(&mut ready, deadline)?;
        if let Some(e) = err {
            return Err(e);
        }
        if ok { Ok(()) } else { Err(MqError::Timeout) }
    }

    /// Receives one message, waiting up to `timeout` (forever if `None`).
    pub fn recv(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<Delivered, MqError> {
        let deadline = deadline(timeout);
        loop {
            match self.try_recv(buf) {
                Err(MqError::Empty) => {}
                other => return other,
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Err(MqError::Timeout);
            }
            self.wait(left)?;
        }
    }
}
