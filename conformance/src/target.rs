//! The server under test: the embedded reference (the suite's own binary run as
//! `sapi-conformance reference serve …` in a child process, never in-process, so its fds and
//! mappings are its own), or any server reachable at a socket path or an abstract name.
//!
//! Owns: starting and stopping the embedded child (waiting for its `READY` line with a bound),
//! the target's pid (`SO_PEERCRED` on the suite's own connection, or `--target-pid`), liveness,
//! restart (`--restart-cmd`, or respawning the embedded child), and the optional triggers the
//! protocol itself cannot express (segment add, namespace add/delete): embedded ones call the
//! reference's CLI; for other targets they are user-given shell commands with placeholders
//! (`{ns}`, `{sock}`, `{app}`, `{wrk}`), each replaced by its value quoted for `sh` with
//! `shlex`, so a namespace or socket name with a space or a quote stays one word and cannot
//! inject a command.
//!
//! Must never: link to the reference's server code (only its CLI entry point, from the binary),
//! wait without a bound, or leave the child or its runtime directory behind.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client::{ClientError, Conn, Endpoint, wait_readable};
use crate::wire::{AttachRequest, Profile};

/// How to reach (and possibly start) the target.
#[derive(Clone, Debug)]
pub enum TargetKind {
    /// Spawn `exe reference serve --runtime-dir <tmp> --profile P [--inject-fault F]…`.
    Embedded { exe: PathBuf, faults: Vec<String> },
    /// An already running server.
    External(Endpoint),
}

#[derive(Clone, Debug)]
pub struct TargetConfig {
    pub kind: TargetKind,
    pub profile: Profile,
    pub timeout: Duration,
    pub target_pid: Option<u32>,
    /// No placeholders.
    pub restart_cmd: Option<String>,
    /// `{app}` `{wrk}` are replaced (see [`fill_template`]).
    pub segment_add_cmd: Option<String>,
    /// `{ns}` and `{sock}` are replaced (see [`fill_template`]).
    pub ns_add_cmd: Option<String>,
    /// `{ns}` is replaced (see [`fill_template`]).
    pub ns_del_cmd: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("creating the runtime directory: {0}")]
    TempDir(nix::errno::Errno),
    #[error("spawning {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "embedded reference did not print READY within {after:?}; stdout: {stdout:?}; log tail: {log}"
    )]
    NotReady {
        after: Duration,
        stdout: String,
        log: String,
    },
    #[error("command `{cmd}` failed ({status}); output: {output}")]
    Command {
        cmd: String,
        status: String,
        output: String,
    },
    #[error("command `{cmd}` did not finish within {after:?}")]
    CommandTimeout { cmd: String, after: Duration },
    #[error("no {0} trigger: give --{0}-cmd to run this against a non-embedded target")]
    NoTrigger(&'static str),
    #[error("target did not accept an ATTACH within {after:?} of its restart (last: {last})")]
    NoRestart { after: Duration, last: String },
    #[error("no --restart-cmd given")]
    NoRestartCmd,
    #[error("cannot quote {value:?} for {{{placeholder}}} in `{template}`: {source}")]
    Quote {
        template: String,
        placeholder: String,
        value: String,
        source: shlex::QuoteError,
    },
}

/// A running embedded child with the pipe whose EOF tells us it exited.
struct Embedded {
    child: Child,
    stdout: ChildStdout,
}

/// The target for one suite run.
pub struct Target {
    cfg: TargetConfig,
    endpoint: Endpoint,
    runtime_dir: Option<PathBuf>,
    embedded: Mutex<Option<Embedded>>,
    /// The server's pid as first seen since the last (re)start.
    pid_seen: Mutex<Option<u32>>,
    /// One unattached connection, kept for the liveness checks and the server's pid: a server
    /// that never frees a socket that did not attach (VPP 26.10, `docs/vpp-26.10.md` §9.1)
    /// would otherwise gain a leaked socket per check, and with enough of them stop serving
    /// (§9.8).
    probe: Mutex<Option<Conn>>,
}

