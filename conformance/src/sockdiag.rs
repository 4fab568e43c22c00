//! Which socket is paired with which, asked of the kernel through `NETLINK_SOCK_DIAG`
//! (`sock_diag(7)`, the `unix_diag` family): for a connected `AF_UNIX` socket of the suite's
//! own, or of a crash-test child, the inode of the server-side socket the kernel paired it with
//! (`UDIAG_SHOW_PEER` → `UNIX_DIAG_PEER`). The hygiene and detach scenarios then look for exactly
//! that inode among the server's `/proc/<pid>/fd` links (`socket:[INO]`), whatever else the
//! server holds.
//!
//! Owns the netlink socket, the encoding of one `unix_diag_req` and the bounds-checked reading of
//! the kernel's answer, offset by offset in the manner of [`crate::wire`].
//!
//! Must never: panic on, or trust a length in, what the kernel returns; ask about anything but one
//! `AF_UNIX` socket named by its inode; or guess a peer some other way (`/proc/net/unix` has no
//! peer column, so there is no fallback: without `unix_diag` the caller skips and says why).

use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
    socketpair,
};

use crate::fds;

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h): the one request type of `sock_diag`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `UDIAG_SHOW_PEER` (linux/unix_diag.h): ask for the peer's inode.
const UDIAG_SHOW_PEER: u32 = 0x04;
/// `UNIX_DIAG_PEER` (linux/unix_diag.h): the attribute carrying the peer's inode (u32).
const UNIX_DIAG_PEER: u16 = 2;
/// `UNIX_DIAG_SHUTDOWN` (linux/unix_diag.h): the socket's `sk_shutdown` (u8), always sent.
const UNIX_DIAG_SHUTDOWN: u16 = 6;
/// `RCV_SHUTDOWN` in `sk_shutdown`: set on a connected socket when its peer is released.
const RCV_SHUTDOWN: u8 = 1;
/// `NLA_TYPE_MASK`: the attribute type without the nested / byte-order flag bits.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `INET_DIAG_NOCOOKIE`: look the socket up by inode alone.
const NO_COOKIE: u32 = u32::MAX;

const NLMSG_HDR_LEN: usize = 16;
/// `struct unix_diag_req`: family, protocol, pad, states, ino, show, cookie[2].
const UNIX_DIAG_REQ_LEN: usize = 24;
/// `struct unix_diag_msg`: family, type, state, pad, ino, cookie[2].
const UNIX_DIAG_MSG_LEN: usize = 16;
const NLA_HDR_LEN: usize = 4;

/// How long one answer may take. The kernel answers a `sock_diag` request synchronously, inside
/// the `sendto`, so this bound is only ever reached by a kernel that does not answer at all.
const ANSWER_BOUND: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    #[error("{op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    #[error("sock_diag answered {errno} about socket inode {ino}")]
    Kernel { ino: u64, errno: Errno },
    #[error("sock_diag did not answer within {after:?}")]
    NoAnswer { after: Duration },
    #[error("malformed sock_diag answer: {what} ({len}-byte answer)")]
    Malformed { what: &'static str, len: usize },
    #[error("sock_diag answered about socket inode {got}, asked about {asked}")]
    WrongSocket { asked: u64, got: u64 },
    #[error("socket inode {ino} does not fit unix_diag's 32-bit inode field")]
    InodeTooLarge { ino: u64 },
    #[error("fstat of a socket: {0}")]
    Fd(#[from] fds::FdError),
    #[error(
        "sock_diag self-test: the peer of one end of a socketpair (inode {ino}) was reported as {got:?}, the other end is {expected}"
    )]
    SelfTest {
        ino: u64,
        got: Option<u64>,
        expected: u64,
    },
}

/// What the kernel said about one socket's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// The socket has no peer (not connected, or the pairing is gone).
    None,
    /// A peer exists but has no inode yet: the server has not `accept`ed the connection.
    NotAccepted,
    /// The peer was released (the server closed its side): it has no inode any more, and our
    /// side is shut down for receiving.
    Closed,
    /// The peer socket's inode, as `/proc/<pid>/fd` shows it (`socket:[INO]`).
    Inode(u64),
}

/// A `NETLINK_SOCK_DIAG` socket, checked once on a socketpair of its own.
pub struct SockDiag {
    fd: OwnedFd,
    seq: Cell<u32>,
}

