//! The session layer in the simulation: the fake shell's side of it (ct segments, fifo pairs,
//! shadow headers, the signal words and fifo occupancy the relays read, all without memory) and
//! the apps' side (what each worker was told, in the order it was told, and what it does next).
//!
//! The apps' model is what keeps the core honest about order: every control message and io
//! event posted to a worker is checked against what that worker knows at that moment —
//! ADD_SEGMENT (with its SEND_FDS already on the socket) before anything names the segment, a
//! session handle never reused before its CLEANUP type 1, CLEANUP 0 then 1 only after the app
//! closed and never for a rejected accept, DISCONNECTED or RESET at most once and never after the
//! app's own close, DEL_SEGMENT only once no session of either side lives in the segment, io
//! events only about sessions the app knows (`docs/sessions.md` §7.5, §8.3, §9.2–§9.6). The shell
//! side checks that every fifo pair, shadow pair and segment is freed exactly once and never named
//! after it was freed.
//!
//! It uses the core's public API only, and a check that fails is a finding about the core.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};

use sapi_core::{
    Action, FdRef, FifoRef, Input, Relay, ResourceError, SegmentId, SocketId, WorkerKey,
};
use sapi_wire::ctrl::{
    AcceptedReply, AppDetach, CleanupType, Connect, CtrlMessage, IoEvent, Ip46, Listen,
    SessionHandleMsg, SessionHandleReply, TransportAttr, Unlisten,
};
use sapi_wire::{Direction, Message};

use super::Sim;
use super::op::{CloseHow, Hostile, Inject, Op, Pick};

/// Server threads of the simulated VPP: the main thread and two workers, so pairs land on
/// threads 1 and 2 and a message posted into the wrong mq can be told from a right one.
pub(super) const VPP_WORKERS: u8 = 2;
/// The mq the ctrl messages go to (`vpp_ctrl_mq_thread`: 1 with workers).
const CTRL_THREAD: u8 = 1;

/// Listen and connect addresses (`docs/sessions.md` §6.1, §7.1): the wildcards, loopbacks that
/// match a wildcard listener only by the §7.1 fallback, and a non-local address.
pub(super) const ADDRS: [(Ip46, bool); 6] = [
    (Ip46::from_ipv4(Ipv4Addr::UNSPECIFIED), true),
    (Ip46::from_ipv4(Ipv4Addr::new(127, 0, 0, 1)), true),
    (Ip46::from_ipv4(Ipv4Addr::new(127, 0, 0, 2)), true),
    (Ip46::from_ipv6(Ipv6Addr::UNSPECIFIED), false),
    (Ip46::from_ipv6(Ipv6Addr::LOCALHOST), false),
    (Ip46::from_ipv4(Ipv4Addr::new(10, 0, 0, 1)), true),
];
/// Ports; 0 with TCP on a wildcard is the proxy-style entry every connect may match.
pub(super) const PORTS: [u16; 4] = [1234, 1235, 0, 5000];

/// What a listener listens on, as the LISTEN said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Endpoint {
    ip: Ip46,
    is_ip4: bool,
    port: u16,
    proto: u8,
}

/// An ACCEPTED the app has not answered.
#[derive(Clone, Copy, Debug)]
pub(super) struct Accepting {
    context: u32,
    thread: u8,
    a: FifoRef,
    b: FifoRef,
}

/// A session as its app knows it: from ACCEPTED_REPLY (S) or CONNECTED (C) to CLEANUP type 1.
#[derive(Clone, Copy, Debug)]
pub(super) struct AppSession {
    server_side: bool,
    app_index: u32,
    thread: u8,
    /// The data fifo it reads and the one it writes.
    rx: FifoRef,
    tx: FifoRef,
    /// Where its reader and writer signals live (§8.1).
    rx_sig: FifoRef,
    tx_sig: FifoRef,
    /// DISCONNECTED (false) or RESET (true), once told.
    told: Option<bool>,
    /// The app sent its close (DISCONNECT, TERMINATE or a reply).
    closed: bool,
    cleanup0: bool,
}

/// One app worker as the app sees it.
#[derive(Debug)]
pub(super) struct AppWorker {
    sock: SocketId,
    /// Segment handles it was told of, and the shell's segment each names.
    segments: BTreeMap<u64, SegmentId>,
    listeners: BTreeMap<u64, Endpoint>,
    accepting: BTreeMap<u64, Accepting>,
    sessions: BTreeMap<u64, AppSession>,
}

/// A fifo header the shell carved: a data fifo (with its occupancy) or a shadow header (whose
/// signal words alone are used).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Fifo {
    shadow: bool,
    size: u32,
    used: u32,
    has_event: bool,
    want_deq_ntf: u8,
    has_deq_ntf: bool,
    /// For fifo A: fifo B of the same pair.
    b: Option<FifoRef>,
}

impl Fifo {
    pub(super) fn is_shadow(&self) -> bool {
        self.shadow
    }
}

/// The simulation's session tables, shell and apps.
#[derive(Debug, Default)]
pub(super) struct SessionWorld {
    pub(super) workers: BTreeMap<WorkerKey, AppWorker>,
    /// Workers announced on each socket, oldest first (the last is the one it is bound to).
    sock_workers: BTreeMap<SocketId, Vec<WorkerKey>>,
    /// Segments whose SEND_FDS reached a socket and that no ADD_SEGMENT claimed yet.
    fd_queue: HashMap<SocketId, VecDeque<SegmentId>>,
    pub(super) ct_segments: BTreeSet<SegmentId>,
    pub(super) fifos: BTreeMap<FifoRef, Fifo>,
    freed_fifos: BTreeSet<FifoRef>,
    next_offset: u64,
    /// Fifo A of every pair whose ACCEPTED_REPLY with retval 0 an app posted.
    accepted_ok: BTreeSet<FifoRef>,
    /// LISTENs and CONNECTs awaiting their answer, by context (unique over the run).
    pending_listens: BTreeMap<u32, Endpoint>,
    connecting: BTreeSet<u32>,
    next_context: u32,
    /// Actions the op in progress caused (a hostile op must cause none).
    pub(super) effects: usize,
    /// DEL_SEGMENTs of ct segments told during the op in progress.
    del_segments_told: Vec<(WorkerKey, SegmentId)>,
}

