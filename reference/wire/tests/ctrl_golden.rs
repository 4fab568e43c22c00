//! Golden vectors `corpus/wire/ctrl/{head,seed}/*.bin`: message-queue elements, each exactly the
//! header and body of its type (an io event: its 18-byte ring-0 element). Each decodes to exactly
//! the field values the spec states and re-encodes byte-identical.
//!
//! The bytes below are literal hex transcribed from `docs/sessions.md` §11 (= session-layer spec
//! §11) and `docs/shm.md` §6.5, row by row at the offsets printed there — never produced by the
//! encoder under test. Where the spec elides bytes (`..` in the ADD_SEGMENT name) they are zero,
//! as the stated fields say (a NUL-terminated name in a zeroed field). The two seed vectors are
//! written field by field: the seed numbering with the segment bodies the spec states are the same
//! at the seed. `regenerate_ctrl_golden` writes them to the corpus;
//! `committed_files_match_the_literals` keeps the two from drifting.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use rstest::rstest;
use sapi_wire::ctrl::{
    Accepted, AcceptedReply, AppAddSegment, AppDelSegment, AppDetach, Bound, Cleanup, CleanupType,
    Connect, Connected, CtrlMessage, IoEvent, Ip46, Listen, SessionHandleMsg, SessionHandleReply,
    TransportEndpoint,
};
use sapi_wire::{Direction, Profile};

/// One golden element: `len` zero bytes with hex `rows` laid over them at their offsets.
struct Vector {
    path: &'static str,
    len: usize,
    rows: &'static [(usize, &'static str)],
}

