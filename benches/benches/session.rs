//! Sessions through the reference server, between two processes, beside their anchors.
//!
//! The reference runs in a process of its own (`sapi-bench-peer serve`); the accepting app is
//! `sapi-bench-peer` (over `sapi-app`) pinned to CPU 1; this bench is the connecting app, on
//! CPU 0. Both apps use `sapi-app` as any app would: 64 KiB writes and reads, waits in
//! `App::poll` on the app mq's eventfd (the server relays the io events).
//!
//! Groups `session_<fifo>_one_way` and `session_<fifo>_both_ways` (fifo: 4 MiB, 1 MiB, the
//! accepting app's rx and tx fifo size, which the ct session's fifos take):
//! * `session` — the subject: bytes written by one app and read by the other, checked for
//!   count only (the real-process tests check every byte).
//! * `fifo_xproc` — the raw fifo: the same bytes through a fifo of the same size in a memfd
//!   segment mapped by both processes, no server, no events, spin-then-yield waits. The
//!   session path's target is ≥ 0.9× this, one way and both ways.
//! * 4 MiB only: `socketpair_xproc` (`AF_UNIX SOCK_STREAM`), `pipe_xproc` (one way; a 1 MiB
//!   pipe) and `memcpy` (one way: one 64 KiB copy, one thread — the physical limit).
//!
//! Both-ways throughput counts the bytes of both directions (each side writes and reads
//! `total` bytes from one thread).
//!
//! Group `session_setup`:
//! * `seqpacket_3fd/rtt` — the anchor: a bare 3-fd `SOCK_SEQPACKET` round trip, responder
//!   pinned to CPU 1.
//! * `connect/latency` — CONNECT posted → CONNECTED handled (the accepting app accepts in its
//!   own process): median and p99 printed and written to `latency.json`; the close after it
//!   is not timed.
//! * `connect_close/cycle` — connect, then close and wait for CLEANUP: criterion's elements/s
//!   is connects per second.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nix::sys::socket::SockType;
use sapi_app::{App, AppOptions, Proto, Session};
use sapi_benches::buf::PageBuf;
use sapi_benches::fifo_rig::{self, FifoRig, Pace};
use sapi_benches::peer::Peer;
use sapi_benches::server::BenchServer;
use sapi_benches::stats::Latencies;
use sapi_benches::{anchors, streams, sys};

const CHUNK: usize = 64 << 10;
const FIFOS: [(u32, &str); 2] = [(4 << 20, "4MiB"), (1 << 20, "1MiB")];
const BASE_PORT: u16 = 5000;

/// The connecting app's side of the benches.
struct Rig {
    app: App,
    peer: Peer,
    src: PageBuf,
    dst: PageBuf,
}

impl Rig {
    fn bytes(iters: u64) -> u64 {
        iters * CHUNK as u64
    }

    fn session_one_way(&mut self, s: &mut Session, remote: u64, iters: u64) -> Duration {
        let total = Self::bytes(iters);
        let start = Instant::now();
        self.peer.call(&[12, remote, 0, CHUNK as u64, total], &[]);
        streams::session_source(s, CHUNK, total, self.src.as_mut_slice());
        self.peer.wait_done();
        start.elapsed()
    }

    fn session_both_ways(&mut self, s: &mut Session, remote: u64, iters: u64) -> Duration {
        let total = Self::bytes(iters);
        let start = Instant::now();
        self.peer.call(&[12, remote, 1, CHUNK as u64, total], &[]);
        let (src, dst) = (self.src.as_mut_slice(), self.dst.as_mut_slice());
        streams::session_duplex(&self.app, s, CHUNK, total, src, dst);
        self.peer.wait_done();
        start.elapsed()
    }

    fn fifo_one_way(&mut self, rig: &FifoRig, iters: u64) -> Duration {
        let total = Self::bytes(iters);
        let start = Instant::now();
        self.peer.call(&[1, rig.fifo, CHUNK as u64, 0, total], &[]);
        let pace = Pace {
            window: CHUNK,
            delta: 0,
            total,
        };
        fifo_rig::produce(&rig.seg, rig.fifo, pace, &mut self.src);
        self.peer.wait_done();
        start.elapsed()
    }

