//! [`CtrlMessage`]: every control message of the cut-through session layer as one type, with
//! [`encode`](CtrlMessage::encode) into a ring-1 element and [`decode`](CtrlMessage::decode) from
//! one into a message or a [`CtrlDecodeError`] naming what was wrong (after rustls' codec).
//!
//! Decoding validates only what makes an element unreadable as a message of the profile in the
//! direction it travelled: the header, the type number, the direction, the length the type's body
//! needs, and (ADD_SEGMENT only) a terminated name. Field values are never judged here. It reads
//! exactly the body size of the type: what follows the body is stale (`docs/sessions.md` §3.2
//! rule 1) and ignored, and so is the `postponed` byte (read it with
//! [`CtrlElement`](super::CtrlElement) to check it).
//!
//! Must never: panic on any element, write a partial element when it refuses to encode, or accept
//! a type in a direction the session layer never sends it (an app posting ACCEPTED, RESET or a
//! VPP-internal type gets a typed error, `docs/sessions.md` Appendix A).

use super::codec::{Rows, WireStruct};
use super::{
    Accepted, AcceptedReply, AppAddSegment, AppDelSegment, AppDetach, AppWrkRpc, Bound,
    CTRL_BODY_OFFSET, CTRL_ELEMENT_SIZE, Cleanup, Connect, Connected, CtrlElement, Listen,
    ReqWorkerUpdate, SessionEventType, SessionHandleMsg, SessionHandleReply, TransportAttr,
    TransportAttrReply, Unlisten, UnlistenReply, WorkerUpdate, WorkerUpdateReply,
};
use crate::{Direction, Profile};

