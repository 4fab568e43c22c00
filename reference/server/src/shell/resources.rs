//! The server's shared-memory resources: the global VPP mqs segment, every worker's segments,
//! its event mq and its eventfd.
//!
//! Owns each memfd, mapping and eventfd the core refers to by id ([`SegmentId`], [`WorkerKey`]):
//! one owner each, released when the core says so; and the pool of segments prepared ahead for
//! workers' first segments ([`super::pool`]), which no id names until one is taken. It must never decide anything: a missing id
//! is skipped (the core may already have freed what a later action names), and everything read
//! back from a segment is treated as written by a hostile app.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::eventfd::{EfdFlags, EventFd};

use sapi_core::{
    FdRef, FifoRef, InjectedFault, InjectedFaults, Relay, ResourceError, SegmentId, SegmentSpec,
    WarnBudget, WorkerKey, WorkerResources, WorkerResourcesReady,
};
use sapi_shm::fifo;
use sapi_shm::mq::{self, EventFdSignal, MqError, MqProducer, MqSpec, PthreadSignal};
use sapi_shm::relay::{self, Signals};
use sapi_shm::segment::{self, Segment, SegmentLayout};
use sapi_wire::Profile;
use sapi_wire::ctrl::{CtrlMessage, IoEvent};

use super::pool::SegmentPool;

/// Ring of an app mq that carries io events.
const IO_RING: usize = 0;
/// Ring of an app mq that carries control messages.
const CTRL_RING: usize = 1;
/// Size of the zeroed fifos whose headers serve as C's shadow signal blocks.
const SHADOW_FIFO_SIZE: u32 = 4096;

/// What waits to be written into one worker's app mq, in order (`docs/sessions.md` §3.5).
#[derive(Debug)]
enum Outgoing {
    /// A control message element for ring 1.
    Ctrl(Box<[u8]>),
    /// An io event for ring 0. An RX names the reader's signals: it is posted only if their
    /// `has_event` was clear at delivery (`claimed` once that was checked and set).
    Io {
        event: IoEvent,
        claim: Option<FifoRef>,
        claimed: bool,
    },
}

/// Name of the global mqs segment's memfd, as VPP names it.
pub const VPP_MQS_SEGMENT_NAME: &str = "session: wrk-mqs-segment";
/// Queue length of each VPP ctrl mq (VPP's default and minimum).
pub const VPP_CTRL_MQ_LEN: u32 = 2048;

struct WorkerMq {
    segment: SegmentId,
    mq_offset: u64,
    eventfd: Option<OwnedFd>,
    /// Messages the app mq had no room for yet; never dropped, never reordered.
    pending: VecDeque<Outgoing>,
    /// What this worker's app made the relay warn about (broken fifo headers).
    warnings: WarnBudget,
}

/// Why posting a control event failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The worker or its segment is gone.
    #[error("worker has no mq any more")]
    NoWorker,
    /// The event could not be encoded.
    #[error("cannot encode the event: {0}")]
    Encode(String),
    /// The mq refused it (full, corrupt, locked by the app).
    #[error(transparent)]
    Mq(#[from] MqError),
}

/// What a relay learnt of the writer's wait for room (it asked for a dequeue notification):
/// the loop paces its polls by it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum WriterRoom {
    /// Nothing new: the writer did not ask, or its fifo has room, or the relay sent nothing.
    #[default]
    Unchanged,
    /// It asked and its fifo is full: the reader will be the one to tell it.
    Waits,
    /// It was just told there is room.
    Told,
}

/// What a relay did.
#[derive(Debug, Default)]
pub struct Relayed {
    /// See [`WriterRoom`].
    pub writer: WriterRoom,
    /// The notifications that could not be posted, each with the worker whose mq refused it:
    /// that app, and never the other of the pair, answers for it (once, when both are its).
    pub failed: Vec<(WorkerKey, PostError)>,
}

impl Relayed {
    /// Whether the writer waits for room.
    pub fn writer_waits(&self) -> bool {
        self.writer == WriterRoom::Waits
    }
}

