//! Accepting (`docs/sessions.md` §5.7, §5.8, §7.5): ACCEPTED (server → the listening app) and
//! ACCEPTED_REPLY (the listening app → the session's mq).
//!
//! Owns: these two body layouts. Must never: judge the values (a listener handle that is not live,
//! a context that does not match): decoding reads what is there, the server decides.

use super::codec::{Ip4Field, Le16, Le32, Le64, Nested, Port, Retval, wire_struct};
use super::endpoint::{TransportEndpoint, TransportEndpointRaw};

wire_struct! {
    /// ACCEPTED (11, server → S, 120 bytes packed, §5.7).
    #[derive(Default)]
    pub struct Accepted: SessionAcceptedMsg, repr(C, packed), "§5.7, 120 bytes" {
        /// `context`: the server app's index; must come back in ACCEPTED_REPLY.context.
        context: u32 [u32] = Le32,
        /// `listener_handle`: = BOUND.handle.
        listener_handle: u64 [u64] = Le64,
        /// `handle`: the server session's handle (ss).
        handle: u64 [u64] = Le64,
        /// `server_rx_fifo`: offset of fifo A in the ct segment.
        server_rx_fifo: u64 [u64] = Le64,
        /// `server_tx_fifo`: offset of fifo B.
        server_tx_fifo: u64 [u64] = Le64,
        /// `segment_handle`: the ct segment, server form H.
        segment_handle: u64 [u64] = Le64,
        /// `vpp_event_queue_address`: offset of server mq `mq_index`.
        vpp_event_queue_address: u64 [u64] = Le64,
        /// `mq_index`: the thread of ss.
        mq_index: u32 [u32] = Le32,
        /// `lcl`: VPP sends ip 0, port = the listener's port, is_ip4 0.
        lcl: TransportEndpoint [TransportEndpointRaw] = Nested<TransportEndpoint>,
        /// `rmt`: VPP sends ip 0, port 0, is_ip4 = the listener's family.
        rmt: TransportEndpoint [TransportEndpointRaw] = Nested<TransportEndpoint>,
        /// `flags`: the low 16 bits of VPP's session flags (0 for cut-through).
        flags: u16 [u16] = Le16,
        /// `original_dst_ip4` (network order): 0 for cut-through.
        original_dst_ip4: [u8; 4] [[u8; 4]] = Ip4Field,
        /// `original_dst_port` (network order on the wire): 0 for cut-through.
        original_dst_port: u16 [u16] = Port,
    }
}

wire_struct! {
    /// ACCEPTED_REPLY (12, S → the session's mq, 20 bytes packed, §5.8).
    #[derive(Default)]
    pub struct AcceptedReply: SessionAcceptedReplyMsg, repr(C, packed), "§5.8, 20 bytes" {
        /// `context`: ACCEPTED.context.
        context: u32 [u32] = Le32,
        /// `retval`: 0 accepts; anything else rejects.
        retval: i32 [i32] = Retval,
        /// `handle`: the server session's handle (ss).
        handle: u64 [u64] = Le64,
        /// `app_session_index`: VCL's index of the new session.
        app_session_index: u32 [u32] = Le32,
    }
}
