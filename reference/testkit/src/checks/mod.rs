//! The fuzz targets' checks: each takes raw fuzzer bytes, never fails to read them, and panics
//! only on a finding.

pub mod conformance_readers;
pub mod shm_ops;
pub mod wire_decode;
