//! The app's end of the namespace socket (`docs/protocol.md` §1, §5, §8): a `SOCK_SEQPACKET`
//! connection carrying 209-byte datagrams, with fds by `SCM_RIGHTS`.
//!
//! Owns: connecting, sending one datagram, receiving one datagram with its fds within a bound,
//! and the socket fd itself (closed on drop, which the server takes as a detach).
//!
//! Must never: block without a bound, or leak an fd the kernel handed over (every fd received
//! is an [`OwnedFd`] at once, even when the datagram turns out to be wrong).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, connect, sendmsg, socket,
};
use sapi_wire::MSG_LEN;

use crate::error::AppError;

/// Room for the fds of one datagram: VCL's 32 for an ATTACH_REPLY (`docs/protocol.md` §5.1).
const MAX_FDS: usize = 32;

/// One datagram and the fds that came with it.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub bytes: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// The connected namespace socket.
#[derive(Debug)]
pub(crate) struct AppSocket {
    fd: OwnedFd,
}

impl AppSocket {
    /// Connects to the namespace socket at `path`.
    pub fn connect(path: &Path) -> Result<AppSocket, AppError> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(AppError::sys("socket(AF_UNIX, SOCK_SEQPACKET)"))?;
        let addr = UnixAddr::new(path).map_err(|err| AppError::Connect {
            path: path.to_owned(),
            err,
        })?;
        connect(fd.as_raw_fd(), &addr).map_err(|err| AppError::Connect {
            path: path.to_owned(),
            err,
        })?;
        Ok(AppSocket { fd })
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Sends one datagram (no fds: the server takes none, `docs/protocol.md` §5.1).
    pub fn send(&self, bytes: &[u8]) -> Result<(), AppError> {
        let n = sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(bytes)],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|err| match err {
            Errno::EPIPE | Errno::ECONNRESET => AppError::ServerGone,
            err => AppError::Sys {
                op: "sendmsg(app socket)",
                err,
            },
        })?;
        if n != bytes.len() {
            return Err(AppError::Sys {
                op: "sendmsg(app socket): short datagram",
                err: Errno::EMSGSIZE,
            });
        }
        Ok(())
    }

    /// Receives one datagram and its fds, waiting at most `timeout` for it. EOF (or a reset)
    /// is [`AppError::ServerGone`].
    pub fn recv(&self, what: &'static str, timeout: Duration) -> Result<Datagram, AppError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Rounded up: waking before the deadline would only spin.
            let ms =
                PollTimeout::try_from(left.as_micros().div_ceil(1000)).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) if Instant::now() >= deadline => {
                    return Err(AppError::Timeout {
                        what,
                        after: timeout,
                    });
                }
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => return self.recv_now(what),
                Err(err) => {
                    return Err(AppError::Sys {
                        op: "poll(app socket)",
                        err,
                    });
                }
            }
        }
    }

    fn recv_now(&self, what: &'static str) -> Result<Datagram, AppError> {
        // One byte more than a message: a longer datagram shows as such instead of being cut
        // to 209 silently.
        let mut buf = [0u8; MSG_LEN + 1];
        let (len, truncated, fds) = match recv_with_fds(self.fd.as_fd(), &mut buf) {
            Ok(r) => r,
            Err(Errno::ECONNRESET) => return Err(AppError::ServerGone),
            Err(err) => {
                return Err(AppError::Sys {
                    op: "recvmsg(app socket)",
                    err,
                });
            }
        };
        if truncated {
            // `fds` (those the kernel did install) are closed on the way out.
            return Err(AppError::FdsTruncated { what });
        }
        if len == 0 {
            return Err(AppError::ServerGone);
        }
        let bytes = buf.get(..len).unwrap_or_default().to_vec();
        Ok(Datagram { bytes, fds })
    }
}

/// One `recvmsg` without waiting: `(bytes, control data cut, fds)`. (The conformance suite
/// has its own walk of the same shape, `client::recvmsg_fds`: the checker shares no code with
/// what it checks.) Walks the control data
/// itself, within the length the kernel wrote, because when the kernel cuts it (`MSG_CTRUNC`,
/// a peer sending more fds than [`MAX_FDS`]) the fds that did fit are installed all the same,
/// and they must still be owned (nix refuses to iterate then, which would leak them).
fn recv_with_fds(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, bool, Vec<OwnedFd>), Errno> {
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) };
    // u64s: the control buffer must be aligned for `cmsghdr`.
    let mut control = vec![0u64; (space as usize).div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (no name, no iovecs, no control).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.as_mut_ptr().cast();
    mh.msg_controllen = control.len() * 8;
    // SAFETY: `mh` points at `iov` (into `buf`) and `control`, both live for the call.
    let n = unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &mut mh,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
        )
    };
    let Ok(len) = usize::try_from(n) else {
        return Err(Errno::last());
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel wrote `msg_controllen` bytes of whole cmsg headers into `control`;
    // CMSG_FIRSTHDR / CMSG_NXTHDR stay within them, and each SCM_RIGHTS payload holds
    // `cmsg_len - CMSG_LEN(0)` bytes of fds installed in this process for us alone.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let bytes = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let raw = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    Ok((len, mh.msg_flags & libc::MSG_CTRUNC != 0, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{ControlMessage, socketpair};

    /// A server that sends more fds than an app takes (here 40 copies of a pipe's write end):
    /// the kernel installs the 32 that fit and reports the cut. The app says so, and closes the
    /// ones it got: the pipe then reads end-of-file, which it cannot while any copy is open.
    #[test]
    fn a_reply_with_more_fds_than_room_is_refused_and_leaks_none_of_them() {
        let (app_end, server_end) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        let app = AppSocket { fd: app_end };
        let (pipe_r, pipe_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)
                .expect("pipe");
        let copies = [pipe_w.as_raw_fd(); MAX_FDS + 8];
        sendmsg::<()>(
            server_end.as_raw_fd(),
            &[IoSlice::new(&[0u8; MSG_LEN])],
            &[ControlMessage::ScmRights(&copies)],
            MsgFlags::empty(),
            None,
        )
        .expect("sendmsg");
        drop(pipe_w);
        let got = app.recv("ATTACH_REPLY", Duration::from_secs(10));
        assert!(
            matches!(
                got,
                Err(AppError::FdsTruncated {
                    what: "ATTACH_REPLY"
                })
            ),
            "{got:?}"
        );
        let mut b = [0u8; 1];
        assert_eq!(
            nix::unistd::read(&pipe_r, &mut b),
            Ok(0),
            "every copy of the write end is closed"
        );
    }
}
