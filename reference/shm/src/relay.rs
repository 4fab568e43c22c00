//! The server's half of the io-event protocol of a cut-through pair (`docs/sessions.md` §8.3,
//! §8.5): what it does to the signal words of the writer's and the reader's fifo headers when it
//! relays a TX (data written) or an RX (data dequeued), and whom it then has to notify.
//!
//! Owns: the order and the memory orderings of those signal operations, generic over
//! [`Memory`] so that the code the shell runs over mapped segments is the code the `sapi-loom`
//! relay model checks over heap memory. The writer's and the reader's signal blocks may live in
//! different segments (C's shadow headers are in C's own segment), so each is a [`Signals`] of
//! its own.
//!
//! Must never: post anything itself (it says what to post; the caller owns the app mqs), read
//! or write fifo data, or trust a word a peer wrote beyond using it as a bit set.

use crate::fifo::{FifoError, WANT_DEQ_NOTIF, WANT_DEQ_NOTIF_IF_EMPTY, WANT_DEQ_NOTIF_IF_FULL};
use crate::layout::fifo as l;
use crate::memory::Memory;
use crate::sync::{Atomic, Ordering, fence};

/// The signal block (bytes 40..63) of one fifo header: `has_event`, `want_deq_ntf`,
/// `has_deq_ntf`.
#[derive(Debug)]
pub struct Signals<'m, M: Memory> {
    mem: &'m M,
    header: u64,
}

// A reference and an offset: copyable whatever the memory is (derive would ask `M: Copy`).
impl<M: Memory> Clone for Signals<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: Memory> Copy for Signals<'_, M> {}

impl<'m, M: Memory> Signals<'m, M> {
    /// The signals of the fifo header at `header`.
    pub fn new(mem: &'m M, header: u64) -> Self {
        Signals { mem, header }
    }

    fn word(&self, field: u64) -> Result<&'m M::A32, FifoError> {
        Ok(self.mem.atomic_u32(self.header + field)?)
    }

    /// At delivery of an RX to the reader: sets `has_event` and says whether it was clear, i.e.
    /// whether the RX must really be posted (a set flag means one is already pending, §8.3
    /// step 5). Release, so the reader that clears it sees everything before.
    pub fn claim_rx(&self) -> Result<bool, FifoError> {
        Ok(self.word(l::HAS_EVENT)?.swap(1, Ordering::Release) == 0)
    }

    /// The reader's `has_event`, for checks.
    pub fn has_event(&self) -> Result<bool, FifoError> {
        Ok(self.word(l::HAS_EVENT)?.load(Ordering::Acquire) != 0)
    }

    /// The `want_deq_ntf` bits, for checks.
    pub fn want_deq_ntf(&self) -> Result<u32, FifoError> {
        Ok(self.word(l::WANT_DEQ_NTF)?.load(Ordering::Acquire))
    }
}

/// What a relay asks the caller to post, in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayOutcome {
    /// Post TX to the writer (a dequeue notification: its fifo has room).
    pub tx_to_writer: bool,
    /// Queue an RX for the reader, to be posted at delivery only if
    /// [`Signals::claim_rx`] on the reader's signals says so.
    pub rx_to_reader: bool,
    /// The writer's dequeue-notification wish went to the reader, not answered at once: its
    /// answer comes from the reader, if it waits for room now.
    pub wish_passed_on: bool,
}

/// §8.3, a TX (or TX_FLUSH) from the writer: re-arm the writer's `has_event`, pass on its
/// dequeue-notification wishes to the reader (answered at once when the fifo is already empty),
/// and have the reader told of the data. `reader` is `None` when the reader may not be told (its
/// app does not know the session yet, or it is closing): only the writer's flag is re-armed.
/// `data_is_empty` is asked only when needed.
pub fn relay_tx<W: Memory, R: Memory>(
    writer: Signals<'_, W>,
    reader: Option<Signals<'_, R>>,
    data_is_empty: impl FnOnce() -> Result<bool, FifoError>,
) -> Result<RelayOutcome, FifoError> {
    // Step 2: the writer posts its next TX only after seeing this cleared (acquire pairs with
    // its release swap to 1).
    writer.word(l::HAS_EVENT)?.swap(0, Ordering::Acquire);
    let Some(reader) = reader else {
        return Ok(RelayOutcome::default());
    };
    let mut out = RelayOutcome {
        rx_to_reader: true,
        ..RelayOutcome::default()
    };
    // Step 4.
    let want = writer.word(l::WANT_DEQ_NTF)?.load(Ordering::Acquire);
    if want != 0 {
        reader
            .word(l::WANT_DEQ_NTF)?
            .fetch_or(want, Ordering::Release);
        // Pairs with the reader's fence between its dequeue and its look at `want_deq_ntf`:
        // either it sees the bits, or this sees its dequeue.
        fence(Ordering::SeqCst);
        if data_is_empty()? {
            clear_bits(&reader, want)?;
            notify_writer(&writer)?;
            out.tx_to_writer = true;
        } else {
            out.wish_passed_on = true;
        }
    }
    Ok(out)
}

/// §8.5, an RX (dequeue notification) from the reader: clear its `has_deq_ntf`; then, unless the
/// writer's fifo is still full (re-arm the reader instead), clear the writer's request and have
/// it told there is room.
pub fn relay_rx<W: Memory, R: Memory>(
    writer: Signals<'_, W>,
    reader: Signals<'_, R>,
    data_is_full: impl FnOnce() -> Result<bool, FifoError>,
) -> Result<RelayOutcome, FifoError> {
    reader.word(l::HAS_DEQ_NTF)?.store(0, Ordering::Release);
    if data_is_full()? {
        reader
            .word(l::WANT_DEQ_NTF)?
            .fetch_or(WANT_DEQ_NOTIF, Ordering::Release);
        return Ok(RelayOutcome::default());
    }
    notify_writer(&writer)?;
    Ok(RelayOutcome {
        tx_to_writer: true,
        ..RelayOutcome::default()
    })
}

/// Step D: the writer's `WANT_DEQ_NOTIF` goes; `has_deq_ntf` is set if it asked for the
/// one-shot kinds (so it is not told twice).
fn notify_writer<W: Memory>(writer: &Signals<'_, W>) -> Result<(), FifoError> {
    let want = writer.word(l::WANT_DEQ_NTF)?;
    let before = want.fetch_and(!WANT_DEQ_NOTIF, Ordering::AcqRel);
    if before & (WANT_DEQ_NOTIF_IF_FULL | WANT_DEQ_NOTIF_IF_EMPTY) != 0 {
        writer.word(l::HAS_DEQ_NTF)?.store(1, Ordering::Release);
    }
    Ok(())
}

fn clear_bits<R: Memory>(reader: &Signals<'_, R>, bits: u32) -> Result<(), FifoError> {
    reader
        .word(l::WANT_DEQ_NTF)?
        .fetch_and(!bits, Ordering::AcqRel);
    Ok(())
}
