//! `sapi-conformance`: runs the SAPI conformance scenarios against the embedded reference (the
//! default) or any server (`--target PATH` or `--target abstract:NAME`), prints a summary and
//! exits 0 only when every scenario not expected to fail passed.
//!
//! Subcommands: `client attach|worker|show-segments` (debugging client, crash-test child) and a
//! hidden `reference …` that runs the reference's CLI — how the embedded target is started as a
//! child process of this binary.
//!
//! Must never: run the reference in the process that runs the scenarios (the hidden `reference`
//! subcommand is only the child the embedded target starts), or exit 0 when the gate failed or a
//! report asked for could not be written.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use sapi_conformance::client::Endpoint;
use sapi_conformance::debug_client::{self, ClientOpts, HoldPoint, SessionRole};
use sapi_conformance::report::{human, junit};
use sapi_conformance::runner::{self, RunConfig};
use sapi_conformance::scenarios;
use sapi_conformance::target::{Target, TargetConfig, TargetKind};
use sapi_conformance::wire::Profile;

#[derive(Parser, Debug)]
#[command(
    name = "sapi-conformance",
    version,
    about = "Conformance suite for VPP's application socket API (SAPI)"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Server under test: a socket path or `abstract:NAME`. Default: the embedded reference.
    #[arg(long)]
    target: Option<String>,
    /// Which revision's behaviour to expect.
    #[arg(long, value_enum, default_value_t = Profile::Head)]
    profile: Profile,
    /// Run only scenarios whose name matches (glob; repeatable or comma-separated).
    #[arg(long)]
    filter: Vec<String>,
    /// List the scenarios (name, spec section, summary) and exit.
    #[arg(long)]
    list: bool,
    /// TOML file of `"scenario.name" = "reason"` known deviations: they do not fail the gate.
    #[arg(long, value_name = "FILE")]
    expect_fail: Option<PathBuf>,
    /// Print an expect-fail file's entries and exit; exits 1 (with a warning for each) when an
    /// entry names no scenario of the suite, so stale entries cannot go unnoticed.
    #[arg(long, value_name = "FILE")]
    list_expect_fail: Option<PathBuf>,
    /// Write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a JSON report (`scenarios` array with name, status, spec, duration_ms, evidence).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Bound on every single wait, in seconds.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Scenarios run in parallel (exclusive ones always run alone), at most 8.
    // (runner::MAX_JOBS bounds it; a CLI test keeps this text in step).
    #[arg(short = 'j', long = "jobs", default_value_t = 2)]
    jobs: usize,
    /// Multiplier for load and cycle counts (256 apps, 1000 cycles at 1).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// The server's pid for hygiene scenarios (default: SO_PEERCRED of the suite's connection).
    #[arg(long)]
    target_pid: Option<u32>,
    /// Shell command that restarts a target that died.
    #[arg(long, value_name = "CMD")]
    restart_cmd: Option<String>,
    /// Shell command making the target add a segment to app {app} worker {wrk}. Placeholders
    /// are replaced by shell-quoted values: do not quote them yourself.
    #[arg(long, value_name = "CMD")]
    segment_add_cmd: Option<String>,
    /// Shell command creating namespace {ns} listening at {sock} (placeholders shell-quoted).
    #[arg(long, value_name = "CMD")]
    ns_add_cmd: Option<String>,
    /// Shell command deleting namespace {ns} (shell-quoted).
    #[arg(long, value_name = "CMD")]
    ns_del_cmd: Option<String>,
    /// Test-only: start the embedded reference with this injected fault (repeatable).
    #[arg(long, hide = true)]
    reference_fault: Vec<String>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// A debugging client printing what a server sent, decoded (also the crash-test child).
    Client {
        #[command(subcommand)]
        what: ClientCmd,
    },
    /// Runs the reference's CLI (how the embedded target is started).
    #[command(hide = true)]
    Reference {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Args, Debug, Clone)]
struct ClientArgs {
    /// Socket path or abstract:NAME.
    #[arg(long)]
    target: String,
    #[arg(long, value_enum, default_value_t = Profile::Head)]
    profile: Profile,
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    #[arg(long, default_value = "sapi-conformance-client")]
    name: String,
    /// Attach without EVT_MQ_USE_EVENTFD.
    #[arg(long)]
    no_eventfd: bool,
    #[arg(long, default_value_t = 256)]
    queue_size: u64,
    #[arg(long, default_value_t = 16 << 20)]
    segment_size: u64,
}

#[derive(Subcommand, Debug)]
enum ClientCmd {
    /// Attach and print the reply and fds; with --hold-after, block at that point until killed.
    Attach {
        #[command(flatten)]
        c: ClientArgs,
        #[arg(long, value_enum)]
        hold_after: Option<HoldPoint>,
        /// Extra workers to add (each on its own socket) after the reply.
        #[arg(long, default_value_t = 0)]
        workers: u32,
    },
    /// Add a worker for an app on a new socket and print the reply.
    Worker {
        #[command(flatten)]
        c: ClientArgs,
        #[arg(long)]
        app: u32,
    },
    /// Attach, map every segment read-only and print its headers and mqs.
    ShowSegments {
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Attach with local scope, listen on or connect to 127.0.0.1:PORT, put 32 KiB in flight,
    /// print a HOLD line and block until killed (the session crash-test child).
    Session {
        #[command(flatten)]
        c: ClientArgs,
        #[arg(long, value_enum)]
        role: SessionRole,
        #[arg(long)]
        port: u16,
    },
}

fn opts(c: &ClientArgs) -> ClientOpts {
    ClientOpts {
        target: c.target.parse().unwrap_or_else(|e| match e {}),
        profile: c.profile,
        timeout: Duration::from_secs_f64(c.timeout.max(0.001)),
        name: c.name.clone(),
        eventfd: !c.no_eventfd,
        queue_size: c.queue_size,
        segment_size: c.segment_size,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Reference { args }) => reference(args),
        Some(Cmd::Client { what }) => {
            let mut out = std::io::stdout().lock();
            let r = match what {
                ClientCmd::Attach {
                    c,
                    hold_after,
                    workers,
                } => debug_client::attach(&opts(&c), hold_after, workers, &mut out),
                ClientCmd::Worker { c, app } => debug_client::worker(&opts(&c), app, &mut out),
                ClientCmd::ShowSegments { c } => debug_client::show_segments(&opts(&c), &mut out),
                ClientCmd::Session { c, role, port } => {
                    debug_client::session(&opts(&c), role, port, &mut out)
                }
            };
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sapi-conformance client: {e}");
                    ExitCode::from(2)
                }
            }
        }
        None => run(cli.run),
    }
}