    fn fifo_both_ways(&mut self, rig: &FifoRig, back: u64, iters: u64) -> Duration {
        let total = Self::bytes(iters);
        let start = Instant::now();
        self.peer
            .call(&[3, back, rig.fifo, CHUNK as u64, total], &[]);
        let (src, dst) = (self.src.as_mut_slice(), self.dst.as_mut_slice());
        fifo_rig::duplex(&rig.seg, rig.fifo, back, CHUNK, total, src, dst);
        self.peer.wait_done();
        start.elapsed()
    }

    fn socket_one_way(&mut self, ty: Kind, iters: u64) -> Duration {
        let total = Self::bytes(iters);
        let (rd, wr) = match ty {
            Kind::Socketpair => sys::unix_pair(SockType::Stream),
            Kind::Pipe => sys::pipe(1 << 20),
        };
        let src = &self.src.as_mut_slice()[..CHUNK];
        let start = Instant::now();
        self.peer.call(&[2, CHUNK as u64, total], &[rd.as_raw_fd()]);
        drop(rd);
        let mut left = total;
        while left > 0 {
            let n = (CHUNK as u64).min(left) as usize;
            sys::write_all(wr.as_fd(), &src[..n]);
            left -= n as u64;
        }
        self.peer.wait_done();
        start.elapsed()
    }

    fn socket_both_ways(&mut self, iters: u64) -> Duration {
        let total = Self::bytes(iters);
        let (mine, theirs) = sys::unix_pair(SockType::Stream);
        let start = Instant::now();
        self.peer
            .call(&[4, CHUNK as u64, total], &[theirs.as_raw_fd()]);
        drop(theirs);
        let (src, dst) = (self.src.as_mut_slice(), self.dst.as_mut_slice());
        streams::socket_duplex(mine.as_fd(), CHUNK, total, src, dst);
        self.peer.wait_done();
        start.elapsed()
    }

    fn memcpy(&mut self, iters: u64) -> Duration {
        let d = self.dst.as_mut_slice().as_mut_ptr();
        let s = self.src.as_mut_slice().as_ptr();
        let start = Instant::now();
        for _ in 0..iters {
            let (d, s) = (std::hint::black_box(d), std::hint::black_box(s));
            // SAFETY: CHUNK bytes inside two distinct allocations at least that long.
            unsafe { std::ptr::copy_nonoverlapping(s, d, CHUNK) };
        }
        start.elapsed()
    }

