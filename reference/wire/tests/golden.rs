//! Golden vectors `corpus/wire/{head,seed}/*.bin`: each decodes to exactly the field values listed
//! in `corpus/wire/README.md` and re-encodes byte-identical.
//!
//! The bytes below are literal hex transcribed from the protocol spec §11 and from
//! `docs/vpp-26.10.md` (or, for vectors the spec does not print, written field by field from the
//! spec's offset tables) — never produced by the encoder under test. `regenerate_golden` writes
//! them to the corpus; `committed_files_match_the_literals` keeps the two from drifting.

use std::path::PathBuf;

use rstest::rstest;
use sapi_wire::{
    AddDelCertKey, AddDelCertKeyReply, AddDelWorker, AddDelWorkerReply, AppName, Attach,
    AttachOptions, AttachReply, FdFlags, MSG_LEN, Message, Profile, nonzero_tail,
};

/// One golden datagram: 209 zero bytes with hex `chunks` laid over them at their offsets.
/// Hex may be split with spaces or `|` (field separators, as in docs/vpp-26.10.md).
struct Vector {
    path: &'static str,
    chunks: &'static [(usize, &'static str)],
}

const VECTORS: &[Vector] = &[
    // Spec §11.1, rows copied as printed.
    Vector {
        path: "head/attach.bin",
        chunks: &[
            (0x00, "01 76 63 6c 2d 65 63 68 6f 00 00 00 00 00 00 00"),
            (0x40, "00 e3 00 00 00 00 00 00 00 00 08 00 00 00 00 00"),
            (0x50, "00 00 00 00 10 00 00 00 00 00 00 00 10 00 00 00"),
            (0x60, "00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00"),
            (0x70, "00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00"),
            (0xa0, "00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00"),
        ],
    },
    // docs/vpp-26.10.md, ATTACH "probe-app-1".
    Vector {
        path: "head/attach_observed.bin",
        chunks: &[
            (0x00, "01 70 72 6f 62 65 2d 61 70 70 2d 31 00 00 00 00"),
            (0x40, "00 83 00 00 00 00 00 00 00 00 01 00 00 00 00 00"),
            (0x50, "00 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00"),
            (0x60, "00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00"),
            (0x70, "00 00 00 01 00 00"),
        ],
    },
    // Spec §11.2.
    Vector {
        path: "head/attach_reply.bin",
        chunks: &[
            (0x00, "02 00 00 00 00 00 00 00 00 00 02 00 00 00 00 00"),
            (0x10, "00 e0 d1 04 00 00 00 00 00 00 00 00 00 01 00 00"),
            (0x20, "00 01 00 00 00 01 03 07 00 00 00 00 00 00 00 00"),
        ],
    },
    // docs/vpp-26.10.md, reply to "probe-app-1".
    Vector {
        path: "head/attach_reply_observed.bin",
        chunks: &[(
            0,
            "02 | 00000000 | 01000000 | 4001000000000000 | 4001000000000000 | 0000000001000000 | 01000000 | 00 | 03 | 07",
        )],
    },
    // docs/vpp-26.10.md: second ATTACH on an attached socket, -14 APP_ATTACHED.
    Vector {
        path: "head/attach_reply_app_attached.bin",
        chunks: &[(0, "02 | f2ffffff")],
    },
    // Spec §11.3 request.
    Vector {
        path: "head/add_del_worker.bin",
        chunks: &[(0, "03 00 00 00 00 00 00 00 00 01")],
    },
    // Spec §3.3: delete worker 1 of app 1.
    Vector {
        path: "head/add_del_worker_del.bin",
        chunks: &[(0, "03 | 01000000 | 01000000 | 00")],
    },
    // Spec §11.3 reply.
    Vector {
        path: "head/add_del_worker_reply.bin",
        chunks: &[
            (0x00, "04 00 00 00 00 01 00 00 00 00 02 00 00 00 00 00"),
            (0x10, "00 00 00 00 00 02 00 00 00 02 00 00 00 02 06 01"),
        ],
    },
    // docs/vpp-26.10.md, worker add on a new socket for app 1.
    Vector {
        path: "head/add_del_worker_reply_observed.bin",
        chunks: &[(
            0,
            "04 | 00000000 | 01000000 | 4001000000000000 | 0000000005000000 | 08000000 | 02 | 06 | 01",
        )],
    },
    // docs/vpp-26.10.md, worker add for an unknown app index (wrk_index 0 echoed).
    Vector {
        path: "head/add_del_worker_reply_invalid.bin",
        chunks: &[(
            0,
            "04 | edffffff | 00000000 | 0000000000000000 | 0000000000000000 | ffffffff | 00 | 00 | 01",
        )],
    },
    // Spec §3.5.
    Vector {
        path: "head/send_fds.bin",
        chunks: &[(0, "05")],
    },
    // docs/vpp-26.10.md cert-key add: cert_len 100, certkey_len 200; context 1 (a VCL worker index).
    Vector {
        path: "head/add_del_cert_key.bin",
        chunks: &[(0, "06 | 01000000 | 00000000 | 6400 | c800 | 01")],
    },
    Vector {
        path: "head/add_del_cert_key_del.bin",
        chunks: &[(0, "06 | 01000000 | 01000000 | 0000 | 0000 | 00")],
    },
    Vector {
        path: "head/add_del_cert_key_reply.bin",
        chunks: &[(0, "07 | 01000000 | 00000000 | 01000000")],
    },
    Vector {
        path: "head/add_del_cert_key_reply_invalid.bin",
        chunks: &[(0, "07 | 01000000 | edffffff | 00000000")],
    },
    // Seed: the same ATTACH layout, a 2020-era app.
    Vector {
        path: "seed/attach.bin",
        chunks: &[
            (0x00, "01 73 65 65 64 2d 65 63 68 6f"),
            (0x40, "00 a3 00 00 00 00 00 00 00 80"),
            (0x50, "00 00 00 00 04"),
            (0x60, "00 00 00 00 00 00 00 00 00 00 40"),
            (0x70, "00 00 40"),
        ],
    },
    // Seed ATTACH_REPLY: app_mq / vpp_ctrl_mq are VPP virtual addresses (spec §3.2.1).
    Vector {
        path: "seed/attach_reply.bin",
        chunks: &[(
            0,
            "02 | 00000000 | 00000000 | 4002001c2a7f0000 | c002400d2a7f0000 | 0000000001000000 | 01000000 | 00 | 03 | 07",
        )],
    },
    // Seed: -131 VNET_API_ERROR_APP_ALREADY_ATTACHED.
    Vector {
        path: "seed/attach_reply_already_attached.bin",
        chunks: &[(0, "02 | 7dffffff")],
    },
    Vector {
        path: "seed/add_del_worker.bin",
        chunks: &[(0, "03 | 00000000 | 00000000 | 01")],
    },
    // Seed 27-byte worker reply body: no api_client_handle, n_fds at 25.
    Vector {
        path: "seed/add_del_worker_reply.bin",
        chunks: &[(
            0,
            "04 | 00000000 | 01000000 | 4002002c2a7f0000 | 0000000002000000 | 02 | 06 | 01",
        )],
    },
    // Seed: -7 VNET_API_ERROR_INVALID_VALUE.
    Vector {
        path: "seed/add_del_worker_reply_invalid.bin",
        chunks: &[(
            0,
            "04 | f9ffffff | 00000000 | 0000000000000000 | 0000000000000000 | 00 | 00 | 01",
        )],
    },
    Vector {
        path: "seed/send_fds.bin",
        chunks: &[(0, "05")],
    },
];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/wire")
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
    let mut out = vec![0u8; MSG_LEN];
    for &(at, text) in vector.chunks {
        let bytes = hex(text);
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

/// Writes every literal vector to `corpus/wire/`. Run after changing a literal:
/// `cargo test -p sapi-wire --test golden -- --ignored regenerate_golden`.
#[test]
#[ignore = "writes the corpus"]
fn regenerate_golden() {
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
    let readme = std::fs::read_to_string(corpus_dir().join("README.md")).expect("README");
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
                readme.contains(&format!("`{path}`")),
                "{path} is not in README.md"
            );
        }
    }
}

