//! mq throughput cross-thread (messages/s) beside `crossbeam-queue::ArrayQueue` and `rtrb`
//! holding the same items, for 18-byte IO events and 256-byte control events.
//!
//! Every queue holds 256 items (the mq: 256 handles, rings of 256 × 18 and 256 × 256 bytes,
//! `workloads::bench_mq_spec`).
//! The producer retries a full queue with the shared spin-then-yield wait. The consumer:
//! * `spin` — polls (`try_recv` / `pop`) with the same wait: the anchors' only mode;
//! * `block` — the mq's `recv`, sleeping on its signal (eventfd, or the shared
//!   mutex/condvar) when empty: what an application does;
//! * `batch64` — `try_send_batch` / `try_recv_batch` of up to 64 messages (one counter update
//!   and at most one signal per batch; VPP's consumers dequeue in batches too), beside `rtrb`
//!   moving the same items in chunks of up to 64.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;
use sapi_benches::{Backoff, sys, workloads};
use sapi_shm::mq::{self, EventFdSignal, MqConsumer, MqError, MqProducer, PthreadSignal, Signal};
use sapi_shm::segment::Segment;

const DEPTH: u32 = 256;
/// Most messages one batched call moves.
const BATCH: usize = 64;

fn segment() -> Segment {
    sapi_benches::app_segment("bench-mq", 1 << 20)
}

fn run_mq<S: Signal + Send>(
    seg: &Segment,
    off: u64,
    tx_signal: S,
    rx_signal: S,
    size: usize,
    block: bool,
    iters: u64,
) -> Duration {
    let msg = [0x5au8; 256];
    let mut tx = MqProducer::attach(seg, off, tx_signal).expect("tx");
    let mut rx = MqConsumer::attach(seg, off, rx_signal).expect("rx");
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            sys::pin_to(1);
            let mut buf = [0u8; 256];
            let mut wait = Backoff::default();
            let mut got = 0;
            while got < iters {
                let r = if block {
                    rx.recv(&mut buf, None)
                } else {
                    rx.try_recv(&mut buf)
                };
                match r {
                    Ok(_) => {
                        got += 1;
                        wait.reset();
                    }
                    Err(MqError::Empty) => wait.snooze(),
                    Err(e) => panic!("recv: {e}"),
                }
            }
            std::hint::black_box(buf);
            Instant::now()
        });
        let start = Instant::now();
        let mut wait = Backoff::default();
        for _ in 0..iters {
            loop {
                match tx.try_send(&msg[..size]) {
                    Ok(()) => break,
                    Err(MqError::Full | MqError::Busy) => wait.snooze(),
                    Err(e) => panic!("send: {e}"),
                }
            }
            wait.reset();
        }
        consumer.join().expect("consumer") - start
    })
}

/// Batches of up to [`BATCH`] both ways: `try_send_batch` and `try_recv_batch`.
fn run_mq_batch<S: Signal + Send, const N: usize>(
    seg: &Segment,
    off: u64,
    tx_signal: S,
    rx_signal: S,
    iters: u64,
) -> Duration {
    let body = [0x5au8; N];
    let msgs = [&body[..]; BATCH];
    let mut tx = MqProducer::attach(seg, off, tx_signal).expect("tx");
    let mut rx = MqConsumer::attach(seg, off, rx_signal).expect("rx");
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            sys::pin_to(1);
            let mut out = [[0u8; N]; BATCH];
            let mut wait = Backoff::default();
            let mut got = 0;
            while got < iters {
                match rx.try_recv_batch(&mut out) {
                    Ok(n) => {
                        got += n as u64;
                        wait.reset();
                    }
                    Err(MqError::Empty) => wait.snooze(),
                    Err(e) => panic!("recv: {e}"),
                }
            }
            std::hint::black_box(out);
            Instant::now()
        });
        let start = Instant::now();
        let mut wait = Backoff::default();
        let mut sent = 0;
        while sent < iters {
            let want = (iters - sent).min(BATCH as u64) as usize;
            match tx.try_send_batch(&msgs[..want]) {
                Ok(n) => {
                    sent += n as u64;
                    wait.reset();
                }
                Err(MqError::Full | MqError::Busy) => wait.snooze(),
                Err(e) => panic!("send: {e}"),
            }
        }
        consumer.join().expect("consumer") - start
    })
}