const VECTORS: &[Vector] = &[
    // §11.1 step 1.
    Vector {
        path: "head/listen.bin",
        len: 2 + 46,
        rows: &[
            (0x00, "18 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00"),
            (0x10, "00 00 04 d2 00 01 00 00 00 00 00 00 00 00 00 00"),
            (0x20, "00 00 7f 00 00 01 00 00 00 00 00 00 00 00 00 00"),
        ],
    },
    // §11.1 step 2.
    Vector {
        path: "head/bound.bin",
        len: 2 + 79,
        rows: &[
            (0x00, "09 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
            (0x10, "00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00"),
            (0x20, "00 00 00 00 00 00 00 7f 00 00 01 04 d2 00 00 00"),
            (0x30, "00 00 00 00 00 00 00 00 00 00 00 00 00 40 01 00"),
            (0x40, "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
            (0x50, "00"),
        ],
    },
    // §11.2, the control connection's CONNECT.
    Vector {
        path: "head/connect.bin",
        len: 2 + 77,
        rows: &[
            (0x00, "16 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00"),
            (0x10, "00 00 04 d2 00 00 00 01 00 00 00 00 00 00 00 00"),
            (0x20, "00 00 00 00 7f 00 00 01 00 00 00 00 00 00 00 00"),
            (0x30, "00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff"),
            (0x40, "00 00 00 00 00 01 00 00 00 00 00 00 00 00 00"),
        ],
    },
    // §11.2, ADD_SEGMENT to S; the name's elided tail (`..`) is zero.
    Vector {
        path: "head/app_add_segment_s.bin",
        len: 2 + 152,
        rows: &[
            (0x00, "1c 00 00 00 00 00 00 00 00 00 02 00 00 00 00 30"),
            (0x10, "00 10 73 65 67 2d 31 2d 30 2d 32 00"),
            (0x90, "00 00 00 00 00 00 02 00 00 00"),
        ],
    },
    // §11.2, ADD_SEGMENT to C: identical but for the handle's top byte.
    Vector {
        path: "head/app_add_segment_c.bin",
        len: 2 + 152,
        rows: &[
            (0x00, "1c 00 00 00 00 00 00 00 00 00 02 00 00 00 00 30"),
            (0x10, "00 10 73 65 67 2d 31 2d 30 2d 32 00"),
            (0x90, "00 00 00 00 00 00 02 00 00 01"),
        ],
    },
    // §11.2.
    Vector {
        path: "head/accepted.bin",
        len: 2 + 120,
        rows: &[
            (0x00, "0b 00 01 00 00 00 00 00 00 00 00 00 00 00 03 00"),
            (0x10, "00 00 00 00 00 00 80 18 00 00 00 00 00 00 c0 17"),
            (0x20, "00 00 00 00 00 00 00 00 00 00 02 00 00 00 40 01"),
            (0x30, "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
            (0x40, "00 00 00 00 00 00 00 00 00 00 04 d2 00 00 00 00"),
            (0x50, "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
            (0x60, "00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00"),
            (0x70, "00 00 00 00 00 00 00 00 00 00"),
        ],
    },
    // §11.2.
    Vector {
        path: "head/accepted_reply.bin",
        len: 2 + 20,
        rows: &[
            (0x00, "0c 00 01 00 00 00 00 00 00 00 03 00 00 00 00 00"),
            (0x10, "00 00 03 00 00 00"),
        ],
    },
    // §11.2.
    Vector {
        path: "head/connected.bin",
        len: 2 + 104,
        rows: &[
            (0x00, "0d 00 00 00 00 00 00 00 00 00 04 00 00 00 00 00"),
            (0x10, "00 00 00 5e 81 00 00 00 00 00 40 5d 81 00 00 00"),
            (0x20, "00 00 00 00 00 00 04 00 00 00 c0 17 00 00 00 00"),
            (0x30, "00 00 80 18 00 00 00 00 00 00 00 00 00 00 02 00"),
            (0x40, "00 01 40 01 00 00 00 00 00 00 00 00 00 00 00 00"),
            (0x50, "00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00"),
            (0x60, "00 00 00 00 00 00 00 00 00 00"),
        ],
    },
    // §11.4 T2: C → mq 0 ring 0, zero to the 18-byte element.
    Vector {
        path: "head/io_tx.bin",
        len: 18,
        rows: &[(0x00, "01 00 06 00 00 00")],
    },
    // §11.4 T4: server → S app mq ring 0.
    Vector {
        path: "head/io_rx.bin",
        len: 18,
        rows: &[(0x00, "00 00 04 00 00 00")],
    },
    // §11.5.
    Vector {
        path: "head/disconnect.bin",
        len: 2 + 16,
        rows: &[(
            0x00,
            "15 00 02 00 00 00 00 00 00 00 06 00 00 00 00 00 00 00",
        )],
    },
    Vector {
        path: "head/disconnected.bin",
        len: 2 + 16,
        rows: &[(
            0x00,
            "0e 00 00 00 00 00 01 00 00 00 05 00 00 00 00 00 00 00",
        )],
    },
    Vector {
        path: "head/disconnected_reply.bin",
        len: 2 + 16,
        rows: &[(
            0x00,
            "0f 00 01 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00",
        )],
    },
    Vector {
        path: "head/cleanup_transport.bin",
        len: 2 + 9,
        rows: &[(0x00, "1f 00 06 00 00 00 00 00 00 00 00")],
    },
    Vector {
        path: "head/cleanup_session.bin",
        len: 2 + 9,
        rows: &[(0x00, "1f 00 06 00 00 00 00 00 00 00 01")],
    },
    Vector {
        path: "head/app_del_segment_c.bin",
        len: 2 + 16,
        rows: &[(
            0x00,
            "1d 00 00 00 00 00 00 00 00 00 00 00 00 00 03 00 00 01",
        )],
    },
    // §11.6.
    Vector {
        path: "head/app_detach.bin",
        len: 2 + 8,
        rows: &[(0x00, "1b 00 02 00 00 00 00 00 00 00")],
    },
    // docs/shm.md §6.5: name "vcl-echo-1" (its tail elided there), handle at 0x92.
    Vector {
        path: "head/app_add_segment_vcl_echo.bin",
        len: 2 + 152,
        rows: &[
            (0x00, "1c 00 00 00 00 00 00 00 00 00 02 00 00 00 00 00"),
            (0x10, "00 04 76 63 6c 2d 65 63 68 6f 2d 31 00"),
            (0x90, "00 00 01 00 00 00 01 00 00 00"),
        ],
    },
    // Seed numbering (APP_ADD_SEGMENT 26), the §6.5 body (the same at the seed, docs/shm.md §6.3).
    Vector {
        path: "seed/app_add_segment.bin",
        len: 2 + 152,
        rows: &[
            (0x00, "1a 00 | 00000000 | 00000000 | 02 | 000000 | 00000004"),
            (0x12, "76 63 6c 2d 65 63 68 6f 2d 31 00"),
            (0x92, "0100000001000000"),
        ],
    },
    // Seed numbering (APP_DEL_SEGMENT 27), the §11.5 DEL_SEGMENT (C) body.
    Vector {
        path: "seed/app_del_segment.bin",
        len: 2 + 16,
        rows: &[(0x00, "1b 00 | 00000000 | 00000000 | 0000000003000001")],
    },
];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/wire/ctrl")
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert_eq!(digits.len() % 2, 0, "odd hex in {text:?}");
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(s, 16).expect("hex digit")
        })
        .collect()
}

fn assemble(vector: &Vector) -> Vec<u8> {
    let mut out = vec![0u8; vector.len];
    for &(at, text) in vector.rows {
        let bytes = hex(text);
        assert!(
            at + bytes.len() <= vector.len,
            "{}: row at {at:#x} overflows",
            vector.path
        );
        out[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    out
}

fn profile_of(path: &str) -> Profile {
    path.split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("path starts with head/ or seed/")
}

fn read_vector(path: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Writes every literal vector to `corpus/wire/ctrl/`. Run after changing a literal:
/// `cargo test -p sapi-wire --test ctrl_golden -- --ignored regenerate_ctrl_golden`.
#[test]
#[ignore = "writes the corpus"]
fn regenerate_ctrl_golden() {
    for vector in VECTORS {
        let path = corpus_dir().join(vector.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, assemble(vector)).expect("write");
    }
}

#[test]
fn committed_files_match_the_literals() {
    for vector in VECTORS {
        assert_eq!(
            read_vector(vector.path),
            assemble(vector),
            "{}",
            vector.path
        );
    }
}

#[test]
fn every_committed_file_is_a_literal_and_in_the_readme() {
    let readme = std::fs::read_to_string(corpus_dir().join("../README.md")).expect("README");
    for profile in ["head", "seed"] {
        for entry in std::fs::read_dir(corpus_dir().join(profile)).expect("dir") {
            let name = entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf8");
            let path = format!("{profile}/{name}");
            assert!(
                VECTORS.iter().any(|v| v.path == path),
                "{path} has no literal in this file"
            );
            assert!(
                readme.contains(&format!("`ctrl/{path}`")),
                "ctrl/{path} is not in README.md"
            );
        }
    }
}

#[test]
fn every_hex_block_of_section_11_has_a_vector() {
    let section_11 = [
        "listen",
        "bound",
        "connect",
        "app_add_segment_s",
        "app_add_segment_c",
        "accepted",
        "accepted_reply",
        "connected",
        "io_tx",
        "io_rx",
        "disconnect",
        "disconnected",
        "disconnected_reply",
        "cleanup_transport",
        "cleanup_session",
        "app_del_segment_c",
        "app_detach",
    ];
    for name in section_11 {
        let path = format!("head/{name}.bin");
        assert!(VECTORS.iter().any(|v| v.path == path), "missing {path}");
    }
}

/// What a vector must decode to, and the direction it travelled.
#[derive(Debug)]
enum Expected {
    Ctrl(CtrlMessage, Direction),
    Io(IoEvent, Direction),
}

const TO_SERVER: Direction = Direction::AppToServer;
const TO_APP: Direction = Direction::ServerToApp;

fn ip4(a: u8, b: u8, c: u8, d: u8) -> Ip46 {
    Ip46::from_ipv4(Ipv4Addr::new(a, b, c, d))
}

fn endpoint(port: u16, is_ip4: bool) -> TransportEndpoint {
    TransportEndpoint {
        ip: Ip46::ZERO,
        port,
        is_ip4,
        sw_if_index: 0,
        fib_index: 0,
    }
}

fn add_segment(name: &[u8], segment_size: u32, segment_handle: u64) -> CtrlMessage {
    CtrlMessage::AppAddSegment(AppAddSegment {
        client_index: 0,
        context: 0,
        fd_flags: 0x02,
        segment_size,
        segment_name: name.to_vec(),
        segment_handle,
    })
}

#[rstest]
// §11.1: LISTEN {client_index 1, context 0, wrk 0, port 1234, proto 0, is_ip4 1, ip 127.0.0.1, flags 0}.
#[case::listen("head/listen.bin", Expected::Ctrl(CtrlMessage::Listen(Listen {
    client_index: 1,
    context: 0,
    wrk_index: 0,
    vrf: 0,
    port: 1234,
    proto: 0,
    is_ip4: true,
    ip: ip4(127, 0, 0, 1),
    flags: 0,
    ext_config: 0,
    dscp: 0,
}), TO_SERVER))]
// §11.1: BOUND {context 0, handle 0x0, retval 0, 127.0.0.1:1234, vpp_evt_q 0x140, mq_index 0}.
#[case::bound("head/bound.bin", Expected::Ctrl(CtrlMessage::Bound(Bound {
    context: 0,
    handle: 0,
    cl_sh_handle: 0,
    retval: 0,
    lcl_is_ip4: true,
    lcl_ip: ip4(127, 0, 0, 1),
    lcl_port: 1234,
    rx_fifo: 0,
    tx_fifo: 0,
    vpp_evt_q: 0x140,
    segment_handle: 0,
    mq_index: 0,
}), TO_APP))]
// §11.2: CONNECT {client_index 2, context 0, port 1234}, VCL's parent_handle all ones, flags 1.
#[case::connect("head/connect.bin", Expected::Ctrl(CtrlMessage::Connect(Connect {
    client_index: 2,
    context: 0,
    wrk_index: 0,
    vrf: 0,
    port: 1234,
    lcl_port: 0,
    proto: 0,
    is_ip4: true,
    ip: ip4(127, 0, 0, 1),
    lcl_ip: Ip46::ZERO,
    parent_handle: u64::MAX,
    ckpair_index: 0,
    crypto_engine: 0,
    flags: 1,
    dscp: 0,
    ext_config: 0,
}), TO_SERVER))]
// §11.2: ADD_SEGMENT (H 0x0000000200000000) to S, (0x0100000200000000) to C; size 0x10003000.
#[case::add_segment_s(
    "head/app_add_segment_s.bin",
    Expected::Ctrl(add_segment(b"seg-1-0-2", 0x1000_3000, 0x0000_0002_0000_0000), TO_APP)
)]
#[case::add_segment_c(
    "head/app_add_segment_c.bin",
    Expected::Ctrl(add_segment(b"seg-1-0-2", 0x1000_3000, 0x0100_0002_0000_0000), TO_APP)
)]
// §11.2: ACCEPTED {context 1, listener 0x0, handle 0x3, rx 0x1880, tx 0x17c0}, seg H, evq 0x140.
#[case::accepted("head/accepted.bin", Expected::Ctrl(CtrlMessage::Accepted(Accepted {
    context: 1,
    listener_handle: 0,
    handle: 3,
    server_rx_fifo: 0x1880,
    server_tx_fifo: 0x17c0,
    segment_handle: 0x2_0000_0000,
    vpp_event_queue_address: 0x140,
    mq_index: 0,
    lcl: endpoint(1234, false),
    rmt: endpoint(0, true),
    flags: 0,
    original_dst_ip4: [0; 4],
    original_dst_port: 0,
}), TO_APP))]
// §11.2: ACCEPTED_REPLY {1, 0, 0x3, app_session_index 3}.
#[case::accepted_reply("head/accepted_reply.bin", Expected::Ctrl(CtrlMessage::AcceptedReply(AcceptedReply {
    context: 1,
    retval: 0,
    handle: 3,
    app_session_index: 3,
}), TO_SERVER))]
// §11.2: CONNECTED {context 0, handle 0x4, ct_rx 0x17c0, ct_tx 0x1880}, shadows of the table.
#[case::connected("head/connected.bin", Expected::Ctrl(CtrlMessage::Connected(Connected {
    context: 0,
    retval: 0,
    handle: 4,
    server_rx_fifo: 0x81_5e00,
    server_tx_fifo: 0x81_5d40,
    segment_handle: 0x4_0000_0000,
    ct_rx_fifo: 0x17c0,
    ct_tx_fifo: 0x1880,
    ct_segment_handle: 0x0100_0002_0000_0000,
    vpp_event_queue_address: 0x140,
    lcl: endpoint(0, true),
    mq_index: 0,
}), TO_APP))]
// §11.4 T2: TX {session_index 6} from C; T4: RX {session_index 4} to S.
#[case::io_tx("head/io_tx.bin", Expected::Io(IoEvent::tx(6), TO_SERVER))]
#[case::io_rx("head/io_rx.bin", Expected::Io(IoEvent::rx(4), TO_APP))]
// §11.5 X1: DISCONNECT {client_index 2, context 0, handle 0x6}.
#[case::disconnect("head/disconnect.bin", Expected::Ctrl(CtrlMessage::Disconnect(SessionHandleMsg {
    client_index: 2,
    context: 0,
    handle: 6,
}), TO_SERVER))]
// §11.5 X2: DISCONNECTED {client_index 0, context 1, handle 0x5}.
#[case::disconnected("head/disconnected.bin", Expected::Ctrl(CtrlMessage::Disconnected(SessionHandleMsg {
    client_index: 0,
    context: 1,
    handle: 5,
}), TO_APP))]
// §11.5 X5: DISCONNECTED_REPLY {context 1, retval 0, handle 0x5}.
#[case::disconnected_reply("head/disconnected_reply.bin", Expected::Ctrl(CtrlMessage::DisconnectedReply(SessionHandleReply {
    context: 1,
    retval: 0,
    handle: 5,
}), TO_SERVER))]
// §11.5 X3, X4: CLEANUP {0x6, type 0}, {0x6, type 1}.
#[case::cleanup_transport("head/cleanup_transport.bin", Expected::Ctrl(CtrlMessage::Cleanup(Cleanup {
    handle: 6,
    cleanup_type: CleanupType::TRANSPORT,
}), TO_APP))]
#[case::cleanup_session("head/cleanup_session.bin", Expected::Ctrl(CtrlMessage::Cleanup(Cleanup {
    handle: 6,
    cleanup_type: CleanupType::SESSION,
}), TO_APP))]
// §11.5 X7: DEL_SEGMENT {0x0100000300000000}.
#[case::del_segment_c("head/app_del_segment_c.bin", Expected::Ctrl(CtrlMessage::AppDelSegment(AppDelSegment {
    client_index: 0,
    context: 0,
    segment_handle: 0x0100_0003_0000_0000,
}), TO_APP))]
// §11.6: APP_DETACH {client_index 2, context 0}.
#[case::app_detach("head/app_detach.bin", Expected::Ctrl(CtrlMessage::AppDetach(AppDetach {
    client_index: 2,
    context: 0,
}), TO_SERVER))]
// docs/shm.md §6.5: segment_size 64 MiB, name "vcl-echo-1", handle 0x0000000100000001.
#[case::vcl_echo("head/app_add_segment_vcl_echo.bin", Expected::Ctrl(
    add_segment(b"vcl-echo-1", 64 << 20, 0x0000_0001_0000_0001), TO_APP))]
