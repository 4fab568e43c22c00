//! Ready app segments: memfds created, sized, sealed and mapped, their first pages allocated,
//! before the ATTACH or worker ADD that will take one, so that the request's path holds no
//! `memfd_create`, `ftruncate` or `mmap` (issue #13: those and the first-touch page faults were
//! most of an attach's server time).
//!
//! Owns the [`BlankSegment`]s not handed out yet, at most [`POOL_SIZE`]; dropping the pool
//! unmaps and closes every one of them. A segment leaves the pool only to become a worker's
//! first segment, laid out at that moment for the request (slices, then the app's mq written
//! by the caller into pages already there).
//!
//! Which size it prepares: the `ssvm_size` last asked for (at start the one of SEGMENT_SIZE 0,
//! VPP's 1 MiB default). A request of another size is served on demand as before and turns the
//! oldest ready segment into one of its size, so apps that all attach alike (one VCL
//! configuration) are all served from the pool, and a mix converges to what is asked for.
//!
//! When: [`SegmentPool::refill`] is called once the loop has handled a pass's events — after the
//! replies they produced were sent — and tops the pool up in that same pass, so an event the
//! loop handles later (an admin round trip included) finds it full. A creation that fails (no fd
//! left) is warned about and tried again at a later pass; the pool stays short meanwhile and
//! requests are served on demand.
//!
//! Must never: serve a segment of another size than asked, hand one segment out twice, take a
//! segment back once it was handed out (an app may still map it), decide anything about the
//! protocol, or grow past [`POOL_SIZE`].
//!
//! The memfd name: a prepared segment is created before the app's index is known, so its memfd
//! is named [`READY_SEGMENT_NAME`] instead of the core's `seg-<app>-<wrk>-<n>`. No message carries
//! a worker's first segment's name (the ATTACH and ADD_DEL_WORKER replies have none; only
//! APP_ADD_SEGMENT does, and added segments are not pooled), and segment names are VPP's choice
//! (spec `session-layer.md`: "segment names … are VPP choices; a reference server may differ").

use std::collections::VecDeque;

use sapi_core::WarnBudget;
use sapi_shm::segment::{self, BlankSegment, PAGE_SIZE};

/// Segments kept ready. A burst of more ATTACHes in one loop pass than this is served on
/// demand past the pool; each ready segment costs an fd, a mapping and [`POPULATE_BYTES`].
pub const POOL_SIZE: usize = 4;

/// Bytes of each ready segment allocated ahead: the ssvm and fifo-segment headers, the slices
/// and an app mq of 2048 events (VCL's EVT_QUEUE_SIZE: ~70 KiB) fit well inside.
pub const POPULATE_BYTES: u64 = 64 * PAGE_SIZE;

/// The memfd name of every prepared segment.
pub const READY_SEGMENT_NAME: &str = "seg-ready";

/// The ready segments and what to prepare next.
#[derive(Debug)]
pub struct SegmentPool {
    /// Oldest first.
    ready: VecDeque<BlankSegment>,
    /// `ssvm_size` of the segments prepared from now on.
    size: u64,
    /// A request found no segment of its size in a full pool: the oldest one goes at the next
    /// refill, to make room for one of the size asked for.
    evict_oldest: bool,
    /// Failed creations, warned about within a budget.
    failures: WarnBudget,
}

impl Default for SegmentPool {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentPool {
    /// An empty pool that will prepare segments of SEGMENT_SIZE 0's size.
    pub fn new() -> Self {
        SegmentPool {
            ready: VecDeque::with_capacity(POOL_SIZE),
            size: segment::app_segment_ssvm_size(0),
            evict_oldest: false,
            failures: WarnBudget::default(),
        }
    }

    /// A ready segment of exactly `ssvm_size`, if there is one; either way, `ssvm_size` is what
    /// the pool prepares from now on.
    pub fn take(&mut self, ssvm_size: u64) -> Option<BlankSegment> {
        self.size = ssvm_size;
        match self.ready.iter().position(|s| s.ssvm_size() == ssvm_size) {
            Some(i) => self.ready.remove(i),
            None => {
                self.evict_oldest = self.ready.len() >= POOL_SIZE;
                None
            }
        }
    }

    /// Tops the pool up to [`POOL_SIZE`] with segments of the size last asked for. Off the
    /// request path: the shell calls it once a pass's replies were sent.
    pub fn refill(&mut self) {
        if self.evict_oldest {
            self.evict_oldest = false;
            self.ready.pop_front();
        }
        while self.ready.len() < POOL_SIZE {
            match BlankSegment::create(READY_SEGMENT_NAME, self.size, POPULATE_BYTES) {
                Ok(s) => self.ready.push_back(s),
                Err(e) => {
                    if let Some(suppressed) = self.failures.admit() {
                        tracing::warn!(ssvm_size = self.size, error = %e, suppressed, "cannot prepare a segment; requests are served on demand until one can be");
                    }
                    return;
                }
            }
        }
    }

    /// Whether a refill has something to do.
    pub fn needs_refill(&self) -> bool {
        self.evict_oldest || self.ready.len() < POOL_SIZE
    }

    /// Segments ready now.
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// Whether no segment is ready.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// `ssvm_size` of the segments it prepares.
    pub fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memfds() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .expect("fd dir")
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().contains(READY_SEGMENT_NAME))
            })
            .count()
    }

    // One test: the memfd count of this process is its evidence, so nothing else in this test
    // binary creates prepared segments.
    #[test]
    fn a_pool_fills_drains_refills_follows_the_size_asked_for_and_closes_everything() {
        let default = segment::app_segment_ssvm_size(0);
        let before = memfds();
        let mut pool = SegmentPool::new();
        assert!(pool.is_empty() && pool.needs_refill());
        pool.refill();
        assert_eq!((pool.len(), memfds() - before), (POOL_SIZE, POOL_SIZE));
        let taken: Vec<_> = (0..POOL_SIZE + 1).map(|_| pool.take(default)).collect();
        assert!(taken[..POOL_SIZE].iter().all(Option::is_some));
        assert!(taken[POOL_SIZE].is_none(), "drained: served on demand");
        assert!(pool.is_empty() && pool.needs_refill());
        pool.refill();
        assert_eq!(pool.len(), POOL_SIZE);
        assert_eq!(
            memfds() - before,
            2 * POOL_SIZE,
            "the taken ones and the new ones"
        );
        drop(taken);

        // A size it does not hold is not served, and becomes what it prepares.
        let sixteen = segment::app_segment_ssvm_size(16 << 20);
        assert!(pool.take(sixteen).is_none());
        assert!(
            pool.needs_refill(),
            "the oldest goes for one of the new size"
        );
        pool.refill();
        assert_eq!(pool.len(), POOL_SIZE);
        assert_eq!(pool.size(), sixteen);
        let s = pool.take(sixteen).expect("the new size is ready now");
        assert_eq!(s.ssvm_size(), sixteen);
        let s = s.lay_out(2).expect("laid out");
        assert_eq!(s.ssvm_header().expect("header").ready, 1);
        assert_eq!(s.ssvm_size(), sixteen);
        drop((s, pool));
        assert_eq!(
            memfds(),
            before,
            "nothing left after the pool and its segments went"
        );
    }
}
