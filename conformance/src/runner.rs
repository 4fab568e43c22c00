//! Runs the selected scenarios against a target: filtering by glob, expect-fail bookkeeping,
//! `-j N` parallelism (exclusive scenarios run alone, [`MAX_JOBS`] bounds N), and a live
//! progress line (an `indicatif` bar on stderr, drawn only when stderr is a terminal).
//!
//! After every scenario the target must still answer a request ([`Target::check_alive`]). When
//! it does not, the blame goes where the evidence allows:
//! * a scenario that ran alone (every scenario that may crash a server is exclusive) is the one
//!   that brought the target down: it FAILs, named, with how the target went down;
//! * a scenario that ran beside others, or during which the target went down and came back, is
//!   a bystander until proven otherwise: it is run again, alone, after the restart, and its
//!   verdict is that run's (so a scenario that crashes the target beside others is still caught,
//!   alone, on its second run);
//! * without a way to restart (`--restart-cmd`; the embedded reference always has one) the
//!   remaining scenarios SKIP, naming the scenario(s) during which the target went down.
//!
//! A restart happens once, under the exclusive gate (no scenario runs meanwhile), and is
//! confirmed by a successful ATTACH. Each restart starts a new epoch; a scenario that saw the
//! epoch change while it ran knows it was a bystander.
//!
//! Must never: decide a scenario's verdict itself (only map its evidence to a status), or hide a
//! failure: an expected failure that passes is reported as an unexpected pass.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{Report, ScenarioResult, Status};
use crate::scenarios::{Check, Ctx, Scenario, ScenarioError};
use crate::target::{Target, TargetDown};
use crate::wire::Profile;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("bad --filter glob {glob:?}: {source}")]
    Glob {
        glob: String,
        source: globset::Error,
    },
    #[error("reading expect-fail file {path}: {source}")]
    ExpectFailRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "parsing expect-fail file {path} (entries are \"scenario.name\" = \"reason\"): {source}"
    )]
    ExpectFailParse {
        path: PathBuf,
        source: toml::de::Error,
    },
}

/// Scenario name → reason it is expected to fail on this target.
pub type ExpectFail = BTreeMap<String, String>;

/// Which of the two forms a file has: whether it has an `expect-fail` key (any other key and any
/// value is ignored here).
#[derive(serde::Deserialize)]
struct ExpectFailForm {
    #[serde(rename = "expect-fail")]
    section: Option<serde::de::IgnoredAny>,
}

/// The `[expect-fail]` form: every entry in that table, nothing beside it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFailSection {
    #[serde(rename = "expect-fail")]
    section: ExpectFail,
}

/// Reads a TOML file of `"scenario.name" = "reason"` entries, all at the top level or all under
/// an `[expect-fail]` table. Each form is deserialized directly (no flattening), so a value that
/// is not a string, or an entry beside the table, is an error pointing at its line.
pub fn load_expect_fail(path: &Path) -> Result<ExpectFail, RunnerError> {
    let parse = |source| RunnerError::ExpectFailParse {
        path: path.into(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(|source| RunnerError::ExpectFailRead {
        path: path.into(),
        source,
    })?;
    let form: ExpectFailForm = toml::from_str(&text).map_err(parse)?;
    if form.section.is_some() {
        toml::from_str::<ExpectFailSection>(&text)
            .map(|f| f.section)
            .map_err(parse)
    } else {
        toml::from_str(&text).map_err(parse)
    }
}

/// The entries of `xf` that name no scenario of `all` (exact names, no globs): stale entries,
/// in name order.
pub fn unknown_expect_fail<'a>(xf: &'a ExpectFail, all: &[Scenario]) -> Vec<&'a str> {
    xf.keys()
        .map(String::as_str)
        .filter(|name| !all.iter().any(|s| s.name == *name))
        .collect()
}

/// Builds a matcher from `--filter` globs (none = everything).
pub fn filter(globs: &[String]) -> Result<Option<GlobSet>, RunnerError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        for part in g.split(',').filter(|p| !p.is_empty()) {
            b.add(Glob::new(part).map_err(|source| RunnerError::Glob {
                glob: part.into(),
                source,
            })?);
        }
    }
    b.build().map(Some).map_err(|source| RunnerError::Glob {
        glob: globs.join(","),
        source,
    })
}

pub fn select(all: Vec<Scenario>, f: &Option<GlobSet>) -> Vec<Scenario> {
    all.into_iter()
        .filter(|s| f.as_ref().is_none_or(|g| g.is_match(s.name)))
        .collect()
}

