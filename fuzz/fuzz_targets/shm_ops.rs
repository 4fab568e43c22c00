//! Fifo operation sequences on the reference's SPSC byte fifo against a `VecDeque` model.
#![no_main]

#[path = "../checks/shm_ops.rs"]
mod shm_ops;

libfuzzer_sys::fuzz_target!(|data: &[u8]| shm_ops::check(data));
