//! `AF_UNIX` plumbing: the `SOCK_SEQPACKET` namespace listeners (with VPP's stale-socket probe
//! and file mode), accepting, and datagrams with `SCM_RIGHTS` in both directions; and the
//! `SOCK_STREAM` admin listener, behind the same probe.
//!
//! Owns every socket syscall of the reference. It must never interpret a datagram: bytes go to
//! the core undecoded.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixAddr, UnixCredentials, accept4, bind, connect, getsockopt, listen, recvmsg, sendmsg,
    setsockopt, socket, sockopt,
};
use nix::sys::stat::{Mode, umask};

use sapi_core::{PeerCred, SocketName};

/// Why a listener could not be created; the message names the path and the cause.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The path exists and is not a socket.
    #[error("{0} exists and is not a socket")]
    NotASocket(String),
    /// Another process is listening there.
    #[error("{path} is in use by an active listener ({why})")]
    InUse {
        /// The path.
        path: String,
        /// What the probe saw.
        why: String,
    },
    /// A syscall failed.
    #[error("{op} {path}: {errno}")]
    Sys {
        /// Which operation.
        op: &'static str,
        /// The path or name.
        path: String,
        /// The error.
        errno: Errno,
    },
}

fn sys<'a>(op: &'static str, path: &'a str) -> impl FnOnce(Errno) -> ListenError + 'a {
    move |errno| ListenError::Sys {
        op,
        path: path.to_owned(),
        errno,
    }
}

/// A close-on-exec, non-blocking `AF_UNIX` socket.
fn unix_socket(ty: SockType) -> Result<OwnedFd, Errno> {
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    socket(AddressFamily::Unix, ty, flags, None)
}

/// Sets the mode of the socket file at `path`.
fn set_mode(path: &Path, mode: u32) -> Result<(), Errno> {
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
}

/// Applies VPP's rule for a path that already exists: a socket nobody listens on
/// (`ECONNREFUSED` to a stream probe) is stale and unlinked; anything else is refused.
fn clear_stale(path: &Path) -> Result<(), ListenError> {
    let shown = path.display().to_string();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(ListenError::Sys {
                op: "stat",
                path: shown,
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket(shown));
    }
    // Non-blocking: a live listener whose backlog is full answers EAGAIN (in use) at once,
    // where a blocking connect would wait for it without a bound.
    let probe = unix_socket(SockType::Stream).map_err(sys("socket", &shown))?;
    let addr = UnixAddr::new(path).map_err(sys("address", &shown))?;
    match connect(probe.as_raw_fd(), &addr) {
        Err(Errno::ECONNREFUSED) => {
            std::fs::remove_file(path).map_err(|e| ListenError::Sys {
                op: "unlink",
                path: shown.clone(),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            })?;
            Ok(())
        }
        Ok(()) => Err(ListenError::InUse {
            path: shown,
            why: "a probe connected".into(),
        }),
        Err(e) => Err(ListenError::InUse {
            path: shown,
            why: format!("probe: {e}"),
        }),
    }
}

/// Creates a non-blocking `SOCK_SEQPACKET` listener with `SO_PASSCRED`, backlog 5.
///
/// A path is bound under umask 002 (mode 0775 whatever the process umask, as VPP since 2023)
/// after the stale-socket probe; its parent directory must exist (the shell creates the default
/// `app_ns_sockets` directory). An abstract name has no file.
pub fn listen_seqpacket(name: &SocketName) -> Result<OwnedFd, ListenError> {
    let shown = name.to_string();
    let fd = unix_socket(SockType::SeqPacket).map_err(sys("socket", &shown))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(sys("SO_REUSEADDR", &shown))?;
    setsockopt(&fd, sockopt::PassCred, &true).map_err(sys("SO_PASSCRED", &shown))?;
    match name {
        SocketName::Path(path) => {
            clear_stale(path)?;
            let addr = UnixAddr::new(path.as_path()).map_err(sys("address", &shown))?;
            // umask is process-wide; the window is one bind long and the result is re-asserted
            // with chmod below, so a concurrent umask change elsewhere cannot leave a wrong mode.
            let old = umask(Mode::from_bits_truncate(0o002));
            let bound = bind(fd.as_raw_fd(), &addr);
            umask(old);
            bound.map_err(sys("bind", &shown))?;
            set_mode(path, 0o775).map_err(sys("chmod", &shown))?;
            std::fs::symlink_metadata(path).map_err(|e| ListenError::Sys {
                op: "stat",
                path: shown.clone(),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            })?;
        }
        SocketName::Abstract(n) => {
            let addr = UnixAddr::new_abstract(n.as_bytes()).map_err(sys("address", &shown))?;
            bind(fd.as_raw_fd(), &addr).map_err(sys("bind", &shown))?;
        }
    }
    listen(&fd, Backlog::new(5).unwrap_or(Backlog::MAXCONN)).map_err(sys("listen", &shown))?;
    Ok(fd)
}

