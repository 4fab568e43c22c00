//! `sapi-conformance client …`: a debugging client that prints, decoded, what a server sent —
//! and the crash-test child of the detach scenarios (`--hold-after connect|sent|reply` prints one
//! `HOLD app=N` line on stdout and then blocks until killed).
//!
//! Uses only the suite's own [`crate::client`], [`crate::wire`] and [`crate::shm`].

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use crate::client::{ClientError, Conn, Endpoint, Exchange, wait_readable};
use crate::fds::describe;
use crate::shm::{self, Segment};
use crate::wire::{self, AttachReply, AttachRequest, Profile, opt};

/// Where the client is in an attach when it stops and waits to be killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HoldPoint {
    /// Connected, nothing sent.
    Connect,
    /// ATTACH sent; the reply is waited for and peeked at (for the app index) but never read.
    Sent,
    /// Reply read (and `--workers` extra workers added).
    Reply,
}

#[derive(Clone, Debug)]
pub struct ClientOpts {
    pub target: Endpoint,
    pub profile: Profile,
    pub timeout: Duration,
    pub name: String,
    pub eventfd: bool,
    pub queue_size: u64,
    pub segment_size: u64,
}

impl ClientOpts {
    fn request(&self) -> AttachRequest {
        let mut r = AttachRequest::probe(&self.name, self.eventfd);
        r.options[opt::EVT_QUEUE_SIZE] = self.queue_size;
        r.options[opt::SEGMENT_SIZE] = self.segment_size;
        r
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DebugClientError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

fn hold(out: &mut impl Write, app: Option<u32>) -> Result<(), DebugClientError> {
    match app {
        Some(a) => writeln!(out, "HOLD app={a}")?,
        None => writeln!(out, "HOLD app=none")?,
    }
    out.flush()?;
    loop {
        nix::unistd::pause();
    }
}

/// Peeks at a queued reply without consuming it (its fds stay queued on the socket).
fn peek_app_index(conn: &Conn) -> Result<Option<u32>, DebugClientError> {
    if !wait_readable(conn.as_fd(), conn.timeout)? {
        return Err(DebugClientError::Protocol("no reply to peek at".into()));
    }
    let mut buf = [0u8; wire::MSG_LEN];
    // SAFETY: buf is a live buffer of the given length.
    let n = unsafe {
        libc::recv(
            conn.as_fd().as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK,
        )
    };
    if n < 0 {
        return Err(DebugClientError::Protocol(format!(
            "recv MSG_PEEK: {}",
            nix::errno::Errno::last()
        )));
    }
    Ok(AttachReply::parse(&buf[..n as usize])
        .ok()
        .map(|r| r.app_index))
}

/// `client attach`: attach, print the reply and fds decoded; optionally hold.
pub fn attach(
    opts: &ClientOpts,
    hold_after: Option<HoldPoint>,
    workers: u32,
    out: &mut impl Write,
) -> Result<(), DebugClientError> {
    let conn = Conn::connect(&opts.target, opts.timeout)?;
    if hold_after == Some(HoldPoint::Connect) {
        return hold(out, None);
    }
    if hold_after == Some(HoldPoint::Sent) {
        conn.send(&opts.request().encode())?;
        let app = peek_app_index(&conn)?;
        return hold(out, app);
    }
    let e = conn.attach(&opts.request())?;
    if hold_after.is_none() {
        print_attach(out, opts.profile, &e)?;
    }
    let mut keep = Vec::new();
    for _ in 0..workers {
        let w = Conn::connect(&opts.target, opts.timeout)?;
        let r = w.worker_add(e.reply.app_index, opts.profile)?;
        if hold_after.is_none() {
            writeln!(
                out,
                "worker reply: {:?}\n  fds: {}",
                r.reply,
                describe(&r.infos)
            )?;
        }
        keep.push((w, r));
    }
    if hold_after == Some(HoldPoint::Reply) {
        return hold(out, Some(e.reply.app_index));
    }
    Ok(())
}

fn print_attach(
    out: &mut impl Write,
    profile: Profile,
    e: &Exchange<AttachReply>,
) -> Result<(), DebugClientError> {
    writeln!(out, "ATTACH_REPLY {}", wire::dump(&e.raw))?;
    let r = &e.reply;
    writeln!(
        out,
        "  retval             {}",
        profile.retval_name(r.retval)
    )?;
    writeln!(out, "  app_index          {}", r.app_index)?;
    writeln!(out, "  app_mq             {:#x}", r.app_mq)?;
    writeln!(out, "  vpp_ctrl_mq        {:#x}", r.vpp_ctrl_mq)?;
    writeln!(out, "  segment_handle     {:#x}", r.segment_handle)?;
    writeln!(out, "  api_client_handle  {:#x}", r.api_client_handle)?;
    writeln!(out, "  vpp_ctrl_mq_thread {}", r.vpp_ctrl_mq_thread)?;
    writeln!(
        out,
        "  n_fds {}  fd_flags {:#04x}  MSG_CTRUNC {}",
        r.n_fds, r.fd_flags, e.ctrunc
    )?;
    writeln!(out, "  fds: {}", describe(&e.infos))?;
    Ok(())
}

/// `client worker`: add a worker for `app` on a new socket and print the reply.
pub fn worker(opts: &ClientOpts, app: u32, out: &mut impl Write) -> Result<(), DebugClientError> {
    let conn = Conn::connect(&opts.target, opts.timeout)?;
    let r = conn.worker_add(app, opts.profile)?;
    writeln!(out, "ADD_DEL_WORKER_REPLY {}", wire::dump(&r.raw))?;
    writeln!(out, "  retval {}", opts.profile.retval_name(r.reply.retval))?;
    writeln!(out, "  {:?}", r.reply)?;
    writeln!(out, "  fds: {}", describe(&r.infos))?;
    Ok(())
}

/// `client show-segments`: attach, then map every memfd read-only and print its headers and mqs.
pub fn show_segments(opts: &ClientOpts, out: &mut impl Write) -> Result<(), DebugClientError> {
    let conn = Conn::connect(&opts.target, opts.timeout)?;
    let e = conn.attach(&opts.request())?;
    print_attach(out, opts.profile, &e)?;
    for (i, (fd, info)) in e.fds.iter().zip(&e.infos).enumerate() {
        if !info.kind.is_memfd() {
            continue;
        }
        writeln!(out, "fd #{}: {info}", i + 1)?;
        match Segment::open(fd, false) {
            Ok(seg) => {
                writeln!(out, "  ssvm {:?}", seg.ssvm)?;
                for v in shm::ssvm_violations(&seg.ssvm, info.size) {
                    writeln!(out, "  ! {v}")?;
                }
                writeln!(
                    out,
                    "  fifo-segment header @{:#x} {:?}",
                    seg.fsh_base, seg.fsh
                )?;
                for v in shm::fsh_violations(&seg.fsh, &seg) {
                    writeln!(out, "  ! {v}")?;
                }
                let offs = if i == 0 {
                    vec![e.reply.vpp_ctrl_mq]
                } else {
                    vec![e.reply.app_mq]
                };
                for off in offs {
                    match seg.mq_at(off) {
                        Ok(m) => {
                            writeln!(
                                out,
                                "  mq @{off:#x}: n_rings {} queue {:?}",
                                m.n_rings, m.queue
                            )?;
                            for (k, r) in m.rings.iter().enumerate() {
                                writeln!(out, "    ring[{k}] {r:?}")?;
                            }
                            for v in shm::mq_violations(&m, None, None) {
                                writeln!(out, "  ! {v}")?;
                            }
                        }
                        Err(err) => writeln!(out, "  mq @{off:#x}: {err}")?,
                    }
                }
            }
            Err(err) => writeln!(out, "  {err}")?,
        }
    }
    Ok(())
}
