//! Attach and fd delivery against the reference server (in a process of its own, serving
//! real sockets), beside a bare `SOCK_SEQPACKET` round trip carrying 3 fds.
//!
//! Group `attach`:
//! * `seqpacket_3fd/rtt` — the anchor: 209 bytes out, 209 bytes and 3 fds (two memfds, an
//!   eventfd) back, between two threads.
//! * `attach_latency/<N>_apps` — connect + ATTACH + reply + 3 fds + both segments mapped, with
//!   N apps already attached (1, 100, 1000: it must stay flat). Between operations, untimed,
//!   the app detaches and an admin round trip waits until the server has freed it.
//! * `attach_rate/<k>_threads` — attach+detach cycles from k client threads, no waiting:
//!   criterion's elements/s is attaches per second.
//! * `worker_add/latency` — connect + ADD_WORKER + reply + fds + segment mapped.
//! * `segment_add/latency` — the admin request, SEND_FDS with the memfd, the segment mapped
//!   and APP_ADD_SEGMENT read from the app's mq.
//!
//! The apps run on CPU 0, the server process and the anchor's responder on CPU 1 (printed
//! with the results).
//!
//! Every latency bench also writes its median and p99 (`latency.json`) next to criterion's
//! estimates, and prints them.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sapi_benches::server::{self, BenchServer};
use sapi_benches::stats::Latencies;
use sapi_benches::{anchors, sys};
use sapi_shm::segment::Segment;

const GROUP: &str = "attach";

static NAMES: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

fn attach_latency(server: &BenchServer, path: &Path, iters: u64, lat: &mut Latencies) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let name = unique("probe");
        let t0 = Instant::now();
        let app = server::attach(path, &name);
        let d = t0.elapsed();
        lat.push(d);
        total += d;
        drop(app);
        server.barrier();
    }
    total
}

fn attach_rate(path: &Path, threads: u64, iters: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let n = iters / threads + u64::from(t < iters % threads);
            s.spawn(move || {
                for _ in 0..n {
                    drop(server::attach(path, &unique("rate")));
                }
            });
        }
    });
    start.elapsed()
}

fn worker_add_latency(path: &Path, app_index: u32, iters: u64, lat: &mut Latencies) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t0 = Instant::now();
        let (sock, wrk, fds) = server::worker_add(path, app_index);
        let seg = Segment::attach(fds.into_iter().next().expect("segment fd")).expect("map");
        let d = t0.elapsed();
        lat.push(d);
        total += d;
        drop(seg);
        server::worker_del(sock, app_index, wrk);
    }
    total
}

fn segment_add_latency(
    server: &BenchServer,
    app: &server::App,
    iters: u64,
    lat: &mut Latencies,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t0 = Instant::now();
        server.segment_add(app.reply.app_index);
        let (seg, handle) = server::receive_segment(app);
        let d = t0.elapsed();
        lat.push(d);
        total += d;
        drop(seg);
        server.segment_del(app.reply.app_index, handle);
        server::drain_event(app);
    }
    total
}

fn attach_benches(c: &mut Criterion) {
    // The apps (this thread, and the rate bench's client threads, which inherit it) on CPU 0,
    // the server and the anchor's responder on CPU 1: unpinned, the anchor alone moved
    // between 4 and 41 µs from run to run on a 2-vCPU VM.
    sys::pin_to(0);
    let server = BenchServer::start(
        Path::new(env!("CARGO_BIN_EXE_sapi-bench-peer")),
        "attach",
        Some(1),
    );
    eprintln!(
        "attach benches: apps pinned to CPU 0, the server and the anchor's responder to CPU 1"
    );
    let path = server.socket_path();
    let mut g = c.benchmark_group(GROUP);
    g.throughput(Throughput::Elements(1));

    let mut lat = Latencies::default();
    g.bench_function(BenchmarkId::new("seqpacket_3fd", "rtt"), |b| {
        b.iter_custom(|iters| anchors::seqpacket_3fd_rtt(iters, &mut lat, Some(1)))
    });
    lat.report(GROUP, "seqpacket_3fd/rtt");

    let mut population: Vec<OwnedFd> = Vec::new();
    let grow_to = |n: usize, population: &mut Vec<OwnedFd>| {
        while population.len() < n {
            population.push(server::attach_minimal(&path, &unique("background")));
        }
        server.barrier();
    };

    grow_to(1, &mut population);
    let mut lat = Latencies::default();
    g.bench_function(BenchmarkId::new("attach_latency", "1_apps"), |b| {
        b.iter_custom(|iters| attach_latency(&server, &path, iters, &mut lat))
    });
    lat.report(GROUP, "attach_latency/1_apps");

    for threads in [1u64, 2] {
        g.bench_function(
            BenchmarkId::new("attach_rate", format!("{threads}_threads")),
            |b| b.iter_custom(|iters| attach_rate(&path, threads, iters)),
        );
        server.barrier();
    }

    let owner = server::attach(&path, &unique("owner"));
    let mut lat = Latencies::default();
    g.bench_function(BenchmarkId::new("worker_add", "latency"), |b| {
        b.iter_custom(|iters| worker_add_latency(&path, owner.reply.app_index, iters, &mut lat))
    });
    lat.report(GROUP, "worker_add/latency");

    let mut lat = Latencies::default();
    g.bench_function(BenchmarkId::new("segment_add", "latency"), |b| {
        b.iter_custom(|iters| segment_add_latency(&server, &owner, iters, &mut lat))
    });
    lat.report(GROUP, "segment_add/latency");
    drop(owner);

    for n in [100usize, 1000] {
        grow_to(n, &mut population);
        let mut lat = Latencies::default();
        let id = format!("{n}_apps");
        g.bench_function(BenchmarkId::new("attach_latency", &id), |b| {
            b.iter_custom(|iters| attach_latency(&server, &path, iters, &mut lat))
        });
        lat.report(GROUP, &format!("attach_latency/{id}"));
    }
    g.finish();
    drop(population);
}

criterion_group!(benches, attach_benches);
criterion_main!(benches);
