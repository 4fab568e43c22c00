//! The summary a person reads at the end of a run: one row per scenario, then the evidence of
//! every non-passing one, then the totals line.
//!
//! Must never: shorten or leave out the evidence of a non-passing scenario (each line is printed as
//! it is), or judge anything itself: the statuses, the totals and PASSED/FAILED all come from the
//! [`Report`].

use std::fmt::Write;

use super::{Report, Status};

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let w = r
        .scenarios
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(10)
        .max(8);
    let _ = writeln!(out, "{:<w$}  {:<6} {:>8}  spec", "scenario", "status", "ms");
    for s in &r.scenarios {
        let _ = writeln!(
            out,
            "{:<w$}  {:<6} {:>8}  {}",
            s.name,
            s.status.label(),
            s.duration_ms,
            s.spec
        );
    }
    let mut details = r
        .scenarios
        .iter()
        .filter(|s| !matches!(s.status, Status::Pass))
        .peekable();
    if details.peek().is_some() {
        let _ = writeln!(out);
    }
    for s in details {
        let _ = writeln!(
            out,
            "{} {} — {} ({})",
            s.status.label(),
            s.name,
            s.summary,
            s.spec
        );
        if let Some(reason) = &s.reason {
            let _ = writeln!(out, "    reason: {reason}");
        }
        for e in &s.evidence {
            let _ = writeln!(out, "    {e}");
        }
    }
    let m = &r.summary;
    let _ = writeln!(
        out,
        "\n{}: {} passed, {} failed, {} skipped, {} expected failures, {} unexpected passes ({} scenarios, {:.1} s, profile {}, target {})",
        if r.gate_passed() { "PASSED" } else { "FAILED" },
        m.passed,
        m.failed,
        m.skipped,
        m.expected_failures,
        m.unexpected_passes,
        m.total,
        r.duration_ms as f64 / 1000.0,
        r.profile,
        r.target
    );
    out
}