/// Every shared-memory object of a running server.
pub struct Resources {
    profile: Profile,
    faults: InjectedFaults,
    vpp_mqs: Segment,
    vpp_mq_offsets: Vec<u64>,
    /// Slices per app segment: one per simulated VPP thread, as VPP.
    n_slices: u8,
    segments: BTreeMap<SegmentId, Segment>,
    workers: BTreeMap<WorkerKey, WorkerMq>,
    /// Fifos of a segment that could not be freed (an app broke their headers), per segment.
    segment_warnings: BTreeMap<SegmentId, WarnBudget>,
    /// Segments ready for workers' first segments; empty until [`Resources::refill_pool`].
    pool: SegmentPool,
}

impl Resources {
    /// Creates the VPP mqs segment with one ctrl mq per VPP thread.
    pub fn new(threads: u8, profile: Profile, faults: InjectedFaults) -> Result<Self, MqError> {
        let spec = MqSpec::vpp_ctrl(VPP_CTRL_MQ_LEN);
        let ssvm_size = segment::mqs_segment_ssvm_size(u64::from(threads), spec.size_bytes());
        let vpp_mqs = Segment::create(
            VPP_MQS_SEGMENT_NAME,
            SegmentLayout {
                ssvm_size,
                n_slices: 1,
            },
        )?;
        let vpp_mq_offsets = (0..threads)
            .map(|_| mq::create(&vpp_mqs, &spec))
            .collect::<Result<Vec<_>, _>>()?;
        vpp_mqs.set_n_mqs(threads)?;
        Ok(Resources {
            profile,
            faults,
            vpp_mqs,
            vpp_mq_offsets,
            n_slices: threads,
            segments: BTreeMap::new(),
            workers: BTreeMap::new(),
            segment_warnings: BTreeMap::new(),
            pool: SegmentPool::new(),
        })
    }

    /// Offset of VPP thread `thread`'s ctrl mq in the mqs segment.
    pub fn vpp_mq_offset(&self, thread: usize) -> Option<u64> {
        self.vpp_mq_offsets.get(thread).copied()
    }

    fn new_segment(&self, spec: &SegmentSpec) -> Result<Segment, ResourceError> {
        if spec.huge_pages {
            // The reference has no hugetlb segments; VPP 26.10 without huge pages answered −1.
            return Err(ResourceError::HugePages);
        }
        let seg = Segment::create(
            &spec.name,
            SegmentLayout {
                ssvm_size: segment::app_segment_ssvm_size(spec.requested_size),
                n_slices: self.n_slices,
            },
        )
        .map_err(|e| {
            tracing::warn!(name = %spec.name, error = %e, "segment creation failed");
            ResourceError::SegmentCreate
        })?;
        with_first_alloc(seg, spec)
    }

    /// A worker's first segment: a ready one of its size from the pool, laid out now (writes
    /// into pages already there, no system call), else created on demand.
    fn new_worker_segment(&mut self, spec: &SegmentSpec) -> Result<Segment, ResourceError> {
        if spec.huge_pages {
            return self.new_segment(spec);
        }
        let ssvm_size = segment::app_segment_ssvm_size(spec.requested_size);
        match self.pool.take(ssvm_size) {
            Some(ready) => {
                let seg = ready.lay_out(self.n_slices).map_err(|e| {
                    tracing::warn!(name = %spec.name, error = %e, "a prepared segment could not be laid out");
                    ResourceError::SegmentCreate
                })?;
                with_first_alloc(seg, spec)
            }
            None => self.new_segment(spec),
        }
    }

    /// Tops the pool of prepared segments up. Called by the loop once a pass's replies were
    /// sent: never between a request and its reply.
    pub fn refill_pool(&mut self) {
        if self.pool.needs_refill() {
            self.pool.refill();
        }
    }

    /// The pool of prepared segments.
    pub fn pool(&self) -> &SegmentPool {
        &self.pool
    }

