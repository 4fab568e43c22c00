//! Every number the wire module defines, pinned against the protocol spec: message types and body
//! lengths (§2.1, §3), option slots (§4), option flags (§4.1), fd flags (§5.2), error numbers
//! (§7.1, §7.2).

use rstest::rstest;
use sapi_wire::{
    AppOptionFlags, AttachOptions, Direction, FdFlags, MSG_LEN, MsgType, OptionIndex, Profile,
    SapiError, session_error_name, vnet_api_error_name,
};

#[test]
fn every_datagram_is_209_bytes() {
    assert_eq!(MSG_LEN, 209);
}

#[rstest]
#[case(MsgType::None, 0, "NONE", None, 0, 0)]
#[case(MsgType::Attach, 1, "ATTACH", Some(Direction::AppToServer), 208, 208)]
#[case(
    MsgType::AttachReply,
    2,
    "ATTACH_REPLY",
    Some(Direction::ServerToApp),
    39,
    39
)]
#[case(
    MsgType::AddDelWorker,
    3,
    "ADD_DEL_WORKER",
    Some(Direction::AppToServer),
    9,
    9
)]
#[case(
    MsgType::AddDelWorkerReply,
    4,
    "ADD_DEL_WORKER_REPLY",
    Some(Direction::ServerToApp),
    31,
    27
)]
#[case(MsgType::SendFds, 5, "SEND_FDS", Some(Direction::ServerToApp), 0, 0)]
#[case(
    MsgType::AddDelCertKey,
    6,
    "ADD_DEL_CERT_KEY",
    Some(Direction::AppToServer),
    13,
    13
)]
#[case(
    MsgType::AddDelCertKeyReply,
    7,
    "ADD_DEL_CERT_KEY_REPLY",
    Some(Direction::ServerToApp),
    12,
    12
)]
fn message_types(
    #[case] t: MsgType,
    #[case] value: u8,
    #[case] name: &str,
    #[case] dir: Option<Direction>,
    #[case] head_body: usize,
    #[case] seed_body: usize,
) {
    assert_eq!(t as u8, value);
    assert_eq!(MsgType::from_u8(value), Some(t));
    assert_eq!(t.name(), name);
    assert_eq!(t.direction(), dir);
    assert_eq!(t.body_len(Profile::Head), head_body);
    assert_eq!(t.body_len(Profile::Seed), seed_body);
    assert!(t.exists_in(Profile::Head));
    assert_eq!(t.exists_in(Profile::Seed), value <= 5);
}

#[test]
fn profiles() {
    assert_eq!(Profile::default(), Profile::Head);
    assert_eq!("head".parse::<Profile>(), Ok(Profile::Head));
    assert_eq!("seed".parse::<Profile>(), Ok(Profile::Seed));
    assert!("HEAD".parse::<Profile>().is_err());
    assert_eq!(Profile::Seed.to_string(), "seed");
    assert_eq!(
        (Profile::Head.type_count(), Profile::Seed.type_count()),
        (8, 6)
    );
    assert_eq!(MsgType::from_u8(8), None);
}

#[rstest]
#[case(OptionIndex::Flags, 0, "FLAGS", "FLAGS")]
#[case(OptionIndex::EvtQueueSize, 1, "EVT_QUEUE_SIZE", "EVT_QUEUE_SIZE")]
#[case(OptionIndex::SegmentSize, 2, "SEGMENT_SIZE", "SEGMENT_SIZE")]
#[case(OptionIndex::AddSegmentSize, 3, "ADD_SEGMENT_SIZE", "ADD_SEGMENT_SIZE")]
#[case(
    OptionIndex::MaxFifoMemory,
    4,
    "MAX_FIFO_MEMORY",
    "PRIVATE_SEGMENT_COUNT"
)]
#[case(OptionIndex::RxFifoSize, 5, "RX_FIFO_SIZE", "RX_FIFO_SIZE")]
#[case(OptionIndex::TxFifoSize, 6, "TX_FIFO_SIZE", "TX_FIFO_SIZE")]
#[case(
    OptionIndex::PreallocFifoPairs,
    7,
    "PREALLOC_FIFO_PAIRS",
    "PREALLOC_FIFO_PAIRS"
)]
#[case(
    OptionIndex::PreallocFifoHdrs,
    8,
    "PREALLOC_FIFO_HDRS",
    "PREALLOC_FIFO_HDRS"
)]
#[case(OptionIndex::Namespace, 9, "NAMESPACE", "NAMESPACE")]
#[case(
    OptionIndex::NamespaceSecret,
    10,
    "NAMESPACE_SECRET",
    "NAMESPACE_SECRET"
)]
#[case(OptionIndex::ProxyTransport, 11, "PROXY_TRANSPORT", "PROXY_TRANSPORT")]
#[case(OptionIndex::Unused2, 12, "UNUSED2", "ACCEPT_COOKIE")]
#[case(OptionIndex::TlsEngine, 13, "TLS_ENGINE", "TLS_ENGINE")]
#[case(OptionIndex::MaxFifoSize, 14, "MAX_FIFO_SIZE", "MAX_FIFO_SIZE")]
#[case(OptionIndex::HighWatermark, 15, "HIGH_WATERMARK", "HIGH_WATERMARK")]
#[case(OptionIndex::LowWatermark, 16, "LOW_WATERMARK", "LOW_WATERMARK")]
#[case(OptionIndex::PctFirstAlloc, 17, "PCT_FIRST_ALLOC", "PCT_FIRST_ALLOC")]
fn option_slots(
    #[case] index: OptionIndex,
    #[case] position: usize,
    #[case] head: &str,
    #[case] seed: &str,
) {
    assert_eq!(index as usize, position);
    assert_eq!(OptionIndex::from_index(position), Some(index));
    assert_eq!(OptionIndex::ALL[position], index);
    assert_eq!(index.name(Profile::Head), head);
    assert_eq!(index.name(Profile::Seed), seed);
    // The typed view reads exactly that slot.
    let options = AttachOptions::default().with(index, 0xabc);
    assert_eq!(options.0[position], 0xabc);
    assert_eq!(options.get(index), 0xabc);
}

