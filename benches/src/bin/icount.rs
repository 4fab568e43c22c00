//! `icount`: the instruction-count gate, in the manner of rustls' `ci-bench`.
//!
//! ```text
//! icount measure --out FILE.csv [--only NAME,NAME]   # each workload under callgrind
//! icount compare BASE.csv NEW.csv [--threshold PERCENT]
//! icount run NAME N                                  # one workload (what callgrind runs)
//! ```
//!
//! `measure` runs every workload of `sapi_benches::workloads` twice under
//! `valgrind --tool=callgrind` — with its operation count and with 0 — and writes the
//! difference divided by the count, the instructions of one operation, to a CSV. Wall-clock
//! figures wander by tens of percent on a shared 2-core machine; these counts move only when
//! the code does, so `compare` can gate CI on a threshold of a few percent. It exits 1 when a
//! workload's count grew past the threshold or a baseline workload is missing, 2 on errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use sapi_benches::workloads;

/// The instruction-count gate: per-operation instruction counts of the workloads under
/// callgrind, and a comparison that exits 1 past a threshold (2 on errors).
#[derive(Parser, Debug)]
#[command(name = "icount")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run each workload under `valgrind --tool=callgrind` and write instructions per op to a CSV.
    Measure {
        /// Where to write the CSV (workload,instructions_per_op,ops).
        #[arg(long, value_name = "FILE.csv")]
        out: PathBuf,
        /// Only these workloads (comma-separated or repeated).
        #[arg(long, value_name = "NAME", value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Compare two CSVs; exit 1 when a workload grew past the threshold or is missing.
    Compare {
        /// The committed counts (benches/icount-baseline.csv).
        #[arg(value_name = "BASE.csv")]
        base: PathBuf,
        /// The counts just measured.
        #[arg(value_name = "NEW.csv")]
        new: PathBuf,
        /// Growth, in percent, past which a workload counts as regressed.
        #[arg(
            long,
            value_name = "PERCENT",
            default_value_t = 2.0,
            allow_negative_numbers = true
        )]
        threshold: f64,
    },
    /// Run one workload N times (what callgrind runs).
    Run {
        /// A workload of sapi_benches::workloads.
        name: String,
        #[arg(value_name = "N")]
        n: u64,
    },
}

/// The copy routine the baseline was counted with, fixed: the one chosen per CPU is timed at
/// start-up (an emulation under valgrind) and `rep movsb` counts one instruction per byte.
fn pin_copy_routine() {
    use sapi_shm::copy::CopyRoutine;
    let routine = if CopyRoutine::available().contains(&CopyRoutine::Avx2Loop) {
        CopyRoutine::Avx2Loop
    } else {
        CopyRoutine::Sse2InAliasWindow
    };
    CopyRoutine::pin_for_measurement(routine);
}

/// Runs a workload with the copy routine pinned.
fn run_pinned(name: &str, n: u64) -> Option<()> {
    pin_copy_routine();
    workloads::run(name, n, workloads::slow_from_env())
}

/// Operations per workload: enough to drown rounding, few enough for valgrind's pace.
fn ops(name: &str) -> u64 {
    match name {
        "wire_encode_decode" => 2000,
        "mq_18b_send_recv" | "mq_256b_send_recv" | "mq_18b_batch_send_recv" => 200,
        "fifo_64k_aligned" | "fifo_64k_16apart" => 64,
        "fifo_64b_write_read" => 2000,
        _ => 200,
    }
}

fn callgrind(name: &str, n: u64) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out =
        std::env::temp_dir().join(format!("sapi-icount-{}-{name}-{n}.out", std::process::id()));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--quiet")
        .arg(&exe)
        .args(["run", name, &n.to_string()])
        .status()
        .map_err(|e| format!("cannot run valgrind (apt-get install -y valgrind): {e}"))?;
    if !status.success() {
        return Err(format!("valgrind run of {name} {n} failed: {status}"));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no instruction total in callgrind output of {name}"))
}

/// Measures every workload, or those in `only` when it is not empty.
fn measure(out: &Path, only: &[String]) -> Result<(), String> {
    let mut csv = String::from("workload,instructions_per_op,ops\n");
    for &name in workloads::NAMES {
        if !only.is_empty() && !only.iter().any(|x| x == name) {
            continue;
        }
        let n = ops(name);
        let full = callgrind(name, n)?;
        let setup = callgrind(name, 0)?;
        let per_op = full.saturating_sub(setup) as f64 / n as f64;
        println!("{name:<22} {per_op:>14.1} instructions/op ({n} ops)");
        csv.push_str(&format!("{name},{per_op:.1},{n}\n"));
    }
    std::fs::write(out, csv).map_err(|e| format!("{}: {e}", out.display()))
}

fn read_csv(p: &Path) -> Result<BTreeMap<String, f64>, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut m = BTreeMap::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut f = line.split(',');
        let (Some(name), Some(v)) = (f.next(), f.next()) else {
            return Err(format!("{}: bad line {line:?}", p.display()));
        };
        let v: f64 = v
            .parse()
            .map_err(|_| format!("{}: bad count in {line:?}", p.display()))?;
        m.insert(name.to_owned(), v);
    }
    Ok(m)
}

fn compare(base: &Path, new: &Path, threshold: f64) -> Result<bool, String> {
    let b = read_csv(base)?;
    let n = read_csv(new)?;
    println!(
        "{:<22} {:>14} {:>14} {:>8}  verdict (threshold +{threshold}%)",
        "workload", "base instr/op", "new instr/op", "change"
    );
    let mut ok = true;
    for (name, bv) in &b {
        match n.get(name) {
            None => {
                ok = false;
                println!("{name:<22} {bv:>14.1} {:>14} {:>8}  MISSING", "-", "-");
            }
            Some(nv) => {
                let change = (nv - bv) / bv * 100.0;
                let verdict = if change > threshold {
                    ok = false;
                    "REGRESSED"
                } else if change < -threshold {
                    "improved"
                } else {
                    "ok"
                };
                println!("{name:<22} {bv:>14.1} {nv:>14.1} {change:>+7.2}%  {verdict}");
            }
        }
    }
    for name in n.keys().filter(|k| !b.contains_key(*k)) {
        println!("{name:<22} (new workload, no baseline)");
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let r = match Cli::parse().cmd {
        Cmd::Run { name, n } => match run_pinned(&name, n) {
            Some(()) => Ok(true),
            None => Err(format!("no workload {name:?}; have {:?}", workloads::NAMES)),
        },
        Cmd::Measure { out, only } => measure(&out, &only).map(|()| true),
        Cmd::Compare {
            base,
            new,
            threshold,
        } => compare(&base, &new, threshold),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("instruction counts regressed");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("icount: {e}");
            ExitCode::from(2)
        }
    }
}