    /// Creates a worker's first segment, its event mq (the segment's first allocation) and,
    /// if asked, its eventfd.
    pub fn create_worker(
        &mut self,
        key: WorkerKey,
        spec: &WorkerResources,
    ) -> Result<WorkerResourcesReady, ResourceError> {
        let seg = self.new_worker_segment(&spec.segment)?;
        // Ring headers must stay 4-byte aligned for their atomics: an odd queue length with
        // 18-byte elements would misalign ring 1 (VPP relies on x86 tolerating it). Odd
        // lengths are rounded up to the next even one.
        let q = spec.evt_queue_size.saturating_add(spec.evt_queue_size & 1);
        let mut mq_spec = MqSpec::app_event_queue(q);
        if self.faults.has(InjectedFault::BadRingSize)
            && let Some(r) = mq_spec.rings.get_mut(1)
        {
            r.elsize = 128;
        }
        let mq_offset = mq::create(&seg, &mq_spec).map_err(|e| {
            tracing::warn!(error = %e, "app mq does not fit its segment");
            ResourceError::SegmentCreate
        })?;
        let eventfd = if spec.eventfd {
            let efd =
                EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                    .map_err(|_| ResourceError::EventfdAlloc)?;
            Some(OwnedFd::from(efd))
        } else {
            None
        };
        let ssvm_size = seg.ssvm_size();
        self.segments.insert(spec.segment.id, seg);
        self.workers.insert(
            key,
            WorkerMq {
                segment: spec.segment.id,
                mq_offset,
                eventfd,
                pending: VecDeque::new(),
                warnings: WarnBudget::default(),
            },
        );
        Ok(WorkerResourcesReady {
            mq_offset,
            ssvm_size,
        })
    }

    /// Creates an additional segment; returns its `ssvm_size`.
    pub fn create_segment(&mut self, spec: &SegmentSpec) -> Result<u64, ResourceError> {
        let seg = self.new_segment(spec)?;
        let size = seg.ssvm_size();
        self.segments.insert(spec.id, seg);
        Ok(size)
    }

    /// Queues a control message for a worker's app mq behind anything still waiting for it,
    /// and writes what fits now. An error only for an mq the app broke.
    pub fn post_ctrl(&mut self, key: WorkerKey, msg: &CtrlMessage) -> Result<(), PostError> {
        let element = ctrl_element(msg, self.profile)?;
        let w = self.workers.get_mut(&key).ok_or(PostError::NoWorker)?;
        w.pending.push_back(Outgoing::Ctrl(element));
        self.flush(key)
    }

    /// Queues an io event for a worker (`claim`: an RX, posted only if the reader's
    /// `has_event` is clear at delivery).
    pub fn post_io(
        &mut self,
        key: WorkerKey,
        event: IoEvent,
        claim: Option<FifoRef>,
    ) -> Result<(), PostError> {
        let w = self.workers.get_mut(&key).ok_or(PostError::NoWorker)?;
        w.pending.push_back(Outgoing::Io {
            event,
            claim,
            claimed: false,
        });
        self.flush(key)
    }

