//! Teardown (`docs/sessions.md` §9): DISCONNECT, TERMINATE, the passive side's replies,
//! CLEANUP, the release of fifos and ct segments, and what a detaching worker leaves behind.
//!
//! Must never: act on a DISCONNECT, TERMINATE or close reply from any app but the session's own or
//! through another thread's mq, tell a session twice that its peer closed, or free a pair's fifos
//! or a ct segment while a session of either side can still use them.

use sapi_wire::ctrl::{
    AppDelSegment, Cleanup, CleanupType, CtrlMessage, SessionHandleMsg, SessionHandleReply,
};
use tracing::{debug, info};

use crate::action::Action;
use crate::fault::InjectedFault;
use crate::ids::{PairId, SessionHandle, WorkerKey};

use super::super::Server;
use super::{Pair, PendingClose, Session, SessionState, Side, Slot, post};

impl Server {
    /// The session `h` posted on `thread`'s mq by the app behind `client_index`, if it owns it.
    fn owned_session(&self, thread: u8, h: SessionHandle, client_index: u32) -> Option<Side> {
        if h.thread() != u64::from(thread) {
            debug!(session = %h, thread, "a message about another thread's session: ignored");
            return None;
        }
        let app = self.app_of_client(client_index)?;
        let s = self.sessions.session(h)?;
        if s.worker.app != app {
            debug!(session = %h, app = app.0, "a message about another app's session: ignored");
            return None;
        }
        Some(s.side)
    }

    /// DISCONNECT or TERMINATE by the owner of a session.
    pub(in crate::server) fn on_disconnect(
        &mut self,
        thread: u8,
        m: SessionHandleMsg,
        terminate: bool,
    ) {
        let h = SessionHandle(m.handle);
        if self.owned_session(thread, h, m.client_index).is_none() {
            return;
        }
        self.close_session(h, terminate, true);
    }

    /// DISCONNECTED_REPLY / RESET_REPLY: the passive side closes after being told (§9.4).
    pub(in crate::server) fn on_close_reply(&mut self, thread: u8, m: SessionHandleReply) {
        if m.retval != 0 {
            debug!(
                handle = m.handle,
                retval = m.retval,
                "close reply with an error: ignored"
            );
            return;
        }
        let h = SessionHandle(m.handle);
        if self.owned_session(thread, h, m.context).is_none() {
            return;
        }
        self.close_session(h, false, true);
    }

    /// Closes `h` for its app (§9.2). The peer, if any, is told DISCONNECTED — or RESET when
    /// `terminate`, or when the closer left unread data, which the shell reports back
    /// ([`Server::on_unread`]). `tell_closer`: the closer's app gets CLEANUP 0 and 1 (not when
    /// it is detaching).
    pub(in crate::server) fn close_session(
        &mut self,
        h: SessionHandle,
        terminate: bool,
        tell_closer: bool,
    ) {
        let Some(s) = self.sessions.session(h) else {
            return;
        };
        let (pair_id, side) = (s.pair, s.side);
        let Some(pair) = self.sessions.pairs.get_mut(&pair_id) else {
            return;
        };
        let peer = pair.session(other(side));
        let peer_told = peer
            .and_then(|p| self.sessions.session(p))
            .is_none_or(|p| p.state == SessionState::TransportClosing);
        let Some(pair) = self.sessions.pairs.get_mut(&pair_id) else {
            return;
        };
        if peer_told || terminate {
            self.finish_close(pair_id, h, side, terminate, tell_closer);
            return;
        }
        // RESET or DISCONNECTED depends on what the closer left in its rx fifo.
        let Some(fifo) = pair.rx_fifo(side) else {
            self.finish_close(pair_id, h, side, false, tell_closer);
            return;
        };
        pair.closing.retain(|c| c.closer != h);
        pair.closing.push(PendingClose {
            closer: h,
            terminate: false,
            tell_closer,
        });
        self.out.push(Action::ProbeUnread { session: h, fifo });
    }

