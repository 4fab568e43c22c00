//! The sizes and offsets of the messages carried in mq elements and fifos (`docs/shm.md` §6,
//! `docs/sessions.md` §5, §8.7), pinned on the `#[repr(C)]` mirrors the codec takes its offsets
//! from. Every number below is copied from the spec's tables ("Off" column, body offsets).

use std::mem::{align_of, offset_of, size_of};

use sapi_wire::ctrl::layout::*;
use sapi_wire::ctrl::{CtrlMessage, SessionEventType};

#[test]
fn session_events_match_section_6() {
    assert_eq!(size_of::<SessionEventRaw>(), 18);
    assert_eq!(offset_of!(SessionEventRaw, event_type), 0);
    assert_eq!(offset_of!(SessionEventRaw, postponed), 1);
    assert_eq!(offset_of!(SessionEventRaw, data), 2);
    type A = SessionAppAddSegmentMsg;
    assert_eq!(size_of::<A>(), 152);
    assert_eq!(align_of::<A>(), 8);
    assert_eq!(offset_of!(A, client_index), 0);
    assert_eq!(offset_of!(A, context), 4);
    assert_eq!(offset_of!(A, fd_flags), 8);
    assert_eq!(offset_of!(A, segment_size), 12);
    assert_eq!(offset_of!(A, segment_name), 16);
    assert_eq!(offset_of!(A, segment_handle), 144);
    type D = SessionAppDelSegmentMsg;
    assert_eq!(size_of::<D>(), 16);
    assert_eq!(offset_of!(D, client_index), 0);
    assert_eq!(offset_of!(D, context), 4);
    assert_eq!(offset_of!(D, segment_handle), 8);
}

#[test]
fn embedded_types_match_section_5_1_and_5_18() {
    type E = TransportEndpointRaw;
    assert_eq!((size_of::<E>(), align_of::<E>()), (28, 4), "not packed");
    assert_eq!(offset_of!(E, ip), 0);
    assert_eq!(offset_of!(E, port), 16);
    assert_eq!(offset_of!(E, is_ip4), 18);
    assert_eq!(offset_of!(E, sw_if_index), 20);
    assert_eq!(offset_of!(E, fib_index), 24);
    type T = TransportEndptAttrRaw;
    assert_eq!((size_of::<T>(), align_of::<T>()), (40, 8), "not packed");
    assert_eq!(offset_of!(T, attr_type), 0);
    assert_eq!(offset_of!(T, value), 8);
}

#[test]
fn listen_bound_unlisten_match_sections_5_2_to_5_5() {
    type L = SessionListenMsg;
    assert_eq!(size_of::<L>(), 46);
    assert_eq!(offset_of!(L, client_index), 0);
    assert_eq!(offset_of!(L, context), 4);
    assert_eq!(offset_of!(L, wrk_index), 8);
    assert_eq!(offset_of!(L, vrf), 12);
    assert_eq!(offset_of!(L, port), 16);
    assert_eq!(offset_of!(L, proto), 18);
    assert_eq!(offset_of!(L, is_ip4), 19);
    assert_eq!(offset_of!(L, ip), 20);
    assert_eq!(offset_of!(L, flags), 36);
    assert_eq!(offset_of!(L, ext_config), 37);
    assert_eq!(offset_of!(L, dscp), 45);

    type B = SessionBoundMsg;
    assert_eq!(size_of::<B>(), 79);
    assert_eq!(offset_of!(B, context), 0);
    assert_eq!(offset_of!(B, handle), 4);
    assert_eq!(offset_of!(B, cl_sh_handle), 12);
    assert_eq!(offset_of!(B, retval), 20);
    assert_eq!(offset_of!(B, lcl_is_ip4), 24);
    assert_eq!(offset_of!(B, lcl_ip), 25);
    assert_eq!(offset_of!(B, lcl_port), 41);
    assert_eq!(offset_of!(B, rx_fifo), 43);
    assert_eq!(offset_of!(B, tx_fifo), 51);
    assert_eq!(offset_of!(B, vpp_evt_q), 59);
    assert_eq!(offset_of!(B, segment_handle), 67);
    assert_eq!(offset_of!(B, mq_index), 75);

    type U = SessionUnlistenMsg;
    assert_eq!(size_of::<U>(), 20);
    assert_eq!(offset_of!(U, client_index), 0);
    assert_eq!(offset_of!(U, context), 4);
    assert_eq!(offset_of!(U, wrk_index), 8);
    assert_eq!(offset_of!(U, handle), 12);

    type R = SessionUnlistenReplyMsg;
    assert_eq!(size_of::<R>(), 16);
    assert_eq!(offset_of!(R, context), 0);
    assert_eq!(offset_of!(R, handle), 4);
    assert_eq!(offset_of!(R, retval), 12);
}

