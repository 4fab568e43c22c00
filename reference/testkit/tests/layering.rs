//! The layering of the reference's crates, enforced: each crate's normal dependencies (direct and
//! transitive, as `cargo metadata` resolves them for this platform) must show its layer.
//!
//! * `sapi-wire` and `sapi-core` are pure: no syscall crate (`nix`, `libc`, `memfd`, `rustix`), no
//!   event loop, no command line, no log sink. This is what keeps the core sans-IO (quinn-proto's
//!   rule, here checked by the compiler's view of the graph rather than by convention).
//! * `sapi-shm` is what any application links: no command line, no log sink, no serialisation.
//! * `sapi-app` (the app side over `sapi-shm` and `sapi-wire`) likewise, and never the server's
//!   crates; the conformance suite never uses it (it judges with a session client of its own).
//! * No arrow runs upward: wire ← shm, wire ← core ← reference.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use rstest::rstest;
use serde_json::Value;

/// Crates that do IO or stand for a process's outside (syscalls, event loops, CLI, log sinks).
const IO: &[&str] = &[
    "nix",
    "libc",
    "memfd",
    "rustix",
    "linux-raw-sys",
    "mio",
    "tokio",
    "socket2",
    "clap",
    "tracing-subscriber",
];

/// The workspace's normal-dependency graph for this platform: package name → names it depends
/// on. Edges that exist only under `cfg(loom)` are left out (loom is a model checker's build).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--filter-platform"])
        .arg(env!("SAPI_TESTKIT_TARGET"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let mut graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve nodes") {
        let Some(name) = node["id"].as_str().and_then(|id| name_of.get(id)) else {
            continue;
        };
        let deps = graph.entry(name.to_string()).or_insert_with(BTreeSet::new);
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"].as_array().into_iter().flatten().any(|k| {
                k["kind"].is_null() && k["target"].as_str().is_none_or(|t| !t.contains("loom"))
            });
            if let Some(dep_name) = dep["pkg"].as_str().and_then(|id| name_of.get(id))
                && normal
            {
                deps.insert(dep_name.to_string());
            }
        }
    }
    graph
}

/// Every crate `name` depends on, directly or not.
fn closure(graph: &BTreeMap<String, BTreeSet<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        for d in graph.get(&n).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[rstest]
#[case::wire_is_pure("sapi-wire", IO)]
#[case::wire_is_the_bottom("sapi-wire", &["sapi-shm", "sapi-core", "sapi-reference"])]
#[case::core_is_sans_io("sapi-core", IO)]
#[case::core_knows_no_shared_memory_or_shell("sapi-core", &["sapi-shm", "sapi-reference"])]
#[case::shm_is_an_application_library(
    "sapi-shm",
    &["clap", "tracing-subscriber", "serde_json", "sapi-core", "sapi-reference"]
)]
#[case::app_is_an_application_library(
    "sapi-app",
    &["clap", "tracing-subscriber", "serde_json", "sapi-core", "sapi-reference", "sapi-conformance"]
)]
#[case::conformance_judges_with_its_own_client("sapi-conformance", &["sapi-app"])]
fn crate_depends_on_none_of(#[case] krate: &str, #[case] forbidden: &[&str]) {
    let graph = graph();
    assert!(graph.contains_key(krate), "{krate} is not in the workspace");
    let deps = closure(&graph, krate);
    let found: Vec<&&str> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(
        found.is_empty(),
        "{krate} depends on {found:?} (its dependencies: {deps:?})"
    );
}

/// The check itself works: the shell does depend on the IO crates it must.
#[test]
fn the_shell_is_seen_to_depend_on_nix() {
    let deps = closure(&graph(), "sapi-reference");
    assert!(
        deps.contains("nix") && deps.contains("sapi-core"),
        "{deps:?}"
    );
}
