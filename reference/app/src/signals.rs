//! The app's half of the io-event protocol (`docs/sessions.md` §8.2, §8.4, §8.8): the signal
//! block (bytes 40..63 of a fifo header: `has_event`, `want_deq_ntf`, `has_deq_ntf`,
//! `deq_thresh`) of one side of a session, and the two rules that use it.
//!
//! A side's signal block is not always in its data fifo's header: C's live in the shadow headers
//! in C's own segment (§2), so a block is a segment and an offset of its own, apart from the
//! fifo whose data it describes.
//!
//! Owns: the writer's rule (mark an event pending and say whether to post TX; ask for a dequeue
//! notification when the fifo is full) and the reader's rule (clear the pending mark when the
//! fifo is found empty; decide after a dequeue whether to post a dequeue notification), with the
//! orderings of §8.8 and the SeqCst fences that keep a full writer and a draining reader from
//! missing each other (through the server, which ORs the writer's wishes into the reader's block
//! behind a fence of its own, `sapi_shm::relay`).
//!
//! Must never: post anything itself (the caller owns the server mqs), or trust a word beyond
//! using it as a bit set.

use std::sync::atomic::{AtomicU32, Ordering, fence};

use sapi_shm::Segment;
use sapi_shm::fifo::{WANT_DEQ_NOTIF, WANT_DEQ_NOTIF_IF_EMPTY, WANT_DEQ_NOTIF_IF_FULL};
use sapi_shm::layout::fifo as l;
use sapi_shm::memory::Memory;

use crate::error::AppError;

/// The signal block of the fifo header at `header` in `seg`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignalBlock<'s> {
    seg: &'s Segment,
    header: u64,
}

impl<'s> SignalBlock<'s> {
    pub fn new(seg: &'s Segment, header: u64) -> Self {
        SignalBlock { seg, header }
    }

    fn word(&self, field: u64) -> Result<&'s AtomicU32, AppError> {
        self.seg
            .atomic_u32(self.header + field)
            .map_err(|e| AppError::Fifo(e.into()))
    }

    /// Writer, after enqueueing (§8.2 step 2): swap `has_event` to 1 (release: the data is
    /// visible to whoever clears it). True if it was 0: only then post TX.
    pub fn set_has_event(&self) -> Result<bool, AppError> {
        Ok(self.word(l::HAS_EVENT)?.swap(1, Ordering::Release) == 0)
    }

    /// Reader, on finding its fifo empty (§8.4 step 2): swap `has_event` to 0 (acquire). The
    /// caller then looks at the fifo again: data that came before the swap is seen now, data
    /// that comes after it finds the flag clear and brings an RX.
    pub fn clear_has_event(&self) -> Result<(), AppError> {
        self.word(l::HAS_EVENT)?.swap(0, Ordering::Acquire);
        Ok(())
    }

    /// Writer, on finding its fifo full (§8.2 step 3): OR in [`WANT_DEQ_NOTIF`]. The SeqCst
    /// fence orders this before the caller's second look at the free space.
    pub fn want_deq_ntf(&self) -> Result<(), AppError> {
        self.word(l::WANT_DEQ_NTF)?
            .fetch_or(WANT_DEQ_NOTIF, Ordering::Release);
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Reader, after dequeueing `n` bytes from a fifo of `size` bytes that now holds `ready`
    /// (§8.4 steps 3–4): whether the writer asked to hear of it. When it did, the request is
    /// consumed here (bit 1 cleared, `has_deq_ntf` set for the one-shot kinds) and the caller
    /// must post RX. The SeqCst fence pairs with the server's after it ORs a request in: either
    /// this sees the request, or the server sees this dequeue.
    pub fn take_deq_ntf(&self, n: u32, ready: u32, size: u32) -> Result<bool, AppError> {
        fence(Ordering::SeqCst);
        let want = self.word(l::WANT_DEQ_NTF)?.load(Ordering::Acquire);
        if want == 0 {
            return Ok(false);
        }
        let has = self.word(l::HAS_DEQ_NTF)?.load(Ordering::Acquire) != 0;
        let free = size.saturating_sub(ready);
        let thresh = self.word(l::DEQ_THRESH)?.load(Ordering::Relaxed);
        let was_full = u64::from(ready) + u64::from(n) >= u64::from(size);
        let yes = (want & WANT_DEQ_NOTIF != 0 && free >= thresh)
            || (want & WANT_DEQ_NOTIF_IF_FULL != 0 && !has && was_full && ready < size)
            || (want & WANT_DEQ_NOTIF_IF_EMPTY != 0 && !has && ready == 0);
        if !yes {
            return Ok(false);
        }
        self.word(l::WANT_DEQ_NTF)?
            .fetch_and(!WANT_DEQ_NOTIF, Ordering::AcqRel);
        if want & (WANT_DEQ_NOTIF_IF_FULL | WANT_DEQ_NOTIF_IF_EMPTY) != 0 {
            self.word(l::HAS_DEQ_NTF)?.store(1, Ordering::Release);
        }
        Ok(true)
    }
}
