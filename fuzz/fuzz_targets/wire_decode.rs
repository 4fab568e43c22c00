//! Any bytes through `Message::decode` in both profiles and both directions: a value or a typed
//! error, never a panic; decoded values re-encode to 209 bytes that decode to the same value.
//! The same bytes as a ring-1 control element, a ring-0 io event and a datagram header
//! (`sapi_wire::ctrl`): decoded values re-encode to elements that decode to themselves.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sapi_testkit::checks::wire_decode::check(data));
