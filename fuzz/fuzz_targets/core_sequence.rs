//! The sans-IO core driven by an arbitrary sequence of connects, structured requests, raw
//! datagrams, crashes, send/resource/listen failures and admin commands (see
//! `reference/tests/sim_harness.rs`): the per-action and count-based invariants after every op,
//! the full snapshot invariants every few ops and at the end.
#![no_main]

#[path = "../../reference/tests/sim_harness.rs"]
mod sim_harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sim_harness::check_core_sequence_every(data, sim_harness::FUZZ_FULL_CHECK_EVERY)
});
