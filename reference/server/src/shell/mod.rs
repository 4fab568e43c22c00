//! The IO shell: one epoll loop on one thread (like VPP's main thread) that turns syscalls into
//! core [`Input`]s and core [`Action`]s into syscalls.
//!
//! Owns every file descriptor of the server: listeners, client sockets, the admin socket, segment
//! memfds and mappings (through [`resources`]), eventfds. It must never make a protocol decision —
//! that is the core's — and never block on an app: sends are non-blocking and a send that
//! cannot complete is reported to the core as [`Input::SendFailed`]. (The admin socket's one
//! exchange at a time is served blocking, within `admin::ADMIN_EXCHANGE_BOUND` and
//! `admin::ADMIN_REFUSAL_BOUND`.)

pub mod admin;
pub mod pool;
pub mod resources;
pub mod server_mqs;
pub mod sock;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use tracing::{debug, error, info, warn};

use sapi_core::{
    AccessPolicy, Action, AdminCommand, AdminOk, Config, InjectedFault, InjectedFaults, Input,
    NsIndex, Server, SocketId, SocketName,
};
use sapi_wire::{MSG_LEN, Message, Profile};

use admin::{AdminRequest, admin_socket_path};
use resources::{Resources, WriterRoom};
use server_mqs::{Posted, ServerMqs};

/// Most elements taken from one server mq per wake-up, so one busy app cannot starve sockets.
const DRAIN_BATCH: usize = 256;
/// How soon messages waiting for room in an app mq are retried.
const PENDING_RETRY: std::time::Duration = std::time::Duration::from_millis(1);
/// How long the loop keeps polling the server mqs after the last message it found there.
const POLL_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);
/// The pause between two polls inside the window while only io events stream: VPP's
/// `poll-sleep-usec` of the anchor configuration. Every pause ends in a wake-up that takes a
/// CPU from the apps streaming on it, so a pause trades relay latency against the apps' CPU.
/// Measured on the 2-vCPU Intel VM (apps pinned to CPU 0 and 1, 64 KiB writes, 2026-12-01),
/// 20 µs throughout before, this and [`POLL_PAUSE_SHORT`] after: VPP's own VCL apps (`vperf`)
/// one way over 4 MiB fifos 20–30 → 43–53 Gbit/s, both ways 35 → 52–65, one way over 1 MiB
/// fifos 40 → 48 (VPP in the same rounds: 38–57, 57–58, 49–55); the session bench (`sapi-app`
/// both sides) one way 5.5–7.0 → 10.9–11.5 GiB/s (4 MiB) and 5.4 → 7.1–7.4 (1 MiB).
const POLL_PAUSE: std::time::Duration = std::time::Duration::from_micros(100);
/// The pause while something is expected soon, where 100 µs would stand between two apps:
/// * a writer waits for room: its dequeue notification is on its way through the reader and
///   this loop, and a fifo smaller than what the apps move in two long pauses would stand
///   empty meanwhile (the session bench over 1 MiB fifos: 6.0–7.0 GiB/s one way with 100 µs
///   throughout, 7.1–7.4 with this);
/// * a control message came within [`CTRL_EXCHANGE`]: its answer (ACCEPTED_REPLY after
///   ACCEPTED, the next step of a close) is usually on its way (CONNECT → CONNECTED took a
///   median 247 µs with 100 µs throughout, 137 µs with 20).
const POLL_PAUSE_SHORT: std::time::Duration = std::time::Duration::from_micros(20);
/// How long after a control message the loop keeps to [`POLL_PAUSE_SHORT`]: several wake-ups
/// of an app across the two CPUs (~25 µs each on the VMs measured) and its work.
const CTRL_EXCHANGE: std::time::Duration = std::time::Duration::from_millis(1);
/// How long a writer found waiting for room keeps the loop at [`POLL_PAUSE_SHORT`] without
/// another relay finding it so: a reader that drains relays within far less; one that stalled
/// must not keep the loop waking 5× as often for as long as other sessions stream.
const WRITER_WAIT_HURRY: std::time::Duration = POLL_WINDOW;
/// Timer slack of the loop thread (`PR_SET_TIMERSLACK`, ns), so that a pause is what it
/// says: with the default 50 µs a 20 µs pause took 70–240 µs, and the session bench over 1 MiB
/// fifos moved 5.2 GiB/s one way where it moved 9.8 with this (AMD VM, 2026-11-30).
const POLL_TIMER_SLACK_NS: libc::c_ulong = 1_000;

