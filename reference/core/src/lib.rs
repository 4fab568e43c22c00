//! The sans-IO server core.
//!
//! Owns the state of the socket API — namespaces, sockets (as handles), apps, workers,
//! segments, cert-key pairs — and every protocol decision. It takes decoded [`Input`]s and
//! returns [`Action`]s for the IO shell to perform, in the manner of `quinn-proto`.
//!
//! It must never perform a syscall, read a clock, hold a file descriptor or panic on peer input:
//! that is what lets a deterministic simulation and a fuzzer drive it.

mod event;
mod fault;
mod ids;
mod server;
mod snapshot;

pub use event::{
    Action, AdminCommand, AdminError, AdminOk, CtrlEvent, FdRef, Input, PeerCred, ResourceError,
    SegmentSpec, SocketName, WorkerResources, WorkerResourcesReady,
};
pub use fault::{InjectedFault, InjectedFaults, UnknownFault};
pub use ids::{AppIndex, NsIndex, SegmentId, SocketId, WorkerKey, segment_handle};
pub use server::{
    AccessPolicy, CERTKEY_DATA_TIMEOUT, Config, Counts, DEFAULT_EVT_QUEUE_SIZE,
    MAX_CERT_OR_KEY_LEN, MAX_CERTKEY_LEN, MAX_EVT_QUEUE_SIZE, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE,
    Server, parse_socket_name,
};
pub use snapshot::{AppView, NamespaceView, SegmentView, Snapshot, SocketView, WorkerView};
