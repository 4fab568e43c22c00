//! Interleaved pairs: a subject and its anchor (and a control) run in alternation, many short
//! runs each, with the median of the per-round ratios and its spread.
//!
//! * `paired fifo` — the fifo and `rtrb` streaming the same bytes (the controls: `rtrb` over
//!   128 KiB, the footprint of eager chunk recycling, and the fifo drained by VPP's eager
//!   reader).
//! * `paired wakeup` — the wake-up round trip through two mqs (eventfd mode, mutex mode) and
//!   the raw eventfd ping-pong, between the same two pinned threads.
//!
//! Why beside criterion: criterion measures one member for seconds, then the next. On a
//! 2-vCPU VM the regime changes under a pass — the host moves the vCPUs (a cache-line round
//! trip of ~110 ns or 500–700 ns; a wake-up of a halted vCPU of 5 µs or 20), and a small-write
//! stream settles either where the reader keeps up (every write a cache-line round trip) or
//! behind a standing backlog (none) — so two members of one criterion run can sit in different
//! regimes, and the ratio of their medians moved 2× between runs an hour apart. Here every
//! round runs each member once, back to back, in an order that alternates (A B, then B A), each
//! run a fresh pair of threads pinned to CPUs 0 and 1; a round's ratio compares runs a fraction
//! of a second apart.
//!
//! ```sh
//! cargo run --release -p sapi-benches --bin paired -- fifo --sizes 1KiB,64KiB --rounds 21
//! cargo run --release -p sapi-benches --bin paired -- wakeup --rounds 21
//! ```

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sapi_benches::fifo_rig::{self, FifoRig, Reader};
use sapi_benches::wakeup::WakeupRig;
use sapi_benches::{anchors, sys};

const CAPACITY: u32 = 4 << 20;

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// The fifo ÷ `rtrb`, GiB/s, per write size.
    Fifo(FifoArgs),
    /// Round trips through two mqs ÷ the raw eventfd ping-pong, µs.
    Wakeup(Rounds),
}

#[derive(Args, Debug)]
struct Rounds {
    /// Rounds (per size): each round runs every member once.
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    /// Target duration of one run, in milliseconds (the anchor's, at calibration).
    #[arg(long, default_value_t = 150)]
    ms: u64,
}

#[derive(Args, Debug)]
struct FifoArgs {
    #[command(flatten)]
    rounds: Rounds,
    /// Write sizes (64B, 1KiB, 64KiB, 1MiB or a byte count).
    #[arg(long, value_delimiter = ',', default_value = "64B,1KiB,64KiB,1MiB")]
    sizes: Vec<String>,
    /// Distance (mod 4096) between the application buffers and the bytes they are copied to.
    #[arg(long, default_value_t = 0)]
    delta: usize,
    /// Add the controls: `rtrb` over 128 KiB, the footprint of eager chunk recycling, and the
    /// fifo drained by VPP's reader, which recycles eagerly.
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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A distribution-free 95% confidence interval for the median of `sorted` (ascending): the
/// order statistics `x(k)` and `x(n+1-k)` for the largest `k` with P(Binomial(n, ½) < k) ≤
/// 2.5%. `None` below 6 samples, where no such `k` exists.
fn median_ci95(sorted: &[f64]) -> Option<(f64, f64)> {
    let n = sorted.len();
    // P(X ≤ j) for X ~ Binomial(n, ½), summed in log space (0.5ⁿ underflows past n ≈ 1000).
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0f64; // ln C(n, j)
    let mut below = 0.0f64; // P(X < k), for k = j + 1 after step j
    let mut k = 0;
    for j in 0..n {
        if j > 0 {
            ln_choose += ((n - j + 1) as f64).ln() - (j as f64).ln();
        }
        below += (ln_choose + ln_half_n).exp();
        if below > 0.025 {
            break;
        }
        k = j + 1;
    }
    (k >= 1).then(|| (sorted[k - 1], sorted[n - k]))
}

/// Runs every member once per round, the order alternating, and returns each member's
/// figures (`run(i)` for member `i`), one per round.
fn alternate(members: usize, rounds: usize, mut run: impl FnMut(usize) -> f64) -> Vec<Vec<f64>> {
    let mut figures = vec![Vec::with_capacity(rounds); members];
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..members).collect()
        } else {
            (0..members).rev().collect()
        };
        for i in order {
            figures[i].push(run(i));
        }
    }
    figures
}

