//! The deterministic simulation harness shared by `tests/sim.rs`, `tests/regressions.rs` and the
//! `core_sequence` / `wire_decode` fuzz targets (which include this file with `#[path]`).
//!
//! It owns three things:
//! * [`Op`]: one thing the world does to the server (an app connects, attaches, adds a worker,
//!   sends junk, crashes; an admin adds a segment or deletes a namespace; the next memfd, listen or
//!   send fails). Ops name sockets, apps, workers and segments by [`Pick`]s resolved against the
//!   live state when they run, so any op list is meaningful and a prefix or subsequence of a
//!   failing list still runs — that is what makes shrinking work.
//! * [`Sim`]: a fake IO shell over the real sans-IO [`Server`]. It performs the core's actions the
//!   way the real shell does (in order, feeding the answers to resource requests back at once,
//!   reporting a failed send after the batch), keeps
//!   its own tables of sockets, listeners, segments, workers' mqs and eventfds, and after every
//!   op checks the invariants (see [`Sim::check`]).
//! * two input decoders that never fail: [`Program`] / [`ops_from_bytes`] (the fuzzer's reading
//!   of raw bytes through `arbitrary::Unstructured`: hand-written `Arbitrary` impls for ops and
//!   picks, invertible by [`encode_ops`] so simulation runs become fuzz seeds, and the derived
//!   `Arbitrary` of the wire's typed [`Message`] for structured requests of any type) and
//!   [`ops_from_seed`] (the seeded simulation's generator), plus [`check_wire_decode`].
//!
//! It must never use anything but the core's public API, and never weaken a check to make a run
//! pass: a failed check is a finding.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use arbitrary::{Arbitrary, Unstructured};

use sapi_core::{
    Action, AdminCommand, AdminError, AdminOk, Config, CtrlEvent, FdRef, InjectedFaults, Input,
    NsIndex, PeerCred, ResourceError, SegmentId, Server, SocketId, WorkerKey, WorkerResourcesReady,
};
use sapi_wire::{
    AddDelCertKey, AddDelWorker, AppName, AppOptionFlags, Attach, AttachOptions, Direction,
    FdFlags, MSG_LEN, Message, OptionIndex, Profile,
};

// -------------------------------------------------------------------------------------------
// Ops

/// A reference to a live object, resolved when the op runs: below [`Pick::BOGUS`] it selects
/// `live[v % live.len()]`; at or above it, it is used as a raw (almost surely invalid) value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pick(pub u32);

impl Pick {
    /// Values from here on are raw ids, not indices into the live set.
    pub const BOGUS: u32 = 0xF000_0000;

    /// The socket accepted last (for sockets; otherwise an ordinary index).
    pub const NEWEST: Pick = Pick(0x0FFF_FFFF);

    /// A raw (bogus) id `v` (`v` < 2^28).
    pub const fn bogus(v: u32) -> Pick {
        Pick(Self::BOGUS + (v & 0x0FFF_FFFF))
    }

    fn resolve<T: Copy>(self, live: &[T], bogus: impl FnOnce(u32) -> T) -> Option<T> {
        if self.0 >= Self::BOGUS {
            return Some(bogus(self.0 - Self::BOGUS));
        }
        if live.is_empty() {
            return None;
        }
        live.get(self.0 as usize % live.len()).copied()
    }
}

impl fmt::Debug for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::NEWEST {
            write!(f, "Pick::NEWEST")
        } else if self.0 >= Self::BOGUS {
            write!(f, "Pick::bogus({:#x})", self.0 - Self::BOGUS)
        } else {
            write!(f, "Pick({})", self.0)
        }
    }
}

/// The failure the shell injects into the next matching request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inject {
    /// The next worker resource creation fails with this error.
    WorkerResources(ResourceError),
    /// The next admin segment creation fails with this error.
    Segment(ResourceError),
    /// The next listener bind fails.
    Listen,
    /// The next `sendmsg` fails (the shell reports [`Input::SendFailed`] after the batch).
    Send,
}

/// One thing that happens to the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A client connects to the listener of a namespace (picked among live ones).
    Connect { ns: Pick, pid: i32 },
    /// A well-formed ATTACH with these options.
    Attach {
        sock: Pick,
        name: Vec<u8>,
        options: AttachOptions,
    },
    /// ADD_DEL_WORKER add for an app (picked among live ones).
    WorkerAdd { sock: Pick, app: Pick },
    /// ADD_DEL_WORKER delete of a worker (picked among the app's workers).
    WorkerDel { sock: Pick, app: Pick, wrk: Pick },
    /// ADD_DEL_CERT_KEY add, then (optionally) a data datagram of `data` bytes.
    CertKeyAdd {
        sock: Pick,
        cert_len: u16,
        certkey_len: u16,
        data: Option<u16>,
    },
    /// ADD_DEL_CERT_KEY delete.
    CertKeyDel { sock: Pick, index: u32 },
    /// Any bytes as one datagram.
    Raw {
        sock: Pick,
        bytes: Vec<u8>,
        truncated: bool,
        ctrunc: bool,
    },
    /// The peer closes or crashes.
    Close { sock: Pick },
    /// Sending on the socket failed.
    SendFailed { sock: Pick },
    /// A deadline passed (picked among armed deadlines, or any socket when bogus).
    Deadline { sock: Pick },
    /// Admin: give a worker one more segment.
    SegmentAdd { app: Pick, wrk: Pick },
    /// Admin: take a segment back.
    SegmentDel { app: Pick, wrk: Pick, seg: Pick },
    /// Admin: add namespace `ns<id>` (id 255: an invalid id).
    NsAdd { id: u8 },
    /// Admin: delete namespace `ns<id>` (id 0: `default`).
    NsDel { id: u8 },
    /// Admin: show.
    Show,
    /// Arm a failure for the next matching request.
    Inject(Inject),
    /// Any typed message, of any type and direction, encoded in the run's profile (cert-key
    /// messages at the seed: their Head bytes).
    Request { sock: Pick, msg: Message },
}

// -------------------------------------------------------------------------------------------
// The fake shell

/// A failed invariant, with the op that broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub step: usize,
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {}", self.step, self.what)
    }
}

/// Where the shell's offset for every worker's mq lands.
const MQ_OFFSET: u64 = 0x140;
/// What the shell adds to a requested segment size (VPP's headers).
const SEGMENT_OVERHEAD: u64 = 12 * 1024;
/// Upper bound on live client sockets in a run, so hundreds of apps stay cheap to check.
pub const MAX_LIVE_SOCKETS: usize = 400;

/// The fake shell and the core it drives.
pub struct Sim {
    pub core: Server,
    profile: Profile,
    step: usize,
    /// Client sockets the shell holds.
    sockets: BTreeSet<SocketId>,
    /// Listeners by namespace.
    listeners: BTreeSet<NsIndex>,
    /// Namespace ids as the sim created them (index → id).
    ns_ids: BTreeMap<NsIndex, String>,
    /// Segments the shell holds, with the worker they were created for.
    segments: HashMap<SegmentId, WorkerKey>,
    /// How many of those each worker owns.
    owned: HashMap<WorkerKey, usize>,
    /// Worker mqs the shell holds (one per ready worker).
    workers: HashSet<WorkerKey>,
    /// Eventfds the shell holds.
    eventfds: HashSet<WorkerKey>,
    /// Armed deadlines.
    deadlines: BTreeSet<SocketId>,
    /// Resource ids whose creation the shell reported as failed (freeing them is a no-op).
    failed_segments: BTreeSet<SegmentId>,
    failed_workers: BTreeSet<WorkerKey>,
    /// Pending injections, consumed in order by the next matching request.
    injections: Vec<Inject>,
    /// The worker the admin segment-add in progress is for (for segment ownership).
    segment_add_for: Option<WorkerKey>,
    /// What the current op produced.
    sends: Vec<(SocketId, Message, Vec<FdRef>)>,
    admin_replies: Vec<Result<AdminOk, AdminError>>,
    send_failed_now: bool,
    target: Option<Target>,
    /// The socket accepted last.
    newest: Option<SocketId>,
    /// Run the full check after every this many ops (1 = every op).
    full_check_every: usize,
    /// The last snapshot, taken by `check`.
    snap: sapi_core::Snapshot,
    violations: Vec<String>,
    /// Totals over the run, for reports.
    pub stats: Stats,
}

