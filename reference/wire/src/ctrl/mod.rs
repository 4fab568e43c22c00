//! What travels in message-queue ring elements after attach (`docs/shm.md` §6): the 18-byte
//! session event (`session_event_t`) and the control messages, today APP_ADD_SEGMENT and
//! APP_DEL_SEGMENT.
//!
//! Owns: the event type numbers of both protocol profiles (§6.2: HEAD inserted HALF_CLOSE
//! and SHUTDOWN in 2021, shifting later numbers) and the byte layout of the 18-byte IO event
//! and of control elements (type, postponed, body at element offset 2).
//!
//! Must never: know how an element reaches the queue (that is `sapi-shm`'s), or panic while
//! decoding an element a peer wrote.

pub mod layout;

use layout as l;

/// Errors decoding an event element.
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
}

macro_rules! event_types {
    ($($(#[$m:meta])* $name:ident = $seed:expr, $head:expr;)*) => {
        /// `session_evt_type_t` (§6.2), with its number in each profile.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum SessionEventType {
            $($(#[$m])* $name,)*
        }

        impl SessionEventType {
            /// Every event type, in HEAD order.
            pub const ALL: &'static [SessionEventType] = &[$(SessionEventType::$name,)*];

            /// Number in the HEAD profile (current VPP).
            pub const fn number_head(self) -> u8 {
                match self { $(SessionEventType::$name => $head,)* }
            }

            /// Number in the seed profile (2020-09), `None` if it did not exist yet.
            pub const fn number_seed(self) -> Option<u8> {
                match self { $(SessionEventType::$name => $seed,)* }
            }
        }
    };
}

event_types! {
    /// SESSION_IO_EVT_RX
    IoRx = Some(0), 0;
    /// SESSION_IO_EVT_TX
    IoTx = Some(1), 1;
    /// SESSION_IO_EVT_TX_FLUSH
    IoTxFlush = Some(2), 2;
    /// SESSION_IO_EVT_BUILTIN_RX
    IoBuiltinRx = Some(3), 3;
    /// SESSION_IO_EVT_TX_MAIN (BUILTIN_TX before 2023-03-10)
    IoTxMain = Some(4), 4;
    /// SESSION_CTRL_EVT_RPC
    Rpc = Some(5), 5;
    /// SESSION_CTRL_EVT_HALF_CLOSE
    HalfClose = None, 6;
    /// SESSION_CTRL_EVT_CLOSE
    Close = Some(6), 7;
    /// SESSION_CTRL_EVT_RESET
    Reset = Some(7), 8;
    /// SESSION_CTRL_EVT_BOUND
    Bound = Some(8), 9;
    /// SESSION_CTRL_EVT_UNLISTEN_REPLY
    UnlistenReply = Some(9), 10;
    /// SESSION_CTRL_EVT_ACCEPTED
    Accepted = Some(10), 11;
    /// SESSION_CTRL_EVT_ACCEPTED_REPLY
    AcceptedReply = Some(11), 12;
    /// SESSION_CTRL_EVT_CONNECTED
    Connected = Some(12), 13;
    /// SESSION_CTRL_EVT_DISCONNECTED
    Disconnected = Some(13), 14;
    /// SESSION_CTRL_EVT_DISCONNECTED_REPLY
    DisconnectedReply = Some(14), 15;
    /// SESSION_CTRL_EVT_RESET_REPLY
    ResetReply = Some(15), 16;
    /// SESSION_CTRL_EVT_REQ_WORKER_UPDATE
    ReqWorkerUpdate = Some(16), 17;
    /// SESSION_CTRL_EVT_WORKER_UPDATE
    WorkerUpdate = Some(17), 18;
    /// SESSION_CTRL_EVT_WORKER_UPDATE_REPLY
    WorkerUpdateReply = Some(18), 19;
    /// SESSION_CTRL_EVT_SHUTDOWN
    Shutdown = None, 20;
    /// SESSION_CTRL_EVT_DISCONNECT
    Disconnect = Some(19), 21;
    /// SESSION_CTRL_EVT_CONNECT
    Connect = Some(20), 22;
    /// SESSION_CTRL_EVT_CONNECT_URI
    ConnectUri = Some(21), 23;
    /// SESSION_CTRL_EVT_LISTEN
    Listen = Some(22), 24;
    /// SESSION_CTRL_EVT_LISTEN_URI
    ListenUri = Some(23), 25;
    /// SESSION_CTRL_EVT_UNLISTEN
    Unlisten = Some(24), 26;
    /// SESSION_CTRL_EVT_APP_DETACH
    AppDetach = Some(25), 27;
    /// SESSION_CTRL_EVT_APP_ADD_SEGMENT
    AppAddSegment = Some(26), 28;
    /// SESSION_CTRL_EVT_APP_DEL_SEGMENT
    AppDelSegment = Some(27), 29;
    /// SESSION_CTRL_EVT_MIGRATED
    Migrated = Some(28), 30;
    /// SESSION_CTRL_EVT_CLEANUP
    Cleanup = Some(29), 31;
    /// SESSION_CTRL_EVT_APP_WRK_RPC
    AppWrkRpc = Some(30), 32;
    /// SESSION_CTRL_EVT_TRANSPORT_ATTR
    TransportAttr = None, 33;
    /// SESSION_CTRL_EVT_TRANSPORT_ATTR_REPLY
    TransportAttrReply = None, 34;
    /// SESSION_CTRL_EVT_TRANSPORT_CLOSED
    TransportClosed = None, 35;
    /// SESSION_CTRL_EVT_HALF_CLEANUP
    HalfCleanup = None, 36;
    /// SESSION_CTRL_EVT_CONNECT_STREAM
    ConnectStream = None, 37;
    /// SESSION_CTRL_EVT_TERMINATE
    Terminate = None, 38;
}

impl SessionEventType {
    /// Number in the chosen profile (`seed` = the 2020-09 profile).
    pub const fn number(self, seed: bool) -> Option<u8> {
        if seed {
            self.number_seed()
        } else {
            Some(self.number_head())
        }
    }

    /// The type with number `n` in the chosen profile.
    pub fn from_number(n: u8, seed: bool) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.number(seed) == Some(n))
    }
}

/// `session_event_t` (§6.1): the 18-byte element of ring 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEvent {
    /// Event type number (profile-specific).
    pub event_type: u8,
    /// `postponed` flag.
    pub postponed: u8,
    /// The 16-byte union (session index / handle / rpc / raw).
    pub data: [u8; 16],
}