/// How a target that stopped serving looks from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetDown {
    /// The process is gone (or, with no pid known, nothing answers at all).
    Exited(String),
    /// The process still exists but does not answer: hung, or too busy to serve.
    NotAnswering { pid: u32, why: String },
}

impl std::fmt::Display for TargetDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetDown::Exited(why) => write!(f, "died: {why}"),
            TargetDown::NotAnswering { pid, why } => {
                write!(
                    f,
                    "stopped answering (process {pid} still exists: hung?): {why}"
                )
            }
        }
    }
}

/// An app index no server hands out (VPP and the reference start at 1 and count up from there),
/// used for requests that must change nothing.
pub const GHOST_APP: u32 = 0x00ff_fff0;

/// Whether `pid` is a live process: signal 0 reaches it and it is not a zombie (a crashed
/// server nobody has reaped yet).
fn process_exists(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if let Err(nix::errno::Errno::ESRCH) =
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None)
    {
        return false;
    }
    // `/proc/<pid>/stat`: "pid (comm) S ...", the state after the last ')'.
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace()
                .next()
                .map(|st| st == "Z" || st == "X")
        })
        .unwrap_or(false);
    !zombie
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("endpoint", &self.endpoint)
            .field("runtime_dir", &self.runtime_dir)
            .finish()
    }
}

impl Target {
    /// Starts the embedded reference (and waits for READY) or just records an external endpoint.
    pub fn start(cfg: TargetConfig) -> Result<Self, TargetError> {
        match &cfg.kind {
            TargetKind::External(ep) => Ok(Target {
                endpoint: ep.clone(),
                cfg,
                runtime_dir: None,
                embedded: Mutex::new(None),
                pid_seen: Mutex::new(None),
                probe: Mutex::new(None),
            }),
            TargetKind::Embedded { .. } => {
                let template = std::env::temp_dir().join("sapi-conformance-XXXXXX");
                let dir = nix::unistd::mkdtemp(&template).map_err(TargetError::TempDir)?;
                let endpoint = Endpoint::Path(dir.join("app_ns_sockets").join("default"));
                let t = Target {
                    cfg,
                    endpoint,
                    runtime_dir: Some(dir),
                    embedded: Mutex::new(None),
                    pid_seen: Mutex::new(None),
                    probe: Mutex::new(None),
                };
                t.spawn_embedded()?;
                Ok(t)
            }
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self.cfg.kind, TargetKind::Embedded { .. })
    }

    pub fn runtime_dir(&self) -> Option<&Path> {
        self.runtime_dir.as_deref()
    }

    pub fn description(&self) -> String {
        match &self.cfg.kind {
            TargetKind::Embedded { faults, .. } if faults.is_empty() => {
                format!("embedded reference at {}", self.endpoint)
            }
            TargetKind::Embedded { faults, .. } => format!(
                "embedded reference at {} with faults {}",
                self.endpoint,
                faults.join(",")
            ),
            TargetKind::External(ep) => ep.to_string(),
        }
    }

