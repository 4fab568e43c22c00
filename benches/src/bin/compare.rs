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

use clap::builder::NonEmptyStringValueParser;
use clap::{Parser, ValueEnum};

/// criterion baseline vs new: a table, and exit 1 when a bench got slower than the threshold
/// (2 on a usage error or when nothing matched).
#[derive(Parser, Debug)]
#[command(name = "compare")]
struct Args {
    /// Baseline name, as saved with `cargo bench -- --save-baseline NAME`.
    #[arg(long, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    baseline: String,
    /// The run to compare against it (criterion writes `new` on every run).
    #[arg(long, value_name = "NAME", default_value = "new")]
    new: String,
    /// Slow-down, in percent, past which a bench counts as regressed.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    threshold: f64,
    /// Which estimate of the time per iteration to compare.
    #[arg(long, value_enum, default_value_t = Stat::Mean)]
    stat: Stat,
    /// Only benches whose id contains this.
    #[arg(long, value_name = "SUBSTR")]
    filter: Option<String>,
    /// criterion's output directory (default: target/criterion of this workspace).
    #[arg(long, value_name = "CRITERION_DIR")]
    dir: Option<PathBuf>,
}

/// The statistics of criterion's `estimates.json` that can be compared.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Stat {
    Mean,
    Median,
    Slope,
}

impl Stat {
    /// The key in `estimates.json`.
    fn key(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::Median => "median",
            Stat::Slope => "slope",
        }
    }
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
    let a = Args::parse();
    let dir = a.dir.clone().unwrap_or_else(default_dir);
    let mut dirs = Vec::new();
    bench_dirs(&dir, &a.baseline, &mut dirs);
    let mut rows = Vec::new();
    for d in dirs {
        let name = d.strip_prefix(&dir).unwrap_or(&d).display().to_string();
        if a.filter
            .as_ref()
            .is_some_and(|f| !name.contains(f.as_str()))
        {
            continue;
        }
        let base = estimate(&d.join(&a.baseline).join("estimates.json"), a.stat.key());
        let new = estimate(&d.join(&a.new).join("estimates.json"), a.stat.key());
        if let (Some(b), Some(n)) = (base, new) {
            rows.push((name, b, n));
        }
    }
    if rows.is_empty() {
        eprintln!(
            "no bench under {} has both a {:?} and a {:?} estimate",
            dir.display(),
            a.baseline,
            a.new
        );
        return ExitCode::from(2);
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(5).max(5);
    println!(
        "{:<w$}  {:>12}  {:>12}  {:>8}  verdict ({} time per iteration, threshold +{}%)",
        "bench",
        a.baseline,
        a.new,
        "change",
        a.stat.key(),
        a.threshold
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
