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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tracing::{debug, info, warn};

use sapi_wire::{
    AddDelCertKey, AddDelCertKeyReply, AddDelWorker, AddDelWorkerReply, AppName, AppOptionFlags,
    Attach, AttachOptions, AttachReply, DecodeError, Direction, FdFlags, MSG_LEN, Message,
    OptionIndex, Profile, SapiError,
};

use super::event::{
    Action, AdminCommand, AdminError, AdminOk, CtrlEvent, FdRef, Input, PeerCred, ResourceError,
    SegmentSpec, SocketName, WorkerResources, WorkerResourcesReady,
};
use super::fault::{InjectedFault, InjectedFaults};
use super::ids::{AppIndex, NsIndex, SegmentId, SocketId, WorkerKey, segment_handle};
use super::snapshot::{AppView, NamespaceView, SegmentView, Snapshot, SocketView, WorkerView};

/// Smallest first segment VPP hands out, whatever SEGMENT_SIZE says.
pub const MIN_SEGMENT_SIZE: u64 = 1 << 20;
/// Largest SEGMENT_SIZE / ADD_SEGMENT_SIZE accepted: the segment (plus VPP's 12 KiB of headers)
/// must fit the u32 `segment_size` of APP_ADD_SEGMENT.
pub const MAX_SEGMENT_SIZE: u64 = (1 << 32) - (1 << 16);
/// Largest EVT_QUEUE_SIZE accepted (the queue length is a u32 in the mq header).
pub const MAX_EVT_QUEUE_SIZE: u64 = 1 << 20;
/// Default EVT_QUEUE_SIZE.
pub const DEFAULT_EVT_QUEUE_SIZE: u32 = 128;
/// cert + key longer than this is refused before its data is read.
pub const MAX_CERTKEY_LEN: u16 = 20_000;
/// Each of cert and key longer than this is refused.
pub const MAX_CERT_OR_KEY_LEN: u16 = 10_000;
/// How long the second datagram of a cert-key add may take to arrive. VPP retries 6 reads 1 µs
/// apart; an event loop cannot read ahead, so the reference waits this long instead.
pub const CERTKEY_DATA_TIMEOUT: Duration = Duration::from_millis(100);
/// Most sockets a namespace can hold (index 0 is its listener).
const MAX_SOCKETS_PER_NS: usize = 1 << 16;

/// Static configuration of a server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which protocol revision to speak.
    pub profile: Profile,
    /// Simulated VPP worker threads (0 = main thread only).
    pub vpp_workers: u8,
    /// Offset of the ctrl mq for `vpp_ctrl_mq_thread` in the VPP mqs segment.
    pub vpp_ctrl_mq_offset: u64,
    /// Directory under which `app_ns_sockets/<id>` are created.
    pub runtime_dir: PathBuf,
    /// Test-only deviations.
    pub faults: InjectedFaults,
    /// Who may connect (opt-in; VPP lets anyone with access to the socket file in).
    pub access: AccessPolicy,
    /// Refuse an ATTACH whose NAMESPACE_SECRET differs from the namespace's (opt-in; VPP
    /// ignores secrets over the socket API).
    pub enforce_ns_secret: bool,
}

/// Peer credentials allowed to connect. Empty lists allow everyone, as VPP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Uids allowed (`--allow-uid`).
    pub allow_uids: Vec<u32>,
    /// Gids allowed (`--allow-gid`).
    pub allow_gids: Vec<u32>,
}

impl AccessPolicy {
    /// Whether a peer with these credentials may connect.
    pub fn allows(&self, peer: &PeerCred) -> bool {
        (self.allow_uids.is_empty() && self.allow_gids.is_empty())
            || self.allow_uids.contains(&peer.uid)
            || self.allow_gids.contains(&peer.gid)
    }
}

impl Config {
    /// `vpp_ctrl_mq_thread`: 1 when VPP has worker threads, else 0.
    pub fn vpp_ctrl_mq_thread(&self) -> u8 {
        u8::from(self.vpp_workers > 0)
    }
}

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

/// The sans-IO server. Feed it [`Input`]s with [`Server::handle`]; perform the returned
/// [`Action`]s in order.
#[derive(Debug)]
pub struct Server {
    cfg: Config,
    namespaces: Vec<Option<Namespace>>,
    apps: BTreeMap<AppIndex, App>,
    next_app: u32,
    next_segment_id: u64,
    next_segment_manager: u32,
    /// Index 0 is preallocated, as in VPP.
    certkeys: Vec<Option<Vec<u8>>>,
    pending_admin: Option<PendingAdmin>,
    out: Vec<Action>,
}

