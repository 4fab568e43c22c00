//! Transport attributes (`docs/sessions.md` §5.18): TRANSPORT_ATTR (app → the session's mq) and
//! TRANSPORT_ATTR_REPLY (server → app), with the embedded `transport_endpt_attr_t`.
//!
//! Owns: these layouts; the attribute value is kept as its 32 raw bytes (the cut-through
//! transport has no attributes, so nothing here interprets them). Must never: judge the values.

use super::codec::{Byte, Bytes, Flag, Le32, Le64, Nested, Retval, wire_struct};

wire_struct! {
    /// `transport_endpt_attr_t` (40 bytes, not packed, align 8): a type byte, 7 bytes of
    /// padding (ignored on decode, written as zero), and a 32-byte value union.
    #[derive(Default)]
    pub struct TransportEndptAttr: TransportEndptAttrRaw, repr(C), "§5.18, 40 bytes" {
        /// `type`: which attribute (MSS, application error code, …).
        attr_type: u8 [u8] = Byte,
        /// The value union, raw.
        value: [u8; 32] [[u64; 4]] = Bytes<32>,
    }
}

wire_struct! {
    /// TRANSPORT_ATTR (33, app → the session's mq, 53 bytes packed, §5.18; HEAD only).
    #[derive(Default)]
    pub struct TransportAttr: SessionTransportAttrMsg, repr(C, packed), "§5.18, 53 bytes" {
        /// `client_index`: the sender's api_client_handle.
        client_index: u32 [u32] = Le32,
        /// `handle`: the session handle.
        handle: u64 [u64] = Le64,
        /// `attr`: the attribute to get or set.
        attr: TransportEndptAttr [TransportEndptAttrRaw] = Nested<TransportEndptAttr>,
        /// `is_get`.
        is_get: bool [u8] = Flag,
    }
}

wire_struct! {
    /// TRANSPORT_ATTR_REPLY (34, server → app, 53 bytes packed, §5.18; HEAD only). VPP answers
    /// −1 for cut-through sessions.
    #[derive(Default)]
    pub struct TransportAttrReply: SessionTransportAttrReplyMsg, repr(C, packed), "§5.18, 53 bytes" {
        /// `retval`.
        retval: i32 [i32] = Retval,
        /// `handle`: the session handle.
        handle: u64 [u64] = Le64,
        /// `attr`: the attribute (its value on a successful get).
        attr: TransportEndptAttr [TransportEndptAttrRaw] = Nested<TransportEndptAttr>,
        /// `is_get`.
        is_get: bool [u8] = Flag,
    }
}