#[test]
fn connect_and_connected_match_sections_5_6_and_5_10() {
    type C = SessionConnectMsg;
    assert_eq!(size_of::<C>(), 77);
    assert_eq!(offset_of!(C, client_index), 0);
    assert_eq!(offset_of!(C, context), 4);
    assert_eq!(offset_of!(C, wrk_index), 8);
    assert_eq!(offset_of!(C, vrf), 12);
    assert_eq!(offset_of!(C, port), 16);
    assert_eq!(offset_of!(C, lcl_port), 18);
    assert_eq!(offset_of!(C, proto), 20);
    assert_eq!(offset_of!(C, is_ip4), 21);
    assert_eq!(offset_of!(C, ip), 22);
    assert_eq!(offset_of!(C, lcl_ip), 38);
    assert_eq!(offset_of!(C, parent_handle), 54);
    assert_eq!(offset_of!(C, ckpair_index), 62);
    assert_eq!(offset_of!(C, crypto_engine), 66);
    assert_eq!(offset_of!(C, flags), 67);
    assert_eq!(offset_of!(C, dscp), 68);
    assert_eq!(offset_of!(C, ext_config), 69);

    type D = SessionConnectedMsg;
    assert_eq!(size_of::<D>(), 104);
    assert_eq!(offset_of!(D, context), 0);
    assert_eq!(offset_of!(D, retval), 4);
    assert_eq!(offset_of!(D, handle), 8);
    assert_eq!(offset_of!(D, server_rx_fifo), 16);
    assert_eq!(offset_of!(D, server_tx_fifo), 24);
    assert_eq!(offset_of!(D, segment_handle), 32);
    assert_eq!(offset_of!(D, ct_rx_fifo), 40);
    assert_eq!(offset_of!(D, ct_tx_fifo), 48);
    assert_eq!(offset_of!(D, ct_segment_handle), 56);
    assert_eq!(offset_of!(D, vpp_event_queue_address), 64);
    assert_eq!(offset_of!(D, lcl), 72);
    assert_eq!(offset_of!(D, mq_index), 100);
}

#[test]
fn accepted_and_reply_match_sections_5_7_and_5_8() {
    type A = SessionAcceptedMsg;
    assert_eq!(size_of::<A>(), 120);
    assert_eq!(offset_of!(A, context), 0);
    assert_eq!(offset_of!(A, listener_handle), 4);
    assert_eq!(offset_of!(A, handle), 12);
    assert_eq!(offset_of!(A, server_rx_fifo), 20);
    assert_eq!(offset_of!(A, server_tx_fifo), 28);
    assert_eq!(offset_of!(A, segment_handle), 36);
    assert_eq!(offset_of!(A, vpp_event_queue_address), 44);
    assert_eq!(offset_of!(A, mq_index), 52);
    assert_eq!(offset_of!(A, lcl), 56);
    assert_eq!(offset_of!(A, rmt), 84);
    assert_eq!(offset_of!(A, flags), 112);
    assert_eq!(offset_of!(A, original_dst_ip4), 114);
    assert_eq!(offset_of!(A, original_dst_port), 118);

    type R = SessionAcceptedReplyMsg;
    assert_eq!(size_of::<R>(), 20);
    assert_eq!(offset_of!(R, context), 0);
    assert_eq!(offset_of!(R, retval), 4);
    assert_eq!(offset_of!(R, handle), 8);
    assert_eq!(offset_of!(R, app_session_index), 16);
}

#[test]
fn close_messages_match_sections_5_11_to_5_16() {
    // DISCONNECT, DISCONNECTED, RESET, SHUTDOWN, TERMINATE.
    type D = SessionDisconnectMsg;
    assert_eq!(size_of::<D>(), 16);
    assert_eq!(offset_of!(D, client_index), 0);
    assert_eq!(offset_of!(D, context), 4);
    assert_eq!(offset_of!(D, handle), 8);
    // DISCONNECTED_REPLY, RESET_REPLY.
    type R = SessionDisconnectedReplyMsg;
    assert_eq!(size_of::<R>(), 16);
    assert_eq!(offset_of!(R, context), 0);
    assert_eq!(offset_of!(R, retval), 4);
    assert_eq!(offset_of!(R, handle), 8);
    type C = SessionCleanupMsg;
    assert_eq!(size_of::<C>(), 9);
    assert_eq!(offset_of!(C, handle), 0);
    assert_eq!(offset_of!(C, cleanup_type), 8);
    type A = SessionAppDetachMsg;
    assert_eq!((size_of::<A>(), align_of::<A>()), (8, 4), "not packed");
    assert_eq!(offset_of!(A, client_index), 0);
    assert_eq!(offset_of!(A, context), 4);
}