impl Server {
    /// A server with no namespace yet; add `default` with [`AdminCommand::NsAdd`].
    pub fn new(cfg: Config) -> Self {
        Server {
            cfg,
            namespaces: Vec::new(),
            apps: BTreeMap::new(),
            next_app: 1,
            next_segment_id: 1,
            next_segment_manager: 1,
            certkeys: vec![Some(Vec::new())],
            pending_admin: None,
            out: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Handles one input and returns what to do about it.
    pub fn handle(&mut self, input: Input<'_>) -> Vec<Action> {
        match input {
            Input::Accept { ns, peer } => self.on_accept(ns, peer),
            Input::Datagram {
                sock,
                bytes,
                truncated,
                ctrunc,
            } => self.on_datagram(sock, bytes, truncated, ctrunc),
            Input::Closed { sock } => self.on_closed(sock),
            Input::SendFailed { sock } => self.on_send_failed(sock),
            Input::DeadlineExpired { sock } => self.on_deadline(sock),
            Input::MqFailed { worker } => {
                warn!(%worker, "cannot write into the worker's mq: detaching its app");
                self.delete_app(worker.app);
            }
            Input::WorkerResources { worker, result } => self.on_worker_resources(worker, result),
            Input::SegmentCreated { id, result } => self.on_segment_created(id, result),
            Input::Listened { ns, result } => self.on_listened(ns, result),
            Input::Admin(cmd) => self.on_admin(cmd),
        }
        std::mem::take(&mut self.out)
    }

    // ---------------------------------------------------------------------------------------
    // Sockets

    fn socket_mut(&mut self, sock: SocketId) -> Option<&mut Socket> {
        self.namespaces
            .get_mut(usize::from(sock.ns.0))?
            .as_mut()?
            .sockets
            .get_mut(usize::from(sock.index))?
            .as_mut()
    }

    fn socket(&self, sock: SocketId) -> Option<&Socket> {
        self.namespaces
            .get(usize::from(sock.ns.0))?
            .as_ref()?
            .sockets
            .get(usize::from(sock.index))?
            .as_ref()
    }

    fn on_accept(&mut self, ns: NsIndex, peer: PeerCred) {
        if !self.cfg.access.allows(&peer) {
            warn!(
                ns = ns.0,
                pid = peer.pid,
                uid = peer.uid,
                gid = peer.gid,
                "peer not allowed"
            );
            self.out.push(Action::Refuse);
            return;
        }
        let Some(Some(namespace)) = self.namespaces.get_mut(usize::from(ns.0)) else {
            self.out.push(Action::Refuse);
            return;
        };
        let slot = namespace
            .sockets
            .iter()
            .skip(1)
            .position(Option::is_none)
            .map(|i| i + 1);
        let index = match slot {
            Some(i) => i,
            None if namespace.sockets.len() < MAX_SOCKETS_PER_NS => {
                namespace.sockets.push(None);
                namespace.sockets.len() - 1
            }
            None => {
                warn!(ns = ns.0, "no socket index left, refusing connection");
                self.out.push(Action::Refuse);
                return;
            }
        };
        namespace.sockets[index] = Some(Socket {
            peer,
            ..Socket::default()
        });
        let id = SocketId {
            ns,
            index: index as u16,
        };
        debug!(%id, pid = peer.pid, "accepted");
        self.out.push(Action::Accepted(id));
    }

    /// Forgets a socket and tells the shell to close it. Workers must already be gone.
    fn close_socket(&mut self, sock: SocketId) {
        let Some(Some(ns)) = self.namespaces.get_mut(usize::from(sock.ns.0)) else {
            return;
        };
        if let Some(s) = ns
            .sockets
            .get_mut(usize::from(sock.index))
            .and_then(Option::take)
        {
            if s.pending_certkey.is_some() {
                self.out.push(Action::ClearDeadline(sock));
            }
            self.out.push(Action::Close(sock));
        }
    }

    fn on_closed(&mut self, sock: SocketId) {
        let Some(s) = self.socket(sock) else { return };
        let workers = s.workers.clone();
        if self.cfg.faults.has(InjectedFault::NoCrashDetach) && !workers.is_empty() {
            // The fault: leave every worker in place, pointing at a dead socket.
            if let Some(s) = self.socket_mut(sock) {
                s.workers.clear();
            }
            self.close_socket(sock);
            return;
        }
        info!(%sock, workers = workers.len(), "socket closed: detaching its workers");
        for w in workers {
            self.delete_worker(w);
        }
        self.close_socket(sock);
    }

    /// A send that cannot complete means a peer that is gone or does not read: the socket is
    /// treated as closed (crash detach of its workers). When the lost datagram carried a new
    /// segment's fd, HEAD force-detaches the whole app, as VPP does since 2026-04.
    fn on_send_failed(&mut self, sock: SocketId) {
        let Some(s) = self.socket(sock) else { return };
        warn!(%sock, segment_fd = s.segment_fd_in_flight, "send failed");
        if self.cfg.profile == Profile::Head && s.segment_fd_in_flight {
            let apps: Vec<AppIndex> = s.workers.iter().map(|w| w.app).collect();
            for app in apps {
                self.delete_app(app);
            }
        }
        self.on_closed(sock);
    }

    // ---------------------------------------------------------------------------------------
    // Datagrams

    fn on_datagram(&mut self, sock: SocketId, bytes: &[u8], truncated: bool, ctrunc: bool) {
        let Some(s) = self.socket_mut(sock) else {
            return;
        };
        if ctrunc {
            warn!(%sock, "peer sent ancillary data (fds?); dropped by the kernel");
        }
        if let Some(req) = s.pending_certkey.take() {
            self.out.push(Action::ClearDeadline(sock));
            self.finish_certkey_add(sock, req, Some(bytes));
            return;
        }
        let bound = !s.workers.is_empty();
        if bytes.len() < MSG_LEN {
            if bound {
                // VPP treats a short read as a socket error: crash detach.
                warn!(%sock, len = bytes.len(), "short datagram on a bound socket: detaching");
                self.on_closed(sock);
            } else {
                warn!(%sock, len = bytes.len(), "short datagram on an unbound socket: ignored");
            }
            return;
        }
        if truncated || bytes.len() > MSG_LEN {
            debug!(%sock, "datagram longer than 209 bytes: processing its first 209");
        }
        let request = &bytes[..MSG_LEN];
        match Message::decode(request, self.cfg.profile, Direction::AppToServer) {
            Ok(Message::Attach(a)) => self.on_attach(sock, a),
            Ok(Message::AddDelWorker(w)) => self.on_add_del_worker(sock, w),
            Ok(Message::AddDelCertKey(c)) => self.on_certkey(sock, c),
            Ok(other) => warn!(%sock, ty = ?other.msg_type(), "unexpected message: ignored"),
            Err(e @ DecodeError::Truncated { .. }) => {
                warn!(%sock, error = %e, "undecodable datagram: ignored")
            }
            Err(e) => warn!(%sock, error = %e, "ignored"),
        }
    }

    fn retval(&self, err: SapiError) -> i32 {
        err.retval(self.cfg.profile)
    }

    fn send(&mut self, sock: SocketId, msg: Message, fds: Vec<FdRef>) {
        let carries_segment = matches!(msg, Message::SendFds);
        if let Some(s) = self.socket_mut(sock) {
            s.segment_fd_in_flight = carries_segment;
        }
        self.out.push(Action::Send { sock, msg, fds });
    }

    // ---------------------------------------------------------------------------------------
    // ATTACH

    fn attach_error(&mut self, sock: SocketId, err: SapiError) {
        let retval = self.retval(err);
        self.send(
            sock,
            Message::AttachReply(AttachReply {
                retval,
                ..AttachReply::default()
            }),
            Vec::new(),
        );
    }

    fn validate_attach(&self, options: &AttachOptions) -> Result<(), SapiError> {
        let flags = options.flags();
        if flags.contains(AppOptionFlags::IS_BUILTIN)
            && !flags.contains(AppOptionFlags::MEMFD_FOR_BUILTIN)
        {
            return Err(SapiError::NoSupport);
        }
        if options.get(OptionIndex::PreallocFifoPairs) != 0
            && options.get(OptionIndex::PreallocFifoHdrs) != 0
        {
            return Err(SapiError::NoSupport);
        }
        if self.cfg.profile == Profile::Head
            && options.get(OptionIndex::MaxFifoMemory) != 0
            && options.get(OptionIndex::SegmentSize) == 0
        {
            return Err(SapiError::Invalid);
        }
        if options.get(OptionIndex::SegmentSize) > MAX_SEGMENT_SIZE
            || options.get(OptionIndex::AddSegmentSize) > MAX_SEGMENT_SIZE
            || options.get(OptionIndex::EvtQueueSize) > MAX_EVT_QUEUE_SIZE
        {
            return Err(SapiError::Invalid);
        }
        Ok(())
    }

    fn on_attach(&mut self, sock: SocketId, mut req: Attach) {
        let Some(s) = self.socket(sock) else { return };
        if !s.workers.is_empty() {
            let err = if self.cfg.faults.has(InjectedFault::WrongRetval) {
                SapiError::NoApp
            } else {
                SapiError::AppAttached
            };
            return self.attach_error(sock, err);
        }
        if self.cfg.enforce_ns_secret {
            let secret = self
                .namespaces
                .get(usize::from(sock.ns.0))
                .and_then(Option::as_ref)
                .map_or(0, |n| n.secret);
            if req.options.get(OptionIndex::NamespaceSecret) != secret {
                info!(%sock, "attach refused: wrong namespace secret");
                return self.attach_error(sock, SapiError::WrongNsSecret);
            }
        }
        // The namespace is the socket's, whatever the app wrote; VPP never checks the secret.
        req.options
            .set(OptionIndex::Namespace, u64::from(sock.ns.0));
        if let Err(e) = self.validate_attach(&req.options) {
            info!(%sock, error = ?e, "attach refused");
            return self.attach_error(sock, e);
        }
        let Some(app_index) = self.alloc_app_index() else {
            return self.attach_error(sock, SapiError::Alloc);
        };
        info!(%sock, app = app_index.0, name = %req.name, "attach");
        self.apps.insert(
            app_index,
            App {
                name: req.name,
                ns: sock.ns,
                options: req.options,
                workers: BTreeMap::new(),
            },
        );
        self.create_worker(app_index, 0, sock, PendingReply::Attach);
    }

    fn alloc_app_index(&mut self) -> Option<AppIndex> {
        // Monotonic (wrapping past u32::MAX - 1, skipping live ones) so a crashed app's index is
        // not handed to the next app while clients may still probe it.
        for _ in 0..=self.apps.len() {
            let candidate = AppIndex(self.next_app);
            self.next_app = match self.next_app.checked_add(1) {
                Some(n) if n != u32::MAX => n,
                _ => 1,
            };
            if !self.apps.contains_key(&candidate) {
                return Some(candidate);
            }
        }
        None
    }

    fn new_segment_spec(&mut self, app: AppIndex, wrk: u32, index: u32, size: u64) -> SegmentSpec {
        let id = SegmentId(self.next_segment_id);
        self.next_segment_id += 1;
        let huge_pages = self
            .apps
            .get(&app)
            .is_some_and(|a| a.options.flags().contains(AppOptionFlags::USE_HUGE_PAGE));
        SegmentSpec {
            id,
            name: format!("seg-{}-{wrk}-{index}", app.0),
            requested_size: size.max(MIN_SEGMENT_SIZE),
            huge_pages,
        }
    }

    /// Starts creating a worker; the reply is sent once its resources exist.
    fn create_worker(&mut self, app: AppIndex, wrk: u32, sock: SocketId, pending: PendingReply) {
        let Some(a) = self.apps.get(&app) else { return };
        let size = a.options.get(OptionIndex::SegmentSize);
        let evt_queue_size = match a.options.get(OptionIndex::EvtQueueSize) {
            0 => DEFAULT_EVT_QUEUE_SIZE,
            n => u32::try_from(n).unwrap_or(u32::MAX),
        };
        let eventfd = a
            .options
            .flags()
            .contains(AppOptionFlags::EVT_MQ_USE_EVENTFD);
        let segment = self.new_segment_spec(app, wrk, 0, size);
        let segment_manager = self.next_segment_manager;
        self.next_segment_manager = self.next_segment_manager.wrapping_add(1).max(1);
        let worker = Worker {
            socket: sock,
            segment_manager,
            segments: vec![WorkerSegment {
                id: segment.id,
                handle: segment_handle(segment_manager, 0),
                name: segment.name.clone(),
                ssvm_size: 0,
            }],
            next_segment_index: 1,
            eventfd,
            mq_offset: 0,
            pending: Some(pending),
        };
        if let Some(a) = self.apps.get_mut(&app) {
            a.workers.insert(wrk, worker);
        }
        self.out.push(Action::CreateWorkerResources {
            worker: WorkerKey { app, wrk },
            spec: WorkerResources {
                segment,
                evt_queue_size,
                eventfd,
            },
        });
    }

    fn on_worker_resources(
        &mut self,
        key: WorkerKey,
        result: Result<WorkerResourcesReady, ResourceError>,
    ) {
        let Some(app) = self.apps.get_mut(&key.app) else {
            return;
        };
        let Some(worker) = app.workers.get_mut(&key.wrk) else {
            return;
        };
        let Some(pending) = worker.pending.take() else {
            return;
        };
        let sock = worker.socket;
        let ready = match result {
            Ok(r) => r,
            Err(e) => {
                warn!(worker = %key, error = %e, "worker resources failed");
                let err = match e {
                    ResourceError::SegmentCreate => SapiError::SegCreate,
                    // VPP 26.10 answered −1 when huge pages were missing.
                    ResourceError::HugePages => SapiError::Unknown,
                    ResourceError::EventfdAlloc => SapiError::EventfdAlloc,
                };
                // Nothing half-built stays behind: the segment the shell may have made is freed.
                let segments: Vec<SegmentId> = worker.segments.iter().map(|s| s.id).collect();
                app.workers.remove(&key.wrk);
                for id in segments {
                    self.out.push(Action::FreeSegment(id));
                }
                self.out.push(Action::FreeWorker(key));
                if self
                    .apps
                    .get(&key.app)
                    .is_some_and(|a| a.workers.is_empty())
                {
                    self.apps.remove(&key.app);
                }
                let retval = self.retval(err);
                let msg = match pending {
                    PendingReply::Attach => Message::AttachReply(AttachReply {
                        retval,
                        ..AttachReply::default()
                    }),
                    PendingReply::WorkerAdd => Message::AddDelWorkerReply(AddDelWorkerReply {
                        retval,
                        wrk_index: key.wrk,
                        api_client_handle: sock.api_client_handle(),
                        is_add: true,
                        ..AddDelWorkerReply::default()
                    }),
                };
                self.send(sock, msg, Vec::new());
                return;
            }
        };
        worker.mq_offset = ready.mq_offset;
        if let Some(first) = worker.segments.first_mut() {
            first.ssvm_size = ready.ssvm_size;
        }
        let segment_id = worker.segments.first().map(|s| s.id);
        let seg_handle = worker.segments.first().map_or(0, |s| s.handle);
        let eventfd = worker.eventfd;
        if let Some(s) = self.socket_mut(sock) {
            s.workers.push(key);
        }
        let mut flags = FdFlags::MEMFD_SEGMENT;
        let mut fds = Vec::with_capacity(3);
        if let Some(id) = segment_id {
            fds.push(FdRef::Segment(id));
        }
        if eventfd {
            flags |= FdFlags::MQ_EVENTFD;
            if !(self.cfg.faults.has(InjectedFault::MissingEventfd)
                && matches!(pending, PendingReply::Attach))
            {
                fds.push(FdRef::WorkerEventfd(key));
            }
        }
        let msg = match pending {
            PendingReply::Attach => {
                flags |= FdFlags::VPP_MQ_SEGMENT;
                if self.cfg.faults.has(InjectedFault::WrongFdOrder) {
                    fds.insert(1, FdRef::VppMqsSegment);
                } else {
                    fds.insert(0, FdRef::VppMqsSegment);
                }
                Message::AttachReply(AttachReply {
                    retval: 0,
                    app_index: key.app.0,
                    app_mq: ready.mq_offset,
                    vpp_ctrl_mq: self.cfg.vpp_ctrl_mq_offset,
                    segment_handle: seg_handle,
                    api_client_handle: sock.api_client_handle(),
                    vpp_ctrl_mq_thread: self.cfg.vpp_ctrl_mq_thread(),
                    n_fds: flags.bits().count_ones() as u8,
                    fd_flags: flags,
                })
            }
            PendingReply::WorkerAdd => Message::AddDelWorkerReply(AddDelWorkerReply {
                retval: 0,
                wrk_index: key.wrk,
                app_event_queue_address: ready.mq_offset,
                segment_handle: seg_handle,
                api_client_handle: sock.api_client_handle(),
                n_fds: flags.bits().count_ones() as u8,
                fd_flags: flags,
                is_add: true,
            }),
        };
        info!(worker = %key, %sock, "worker ready");
        self.send(sock, msg, fds);
    }

    // ---------------------------------------------------------------------------------------
    // Workers

    fn on_add_del_worker(&mut self, sock: SocketId, req: AddDelWorker) {
        let app = AppIndex(req.app_index);
        let invalid = self.retval(SapiError::Invalid);
        let fail = |retval: i32| {
            Message::AddDelWorkerReply(AddDelWorkerReply {
                retval,
                wrk_index: req.wrk_index,
                api_client_handle: u32::MAX,
                is_add: req.is_add,
                ..AddDelWorkerReply::default()
            })
        };
        let reply_to_delete = self.cfg.profile == Profile::Seed;
        let Some(a) = self.apps.get(&app) else {
            info!(%sock, app = app.0, "worker request for an unknown app");
            if req.is_add || reply_to_delete {
                self.send(sock, fail(invalid), Vec::new());
            }
            return;
        };
        if req.is_add {
            // Lowest free map index, as VPP's pool.
            let wrk = (0..=u32::MAX)
                .find(|i| !a.workers.contains_key(i))
                .unwrap_or(u32::MAX);
            self.create_worker(app, wrk, sock, PendingReply::WorkerAdd);
            return;
        }
        let key = WorkerKey {
            app,
            wrk: req.wrk_index,
        };
        let exists = a
            .workers
            .get(&req.wrk_index)
            .is_some_and(|w| w.pending.is_none());
        if !exists {
            info!(%sock, worker = %key, "delete of an unknown worker");
            if reply_to_delete {
                self.send(sock, fail(invalid), Vec::new());
            }
            return;
        }
        if reply_to_delete {
            // The seed replied to a delete; the reference sends it before closing any socket.
            self.send(
                sock,
                Message::AddDelWorkerReply(AddDelWorkerReply {
                    retval: 0,
                    wrk_index: req.wrk_index,
                    is_add: false,
                    ..AddDelWorkerReply::default()
                }),
                Vec::new(),
            );
        }
        info!(%sock, worker = %key, "worker delete");
        self.delete_worker(key);
    }

    /// Frees a worker and its resources, closes its socket when no other worker uses it, and
    /// frees the app with its last worker.
    fn delete_worker(&mut self, key: WorkerKey) {
        let Some(app) = self.apps.get_mut(&key.app) else {
            return;
        };
        let Some(worker) = app.workers.remove(&key.wrk) else {
            return;
        };
        let app_empty = app.workers.is_empty();
        for seg in &worker.segments {
            self.out.push(Action::FreeSegment(seg.id));
        }
        self.out.push(Action::FreeWorker(key));
        if let Some(s) = self.socket_mut(worker.socket) {
            s.workers.retain(|w| *w != key);
            if s.workers.is_empty() {
                self.close_socket(worker.socket);
            }
        }
        if app_empty {
            info!(app = key.app.0, "app freed with its last worker");
            self.apps.remove(&key.app);
        }
    }

    fn delete_app(&mut self, app: AppIndex) {
        let workers: Vec<u32> = self
            .apps
            .get(&app)
            .map(|a| a.workers.keys().copied().collect())
            .unwrap_or_default();
        for wrk in workers {
            self.delete_worker(WorkerKey { app, wrk });
        }
    }

    // ---------------------------------------------------------------------------------------
    // Cert-key pairs

    fn certkey_reply(&mut self, sock: SocketId, context: u32, retval: i32, index: u32) {
        self.send(
            sock,
            Message::AddDelCertKeyReply(AddDelCertKeyReply {
                context,
                retval,
                index,
            }),
            Vec::new(),
        );
    }

    fn on_certkey(&mut self, sock: SocketId, req: AddDelCertKey) {
        let invalid = self.retval(SapiError::Invalid);
        if !req.is_add {
            let idx = req.index as usize;
            let live = idx != 0 && self.certkeys.get(idx).is_some_and(Option::is_some);
            if live {
                self.certkeys[idx] = None;
                return self.certkey_reply(sock, req.context, 0, 0);
            }
            return self.certkey_reply(sock, req.context, invalid, 0);
        }
        if req.certkey_len > MAX_CERTKEY_LEN || req.certkey_len == 0 {
            return self.certkey_reply(sock, req.context, invalid, 0);
        }
        if let Some(s) = self.socket_mut(sock) {
            s.pending_certkey = Some(req);
            self.out.push(Action::SetDeadline {
                sock,
                after: CERTKEY_DATA_TIMEOUT,
            });
        }
    }

    fn on_deadline(&mut self, sock: SocketId) {
        let Some(s) = self.socket_mut(sock) else {
            return;
        };
        if let Some(req) = s.pending_certkey.take() {
            info!(%sock, "cert-key data never arrived");
            self.finish_certkey_add(sock, req, None);
        }
    }

    fn finish_certkey_add(&mut self, sock: SocketId, req: AddDelCertKey, data: Option<&[u8]>) {
        let invalid = self.retval(SapiError::Invalid);
        let key_len = req.certkey_len.saturating_sub(req.cert_len);
        let ok = data.is_some_and(|d| d.len() == usize::from(req.certkey_len))
            && req.cert_len <= MAX_CERT_OR_KEY_LEN
            && req.certkey_len >= req.cert_len
            && key_len <= MAX_CERT_OR_KEY_LEN;
        let (Some(data), true) = (data, ok) else {
            return self.certkey_reply(sock, req.context, invalid, 0);
        };
        let slot = self.certkeys.iter().skip(1).position(Option::is_none);
        let index = match slot {
            Some(i) => i + 1,
            None => {
                self.certkeys.push(None);
                self.certkeys.len() - 1
            }
        };
        self.certkeys[index] = Some(data.to_vec());
        self.certkey_reply(sock, req.context, 0, index as u32);
    }

    // ---------------------------------------------------------------------------------------
    // Admin

    fn admin_reply(&mut self, r: Result<AdminOk, AdminError>) {
        self.out.push(Action::AdminReply(r));
    }

    fn on_admin(&mut self, cmd: AdminCommand) {
        match cmd {
            AdminCommand::Show => {
                let snap = self.snapshot();
                self.admin_reply(Ok(AdminOk::Snapshot(snap)));
            }
            AdminCommand::NsAdd {
                id,
                sock_name,
                secret,
            } => self.ns_add(id, sock_name, secret.unwrap_or(0)),
            AdminCommand::NsDel { id } => self.ns_del(&id),
            AdminCommand::SegmentAdd { app, wrk } => self.segment_add(app, wrk),
            AdminCommand::SegmentDel { app, wrk, handle } => self.segment_del(app, wrk, handle),
        }
    }

    fn ns_index(&self, id: &str) -> Option<NsIndex> {
        self.namespaces
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.id == id))
            .map(|i| NsIndex(i as u16))
    }

