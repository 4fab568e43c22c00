//! `sapi-reference`: see [`sapi_reference::cli`].
fn main() -> std::process::ExitCode {
    sapi_reference::cli::run(std::env::args_os())
}
