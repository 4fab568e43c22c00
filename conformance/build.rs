//! Embeds `corpus/malformed/*.bin` in the suite, one scenario per file
//! (`malformed.corpus.<file stem>`), so that one input that crashes a server costs one scenario,
//! an expect-fail entry names exactly that input, and the suite needs no source tree to run.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dir = manifest.join("../corpus/malformed");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "bin"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = String::from(
        "/// `(scenario name, file name, bytes)` of every `corpus/malformed/*.bin`, sorted.\n\
         pub const MALFORMED_CORPUS: &[(&str, &str, &[u8])] = &[\n",
    );
    for f in &files {
        let (Some(stem), Some(name)) = (
            f.file_stem().and_then(|s| s.to_str()),
            f.file_name().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let path = f.canonicalize().unwrap_or_else(|_| f.clone());
        let _ = writeln!(
            out,
            "    (\"malformed.corpus.{stem}\", \"{name}\", include_bytes!({:?})),",
            path.display().to_string()
        );
        println!("cargo:rerun-if-changed={}", f.display());
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(e) = std::fs::write(out_dir.join("malformed_corpus.rs"), out) {
        panic!("writing malformed_corpus.rs: {e}");
    }
}