/// Whether a worker still has a session (or an unanswered ACCEPTED) in ct segment `id`.
fn in_segment(x: &AppWorker, id: SegmentId) -> bool {
    x.sessions.values().any(|s| s.rx.segment == id)
        || x.accepting.values().any(|a| a.a.segment == id)
}

/// Session-layer totals of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionStats {
    pub listens_ok: usize,
    pub connects_refused: usize,
    pub accepts_rejected: usize,
    pub established: usize,
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub io_events_to_apps: usize,
    pub closes_disconnect: usize,
    pub closes_terminate: usize,
    pub closes_reply: usize,
    pub told_disconnected: usize,
    pub told_reset: usize,
    pub cleanups: usize,
    /// Sessions still open when their worker went (crash, detach, worker delete).
    pub lost_with_worker: usize,
    pub crashes_mid_session: usize,
    /// Of those, crashes of the listening side's app (S).
    pub crashes_of_s: usize,
    pub detaches: usize,
    pub ct_segments_created: usize,
    pub ct_segments_freed: usize,
    pub del_segments: usize,
    pub hostile: usize,
}

impl SessionStats {
    pub fn add(&mut self, o: &SessionStats) {
        self.listens_ok += o.listens_ok;
        self.connects_refused += o.connects_refused;
        self.accepts_rejected += o.accepts_rejected;
        self.established += o.established;
        self.bytes_written += o.bytes_written;
        self.bytes_read += o.bytes_read;
        self.io_events_to_apps += o.io_events_to_apps;
        self.closes_disconnect += o.closes_disconnect;
        self.closes_terminate += o.closes_terminate;
        self.closes_reply += o.closes_reply;
        self.told_disconnected += o.told_disconnected;
        self.told_reset += o.told_reset;
        self.cleanups += o.cleanups;
        self.lost_with_worker += o.lost_with_worker;
        self.crashes_mid_session += o.crashes_mid_session;
        self.crashes_of_s += o.crashes_of_s;
        self.detaches += o.detaches;
        self.ct_segments_created += o.ct_segments_created;
        self.ct_segments_freed += o.ct_segments_freed;
        self.del_segments += o.del_segments;
        self.hostile += o.hostile;
    }
}

fn resolve<T: Copy>(p: Pick, live: &[T]) -> Option<T> {
    if p.0 >= Pick::BOGUS || live.is_empty() {
        return None;
    }
    live.get(p.0 as usize % live.len()).copied()
}

impl Sim {
    // The shell's side -------------------------------------------------------------------

    fn alloc_fifo(&mut self, segment: SegmentId, size: u32, shadow: bool) -> FifoRef {
        self.sess.next_offset += 0x100;
        let f = FifoRef {
            segment,
            offset: 0x1_0000 + self.sess.next_offset,
        };
        self.sess.fifos.insert(
            f,
            Fifo {
                shadow,
                size,
                ..Fifo::default()
            },
        );
        f
    }

    fn free_fifo(&mut self, f: FifoRef, shadow: bool, what: &str) {
        match self.sess.fifos.remove(&f) {
            Some(x) if x.shadow == shadow => {
                self.sess.freed_fifos.insert(f);
            }
            Some(x) => {
                self.sess.fifos.insert(f, x);
                self.violation(format!("{what} frees {f:?}, which is not of that kind"));
            }
            None if self.sess.freed_fifos.contains(&f) => {
                self.violation(format!("{what} frees {f:?} a second time"))
            }
            None => self.violation(format!("{what} frees {f:?}, which was never carved")),
        }
    }

    /// The fifo header `f` names must be live when the core hands it to the shell.
    fn live_fifo(&mut self, f: FifoRef, what: &str) -> bool {
        if self.sess.fifos.contains_key(&f) {
            return true;
        }
        let state = if self.sess.freed_fifos.contains(&f) {
            "freed"
        } else {
            "never carved"
        };
        self.violation(format!("{what} names {f:?}, which is {state}"));
        false
    }

    fn segment_held(&self, id: SegmentId) -> bool {
        self.segments.contains_key(&id) || self.sess.ct_segments.contains(&id)
    }

    /// The session actions, performed as `sapi_reference::shell` does, answers fed back at once.
    pub(super) fn perform_session(&mut self, action: Action) {
        match action {
            Action::AllocFifoPair {
                pair,
                segment,
                rx_size,
                tx_size,
                slice,
            } => {
                if !self.sess.ct_segments.contains(&segment) {
                    self.violation(format!(
                        "AllocFifoPair in {segment:?}, which is not a live ct segment"
                    ));
                }
                if slice > VPP_WORKERS {
                    self.violation(format!("AllocFifoPair in slice {slice}"));
                }
                let result = if self.take_injection(|i| *i == Inject::FifoPair).is_some() {
                    Err(ResourceError::NoRoom)
                } else {
                    let a = self.alloc_fifo(segment, rx_size, false);
                    let b = self.alloc_fifo(segment, tx_size, false);
                    if let Some(x) = self.sess.fifos.get_mut(&a) {
                        x.b = Some(b);
                    }
                    Ok((a.offset, b.offset))
                };
                self.core.input(Input::FifoPairAllocated { pair, result });
            }
            Action::FreeFifoPair { segment, a, b } => {
                let (a, b) = (
                    FifoRef { segment, offset: a },
                    FifoRef { segment, offset: b },
                );
                if self.sess.fifos.get(&a).is_some_and(|x| x.b != Some(b)) {
                    self.violation(format!("FreeFifoPair of {a:?} and {b:?}, not one pair"));
                }
                self.free_fifo(a, false, "FreeFifoPair");
                self.free_fifo(b, false, "FreeFifoPair");
                self.sess.accepted_ok.remove(&a);
            }
            Action::AllocShadows { pair, segment } => {
                if !self.segments.contains_key(&segment) {
                    self.violation(format!(
                        "AllocShadows in {segment:?}, which is no live worker segment"
                    ));
                }
                let result = if self.take_injection(|i| *i == Inject::Shadows).is_some() {
                    Err(ResourceError::NoRoom)
                } else {
                    let rx = self.alloc_fifo(segment, 0, true);
                    let tx = self.alloc_fifo(segment, 0, true);
                    Ok((rx.offset, tx.offset))
                };
                self.core.input(Input::ShadowsAllocated { pair, result });
            }
            Action::FreeShadows { segment, rx, tx } => {
                for offset in [rx, tx] {
                    self.free_fifo(FifoRef { segment, offset }, true, "FreeShadows");
                }
            }
            Action::ProbeUnread { session, fifo } => {
                let unread = self.live_fifo(fifo, "ProbeUnread")
                    && self.sess.fifos.get(&fifo).is_some_and(|f| f.used > 0);
                self.core.input(Input::Unread { session, unread });
            }
            Action::RelayTx(r) => self.relay_tx(r),
            Action::RelayRx(r) => self.relay_rx(r),
            other => self.violation(format!("not a session action: {other:?}")),
        }
    }