    fn spawn_embedded(&self) -> Result<(), TargetError> {
        let TargetKind::Embedded { exe, faults } = &self.cfg.kind else {
            return Ok(());
        };
        let Some(dir) = &self.runtime_dir else {
            return Ok(());
        };
        let log =
            std::fs::File::create(dir.join("server.log")).map_err(|source| TargetError::Spawn {
                what: "server log".into(),
                source,
            })?;
        let mut cmd = Command::new(exe);
        cmd.arg("reference")
            .arg("serve")
            .arg("--runtime-dir")
            .arg(dir)
            .arg("--profile")
            .arg(self.cfg.profile.to_string());
        for f in faults {
            cmd.arg("--inject-fault").arg(f);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|source| TargetError::Spawn {
                what: format!("{} reference serve", exe.display()),
                source,
            })?;
        let Some(mut stdout) = child.stdout.take() else {
            return Err(TargetError::Spawn {
                what: "reference stdout".into(),
                source: std::io::Error::other("no stdout pipe"),
            });
        };
        match read_line_within(&mut stdout, self.cfg.timeout.max(Duration::from_secs(10))) {
            Some(line) if line.trim() == "READY" => {
                *self.lock() = Some(Embedded { child, stdout });
                Ok(())
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                Err(TargetError::NotReady {
                    after: self.cfg.timeout,
                    stdout: other.unwrap_or_default(),
                    log: self.log_tail(),
                })
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Embedded>> {
        self.embedded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Last lines of the embedded server's stderr, for "target died" evidence.
    pub fn log_tail(&self) -> String {
        let Some(dir) = &self.runtime_dir else {
            return String::new();
        };
        let text = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// The server's pid: `--target-pid`, else `SO_PEERCRED` on a fresh connection of our own.
    pub fn pid(&self) -> Option<u32> {
        if let Some(p) = self.cfg.target_pid {
            return Some(p);
        }
        self.with_probe(|c| Ok(c.peer_pid())).ok().flatten()
    }

    /// Runs `f` on the kept probe connection, connecting it first if there is none. A
    /// connection the server closed (it restarted, or it dropped the probe) is replaced once;
    /// a timeout is the answer, not a reason to try again.
    fn with_probe<T>(&self, f: impl Fn(&Conn) -> Result<T, ClientError>) -> Result<T, ClientError> {
        let mut probe = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = probe.as_ref() {
            match f(conn) {
                Err(e @ ClientError::Timeout { .. }) => return Err(e),
                Err(_) => *probe = None,
                ok => return ok,
            }
        }
        let conn = Conn::connect(&self.endpoint, self.cfg.timeout)?;
        let out = f(&conn)?;
        *probe = Some(conn);
        Ok(out)
    }

    /// Whether the target still serves: it answers a request, not merely a connect (the kernel
    /// queues connections on a dying server's listener until its backlog fills). The request is
    /// a worker ADD for an app index no server hands out, which every revision answers and which
    /// changes nothing. When it is down, says whether its process is gone or alive but silent.
    pub fn check_alive(&self) -> Result<(), TargetDown> {
        let pid = self.known_pid();
        let answer = self.with_probe(|c| c.worker_add(GHOST_APP, self.cfg.profile).map(drop));
        let Err(e) = answer else {
            return Ok(());
        };
        // A process that is exiting closes its sockets before it is gone: give it a moment
        // (bounded) before calling it hung.
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut backoff = Duration::from_millis(1);
        loop {
            if let Some(status) = self.embedded_exit() {
                return Err(TargetDown::Exited(format!(
                    "embedded reference exited: {status} ({e}); log: {}",
                    self.log_tail()
                )));
            }
            match pid {
                Some(pid) if !process_exists(pid) => {
                    return Err(TargetDown::Exited(format!("process {pid} is gone ({e})")));
                }
                None => return Err(TargetDown::Exited(e.to_string())),
                Some(pid) if Instant::now() >= deadline => {
                    return Err(TargetDown::NotAnswering {
                        pid,
                        why: e.to_string(),
                    });
                }
                Some(_) => {}
            }
            std::thread::park_timeout(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }

    /// How the embedded child exited, if it did.
    fn embedded_exit(&self) -> Option<std::process::ExitStatus> {
        self.lock().as_mut()?.child.try_wait().ok().flatten()
    }

    /// The server's pid as first seen (`--target-pid`, or `SO_PEERCRED`), remembered so that a
    /// dead server can still be told from a silent one.
    fn known_pid(&self) -> Option<u32> {
        let mut known = self.pid_seen.lock().unwrap_or_else(|p| p.into_inner());
        if known.is_none() {
            *known = self.pid();
        }
        *known
    }

    /// Restarts the target — respawns the embedded child, or runs `--restart-cmd` — and confirms
    /// it with a successful ATTACH (a connect proves nothing: see [`Target::check_alive`]),
    /// retrying within a bound.
    pub fn restart(&self) -> Result<(), TargetError> {
        *self.pid_seen.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.probe.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if self.is_embedded() {
            if let Some(mut e) = self.lock().take() {
                let _ = e.child.kill();
                let _ = e.child.wait();
            }
            self.spawn_embedded()?;
        } else {
            let cmd = self
                .cfg
                .restart_cmd
                .clone()
                .ok_or(TargetError::NoRestartCmd)?;
            run_shell(&cmd, self.cfg.timeout)?;
        }
        let bound = self.cfg.timeout.max(Duration::from_secs(20));
        let deadline = Instant::now() + bound;
        let mut backoff = Duration::from_millis(5);
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            match self.confirm_attach() {
                Ok(()) => return Ok(()),
                Err(why) => last = why,
            }
            // Nothing to wait on for "a foreign server came back": bounded, growing retries.
            std::thread::park_timeout(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
        Err(TargetError::NoRestart { after: bound, last })
    }

    /// One ATTACH on a fresh connection that succeeds with its fds, then closed.
    fn confirm_attach(&self) -> Result<(), String> {
        let conn = Conn::connect(&self.endpoint, self.cfg.timeout).map_err(|e| e.to_string())?;
        let e = conn
            .attach(&AttachRequest::probe(
                "sapi-conformance-restart-check",
                true,
            ))
            .map_err(|e| e.to_string())?;
        if e.reply.retval != 0 || e.fds.is_empty() {
            return Err(format!(
                "ATTACH answered {} with {} fds",
                self.cfg.profile.retval_name(e.reply.retval),
                e.fds.len()
            ));
        }
        Ok(())
    }

    fn reference_cli(&self, args: &[String]) -> Result<String, TargetError> {
        let (TargetKind::Embedded { exe, .. }, Some(dir)) = (&self.cfg.kind, &self.runtime_dir)
        else {
            return Err(TargetError::NoTrigger("reference"));
        };
        let mut cmd = Command::new(exe);
        cmd.arg("reference")
            .args(args)
            .arg("--runtime-dir")
            .arg(dir);
        run_command(
            cmd,
            &format!("reference {}", args.join(" ")),
            self.cfg.timeout,
        )
    }

    /// Whether a segment-add trigger exists.
    pub fn has_segment_add(&self) -> bool {
        self.is_embedded() || self.cfg.segment_add_cmd.is_some()
    }
    pub fn has_ns_triggers(&self) -> bool {
        self.is_embedded() || (self.cfg.ns_add_cmd.is_some() && self.cfg.ns_del_cmd.is_some())
    }

    /// Makes the target add a segment to worker `wrk` of app `app` (SEND_FDS + ADD_SEGMENT).
    pub fn segment_add(&self, app: u32, wrk: u32) -> Result<String, TargetError> {
        if self.is_embedded() {
            return self.reference_cli(&[
                "segment".into(),
                "add".into(),
                "--app".into(),
                app.to_string(),
                "--worker".into(),
                wrk.to_string(),
            ]);
        }
        let template = self
            .cfg
            .segment_add_cmd
            .as_ref()
            .ok_or(TargetError::NoTrigger("segment-add"))?;
        let cmd = fill_template(
            template,
            &[("app", &app.to_string()), ("wrk", &wrk.to_string())],
        )?;
        run_shell(&cmd, self.cfg.timeout)
    }

    /// Where a namespace `id` created by the suite listens: beside the default socket.
    pub fn ns_endpoint(&self, id: &str) -> Endpoint {
        match &self.endpoint {
            Endpoint::Path(p) => Endpoint::Path(p.with_file_name(id)),
            Endpoint::Abstract(n) => {
                let mut n = n.clone();
                n.extend_from_slice(format!("-{id}").as_bytes());
                Endpoint::Abstract(n)
            }
        }
    }

    /// Creates namespace `id` listening at `sock`.
    pub fn ns_add(&self, id: &str, sock: &Endpoint) -> Result<String, TargetError> {
        if self.is_embedded() {
            return self.reference_cli(&[
                "ns".into(),
                "add".into(),
                id.into(),
                "--sock-name".into(),
                sock.to_string(),
            ]);
        }
        let template = self
            .cfg
            .ns_add_cmd
            .as_ref()
            .ok_or(TargetError::NoTrigger("ns-add"))?;
        let cmd = fill_template(template, &[("ns", id), ("sock", &sock.to_string())])?;
        run_shell(&cmd, self.cfg.timeout)
    }

    pub fn ns_del(&self, id: &str) -> Result<String, TargetError> {
        if self.is_embedded() {
            return self.reference_cli(&["ns".into(), "del".into(), id.into()]);
        }
        let template = self
            .cfg
            .ns_del_cmd
            .as_ref()
            .ok_or(TargetError::NoTrigger("ns-del"))?;
        let cmd = fill_template(template, &[("ns", id)])?;
        run_shell(&cmd, self.cfg.timeout)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut e) = self.lock().take() {
            let pid = nix::unistd::Pid::from_raw(e.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            // The child's stdout reaches EOF when it exits: that is the bounded wait.
            let mut sink = Vec::new();
            if read_to_eof_within(&mut e.stdout, &mut sink, Duration::from_secs(5)).is_err() {
                let _ = e.child.kill();
            }
            let _ = e.child.wait();
        }
        if let Some(dir) = &self.runtime_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Reads one line from a pipe, polling with a deadline; None on EOF/timeout before a newline.
pub fn read_line_within(r: &mut ChildStdout, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !wait_readable(r.as_fd(), left).ok()? {
            return None;
        }
        match r.read(&mut b) {
            // EOF before a newline: hand back what was printed, for the error message.
            Ok(0) | Err(_) => return Some(String::from_utf8_lossy(&line).into_owned()),
            Ok(_) if b[0] == b'\n' => return Some(String::from_utf8_lossy(&line).into_owned()),
            Ok(_) => line.push(b[0]),
        }
    }
}

/// Drains a pipe to EOF within `timeout`.
fn read_to_eof_within(r: &mut impl ReadFd, out: &mut Vec<u8>, timeout: Duration) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !wait_readable(r.as_fd(), left).map_err(drop)? {
            return Err(());
        }
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
}

trait ReadFd: Read + AsFd {}
impl<T: Read + AsFd> ReadFd for T {}

/// Replaces each `{name}` of `values` in a user's command template with the value quoted for
/// `sh` (`shlex::try_quote`: a plain name stays as it is, anything else becomes one quoted word),
/// in one pass, so a value that itself contains `{sock}` is not substituted again. Other braces
/// are left as written. Placeholders must therefore not be quoted in the template.
pub fn fill_template(template: &str, values: &[(&str, &str)]) -> Result<String, TargetError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let hit = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(k, v)| (close, *k, *v))
        });
        match hit {
            Some((close, name, value)) => {
                let quoted = shlex::try_quote(value).map_err(|source| TargetError::Quote {
                    template: template.into(),
                    placeholder: name.into(),
                    value: value.into(),
                    source,
                })?;
                out.push_str(&quoted);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Runs `sh -c cmd` with the timeout as a bound; returns its stdout.
pub fn run_shell(cmd: &str, timeout: Duration) -> Result<String, TargetError> {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    run_command(c, cmd, timeout)
}

/// Runs a command, stdout+stderr captured through one pipe whose EOF marks the end, killed at the
/// deadline.
pub fn run_command(
    mut cmd: Command,
    shown: &str,
    timeout: Duration,
) -> Result<String, TargetError> {
    let (r, w) = std::io::pipe().map_err(|source| TargetError::Spawn {
        what: shown.into(),
        source,
    })?;
    let w2 = w.try_clone().map_err(|source| TargetError::Spawn {
        what: shown.into(),
        source,
    })?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(w)
        .stderr(w2)
        .spawn()
        .map_err(|source| TargetError::Spawn {
            what: shown.into(),
            source,
        })?;
    drop(cmd);
    let mut r = r;
    let mut out = Vec::new();
    let finished = read_to_eof_within(&mut r, &mut out, timeout.max(Duration::from_secs(5)));
    if finished.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return Err(TargetError::CommandTimeout {
            cmd: shown.into(),
            after: timeout,
        });
    }
    let status = child.wait().map_err(|source| TargetError::Spawn {
        what: shown.into(),
        source,
    })?;
    let output = String::from_utf8_lossy(&out).into_owned();
    if status.success() {
        Ok(output)
    } else {
        Err(TargetError::Command {
            cmd: shown.into(),
            status: status.to_string(),
            output: output.trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_commands_report_output_and_failure() {
        assert_eq!(
            run_shell("echo hi", Duration::from_secs(5)).expect("ok"),
            "hi\n"
        );
        let e = run_shell("echo nope >&2; exit 3", Duration::from_secs(5)).expect_err("fails");
        assert!(e.to_string().contains("nope"), "{e}");
    }

    /// A name that would break or extend an unquoted command: a space, a quote, a `;`.
    const HOSTILE: &str = "it's a; touch /tmp/sapi-conformance-injected";

    #[test]
    fn template_values_are_quoted_one_word_each() {
        let cmd = fill_template(
            "printf '[%s]\\n' {ns} {sock} {ns}",
            &[("ns", HOSTILE), ("sock", "/run/vpp/app ns/x")],
        )
        .expect("quotable");
        assert_eq!(
            run_shell(&cmd, Duration::from_secs(5)).expect("runs"),
            format!("[{HOSTILE}]\n[/run/vpp/app ns/x]\n[{HOSTILE}]\n"),
            "{cmd}"
        );
    }

    #[test]
    fn templates_are_filled_in_one_pass_and_plain_values_stay_plain() {
        assert_eq!(
            fill_template(
                "add {ns} {sock} {unknown} {{ns}} {",
                &[("ns", "{sock}"), ("sock", "conf1")]
            )
            .expect("quotable"),
            "add '{sock}' conf1 {unknown} {'{sock}'} {"
        );
        assert_eq!(
            fill_template("seg {app} {wrk}", &[("app", "3"), ("wrk", "0")]).expect("quotable"),
            "seg 3 0"
        );
        let e = fill_template("x {ns}", &[("ns", "a\0b")]).expect_err("nul");
        assert!(matches!(e, TargetError::Quote { .. }), "{e}");
    }

    #[test]
    fn namespace_triggers_pass_hostile_names_as_one_argument() {
        let t = Target::start(TargetConfig {
            kind: TargetKind::External(Endpoint::Path("/run/vpp/app_ns_sockets/default".into())),
            profile: Profile::Head,
            timeout: Duration::from_secs(5),
            target_pid: None,
            restart_cmd: None,
            segment_add_cmd: None,
            ns_add_cmd: Some("printf '%s|' {ns} {sock}".into()),
            ns_del_cmd: Some("printf '%s|' del {ns}".into()),
        })
        .expect("external");
        let sock = t.ns_endpoint(HOSTILE);
        assert_eq!(
            t.ns_add(HOSTILE, &sock).expect("ns add"),
            format!("{HOSTILE}|/run/vpp/app_ns_sockets/{HOSTILE}|")
        );
        assert_eq!(
            t.ns_del(HOSTILE).expect("ns del"),
            format!("del|{HOSTILE}|")
        );
    }

    #[test]
    fn namespace_sockets_sit_beside_the_default_one() {
        let t = Target::start(TargetConfig {
            kind: TargetKind::External(Endpoint::Path("/run/vpp/app_ns_sockets/default".into())),
            profile: Profile::Head,
            timeout: Duration::from_secs(1),
            target_pid: None,
            restart_cmd: None,
            segment_add_cmd: None,
            ns_add_cmd: None,
            ns_del_cmd: None,
        })
        .expect("external");
        assert_eq!(
            t.ns_endpoint("conf1"),
            Endpoint::Path("/run/vpp/app_ns_sockets/conf1".into())
        );
        assert!(matches!(
            t.segment_add(1, 0),
            Err(TargetError::NoTrigger(_))
        ));
    }
}
