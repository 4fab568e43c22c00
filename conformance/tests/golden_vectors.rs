//! The golden datagrams `corpus/wire/{head,seed}/*.bin`, read with the suite's own decoders.
//!
//! The reference's tests decode these files with the reference's codec; this file decodes them
//! with `sapi_conformance::wire` alone (the reply parsers, and `Dgram` at the documented field
//! offsets for requests), so the checker is pinned to the same bytes without sharing the code it
//! checks. The expected values are the table of `corpus/wire/README.md`, written out here with
//! the suite's flag constants where the README names flags. Request vectors must also come out
//! byte-identical from the suite's own encoders, which is what it sends to a target.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rstest::rstest;
use sapi_conformance::wire::{
    AttachReply, AttachRequest, CertKeyReply, Dgram, MSG_LEN, Profile, WireError, WorkerReply,
    app_flag, encode_cert_key, encode_worker, fd_flag, field, msg_type, opt,
};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/wire")
}

fn read(path: &str) -> Vec<u8> {
    let p = corpus().join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The profile whose layout and numbering a vector uses: its directory.
fn profile_of(path: &str) -> Profile {
    if path.starts_with("seed/") {
        Profile::Seed
    } else {
        Profile::Head
    }
}

/// A datagram as the suite reads it: every field of its type, at its documented offset.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Decoded {
    Attach {
        /// The name field up to its first NUL.
        name: Vec<u8>,
        options: [u64; opt::N_OPTIONS],
    },
    AttachReply(AttachReply),
    AddDelWorker {
        app_index: u32,
        wrk_index: u32,
        is_add: u8,
    },
    WorkerReply(WorkerReply),
    SendFds,
    AddDelCertKey {
        context: u32,
        index: u32,
        cert_len: u16,
        certkey_len: u16,
        is_add: u8,
    },
    CertKeyReply(CertKeyReply),
}

/// Dgram offset where each type's body ends; every byte from there on is zero (§2).
fn body_end(d: &Decoded, profile: Profile) -> usize {
    match d {
        Decoded::Attach { .. } => field::attach_option(opt::N_OPTIONS - 1).offset + 8,
        Decoded::AttachReply(_) => field::AR_BODY_END,
        Decoded::AddDelWorker { .. } => field::WK_IS_ADD.offset + 1,
        Decoded::WorkerReply(_) => WorkerReply::body_end(profile),
        Decoded::SendFds => 1,
        Decoded::AddDelCertKey { .. } => field::CK_IS_ADD.offset + 1,
        Decoded::CertKeyReply(_) => field::CKR_BODY_END,
    }
}

/// Reads a datagram of any type with `sapi_conformance::wire` only.
fn decode(bytes: &[u8], profile: Profile) -> Result<Decoded, WireError> {
    let d = Dgram(bytes);
    let ty = d.u8(field::TYPE)?;
    d.expect(ty)?;
    Ok(match ty {
        msg_type::ATTACH => {
            let raw = d.bytes(field::ATTACH_NAME)?;
            let len = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            let mut options = [0u64; opt::N_OPTIONS];
            for (i, o) in options.iter_mut().enumerate() {
                *o = d.u64(field::attach_option(i))?;
            }
            Decoded::Attach {
                name: raw[..len].to_vec(),
                options,
            }
        }
        msg_type::ATTACH_REPLY => Decoded::AttachReply(AttachReply::parse(bytes)?),
        msg_type::ADD_DEL_WORKER => Decoded::AddDelWorker {
            app_index: d.u32(field::WK_APP_INDEX)?,
            wrk_index: d.u32(field::WK_WRK_INDEX)?,
            is_add: d.u8(field::WK_IS_ADD)?,
        },
        msg_type::ADD_DEL_WORKER_REPLY => Decoded::WorkerReply(WorkerReply::parse(bytes, profile)?),
        msg_type::SEND_FDS => Decoded::SendFds,
        msg_type::ADD_DEL_CERT_KEY => Decoded::AddDelCertKey {
            context: d.u32(field::CK_CONTEXT)?,
            index: d.u32(field::CK_INDEX)?,
            cert_len: d.u16(field::CK_CERT_LEN)?,
            certkey_len: d.u16(field::CK_CERTKEY_LEN)?,
            is_add: d.u8(field::CK_IS_ADD)?,
        },
        msg_type::ADD_DEL_CERT_KEY_REPLY => Decoded::CertKeyReply(CertKeyReply::parse(bytes)?),
        found => {
            return Err(WireError::Type {
                found,
                expected: msg_type::NONE,
            });
        }
    })
}

