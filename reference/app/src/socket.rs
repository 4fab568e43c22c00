//! The app's end of the namespace socket (`docs/protocol.md` §1, §5, §8): a `SOCK_SEQPACKET`
//! connection carrying 209-byte datagrams, with fds by `SCM_RIGHTS`.
//!
//! Owns: connecting, sending one datagram, receiving one datagram with its fds within a bound,
//! and the socket fd itself (closed on drop, which the server takes as a detach).
//!
//! Must never: block without a bound, or leak an fd the kernel handed over (every fd received
//! is an [`OwnedFd`] at once, even when the datagram turns out to be wrong).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, connect, recvmsg,
    sendmsg, socket,
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
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            self.fd.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(m) => m,
            Err(Errno::ECONNRESET) => return Err(AppError::ServerGone),
            Err(err) => {
                return Err(AppError::Sys {
                    op: "recvmsg(app socket)",
                    err,
                });
            }
        };
        let len = msg.bytes;
        let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
        let mut fds = Vec::new();
        for c in msg
            .cmsgs()
            .map_err(AppError::sys("recvmsg(app socket): cmsgs"))?
        {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel just installed these fds in this process for us; nobody
                // else owns them.
                fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
            }
        }
        if truncated {
            return Err(AppError::FdsTruncated { what });
        }
        if len == 0 {
            return Err(AppError::ServerGone);
        }
        let bytes = buf.get(..len).unwrap_or_default().to_vec();
        Ok(Datagram { bytes, fds })
    }
}
