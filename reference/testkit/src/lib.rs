//! `sapi-testkit`: test support shared across crates, so that no test reaches into another
//! crate's tree with `#[path]`.
//!
//! * [`sim`] — the deterministic simulation of the sans-IO core: ops, a simulated shell, the
//!   invariants, the seeded generator and the fuzzers' input decoding; used by the simulation and
//!   regression tests here and by the `core_sequence` and `wire_decode` fuzz targets.
//! * [`checks`] — the fuzz targets' check functions (`shm_ops`, `conformance_readers`), also
//!   replayed over the seeds and regressions by `cargo test`.
//! * [`corpus`] — where `corpus/` is and which files a replay reads.
//!
//! It is test code: it may panic to report a finding, and it must never be a dependency of a
//! shipping crate.

pub mod checks;
pub mod corpus;
pub mod sim;