/// An ATTACH with `name` and the listed options set (all others 0).
fn attach(name: &str, set: &[(usize, u64)]) -> Decoded {
    let mut options = [0u64; opt::N_OPTIONS];
    for &(i, v) in set {
        options[i] = v;
    }
    Decoded::Attach {
        name: name.as_bytes().to_vec(),
        options,
    }
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// fd_flags of an ATTACH_REPLY carrying both segments and the mq eventfd (h 07).
const THREE_FDS: u8 = fd_flag::VPP_MQ_SEGMENT | fd_flag::MEMFD_SEGMENT | fd_flag::MQ_EVENTFD;
/// fd_flags of a worker reply carrying the app segment and the mq eventfd (h 06).
const TWO_FDS: u8 = fd_flag::MEMFD_SEGMENT | fd_flag::MQ_EVENTFD;

/// Every vector of `corpus/wire/README.md` and the values its table lists.
fn expected() -> Vec<(&'static str, Decoded)> {
    vec![
        (
            "head/attach.bin",
            attach(
                "vcl-echo",
                &[
                    (
                        opt::FLAGS,
                        app_flag::ACCEPT_REDIRECT
                            | app_flag::ADD_SEGMENT
                            | app_flag::USE_GLOBAL_SCOPE
                            | app_flag::USE_LOCAL_SCOPE
                            | app_flag::EVT_MQ_USE_EVENTFD,
                    ),
                    (opt::EVT_QUEUE_SIZE, 2048),
                    (opt::SEGMENT_SIZE, 0x1000_0000),
                    (opt::ADD_SEGMENT_SIZE, 0x1000_0000),
                    (opt::RX_FIFO_SIZE, 0x10000),
                    (opt::TX_FIFO_SIZE, 0x10000),
                    (opt::TLS_ENGINE, 1),
                ],
            ),
        ),
        (
            "head/attach_observed.bin",
            attach(
                "probe-app-1",
                &[
                    (
                        opt::FLAGS,
                        app_flag::ACCEPT_REDIRECT
                            | app_flag::ADD_SEGMENT
                            | app_flag::EVT_MQ_USE_EVENTFD,
                    ),
                    (opt::EVT_QUEUE_SIZE, 256),
                    (opt::SEGMENT_SIZE, 16 * MIB),
                    (opt::ADD_SEGMENT_SIZE, 16 * MIB),
                    (opt::RX_FIFO_SIZE, 64 * KIB),
                    (opt::TX_FIFO_SIZE, 64 * KIB),
                ],
            ),
        ),
        (
            "head/attach_reply.bin",
            Decoded::AttachReply(AttachReply {
                retval: 0,
                app_index: 0,
                app_mq: 0x200,
                vpp_ctrl_mq: 0x4d1e0,
                segment_handle: 0x1_0000_0000,
                api_client_handle: 1,
                vpp_ctrl_mq_thread: 1,
                n_fds: 3,
                fd_flags: THREE_FDS,
            }),
        ),
        (
            "head/attach_reply_observed.bin",
            Decoded::AttachReply(AttachReply {
                retval: 0,
                app_index: 1,
                app_mq: 0x140,
                vpp_ctrl_mq: 0x140,
                segment_handle: 0x1_0000_0000,
                api_client_handle: 1,
                vpp_ctrl_mq_thread: 0,
                n_fds: 3,
                fd_flags: THREE_FDS,
            }),
        ),
        (
            "head/attach_reply_app_attached.bin",
            Decoded::AttachReply(refused_attach(Profile::Head.err_app_attached())),
        ),
        (
            "head/add_del_worker.bin",
            Decoded::AddDelWorker {
                app_index: 0,
                wrk_index: 0,
                is_add: 1,
            },
        ),
        (
            "head/add_del_worker_del.bin",
            Decoded::AddDelWorker {
                app_index: 1,
                wrk_index: 1,
                is_add: 0,
            },
        ),
        (
            "head/add_del_worker_reply.bin",
            Decoded::WorkerReply(WorkerReply {
                retval: 0,
                wrk_index: 1,
                app_event_queue_address: 0x200,
                segment_handle: 0x2_0000_0000,
                api_client_handle: Some(2),
                n_fds: 2,
                fd_flags: TWO_FDS,
                is_add: 1,
            }),
        ),
        (
            "head/add_del_worker_reply_observed.bin",
            Decoded::WorkerReply(WorkerReply {
                retval: 0,
                wrk_index: 1,
                app_event_queue_address: 0x140,
                segment_handle: 0x5_0000_0000,
                api_client_handle: Some(8),
                n_fds: 2,
                fd_flags: TWO_FDS,
                is_add: 1,
            }),
        ),
        (
            "head/add_del_worker_reply_invalid.bin",
            Decoded::WorkerReply(WorkerReply {
                retval: Profile::Head.err_invalid(),
                wrk_index: 0,
                app_event_queue_address: 0,
                segment_handle: 0,
                api_client_handle: Some(0xffff_ffff),
                n_fds: 0,
                fd_flags: 0,
                is_add: 1,
            }),
        ),
        ("head/send_fds.bin", Decoded::SendFds),
        (
            "head/add_del_cert_key.bin",
            Decoded::AddDelCertKey {
                context: 1,
                index: 0,
                cert_len: 100,
                certkey_len: 200,
                is_add: 1,
            },
        ),
        (
            "head/add_del_cert_key_del.bin",
            Decoded::AddDelCertKey {
                context: 1,
                index: 1,
                cert_len: 0,
                certkey_len: 0,
                is_add: 0,
            },
        ),
        (
            "head/add_del_cert_key_reply.bin",
            Decoded::CertKeyReply(CertKeyReply {
                context: 1,
                retval: 0,
                index: 1,
            }),
        ),
        (
            "head/add_del_cert_key_reply_invalid.bin",
            Decoded::CertKeyReply(CertKeyReply {
                context: 1,
                retval: Profile::Head.err_invalid(),
                index: 0,
            }),
        ),
        (
            "seed/attach.bin",
            attach(
                "seed-echo",
                &[
                    (
                        opt::FLAGS,
                        app_flag::ACCEPT_REDIRECT
                            | app_flag::ADD_SEGMENT
                            | app_flag::USE_GLOBAL_SCOPE
                            | app_flag::EVT_MQ_USE_EVENTFD,
                    ),
                    (opt::EVT_QUEUE_SIZE, 128),
                    (opt::SEGMENT_SIZE, 64 * MIB),
                    (opt::RX_FIFO_SIZE, 0x4000),
                    (opt::TX_FIFO_SIZE, 0x4000),
                ],
            ),
        ),
        (
            "seed/attach_reply.bin",
            Decoded::AttachReply(AttachReply {
                retval: 0,
                app_index: 0,
                app_mq: 0x7f2a_1c00_0240,
                vpp_ctrl_mq: 0x7f2a_0d40_02c0,
                segment_handle: 0x1_0000_0000,
                api_client_handle: 1,
                vpp_ctrl_mq_thread: 0,
                n_fds: 3,
                fd_flags: THREE_FDS,
            }),
        ),
        (
            "seed/attach_reply_already_attached.bin",
            Decoded::AttachReply(refused_attach(Profile::Seed.err_app_attached())),
        ),
        (
            "seed/add_del_worker.bin",
            Decoded::AddDelWorker {
                app_index: 0,
                wrk_index: 0,
                is_add: 1,
            },
        ),
        (
            "seed/add_del_worker_reply.bin",
            Decoded::WorkerReply(WorkerReply {
                retval: 0,
                wrk_index: 1,
                app_event_queue_address: 0x7f2a_2c00_0240,
                segment_handle: 0x2_0000_0000,
                api_client_handle: None,
                n_fds: 2,
                fd_flags: TWO_FDS,
                is_add: 1,
            }),
        ),
        (
            "seed/add_del_worker_reply_invalid.bin",
            Decoded::WorkerReply(WorkerReply {
                retval: Profile::Seed.err_invalid(),
                wrk_index: 0,
                app_event_queue_address: 0,
                segment_handle: 0,
                api_client_handle: None,
                n_fds: 0,
                fd_flags: 0,
                is_add: 1,
            }),
        ),
        ("seed/send_fds.bin", Decoded::SendFds),
    ]
}

/// An ATTACH_REPLY refusing the request: `retval`, every other field 0.
fn refused_attach(retval: i32) -> AttachReply {
    AttachReply {
        retval,
        app_index: 0,
        app_mq: 0,
        vpp_ctrl_mq: 0,
        segment_handle: 0,
        api_client_handle: 0,
        vpp_ctrl_mq_thread: 0,
        n_fds: 0,
        fd_flags: 0,
    }
}

#[test]
fn every_vector_decodes_to_the_readme_values_with_zero_padding() {
    let mut wrong = Vec::new();
    for (path, want) in expected() {
        let bytes = read(path);
        let profile = profile_of(path);
        match decode(&bytes, profile) {
            Ok(got) if got == want => {
                let end = body_end(&got, profile);
                if let Some((at, b)) = Dgram(&bytes).first_nonzero_from(end) {
                    wrong.push(format!(
                        "{path}: byte {at} after the body (ends at {end}) is {b:#04x}"
                    ));
                }
            }
            Ok(got) => wrong.push(format!("{path}:\n  expected {want:?}\n  decoded  {got:?}")),
            Err(e) => wrong.push(format!("{path}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What the suite sends is what the vectors hold: its encoders rebuild every request vector.
#[test]
fn the_suites_encoders_rebuild_every_request_vector() {
    let mut checked = 0;
    for (path, want) in expected() {
        let encoded: Option<[u8; MSG_LEN]> = match &want {
            Decoded::Attach { name, options } => Some(
                AttachRequest {
                    name: name.clone(),
                    options: *options,
                }
                .encode(),
            ),
            Decoded::AddDelWorker {
                app_index,
                wrk_index,
                is_add,
            } => Some(encode_worker(*app_index, *wrk_index, *is_add != 0)),
            Decoded::AddDelCertKey {
                context,
                index,
                cert_len,
                certkey_len,
                is_add,
            } => Some(encode_cert_key(
                *context,
                *index,
                *cert_len,
                *certkey_len,
                *is_add != 0,
            )),
            _ => None,
        };
        if let Some(encoded) = encoded {
            assert_eq!(
                sapi_conformance::wire::hex(&encoded),
                sapi_conformance::wire::hex(&read(path)),
                "{path}"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 8,
        "the 3 ATTACH, 3 ADD_DEL_WORKER and 2 ADD_DEL_CERT_KEY vectors"
    );
}

/// The error vectors carry the numbers the suite names per profile (§7).
#[rstest]
#[case("head/attach_reply_app_attached.bin", "-14 SESSION_E_APP_ATTACHED")]
#[case("head/add_del_worker_reply_invalid.bin", "-19 SESSION_E_INVALID")]
#[case("head/add_del_cert_key_reply_invalid.bin", "-19 SESSION_E_INVALID")]
#[case(
    "seed/attach_reply_already_attached.bin",
    "-131 VNET_API_ERROR_APP_ALREADY_ATTACHED"
)]
#[case(
    "seed/add_del_worker_reply_invalid.bin",
    "-7 VNET_API_ERROR_INVALID_VALUE"
)]
fn error_vectors_carry_the_named_retval(#[case] path: &str, #[case] name: &str) {
    let profile = profile_of(path);
    let retval = match decode(&read(path), profile).expect("decodes") {
        Decoded::AttachReply(r) => r.retval,
        Decoded::WorkerReply(r) => r.retval,
        Decoded::CertKeyReply(r) => r.retval,
        other => panic!("{path} is not a reply: {other:?}"),
    };
    assert_eq!(profile.retval_name(retval), name);
}

/// The seed worker reply only reads right with the seed layout (27-byte body, no
/// api_client_handle): with HEAD's, n_fds, fd_flags and is_add become the client handle.
#[test]
fn the_seed_worker_reply_needs_the_seed_layout() {
    let bytes = read("seed/add_del_worker_reply.bin");
    let head = WorkerReply::parse(&bytes, Profile::Head).expect("same type and length");
    assert_eq!(head.api_client_handle, Some(0x0001_0602));
    assert_eq!((head.n_fds, head.fd_flags, head.is_add), (0, 0, 0));
}

/// Every file in the corpus has expectations here (a new vector cannot slip past the suite's
/// decoders), and the README lists each one.
#[test]
fn every_corpus_file_is_checked_and_in_the_readme() {
    let mut on_disk = BTreeSet::new();
    for dir in ["head", "seed"] {
        for entry in std::fs::read_dir(corpus().join(dir)).expect("corpus dir") {
            let name = entry.expect("entry").file_name();
            on_disk.insert(format!("{dir}/{}", name.to_string_lossy()));
        }
    }
    let checked: BTreeSet<String> = expected().iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(on_disk, checked);
    let readme = std::fs::read_to_string(corpus().join("README.md")).expect("README");
    for path in &checked {
        assert!(
            readme.contains(&format!("`{path}`")),
            "{path} not in the README"
        );
        assert_eq!(read(path).len(), MSG_LEN, "{path}");
    }
}
