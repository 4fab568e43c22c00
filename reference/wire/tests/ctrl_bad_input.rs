//! Bad message-queue elements never panic and always get the specific typed error: every
//! truncation of every `corpus/wire/ctrl` vector, every type byte in both directions and both
//! profiles (ring 1 and ring 0), stale bytes after a body, a non-zero `postponed`, segment names
//! the wire cannot carry, and a deterministic stream of random elements.
//!
//! What each type byte must give is written out below from `docs/shm.md` §6.2 and
//! `docs/sessions.md` §3.3, §5 — independently of the crate's own tables.

use std::path::PathBuf;

use rstest::rstest;
use sapi_wire::ctrl::{
    AppAddSegment, AppDelSegment, CtrlDecodeError, CtrlElement, CtrlEncodeError, CtrlMessage,
    DgramDecodeError, DgramHeader, EventError, IoDecodeError, IoEvent, SessionEventType,
    SessionHandleMsg,
};
use sapi_wire::{Direction, Profile};

const DIRS: [Direction; 2] = [Direction::AppToServer, Direction::ServerToApp];

/// A control message type as the spec gives it.
struct Spec {
    head: u8,
    seed: Option<u8>,
    body: usize,
    to_server: bool,
    to_app: bool,
}

const fn spec(head: u8, seed: Option<u8>, body: usize, to_server: bool, to_app: bool) -> Spec {
    Spec {
        head,
        seed,
        body,
        to_server,
        to_app,
    }
}

/// Every control message the cut-through session layer carries (§5 headings, §3.3 routing).
const CTRL: &[Spec] = &[
    spec(8, Some(7), 16, false, true),    // RESET
    spec(9, Some(8), 79, false, true),    // BOUND
    spec(10, Some(9), 16, false, true),   // UNLISTEN_REPLY
    spec(11, Some(10), 120, false, true), // ACCEPTED
    spec(12, Some(11), 20, true, false),  // ACCEPTED_REPLY
    spec(13, Some(12), 104, false, true), // CONNECTED
    spec(14, Some(13), 16, true, true),   // DISCONNECTED (app-sent: §5.13)
    spec(15, Some(14), 16, true, true),   // DISCONNECTED_REPLY (server-sent: §5.13)
    spec(16, Some(15), 16, true, false),  // RESET_REPLY
    spec(17, Some(16), 8, false, true),   // REQ_WORKER_UPDATE
    spec(18, Some(17), 16, true, false),  // WORKER_UPDATE
    spec(19, Some(18), 32, false, true),  // WORKER_UPDATE_REPLY
    spec(20, None, 16, true, false),      // SHUTDOWN
    spec(21, Some(19), 16, true, false),  // DISCONNECT
    spec(22, Some(20), 77, true, false),  // CONNECT
    spec(24, Some(22), 46, true, false),  // LISTEN
    spec(26, Some(24), 20, true, false),  // UNLISTEN
    spec(27, Some(25), 8, true, false),   // APP_DETACH
    spec(28, Some(26), 152, false, true), // APP_ADD_SEGMENT
    spec(29, Some(27), 16, false, true),  // APP_DEL_SEGMENT
    spec(31, Some(29), 9, false, true),   // CLEANUP
    spec(32, Some(30), 72, true, true),   // APP_WRK_RPC (the server's copy: §5.20)
    spec(33, None, 53, true, false),      // TRANSPORT_ATTR
    spec(34, None, 53, false, true),      // TRANSPORT_ATTR_REPLY
    spec(38, None, 16, true, false),      // TERMINATE
];

/// The HEAD number of a type number of `profile`: HEAD has 0..=38; the seed has 0..=30, without
/// HALF_CLOSE (HEAD 6) and SHUTDOWN (HEAD 20).
fn head_number(n: u8, profile: Profile) -> Option<u8> {
    match profile {
        Profile::Head => (n <= 38).then_some(n),
        Profile::Seed => match n {
            0..=5 => Some(n),
            6..=18 => Some(n + 1),
            19..=30 => Some(n + 2),
            _ => None,
        },
    }
}

fn named(head: u8) -> SessionEventType {
    SessionEventType::ALL[usize::from(head)]
}

