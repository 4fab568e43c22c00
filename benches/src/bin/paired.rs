//! Interleaved pairs: the fifo and `rtrb` (and a control) streaming the same bytes in
//! alternation, many short runs each, with the median of the per-round ratios and its spread.
//!
//! Why beside criterion: criterion measures one member for seconds, then the next. On a
//! 2-vCPU VM the regime changes under a pass — the host moves the vCPUs (a cache-line round
//! trip of ~110 ns or 500–700 ns), and a small-write stream settles either where the reader
//! keeps up (every write a cache-line round trip) or behind a standing backlog (none) — so two
//! members of one criterion run can sit in different regimes, and the ratio of their medians
//! moved 2× between runs an hour apart. Here every round runs each member once, back to back,
//! in an order that alternates (A B, then B A), each run a fresh producer and consumer thread
//! pinned to CPUs 0 and 1; a round's ratio compares runs a fraction of a second apart.
//!
//! ```sh
//! cargo run --release -p sapi-benches --bin paired -- --sizes 1KiB,64KiB --rounds 21
//! ```

use std::time::Duration;

use clap::Parser;
use sapi_benches::fifo_rig::{self, FifoRig};
use sapi_benches::{anchors, sys};

const CAPACITY: u32 = 4 << 20;

#[derive(Parser, Debug)]
struct Args {
    /// Write sizes (64B, 1KiB, 64KiB, 1MiB or a byte count).
    #[arg(long, value_delimiter = ',', default_value = "64B,1KiB,64KiB,1MiB")]
    sizes: Vec<String>,
    /// Rounds per size: each round runs every member once.
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    /// Target duration of one run, in milliseconds (the anchor's, at calibration).
    #[arg(long, default_value_t = 150)]
    ms: u64,
    /// Distance (mod 4096) between the application buffers and the bytes they are copied to.
    #[arg(long, default_value_t = 0)]
    delta: usize,
    /// Add the control: `rtrb` over 128 KiB, the footprint of eager chunk recycling.
    #[arg(long)]
    controls: bool,
}

fn parse_size(s: &str) -> usize {
    let (num, mul) = if let Some(n) = s.strip_suffix("MiB") {
        (n, 1 << 20)
    } else if let Some(n) = s.strip_suffix("KiB") {
        (n, 1 << 10)
    } else {
        (s.strip_suffix('B').unwrap_or(s), 1)
    };
    num.parse::<usize>()
        .unwrap_or_else(|e| panic!("size {s:?}: {e}"))
        * mul
}

enum Member<'a> {
    Fifo(&'a FifoRig),
    Rtrb(usize),
}

fn run(m: &Member<'_>, size: usize, delta: usize, total: u64) -> Duration {
    match m {
        Member::Fifo(rig) => fifo_rig::threads(rig, size, delta, total),
        Member::Rtrb(capacity) => anchors::rtrb_threads(*capacity, size, delta, total),
    }
}

fn gib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / (1u64 << 30) as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args = Args::parse();
    sys::pin_to(0);
    let (routine, forced) = sys::copy_routine_from_env();
    println!(
        "{}; producer CPU 0, consumer CPU 1; copy routine {routine:?}{}; delta {}; \
         {} rounds of ~{} ms runs, order alternating",
        sys::cpu_line(),
        if forced { " (forced)" } else { "" },
        args.delta,
        args.rounds,
        args.ms
    );
    let rig = FifoRig::new(CAPACITY);
    let mut members: Vec<(&str, Member<'_>)> = vec![
        ("rtrb", Member::Rtrb(CAPACITY as usize)),
        ("fifo", Member::Fifo(&rig)),
    ];
    if args.controls {
        members.push(("rtrb_ring128KiB", Member::Rtrb(128 << 10)));
    }
    println!(
        "| write | member | median GiB/s | min–max | ÷ rtrb, median of rounds | p25–p75 | min–max |"
    );
    println!("|---|---|---|---|---|---|---|");
    for name in &args.sizes {
        let size = parse_size(name);
        // Calibrate on the anchor: bytes for ~`ms` per run, a whole number of writes.
        let probe = (64u64 << 20).max(size as u64 * 64);
        let _ = run(&members[0].1, size, args.delta, probe);
        let d = run(&members[0].1, size, args.delta, probe);
        let per_ms = probe as f64 / d.as_secs_f64() / 1000.0;
        let writes = ((per_ms * args.ms as f64) as u64 / size as u64).max(16);
        let total = writes * size as u64;
        let mut speed: Vec<Vec<f64>> = vec![Vec::new(); members.len()];
        for round in 0..args.rounds {
            let order: Vec<usize> = if round % 2 == 0 {
                (0..members.len()).collect()
            } else {
                (0..members.len()).rev().collect()
            };
            for i in order {
                speed[i].push(gib_s(total, run(&members[i].1, size, args.delta, total)));
            }
        }
        for (i, (mname, _)) in members.iter().enumerate() {
            let mut ratios: Vec<f64> = speed[i].iter().zip(&speed[0]).map(|(s, a)| s / a).collect();
            let mut sp = speed[i].clone();
            let med = median(&mut sp);
            let r = median(&mut ratios);
            let q = |p: f64| ratios[((ratios.len() - 1) as f64 * p).round() as usize];
            println!(
                "| {name} | {mname} | {med:.2} | {:.2}–{:.2} | {r:.2}× | {:.2}–{:.2} | {:.2}–{:.2} |",
                sp[0],
                sp[sp.len() - 1],
                q(0.25),
                q(0.75),
                ratios[0],
                ratios[ratios.len() - 1]
            );
        }
    }
}
