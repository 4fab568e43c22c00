//! The server state machine: namespaces, sockets, apps, workers, segments and cert-key pairs.
//!
//! Owns every decision of the socket API (which retval, which fds in which order, who is
//! detached when). It takes [`Input`]s and returns [`Action`]s; it never performs a syscall,
//! reads a clock or panics on anything a peer sent, so a simulation or a fuzzer can drive it.
//!
//! Choices where VPP's behaviour is a defect or questionable (documented in the README too):
//! * a socket that never attached is freed when its peer closes (VPP leaks it);
//! * a failed ATTACH leaves nothing behind (VPP keeps a half-built app);
//! * a worker add on a socket that already owns a worker moves the socket's binding to the new
//!   worker like VPP, but closing the socket detaches every worker created on it, and deleting one
//!   of them keeps the socket open while another still uses it (VPP strands the other worker);
//! * `IS_BUILTIN` without `MEMFD_FOR_BUILTIN` is refused with NOSUPPORT (VPP hands out an
//!   unusable private segment); `MAX_FIFO_MEMORY` without `SEGMENT_SIZE` and sizes whose segment
//!   would not fit the u32 `segment_size` of APP_ADD_SEGMENT are refused with INVALID;
//! * deleting cert-key pair 0 (preallocated) is refused with INVALID;
//! * app indices are not reused while the server runs, so a crashed app's index stays invalid.

mod admin;
mod attach;
mod certkey;
mod introspect;
mod session;
mod socket;
mod worker;

use std::collections::{BTreeMap, VecDeque};

use sapi_wire::{AddDelCertKey, AppName, AttachOptions, SapiError};
use tracing::warn;

use crate::access::PeerCred;
use crate::action::Action;
use crate::config::Config;
use crate::ids::{AppIndex, NsIndex, SegmentId, SocketId, WorkerKey};
use crate::input::Input;
use crate::socket_name::SocketName;
use crate::warn_budget::WarnBudget;

pub use introspect::Counts;

#[derive(Debug)]
struct Namespace {
    id: String,
    name: SocketName,
    secret: u64,
    /// Index 0 is the listener and always `None`.
    sockets: Vec<Option<Socket>>,
}

#[derive(Debug, Default)]
struct Socket {
    peer: PeerCred,
    /// Workers created on this socket, oldest first; the last is the one the socket is bound to.
    workers: Vec<WorkerKey>,
    pending_certkey: Option<AddDelCertKey>,
    /// The last datagram sent to this socket was a SEND_FDS carrying a segment: if that send
    /// fails, the app cannot learn of the segment (HEAD force-detaches the whole app).
    segment_fd_in_flight: bool,
    /// What this peer has made the server warn about (`warn_budget`).
    warnings: WarnBudget,
}

#[derive(Debug)]
struct App {
    name: AppName,
    ns: NsIndex,
    options: AttachOptions,
    workers: BTreeMap<u32, Worker>,
}

#[derive(Debug)]
struct Worker {
    socket: SocketId,
    segment_manager: u32,
    segments: Vec<WorkerSegment>,
    next_segment_index: u32,
    eventfd: bool,
    mq_offset: u64,
    /// Set while its resources are being created; the reply goes out when they are ready.
    pending: Option<PendingReply>,
}

#[derive(Debug)]
struct WorkerSegment {
    id: SegmentId,
    handle: u64,
    name: String,
    ssvm_size: u64,
}

#[derive(Debug, Clone, Copy)]
enum PendingReply {
    Attach,
    WorkerAdd,
    /// An ATTACH refused with this error, built anyway (injected `keep-failed-attach`).
    RefusedAttach(SapiError),
}

#[derive(Debug)]
enum PendingAdmin {
    NsAdd(NsIndex),
    SegmentAdd {
        worker: WorkerKey,
        id: SegmentId,
        name: String,
    },
}

/// The sans-IO server. Give it [`Input`]s with [`Server::input`] and perform the [`Action`]s
/// [`Server::poll_action`] hands out, in order.
#[derive(Debug)]
pub struct Server {
    cfg: Config,
    namespaces: Vec<Option<Namespace>>,
    apps: BTreeMap<AppIndex, App>,
    next_app: u32,
    /// Freed app indices, most recent last: kept, and reused, only under injected
    /// `reuse-indices` (the reference's own choice is never to reuse an index).
    freed_apps: Vec<u32>,
    /// Freed segment-manager indices, most recent last (likewise).
    freed_segment_managers: Vec<u32>,
    next_segment_id: u64,
    next_segment_manager: u32,
    /// Index 0 is preallocated, as in VPP.
    certkeys: Vec<Option<Vec<u8>>>,
    pending_admin: Option<PendingAdmin>,
    /// What the input being handled asks for, in order.
    out: Vec<Action>,
    /// Actions not yet handed to the shell. The actions an input causes go in front of those
    /// still pending, so the answer to a resource request is acted on before the rest of the
    /// batch that asked for it — as if the shell had performed it depth-first.
    pending: VecDeque<Action>,
    /// Actions that must come after every action pending when they were asked for (a ct
    /// segment's unmap after the fifo frees queued before it; see `queue_out`).
    out_last: Vec<Action>,
    /// Sockets whose send failed, handled once every pending action has been performed.
    failed_sends: VecDeque<SocketId>,
    /// Listeners, cut-through pairs and their segments.
    sessions: session::Sessions,
}

