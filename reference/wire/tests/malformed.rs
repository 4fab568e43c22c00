//! Malformed inputs for the conformance suite, `corpus/malformed/*.bin`, one per row of spec §9
//! and of the malformed-input observations in `docs/vpp-26.10.md`.
//!
//! The bytes are literal (hex chunks and byte fills over a zeroed buffer of the given length),
//! never produced by the encoder. `regenerate_malformed` writes them; the other tests keep the
//! files, the literals and `corpus/malformed/README.md` in agreement: each file must decode (as a
//! request arriving at the server) exactly as the README's "decode" columns say.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sapi_wire::{
    AppOptionFlags, DecodeError, Direction, MSG_LEN, Message, MsgType, OptionIndex, Profile,
    nonzero_tail,
};

/// One malformed datagram: `len` zero bytes, then `fills` (`start..end` set to a byte), then hex
/// `chunks` laid over at their offsets.
struct Input {
    file: &'static str,
    len: usize,
    fills: &'static [(usize, usize, u8)],
    chunks: &'static [(usize, &'static str)],
}

/// Spec §11.1 ATTACH, as printed.
const ATTACH_11_1: &[(usize, &str)] = &[
    (0x00, "01 76 63 6c 2d 65 63 68 6f 00 00 00 00 00 00 00"),
    (0x40, "00 e3 00 00 00 00 00 00 00 00 08 00 00 00 00 00"),
    (0x50, "00 00 00 00 10 00 00 00 00 00 00 00 10 00 00 00"),
    (0x60, "00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00"),
    (0x70, "00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00"),
    (0xa0, "00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00"),
];

/// Options of the observed "probe-app-1" ATTACH (FLAGS 0x83, 256-deep queue, 16 MiB segments,
/// 64 KiB fifos) with the type byte; the name is added per file.
const PROBE_OPTIONS: &[(usize, &str)] = &[
    (0x00, "01"),
    (0x40, "00 83 00 00 00 00 00 00 00 00 01 00 00 00 00 00"),
    (0x50, "00 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00"),
    (0x60, "00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00"),
    (0x70, "00 00 00 01"),
];

