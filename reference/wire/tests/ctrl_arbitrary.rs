//! With the `arbitrary` feature (on in the workspace build, through `sapi-testkit`): every
//! generated ctrl value keeps the invariants a decode gives — it encodes in exactly the profiles
//! its type exists in and decodes back to itself in every direction its type travels. This is
//! what the `wire_decode` fuzz target will rely on.
#![cfg(feature = "arbitrary")]

use arbitrary::{Arbitrary, Unstructured};
use sapi_wire::Profile;
use sapi_wire::ctrl::{CtrlMessage, DgramHeader, IoEvent};

/// xorshift64*: deterministic input bytes, no dependency.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn arbitrary_ctrl_messages_round_trip_in_their_profiles_and_directions() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..4000 {
        let data = bytes(seed, 400);
        let mut u = Unstructured::new(&data);
        let Ok(message) = CtrlMessage::arbitrary(&mut u) else {
            continue;
        };
        let t = message.event_type();
        seen.insert(t);
        for profile in Profile::ALL {
            match message.encode(profile) {
                Ok(element) => {
                    assert_eq!(Some(element[0]), t.number_in(profile), "{t} {profile}");
                    assert!(element[message.element_len()..].iter().all(|&b| b == 0));
                    for &dir in t.directions() {
                        assert_eq!(
                            CtrlMessage::decode(&element, profile, dir).as_ref(),
                            Ok(&message),
                            "{t} {profile} {dir}"
                        );
                    }
                    let _ = message.dump(profile);
                }
                Err(e) => assert_eq!(t.number_in(profile), None, "{t} {profile}: {e}"),
            }
        }
    }
    assert_eq!(seen.len(), 25, "every ctrl message type generated");
}

#[test]
fn arbitrary_io_events_and_dgram_headers_round_trip() {
    for seed in 0..2000 {
        let data = bytes(seed, 64);
        let mut u = Unstructured::new(&data);
        if let Ok(event) = IoEvent::arbitrary(&mut u) {
            let t = event.io_type.event_type();
            for profile in Profile::ALL {
                for &dir in t.directions() {
                    assert_eq!(IoEvent::decode(&event.encode(), profile, dir), Ok(event));
                }
            }
        }
        if let Ok(header) = DgramHeader::arbitrary(&mut u) {
            assert_eq!(DgramHeader::decode(&header.encode()), Ok(header));
        }
    }
}