    /// Writes what waits for `key` while its app mq has room.
    fn flush(&mut self, key: WorkerKey) -> Result<(), PostError> {
        let Some(w) = self.workers.get_mut(&key) else {
            return Err(PostError::NoWorker);
        };
        let seg = self.segments.get(&w.segment).ok_or(PostError::NoWorker)?;
        while let Some(next) = w.pending.front_mut() {
            let (ring, bytes): (usize, Vec<u8>) = match next {
                Outgoing::Ctrl(e) => (CTRL_RING, e.to_vec()),
                Outgoing::Io {
                    event,
                    claim,
                    claimed,
                } => {
                    if let Some(reader) = claim
                        && !*claimed
                    {
                        let fresh = self
                            .segments
                            .get(&reader.segment)
                            .map(|s| Signals::new(s, reader.offset).claim_rx());
                        match fresh {
                            Some(Ok(true)) => *claimed = true,
                            // Already pending for the reader, or its fifo is gone: no RX.
                            _ => {
                                w.pending.pop_front();
                                continue;
                            }
                        }
                    }
                    (IO_RING, event.encode().to_vec())
                }
            };
            let sent = match &w.eventfd {
                Some(fd) => MqProducer::attach(seg, w.mq_offset, EventFdSignal::new(fd.as_fd()))
                    .and_then(|mut p| p.try_send_ring(ring, &bytes)),
                None => PthreadSignal::new(seg, w.mq_offset)
                    .and_then(|sig| MqProducer::attach(seg, w.mq_offset, sig))
                    .and_then(|mut p| p.try_send_ring(ring, &bytes)),
            };
            match sent {
                Ok(()) => {
                    w.pending.pop_front();
                }
                // The app has not drained its mq (or holds its lock): later, in order.
                Err(MqError::Full | MqError::Busy) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Retries every worker with messages waiting; returns those whose app mq is broken (for
    /// the core to detach) and whether anything still waits.
    pub fn flush_all(&mut self) -> (Vec<WorkerKey>, bool) {
        let keys: Vec<WorkerKey> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.pending.is_empty())
            .map(|(k, _)| *k)
            .collect();
        let broken = keys
            .into_iter()
            .filter(|k| matches!(self.flush(*k), Err(PostError::Mq(_))))
            .collect();
        (broken, self.has_pending())
    }

    /// Whether any worker has messages waiting for room.
    pub fn has_pending(&self) -> bool {
        self.workers.values().any(|w| !w.pending.is_empty())
    }

    /// Carves fifos A and B of a pair in a ct segment.
    pub fn alloc_fifo_pair(
        &mut self,
        segment: SegmentId,
        slice: u8,
        rx_size: u32,
        tx_size: u32,
    ) -> Result<(u64, u64), ResourceError> {
        let seg = self.segments.get(&segment).ok_or(ResourceError::NoRoom)?;
        let fs = seg.fifo_segment();
        let slice = u32::from(slice).min(u32::from(self.n_slices.saturating_sub(1)));
        let a = fifo::create(fs, slice, rx_size).map_err(|_| ResourceError::NoRoom)?;
        match fifo::create(fs, slice, tx_size) {
            Ok(b) => Ok((a, b)),
            Err(_) => {
                let _ = fifo::free(fs, a);
                Err(ResourceError::NoRoom)
            }
        }
    }

    /// Gives a fifo (and its chunks) back to its segment; a fifo an app broke is left alone.
    pub fn free_fifo(&mut self, segment: SegmentId, f: u64) {
        if let Some(seg) = self.segments.get(&segment)
            && let Err(e) = fifo::free(seg.fifo_segment(), f)
            && let Some(suppressed) = self.segment_warnings.entry(segment).or_default().admit()
        {
            tracing::warn!(segment = segment.0, fifo = f, error = %e, suppressed, "cannot free a fifo");
        }
    }

    /// Carves C's shadow RX and TX headers (two small fifos whose signal blocks C uses).
    pub fn alloc_shadows(&mut self, segment: SegmentId) -> Result<(u64, u64), ResourceError> {
        let (a, b) = self.alloc_fifo_pair(segment, 0, SHADOW_FIFO_SIZE, SHADOW_FIFO_SIZE)?;
        Ok((a, b))
    }

    /// Whether the reader of `f` left data in it (false for a fifo that is gone or broken).
    pub fn unread(&self, f: FifoRef) -> bool {
        self.segments
            .get(&f.segment)
            .and_then(|s| fifo::occupancy(s, f.offset).ok())
            .is_some_and(|n| n > 0)
    }

    /// §8.3: relays a writer's TX over the pair's signal words and queues the notifications.
    pub fn relay_tx(&mut self, r: &Relay) -> Relayed {
        let (outcome, writer_waits) = {
            let (Some(ws), Some(rs), Some(ds)) = (
                self.segments.get(&r.writer_signals.segment),
                self.segments.get(&r.reader_signals.segment),
                self.segments.get(&r.data.segment),
            ) else {
                return Relayed::default();
            };
            let writer = Signals::new(ws, r.writer_signals.offset);
            let reader = r.reader.map(|_| Signals::new(rs, r.reader_signals.offset));
            let outcome = relay::relay_tx(writer, reader, || {
                Ok(fifo::occupancy(ds, r.data.offset)? == 0)
            });
            let waits = matches!(outcome, Ok(o) if o.wish_passed_on)
                && is_full(ds, r.data.offset).unwrap_or(false);
            (outcome, waits)
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.warn_broken_relay(r, &e);
                return Relayed::default();
            }
        };
        let mut relayed = Relayed::default();
        if outcome.tx_to_writer {
            relayed.writer = WriterRoom::Told;
            let tx = IoEvent::tx(r.writer.app_session_index);
            self.post_relayed(&mut relayed, r.writer.worker, tx, None);
        } else if writer_waits {
            relayed.writer = WriterRoom::Waits;
        }
        if outcome.rx_to_reader
            && let Some(reader) = r.reader
        {
            // The claim of the reader's `has_event` at delivery is what coalesces RX (§8.3
            // step 5); the fault posts without it, so every TX becomes an RX and the flag
            // stays 0.
            let claim =
                (!self.faults.has(InjectedFault::RxWithoutHasEvent)).then_some(r.reader_signals);
            let rx = IoEvent::rx(reader.app_session_index);
            self.post_relayed(&mut relayed, reader.worker, rx, claim);
        }
        relayed
    }

    /// Posts one of a relay's notifications; a failure goes into `relayed`, charged to the
    /// worker whose mq refused it (once per app: both ends of a pair may be one app's).
    fn post_relayed(
        &mut self,
        relayed: &mut Relayed,
        worker: WorkerKey,
        event: IoEvent,
        claim: Option<FifoRef>,
    ) {
        if let Err(e) = self.post_io(worker, event, claim)
            && !relayed.failed.iter().any(|(w, _)| w.app == worker.app)
        {
            relayed.failed.push((worker, e));
        }
    }

    /// §8.5: relays a reader's dequeue notification to the writer; while its fifo is still
    /// full the reader is re-armed instead, and the writer still waits.
    pub fn relay_rx(&mut self, r: &Relay) -> Relayed {
        let outcome = {
            let (Some(ws), Some(rs), Some(ds)) = (
                self.segments.get(&r.writer_signals.segment),
                self.segments.get(&r.reader_signals.segment),
                self.segments.get(&r.data.segment),
            ) else {
                return Relayed::default();
            };
            relay::relay_rx(
                Signals::new(ws, r.writer_signals.offset),
                Signals::new(rs, r.reader_signals.offset),
                || is_full(ds, r.data.offset),
            )
        };
        let mut relayed = Relayed::default();
        match outcome {
            Ok(o) if o.tx_to_writer => {
                relayed.writer = WriterRoom::Told;
                let tx = IoEvent::tx(r.writer.app_session_index);
                self.post_relayed(&mut relayed, r.writer.worker, tx, None);
            }
            Ok(_) => relayed.writer = WriterRoom::Waits,
            Err(e) => self.warn_broken_relay(r, &e),
        }
        relayed
    }

    /// A relay over a fifo header an app broke sends nothing; the warning about it counts
    /// against the writer's app (a hostile app can post TX as fast as it likes).
    fn warn_broken_relay(&mut self, r: &Relay, e: &impl std::fmt::Display) {
        let writer = r.writer.worker;
        if let Some(suppressed) = self
            .workers
            .get_mut(&writer)
            .and_then(|w| w.warnings.admit())
        {
            tracing::warn!(%writer, error = %e, suppressed, "relay over a broken fifo header: nothing sent");
        }
    }

    /// Messages queued in a worker's event mq, if it can be read.
    pub fn mq_occupancy(&self, key: WorkerKey) -> Option<u32> {
        let w = self.workers.get(&key)?;
        let seg = self.segments.get(&w.segment)?;
        MqProducer::attach(seg, w.mq_offset, PthreadSignal::new(seg, w.mq_offset).ok()?)
            .ok()?
            .len()
            .ok()
    }

    /// Unmaps and closes a segment.
    pub fn free_segment(&mut self, id: SegmentId) {
        self.segments.remove(&id);
        if let Some(w) = self.segment_warnings.remove(&id)
            && w.suppressed() > 0
        {
            tracing::warn!(
                segment = id.0,
                suppressed = w.suppressed(),
                warnings = w.seen(),
                "segment gone; the rest of its warnings were left out"
            );
        }
    }

    /// Closes a worker's eventfd and forgets its mq, and whatever still waited for it.
    pub fn free_worker(&mut self, key: WorkerKey) {
        if let Some(w) = self.workers.remove(&key)
            && w.warnings.suppressed() > 0
        {
            tracing::warn!(worker = %key, suppressed = w.warnings.suppressed(), warnings = w.warnings.seen(), "worker gone; the rest of its warnings were left out");
        }
    }

    /// The fd an [`FdRef`] names, if it still exists.
    pub fn fd(&self, f: FdRef) -> Option<BorrowedFd<'_>> {
        match f {
            FdRef::VppMqsSegment => Some(self.vpp_mqs.fd()),
            FdRef::Segment(id) => self.segments.get(&id).map(Segment::fd),
            FdRef::WorkerEventfd(key) => self.workers.get(&key)?.eventfd.as_ref().map(AsFd::as_fd),
        }
    }

    /// Live segments and workers (for leak checks).
    pub fn counts(&self) -> (usize, usize) {
        (self.segments.len(), self.workers.len())
    }
}

/// The bytes a control message puts into its ring-1 slot: the header and body, and zeros up to
/// the 18-byte session-event header at least (`docs/sessions.md` §3.2 rule 3: VPP zeroes that
/// header, so a short body such as CLEANUP's leaves nothing of the slot's last message in
/// bytes 11..17).
fn ctrl_element(msg: &CtrlMessage, profile: Profile) -> Result<Box<[u8]>, PostError> {
    let element = msg
        .encode(profile)
        .map_err(|e| PostError::Encode(e.to_string()))?;
    let len = msg
        .element_len()
        .max(sapi_wire::ctrl::layout::SESSION_EVENT_SIZE)
        .min(element.len());
    Ok(element[..len].into())
}

/// Writes the owner's PCT_FIRST_ALLOC into a new segment's header, before any fifo is made in
/// it (`docs/sessions.md` §7.3, §7.4: VPP sets it in every segment of the app's segment manager).
fn with_first_alloc(seg: Segment, spec: &SegmentSpec) -> Result<Segment, ResourceError> {
    seg.fifo_segment()
        .set_pct_first_alloc(spec.pct_first_alloc)
        .map_err(|e| {
            tracing::warn!(name = %spec.name, error = %e, "segment header not writable");
            ResourceError::SegmentCreate
        })?;
    Ok(seg)
}

/// Whether the fifo at `f` is full, as the server sees it between its two apps.
fn is_full(seg: &Segment, f: u64) -> Result<bool, fifo::FifoError> {
    Ok(fifo::occupancy(seg, f)? == fifo::size(seg, f)?)
}

#[cfg(test)]
mod tests {
    use sapi_core::{AppIndex, IoPeer};

