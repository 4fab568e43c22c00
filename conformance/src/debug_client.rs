//! `sapi-conformance client …`: a debugging client that prints, decoded, what a server sent —
//! and the crash-test child of the detach and hygiene scenarios (`--hold-after
//! connect|sent|reply` prints one [`HoldLine`] on stdout, naming the app and what the child
//! holds by inode, and then blocks until killed).
//!
//! `client session --role listen|connect --port P` is the crash-test child of the
//! `session.crash.*` scenarios: an app of the suite's own session client ([`crate::session`])
//! that listens on (or connects to) 127.0.0.1:P, prints `READY` once it can be connected to (or
//! has attached), accepts (or waits for CONNECTED), writes 32 KiB into its tx fifo with its TX
//! event, prints a [`HoldLine`] naming its app and the ct segment's memfd inode, and blocks until
//! killed.
//!
//! Uses only the suite's own [`crate::client`], [`crate::wire`], [`crate::shm`],
//! [`crate::session`] and [`crate::fds`]. Must never read a reply it was told to hold before reading (`sent` only peeks).

use std::fmt;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::client::{ClientError, Conn, Endpoint, Exchange, wait_readable};
use crate::fds::{self, FdInfo, describe};
use crate::shm::{self, Segment};
use crate::wire::{self, AttachReply, AttachRequest, Profile, opt};

/// Where the client is in an attach when it stops and waits to be killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HoldPoint {
    /// Connected, nothing sent.
    Connect,
    /// ATTACH sent; the reply is waited for and peeked at (for the app index and the inodes of
    /// its fds) but never read.
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
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
}

/// What a crash-test child holds when it stops: `HOLD app=N socks=INO,… segs=INO,… evs=ID,…`.
///
/// `socks` are the inodes of the child's own sockets (the attach socket first, then one per
/// extra worker), from which the suite finds the server-side peers with [`crate::sockdiag`]
/// before the kill; `segs` the memfd inodes of the segments that are the child's own (not the
/// shared VPP mqs segment, [`fds::worker_own_fds`]); `evs` the `eventfd-id`s of its own mq
/// eventfds, when the kernel prints them. At `sent` the reply is only peeked at: its fds are
/// inspected through duplicates the kernel makes for a `MSG_PEEK`, and stay queued.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HoldLine {
    pub app: Option<u32>,
    pub socks: Vec<u64>,
    pub segs: Vec<u64>,
    pub evs: Vec<u64>,
}

impl fmt::Display for HoldLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(v: &[u64]) -> String {
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        }
        match self.app {
            Some(a) => write!(f, "HOLD app={a}")?,
            None => write!(f, "HOLD app=none")?,
        }
        write!(
            f,
            " socks={} segs={} evs={}",
            list(&self.socks),
            list(&self.segs),
            list(&self.evs)
        )
    }
}

impl HoldLine {
    /// Parses a line the child printed; the error names what was wrong with it.
    pub fn parse(line: &str) -> Result<Self, String> {
        let rest = line
            .trim()
            .strip_prefix("HOLD")
            .ok_or_else(|| format!("not a HOLD line: {line:?}"))?;
        let mut h = HoldLine::default();
        let list = |k: &str, v: &str| -> Result<Vec<u64>, String> {
            v.split(',')
                .filter(|x| !x.is_empty())
                .map(|x| x.parse().map_err(|_| format!("{k}={v:?} in {line:?}")))
                .collect()
        };
        for kv in rest.split_whitespace() {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("{kv:?} in {line:?}"))?;
            match k {
                "app" if v == "none" => h.app = None,
                "app" => h.app = Some(v.parse().map_err(|_| format!("app={v:?} in {line:?}"))?),
                "socks" => h.socks = list(k, v)?,
                "segs" => h.segs = list(k, v)?,
                "evs" => h.evs = list(k, v)?,
                // Unknown keys are left for newer children.
                _ => {}
            }
        }
        Ok(h)
    }

    /// Adds a reply's own segment and mq eventfd (by `fd_flags`, `docs/protocol.md` §5.3).
    fn add_own(
        &mut self,
        fd_flags: u8,
        fds: &[OwnedFd],
        infos: &[FdInfo],
    ) -> Result<(), DebugClientError> {
        for at in fds::worker_own_fds(fd_flags, infos) {
            let (Some(fd), Some(info)) = (fds.get(at), infos.get(at)) else {
                continue;
            };
            if info.kind.is_memfd() {
                self.segs.push(info.ino);
            } else if let Some(id) = fds::eventfd_id(fd.as_fd()).map_err(ClientError::from)? {
                self.evs.push(id);
            }
        }
        Ok(())
    }
}