    /// Gives `session` a handle on `thread`: the next free one of the thread's pool. A handle
    /// is free only once its session's CLEANUP type 1 went out (`finish_close`), so no worker
    /// ever sees a handle name two of its sessions (§9.5) — unless the
    /// `reuse-handle-before-cleanup` fault is on: then a session of the same worker that was
    /// told its peer closed, and has not replied yet, is dropped without a word and its handle
    /// handed out again, as a server that frees sessions at DISCONNECTED rather than at
    /// CLEANUP would.
    pub(in crate::server) fn insert_session(
        &mut self,
        thread: u8,
        session: Session,
    ) -> Option<SessionHandle> {
        if self.cfg.faults.has(InjectedFault::ReuseHandleBeforeCleanup)
            && let Some(old) = self.closing_session_of(session.worker, thread)
            && let Some(s) = self.sessions.session(old)
        {
            let (pair_id, side) = (s.pair, s.side);
            self.finish_close(pair_id, old, side, false, false);
            if let Some(h) = self.sessions.insert_at(old, Slot::Session(session)) {
                info!(session = %h, "handle reused before its CLEANUP 1 (injected fault)");
                return Some(h);
            }
            return None;
        }
        self.sessions.insert(thread, Slot::Session(session))
    }

    /// A session of `worker` on `thread` that was told its peer closed and has not closed
    /// itself yet (its CLEANUP type 1 is still to come).
    fn closing_session_of(&self, worker: WorkerKey, thread: u8) -> Option<SessionHandle> {
        self.sessions
            .pairs
            .values()
            .filter(|p| p.thread == thread)
            .flat_map(|p| [p.ss, p.cs])
            .flatten()
            .find(|h| {
                self.sessions.session(*h).is_some_and(|s| {
                    s.worker == worker && s.state == SessionState::TransportClosing
                })
            })
    }

    /// The shell's answer to [`Action::ProbeUnread`].
    pub(in crate::server) fn on_unread(&mut self, h: SessionHandle, unread: bool) {
        let Some(s) = self.sessions.session(h) else {
            return;
        };
        let (pair_id, side) = (s.pair, s.side);
        let Some(pending) = self.sessions.pairs.get_mut(&pair_id).and_then(|p| {
            let i = p.closing.iter().position(|c| c.closer == h)?;
            Some(p.closing.remove(i))
        }) else {
            return;
        };
        self.finish_close(
            pair_id,
            h,
            side,
            pending.terminate || unread,
            pending.tell_closer,
        );
    }

    fn finish_close(
        &mut self,
        pair_id: PairId,
        h: SessionHandle,
        side: Side,
        reset: bool,
        tell_closer: bool,
    ) {
        self.notify_peer_closed(pair_id, other(side), reset);
        let Some(super::Slot::Session(s)) = self.sessions.remove(h) else {
            return;
        };
        info!(session = %h, worker = %s.worker, reset, "session closed");
        if tell_closer {
            for cleanup_type in [CleanupType::TRANSPORT, CleanupType::SESSION] {
                self.out.push(post(
                    s.worker,
                    CtrlMessage::Cleanup(Cleanup {
                        handle: h.0,
                        cleanup_type,
                    }),
                ));
            }
        }
        if let Some(pair) = self.sessions.pairs.get_mut(&pair_id) {
            match side {
                Side::Server => pair.ss = None,
                Side::Client => pair.cs = None,
            }
        }
        self.release_side(pair_id, side);
    }

    /// Tells the session on `side` of the pair, if it lives and was not told yet, that its
    /// peer closed (DISCONNECTED) or reset (RESET).
    pub(in crate::server) fn notify_peer_closed(
        &mut self,
        pair_id: PairId,
        side: Side,
        reset: bool,
    ) {
        let Some(p) = self
            .sessions
            .pairs
            .get(&pair_id)
            .and_then(|pair| pair.session(side))
        else {
            return;
        };
        let closing_itself = self
            .sessions
            .pairs
            .get(&pair_id)
            .is_some_and(|pair| pair.closing.iter().any(|c| c.closer == p));
        let Some(s) = self.sessions.session_mut(p) else {
            return;
        };
        // Told already, or closing itself (its own close waits for the shell's probe): a
        // session whose app asked to close is not told its peer closed (§9.2).
        if s.state == SessionState::TransportClosing || closing_itself {
            return;
        }
        let accepting = s.state == SessionState::Accepting;
        s.state = SessionState::TransportClosing;
        let worker = s.worker;
        if self.sessions.detaching == Some(worker) {
            // Its own peer (a pair with itself on both sides) is closing with it: not a word.
            return;
        }
        if accepting {
            // S was never told of this session beyond ACCEPTED: nothing to disconnect yet;
            // its ACCEPTED_REPLY will find it closing.
            return;
        }
        let context = self
            .worker_socket(worker)
            .map_or(0, |s| s.api_client_handle());
        let body = SessionHandleMsg {
            client_index: 0,
            context,
            handle: p.0,
        };
        let msg = if reset {
            CtrlMessage::Reset(body)
        } else {
            CtrlMessage::Disconnected(body)
        };
        self.out.push(post(worker, msg));
    }

