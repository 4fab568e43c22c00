//! Fifo operation sequences on the reference's SPSC byte fifo against a `VecDeque` model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sapi_testkit::checks::shm_ops::check(data));
