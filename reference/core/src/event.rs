//! What flows into the core ([`Input`]) and out of it ([`Action`]).
//!
//! Owns the contract between the sans-IO core and the IO shell. Anything that needs a syscall —
//! creating a memfd, binding a listener, sending with `SCM_RIGHTS`, writing into a mapped mq —
//! is an [`Action`]; anything the kernel tells the shell is an [`Input`]. Resources are acquired
//! in two phases (an action asking for them, an input reporting the outcome) so that a failed
//! memfd or bind is just another deterministic input in a simulation.
//!
//! The contract: the shell performs a batch's actions in order and answers each resource
//! request (`Listen`, `CreateWorkerResources`, `CreateSegment`) before feeding any other input,
//! as VPP's main thread does its work under the barrier. The core relies on it: a worker whose
//! resources are being created is not yet bound to its socket. Send failures are reported after
//! the batch ([`Input::SendFailed`]), so no action of a batch meets a worker its own batch freed.

use std::time::Duration;

use sapi_wire::Message;

use super::ids::{NsIndex, SegmentId, SocketId, WorkerKey};
use super::snapshot::Snapshot;

/// The credentials of a socket's peer as the kernel reported them (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerCred {
    /// Peer process id.
    pub pid: i32,
    /// Peer user id.
    pub uid: u32,
    /// Peer group id.
    pub gid: u32,
}

/// Where a namespace's listener lives.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SocketName {
    /// A filesystem path.
    Path(std::path::PathBuf),
    /// A Linux abstract socket name (no leading NUL).
    Abstract(String),
}

impl std::fmt::Display for SocketName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketName::Path(p) => write!(f, "{}", p.display()),
            SocketName::Abstract(n) => write!(f, "abstract:{n}"),
        }
    }
}

/// A command from the admin socket (or the command line at start-up).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum AdminCommand {
    /// Everything `show` prints.
    Show,
    /// Create a namespace; `sock_name` is `None` for `<runtime-dir>/app_ns_sockets/<id>`.
    NsAdd {
        /// Namespace id (its name).
        id: String,
        /// Optional explicit socket name: a path or `abstract:NAME`.
        sock_name: Option<String>,
        /// The namespace secret (checked only with `--enforce-ns-secret`; VPP never checks it
        /// over the socket API).
        #[serde(default)]
        secret: Option<u64>,
    },
    /// Delete a namespace, its apps and all its sockets.
    NsDel {
        /// Namespace id.
        id: String,
    },
    /// Give a worker one more segment (SEND_FDS + APP_ADD_SEGMENT).
    SegmentAdd {
        /// App index.
        app: u32,
        /// Worker map index (default 0).
        wrk: u32,
    },
    /// Take a segment back from a worker (APP_DEL_SEGMENT).
    SegmentDel {
        /// App index.
        app: u32,
        /// Worker map index.
        wrk: u32,
        /// The segment's wire handle.
        handle: u64,
    },
}

/// What a successful admin command answers.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminOk {
    /// A plain acknowledgement with a human sentence.
    Done(String),
    /// The state dump for `show`.
    Snapshot(Snapshot),
}