fn socket_inode(conn: &Conn) -> Result<u64, DebugClientError> {
    Ok(fds::stat_of(conn).map_err(ClientError::from)?.ino)
}

fn hold(out: &mut impl Write, line: &HoldLine) -> Result<(), DebugClientError> {
    writeln!(out, "{line}")?;
    out.flush()?;
    loop {
        nix::unistd::pause();
    }
}

/// Peeks at a queued reply without consuming it: its bytes, and duplicates of its fds (the
/// kernel clones in-flight fds for a `MSG_PEEK`; the originals stay queued on the socket).
fn peek_reply(conn: &Conn) -> Result<(Vec<u8>, Vec<OwnedFd>), DebugClientError> {
    if !wait_readable(conn.as_fd(), conn.timeout)? {
        return Err(DebugClientError::Protocol("no reply to peek at".into()));
    }
    match crate::client::peekmsg_fds(conn.as_fd(), crate::client::DEFAULT_MAX_FDS)? {
        crate::client::Recv::Msg(m) if m.ctrunc => Err(DebugClientError::Protocol(format!(
            "the reply carried more than {} fds: the kernel cut the rest",
            crate::client::DEFAULT_MAX_FDS
        ))),
        crate::client::Recv::Msg(mut m) => {
            m.bytes.truncate(wire::MSG_LEN);
            Ok((m.bytes, m.fds))
        }
        crate::client::Recv::Eof => Err(DebugClientError::Protocol(
            "the target closed the socket instead of replying".into(),
        )),
        crate::client::Recv::Timeout => Err(DebugClientError::Protocol(
            "the reply went away before it could be peeked at".into(),
        )),
    }
}

