//! The sans-IO core driven by an arbitrary program (`sapi_testkit::sim::Program`, read with
//! `arbitrary`): connects, structured requests, typed `Arbitrary` messages of any type and
//! direction, raw datagrams, crashes, send/resource/listen failures and admin commands (see
//! `reference/testkit/src/sim`): the per-action and count-based invariants after every op,
//! the full snapshot invariants every few ops and at the end.
#![no_main]

libfuzzer_sys::fuzz_target!(|program: sapi_testkit::sim::Program| {
    sapi_testkit::sim::check_program(program, sapi_testkit::sim::FUZZ_FULL_CHECK_EVERY)
});
