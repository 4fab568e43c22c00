//! The outcome of a run and its three renderings: a human summary table ([`human`]), JSON (the
//! [`Report`] serialised: a top-level `scenarios` array), and JUnit XML ([`junit`]).
//!
//! Must never: change a status, or drop evidence.

use serde::Serialize;

use crate::wire::Profile;

pub mod human;
pub mod junit;

/// A scenario's final status after expect-fail bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    /// Failed, and listed in the expect-fail file: does not fail the gate.
    ExpectedFail,
    /// Listed in the expect-fail file but passed: reported, does not fail the gate.
    UnexpectedPass,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
            Status::ExpectedFail => "XFAIL",
            Status::UnexpectedPass => "XPASS",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub spec: String,
    pub summary: String,
    pub status: Status,
    pub duration_ms: u64,
    /// Skip reason, or the expect-fail reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Expected-vs-observed lines for failures, then notes.
    pub evidence: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub expected_failures: usize,
    pub unexpected_passes: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub tool: String,
    pub version: String,
    pub target: String,
    pub profile: Profile,
    pub duration_ms: u64,
    pub summary: Summary,
    pub scenarios: Vec<ScenarioResult>,
}

impl Report {
    pub fn new(
        target: String,
        profile: Profile,
        duration_ms: u64,
        scenarios: Vec<ScenarioResult>,
    ) -> Self {
        let mut s = Summary {
            total: scenarios.len(),
            ..Summary::default()
        };
        for r in &scenarios {
            match r.status {
                Status::Pass => s.passed += 1,
                Status::Fail => s.failed += 1,
                Status::Skip => s.skipped += 1,
                Status::ExpectedFail => s.expected_failures += 1,
                Status::UnexpectedPass => s.unexpected_passes += 1,
            }
        }
        Report {
            tool: "sapi-conformance".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            target,
            profile,
            duration_ms,
            summary: s,
            scenarios,
        }
    }

    /// The CI gate: true when no scenario that was not expected to fail failed.
    pub fn gate_passed(&self) -> bool {
        self.summary.failed == 0
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}
