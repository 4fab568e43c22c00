//! The server's shared-memory resources: the global VPP mqs segment, every worker's segments,
//! its event mq and its eventfd.
//!
//! Owns each memfd, mapping and eventfd the core refers to by id ([`SegmentId`], [`WorkerKey`]):
//! one owner each, released when the core says so. It must never decide anything: a missing id
//! is skipped (the core may already have freed what a later action names), and everything read
//! back from a segment is treated as written by a hostile app.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::eventfd::{EfdFlags, EventFd};

use sapi_core::{
    CtrlEvent, FdRef, InjectedFault, InjectedFaults, ResourceError, SegmentId, SegmentSpec,
    WorkerKey, WorkerResources, WorkerResourcesReady,
};
use sapi_shm::mq::{self, EventFdSignal, MqError, MqProducer, MqSpec, PthreadSignal};
use sapi_shm::segment::{self, Segment, SegmentLayout};
use sapi_wire::Profile;
use sapi_wire::ctrl::{AppAddSegment, AppDelSegment, SessionEventType};

/// Name of the global mqs segment's memfd, as VPP names it.
pub const VPP_MQS_SEGMENT_NAME: &str = "session: wrk-mqs-segment";
/// Queue length of each VPP ctrl mq (VPP's default and minimum).
pub const VPP_CTRL_MQ_LEN: u32 = 2048;

struct WorkerMq {
    segment: SegmentId,
    mq_offset: u64,
    eventfd: Option<OwnedFd>,
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

/// Every shared-memory object of a running server.
pub struct Resources {
    profile: Profile,
    faults: InjectedFaults,
    vpp_mqs: Segment,
    vpp_mq_offsets: Vec<u64>,
    /// Slices per app segment: one per simulated VPP thread, as VPP.
    n_slices: u8,
    segments: HashMap<SegmentId, Segment>,
    workers: HashMap<WorkerKey, WorkerMq>,
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
            segments: HashMap::new(),
            workers: HashMap::new(),
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
        Segment::create(
            &spec.name,
            SegmentLayout {
                ssvm_size: segment::app_segment_ssvm_size(spec.requested_size),
                n_slices: self.n_slices,
            },
        )
        .map_err(|e| {
            tracing::warn!(name = %spec.name, error = %e, "segment creation failed");
            ResourceError::SegmentCreate
        })
    }

    /// Creates a worker's first segment, its event mq (the segment's first allocation) and,
    /// if asked, its eventfd.
    pub fn create_worker(
        &mut self,
        key: WorkerKey,
        spec: &WorkerResources,
    ) -> Result<WorkerResourcesReady, ResourceError> {
        let seg = self.new_segment(&spec.segment)?;
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

    /// Writes a control event into a worker's mq (ring 1), signalling it as the app asked.
    pub fn post_ctrl_event(&mut self, key: WorkerKey, event: &CtrlEvent) -> Result<(), PostError> {
        let seed = self.profile == Profile::Seed;
        let element = match event {
            CtrlEvent::AppAddSegment {
                segment_size,
                name,
                handle,
            } => {
                let ty = SessionEventType::AppAddSegment.number(seed);
                AppAddSegment {
                    client_index: 0,
                    context: 0,
                    fd_flags: 0x02,
                    segment_size: *segment_size,
                    segment_name: name.as_bytes().to_vec(),
                    segment_handle: *handle,
                }
                .encode_element(ty.unwrap_or_default())
                .map_err(|e| PostError::Encode(e.to_string()))?
            }
            CtrlEvent::AppDelSegment { handle } => {
                let ty = SessionEventType::AppDelSegment.number(seed);
                AppDelSegment {
                    client_index: 0,
                    context: 0,
                    segment_handle: *handle,
                }
                .encode_element(ty.unwrap_or_default())
            }
        };
        let w = self.workers.get(&key).ok_or(PostError::NoWorker)?;
        let seg = self.segments.get(&w.segment).ok_or(PostError::NoWorker)?;
        match &w.eventfd {
            Some(fd) => {
                MqProducer::attach(seg, w.mq_offset, EventFdSignal::new(fd.as_fd()))?
                    .try_send(&element)?;
            }
            None => {
                MqProducer::attach(seg, w.mq_offset, PthreadSignal::new(seg, w.mq_offset)?)?
                    .try_send(&element)?;
            }
        }
        Ok(())
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
    }

    /// Closes a worker's eventfd and forgets its mq.
    pub fn free_worker(&mut self, key: WorkerKey) {
        self.workers.remove(&key);
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