#[test]
fn every_type_of_each_profile_has_a_vector() {
    let wanted = [
        ("head", "attach"),
        ("head", "attach_reply"),
        ("head", "add_del_worker"),
        ("head", "add_del_worker_reply"),
        ("head", "send_fds"),
        ("head", "add_del_cert_key"),
        ("head", "add_del_cert_key_reply"),
        ("seed", "attach"),
        ("seed", "attach_reply"),
        ("seed", "add_del_worker"),
        ("seed", "add_del_worker_reply"),
        ("seed", "send_fds"),
    ];
    for (profile, name) in wanted {
        let path = format!("{profile}/{name}.bin");
        assert!(VECTORS.iter().any(|v| v.path == path), "missing {path}");
    }
}

fn name(bytes: &[u8]) -> AppName {
    AppName::new(bytes).expect("valid name")
}

fn options(slots: &[(usize, u64)]) -> AttachOptions {
    let mut raw = [0u64; 18];
    for &(i, v) in slots {
        raw[i] = v;
    }
    AttachOptions(raw)
}

#[rstest]
#[case::spec_11_1("head/attach.bin", Message::Attach(Attach {
    name: name(b"vcl-echo"),
    options: options(&[(0, 0xe3), (1, 2048), (2, 0x1000_0000), (3, 0x1000_0000), (5, 0x1_0000), (6, 0x1_0000), (13, 1)]),
}))]
#[case::observed("head/attach_observed.bin", Message::Attach(Attach {
    name: name(b"probe-app-1"),
    options: options(&[(0, 0x83), (1, 256), (2, 16 << 20), (3, 16 << 20), (5, 64 << 10), (6, 64 << 10)]),
}))]
#[case::spec_11_2("head/attach_reply.bin", Message::AttachReply(AttachReply {
    retval: 0,
    app_index: 0,
    app_mq: 0x200,
    vpp_ctrl_mq: 0x4_d1e0,
    segment_handle: 0x1_0000_0000,
    api_client_handle: 1,
    vpp_ctrl_mq_thread: 1,
    n_fds: 3,
    fd_flags: FdFlags::from_bits_retain(0x07),
}))]
#[case::observed("head/attach_reply_observed.bin", Message::AttachReply(AttachReply {
    retval: 0,
    app_index: 1,
    app_mq: 0x140,
    vpp_ctrl_mq: 0x140,
    segment_handle: 0x1_0000_0000,
    api_client_handle: 1,
    vpp_ctrl_mq_thread: 0,
    n_fds: 3,
    fd_flags: FdFlags::from_bits_retain(0x07),
}))]
#[case::app_attached("head/attach_reply_app_attached.bin", Message::AttachReply(AttachReply {
    retval: -14,
    app_index: 0,
    app_mq: 0,
    vpp_ctrl_mq: 0,
    segment_handle: 0,
    api_client_handle: 0,
    vpp_ctrl_mq_thread: 0,
    n_fds: 0,
    fd_flags: FdFlags::empty(),
}))]
#[case::spec_11_3("head/add_del_worker.bin", Message::AddDelWorker(AddDelWorker {
    app_index: 0,
    wrk_index: 0,
    is_add: true,
}))]
#[case::delete("head/add_del_worker_del.bin", Message::AddDelWorker(AddDelWorker {
    app_index: 1,
    wrk_index: 1,
    is_add: false,
}))]
#[case::spec_11_3("head/add_del_worker_reply.bin", Message::AddDelWorkerReply(AddDelWorkerReply {
    retval: 0,
    wrk_index: 1,
    app_event_queue_address: 0x200,
    segment_handle: 0x2_0000_0000,
    api_client_handle: 2,
    n_fds: 2,
    fd_flags: FdFlags::from_bits_retain(0x06),
    is_add: true,
}))]
#[case::observed("head/add_del_worker_reply_observed.bin", Message::AddDelWorkerReply(AddDelWorkerReply {
    retval: 0,
    wrk_index: 1,
    app_event_queue_address: 0x140,
    segment_handle: 0x5_0000_0000,
    api_client_handle: 8,
    n_fds: 2,
    fd_flags: FdFlags::from_bits_retain(0x06),
    is_add: true,
}))]
#[case::invalid_app("head/add_del_worker_reply_invalid.bin", Message::AddDelWorkerReply(AddDelWorkerReply {
    retval: -19,
    wrk_index: 0,
    app_event_queue_address: 0,
    segment_handle: 0,
    api_client_handle: 0xffff_ffff,
    n_fds: 0,
    fd_flags: FdFlags::empty(),
    is_add: true,
}))]
#[case("head/send_fds.bin", Message::SendFds)]
#[case::add("head/add_del_cert_key.bin", Message::AddDelCertKey(AddDelCertKey {
    context: 1,
    index: 0,
    cert_len: 100,
    certkey_len: 200,
    is_add: true,
}))]
#[case::delete("head/add_del_cert_key_del.bin", Message::AddDelCertKey(AddDelCertKey {
    context: 1,
    index: 1,
    cert_len: 0,
    certkey_len: 0,
    is_add: false,
}))]
#[case::added("head/add_del_cert_key_reply.bin", Message::AddDelCertKeyReply(AddDelCertKeyReply {
    context: 1,
    retval: 0,
    index: 1,
}))]
#[case::invalid("head/add_del_cert_key_reply_invalid.bin", Message::AddDelCertKeyReply(AddDelCertKeyReply {
    context: 1,
    retval: -19,
    index: 0,
}))]
#[case("seed/attach.bin", Message::Attach(Attach {
    name: name(b"seed-echo"),
    options: options(&[(0, 0xa3), (1, 128), (2, 64 << 20), (5, 0x4000), (6, 0x4000)]),
}))]
#[case("seed/attach_reply.bin", Message::AttachReply(AttachReply {
    retval: 0,
    app_index: 0,
    app_mq: 0x7f2a_1c00_0240,
    vpp_ctrl_mq: 0x7f2a_0d40_02c0,
    segment_handle: 0x1_0000_0000,
    api_client_handle: 1,
    vpp_ctrl_mq_thread: 0,
    n_fds: 3,
    fd_flags: FdFlags::from_bits_retain(0x07),
}))]
#[case::already_attached("seed/attach_reply_already_attached.bin", Message::AttachReply(AttachReply {
    retval: -131,
    app_index: 0,
    app_mq: 0,
    vpp_ctrl_mq: 0,
    segment_handle: 0,
    api_client_handle: 0,
    vpp_ctrl_mq_thread: 0,
    n_fds: 0,
    fd_flags: FdFlags::empty(),
}))]
#[case("seed/add_del_worker.bin", Message::AddDelWorker(AddDelWorker {
    app_index: 0,
    wrk_index: 0,
    is_add: true,
}))]
#[case("seed/add_del_worker_reply.bin", Message::AddDelWorkerReply(AddDelWorkerReply {
    retval: 0,
    wrk_index: 1,
    app_event_queue_address: 0x7f2a_2c00_0240,
    segment_handle: 0x2_0000_0000,
    api_client_handle: 0,
    n_fds: 2,
    fd_flags: FdFlags::from_bits_retain(0x06),
    is_add: true,
}))]
#[case::invalid_app("seed/add_del_worker_reply_invalid.bin", Message::AddDelWorkerReply(AddDelWorkerReply {
    retval: -7,
    wrk_index: 0,
    app_event_queue_address: 0,
    segment_handle: 0,
    api_client_handle: 0,
    n_fds: 0,
    fd_flags: FdFlags::empty(),
    is_add: true,
}))]
#[case("seed/send_fds.bin", Message::SendFds)]
fn vector_decodes_to_its_fields_and_reencodes_identically(
    #[case] path: &str,
    #[case] expected: Message,
) {
    let profile = profile_of(path);
    let bytes = read_vector(path);
    let dir = expected.msg_type().direction().expect("a real type");

    let decoded = Message::decode(&bytes, profile, dir).expect("golden vector decodes");
    assert_eq!(decoded, expected, "{path}");
    assert_eq!(
        nonzero_tail(&bytes, expected.msg_type(), profile),
        None,
        "{path}"
    );

    let encoded = decoded.encode(profile).expect("encodes in its own profile");
    assert_eq!(
        encoded.as_slice(),
        bytes.as_slice(),
        "{path} re-encodes byte-identical"
    );
}

#[test]
fn seed_and_head_worker_replies_differ_only_in_the_tail() {
    // The same values in both layouts: the Head body has 4 more bytes (api_client_handle at 25).
    let seed = read_vector("seed/add_del_worker_reply.bin");
    assert_eq!(&seed[25..28], &[0x02, 0x06, 0x01]);
    assert!(seed[28..].iter().all(|&b| b == 0));
    let head = read_vector("head/add_del_worker_reply.bin");
    assert_eq!(&head[25..32], &[0x02, 0x00, 0x00, 0x00, 0x02, 0x06, 0x01]);
    assert!(head[32..].iter().all(|&b| b == 0));
}