/// `rtrb` moving the same items in chunks of up to [`BATCH`] (`write_chunk_uninit`,
/// `read_chunk`): the batched anchor.
fn run_rtrb_chunks<const N: usize>(iters: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; N]>::new(DEPTH as usize);
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            sys::pin_to(1);
            let mut wait = Backoff::default();
            let mut got = 0;
            while got < iters {
                let n = rx.slots().min(BATCH);
                if n == 0 {
                    wait.snooze();
                    continue;
                }
                let chunk = rx.read_chunk(n).expect("slots were counted");
                for item in chunk {
                    std::hint::black_box(item);
                }
                got += n as u64;
                wait.reset();
            }
            Instant::now()
        });
        let start = Instant::now();
        let mut wait = Backoff::default();
        let mut sent = 0;
        while sent < iters {
            let n = tx.slots().min(BATCH).min((iters - sent) as usize);
            if n == 0 {
                wait.snooze();
                continue;
            }
            let chunk = tx.write_chunk_uninit(n).expect("slots were counted");
            let filled = chunk.fill_from_iter(std::iter::repeat(std::hint::black_box([0x5au8; N])));
            sent += filled as u64;
            wait.reset();
        }
        consumer.join().expect("consumer") - start
    })
}

fn run_array_queue<const N: usize>(iters: u64) -> Duration {
    let q = ArrayQueue::<[u8; N]>::new(DEPTH as usize);
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            sys::pin_to(1);
            let mut wait = Backoff::default();
            let mut got = 0;
            while got < iters {
                match q.pop() {
                    Some(item) => {
                        std::hint::black_box(item);
                        got += 1;
                        wait.reset();
                    }
                    None => wait.snooze(),
                }
            }
            Instant::now()
        });
        let start = Instant::now();
        let mut wait = Backoff::default();
        for _ in 0..iters {
            let mut item = [0x5au8; N];
            while let Err(back) = q.push(std::hint::black_box(item)) {
                item = back;
                wait.snooze();
            }
            wait.reset();
        }
        consumer.join().expect("consumer") - start
    })
}

fn run_rtrb<const N: usize>(iters: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; N]>::new(DEPTH as usize);
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            sys::pin_to(1);
            let mut wait = Backoff::default();
            let mut got = 0;
            while got < iters {
                match rx.pop() {
                    Ok(item) => {
                        std::hint::black_box(item);
                        got += 1;
                        wait.reset();
                    }
                    Err(_) => wait.snooze(),
                }
            }
            Instant::now()
        });
        let start = Instant::now();
        let mut wait = Backoff::default();
        for _ in 0..iters {
            let mut item = [0x5au8; N];
            while let Err(rtrb::PushError::Full(back)) = tx.push(std::hint::black_box(item)) {
                item = back;
                wait.snooze();
            }
            wait.reset();
        }
        consumer.join().expect("consumer") - start
    })
}

/// The group for items of `N` bytes: the mq in both signal modes, single (`spin`, `block`)
/// and batched, beside ArrayQueue and rtrb holding `[u8; N]`.
fn item_benches<const N: usize>(
    c: &mut Criterion,
    name: &str,
    seg: &Segment,
    off: u64,
    efd: &OwnedFd,
) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    for (block, mode) in [(false, "spin"), (true, "block")] {
        g.bench_function(BenchmarkId::new("mq_eventfd", mode), |b| {
            b.iter_custom(|iters| {
                let tx = EventFdSignal::new(efd.as_fd());
                let rx = EventFdSignal::new(efd.as_fd());
                run_mq(seg, off, tx, rx, N, block, iters)
            })
        });
        g.bench_function(BenchmarkId::new("mq_mutex", mode), |b| {
            b.iter_custom(|iters| {
                let tx = PthreadSignal::new(seg, off).expect("mutex");
                let rx = PthreadSignal::new(seg, off).expect("mutex");
                run_mq(seg, off, tx, rx, N, block, iters)
            })
        });
    }
    let batch = format!("batch{BATCH}");
    g.bench_function(BenchmarkId::new("mq_eventfd", &batch), |b| {
        b.iter_custom(|iters| {
            let tx = EventFdSignal::new(efd.as_fd());
            let rx = EventFdSignal::new(efd.as_fd());
            run_mq_batch::<_, N>(seg, off, tx, rx, iters)
        })
    });
    g.bench_function(BenchmarkId::new("array_queue", "spin"), |b| {
        b.iter_custom(run_array_queue::<N>)
    });
    g.bench_function(BenchmarkId::new("rtrb", "spin"), |b| {
        b.iter_custom(run_rtrb::<N>)
    });
    g.bench_function(BenchmarkId::new("rtrb", &batch), |b| {
        b.iter_custom(run_rtrb_chunks::<N>)
    });
    g.finish();
}

fn mq_benches(c: &mut Criterion) {
    sys::pin_to(0);
    eprintln!("mq benches: producer pinned to CPU 0, consumer thread to CPU 1");
    let seg = segment();
    let off = mq::create(&seg, &workloads::bench_mq_spec()).expect("mq");
    let efd = sys::eventfd(true);
    item_benches::<18>(c, "mq_18B", &seg, off, &efd);
    item_benches::<256>(c, "mq_256B", &seg, off, &efd);
}

criterion_group!(benches, mq_benches);
criterion_main!(benches);
