//! The sans-IO server core.
//!
//! Owns the state of the socket API — namespaces, sockets (as handles), apps, workers,
//! segments, cert-key pairs — and every protocol decision. It takes decoded [`Input`]s and
//! hands out [`Action`]s for the IO shell to perform, in the manner of `quinn-proto`.
//!
//! It must never perform a syscall, read a clock, hold a file descriptor or panic on peer input:
//! that is what lets a deterministic simulation and a fuzzer drive it. Its `Cargo.toml` links no
//! IO crate, and `sapi-testkit`'s layering test keeps it so.
//!
//! Rooms:
//! * [`Input`] (`input`) and [`Action`] (`action`): the contract with the shell;
//! * `admin`: the admin commands and answers; `access`: peers and who may connect;
//!   `socket_name`: listener names; `ids`: indices and handles; `config`: limits;
//! * `server`: the state machine, one file per request family; `snapshot`: what `show` prints;
//! * `fault`: deviations injected on purpose, to prove the conformance suite notices them;
//! * `warn_budget`: how many log lines one peer may cause.

mod access;
mod action;
mod admin;
mod config;
mod fault;
mod ids;
mod input;
mod server;
mod snapshot;
mod socket_name;
mod warn_budget;

pub use access::{AccessPolicy, PeerCred};
pub use action::{Action, FdRef, IoPeer, Relay, SegmentSpec, WorkerResources};
pub use admin::{AdminCommand, AdminError, AdminOk};
pub use config::{
    CERTKEY_DATA_TIMEOUT, Config, DEFAULT_EVT_QUEUE_SIZE, MAX_CERT_OR_KEY_LEN, MAX_CERTKEY_LEN,
    MAX_EVT_QUEUE_SIZE, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE,
};
pub use fault::{InjectedFault, InjectedFaults};
pub use ids::{
    AppIndex, FifoRef, NsIndex, PairId, SegmentId, SessionHandle, SocketId, WorkerKey,
    segment_handle,
};
pub use input::{Input, ResourceError, WorkerResourcesReady};
pub use server::{Counts, Server};
pub use snapshot::{AppView, NamespaceView, SegmentView, Snapshot, SocketView, WorkerView};
pub use socket_name::{SocketName, parse_socket_name};
pub use warn_budget::WarnBudget;
