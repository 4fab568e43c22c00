//! JUnit XML as CI systems read it (Jenkins/GitLab flavour): one `<testsuite>` per area (the
//! first dot-separated part of a name), `<failure>` with the evidence, `<skipped>` with the reason.
//! Expected failures are written as skipped (with the expect-fail reason) so they do not fail the
//! CI; unexpected passes are passing test cases with a `<system-out>` note.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Report, ScenarioResult, Status};

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

pub fn render(r: &Report) -> String {
    let mut areas: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
    for s in &r.scenarios {
        areas
            .entry(s.name.split('.').next().unwrap_or(""))
            .or_default()
            .push(s);
    }
    let count =
        |v: &[&ScenarioResult], f: fn(Status) -> bool| v.iter().filter(|s| f(s.status)).count();
    let mut out = String::new();
    let _ = writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        out,
        "<testsuites name=\"sapi-conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\">",
        r.summary.total,
        r.summary.failed,
        r.summary.skipped + r.summary.expected_failures,
        secs(r.duration_ms)
    );
    for (area, list) in &areas {
        let time: u64 = list.iter().map(|s| s.duration_ms).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\">",
            esc(area),
            list.len(),
            count(list, |s| s == Status::Fail),
            count(list, |s| matches!(s, Status::Skip | Status::ExpectedFail)),
            secs(time)
        );
        let _ = writeln!(out, "    <properties>");
        let _ = writeln!(
            out,
            "      <property name=\"profile\" value=\"{}\"/>",
            r.profile
        );
        let _ = writeln!(
            out,
            "      <property name=\"target\" value=\"{}\"/>",
            esc(&r.target)
        );
        let _ = writeln!(out, "    </properties>");
        for s in list {
            let _ = write!(
                out,
                "    <testcase classname=\"sapi-conformance.{}\" name=\"{}\" time=\"{}\"",
                esc(area),
                esc(&s.name),
                secs(s.duration_ms)
            );
            let evidence = esc(&s.evidence.join("\n"));
            match s.status {
                Status::Pass => {
                    let _ = writeln!(out, "/>");
                }
                Status::Fail => {
                    let first = s.evidence.first().map(String::as_str).unwrap_or("failed");
                    let _ = writeln!(out, ">");
                    let _ = writeln!(
                        out,
                        "      <failure message=\"{}\" type=\"nonconformance\">{} ({})\n{evidence}</failure>",
                        esc(first),
                        esc(&s.summary),
                        esc(&s.spec)
                    );
                    let _ = writeln!(out, "    </testcase>");
                }
                Status::Skip | Status::ExpectedFail => {
                    let why = s.reason.clone().unwrap_or_default();
                    let msg = if s.status == Status::ExpectedFail {
                        format!("expected failure: {why}")
                    } else {
                        why
                    };
                    let _ = writeln!(out, ">");
                    let _ = writeln!(out, "      <skipped message=\"{}\"/>", esc(&msg));
                    if !s.evidence.is_empty() {
                        let _ = writeln!(out, "      <system-out>{evidence}</system-out>");
                    }
                    let _ = writeln!(out, "    </testcase>");
                }
                Status::UnexpectedPass => {
                    let _ = writeln!(out, ">");
                    let _ = writeln!(
                        out,
                        "      <system-out>UNEXPECTED PASS: {evidence}</system-out>"
                    );
                    let _ = writeln!(out, "    </testcase>");
                }
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    let _ = writeln!(out, "</testsuites>");
    out
}
