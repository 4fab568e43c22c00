//! The suite's own session client: what an app attached over the socket API does after attach
//! to listen, connect, accept, move data and close (`docs/sessions.md`), written from the
//! documents and nothing else — raw shared memory, no VCL.
//!
//! * [`msg`] — the control messages' and io events' bytes (`docs/sessions.md` §3.2, §5).
//! * [`mem`] — a segment mapped read-write, every access bounds- and alignment-checked.
//! * [`mq`] — producing into a server mq (mutex and condvar) and consuming the app mq
//!   (eventfd) (`docs/shm.md` §4).
//! * [`fifo`] — the chunk allocator, the fifo's producer and consumer, the signal words
//!   (`docs/shm.md` §3, §5; `docs/sessions.md` §8).
//! * [`app`] — an attached app: its mqs, segments (SEND_FDS before ADD_SEGMENT), messages and
//!   session ends.
//!
//! The checker must not share the code it checks: nothing here uses `sapi-shm`, `sapi-wire` or
//! `sapi-core`, so a layout or signalling bug in the reference's library cannot hide itself by
//! agreeing with itself. Everything the target wrote is untrusted: a bad offset, index or body
//! is a [`SessionError`] carrying the value, never a panic.

pub mod app;
pub mod fifo;
pub mod mem;
pub mod mq;
pub mod msg;

use std::time::Duration;

pub use app::{App, AppOptions, End, Event, EventKind};

/// Why the session client could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error("segment: {0}")]
    Mem(#[from] mem::MemError),
    #[error(transparent)]
    Mq(#[from] mq::MqError),
    #[error("fifo: {0}")]
    Fifo(#[from] fifo::FifoError),
    #[error(transparent)]
    Fd(#[from] crate::fds::FdError),
    #[error("{app}: undecodable message {source}; element {element}")]
    Msg {
        app: String,
        source: msg::MsgError,
        element: String,
    },
    #[error("ATTACH with local scope refused: retval {retval}")]
    Attach { retval: i32 },
    #[error(
        "ATTACH_REPLY fd_flags {fd_flags:#04x} with fds {received}: expected the mqs segment, a segment and an mq eventfd"
    )]
    Fds { fd_flags: u8, received: String },
    #[error("finding the server mqs: {why}")]
    MqDiscovery { why: String },
    #[error("server mq {index} does not exist ({n} mqs in the mqs segment)")]
    NoSuchMq { index: u32, n: usize },
    #[error("{app}: ADD_SEGMENT {handle:#x}: {why}")]
    SendFds {
        app: String,
        handle: u64,
        why: String,
    },
    #[error("{app}: {what} = {handle:#x} names no segment an ADD_SEGMENT announced")]
    UnknownSegment {
        app: String,
        handle: u64,
        what: &'static str,
    },
    #[error("{app}: no {what} within {after:?}; received instead: {instead}")]
    Timeout {
        app: String,
        what: String,
        after: Duration,
        instead: String,
    },
}
