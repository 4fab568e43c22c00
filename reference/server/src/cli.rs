//! The `sapi-reference` command line as a library function, so that other programs (the
//! conformance suite's embedded target) can run the reference as a child process of their own
//! binary without linking to its internals.
//!
//! Owns argument parsing and exit codes. It must never hold server state: `serve` hands over to
//! [`crate::shell`], every other command is a client of the admin socket.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::shell::admin::{AdminRequest, request};
use crate::shell::{NamespaceConfig, ServeConfig, serve};
use sapi_core::{AccessPolicy, AdminCommand, InjectedFault, InjectedFaults};
use sapi_wire::Profile;

#[derive(Parser, Debug)]
#[command(
    name = "sapi-reference",
    version,
    about = "Reference server of VPP's session-layer application socket API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct RuntimeDir {
    /// Directory holding app_ns_sockets/ and the admin socket [default: /run/vpp as root,
    /// /run/user/<euid>/vpp otherwise, as VPP].
    #[arg(long, value_name = "DIR")]
    runtime_dir: Option<PathBuf>,
}

impl RuntimeDir {
    fn get(&self) -> PathBuf {
        self.runtime_dir.clone().unwrap_or_else(default_runtime_dir)
    }
}

/// VPP's default runtime directory for the current user.
pub fn default_runtime_dir() -> PathBuf {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        PathBuf::from("/run/vpp")
    } else {
        PathBuf::from(format!("/run/user/{euid}/vpp"))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server until SIGINT or SIGTERM. Prints `READY` on stdout once listening.
    Serve {
        #[command(flatten)]
        dir: RuntimeDir,
        /// Another namespace: `ID` or `ID,sock-name=PATH` (`abstract:NAME` for an abstract
        /// socket). `default` always exists.
        #[arg(long = "namespace", value_name = "ID[,sock-name=PATH]")]
        namespaces: Vec<String>,
        /// Simulated VPP worker threads: one VPP mq per thread (workers + main).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=63))]
        workers: u8,
        /// Protocol revision to speak.
        #[arg(long, default_value = "head", value_parser = parse_profile)]
        profile: Profile,
        /// TEST ONLY: deviate from the protocol on purpose (repeatable; `list` prints the names).
        #[arg(long = "inject-fault", value_name = "NAME", value_enum)]
        faults: Vec<FaultChoice>,
        /// Accept connections only from this uid (repeatable; with --allow-gid, either
        /// matches). By default anyone who can open the socket file may connect, as with VPP.
        #[arg(long = "allow-uid", value_name = "UID")]
        allow_uids: Vec<u32>,
        /// Accept connections only from this gid (repeatable).
        #[arg(long = "allow-gid", value_name = "GID")]
        allow_gids: Vec<u32>,
        /// Refuse an ATTACH whose NAMESPACE_SECRET option differs from its namespace's secret
        /// (WRONG_NS_SECRET). VPP ignores secrets over the socket API, so this is off by default.
        #[arg(long)]
        enforce_ns_secret: bool,
    },
    /// Print namespaces, sockets, apps, workers, segments (like VPP's `show app ns ... api-clients`).
    Show {
        #[command(flatten)]
        dir: RuntimeDir,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add or delete a namespace of a running server.
    #[command(subcommand)]
    Ns(NsCommand),
    /// Add or delete a segment of a worker of a running server.
    #[command(subcommand)]
    Segment(SegmentCommand),
}

#[derive(Subcommand, Debug)]
enum NsCommand {
    /// Create a namespace and its listener.
    Add {
        /// Namespace id.
        id: String,
        /// Socket name (path or abstract:NAME).
        #[arg(long)]
        sock_name: Option<String>,
        /// Namespace secret (checked only by a server started with --enforce-ns-secret).
        #[arg(long)]
        secret: Option<u64>,
        #[command(flatten)]
        dir: RuntimeDir,
    },
    /// Delete a namespace: its apps are freed and all its sockets closed.
    Del {
        /// Namespace id.
        id: String,
        #[command(flatten)]
        dir: RuntimeDir,
    },
}

#[derive(Subcommand, Debug)]
enum SegmentCommand {
    /// Send a worker a new segment (SEND_FDS, then APP_ADD_SEGMENT on its mq).
    Add {
        /// App index.
        #[arg(long)]
        app: u32,
        /// Worker map index.
        #[arg(long, default_value_t = 0)]
        worker: u32,
        #[command(flatten)]
        dir: RuntimeDir,
    },
    /// Take a segment back (APP_DEL_SEGMENT on the worker's mq).
    Del {
        /// App index.
        #[arg(long)]
        app: u32,
        /// Worker map index.
        #[arg(long, default_value_t = 0)]
        worker: u32,
        /// Segment handle (decimal or 0x-hex).
        #[arg(long, value_parser = parse_u64)]
        handle: u64,
        #[command(flatten)]
        dir: RuntimeDir,
    },
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse::<Profile>().map_err(|e| e.to_string())
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a number: {e}"))
}

/// Splits `ID[,sock-name=PATH][,secret=N]`.
fn parse_namespace(s: &str) -> Result<NamespaceConfig, String> {
    let mut parts = s.split(',');
    let mut ns = NamespaceConfig {
        id: parts.next().unwrap_or_default().to_owned(),
        ..NamespaceConfig::default()
    };
    for part in parts {
        if let Some(name) = part.strip_prefix("sock-name=") {
            ns.sock_name = Some(name.to_owned());
        } else if let Some(secret) = part.strip_prefix("secret=") {
            ns.secret = Some(parse_u64(secret).map_err(|e| format!("--namespace {s:?}: {e}"))?);
        } else {
            return Err(format!(
                "--namespace {s:?}: unknown part {part:?} (expected ID[,sock-name=PATH][,secret=N])"
            ));
        }
    }
    Ok(ns)
}

/// Runs the `sapi-reference` CLI with `args` (the first item is the program name).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Serve {
            dir,
            namespaces,
            workers,
            profile,
            faults,
            allow_uids,
            allow_gids,
            enforce_ns_secret,
        } => run_serve(
            ServeArgs {
                runtime_dir: dir.get(),
                workers,
                profile,
                access: AccessPolicy {
                    allow_uids,
                    allow_gids,
                },
                enforce_ns_secret,
            },
            &namespaces,
            &faults,
        ),
        Command::Show { dir, json } => admin(&dir, AdminCommand::Show, json),
        Command::Ns(NsCommand::Add {
            id,
            sock_name,
            secret,
            dir,
        }) => admin(
            &dir,
            AdminCommand::NsAdd {
                id,
                sock_name,
                secret,
            },
            false,
        ),
        Command::Ns(NsCommand::Del { id, dir }) => admin(&dir, AdminCommand::NsDel { id }, false),
        Command::Segment(SegmentCommand::Add { app, worker, dir }) => {
            admin(&dir, AdminCommand::SegmentAdd { app, wrk: worker }, false)
        }
        Command::Segment(SegmentCommand::Del {
            app,
            worker,
            handle,
            dir,
        }) => admin(
            &dir,
            AdminCommand::SegmentDel {
                app,
                wrk: worker,
                handle,
            },
            false,
        ),
    }
}

