//! Replays the `conformance_readers` fuzz target's seeds and regressions (`corpus/fuzz/` and
//! `corpus/regressions/conformance_readers/`) under a plain `cargo test`: a hostile server's
//! segment bytes must never crash or hang the suite's readers. The check itself is
//! `sapi_testkit::checks::conformance_readers`, shared with the fuzz target.

use sapi_testkit::checks::conformance_readers;
use sapi_testkit::corpus::replay;

#[test]
fn conformance_readers_regressions_and_seeds() {
    let n = replay(
        "regressions",
        "conformance_readers",
        conformance_readers::check,
    ) + replay("fuzz", "conformance_readers", conformance_readers::check);
    assert!(n > 0, "no conformance_readers seeds found");
}
