//! `sapi-reference`: see [`sapi_reference::cli`].
//!
//! Must never: do more than hand its arguments to [`sapi_reference::cli::run`]: the conformance
//! binary's hidden `reference` subcommand calls the same function, so the embedded target is the
//! same server as this binary.
fn main() -> std::process::ExitCode {
    sapi_reference::cli::run(std::env::args_os())
}
