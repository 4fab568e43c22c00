//! Ring 0 (`docs/sessions.md` §3.2, §5.17; `docs/shm.md` §6.1): the 18-byte `session_event_t`
//! ([`SessionEvent`], raw) and the three io events of the cut-through session layer
//! ([`IoEvent`], typed: RX, TX, TX_FLUSH with a `session_index`).
//!
//! Owns: the io element layout and which io event travels which way. An io event carries only
//! its type (byte 0) and `session_index` (bytes 2..5); the `postponed` byte is stale from apps
//! (§3.2 rule 2) and bytes 6..17 are unspecified, so a decode reads the first 6 bytes and ignores
//! the rest, and an encode writes zeros there.
//!
//! Must never: say what a `session_index` names (the sender's VPP session or the receiver's app
//! session, §4.4): that depends on the direction and is the server's business.

use super::codec::{Rows, array, put};
use super::layout as l;
use super::{EventError, SessionEventType};
use crate::{Direction, Profile};

/// `session_event_t` (§6.1): the 18-byte element of ring 0, raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionEvent {
    /// Event type number (profile-specific).
    pub event_type: u8,
    /// `postponed` flag.
    pub postponed: u8,
    /// The 16-byte union (session index / handle / rpc / raw).
    pub data: [u8; 16],
}

impl SessionEvent {
    /// An io event for `session_index` (first 4 bytes of the union, rest zero).
    pub fn io(event_type: u8, session_index: u32) -> Self {
        let mut data = [0u8; 16];
        put(&mut data, &session_index.to_le_bytes());
        Self {
            event_type,
            postponed: 0,
            data,
        }
    }

    /// The 18 bytes of the element.
    pub fn encode(&self) -> [u8; l::SESSION_EVENT_SIZE] {
        let mut b = [0u8; l::SESSION_EVENT_SIZE];
        put(&mut b, &[self.event_type, self.postponed]);
        if let Some(data) = b.get_mut(2..) {
            put(data, &self.data);
        }
        b
    }

    /// Parses the first 18 bytes of an element.
    pub fn decode(b: &[u8]) -> Result<Self, EventError> {
        let b = b
            .get(..l::SESSION_EVENT_SIZE)
            .ok_or(EventError::Truncated {
                len: b.len(),
                needed: l::SESSION_EVENT_SIZE,
            })?;
        Ok(Self {
            event_type: b.first().copied().unwrap_or(0),
            postponed: b.get(1).copied().unwrap_or(0),
            data: array(b.get(2..).unwrap_or_default()),
        })
    }
}

/// The io events of the cut-through session layer (§5.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum IoEventType {
    /// RX (0): app → server, a dequeue notification; server → app, "your rx fifo has data".
    Rx,
    /// TX (1): app → server, "I enqueued"; server → app, "your tx fifo has room".
    Tx,
    /// TX_FLUSH (2): app → server only, TX for `write_msg`-style writes.
    TxFlush,
}

impl IoEventType {
    /// The session event type.
    pub const fn event_type(self) -> SessionEventType {
        match self {
            IoEventType::Rx => SessionEventType::IoRx,
            IoEventType::Tx => SessionEventType::IoTx,
            IoEventType::TxFlush => SessionEventType::IoTxFlush,
        }
    }

    /// The io event type of a session event type, if it is RX, TX or TX_FLUSH.
    pub const fn from_event_type(t: SessionEventType) -> Option<IoEventType> {
        match t {
            SessionEventType::IoRx => Some(IoEventType::Rx),
            SessionEventType::IoTx => Some(IoEventType::Tx),
            SessionEventType::IoTxFlush => Some(IoEventType::TxFlush),
            _ => None,
        }
    }

    /// The number, the same in both profiles (0, 1, 2).
    pub const fn number(self) -> u8 {
        self.event_type().number_head()
    }
}

/// An io event of ring 0: its type and `session_index` (§5.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct IoEvent {
    /// RX, TX or TX_FLUSH.
    pub io_type: IoEventType,
    /// App → server: the sender's VPP session index; server → app: the receiver's app session
    /// index (§4.4).
    pub session_index: u32,
}

