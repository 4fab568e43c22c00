//! Bad input never panics and always gets the specific typed error: every truncation of every
//! golden vector, every type byte in both directions and both profiles, oversized buffers, and a
//! deterministic stream of random datagrams.

use std::path::PathBuf;

use rstest::rstest;
use sapi_wire::packet::{
    AddDelCertKeyPacket, AddDelCertKeyReplyPacket, AddDelWorkerPacket, AddDelWorkerReplyPacket,
    AttachPacket, AttachReplyPacket, Datagram,
};
use sapi_wire::{
    AddDelWorker, DecodeError, Direction, EncodeError, MSG_LEN, Message, MsgType, Profile,
    nonzero_tail,
};

const DIRS: [Direction; 2] = [Direction::AppToServer, Direction::ServerToApp];

fn golden_vectors() -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/wire");
    let mut out = Vec::new();
    for profile in ["head", "seed"] {
        for entry in std::fs::read_dir(root.join(profile)).expect("corpus dir") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("vector");
            out.push((path.display().to_string(), bytes));
        }
    }
    assert!(out.len() >= 12, "golden corpus missing");
    out
}

#[test]
fn every_truncation_of_every_vector_is_truncated_with_its_length() {
    for (path, bytes) in golden_vectors() {
        for len in 0..MSG_LEN {
            for profile in Profile::ALL {
                for dir in DIRS {
                    assert_eq!(
                        Message::decode(&bytes[..len], profile, dir),
                        Err(DecodeError::Truncated { len }),
                        "{path} cut to {len}"
                    );
                }
            }
        }
    }
}

#[rstest]
#[case(210)]
#[case(500)]
#[case(4096)]
fn longer_than_209_is_oversized(#[case] len: usize) {
    let mut bytes = vec![0xa5u8; len];
    bytes[0] = 1;
    for profile in Profile::ALL {
        assert_eq!(
            Message::decode(&bytes, profile, Direction::AppToServer),
            Err(DecodeError::Oversized { len })
        );
    }
}

/// What a type byte is, written out per profile independently of the crate's own tables.
fn expected_for(type_byte: u8, profile: Profile, dir: Direction) -> Result<MsgType, DecodeError> {
    let (requests, replies): (&[u8], &[u8]) = match profile {
        Profile::Head => (&[1, 3, 6], &[2, 4, 5, 7]),
        Profile::Seed => (&[1, 3], &[2, 4, 5]),
    };
    let travels = if requests.contains(&type_byte) {
        Direction::AppToServer
    } else if replies.contains(&type_byte) {
        Direction::ServerToApp
    } else if type_byte == 0 {
        return Err(DecodeError::NoneType);
    } else {
        return Err(DecodeError::UnknownType { type_byte });
    };
    let msg_type = MsgType::from_u8(type_byte).expect("0..=7");
    if travels == dir {
        Ok(msg_type)
    } else {
        Err(DecodeError::WrongDirection { msg_type, dir })
    }
}

#[test]
fn every_type_byte_in_both_directions_and_profiles() {
    // Body patterns: all zero, all 0xff, and every golden vector's body.
    let mut bodies = vec![[0u8; MSG_LEN], [0xffu8; MSG_LEN]];
    for (_, bytes) in golden_vectors() {
        bodies.push(bytes.try_into().expect("209 bytes"));
    }
    for body in bodies {
        for type_byte in 0..=u8::MAX {
            let mut dgram = body;
            dgram[0] = type_byte;
            for profile in Profile::ALL {
                for dir in DIRS {
                    let got = Message::decode(&dgram, profile, dir).map(|m| m.msg_type());
                    assert_eq!(
                        got,
                        expected_for(type_byte, profile, dir),
                        "type {type_byte} {profile} {dir}"
                    );
                }
            }
        }
    }
}

#[rstest]
#[case::none(0, DecodeError::NoneType)]
#[case::attach_reply_to_server(2, DecodeError::WrongDirection { msg_type: MsgType::AttachReply, dir: Direction::AppToServer })]
#[case::worker_reply_to_server(4, DecodeError::WrongDirection { msg_type: MsgType::AddDelWorkerReply, dir: Direction::AppToServer })]
#[case::send_fds_to_server(5, DecodeError::WrongDirection { msg_type: MsgType::SendFds, dir: Direction::AppToServer })]
#[case::cert_key_reply_to_server(7, DecodeError::WrongDirection { msg_type: MsgType::AddDelCertKeyReply, dir: Direction::AppToServer })]
#[case::first_unknown(8, DecodeError::UnknownType { type_byte: 8 })]
#[case::ninety_nine(99, DecodeError::UnknownType { type_byte: 99 })]
#[case::last(255, DecodeError::UnknownType { type_byte: 255 })]
fn head_server_refuses(#[case] type_byte: u8, #[case] expected: DecodeError) {
    let mut dgram = [0u8; MSG_LEN];
    dgram[0] = type_byte;
    assert_eq!(
        Message::decode(&dgram, Profile::Head, Direction::AppToServer),
        Err(expected)
    );
}

