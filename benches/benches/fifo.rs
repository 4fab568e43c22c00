//! fifo throughput beside its anchors, per write size, at two distances (mod 4096) between
//! the application buffer and the bytes it is copied to or from: `aligned` (equal) and
//! `16apart` — where glibc's `memcpy` falls off its cliff.
//!
//! Each group is one write size; every member moves the same bytes in writes (and reads) of
//! that size, with the same spin-then-yield wait when full or empty:
//! * `fifo` — the svm fifo in a memfd segment (4 MiB, grown and recycled in chunks),
//!   producer and consumer threads; `fifo_xproc` — the consumer in another process.
//! * `rtrb` — its chunk API, 4 MiB ring, bytes copied with `memcpy` as its `io::Write` does;
//!   `rtrb_ring128KiB` (aligned only) — the same over the footprint of a fifo whose reader
//!   frees each chunk at once, as VPP's does (a control: what that recycling would cost).
//! * `memcpy` — glibc `memcpy` of one write, one thread (the physical limit of one copy);
//!   `copy_rs` — the fifo's own copy routine (`shm::copy`) on the same buffers.
//! * `socketpair` — `AF_UNIX SOCK_STREAM`, `pipe` — a pipe (1 MiB, the system maximum), and
//!   `pipe_xproc` with the reader in another process. Their `delta` is from a page boundary,
//!   the kernel's own buffers being page-aligned.
//!
//! `SAPI_BENCH_COPY=avx2` (or `rep_movsb`, `sse2`, `memcpy`) forces `shm::copy`'s routine in this
//! process and the peer, to measure the one chosen for the CPU against the others.
//!
//! Every writer runs on CPU 0 and every reader (thread or peer process) on CPU 1, subject and
//! anchors alike: where the host places two vCPUs changes a cache-line round trip between
//! them from ~110 ns to 500–700 ns, and unpinned runs of one bench swung 0.22–1.40× `rtrb`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nix::sys::socket::SockType;
use sapi_benches::buf::PageBuf;
use sapi_benches::fifo_rig::{self, FifoRig, Pace};
use sapi_benches::peer::Peer;
use sapi_benches::{anchors, sys};

const SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];
const DELTAS: [(usize, &str); 2] = [(0, "aligned"), (16, "16apart")];
const CAPACITY: usize = 4 << 20;
/// What a 4 MiB fifo whose reader keeps up would cycle through if the reader freed each 64 KiB
/// `min_alloc` chunk as it finished it (VPP's reader; the free lists are last in, first out,
/// so the writer would reuse the two most recently drained ones). The `rtrb_ring128KiB`
/// control runs `rtrb` over that footprint: what reusing lines the reader's cache still holds
/// costs a ring with no chunks at all, and why ours keeps finished chunks at a distance
/// (`sapi_shm::fifo::RECYCLE_DISTANCE`).
const EAGER_RECYCLING_FOOTPRINT: usize = 128 << 10;

fn fifo_xproc(rig: &FifoRig, peer: &Peer, size: usize, delta: usize, iters: u64) -> Duration {
    let total = iters * size as u64;
    let mut src = PageBuf::for_windows(size);
    src.fill_pattern();
    let start = Instant::now();
    peer.call(&[1, rig.fifo, size as u64, delta as u64, total], &[]);
    let pace = Pace {
        window: size,
        delta,
        total,
    };
    fifo_rig::produce(&rig.seg, rig.fifo, pace, &mut src);
    peer.wait_done();
    start.elapsed()
}

/// Writer thread and reader (thread or peer process) over a byte stream fd pair.
fn stream_threads(rd: OwnedFd, wr: OwnedFd, size: usize, delta: usize, iters: u64) -> Duration {
    let total = iters * size as u64;
    sapi_benches::time_pinned_pair(
        size,
        |dst| {
            let mut left = total;
            let d = dst.congruent(0, delta, size);
            while left > 0 {
                let n = size.min(left as usize);
                let got = sys::read_some(rd.as_fd(), &mut d[..n]);
                assert!(got > 0, "stream closed early");
                left -= got as u64;
            }
        },
        |src| {
            let sbuf = src.congruent(0, delta, size);
            let mut left = total;
            while left > 0 {
                let n = size.min(left as usize);
                sys::write_all(wr.as_fd(), &sbuf[..n]);
                left -= n as u64;
            }
        },
    )
}