    /// One side's session of a pair is gone: its shadows (C), its share of the ct segment, and,
    /// with the last side, the fifos and the pair.
    fn release_side(&mut self, pair_id: PairId, side: Side) {
        let Some(pair) = self.sessions.pairs.get(&pair_id) else {
            return;
        };
        if side == Side::Client
            && let Some((segment, rx, tx)) = pair.shadows
        {
            self.out.push(Action::FreeShadows { segment, rx, tx });
        }
        let both_gone = pair.ss.is_none() && pair.cs.is_none();
        // C never got a session (it left before S accepted, or its shadows could not be
        // carved): with ss gone none can come, and C's share of the segment goes with S's.
        let no_client_session = pair.shadows.is_none();
        let (segment, listener, listener_sm) = (
            pair.segment,
            pair.listener,
            pair.listener_worker.segment_manager,
        );
        let early = self.cfg.faults.has(InjectedFault::EarlyDelSegment);
        let mut delete_early = None;
        if let Some(id) = segment
            && let Some(seg) = self.sessions.ct_segments.get_mut(&id)
        {
            match side {
                Side::Server => {
                    seg.server_sessions = seg.server_sessions.saturating_sub(1);
                    if no_client_session {
                        seg.client_sessions = seg.client_sessions.saturating_sub(1);
                    }
                }
                Side::Client => seg.client_sessions = seg.client_sessions.saturating_sub(1),
            }
            // The fault: the first side to have no session left in the segment has both apps
            // told it is gone, while the other side's sessions still use its fifos (§9.6 wants
            // both counts at 0). No new pair may go into a segment the apps were told is
            // gone, or the fault would change a second thing (ACCEPTED naming a segment S
            // does not have).
            if early
                && !seg.deleted_early
                && (seg.server_sessions == 0) != (seg.client_sessions == 0)
            {
                seg.deleted_early = true;
                seg.closed_to_new = true;
                let client = (!seg.client_detached).then_some(seg.client);
                delete_early = Some((id, client, seg.client_handle, seg.server, seg.handle));
            }
        }
        if let Some((id, client, client_handle, server, handle)) = delete_early {
            info!(
                segment = id.0,
                "ct segment deleted for the apps before both sides were cleaned up (injected fault)"
            );
            self.tell_segment_deleted(client, client_handle, server, handle, listener, listener_sm);
        }
        if both_gone && let Some(pair) = self.sessions.pairs.remove(&pair_id) {
            if let (Some(segment), Some((a, b))) = (pair.segment, pair.fifos) {
                self.out.push(Action::FreeFifoPair { segment, a, b });
            }
            self.maybe_delete_ct_segment(&pair);
        }
    }

    /// Gives back what a pair that never got a client session held.
    pub(in crate::server) fn release_pair_resources(
        &mut self,
        pair: &Pair,
        server: bool,
        client: bool,
    ) {
        let Some(id) = pair.segment else {
            return;
        };
        if let Some(seg) = self.sessions.ct_segments.get_mut(&id) {
            if server {
                seg.server_sessions = seg.server_sessions.saturating_sub(1);
            }
            if client {
                seg.client_sessions = seg.client_sessions.saturating_sub(1);
            }
        }
        if let Some((a, b)) = pair.fifos {
            self.out.push(Action::FreeFifoPair { segment: id, a, b });
        }
        self.maybe_delete_ct_segment(pair);
    }

