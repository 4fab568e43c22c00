//! The scenarios: each a stable name, the sections of `docs/` it checks, and a function that
//! drives the target through real sockets and records expected-vs-observed evidence in a
//! [`Check`].
//!
//! One module per area. A scenario never decides how it is reported or whether its failure is
//! expected — that is the runner's job — and it never reaches into the target other than through
//! its socket, the optional triggers of [`crate::target`], and `/proc` for hygiene.

use std::fmt::Debug;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::client::{ClientError, Conn, Exchange};
use crate::fds::{FdError, FdInfo, FdKind, describe};
use crate::shm::{self, Segment, ShmError};
use crate::target::{Target, TargetError};
use crate::wire::{AttachReply, AttachRequest, Profile, fd_flag};

pub mod attach;
pub mod certkey;
pub mod detach;
pub mod fdpass;
pub mod hygiene;
pub mod load;
pub mod malformed;
pub mod namespace;
pub mod owned;
pub mod robustness;
pub mod session;
pub mod transport;
pub mod worker;

/// One scenario of the suite.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Stable name, `area.subject.aspect`.
    pub name: &'static str,
    /// The sections of the project's protocol documents (`docs/`) it checks, as citations in
    /// the convention of `docs/README.md`: `protocol §6.2, §8.3; vpp-26.10 §9.3`.
    pub spec: &'static str,
    /// One line saying what it checks.
    pub summary: &'static str,
    /// Runs alone: it observes global server state (fd counts, app indices) others would disturb.
    pub exclusive: bool,
    pub run: fn(&Ctx, &mut Check) -> Result<(), ScenarioError>,
}

impl Scenario {
    /// A scenario that may run beside others.
    pub const fn new(
        name: &'static str,
        spec: &'static str,
        summary: &'static str,
        run: fn(&Ctx, &mut Check) -> Result<(), ScenarioError>,
    ) -> Self {
        Scenario {
            name,
            spec,
            summary,
            exclusive: false,
            run,
        }
    }

    /// The same scenario, run alone.
    pub const fn exclusive(self) -> Self {
        Scenario {
            exclusive: true,
            ..self
        }
    }
}

impl Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every scenario, in run order.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    // The namespace scenarios need the target's own control channel (--ns-add-cmd), and the
    // session scenarios its session queue; VPP 26.10 serves neither once enough leaked sockets
    // spin its main loop (docs/vpp-26.10.md §9.8), which the scenarios below leave behind on
    // such a server: they run first, on a fresh one.
    v.extend(namespace::scenarios());
    v.extend(session::scenarios());
    v.extend(transport::scenarios());
    v.extend(attach::scenarios());
    v.extend(worker::scenarios());
    v.extend(certkey::scenarios());
    v.extend(malformed::scenarios());
    v.extend(fdpass::scenarios());
    v.extend(detach::scenarios());
    v.extend(load::scenarios());
    v.extend(hygiene::scenarios());
    // Last: on a server that leaks them, its closed sockets keep its main loop busy from here on.
    v.extend(robustness::scenarios());
    v
}

/// What a scenario may use.
pub struct Ctx<'a> {
    pub target: &'a Target,
    pub profile: Profile,
    /// Bound on every single wait.
    pub timeout: Duration,
    pub scale: f64,
    /// The suite's own binary, run as `client …` for crash-test children.
    pub exe: PathBuf,
    /// The scenario's name, used in app names so a server log can be correlated.
    pub scenario: &'static str,
}

