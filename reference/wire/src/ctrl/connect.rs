//! Connecting (`docs/sessions.md` §5.6, §5.10, §7): CONNECT (app → ctrl mq) and CONNECTED
//! (server → the connecting app).
//!
//! Owns: these two body layouts. Must never: judge the values (a zero remote address, a missing
//! listener): decoding reads what is there, the server decides.

use super::codec::{Byte, Flag, Ip46Field, Le32, Le64, Nested, Port, Retval, wire_struct};
use super::endpoint::{Ip46, TransportEndpoint, TransportEndpointRaw};

wire_struct! {
    /// CONNECT (22, app → ctrl mq, 77 bytes packed, §5.6). Answered by [`Connected`] to worker
    /// `wrk_index`: at once on failure, after the listening app accepted on success.
    #[derive(Default)]
    pub struct Connect: SessionConnectMsg, repr(C, packed), "§5.6, 77 bytes" {
        /// `client_index`: the worker's api_client_handle.
        client_index: u32 [u32] = Le32,
        /// `context`: VCL's session index; echoed in CONNECTED, becomes C's app session index.
        context: u32 [u32] = Le32,
        /// `wrk_index`: the worker map index that gets CONNECTED.
        wrk_index: u32 [u32] = Le32,
        /// `vrf`: 0.
        vrf: u32 [u32] = Le32,
        /// `port`: the remote port (network order on the wire).
        port: u16 [u16] = Port,
        /// `lcl_port`: 0 (VCL does not bind before connecting; network order on the wire).
        lcl_port: u16 [u16] = Port,
        /// `proto`: 0 TCP, 1 UDP.
        proto: u8 [u8] = Byte,
        /// `is_ip4`.
        is_ip4: bool [u8] = Flag,
        /// `ip`: the remote address.
        ip: Ip46 [[u8; 16]] = Ip46Field,
        /// `lcl_ip`: the local address, normally zero.
        lcl_ip: Ip46 [[u8; 16]] = Ip46Field,
        /// `parent_handle`: all ones from VCL.
        parent_handle: u64 [u64] = Le64,
        /// `ckpair_index`: 0.
        ckpair_index: u32 [u32] = Le32,
        /// `crypto_engine`: 0.
        crypto_engine: u8 [u8] = Byte,
        /// `flags`: 1 (`TRANSPORT_CFG_F_CONNECTED`) from VCL.
        flags: u8 [u8] = Byte,
        /// `dscp`: 0.
        dscp: u8 [u8] = Byte,
        /// `ext_config`: 0 for TCP and UDP (§5.1).
        ext_config: u64 [u64] = Le64,
    }
}

wire_struct! {
    /// CONNECTED (13, server → the connecting app, 104 bytes packed, §5.10). On failure only
    /// `context` and `retval` are set.
    #[derive(Default)]
    pub struct Connected: SessionConnectedMsg, repr(C, packed), "§5.10, 104 bytes" {
        /// `context`: CONNECT.context.
        context: u32 [u32] = Le32,
        /// `retval`: 0 or a `SESSION_E_*`.
        retval: i32 [i32] = Retval,
        /// `handle`: the client session's handle (cs).
        handle: u64 [u64] = Le64,
        /// `server_rx_fifo`: offset of C's shadow RX header in C's segment.
        server_rx_fifo: u64 [u64] = Le64,
        /// `server_tx_fifo`: offset of C's shadow TX header.
        server_tx_fifo: u64 [u64] = Le64,
        /// `segment_handle`: the segment holding the shadows (normally C's first).
        segment_handle: u64 [u64] = Le64,
        /// `ct_rx_fifo`: offset of fifo B (= ACCEPTED.server_tx_fifo) in the ct segment.
        ct_rx_fifo: u64 [u64] = Le64,
        /// `ct_tx_fifo`: offset of fifo A (= ACCEPTED.server_rx_fifo).
        ct_tx_fifo: u64 [u64] = Le64,
        /// `ct_segment_handle`: the ct segment, client form `(W_C << 56) | H`.
        ct_segment_handle: u64 [u64] = Le64,
        /// `vpp_event_queue_address`: offset of server mq `mq_index`.
        vpp_event_queue_address: u64 [u64] = Le64,
        /// `lcl`: VPP sends ip 0, port 0, is_ip4 = the connect's family.
        lcl: TransportEndpoint [TransportEndpointRaw] = Nested<TransportEndpoint>,
        /// `mq_index`: the thread of the session pair.
        mq_index: u32 [u32] = Le32,
    }
}