    /// A ct segment the core asked for outside an admin segment add.
    pub(super) fn create_ct_segment(
        &mut self,
        id: SegmentId,
        requested: u64,
    ) -> Result<u64, ResourceError> {
        if let Some(Inject::Segment(e)) = self.take_injection(|i| matches!(i, Inject::Segment(_))) {
            self.failed_segments.insert(id);
            return Err(e);
        }
        if self.segment_held(id) || !self.sess.ct_segments.insert(id) {
            self.violation(format!("ct segment {id:?} created twice"));
        }
        self.stats.sessions.ct_segments_created += 1;
        Ok(requested + super::SEGMENT_OVERHEAD)
    }

    /// `FreeSegment` of a ct segment; `false` if `id` is not one.
    pub(super) fn free_ct_segment(&mut self, id: SegmentId) -> bool {
        if !self.sess.ct_segments.remove(&id) {
            return false;
        }
        self.stats.sessions.ct_segments_freed += 1;
        true
    }

    /// Nothing may be left in a segment the shell unmaps.
    pub(super) fn check_segment_empty(&mut self, id: SegmentId) {
        let left: Vec<FifoRef> = self
            .sess
            .fifos
            .keys()
            .filter(|f| f.segment == id)
            .copied()
            .collect();
        if !left.is_empty() {
            self.violation(format!(
                "FreeSegment({id:?}) with fifo headers still in it: {left:?}"
            ));
        }
    }

    fn relay_tx(&mut self, r: Relay) {
        let mut ok = self.live_fifo(r.writer_signals, "RelayTx (writer signals)")
            & self.live_fifo(r.data, "RelayTx (data)");
        if r.reader.is_some() {
            ok &= self.live_fifo(r.reader_signals, "RelayTx (reader signals)");
        }
        if !ok {
            return;
        }
        let fifos = &mut self.sess.fifos;
        let want = fifos.get(&r.writer_signals).map_or(0, |f| f.want_deq_ntf);
        if let Some(w) = fifos.get_mut(&r.writer_signals) {
            w.has_event = false;
        }
        let Some(reader) = r.reader else {
            return;
        };
        let mut tx_to_writer = false;
        if want != 0 {
            let empty = fifos.get(&r.data).is_some_and(|d| d.used == 0);
            if let Some(rs) = fifos.get_mut(&r.reader_signals) {
                rs.want_deq_ntf |= want;
                if empty {
                    rs.want_deq_ntf &= !want;
                }
            }
            if empty {
                if let Some(w) = fifos.get_mut(&r.writer_signals) {
                    w.want_deq_ntf &= !1;
                }
                tx_to_writer = true;
            }
        }
        let claim = fifos
            .get_mut(&r.reader_signals)
            .is_some_and(|rs| !std::mem::replace(&mut rs.has_event, true));
        if tx_to_writer {
            self.app_on_io(r.writer.worker, IoEvent::tx(r.writer.app_session_index));
        }
        if claim {
            self.app_on_io(reader.worker, IoEvent::rx(reader.app_session_index));
        }
    }

    fn relay_rx(&mut self, r: Relay) {
        let ok = self.live_fifo(r.writer_signals, "RelayRx (writer signals)")
            & self.live_fifo(r.reader_signals, "RelayRx (reader signals)")
            & self.live_fifo(r.data, "RelayRx (data)");
        if !ok {
            return;
        }
        let fifos = &mut self.sess.fifos;
        if let Some(rs) = fifos.get_mut(&r.reader_signals) {
            rs.has_deq_ntf = false;
        }
        if fifos.get(&r.data).is_some_and(|d| d.used >= d.size) {
            if let Some(rs) = fifos.get_mut(&r.reader_signals) {
                rs.want_deq_ntf |= 1;
            }
            return;
        }
        if let Some(w) = fifos.get_mut(&r.writer_signals) {
            w.want_deq_ntf &= !1;
        }
        self.app_on_io(r.writer.worker, IoEvent::tx(r.writer.app_session_index));
    }

    // The apps' side: what they are told -------------------------------------------------

    /// A datagram the shell sent: a worker announced by its reply, or a segment fd on its way.
    pub(super) fn app_on_send(&mut self, sock: SocketId, msg: &Message, fds: &[FdRef]) {
        let (announced, handle) = match msg {
            Message::SendFds => {
                if let [FdRef::Segment(id)] = fds {
                    self.sess.fd_queue.entry(sock).or_default().push_back(*id);
                }
                return;
            }
            Message::AttachReply(r) if r.retval == 0 => (
                WorkerKey {
                    app: sapi_core::AppIndex(r.app_index),
                    wrk: 0,
                },
                r.segment_handle,
            ),
            Message::AddDelWorkerReply(r) if r.retval == 0 && r.is_add => {
                let Some(key) = fds.iter().find_map(|f| match f {
                    FdRef::Segment(id) => self.segments.get(id).copied(),
                    _ => None,
                }) else {
                    return;
                };
                if key.wrk != r.wrk_index {
                    self.violation(format!(
                        "worker reply for {key} says worker {}",
                        r.wrk_index
                    ));
                }
                (key, r.segment_handle)
            }
            _ => return,
        };
        let Some(first) = fds.iter().find_map(|f| match f {
            FdRef::Segment(id) => Some(*id),
            _ => None,
        }) else {
            return;
        };
        let w = AppWorker {
            sock,
            segments: BTreeMap::from([(handle, first)]),
            listeners: BTreeMap::new(),
            accepting: BTreeMap::new(),
            sessions: BTreeMap::new(),
        };
        if self.sess.workers.insert(announced, w).is_some() {
            self.violation(format!("{announced} announced twice"));
        }
        self.sess
            .sock_workers
            .entry(sock)
            .or_default()
            .push(announced);
    }