impl SessionEvent {
    /// An IO event for `session_index` (first 4 bytes of the union, rest zero).
    pub fn io(event_type: u8, session_index: u32) -> Self {
        let mut data = [0u8; 16];
        data[..4].copy_from_slice(&session_index.to_le_bytes());
        Self {
            event_type,
            postponed: 0,
            data,
        }
    }

    /// The 18 bytes of the element.
    pub fn encode(&self) -> [u8; l::SESSION_EVENT_SIZE] {
        let mut b = [0u8; l::SESSION_EVENT_SIZE];
        b[0] = self.event_type;
        b[1] = self.postponed;
        b[2..].copy_from_slice(&self.data);
        b
    }

    /// Parses the first 18 bytes of an element.
    pub fn decode(b: &[u8]) -> Result<Self, EventError> {
        let b: &[u8; l::SESSION_EVENT_SIZE] = b
            .get(..l::SESSION_EVENT_SIZE)
            .and_then(|s| s.try_into().ok())
            .ok_or(EventError::Truncated {
                len: b.len(),
                needed: l::SESSION_EVENT_SIZE,
            })?;
        let mut data = [0u8; 16];
        data.copy_from_slice(&b[2..]);
        Ok(Self {
            event_type: b[0],
            postponed: b[1],
            data,
        })
    }
}

/// Size of a control-event ring element (ring 1).
pub const CTRL_ELEMENT_SIZE: usize = 256;
/// Offset of a control message body in its ring element.
pub const CTRL_BODY_OFFSET: usize = 2;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn body(element: &[u8], event_type: u8, size: usize) -> Result<&[u8], EventError> {
    let needed = CTRL_BODY_OFFSET + size;
    if element.len() < needed {
        return Err(EventError::Truncated {
            len: element.len(),
            needed,
        });
    }
    if element[0] != event_type {
        return Err(EventError::WrongType {
            got: element[0],
            expected: event_type,
        });
    }
    Ok(&element[CTRL_BODY_OFFSET..needed])
}

