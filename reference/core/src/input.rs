//! What the shell tells the core: the kernel's news (a connection, a datagram, a close, a failed
//! send, a deadline) and the outcome of each resource the core asked for.
//!
//! Must never: carry a file descriptor, a clock reading or a view of shared memory: a socket is its
//! [`SocketId`], a deadline arrives as [`Input::DeadlineExpired`], and what an app posted into an
//! mq arrives decoded ([`CtrlMessage`], [`IoEvent`]).

use sapi_wire::ctrl::{CtrlMessage, IoEvent};

use crate::access::PeerCred;
use crate::admin::AdminCommand;
use crate::ids::{NsIndex, PairId, SegmentId, SessionHandle, SocketId, WorkerKey};

/// What the shell tells the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Input<'a> {
    /// A listener accepted a connection; the core answers with [`Action::Accepted`](crate::Action::Accepted) or
    /// [`Action::Refuse`](crate::Action::Refuse).
    Accept {
        /// The namespace whose listener accepted.
        ns: NsIndex,
        /// The peer's credentials.
        peer: PeerCred,
    },
    /// One datagram read from a socket. `bytes` is what `recvmsg` returned into a buffer large
    /// enough for cert-key data; a request datagram longer than 209 bytes is processed as its
    /// first 209 bytes, as VPP's 209-byte read makes the kernel do.
    Datagram {
        /// The socket.
        sock: SocketId,
        /// The bytes read.
        bytes: &'a [u8],
        /// The datagram was longer than the buffer (`MSG_TRUNC`).
        truncated: bool,
        /// The peer sent ancillary data that did not fit (`MSG_CTRUNC`: fds dropped).
        ctrunc: bool,
    },
    /// The peer closed, the socket errored or hung up.
    Closed {
        /// The socket.
        sock: SocketId,
    },
    /// Sending on a socket failed (would block, peer gone, buffer full).
    SendFailed {
        /// The socket.
        sock: SocketId,
    },
    /// Writing into a worker's mq failed for a reason other than a full queue: the app
    /// corrupted its shared memory or holds the mq's lock.
    MqFailed {
        /// The worker.
        worker: WorkerKey,
    },
    /// A deadline armed by [`Action::SetDeadline`](crate::Action::SetDeadline) passed.
    DeadlineExpired {
        /// The socket.
        sock: SocketId,
    },
    /// Outcome of [`Action::CreateWorkerResources`](crate::Action::CreateWorkerResources).
    WorkerResources {
        /// The worker.
        worker: WorkerKey,
        /// What was created, or why not.
        result: Result<WorkerResourcesReady, ResourceError>,
    },
    /// Outcome of [`Action::CreateSegment`](crate::Action::CreateSegment).
    SegmentCreated {
        /// The segment.
        id: SegmentId,
        /// Its `ssvm_size`, or why it could not be created.
        result: Result<u64, ResourceError>,
    },
    /// Outcome of [`Action::Listen`](crate::Action::Listen).
    Listened {
        /// The namespace.
        ns: NsIndex,
        /// Ok, or the error text.
        result: Result<(), String>,
    },
    /// An admin command; answered by exactly one [`Action::AdminReply`](crate::Action::AdminReply).
    Admin(AdminCommand),
    /// A control message an app posted into server mq `thread` (ring 1), decoded.
    AppCtrl {
        /// The server thread whose mq it came from.
        thread: u8,
        /// The message.
        msg: CtrlMessage,
    },
    /// An io event an app posted into server mq `thread` (ring 0), decoded.
    AppIo {
        /// The server thread whose mq it came from.
        thread: u8,
        /// The event.
        event: IoEvent,
    },
    /// Outcome of [`Action::AllocFifoPair`](crate::Action::AllocFifoPair): the offsets of fifo
    /// A and fifo B.
    FifoPairAllocated {
        /// The pair.
        pair: PairId,
        /// `(A, B)`, or why not.
        result: Result<(u64, u64), ResourceError>,
    },
    /// Outcome of [`Action::AllocShadows`](crate::Action::AllocShadows): the offsets of C's
    /// shadow RX and TX headers.
    ShadowsAllocated {
        /// The pair.
        pair: PairId,
        /// `(rx, tx)`, or why not.
        result: Result<(u64, u64), ResourceError>,
    },
    /// Outcome of [`Action::ProbeUnread`](crate::Action::ProbeUnread).
    Unread {
        /// The closing session.
        session: SessionHandle,
        /// Its rx fifo still holds data.
        unread: bool,
    },
}

/// Why the shell could not create a worker's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// memfd creation, sizing or mapping failed, or the mq did not fit.
    #[error("segment creation failed")]
    SegmentCreate,
    /// Huge pages were asked for and are not available.
    #[error("huge pages not available")]
    HugePages,
    /// eventfd creation failed.
    #[error("eventfd allocation failed")]
    EventfdAlloc,
    /// The segment has no room for the fifos or headers asked for.
    #[error("no room in the segment")]
    NoRoom,
}

/// What the shell reports back after creating a worker's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerResourcesReady {
    /// Offset of the event mq from the segment's fifo-segment header.
    pub mq_offset: u64,
    /// The segment's `ssvm_size` (announced sizes derive from it).
    pub ssvm_size: u64,
}