    /// §9.6: a segment one side of which has no session any more takes no new pair; when
    /// neither side has one, it goes, with DEL_SEGMENT to C (if attached) and to S (if its
    /// listener still listens).
    fn maybe_delete_ct_segment(&mut self, pair: &Pair) {
        let Some(id) = pair.segment else {
            return;
        };
        let Some(seg) = self.sessions.ct_segments.get_mut(&id) else {
            return;
        };
        if seg.server_sessions == 0 || seg.client_sessions == 0 {
            seg.closed_to_new = true;
        }
        if seg.server_sessions > 0 || seg.client_sessions > 0 || !seg.waiting.is_empty() {
            return;
        }
        let Some(seg) = self.sessions.ct_segments.remove(&id) else {
            return;
        };
        for ids in self.sessions.contexts.values_mut() {
            ids.retain(|x| *x != id);
        }
        self.sessions.contexts.retain(|_, v| !v.is_empty());
        // Told already, with the `early-del-segment` fault.
        if !seg.deleted_early {
            self.tell_segment_deleted(
                (!seg.client_detached).then_some(seg.client),
                seg.client_handle,
                seg.server,
                seg.handle,
                pair.listener,
                pair.listener_worker.segment_manager,
            );
        }
        info!(segment = id.0, "ct segment deleted");
        self.out_last.push(Action::FreeSegment(id));
    }

    /// DEL_SEGMENT to C (if attached) and to S (if the segment manager of its listener, the
    /// segment's owner, is still live), each with the handle it knows the segment by.
    /// `client` is `None` once C's worker has detached.
    fn tell_segment_deleted(
        &mut self,
        client: Option<WorkerKey>,
        client_handle: u64,
        server: WorkerKey,
        handle: u64,
        listener: SessionHandle,
        listener_sm: u32,
    ) {
        if let Some(client) = client
            && self.ready_worker_key(client.app, client.wrk).is_some()
        {
            self.out.push(post(client, del_segment(client_handle)));
        }
        if self.ready_worker_key(server.app, server.wrk).is_some()
            && self.listener_sm_live(listener, listener_sm)
        {
            self.out.push(post(server, del_segment(handle)));
        }
    }

    /// A worker is going (APP_DETACH, worker delete, socket close): its listeners stop, its
    /// sessions close without a word to it, their peers are told (§9.7).
    pub(in crate::server) fn detach_sessions(&mut self, worker: WorkerKey) {
        // Most workers never listen or connect: nothing to look through for them.
        if self.sessions.pairs.is_empty()
            && self.sessions.tables.values().all(|t| t.is_empty())
            && self.sessions.global_workers.is_empty()
        {
            return;
        }
        self.sessions.detaching = Some(worker);
        // Its global index (and its key, within its app) may go to a new worker, which must
        // neither be told of nor be given a pair in a segment it never mapped.
        for seg in self.sessions.ct_segments.values_mut() {
            if seg.client == worker {
                seg.client_detached = true;
            }
            if seg.client == worker || seg.server == worker {
                seg.closed_to_new = true;
            }
        }
        for l in self.listeners_of(worker) {
            self.stop_listening(l, worker.wrk);
        }
        let mine: Vec<(PairId, Side, Option<SessionHandle>, bool)> = self
            .sessions
            .pairs
            .iter()
            .flat_map(|(id, p)| {
                // C was sent its CONNECTED (its shadows exist from then on), even if its
                // session has closed since.
                let connected = p.shadows.is_some();
                let mut v = Vec::new();
                if p.server == worker {
                    v.push((*id, Side::Server, p.ss, connected));
                }
                if p.client == worker {
                    v.push((*id, Side::Client, p.cs, connected));
                }
                v
            })
            .collect();
        for (pair_id, side, session, connected) in mine {
            match (side, session) {
                // S is going before C got its CONNECTED — S may even have posted an
                // ACCEPTED_REPLY this server has not read yet: C is refused (§7.6), not left
                // waiting for a CONNECTED that nothing will send.
                (Side::Server, _) if !connected => self.fail_pair(pair_id, super::retval::REFUSED),
                (_, Some(h)) => self.close_session(h, false, false),
                // C is going before S replied: S's session ends when S answers.
                (_, None) => {
                    if let Some(p) = self.sessions.pairs.get_mut(&pair_id) {
                        // No CONNECTED can be delivered any more.
                        p.client_gone = true;
                    }
                }
            }
        }
        self.sessions.forget_worker(worker);
        self.sessions.detaching = None;
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Server => Side::Client,
        Side::Client => Side::Server,
    }
}

fn del_segment(handle: u64) -> CtrlMessage {
    CtrlMessage::AppDelSegment(AppDelSegment {
        client_index: 0,
        context: 0,
        segment_handle: handle,
    })
}