    /// `iters` connects to `port` with the peer's app `remote` accepting, each closed after;
    /// returns the time of the connects alone (`connects_only`) or of whole cycles.
    fn connects(
        &mut self,
        remote: u64,
        port: u16,
        iters: u64,
        lat: &mut Latencies,
        connects_only: bool,
    ) -> Duration {
        self.peer.call(&[13, remote, iters], &[]);
        let mut total = Duration::ZERO;
        let start = Instant::now();
        for _ in 0..iters {
            let t0 = Instant::now();
            let s = self
                .app
                .connect(([127, 0, 0, 1], port).into(), Proto::Tcp)
                .expect("connect");
            let d = t0.elapsed();
            lat.push(d);
            total += d;
            s.close().expect("close");
        }
        self.peer.wait_done();
        if connects_only {
            total
        } else {
            start.elapsed()
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Socketpair,
    Pipe,
}

fn session_benches(c: &mut Criterion) {
    sys::pin_to(0);
    let exe = Path::new(env!("CARGO_BIN_EXE_sapi-bench-peer"));
    let server = BenchServer::start(exe, "session", None);
    let socket = server.socket_path();
    let socket_env = socket.to_str().expect("utf-8 runtime dir");
    let peer = Peer::spawn(exe, &[("SAPI_BENCH_SOCKET", socket_env)]);
    eprintln!(
        "session benches: connecting app on CPU 0, accepting app (another process) on CPU 1, \
         the reference server in a third process, unpinned; {} KiB writes; bulk copy routine {:?}",
        CHUNK >> 10,
        sapi_shm::copy::CopyRoutine::chosen()
    );
    let app = App::attach(&socket, "bench-connect", AppOptions::default()).expect("attach");
    let mut src = PageBuf::new(CHUNK.max(1 << 20));
    src.fill_pattern();
    let mut rig = Rig {
        app,
        peer,
        src,
        dst: PageBuf::new(CHUNK.max(1 << 20)),
    };

    let mut listeners = Vec::new();
    for (k, &(fifo, fname)) in FIFOS.iter().enumerate() {
        let port = BASE_PORT + k as u16;
        rig.peer.call(&[10, u64::from(fifo), u64::from(port)], &[]);
        let remote_app = rig.peer.answer()[0];
        listeners.push((remote_app, port));
        rig.peer.call(&[11, remote_app], &[]);
        let mut session = rig
            .app
            .connect(([127, 0, 0, 1], port).into(), Proto::Tcp)
            .expect("connect");
        let remote = rig.peer.answer()[0];

        let fifos = FifoRig::new(fifo);
        let back = fifos.add_fifo(fifo);
        rig.peer.call(&[0], &[fifos.seg.fd().as_raw_fd()]);

        let mut g = c.benchmark_group(format!("session_{fname}_one_way"));
        g.throughput(Throughput::Bytes(CHUNK as u64));
        g.bench_function("session", |b| {
            b.iter_custom(|iters| rig.session_one_way(&mut session, remote, iters))
        });
        g.bench_function("fifo_xproc", |b| {
            b.iter_custom(|iters| rig.fifo_one_way(&fifos, iters))
        });
        if k == 0 {
            g.bench_function("socketpair_xproc", |b| {
                b.iter_custom(|iters| rig.socket_one_way(Kind::Socketpair, iters))
            });
            g.bench_function("pipe_xproc", |b| {
                b.iter_custom(|iters| rig.socket_one_way(Kind::Pipe, iters))
            });
            g.bench_function("memcpy", |b| b.iter_custom(|iters| rig.memcpy(iters)));
        }
        g.finish();

        let mut g = c.benchmark_group(format!("session_{fname}_both_ways"));
        g.throughput(Throughput::Bytes(2 * CHUNK as u64));
        g.bench_function("session", |b| {
            b.iter_custom(|iters| rig.session_both_ways(&mut session, remote, iters))
        });
        g.bench_function("fifo_xproc", |b| {
            b.iter_custom(|iters| rig.fifo_both_ways(&fifos, back, iters))
        });
        if k == 0 {
            g.bench_function("socketpair_xproc", |b| {
                b.iter_custom(|iters| rig.socket_both_ways(iters))
            });
        }
        g.finish();
        session.close().expect("close");
    }

    const GROUP: &str = "session_setup";
    let mut g = c.benchmark_group(GROUP);
    g.throughput(Throughput::Elements(1));
    let mut lat = Latencies::default();
    g.bench_function(BenchmarkId::new("seqpacket_3fd", "rtt"), |b| {
        b.iter_custom(|iters| anchors::seqpacket_3fd_rtt(iters, &mut lat, Some(1)))
    });
    lat.report(GROUP, "seqpacket_3fd/rtt");
    let (remote_app, port) = listeners[0];
    let mut lat = Latencies::default();
    g.bench_function(BenchmarkId::new("connect", "latency"), |b| {
        b.iter_custom(|iters| rig.connects(remote_app, port, iters, &mut lat, true))
    });
    lat.report(GROUP, "connect/latency");
    let mut lat = Latencies::default();
    g.bench_function(BenchmarkId::new("connect_close", "cycle"), |b| {
        b.iter_custom(|iters| rig.connects(remote_app, port, iters, &mut lat, false))
    });
    g.finish();
    drop(rig);
    drop(server);
}

criterion_group!(benches, session_benches);
criterion_main!(benches);
