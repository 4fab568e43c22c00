//! The consumer process of the cross-process benches.
//!
//! Started by a bench with a `SOCK_SEQPACKET` socket whose number is in
//! `$SAPI_BENCH_PEER_FD`; obeys commands of little-endian `u64` words (fds by `SCM_RIGHTS`):
//! * `[0]` + memfd: map the segment.
//! * `[1, fifo, read, delta, total]`: dequeue `total` bytes from the fifo at `fifo`, in reads of
//!   `read` bytes into a buffer `delta` bytes (mod 4096) from the fifo bytes; answer `[total]`.
//! * `[2, read, total]` + fd: read `total` bytes from the fd (a pipe or a stream socket) in
//!   reads of `read` bytes; answer `[total]`.
//! * `[3, tx, rx, chunk, total]`: duplex through two fifos of the mapped segment: enqueue
//!   `total` bytes into `tx` while dequeuing `total` from `rx`; answer `[total]`.
//! * `[4, chunk, total]` + fd: duplex over a stream socket; answer `[total]`.
//!
//! The session commands act as an app of the server whose namespace socket is in
//! `$SAPI_BENCH_SOCKET` (over `sapi-app`, as any app would):
//! * `[10, fifo_size, port]`: attach an app asking for rx and tx fifos of `fifo_size` bytes and
//!   listen on 127.0.0.1:`port`; answer `[app]`.
//! * `[11, app]`: accept one session; answer `[session]`.
//! * `[12, session, mode, chunk, total]`: mode 0 reads `total` bytes from the session, mode 1
//!   writes and reads `total` bytes each way at once; answer `[total]`.
//! * `[13, app, n]`: accept `n` sessions and close each once its peer has closed it; answer
//!   `[n]`.
//!
//! Exits at EOF on the socket.
//!
//! `sapi-bench-peer serve DIR` instead runs the reference server in `DIR` (prints `READY`
//! once it listens) until killed: the attach benches' server, in a process of its own as in
//! production, so its unmaps do not shoot down the client's TLB and vice versa.

use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use sapi_app::{App, AppOptions, Listener, Proto, Session, SessionState};
use sapi_benches::buf::PageBuf;
use sapi_benches::fifo_rig::{Pace, Reader};
use sapi_benches::{fifo_rig, streams, sys};
use sapi_shm::segment::Segment;

/// The consumer process of the cross-process benches (commands on the socket in
/// `$SAPI_BENCH_PEER_FD`), or with `serve DIR` the attach benches' reference server.
#[derive(Parser, Debug)]
#[command(name = "sapi-bench-peer")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the reference server in DIR; prints READY once it listens, runs until killed.
    Serve {
        dir: PathBuf,
        /// Pin the whole server (every thread it starts) to this CPU; without it, every CPU.
        #[arg(long)]
        cpu: Option<usize>,
    },
}

fn serve(dir: &Path, cpu: Option<usize>) {
    use std::io::Write;
    // Before the server starts a thread: each one inherits the mask. Without a CPU it may
    // run on any, whatever mask the bench that started it had pinned itself to.
    match cpu {
        Some(cpu) => sys::pin_to(cpu),
        None => sys::unpin(),
    }
    let cfg = sapi_reference::shell::ServeConfig {
        runtime_dir: dir.into(),
        namespaces: vec![],
        vpp_workers: 0,
        profile: sapi_wire::Profile::Head,
        faults: Default::default(),
        access: Default::default(),
        enforce_ns_secret: false,
    };
    sys::raise_nofile();
    sapi_reference::shell::serve(cfg, None, |_| {
        println!("READY");
        let _ = std::io::stdout().flush();
    })
    .expect("serve");
}

/// The apps and sessions this peer holds, by the indices its answers gave out.
#[derive(Default)]
struct Apps {
    apps: Vec<(App, Listener)>,
    /// Each session with the index of the app it belongs to.
    sessions: Vec<(usize, Session)>,
}

impl Apps {
    fn attach(&mut self, fifo_size: u64, port: u64) -> u64 {
        let socket =
            std::env::var("SAPI_BENCH_SOCKET").expect("SAPI_BENCH_SOCKET names the server");
        let fifo = u32::try_from(fifo_size).expect("fifo size fits u32");
        let options = AppOptions {
            rx_fifo_size: fifo,
            tx_fifo_size: fifo,
            ..AppOptions::default()
        };
        let name = format!("bench-peer-{}-{}", std::process::id(), self.apps.len());
        let app = App::attach(socket, &name, options).expect("attach");
        let port = u16::try_from(port).expect("port");
        let listener = app
            .listen(([127, 0, 0, 1], port).into(), Proto::Tcp)
            .expect("listen");
        self.apps.push((app, listener));
        self.apps.len() as u64 - 1
    }

