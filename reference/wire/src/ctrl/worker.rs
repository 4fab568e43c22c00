//! Moving sessions between an app's workers and worker RPCs (`docs/sessions.md` §5.19, §5.20):
//! WORKER_UPDATE, REQ_WORKER_UPDATE, WORKER_UPDATE_REPLY and APP_WRK_RPC.
//!
//! Owns: these body layouts. Must never: judge the values: decoding reads what is there.

use super::codec::{Bytes, Le16, Le32, Le64, wire_struct};

wire_struct! {
    /// WORKER_UPDATE (18, app → the session's mq, 16 bytes packed, §5.19).
    #[derive(Default)]
    pub struct WorkerUpdate: SessionWorkerUpdateMsg, repr(C, packed), "§5.19, 16 bytes" {
        /// `client_index`: the sender's api_client_handle.
        client_index: u32 [u32] = Le32,
        /// `wrk_index`: the new owner's worker map index.
        wrk_index: u16 [u16] = Le16,
        /// `req_wrk_index`: the requester's worker map index.
        req_wrk_index: u16 [u16] = Le16,
        /// `handle`: the session handle.
        handle: u64 [u64] = Le64,
    }
}

wire_struct! {
    /// REQ_WORKER_UPDATE (17, server → app, 8 bytes packed, §5.19).
    #[derive(Default)]
    pub struct ReqWorkerUpdate: SessionReqWorkerUpdateMsg, repr(C, packed), "§5.19, 8 bytes" {
        /// `session_handle`.
        session_handle: u64 [u64] = Le64,
    }
}

wire_struct! {
    /// WORKER_UPDATE_REPLY (19, server → the new owner, 32 bytes packed, §5.19).
    #[derive(Default)]
    pub struct WorkerUpdateReply: SessionWorkerUpdateReplyMsg, repr(C, packed), "§5.19, 32 bytes" {
        /// `handle`: the session handle.
        handle: u64 [u64] = Le64,
        /// `rx_fifo`: offset of the session's rx fifo.
        rx_fifo: u64 [u64] = Le64,
        /// `tx_fifo`: offset of the session's tx fifo.
        tx_fifo: u64 [u64] = Le64,
        /// `segment_handle`: the segment holding them.
        segment_handle: u64 [u64] = Le64,
    }
}

wire_struct! {
    /// APP_WRK_RPC (32, 72 bytes packed, §5.20): app → ctrl mq, and the copy the server puts
    /// into worker `wrk_index`'s mq (other fields 0).
    pub struct AppWrkRpc: SessionAppWrkRpcMsg, repr(C, packed), "§5.20, 72 bytes" {
        /// `client_index`: the sender's api_client_handle.
        client_index: u32 [u32] = Le32,
        /// `wrk_index`: the worker map index the data is for.
        wrk_index: u32 [u32] = Le32,
        /// `data`: 64 opaque bytes.
        data: [u8; 64] [[u8; 64]] = Bytes<64>,
    }
}

impl Default for AppWrkRpc {
    fn default() -> Self {
        AppWrkRpc {
            client_index: 0,
            wrk_index: 0,
            data: [0; 64],
        }
    }
}