/// Creates the admin socket at `path`: a non-blocking `SOCK_STREAM` listener, after the same
/// stale-socket probe as a namespace's (so a second server on the same runtime directory is
/// refused instead of taking a live server's admin socket away), mode 0600 before it listens
/// (the admin socket adds namespaces and segments: its owner's alone).
pub fn listen_admin(path: &Path) -> Result<std::os::unix::net::UnixListener, ListenError> {
    let shown = path.display().to_string();
    clear_stale(path)?;
    let fd = unix_socket(SockType::Stream).map_err(sys("socket", &shown))?;
    let addr = UnixAddr::new(path).map_err(sys("address", &shown))?;
    bind(fd.as_raw_fd(), &addr).map_err(sys("bind", &shown))?;
    // Nobody can connect before `listen`, so the mode holds from the first connection on.
    set_mode(path, 0o600).map_err(sys("chmod", &shown))?;
    listen(&fd, Backlog::new(16).unwrap_or(Backlog::MAXCONN)).map_err(sys("listen", &shown))?;
    Ok(fd.into())
}

/// Accepts one connection (non-blocking, close-on-exec) and reads its peer's credentials.
pub fn accept(listener: BorrowedFd<'_>) -> Result<(OwnedFd, PeerCred), Errno> {
    let fd = accept4(listener, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC)?;
    let peer = getsockopt(&fd, sockopt::PeerCredentials)
        .map(|c| PeerCred {
            pid: c.pid(),
            uid: c.uid(),
            gid: c.gid(),
        })
        .unwrap_or_default();
    Ok((fd, peer))
}

/// What one `recvmsg` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramRead {
    /// Bytes read into the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer (`MSG_TRUNC`).
    pub truncated: bool,
    /// Ancillary data did not fit (`MSG_CTRUNC`): fds the peer sent were dropped by the kernel.
    pub ctrunc: bool,
}

/// Reads one datagram. The control buffer has room for one `ucred` and no fds, as VPP's: fds
/// a peer sends are discarded by the kernel, which reports `MSG_CTRUNC`.
pub fn recv_datagram(fd: RawFd, buf: &mut [u8]) -> Result<DatagramRead, Errno> {
    let mut cmsg = nix::cmsg_space!(UnixCredentials);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let ctrunc = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    if let (false, Ok(cmsgs)) = (ctrunc, msg.cmsgs()) {
        for c in cmsgs {
            // Should the peer manage to pass fds anyway, they are closed, never kept.
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    let _ = nix::unistd::close(fd);
                }
            }
        }
    }
    Ok(DatagramRead {
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        ctrunc,
    })
}

/// Sends one datagram with `fds` as a single `SCM_RIGHTS` message, never blocking and never
/// raising `SIGPIPE`.
pub fn send_datagram(fd: RawFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Errno> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let iov = [IoSlice::new(bytes)];
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs };
    let sent = sendmsg::<()>(
        fd,
        &iov,
        cmsgs,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if sent != bytes.len() {
        return Err(Errno::EMSGSIZE);
    }
    Ok(())
}

/// Whether the peer has hung up: tells a zero-length datagram (a malformed request) from EOF,
/// which `recvmsg` both report as 0 bytes on a SEQPACKET socket.
pub fn peer_hung_up(fd: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n != 0 && (n < 0 || p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0)
}