    fn accept(&mut self, app: u64) -> u64 {
        let (_, listener) = &self.apps[app as usize];
        let session = listener.accept(Some(streams::STALL)).expect("accept");
        self.sessions.push((app as usize, session));
        self.sessions.len() as u64 - 1
    }

    /// Accepts `n` sessions and closes each once its peer closed it.
    fn serve_cycles(&mut self, app: u64, n: u64) {
        let (app, listener) = &self.apps[app as usize];
        let mut live: Vec<Session> = Vec::new();
        let mut done = 0;
        while done < n {
            while let Some(s) = listener.try_accept().expect("accept") {
                live.push(s);
            }
            let mut i = 0;
            while i < live.len() {
                match live[i].state().expect("session state") {
                    SessionState::PeerClosed
                    | SessionState::PeerReset
                    | SessionState::CleanedUp => {
                        live.swap_remove(i).close().expect("close");
                        done += 1;
                    }
                    _ => i += 1,
                }
            }
            if done < n {
                let handled = app.poll(Some(streams::STALL)).expect("poll");
                assert!(handled > 0, "connect cycles stalled after {done} of {n}");
            }
        }
    }
}

fn main() {
    if let Some(Cmd::Serve { dir, cpu }) = Cli::parse().cmd {
        return serve(&dir, cpu);
    }
    let fd: RawFd = std::env::var("SAPI_BENCH_PEER_FD")
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("SAPI_BENCH_PEER_FD names the command socket");
    // SAFETY: the parent left this fd open for us for the life of the process.
    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
    // The reading end of every cross-process bench: CPU 1, the writer being on CPU 0.
    sys::pin_to(1);
    // The same routine as the bench that started us, when it forces one.
    sys::copy_routine_from_env();
    let mut seg: Option<Segment> = None;
    let mut buf = PageBuf::for_windows(1 << 20);
    let mut src = PageBuf::new(1 << 20);
    src.fill_pattern();
    let mut apps = Apps::default();
    while let Some((words, mut fds)) = sys::recv_words(sock) {
        match words.as_slice() {
            [0] => {
                let memfd = fds.pop().expect("memfd");
                seg = Some(Segment::attach(memfd).expect("map segment"));
            }
            &[1, fifo, read, delta, total] => {
                let seg = seg.as_ref().expect("segment mapped first");
                let pace = Pace {
                    window: read as usize,
                    delta: delta as usize,
                    total,
                };
                fifo_rig::consume(seg, fifo, Reader::AtADistance, pace, &mut buf);
                sys::send_words(sock, &[total], &[]);
            }
            &[2, read, total] => {
                let rd = fds.pop().expect("pipe fd");
                let mut left = total;
                while left > 0 {
                    let n = (read).min(left) as usize;
                    let got = sys::read_some(rd.as_fd(), &mut buf.as_mut_slice()[..n]);
                    assert!(got > 0, "pipe closed early");
                    left -= got as u64;
                }
                sys::send_words(sock, &[total], &[]);
            }
            &[3, tx, rx, chunk, total] => {
                let seg = seg.as_ref().expect("segment mapped first");
                let src = src.as_mut_slice();
                fifo_rig::duplex(seg, tx, rx, chunk as usize, total, src, buf.as_mut_slice());
                sys::send_words(sock, &[total], &[]);
            }
            &[4, chunk, total] => {
                let fd = fds.pop().expect("socket fd");
                let (src, dst) = (src.as_mut_slice(), buf.as_mut_slice());
                streams::socket_duplex(fd.as_fd(), chunk as usize, total, src, dst);
                sys::send_words(sock, &[total], &[]);
            }
            &[10, fifo_size, port] => {
                let app = apps.attach(fifo_size, port);
                sys::send_words(sock, &[app], &[]);
            }
            &[11, app] => {
                let session = apps.accept(app);
                sys::send_words(sock, &[session], &[]);
            }
            &[12, session, mode, chunk, total] => {
                let (app, s) = &mut apps.sessions[session as usize];
                let app = &apps.apps[*app].0;
                let (chunk, dst) = (chunk as usize, buf.as_mut_slice());
                match mode {
                    0 => streams::session_sink(s, chunk, total, dst),
                    _ => streams::session_duplex(app, s, chunk, total, src.as_mut_slice(), dst),
                }
                sys::send_words(sock, &[total], &[]);
            }
            &[13, app, n] => {
                apps.serve_cycles(app, n);
                sys::send_words(sock, &[n], &[]);
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}