/// Why a ring-0 element is not an io event of the profile in the direction it travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum IoDecodeError {
    /// Shorter than the 6 bytes an io event uses (type, postponed, session_index).
    #[error("io element of {len} bytes is shorter than the {needed} bytes an io event uses")]
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// A type byte that names no session event of the profile.
    #[error("type {type_byte} is not a session event type of the {profile} profile")]
    UnknownType {
        /// The type byte.
        type_byte: u8,
        /// The profile it was read in.
        profile: Profile,
    },
    /// A control message type in ring 0.
    #[error("{event_type} (type {type_byte}) is a control message of ring 1, not an io event")]
    NotIoEvent {
        /// The type.
        event_type: SessionEventType,
        /// Its number in the profile.
        type_byte: u8,
    },
    /// BUILTIN_RX or TX_MAIN: io events of in-VPP apps and unconnected UDP, out of scope.
    #[error("{event_type} (type {type_byte}) is not an io event of the cut-through session layer")]
    Unsupported {
        /// The type.
        event_type: SessionEventType,
        /// Its number.
        type_byte: u8,
    },
    /// TX_FLUSH from the server.
    #[error("{event_type} (type {type_byte}) never travels {dir}")]
    WrongDirection {
        /// The type.
        event_type: SessionEventType,
        /// Its number.
        type_byte: u8,
        /// The direction it arrived in.
        dir: Direction,
    },
}

/// Bytes of a ring-0 element an io event uses: type, postponed, `session_index`.
const IO_USED: usize = 6;

impl IoEvent {
    /// RX for `session_index`.
    pub const fn rx(session_index: u32) -> IoEvent {
        IoEvent {
            io_type: IoEventType::Rx,
            session_index,
        }
    }

    /// TX for `session_index`.
    pub const fn tx(session_index: u32) -> IoEvent {
        IoEvent {
            io_type: IoEventType::Tx,
            session_index,
        }
    }

    /// TX_FLUSH for `session_index`.
    pub const fn tx_flush(session_index: u32) -> IoEvent {
        IoEvent {
            io_type: IoEventType::TxFlush,
            session_index,
        }
    }

    /// The 18-byte ring-0 element: type, `postponed` 0, `session_index`, zeros. The numbers are
    /// the same in both profiles.
    pub fn encode(&self) -> [u8; l::SESSION_EVENT_SIZE] {
        SessionEvent::from(*self).encode()
    }

    /// Decodes a ring-0 element that travelled `dir`, in `profile`: the type, then the
    /// direction, then the length (6 bytes are used; the 18-byte ring element's bytes 6..17 and
    /// the `postponed` byte are ignored).
    pub fn decode(
        element: &[u8],
        profile: Profile,
        dir: Direction,
    ) -> Result<IoEvent, IoDecodeError> {
        let truncated = IoDecodeError::Truncated {
            len: element.len(),
            needed: IO_USED,
        };
        let type_byte = *element.first().ok_or(truncated)?;
        let event_type = SessionEventType::from_number_in(type_byte, profile)
            .ok_or(IoDecodeError::UnknownType { type_byte, profile })?;
        if !event_type.is_io() {
            return Err(IoDecodeError::NotIoEvent {
                event_type,
                type_byte,
            });
        }
        let io_type =
            IoEventType::from_event_type(event_type).ok_or(IoDecodeError::Unsupported {
                event_type,
                type_byte,
            })?;
        if !event_type.travels(dir) {
            return Err(IoDecodeError::WrongDirection {
                event_type,
                type_byte,
                dir,
            });
        }
        let index = element.get(2..IO_USED).ok_or(truncated)?;
        Ok(IoEvent {
            io_type,
            session_index: u32::from_le_bytes(array(index)),
        })
    }

    /// The event as it sits in its element, one field per line.
    pub fn dump(&self) -> String {
        let event_type = self.io_type.event_type();
        let n = self.io_type.number();
        let mut rows = Rows::new(Profile::Head);
        rows.push(0, 1, "type", format!("{n} ({event_type})"));
        rows.push(1, 1, "postponed", "0".to_owned());
        rows.push(2, 4, "session_index", self.session_index.to_string());
        rows.push(IO_USED, 12, "unspecified", "zero, never read".to_owned());
        rows.render(
            &format!(
                "io event {event_type} (type {n}, both profiles), element {} bytes",
                l::SESSION_EVENT_SIZE
            ),
            "elem",
        )
    }
}

impl From<IoEvent> for SessionEvent {
    fn from(e: IoEvent) -> SessionEvent {
        SessionEvent::io(e.io_type.number(), e.session_index)
    }
}
