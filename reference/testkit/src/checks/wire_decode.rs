//! The `wire_decode` check: the socket codec and the mq-element codec on arbitrary bytes, both
//! ways.

use arbitrary::{Arbitrary, Unstructured};

use crate::sim::normalise;
use sapi_wire::{Direction, MSG_LEN, Message, Profile};

/// The `wire_decode` check: any bytes decode to a value or a typed error in both profiles and
/// directions, never panic; a decoded value re-encodes to 209 bytes that decode to itself, and
/// re-encoding is a fixed point. The same bytes, read as an arbitrary typed message, go the
/// other way (see [`check_wire_encode`]).
pub fn check(data: &[u8]) {
    check_wire_decode_bytes(data);
    check_wire_encode(data);
    check_ctrl_decode_bytes(data);
}

/// The mq-element codec (`sapi_wire::ctrl`) on the same bytes, read as a ring-1 element, a
/// ring-0 io event and a datagram header: a value or a typed error, never a panic; a decoded
/// control message or io event re-encodes to an element that decodes to itself, with nothing
/// past its body, and a header re-encodes to its own bytes.
pub fn check_ctrl_decode_bytes(data: &[u8]) {
    use sapi_wire::ctrl::{CtrlMessage, DgramHeader, IoEvent};
    for profile in Profile::ALL {
        for dir in [Direction::AppToServer, Direction::ServerToApp] {
            match CtrlMessage::decode(data, profile, dir) {
                Ok(m) => {
                    let element = match m.encode(profile) {
                        Ok(e) => e,
                        Err(e) => panic!("{m:?} decoded in {profile} but cannot encode: {e}"),
                    };
                    assert_eq!(
                        CtrlMessage::decode(&element, profile, dir).as_ref(),
                        Ok(&m),
                        "{profile} {dir}: a re-encoded ctrl element decodes differently"
                    );
                    assert!(
                        element[m.element_len()..].iter().all(|b| *b == 0),
                        "{m:?}: encode wrote past the body"
                    );
                    let _ = m.dump(profile);
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
            match IoEvent::decode(data, profile, dir) {
                Ok(ev) => {
                    let element = ev.encode();
                    assert_eq!(
                        IoEvent::decode(&element, profile, dir),
                        Ok(ev),
                        "{profile} {dir}: a re-encoded io event decodes differently"
                    );
                    let _ = ev.dump();
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
    match DgramHeader::decode(data) {
        Ok(h) => {
            let bytes = h.encode();
            assert_eq!(
                DgramHeader::decode(&bytes),
                Ok(h),
                "a datagram header round trip"
            );
            let _ = h.dump();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Any typed message (an `Arbitrary` one read from `data`) encodes in every profile it exists in,
/// and only in those, to 209 bytes with nothing past its body that decode to it (at the seed,
/// minus the worker reply's `api_client_handle`, which has no place there).
pub fn check_wire_encode(data: &[u8]) {
    let Ok(msg) = Message::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let t = msg.msg_type();
    let Some(dir) = t.direction() else {
        panic!("{msg:?} has no direction");
    };
    for profile in Profile::ALL {
        match msg.encode(profile) {
            Ok(bytes) => {
                assert!(t.exists_in(profile), "{t} encoded in {profile}");
                assert_eq!(bytes[0], t.as_u8());
                assert_eq!(sapi_wire::nonzero_tail(&bytes, t, profile), None);
                assert_eq!(
                    Message::decode(&bytes, profile, dir),
                    Ok(normalise(msg, profile)),
                    "{profile}: {msg:?} does not survive encode + decode"
                );
            }
            Err(e) => assert!(!t.exists_in(profile), "{profile}: {msg:?} refused: {e}"),
        }
    }
}

fn check_wire_decode_bytes(data: &[u8]) {
    for profile in Profile::ALL {
        for dir in [Direction::AppToServer, Direction::ServerToApp] {
            match Message::decode(data, profile, dir) {
                Ok(m) => {
                    assert_eq!(
                        data.len(),
                        MSG_LEN,
                        "{m:?} decoded from {} bytes",
                        data.len()
                    );
                    assert_eq!(m.msg_type().direction(), Some(dir));
                    assert!(m.msg_type().exists_in(profile));
                    let bytes = match m.encode(profile) {
                        Ok(b) => b,
                        Err(e) => panic!("{m:?} decoded in {profile} but cannot encode: {e}"),
                    };
                    assert_eq!(bytes.len(), MSG_LEN);
                    assert_eq!(bytes[0], data[0], "type byte changed");
                    let back = Message::decode(&bytes, profile, dir);
                    assert_eq!(
                        back,
                        Ok(m),
                        "{profile} {dir}: re-encoded bytes decode differently"
                    );
                    let again = m.encode(profile).ok();
                    assert_eq!(again, Some(bytes), "encoding is not deterministic");
                    // Only padding and non-canonical booleans may differ from the input.
                    let tail = sapi_wire::nonzero_tail(&bytes, m.msg_type(), profile);
                    assert_eq!(tail, None, "encode wrote past the body");
                    let _ = m.dump(profile);
                }
                Err(e) => {
                    let _ = e.to_string();
                    if data.len() == MSG_LEN {
                        let t = data[0];
                        let known = t != 0 && t < profile.type_count();
                        assert!(
                            !(known
                                && sapi_wire::MsgType::from_u8(t).and_then(|t| t.direction())
                                    == Some(dir)),
                            "{profile} {dir}: type {t} of 209 bytes refused: {e}"
                        );
                    }
                }
            }
            let _ = sapi_wire::nonzero_tail(
                data,
                sapi_wire::MsgType::from_u8(data.first().copied().unwrap_or(0))
                    .unwrap_or(sapi_wire::MsgType::None),
                profile,
            );
        }
    }
}