    use super::*;

    /// A cut-through pair over real memfd segments: the reader's and the writer's workers
    /// (each with an eventfd-mode app mq) and fifo A (4 KiB), which the writer fills and the
    /// reader drains; the writer's signals are B's header (as C's shadow TX would be).
    /// Returns the resources, the relay, and A's and B's offsets in segment 2.
    fn ct_pair(faults: InjectedFaults) -> (Resources, Relay, u64, u64) {
        let mut r = Resources::new(1, Profile::Head, faults).expect("resources");
        let spec = |id, name: &str| SegmentSpec {
            id: SegmentId(id),
            name: name.into(),
            requested_size: 4 << 20,
            huge_pages: false,
            pct_first_alloc: 0,
        };
        let worker = |app| WorkerKey {
            app: AppIndex(app),
            wrk: 0,
        };
        for (app, seg) in [(1, 1), (2, 3)] {
            r.create_worker(
                worker(app),
                &WorkerResources {
                    segment: spec(seg, "app"),
                    evt_queue_size: 64,
                    eventfd: true,
                },
            )
            .expect("app mq");
        }
        r.create_segment(&spec(2, "ct")).expect("ct segment");
        let (a, b) = r
            .alloc_fifo_pair(SegmentId(2), 0, 4096, 4096)
            .expect("fifos");
        let at = |offset| FifoRef {
            segment: SegmentId(2),
            offset,
        };
        let relay = Relay {
            writer_signals: at(b),
            reader_signals: at(a),
            data: at(a),
            writer: IoPeer {
                worker: worker(2),
                app_session_index: 5,
            },
            reader: Some(IoPeer {
                worker: worker(1),
                app_session_index: 9,
            }),
        };
        (r, relay, a, b)
    }