/// What a run did, summed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub ops: usize,
    pub attaches_ok: usize,
    pub workers_added: usize,
    pub segments_added: usize,
    pub crashes: usize,
    pub max_live_apps: usize,
    pub max_live_sockets: usize,
}

impl Sim {
    /// A server for `profile` with its `default` namespace listening.
    pub fn new(profile: Profile) -> Self {
        let core = Server::new(Config {
            profile,
            vpp_workers: 0,
            vpp_ctrl_mq_offset: 0x140,
            runtime_dir: "/run/sim".into(),
            faults: InjectedFaults::default(),
            access: Default::default(),
            enforce_ns_secret: false,
        });
        let mut sim = Sim {
            core,
            profile,
            step: 0,
            sockets: BTreeSet::new(),
            listeners: BTreeSet::new(),
            ns_ids: BTreeMap::new(),
            segments: HashMap::new(),
            owned: HashMap::new(),
            workers: HashSet::new(),
            eventfds: HashSet::new(),
            deadlines: BTreeSet::new(),
            failed_segments: BTreeSet::new(),
            failed_workers: BTreeSet::new(),
            injections: Vec::new(),
            segment_add_for: None,
            sends: Vec::new(),
            admin_replies: Vec::new(),
            send_failed_now: false,
            target: None,
            newest: None,
            full_check_every: 1,
            snap: Default::default(),
            violations: Vec::new(),
            stats: Stats::default(),
        };
        sim.admin(AdminCommand::NsAdd {
            id: "default".into(),
            sock_name: None,
            secret: None,
        });
        sim
    }

    fn violation(&mut self, what: impl Into<String>) {
        self.violations.push(what.into());
    }

    /// The shell's loop, exactly (`sapi_reference::shell::Shell::feed`): the core orders
    /// resource answers and send failures itself.
    fn feed(&mut self, input: Input<'_>) {
        self.core.input(input);
        while let Some(action) = self.core.poll_action() {
            self.perform(action);
        }
    }

    fn take_injection(&mut self, pred: impl Fn(&Inject) -> bool) -> Option<Inject> {
        let i = self.injections.iter().position(pred)?;
        Some(self.injections.remove(i))
    }

    /// Performs one action as the real shell does (answers to requests are fed back at once).
    fn perform(&mut self, action: Action) {
        match action {
            Action::Accepted(id) => {
                self.newest = Some(id);
                if !self.sockets.insert(id) {
                    self.violation(format!("Accepted({id}) but the shell holds it already"));
                }
            }
            Action::Refuse => {}
            Action::Send { sock, msg, fds } => self.on_send(sock, msg, fds),
            Action::Close(sock) => {
                if !self.sockets.remove(&sock) {
                    self.violation(format!("Close({sock}) of a socket the shell does not hold"));
                }
                self.deadlines.remove(&sock);
            }
            Action::Listen { ns, name } => {
                let result = if self.take_injection(|i| *i == Inject::Listen).is_some() {
                    Err(format!("injected bind failure on {name}"))
                } else {
                    if !self.listeners.insert(ns) {
                        self.violation(format!("Listen on ns {} which already listens", ns.0));
                    }
                    Ok(())
                };
                self.core.input(Input::Listened { ns, result });
            }
            Action::Unlisten { ns } => {
                if !self.listeners.remove(&ns) {
                    self.violation(format!("Unlisten of ns {} which does not listen", ns.0));
                }
            }
            Action::CreateWorkerResources { worker, spec } => {
                let injected = self
                    .take_injection(|i| matches!(i, Inject::WorkerResources(_)))
                    .and_then(|i| match i {
                        Inject::WorkerResources(e) => Some(e),
                        _ => None,
                    });
                let result = match injected {
                    // EVT_MQ_USE_EVENTFD is the only way an eventfd can fail.
                    Some(ResourceError::EventfdAlloc) if !spec.eventfd => Ok(()),
                    Some(e) => Err(e),
                    None => Ok(()),
                };
                let result = match result {
                    Err(e) => {
                        self.failed_segments.insert(spec.segment.id);
                        self.failed_workers.insert(worker);
                        Err(e)
                    }
                    Ok(()) => {
                        self.hold_segment(spec.segment.id, worker);
                        if !self.workers.insert(worker) {
                            self.violation(format!("resources for {worker} created twice"));
                        }
                        if spec.eventfd && !self.eventfds.insert(worker) {
                            self.violation(format!("eventfd for {worker} created twice"));
                        }
                        Ok(WorkerResourcesReady {
                            mq_offset: MQ_OFFSET,
                            ssvm_size: spec.segment.requested_size + SEGMENT_OVERHEAD,
                        })
                    }
                };
                self.core.input(Input::WorkerResources { worker, result });
            }
            Action::CreateSegment(spec) => {
                let injected = self
                    .take_injection(|i| matches!(i, Inject::Segment(_)))
                    .and_then(|i| match i {
                        Inject::Segment(e) => Some(e),
                        _ => None,
                    });
                let result = match injected {
                    Some(e) => {
                        self.failed_segments.insert(spec.id);
                        Err(e)
                    }
                    None => {
                        let Some(owner) = self.segment_add_for else {
                            self.violation(format!(
                                "CreateSegment({:?}) outside a segment add",
                                spec.id
                            ));
                            return;
                        };
                        self.hold_segment(spec.id, owner);
                        Ok(spec.requested_size + SEGMENT_OVERHEAD)
                    }
                };
                self.core.input(Input::SegmentCreated {
                    id: spec.id,
                    result,
                });
            }
            Action::PostCtrlEvent { worker, event } => {
                if !self.workers.contains(&worker) {
                    self.violation(format!(
                        "PostCtrlEvent to {worker}, whose mq is gone: {event:?}"
                    ));
                }
                if let CtrlEvent::AppAddSegment { segment_size, .. } = event
                    && u64::from(segment_size) < sapi_core::MIN_SEGMENT_SIZE
                {
                    self.violation(format!("APP_ADD_SEGMENT announces {segment_size} bytes"));
                }
            }
            Action::FreeSegment(id) => {
                if !self.release_segment(id) && !self.failed_segments.remove(&id) {
                    self.violation(format!(
                        "FreeSegment({id:?}) of a segment the shell does not hold"
                    ));
                }
            }
            Action::FreeWorker(key) => {
                self.eventfds.remove(&key);
                if !self.workers.remove(&key) && !self.failed_workers.remove(&key) {
                    self.violation(format!(
                        "FreeWorker({key}) of a worker the shell does not hold"
                    ));
                }
            }
            Action::SetDeadline { sock, .. } => {
                if !self.sockets.contains(&sock) {
                    self.violation(format!(
                        "SetDeadline on {sock}, which the shell does not hold"
                    ));
                }
                self.deadlines.insert(sock);
            }
            Action::ClearDeadline(sock) => {
                self.deadlines.remove(&sock);
            }
            Action::AdminReply(r) => self.admin_replies.push(r),
        }
    }

    fn hold_segment(&mut self, id: SegmentId, owner: WorkerKey) {
        if self.segments.insert(id, owner).is_some() {
            self.violation(format!("segment {id:?} created twice"));
        }
        *self.owned.entry(owner).or_default() += 1;
    }

