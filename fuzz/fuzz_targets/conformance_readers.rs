//! A hostile server's segment bytes fed to the conformance suite's own readers (ssvm and
//! fifo-segment headers, message queues, queued messages) and its reply decoders: every read is an
//! `Ok` or a `ShmError`, never a panic, a hang or a read outside the mapping.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sapi_testkit::checks::conformance_readers::check(data));