impl std::fmt::Debug for SockDiag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SockDiag(fd {})", self.fd.as_raw_fd())
    }
}

impl SockDiag {
    /// Opens the netlink socket and checks, on a socketpair of its own, that the kernel names
    /// each end as the other's peer. An error here means `unix_diag` is unavailable (a kernel
    /// without `CONFIG_UNIX_DIAG` answers `ENOENT`) or does not say what this module expects.
    pub fn open() -> Result<Self, SockDiagError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )
        .map_err(|errno| SockDiagError::Sys {
            op: "socket(AF_NETLINK, NETLINK_SOCK_DIAG)",
            errno,
        })?;
        let d = SockDiag {
            fd,
            seq: Cell::new(0),
        };
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|errno| SockDiagError::Sys {
            op: "socketpair",
            errno,
        })?;
        let (ia, ib) = (fds::stat_of(&a)?.ino, fds::stat_of(&b)?.ino);
        let got = d.peer_of_inode(ia)?;
        if got != Peer::Inode(ib) {
            return Err(SockDiagError::SelfTest {
                ino: ia,
                got: match got {
                    Peer::Inode(i) => Some(i),
                    _ => None,
                },
                expected: ib,
            });
        }
        Ok(d)
    }

    /// The peer of one of our own sockets.
    pub fn peer_of(&self, sock: BorrowedFd<'_>) -> Result<Peer, SockDiagError> {
        self.peer_of_inode(fds::stat_of(sock)?.ino)
    }

    /// The peer of the `AF_UNIX` socket with inode `ino`, whoever holds it (a crash-test child's
    /// socket included: the lookup is by inode within the network namespace).
    pub fn peer_of_inode(&self, ino: u64) -> Result<Peer, SockDiagError> {
        let ino32 = u32::try_from(ino).map_err(|_| SockDiagError::InodeTooLarge { ino })?;
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let req = encode_request(ino32, seq);
        sendto(
            self.fd.as_raw_fd(),
            &req,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .map_err(|errno| SockDiagError::Sys {
            op: "sendto(sock_diag)",
            errno,
        })?;
        let deadline = Instant::now() + ANSWER_BOUND;
        let mut buf = vec![0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SockDiagError::NoAnswer {
                    after: ANSWER_BOUND,
                });
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut pfd = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut pfd, PollTimeout::from(ms)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(SockDiagError::Sys {
                        op: "poll(sock_diag)",
                        errno,
                    });
                }
            }
            let n = match recv(
                self.fd.as_raw_fd(),
                &mut buf,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
            ) {
                Ok(n) => n,
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(errno) => {
                    return Err(SockDiagError::Sys {
                        op: "recv(sock_diag)",
                        errno,
                    });
                }
            };
            if n > buf.len() {
                return Err(SockDiagError::Malformed {
                    what: "answer larger than the receive buffer",
                    len: n,
                });
            }
            match parse_answer(&buf[..n], ino, seq)? {
                Some(peer) => return Ok(peer),
                // An answer to an earlier request (one that timed out): read on.
                None => continue,
            }
        }
    }

    /// The peer's inode once the server has accepted the connection: polls (each wait a
    /// `park_timeout` backoff, the whole bounded by `timeout`) while the kernel says the peer
    /// exists but was not accepted yet. `Ok(Err(peer))`: no peer, a peer already closed, or one
    /// not accepted within `timeout` — the caller names which in its evidence.
    pub fn accepted_peer_of_inode(
        &self,
        ino: u64,
        timeout: Duration,
    ) -> Result<Result<u64, Peer>, SockDiagError> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_micros(100);
        loop {
            match self.peer_of_inode(ino)? {
                Peer::Inode(i) => return Ok(Ok(i)),
                p @ (Peer::None | Peer::Closed) => return Ok(Err(p)),
                Peer::NotAccepted if Instant::now() >= deadline => {
                    return Ok(Err(Peer::NotAccepted));
                }
                Peer::NotAccepted => {
                    std::thread::park_timeout(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(20));
                }
            }
        }
    }
}

