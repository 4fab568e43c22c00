//! What the core asks the shell to do ([`Action`](crate::Action)), and the contract the shell keeps.
//!
//! Owns the contract between the sans-IO core and the IO shell. Anything that needs a syscall —
//! creating a memfd, binding a listener, sending with `SCM_RIGHTS`, writing into a mapped mq —
//! is an [`Action`](crate::Action); anything the kernel tells the shell is an [`Input`](crate::Input). Resources are acquired
//! in two phases (an action asking for them, an input reporting the outcome) so that a failed
//! memfd or bind is just another deterministic input in a simulation.
//!
//! The contract: the shell performs a batch's actions in order and answers each resource
//! request (`Listen`, `CreateWorkerResources`, `CreateSegment`) before feeding any other input,
//! as VPP's main thread does its work under the barrier. The core relies on it: a worker whose
//! resources are being created is not yet bound to its socket. Send failures are reported after
//! the batch ([`Input::SendFailed`](crate::Input::SendFailed)), so no action of a batch meets a worker its own batch freed.
//!
//! Must never: carry a file descriptor, a pointer or a clock reading: an action names what it acts
//! on by the core's ids ([`SegmentId`], [`WorkerKey`], [`FdRef`]) and segment-relative offsets, and
//! a deadline as a [`Duration`] from now, so a simulation can perform the same actions.

use std::time::Duration;

use sapi_wire::Message;
use sapi_wire::ctrl::CtrlMessage;

use crate::admin::{AdminError, AdminOk};
use crate::ids::{FifoRef, NsIndex, PairId, SegmentId, SessionHandle, SocketId, WorkerKey};
use crate::socket_name::SocketName;