/// The most scenarios run at once, whatever `-j` asks (and 0 means 1): the one place `-j` is
/// bounded. Scenarios mostly wait on a socket, so a few more threads than the 2 cores of the
/// project's machines cost little; but each holds its own connections, segments and fds in the
/// target at the same time, and a conformance run should not turn into a test of the target's
/// limits (the load scenarios do that on purpose, alone). The CLI's default is 2; the whole
/// suite passes against the reference at 8 in both profiles.
pub const MAX_JOBS: usize = 8;

pub struct RunConfig {
    pub profile: Profile,
    pub timeout: Duration,
    pub scale: f64,
    /// Scenarios run in parallel; [`run`] bounds it to `1..=MAX_JOBS`.
    pub jobs: usize,
    pub exe: PathBuf,
    pub expect_fail: ExpectFail,
    /// Draw the progress bar (when stderr is a terminal).
    pub progress: bool,
    pub restart: bool,
}

/// The live progress line: `[n/total] ok O fail F skip S  last.scenario`, drawn on stderr only
/// when asked for and stderr is a terminal; hidden otherwise, so logs and tests see nothing.
fn progress_bar(total: usize, wanted: bool) -> ProgressBar {
    if !(wanted && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("[{pos}/{len}] {wide_msg}") {
        bar.set_style(style);
    }
    bar
}

/// Runs one scenario and maps its evidence to a status (before expect-fail).
fn run_one(s: &Scenario, target: &Target, cfg: &RunConfig) -> Outcome {
    let ctx = Ctx {
        target,
        profile: cfg.profile,
        timeout: cfg.timeout,
        scale: cfg.scale,
        exe: cfg.exe.clone(),
        scenario: s.name,
    };
    let mut check = Check::default();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (s.run)(&ctx, &mut check)));
    let mut evidence = check.failures.clone();
    let status = match res {
        Ok(Ok(())) if check.failures.is_empty() => Status::Pass,
        Ok(Ok(())) => Status::Fail,
        Ok(Err(ScenarioError::Skip(reason))) => {
            evidence.extend(check.notes);
            return (Status::Skip, evidence, Some(reason));
        }
        Ok(Err(e)) => {
            evidence.push(e.to_string());
            Status::Fail
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            evidence.push(format!("the suite itself panicked (a suite bug): {msg}"));
            Status::Fail
        }
    };
    evidence.extend(check.notes);
    (status, evidence, None)
}

/// What the workers of one run share: the gate (exclusive scenarios take it for writing), the
/// restart epoch, whether the target is known to be down, and why it is down for good (no
/// restart possible).
struct Shared<'a> {
    target: &'a Target,
    cfg: &'a RunConfig,
    gate: RwLock<()>,
    epoch: AtomicU64,
    /// Set by the check that finds the target down, cleared by the restart: no scenario starts
    /// on a target known to be down (it would take the blame for another's crash).
    known_down: AtomicBool,
    restart_lock: Mutex<()>,
    down_for_good: Mutex<Option<String>>,
}

/// One scenario's outcome before expect-fail: status, evidence, skip reason.
type Outcome = (Status, Vec<String>, Option<String>);

