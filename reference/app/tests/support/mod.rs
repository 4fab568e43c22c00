//! The real-process tests' machinery: a `sapi-reference` server in a process of its own (this
//! test binary, run again as that child: `sapi_reference::cli::run`, the binary's whole `main`,
//! since a test cannot name another package's binary), `sapi-stream` app processes, and the
//! server's fds and memfds as `/proc` shows them.
//!
//! Every wait is bounded and waits for something to happen (a line, an exit, an answer on the
//! admin socket); nothing sleeps to let time pass.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The child test that runs the reference (or its admin client) when the environment says so.
pub const CHILD_TEST: &str = "child_reference";
/// `serve` or an admin command line for the child, fields separated by U+001F.
pub const CHILD_ENV: &str = "SAPI_APP_TEST_REFERENCE";

/// Bound on anything the tests wait for that should come quickly.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The body of [`CHILD_TEST`]: runs `sapi-reference` with the arguments of [`CHILD_ENV`] and
/// exits with its status (so the test harness prints nothing after it). Nothing when unset.
pub fn child_reference() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let argv = std::iter::once("sapi-reference".to_string())
        .chain(args.split('\u{1f}').map(str::to_string));
    let code = sapi_reference::cli::run(argv);
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

/// A command whose process gets SIGKILL if the thread that spawned it goes (a test that
/// panicked, a harness killed): no server or app outlives its test, nor keeps holding what the
/// test process inherited.
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(program);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

fn reference_command(args: &[&str]) -> Command {
    let mut c = command(std::env::current_exe().expect("the test binary's path"));
    c.args([
        "--exact",
        CHILD_TEST,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, args.join("\u{1f}"))
    .env(
        "RUST_LOG",
        std::env::var("SAPI_TEST_LOG").unwrap_or("error".into()),
    );
    c
}

pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sapi-app-test-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Lines of a child's stdout as they come (the channel closes at EOF), and all of them kept.
fn read_lines(out: impl Read + Send + 'static) -> (Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let (tx, rx) = mpsc::channel();
    let all = Arc::new(Mutex::new(Vec::new()));
    let keep = all.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            keep.lock().expect("lines").push(line.clone());
            let _ = tx.send(line);
        }
    });
    (rx, all)
}

/// All of a child's stderr, and a channel that closes when it ended.
fn keep_all(out: impl Read + Send + 'static) -> (Arc<Mutex<String>>, Receiver<()>) {
    let all = Arc::new(Mutex::new(String::new()));
    let keep = all.clone();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(out).read_to_string(&mut s);
        keep.lock().expect("stderr").push_str(&s);
        drop(done_tx);
    });
    (all, done)
}

/// `(fds, memfds)` of a process: its `/proc/<pid>/fd` entries, and those whose link starts
/// with `/memfd:`.
pub fn fd_counts(pid: u32) -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    let mut fds = 0;
    let mut memfds = 0;
    for e in dir.flatten() {
        fds += 1;
        if std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("/memfd:")) {
            memfds += 1;
        }
    }
    (fds, memfds)
}

/// A running `sapi-reference serve` in its own runtime directory.
pub struct Reference {
    child: Child,
    pub dir: PathBuf,
    stdout: Receiver<String>,
}

impl Reference {
    pub fn start(tag: &str) -> Reference {
        let dir = scratch_dir(tag);
        let dir_s = dir.to_string_lossy().into_owned();
        let mut child = reference_command(&["serve", "--runtime-dir", &dir_s])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the reference");
        let (lines, _) = read_lines(child.stdout.take().expect("stdout"));
        // Killed on drop from here on, READY or not.
        let r = Reference {
            child,
            dir,
            stdout: lines,
        };
        // The harness prints its own words first ("test child_reference ... " without a line
        // end); the server prints READY when it listens.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match r.stdout.recv_timeout(left) {
                Ok(l) if l.trim_end().ends_with("READY") => break,
                Ok(_) => {}
                Err(e) => panic!("the reference printed no READY within {TIMEOUT:?}: {e}"),
            }
        }
        r
    }

    pub fn socket(&self) -> String {
        self.dir
            .join("app_ns_sockets/default")
            .to_string_lossy()
            .into_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn counts(&self) -> (usize, usize) {
        fd_counts(self.pid())
    }

    /// One admin round trip (`show`): the server answers it after everything that happened
    /// before on its one loop, so what the counts show afterwards includes those events.
    pub fn barrier(&self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let out = reference_command(&["show", "--runtime-dir", &dir])
            .stdin(Stdio::null())
            .output()
            .expect("run show");
        assert!(
            out.status.success(),
            "show failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits (bounded) until `(fds, memfds)` is `want`, each look after a barrier; returns the
    /// last counts seen.
    pub fn await_counts(&self, want: (usize, usize)) -> (usize, usize) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.barrier();
            let c = self.counts();
            if c == want || Instant::now() > deadline {
                return c;
            }
        }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `sapi-stream` process.
pub struct Stream {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    all: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    stderr_done: Receiver<()>,
    started: Instant,
}

/// How a `sapi-stream` process ended.
#[derive(Debug)]
pub struct Ended {
    pub name: String,
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub stderr: String,
    pub wall: Duration,
}

impl Stream {
    pub fn spawn(name: &str, socket: &str, args: &[&str]) -> Stream {
        let mut child = command(env!("CARGO_BIN_EXE_sapi-stream"))
            .args(args)
            .args(["--socket", socket, "--name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sapi-stream");
        let stdin = child.stdin.take();
        let (lines, all) = read_lines(child.stdout.take().expect("stdout"));
        let (stderr, stderr_done) = keep_all(child.stderr.take().expect("stderr"));
        Stream {
            name: name.to_string(),
            child,
            stdin,
            lines,
            all,
            stderr,
            stderr_done,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn describe(&self) -> String {
        format!(
            "{} printed {:?}, stderr {:?}",
            self.name,
            self.all.lock().expect("lines"),
            self.stderr.lock().expect("stderr")
        )
    }

    /// The next line that starts with `prefix`, within `within` (lines before it are passed).
    pub fn expect(&self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {prefix:?} line within {within:?}: {}", self.describe())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Its stdout ended: let its stderr end too, to show why.
                    let _ = self.stderr_done.recv_timeout(TIMEOUT);
                    panic!(
                        "{} ended before a {prefix:?} line: {}",
                        self.name,
                        self.describe()
                    )
                }
            }
        }
    }

    /// One line on its stdin (what `--wait-go` and `--hold` wait for).
    pub fn go(&mut self) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(b"go\n");
            let _ = stdin.flush();
        }
    }

    pub fn kill(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    /// Waits (bounded by `within`) for its stdout to end, then for the process.
    pub fn wait(mut self, within: Duration) -> Ended {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    let _ = self.child.wait();
                    panic!(
                        "{} still running after {within:?}: {}",
                        self.name,
                        self.describe()
                    );
                }
            }
        }
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for sapi-stream");
        let wall = self.started.elapsed();
        let _ = self.stderr_done.recv_timeout(TIMEOUT);
        let stderr = self.stderr.lock().expect("stderr").clone();
        let lines = self.all.lock().expect("lines").clone();
        Ended {
            name: self.name.clone(),
            status,
            lines,
            stderr,
            wall,
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
            let _ = self.child.wait();
        }
    }
}

impl Ended {
    pub fn lines_with(&self, prefix: &str) -> Vec<&String> {
        self.lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    pub fn line(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{} printed no {prefix:?} line: {self:?}", self.name))
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// The value of `key=` in a `key=value` line.
pub fn field<'l>(line: &'l str, key: &str) -> &'l str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}