fn allowed(spec: &Spec, dir: Direction) -> bool {
    match dir {
        Direction::AppToServer => spec.to_server,
        Direction::ServerToApp => spec.to_app,
    }
}

/// What `CtrlMessage::decode(element, profile, dir)` must give.
fn expected_ctrl(
    element: &[u8],
    profile: Profile,
    dir: Direction,
) -> Result<SessionEventType, CtrlDecodeError> {
    let len = element.len();
    if len < 2 {
        return Err(CtrlDecodeError::NoHeader { len });
    }
    let type_byte = element[0];
    let head = head_number(type_byte, profile)
        .ok_or(CtrlDecodeError::UnknownType { type_byte, profile })?;
    let event_type = named(head);
    if head <= 4 {
        return Err(CtrlDecodeError::IoEvent {
            event_type,
            type_byte,
        });
    }
    let Some(spec) = CTRL.iter().find(|s| s.head == head) else {
        return Err(CtrlDecodeError::Unsupported {
            event_type,
            type_byte,
        });
    };
    if !allowed(spec, dir) {
        return Err(CtrlDecodeError::WrongDirection {
            event_type,
            type_byte,
            dir,
        });
    }
    if len < 2 + spec.body {
        return Err(CtrlDecodeError::Truncated {
            event_type,
            len,
            needed: 2 + spec.body,
        });
    }
    // APP_ADD_SEGMENT: the 128-byte name at element offset 18 must hold a NUL.
    if head == 28 && !element[18..146].contains(&0) {
        return Err(CtrlDecodeError::UnterminatedName);
    }
    Ok(event_type)
}

/// What `IoEvent::decode(element, profile, dir)` must give.
fn expected_io(
    element: &[u8],
    profile: Profile,
    dir: Direction,
) -> Result<SessionEventType, IoDecodeError> {
    let len = element.len();
    let truncated = IoDecodeError::Truncated { len, needed: 6 };
    let &type_byte = element.first().ok_or(truncated)?;
    let head =
        head_number(type_byte, profile).ok_or(IoDecodeError::UnknownType { type_byte, profile })?;
    let event_type = named(head);
    match head {
        0..=2 => {}
        3 | 4 => {
            return Err(IoDecodeError::Unsupported {
                event_type,
                type_byte,
            });
        }
        _ => {
            return Err(IoDecodeError::NotIoEvent {
                event_type,
                type_byte,
            });
        }
    }
    if head == 2 && dir == Direction::ServerToApp {
        return Err(IoDecodeError::WrongDirection {
            event_type,
            type_byte,
            dir,
        });
    }
    if len < 6 {
        return Err(truncated);
    }
    Ok(event_type)
}

fn corpus() -> Vec<(String, Profile, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/wire/ctrl");
    let mut out = Vec::new();
    for profile in Profile::ALL {
        let mut files: Vec<_> = std::fs::read_dir(root.join(profile.as_str()))
            .expect("corpus dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for path in files {
            let bytes = std::fs::read(&path).expect("vector");
            out.push((path.display().to_string(), profile, bytes));
        }
    }
    assert!(out.len() >= 20, "ctrl golden corpus missing");
    out
}

/// Decodes as the spec says, and anything decoded re-encodes to an element that decodes to it.
fn check_ctrl(element: &[u8], profile: Profile, dir: Direction, what: &str) {
    let got = CtrlMessage::decode(element, profile, dir);
    assert_eq!(
        got.as_ref().map(CtrlMessage::event_type).map_err(|e| *e),
        expected_ctrl(element, profile, dir),
        "{what}: {profile} {dir}"
    );
    if let Ok(message) = got {
        let encoded = message.encode(profile).expect("a decoded message encodes");
        assert_eq!(
            CtrlMessage::decode(&encoded, profile, dir).as_ref(),
            Ok(&message),
            "{what}: {profile} {dir} round trip"
        );
        let _ = message.dump(profile);
    }
}

fn check_io(element: &[u8], profile: Profile, dir: Direction, what: &str) {
    let got = IoEvent::decode(element, profile, dir);
    assert_eq!(
        got.map(|e| e.io_type.event_type()),
        expected_io(element, profile, dir),
        "{what}: {profile} {dir}"
    );
    if let Ok(event) = got {
        assert_eq!(IoEvent::decode(&event.encode(), profile, dir), Ok(event));
        let _ = event.dump();
    }
}