/// What the core asks the shell to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Register the just-accepted connection under this id.
    Accepted(SocketId),
    /// Close the just-accepted connection (no socket index left in the namespace).
    Refuse,
    /// Send one 209-byte datagram with these fds (`SCM_RIGHTS`, in this order).
    Send {
        /// The socket.
        sock: SocketId,
        /// The message.
        msg: Message,
        /// The fds.
        fds: Vec<FdRef>,
    },
    /// Close a socket (after any sends queued before this action).
    Close(SocketId),
    /// Create a listener for a namespace; answer with [`Input::Listened`](crate::Input::Listened).
    Listen {
        /// The namespace.
        ns: NsIndex,
        /// Where.
        name: SocketName,
    },
    /// Close a namespace's listener and forget its name.
    Unlisten {
        /// The namespace.
        ns: NsIndex,
    },
    /// Create a worker's first segment, its mq and maybe its eventfd; answer with
    /// [`Input::WorkerResources`](crate::Input::WorkerResources).
    CreateWorkerResources {
        /// The worker.
        worker: WorkerKey,
        /// What to create.
        spec: WorkerResources,
    },
    /// Create one more segment; answer with [`Input::SegmentCreated`](crate::Input::SegmentCreated).
    CreateSegment(SegmentSpec),
    /// Post a control message into a worker's app mq (ring 1, `postponed` 0), after
    /// everything posted to that worker before it: the shell queues it while the mq is full and
    /// never drops or reorders it; it discards it if the worker is freed first.
    PostCtrl {
        /// The worker whose app mq receives it.
        worker: WorkerKey,
        /// The message.
        msg: CtrlMessage,
    },
    /// Carve fifos A (S's rx) and B (S's tx) in a ct segment's slice; answer with
    /// [`Input::FifoPairAllocated`](crate::Input::FifoPairAllocated).
    AllocFifoPair {
        /// The pair.
        pair: PairId,
        /// The ct segment.
        segment: SegmentId,
        /// The slice (the pair's server thread).
        slice: u8,
        /// Size of A.
        rx_size: u32,
        /// Size of B.
        tx_size: u32,
    },
    /// Give a pair's two fifos (and their chunks) back to their segment.
    FreeFifoPair {
        /// The ct segment.
        segment: SegmentId,
        /// Fifo A's header.
        a: u64,
        /// Fifo B's header.
        b: u64,
    },
    /// Carve two zeroed 192-byte fifo headers in C's segment, whose signal blocks C uses (its
    /// shadow RX and TX); answer with [`Input::ShadowsAllocated`](crate::Input::ShadowsAllocated).
    AllocShadows {
        /// The pair.
        pair: PairId,
        /// C's first segment.
        segment: SegmentId,
    },
    /// Give C's shadow headers back.
    FreeShadows {
        /// C's segment.
        segment: SegmentId,
        /// The shadow RX header.
        rx: u64,
        /// The shadow TX header.
        tx: u64,
    },
    /// Say whether the reader of a fifo left data in it; answer with
    /// [`Input::Unread`](crate::Input::Unread).
    ProbeUnread {
        /// The closing session.
        session: SessionHandle,
        /// The fifo it reads.
        fifo: FifoRef,
    },
    /// Relay a writer's TX (`docs/sessions.md` §8.3) over shared memory: clear the writer's
    /// `has_event`, pass its `want_deq_ntf` on to the reader (answering it at once with TX when
    /// the fifo is already empty), and post RX to the reader unless its `has_event` was set.
    RelayTx(Relay),
    /// Relay a reader's dequeue notification (`docs/sessions.md` §8.5): clear the reader's
    /// `has_deq_ntf` and post TX to the writer, unless the writer's fifo is still full.
    RelayRx(Relay),
    /// Unmap and close a segment.
    FreeSegment(SegmentId),
    /// Close a worker's eventfd and forget its mq.
    FreeWorker(WorkerKey),
    /// Report [`Input::DeadlineExpired`](crate::Input::DeadlineExpired) for this socket after `after`, unless re-armed or the
    /// socket closes first.
    SetDeadline {
        /// The socket.
        sock: SocketId,
        /// How long from now.
        after: Duration,
    },
    /// Cancel a deadline.
    ClearDeadline(SocketId),
    /// The answer to the admin command in progress.
    AdminReply(Result<AdminOk, AdminError>),
    /// Stop watching a socket but keep its fd open: a deliberate leak, only ever asked for by an
    /// injected fault that mimics a server defect.
    Abandon(SocketId),
    /// Abort the server process at once: only ever asked for by a `crash-on-*` injected fault,
    /// which mimics a server that crashes on one input.
    Abort(&'static str),
}
/// Everything the core needs to know about a segment the shell must create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSpec {
    /// The core's id for it.
    pub id: SegmentId,
    /// Its memfd name and the name announced in APP_ADD_SEGMENT.
    pub name: String,
    /// The size the app asked for (SEGMENT_SIZE or ADD_SEGMENT_SIZE, at least 1 MiB).
    pub requested_size: u64,
    /// Back it with huge pages (`USE_HUGE_PAGE`).
    pub huge_pages: bool,
    /// The fifo-segment header's `pct_first_alloc`: the owning app's PCT_FIRST_ALLOC option
    /// (the server app's for a ct segment), at most 100. Every fifo made in the segment starts
    /// with one chunk of that share of its size, at least 4 KiB, a power of two.
    pub pct_first_alloc: u8,
}

/// A worker's first segment with its event mq, and optionally an eventfd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerResources {
    /// The first segment; the mq is its first allocation.
    pub segment: SegmentSpec,
    /// App event queue length (EVT_QUEUE_SIZE, 0 = 128).
    pub evt_queue_size: u32,
    /// Create an eventfd for the mq (EVT_MQ_USE_EVENTFD).
    pub eventfd: bool,
}

/// An fd to attach to a datagram, named by what it is, in the order it must travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdRef {
    /// The global VPP mqs segment.
    VppMqsSegment,
    /// A segment's memfd.
    Segment(SegmentId),
    /// A worker's mq eventfd.
    WorkerEventfd(WorkerKey),
}

/// One app of a relayed io event: its worker and its own index of the session (what goes into
/// `session_index` of an io event to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoPeer {
    /// The worker whose app mq gets the event.
    pub worker: WorkerKey,
    /// The app's index of the session.
    pub app_session_index: u32,
}

/// The shared-memory places and the two apps of one relay (`docs/sessions.md` §8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relay {
    /// The writer's signal block: C's shadow TX header, or fifo B's header.
    pub writer_signals: FifoRef,
    /// The reader's signal block: fifo A's header, or C's shadow RX header.
    pub reader_signals: FifoRef,
    /// The data fifo the writer fills (A or B).
    pub data: FifoRef,
    /// The writer.
    pub writer: IoPeer,
    /// The reader, when it may be told (`None`: its app does not know the session yet, or it
    /// is closing).
    pub reader: Option<IoPeer>,
}