const fn dgram(file: &'static str, chunks: &'static [(usize, &'static str)]) -> Input {
    Input {
        file,
        len: MSG_LEN,
        fills: &[],
        chunks,
    }
}

const INPUTS: &[Input] = &[
    Input {
        file: "short_0.bin",
        len: 0,
        fills: &[],
        chunks: &[],
    },
    Input {
        file: "short_1.bin",
        len: 1,
        fills: &[],
        chunks: &[(0, "01")],
    },
    Input {
        file: "short_208.bin",
        len: 208,
        fills: &[],
        chunks: ATTACH_11_1,
    },
    Input {
        file: "long_210.bin",
        len: 210,
        fills: &[(209, 210, 0xff)],
        chunks: ATTACH_11_1,
    },
    Input {
        file: "long_500_attach.bin",
        len: 500,
        fills: &[(209, 500, 0xa5)],
        chunks: ATTACH_11_1,
    },
    dgram("type_0.bin", &[]),
    // Spec §11.2 ATTACH_REPLY, sent to the server.
    dgram(
        "type_2_reply.bin",
        &[
            (0x00, "02 00 00 00 00 00 00 00 00 00 02 00 00 00 00 00"),
            (0x10, "00 e0 d1 04 00 00 00 00 00 00 00 00 00 01 00 00"),
            (0x20, "00 01 00 00 00 01 03 07"),
        ],
    ),
    // Spec §11.3 ADD_DEL_WORKER_REPLY, sent to the server.
    dgram(
        "type_4_reply.bin",
        &[
            (0x00, "04 00 00 00 00 01 00 00 00 00 02 00 00 00 00 00"),
            (0x10, "00 00 00 00 00 02 00 00 00 02 00 00 00 02 06 01"),
        ],
    ),
    dgram("type_5_send_fds.bin", &[(0, "05")]),
    dgram("type_7.bin", &[(0, "07 | 01000000 | 00000000 | 01000000")]),
    dgram("type_8.bin", &[(0, "08")]),
    dgram("type_99.bin", &[(0, "63")]),
    dgram("type_255.bin", &[(0, "ff")]),
    Input {
        file: "attach_name_unterminated_64.bin",
        len: MSG_LEN,
        fills: &[(1, 65, b'n')],
        chunks: PROBE_OPTIONS,
    },
    dgram("attach_name_empty.bin", PROBE_OPTIONS),
    // name "builtin", FLAGS = IS_BUILTIN only.
    dgram(
        "attach_is_builtin_alone.bin",
        &[(0, "01 62 75 69 6c 74 69 6e"), (0x41, "04")],
    ),
    // name "builtin-evt", FLAGS = IS_BUILTIN | EVT_MQ_USE_EVENTFD.
    dgram(
        "attach_builtin_with_eventfd.bin",
        &[(0, "01 62 75 69 6c 74 69 6e 2d 65 76 74"), (0x41, "84")],
    ),
    // name "prealloc", FLAGS 0x03, PREALLOC_FIFO_PAIRS (@0x79) = PREALLOC_FIFO_HDRS (@0x81) = 8.
    dgram(
        "attach_prealloc_pairs_and_hdrs.bin",
        &[
            (0, "01 70 72 65 61 6c 6c 6f 63"),
            (0x41, "03"),
            (0x79, "08"),
            (0x81, "08"),
        ],
    ),
    // name "max-fifo-mem", FLAGS 0x03, MAX_FIFO_MEMORY (@0x61) = 64 MiB, SEGMENT_SIZE = 0.
    dgram(
        "attach_max_fifo_memory_no_segment_size.bin",
        &[
            (0, "01 6d 61 78 2d 66 69 66 6f 2d 6d 65 6d"),
            (0x41, "03"),
            (0x61, "00 00 00 04"),
        ],
    ),
    // name "proxy-tcp", FLAGS = ACCEPT_REDIRECT | ADD_SEGMENT | IS_PROXY, PROXY_TRANSPORT (@0x99) = 1.
    dgram(
        "attach_proxy_tcp.bin",
        &[
            (0, "01 70 72 6f 78 79 2d 74 63 70"),
            (0x41, "13"),
            (0x99, "01"),
        ],
    ),
    // name "all-ff", every option byte 0xff.
    Input {
        file: "attach_all_ff.bin",
        len: MSG_LEN,
        fills: &[(65, 209, 0xff)],
        chunks: &[(0, "01 61 6c 6c 2d 66 66")],
    },
    dgram(
        "worker_add_bad_app.bin",
        &[(0, "03 | efbeadde | 00000000 | 01")],
    ),
    dgram(
        "worker_add_is_add_2.bin",
        &[(0, "03 | efbeadde | 00000000 | 02")],
    ),
    Input {
        file: "worker_add_junk_tail.bin",
        len: MSG_LEN,
        fills: &[(10, 209, 0x5a)],
        chunks: &[(0, "03 | efbeadde | 00000000 | 01")],
    },
    dgram(
        "worker_del_bad_app.bin",
        &[(0, "03 | efbeadde | 00000000 | 00")],
    ),
    dgram(
        "worker_del_unknown.bin",
        &[(0, "03 | 01000000 | e8030000 | 00")],
    ),
    dgram(
        "certkey_add_oversize.bin",
        &[(0, "06 | 01000000 | 00000000 | 6400 | 214e | 01")],
    ),
    dgram(
        "certkey_add_zero_len.bin",
        &[(0, "06 | 01000000 | 00000000 | 0000 | 0000 | 01")],
    ),
    dgram(
        "certkey_add_no_data.bin",
        &[(0, "06 | 01000000 | 00000000 | 6400 | c800 | 01")],
    ),
    dgram(
        "certkey_add_cert_longer_than_total.bin",
        &[(0, "06 | 01000000 | 00000000 | 2c01 | c800 | 01")],
    ),
    dgram(
        "certkey_add_cert_over_10000.bin",
        &[(0, "06 | 01000000 | 00000000 | 1127 | 1227 | 01")],
    ),
    dgram(
        "certkey_add_key_over_10000.bin",
        &[(0, "06 | 01000000 | 00000000 | 6400 | 7527 | 01")],
    ),
    dgram(
        "certkey_del_unknown.bin",
        &[(0, "06 | 01000000 | efbeadde | 0000 | 0000 | 00")],
    ),
    dgram(
        "certkey_del_zero.bin",
        &[(0, "06 | 01000000 | 00000000 | 0000 | 0000 | 00")],
    ),
];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/malformed")
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

fn assemble(input: &Input) -> Vec<u8> {
    let mut out = vec![0u8; input.len];
    for &(start, end, byte) in input.fills {
        out[start..end].fill(byte);
    }
    for &(at, text) in input.chunks {
        let bytes = hex(text);
        let end = (at + bytes.len()).min(input.len);
        if at < end {
            out[at..end].copy_from_slice(&bytes[..end - at]);
        }
    }
    out
}

fn read(file: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Writes every literal input to `corpus/malformed/`:
/// `cargo test -p sapi-wire --test malformed -- --ignored regenerate_malformed`.
#[test]
#[ignore = "writes the corpus"]
fn regenerate_malformed() {
    std::fs::create_dir_all(corpus_dir()).expect("mkdir");
    for input in INPUTS {
        std::fs::write(corpus_dir().join(input.file), assemble(input)).expect("write");
    }
}

#[test]
fn committed_files_match_the_literals() {
    for input in INPUTS {
        assert_eq!(read(input.file), assemble(input), "{}", input.file);
    }
}

/// How a file decodes as a request reaching the server, in the README's notation.
fn outcome(bytes: &[u8], profile: Profile) -> String {
    match Message::decode(bytes, profile, Direction::AppToServer) {
        Ok(message) => format!("Ok({})", message.msg_type()),
        Err(err) => format!("{err:?}"),
    }
}

/// README rows: file -> cells, from the table lines that start with a file name.
fn readme_rows() -> BTreeMap<String, Vec<String>> {
    let readme = std::fs::read_to_string(corpus_dir().join("README.md")).expect("README");
    readme
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains(".bin`"))
        .map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect();
            (cells[0].clone(), cells)
        })
        .collect()
}