fn pipe_xproc(peer: &Peer, size: usize, delta: usize, iters: u64) -> Duration {
    let total = iters * size as u64;
    let (rd, wr) = sys::pipe(1 << 20);
    let mut src = PageBuf::for_windows(size);
    src.fill_pattern();
    let sbuf = src.congruent(0, delta, size);
    let start = Instant::now();
    peer.call(&[2, size as u64, total], &[rd.as_raw_fd()]);
    drop(rd);
    let mut left = total;
    while left > 0 {
        let n = size.min(left as usize);
        sys::write_all(wr.as_fd(), &sbuf[..n]);
        left -= n as u64;
    }
    peer.wait_done();
    start.elapsed()
}

fn copy_once(size: usize, delta: usize, use_copy_rs: bool) -> impl FnMut(u64) -> Duration {
    let mut dst = PageBuf::for_windows(size);
    let mut src = PageBuf::for_windows(size);
    src.fill_pattern();
    move |iters| {
        let d = dst.congruent(0, 0, size).as_mut_ptr();
        let s = src.congruent(d as usize, delta, size).as_ptr();
        let start = Instant::now();
        for _ in 0..iters {
            let (d, s) = (std::hint::black_box(d), std::hint::black_box(s));
            // SAFETY: `size` bytes inside two distinct allocations.
            unsafe {
                if use_copy_rs {
                    sapi_shm::copy::copy_nonoverlapping(d, s, size);
                } else {
                    std::ptr::copy_nonoverlapping(s, d, size);
                }
            }
        }
        start.elapsed()
    }
}

fn fifo_benches(c: &mut Criterion) {
    sys::pin_to(0);
    let (routine, forced) = sys::copy_routine_from_env();
    eprintln!(
        "fifo benches: producer pinned to CPU 0, consumer (thread or peer process) to CPU 1; \
         bulk copy routine {routine:?} ({})",
        if forced {
            "forced by SAPI_BENCH_COPY"
        } else {
            "chosen for this CPU"
        }
    );
    let rig = FifoRig::new(CAPACITY as u32);
    let peer = Peer::spawn(Path::new(env!("CARGO_BIN_EXE_sapi-bench-peer")), &[]);
    peer.call(&[0], &[rig.seg.fd().as_raw_fd()]);
    for (size, size_name) in SIZES {
        let mut g = c.benchmark_group(format!("fifo_{size_name}"));
        g.throughput(Throughput::Bytes(size as u64));
        for (delta, dname) in DELTAS {
            g.bench_function(BenchmarkId::new("fifo", dname), |b| {
                b.iter_custom(|iters| fifo_rig::threads(&rig, size, delta, iters * size as u64))
            });
            g.bench_function(BenchmarkId::new("fifo_xproc", dname), |b| {
                b.iter_custom(|iters| fifo_xproc(&rig, &peer, size, delta, iters))
            });
            g.bench_function(BenchmarkId::new("rtrb", dname), |b| {
                b.iter_custom(|iters| {
                    anchors::rtrb_threads(CAPACITY, size, delta, iters * size as u64)
                })
            });
            if delta == 0 {
                g.bench_function(BenchmarkId::new("rtrb_ring128KiB", dname), |b| {
                    b.iter_custom(|iters| {
                        anchors::rtrb_threads(
                            EAGER_RECYCLING_FOOTPRINT,
                            size,
                            delta,
                            iters * size as u64,
                        )
                    })
                });
            }
            g.bench_function(BenchmarkId::new("memcpy", dname), |b| {
                b.iter_custom(copy_once(size, delta, false))
            });
            g.bench_function(BenchmarkId::new("copy_rs", dname), |b| {
                b.iter_custom(copy_once(size, delta, true))
            });
            g.bench_function(BenchmarkId::new("socketpair", dname), |b| {
                b.iter_custom(|iters| {
                    let (rd, wr) = sys::unix_pair(SockType::Stream);
                    stream_threads(rd, wr, size, delta, iters)
                })
            });
            g.bench_function(BenchmarkId::new("pipe", dname), |b| {
                b.iter_custom(|iters| {
                    let (rd, wr) = sys::pipe(1 << 20);
                    stream_threads(rd, wr, size, delta, iters)
                })
            });
            g.bench_function(BenchmarkId::new("pipe_xproc", dname), |b| {
                b.iter_custom(|iters| pipe_xproc(&peer, size, delta, iters))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, fifo_benches);
criterion_main!(benches);
