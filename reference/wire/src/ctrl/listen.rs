//! Listening (`docs/sessions.md` §5.2–§5.5, §6): LISTEN and UNLISTEN (app → ctrl mq), BOUND and
//! UNLISTEN_REPLY (server → app).
//!
//! Owns: these four body layouts. Must never: judge the values (an address the namespace does not
//! have, an unknown worker): decoding reads what is there, the server decides.

use super::codec::{Byte, Flag, Ip46Field, Le32, Le64, Port, Retval, wire_struct};
use super::endpoint::Ip46;

wire_struct! {
    /// LISTEN (24, app → ctrl mq, 46 bytes packed, §5.2): open a listener. Answered by
    /// [`Bound`] to worker `wrk_index`.
    #[derive(Default)]
    pub struct Listen: SessionListenMsg, repr(C, packed), "§5.2, 46 bytes" {
        /// `client_index`: the worker's api_client_handle.
        client_index: u32 [u32] = Le32,
        /// `context`: VCL's index of the listening session, echoed in BOUND.
        context: u32 [u32] = Le32,
        /// `wrk_index`: the worker map index that gets BOUND.
        wrk_index: u32 [u32] = Le32,
        /// `vrf`: a FIB table id (ignored for cut-through).
        vrf: u32 [u32] = Le32,
        /// `port`: the local port (network order on the wire).
        port: u16 [u16] = Port,
        /// `proto`: 0 TCP, 1 UDP.
        proto: u8 [u8] = Byte,
        /// `is_ip4`.
        is_ip4: bool [u8] = Flag,
        /// `ip`: the local address.
        ip: Ip46 [[u8; 16]] = Ip46Field,
        /// `flags`: `TRANSPORT_CFG_F_CONNECTED` (1) for a connected UDP listener.
        flags: u8 [u8] = Byte,
        /// `ext_config`: 0, or the mqs-segment offset of an app-allocated chunk (§5.1).
        ext_config: u64 [u64] = Le64,
        /// `dscp` (ignored for cut-through).
        dscp: u8 [u8] = Byte,
    }
}

wire_struct! {
    /// BOUND (9, server → app, 79 bytes packed, §5.3): the answer to LISTEN. On failure only
    /// `context` and `retval` are set.
    #[derive(Default)]
    pub struct Bound: SessionBoundMsg, repr(C, packed), "§5.3, 79 bytes" {
        /// `context`: LISTEN.context.
        context: u32 [u32] = Le32,
        /// `handle`: the listener handle (§4.2); 0 on failure (and a valid handle otherwise).
        handle: u64 [u64] = Le64,
        /// `cl_sh_handle`: 0 (connectionless listeners only).
        cl_sh_handle: u64 [u64] = Le64,
        /// `retval`: 0 or a `SESSION_E_*`.
        retval: i32 [i32] = Retval,
        /// `lcl_is_ip4`: from the request.
        lcl_is_ip4: bool [u8] = Flag,
        /// `lcl_ip`: the listen address.
        lcl_ip: Ip46 [[u8; 16]] = Ip46Field,
        /// `lcl_port`: the listen port (network order on the wire).
        lcl_port: u16 [u16] = Port,
        /// `rx_fifo`: 0 for cut-through.
        rx_fifo: u64 [u64] = Le64,
        /// `tx_fifo`: 0 for cut-through.
        tx_fifo: u64 [u64] = Le64,
        /// `vpp_evt_q`: offset of server mq 0 in the mqs segment (§4.6).
        vpp_evt_q: u64 [u64] = Le64,
        /// `segment_handle`: 0 for cut-through.
        segment_handle: u64 [u64] = Le64,
        /// `mq_index`: 0.
        mq_index: u32 [u32] = Le32,
    }
}

wire_struct! {
    /// UNLISTEN (26, app → ctrl mq, 20 bytes packed, §5.4). Answered by [`UnlistenReply`].
    #[derive(Default)]
    pub struct Unlisten: SessionUnlistenMsg, repr(C, packed), "§5.4, 20 bytes" {
        /// `client_index`: the worker's api_client_handle.
        client_index: u32 [u32] = Le32,
        /// `context`: VCL's worker index, echoed.
        context: u32 [u32] = Le32,
        /// `wrk_index`: the worker map index that gets the reply.
        wrk_index: u32 [u32] = Le32,
        /// `handle`: the listener handle from BOUND.
        handle: u64 [u64] = Le64,
    }
}

wire_struct! {
    /// UNLISTEN_REPLY (10, server → app, 16 bytes packed, §5.5).
    #[derive(Default)]
    pub struct UnlistenReply: SessionUnlistenReplyMsg, repr(C, packed), "§5.5, 16 bytes" {
        /// `context`: UNLISTEN.context.
        context: u32 [u32] = Le32,
        /// `handle`: UNLISTEN.handle.
        handle: u64 [u64] = Le64,
        /// `retval`: 0, −11 NOLISTEN, −5 OWNER.
        retval: i32 [i32] = Retval,
    }
}