#[test]
fn transport_attr_matches_section_5_18() {
    type Q = SessionTransportAttrMsg;
    assert_eq!(size_of::<Q>(), 53);
    assert_eq!(offset_of!(Q, client_index), 0);
    assert_eq!(offset_of!(Q, handle), 4);
    assert_eq!(offset_of!(Q, attr), 12);
    assert_eq!(offset_of!(Q, is_get), 52);
    type R = SessionTransportAttrReplyMsg;
    assert_eq!(size_of::<R>(), 53);
    assert_eq!(offset_of!(R, retval), 0);
    assert_eq!(offset_of!(R, handle), 4);
    assert_eq!(offset_of!(R, attr), 12);
    assert_eq!(offset_of!(R, is_get), 52);
}

#[test]
fn worker_messages_match_sections_5_19_and_5_20() {
    type U = SessionWorkerUpdateMsg;
    assert_eq!(size_of::<U>(), 16);
    assert_eq!(offset_of!(U, client_index), 0);
    assert_eq!(offset_of!(U, wrk_index), 4);
    assert_eq!(offset_of!(U, req_wrk_index), 6);
    assert_eq!(offset_of!(U, handle), 8);
    type Q = SessionReqWorkerUpdateMsg;
    assert_eq!(size_of::<Q>(), 8);
    assert_eq!(offset_of!(Q, session_handle), 0);
    type R = SessionWorkerUpdateReplyMsg;
    assert_eq!(size_of::<R>(), 32);
    assert_eq!(offset_of!(R, handle), 0);
    assert_eq!(offset_of!(R, rx_fifo), 8);
    assert_eq!(offset_of!(R, tx_fifo), 16);
    assert_eq!(offset_of!(R, segment_handle), 24);
    type P = SessionAppWrkRpcMsg;
    assert_eq!(size_of::<P>(), 72);
    assert_eq!(offset_of!(P, client_index), 0);
    assert_eq!(offset_of!(P, wrk_index), 4);
    assert_eq!(offset_of!(P, data), 8);
}

#[test]
fn dgram_header_matches_section_8_7() {
    type H = SessionDgramHdr;
    assert_eq!(size_of::<H>(), 47);
    assert_eq!(offset_of!(H, data_length), 0);
    assert_eq!(offset_of!(H, data_offset), 4);
    assert_eq!(offset_of!(H, rmt_ip), 8);
    assert_eq!(offset_of!(H, lcl_ip), 24);
    assert_eq!(offset_of!(H, rmt_port), 40);
    assert_eq!(offset_of!(H, lcl_port), 42);
    assert_eq!(offset_of!(H, is_ip4), 44);
    assert_eq!(offset_of!(H, gso_size), 45);
}

/// The body size of every message type, as the section headings state it.
#[test]
fn every_body_size_is_its_heading() {
    use SessionEventType as T;
    let headings = [
        (T::Listen, 46),
        (T::Bound, 79),
        (T::Unlisten, 20),
        (T::UnlistenReply, 16),
        (T::Connect, 77),
        (T::Accepted, 120),
        (T::AcceptedReply, 20),
        (T::Connected, 104),
        (T::Disconnect, 16),
        (T::Disconnected, 16),
        (T::Reset, 16),
        (T::DisconnectedReply, 16),
        (T::ResetReply, 16),
        (T::Cleanup, 9),
        (T::Shutdown, 16),
        (T::Terminate, 16),
        (T::AppDetach, 8),
        (T::TransportAttr, 53),
        (T::TransportAttrReply, 53),
        (T::WorkerUpdate, 16),
        (T::ReqWorkerUpdate, 8),
        (T::WorkerUpdateReply, 32),
        (T::AppWrkRpc, 72),
        (T::AppAddSegment, 152),
        (T::AppDelSegment, 16),
    ];
    for (t, size) in headings {
        assert_eq!(t.ctrl_body_size(), Some(size), "{t}");
    }
    let with_body = T::ALL
        .iter()
        .filter(|t| t.ctrl_body_size().is_some())
        .count();
    assert_eq!(
        with_body,
        headings.len(),
        "a type has a body but no heading here"
    );
    // The largest element still fits a 256-byte ring-1 slot.
    assert!(headings.iter().all(|&(_, s)| 2 + s <= 256));
    assert_eq!(
        CtrlMessage::Listen(Default::default()).element_len(),
        2 + 46
    );
}
