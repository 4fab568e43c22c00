//! The instruction-count gate's workloads timed by criterion, single-threaded: the wall-clock
//! view of the same hot paths (wire codec, mq send/receive, fifo copy, attach in the sans-IO
//! core). Each iteration is one operation of `sapi_benches::workloads`, whose setup (a segment,
//! a core with 100 apps) is paid once per sample and spread over its iterations.
//!
//! `SAPI_BENCH_SLOW=1` makes every operation do extra work: the demo of `compare` failing.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sapi_benches::workloads;

fn hotpaths(c: &mut Criterion) {
    let slow = workloads::slow_from_env();
    let mut g = c.benchmark_group("hotpaths");
    g.throughput(Throughput::Elements(1));
    for &name in workloads::NAMES {
        g.bench_function(BenchmarkId::new(name, "op"), |b| {
            b.iter_custom(|iters| {
                let start = std::time::Instant::now();
                workloads::run(name, iters, slow).expect("known workload");
                start.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, hotpaths);
criterion_main!(benches);