    fn release_segment(&mut self, id: SegmentId) -> bool {
        let Some(owner) = self.segments.remove(&id) else {
            return false;
        };
        if let Some(n) = self.owned.get_mut(&owner) {
            *n -= 1;
            if *n == 0 {
                self.owned.remove(&owner);
            }
        }
        true
    }

    fn fd_live(&self, fd: FdRef) -> bool {
        match fd {
            FdRef::VppMqsSegment => true,
            FdRef::Segment(id) => self.segments.contains_key(&id),
            FdRef::WorkerEventfd(k) => self.eventfds.contains(&k),
        }
    }

    fn on_send(&mut self, sock: SocketId, msg: Message, fds: Vec<FdRef>) {
        if !self.sockets.contains(&sock) {
            self.violation(format!(
                "Send to {sock}, which the shell does not hold: {msg:?}"
            ));
        }
        match msg.encode(self.profile) {
            Ok(bytes) => {
                // `encode` returns a 209-byte array by type; what matters is that a peer decodes
                // the same message from it.
                let back = Message::decode(&bytes, self.profile, Direction::ServerToApp);
                if back != Ok(normalise(msg, self.profile)) {
                    self.violation(format!("reply {msg:?} decodes as {back:?}"));
                }
                if bytes.len() != MSG_LEN {
                    self.violation(format!("reply of {} bytes", bytes.len()));
                }
            }
            Err(e) => self.violation(format!("reply {msg:?} cannot be encoded: {e}")),
        }
        for fd in &fds {
            if !self.fd_live(*fd) {
                self.violation(format!("Send to {sock} carries {fd:?}, which is not live"));
            }
        }
        let fd_count_ok = match msg {
            Message::AttachReply(r) => reply_fds_ok(r.retval, r.n_fds, r.fd_flags, &fds),
            Message::AddDelWorkerReply(r) if r.is_add => {
                reply_fds_ok(r.retval, r.n_fds, r.fd_flags, &fds)
            }
            Message::SendFds => matches!(fds.as_slice(), [FdRef::Segment(_)]),
            _ => fds.is_empty(),
        };
        if !fd_count_ok {
            self.violation(format!("{msg:?} travels with fds {fds:?}"));
        }
        // The segments an attach or worker reply carries belong to the worker it announces.
        let announced = match msg {
            Message::AttachReply(r) if r.retval == 0 => Some(WorkerKey {
                app: sapi_core::AppIndex(r.app_index),
                wrk: 0,
            }),
            _ => None,
        };
        if let Some(key) = announced {
            for fd in &fds {
                if let FdRef::Segment(id) = fd
                    && self.segments.get(id) != Some(&key)
                {
                    self.violation(format!(
                        "attach reply for {key} carries {id:?}, not its own"
                    ));
                }
                if let FdRef::WorkerEventfd(k) = fd
                    && *k != key
                {
                    self.violation(format!("attach reply for {key} carries the eventfd of {k}"));
                }
            }
        }
        self.sends.push((sock, msg, fds));
        if self.take_injection(|i| *i == Inject::Send).is_some() {
            self.send_failed_now = true;
            self.core.input(Input::SendFailed { sock });
        }
    }

    fn admin(&mut self, cmd: AdminCommand) -> Option<Result<AdminOk, AdminError>> {
        self.admin_replies.clear();
        self.feed(Input::Admin(cmd.clone()));
        let replies = std::mem::take(&mut self.admin_replies);
        if replies.len() != 1 {
            self.violation(format!("{cmd:?} got {} admin replies", replies.len()));
        }
        replies.into_iter().next()
    }

    fn datagram(&mut self, sock: SocketId, bytes: &[u8], truncated: bool, ctrunc: bool) {
        self.feed(Input::Datagram {
            sock,
            bytes,
            truncated,
            ctrunc,
        });
    }

    fn request(&mut self, sock: SocketId, msg: &Message) {
        match msg.encode(self.profile) {
            Ok(bytes) => self.datagram(sock, &bytes, false, false),
            // Cert-key messages do not exist at the seed: send the Head bytes anyway.
            Err(_) => match msg.encode(Profile::Head) {
                Ok(bytes) => self.datagram(sock, &bytes, false, false),
                Err(e) => self.violation(format!("cannot encode request {msg:?}: {e}")),
            },
        }
    }

    // ---------------------------------------------------------------------------------------
    // Resolving picks against the live state

    fn live_sockets(&self) -> Vec<SocketId> {
        self.sockets.iter().copied().collect()
    }

    fn pick_sock(&self, p: Pick) -> Option<SocketId> {
        if p == Pick::NEWEST
            && let Some(s) = self.newest.filter(|s| self.sockets.contains(s))
        {
            return Some(s);
        }
        p.resolve(&self.live_sockets(), |v| SocketId {
            ns: NsIndex((v >> 16) as u16),
            index: v as u16,
        })
    }

    fn pick_app(&self, p: Pick) -> Option<u32> {
        let apps: Vec<u32> = self.snap.apps.iter().map(|a| a.index).collect();
        p.resolve(&apps, |v| v)
    }

    fn pick_wrk(&self, app: u32, p: Pick) -> Option<u32> {
        let wrks: Vec<u32> = self
            .snap
            .apps
            .iter()
            .find(|a| a.index == app)
            .map(|a| a.workers.iter().map(|w| w.index).collect())
            .unwrap_or_default();
        p.resolve(&wrks, |v| v).or(Some(p.0))
    }

    fn pick_seg(&self, app: u32, wrk: u32, p: Pick) -> u64 {
        let handles: Vec<u64> = self
            .snap
            .apps
            .iter()
            .find(|a| a.index == app)
            .and_then(|a| a.workers.iter().find(|w| w.index == wrk))
            .map(|w| w.segments.iter().map(|s| s.handle).collect())
            .unwrap_or_default();
        p.resolve(&handles, u64::from).unwrap_or(u64::from(p.0))
    }

