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
use std::path::Path;
use std::process::{Command, ExitCode};

use sapi_benches::workloads;

/// Operations per workload: enough to drown rounding, few enough for valgrind's pace.
fn ops(name: &str) -> u64 {
    match name {
        "wire_encode_decode" => 2000,
        "mq_18b_send_recv" | "mq_256b_send_recv" | "mq_18b_batch_send_recv" => 200,
        "fifo_64k_aligned" | "fifo_64k_16apart" => 64,
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

fn measure(out: &Path, only: Option<&str>) -> Result<(), String> {
    let mut csv = String::from("workload,instructions_per_op,ops\n");
    for &name in workloads::NAMES {
        if only.is_some_and(|o| !o.split(',').any(|x| x == name)) {
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = match a.as_slice() {
        ["run", name, n] => {
            let Ok(n) = n.parse() else {
                return ExitCode::from(2);
            };
            match workloads::run(name, n, workloads::slow_from_env()) {
                Some(()) => Ok(true),
                None => Err(format!("no workload {name:?}; have {:?}", workloads::NAMES)),
            }
        }
        ["measure", "--out", out] => measure(Path::new(out), None).map(|()| true),
        ["measure", "--out", out, "--only", only] => {
            measure(Path::new(out), Some(only)).map(|()| true)
        }
        ["compare", base, new] => compare(Path::new(base), Path::new(new), 2.0),
        ["compare", base, new, "--threshold", t] => match t.parse() {
            Ok(t) => compare(Path::new(base), Path::new(new), t),
            Err(_) => Err(format!("bad threshold {t:?}")),
        },
        _ => Err("usage: icount measure --out FILE.csv [--only A,B] | \
                  icount compare BASE.csv NEW.csv [--threshold PERCENT] | icount run NAME N"
            .into()),
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