fn admin(dir: &RuntimeDir, command: AdminCommand, json: bool) -> ExitCode {
    match request(&dir.get(), &AdminRequest { command, json }) {
        Ok(body) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sapi-reference: {e}");
            ExitCode::FAILURE
        }
    }
}

struct ServeArgs {
    runtime_dir: PathBuf,
    workers: u8,
    profile: Profile,
    access: AccessPolicy,
    enforce_ns_secret: bool,
}

/// A value of `--inject-fault`: one of the core's faults, or `list`. The names and help come
/// from [`InjectedFault`] itself, so the list cannot drift from the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultChoice {
    List,
    Fault(InjectedFault),
}

const FAULT_CHOICES: [FaultChoice; InjectedFault::ALL.len() + 1] = {
    let mut out = [FaultChoice::List; InjectedFault::ALL.len() + 1];
    let mut i = 0;
    while i < InjectedFault::ALL.len() {
        out[i + 1] = FaultChoice::Fault(InjectedFault::ALL[i]);
        i += 1;
    }
    out
};

impl clap::ValueEnum for FaultChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &FAULT_CHOICES
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(match self {
            FaultChoice::List => {
                clap::builder::PossibleValue::new("list").help("print the fault names and exit")
            }
            FaultChoice::Fault(f) => {
                clap::builder::PossibleValue::new(f.name()).help(f.description())
            }
        })
    }
}

fn run_serve(args: ServeArgs, namespaces: &[String], choices: &[FaultChoice]) -> ExitCode {
    if choices.contains(&FaultChoice::List) {
        for f in InjectedFault::ALL {
            println!("{f}");
        }
        return ExitCode::SUCCESS;
    }
    let mut faults = InjectedFaults::default();
    for choice in choices {
        if let FaultChoice::Fault(f) = choice {
            faults.insert(*f);
        }
    }
    let mut extra = Vec::new();
    for ns in namespaces {
        match parse_namespace(ns) {
            Ok(x) => extra.push(x),
            Err(e) => {
                eprintln!("sapi-reference: {e}");
                return ExitCode::from(2);
            }
        }
    }
    init_tracing();
    raise_nofile_limit();
    let stop = match stop_on_signals() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("sapi-reference: cannot watch SIGINT/SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = ServeConfig {
        runtime_dir: args.runtime_dir,
        namespaces: extra,
        vpp_workers: args.workers,
        profile: args.profile,
        faults,
        access: args.access,
        enforce_ns_secret: args.enforce_ns_secret,
    };
    let result = serve(cfg, Some(stop), |_| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "READY");
        let _ = out.flush();
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sapi-reference: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: a log file (the suite's evidence quotes it) stays plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Blocks SIGINT and SIGTERM and returns a signalfd that becomes readable when one arrives.
fn stop_on_signals() -> nix::Result<OwnedFd> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    Ok(OwnedFd::from(sfd))
}

/// Raises the soft open-file limit to the hard one: every attached app costs the server a socket,
/// a memfd and maybe an eventfd, and the default soft limit of 1024 would stop it near 300 apps.
fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err()
    {
        tracing::warn!(soft, hard, "cannot raise RLIMIT_NOFILE");
    }
}