    fn ns_id(id: u8) -> String {
        match id {
            0 => "default".to_owned(),
            255 => "bad/id".to_owned(),
            n => format!("ns{n}"),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Running ops

    /// Runs one op and checks every invariant; `Err` carries what broke.
    pub fn apply(&mut self, op: &Op) -> Result<(), Violation> {
        self.step += 1;
        self.stats.ops += 1;
        self.sends.clear();
        self.send_failed_now = false;
        self.run(op);
        self.check_op(op);
        if self.step.is_multiple_of(self.full_check_every) {
            self.check();
        } else {
            self.check_counts();
        }
        let what = std::mem::take(&mut self.violations);
        if what.is_empty() {
            let c = self.core.counts();
            self.stats.max_live_apps = self.stats.max_live_apps.max(c.apps);
            self.stats.max_live_sockets = self.stats.max_live_sockets.max(c.sockets);
            Ok(())
        } else {
            Err(Violation {
                step: self.step,
                what: what.join("; "),
            })
        }
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Connect { ns, pid } => {
                if self.sockets.len() >= MAX_LIVE_SOCKETS {
                    return;
                }
                let live: Vec<NsIndex> = self.listeners.iter().copied().collect();
                let Some(ns) = ns.resolve(&live, |v| NsIndex(v as u16)) else {
                    return;
                };
                let before = self.sockets.len();
                let actions = self.core.handle(Input::Accept {
                    ns,
                    peer: PeerCred {
                        pid: *pid,
                        uid: 1000,
                        gid: 1000,
                    },
                });
                let accepted = matches!(actions.as_slice(), [Action::Accepted(_)]);
                let refused = matches!(actions.as_slice(), [Action::Refuse]);
                if !(accepted || refused) {
                    self.violation(format!("Accept answered {actions:?}"));
                }
                if accepted && !self.listeners.contains(&ns) {
                    self.violation(format!("accepted on ns {}, which does not listen", ns.0));
                }
                for a in actions {
                    self.perform(a);
                }
                if accepted && self.sockets.len() != before + 1 {
                    self.violation("Accepted did not add a socket");
                }
            }
            Op::Attach {
                sock,
                name,
                options,
            } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                self.set_target(s);
                let msg = Message::Attach(Attach {
                    name: AppName::from_wire(name),
                    options: *options,
                });
                self.request(s, &msg);
            }
            Op::WorkerAdd { sock, app } => {
                let (Some(s), Some(app)) = (self.pick_sock(*sock), self.pick_app(*app)) else {
                    return;
                };
                self.set_target(s);
                self.request(
                    s,
                    &Message::AddDelWorker(AddDelWorker {
                        app_index: app,
                        wrk_index: 0,
                        is_add: true,
                    }),
                );
            }
            Op::WorkerDel { sock, app, wrk } => {
                let (Some(s), Some(app)) = (self.pick_sock(*sock), self.pick_app(*app)) else {
                    return;
                };
                let wrk = self.pick_wrk(app, *wrk).unwrap_or(0);
                self.request(
                    s,
                    &Message::AddDelWorker(AddDelWorker {
                        app_index: app,
                        wrk_index: wrk,
                        is_add: false,
                    }),
                );
            }
            Op::CertKeyAdd {
                sock,
                cert_len,
                certkey_len,
                data,
            } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                self.request(
                    s,
                    &Message::AddDelCertKey(AddDelCertKey {
                        context: 7,
                        index: 0,
                        cert_len: *cert_len,
                        certkey_len: *certkey_len,
                        is_add: true,
                    }),
                );
                if let Some(len) = data {
                    let bytes = vec![b'k'; usize::from(*len)];
                    self.datagram(s, &bytes, false, false);
                }
            }
            Op::CertKeyDel { sock, index } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                if self.profile == Profile::Head {
                    // At the seed the type does not exist: the server ignores it.
                    self.set_target(s);
                }
                self.request(
                    s,
                    &Message::AddDelCertKey(AddDelCertKey {
                        context: 9,
                        index: *index,
                        cert_len: 0,
                        certkey_len: 0,
                        is_add: false,
                    }),
                );
            }
            Op::Raw {
                sock,
                bytes,
                truncated,
                ctrunc,
            } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                self.datagram(s, bytes, *truncated, *ctrunc);
            }
            Op::Close { sock } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                if self.sockets.contains(&s) {
                    self.stats.crashes += 1;
                }
                self.feed(Input::Closed { sock: s });
                if self.sockets.contains(&s) {
                    self.violation(format!("{s} still held after its peer closed"));
                }
            }
            Op::SendFailed { sock } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                self.feed(Input::SendFailed { sock: s });
            }
            Op::Deadline { sock } => {
                let armed: Vec<SocketId> = self.deadlines.iter().copied().collect();
                let Some(s) = sock.resolve(&armed, |v| SocketId {
                    ns: NsIndex((v >> 16) as u16),
                    index: v as u16,
                }) else {
                    return;
                };
                self.deadlines.remove(&s);
                self.feed(Input::DeadlineExpired { sock: s });
            }
            Op::SegmentAdd { app, wrk } => {
                let Some(app) = self.pick_app(*app) else {
                    return;
                };
                let wrk = self.pick_wrk(app, *wrk).unwrap_or(0);
                let key = WorkerKey {
                    app: sapi_core::AppIndex(app),
                    wrk,
                };
                self.segment_add_for = Some(key);
                let r = self.admin(AdminCommand::SegmentAdd { app, wrk });
                self.segment_add_for = None;
                if matches!(r, Some(Ok(_))) {
                    self.stats.segments_added += 1;
                }
            }
            Op::SegmentDel { app, wrk, seg } => {
                let Some(app) = self.pick_app(*app) else {
                    return;
                };
                let wrk = self.pick_wrk(app, *wrk).unwrap_or(0);
                let handle = self.pick_seg(app, wrk, *seg);
                self.admin(AdminCommand::SegmentDel { app, wrk, handle });
            }
            Op::NsAdd { id } => {
                let ns_id = Self::ns_id(*id);
                let r = self.admin(AdminCommand::NsAdd {
                    id: ns_id.clone(),
                    sock_name: Some(format!("abstract:sim-{ns_id}")),
                    secret: None,
                });
                if matches!(r, Some(Ok(_)))
                    && let Some(n) = self
                        .core
                        .snapshot()
                        .namespaces
                        .iter()
                        .find(|n| n.id == ns_id)
                {
                    self.ns_ids.insert(NsIndex(n.index), ns_id);
                }
            }
            Op::NsDel { id } => {
                let ns_id = Self::ns_id(*id);
                let r = self.admin(AdminCommand::NsDel { id: ns_id.clone() });
                if matches!(r, Some(Ok(_))) {
                    self.ns_ids.retain(|_, v| *v != ns_id);
                }
            }
            Op::Show => {
                self.admin(AdminCommand::Show);
            }
            Op::Request { sock, msg } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                if matches!(msg, Message::Attach(_)) {
                    self.set_target(s);
                }
                self.request(s, msg);
            }
            Op::Inject(i) => {
                // Keep at most a few armed so a run never starves every request.
                if self.injections.len() < 4 {
                    self.injections.push(*i);
                }
            }
        }
    }

    /// Per-op expectations: a request on a live socket gets exactly one reply of its type (or,
    /// when the socket awaits cert-key data, the cert-key reply it completes); none on a dead one.
    fn check_op(&mut self, op: &Op) {
        let Some(target) = self.target.take() else {
            return;
        };
        if self.send_failed_now {
            return;
        }
        let expect: fn(&Message) -> bool = match op {
            Op::Attach { .. }
            | Op::Request {
                msg: Message::Attach(_),
                ..
            } => |m| matches!(m, Message::AttachReply(_)),
            Op::WorkerAdd { .. } => |m| matches!(m, Message::AddDelWorkerReply(r) if r.is_add),
            Op::CertKeyDel { .. } => |m| matches!(m, Message::AddDelCertKeyReply(_)),
            _ => return,
        };
        let replies: Vec<Message> = self
            .sends
            .iter()
            .filter(|(to, _, _)| *to == target.sock)
            .map(|(_, m, _)| *m)
            .collect();
        let fine = match (target.live, target.certkey_pending, replies.as_slice()) {
            (false, _, []) => true,
            (true, true, [Message::AddDelCertKeyReply(_)]) => true,
            (true, false, [m]) => expect(m),
            _ => false,
        };
        if !fine {
            self.violation(format!(
                "{op:?} on {} (live {}, awaiting cert-key data {}) answered {replies:?}",
                target.sock, target.live, target.certkey_pending
            ));
        }
        match replies.as_slice() {
            [Message::AttachReply(r)] if r.retval == 0 => self.stats.attaches_ok += 1,
            [Message::AddDelWorkerReply(r)] if r.retval == 0 && r.is_add => {
                self.stats.workers_added += 1
            }
            _ => {}
        }
    }

    fn set_target(&mut self, sock: SocketId) {
        self.target = Some(Target {
            sock,
            live: self.sockets.contains(&sock),
            certkey_pending: self.deadlines.contains(&sock),
        });
    }

    /// The invariants that hold between any two inputs.
    pub fn check(&mut self) {
        self.snap = self.core.snapshot();
        let snap = std::mem::take(&mut self.snap);
        let counts = self.core.counts();

        // Sockets: the shell's table and the core's are the same set (both in id order).
        let mut core_sockets = Vec::with_capacity(self.sockets.len());
        // Per socket handle: the workers it says were created on it, and those that say so.
        let mut socket_workers: HashMap<u32, (Vec<u32>, Vec<u32>)> = HashMap::new();
        for ns in &snap.namespaces {
            for s in ns.sockets.iter().filter(|s| s.index != 0) {
                core_sockets.push(SocketId {
                    ns: NsIndex(ns.index),
                    index: s.index,
                });
                if s.workers.is_empty() != (s.app_index == -1 && s.wrk_index == -1) {
                    self.violation(format!(
                        "socket {:#x}: bound to app {} worker {} but created workers {:?}",
                        s.handle, s.app_index, s.wrk_index, s.workers
                    ));
                }
                socket_workers.insert(s.handle, (s.workers.clone(), Vec::new()));
            }
        }
        if !core_sockets.iter().eq(self.sockets.iter()) {
            let core: BTreeSet<SocketId> = core_sockets.iter().copied().collect();
            let only_core: Vec<_> = core.difference(&self.sockets).collect();
            let only_shell: Vec<_> = self.sockets.difference(&core).collect();
            self.violation(format!(
                "sockets differ: only in the core {only_core:?}, only in the shell {only_shell:?}"
            ));
        }
        if counts.sockets != core_sockets.len() {
            self.violation(format!(
                "counts().sockets = {} but the snapshot has {}",
                counts.sockets,
                core_sockets.len()
            ));
        }

        // Listeners: one per namespace.
        if !snap
            .namespaces
            .iter()
            .map(|n| NsIndex(n.index))
            .eq(self.listeners.iter().copied())
        {
            let namespaces: Vec<u16> = snap.namespaces.iter().map(|n| n.index).collect();
            self.violation(format!(
                "namespaces {namespaces:?} but listeners {:?}",
                self.listeners
            ));
        }

        // Apps, workers, segments: every segment the shell holds was created for a live worker
        // that owns exactly that many (so a freed worker's segment left behind shows up in the
        // totals), and no handle is owned twice.
        let mut handles: HashSet<u64> = HashSet::with_capacity(counts.segments);
        let mut with_eventfd = 0;
        for app in &snap.apps {
            if !self.listeners.contains(&NsIndex(app.ns_index)) {
                self.violation(format!(
                    "app {} lives in dead namespace {}",
                    app.index, app.ns_index
                ));
            }
            if app.workers.is_empty() {
                self.violation(format!("app {} has no worker left", app.index));
            }
            for w in &app.workers {
                let key = WorkerKey {
                    app: sapi_core::AppIndex(app.index),
                    wrk: w.index,
                };
                match socket_workers.get_mut(&w.socket_handle) {
                    Some((_, on_it)) => on_it.push(w.index),
                    None => self.violation(format!(
                        "{key} belongs to socket {:#x}, which is not live",
                        w.socket_handle
                    )),
                }
                if !self.workers.contains(&key) {
                    self.violation(format!("{key} is live but the shell holds no mq for it"));
                }
                if w.eventfd {
                    with_eventfd += 1;
                }
                if w.eventfd != self.eventfds.contains(&key) {
                    self.violation(format!(
                        "{key}: eventfd flag {} but shell eventfd {}",
                        w.eventfd,
                        self.eventfds.contains(&key)
                    ));
                }
                if w.segments.is_empty() {
                    self.violation(format!("{key} has no segment (its mq lives in the first)"));
                }
                let held = self.owned.get(&key).copied().unwrap_or(0);
                if held != w.segments.len() {
                    self.violation(format!(
                        "{key} has {} segments but the shell holds {held} created for it",
                        w.segments.len()
                    ));
                }
                for s in &w.segments {
                    if !handles.insert(s.handle) {
                        self.violation(format!("segment handle {:#x} owned twice", s.handle));
                    }
                }
            }
        }
        for (h, (listed, on_it)) in &mut socket_workers {
            if listed.len() != on_it.len() {
                self.violation(format!(
                    "socket {h:#x} lists workers {listed:?} but workers {on_it:?} say they live on it"
                ));
                continue;
            }
            listed.sort_unstable();
            on_it.sort_unstable();
            if listed != on_it {
                self.violation(format!(
                    "socket {h:#x} lists workers {listed:?} but workers {on_it:?} say they live on it"
                ));
            }
        }
        if self.segments.len() != counts.segments {
            let live: HashSet<WorkerKey> = snap
                .apps
                .iter()
                .flat_map(|a| {
                    a.workers.iter().map(|w| WorkerKey {
                        app: sapi_core::AppIndex(a.index),
                        wrk: w.index,
                    })
                })
                .collect();
            let mut leaked: Vec<_> = self
                .segments
                .iter()
                .filter(|(_, k)| !live.contains(k))
                .collect();
            leaked.sort();
            self.violation(format!(
                "shell holds {} segments, the core owns {}; held for dead workers: {leaked:?}",
                self.segments.len(),
                counts.segments
            ));
        }
        if self.workers.len() != counts.workers {
            self.violation(format!(
                "shell holds {} worker mqs, the core has {} workers",
                self.workers.len(),
                counts.workers
            ));
        }
        if self.eventfds.len() != with_eventfd {
            self.violation(format!(
                "shell holds {} eventfds, {with_eventfd} workers use one",
                self.eventfds.len()
            ));
        }
        if counts.apps != snap.apps.len() {
            self.violation("counts().apps differs from the snapshot");
        }
        if let Some(s) = self.deadlines.iter().find(|s| !self.sockets.contains(s)) {
            let s = *s;
            self.violation(format!("deadline armed for {s}, which is closed"));
        }
        // Kept for the next op's picks: nothing changes the state between a check and the next op.
        self.snap = snap;
    }

    /// The count-based invariants alone (no snapshot): what the fuzzer checks between two full
    /// checks.
    pub fn check_counts(&mut self) {
        let c = self.core.counts();
        if c.sockets != self.sockets.len()
            || c.workers != self.workers.len()
            || c.segments != self.segments.len()
            || c.namespaces != self.listeners.len()
            || self.eventfds.len() > c.workers
        {
            self.violation(format!(
                "counts {c:?} but the shell holds {} sockets, {} worker mqs, {} segments, {} \
                 listeners, {} eventfds",
                self.sockets.len(),
                self.workers.len(),
                self.segments.len(),
                self.listeners.len(),
                self.eventfds.len()
            ));
        }
        if let Some(s) = self.deadlines.iter().find(|s| !self.sockets.contains(s)) {
            let s = *s;
            self.violation(format!("deadline armed for {s}, which is closed"));
        }
    }

    /// Runs `ops` from a fresh server with every invariant checked after every op; the first
    /// violation (or panic, which propagates) stops it.
    pub fn run_ops(profile: Profile, ops: &[Op]) -> Result<Stats, Violation> {
        Self::run_ops_checking(profile, ops, 1)
    }

    /// Like [`Sim::run_ops`], but the full (snapshot) check runs after every `every`-th op and
    /// after the last; the count-based and per-action checks still run after every op. Picks
    /// resolve against the last full check's snapshot.
    pub fn run_ops_checking(
        profile: Profile,
        ops: &[Op],
        every: usize,
    ) -> Result<Stats, Violation> {
        let mut sim = Sim::new(profile);
        sim.full_check_every = every.max(1);
        sim.check();
        if !sim.violations.is_empty() {
            return Err(Violation {
                step: 0,
                what: sim.violations.join("; "),
            });
        }
        for op in ops {
            sim.apply(op)?;
        }
        if sim.full_check_every > 1 {
            sim.check();
            if !sim.violations.is_empty() {
                return Err(Violation {
                    step: sim.step,
                    what: format!("at the end: {}", sim.violations.join("; ")),
                });
            }
        }
        Ok(sim.stats)
    }
}