#[test]
fn eighteen_slots_and_named_getters() {
    assert_eq!(OptionIndex::COUNT, 18);
    assert_eq!(OptionIndex::from_index(18), None);
    let o = AttachOptions(std::array::from_fn(|i| i as u64 * 10));
    let named = [
        o.flags().bits(),
        o.evt_queue_size(),
        o.segment_size(),
        o.add_segment_size(),
        o.max_fifo_memory(),
        o.rx_fifo_size(),
        o.tx_fifo_size(),
        o.prealloc_fifo_pairs(),
        o.prealloc_fifo_hdrs(),
        o.namespace(),
        o.namespace_secret(),
        o.proxy_transport(),
        o.unused2(),
        o.tls_engine(),
        o.max_fifo_size(),
        o.high_watermark(),
        o.low_watermark(),
        o.pct_first_alloc(),
    ];
    assert_eq!(named, o.0);
}

#[rstest]
#[case(AppOptionFlags::ACCEPT_REDIRECT, 0x0001)]
#[case(AppOptionFlags::ADD_SEGMENT, 0x0002)]
#[case(AppOptionFlags::IS_BUILTIN, 0x0004)]
#[case(AppOptionFlags::IS_TRANSPORT_APP, 0x0008)]
#[case(AppOptionFlags::IS_PROXY, 0x0010)]
#[case(AppOptionFlags::USE_GLOBAL_SCOPE, 0x0020)]
#[case(AppOptionFlags::USE_LOCAL_SCOPE, 0x0040)]
#[case(AppOptionFlags::EVT_MQ_USE_EVENTFD, 0x0080)]
#[case(AppOptionFlags::MEMFD_FOR_BUILTIN, 0x0100)]
#[case(AppOptionFlags::USE_HUGE_PAGE, 0x0200)]
#[case(AppOptionFlags::GET_ORIGINAL_DST, 0x0400)]
#[case(AppOptionFlags::EVT_COLLECTOR, 0x0800)]
#[case(AppOptionFlags::NO_DUMP_SEGMENTS, 0x1000)]
fn option_flag_bits(#[case] flag: AppOptionFlags, #[case] value: u64) {
    assert_eq!(flag.bits(), value);
}

#[test]
fn option_flags_keep_unknown_bits() {
    assert_eq!(AppOptionFlags::all().bits(), 0x1fff);
    let o = AttachOptions::default().with(OptionIndex::Flags, 0x8000_0000_0000_00e3);
    assert_eq!(o.flags().bits(), 0x8000_0000_0000_00e3);
    assert_eq!(
        o.flags().describe(),
        "ACCEPT_REDIRECT | ADD_SEGMENT | USE_GLOBAL_SCOPE | USE_LOCAL_SCOPE | EVT_MQ_USE_EVENTFD | unknown 0x8000000000000000"
    );
}

#[rstest]
#[case(FdFlags::VPP_MQ_SEGMENT, 0x01)]
#[case(FdFlags::MEMFD_SEGMENT, 0x02)]
#[case(FdFlags::MQ_EVENTFD, 0x04)]
#[case(FdFlags::VPP_MQ_EVENTFD, 0x08)]
fn fd_flag_bits(#[case] flag: FdFlags, #[case] value: u8) {
    assert_eq!(flag.bits(), value);
}