    /// The worker is gone (`FreeWorker`): so is all it knew.
    pub(super) fn app_worker_gone(&mut self, key: WorkerKey) {
        if let Some(w) = self.sess.workers.remove(&key) {
            self.stats.sessions.lost_with_worker += w.sessions.len();
            if let Some(v) = self.sess.sock_workers.get_mut(&w.sock) {
                v.retain(|k| *k != key);
            }
        }
    }

    pub(super) fn app_socket_gone(&mut self, sock: SocketId) {
        self.sess.fd_queue.remove(&sock);
        self.sess.sock_workers.remove(&sock);
    }

    /// Every message the core posts into a worker's app mq, in the order it is posted.
    pub(super) fn app_on_ctrl(&mut self, w: WorkerKey, msg: &CtrlMessage) {
        let profile = self.profile;
        match msg.encode(profile) {
            Ok(el) => {
                let back = CtrlMessage::decode(&el, profile, Direction::ServerToApp);
                if back.as_ref() != Ok(msg) {
                    self.violation(format!("{msg:?} posted to {w} decodes as {back:?}"));
                }
            }
            Err(e) => self.violation(format!("{msg:?} posted to {w} cannot be encoded: {e}")),
        }
        let Some(mut aw) = self.sess.workers.remove(&w) else {
            self.violation(format!("{msg:?} posted to {w}, which no reply announced"));
            return;
        };
        let v = self.app_take(w, &mut aw, msg);
        self.sess.workers.insert(w, aw);
        for v in v {
            self.violation(format!("{w} told {}: {v}", msg.event_type().name()));
        }
    }

    fn data_fifo_pair(&self, a: FifoRef, b: FifoRef) -> Result<(), String> {
        match self.sess.fifos.get(&a) {
            Some(f) if !f.shadow && f.b == Some(b) => Ok(()),
            Some(_) => Err(format!("{a:?} and {b:?} are not fifos A and B of one pair")),
            None => Err(format!("fifo {a:?} is not live")),
        }
    }

    fn shadow_live(&self, f: FifoRef) -> bool {
        self.sess.fifos.get(&f).is_some_and(|x| x.shadow)
    }