impl Shared<'_> {
    fn down_for_good(&self) -> Option<String> {
        self.down_for_good
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs `s` (alone if it is exclusive) and places the blame if the target went down; a
    /// bystander is run once more, alone.
    fn run_scenario(&self, s: &Scenario) -> Outcome {
        match self.attempt(s, s.exclusive) {
            Attempt::Done(outcome) => outcome,
            Attempt::Bystander(note) => match self.attempt(s, true) {
                Attempt::Done((status, mut evidence, reason)) => {
                    evidence.push(note);
                    (status, evidence, reason)
                }
                // Alone, a run cannot be a bystander; report it rather than loop.
                Attempt::Bystander(again) => (Status::Fail, vec![note, again], None),
            },
        }
    }

    fn attempt(&self, s: &Scenario, alone: bool) -> Attempt {
        loop {
            if let Some(why) = self.down_for_good() {
                return Attempt::Done((Status::Skip, vec![], Some(why)));
            }
            let guard = if alone {
                Guard::Write(self.gate.write().unwrap_or_else(|p| p.into_inner()))
            } else {
                Guard::Read(self.gate.read().unwrap_or_else(|p| p.into_inner()))
            };
            if self.known_down.load(Ordering::SeqCst) {
                // Another scenario found the target down and its restart is pending.
                drop(guard);
                self.bring_back(None);
                continue;
            }
            let epoch_before = self.epoch.load(Ordering::SeqCst);
            let outcome = run_one(s, self.target, self.cfg);
            // Checked under the same guard: nothing that must run alone can start between this
            // scenario's end and its check, and take the blame from it.
            let down = self.target.check_alive().err();
            let restarted = match (&down, guard) {
                (None, _) => Restart::NotNeeded,
                (Some(how), Guard::Write(_nobody_else_runs)) => {
                    self.known_down.store(true, Ordering::SeqCst);
                    self.restart(&format!("target {how} during {}", s.name))
                }
                (Some(how), guard @ Guard::Read(_)) => {
                    self.known_down.store(true, Ordering::SeqCst);
                    drop(guard);
                    self.bring_back(Some(&format!("target {how} during {}", s.name)))
                }
            };
            return self.verdict(s, alone, epoch_before, outcome, down, restarted);
        }
    }

    fn verdict(
        &self,
        s: &Scenario,
        alone: bool,
        epoch_before: u64,
        outcome: Outcome,
        down: Option<TargetDown>,
        restarted: Restart,
    ) -> Attempt {
        let (mut status, mut evidence, reason) = outcome;
        let epoch_changed = self.epoch.load(Ordering::SeqCst) != epoch_before;
        match down {
            // A restart after this scenario had finished is no concern of its verdict.
            None if alone || !epoch_changed => Attempt::Done((status, evidence, reason)),
            // The target went down while this ran beside others, or went down and came back
            // while it ran: its verdict is not its own.
            _ if !alone && !matches!(restarted, Restart::Impossible(_) | Restart::Failed(_)) => {
                Attempt::Bystander(format!(
                    "the target went down while this ran beside other scenarios; this verdict is \
                     from a second run, alone, after the restart (first run: {status:?}{})",
                    evidence
                        .first()
                        .map(|e| format!(", {e}"))
                        .unwrap_or_default()
                ))
            }
            None => Attempt::Done((status, evidence, reason)),
            Some(how) => {
                status = Status::Fail;
                let company = if alone {
                    "it ran alone"
                } else {
                    "it ran beside others"
                };
                evidence.insert(0, format!("target {how} during {} ({company})", s.name));
                match restarted {
                    Restart::Done => {
                        evidence.push("target restarted (confirmed by an ATTACH)".into())
                    }
                    Restart::Impossible(why) | Restart::Failed(why) => evidence.push(why),
                    Restart::NotNeeded | Restart::ByOther => {}
                }
                Attempt::Done((status, evidence, reason))
            }
        }
    }

    /// Restarts the target once, under the exclusive gate, unless another worker already has
    /// (or records that it is down for good). `why` names how it went down, when the caller saw
    /// it; a caller that only found it marked down passes `None`.
    fn bring_back(&self, why: Option<&str>) -> Restart {
        let _one_at_a_time = self.restart_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = self.down_for_good() {
            return Restart::Impossible(why);
        }
        if !self.known_down.load(Ordering::SeqCst) {
            return Restart::ByOther;
        }
        let _nobody_runs = self.gate.write().unwrap_or_else(|p| p.into_inner());
        self.restart(why.unwrap_or("target down"))
    }

    /// The restart itself; the caller holds the gate for writing.
    fn restart(&self, msg: &str) -> Restart {
        if !self.cfg.restart {
            *self.down_for_good.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.to_owned());
            return Restart::Impossible(format!("{msg}; no --restart-cmd: the rest SKIP"));
        }
        match self.target.restart() {
            Ok(()) => {
                self.epoch.fetch_add(1, Ordering::SeqCst);
                self.known_down.store(false, Ordering::SeqCst);
                Restart::Done
            }
            Err(e) => {
                let why = format!("{msg} (restart failed: {e})");
                *self.down_for_good.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                Restart::Failed(why)
            }
        }
    }
}

