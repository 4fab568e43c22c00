//! The admin commands (the admin socket, or the command line at start-up) and their answers.
//!
//! Must never: carry out a command or choose its error (that is `server::admin`'s): this is only
//! the vocabulary the admin socket's JSON, the start-up command line and the core share.

use crate::snapshot::Snapshot;

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