/// The socket a request went to and what the shell knew of it just before.
#[derive(Clone, Copy, Debug)]
struct Target {
    sock: SocketId,
    live: bool,
    certkey_pending: bool,
}

/// What a peer decodes from a reply: at the seed a worker reply has no `api_client_handle`.
fn normalise(msg: Message, profile: Profile) -> Message {
    match (msg, profile) {
        (Message::AddDelWorkerReply(mut r), Profile::Seed) => {
            r.api_client_handle = 0;
            Message::AddDelWorkerReply(r)
        }
        (m, _) => m,
    }
}

/// A reply's fd announcement matches the fds that travel with it: none on failure; on success
/// `n_fds` = popcount(`fd_flags`) = number of fds.
fn reply_fds_ok(retval: i32, n_fds: u8, flags: FdFlags, fds: &[FdRef]) -> bool {
    if retval != 0 {
        return fds.is_empty() && n_fds == 0;
    }
    usize::from(n_fds) == fds.len() && flags.bits().count_ones() == u32::from(n_fds)
}

// -------------------------------------------------------------------------------------------
// Generating ops

/// splitmix64: tiny, fast, and good enough to drive a simulation reproducibly.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick(&mut self) -> Pick {
        if self.chance(4) {
            Pick(Pick::BOGUS + (self.next_u64() as u32 & 0x0FFF_FFFF))
        } else {
            Pick(self.next_u64() as u32 & 0x0FFF_FFFF)
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

const RESOURCE_ERRORS: [ResourceError; 3] = [
    ResourceError::SegmentCreate,
    ResourceError::HugePages,
    ResourceError::EventfdAlloc,
];

/// Attach options a simulated app would send: mostly valid, sometimes each kind of refusal.
fn sim_options(rng: &mut Rng) -> AttachOptions {
    let mut flags = AppOptionFlags::ACCEPT_REDIRECT;
    if rng.chance(60) {
        flags |= AppOptionFlags::EVT_MQ_USE_EVENTFD;
    }
    if rng.chance(10) {
        flags |= AppOptionFlags::USE_HUGE_PAGE;
    }
    let mut o = AttachOptions::default()
        .with(
            OptionIndex::SegmentSize,
            [0, 1 << 20, 16 << 20, 64 << 20][rng.below(4) as usize],
        )
        .with(
            OptionIndex::AddSegmentSize,
            [0, 0, 4 << 20][rng.below(3) as usize],
        )
        .with(
            OptionIndex::EvtQueueSize,
            [0, 16, 128, 1024][rng.below(4) as usize],
        )
        .with(OptionIndex::RxFifoSize, 1 << 16)
        .with(OptionIndex::TxFifoSize, 1 << 16);
    match rng.below(20) {
        0 => flags |= AppOptionFlags::IS_BUILTIN,
        1 => flags |= AppOptionFlags::IS_BUILTIN | AppOptionFlags::MEMFD_FOR_BUILTIN,
        2 => {
            o.set(OptionIndex::PreallocFifoPairs, 4);
            o.set(OptionIndex::PreallocFifoHdrs, 4);
        }
        3 => o.set(OptionIndex::SegmentSize, u64::MAX),
        4 => o.set(OptionIndex::EvtQueueSize, u64::from(u32::MAX) + 1),
        5 => {
            o.set(OptionIndex::SegmentSize, 0);
            o.set(OptionIndex::MaxFifoMemory, 1 << 20);
        }
        6 => o.set(OptionIndex::Namespace, rng.next_u64()),
        7 => o = AttachOptions(std::array::from_fn(|_| rng.next_u64())),
        _ => {}
    }
    o.with_flags(flags)
}

/// A junk datagram: short, long, or 209 bytes of random body under any type byte.
fn sim_junk(rng: &mut Rng) -> Vec<u8> {
    match rng.below(5) {
        0 => {
            let n = rng.below(MSG_LEN as u64) as usize;
            rng.bytes(n)
        }
        1 => {
            let n = MSG_LEN + 1 + rng.below(600) as usize;
            let mut b = rng.bytes(n);
            b[0] = rng.below(8) as u8;
            b
        }
        2 => rng.bytes(MSG_LEN),
        _ => {
            let mut b = vec![0; MSG_LEN];
            b[0] = rng.below(9) as u8;
            let body = rng.below(32) as usize;
            for x in &mut b[1..=body] {
                *x = rng.next_u64() as u8;
            }
            b
        }
    }
}

/// How often each kind of op comes, per phase of a run: growth (apps pile up), churn (crashes,
/// worker and segment turnover at a steady population), teardown (crashes and namespace deletes).
/// Columns: connect, attach, worker add, worker del, cert-key add, cert-key del, junk, close,
/// send failed, deadline, segment add, segment del, ns add, ns del, show, inject.
const WEIGHTS: [[u64; 16]; 3] = [
    [300, 300, 60, 15, 10, 5, 20, 15, 2, 10, 40, 10, 10, 1, 2, 20],
    [
        120, 130, 80, 50, 25, 10, 70, 110, 15, 20, 70, 40, 15, 5, 5, 40,
    ],
    [
        40, 40, 40, 40, 10, 5, 60, 200, 20, 20, 40, 40, 10, 20, 5, 40,
    ],
];

/// One random op for a step in `phase` (0..3). Stateless: picks resolve when it runs.
pub fn sim_op(rng: &mut Rng, phase: usize) -> Op {
    let weights = &WEIGHTS[phase.min(2)];
    let mut r = rng.below(weights.iter().sum());
    let mut kind = 0;
    while r >= weights[kind] {
        r -= weights[kind];
        kind += 1;
    }
    let sock = |rng: &mut Rng| {
        if rng.chance(50) {
            Pick::NEWEST
        } else {
            rng.pick()
        }
    };
    match kind {
        0 => Op::Connect {
            ns: if rng.chance(50) { Pick(0) } else { rng.pick() },
            pid: rng.below(1 << 20) as i32,
        },
        1 => Op::Attach {
            sock: sock(rng),
            name: {
                let n = rng.below(70) as usize;
                (0..n).map(|_| b'a' + rng.below(26) as u8).collect()
            },
            options: sim_options(rng),
        },
        2 => Op::WorkerAdd {
            sock: sock(rng),
            app: rng.pick(),
        },
        3 => Op::WorkerDel {
            sock: rng.pick(),
            app: rng.pick(),
            wrk: rng.pick(),
        },
        4 => {
            let certkey_len = [0, 10, 300, 15_000, 20_000, 20_001, u16::MAX][rng.below(7) as usize];
            let cert_len = match rng.below(4) {
                0 => certkey_len / 2,
                1 => certkey_len.saturating_add(1),
                2 => 10_001,
                _ => rng.next_u64() as u16,
            };
            let data = match rng.below(4) {
                0 => None,
                1 => Some(rng.next_u64() as u16 % 400),
                _ => Some(certkey_len),
            };
            Op::CertKeyAdd {
                sock: rng.pick(),
                cert_len,
                certkey_len,
                data,
            }
        }
        5 => Op::CertKeyDel {
            sock: rng.pick(),
            index: rng.below(6) as u32,
        },
        6 => Op::Raw {
            sock: rng.pick(),
            bytes: sim_junk(rng),
            truncated: rng.chance(5),
            ctrunc: rng.chance(5),
        },
        7 => Op::Close { sock: rng.pick() },
        8 => Op::SendFailed { sock: rng.pick() },
        9 => Op::Deadline { sock: rng.pick() },
        10 => Op::SegmentAdd {
            app: rng.pick(),
            wrk: rng.pick(),
        },
        11 => Op::SegmentDel {
            app: rng.pick(),
            wrk: rng.pick(),
            seg: rng.pick(),
        },
        12 => Op::NsAdd {
            id: [1, 2, 3, 4, 5, 6, 0, 255][rng.below(8) as usize],
        },
        13 => Op::NsDel {
            id: [1, 2, 3, 4, 5, 6, 0, 9][rng.below(8) as usize],
        },
        14 => Op::Show,
        _ => Op::Inject(match rng.below(4) {
            0 => Inject::WorkerResources(RESOURCE_ERRORS[rng.below(3) as usize]),
            1 => Inject::Segment(RESOURCE_ERRORS[rng.below(3) as usize]),
            2 => Inject::Listen,
            _ => Inject::Send,
        }),
    }
}

/// The op list of a seed: the first 40 % of steps grow, the next 40 % churn, the rest tear down.
pub fn ops_from_seed(seed: u64, steps: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    (0..steps)
        .map(|i| {
            let phase = match i * 10 / steps.max(1) {
                0..=3 => 0,
                4..=7 => 1,
                _ => 2,
            };
            sim_op(&mut rng, phase)
        })
        .collect()
}

// -------------------------------------------------------------------------------------------
// Reading ops from fuzzer bytes

/// Readers over [`Unstructured`] that never fail: once the bytes run out every integer reads as
/// zero (as `Unstructured` pads), so every input is a valid program and [`encode_op`] can write
/// the exact bytes that read back as a given op.
trait Read<'a> {
    fn u8(&mut self) -> u8;
    fn u16(&mut self) -> u16;
    fn u32(&mut self) -> u32;
    fn u64(&mut self) -> u64;
    fn bool(&mut self) -> bool;
    /// Up to `n` bytes (fewer if the input ends).
    fn take(&mut self, n: usize) -> &'a [u8];
}