/// One `nlmsghdr` + `unix_diag_req` asking for the peer of the socket with inode `ino`.
fn encode_request(ino: u32, seq: u32) -> [u8; NLMSG_HDR_LEN + UNIX_DIAG_REQ_LEN] {
    let mut b = [0u8; NLMSG_HDR_LEN + UNIX_DIAG_REQ_LEN];
    let len = (NLMSG_HDR_LEN + UNIX_DIAG_REQ_LEN) as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel fills in the port.
    let r = &mut b[NLMSG_HDR_LEN..];
    r[0] = libc::AF_UNIX as u8; // sdiag_family
    // sdiag_protocol 0, pad 0.
    r[4..8].copy_from_slice(&u32::MAX.to_ne_bytes()); // udiag_states: any
    r[8..12].copy_from_slice(&ino.to_ne_bytes()); // udiag_ino
    r[12..16].copy_from_slice(&UDIAG_SHOW_PEER.to_ne_bytes()); // udiag_show
    r[16..20].copy_from_slice(&NO_COOKIE.to_ne_bytes());
    r[20..24].copy_from_slice(&NO_COOKIE.to_ne_bytes());
    b
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// Reads one datagram of answers. `Ok(None)`: every message in it answered another request.
fn parse_answer(b: &[u8], asked: u64, seq: u32) -> Result<Option<Peer>, SockDiagError> {
    let malformed = |what| SockDiagError::Malformed { what, len: b.len() };
    let mut off = 0usize;
    while off < b.len() {
        let msg = b.get(off..).unwrap_or_default();
        let len = u32_at(msg, 0).ok_or_else(|| malformed("truncated nlmsghdr"))? as usize;
        if len < NLMSG_HDR_LEN || len > msg.len() {
            return Err(malformed("nlmsg_len outside the answer"));
        }
        let ty = u16_at(msg, 4).ok_or_else(|| malformed("truncated nlmsghdr"))?;
        let mseq = u32_at(msg, 8).ok_or_else(|| malformed("truncated nlmsghdr"))?;
        let body = msg.get(NLMSG_HDR_LEN..len).unwrap_or_default();
        off = off.saturating_add(align4(len));
        if mseq != seq {
            continue;
        }
        if ty == libc::NLMSG_ERROR as u16 {
            let err = u32_at(body, 0).ok_or_else(|| malformed("truncated nlmsgerr"))? as i32;
            if err == 0 {
                // A bare acknowledgement carries no answer.
                continue;
            }
            return Err(SockDiagError::Kernel {
                ino: asked,
                errno: Errno::from_raw(err.saturating_neg()),
            });
        }
        if ty != SOCK_DIAG_BY_FAMILY {
            continue;
        }
        if body.len() < UNIX_DIAG_MSG_LEN {
            return Err(malformed("truncated unix_diag_msg"));
        }
        let got = u32_at(body, 4).ok_or_else(|| malformed("truncated unix_diag_msg"))?;
        if u64::from(got) != asked {
            return Err(SockDiagError::WrongSocket {
                asked,
                got: u64::from(got),
            });
        }
        let mut a = UNIX_DIAG_MSG_LEN;
        let (mut peer, mut shutdown) = (None, 0u8);
        while a + NLA_HDR_LEN <= body.len() {
            let nla_len = u16_at(body, a).ok_or_else(|| malformed("truncated nlattr"))? as usize;
            let nla_type =
                u16_at(body, a + 2).ok_or_else(|| malformed("truncated nlattr"))? & NLA_TYPE_MASK;
            if nla_len < NLA_HDR_LEN || a + nla_len > body.len() {
                return Err(malformed("nla_len outside the message"));
            }
            if nla_type == UNIX_DIAG_PEER {
                peer = Some(
                    u32_at(body, a + NLA_HDR_LEN)
                        .filter(|_| nla_len >= NLA_HDR_LEN + 4)
                        .ok_or_else(|| malformed("UNIX_DIAG_PEER shorter than a u32"))?,
                );
            } else if nla_type == UNIX_DIAG_SHUTDOWN {
                shutdown = *body
                    .get(a + NLA_HDR_LEN)
                    .filter(|_| nla_len > NLA_HDR_LEN)
                    .ok_or_else(|| malformed("empty UNIX_DIAG_SHUTDOWN"))?;
            }
            a += align4(nla_len);
        }
        return Ok(Some(match peer {
            None => Peer::None,
            Some(0) if shutdown & RCV_SHUTDOWN != 0 => Peer::Closed,
            Some(0) => Peer::NotAccepted,
            Some(i) => Peer::Inode(u64::from(i)),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{Backlog, UnixAddr, accept4, bind, connect, listen};

    fn answer(seq: u32, ino: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![libc::AF_UNIX as u8, 5, 1, 0];
        body.extend_from_slice(&ino.to_ne_bytes());
        body.extend_from_slice(&[0u8; 8]);
        for (ty, v) in attrs {
            body.extend_from_slice(&((NLA_HDR_LEN + v.len()) as u16).to_ne_bytes());
            body.extend_from_slice(&ty.to_ne_bytes());
            body.extend_from_slice(v);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = ((NLMSG_HDR_LEN + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn answers_parse_and_every_truncation_is_an_error_not_a_panic() {
        let a = answer(
            7,
            42,
            &[(1, &[1, 2, 3]), (UNIX_DIAG_PEER, &99u32.to_ne_bytes())],
        );
        assert_eq!(parse_answer(&a, 42, 7).expect("ok"), Some(Peer::Inode(99)));
        assert_eq!(parse_answer(&a, 42, 8).expect("other seq"), None);
        assert!(matches!(
            parse_answer(&a, 43, 7),
            Err(SockDiagError::WrongSocket { asked: 43, got: 42 })
        ));
        let zero = answer(1, 5, &[(UNIX_DIAG_PEER, &0u32.to_ne_bytes())]);
        assert_eq!(
            parse_answer(&zero, 5, 1).expect("ok"),
            Some(Peer::NotAccepted)
        );
        let closed = answer(
            1,
            5,
            &[
                (UNIX_DIAG_PEER, &0u32.to_ne_bytes()),
                (UNIX_DIAG_SHUTDOWN, &[3]),
            ],
        );
        assert_eq!(parse_answer(&closed, 5, 1).expect("ok"), Some(Peer::Closed));
        let none = answer(1, 5, &[(UNIX_DIAG_SHUTDOWN, &[0])]);
        assert_eq!(parse_answer(&none, 5, 1).expect("ok"), Some(Peer::None));
        for cut in 0..a.len() {
            // Must not panic; a cut inside the header or an attribute is an error.
            let _ = parse_answer(&a[..cut], 42, 7);
        }
        let mut lying = a.clone();
        lying[0..4].copy_from_slice(&4096u32.to_ne_bytes());
        assert!(parse_answer(&lying, 42, 7).is_err());
    }

    #[test]
    fn a_kernel_error_carries_its_errno() {
        let mut m = ((NLMSG_HDR_LEN + 4 + NLMSG_HDR_LEN) as u32)
            .to_ne_bytes()
            .to_vec();
        m.extend_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&3u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        m.extend_from_slice(&[0u8; NLMSG_HDR_LEN]);
        assert!(matches!(
            parse_answer(&m, 9, 3),
            Err(SockDiagError::Kernel {
                ino: 9,
                errno: Errno::ENOENT
            })
        ));
    }

    /// Against the real kernel: a listener's accepted socket is the connecting socket's peer,
    /// and before `accept` the peer exists without an inode.
    #[test]
    fn the_kernel_names_the_accepted_socket_as_the_peer() {
        let d = SockDiag::open().expect("sock_diag (unix_diag) available");
        let name = format!("sapi-conformance-sockdiag-{}", std::process::id());
        let addr = UnixAddr::new_abstract(name.as_bytes()).expect("addr");
        let l = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        bind(l.as_raw_fd(), &addr).expect("bind");
        listen(&l, Backlog::new(4).expect("backlog")).expect("listen");
        let c = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        connect(c.as_raw_fd(), &addr).expect("connect");
        assert_eq!(d.peer_of(c.as_fd()).expect("peer"), Peer::NotAccepted);
        // CLOEXEC: a child another test forks meanwhile must not keep the socket open.
        let s = accept4(&l, SockFlag::SOCK_CLOEXEC).expect("accept");
        let server_ino = fds::stat_of(&s).expect("stat").ino;
        assert_eq!(d.peer_of(c.as_fd()).expect("peer"), Peer::Inode(server_ino));
        let ci = fds::stat_of(&c).expect("stat").ino;
        assert_eq!(
            d.accepted_peer_of_inode(ci, Duration::from_secs(1))
                .expect("peer"),
            Ok(server_ino)
        );
        assert_eq!(d.peer_of(l.as_fd()).expect("listener"), Peer::None);
        drop(s);
        assert_eq!(d.peer_of(c.as_fd()).expect("peer"), Peer::Closed);
    }
}
