//! A SAPI client on real sockets: connect `SOCK_SEQPACKET` to a path or an abstract name, send
//! 209-byte datagrams (optionally with fds), receive with a chosen control-buffer size and get the
//! bytes, the fds as `OwnedFd`s and the kernel's `MSG_CTRUNC`/`MSG_TRUNC` flags, and the request /
//! reply exchanges the scenarios use (attach, worker add/del, cert-key).
//!
//! Every wait is a `poll` bounded by the client's timeout: the bound is a failure criterion, never
//! a way to let the server "catch up". Received bytes are handed to [`crate::wire`] untouched.
//!
//! Must never: block without a bound, leak an fd the kernel passed (even on a truncated control
//! message), or trust a length the peer sent.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, UnixAddr, connect, getsockopt, socket, sockopt,
};

use crate::fds::{self, FdInfo};
use crate::wire::{self, AttachReply, AttachRequest, CertKeyReply, MSG_LEN, Profile, WorkerReply};

/// Where a SAPI server listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Path(PathBuf),
    /// Abstract name without the leading NUL (`abstract:NAME`).
    Abstract(Vec<u8>),
}

impl FromStr for Endpoint {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.strip_prefix("abstract:") {
            Some(name) => Endpoint::Abstract(name.as_bytes().to_vec()),
            None => Endpoint::Path(PathBuf::from(s)),
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Path(p) => write!(f, "{}", p.display()),
            Endpoint::Abstract(n) => write!(f, "abstract:{}", String::from_utf8_lossy(n)),
        }
    }
}

