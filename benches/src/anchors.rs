//! Anchors more than one bench stands beside.
//!
//! Must never: do less work than the subject it stands beside (the round trip carries the
//! three fds an ATTACH reply carries, and the receiver closes them).

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::sys::socket::SockType;
use sapi_shm::segment::{Segment, SegmentLayout};
use sapi_wire::MSG_LEN;

use crate::stats::Latencies;
use crate::{Backoff, sys};

fn memfd_segment() -> Segment {
    Segment::create(
        "bench-anchor",
        SegmentLayout {
            ssvm_size: 1 << 20,
            n_slices: 1,
        },
    )
    .expect("segment")
}

/// The bare `SOCK_SEQPACKET` round trip: `iters` times 209 bytes out and 209 bytes and 3 fds
/// (two memfds, an eventfd) back, between the calling thread and a responder thread; each
/// round trip's time goes into `lat`. With `responder_cpu`, the responder is pinned there
/// (the caller pins itself).
pub fn seqpacket_3fd_rtt(
    iters: u64,
    lat: &mut Latencies,
    responder_cpu: Option<usize>,
) -> Duration {
    let (client, srv) = sys::unix_pair(SockType::SeqPacket);
    let (m1, m2, e) = (memfd_segment(), memfd_segment(), sys::eventfd(true));
    let fds = [m1.fd().as_raw_fd(), m2.fd().as_raw_fd(), e.as_raw_fd()];
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(cpu) = responder_cpu {
                sys::pin_to(cpu);
            }
            let mut buf = [0u8; 512];
            let reply = [2u8; MSG_LEN];
            loop {
                let (n, _) = sys::recv_with_fds(srv.as_fd(), &mut buf);
                if n == 0 {
                    return;
                }
                sys::send_with_fds(srv.as_fd(), &reply, &fds);
            }
        });
        let req = [1u8; MSG_LEN];
        let mut buf = [0u8; 512];
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let t0 = Instant::now();
            sys::send_with_fds(client.as_fd(), &req, &[]);
            let (n, got) = sys::recv_with_fds(client.as_fd(), &mut buf);
            drop(got);
            let d = t0.elapsed();
            assert_eq!(n, MSG_LEN);
            lat.push(d);
            total += d;
        }
        drop(client);
        total
    })
}

/// `rtrb` moving `total` bytes through a ring of `capacity` bytes in writes and reads of `size`
/// bytes placed `delta` apart, with its chunk API and `memcpy` (as its `io::Write` does), the
/// same spin-then-yield wait as the fifo: producer on the calling thread, consumer on a thread
/// pinned to CPU 1. Returns the time from the first write to the last read.
pub fn rtrb_threads(capacity: usize, size: usize, delta: usize, total: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u8>::new(capacity);
    crate::time_pinned_pair(
        size,
        |dst| {
            let mut left = total;
            let mut wait = Backoff::default();
            while left > 0 {
                let n = rx.slots().min(size).min(left as usize);
                if n == 0 {
                    wait.snooze();
                    continue;
                }
                wait.reset();
                let chunk = rx.read_chunk(n).expect("slots checked");
                let (a, b) = chunk.as_slices();
                for part in [a, b] {
                    if !part.is_empty() {
                        let d = dst.congruent(part.as_ptr() as usize, delta, part.len());
                        d.copy_from_slice(part);
                    }
                }
                chunk.commit_all();
                left -= n as u64;
            }
        },
        |src| {
            let mut left = total;
            let mut wait = Backoff::default();
            while left > 0 {
                let n = tx.slots().min(size).min(left as usize);
                if n == 0 {
                    wait.snooze();
                    continue;
                }
                wait.reset();
                let mut chunk = tx.write_chunk_uninit(n).expect("slots checked");
                let (a, b) = chunk.as_mut_slices();
                for part in [a, b] {
                    if !part.is_empty() {
                        let sp = src.congruent(part.as_ptr() as usize, delta, part.len());
                        // SAFETY: `part` is `len` writable bytes of the ring, `sp` as many
                        // readable bytes of our buffer; distinct allocations.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                sp.as_ptr(),
                                part.as_mut_ptr().cast::<u8>(),
                                part.len(),
                            )
                        };
                    }
                }
                // SAFETY: all `n` slots were initialised above.
                unsafe { chunk.commit_all() };
                left -= n as u64;
            }
        },
    )
}
