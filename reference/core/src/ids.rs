//! Identifiers the core hands out: namespaces, sockets, apps, workers, segments.
//!
//! Owns the numbering rules VPP exposes on the wire (the `api_client_handle` packing, the
//! `segment_handle` packing). It must never know about file descriptors: the IO shell maps a
//! [`SocketId`] to its fd and a [`SegmentId`] to its memfd.

use std::fmt;

/// Index of an application namespace; `default` is always 0.
///
/// At most 2^16 namespaces exist because the index is packed into the upper half of the
/// 32-bit `api_client_handle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct NsIndex(pub u16);

/// A socket of a namespace. Index 0 of every namespace is its listener, as in VPP's pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SocketId {
    /// The namespace whose listener accepted the socket.
    pub ns: NsIndex,
    /// The socket's index in the namespace's socket pool (1.. for clients).
    pub index: u16,
}

impl SocketId {
    /// The handle VPP reports as `api_client_handle`: `(ns_index << 16) | socket_index`.
    pub fn api_client_handle(self) -> u32 {
        (u32::from(self.ns.0) << 16) | u32::from(self.index)
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "socket {:#x}", self.api_client_handle())
    }
}

/// An application index as reported in ATTACH_REPLY. Starts at 1, like VPP's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct AppIndex(pub u32);

/// A worker: its app and its map index within the app (worker 0 is created by ATTACH).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct WorkerKey {
    /// The owning app.
    pub app: AppIndex,
    /// The worker's map index, as returned in ADD_DEL_WORKER_REPLY.
    pub wrk: u32,
}

impl fmt::Display for WorkerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "app {} worker {}", self.app.0, self.wrk)
    }
}

/// The core's own name for one segment; never reused within a server's life, so a stale
/// reference in the shell can never reach a newer segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SegmentId(pub u64);

/// The wire's `segment_handle`: `(segment_manager_index << 32) | segment_index`.
pub fn segment_handle(segment_manager: u32, segment_index: u32) -> u64 {
    (u64::from(segment_manager) << 32) | u64::from(segment_index)
}

/// A session handle (`docs/sessions.md` §4.1): `(thread << 32) | index`, the index in the session
/// pool of server thread `thread`. Listeners, half-opens and sessions share thread 0's pool, so
/// 0 is a valid handle; an index is reused only after the CLEANUP type 1 that retires it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SessionHandle(pub u64);

impl SessionHandle {
    /// The handle of slot `index` of thread `thread`'s pool.
    pub const fn new(thread: u8, index: u32) -> SessionHandle {
        SessionHandle(((thread as u64) << 32) | index as u64)
    }

    /// The server thread (and so the server mq) that owns the session.
    pub const fn thread(self) -> u64 {
        self.0 >> 32
    }

    /// The index in that thread's pool: what io events carry as `session_index`.
    pub const fn index(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {:#x}", self.0)
    }
}

/// The core's name for one cut-through session pair (a connect matched to a listener).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PairId(pub u64);

/// Where a fifo header lives: a segment and the offset of the header from its fifo-segment
/// header. The signal words of `docs/shm.md` §5.1 are at fixed offsets inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct FifoRef {
    /// The segment holding the header.
    pub segment: SegmentId,
    /// The header's offset.
    pub offset: u64,
}