#[rstest]
#[case(SapiError::Unknown, -1, "SESSION_E_UNKNOWN", -1, "VNET_API_ERROR_UNSPECIFIED")]
#[case(SapiError::Alloc, -4, "SESSION_E_ALLOC", -1, "VNET_API_ERROR_UNSPECIFIED")]
#[case(SapiError::NoSupport, -10, "SESSION_E_NOSUPPORT", -108, "VNET_API_ERROR_APP_UNSUPPORTED_CFG")]
#[case(SapiError::NoApp, -13, "SESSION_E_NOAPP", -118, "VNET_API_ERROR_APPLICATION_NOT_ATTACHED")]
#[case(SapiError::AppAttached, -14, "SESSION_E_APP_ATTACHED", -131, "VNET_API_ERROR_APP_ALREADY_ATTACHED")]
#[case(SapiError::Invalid, -19, "SESSION_E_INVALID", -7, "VNET_API_ERROR_INVALID_VALUE")]
#[case(SapiError::InvalidNs, -22, "SESSION_E_INVALID_NS", -128, "VNET_API_ERROR_APP_INVALID_NS")]
#[case(SapiError::SegCreate, -25, "SESSION_E_SEG_CREATE", -117, "VNET_API_ERROR_SVM_SEGMENT_CREATE_FAIL")]
#[case(SapiError::EventfdAlloc, -33, "SESSION_E_EVENTFD_ALLOC", -1, "VNET_API_ERROR_UNSPECIFIED")]
#[case(SapiError::WrongNsSecret, -38, "SESSION_E_WRONG_NS_SECRET", -129, "VNET_API_ERROR_APP_WRONG_NS_SECRET")]
#[case(SapiError::Syscall, -39, "SESSION_E_SYSCALL", -11, "VNET_API_ERROR_SYSCALL_ERROR_1")]
fn error_numbers(
    #[case] err: SapiError,
    #[case] head: i32,
    #[case] head_name: &str,
    #[case] seed: i32,
    #[case] seed_name: &str,
) {
    assert_eq!(err.retval(Profile::Head), head);
    assert_eq!(err.name(Profile::Head), head_name);
    assert_eq!(SapiError::from_retval(head, Profile::Head), Some(err));
    assert_eq!(err.retval(Profile::Seed), seed);
    assert_eq!(err.name(Profile::Seed), seed_name);
    assert_eq!(vnet_api_error_name(seed), Some(seed_name));
    // −1 is shared at the seed (a documented choice); it reads back as Unknown.
    let back = if seed == -1 { SapiError::Unknown } else { err };
    assert_eq!(SapiError::from_retval(seed, Profile::Seed), Some(back));
}

#[test]
fn success_and_foreign_numbers_are_not_sapi_errors() {
    for profile in Profile::ALL {
        assert_eq!(SapiError::from_retval(0, profile), None);
        assert_eq!(SapiError::from_retval(-2, profile), None);
        assert_eq!(SapiError::from_retval(i32::MIN, profile), None);
        assert_eq!(SapiError::from_retval(5, profile), None);
    }
    assert_eq!(
        vnet_api_error_name(-30),
        Some("VNET_API_ERROR_FEATURE_DISABLED")
    );
    assert_eq!(vnet_api_error_name(0), None);
}

/// Spec §7.1, the complete HEAD table.
const SESSION_E: [(i32, &str); 42] = [
    (0, "NONE"),
    (-1, "UNKNOWN"),
    (-2, "REFUSED"),
    (-3, "TIMEDOUT"),
    (-4, "ALLOC"),
    (-5, "OWNER"),
    (-6, "NOROUTE"),
    (-7, "NOINTF"),
    (-8, "NOIP"),
    (-9, "NOPORT"),
    (-10, "NOSUPPORT"),
    (-11, "NOLISTEN"),
    (-12, "NOSESSION"),
    (-13, "NOAPP"),
    (-14, "APP_ATTACHED"),
    (-15, "PORTINUSE"),
    (-16, "IPINUSE"),
    (-17, "ALREADY_LISTENING"),
    (-18, "ADDR_NOT_IN_USE"),
    (-19, "INVALID"),
    (-20, "INVALID_RMT_IP"),
    (-21, "INVALID_APPWRK"),
    (-22, "INVALID_NS"),
    (-23, "SEG_NO_SPACE"),
    (-24, "SEG_NO_SPACE2"),
    (-25, "SEG_CREATE"),
    (-26, "FILTERED"),
    (-27, "SCOPE"),
    (-28, "BAPI_NO_FD"),
    (-29, "BAPI_SEND_FD"),
    (-30, "BAPI_NO_REG"),
    (-31, "MQ_MSG_ALLOC"),
    (-32, "TLS_HANDSHAKE"),
    (-33, "EVENTFD_ALLOC"),
    (-34, "NOEXTCFG"),
    (-35, "NOCRYPTOENG"),
    (-36, "NOCRYPTOCKP"),
    (-37, "LOCAL_CONNECT"),
    (-38, "WRONG_NS_SECRET"),
    (-39, "SYSCALL"),
    (-40, "TRANSPORT_NO_REG"),
    (-41, "MAX_STREAMS_HIT"),
];

#[test]
fn session_error_table_is_complete() {
    for (value, name) in SESSION_E {
        assert_eq!(
            session_error_name(value),
            Some(format!("SESSION_E_{name}").as_str()),
            "{value}"
        );
    }
    assert_eq!(session_error_name(-42), None);
    assert_eq!(session_error_name(1), None);
    assert_eq!(session_error_name(i32::MIN), None);
}
