//! `compare`: criterion baseline vs new, a table, and a non-zero exit past a threshold.
//!
//! ```text
//! cargo run -p sapi-benches --bin compare -- --baseline main [--new new] [--threshold 10]
//!     [--stat mean|median|slope] [--filter SUBSTR] [--dir target/criterion]
//! ```
//!
//! Reads every `<dir>/**/<baseline>/estimates.json` that has a sibling
//! `<new>/estimates.json` (criterion writes `new` on every run and `<name>` with
//! `--save-baseline <name>`), compares the chosen statistic of the time per iteration and
//! exits 1 when any bench got slower by more than `threshold` percent, 2 on a usage error or
//! when nothing matched.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

struct Args {
    dir: PathBuf,
    baseline: String,
    new: String,
    threshold: f64,
    stat: String,
    filter: Option<String>,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: compare --baseline NAME [--new NAME] [--threshold PERCENT] \
         [--stat mean|median|slope] [--filter SUBSTR] [--dir CRITERION_DIR]"
    );
    ExitCode::from(2)
}

fn parse() -> Option<Args> {
    let mut a = Args {
        dir: default_dir(),
        baseline: String::new(),
        new: "new".into(),
        threshold: 10.0,
        stat: "mean".into(),
        filter: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next();
        match k.as_str() {
            "--baseline" => a.baseline = v()?,
            "--new" => a.new = v()?,
            "--threshold" => a.threshold = v()?.parse().ok()?,
            "--stat" => a.stat = v()?,
            "--filter" => a.filter = Some(v()?),
            "--dir" => a.dir = PathBuf::from(v()?),
            _ => return None,
        }
    }
    (!a.baseline.is_empty() && ["mean", "median", "slope"].contains(&a.stat.as_str())).then_some(a)
}

/// `target/criterion` of the workspace this binary was built in (or `$CARGO_TARGET_DIR`).
fn default_dir() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(2).map(|p| p.join("criterion")))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Every directory under `dir` that holds `<name>/estimates.json`.
fn bench_dirs(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subs: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subs.sort();
    if dir.join(name).join("estimates.json").is_file() {
        out.push(dir.to_path_buf());
    }
    for s in subs {
        if s.file_name().is_some_and(|f| f == name || f == "report") {
            continue;
        }
        bench_dirs(&s, name, out);
    }
}

fn estimate(file: &Path, stat: &str) -> Option<f64> {
    let text = std::fs::read_to_string(file).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get(stat)
        .or_else(|| v.get("mean"))?
        .get("point_estimate")?
        .as_f64()
}

fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn main() -> ExitCode {
    let Some(a) = parse() else {
        return usage();
    };
    let mut dirs = Vec::new();
    bench_dirs(&a.dir, &a.baseline, &mut dirs);
    let mut rows = Vec::new();
    for d in dirs {
        let name = d.strip_prefix(&a.dir).unwrap_or(&d).display().to_string();
        if a.filter
            .as_ref()
            .is_some_and(|f| !name.contains(f.as_str()))
        {
            continue;
        }
        let base = estimate(&d.join(&a.baseline).join("estimates.json"), &a.stat);
        let new = estimate(&d.join(&a.new).join("estimates.json"), &a.stat);
        if let (Some(b), Some(n)) = (base, new) {
            rows.push((name, b, n));
        }
    }
    if rows.is_empty() {
        eprintln!(
            "no bench under {} has both a {:?} and a {:?} estimate",
            a.dir.display(),
            a.baseline,
            a.new
        );
        return ExitCode::from(2);
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(5).max(5);
    println!(
        "{:<w$}  {:>12}  {:>12}  {:>8}  verdict ({} time per iteration, threshold +{}%)",
        "bench", a.baseline, a.new, "change", a.stat, a.threshold
    );
    let mut regressed = 0;
    for (name, b, n) in &rows {
        let change = (n - b) / b * 100.0;
        let verdict = if change > a.threshold {
            regressed += 1;
            "REGRESSED"
        } else if change < -a.threshold {
            "improved"
        } else {
            "ok"
        };
        println!(
            "{name:<w$}  {:>12}  {:>12}  {change:>+7.1}%  {verdict}",
            human(*b),
            human(*n)
        );
    }
    if regressed > 0 {
        println!(
            "{regressed} of {} benches regressed by more than {}%",
            rows.len(),
            a.threshold
        );
        ExitCode::from(1)
    } else {
        println!("{} benches within +{}%", rows.len(), a.threshold);
        ExitCode::SUCCESS
    }
}
