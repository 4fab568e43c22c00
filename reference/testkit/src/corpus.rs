//! The repository's `corpus/`: golden vectors, malformed inputs, fuzz seeds and regressions.

use std::path::{Path, PathBuf};

/// `corpus/` at the top of the repository.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus")
}

/// Every file of `corpus/<kind>/<target>/` except READMEs, sorted by name; empty when the
/// directory does not exist (regressions appear only once a finding is kept).
pub fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
}

/// Runs `check` on every file of `corpus/<kind>/<target>/`, naming the file if it panics;
/// returns how many ran.
pub fn replay(kind: &str, target: &str, check: impl Fn(&[u8])) -> usize {
    let files = files(kind, target);
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        if let Err(panic) = outcome {
            eprintln!("corpus input {} failed its check", path.display());
            std::panic::resume_unwind(panic);
        }
    }
    files.len()
}
