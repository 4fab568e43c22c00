//! The simulated shell: performs the core's actions as `sapi_reference::shell` does, keeping its
//! own tables of sockets, listeners, segments, workers' mqs and eventfds, and resolving picks
//! against them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::op::{Inject, Pick};
use super::sessions::VPP_WORKERS;
use super::{MQ_OFFSET, SEGMENT_OVERHEAD, Sim, Stats};
use sapi_core::{
    Action, AdminCommand, AdminError, AdminOk, Config, FdRef, InjectedFaults, Input, NsIndex,
    ResourceError, SegmentId, Server, SocketId, WorkerKey, WorkerResourcesReady,
};
use sapi_wire::ctrl::CtrlMessage;
use sapi_wire::{Direction, FdFlags, MSG_LEN, Message, Profile};

impl Sim {
    /// A server for `profile` with its `default` namespace listening.
    pub fn new(profile: Profile) -> Self {
        let core = Server::new(Config {
            profile,
            vpp_workers: VPP_WORKERS,
            vpp_mq_offsets: vec![0x140, 0x1c0, 0x240],
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
            sess: Default::default(),
        };
        sim.admin(AdminCommand::NsAdd {
            id: "default".into(),
            sock_name: None,
            secret: None,
        });
        sim
    }

    pub(super) fn violation(&mut self, what: impl Into<String>) {
        self.violations.push(what.into());
    }

    /// The shell's loop, exactly (`sapi_reference::shell::Shell::feed`): the core orders
    /// resource answers and send failures itself.
    pub(super) fn feed(&mut self, input: Input<'_>) {
        self.core.input(input);
        while let Some(action) = self.core.poll_action() {
            self.perform(action);
        }
    }

    pub(super) fn take_injection(&mut self, pred: impl Fn(&Inject) -> bool) -> Option<Inject> {
        let i = self.injections.iter().position(pred)?;
        Some(self.injections.remove(i))
    }

    /// Performs one action as the real shell does (answers to requests are fed back at once).
    pub(super) fn perform(&mut self, action: Action) {
        self.sess.effects += 1;
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
                self.app_socket_gone(sock);
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
                let Some(owner) = self.segment_add_for else {
                    // Outside an admin segment add, a segment is a ct segment (§7.3).
                    let result = self.create_ct_segment(spec.id, spec.requested_size);
                    self.core.input(Input::SegmentCreated {
                        id: spec.id,
                        result,
                    });
                    return;
                };
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
                        self.hold_segment(spec.id, owner);
                        Ok(spec.requested_size + SEGMENT_OVERHEAD)
                    }
                };
                self.core.input(Input::SegmentCreated {
                    id: spec.id,
                    result,
                });
            }
            Action::PostCtrl { worker, msg } => {
                if !self.workers.contains(&worker) {
                    self.violation(format!("PostCtrl to {worker}, whose mq is gone: {msg:?}"));
                }
                if let CtrlMessage::AppAddSegment(m) = &msg
                    && u64::from(m.segment_size) < sapi_core::MIN_SEGMENT_SIZE
                {
                    self.violation(format!(
                        "APP_ADD_SEGMENT announces {} bytes",
                        m.segment_size
                    ));
                }
                self.app_on_ctrl(worker, &msg);
            }
            a @ (Action::AllocFifoPair { .. }
            | Action::FreeFifoPair { .. }
            | Action::AllocShadows { .. }
            | Action::FreeShadows { .. }
            | Action::ProbeUnread { .. }
            | Action::RelayTx(_)
            | Action::RelayRx(_)) => self.perform_session(a),
            Action::FreeSegment(id) => {
                self.check_segment_empty(id);
                if !self.free_ct_segment(id)
                    && !self.release_segment(id)
                    && !self.failed_segments.remove(&id)
                {
                    self.violation(format!(
                        "FreeSegment({id:?}) of a segment the shell does not hold"
                    ));
                }
            }
            Action::FreeWorker(key) => {
                self.app_worker_gone(key);
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
            // The simulation injects no fault of the core: these must never appear.
            Action::Abandon(sock) => self.violation(format!("Abandon({sock}) without a fault")),
            Action::Abort(why) => self.violation(format!("Abort({why}) without a fault")),
        }
    }

    pub(super) fn hold_segment(&mut self, id: SegmentId, owner: WorkerKey) {
        if self.segments.insert(id, owner).is_some() {
            self.violation(format!("segment {id:?} created twice"));
        }
        *self.owned.entry(owner).or_default() += 1;
    }

    pub(super) fn release_segment(&mut self, id: SegmentId) -> bool {
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

    pub(super) fn fd_live(&self, fd: FdRef) -> bool {
        match fd {
            FdRef::VppMqsSegment => true,
            FdRef::Segment(id) => {
                self.segments.contains_key(&id) || self.sess.ct_segments.contains(&id)
            }
            FdRef::WorkerEventfd(k) => self.eventfds.contains(&k),
        }
    }

    pub(super) fn on_send(&mut self, sock: SocketId, msg: Message, fds: Vec<FdRef>) {
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
        self.app_on_send(sock, &msg, &fds);
        self.sends.push((sock, msg, fds));
        if self.take_injection(|i| *i == Inject::Send).is_some() {
            self.send_failed_now = true;
            self.core.input(Input::SendFailed { sock });
        }
    }

    pub(super) fn admin(&mut self, cmd: AdminCommand) -> Option<Result<AdminOk, AdminError>> {
        self.admin_replies.clear();
        self.feed(Input::Admin(cmd.clone()));
        let replies = std::mem::take(&mut self.admin_replies);
        if replies.len() != 1 {
            self.violation(format!("{cmd:?} got {} admin replies", replies.len()));
        }
        replies.into_iter().next()
    }

    pub(super) fn datagram(&mut self, sock: SocketId, bytes: &[u8], truncated: bool, ctrunc: bool) {
        self.feed(Input::Datagram {
            sock,
            bytes,
            truncated,
            ctrunc,
        });
    }

    pub(super) fn request(&mut self, sock: SocketId, msg: &Message) {
        match msg.encode(self.profile) {
            Ok(bytes) => self.datagram(sock, &bytes, false, false),
            // Cert-key messages do not exist at the seed: send the Head bytes anyway.
            Err(_) => match msg.encode(Profile::Head) {
                Ok(bytes) => self.datagram(sock, &bytes, false, false),
                Err(e) => self.violation(format!("cannot encode request {msg:?}: {e}")),
            },
        }
    }

    // Resolving picks against the live state

    pub(super) fn live_sockets(&self) -> Vec<SocketId> {
        self.sockets.iter().copied().collect()
    }

    pub(super) fn pick_sock(&self, p: Pick) -> Option<SocketId> {
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

    pub(super) fn pick_app(&self, p: Pick) -> Option<u32> {
        let apps: Vec<u32> = self.snap.apps.iter().map(|a| a.index).collect();
        p.resolve(&apps, |v| v)
    }

    pub(super) fn pick_wrk(&self, app: u32, p: Pick) -> Option<u32> {
        let wrks: Vec<u32> = self
            .snap
            .apps
            .iter()
            .find(|a| a.index == app)
            .map(|a| a.workers.iter().map(|w| w.index).collect())
            .unwrap_or_default();
        p.resolve(&wrks, |v| v).or(Some(p.0))
    }

    pub(super) fn pick_seg(&self, app: u32, wrk: u32, p: Pick) -> u64 {
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

    pub(super) fn ns_id(id: u8) -> String {
        match id {
            0 => "default".to_owned(),
            255 => "bad/id".to_owned(),
            n => format!("ns{n}"),
        }
    }

    // ---------------------------------------------------------------------------------------
}

/// The socket a request went to and what the shell knew of it just before.
#[derive(Clone, Copy, Debug)]
pub(super) struct Target {
    pub(super) sock: SocketId,
    pub(super) live: bool,
    pub(super) certkey_pending: bool,
}

/// What a peer decodes from a reply: at the seed a worker reply has no `api_client_handle`.
pub(crate) fn normalise(msg: Message, profile: Profile) -> Message {
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
pub(super) fn reply_fds_ok(retval: i32, n_fds: u8, flags: FdFlags, fds: &[FdRef]) -> bool {
    if retval != 0 {
        return fds.is_empty() && n_fds == 0;
    }
    usize::from(n_fds) == fds.len() && flags.bits().count_ones() == u32::from(n_fds)
}