impl<'a> Read<'a> for Unstructured<'a> {
    fn u8(&mut self) -> u8 {
        u8::arbitrary(self).unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::arbitrary(self).unwrap_or(0)
    }
    fn u32(&mut self) -> u32 {
        u32::arbitrary(self).unwrap_or(0)
    }
    fn u64(&mut self) -> u64 {
        u64::arbitrary(self).unwrap_or(0)
    }
    fn bool(&mut self) -> bool {
        bool::arbitrary(self).unwrap_or(false)
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.len());
        self.bytes(n).unwrap_or_default()
    }
}

impl<'a> Arbitrary<'a> for Pick {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.u8() {
            0xFF => Pick::bogus(u.u32()),
            0xFE => Pick::NEWEST,
            b => Pick(u32::from(b)),
        })
    }
}

fn resource_error(u: &mut Unstructured<'_>) -> ResourceError {
    RESOURCE_ERRORS[usize::from(u.u8() % 3)]
}

/// Attach options biased towards values the server treats specially (powers of two, sizes in
/// MiB), or (selector bit 7) every slot raw.
fn options(u: &mut Unstructured<'_>) -> AttachOptions {
    let sel = u.u8();
    if sel & 0x80 != 0 {
        return AttachOptions(std::array::from_fn(|_| u.u64()));
    }
    let small = |u: &mut Unstructured<'_>| -> u64 {
        match u.u8() {
            0 => 0,
            b @ 1..=32 => 1 << (b - 1),
            b @ 33..=63 => u64::from(b) << 20,
            0xFF => u.u64(),
            b => u64::from(b),
        }
    };
    let mut o = AttachOptions::default();
    o.set(OptionIndex::Flags, u64::from(u.u16()));
    for index in [
        OptionIndex::EvtQueueSize,
        OptionIndex::SegmentSize,
        OptionIndex::AddSegmentSize,
        OptionIndex::MaxFifoMemory,
        OptionIndex::PreallocFifoPairs,
        OptionIndex::PreallocFifoHdrs,
    ] {
        if sel & (1 << (index as usize % 7)) != 0 {
            o.set(index, small(u));
        }
    }
    o
}

