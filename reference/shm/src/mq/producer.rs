//! The producing side of an mq (`docs/shm.md` §4.2): reserve a ring element, write the body,
//! publish the handle, wake the consumer on empty → non-empty.
//!
//! Must never: make a message visible before its body and handle are written (the queue's `cursize`
//! is raised, with release, only after both), overwrite an element or handle slot the consumer has
//! not freed (room is read with acquire first), or write a body into an element shorter than it
//! ([`MqError::TooLarge`]).

use std::time::Duration;

use crate::layout::mq as l;
use crate::memory::Memory;
use crate::sync::{Atomic, Ordering};

use super::queue::{MqError, MqGeometry, MsgHandle, next_index};
use super::signal::{Signal, deadline};

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

    /// As [`MqProducer::try_send`], into ring `ring` only: the session layer keeps io events in
    /// ring 0 and control messages in ring 1 whatever room the other has
    /// (`docs/sessions.md` §3.2).
    pub fn try_send_ring(&mut self, ring: usize, data: &[u8]) -> Result<(), MqError> {
        let Some(r) = self.g.rings.get(ring) else {
            return Err(MqError::TooLarge {
                len: data.len(),
                max: 0,
            });
        };
        if (r.elsize as usize) < data.len() {
            return Err(MqError::TooLarge {
                len: data.len(),
                max: r.elsize,
            });
        }
        let hdr = r.hdr;
        let nitems = r.nitems;
        let Some(mut guard) = self.signal.lock(false)? else {
            return Err(MqError::Busy);
        };
        if self.queue_full()? {
            return Err(MqError::Full);
        }
        let cur = self
            .mem
            .atomic_u32(hdr + l::RING_CURSIZE)?
            .load(Ordering::Acquire);
        if cur >= nitems {
            return Err(MqError::Full);
        }
        self.enqueue_locked(ring, data, &mut guard)
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
