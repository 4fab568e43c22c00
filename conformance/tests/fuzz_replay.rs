//! Replays the `conformance_readers` fuzz target's seeds and regressions (`corpus/fuzz/` and
//! `corpus/regressions/conformance_readers/`) under a plain `cargo test`: a hostile server's
//! segment bytes must never crash or hang the suite's readers. The check itself is
//! `fuzz/checks/conformance_readers.rs`, shared with the fuzz target.

#[path = "../../fuzz/checks/conformance_readers.rs"]
mod conformance_readers;

use std::path::{Path, PathBuf};

/// Every file of `corpus/<kind>/conformance_readers/` (READMEs aside), sorted.
fn corpus_files(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(kind)
        .join("conformance_readers");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
}

#[test]
fn conformance_readers_regressions_and_seeds() {
    let files: Vec<PathBuf> = ["regressions", "fuzz"]
        .iter()
        .flat_map(|kind| corpus_files(kind))
        .collect();
    assert!(!files.is_empty(), "no conformance_readers seeds found");
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let result = std::panic::catch_unwind(|| conformance_readers::check(&bytes));
        assert!(result.is_ok(), "{} fails its check again", f.display());
    }
}