    /// The app's reading of one message; returns what was wrong with it.
    fn app_take(&mut self, w: WorkerKey, aw: &mut AppWorker, msg: &CtrlMessage) -> Vec<String> {
        let mut v = Vec::new();
        let known =
            |aw: &AppWorker, h: u64| aw.sessions.contains_key(&h) || aw.accepting.contains_key(&h);
        match msg {
            CtrlMessage::Bound(b) => {
                let Some(ep) = self.sess.pending_listens.remove(&b.context) else {
                    v.push(format!("context {} is no LISTEN's", b.context));
                    return v;
                };
                if b.retval == 0 {
                    self.stats.sessions.listens_ok += 1;
                    if aw.listeners.insert(b.handle, ep).is_some() {
                        v.push(format!(
                            "listener handle {:#x} it listens on already",
                            b.handle
                        ));
                    }
                }
            }
            CtrlMessage::UnlistenReply(r) => {
                if r.retval == 0 {
                    aw.listeners.remove(&r.handle);
                }
            }
            CtrlMessage::Accepted(a) => {
                if !aw.listeners.contains_key(&a.listener_handle) {
                    v.push(format!(
                        "listener_handle {:#x} is none of its listeners {:x?}",
                        a.listener_handle,
                        aw.listeners.keys().collect::<Vec<_>>()
                    ));
                }
                if known(aw, a.handle) {
                    v.push(format!(
                        "handle {:#x} names a session it has not had CLEANUP 1 for",
                        a.handle
                    ));
                }
                if u64::from(a.mq_index) != a.handle >> 32 || a.mq_index > u32::from(VPP_WORKERS) {
                    v.push(format!(
                        "mq_index {} for handle {:#x}",
                        a.mq_index, a.handle
                    ));
                }
                let Some(seg) = aw.segments.get(&a.segment_handle).copied() else {
                    v.push(format!(
                        "segment {:#x} before its ADD_SEGMENT",
                        a.segment_handle
                    ));
                    return v;
                };
                let fa = FifoRef {
                    segment: seg,
                    offset: a.server_rx_fifo,
                };
                let fb = FifoRef {
                    segment: seg,
                    offset: a.server_tx_fifo,
                };
                if let Err(e) = self.data_fifo_pair(fa, fb) {
                    v.push(e);
                }
                if a.context != w.app.0 {
                    v.push(format!("context {} is not its app index", a.context));
                }
                aw.accepting.insert(
                    a.handle,
                    Accepting {
                        context: a.context,
                        thread: a.mq_index as u8,
                        a: fa,
                        b: fb,
                    },
                );
            }
            CtrlMessage::Connected(c) => {
                if !self.sess.connecting.remove(&c.context) {
                    v.push(format!(
                        "context {} is no CONNECT's awaiting CONNECTED",
                        c.context
                    ));
                }
                if c.retval != 0 {
                    self.stats.sessions.connects_refused += 1;
                    return v;
                }
                if known(aw, c.handle) {
                    v.push(format!(
                        "handle {:#x} names a session it has not had CLEANUP 1 for",
                        c.handle
                    ));
                }
                if u64::from(c.mq_index) != c.handle >> 32 || c.mq_index > u32::from(VPP_WORKERS) {
                    v.push(format!(
                        "mq_index {} for handle {:#x}",
                        c.mq_index, c.handle
                    ));
                }
                let (Some(ct), Some(first)) = (
                    aw.segments.get(&c.ct_segment_handle).copied(),
                    aw.segments.get(&c.segment_handle).copied(),
                ) else {
                    v.push(format!(
                        "segments {:#x} / {:#x}, not both announced",
                        c.ct_segment_handle, c.segment_handle
                    ));
                    return v;
                };
                let fa = FifoRef {
                    segment: ct,
                    offset: c.ct_tx_fifo,
                };
                let fb = FifoRef {
                    segment: ct,
                    offset: c.ct_rx_fifo,
                };
                if let Err(e) = self.data_fifo_pair(fa, fb) {
                    v.push(format!("ct_tx/ct_rx: {e}"));
                }
                if !self.sess.accepted_ok.contains(&fa) {
                    v.push("CONNECTED for a pair S has not accepted".to_owned());
                }
                let shadow_rx = FifoRef {
                    segment: first,
                    offset: c.server_rx_fifo,
                };
                let shadow_tx = FifoRef {
                    segment: first,
                    offset: c.server_tx_fifo,
                };
                if !self.shadow_live(shadow_rx) || !self.shadow_live(shadow_tx) {
                    v.push(format!("shadows {shadow_rx:?} {shadow_tx:?} are not live"));
                }
                self.stats.sessions.established += 1;
                aw.sessions.insert(
                    c.handle,
                    AppSession {
                        server_side: false,
                        app_index: c.context,
                        thread: c.mq_index as u8,
                        rx: fb,
                        tx: fa,
                        rx_sig: shadow_rx,
                        tx_sig: shadow_tx,
                        told: None,
                        closed: false,
                        cleanup0: false,
                    },
                );
            }
            CtrlMessage::Disconnected(m) | CtrlMessage::Reset(m) => {
                let reset = matches!(msg, CtrlMessage::Reset(_));
                let Some(s) = aw.sessions.get_mut(&m.handle) else {
                    v.push(format!("session {:#x}, which it does not know", m.handle));
                    return v;
                };
                if s.told.is_some() {
                    v.push(format!("session {:#x} told a second time", m.handle));
                }
                if s.closed {
                    v.push(format!("session {:#x} after the app closed it", m.handle));
                }
                s.told = Some(reset);
                if reset {
                    self.stats.sessions.told_reset += 1;
                } else {
                    self.stats.sessions.told_disconnected += 1;
                }
            }
            CtrlMessage::Cleanup(c) => {
                let Some(s) = aw.sessions.get_mut(&c.handle) else {
                    v.push(format!("session {:#x}, which it does not know", c.handle));
                    return v;
                };
                if !s.closed {
                    v.push(format!(
                        "session {:#x}, which the app did not close",
                        c.handle
                    ));
                }
                if c.cleanup_type == CleanupType::TRANSPORT {
                    if std::mem::replace(&mut s.cleanup0, true) {
                        v.push(format!("a second CLEANUP 0 for {:#x}", c.handle));
                    }
                } else if c.cleanup_type == CleanupType::SESSION {
                    if !s.cleanup0 {
                        v.push(format!("CLEANUP 1 before CLEANUP 0 for {:#x}", c.handle));
                    }
                    aw.sessions.remove(&c.handle);
                    self.stats.sessions.cleanups += 1;
                } else {
                    v.push(format!("cleanup type {:?}", c.cleanup_type));
                }
            }
            CtrlMessage::AppAddSegment(m) => {
                let Some(id) = self
                    .sess
                    .fd_queue
                    .get_mut(&aw.sock)
                    .and_then(|q| q.pop_front())
                else {
                    v.push(format!(
                        "segment {:#x} with no SEND_FDS on its socket before it",
                        m.segment_handle
                    ));
                    return v;
                };
                if !self.segment_held(id) {
                    v.push(format!(
                        "segment {:#x}: its fd {id:?} is not held",
                        m.segment_handle
                    ));
                }
                if m.segment_handle == u64::MAX || m.segment_handle >> 56 == 0xff {
                    v.push(format!(
                        "segment handle {:#x} VCL rejects",
                        m.segment_handle
                    ));
                }
                if aw.segments.insert(m.segment_handle, id).is_some() {
                    v.push(format!(
                        "segment handle {:#x} it has already",
                        m.segment_handle
                    ));
                }
            }
            CtrlMessage::AppDelSegment(m) => {
                let Some(id) = aw.segments.remove(&m.segment_handle) else {
                    v.push(format!(
                        "segment {:#x}, which it does not have",
                        m.segment_handle
                    ));
                    return v;
                };
                if self.sess.ct_segments.contains(&id) {
                    self.stats.sessions.del_segments += 1;
                    // In its own mq, the worker's CLEANUP 1s come before (§9.6); the other
                    // side's are in another mq, ordered only by causality: checked once the
                    // op is over, when a side that is detaching has gone.
                    if in_segment(aw, id) {
                        v.push(format!(
                            "ct segment {id:?} while its own sessions in it have had no CLEANUP 1"
                        ));
                    }
                    // The shell may still have fifo frees of the segment queued (the apps are
                    // done with them); its unmap with a fifo left in it is what must not be.
                    self.sess.del_segments_told.push((w, id));
                }
            }
            CtrlMessage::TransportAttrReply(_) => {}
            other => v.push(format!("a message the server never sends: {other:?}")),
        }
        v
    }

    /// An io event the shell posts into a worker's app mq: about a session its app knows.
    fn app_on_io(&mut self, w: WorkerKey, ev: IoEvent) {
        self.stats.sessions.io_events_to_apps += 1;
        if !self.workers.contains(&w) {
            self.violation(format!("{ev:?} posted to {w}, whose mq is gone"));
            return;
        }
        let knows = self.sess.workers.get(&w).is_some_and(|aw| {
            aw.sessions
                .values()
                .any(|s| s.app_index == ev.session_index)
        });
        if !knows {
            self.violation(format!(
                "{ev:?} posted to {w} about a session it does not know"
            ));
        }
    }

    // The apps' side: what they do ---------------------------------------------------------

    fn live_workers(&self) -> Vec<WorkerKey> {
        self.sess.workers.keys().copied().collect()
    }

    fn all_sessions(&self) -> Vec<(WorkerKey, u64)> {
        self.sess
            .workers
            .iter()
            .flat_map(|(k, w)| {
                w.sessions
                    .iter()
                    .filter(|(_, s)| !s.closed)
                    .map(move |(h, _)| (*k, *h))
            })
            .collect()
    }

    fn all_accepting(&self) -> Vec<(WorkerKey, u64)> {
        self.sess
            .workers
            .iter()
            .flat_map(|(k, w)| w.accepting.keys().map(move |h| (*k, *h)))
            .collect()
    }

    /// The `client_index` worker `w` speaks with: its socket's, when that socket is bound to
    /// `w`'s app (a worker add by another app moves a socket's binding, and then the app has
    /// no voice of its own left).
    fn client_index(&self, w: WorkerKey) -> Option<u32> {
        let aw = self.sess.workers.get(&w)?;
        let bound = self.sess.sock_workers.get(&aw.sock)?.last()?;
        (bound.app == w.app).then(|| aw.sock.api_client_handle())
    }