/// Number of op kinds; the tag byte modulo this chooses one.
const OP_KINDS: u8 = 18;

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let pick = |u: &mut Unstructured<'a>| Pick::arbitrary(u).unwrap_or(Pick(0));
        Ok(match u.u8() % OP_KINDS {
            0 => Op::Connect {
                ns: pick(u),
                pid: u.u16().into(),
            },
            1 | 2 => Op::Attach {
                sock: pick(u),
                name: {
                    let n = usize::from(u.u8() % 72);
                    u.take(n).to_vec()
                },
                options: options(u),
            },
            3 => Op::WorkerAdd {
                sock: pick(u),
                app: pick(u),
            },
            4 => Op::WorkerDel {
                sock: pick(u),
                app: pick(u),
                wrk: pick(u),
            },
            5 => Op::CertKeyAdd {
                sock: pick(u),
                cert_len: u.u16(),
                certkey_len: u.u16(),
                data: if u.bool() {
                    Some(u.u16() % 21_000)
                } else {
                    None
                },
            },
            6 => Op::CertKeyDel {
                sock: pick(u),
                index: u32::from(u.u8()),
            },
            7 | 8 => Op::Raw {
                sock: pick(u),
                bytes: {
                    let n = usize::from(u.u16() % 700);
                    u.take(n).to_vec()
                },
                truncated: u.bool(),
                ctrunc: u.bool(),
            },
            9 => Op::Close { sock: pick(u) },
            10 => Op::SendFailed { sock: pick(u) },
            11 => Op::Deadline { sock: pick(u) },
            12 => Op::SegmentAdd {
                app: pick(u),
                wrk: pick(u),
            },
            13 => Op::SegmentDel {
                app: pick(u),
                wrk: pick(u),
                seg: pick(u),
            },
            14 => {
                if u.bool() {
                    Op::NsAdd { id: u.u8() }
                } else {
                    Op::NsDel { id: u.u8() }
                }
            }
            15 => Op::Show,
            16 => Op::Inject(match u.u8() % 4 {
                0 => Inject::WorkerResources(resource_error(u)),
                1 => Inject::Segment(resource_error(u)),
                2 => Inject::Listen,
                _ => Inject::Send,
            }),
            // Running out of bytes inside a message is not an error for a program: the op
            // becomes the all-zero ATTACH-less default, a SEND_FDS.
            _ => Op::Request {
                sock: pick(u),
                msg: Message::arbitrary(u).unwrap_or(Message::SendFds),
            },
        })
    }
}

