//! Per-operation latencies for the latency benches: criterion estimates the mean time per
//! iteration; the issue also asks for the median and the 99th percentile of single
//! operations, which these record and write beside criterion's own files as
//! `target/criterion/<group>/<bench>/latency.json`.

use std::path::PathBuf;
use std::time::Duration;

/// Every single-operation time of one bench.
#[derive(Debug, Default)]
pub struct Latencies(Vec<Duration>);

/// Median, p99 and count of a set of latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Median.
    pub median: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Number of operations.
    pub n: usize,
}

impl Latencies {
    /// Records one operation.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Median and p99 (`None` if nothing was recorded).
    pub fn summary(&self) -> Option<Summary> {
        if self.0.is_empty() {
            return None;
        }
        let mut v = self.0.clone();
        v.sort_unstable();
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Summary {
            median: rank(0.5),
            p99: rank(0.99),
            n: v.len(),
        })
    }

    /// Prints the summary and writes it to criterion's directory for `group/bench`.
    pub fn report(&self, group: &str, bench: &str) {
        let Some(s) = self.summary() else { return };
        println!(
            "{group}/{bench}: latency median {:.1} µs, p99 {:.1} µs over {} operations",
            s.median.as_secs_f64() * 1e6,
            s.p99.as_secs_f64() * 1e6,
            s.n
        );
        let dir = criterion_dir().join(group).join(bench);
        let json = format!(
            "{{\"median_ns\":{},\"p99_ns\":{},\"n\":{}}}\n",
            s.median.as_nanos(),
            s.p99.as_nanos(),
            s.n
        );
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join("latency.json"), json);
        }
    }
}

/// `target/criterion` of the running bench binary: `$CARGO_TARGET_DIR` if set, else found
/// from the executable's path (`target/<profile>/deps/<bench>`).
pub fn criterion_dir() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(|p| p.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}