/// `session_app_add_segment_msg_t` (§6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAddSegment {
    /// `client_index` (0 for SAPI).
    pub client_index: u32,
    /// `context` (0).
    pub context: u32,
    /// `fd_flags` (0x02 = an fd follows on the SAPI socket).
    pub fd_flags: u8,
    /// `segment_size` in bytes.
    pub segment_size: u32,
    /// Segment name, at most 127 bytes.
    pub segment_name: Vec<u8>,
    /// `segment_handle`.
    pub segment_handle: u64,
}

impl AppAddSegment {
    /// The 256-byte ring-1 element: type `event_type` (28 HEAD / 26 seed), postponed 0, this
    /// body at offset 2, zero padding.
    pub fn encode_element(&self, event_type: u8) -> Result<[u8; CTRL_ELEMENT_SIZE], EventError> {
        if self.segment_name.len() > 127 {
            return Err(EventError::NameTooLong(self.segment_name.len()));
        }
        let mut e = [0u8; CTRL_ELEMENT_SIZE];
        e[0] = event_type;
        let b = &mut e[CTRL_BODY_OFFSET..CTRL_BODY_OFFSET + l::ADD_SEGMENT_SIZE];
        b[l::ADD_CLIENT_INDEX..][..4].copy_from_slice(&self.client_index.to_le_bytes());
        b[l::ADD_CONTEXT..][..4].copy_from_slice(&self.context.to_le_bytes());
        b[l::ADD_FD_FLAGS] = self.fd_flags;
        b[l::ADD_SEGMENT_SIZE_FIELD..][..4].copy_from_slice(&self.segment_size.to_le_bytes());
        b[l::ADD_SEGMENT_NAME..][..self.segment_name.len()].copy_from_slice(&self.segment_name);
        b[l::ADD_SEGMENT_HANDLE..][..8].copy_from_slice(&self.segment_handle.to_le_bytes());
        Ok(e)
    }

    /// Parses a ring-1 element whose type must be `event_type`.
    pub fn decode_element(element: &[u8], event_type: u8) -> Result<Self, EventError> {
        let b = body(element, event_type, l::ADD_SEGMENT_SIZE)?;
        let name = &b[l::ADD_SEGMENT_NAME..l::ADD_SEGMENT_NAME + 128];
        let end = name
            .iter()
            .position(|&c| c == 0)
            .ok_or(EventError::UnterminatedName)?;
        Ok(Self {
            client_index: u32_at(b, l::ADD_CLIENT_INDEX),
            context: u32_at(b, l::ADD_CONTEXT),
            fd_flags: b[l::ADD_FD_FLAGS],
            segment_size: u32_at(b, l::ADD_SEGMENT_SIZE_FIELD),
            segment_name: name[..end].to_vec(),
            segment_handle: u64_at(b, l::ADD_SEGMENT_HANDLE),
        })
    }
}

/// `session_app_del_segment_msg_t` (§6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppDelSegment {
    /// `client_index`.
    pub client_index: u32,
    /// `context`.
    pub context: u32,
    /// `segment_handle`.
    pub segment_handle: u64,
}

impl AppDelSegment {
    /// The 256-byte ring-1 element: type `event_type` (29 HEAD / 27 seed), body at offset 2.
    pub fn encode_element(&self, event_type: u8) -> [u8; CTRL_ELEMENT_SIZE] {
        let mut e = [0u8; CTRL_ELEMENT_SIZE];
        e[0] = event_type;
        let b = &mut e[CTRL_BODY_OFFSET..CTRL_BODY_OFFSET + l::DEL_SEGMENT_SIZE];
        b[l::DEL_CLIENT_INDEX..][..4].copy_from_slice(&self.client_index.to_le_bytes());
        b[l::DEL_CONTEXT..][..4].copy_from_slice(&self.context.to_le_bytes());
        b[l::DEL_SEGMENT_HANDLE..][..8].copy_from_slice(&self.segment_handle.to_le_bytes());
        e
    }

    /// Parses a ring-1 element whose type must be `event_type`.
    pub fn decode_element(element: &[u8], event_type: u8) -> Result<Self, EventError> {
        let b = body(element, event_type, l::DEL_SEGMENT_SIZE)?;
        Ok(Self {
            client_index: u32_at(b, l::DEL_CLIENT_INDEX),
            context: u32_at(b, l::DEL_CONTEXT),
            segment_handle: u64_at(b, l::DEL_SEGMENT_HANDLE),
        })
    }
}
