//! `sapi-benches`: the pieces the criterion benches, the instruction-count gate and the
//! cross-process peer share.
//!
//! Rooms:
//! * [`anchors`] — anchors more than one bench uses (the bare 3-fd `SOCK_SEQPACKET` round trip).
//! * [`buf`] — page-aligned application buffers placed at a chosen distance (mod 4096) from
//!   the bytes they are copied to or from.
//! * [`sys`] — eventfds, pipes, socket pairs, `SCM_RIGHTS` send/receive, the fd limit.
//! * [`fifo_rig`] — a fifo in a memfd segment, and where its next write or read lands.
//! * [`server`] — the reference server in a process of its own, and its clients.
//! * [`peer`] — the bench's other process (`sapi-bench-peer`), pinned to CPU 1.
//! * [`streams`] — sink, source and duplex loops over a session, and over a stream socket.
//! * [`stats`] — per-operation latencies (median, p99) written beside criterion's estimates.
//! * [`wakeup`] — the wake-up round trip through two mqs, and its raw eventfd anchor.
//! * [`workloads`] — the deterministic workloads of the instruction-count gate.
//!
//! Must never: make an anchor do less work than the subject it stands beside, or put a
//! bench-only knob (such as [`workloads::SLOW_ENV`]) into the crates being measured.

pub mod anchors;
pub mod buf;
pub mod fifo_rig;
pub mod peer;
pub mod server;
pub mod stats;
pub mod streams;
pub mod sys;
pub mod wakeup;
pub mod workloads;

/// A single-slice application segment named `name` with room for `requested` bytes of
/// fifos and queues, sized as the reference sizes an app's first segment.
pub fn app_segment(name: &str, requested: u64) -> sapi_shm::segment::Segment {
    use sapi_shm::segment::{Segment, SegmentLayout, app_segment_ssvm_size};
    Segment::create(
        name,
        SegmentLayout {
            ssvm_size: app_segment_ssvm_size(requested),
            n_slices: 1,
        },
    )
    .expect("segment")
}

/// Spin briefly, then give the processor away: the wait of every spinning side in these
/// benches, subject and anchor alike, so that on a 2-core machine shared with builds a waiting
/// thread does not starve the one it waits for.
#[derive(Debug, Default)]
pub struct Backoff(u32);

impl Backoff {
    /// Waits a little longer than last time.
    #[inline]
    pub fn snooze(&mut self) {
        if self.0 < 64 {
            std::hint::spin_loop();
            self.0 += 1;
        } else {
            std::thread::yield_now();
        }
    }

    /// Progress was made: spin again next time.
    #[inline]
    pub fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Times one cross-thread stream: `read` on a thread pinned to CPU 1, `write` on the calling
/// thread (which the caller pins to CPU 0), each with its own page-aligned buffer for windows
/// of `size` bytes, the writer's filled with the pattern. Returns the time from just before
/// the first write to the last read — the same two instants for every subject and anchor.
pub fn time_pinned_pair(
    size: usize,
    read: impl FnOnce(&mut buf::PageBuf) + Send,
    write: impl FnOnce(&mut buf::PageBuf),
) -> std::time::Duration {
    let mut src = buf::PageBuf::for_windows(size);
    src.fill_pattern();
    let mut dst = buf::PageBuf::for_windows(size);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            sys::pin_to(1);
            read(&mut dst);
            std::time::Instant::now()
        });
        let start = std::time::Instant::now();
        write(&mut src);
        reader.join().expect("reader") - start
    })
}
