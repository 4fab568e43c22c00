//! `#[repr(C)]` / `#[repr(C, packed)]` mirrors of the structures carried in message-queue
//! elements and fifos (`docs/shm.md` §6, `docs/sessions.md` §5, §8.7), and the offsets derived
//! from them, so that the byte positions the codec uses and the declarations that document them
//! cannot drift apart. Most mirrors are declared beside their typed message (one declaration
//! makes both) and re-exported here; `tests/ctrl_layout.rs` pins each size and offset to the
//! spec's tables.
//!
//! Must never: be used to read peer bytes; the codec reads slices at the derived offsets.

#![allow(missing_docs)] // field names are VPP's, documented in the spec tables

use std::mem::{offset_of, size_of};

pub use super::accept::{SessionAcceptedMsg, SessionAcceptedReplyMsg};
pub use super::attr::{
    SessionTransportAttrMsg, SessionTransportAttrReplyMsg, TransportEndptAttrRaw,
};
pub use super::close::{
    SessionAppDetachMsg, SessionCleanupMsg, SessionDisconnectMsg, SessionDisconnectedReplyMsg,
};
pub use super::connect::{SessionConnectMsg, SessionConnectedMsg};
pub use super::dgram::SessionDgramHdr;
pub use super::endpoint::TransportEndpointRaw;
pub use super::listen::{
    SessionBoundMsg, SessionListenMsg, SessionUnlistenMsg, SessionUnlistenReplyMsg,
};
pub use super::segment::SessionAppDelSegmentMsg;
pub use super::worker::{
    SessionAppWrkRpcMsg, SessionReqWorkerUpdateMsg, SessionWorkerUpdateMsg,
    SessionWorkerUpdateReplyMsg,
};

/// `session_event_t` (§6.1), packed 18 bytes.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct SessionEventRaw {
    pub event_type: u8,
    pub postponed: u8,
    pub data: [u8; 16],
}

/// `session_app_add_segment_msg_t` (§6.3), 152 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SessionAppAddSegmentMsg {
    pub client_index: u32,
    pub context: u32,
    pub fd_flags: u8,
    pub _pad: [u8; 3],
    pub segment_size: u32,
    pub segment_name: [u8; 128],
    pub segment_handle: u64,
}

/// Sizes and offsets of session events.
pub const SESSION_EVENT_SIZE: usize = size_of::<SessionEventRaw>();
pub const ADD_SEGMENT_SIZE: usize = size_of::<SessionAppAddSegmentMsg>();
pub const DEL_SEGMENT_SIZE: usize = size_of::<SessionAppDelSegmentMsg>();
pub const ADD_CLIENT_INDEX: usize = offset_of!(SessionAppAddSegmentMsg, client_index);
pub const ADD_CONTEXT: usize = offset_of!(SessionAppAddSegmentMsg, context);
pub const ADD_FD_FLAGS: usize = offset_of!(SessionAppAddSegmentMsg, fd_flags);
pub const ADD_SEGMENT_SIZE_FIELD: usize = offset_of!(SessionAppAddSegmentMsg, segment_size);
pub const ADD_SEGMENT_NAME: usize = offset_of!(SessionAppAddSegmentMsg, segment_name);
pub const ADD_SEGMENT_HANDLE: usize = offset_of!(SessionAppAddSegmentMsg, segment_handle);
pub const DEL_CLIENT_INDEX: usize = offset_of!(SessionAppDelSegmentMsg, client_index);
pub const DEL_CONTEXT: usize = offset_of!(SessionAppDelSegmentMsg, context);
pub const DEL_SEGMENT_HANDLE: usize = offset_of!(SessionAppDelSegmentMsg, segment_handle);
