//! Closing (`docs/sessions.md` §5.11–§5.16, §9): the bodies of DISCONNECT, SHUTDOWN, TERMINATE,
//! DISCONNECTED and RESET (one layout), of DISCONNECTED_REPLY and RESET_REPLY (one layout), of
//! CLEANUP and of APP_DETACH.
//!
//! Owns: these body layouts. Must never: judge the values (an unknown handle, a non-zero
//! retval): decoding reads what is there, the server decides.

use super::codec::{Byte, Field, Le32, Le64, Retval, Rows, wire_struct};

wire_struct! {
    /// The 16-byte packed body `{client_index, context, handle}` shared by DISCONNECT (21, §5.11),
    /// SHUTDOWN (20) and TERMINATE (38) (§5.15) from apps, and by DISCONNECTED (14) and RESET (8)
    /// (§5.12) from the server (and by the older app-sent DISCONNECTED, §5.13).
    #[derive(Default)]
    pub struct SessionHandleMsg: SessionDisconnectMsg, repr(C, packed), "§5.11, §5.12, §5.15, 16 bytes" {
        /// `client_index`: the sender's api_client_handle from an app; 0 from the server.
        client_index: u32 [u32] = Le32,
        /// `context`: 0 from an app; the receiving worker's api_client_handle from the server.
        context: u32 [u32] = Le32,
        /// `handle`: the session handle (the receiver's, from the server).
        handle: u64 [u64] = Le64,
    }
}

wire_struct! {
    /// The 16-byte packed body `{context, retval, handle}` of DISCONNECTED_REPLY (15) and
    /// RESET_REPLY (16) (§5.13), app → the session's mq (and DISCONNECTED_REPLY server → app,
    /// answering an app-sent DISCONNECTED).
    #[derive(Default)]
    pub struct SessionHandleReply: SessionDisconnectedReplyMsg, repr(C, packed), "§5.13, 16 bytes" {
        /// `context`: the app's api_client_handle (from an app); the request's context echoed
        /// (from the server).
        context: u32 [u32] = Le32,
        /// `retval`: 0 (a non-zero retval leaves the session as it is).
        retval: i32 [i32] = Retval,
        /// `handle`: the session handle.
        handle: u64 [u64] = Le64,
    }
}

/// CLEANUP's `type` byte (`session_cleanup_ntf_t`). Kept as the raw byte so a decode loses
/// nothing; [`CleanupType::TRANSPORT`] and [`CleanupType::SESSION`] are the values VPP sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct CleanupType(pub u8);

impl CleanupType {
    /// 0: the transport is cleaned up.
    pub const TRANSPORT: CleanupType = CleanupType(0);
    /// 1: the session is freed; its handle may be reused. The last message about a session.
    pub const SESSION: CleanupType = CleanupType(1);

    /// `"transport"`, `"session"`, or `None` for any other byte.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("transport"),
            1 => Some("session"),
            _ => None,
        }
    }
}

/// Codec of [`CleanupType`].
pub(crate) struct CleanupTypeField;
impl Field for CleanupTypeField {
    type Value = CleanupType;
    const LEN: usize = 1;
    fn read(b: &[u8]) -> CleanupType {
        CleanupType(Byte::read(b))
    }
    fn write(v: &CleanupType, b: &mut [u8]) {
        Byte::write(&v.0, b);
    }
    fn rows(v: &CleanupType, name: &str, at: usize, rows: &mut Rows) {
        let what = v.name().unwrap_or("not a cleanup type VPP sends");
        rows.push(at, Self::LEN, name, format!("{} ({what})", v.0));
    }
}

wire_struct! {
    /// CLEANUP (31, server → app, 9 bytes packed, §5.14).
    #[derive(Default)]
    pub struct Cleanup: SessionCleanupMsg, repr(C, packed), "§5.14, 9 bytes" {
        /// `handle`: the session handle.
        handle: u64 [u64] = Le64,
        /// `type`: 0 transport cleaned up, 1 session freed.
        cleanup_type: CleanupType [u8] = CleanupTypeField,
    }
}

wire_struct! {
    /// APP_DETACH (27, app → ctrl mq, 8 bytes, **not packed**, §5.16). No reply.
    #[derive(Default)]
    pub struct AppDetach: SessionAppDetachMsg, repr(C), "§5.16, 8 bytes" {
        /// `client_index`: the sender's api_client_handle.
        client_index: u32 [u32] = Le32,
        /// `context`: 0.
        context: u32 [u32] = Le32,
    }
}