impl Server {
    /// A server with no namespace yet; add `default` with [`AdminCommand::NsAdd`](crate::AdminCommand::NsAdd).
    pub fn new(cfg: Config) -> Self {
        let threads = cfg.vpp_workers;
        Server {
            cfg,
            namespaces: Vec::new(),
            apps: BTreeMap::new(),
            next_app: 1,
            freed_apps: Vec::new(),
            freed_segment_managers: Vec::new(),
            next_segment_id: 1,
            next_segment_manager: 1,
            certkeys: vec![Some(Vec::new())],
            pending_admin: None,
            out: Vec::new(),
            out_last: Vec::new(),
            pending: VecDeque::new(),
            failed_sends: VecDeque::new(),
            sessions: session::Sessions {
                pools: (0..=threads).map(|_| session::Pool::default()).collect(),
                ..session::Sessions::default()
            },
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Takes one input. What it asks for is handed out by [`Server::poll_action`], ahead of
    /// actions still pending from earlier inputs: the shell feeds the answer to a resource
    /// request while it performs the batch that asked, and that answer is acted on first.
    ///
    /// A failed send ([`Input::SendFailed`]) is a protocol event of its own: the core takes it
    /// up only once every pending action has been performed, so no action of a batch meets a
    /// worker that a failure inside the same batch detached (VPP's sends report failures after
    /// the handler returns, too).
    pub fn input(&mut self, input: Input<'_>) {
        match input {
            Input::Accept { ns, peer } => self.on_accept(ns, peer),
            Input::Datagram {
                sock,
                bytes,
                truncated,
                ctrunc,
            } => self.on_datagram(sock, bytes, truncated, ctrunc),
            Input::Closed { sock } => self.on_closed(sock),
            Input::SendFailed { sock } => {
                self.failed_sends.push_back(sock);
                return;
            }
            Input::DeadlineExpired { sock } => self.on_deadline(sock),
            Input::MqFailed { worker } => {
                warn!(%worker, "cannot write into the worker's mq: detaching its app");
                self.delete_app(worker.app);
            }
            Input::WorkerResources { worker, result } => self.on_worker_resources(worker, result),
            Input::SegmentCreated { id, result } => self.on_segment_created(id, result),
            Input::Listened { ns, result } => self.on_listened(ns, result),
            Input::Admin(cmd) => self.on_admin(cmd),
            Input::AppCtrl { thread, msg } => self.on_app_ctrl(thread, msg),
            Input::AppIo { thread, event } => self.on_app_io(thread, event),
            Input::FifoPairAllocated { pair, result } => self.on_fifo_pair(pair, result),
            Input::ShadowsAllocated { pair, result } => self.on_shadows(pair, result),
            Input::Unread { session, unread } => self.on_unread(session, unread),
        }
        self.queue_out();
    }

    /// The next action to perform, in order; `None` once the server has nothing left to do.
    /// The shell's whole loop is `server.input(i); while let Some(a) = server.poll_action() {
    /// perform(a) }`, feeding resource answers and send failures back with [`Server::input`].
    pub fn poll_action(&mut self) -> Option<Action> {
        loop {
            if let Some(action) = self.pending.pop_front() {
                return Some(action);
            }
            let sock = self.failed_sends.pop_front()?;
            self.on_send_failed(sock);
            self.queue_out();
        }
    }

    /// [`Server::input`], then every action until none is left: for tests and tools that
    /// answer resource requests themselves, one step at a time.
    pub fn handle(&mut self, input: Input<'_>) -> Vec<Action> {
        self.input(input);
        std::iter::from_fn(|| self.poll_action()).collect()
    }

    fn queue_out(&mut self) {
        for action in self.out.drain(..).rev() {
            self.pending.push_front(action);
        }
        // An answer's actions go first, and may end a ct segment while a batch still holds a
        // FreeFifoPair in it (a detach closing several pairs of one segment, some at once and
        // some after their unread probe): its unmap waits for the rest of the batch.
        self.pending.extend(self.out_last.drain(..));
    }
}