impl Ctx<'_> {
    pub fn connect(&self) -> Result<Conn, ScenarioError> {
        Ok(Conn::connect(self.target.endpoint(), self.timeout)?)
    }
    /// A short app name for this scenario (≤ 63 bytes).
    pub fn app_name(&self) -> String {
        let mut n = format!("conf-{}", self.scenario);
        n.truncate(63);
        n
    }
    /// Connects and attaches a well-behaved app; FAILs (as an error) unless retval is 0.
    pub fn attach_ok(&self, eventfd: bool) -> Result<(Conn, Exchange<AttachReply>), ScenarioError> {
        let c = self.connect()?;
        let e = c.attach(&AttachRequest::probe(&self.app_name(), eventfd))?;
        if e.reply.retval != 0 {
            return Err(ScenarioError::Setup(format!(
                "setup ATTACH failed: retval {}",
                self.profile.retval_name(e.reply.retval)
            )));
        }
        Ok((c, e))
    }
    pub fn scaled(&self, n: usize) -> usize {
        ((n as f64 * self.scale).round() as usize).max(1)
    }
}

/// Why a scenario stopped early. All but `Skip` are FAILs whose message is evidence.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("shared memory: {0}")]
    Shm(#[from] ShmError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Fd(#[from] FdError),
    #[error("{0}")]
    Setup(String),
    #[error("skipped: {0}")]
    Skip(String),
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
}

macro_rules! session_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for ScenarioError {
            fn from(e: $t) -> Self {
                ScenarioError::Session(e.into())
            }
        }
    )*};
}
session_errors!(
    crate::session::mem::MemError,
    crate::session::fifo::FifoError,
    crate::session::mq::MqError
);

/// Expected-vs-observed evidence collected by a scenario.
#[derive(Debug, Default)]
pub struct Check {
    pub failures: Vec<String>,
    pub notes: Vec<String>,
}

impl Check {
    /// Records a failure unless `observed == expected`.
    pub fn eq<T: PartialEq + Debug>(&mut self, what: &str, expected: T, observed: T) -> bool {
        if expected == observed {
            true
        } else {
            self.failures.push(format!(
                "{what}: expected {expected:?}, observed {observed:?}"
            ));
            false
        }
    }
    /// Records a retval mismatch with both values named under `profile`.
    pub fn retval(&mut self, what: &str, profile: Profile, expected: i32, observed: i32) -> bool {
        if expected == observed {
            true
        } else {
            self.failures.push(format!(
                "{what}: expected {}, observed {}",
                profile.retval_name(expected),
                profile.retval_name(observed)
            ));
            false
        }
    }
    /// Records `failure` unless `ok`.
    pub fn that(&mut self, ok: bool, failure: impl Into<String>) -> bool {
        if !ok {
            self.failures.push(failure.into());
        }
        ok
    }
    pub fn fail(&mut self, failure: impl Into<String>) {
        self.failures.push(failure.into());
    }
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
    pub fn all(&mut self, failures: Vec<String>) {
        self.failures.extend(failures);
    }
}

pub fn skip(reason: impl Into<String>) -> Result<(), ScenarioError> {
    Err(ScenarioError::Skip(reason.into()))
}

/// The fd kinds `fd_flags` announces, in the fixed order of `docs/protocol.md` §5.3.
pub fn expected_kinds(fd_flags: u8) -> Vec<&'static str> {
    let mut v = Vec::new();
    if fd_flags & fd_flag::VPP_MQ_SEGMENT != 0 {
        v.push("memfd");
    }
    if fd_flags & fd_flag::MEMFD_SEGMENT != 0 {
        v.push("memfd");
    }
    if fd_flags & fd_flag::MQ_EVENTFD != 0 {
        v.push("eventfd");
    }
    if fd_flags & fd_flag::VPP_MQ_EVENTFD != 0 {
        v.push("eventfd…");
    }
    v
}