#[test]
fn every_truncation_of_every_vector_is_a_typed_error() {
    for (path, profile, bytes) in corpus() {
        for len in 0..=bytes.len() {
            let cut = &bytes[..len];
            for dir in DIRS {
                check_ctrl(cut, profile, dir, &format!("{path} cut to {len}"));
                check_io(cut, profile, dir, &format!("{path} cut to {len}"));
            }
        }
    }
}

#[test]
fn every_type_byte_in_both_directions_and_profiles() {
    // Bodies: all zero, all 0xff, and every vector with 0xa5 stale bytes up to the 256-byte slot.
    let mut elements = vec![vec![0u8; 256], vec![0xffu8; 256]];
    for (_, _, bytes) in corpus() {
        let mut slot = bytes.clone();
        slot.resize(256, 0xa5);
        elements.push(slot);
    }
    for element in elements {
        for type_byte in 0..=u8::MAX {
            let mut e = element.clone();
            e[0] = type_byte;
            for profile in Profile::ALL {
                for dir in DIRS {
                    let what = format!("type {type_byte}");
                    check_ctrl(&e, profile, dir, &what);
                    check_io(&e, profile, dir, &what);
                    check_io(&e[..18], profile, dir, &what);
                }
            }
        }
    }
}

#[test]
fn the_table_agrees_with_both_numberings() {
    for spec in CTRL {
        let t = named(spec.head);
        assert_eq!(t.number_seed(), spec.seed, "{t}");
        if let Some(n) = spec.seed {
            assert_eq!(head_number(n, Profile::Seed), Some(spec.head), "{t}");
        }
        assert_eq!(t.ctrl_body_size(), Some(spec.body), "{t}");
    }
}

#[rstest]
#[case::empty(&[], CtrlDecodeError::NoHeader { len: 0 })]
#[case::type_only(&[24], CtrlDecodeError::NoHeader { len: 1 })]
#[case::unknown(&[39, 0], CtrlDecodeError::UnknownType { type_byte: 39, profile: Profile::Head })]
#[case::io_in_ring_1(&[1, 0, 6, 0, 0, 0], CtrlDecodeError::IoEvent { event_type: SessionEventType::IoTx, type_byte: 1 })]
#[case::vpp_internal_rpc(&[5, 0], CtrlDecodeError::Unsupported { event_type: SessionEventType::Rpc, type_byte: 5 })]
#[case::accepted_from_an_app(&[11, 0], CtrlDecodeError::WrongDirection { event_type: SessionEventType::Accepted, type_byte: 11, dir: Direction::AppToServer })]
#[case::reset_from_an_app(&[8, 0], CtrlDecodeError::WrongDirection { event_type: SessionEventType::Reset, type_byte: 8, dir: Direction::AppToServer })]
#[case::listen_cut(&[24, 0, 1, 0, 0, 0], CtrlDecodeError::Truncated { event_type: SessionEventType::Listen, len: 6, needed: 48 })]
fn app_posted_elements_get_the_named_error(#[case] element: &[u8], #[case] error: CtrlDecodeError) {
    assert_eq!(
        CtrlMessage::decode(element, Profile::Head, Direction::AppToServer),
        Err(error)
    );
}