    /// Two TX relays in a row to one reader (the shell's half of `docs/sessions.md` §8.3): how
    /// many RX its app mq holds afterwards, and its `has_event`.
    fn two_tx_relays(faults: InjectedFaults) -> (u32, bool) {
        let (mut r, relay, a, _) = ct_pair(faults);
        assert!(r.relay_tx(&relay).failed.is_empty(), "first relay");
        assert!(r.relay_tx(&relay).failed.is_empty(), "second relay");
        let seg = r.segments.get(&SegmentId(2)).expect("ct segment");
        let has_event = Signals::new(seg, a).has_event().expect("A's signals");
        let reader = relay.reader.expect("reader").worker;
        (r.mq_occupancy(reader).expect("reader's mq"), has_event)
    }

    #[test]
    fn a_reader_that_breaks_its_own_mq_answers_for_it_not_the_writer() {
        use sapi_shm::memory::Memory;
        let (mut r, relay, _, _) = ct_pair(InjectedFaults::default());
        let reader = relay.reader.expect("reader").worker;
        let w = r.workers.get(&reader).expect("reader's worker");
        let (segment, mq) = (w.segment, w.mq_offset);
        r.segments
            .get(&segment)
            .expect("reader's segment")
            .write_u32(mq + sapi_shm::layout::mq::N_RINGS, 0)
            .expect("scribble");
        let relayed = r.relay_tx(&relay);
        let blamed: Vec<WorkerKey> = relayed.failed.iter().map(|(w, _)| *w).collect();
        assert_eq!(blamed, vec![reader], "{:?}", relayed.failed);
        assert!(
            matches!(relayed.failed[0].1, PostError::Mq(_)),
            "{:?}",
            relayed.failed
        );
    }

