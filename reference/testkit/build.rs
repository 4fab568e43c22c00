//! Tells the layering test which platform to resolve dependencies for.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "x86_64-unknown-linux-gnu".into());
    println!("cargo:rustc-env=SAPI_TESTKIT_TARGET={target}");
}
