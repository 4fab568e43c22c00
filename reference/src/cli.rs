//! The `sapi-reference` command line as a library function, so that other programs (the
//! conformance suite's embedded target) can run the reference as a child process of their own
//! binary without linking to its internals.
//!
//! Placeholder: filled by the server work.

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs the `sapi-reference` CLI with `args` (the first item is the program name).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let _ = args.into_iter().map(Into::into).collect::<Vec<OsString>>();
    ExitCode::FAILURE
}
