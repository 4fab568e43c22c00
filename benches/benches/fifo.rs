//! fifo throughput beside its anchors, per write size, at two distances (mod 4096) between
//! the application buffer and the bytes it is copied to or from: `aligned` (equal) and
//! `16apart` — where glibc's `memcpy` falls off its cliff.
//!
//! Each group is one write size; every member moves the same bytes in writes (and reads) of
//! that size, with the same spin-then-yield wait when full or empty:
//! * `fifo` — the svm fifo in a memfd segment (4 MiB, grown and recycled in chunks),
//!   producer and consumer threads; `fifo_xproc` — the consumer in another process.
//! * `rtrb` — its chunk API, 4 MiB ring, bytes copied with `memcpy` as its `io::Write` does;
//!   `rtrb_ring128KiB` (aligned only) — the same over the fifo's working set (a control);
//!   `fifo_grow1MiB` (aligned only) — the fifo grown and recycled 1 MiB at a time instead of
//!   64 KiB, its working set about `rtrb`'s (a control).
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
use sapi_benches::fifo_rig::{self, FifoRig};
use sapi_benches::peer::Peer;
use sapi_benches::{Backoff, sys};

const SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];
const DELTAS: [(usize, &str); 2] = [(0, "aligned"), (16, "16apart")];
const CAPACITY: usize = 4 << 20;
/// What a 4 MiB fifo whose reader keeps up cycles through: its 64 KiB `min_alloc` chunks are
/// recycled last in, first out, so the writer reuses the two most recently drained ones. The
/// `rtrb_ring128KiB` control runs `rtrb` over that footprint, to show what reusing lines the
/// reader's cache still holds costs a ring with no chunks at all.
const FIFO_WORKING_SET: usize = 128 << 10;
/// The growth step of the `fifo_grow1MiB` control: a quarter of the fifo, so its two chunks in
/// flight span as much memory as `rtrb`'s ring.
const GROWTH_CONTROL: u32 = 1 << 20;
fn fifo_threads(rig: &FifoRig, size: usize, delta: usize, iters: u64) -> Duration {
    let total = iters * size as u64;
    let mut src = PageBuf::for_windows(size);
    src.fill_pattern();
    let mut dst = PageBuf::for_windows(size);
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            sys::pin_to(1);
            fifo_rig::consume(&rig.seg, rig.fifo, size, delta, total, &mut dst);
            Instant::now()
        });
        let start = Instant::now();
        fifo_rig::produce(&rig.seg, rig.fifo, size, delta, total, &mut src);
        consumer.join().expect("consumer") - start
    })
}

fn fifo_xproc(rig: &FifoRig, peer: &Peer, size: usize, delta: usize, iters: u64) -> Duration {
    let total = iters * size as u64;
    let mut src = PageBuf::for_windows(size);
    src.fill_pattern();
    let start = Instant::now();
    peer.call(&[1, rig.fifo, size as u64, delta as u64, total], &[]);
    fifo_rig::produce(&rig.seg, rig.fifo, size, delta, total, &mut src);
    peer.wait_done();
    start.elapsed()
}

fn rtrb_threads(capacity: usize, size: usize, delta: usize, iters: u64) -> Duration {
    let total = iters * size as u64;
    let (mut tx, mut rx) = rtrb::RingBuffer::<u8>::new(capacity);
    let mut src = PageBuf::for_windows(size);
    src.fill_pattern();
    let mut dst = PageBuf::for_windows(size);
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            sys::pin_to(1);
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
            Instant::now()
        });
        let start = Instant::now();
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
                    // SAFETY: `part` is `len` writable bytes of the ring, `sp` as many readable
                    // bytes of our buffer; distinct allocations.
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
        consumer.join().expect("consumer") - start
    })
}

/// Writer thread and reader (thread or peer process) over a byte stream fd pair.
fn stream_threads(rd: OwnedFd, wr: OwnedFd, size: usize, delta: usize, iters: u64) -> Duration {
    let total = iters * size as u64;
    let mut src = PageBuf::for_windows(size);
    src.fill_pattern();
    let mut dst = PageBuf::for_windows(size);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            sys::pin_to(1);
            let mut left = total;
            let d = dst.congruent(0, delta, size);
            while left > 0 {
                let n = size.min(left as usize);
                let got = sys::read_some(rd.as_fd(), &mut d[..n]);
                assert!(got > 0, "stream closed early");
                left -= got as u64;
            }
            Instant::now()
        });
        let start = Instant::now();
        let sbuf = src.congruent(0, delta, size);
        let mut left = total;
        while left > 0 {
            let n = size.min(left as usize);
            sys::write_all(wr.as_fd(), &sbuf[..n]);
            left -= n as u64;
        }
        reader.join().expect("reader") - start
    })
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
    let rig_grow1mib = FifoRig::with_min_alloc(CAPACITY as u32, GROWTH_CONTROL);
    let peer = Peer::spawn(Path::new(env!("CARGO_BIN_EXE_sapi-bench-peer")), &[]);
    peer.call(&[0], &[rig.seg.fd().as_raw_fd()]);
    for (size, size_name) in SIZES {
        let mut g = c.benchmark_group(format!("fifo_{size_name}"));
        g.throughput(Throughput::Bytes(size as u64));
        for (delta, dname) in DELTAS {
            g.bench_function(BenchmarkId::new("fifo", dname), |b| {
                b.iter_custom(|iters| fifo_threads(&rig, size, delta, iters))
            });
            g.bench_function(BenchmarkId::new("fifo_xproc", dname), |b| {
                b.iter_custom(|iters| fifo_xproc(&rig, &peer, size, delta, iters))
            });
            g.bench_function(BenchmarkId::new("rtrb", dname), |b| {
                b.iter_custom(|iters| rtrb_threads(CAPACITY, size, delta, iters))
            });
            if delta == 0 {
                g.bench_function(BenchmarkId::new("rtrb_ring128KiB", dname), |b| {
                    b.iter_custom(|iters| rtrb_threads(FIFO_WORKING_SET, size, delta, iters))
                });
                g.bench_function(BenchmarkId::new("fifo_grow1MiB", dname), |b| {
                    b.iter_custom(|iters| fifo_threads(&rig_grow1mib, size, delta, iters))
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
