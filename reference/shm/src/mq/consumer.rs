//! The consuming side of an mq (`docs/shm.md` §4.2, single consumer): take a handle, copy the
//! body out, free the element, wake a producer waiting for room.
//!
//! Must never: free an element out of ring order (a handle that is not its ring's oldest gets
//! [`MqError::OutOfOrderFree`] and nothing is freed, in a batch too), or copy out more than one
//! element's bytes.

use std::time::{Duration, Instant};

use crate::layout::mq as l;
use crate::memory::Memory;
use crate::sync::{Atomic, Ordering};

use super::queue::{MAX_RINGS, MqError, MqGeometry, MsgHandle, next_index};
use super::signal::{Signal, deadline};

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