#[rstest]
#[case::cert_key(6, Direction::AppToServer)]
#[case::cert_key_reply(7, Direction::ServerToApp)]
fn seed_does_not_know_cert_key_types(#[case] type_byte: u8, #[case] dir: Direction) {
    let mut dgram = [0u8; MSG_LEN];
    dgram[0] = type_byte;
    assert_eq!(
        Message::decode(&dgram, Profile::Seed, dir),
        Err(DecodeError::UnknownType { type_byte })
    );
    assert!(Message::decode(&dgram, Profile::Head, dir).is_ok());
}

#[test]
fn seed_refuses_to_encode_cert_key_messages() {
    for message in [
        Message::AddDelCertKey(Default::default()),
        Message::AddDelCertKeyReply(Default::default()),
    ] {
        assert_eq!(
            message.encode(Profile::Seed),
            Err(EncodeError::NotInProfile {
                msg_type: message.msg_type(),
                profile: Profile::Seed
            })
        );
    }
}

#[test]
fn nonzero_padding_is_accepted_and_reported() {
    let mut dgram = [0x5au8; MSG_LEN];
    dgram[..10].copy_from_slice(&[3, 7, 0, 0, 0, 0, 0, 0, 0, 2]);
    let got = Message::decode(&dgram, Profile::Head, Direction::AppToServer);
    assert_eq!(
        got,
        Ok(Message::AddDelWorker(AddDelWorker {
            app_index: 7,
            wrk_index: 0,
            is_add: true, // 2 is "add", as VPP tests is_add for non-zero
        }))
    );
    assert_eq!(
        nonzero_tail(&dgram, MsgType::AddDelWorker, Profile::Head),
        Some(10)
    );
    // ATTACH has no padding; SEND_FDS is all padding.
    assert_eq!(nonzero_tail(&dgram, MsgType::Attach, Profile::Head), None);
    assert_eq!(
        nonzero_tail(&dgram, MsgType::SendFds, Profile::Head),
        Some(1)
    );
    // The seed worker reply ends 4 bytes earlier.
    let mut reply = [0u8; MSG_LEN];
    reply[0] = 4;
    reply[28] = 1;
    assert_eq!(
        nonzero_tail(&reply, MsgType::AddDelWorkerReply, Profile::Seed),
        Some(28)
    );
    assert_eq!(
        nonzero_tail(&reply, MsgType::AddDelWorkerReply, Profile::Head),
        None
    );
}

/// xorshift64*: deterministic, dependency-free junk.
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

#[test]
fn random_datagrams_decode_to_a_value_or_an_error_and_reencode_stably() {
    let mut junk = Junk(0x5eed_0000_2020_0902);
    for round in 0..20_000 {
        let mut dgram = [0u8; MSG_LEN];
        junk.fill(&mut dgram);
        dgram[0] %= 9; // mostly real types, sometimes 8
        for profile in Profile::ALL {
            for dir in DIRS {
                let Ok(message) = Message::decode(&dgram, profile, dir) else {
                    continue;
                };
                let encoded = message.encode(profile).expect("decoded => encodable");
                assert_eq!(
                    Message::decode(&encoded, profile, dir),
                    Ok(message),
                    "round {round}"
                );
                assert_eq!(nonzero_tail(&encoded, message.msg_type(), profile), None);
            }
        }
    }
}

#[test]
fn packet_views_never_panic_on_any_length() {
    let mut junk = Junk(0xdead_beef_cafe_f00d);
    let mut buf = vec![0u8; 600];
    junk.fill(&mut buf);
    for len in 0..buf.len() {
        let b = &buf[..len];
        let _ = Datagram::new_unchecked(b).type_byte();
        let a = AttachPacket::new_unchecked(b);
        let _ = (a.name(), a.options());
        let r = AttachReplyPacket::new_unchecked(b);
        let _ = (r.retval(), r.fd_flags(), r.segment_handle());
        let w = AddDelWorkerPacket::new_unchecked(b);
        let _ = (w.app_index(), w.is_add());
        for profile in Profile::ALL {
            let wr = AddDelWorkerReplyPacket::new_unchecked(b, profile);
            let _ = (wr.api_client_handle(), wr.is_add(), wr.fd_flags());
        }
        let c = AddDelCertKeyPacket::new_unchecked(b);
        let _ = (c.certkey_len(), c.is_add());
        let cr = AddDelCertKeyReplyPacket::new_unchecked(b);
        let _ = cr.index();
        assert_eq!(Datagram::new_checked(b).is_ok(), len == MSG_LEN);

        let mut owned = b.to_vec();
        let mut wr = AddDelWorkerReplyPacket::new_unchecked(&mut owned[..], Profile::Head);
        wr.set_is_add(1);
        wr.set_segment_handle(u64::MAX);
        let mut ap = AttachPacket::new_unchecked(&mut owned[..]);
        ap.set_name_field([0x41; 64]);
    }
}
