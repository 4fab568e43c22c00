//! The sans-IO core driven by an arbitrary program (`sim_harness::Program`, read with
//! `arbitrary`): connects, structured requests, typed `Arbitrary` messages of any type and
//! direction, raw datagrams, crashes, send/resource/listen failures and admin commands (see
//! `reference/tests/sim_harness.rs`): the per-action and count-based invariants after every op,
//! the full snapshot invariants every few ops and at the end.
#![no_main]

#[path = "../../reference/tests/sim_harness.rs"]
mod sim_harness;

libfuzzer_sys::fuzz_target!(|program: sim_harness::Program| {
    sim_harness::check_program(program, sim_harness::FUZZ_FULL_CHECK_EVERY)
});