/// Checks `n_fds` = popcount(`fd_flags`) (no private rx mqs) = fds received, and the kinds in order.
pub fn check_fds(c: &mut Check, what: &str, n_fds: u8, fd_flags: u8, infos: &[FdInfo]) {
    let kinds: Vec<&str> = infos.iter().map(|i| i.kind.short()).collect();
    c.eq(
        &format!("{what}: fds received = n_fds"),
        n_fds as usize,
        infos.len(),
    );
    if fd_flags & fd_flag::VPP_MQ_EVENTFD == 0 {
        c.eq(
            &format!("{what}: n_fds = popcount(fd_flags {fd_flags:#04x})"),
            fd_flags.count_ones(),
            u32::from(n_fds),
        );
        c.that(
            kinds == expected_kinds(fd_flags),
            format!(
                "{what}: fd kinds in order: expected {:?} for fd_flags {fd_flags:#04x}, observed {}",
                expected_kinds(fd_flags),
                describe(infos)
            ),
        );
    }
}

/// Maps a memfd read-only and checks its ssvm and fifo-segment headers (`docs/shm.md` §2, §3.1).
pub fn check_segment(c: &mut Check, what: &str, fd: impl AsFd, info: &FdInfo) -> Option<Segment> {
    if !matches!(info.kind, FdKind::Memfd { .. }) {
        c.fail(format!("{what}: expected a memfd, observed {info}"));
        return None;
    }
    match Segment::open(fd, false) {
        Ok(seg) => {
            for v in shm::ssvm_violations(&seg.ssvm, info.size) {
                c.fail(format!("{what}: {v}"));
            }
            for v in shm::fsh_violations(&seg.fsh, &seg) {
                c.fail(format!("{what}: {v}"));
            }
            Some(seg)
        }
        Err(e) => {
            c.fail(format!("{what}: {e}"));
            None
        }
    }
}

/// Ring lengths of an app event mq with queue length q (`docs/shm.md` §3.5): ring 0 q, ring 1
/// max(16, q/16).
pub fn app_ring_lens(q: u32) -> [u32; 2] {
    [q, (q / 16).max(16)]
}

/// Retries a worker ADD for `app` until it is refused with INVALID (the app is gone) or the
/// deadline passes. A successful add means an app holds that index: that probe socket is closed
/// (removing only the probe's worker) and the probe repeats. The protocol has no "app freed"
/// event, so this bounded retry is the only protocol-level observation there is.
///
/// It observes an index, not an app: a server may hand a freed index to the next ATTACH at once
/// (VPP's pools do, `docs/vpp-26.10.md` §12), and then the probe finds that other app. So call
/// it only from an exclusive scenario, and before anything in it ATTACHes after the detach; and
/// where the server's `/proc` can be read, judge first by the app's own resources
/// ([`owned::ServerView::wait_released`]), as the detach scenarios do.
pub fn wait_app_gone(ctx: &Ctx, app: u32) -> Result<Result<Duration, String>, ScenarioError> {
    let start = Instant::now();
    let deadline = start + ctx.timeout;
    let mut backoff = Duration::from_millis(1);
    loop {
        let c = ctx.connect()?;
        let e = c.worker_add(app, ctx.profile)?;
        if e.reply.retval == ctx.profile.err_invalid() {
            return Ok(Ok(start.elapsed()));
        }
        let last = format!(
            "worker ADD for app {app} answered retval {} (an app still holds the index)",
            ctx.profile.retval_name(e.reply.retval)
        );
        drop(c);
        if Instant::now() >= deadline {
            return Ok(Err(format!("{last} {:?} after the detach", ctx.timeout)));
        }
        std::thread::park_timeout(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(50));
    }
}

/// Waits for EOF on `c` within the bound: true on EOF, false if data arrived or time ran out
/// (described in `c`'s evidence by the caller).
pub fn wait_eof(c: &Conn) -> Result<Result<(), String>, ScenarioError> {
    use crate::client::Recv;
    match c.recv(crate::client::DEFAULT_MAX_FDS)? {
        Recv::Eof => Ok(Ok(())),
        Recv::Timeout => Ok(Err(format!("no EOF within {:?}", c.timeout))),
        Recv::Msg(m) => Ok(Err(format!(
            "expected EOF, received a datagram: {}",
            crate::wire::dump(&m.bytes)
        ))),
    }
}