#[cfg(feature = "embedded-reference")]
fn reference(args: Vec<std::ffi::OsString>) -> ExitCode {
    let mut all = vec![std::ffi::OsString::from("sapi-reference")];
    all.extend(args);
    sapi_reference::cli::run(all)
}

#[cfg(not(feature = "embedded-reference"))]
fn reference(_args: Vec<std::ffi::OsString>) -> ExitCode {
    eprintln!("built without the embedded-reference feature");
    ExitCode::from(2)
}

fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(65536).max(soft), hard);
    }
}

/// `--list-expect-fail FILE`: every entry with its reason on stdout, a warning on stderr for
/// each entry that names no scenario; 0 when there is none, 1 when there are, 2 on a bad file.
fn list_expect_fail(path: &std::path::Path) -> ExitCode {
    use std::io::Write;
    let xf = match runner::load_expect_fail(path) {
        Ok(xf) => xf,
        Err(e) => {
            eprintln!("sapi-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    let w = xf.keys().map(String::len).max().unwrap_or(8);
    let mut out = std::io::stdout().lock();
    for (name, reason) in &xf {
        if writeln!(out, "{name:<w$}  {reason}").is_err() {
            break;
        }
    }
    let unknown = runner::unknown_expect_fail(&xf, &scenarios::all());
    for name in &unknown {
        eprintln!(
            "sapi-conformance: warning: {}: entry {name:?} names no scenario",
            path.display()
        );
    }
    if unknown.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "sapi-conformance: {} of {} entries in {} name no scenario (see --list)",
            unknown.len(),
            xf.len(),
            path.display()
        );
        ExitCode::FAILURE
    }
}

fn run(a: RunArgs) -> ExitCode {
    if let Some(path) = &a.list_expect_fail {
        return list_expect_fail(path);
    }
    let all = scenarios::all();
    let selected = match runner::filter(&a.filter) {
        Ok(f) => runner::select(all, &f),
        Err(e) => {
            eprintln!("sapi-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    if a.list {
        use std::io::Write;
        let w = selected.iter().map(|s| s.name.len()).max().unwrap_or(8);
        let mut out = std::io::stdout().lock();
        for s in &selected {
            // A closed pipe (`| head`) ends the listing quietly.
            if writeln!(out, "{:<w$}  {:<44}  {}", s.name, s.spec, s.summary).is_err() {
                break;
            }
        }
        return ExitCode::SUCCESS;
    }
    let expect_fail = match a
        .expect_fail
        .as_deref()
        .map(runner::load_expect_fail)
        .transpose()
    {
        Ok(x) => x.unwrap_or_default(),
        Err(e) => {
            eprintln!("sapi-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    for name in runner::unknown_expect_fail(&expect_fail, &scenarios::all()) {
        eprintln!("sapi-conformance: warning: expect-fail entry {name:?} names no scenario");
    }
    raise_fd_limit();
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sapi-conformance: cannot find own executable: {e}");
            return ExitCode::from(2);
        }
    };
    let kind = match &a.target {
        Some(t) => TargetKind::External(t.parse::<Endpoint>().unwrap_or_else(|e| match e {})),
        None if cfg!(feature = "embedded-reference") => TargetKind::Embedded {
            exe: exe.clone(),
            faults: a.reference_fault.clone(),
        },
        None => {
            eprintln!("sapi-conformance: no --target and built without the embedded reference");
            return ExitCode::from(2);
        }
    };
    let timeout = Duration::from_secs_f64(a.timeout.max(0.01));
    let target = match Target::start(TargetConfig {
        kind,
        profile: a.profile,
        timeout,
        target_pid: a.target_pid,
        restart_cmd: a.restart_cmd.clone(),
        segment_add_cmd: a.segment_add_cmd.clone(),
        ns_add_cmd: a.ns_add_cmd.clone(),
        ns_del_cmd: a.ns_del_cmd.clone(),
    }) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sapi-conformance: cannot start the target: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = RunConfig {
        profile: a.profile,
        timeout,
        scale: a.scale.max(0.0),
        jobs: a.jobs,
        exe,
        expect_fail,
        progress: !a.quiet,
        restart: a.restart_cmd.is_some() || target.is_embedded(),
    };
    let report = runner::run(&selected, &target, &cfg);
    drop(target);
    print!("{}", human::render(&report));
    let mut ok = true;
    if let Some(p) = &a.json
        && let Err(e) = std::fs::write(p, report.to_json())
    {
        eprintln!("sapi-conformance: writing {}: {e}", p.display());
        ok = false;
    }
    if let Some(p) = &a.junit
        && let Err(e) = std::fs::write(p, junit::render(&report))
    {
        eprintln!("sapi-conformance: writing {}: {e}", p.display());
        ok = false;
    }
    if report.gate_passed() && ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