#[case::seed_add("seed/app_add_segment.bin", Expected::Ctrl(
    add_segment(b"vcl-echo-1", 64 << 20, 0x0000_0001_0000_0001), TO_APP))]
#[case::seed_del("seed/app_del_segment.bin", Expected::Ctrl(CtrlMessage::AppDelSegment(AppDelSegment {
    client_index: 0,
    context: 0,
    segment_handle: 0x0100_0003_0000_0000,
}), TO_APP))]
fn vector_decodes_to_its_fields_and_reencodes_identically(
    #[case] path: &str,
    #[case] expected: Expected,
) {
    let profile = profile_of(path);
    let bytes = read_vector(path);
    match expected {
        Expected::Ctrl(message, dir) => {
            let decoded = CtrlMessage::decode(&bytes, profile, dir).expect("golden vector decodes");
            assert_eq!(decoded, message, "{path}");
            assert_eq!(decoded.element_len(), bytes.len(), "{path}: header + body");
            let encoded = decoded.encode(profile).expect("encodes in its own profile");
            assert_eq!(
                &encoded[..bytes.len()],
                bytes.as_slice(),
                "{path} re-encodes"
            );
            assert!(encoded[bytes.len()..].iter().all(|&b| b == 0), "{path}");
        }
        Expected::Io(event, dir) => {
            let decoded = IoEvent::decode(&bytes, profile, dir).expect("golden vector decodes");
            assert_eq!(decoded, event, "{path}");
            assert_eq!(
                decoded.encode().as_slice(),
                bytes.as_slice(),
                "{path} re-encodes"
            );
        }
    }
}

#[test]
fn the_two_add_segment_copies_differ_only_in_the_handle_top_byte() {
    let s = read_vector("head/app_add_segment_s.bin");
    let c = read_vector("head/app_add_segment_c.bin");
    let differing: Vec<usize> = (0..s.len()).filter(|&i| s[i] != c[i]).collect();
    assert_eq!(
        differing,
        vec![0x99],
        "element offset 146 + 7: bits 63..56 of the handle"
    );
}

#[test]
fn seed_and_head_segment_vectors_differ_only_in_the_type_number() {
    let head = read_vector("head/app_add_segment_vcl_echo.bin");
    let seed = read_vector("seed/app_add_segment.bin");
    assert_eq!((head[0], seed[0]), (28, 26));
    assert_eq!(head[1..], seed[1..]);
    let head = read_vector("head/app_del_segment_c.bin");
    let seed = read_vector("seed/app_del_segment.bin");
    assert_eq!((head[0], seed[0]), (29, 27));
    assert_eq!(head[1..], seed[1..]);
}