#[test]
fn both_way_types_decode_in_both_directions() {
    let disconnected = [14, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
    for dir in DIRS {
        assert_eq!(
            CtrlMessage::decode(&disconnected, Profile::Head, dir),
            Ok(CtrlMessage::Disconnected(SessionHandleMsg {
                client_index: 1,
                context: 0,
                handle: 5,
            }))
        );
    }
    for t in [
        SessionEventType::Disconnected,
        SessionEventType::DisconnectedReply,
        SessionEventType::AppWrkRpc,
        SessionEventType::IoRx,
        SessionEventType::IoTx,
    ] {
        assert_eq!(t.directions(), DIRS, "{t}");
    }
}

#[test]
fn stale_bytes_after_the_body_and_the_postponed_byte_are_ignored() {
    for (path, profile, bytes) in corpus() {
        let Some(dir) = DIRS
            .into_iter()
            .find(|&d| CtrlMessage::decode(&bytes, profile, d).is_ok())
        else {
            continue; // an io event
        };
        let exact = CtrlMessage::decode(&bytes, profile, dir);
        let mut slot = bytes.clone();
        slot.resize(256, 0xa5);
        slot[1] = 0xff;
        assert_eq!(CtrlMessage::decode(&slot, profile, dir), exact, "{path}");
        let view = CtrlElement::new_checked(slot.as_slice()).expect("header");
        assert_eq!(view.postponed(), 0xff);
        assert!(view.after_body(bytes.len() - 2).iter().all(|&b| b == 0xa5));
    }
    // An app's io event: byte 1 stale, bytes 6..17 unspecified.
    let stale = [1, 0x77, 6, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];
    let got = IoEvent::decode(&stale, Profile::Head, Direction::AppToServer);
    assert_eq!(got, Ok(IoEvent::tx(6)));
}

/// A body of all 0x01 bytes re-encodes to itself except in the padding the spec's layouts have:
/// every other byte belongs to some field (a field the codec forgot would come back as 0).
#[test]
fn every_body_byte_but_padding_belongs_to_a_field() {
    // Body offsets of padding: the endpoints' byte 19, the attribute's bytes 1..7, ADD_SEGMENT's
    // 9..11 (and its name's NUL, which is kept).
    let padding: &[(u8, &[usize])] = &[
        (11, &[56 + 19, 84 + 19]),
        (13, &[72 + 19]),
        (28, &[9, 10, 11]),
        (33, &[13, 14, 15, 16, 17, 18, 19]),
        (34, &[13, 14, 15, 16, 17, 18, 19]),
    ];
    for spec in CTRL {
        let dir = if spec.to_server {
            Direction::AppToServer
        } else {
            Direction::ServerToApp
        };
        let mut element = vec![0x01u8; 2 + spec.body];
        element[0] = spec.head;
        element[1] = 0;
        if spec.head == 28 {
            element[2 + 16 + 127] = 0; // a 127-byte name and its NUL
        }
        let message = CtrlMessage::decode(&element, Profile::Head, dir).expect("decodes");
        let encoded = message.encode(Profile::Head).expect("encodes");
        let pad = padding
            .iter()
            .find(|(t, _)| *t == spec.head)
            .map_or(&[][..], |(_, p)| p);
        for (off, (&want, &got)) in element[2..].iter().zip(&encoded[2..]).enumerate() {
            let want = if pad.contains(&off) { 0 } else { want };
            assert_eq!(got, want, "type {} body offset {off}", spec.head);
        }
    }
}

#[test]
fn types_the_seed_lacks_do_not_encode_there() {
    for t in SessionEventType::ALL {
        let Some(size) = t.ctrl_body_size() else {
            continue;
        };
        let dir = t.directions()[0];
        let mut element = vec![0u8; 2 + size];
        element[0] = t.number_head();
        let message = CtrlMessage::decode(&element, Profile::Head, dir).expect("decodes");
        match message.encode(Profile::Seed) {
            Ok(e) => assert_eq!(Some(e[0]), t.number_seed(), "{t}"),
            Err(err) => {
                assert_eq!(t.number_seed(), None, "{t}");
                assert_eq!(
                    err,
                    CtrlEncodeError::NotInProfile {
                        event_type: *t,
                        profile: Profile::Seed
                    }
                );
            }
        }
    }
}

#[test]
fn encode_into_writes_nothing_when_it_cannot_write_everything() {
    let message = CtrlMessage::Disconnect(SessionHandleMsg {
        client_index: 1,
        context: 2,
        handle: 3,
    });
    let mut short = [0xeeu8; 17];
    assert_eq!(
        message.encode_into(Profile::Head, &mut short),
        Err(CtrlEncodeError::BufferTooShort {
            len: 17,
            needed: 18
        })
    );
    assert_eq!(short, [0xee; 17]);
    let mut slot = [0xeeu8; 256];
    assert_eq!(message.encode_into(Profile::Head, &mut slot), Ok(18));
    assert_eq!(slot[0], 21);
    assert!(
        slot[18..].iter().all(|&b| b == 0xee),
        "past the body untouched"
    );
}

#[rstest]
#[case::longest(vec![b'a'; 127], Ok(()))]
#[case::too_long(vec![b'a'; 128], Err(CtrlEncodeError::SegmentNameTooLong { len: 128 }))]
#[case::nul_inside(b"seg\0x".to_vec(), Err(CtrlEncodeError::SegmentNameContainsNul { at: 3 }))]
fn segment_names_the_wire_cannot_carry_are_refused(
    #[case] name: Vec<u8>,
    #[case] result: Result<(), CtrlEncodeError>,
) {
    let add = AppAddSegment {
        segment_name: name,
        ..Default::default()
    };
    let message = CtrlMessage::AppAddSegment(add.clone());
    let mut slot = [0xeeu8; 256];
    let got = message.encode_into(Profile::Head, &mut slot).map(|_| ());
    assert_eq!(got, result);
    match result {
        Ok(()) => assert_eq!(
            CtrlMessage::decode(&slot, Profile::Head, Direction::ServerToApp),
            Ok(message)
        ),
        Err(_) => assert_eq!(slot, [0xee; 256], "nothing written"),
    }
    // The element-level API says the same in its own words.
    let legacy = add.encode_element(28).map(|_| ());
    let legacy_expected = match result {
        Ok(()) => Ok(()),
        Err(CtrlEncodeError::SegmentNameContainsNul { at }) => Err(EventError::NameContainsNul(at)),
        Err(_) => Err(EventError::NameTooLong(add.segment_name.len())),
    };
    assert_eq!(legacy, legacy_expected);
}

#[test]
fn element_level_api_checks_length_then_type() {
    let del = AppDelSegment {
        client_index: 1,
        context: 2,
        segment_handle: 3,
    };
    let e = del.encode_element(29);
    assert_eq!(
        AppDelSegment::decode_element(&e[..17], 29),
        Err(EventError::Truncated {
            len: 17,
            needed: 18
        })
    );
    assert_eq!(
        AppDelSegment::decode_element(&e, 27),
        Err(EventError::WrongType {
            got: 29,
            expected: 27
        })
    );
    assert_eq!(AppDelSegment::decode_element(&e, 29), Ok(del));
    let mut unterminated = [0x41u8; 256];
    unterminated[0] = 28;
    assert_eq!(
        AppAddSegment::decode_element(&unterminated, 28),
        Err(EventError::UnterminatedName)
    );
}

#[test]
fn dgram_header_truncations_are_typed_and_a_header_round_trips() {
    let header = DgramHeader {
        data_length: 1024,
        data_offset: 0,
        rmt_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        lcl_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        rmt_port: 1234,
        lcl_port: 40000,
        is_ip4: true,
        gso_size: 0,
    };
    let bytes = header.encode();
    assert_eq!(
        &bytes[40..45],
        &[0x04, 0xd2, 0x9c, 0x40, 0x01],
        "ports network order"
    );
    assert_eq!(DgramHeader::decode(&bytes), Ok(header));
    let mut with_payload = bytes.to_vec();
    with_payload.extend_from_slice(b"payload");
    assert_eq!(DgramHeader::decode(&with_payload), Ok(header));
    for len in 0..DgramHeader::SIZE {
        assert_eq!(
            DgramHeader::decode(&bytes[..len]),
            Err(DgramDecodeError { len })
        );
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_elements_get_a_value_or_a_typed_error() {
    let mut rng = Rng(0x5eed_c7a1);
    for _ in 0..20_000 {
        let len = (rng.next() % 257) as usize;
        let mut element: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Some(t) = element.first_mut() {
            *t %= 40; // mostly real type numbers
        }
        // Names terminate often enough to reach the ADD_SEGMENT body too.
        if len > 100 && rng.next().is_multiple_of(2) {
            element[100] = 0;
        }
        for profile in Profile::ALL {
            for dir in DIRS {
                check_ctrl(&element, profile, dir, "random");
                check_io(&element, profile, dir, "random");
            }
        }
        let _ = DgramHeader::decode(&element).map(|h| h.dump());
    }
}