#[test]
fn every_file_decodes_as_the_readme_says() {
    let rows = readme_rows();
    for input in INPUTS {
        let row = rows
            .get(input.file)
            .unwrap_or_else(|| panic!("{} missing from README.md", input.file));
        assert_eq!(
            row.len(),
            6,
            "{}: expected 6 cells, got {row:?}",
            input.file
        );
        let bytes = read(input.file);
        assert_eq!(row[1], bytes.len().to_string(), "{}: length", input.file);
        assert_eq!(
            row[3],
            outcome(&bytes, Profile::Head),
            "{}: head",
            input.file
        );
        assert_eq!(
            row[4],
            outcome(&bytes, Profile::Seed),
            "{}: seed",
            input.file
        );
    }
}

#[test]
fn readme_and_directory_list_only_literal_files() {
    let known = |f: &str| INPUTS.iter().any(|i| i.file == f);
    for file in readme_rows().keys() {
        assert!(known(file), "README lists {file}, which has no literal");
    }
    for entry in std::fs::read_dir(corpus_dir()).expect("dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf8");
        if name.ends_with(".bin") {
            assert!(known(&name), "{name} has no literal");
        }
    }
}

fn decode_head(file: &str) -> Message {
    Message::decode(&read(file), Profile::Head, Direction::AppToServer)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_interesting_fields_are_what_the_file_name_says() {
    // Kernel truncation: the first 209 bytes of the long datagrams are the §11.1 ATTACH.
    for file in ["long_210.bin", "long_500_attach.bin"] {
        let bytes = read(file);
        let first = Message::decode(&bytes[..MSG_LEN], Profile::Head, Direction::AppToServer);
        let Ok(Message::Attach(a)) = first else {
            panic!("{file}: first 209 bytes are not an ATTACH: {first:?}")
        };
        assert_eq!(a.name.as_bytes(), b"vcl-echo", "{file}");
        assert_eq!(a.options.evt_queue_size(), 2048, "{file}");
    }
    assert_eq!(
        Message::decode(
            &read("short_208.bin"),
            Profile::Head,
            Direction::AppToServer
        ),
        Err(DecodeError::Truncated { len: 208 })
    );

    let Message::Attach(a) = decode_head("attach_name_unterminated_64.bin") else {
        panic!("not an attach")
    };
    assert_eq!(a.name.as_bytes(), &[b'n'; 63][..], "byte 63 forced to NUL");
    let Message::Attach(a) = decode_head("attach_name_empty.bin") else {
        panic!("not an attach")
    };
    assert!(a.name.is_empty());

    let Message::Attach(a) = decode_head("attach_is_builtin_alone.bin") else {
        panic!("not an attach")
    };
    assert_eq!(a.options.flags(), AppOptionFlags::IS_BUILTIN);
    let Message::Attach(a) = decode_head("attach_builtin_with_eventfd.bin") else {
        panic!("not an attach")
    };
    assert_eq!(
        a.options.flags(),
        AppOptionFlags::IS_BUILTIN | AppOptionFlags::EVT_MQ_USE_EVENTFD
    );
    let Message::Attach(a) = decode_head("attach_prealloc_pairs_and_hdrs.bin") else {
        panic!("not an attach")
    };
    assert_eq!(
        (
            a.options.prealloc_fifo_pairs(),
            a.options.prealloc_fifo_hdrs()
        ),
        (8, 8)
    );
    let Message::Attach(a) = decode_head("attach_max_fifo_memory_no_segment_size.bin") else {
        panic!("not an attach")
    };
    assert_eq!(
        (a.options.max_fifo_memory(), a.options.segment_size()),
        (64 << 20, 0)
    );
    let Message::Attach(a) = decode_head("attach_proxy_tcp.bin") else {
        panic!("not an attach")
    };
    assert!(a.options.flags().contains(AppOptionFlags::IS_PROXY));
    assert_eq!(a.options.proxy_transport(), 1);
    let Message::Attach(a) = decode_head("attach_all_ff.bin") else {
        panic!("not an attach")
    };
    assert_eq!(a.name.as_bytes(), b"all-ff");
    for index in OptionIndex::ALL {
        assert_eq!(a.options.get(index), u64::MAX, "{index:?}");
    }
    assert_eq!(a.options.flags().bits(), u64::MAX, "unknown flag bits kept");

    for (file, app, wrk, is_add) in [
        ("worker_add_bad_app.bin", 0xdead_beef, 0, true),
        ("worker_add_is_add_2.bin", 0xdead_beef, 0, true),
        ("worker_add_junk_tail.bin", 0xdead_beef, 0, true),
        ("worker_del_bad_app.bin", 0xdead_beef, 0, false),
        ("worker_del_unknown.bin", 1, 1000, false),
    ] {
        let Message::AddDelWorker(w) = decode_head(file) else {
            panic!("{file}: not a worker request")
        };
        assert_eq!(
            (w.app_index, w.wrk_index, w.is_add),
            (app, wrk, is_add),
            "{file}"
        );
    }
    assert_eq!(
        nonzero_tail(
            &read("worker_add_junk_tail.bin"),
            MsgType::AddDelWorker,
            Profile::Head
        ),
        Some(10)
    );

    for (file, index, cert_len, certkey_len, is_add) in [
        ("certkey_add_oversize.bin", 0, 100, 20001, true),
        ("certkey_add_zero_len.bin", 0, 0, 0, true),
        ("certkey_add_no_data.bin", 0, 100, 200, true),
        ("certkey_add_cert_longer_than_total.bin", 0, 300, 200, true),
        ("certkey_add_cert_over_10000.bin", 0, 10001, 10002, true),
        ("certkey_add_key_over_10000.bin", 0, 100, 10101, true),
        ("certkey_del_unknown.bin", 0xdead_beef, 0, 0, false),
        ("certkey_del_zero.bin", 0, 0, 0, false),
    ] {
        let Message::AddDelCertKey(c) = decode_head(file) else {
            panic!("{file}: not a cert-key request")
        };
        assert_eq!(c.context, 1, "{file}");
        assert_eq!(
            (c.index, c.cert_len, c.certkey_len, c.is_add),
            (index, cert_len, certkey_len, is_add),
            "{file}"
        );
    }
}