/// Why an admin command failed; the message names the offending value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub enum AdminError {
    /// No namespace with that id.
    #[error("no namespace with id {0:?}")]
    NoSuchNamespace(String),
    /// A namespace with that id exists already.
    #[error("namespace {0:?} exists already")]
    NamespaceExists(String),
    /// The namespace id is not usable as a socket file name.
    #[error("invalid namespace id {0:?}: use 1-63 characters of [A-Za-z0-9._-]")]
    InvalidNamespaceId(String),
    /// The socket name is not a valid path or abstract name.
    #[error("invalid socket name {0:?}: {1}")]
    InvalidSocketName(String, &'static str),
    /// The `default` namespace always exists.
    #[error("the default namespace cannot be deleted")]
    DefaultNamespace,
    /// 65,536 namespaces exist.
    #[error("no namespace index left (65536 in use)")]
    TooManyNamespaces,
    /// Creating the listener failed.
    #[error("cannot listen on {name}: {reason}")]
    Listen {
        /// The socket name.
        name: String,
        /// The error the shell reported.
        reason: String,
    },
    /// No such app or worker.
    #[error("no worker {wrk} in app {app}")]
    NoSuchWorker {
        /// App index asked for.
        app: u32,
        /// Worker asked for.
        wrk: u32,
    },
    /// No such segment in that worker.
    #[error("worker {wrk} of app {app} has no segment with handle {handle:#x}")]
    NoSuchSegment {
        /// App index.
        app: u32,
        /// Worker index.
        wrk: u32,
        /// Segment handle asked for.
        handle: u64,
    },
    /// The worker's first segment holds its mq and cannot be deleted.
    #[error("segment {0:#x} is the worker's first segment (it holds the event queue)")]
    FirstSegment(u64),
    /// Creating the segment failed.
    #[error("cannot create segment: {0}")]
    SegmentCreate(String),
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

/// What the shell reports back after creating a worker's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerResourcesReady {
    /// Offset of the event mq from the segment's fifo-segment header.
    pub mq_offset: u64,
    /// The segment's `ssvm_size` (announced sizes derive from it).
    pub ssvm_size: u64,
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

/// A control event the shell writes into a worker's mq (ring 1), signalling its eventfd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtrlEvent {
    /// `SESSION_CTRL_EVT_APP_ADD_SEGMENT` announcing a segment whose fd was just sent.
    AppAddSegment {
        /// Segment size in bytes as announced (u32 on the wire).
        segment_size: u32,
        /// Segment name.
        name: String,
        /// Segment handle.
        handle: u64,
    },
    /// `SESSION_CTRL_EVT_APP_DEL_SEGMENT`.
    AppDelSegment {
        /// Segment handle.
        handle: u64,
    },
}

/// What the shell tells the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Input<'a> {
    /// A listener accepted a connection; the core answers with [`Action::Accepted`] or
    /// [`Action::Refuse`].
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
    /// A deadline armed by [`Action::SetDeadline`] passed.
    DeadlineExpired {
        /// The socket.
        sock: SocketId,
    },
    /// Outcome of [`Action::CreateWorkerResources`].
    WorkerResources {
        /// The worker.
        worker: WorkerKey,
        /// What was created, or why not.
        result: Result<WorkerResourcesReady, ResourceError>,
    },
    /// Outcome of [`Action::CreateSegment`].
    SegmentCreated {
        /// The segment.
        id: SegmentId,
        /// Its `ssvm_size`, or why it could not be created.
        result: Result<u64, ResourceError>,
    },
    /// Outcome of [`Action::Listen`].
    Listened {
        /// The namespace.
        ns: NsIndex,
        /// Ok, or the error text.
        result: Result<(), String>,
    },
    /// An admin command; answered by exactly one [`Action::AdminReply`].
    Admin(AdminCommand),
}

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
    /// Create a listener for a namespace; answer with [`Input::Listened`].
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
    /// [`Input::WorkerResources`].
    CreateWorkerResources {
        /// The worker.
        worker: WorkerKey,
        /// What to create.
        spec: WorkerResources,
    },
    /// Create one more segment; answer with [`Input::SegmentCreated`].
    CreateSegment(SegmentSpec),
    /// Post a control event into a worker's mq.
    PostCtrlEvent {
        /// The worker whose mq receives it.
        worker: WorkerKey,
        /// The event.
        event: CtrlEvent,
    },
    /// Unmap and close a segment.
    FreeSegment(SegmentId),
    /// Close a worker's eventfd and forget its mq.
    FreeWorker(WorkerKey),
    /// Report [`Input::DeadlineExpired`] for this socket after `after`, unless re-armed or the
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
}
