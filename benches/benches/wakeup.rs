//! Wake-up round trip between two threads that sleep when idle, through two mqs (eventfd mode
//! and mutex mode), beside a raw eventfd ping-pong between the same two threads
//! ([`sapi_benches::wakeup`]). Both ends are pinned, one to CPU 0 and one to CPU 1, for
//! subject and anchor alike. `paired wakeup` runs the same three in alternating rounds.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sapi_benches::wakeup::WakeupRig;

fn wakeup_benches(c: &mut Criterion) {
    let rig = WakeupRig::new();
    let mut g = c.benchmark_group("wakeup_rtt");
    g.bench_function(BenchmarkId::new("raw_eventfd", "pingpong"), |b| {
        b.iter_custom(|iters| rig.raw_eventfd(iters))
    });
    g.bench_function(BenchmarkId::new("mq_eventfd", "pingpong"), |b| {
        b.iter_custom(|iters| rig.mq_eventfd(iters))
    });
    g.bench_function(BenchmarkId::new("mq_mutex", "pingpong"), |b| {
        b.iter_custom(|iters| rig.mq_mutex(iters))
    });
    g.finish();
}

criterion_group!(benches, wakeup_benches);
criterion_main!(benches);