/// Receive buffer: large enough for the second datagram of a cert-key add (≤ 20,000 bytes).
const RECV_BUF: usize = 20 * 1024;

/// What `serve` needs to start.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Directory holding `app_ns_sockets/` and the admin socket.
    pub runtime_dir: PathBuf,
    /// Namespaces besides `default`.
    pub namespaces: Vec<NamespaceConfig>,
    /// Simulated VPP worker threads.
    pub vpp_workers: u8,
    /// Protocol profile.
    pub profile: Profile,
    /// Test-only faults.
    pub faults: InjectedFaults,
    /// Who may connect.
    pub access: AccessPolicy,
    /// Check namespace secrets on ATTACH (VPP does not).
    pub enforce_ns_secret: bool,
}

/// A namespace to create at start-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// Its id.
    pub id: String,
    /// Its socket name (`None`: `<runtime-dir>/app_ns_sockets/<id>`).
    pub sock_name: Option<String>,
    /// Its secret (checked only with `enforce_ns_secret`).
    pub secret: Option<u64>,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A system call failed.
    #[error("{what}: {errno}")]
    Sys {
        /// What was being done.
        what: String,
        /// The error.
        errno: Errno,
    },
    /// An io::Error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A start-up namespace could not be created.
    #[error("namespace {id:?}: {reason}")]
    Namespace {
        /// The namespace id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The VPP mqs segment could not be created.
    #[error("cannot create the VPP mqs segment: {0}")]
    MqsSegment(String),
    /// The admin socket could not be created (another server may be using it).
    #[error("admin socket: {0}")]
    AdminSocket(#[from] sock::ListenError),
}

// epoll tokens: the kind in the top byte, the payload below.
const TOKEN_STOP: u64 = 1 << 56;
const TOKEN_ADMIN: u64 = 2 << 56;
const TOKEN_LISTENER: u64 = 3 << 56;
const TOKEN_CLIENT: u64 = 4 << 56;
const TOKEN_SERVER_MQ: u64 = 5 << 56;
const TOKEN_KIND: u64 = 0xff << 56;

fn client_token(id: SocketId) -> u64 {
    TOKEN_CLIENT | u64::from(id.api_client_handle())
}

fn token_socket(token: u64) -> SocketId {
    let handle = (token & 0xffff_ffff) as u32;
    SocketId {
        ns: NsIndex((handle >> 16) as u16),
        index: (handle & 0xffff) as u16,
    }
}

struct Listener {
    fd: OwnedFd,
    name: SocketName,
}

/// The running server: the core plus every fd it stands for.
pub struct Shell {
    core: Server,
    epoll: Epoll,
    resources: Resources,
    listeners: HashMap<NsIndex, Listener>,
    clients: HashMap<SocketId, OwnedFd>,
    deadlines: BTreeMap<SocketId, Instant>,
    admin: UnixListener,
    admin_path: PathBuf,
    admin_answer: Option<Result<AdminOk, String>>,
    /// The socket just accepted, while the core decides on it.
    accepting: Option<(OwnedFd, Result<SocketId, ()>)>,
    stop: Option<OwnedFd>,
    /// Held so that, out of fds, one can be freed to accept and shed a connection.
    spare_fd: Option<OwnedFd>,
    /// The server mqs apps post into, and their waiters.
    server_mqs: ServerMqs,
    /// Until when the loop polls the server mqs itself (messages came recently).
    polling_until: Option<Instant>,
    /// The fifos whose writer a relay found waiting for room (it asked for a dequeue
    /// notification and its fifo is full), and when: while one was found within
    /// [`WRITER_WAIT_HURRY`], the loop polls at [`POLL_PAUSE_SHORT`]. An entry goes when a
    /// relay over its fifo tells the writer there is room, when the fifo or its segment is
    /// freed, or when the polling window ends; one that ages past the bound (its reader
    /// stalled: nothing relays) no longer counts.
    writers_waiting: BTreeMap<sapi_core::FifoRef, Instant>,
    /// When the last control message came from a server mq (see [`CTRL_EXCHANGE`]).
    last_ctrl: Option<Instant>,
    /// Whether a pause can wait in `epoll_pwait2` (false once it failed: see `pause`).
    pause_in_epoll: bool,
    /// Sockets an injected fault told the shell to stop watching but keep open (leaks on purpose).
    abandoned: Vec<OwnedFd>,
    profile: Profile,
    faults: InjectedFaults,
    buf: Vec<u8>,
}

fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> ServeError {
    let what = what.into();
    move |errno| ServeError::Sys { what, errno }
}

impl Shell {
    /// Creates the VPP mqs segment, the admin socket and every start-up namespace's listener.
    /// `stop`, when readable, ends [`Shell::run`] (a signalfd in the binary, an eventfd in tests).
    pub fn new(cfg: ServeConfig, stop: Option<OwnedFd>) -> Result<Shell, ServeError> {
        let ns_dir = cfg.runtime_dir.join("app_ns_sockets");
        std::fs::create_dir_all(&ns_dir).map_err(|source| ServeError::Io {
            what: format!("create {}", ns_dir.display()),
            source,
        })?;
        let threads = cfg.vpp_workers.saturating_add(1);
        let resources = Resources::new(threads, cfg.profile, cfg.faults)
            .map_err(|e| ServeError::MqsSegment(e.to_string()))?;
        let vpp_mq_offsets: Vec<u64> = (0..usize::from(threads))
            .filter_map(|t| resources.vpp_mq_offset(t))
            .collect();
        let mqs_fd = resources
            .fd(sapi_core::FdRef::VppMqsSegment)
            .map(|fd| fd.try_clone_to_owned())
            .transpose()
            .map_err(|source| ServeError::Io {
                what: "dup the mqs segment fd".into(),
                source,
            })?
            .ok_or_else(|| ServeError::MqsSegment("no mqs segment fd".into()))?;
        let server_mqs =
            ServerMqs::start(&mqs_fd, vpp_mq_offsets.clone(), cfg.profile).map_err(|source| {
                ServeError::Io {
                    what: "start the server mq waiters".into(),
                    source,
                }
            })?;
        let core = Server::new(Config {
            profile: cfg.profile,
            vpp_workers: cfg.vpp_workers,
            vpp_mq_offsets,
            runtime_dir: cfg.runtime_dir.clone(),
            faults: cfg.faults,
            access: cfg.access.clone(),
            enforce_ns_secret: cfg.enforce_ns_secret,
        });
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(sys("epoll_create"))?;
        let admin_path = admin_socket_path(&cfg.runtime_dir);
        let admin = sock::listen_admin(&admin_path)?;
        epoll
            .add(&admin, EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_ADMIN))
            .map_err(sys("epoll add admin"))?;
        if let Some(stop) = &stop {
            epoll
                .add(stop, EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_STOP))
                .map_err(sys("epoll add stop"))?;
        }
        for t in 0..server_mqs.len() {
            if let Some(fd) = server_mqs.wake_fd(t) {
                epoll
                    .add(
                        fd,
                        EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SERVER_MQ | t as u64),
                    )
                    .map_err(sys("epoll add server mq"))?;
            }
        }
        let mut shell = Shell {
            core,
            epoll,
            resources,
            listeners: HashMap::new(),
            clients: HashMap::new(),
            deadlines: BTreeMap::new(),
            admin,
            admin_path,
            admin_answer: None,
            accepting: None,
            stop,
            spare_fd: open_spare_fd(),
            server_mqs,
            polling_until: None,
            writers_waiting: BTreeMap::new(),
            last_ctrl: None,
            pause_in_epoll: true,
            abandoned: Vec::new(),
            profile: cfg.profile,
            faults: cfg.faults,
            buf: vec![0; RECV_BUF],
        };
        shell.resources.refill_pool();
        let default = NamespaceConfig {
            id: "default".into(),
            ..NamespaceConfig::default()
        };
        for ns in std::iter::once(default).chain(cfg.namespaces) {
            let id = ns.id.clone();
            let answer = shell.admin_command(AdminCommand::NsAdd {
                id: ns.id,
                sock_name: ns.sock_name,
                secret: ns.secret,
            });
            if let Err(reason) = answer {
                shell.shutdown();
                return Err(ServeError::Namespace { id, reason });
            }
        }
        Ok(shell)
    }

    /// Runs the event loop until the stop fd becomes readable.
    pub fn run(&mut self) -> Result<(), ServeError> {
        let mut events = vec![EpollEvent::empty(); 256];
        // An io event an app posts inside the polling window waits for the end of a pause:
        // the pause must not be stretched by the default timer slack (`POLL_TIMER_SLACK_NS`).
        // SAFETY: prctl on the calling thread with an integer argument; no memory is passed.
        if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, POLL_TIMER_SLACK_NS) } != 0 {
            warn!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the timer slack: polling pauses will be longer"
            );
        }
        loop {
            let polling = self.polling_until.is_some();
            let timeout = if polling {
                EpollTimeout::ZERO
            } else {
                self.next_timeout()
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(sys("epoll_wait")(e)),
            };
            for ev in &events[..n] {
                let token = ev.data();
                match token & TOKEN_KIND {
                    TOKEN_STOP => {
                        info!("stopping");
                        return Ok(());
                    }
                    TOKEN_ADMIN => self.on_admin_ready(),
                    TOKEN_LISTENER => self.on_listener_ready(NsIndex((token & 0xffff) as u16)),
                    TOKEN_CLIENT => self.on_client_ready(token_socket(token), ev.events()),
                    TOKEN_SERVER_MQ => {
                        self.on_server_mq((token & 0xff) as usize);
                    }
                    _ => {}
                }
            }
            self.fire_deadlines();
            self.retry_pending();
            self.server_mqs.pay_owed_broadcasts();
            // Every reply of this pass is sent: segment creation belongs here, off the path of
            // the requests (pool.rs). Topped up in full, so any later event finds it full.
            self.resources.refill_pool();
            if self.spare_fd.is_none() {
                self.spare_fd = open_spare_fd();
            }
            if polling {
                if !self.poll_server_mqs() && n == 0 {
                    let exchange = self
                        .last_ctrl
                        .is_some_and(|at| at.elapsed() < CTRL_EXCHANGE);
                    self.writers_waiting
                        .retain(|_, found| found.elapsed() < WRITER_WAIT_HURRY);
                    self.pause(if !self.writers_waiting.is_empty() || exchange {
                        POLL_PAUSE_SHORT
                    } else {
                        POLL_PAUSE
                    });
                }
            } else {
                // Messages no waiter announced (one may be held hostage: server_mqs.rs).
                for t in 0..self.server_mqs.len() {
                    if self.server_mqs.has_queued(t) {
                        self.on_server_mq(t);
                    }
                }
            }
        }
    }

    /// Waits up to `pause` between two polls, ending early when a watched fd becomes ready
    /// (an ATTACH need not wait out a pause): the loop pauses only after a pass whose own
    /// `epoll.wait` reported nothing, so an early end means the next pass has an event to take
    /// (every registration is level-triggered), never a spin the old sleep did not have.
    /// `epoll_pwait2` goes through `syscall` (glibc wraps it only since 2.35); where it fails
    /// for any reason but a signal (a kernel before 5.11, a seccomp filter that predates it),
    /// this pause and every later one sleep the whole pause instead.
    fn pause(&mut self, pause: std::time::Duration) {
        if !self.pause_in_epoll {
            std::thread::sleep(pause);
            return;
        }
        let ts = libc::timespec {
            tv_sec: pause.as_secs() as libc::time_t,
            tv_nsec: pause.subsec_nanos() as libc::c_long,
        };
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // The kernel reads a `__kernel_timespec` (two 64-bit words): `libc::timespec` is that
        // on x86_64, the only platform the layouts are built for (`sapi_shm::layout`).
        const _: () = assert!(std::mem::size_of::<libc::timespec>() == 16);
        // Variadic: every argument passed as a full register (`c_long`), as the kernel reads it.
        // SAFETY: a valid epoll fd, room for one event (written by the kernel, never read
        // here), a live timespec, and no signal mask (its size then goes unread).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                self.epoll.0.as_raw_fd() as libc::c_long,
                &mut ev as *mut libc::epoll_event,
                1 as libc::c_long,
                &ts as *const libc::timespec,
                std::ptr::null::<libc::sigset_t>(),
                std::mem::size_of::<libc::c_ulong>() as libc::c_long,
            )
        };
        let errno = Errno::last();
        if rc < 0 && errno != Errno::EINTR {
            warn!(
                error = %errno,
                "epoll_pwait2 unusable: polling pauses sleep to the end"
            );
            self.pause_in_epoll = false;
            std::thread::sleep(pause);
        }
    }

    /// Inside the polling window: drains every server mq; ends the window (the waiters take
    /// over again) once it passed without a message. Returns whether anything came.
    fn poll_server_mqs(&mut self) -> bool {
        let mut any = false;
        for t in 0..self.server_mqs.len() {
            any |= self.on_server_mq(t);
        }
        if !any
            && self
                .polling_until
                .is_some_and(|until| Instant::now() >= until)
        {
            self.polling_until = None;
            self.writers_waiting.clear();
            self.server_mqs.release_waiters();
        }
        any
    }

    fn next_timeout(&self) -> EpollTimeout {
        if self.resources.has_pending() || self.server_mqs.owes_broadcast() {
            return EpollTimeout::from(PENDING_RETRY.as_millis() as u16);
        }
        let backstop = Instant::now() + server_mqs::BACKSTOP;
        match self.deadlines.values().min().copied() {
            None if self.server_mqs.is_empty() => EpollTimeout::NONE,
            at => {
                let ms = at
                    .map_or(backstop, |at| at.min(backstop))
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .clamp(0, 60_000) as u16;
                // Round up so the loop never spins on a deadline less than 1 ms away.
                EpollTimeout::from(ms.saturating_add(1))
            }
        }
    }

    fn fire_deadlines(&mut self) {
        let now = Instant::now();
        let due: Vec<SocketId> = self
            .deadlines
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(s, _)| *s)
            .collect();
        for sock in due {
            self.deadlines.remove(&sock);
            self.feed(Input::DeadlineExpired { sock });
        }
    }

    /// Everything apps posted into server mq `t`, to the core in queue order; opens (or
    /// extends) the polling window when there was something. Returns whether there was.
    fn on_server_mq(&mut self, t: usize) -> bool {
        let thread = t as u8;
        let posted = self.server_mqs.drain(t, DRAIN_BATCH);
        if !posted.is_empty() {
            self.polling_until = Some(Instant::now() + POLL_WINDOW);
        } else if self.polling_until.is_none() {
            // A wake-up that found nothing (a message another pass took): sleep again.
            self.server_mqs.release_waiters();
        }
        let any = !posted.is_empty();
        for posted in posted {
            match posted {
                Posted::Ctrl(msg) => {
                    self.last_ctrl = Some(Instant::now());
                    self.feed(Input::AppCtrl { thread, msg });
                }
                Posted::Io(event) => self.feed(Input::AppIo { thread, event }),
                Posted::Malformed(why) => {
                    debug!(thread, why, "malformed element in a server mq: ignored");
                }
            }
        }
        any
    }

    /// Writes what waited for room in app mqs; an app mq found broken detaches its app.
    fn retry_pending(&mut self) {
        if !self.resources.has_pending() {
            return;
        }
        let (broken, _) = self.resources.flush_all();
        for worker in broken {
            self.feed(Input::MqFailed { worker });
        }
    }

    /// Feeds one input to the core and performs what it asks, answers to resource requests and
    /// send failures included (the core orders them: see [`Server::input`]).
    fn feed(&mut self, input: Input<'_>) {
        self.core.input(input);
        while let Some(action) = self.core.poll_action() {
            self.perform(action);
        }
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Accepted(id) => {
                if let Some((fd, _)) = self.accepting.take() {
                    self.accepting = Some((fd, Ok(id)));
                }
            }
            Action::Refuse => {
                if let Some((fd, _)) = self.accepting.take() {
                    self.accepting = Some((fd, Err(())));
                }
            }
            Action::Send { sock, msg, fds } => self.send(sock, &msg, &fds),
            Action::Close(sock) => {
                self.deadlines.remove(&sock);
                if let Some(fd) = self.clients.remove(&sock) {
                    let _ = self.epoll.delete(&fd);
                    debug!(%sock, fd = fd.as_raw_fd(), "closed");
                }
            }
            Action::Listen { ns, name } => {
                let result = sock::listen_seqpacket(&name)
                    .map_err(|e| e.to_string())
                    .and_then(|fd| {
                        self.epoll
                            .add(
                                &fd,
                                EpollEvent::new(
                                    EpollFlags::EPOLLIN,
                                    TOKEN_LISTENER | u64::from(ns.0),
                                ),
                            )
                            .map_err(|e| format!("epoll: {e}"))?;
                        self.listeners.insert(ns, Listener { fd, name });
                        Ok(())
                    });
                self.core.input(Input::Listened { ns, result });
            }
            Action::Unlisten { ns } => {
                if let Some(l) = self.listeners.remove(&ns) {
                    let _ = self.epoll.delete(&l.fd);
                    unlink_socket(&l.name);
                }
            }
            Action::CreateWorkerResources { worker, spec } => {
                let result = self.resources.create_worker(worker, &spec);
                self.core.input(Input::WorkerResources { worker, result });
            }
            Action::CreateSegment(spec) => {
                let id = spec.id;
                let result = self.resources.create_segment(&spec);
                self.core.input(Input::SegmentCreated { id, result });
            }
            Action::PostCtrl { worker, msg } => {
                if let Err(e) = self.resources.post_ctrl(worker, &msg) {
                    self.post_failed(worker, e);
                }
            }
            Action::AllocFifoPair {
                pair,
                segment,
                slice,
                rx_size,
                tx_size,
            } => {
                let result = self
                    .resources
                    .alloc_fifo_pair(segment, slice, rx_size, tx_size);
                self.core.input(Input::FifoPairAllocated { pair, result });
            }
            Action::FreeFifoPair { segment, a, b } => {
                for offset in [a, b] {
                    self.resources.free_fifo(segment, offset);
                    self.writers_waiting
                        .remove(&sapi_core::FifoRef { segment, offset });
                }
            }
            Action::AllocShadows { pair, segment } => {
                let result = self.resources.alloc_shadows(segment);
                self.core.input(Input::ShadowsAllocated { pair, result });
            }
            Action::FreeShadows { segment, rx, tx } => {
                self.resources.free_fifo(segment, rx);
                self.resources.free_fifo(segment, tx);
            }
            Action::ProbeUnread { session, fifo } => {
                let unread = self.resources.unread(fifo);
                self.core.input(Input::Unread { session, unread });
            }
            Action::RelayTx(relay) => {
                let relayed = self.resources.relay_tx(&relay);
                self.relayed(relay.data, relayed);
            }
            Action::RelayRx(relay) => {
                let relayed = self.resources.relay_rx(&relay);
                self.relayed(relay.data, relayed);
            }
            Action::FreeSegment(id) => {
                self.resources.free_segment(id);
                self.writers_waiting.retain(|f, _| f.segment != id);
            }
            Action::FreeWorker(key) => self.resources.free_worker(key),
            Action::SetDeadline { sock, after } => {
                self.deadlines.insert(sock, Instant::now() + after);
            }
            Action::ClearDeadline(sock) => {
                self.deadlines.remove(&sock);
            }
            Action::Abandon(sock) => {
                self.deadlines.remove(&sock);
                if let Some(fd) = self.clients.remove(&sock) {
                    let _ = self.epoll.delete(&fd);
                    warn!(%sock, fd = fd.as_raw_fd(), "abandoning a socket (injected fault)");
                    self.abandoned.push(fd);
                }
            }
            Action::Abort(why) => {
                error!("aborting: {why}");
                std::process::abort();
            }
            Action::AdminReply(r) => {
                self.admin_answer = Some(r.map_err(|e| e.to_string()));
            }
        }
    }

    /// A post that could not be queued: a gone worker is no one's concern; an app mq the app
    /// broke (corrupt headers) detaches that app.
    /// What a relay over `fifo` did: the writer's wait (see `writers_waiting`), and the apps
    /// whose mq refused a notification.
    fn relayed(&mut self, fifo: sapi_core::FifoRef, relayed: resources::Relayed) {
        match relayed.writer {
            WriterRoom::Waits => {
                self.writers_waiting.insert(fifo, Instant::now());
            }
            WriterRoom::Told => {
                self.writers_waiting.remove(&fifo);
            }
            WriterRoom::Unchanged => {}
        }
        for (worker, e) in relayed.failed {
            self.post_failed(worker, e);
        }
    }

    fn post_failed(&mut self, worker: sapi_core::WorkerKey, e: resources::PostError) {
        match e {
            resources::PostError::NoWorker => {}
            e => {
                warn!(%worker, error = %e, "cannot write into the app's mq");
                self.core.input(Input::MqFailed { worker });
            }
        }
    }

    fn send(&mut self, sock: SocketId, msg: &Message, fds: &[sapi_core::FdRef]) {
        let Some(fd) = self.clients.get(&sock) else {
            return;
        };
        let bytes = match msg.encode(self.profile) {
            Ok(b) => b,
            Err(e) => {
                error!(%sock, error = %e, "cannot encode reply");
                return;
            }
        };
        let mut len = MSG_LEN;
        if self.faults.has(InjectedFault::ShortReply) && matches!(msg, Message::AttachReply(_)) {
            len -= 1;
        }
        let borrowed: Vec<BorrowedFd<'_>> =
            fds.iter().filter_map(|f| self.resources.fd(*f)).collect();
        if borrowed.len() != fds.len() {
            // A reply with fewer fds than it announces would leave the app waiting for the
            // rest, or mapping the wrong one: none at all, and the socket is treated as failed.
            error!(%sock, "an fd to send no longer exists: reply not sent");
            self.core.input(Input::SendFailed { sock });
            return;
        }
        if let Err(e) = sock::send_datagram(fd.as_raw_fd(), &bytes[..len], &borrowed) {
            warn!(%sock, error = %e, "send failed");
            self.core.input(Input::SendFailed { sock });
        }
    }

    fn on_listener_ready(&mut self, ns: NsIndex) {
        // Accept everything pending; the listener is level-triggered so a cap is safe.
        for _ in 0..64 {
            let Some(l) = self.listeners.get(&ns) else {
                return;
            };
            let (fd, peer) = match sock::accept(l.fd.as_fd()) {
                Ok(x) => x,
                Err(Errno::EAGAIN) => return,
                Err(Errno::EMFILE | Errno::ENFILE) => {
                    // The kernel reports EMFILE before it looks at the queue: stop once the
                    // spare fd shows nothing is waiting.
                    if self.shed_connection(ns) {
                        continue;
                    }
                    return;
                }
                Err(e) => {
                    warn!(ns = ns.0, error = %e, "accept failed");
                    return;
                }
            };
            self.accepting = Some((fd, Err(())));
            self.feed(Input::Accept { ns, peer });
            let Some((fd, decision)) = self.accepting.take() else {
                continue;
            };
            let Ok(id) = decision else { continue };
            let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
            if let Err(e) = self
                .epoll
                .add(&fd, EpollEvent::new(flags, client_token(id)))
            {
                warn!(%id, error = %e, "epoll add failed");
                self.feed(Input::Closed { sock: id });
                continue;
            }
            debug!(%id, fd = fd.as_raw_fd(), "registered");
            self.clients.insert(id, fd);
        }
    }

    /// Out of fds: the pending connection would keep the level-triggered listener readable
    /// forever. Give back the spare fd, accept the connection and close it at once (its peer
    /// sees EOF), then take the spare again (or on a later pass, if the limit still forbids).
    /// Returns whether a connection was shed.
    fn shed_connection(&mut self, ns: NsIndex) -> bool {
        let shed = self.with_spare_fd_free(|s| {
            s.listeners
                .get(&ns)
                .is_some_and(|l| sock::accept(l.fd.as_fd()).is_ok())
        });
        if shed {
            warn!(ns = ns.0, "out of file descriptors: refused a connection");
        }
        shed
    }

    /// [`Shell::shed_connection`] for the admin socket.
    fn shed_admin_connection(&mut self) {
        if self.with_spare_fd_free(|s| s.admin.accept().is_ok()) {
            warn!("out of file descriptors: refused an admin connection");
        }
    }

    /// Runs `f` with the spare fd closed, then takes the spare again.
    fn with_spare_fd_free<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.spare_fd = None;
        let out = f(self);
        self.spare_fd = open_spare_fd();
        out
    }

    fn on_client_ready(&mut self, sock: SocketId, events: EpollFlags) {
        // Drain what is readable, then look at hang-up: a peer may send and close at once.
        for _ in 0..64 {
            let Some(fd) = self.clients.get(&sock) else {
                return;
            };
            let raw = fd.as_raw_fd();
            match sock::recv_datagram(raw, &mut self.buf) {
                Ok(r) if r.len == 0 => {
                    let hung_up = self
                        .clients
                        .get(&sock)
                        .is_none_or(|fd| sock::peer_hung_up(fd.as_fd()));
                    if hung_up {
                        self.feed(Input::Closed { sock });
                        return;
                    }
                    self.feed_datagram(sock, 0, r.truncated, r.ctrunc);
                }
                Ok(r) => self.feed_datagram(sock, r.len, r.truncated, r.ctrunc),
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    debug!(%sock, error = %e, "recv error");
                    self.feed(Input::Closed { sock });
                    return;
                }
            }
        }
        if events.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
            && self.clients.contains_key(&sock)
        {
            self.feed(Input::Closed { sock });
        }
    }

    fn feed_datagram(&mut self, sock: SocketId, len: usize, truncated: bool, ctrunc: bool) {
        let buf = std::mem::take(&mut self.buf);
        self.feed(Input::Datagram {
            sock,
            bytes: &buf[..len],
            truncated,
            ctrunc,
        });
        self.buf = buf;
    }

    fn on_admin_ready(&mut self) {
        let deadline = Instant::now() + admin::ADMIN_EXCHANGE_BOUND;
        let mut stream = match self.admin.accept() {
            Ok((stream, _)) => stream,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                self.shed_admin_connection();
                return;
            }
            Err(_) => return,
        };
        let request = match admin::read_request(&mut stream, deadline) {
            Ok(r) => r,
            Err(e) => {
                let by = Instant::now() + admin::ADMIN_REFUSAL_BOUND;
                let _ = admin::write_answer(&mut stream, Err(&e.to_string()), by);
                return;
            }
        };
        let answer = self.answer_admin(&request);
        let answer = answer.as_deref().map_err(String::as_str);
        let _ = admin::write_answer(&mut stream, answer, deadline);
    }

    fn answer_admin(&mut self, request: &AdminRequest) -> Result<String, String> {
        match self.admin_command(request.command.clone())? {
            AdminOk::Done(text) => Ok(text + "\n"),
            AdminOk::Snapshot(mut snap) => {
                for ns in &mut snap.namespaces {
                    for s in &mut ns.sockets {
                        let id = SocketId {
                            ns: NsIndex(ns.index),
                            index: s.index,
                        };
                        s.fd = if s.index == 0 {
                            self.listeners.get(&id.ns).map(|l| l.fd.as_raw_fd())
                        } else {
                            self.clients.get(&id).map(|fd| fd.as_raw_fd())
                        };
                    }
                }
                for app in &mut snap.apps {
                    for w in &mut app.workers {
                        w.mq_occupancy = self.resources.mq_occupancy(sapi_core::WorkerKey {
                            app: sapi_core::AppIndex(app.index),
                            wrk: w.index,
                        });
                    }
                }
                if request.json {
                    serde_json::to_string_pretty(&snap)
                        .map(|s| s + "\n")
                        .map_err(|e| e.to_string())
                } else {
                    Ok(snap.render_text())
                }
            }
        }
    }

    /// Runs one admin command through the core and returns its answer.
    pub fn admin_command(&mut self, cmd: AdminCommand) -> Result<AdminOk, String> {
        self.admin_answer = None;
        self.feed(Input::Admin(cmd));
        self.admin_answer
            .take()
            .unwrap_or_else(|| Err("the core gave no answer".into()))
    }

    /// The core, for tests and invariant checks.
    pub fn core(&self) -> &Server {
        &self.core
    }

    /// Closes every socket and unlinks every socket file the server created.
    pub fn shutdown(&mut self) {
        for (_, l) in self.listeners.drain() {
            let _ = self.epoll.delete(&l.fd);
            unlink_socket(&l.name);
        }
        self.clients.clear();
        let _ = std::fs::remove_file(&self.admin_path);
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.shutdown();
        let _ = self.stop.take();
    }
}

fn open_spare_fd() -> Option<OwnedFd> {
    std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
}

fn unlink_socket(name: &SocketName) {
    if let SocketName::Path(p) = name {
        let _ = std::fs::remove_file(p);
    }
}

/// Starts a server and runs it until `stop` is readable; `ready` is called once every listener
/// is up.
pub fn serve(
    cfg: ServeConfig,
    stop: Option<OwnedFd>,
    ready: impl FnOnce(&Shell),
) -> Result<(), ServeError> {
    let mut shell = Shell::new(cfg, stop)?;
    ready(&shell);
    let r = shell.run();
    shell.shutdown();
    r
}