impl Endpoint {
    fn addr(&self) -> Result<UnixAddr, Errno> {
        match self {
            Endpoint::Path(p) => UnixAddr::new(p.as_path()),
            Endpoint::Abstract(n) => UnixAddr::new_abstract(n),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to {endpoint} ({ty:?}): {errno}")]
    Connect {
        endpoint: String,
        ty: SockType,
        errno: Errno,
    },
    #[error("{op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    #[error("no {waiting_for} within {after:?}")]
    Timeout {
        waiting_for: String,
        after: Duration,
    },
    #[error("the server closed the socket while the suite waited for {waiting_for}")]
    Eof { waiting_for: String },
    #[error("{what}: {source}; received {dump}")]
    Decode {
        what: &'static str,
        source: wire::WireError,
        dump: String,
    },
    #[error("received fd could not be inspected: {0}")]
    Fd(#[from] fds::FdError),
}

/// One datagram received, with everything the kernel said about it.
#[derive(Debug)]
pub struct Received {
    pub bytes: Vec<u8>,
    pub fds: Vec<OwnedFd>,
    /// The control buffer was too small for the fds sent (some were discarded by the kernel).
    pub ctrunc: bool,
    /// The data buffer was too small (the suite uses 64 KiB, so this means a huge datagram).
    pub trunc: bool,
}

impl Received {
    /// Kind, size and inode of every received fd, in order.
    pub fn fd_infos(&self) -> Result<Vec<FdInfo>, fds::FdError> {
        self.fds.iter().map(|f| fds::info_of(f.as_fd())).collect()
    }
}

/// The outcome of waiting for a datagram.
#[derive(Debug)]
pub enum Recv {
    Msg(Received),
    Eof,
    Timeout,
}

/// Room for this many fds in the control buffer by default (VCL's ATTACH_REPLY buffer).
pub const DEFAULT_MAX_FDS: usize = 32;
const RECV_BUF: usize = 64 * 1024;

/// A connected SAPI socket.
#[derive(Debug)]
pub struct Conn {
    fd: OwnedFd,
    pub timeout: Duration,
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Connects a socket of type `ty` to `ep` (used to check stream/dgram clients are refused).
pub fn connect_as(ep: &Endpoint, ty: SockType) -> Result<OwnedFd, ClientError> {
    let fd = socket(AddressFamily::Unix, ty, SockFlag::SOCK_CLOEXEC, None).map_err(|errno| {
        ClientError::Sys {
            op: "socket",
            errno,
        }
    })?;
    let addr = ep.addr().map_err(|errno| ClientError::Connect {
        endpoint: ep.to_string(),
        ty,
        errno,
    })?;
    connect(fd.as_raw_fd(), &addr).map_err(|errno| ClientError::Connect {
        endpoint: ep.to_string(),
        ty,
        errno,
    })?;
    Ok(fd)
}

impl Conn {
    pub fn connect(ep: &Endpoint, timeout: Duration) -> Result<Self, ClientError> {
        Ok(Conn {
            fd: connect_as(ep, SockType::SeqPacket)?,
            timeout,
        })
    }

    pub fn from_fd(fd: OwnedFd, timeout: Duration) -> Self {
        Conn { fd, timeout }
    }

    /// pid of the peer (`SO_PEERCRED`), as the kernel recorded it at connect time.
    pub fn peer_pid(&self) -> Option<u32> {
        getsockopt(&self.fd, sockopt::PeerCredentials)
            .ok()
            .and_then(|c| u32::try_from(c.pid()).ok())
            .filter(|p| *p != 0)
    }

    pub fn send(&self, bytes: &[u8]) -> Result<(), ClientError> {
        self.send_with_fds(bytes, &[])
    }

    /// One `sendmsg` with the given fds as `SCM_RIGHTS`.
    pub fn send_with_fds(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), ClientError> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let iov = [std::io::IoSlice::new(bytes)];
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let cmsgs = if raw.is_empty() {
            vec![]
        } else {
            vec![ControlMessage::ScmRights(&raw)]
        };
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|errno| ClientError::Sys {
            op: "sendmsg",
            errno,
        })?;
        Ok(())
    }

    /// Waits up to the client timeout for one datagram, with control room for `max_fds` fds.
    pub fn recv(&self, max_fds: usize) -> Result<Recv, ClientError> {
        self.recv_within(self.timeout, max_fds)
    }

    pub fn recv_within(&self, timeout: Duration, max_fds: usize) -> Result<Recv, ClientError> {
        if !wait_readable(self.fd.as_fd(), timeout)? {
            return Ok(Recv::Timeout);
        }
        recvmsg_fds(self.fd.as_fd(), max_fds)
    }

    /// Receives one datagram or fails naming what the suite waited for.
    pub fn expect_msg(&self, waiting_for: &str, max_fds: usize) -> Result<Received, ClientError> {
        match self.recv(max_fds)? {
            Recv::Msg(m) => Ok(m),
            Recv::Eof => Err(ClientError::Eof {
                waiting_for: waiting_for.to_string(),
            }),
            Recv::Timeout => Err(ClientError::Timeout {
                waiting_for: waiting_for.to_string(),
                after: self.timeout,
            }),
        }
    }

    /// True if the socket is readable right now (a datagram or EOF is queued).
    pub fn readable_now(&self) -> Result<bool, ClientError> {
        wait_readable(self.fd.as_fd(), Duration::ZERO)
    }

    /// Sends ATTACH and reads its reply.
    pub fn attach(&self, req: &AttachRequest) -> Result<Exchange<AttachReply>, ClientError> {
        self.send(&req.encode())?;
        let m = self.expect_msg("ATTACH_REPLY", DEFAULT_MAX_FDS)?;
        Exchange::decode(m, "ATTACH_REPLY", AttachReply::parse)
    }

    /// Sends ADD_DEL_WORKER with `is_add = 1` and reads its reply.
    pub fn worker_add(
        &self,
        app_index: u32,
        profile: Profile,
    ) -> Result<Exchange<WorkerReply>, ClientError> {
        self.send(&wire::encode_worker(app_index, 0, true))?;
        let m = self.expect_msg("ADD_DEL_WORKER_REPLY", DEFAULT_MAX_FDS)?;
        Exchange::decode(m, "ADD_DEL_WORKER_REPLY", |b| {
            WorkerReply::parse(b, profile)
        })
    }

    /// Sends ADD_DEL_CERT_KEY (+ data datagram when given) and reads its reply.
    pub fn cert_key(
        &self,
        header: &[u8],
        data: Option<&[u8]>,
    ) -> Result<Exchange<CertKeyReply>, ClientError> {
        self.send(header)?;
        if let Some(d) = data {
            self.send(d)?;
        }
        let m = self.expect_msg("ADD_DEL_CERT_KEY_REPLY", DEFAULT_MAX_FDS)?;
        Exchange::decode(m, "ADD_DEL_CERT_KEY_REPLY", CertKeyReply::parse)
    }
}

/// A decoded reply with its raw bytes and fds kept as evidence.
#[derive(Debug)]
pub struct Exchange<T> {
    pub reply: T,
    pub raw: Vec<u8>,
    pub fds: Vec<OwnedFd>,
    pub infos: Vec<FdInfo>,
    pub ctrunc: bool,
}

impl<T> Exchange<T> {
    fn decode(
        m: Received,
        what: &'static str,
        parse: impl FnOnce(&[u8]) -> Result<T, wire::WireError>,
    ) -> Result<Self, ClientError> {
        let infos = m.fd_infos()?;
        let reply = parse(&m.bytes).map_err(|source| ClientError::Decode {
            what,
            source,
            dump: wire::dump(&m.bytes),
        })?;
        Ok(Exchange {
            reply,
            raw: m.bytes,
            fds: m.fds,
            infos,
            ctrunc: m.ctrunc,
        })
    }
}

/// poll for POLLIN/POLLHUP up to `timeout`; true when readable.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool, ClientError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = i32::try_from(left.as_millis().min(i32::MAX as u128)).unwrap_or(i32::MAX);
        let ms = if ms == 0 && !left.is_zero() { 1 } else { ms };
        let mut pfd = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(
            &mut pfd,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(ClientError::Sys { op: "poll", errno }),
        }
    }
}

