//! Wake-up round trip between two threads that sleep when idle: a message through one mq and
//! the answer through another, each consumer blocked in `recv` — beside a raw eventfd
//! ping-pong (blocking `read`, `write`) between the same two threads. Both ends are pinned,
//! one to CPU 0 and one to CPU 1, for subject and anchor alike (see `sys::pin_to`).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sapi_benches::sys;
use sapi_shm::mq::{self, EventFdSignal, MqConsumer, MqProducer, MqSpec, PthreadSignal};
use sapi_shm::segment::{Segment, SegmentLayout, app_segment_ssvm_size};

const STOP: u8 = 0xff;

fn segment() -> Segment {
    Segment::create(
        "bench-wakeup",
        SegmentLayout {
            ssvm_size: app_segment_ssvm_size(1 << 20),
            n_slices: 1,
        },
    )
    .expect("segment")
}

/// `iters` round trips; the echo thread answers every 18-byte event with one.
fn mq_rtt<S: mq::Signal + Send>(
    seg: &Segment,
    (ping, pong): (u64, u64),
    sig: impl Fn(u64) -> S,
    iters: u64,
) -> Duration {
    let mut tx1 = MqProducer::attach(seg, ping, sig(ping)).expect("tx1");
    let mut rx1 = MqConsumer::attach(seg, ping, sig(ping)).expect("rx1");
    let mut tx2 = MqProducer::attach(seg, pong, sig(pong)).expect("tx2");
    let mut rx2 = MqConsumer::attach(seg, pong, sig(pong)).expect("rx2");
    std::thread::scope(|s| {
        s.spawn(move || {
            sys::pin_to(1);
            let mut buf = [0u8; 256];
            loop {
                rx1.recv(&mut buf, None).expect("ping");
                if buf[0] == STOP {
                    return;
                }
                tx2.send(&buf[..18], None).expect("pong");
            }
        });
        let mut msg = [1u8; 18];
        let mut buf = [0u8; 256];
        sys::pin_to(0);
        let start = Instant::now();
        for _ in 0..iters {
            tx1.send(&msg, None).expect("ping");
            rx2.recv(&mut buf, None).expect("pong");
        }
        let t = start.elapsed();
        sys::unpin();
        msg[0] = STOP;
        tx1.send(&msg, None).expect("stop");
        t
    })
}

fn raw_eventfd_rtt(iters: u64) -> Duration {
    let (a, b) = (sys::eventfd(false), sys::eventfd(false));
    std::thread::scope(|s| {
        s.spawn(|| {
            sys::pin_to(1);
            loop {
                if sys::eventfd_take(a.as_fd()) == 2 {
                    return;
                }
                sys::eventfd_post(b.as_fd(), 1);
            }
        });
        sys::pin_to(0);
        let start = Instant::now();
        for _ in 0..iters {
            sys::eventfd_post(a.as_fd(), 1);
            sys::eventfd_take(b.as_fd());
        }
        let t = start.elapsed();
        sys::unpin();
        sys::eventfd_post(a.as_fd(), 2);
        t
    })
}

fn wakeup_benches(c: &mut Criterion) {
    let seg = segment();
    let ping = mq::create(&seg, &MqSpec::app_event_queue(0)).expect("mq");
    let pong = mq::create(&seg, &MqSpec::app_event_queue(0)).expect("mq");
    let (e1, e2) = (sys::eventfd(true), sys::eventfd(true));
    let mut g = c.benchmark_group("wakeup_rtt");
    g.bench_function(BenchmarkId::new("raw_eventfd", "pingpong"), |b| {
        b.iter_custom(raw_eventfd_rtt)
    });
    g.bench_function(BenchmarkId::new("mq_eventfd", "pingpong"), |b| {
        b.iter_custom(|iters| {
            let sig = |off| EventFdSignal::new(if off == ping { e1.as_fd() } else { e2.as_fd() });
            mq_rtt(&seg, (ping, pong), sig, iters)
        })
    });
    g.bench_function(BenchmarkId::new("mq_mutex", "pingpong"), |b| {
        b.iter_custom(|iters| {
            let sig = |off| PthreadSignal::new(&seg, off).expect("mutex");
            mq_rtt(&seg, (ping, pong), sig, iters)
        })
    });
    g.finish();
}

criterion_group!(benches, wakeup_benches);
criterion_main!(benches);