    fn next_context(&mut self) -> u32 {
        self.sess.next_context += 1;
        self.sess.next_context
    }

    /// A control message from an app, through its encoding (what the shell reads from the mq).
    fn app_posts(&mut self, thread: u8, msg: CtrlMessage) {
        // Not in this profile (TRANSPORT_ATTR at the seed): the app cannot post it.
        if let Ok(el) = msg.encode(self.profile) {
            match CtrlMessage::decode(&el, self.profile, Direction::AppToServer) {
                Ok(m) => self.feed(Input::AppCtrl { thread, msg: m }),
                Err(e) => self.violation(format!("{msg:?} does not decode back: {e}")),
            }
        }
    }

    fn app_posts_io(&mut self, thread: u8, event: IoEvent) {
        self.feed(Input::AppIo { thread, event });
    }

    /// Runs a session op; `false` if `op` is not one.
    pub(super) fn run_session(&mut self, op: &Op) -> bool {
        match *op {
            Op::Listen {
                wrk,
                addr,
                port,
                udp,
            } => {
                let Some(w) = resolve(wrk, &self.live_workers()) else {
                    return true;
                };
                let Some(client_index) = self.client_index(w) else {
                    return true;
                };
                let (ip, is_ip4) = ADDRS[usize::from(addr) % ADDRS.len()];
                let ep = Endpoint {
                    ip,
                    is_ip4,
                    port: PORTS[usize::from(port) % PORTS.len()],
                    proto: u8::from(udp),
                };
                let context = self.next_context();
                self.sess.pending_listens.insert(context, ep);
                self.app_posts(
                    CTRL_THREAD,
                    CtrlMessage::Listen(Listen {
                        client_index,
                        context,
                        wrk_index: w.wrk,
                        port: ep.port,
                        proto: ep.proto,
                        is_ip4,
                        ip,
                        flags: u8::from(udp),
                        ..Listen::default()
                    }),
                );
            }
            Op::Unlisten { wrk, listener } => {
                let Some(w) = resolve(wrk, &self.live_workers()) else {
                    return true;
                };
                let Some(client_index) = self.client_index(w) else {
                    return true;
                };
                let mine: Vec<u64> = self.sess.workers[&w].listeners.keys().copied().collect();
                let handle = resolve(listener, &mine)
                    .unwrap_or(0x00F0_0000 + u64::from(listener.0 & 0xffff));
                let context = self.next_context();
                self.app_posts(
                    CTRL_THREAD,
                    CtrlMessage::Unlisten(Unlisten {
                        client_index,
                        context,
                        wrk_index: w.wrk,
                        handle,
                    }),
                );
            }
            Op::Dial {
                wrk,
                to,
                addr,
                port,
                udp,
            } => {
                let Some(w) = resolve(wrk, &self.live_workers()) else {
                    return true;
                };
                let Some(client_index) = self.client_index(w) else {
                    return true;
                };
                let listeners: Vec<Endpoint> = self
                    .sess
                    .workers
                    .values()
                    .flat_map(|x| x.listeners.values().copied())
                    .collect();
                let (ip, is_ip4, port, proto) = match resolve(to, &listeners) {
                    // A listener's port and protocol at one of its family's addresses: its
                    // own, a loopback (matches a wildcard only by the §7.1 fallback), another
                    // loopback, zero (INVALID_RMT_IP), a non-loopback one (SCOPE).
                    Some(l) => {
                        let ip = match (l.is_ip4, addr % 5) {
                            (_, 0) if l.ip != Ip46::ZERO => l.ip,
                            (true, 0 | 1) => Ip46::from_ipv4(Ipv4Addr::new(127, 0, 0, 1)),
                            (true, 2) => Ip46::from_ipv4(Ipv4Addr::new(127, 0, 0, 9)),
                            (true, 3) => Ip46::ZERO,
                            (true, _) => Ip46::from_ipv4(Ipv4Addr::new(10, 1, 1, 1)),
                            (false, 0..=2) => Ip46::from_ipv6(Ipv6Addr::LOCALHOST),
                            (false, 3) => Ip46::ZERO,
                            (false, _) => {
                                Ip46::from_ipv6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))
                            }
                        };
                        (ip, l.is_ip4, l.port, l.proto)
                    }
                    None => {
                        let (ip, is_ip4) = ADDRS[usize::from(addr) % ADDRS.len()];
                        (
                            ip,
                            is_ip4,
                            PORTS[usize::from(port) % PORTS.len()],
                            u8::from(udp),
                        )
                    }
                };
                let context = self.next_context();
                self.sess.connecting.insert(context);
                self.app_posts(
                    CTRL_THREAD,
                    CtrlMessage::Connect(Connect {
                        client_index,
                        context,
                        wrk_index: w.wrk,
                        port,
                        proto,
                        is_ip4,
                        ip,
                        parent_handle: u64::MAX,
                        flags: 1,
                        ..Connect::default()
                    }),
                );
            }
            Op::Accept { acc, reject } => {
                let Some((w, h)) = resolve(acc, &self.all_accepting()) else {
                    return true;
                };
                let Some(a) = self
                    .sess
                    .workers
                    .get_mut(&w)
                    .and_then(|x| x.accepting.remove(&h))
                else {
                    return true;
                };
                let app_session_index = self.next_context();
                if reject {
                    self.stats.sessions.accepts_rejected += 1;
                } else {
                    // The app knows the session from the moment it accepts it: what the
                    // server says about it next (CONNECTED's peer closing, say) is about it.
                    self.sess.accepted_ok.insert(a.a);
                    if let Some(x) = self.sess.workers.get_mut(&w) {
                        x.sessions.insert(
                            h,
                            AppSession {
                                server_side: true,
                                app_index: app_session_index,
                                thread: a.thread,
                                rx: a.a,
                                tx: a.b,
                                rx_sig: a.a,
                                tx_sig: a.b,
                                told: None,
                                closed: false,
                                cleanup0: false,
                            },
                        );
                    }
                }
                self.app_posts(
                    a.thread,
                    CtrlMessage::AcceptedReply(AcceptedReply {
                        context: a.context,
                        retval: if reject { -2 } else { 0 },
                        handle: h,
                        app_session_index,
                    }),
                );
            }
            Op::Write { sess, len } => {
                let Some((w, h)) = resolve(sess, &self.all_sessions()) else {
                    return true;
                };
                let s = self.sess.workers[&w].sessions[&h];
                if !(self.live_fifo(s.tx, "a live session's tx fifo")
                    & self.live_fifo(s.tx_sig, "a live session's writer signals"))
                {
                    return true;
                }
                let fifos = &mut self.sess.fifos;
                let mut written = 0;
                if let Some(f) = fifos.get_mut(&s.tx) {
                    written = u32::from(len).min(f.size.saturating_sub(f.used));
                    f.used += written;
                }
                let full = written < u32::from(len);
                let post = fifos.get_mut(&s.tx_sig).is_some_and(|sig| {
                    if full {
                        sig.want_deq_ntf |= 1;
                    }
                    !std::mem::replace(&mut sig.has_event, true)
                });
                self.stats.sessions.bytes_written += u64::from(written);
                if post {
                    self.app_posts_io(s.thread, IoEvent::tx(h as u32));
                }
            }
            Op::Read { sess, len } => {
                let Some((w, h)) = resolve(sess, &self.all_sessions()) else {
                    return true;
                };
                let s = self.sess.workers[&w].sessions[&h];
                if !(self.live_fifo(s.rx, "a live session's rx fifo")
                    & self.live_fifo(s.rx_sig, "a live session's reader signals"))
                {
                    return true;
                }
                let fifos = &mut self.sess.fifos;
                let mut read = 0;
                let mut empty = false;
                if let Some(f) = fifos.get_mut(&s.rx) {
                    read = u32::from(len).min(f.used);
                    f.used -= read;
                    empty = f.used == 0;
                }
                let notify = fifos.get_mut(&s.rx_sig).is_some_and(|sig| {
                    if empty {
                        sig.has_event = false;
                    }
                    let asked = read > 0 && sig.want_deq_ntf & 1 != 0;
                    sig.want_deq_ntf &= !1;
                    asked
                });
                self.stats.sessions.bytes_read += u64::from(read);
                if notify {
                    self.app_posts_io(s.thread, IoEvent::rx(h as u32));
                }
            }
            Op::Shut { sess, how } => {
                let Some((w, h)) = resolve(sess, &self.all_sessions()) else {
                    return true;
                };
                let Some(client_index) = self.client_index(w) else {
                    return true;
                };
                let s = self.sess.workers[&w].sessions[&h];
                let body = SessionHandleMsg {
                    client_index,
                    context: 0,
                    handle: h,
                };
                let reply = SessionHandleReply {
                    context: client_index,
                    retval: 0,
                    handle: h,
                };
                let msg = match how {
                    CloseHow::Disconnect => CtrlMessage::Disconnect(body),
                    CloseHow::Terminate => CtrlMessage::Terminate(body),
                    CloseHow::Reply if s.told == Some(true) => CtrlMessage::ResetReply(reply),
                    CloseHow::Reply => CtrlMessage::DisconnectedReply(reply),
                    CloseHow::Shutdown => CtrlMessage::Shutdown(body),
                };
                if msg.encode(self.profile).is_err() {
                    // Not in this profile (TERMINATE at the seed): the app cannot send it.
                    return true;
                }
                if how != CloseHow::Shutdown {
                    match how {
                        CloseHow::Disconnect => self.stats.sessions.closes_disconnect += 1,
                        CloseHow::Terminate => self.stats.sessions.closes_terminate += 1,
                        _ => self.stats.sessions.closes_reply += 1,
                    }
                    if let Some(x) = self
                        .sess
                        .workers
                        .get_mut(&w)
                        .and_then(|x| x.sessions.get_mut(&h))
                    {
                        x.closed = true;
                    }
                }
                let effects = self.sess.effects;
                self.app_posts(s.thread, msg);
                // The shell answers the unread probe at once, so the close completes within
                // the op: its CLEANUP 1 is out (§9.2: the closer does not wait for its peer).
                let open = self
                    .sess
                    .workers
                    .get(&w)
                    .is_some_and(|x| x.sessions.contains_key(&h));
                if how != CloseHow::Shutdown && open {
                    self.violation(format!("{w} closed session {h:#x} and got no CLEANUP 1"));
                }
                if how == CloseHow::Shutdown && self.sess.effects != effects {
                    self.violation("SHUTDOWN on cut-through did something");
                }
            }
            Op::CrashSession { sess } => {
                let Some((w, h)) = resolve(sess, &self.all_sessions()) else {
                    return true;
                };
                let sock = self.sess.workers[&w].sock;
                self.stats.sessions.crashes_mid_session += 1;
                if self.sess.workers[&w].sessions[&h].server_side {
                    self.stats.sessions.crashes_of_s += 1;
                }
                self.stats.crashes += 1;
                self.feed(Input::Closed { sock });
                if self.sockets.contains(&sock) {
                    self.violation(format!("{sock} still held after its peer closed"));
                }
            }
            Op::Detach { wrk } => {
                let Some(w) = resolve(wrk, &self.live_workers()) else {
                    return true;
                };
                let Some(client_index) = self.client_index(w) else {
                    return true;
                };
                self.stats.sessions.detaches += 1;
                let sock = self.sess.workers[&w].sock;
                self.app_posts(
                    CTRL_THREAD,
                    CtrlMessage::AppDetach(AppDetach {
                        client_index,
                        context: 0,
                    }),
                );
                if self.sess.workers.contains_key(&w) || self.sockets.contains(&sock) {
                    self.violation(format!("{w} still there after APP_DETACH"));
                }
            }
            Op::Hostile { wrk, sess, kind } => self.hostile(wrk, sess, kind),
            _ => return false,
        }
        true
    }

    /// A hostile message: it must cause no action at all.
    fn hostile(&mut self, wrk: Pick, sess: Pick, kind: Hostile) {
        let workers = self.live_workers();
        let before = self.sess.effects;
        let posted = match kind {
            Hostile::OthersDisconnect
            | Hostile::OthersTerminate
            | Hostile::OthersCloseReply
            | Hostile::OthersAttr => {
                let Some((owner, h)) = resolve(sess, &self.all_sessions()) else {
                    return;
                };
                // A sender whose socket speaks for another app than the owner's.
                let others: Vec<(WorkerKey, u32)> = workers
                    .iter()
                    .filter_map(|k| {
                        let aw = self.sess.workers.get(k)?;
                        let bound = self.sess.sock_workers.get(&aw.sock)?.last()?;
                        (bound.app != owner.app).then(|| (*k, aw.sock.api_client_handle()))
                    })
                    .collect();
                let Some((_, client_index)) = resolve(wrk, &others) else {
                    return;
                };
                let body = SessionHandleMsg {
                    client_index,
                    context: 0,
                    handle: h,
                };
                let msg = match kind {
                    Hostile::OthersDisconnect => CtrlMessage::Disconnect(body),
                    Hostile::OthersTerminate => CtrlMessage::Terminate(body),
                    Hostile::OthersCloseReply => {
                        CtrlMessage::DisconnectedReply(SessionHandleReply {
                            context: client_index,
                            retval: 0,
                            handle: h,
                        })
                    }
                    _ => CtrlMessage::TransportAttr(TransportAttr {
                        client_index,
                        handle: h,
                        ..TransportAttr::default()
                    }),
                };
                self.app_posts((h >> 32) as u8, msg);
                true
            }
            Hostile::UnknownHandle | Hostile::WrongWorker => {
                let Some(w) = resolve(wrk, &workers) else {
                    return;
                };
                let Some(client_index) = self.client_index(w) else {
                    return;
                };
                let thread = (sess.0 % 3) as u8;
                if kind == Hostile::UnknownHandle {
                    let handle =
                        (u64::from(thread) << 32) | (0x00F0_0000 + u64::from(sess.0 & 0xffff));
                    self.app_posts(
                        thread,
                        CtrlMessage::Disconnect(SessionHandleMsg {
                            client_index,
                            context: 0,
                            handle,
                        }),
                    );
                } else {
                    let context = self.next_context();
                    let wrk_index = 0x7777;
                    self.app_posts(
                        CTRL_THREAD,
                        CtrlMessage::Listen(Listen {
                            client_index,
                            context,
                            wrk_index,
                            port: 4242,
                            is_ip4: true,
                            ip: ADDRS[1].0,
                            ..Listen::default()
                        }),
                    );
                    self.app_posts(
                        CTRL_THREAD,
                        CtrlMessage::Connect(Connect {
                            client_index,
                            context,
                            wrk_index,
                            port: PORTS[0],
                            is_ip4: true,
                            ip: ADDRS[1].0,
                            parent_handle: u64::MAX,
                            flags: 1,
                            ..Connect::default()
                        }),
                    );
                }
                true
            }
            Hostile::WrongThread => {
                let Some((w, h)) = resolve(sess, &self.all_sessions()) else {
                    return;
                };
                let Some(client_index) = self.client_index(w) else {
                    return;
                };
                let thread = ((h >> 32) as u8 + 1) % (VPP_WORKERS + 1);
                self.app_posts(
                    thread,
                    CtrlMessage::Disconnect(SessionHandleMsg {
                        client_index,
                        context: 0,
                        handle: h,
                    }),
                );
                true
            }
            Hostile::WrongContext => {
                let Some((w, h)) = resolve(sess, &self.all_accepting()) else {
                    return;
                };
                let a = self.sess.workers[&w].accepting[&h];
                self.app_posts(
                    a.thread,
                    CtrlMessage::AcceptedReply(AcceptedReply {
                        context: a.context ^ (1 + (wrk.0 & 0xff)),
                        retval: 0,
                        handle: h,
                        app_session_index: 1,
                    }),
                );
                true
            }
            Hostile::UnknownIo => {
                let thread = (sess.0 % 3) as u8;
                self.app_posts_io(thread, IoEvent::tx(0x00F0_0000 + (wrk.0 & 0xffff)));
                true
            }
        };
        if posted {
            self.stats.sessions.hostile += 1;
            if self.sess.effects != before {
                self.violation(format!(
                    "{kind:?} caused {} actions; it must change nothing",
                    self.sess.effects - before
                ));
            }
        }
    }

    /// After each op: a ct segment one app was told is gone has no session left on either
    /// side, among the workers still alive (§9.6: DEL_SEGMENT only after both sides' CLEANUP 1).
    pub(super) fn end_of_op(&mut self) {
        for (w, id) in std::mem::take(&mut self.sess.del_segments_told) {
            let users: Vec<WorkerKey> = self
                .sess
                .workers
                .iter()
                .filter(|(_, x)| in_segment(x, id))
                .map(|(k, _)| *k)
                .collect();
            if !users.is_empty() {
                self.violation(format!(
                    "{w} told DEL_SEGMENT of ct segment {id:?} while sessions of {users:?} in it \
                     are not cleaned up"
                ));
            }
        }
    }

    /// The end of a run: every socket closes; then nothing may be held.
    pub(super) fn tear_down(&mut self) {
        for sock in self.live_sockets() {
            if self.sockets.contains(&sock) {
                self.feed(Input::Closed { sock });
            }
        }
        let c = self.core.counts();
        if c.apps != 0 || c.workers != 0 || c.segments != 0 {
            self.violation(format!("every socket closed, yet the core counts {c:?}"));
        }
        if c.session_slots != 0 || c.pairs != 0 || c.ct_segments != 0 {
            self.violation(format!(
                "every app gone, yet the core holds {} listeners/sessions, {} pairs, {} ct segments",
                c.session_slots, c.pairs, c.ct_segments
            ));
        }
        if !self.sess.fifos.is_empty() {
            let left: Vec<_> = self.sess.fifos.keys().take(8).collect();
            self.violation(format!(
                "every app gone, yet {} fifo headers are held: {left:?}…",
                self.sess.fifos.len()
            ));
        }
        if !self.sess.ct_segments.is_empty() || !self.segments.is_empty() {
            self.violation(format!(
                "every app gone, yet the shell holds ct segments {:?} and segments {:?}",
                self.sess.ct_segments,
                self.segments.keys().collect::<Vec<_>>()
            ));
        }
        if !self.sess.workers.is_empty() {
            self.violation(format!(
                "every app gone, yet workers {:?} were never freed",
                self.sess.workers.keys().collect::<Vec<_>>()
            ));
        }
        self.end_of_op();
    }
}
