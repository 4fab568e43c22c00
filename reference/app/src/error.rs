//! [`AppError`]: everything an app call can run into, each case carrying the value that was
//! wrong (the retval and its `SESSION_E_*` name, the handle, the offset, the errno).
//!
//! Owns: the vocabulary of failures of this crate. Must never: lose the offending value, or turn
//! a server's answer into a panic.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use sapi_shm::SegmentError;
use sapi_shm::fifo::FifoError;
use sapi_shm::mq::MqError;
use sapi_wire::ctrl::{CtrlDecodeError, CtrlEncodeError, IoDecodeError};
use sapi_wire::{DecodeError, EncodeError, NameError};

/// `SESSION_E_*` name of a retval, for messages (`"-6 (NOROUTE)"`).
pub(crate) fn retval_name(retval: i32) -> String {
    match sapi_wire::session_error_name(retval) {
        Some(name) => format!("{retval} ({name})"),
        None => retval.to_string(),
    }
}

/// Why an app call failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The namespace socket could not be connected.
    #[error("connect to {path}: {err}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The errno.
        err: Errno,
    },
    /// A system call on the app's socket, eventfd or epoll instance failed.
    #[error("{op}: {err}")]
    Sys {
        /// The call.
        op: &'static str,
        /// The errno.
        err: Errno,
    },
    /// The application name does not fit the ATTACH field.
    #[error("application name: {0}")]
    Name(#[from] NameError),
    /// The server closed the app's socket (it went away, or detached this app).
    #[error("the server closed the app socket")]
    ServerGone,
    /// Nothing came within the bound.
    #[error("no {what} within {after:?}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// The bound.
        after: Duration,
    },
    /// A datagram on the socket is not a SAPI message.
    #[error("socket datagram of {len} bytes: {err}")]
    Datagram {
        /// Its length.
        len: usize,
        /// The decoder's verdict.
        err: DecodeError,
    },
    /// The socket carried another message than the one the protocol puts there.
    #[error("expected {expected} on the socket, got {got}")]
    UnexpectedDatagram {
        /// What was expected.
        expected: &'static str,
        /// What came (type name and fd count).
        got: String,
    },
    /// The kernel cut the fds of a datagram (more than the receive buffer holds).
    #[error("{what}: control data truncated (fds lost)")]
    FdsTruncated {
        /// The datagram.
        what: &'static str,
    },
    /// ATTACH_REPLY with a non-zero retval.
    #[error("ATTACH refused: retval {}", retval_name(*retval))]
    AttachRefused {
        /// The retval.
        retval: i32,
    },
    /// ATTACH_REPLY's fds are not the three of an eventfd-mode attach without private rx mqs.
    #[error("ATTACH_REPLY announces fd_flags {fd_flags:#04x} and {n_fds} fds; {received} came")]
    AttachFds {
        /// `fd_flags`.
        fd_flags: u8,
        /// `n_fds`.
        n_fds: u8,
        /// Fds received.
        received: usize,
    },
    /// The VPP mqs segment does not hold `n_mqs` queues of equal size, or the ctrl mq is not
    /// one of them (`docs/shm.md` §3.6).
    #[error(
        "server mqs: n_mqs {n_mqs}, n_reserved_bytes {n_reserved_bytes:#x}, start_byte_index \
         {start_byte_index:#x}, ctrl mq {ctrl_offset:#x} as thread {ctrl_thread}"
    )]
    MqDiscovery {
        /// `n_mqs`.
        n_mqs: u8,
        /// `n_reserved_bytes`.
        n_reserved_bytes: u32,
        /// `start_byte_index`.
        start_byte_index: u64,
        /// `vpp_ctrl_mq`.
        ctrl_offset: u64,
        /// `vpp_ctrl_mq_thread`.
        ctrl_thread: u8,
    },
    /// A message names a server mq that does not exist.
    #[error("{what}: mq_index {index} names none of the {n} server mqs")]
    NoSuchMq {
        /// The message.
        what: &'static str,
        /// The index.
        index: u32,
        /// Server mqs found at attach.
        n: usize,
    },
    /// A message names a segment no ADD_SEGMENT announced (and that is not the first).
    #[error("{what}: segment handle {handle:#x} is not mapped")]
    UnknownSegment {
        /// The field.
        what: &'static str,
        /// The handle.
        handle: u64,
    },
    /// ADD_SEGMENT without a usable SEND_FDS before it.
    #[error("ADD_SEGMENT {handle:#x}: {why}")]
    SendFds {
        /// The segment handle.
        handle: u64,
        /// What was wrong.
        why: String,
    },
    /// An app mq element that is no control message of the session layer.
    #[error("app mq element (type {type_byte}): {err}")]
    CtrlDecode {
        /// Its type byte.
        type_byte: u8,
        /// The decoder's verdict.
        err: CtrlDecodeError,
    },
    /// An app mq element of ring 0 that is no io event.
    #[error("app mq io element (type {type_byte}): {err}")]
    IoDecode {
        /// Its type byte.
        type_byte: u8,
        /// The decoder's verdict.
        err: IoDecodeError,
    },
    /// BOUND with a non-zero retval.
    #[error("LISTEN on {ip}:{port}: BOUND retval {}", retval_name(*retval))]
    ListenRefused {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
        /// The retval.
        retval: i32,
    },
    /// CONNECTED with a non-zero retval.
    #[error("CONNECT to {ip}:{port}: CONNECTED retval {}", retval_name(*retval))]
    ConnectRefused {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
        /// The retval.
        retval: i32,
    },
    /// An ACCEPTED or CONNECTED whose fifos cannot be used (the session was refused or
    /// disconnected).
    #[error("session {handle:#x}: fifo at {offset:#x}: {err}")]
    BadFifo {
        /// The session handle.
        handle: u64,
        /// The fifo header's offset.
        offset: u64,
        /// What is wrong with it.
        err: FifoError,
    },
    /// Nothing can be read or written now (a non-blocking call).
    #[error("would block")]
    WouldBlock,
    /// The peer reset the session (RESET): reads and writes fail.
    #[error("session {handle:#x} was reset by the peer")]
    PeerReset {
        /// The session handle.
        handle: u64,
    },
    /// The peer closed the session (DISCONNECTED): it reads nothing more.
    #[error("session {handle:#x}: the peer closed it; nothing more can be written")]
    PeerClosed {
        /// The session handle.
        handle: u64,
    },
    /// The session is closed or cleaned up.
    #[error("session {handle:#x} is not connected")]
    NotConnected {
        /// The session handle.
        handle: u64,
    },
    /// The listener is closed.
    #[error("listener {handle:#x} is closed")]
    ListenerClosed {
        /// The listener handle.
        handle: u64,
    },
    /// The app detached.
    #[error("the app is detached")]
    Detached,
    /// A message could not be encoded (never for what this crate sends).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A control message could not be encoded (never for what this crate sends).
    #[error(transparent)]
    CtrlEncode(#[from] CtrlEncodeError),
    /// The stream ended before the bytes asked for came.
    #[error("session {handle:#x}: end of stream with {missing} bytes still expected")]
    UnexpectedEof {
        /// The session handle.
        handle: u64,
        /// Bytes that did not come.
        missing: usize,
    },
    /// A segment could not be mapped or read.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// A message queue failed.
    #[error(transparent)]
    Mq(#[from] MqError),
    /// A fifo failed.
    #[error(transparent)]
    Fifo(#[from] FifoError),
}

impl AppError {
    pub(crate) fn sys(op: &'static str) -> impl FnOnce(Errno) -> AppError {
        move |err| AppError::Sys { op, err }
    }
}