    #[test]
    fn the_relays_say_when_a_writer_waits_for_room() {
        use sapi_shm::fifo::{FifoConsumer, FifoProducer, WANT_DEQ_NOTIF};
        use sapi_shm::layout::fifo as lf;
        use sapi_shm::memory::Memory;

        let (mut r, relay, a, b) = ct_pair(InjectedFaults::default());
        // The writer asks to be told when there is room (its signals are B's header).
        let ask_for_room = |r: &Resources| {
            let seg = r.segments.get(&SegmentId(2)).expect("ct segment");
            seg.atomic_u32(b + lf::WANT_DEQ_NTF)
                .expect("B's signals")
                .store(WANT_DEQ_NOTIF, sapi_shm::sync::Ordering::Release);
        };
        assert!(
            !r.relay_tx(&relay).writer_waits(),
            "nothing asked, nothing full"
        );
        {
            let seg = r.segments.get(&SegmentId(2)).expect("ct segment");
            let mut tx = FifoProducer::attach(seg, a).expect("producer");
            assert_eq!(tx.enqueue(&[7u8; 4096]).expect("enqueue"), 4096, "fills A");
        }
        assert!(
            !r.relay_tx(&relay).writer_waits(),
            "full, but the writer did not ask to be told"
        );
        ask_for_room(&r);
        assert!(
            r.relay_tx(&relay).writer_waits(),
            "full, and asked: it waits"
        );
        let no_reader = Relay {
            reader: None,
            ..relay
        };
        assert!(
            !r.relay_tx(&no_reader).writer_waits(),
            "no reader can answer: no wait to hurry"
        );
        assert!(
            r.relay_rx(&relay).writer_waits(),
            "a notification while still full"
        );
        {
            let seg = r.segments.get(&SegmentId(2)).expect("ct segment");
            let mut rx = FifoConsumer::attach(seg, a).expect("consumer");
            assert_eq!(
                rx.dequeue(&mut [0u8; 1024]).expect("dequeue"),
                1024,
                "drains some"
            );
        }
        assert!(
            !r.relay_rx(&relay).writer_waits(),
            "told there is room: no longer waits"
        );
        assert_eq!(
            r.mq_occupancy(relay.writer.worker),
            Some(1),
            "the writer's TX"
        );
        ask_for_room(&r);
        assert!(
            !r.relay_tx(&relay).writer_waits(),
            "asked, but 3 KiB of 4 are used: the writer has room"
        );
    }

    #[test]
    fn a_short_control_message_zeroes_the_whole_18_byte_header() {
        use sapi_wire::ctrl::{Cleanup, CleanupType};
        let msg = CtrlMessage::Cleanup(Cleanup {
            handle: 0x0100_0000_0000_0007,
            cleanup_type: CleanupType::SESSION,
        });
        assert!(msg.element_len() < 18, "CLEANUP's body is short");
        let element = ctrl_element(&msg, Profile::Head).expect("encodes");
        assert_eq!(element.len(), 18);
        assert!(element[msg.element_len()..].iter().all(|b| *b == 0));
    }

    #[test]
    fn a_second_tx_while_the_readers_has_event_is_set_posts_no_rx() {
        assert_eq!(two_tx_relays(InjectedFaults::default()), (1, true));
    }

    #[test]
    fn fault_rx_without_has_event_posts_rx_for_every_tx_and_leaves_the_flag_clear() {
        let mut faults = InjectedFaults::default();
        faults.insert(InjectedFault::RxWithoutHasEvent);
        assert_eq!(two_tx_relays(faults), (2, false));
    }
}
