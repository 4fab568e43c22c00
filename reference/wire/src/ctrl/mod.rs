//! The session layer's messages after attach (`docs/sessions.md` §3, §5; `docs/shm.md` §6): what
//! an app and the server put into message-queue ring elements, and the UDP header apps put into
//! fifos.
//!
//! * [`CtrlMessage`] — every control message of the cut-through session layer (ring 1, 256-byte
//!   elements: type byte, `postponed`, body from offset 2), one struct per body layout, with
//!   [`encode`](CtrlMessage::encode) / [`decode`](CtrlMessage::decode) `-> Result<_,`
//!   [`CtrlDecodeError`]`>` and a field-by-field [`dump`](CtrlMessage::dump);
//! * [`IoEvent`] — RX, TX and TX_FLUSH (ring 0, 18-byte elements), and the raw
//!   [`SessionEvent`];
//! * [`SessionEventType`] — the type numbers of both profiles (the seed numbering lacks
//!   HALF_CLOSE and SHUTDOWN, inserted in 2021, and what came after 2020-09) and the direction
//!   each type travels (some travel both ways: DISCONNECTED, DISCONNECTED_REPLY, APP_WRK_RPC,
//!   RX, TX);
//! * [`CtrlElement`] — never-panicking accessors over element bytes (the `postponed` byte, the
//!   raw body, the stale bytes after it);
//! * the embedded types [`Ip46`], [`TransportEndpoint`], [`TransportEndptAttr`], and
//!   [`DgramHeader`] (`session_dgram_hdr_t`);
//! * [`layout`] — `#[repr(C)]` / `#[repr(C, packed)]` mirrors of every structure, from which
//!   every offset the codec uses is taken with `offset_of!`.
//!
//! Byte order: ports and IP addresses are network order on the wire and plain numbers / bytes in
//! the typed values; every other integer is little-endian (§ conventions).
//!
//! Profiles: the seed profile changes the type numbers only. The body layouts are HEAD's; the
//! spec states that the segment bodies are the same at the seed, and is silent about the seed
//! layouts of the other messages.
//!
//! Must never: know how an element reaches a queue (that is `sapi-shm`'s), judge a field value
//! (that is the server's), or panic while decoding anything a peer wrote.

mod accept;
mod attr;
mod close;
mod codec;
mod connect;
mod dgram;
mod element;
mod endpoint;
mod event_type;
mod io;
pub mod layout;
mod listen;
mod message;
mod segment;
mod worker;

#[cfg(feature = "arbitrary")]
mod arbitrary;

pub use accept::{Accepted, AcceptedReply};
pub use attr::{TransportAttr, TransportAttrReply, TransportEndptAttr};
pub use close::{AppDetach, Cleanup, CleanupType, SessionHandleMsg, SessionHandleReply};
pub use connect::{Connect, Connected};
pub use dgram::{DgramDecodeError, DgramHeader};
pub use element::CtrlElement;
pub use endpoint::{Ip46, TransportEndpoint};
pub use event_type::SessionEventType;
pub use io::{IoDecodeError, IoEvent, IoEventType, SessionEvent};
pub use listen::{Bound, Listen, Unlisten, UnlistenReply};
pub use message::{CtrlDecodeError, CtrlEncodeError, CtrlMessage};
pub use segment::{AppAddSegment, AppDelSegment};
pub use worker::{AppWrkRpc, ReqWorkerUpdate, WorkerUpdate, WorkerUpdateReply};

/// Size of a control-event ring element (ring 1).
pub const CTRL_ELEMENT_SIZE: usize = 256;
/// Offset of a control message body in its ring element.
pub const CTRL_BODY_OFFSET: usize = 2;
/// Size of an io-event ring element (ring 0).
pub const IO_ELEMENT_SIZE: usize = layout::SESSION_EVENT_SIZE;

/// Errors of the element-level functions that take the type byte from the caller
/// ([`SessionEvent::decode`], [`AppAddSegment::encode_element`] and `decode_element`,
/// [`AppDelSegment::decode_element`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Element shorter than the message needs.
    #[error("element of {len} bytes is shorter than the {needed} bytes needed")]
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// Event type byte is not the one expected.
    #[error("event type {got} is not {expected}")]
    WrongType {
        /// Type found.
        got: u8,
        /// Type expected.
        expected: u8,
    },
    /// `segment_name` has no NUL in its 128 bytes.
    #[error("segment name is not NUL-terminated")]
    UnterminatedName,
    /// The segment name is longer than 127 bytes (encoding).
    #[error("segment name of {0} bytes exceeds 127")]
    NameTooLong(usize),
    /// The segment name contains a NUL at this offset (encoding): a reader would stop there.
    #[error("segment name contains a NUL byte at offset {0}")]
    NameContainsNul(usize),
}