/// One non-blocking `recvmsg` with a control buffer for `max_fds` fds. Fds that did arrive are
/// always wrapped (and so closed on drop), also when the control message was truncated.
pub fn recvmsg_fds(fd: BorrowedFd<'_>, max_fds: usize) -> Result<Recv, ClientError> {
    recvmsg_fds_with(fd, max_fds, 0)
}

/// [`recvmsg_fds`] with `MSG_PEEK`: the datagram stays queued, and the fds are duplicates the
/// kernel installed for the peek (wrapped and closed on drop like any other).
pub fn peekmsg_fds(fd: BorrowedFd<'_>, max_fds: usize) -> Result<Recv, ClientError> {
    recvmsg_fds_with(fd, max_fds, libc::MSG_PEEK)
}

fn recvmsg_fds_with(
    fd: BorrowedFd<'_>,
    max_fds: usize,
    flags: libc::c_int,
) -> Result<Recv, ClientError> {
    let mut buf = vec![0u8; RECV_BUF];
    // CMSG_LEN, not CMSG_SPACE: the kernel fits (controllen − header) / 4 fds, so this is room for
    // exactly `max_fds` (CMSG_SPACE would round up to an even count).
    // SAFETY: CMSG_LEN is a pure size computation.
    let space = if max_fds == 0 {
        0
    } else {
        unsafe { libc::CMSG_LEN((max_fds * 4) as u32) as usize }
    };
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut ctrl = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: zeroed msghdr is a valid "empty" header; we fill the pointers below.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    if space > 0 {
        mh.msg_control = ctrl.as_mut_ptr().cast();
        mh.msg_controllen = space;
    }
    let n = loop {
        // SAFETY: mh points at live buffers of the stated sizes for the duration of the call.
        let r = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut mh,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC | flags,
            )
        };
        if r >= 0 {
            break r as usize;
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::EAGAIN => return Ok(Recv::Timeout),
            Errno::ECONNRESET => return Ok(Recv::Eof),
            errno => {
                return Err(ClientError::Sys {
                    op: "recvmsg",
                    errno,
                });
            }
        }
    };
    let mut fds = Vec::new();
    if space > 0 && mh.msg_controllen > 0 {
        // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_* walk only within them.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&mh);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c);
                    let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    for i in 0..len / 4 {
                        let raw = std::ptr::read_unaligned(data.add(i * 4).cast::<i32>());
                        fds.push(OwnedFd::from_raw_fd(raw));
                    }
                }
                c = libc::CMSG_NXTHDR(&mh, c);
            }
        }
    }
    let ctrunc = mh.msg_flags & libc::MSG_CTRUNC != 0;
    let trunc = mh.msg_flags & libc::MSG_TRUNC != 0;
    if n == 0 && fds.is_empty() {
        return Ok(Recv::Eof);
    }
    buf.truncate(n);
    Ok(Recv::Msg(Received {
        bytes: buf,
        fds,
        ctrunc,
        trunc,
    }))
}