/// The gate as held by one run: shared, or alone. Holding it is its whole use.
enum Guard<'a> {
    Read(#[allow(dead_code)] std::sync::RwLockReadGuard<'a, ()>),
    Write(#[allow(dead_code)] std::sync::RwLockWriteGuard<'a, ()>),
}

enum Attempt {
    Done(Outcome),
    /// Not this scenario's verdict: run it again alone (the note says why).
    Bystander(String),
}

enum Restart {
    NotNeeded,
    Done,
    ByOther,
    Impossible(String),
    Failed(String),
}

/// Runs `scenarios` against `target`.
pub fn run(scenarios: &[Scenario], target: &Target, cfg: &RunConfig) -> Report {
    let started = Instant::now();
    let results: Mutex<Vec<Option<ScenarioResult>>> = Mutex::new(vec![None; scenarios.len()]);
    let next = AtomicUsize::new(0);
    let shared = Shared {
        target,
        cfg,
        gate: RwLock::new(()),
        epoch: AtomicU64::new(0),
        known_down: AtomicBool::new(false),
        restart_lock: Mutex::new(()),
        down_for_good: Mutex::new(None),
    };
    let counts = Mutex::new([0usize; 3]);
    let bar = progress_bar(scenarios.len(), cfg.progress);
    let jobs = cfg.jobs.clamp(1, MAX_JOBS);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(s) = scenarios.get(i) else { break };
                    let t0 = Instant::now();
                    let (mut status, mut evidence, mut reason) = shared.run_scenario(s);
                    if let Some(why) = cfg.expect_fail.get(s.name) {
                        match status {
                            Status::Fail => {
                                status = Status::ExpectedFail;
                                reason = Some(why.clone());
                            }
                            Status::Pass => {
                                status = Status::UnexpectedPass;
                                evidence.insert(0, format!("expected to fail ({why}) but passed"));
                                reason = Some(why.clone());
                            }
                            _ => {}
                        }
                    }
                    let res = ScenarioResult {
                        name: s.name.to_string(),
                        spec: s.spec.to_string(),
                        summary: s.summary.to_string(),
                        status,
                        duration_ms: t0.elapsed().as_millis() as u64,
                        reason,
                        evidence: std::mem::take(&mut evidence),
                    };
                    if !bar.is_hidden() {
                        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
                        match status {
                            Status::Pass | Status::ExpectedFail => c[0] += 1,
                            Status::Fail | Status::UnexpectedPass => c[1] += 1,
                            Status::Skip => c[2] += 1,
                        }
                        bar.set_message(format!(
                            "ok {} fail {} skip {}  {}",
                            c[0], c[1], c[2], s.name
                        ));
                        bar.inc(1);
                    }
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(res);
                }
            });
        }
    });
    bar.finish_and_clear();
    let scenarios: Vec<ScenarioResult> = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect();
    Report::new(
        target.description(),
        cfg.profile,
        started.elapsed().as_millis() as u64,
        scenarios,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_fail_accepts_top_level_and_table() {
        let dir = std::env::temp_dir().join(format!("sapi-conf-xf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let a = dir.join("a.toml");
        std::fs::write(&a, "\"hygiene.unattached_close\" = \"leaks\"\n").expect("write");
        assert_eq!(
            load_expect_fail(&a).expect("a")["hygiene.unattached_close"],
            "leaks"
        );
        std::fs::write(&a, "[expect-fail]\n\"x.y\" = \"why\"\n").expect("write");
        assert_eq!(load_expect_fail(&a).expect("b")["x.y"], "why");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A bad entry is a typed parse error that names the file and shows the offending line.
    #[rstest::rstest]
    #[case::integer_at_top_level("\"a.b\" = \"ok\"\n\"x.y\" = 3\n", &["line 2", "\"x.y\" = 3", "integer", "expected a string"])]
    #[case::table_in_the_section(
        "[expect-fail]\n\"a.b\" = \"ok\"\n\"x.y\" = { why = \"no\" }\n",
        &["line 3", "\"x.y\" = {", "expected a string"]
    )]
    #[case::entry_beside_the_section(
        "\"x.y\" = \"why\"\n[expect-fail]\n\"a.b\" = \"ok\"\n",
        &["line 1", "unknown field `x.y`"]
    )]
    #[case::not_toml("\"x.y\" = \n", &["line 1"])]
    fn bad_expect_fail_entries_name_the_file_and_line(#[case] text: &str, #[case] wanted: &[&str]) {
        // One file per case: the cases run in parallel, and two may expect the same line.
        static CASE: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sapi-conf-xf-bad-{}-{}.toml",
            std::process::id(),
            CASE.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, text).expect("write");
        let e = load_expect_fail(&path).expect_err("bad file");
        let _ = std::fs::remove_file(&path);
        assert!(matches!(e, RunnerError::ExpectFailParse { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        for w in wanted {
            assert!(msg.contains(w), "{w:?} not in:\n{msg}");
        }
    }

    #[test]
    fn filters_select_by_glob() {
        let f = filter(&["attach.reply.*,worker.add.*".into()]).expect("glob");
        let names: Vec<_> = select(crate::scenarios::all(), &f)
            .iter()
            .map(|s| s.name)
            .collect();
        assert!(names.contains(&"attach.reply.fd_order"));
        assert!(names.contains(&"worker.add.bad_app_index"));
        assert!(!names.iter().any(|n| n.starts_with("hygiene")));
    }

    #[test]
    fn scenario_names_are_unique_and_dotted() {
        let all = crate::scenarios::all();
        let mut seen = std::collections::HashSet::new();
        for s in &all {
            assert!(seen.insert(s.name), "duplicate {}", s.name);
            assert!(s.name.split('.').count() >= 2, "{}", s.name);
            assert!(!s.spec.is_empty());
        }
    }
}