/// A fuzz input: the profile (bit 0 of byte 0), then up to [`MAX_FUZZ_OPS`] ops.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub profile: Profile,
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Program {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let profile = if u.u8() & 1 == 0 {
            Profile::Head
        } else {
            Profile::Seed
        };
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_FUZZ_OPS {
            ops.push(Op::arbitrary(u)?);
        }
        Ok(Program { profile, ops })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

/// The bytes [`Op::arbitrary`] reads back as `op` (picks of live objects modulo 254; seeds for the
/// fuzzer's corpus are written with it).
pub fn encode_op(op: &Op, out: &mut Vec<u8>) {
    fn pick(p: Pick, out: &mut Vec<u8>) {
        if p == Pick::NEWEST {
            out.push(0xFE);
        } else if p.0 >= Pick::BOGUS {
            out.push(0xFF);
            out.extend_from_slice(&(p.0 - Pick::BOGUS).to_le_bytes());
        } else {
            out.push((p.0 % 254) as u8);
        }
    }
    match op {
        Op::Connect { ns, pid } => {
            out.push(0);
            pick(*ns, out);
            out.extend_from_slice(&(*pid as u16).to_le_bytes());
        }
        Op::Attach {
            sock,
            name,
            options,
        } => {
            out.push(1);
            pick(*sock, out);
            let name = &name[..name.len().min(71)];
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.push(0x80);
            for v in options.0 {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Op::WorkerAdd { sock, app } => {
            out.push(3);
            pick(*sock, out);
            pick(*app, out);
        }
        Op::WorkerDel { sock, app, wrk } => {
            out.push(4);
            pick(*sock, out);
            pick(*app, out);
            pick(*wrk, out);
        }
        Op::CertKeyAdd {
            sock,
            cert_len,
            certkey_len,
            data,
        } => {
            out.push(5);
            pick(*sock, out);
            out.extend_from_slice(&cert_len.to_le_bytes());
            out.extend_from_slice(&certkey_len.to_le_bytes());
            match data {
                Some(n) => {
                    out.push(1);
                    out.extend_from_slice(&n.to_le_bytes());
                }
                None => out.push(0),
            }
        }
        Op::CertKeyDel { sock, index } => {
            out.push(6);
            pick(*sock, out);
            out.push(*index as u8);
        }
        Op::Raw {
            sock,
            bytes,
            truncated,
            ctrunc,
        } => {
            out.push(7);
            pick(*sock, out);
            let bytes = &bytes[..bytes.len().min(699)];
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
            out.push(u8::from(*truncated));
            out.push(u8::from(*ctrunc));
        }
        Op::Close { sock } => {
            out.push(9);
            pick(*sock, out);
        }
        Op::SendFailed { sock } => {
            out.push(10);
            pick(*sock, out);
        }
        Op::Deadline { sock } => {
            out.push(11);
            pick(*sock, out);
        }
        Op::SegmentAdd { app, wrk } => {
            out.push(12);
            pick(*app, out);
            pick(*wrk, out);
        }
        Op::SegmentDel { app, wrk, seg } => {
            out.push(13);
            pick(*app, out);
            pick(*wrk, out);
            pick(*seg, out);
        }
        Op::NsAdd { id } => out.extend_from_slice(&[14, 1, *id]),
        Op::NsDel { id } => out.extend_from_slice(&[14, 0, *id]),
        Op::Show => out.push(15),
        Op::Inject(i) => {
            out.push(16);
            match i {
                Inject::WorkerResources(e) => out.extend_from_slice(&[0, resource_error_byte(*e)]),
                Inject::Segment(e) => out.extend_from_slice(&[1, resource_error_byte(*e)]),
                Inject::Listen => out.push(2),
                Inject::Send => out.push(3),
            }
        }
        // The simulation never generates one; written as the datagram of its Head bytes.
        Op::Request { sock, msg } => {
            let bytes = msg.encode(Profile::Head).map(|b| b.to_vec());
            encode_op(
                &Op::Raw {
                    sock: *sock,
                    bytes: bytes.unwrap_or_default(),
                    truncated: false,
                    ctrunc: false,
                },
                out,
            );
        }
    }
}

fn resource_error_byte(e: ResourceError) -> u8 {
    RESOURCE_ERRORS.iter().position(|x| *x == e).unwrap_or(0) as u8
}

/// A fuzz input running `ops` in `profile`.
pub fn encode_ops(profile: Profile, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![u8::from(profile == Profile::Seed)];
    for op in ops {
        encode_op(op, &mut out);
    }
    out
}

/// Most ops one fuzz input runs (keeps every exec short).
pub const MAX_FUZZ_OPS: usize = 128;

/// The fuzzer's reading of `data` (see [`Program`]).
pub fn ops_from_bytes(data: &[u8]) -> (Profile, Vec<Op>) {
    match Program::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(p) => (p.profile, p.ops),
        // Every reader above pads with zeros, so this is never taken.
        Err(_) => (Profile::Head, Vec::new()),
    }
}

/// How often the fuzzer runs the full snapshot check (the count-based and per-action checks run
/// after every op); under coverage instrumentation the snapshot dominates an exec.
pub const FUZZ_FULL_CHECK_EVERY: usize = 8;

/// The `core_sequence` check: panics with the violation if any invariant breaks. Regression
/// replays run it with the full check after every op.
pub fn check_core_sequence(data: &[u8]) {
    check_core_sequence_every(data, 1);
}

/// [`check_core_sequence`] with the full check every `every` ops.
pub fn check_core_sequence_every(data: &[u8], every: usize) {
    let (profile, ops) = ops_from_bytes(data);
    check_program(Program { profile, ops }, every);
}

/// Runs `program`, panicking with the violation and the op list if any invariant breaks (the
/// fuzz target's entry point).
pub fn check_program(program: Program, every: usize) {
    let Program { profile, ops } = program;
    if let Err(v) = Sim::run_ops_checking(profile, &ops, every) {
        panic!("{profile}: core invariant broken at {v}\nops: {ops:#?}");
    }
}

// -------------------------------------------------------------------------------------------
// The wire check

/// The `wire_decode` check: any bytes decode to a value or a typed error in both profiles and
/// directions, never panic; a decoded value re-encodes to 209 bytes that decode to itself, and
/// re-encoding is a fixed point. The same bytes, read as an arbitrary typed message, go the
/// other way (see [`check_wire_encode`]).
pub fn check_wire_decode(data: &[u8]) {
    check_wire_decode_bytes(data);
    check_wire_encode(data);
}

/// Any typed message (an `Arbitrary` one read from `data`) encodes in every profile it exists in,
/// and only in those, to 209 bytes with nothing past its body that decode to it (at the seed,
/// minus the worker reply's `api_client_handle`, which has no place there).
pub fn check_wire_encode(data: &[u8]) {
    let Ok(msg) = Message::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let t = msg.msg_type();
    let Some(dir) = t.direction() else {
        panic!("{msg:?} has no direction");
    };
    for profile in Profile::ALL {
        match msg.encode(profile) {
            Ok(bytes) => {
                assert!(t.exists_in(profile), "{t} encoded in {profile}");
                assert_eq!(bytes[0], t.as_u8());
                assert_eq!(sapi_wire::nonzero_tail(&bytes, t, profile), None);
                assert_eq!(
                    Message::decode(&bytes, profile, dir),
                    Ok(normalise(msg, profile)),
                    "{profile}: {msg:?} does not survive encode + decode"
                );
            }
            Err(e) => assert!(!t.exists_in(profile), "{profile}: {msg:?} refused: {e}"),
        }
    }
}

fn check_wire_decode_bytes(data: &[u8]) {
    for profile in Profile::ALL {
        for dir in [Direction::AppToServer, Direction::ServerToApp] {
            match Message::decode(data, profile, dir) {
                Ok(m) => {
                    assert_eq!(
                        data.len(),
                        MSG_LEN,
                        "{m:?} decoded from {} bytes",
                        data.len()
                    );
                    assert_eq!(m.msg_type().direction(), Some(dir));
                    assert!(m.msg_type().exists_in(profile));
                    let bytes = match m.encode(profile) {
                        Ok(b) => b,
                        Err(e) => panic!("{m:?} decoded in {profile} but cannot encode: {e}"),
                    };
                    assert_eq!(bytes.len(), MSG_LEN);
                    assert_eq!(bytes[0], data[0], "type byte changed");
                    let back = Message::decode(&bytes, profile, dir);
                    assert_eq!(
                        back,
                        Ok(m),
                        "{profile} {dir}: re-encoded bytes decode differently"
                    );
                    let again = m.encode(profile).ok();
                    assert_eq!(again, Some(bytes), "encoding is not deterministic");
                    // Only padding and non-canonical booleans may differ from the input.
                    let tail = sapi_wire::nonzero_tail(&bytes, m.msg_type(), profile);
                    assert_eq!(tail, None, "encode wrote past the body");
                    let _ = m.dump(profile);
                }
                Err(e) => {
                    let _ = e.to_string();
                    if data.len() == MSG_LEN {
                        let t = data[0];
                        let known = t != 0 && t < profile.type_count();
                        assert!(
                            !(known
                                && sapi_wire::MsgType::from_u8(t).and_then(|t| t.direction())
                                    == Some(dir)),
                            "{profile} {dir}: type {t} of 209 bytes refused: {e}"
                        );
                    }
                }
            }
            let _ = sapi_wire::nonzero_tail(
                data,
                sapi_wire::MsgType::from_u8(data.first().copied().unwrap_or(0))
                    .unwrap_or(sapi_wire::MsgType::None),
                profile,
            );
        }
    }
}
