//! `ratios`: the README's performance table, from the latest criterion run.
//!
//! ```text
//! cargo run -p sapi-benches --release --bin ratios [-- --dir target/criterion]
//! ```
//!
//! Every figure is a subject divided by its anchor from the same run (criterion's `new`
//! estimates, median time per iteration — the small fifo writes are bistable, and a mean lands
//! between the two regimes; medians from the latency benches' `latency.json`), so the machine's
//! speed cancels out and what remains can be compared across runs and machines. Rows with a
//! target (issues 5 and 13) say whether it is met. Missing benches print as `-`. The first line
//! names the CPU the table was printed on, which must be the one the benches ran on.

use std::path::{Path, PathBuf};

use clap::Parser;

/// Prints the README's performance table (subject ÷ anchor from the same criterion run).
#[derive(Parser, Debug)]
#[command(name = "ratios")]
struct Args {
    /// criterion's output directory (default: target/criterion of this workspace).
    #[arg(long, value_name = "CRITERION_DIR")]
    dir: Option<PathBuf>,
}

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

fn json(p: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

/// Median time per iteration (ns) of `group/bench`, over criterion's samples.
fn per_iter(dir: &Path, id: &str) -> Option<f64> {
    json(&dir.join(id).join("new/estimates.json"))?
        .get("median")?
        .get("point_estimate")?
        .as_f64()
}

/// Median single-operation latency (ns) of a latency bench.
fn median(dir: &Path, id: &str) -> Option<f64> {
    json(&dir.join(id).join("latency.json"))?
        .get("median_ns")?
        .as_f64()
}

fn p99(dir: &Path, id: &str) -> Option<f64> {
    json(&dir.join(id).join("latency.json"))?
        .get("p99_ns")?
        .as_f64()
}

enum Target {
    None,
    AtLeast(f64),
    AtMost(f64),
}

struct Table {
    rows: Vec<String>,
}

impl Table {
    fn row(&mut self, figure: &str, ratio: Option<f64>, target: Target, note: &str) {
        let r = ratio.map_or("-".into(), |r| format!("{r:.2}×"));
        let (t, status) = match (target, ratio) {
            (Target::None, _) => (String::new(), ""),
            (Target::AtLeast(x), Some(r)) => {
                (format!("≥ {x}×"), if r >= x { "met" } else { "MISSED" })
            }
            (Target::AtMost(x), Some(r)) => {
                (format!("≤ {x}×"), if r <= x { "met" } else { "MISSED" })
            }
            (Target::AtLeast(x), None) => (format!("≥ {x}×"), "not run"),
            (Target::AtMost(x), None) => (format!("≤ {x}×"), "not run"),
        };
        self.rows
            .push(format!("| {figure} | {r} | {t} | {status} | {note} |"));
    }
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

fn human_ns(ns: Option<f64>) -> String {
    match ns {
        None => "-".into(),
        Some(ns) if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if ns >= 1e3 => format!("{:.1} µs", ns / 1e3),
        Some(ns) => format!("{ns:.0} ns"),
    }
}

fn gib_s(dir: &Path, id: &str, bytes: f64) -> String {
    per_iter(dir, id).map_or("-".into(), |t| {
        format!("{:.2} GiB/s", bytes / t * 1e9 / (1u64 << 30) as f64)
    })
}

fn main() {
    let dir = Args::parse().dir.unwrap_or_else(default_dir);
    let d = dir.as_path();
    let mut t = Table { rows: vec![] };
    println!("{}\n", sapi_benches::sys::cpu_line());
    t.rows
        .push("| figure (subject ÷ anchor, same run) | ratio | target | | absolute |".into());
    t.rows.push("|---|---|---|---|---|".into());

    // Throughput ratios: same bytes per iteration, so anchor time ÷ subject time.
    let thr = |subject: &str, anchor: &str| div(per_iter(d, anchor), per_iter(d, subject));
    for (size, bytes) in [
        ("64B", 64.0),
        ("1KiB", 1024.0),
        ("64KiB", 65536.0),
        ("1MiB", 1048576.0),
    ] {
        let g = format!("fifo_{size}");
        let id = |b: &str, a: &str| format!("{g}/{b}/{a}");
        let is64k = size == "64KiB";
        // Issue 13: as fast as `rtrb` at every write size, aligned and 16 bytes apart.
        t.row(
            &format!("fifo {size} aligned ÷ rtrb aligned"),
            thr(&id("fifo", "aligned"), &id("rtrb", "aligned")),
            Target::AtLeast(1.0),
            &format!(
                "fifo {}, rtrb {}",
                gib_s(d, &id("fifo", "aligned"), bytes),
                gib_s(d, &id("rtrb", "aligned"), bytes)
            ),
        );
        t.row(
            &format!("fifo {size} 16 B apart ÷ rtrb 16 B apart"),
            thr(&id("fifo", "16apart"), &id("rtrb", "16apart")),
            Target::AtLeast(1.0),
            &format!(
                "fifo {}, rtrb {}",
                gib_s(d, &id("fifo", "16apart"), bytes),
                gib_s(d, &id("rtrb", "16apart"), bytes)
            ),
        );
        t.row(
            &format!(
                "rtrb {size} over a 128 KiB ring (eager recycling's footprint) ÷ rtrb aligned"
            ),
            thr(&id("rtrb_ring128KiB", "aligned"), &id("rtrb", "aligned")),
            Target::None,
            &gib_s(d, &id("rtrb_ring128KiB", "aligned"), bytes),
        );
        t.row(
            &format!("fifo {size} 16 B apart ÷ fifo aligned"),
            thr(&id("fifo", "16apart"), &id("fifo", "aligned")),
            if is64k {
                Target::AtLeast(0.8)
            } else {
                Target::None
            },
            &format!(
                "fifo 16 B apart {}",
                gib_s(d, &id("fifo", "16apart"), bytes)
            ),
        );
        t.row(
            &format!("rtrb {size} 16 B apart ÷ rtrb aligned"),
            thr(&id("rtrb", "16apart"), &id("rtrb", "aligned")),
            Target::None,
            "",
        );
        t.row(
            &format!("fifo {size} cross-process ÷ rtrb (threads)"),
            thr(&id("fifo_xproc", "aligned"), &id("rtrb", "aligned")),
            Target::None,
            &format!(
                "fifo_xproc {}",
                gib_s(d, &id("fifo_xproc", "aligned"), bytes)
            ),
        );
        for anchor in ["socketpair", "pipe", "memcpy"] {
            t.row(
                &format!("fifo {size} aligned ÷ {anchor} aligned"),
                thr(&id("fifo", "aligned"), &id(anchor, "aligned")),
                Target::None,
                &format!("{anchor} {}", gib_s(d, &id(anchor, "aligned"), bytes)),
            );
        }
        t.row(
            &format!("memcpy {size} 16 B apart ÷ memcpy aligned"),
            thr(&id("memcpy", "16apart"), &id("memcpy", "aligned")),
            Target::None,
            &format!(
                "shm::copy 16 B apart ÷ aligned: {}",
                thr(&id("copy_rs", "16apart"), &id("copy_rs", "aligned"))
                    .map_or("-".into(), |r| format!("{r:.2}×"))
            ),
        );
    }
    // No target: the eventfd mode's ≥ 1× ArrayQueue target of issue 5 is retired (README,
    // Performance): the protocol makes every empty-to-non-empty transition a system call that no
    // in-process queue pays. VPP's own queue is the fair anchor, quoted beside the row.
    for (g, target) in [("mq_18B", Target::None), ("mq_256B", Target::None)] {
        let anchor = format!("{g}/array_queue/spin");
        let mps =
            |id: &str| per_iter(d, id).map_or("-".into(), |t| format!("{:.1} M msg/s", 1e3 / t));
        t.row(
            &format!("{g} mq eventfd mode (polling consumer) ÷ ArrayQueue"),
            thr(&format!("{g}/mq_eventfd/spin"), &anchor),
            target,
            &format!(
                "mq {}, ArrayQueue {}",
                mps(&format!("{g}/mq_eventfd/spin")),
                mps(&anchor)
            ),
        );
        for (b, m) in [
            ("mq_mutex", "spin"),
            ("mq_eventfd", "block"),
            ("mq_mutex", "block"),
            ("rtrb", "spin"),
        ] {
            let id = format!("{g}/{b}/{m}");
            t.row(
                &format!("{g} {b} ({m}) ÷ ArrayQueue"),
                thr(&id, &anchor),
                Target::None,
                &mps(&id),
            );
        }
        let batch = format!("{g}/mq_eventfd/batch64");
        t.row(
            &format!("{g} mq eventfd mode, batches of ≤ 64 ÷ ArrayQueue (single push/pop)"),
            thr(&batch, &anchor),
            Target::None,
            &mps(&batch),
        );
        t.row(
            &format!("{g} mq eventfd mode, batches of ≤ 64 ÷ rtrb chunks of ≤ 64"),
            thr(&batch, &format!("{g}/rtrb/batch64")),
            Target::None,
            &format!("rtrb chunks {}", mps(&format!("{g}/rtrb/batch64"))),
        );
    }
    // Latency ratios: subject time ÷ anchor time.
    let raw = per_iter(d, "wakeup_rtt/raw_eventfd/pingpong");
    t.row(
        "wake-up round trip through two eventfd-mode mqs ÷ raw eventfd ping-pong",
        div(per_iter(d, "wakeup_rtt/mq_eventfd/pingpong"), raw),
        Target::AtMost(1.2),
        &format!(
            "mq {}, raw {}",
            human_ns(per_iter(d, "wakeup_rtt/mq_eventfd/pingpong")),
            human_ns(raw)
        ),
    );
    t.row(
        "wake-up round trip through two mutex-mode mqs ÷ raw eventfd ping-pong",
        div(per_iter(d, "wakeup_rtt/mq_mutex/pingpong"), raw),
        Target::None,
        &human_ns(per_iter(d, "wakeup_rtt/mq_mutex/pingpong")),
    );
    let anchor = median(d, "attach/seqpacket_3fd/rtt");
    for n in ["1", "100", "1000"] {
        let id = format!("attach/attach_latency/{n}_apps");
        t.row(
            &format!("attach median, {n} apps attached ÷ bare SEQPACKET 3-fd round trip"),
            div(median(d, &id), anchor),
            Target::AtMost(5.0),
            &format!(
                "median {}, p99 {} (anchor median {})",
                human_ns(median(d, &id)),
                human_ns(p99(d, &id)),
                human_ns(anchor)
            ),
        );
    }
    t.row(
        "attach median, 1000 apps ÷ 1 app (flat)",
        div(
            median(d, "attach/attach_latency/1000_apps"),
            median(d, "attach/attach_latency/1_apps"),
        ),
        Target::AtMost(1.2),
        "",
    );
    for (id, what) in [
        ("attach/worker_add/latency", "worker add"),
        (
            "attach/segment_add/latency",
            "SEND_FDS + ADD_SEGMENT (incl. admin request)",
        ),
    ] {
        t.row(
            &format!("{what} median ÷ bare SEQPACKET 3-fd round trip"),
            div(median(d, id), anchor),
            Target::None,
            &format!(
                "median {}, p99 {}",
                human_ns(median(d, id)),
                human_ns(p99(d, id))
            ),
        );
    }
    for th in ["1", "2"] {
        let id = format!("attach/attach_rate/{th}_threads");
        t.row(
            &format!("attach+detach cycles/s, {th} client thread(s) ÷ anchor round trips/s"),
            per_iter(d, &id).and_then(|m| Some(anchor? / m)),
            Target::None,
            &per_iter(d, &id).map_or("-".into(), |m| format!("{:.0} attaches/s", 1e9 / m)),
        );
    }
    for r in t.rows {
        println!("{r}");
    }
}