/// Evidence line for a reply that is not 209 bytes.
pub fn length_evidence(bytes: &[u8]) -> Option<String> {
    (bytes.len() != MSG_LEN).then(|| {
        format!(
            "expected a {MSG_LEN}-byte datagram, got {}",
            wire::dump(bytes)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{Backlog, accept, bind, listen};

    /// A real listening SEQPACKET socket on an abstract name unique to this test.
    fn listener(tag: &str) -> (OwnedFd, Endpoint) {
        let name = format!("sapi-conformance-test-{}-{tag}", std::process::id());
        let ep = Endpoint::Abstract(name.into_bytes());
        let l = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        bind(l.as_raw_fd(), &ep.addr().expect("addr")).expect("bind");
        listen(&l, Backlog::new(5).expect("backlog")).expect("listen");
        (l, ep)
    }

    #[test]
    fn fds_arrive_in_order_with_their_kinds_and_ctrunc_is_reported() {
        let (l, ep) = listener("fds");
        let server = std::thread::spawn(move || {
            let s = Conn::from_fd(accept(&l).expect("accept"), Duration::from_secs(5));
            let m = s.expect_msg("ATTACH", 0).expect("attach");
            assert_eq!(m.bytes.len(), MSG_LEN);
            let seg =
                nix::sys::memfd::memfd_create(c"seg-test", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                    .expect("memfd");
            let ev = nix::sys::eventfd::EventFd::new().expect("eventfd");
            let mut reply = [0u8; MSG_LEN];
            reply[0] = 2;
            reply[38] = 2;
            reply[39] = 0x06;
            for _ in 0..2 {
                s.send_with_fds(&reply, &[seg.as_fd(), ev.as_fd()])
                    .expect("send");
            }
        });
        let c = Conn::connect(&ep, Duration::from_secs(5)).expect("connect");
        assert!(c.peer_pid().is_some());
        let e = c.attach(&AttachRequest::probe("t", true)).expect("reply");
        assert_eq!(e.reply.n_fds, 2);
        assert_eq!(
            e.infos.iter().map(|i| i.kind.short()).collect::<Vec<_>>(),
            ["memfd", "eventfd"]
        );
        let small = match c.recv(1).expect("recv") {
            Recv::Msg(m) => m,
            other => panic!("expected a datagram, got {other:?}"),
        };
        assert!(small.ctrunc);
        assert_eq!(small.fds.len(), 1);
        server.join().expect("server thread");
        assert!(matches!(c.recv(1).expect("eof"), Recv::Eof));
    }

    #[test]
    fn stream_client_is_refused_by_a_seqpacket_listener() {
        let dir = std::env::temp_dir().join(format!("sapi-conf-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("sock");
        let _ = std::fs::remove_file(&path);
        let ep = Endpoint::Path(path.clone());
        let l = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        bind(l.as_raw_fd(), &ep.addr().expect("addr")).expect("bind");
        listen(&l, Backlog::new(5).expect("backlog")).expect("listen");
        match connect_as(&ep, SockType::Stream) {
            Err(ClientError::Connect { errno, .. }) => assert_eq!(errno, Errno::EPROTOTYPE),
            other => panic!("expected EPROTOTYPE, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn endpoint_parses_abstract_names() {
        assert_eq!(
            "abstract:vpp".parse::<Endpoint>(),
            Ok(Endpoint::Abstract(b"vpp".to_vec()))
        );
        assert_eq!(
            "/run/vpp/x".parse::<Endpoint>(),
            Ok(Endpoint::Path("/run/vpp/x".into()))
        );
    }
}
