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
//! Which sizes it prepares: those of the last [`POOL_SIZE`] requests, as many of each as they
//! asked for (at start SEGMENT_SIZE 0's, VPP's 1 MiB default, four times). A request of a size
//! the pool does not hold is served on demand as before, and at the next refill one ready
//! segment no recent request wants makes way for one of its size: apps that all attach alike
//! (one VCL configuration) are all served from the pool after the first, and a mix of two sizes
//! is served from it too.
//!
//! When: [`SegmentPool::refill`] is called once the loop has handled a pass's events — after the
//! replies they produced were sent — and tops the pool up in that same pass, so an event the
//! loop handles later (an admin round trip included) finds it full. A size that cannot be
//! prepared (no address space for it) gives its slots to the default size; a creation of the
//! default size that fails (no fd left) is warned about and tried again at a later pass; the pool
//! stays short meanwhile and requests are served on demand.
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
use sapi_shm::SegmentError;
use sapi_shm::segment::{self, BlankSegment, PAGE_SIZE};

/// Segments kept ready. A burst of more ATTACHes in one loop pass than this is served on
/// demand past the pool; each ready segment costs an fd, a mapping and [`POPULATE_BYTES`].
pub const POOL_SIZE: usize = 4;

/// Bytes of each ready segment allocated ahead: what laying it out writes — the ssvm header
/// (page 0), the fifo-segment header and slices (page 2), and an app mq of up to 2048 events
/// (VCL's EVT_QUEUE_SIZE), whose queue and ring headers lie within ~55 KiB of its start. Each
/// page populated stays with the app for its life (the mq's ring pages are written anyway as
/// events flow), so no more than that: 256 KiB would be 256 MiB more resident for 1,000 apps.
pub const POPULATE_BYTES: u64 = 16 * PAGE_SIZE;

/// The memfd name of every prepared segment.
pub const READY_SEGMENT_NAME: &str = "seg-ready";

/// The ready segments and what to prepare next.
#[derive(Debug)]
pub struct SegmentPool {
    /// Oldest first.
    ready: VecDeque<BlankSegment>,
    /// `ssvm_size` of the last [`POOL_SIZE`] requests, oldest first: the pool's composition.
    recent: VecDeque<u64>,
    /// Whether a request changed what the pool should hold since the last refill.
    changed: bool,
    /// Failed creations, warned about within a budget.
    failures: WarnBudget,
}

impl Default for SegmentPool {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentPool {
    /// An empty pool that will prepare [`POOL_SIZE`] segments of SEGMENT_SIZE 0's size.
    pub fn new() -> Self {
        SegmentPool {
            ready: VecDeque::with_capacity(POOL_SIZE),
            recent: std::iter::repeat_n(segment::app_segment_ssvm_size(0), POOL_SIZE).collect(),
            changed: true,
            failures: WarnBudget::default(),
        }
    }

    /// A ready segment of exactly `ssvm_size`, if there is one; either way, `ssvm_size` counts
    /// among the recent requests the pool prepares for.
    pub fn take(&mut self, ssvm_size: u64) -> Option<BlankSegment> {
        if self.recent.len() >= POOL_SIZE {
            self.recent.pop_front();
        }
        self.recent.push_back(ssvm_size);
        self.changed = true;
        let i = self.ready.iter().position(|s| s.ssvm_size() == ssvm_size)?;
        self.ready.remove(i)
    }

    /// Makes the pool hold what the recent requests asked for: ready segments no recent request
    /// wants are unmapped and closed, the missing ones created. Off the request path: the shell
    /// calls it once a pass's replies were sent.
    pub fn refill(&mut self) {
        let mut missing: Vec<u64> = self.recent.iter().copied().collect();
        self.ready.retain(|s| {
            match missing.iter().position(|m| *m == s.ssvm_size()) {
                Some(i) => {
                    missing.swap_remove(i);
                    true
                }
                // Dropped: unmapped and closed now, between two passes.
                None => false,
            }
        });
        let default = segment::app_segment_ssvm_size(0);
        for size in missing {
            let made =
                BlankSegment::create(READY_SEGMENT_NAME, size, POPULATE_BYTES).or_else(|e| {
                    self.warn_failure(size, &e);
                    if size == default {
                        return Err(e);
                    }
                    // A size that cannot be prepared (no address space for it) is not asked for
                    // again at every pass: its slots go to the default size.
                    for r in self.recent.iter_mut().filter(|r| **r == size) {
                        *r = default;
                    }
                    BlankSegment::create(READY_SEGMENT_NAME, default, POPULATE_BYTES).inspect_err(
                        |e| {
                            self.warn_failure(default, e);
                        },
                    )
                });
            match made {
                Ok(s) => self.ready.push_back(s),
                // No fd left, most likely: tried again at the next pass.
                Err(_) => return,
            }
        }
        self.changed = false;
    }

    fn warn_failure(&mut self, ssvm_size: u64, e: &SegmentError) {
        if let Some(suppressed) = self.failures.admit() {
            tracing::warn!(ssvm_size, error = %e, suppressed, "cannot prepare a segment; requests of its size are served on demand");
        }
    }

    /// Whether a refill has something to do.
    pub fn needs_refill(&self) -> bool {
        self.changed || self.ready.len() < POOL_SIZE
    }

    /// Segments ready now.
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// Whether no segment is ready.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// `ssvm_size` of each ready segment, oldest first.
    pub fn sizes(&self) -> Vec<u64> {
        self.ready.iter().map(BlankSegment::ssvm_size).collect()
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

        // A size it does not hold is not served, and comes to be prepared.
        let sixteen = segment::app_segment_ssvm_size(16 << 20);
        assert!(pool.take(sixteen).is_none());
        assert!(pool.needs_refill());
        pool.refill();
        assert_eq!(pool.sizes(), [default, default, default, sixteen]);
        let s = pool.take(sixteen).expect("the new size is ready now");
        pool.refill();
        assert_eq!(
            pool.sizes(),
            [default, default, sixteen, sixteen],
            "as many of each size as the last {POOL_SIZE} requests asked for"
        );
        for _ in 0..POOL_SIZE {
            assert!(pool.take(sixteen).is_some());
            pool.refill();
        }
        assert_eq!(
            pool.sizes(),
            [sixteen; POOL_SIZE],
            "one size asked for: all of it"
        );
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