/// Why a ring-1 element is not a control message of the profile in the direction it travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CtrlDecodeError {
    /// Shorter than the 2-byte header (type, postponed).
    #[error("element of {len} bytes has no room for the 2-byte header (type, postponed)")]
    NoHeader {
        /// Bytes available.
        len: usize,
    },
    /// A type byte that names no session event of the profile.
    #[error("type {type_byte} is not a session event type of the {profile} profile")]
    UnknownType {
        /// The type byte.
        type_byte: u8,
        /// The profile it was read in.
        profile: Profile,
    },
    /// An io event type (RX, TX, …): those travel in ring 0 as [`IoEvent`](super::IoEvent)s.
    #[error("{event_type} (type {type_byte}) is an io event of ring 0, not a control message")]
    IoEvent {
        /// The io event type.
        event_type: SessionEventType,
        /// Its number in the profile.
        type_byte: u8,
    },
    /// A session event the cut-through session layer does not carry between apps and the server
    /// (VPP's internal RPC, HALF_CLOSE and CLOSE; the URI and stream variants; MIGRATED,
    /// TRANSPORT_CLOSED, HALF_CLEANUP): this codec has no body layout for it.
    #[error(
        "{event_type} (type {type_byte}) is not a message of the cut-through session layer; \
         it has no body layout here"
    )]
    Unsupported {
        /// The type.
        event_type: SessionEventType,
        /// Its number in the profile.
        type_byte: u8,
    },
    /// A type travelling a way it never does, e.g. ACCEPTED posted by an app.
    #[error("{event_type} (type {type_byte}) never travels {dir}")]
    WrongDirection {
        /// The type.
        event_type: SessionEventType,
        /// Its number in the profile.
        type_byte: u8,
        /// The direction it arrived in.
        dir: Direction,
    },
    /// Shorter than the header plus the type's body.
    #[error(
        "{event_type} element of {len} bytes is shorter than the {needed} it needs \
         (2-byte header and {} body)",
        needed.saturating_sub(CTRL_BODY_OFFSET)
    )]
    Truncated {
        /// The type.
        event_type: SessionEventType,
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// APP_ADD_SEGMENT whose 128-byte `segment_name` has no NUL.
    #[error("APP_ADD_SEGMENT segment_name has no NUL in its 128 bytes")]
    UnterminatedName,
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CtrlEncodeError {
    /// The message type did not exist in the profile (SHUTDOWN, TRANSPORT_ATTR(_REPLY) and
    /// TERMINATE at the seed).
    #[error("{event_type} does not exist in the {profile} profile")]
    NotInProfile {
        /// The type.
        event_type: SessionEventType,
        /// The profile asked for.
        profile: Profile,
    },
    /// An APP_ADD_SEGMENT name longer than 127 bytes.
    #[error("segment name of {len} bytes is longer than the 127 bytes the field carries")]
    SegmentNameTooLong {
        /// The name's length.
        len: usize,
    },
    /// An APP_ADD_SEGMENT name with a NUL (a reader would stop there).
    #[error("segment name contains a NUL byte at offset {at}")]
    SegmentNameContainsNul {
        /// Offset of the first NUL.
        at: usize,
    },
    /// [`CtrlMessage::encode_into`] was given a buffer shorter than the element.
    #[error("buffer of {len} bytes is shorter than the {needed}-byte element")]
    BufferTooShort {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
}

/// A message body: its size, read, write and dump rows.
trait Body: Sized {
    const SIZE: usize;
    fn read_body(b: &[u8]) -> Result<Self, CtrlDecodeError>;
    fn write_body(&self, b: &mut [u8]) -> Result<(), CtrlEncodeError>;
    fn body_rows(&self, rows: &mut Rows);
}

macro_rules! infallible_bodies {
    ($($t:ty),* $(,)?) => {
        $( impl Body for $t {
            const SIZE: usize = <$t as WireStruct>::SIZE;
            fn read_body(b: &[u8]) -> Result<Self, CtrlDecodeError> {
                Ok(<$t as WireStruct>::read(b))
            }
            fn write_body(&self, b: &mut [u8]) -> Result<(), CtrlEncodeError> {
                WireStruct::write(self, b);
                Ok(())
            }
            fn body_rows(&self, rows: &mut Rows) {
                WireStruct::rows(self, "", CTRL_BODY_OFFSET, rows);
            }
        } )*
    };
}

infallible_bodies!(
    Listen,
    Bound,
    Unlisten,
    UnlistenReply,
    Connect,
    Connected,
    Accepted,
    AcceptedReply,
    SessionHandleMsg,
    SessionHandleReply,
    Cleanup,
    AppDetach,
    TransportAttr,
    TransportAttrReply,
    WorkerUpdate,
    ReqWorkerUpdate,
    WorkerUpdateReply,
    AppWrkRpc,
    AppDelSegment,
);

impl Body for AppAddSegment {
    const SIZE: usize = super::layout::ADD_SEGMENT_SIZE;
    fn read_body(b: &[u8]) -> Result<Self, CtrlDecodeError> {
        AppAddSegment::read(b)
    }
    fn write_body(&self, b: &mut [u8]) -> Result<(), CtrlEncodeError> {
        self.write(b)
    }
    fn body_rows(&self, rows: &mut Rows) {
        self.rows(CTRL_BODY_OFFSET, rows);
    }
}

macro_rules! ctrl_messages {
    ($( $(#[$m:meta])* $variant:ident($body:ty), )*) => {
        /// One control message of the cut-through session layer, app → server or server → app
        /// (`docs/sessions.md` §5). Each variant is named after its [`SessionEventType`]; the
        /// variants that share a body layout share its struct.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub enum CtrlMessage {
            $( $(#[$m])* $variant($body), )*
        }

        impl CtrlMessage {
            /// This message's type.
            pub const fn event_type(&self) -> SessionEventType {
                match self { $( CtrlMessage::$variant(_) => SessionEventType::$variant, )* }
            }

            fn write_body(&self, b: &mut [u8]) -> Result<(), CtrlEncodeError> {
                match self { $( CtrlMessage::$variant(m) => m.write_body(b), )* }
            }

            fn body_rows(&self, rows: &mut Rows) {
                match self { $( CtrlMessage::$variant(m) => m.body_rows(rows), )* }
            }

            /// `None` for a type without a body layout here.
            fn read_body(
                event_type: SessionEventType,
                b: &[u8],
            ) -> Option<Result<CtrlMessage, CtrlDecodeError>> {
                match event_type {
                    $( SessionEventType::$variant => {
                        Some(<$body as Body>::read_body(b).map(CtrlMessage::$variant))
                    } )*
                    _ => None,
                }
            }
        }

        /// Body size of a control message type, `None` for a type without a body layout here.
        const fn body_size(event_type: SessionEventType) -> Option<usize> {
            match event_type {
                $( SessionEventType::$variant => Some(<$body as Body>::SIZE), )*
                _ => None,
            }
        }
    };
}

ctrl_messages! {
    /// LISTEN (24, app → ctrl mq, §5.2).
    Listen(Listen),
    /// BOUND (9, server → app, §5.3).
    Bound(Bound),
    /// UNLISTEN (26, app → ctrl mq, §5.4).
    Unlisten(Unlisten),
    /// UNLISTEN_REPLY (10, server → app, §5.5).
    UnlistenReply(UnlistenReply),
    /// CONNECT (22, app → ctrl mq, §5.6).
    Connect(Connect),
    /// ACCEPTED (11, server → S, §5.7).
    Accepted(Accepted),
    /// ACCEPTED_REPLY (12, S → the session's mq, §5.8).
    AcceptedReply(AcceptedReply),
    /// CONNECTED (13, server → C, §5.10).
    Connected(Connected),
    /// DISCONNECT (21, app → the session's mq, §5.11).
    Disconnect(SessionHandleMsg),
    /// DISCONNECTED (14): server → app, "the peer closed" (§5.12); app → server, the older
    /// "close and confirm" request (§5.13).
    Disconnected(SessionHandleMsg),
    /// RESET (8, server → app, §5.12).
    Reset(SessionHandleMsg),
    /// DISCONNECTED_REPLY (15): app → the session's mq (§5.13); server → app, answering an
    /// app-sent DISCONNECTED (§5.13).
    DisconnectedReply(SessionHandleReply),
    /// RESET_REPLY (16, app → the session's mq, §5.13).
    ResetReply(SessionHandleReply),
    /// CLEANUP (31, server → app, §5.14).
    Cleanup(Cleanup),
    /// SHUTDOWN (20, app → the session's mq, §5.15; HEAD only).
    Shutdown(SessionHandleMsg),
    /// TERMINATE (38, app → the session's mq, §5.15; HEAD only).
    Terminate(SessionHandleMsg),
    /// APP_DETACH (27, app → ctrl mq, §5.16).
    AppDetach(AppDetach),
    /// TRANSPORT_ATTR (33, app → the session's mq, §5.18; HEAD only).
    TransportAttr(TransportAttr),
    /// TRANSPORT_ATTR_REPLY (34, server → app, §5.18; HEAD only).
    TransportAttrReply(TransportAttrReply),
    /// WORKER_UPDATE (18, app → the session's mq, §5.19).
    WorkerUpdate(WorkerUpdate),
    /// REQ_WORKER_UPDATE (17, server → app, §5.19).
    ReqWorkerUpdate(ReqWorkerUpdate),
    /// WORKER_UPDATE_REPLY (19, server → the new owner, §5.19).
    WorkerUpdateReply(WorkerUpdateReply),
    /// APP_WRK_RPC (32, both ways, §5.20).
    AppWrkRpc(AppWrkRpc),
    /// APP_ADD_SEGMENT (28 HEAD / 26 seed, server → app, `docs/shm.md` §6.3).
    AppAddSegment(AppAddSegment),
    /// APP_DEL_SEGMENT (29 HEAD / 27 seed, server → app, `docs/shm.md` §6.4).
    AppDelSegment(AppDelSegment),
}

impl SessionEventType {
    /// Size of this type's control message body (`docs/sessions.md` §5), `None` for the io
    /// events and for the types without a body layout in this crate.
    pub const fn ctrl_body_size(self) -> Option<usize> {
        body_size(self)
    }
}

impl CtrlMessage {
    /// Bytes of the element this message fills: the 2-byte header and its body.
    pub const fn element_len(&self) -> usize {
        match body_size(self.event_type()) {
            Some(size) => CTRL_BODY_OFFSET + size,
            None => CTRL_BODY_OFFSET,
        }
    }

    /// The 256-byte ring-1 element of this message in `profile`: the type number, `postponed`
    /// 0 (§3.2 rule 3), the body, then zeros.
    pub fn encode(&self, profile: Profile) -> Result<[u8; CTRL_ELEMENT_SIZE], CtrlEncodeError> {
        let mut element = [0u8; CTRL_ELEMENT_SIZE];
        self.encode_into(profile, &mut element)?;
        Ok(element)
    }

    /// Writes the header and body into the front of `element` (a ring slot, say) and returns
    /// how many bytes that was ([`element_len`](Self::element_len)); bytes after the body are
    /// not touched. On an error nothing is written.
    pub fn encode_into(
        &self,
        profile: Profile,
        element: &mut [u8],
    ) -> Result<usize, CtrlEncodeError> {
        let event_type = self.event_type();
        let type_byte = event_type
            .number_in(profile)
            .ok_or(CtrlEncodeError::NotInProfile {
                event_type,
                profile,
            })?;
        if let CtrlMessage::AppAddSegment(m) = self {
            m.check_name()?;
        }
        let needed = self.element_len();
        let len = element.len();
        let out = element
            .get_mut(..needed)
            .ok_or(CtrlEncodeError::BufferTooShort { len, needed })?;
        let (header, body) = out.split_at_mut(CTRL_BODY_OFFSET);
        body.fill(0);
        self.write_body(body)?;
        header.copy_from_slice(&[type_byte, 0]);
        Ok(needed)
    }

    /// Decodes a ring-1 element that travelled `dir`, in `profile`.
    ///
    /// Checks, in this order: the header (`NoHeader`), the type number (`UnknownType`, then
    /// `IoEvent` and `Unsupported`), the direction (`WrongDirection`), the length the body needs
    /// (`Truncated`), the body (`UnterminatedName`). Reads exactly the body: bytes after it and
    /// the `postponed` byte are ignored.
    pub fn decode(
        element: &[u8],
        profile: Profile,
        dir: Direction,
    ) -> Result<CtrlMessage, CtrlDecodeError> {
        let view = CtrlElement::new_checked(element)?;
        let type_byte = view.type_byte();
        let event_type = SessionEventType::from_number_in(type_byte, profile)
            .ok_or(CtrlDecodeError::UnknownType { type_byte, profile })?;
        if event_type.is_io() {
            return Err(CtrlDecodeError::IoEvent {
                event_type,
                type_byte,
            });
        }
        let unsupported = CtrlDecodeError::Unsupported {
            event_type,
            type_byte,
        };
        let size = body_size(event_type).ok_or(unsupported)?;
        if !event_type.travels(dir) {
            return Err(CtrlDecodeError::WrongDirection {
                event_type,
                type_byte,
                dir,
            });
        }
        let body = view.body(size).ok_or(CtrlDecodeError::Truncated {
            event_type,
            len: element.len(),
            needed: CTRL_BODY_OFFSET + size,
        })?;
        CtrlMessage::read_body(event_type, body).unwrap_or(Err(unsupported))
    }

    /// The message as it sits in its element in `profile`, one field per line: element offset,
    /// size, field name, value. Ports are shown as numbers with their network-order bytes,
    /// handles and offsets in hex, retvals with their name; nested endpoints as `lcl.port`, ….
    pub fn dump(&self, profile: Profile) -> String {
        let event_type = self.event_type();
        let (number, type_byte) = match event_type.number_in(profile) {
            Some(n) => (format!("type {n}"), n.to_string()),
            None => ("no number".to_owned(), "none in this profile".to_owned()),
        };
        let len = self.element_len();
        let mut rows = Rows::new(profile);
        rows.push(0, 1, "type", format!("{type_byte} ({event_type})"));
        rows.push(1, 1, "postponed", "0".to_owned());
        self.body_rows(&mut rows);
        rows.push(len, 0, "after the body", "stale, never read".to_owned());
        rows.render(
            &format!(
                "{event_type} ({number}), {profile} profile, element {len} bytes \
                 (2 header + {} body)",
                len.saturating_sub(CTRL_BODY_OFFSET)
            ),
            "elem",
        )
    }
}
