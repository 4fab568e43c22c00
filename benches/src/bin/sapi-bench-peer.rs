//! The consumer process of the cross-process benches.
//!
//! Started by a bench with a `SOCK_SEQPACKET` socket whose number is in
//! `$SAPI_BENCH_PEER_FD`; obeys commands of little-endian `u64` words (fds by `SCM_RIGHTS`):
//! * `[0]` + memfd: map the segment.
//! * `[1, fifo, read, delta, total]`: dequeue `total` bytes from the fifo at `fifo`, in reads of
//!   `read` bytes into a buffer `delta` bytes (mod 4096) from the fifo bytes; answer `[total]`.
//! * `[2, read, total]` + fd: read `total` bytes from the fd (a pipe) in reads of `read`
//!   bytes; answer `[total]`.
//!
//! Exits at EOF on the socket.
//!
//! `sapi-bench-peer serve DIR` instead runs the reference server in `DIR` (prints `READY`
//! once it listens) until killed: the attach benches' server, in a process of its own as in
//! production, so its unmaps do not shoot down the client's TLB and vice versa.

use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use sapi_benches::buf::PageBuf;
use sapi_benches::{fifo_rig, sys};
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
    Serve { dir: PathBuf },
}

fn serve(dir: &Path) {
    use std::io::Write;
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

fn main() {
    if let Some(Cmd::Serve { dir }) = Cli::parse().cmd {
        return serve(&dir);
    }
    let fd: RawFd = std::env::var("SAPI_BENCH_PEER_FD")
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("SAPI_BENCH_PEER_FD names the command socket");
    // SAFETY: the parent left this fd open for us for the life of the process.
    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
    // The reading end of every cross-process bench: CPU 1, the writer being on CPU 0.
    sys::pin_to(1);
    let mut seg: Option<Segment> = None;
    let mut buf = PageBuf::for_windows(1 << 20);
    while let Some((words, mut fds)) = sys::recv_words(sock) {
        match words.as_slice() {
            [0] => {
                let memfd = fds.pop().expect("memfd");
                seg = Some(Segment::attach(memfd).expect("map segment"));
            }
            &[1, fifo, read, delta, total] => {
                let seg = seg.as_ref().expect("segment mapped first");
                fifo_rig::consume(seg, fifo, read as usize, delta as usize, total, &mut buf);
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
            other => panic!("unknown command {other:?}"),
        }
    }
}