/// `client attach`: attach, print the reply and fds decoded; optionally hold.
pub fn attach(
    opts: &ClientOpts,
    hold_after: Option<HoldPoint>,
    workers: u32,
    out: &mut impl Write,
) -> Result<(), DebugClientError> {
    let conn = Conn::connect(&opts.target, opts.timeout)?;
    let mut held = HoldLine {
        socks: vec![socket_inode(&conn)?],
        ..HoldLine::default()
    };
    if hold_after == Some(HoldPoint::Connect) {
        return hold(out, &held);
    }
    if hold_after == Some(HoldPoint::Sent) {
        conn.send(&opts.request().encode())?;
        let (bytes, fds) = peek_reply(&conn)?;
        if let Ok(r) = AttachReply::parse(&bytes) {
            held.app = Some(r.app_index);
            let infos = fds
                .iter()
                .map(|f| fds::info_of(f.as_fd()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ClientError::from)?;
            held.add_own(r.fd_flags, &fds, &infos)?;
        }
        drop(fds);
        return hold(out, &held);
    }
    let e = conn.attach(&opts.request())?;
    if hold_after.is_none() {
        print_attach(out, opts.profile, &e)?;
    }
    held.app = Some(e.reply.app_index);
    held.add_own(e.reply.fd_flags, &e.fds, &e.infos)?;
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
        held.socks.push(socket_inode(&w)?);
        held.add_own(r.reply.fd_flags, &r.fds, &r.infos)?;
        keep.push((w, r));
    }
    if hold_after == Some(HoldPoint::Reply) {
        return hold(out, &held);
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

/// Which side of a session the child plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SessionRole {
    /// Listen on 127.0.0.1:P and accept one connection.
    Listen,
    /// Connect to 127.0.0.1:P.
    Connect,
}

/// `client session`: one session with data in flight, then hold until killed.
pub fn session(
    opts: &ClientOpts,
    role: SessionRole,
    port: u16,
    out: &mut impl Write,
) -> Result<(), DebugClientError> {
    use crate::session::msg::{self, AcceptedReply, Connect, Ctrl, Listen};
    use crate::session::{App, AppOptions};
    let mut app = App::attach(
        &opts.target,
        &opts.name,
        AppOptions::default(),
        opts.timeout,
    )?;
    let client_index = app.api_client_handle();
    let proto = |e: String| DebugClientError::Protocol(e);
    let (end, ct) = match role {
        SessionRole::Listen => {
            app.post(
                app.ctrl_mq(),
                &Listen {
                    client_index,
                    context: 1,
                    wrk_index: 0,
                    port,
                    proto: msg::PROTO_TCP,
                    is_ip4: 1,
                    ip: msg::ip4([127, 0, 0, 1]),
                    flags: 0,
                },
            )?;
            match app.expect_ctrl(msg::ty::BOUND)?.0 {
                Ctrl::Bound(b) if b.retval == 0 => {}
                other => return Err(proto(format!("LISTEN answered {other:?}"))),
            }
            writeln!(out, "READY")?;
            out.flush()?;
            let a = match app.expect_ctrl(msg::ty::ACCEPTED)?.0 {
                Ctrl::Accepted(a) => a,
                other => return Err(proto(format!("expected ACCEPTED, got {other:?}"))),
            };
            app.post(
                a.mq_index,
                &AcceptedReply {
                    context: a.context,
                    retval: 0,
                    handle: a.handle,
                    app_session_index: 1,
                },
            )?;
            (app.server_end(&a, 1)?, a.segment_handle)
        }
        SessionRole::Connect => {
            writeln!(out, "READY")?;
            out.flush()?;
            app.post(
                app.ctrl_mq(),
                &Connect {
                    client_index,
                    context: 1,
                    wrk_index: 0,
                    port,
                    proto: msg::PROTO_TCP,
                    is_ip4: 1,
                    ip: msg::ip4([127, 0, 0, 1]),
                    flags: msg::CFG_F_CONNECTED,
                },
            )?;
            let m = match app.expect_ctrl(msg::ty::CONNECTED)?.0 {
                Ctrl::Connected(m) if m.retval == 0 => m,
                other => return Err(proto(format!("CONNECT answered {other:?}"))),
            };
            (app.client_end(&m, 1)?, m.ct_segment_handle)
        }
    };
    let mut end = end;
    let (n, _) = end.send(&app, &[0x5au8; 32 << 10])?;
    if n != 32 << 10 {
        return Err(proto(format!("wrote {n} of 32768 bytes")));
    }
    let held = HoldLine {
        app: Some(app.reply.app_index),
        socks: vec![socket_inode(&app.conn)?],
        segs: app
            .segments
            .get(&ct)
            .map(|s| vec![s.shm.inode])
            .unwrap_or_default(),
        evs: vec![],
    };
    hold(out, &held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case(HoldLine { app: Some(3), socks: vec![11, 12], segs: vec![21, 22], evs: vec![4, 5] })]
    #[case(HoldLine { app: None, socks: vec![11], segs: vec![], evs: vec![] })]
    fn hold_lines_round_trip(#[case] h: HoldLine) {
        assert_eq!(HoldLine::parse(&h.to_string()), Ok(h));
    }

    #[rstest::rstest]
    #[case("HOLD app=x")]
    #[case("HOLD segs=1,y")]
    #[case("HOLD app")]
    #[case("READY")]
    fn bad_hold_lines_are_named(#[case] line: &str) {
        let e = HoldLine::parse(line).expect_err("bad line");
        assert!(e.contains(line), "{e}");
    }

    #[test]
    fn an_older_hold_line_still_gives_the_app() {
        assert_eq!(HoldLine::parse("HOLD app=7").map(|h| h.app), Ok(Some(7)));
    }
}