/// One table row per member: its median figure and range, then the median, quartiles and range
/// of its per-round ratio to member 0 (the anchor), and the 95% confidence interval of that
/// median ratio ([`median_ci95`]): a ratio whose interval holds 1.0 is not told apart from the
/// anchor by these rounds.
fn report(label: &str, names: &[&str], figures: &[Vec<f64>]) {
    for (name, fig) in names.iter().zip(figures) {
        let mut ratios: Vec<f64> = fig.iter().zip(&figures[0]).map(|(s, a)| s / a).collect();
        let mut sorted = fig.clone();
        let med = median(&mut sorted);
        let r = median(&mut ratios);
        let q = |p: f64| ratios[((ratios.len() - 1) as f64 * p).round() as usize];
        let ci = median_ci95(&ratios).map_or("—".into(), |(lo, hi)| format!("{lo:.2}–{hi:.2}"));
        println!(
            "| {label} | {name} | {med:.2} | {:.2}–{:.2} | {r:.2}× | {:.2}–{:.2} | {:.2}–{:.2} | {ci} |",
            sorted[0],
            sorted[sorted.len() - 1],
            q(0.25),
            q(0.75),
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
}

fn main() {
    let cli = Cli::parse();
    sys::pin_to(0);
    match cli.what {
        What::Fifo(args) => fifo(args),
        What::Wakeup(rounds) => wakeup(rounds),
    }
}

fn fifo(args: FifoArgs) {
    enum Member<'a> {
        Fifo(&'a FifoRig),
        Rtrb(usize),
    }
    let run = |m: &Member<'_>, size: usize, total: u64| -> Duration {
        match m {
            Member::Fifo(rig) => fifo_rig::threads(rig, size, args.delta, total),
            Member::Rtrb(capacity) => anchors::rtrb_threads(*capacity, size, args.delta, total),
        }
    };
    let (routine, forced) = sys::copy_routine_from_env();
    let Rounds { rounds, ms } = args.rounds;
    println!(
        "{}; producer CPU 0, consumer CPU 1; copy routine {routine:?}{}; delta {}; \
         {rounds} rounds of ~{ms} ms runs, order alternating",
        sys::cpu_line(),
        if forced { " (forced)" } else { "" },
        args.delta,
    );
    let rig = FifoRig::new(CAPACITY);
    let vpp_reader = FifoRig::new(CAPACITY).with_reader(Reader::Vpp);
    let mut members = vec![
        ("rtrb", Member::Rtrb(CAPACITY as usize)),
        ("fifo", Member::Fifo(&rig)),
    ];
    if args.controls {
        members.push(("rtrb_ring128KiB", Member::Rtrb(128 << 10)));
        members.push(("fifo_vpp_reader", Member::Fifo(&vpp_reader)));
    }
    let names: Vec<&str> = members.iter().map(|(n, _)| *n).collect();
    println!(
        "| write | member | median GiB/s | min–max | ÷ rtrb, median of rounds | p25–p75 | min–max | 95% CI of the median |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for name in &args.sizes {
        let size = parse_size(name);
        // Calibrate on the anchor: bytes for ~`ms` per run, a whole number of writes.
        let probe = (64u64 << 20).max(size as u64 * 64);
        let _ = run(&members[0].1, size, probe);
        let d = run(&members[0].1, size, probe);
        let per_ms = probe as f64 / d.as_secs_f64() / 1000.0;
        let writes = ((per_ms * ms as f64) as u64 / size as u64).max(16);
        let total = writes * size as u64;
        let gib_s = |d: Duration| total as f64 / d.as_secs_f64() / (1u64 << 30) as f64;
        let figures = alternate(members.len(), rounds, |i| {
            gib_s(run(&members[i].1, size, total))
        });
        report(name, &names, &figures);
    }
}

fn wakeup(Rounds { rounds, ms }: Rounds) {
    println!(
        "{}; initiator CPU 0, echo CPU 1; {rounds} rounds of ~{ms} ms runs, order alternating",
        sys::cpu_line()
    );
    let rig = WakeupRig::new();
    let members: [(&str, &dyn Fn(u64) -> Duration); 3] = [
        ("raw_eventfd", &|n| rig.raw_eventfd(n)),
        ("mq_eventfd", &|n| rig.mq_eventfd(n)),
        ("mq_mutex", &|n| rig.mq_mutex(n)),
    ];
    // Calibrate on the anchor: round trips for ~`ms` per run.
    let _ = (members[0].1)(1000);
    let d = (members[0].1)(2000);
    let iters = ((ms as f64 / 1000.0 / (d.as_secs_f64() / 2000.0)) as u64).max(100);
    let us = |d: Duration| d.as_secs_f64() * 1e6 / iters as f64;
    let figures = alternate(members.len(), rounds, |i| us((members[i].1)(iters)));
    println!(
        "| {iters} round trips | member | median µs | min–max | ÷ raw eventfd, median of rounds | p25–p75 | min–max | 95% CI of the median |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let names: Vec<&str> = members.iter().map(|(n, _)| *n).collect();
    report("wake-up", &names, &figures);
}

#[cfg(test)]
mod tests {
    use super::median_ci95;

    /// The order statistics of the binomial tables: n = 6 gives (x1, x6), n = 21 (x6, x16),
    /// n = 41 (x14, x28); n = 5 has none.
    #[test]
    fn the_median_interval_takes_the_binomial_order_statistics() {
        let ranks = |n: usize| {
            let v: Vec<f64> = (1..=n).map(|i| i as f64).collect();
            median_ci95(&v).map(|(lo, hi)| (lo as usize, hi as usize))
        };
        assert_eq!(ranks(5), None);
        assert_eq!(ranks(6), Some((1, 6)));
        assert_eq!(ranks(21), Some((6, 16)));
        assert_eq!(ranks(41), Some((14, 28)));
        assert!(ranks(2001).is_some(), "no underflow for long runs");
    }
}