    fn ns_add(&mut self, id: String, sock_name: Option<String>, secret: u64) {
        let valid_id = !id.is_empty()
            && id.len() <= 63
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && id != "."
            && id != "..";
        if !valid_id {
            return self.admin_reply(Err(AdminError::InvalidNamespaceId(id)));
        }
        if self.ns_index(&id).is_some() {
            return self.admin_reply(Err(AdminError::NamespaceExists(id)));
        }
        let name = match sock_name {
            None => SocketName::Path(self.cfg.runtime_dir.join("app_ns_sockets").join(&id)),
            Some(n) => match parse_socket_name(&n) {
                Ok(name) => name,
                Err(why) => return self.admin_reply(Err(AdminError::InvalidSocketName(n, why))),
            },
        };
        let index = match self.namespaces.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.namespaces.len() < 1 << 16 => {
                self.namespaces.push(None);
                self.namespaces.len() - 1
            }
            None => return self.admin_reply(Err(AdminError::TooManyNamespaces)),
        };
        let ns = NsIndex(index as u16);
        self.namespaces[index] = Some(Namespace {
            id,
            name: name.clone(),
            secret,
            sockets: vec![None],
        });
        self.pending_admin = Some(PendingAdmin::NsAdd(ns));
        self.out.push(Action::Listen { ns, name });
    }

    fn on_listened(&mut self, ns: NsIndex, result: Result<(), String>) {
        if !matches!(self.pending_admin, Some(PendingAdmin::NsAdd(p)) if p == ns) {
            return;
        }
        self.pending_admin = None;
        let Some(slot) = self.namespaces.get_mut(usize::from(ns.0)) else {
            return;
        };
        match result {
            Ok(()) => {
                let (id, name) = slot
                    .as_ref()
                    .map(|n| (n.id.clone(), n.name.to_string()))
                    .unwrap_or_default();
                info!(ns = ns.0, %id, socket = %name, "namespace added");
                self.admin_reply(Ok(AdminOk::Done(format!(
                    "namespace {id} (index {}) listening on {name}",
                    ns.0
                ))));
            }
            Err(reason) => {
                let name = slot.take().map(|n| n.name.to_string()).unwrap_or_default();
                self.admin_reply(Err(AdminError::Listen { name, reason }));
            }
        }
    }

    fn ns_del(&mut self, id: &str) {
        let Some(ns) = self.ns_index(id) else {
            return self.admin_reply(Err(AdminError::NoSuchNamespace(id.to_owned())));
        };
        if ns.0 == 0 {
            return self.admin_reply(Err(AdminError::DefaultNamespace));
        }
        // First the namespace's apps (their workers' sockets may live anywhere), then every
        // socket still open in it, then the listener.
        let apps: Vec<AppIndex> = self
            .apps
            .iter()
            .filter(|(_, a)| a.ns == ns)
            .map(|(i, _)| *i)
            .collect();
        for app in apps {
            self.delete_app(app);
        }
        let sockets: Vec<SocketId> = self.namespaces[usize::from(ns.0)]
            .as_ref()
            .map(|n| {
                n.sockets
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.is_some())
                    .map(|(i, _)| SocketId {
                        ns,
                        index: i as u16,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for sock in sockets {
            self.on_closed(sock);
        }
        self.namespaces[usize::from(ns.0)] = None;
        self.out.push(Action::Unlisten { ns });
        self.admin_reply(Ok(AdminOk::Done(format!("namespace {id} deleted"))));
    }

    fn ready_worker(&self, app: u32, wrk: u32) -> Option<&Worker> {
        self.apps
            .get(&AppIndex(app))?
            .workers
            .get(&wrk)
            .filter(|w| w.pending.is_none())
    }

    fn segment_add(&mut self, app: u32, wrk: u32) {
        let Some(worker) = self.ready_worker(app, wrk) else {
            return self.admin_reply(Err(AdminError::NoSuchWorker { app, wrk }));
        };
        let index = worker.next_segment_index;
        let Some(a) = self.apps.get(&AppIndex(app)) else {
            return;
        };
        let size = match a.options.get(OptionIndex::AddSegmentSize) {
            0 => a.options.get(OptionIndex::SegmentSize),
            n => n,
        };
        let spec = self.new_segment_spec(AppIndex(app), wrk, index, size);
        let key = WorkerKey {
            app: AppIndex(app),
            wrk,
        };
        self.pending_admin = Some(PendingAdmin::SegmentAdd {
            worker: key,
            id: spec.id,
            name: spec.name.clone(),
        });
        self.out.push(Action::CreateSegment(spec));
    }

    fn on_segment_created(&mut self, id: SegmentId, result: Result<u64, ResourceError>) {
        let Some(PendingAdmin::SegmentAdd {
            worker: key,
            id: pending_id,
            name,
        }) = self.pending_admin.take()
        else {
            return;
        };
        if pending_id != id {
            return;
        }
        let ssvm_size = match result {
            Ok(size) => size,
            Err(e) => return self.admin_reply(Err(AdminError::SegmentCreate(e.to_string()))),
        };
        let Some(worker) = self
            .apps
            .get_mut(&key.app)
            .and_then(|a| a.workers.get_mut(&key.wrk))
        else {
            // The worker went away meanwhile: the segment has no owner.
            self.out.push(Action::FreeSegment(id));
            return self.admin_reply(Err(AdminError::NoSuchWorker {
                app: key.app.0,
                wrk: key.wrk,
            }));
        };
        let handle = segment_handle(worker.segment_manager, worker.next_segment_index);
        worker.next_segment_index += 1;
        worker.segments.push(WorkerSegment {
            id,
            handle,
            name: name.clone(),
            ssvm_size,
        });
        let sock = worker.socket;
        // The fd travels first; the event that announces it is posted after it.
        self.send(sock, Message::SendFds, vec![FdRef::Segment(id)]);
        self.out.push(Action::PostCtrlEvent {
            worker: key,
            event: CtrlEvent::AppAddSegment {
                segment_size: u32::try_from(ssvm_size).unwrap_or(u32::MAX),
                name: name.clone(),
                handle,
            },
        });
        self.admin_reply(Ok(AdminOk::Done(format!(
            "segment {name} handle {handle:#x} ({ssvm_size} bytes) sent to {key}"
        ))));
    }

    fn segment_del(&mut self, app: u32, wrk: u32, handle: u64) {
        let key = WorkerKey {
            app: AppIndex(app),
            wrk,
        };
        let Some(worker) = self
            .apps
            .get_mut(&key.app)
            .and_then(|a| a.workers.get_mut(&wrk))
            .filter(|w| w.pending.is_none())
        else {
            return self.admin_reply(Err(AdminError::NoSuchWorker { app, wrk }));
        };
        let Some(pos) = worker.segments.iter().position(|s| s.handle == handle) else {
            return self.admin_reply(Err(AdminError::NoSuchSegment { app, wrk, handle }));
        };
        if pos == 0 {
            return self.admin_reply(Err(AdminError::FirstSegment(handle)));
        }
        let seg = worker.segments.remove(pos);
        self.out.push(Action::PostCtrlEvent {
            worker: key,
            event: CtrlEvent::AppDelSegment { handle },
        });
        self.out.push(Action::FreeSegment(seg.id));
        self.admin_reply(Ok(AdminOk::Done(format!(
            "segment {handle:#x} deleted from {key}"
        ))));
    }

    // ---------------------------------------------------------------------------------------
    // Introspection

    /// The state for `show` (fd numbers and mq occupancy left for the shell to fill).
    pub fn snapshot(&self) -> Snapshot {
        let namespaces = self
            .namespaces
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
            .map(|(i, n)| NamespaceView {
                index: i as u16,
                id: n.id.clone(),
                socket: n.name.to_string(),
                sockets: n
                    .sockets
                    .iter()
                    .enumerate()
                    .map(|(j, s)| {
                        let id = SocketId {
                            ns: NsIndex(i as u16),
                            index: j as u16,
                        };
                        (id, s)
                    })
                    .filter(|(id, s)| id.index == 0 || s.is_some())
                    .map(|(id, s)| {
                        let bound = s.as_ref().and_then(|s| s.workers.last());
                        SocketView {
                            index: id.index,
                            handle: id.api_client_handle(),
                            app_index: bound.map_or(-1, |w| i64::from(w.app.0)),
                            wrk_index: bound.map_or(-1, |w| i64::from(w.wrk)),
                            workers: s
                                .as_ref()
                                .map(|s| s.workers.iter().map(|w| w.wrk).collect())
                                .unwrap_or_default(),
                            fd: None,
                            peer: s.as_ref().map(|s| s.peer),
                        }
                    })
                    .collect(),
            })
            .collect();
        let apps = self
            .apps
            .iter()
            .map(|(i, a)| AppView {
                index: i.0,
                name: a.name.to_string(),
                ns_index: a.ns.0,
                flags: a.options.flags().bits(),
                workers: a
                    .workers
                    .iter()
                    .map(|(wi, w)| WorkerView {
                        index: *wi,
                        socket_handle: w.socket.api_client_handle(),
                        mq_offset: w.mq_offset,
                        eventfd: w.eventfd,
                        mq_occupancy: None,
                        segments: w
                            .segments
                            .iter()
                            .map(|s| SegmentView {
                                handle: s.handle,
                                name: s.name.clone(),
                                size: s.ssvm_size,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        Snapshot {
            profile: self.cfg.profile.to_string(),
            namespaces,
            apps,
            certkeys: self
                .certkeys
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_some())
                .map(|(i, _)| i as u32)
                .collect(),
        }
    }

    /// Counts for invariant checks: (namespaces, sockets, apps, workers, segments).
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for n in self.namespaces.iter().flatten() {
            c.namespaces += 1;
            c.sockets += n.sockets.iter().flatten().count();
        }
        for a in self.apps.values() {
            c.apps += 1;
            for w in a.workers.values() {
                c.workers += 1;
                c.segments += w.segments.len();
            }
        }
        c
    }

    /// The worker's first segment and whether it has an eventfd (for the shell's mq writes).
    pub fn worker_first_segment(&self, key: WorkerKey) -> Option<(SegmentId, u64)> {
        let w = self.apps.get(&key.app)?.workers.get(&key.wrk)?;
        Some((w.segments.first()?.id, w.mq_offset))
    }

    /// Name of an app (for logs and `show`).
    pub fn app_name(&self, app: AppIndex) -> Option<&AppName> {
        self.apps.get(&app).map(|a| &a.name)
    }
}

/// What [`Server::counts`] returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Live namespaces.
    pub namespaces: usize,
    /// Live client sockets (listeners excluded).
    pub sockets: usize,
    /// Live apps.
    pub apps: usize,
    /// Live workers.
    pub workers: usize,
    /// Live segments owned by workers.
    pub segments: usize,
}

/// Parses a `sock-name`: `abstract:NAME[,netns_...]` or an absolute path (`unix:` prefix allowed),
/// with VPP's limits (path ≤ 106 characters of `[A-Za-z0-9/._-]`, abstract name ≤ 105).
pub fn parse_socket_name(s: &str) -> Result<SocketName, &'static str> {
    if let Some(rest) = s.strip_prefix("abstract:") {
        let name = rest.split(',').next().unwrap_or_default();
        if rest.contains(',') {
            return Err("netns options are not supported by the reference");
        }
        if name.is_empty() || name.len() > 105 {
            return Err("an abstract name has 1 to 105 characters");
        }
        return Ok(SocketName::Abstract(name.to_owned()));
    }
    let path = s.strip_prefix("unix:").unwrap_or(s);
    if !path.starts_with('/') {
        return Err("a socket path must be absolute (or use abstract:NAME)");
    }
    if path.len() > 106 {
        return Err("a socket path has at most 106 characters");
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        return Err("only [A-Za-z0-9/._-] may appear in a socket path");
    }
    Ok(SocketName::Path(PathBuf::from(path)))
}
