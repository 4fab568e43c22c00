//! The cut-through connect (`docs/sessions.md` §7): matching a CONNECT to a listener, the ct
//! segment and its fifos, ACCEPTED to the listening app, its ACCEPTED_REPLY, C's shadow headers
//! and CONNECTED.

use sapi_wire::ctrl::{
    Accepted, AcceptedReply, AppAddSegment, Connect, Connected, CtrlMessage, Ip46,
    TransportEndpoint,
};
use sapi_wire::{AppOptionFlags, Message, OptionIndex};
use tracing::{debug, info, warn};

use crate::action::{Action, FdRef, SegmentSpec};
use crate::config::MIN_SEGMENT_SIZE;
use crate::fault::InjectedFault;
use crate::ids::{PairId, SegmentId, SessionHandle, WorkerKey, segment_handle};
use crate::input::ResourceError;

use super::super::Server;
use super::{CtKey, CtSegment, ListenKey, Pair, Session, SessionState, Side, post, retval};

/// Smallest fifo VPP hands out (`docs/sessions.md` §7.4).
const MIN_FIFO: u64 = 4096;
/// Headroom a pair needs besides its two fifos (headers, growth), as VPP counts it.
const PAIR_SLACK: u64 = 16 << 10;

impl Server {
    fn connected_error(&mut self, worker: WorkerKey, context: u32, rv: i32) {
        info!(%worker, retval = rv, "connect refused");
        self.out.push(post(
            worker,
            CtrlMessage::Connected(Connected {
                context,
                retval: rv,
                ..Connected::default()
            }),
        ));
    }

    pub(in crate::server) fn on_connect(&mut self, m: Connect) {
        let Some(app) = self.app_of_client(m.client_index) else {
            debug!(
                client = m.client_index,
                "CONNECT from an unknown client: dropped"
            );
            return;
        };
        let Some(client) = self.ready_worker_key(app, m.wrk_index) else {
            debug!(
                app = app.0,
                wrk = m.wrk_index,
                "CONNECT for a missing worker: dropped"
            );
            return;
        };
        let key = ListenKey::new(m.ip, m.is_ip4, m.port, m.proto);
        if key.is_zero() {
            return self.connected_error(client, m.context, retval::INVALID_RMT_IP);
        }
        let Some(listener) = self.match_listener(app, key) else {
            let rv = if key.is_loopback() {
                retval::NOROUTE
            } else {
                retval::SCOPE
            };
            return self.connected_error(client, m.context, rv);
        };
        // Round robin over the listening workers.
        let Some(l) = self.sessions.listener_mut(listener) else {
            return self.connected_error(client, m.context, retval::NOROUTE);
        };
        let n = l.workers.len().max(1);
        let Some(&lw) = l.workers.get(l.next_worker % n) else {
            // A listener keeps at least one worker (`stop_listening` removes it with the last).
            return self.connected_error(client, m.context, retval::NOROUTE);
        };
        l.next_worker = (l.next_worker + 1) % n;
        let server = WorkerKey {
            app: l.app,
            wrk: lw.wrk,
        };
        let (rx_size, tx_size) = self.fifo_sizes(server);
        let thread = self.ct_thread();
        let pair_id = PairId(self.sessions.next_pair);
        self.sessions.next_pair += 1;
        self.sessions.pairs.insert(
            pair_id,
            Pair {
                thread,
                listener,
                listener_worker: lw,
                server,
                client,
                connect_context: m.context,
                rx_size,
                tx_size,
                segment: None,
                fifos: None,
                shadows: None,
                ss: None,
                cs: None,
                closing: Vec::new(),
                client_gone: false,
            },
        );
        info!(%client, %server, %listener, pair = pair_id.0, thread, "cut-through connect");
        let (Some(cg), Some(sg)) = (
            self.sessions.global_index(client),
            self.sessions.global_index(server),
        ) else {
            return self.fail_pair(pair_id, retval::ALLOC);
        };
        let ctx = CtKey {
            listener_segment_manager: lw.segment_manager,
            client_global: cg,
            server_global: sg,
        };
        match self.usable_ct_segment(ctx, u64::from(rx_size) + u64::from(tx_size)) {
            Some(id) => self.place_pair(pair_id, id),
            None => self.create_ct_segment(pair_id, ctx, cg),
        }
    }

    /// §7.1: the exact key, then (only for a loopback address) the family's wildcard address,
    /// then the proxy-style (wildcard, port 0, proto 0) entry. A listener of the connecting app
    /// itself matches too (an app may connect to itself).
    fn match_listener(&self, app: crate::ids::AppIndex, key: ListenKey) -> Option<SessionHandle> {
        let ns = self.apps.get(&app)?.ns;
        if !self
            .apps
            .get(&app)
            .is_some_and(|a| a.options.flags().contains(AppOptionFlags::USE_LOCAL_SCOPE))
        {
            return None;
        }
        let table = self.sessions.tables.get(&ns)?;
        let mut candidates = vec![key];
        if key.is_loopback() {
            candidates.push(key.wildcard());
        }
        candidates.push(ListenKey {
            port: 0,
            proto: 0,
            ..key.wildcard()
        });
        candidates.iter().find_map(|k| table.get(k).copied())
    }

    /// S's fifo sizes: RX/TX_FIFO_SIZE, at least 4 KiB (§7.4).
    fn fifo_sizes(&self, server: WorkerKey) -> (u32, u32) {
        let opt = |i: OptionIndex| {
            self.apps
                .get(&server.app)
                .map_or(0, |a| a.options.get(i))
                .clamp(MIN_FIFO, 1 << 31) as u32
        };
        (opt(OptionIndex::RxFifoSize), opt(OptionIndex::TxFifoSize))
    }

    /// §4.7: thread 0 without workers, else worker threads in turn.
    fn ct_thread(&mut self) -> u8 {
        let w = self.cfg.vpp_workers;
        if w == 0 {
            return 0;
        }
        self.sessions.connects += 1;
        (self.sessions.connects % u64::from(w)) as u8 + 1
    }

    /// A segment of the context that is still open to new pairs and holds fewer pairs than it
    /// has room for.
    fn usable_ct_segment(&self, ctx: CtKey, fifo_bytes: u64) -> Option<SegmentId> {
        let per_pair = fifo_bytes + PAIR_SLACK;
        self.sessions
            .contexts
            .get(&ctx)?
            .iter()
            .copied()
            .find(|id| {
                self.sessions.ct_segments.get(id).is_some_and(|s| {
                    !s.closed_to_new
                        && s.waiting.is_empty()
                        && s.ssvm_size.is_some_and(|size| {
                            u64::from(s.pairs_placed + 1) * per_pair <= size / 2
                        })
                })
            })
    }

    fn create_ct_segment(&mut self, pair_id: PairId, ctx: CtKey, client_global: u32) {
        let Some(pair) = self.sessions.pairs.get(&pair_id) else {
            return;
        };
        let (server, client) = (pair.server, pair.client);
        let fifo_bytes = u64::from(pair.rx_size) + u64::from(pair.tx_size);
        let (segment_size, pct_first_alloc) = self.apps.get(&server.app).map_or((0, 0), |a| {
            (
                a.options.get(OptionIndex::SegmentSize),
                self.pct_first_alloc(a),
            )
        });
        let requested = segment_size
            .max(MIN_SEGMENT_SIZE)
            // Room for the pair's full fifos twice over: growth and recycling need slack.
            .max(4 * (fifo_bytes + PAIR_SLACK))
            .min(crate::config::MAX_SEGMENT_SIZE);
        let index = self.sessions.segment_names;
        self.sessions.segment_names += 1;
        let id = SegmentId(self.next_segment_id);
        self.next_segment_id += 1;
        let handle = segment_handle(ctx.listener_segment_manager, index as u32);
        let client_handle = (u64::from(client_global) << 56) | (handle & ((1 << 56) - 1));
        self.sessions.ct_segments.insert(
            id,
            CtSegment {
                key: ctx,
                handle,
                client_handle,
                server,
                client,
                server_sessions: 0,
                client_sessions: 0,
                pairs_placed: 0,
                closed_to_new: false,
                client_detached: false,
                deleted_early: false,
                ssvm_size: None,
                waiting: vec![pair_id],
            },
        );
        self.sessions.contexts.entry(ctx).or_default().push(id);
        let name = format!("seg-{}-{}-{index}", server.app.0, ctx.server_global);
        self.out.push(Action::CreateSegment(SegmentSpec {
            id,
            name,
            requested_size: requested,
            huge_pages: false,
            pct_first_alloc,
        }));
    }

    /// The shell's answer for a ct segment; `false` if `id` is not one.
    pub(in crate::server) fn on_ct_segment_created(
        &mut self,
        id: SegmentId,
        result: &Result<u64, ResourceError>,
    ) -> bool {
        let Some(seg) = self.sessions.ct_segments.get_mut(&id) else {
            return false;
        };
        let waiting = std::mem::take(&mut seg.waiting);
        match result {
            Ok(size) => {
                seg.ssvm_size = Some(*size);
                let (s, c, h, ch) = (seg.server, seg.client, seg.handle, seg.client_handle);
                let size = u32::try_from(*size).unwrap_or(u32::MAX);
                let name = format!(
                    "seg-{}-{}-{}",
                    s.app.0,
                    seg.key.server_global,
                    (h & 0xffff_ffff)
                );
                // Both apps map it before anything names it: SEND_FDS on each socket, then
                // ADD_SEGMENT in each app mq (§3.6, §7.5 steps 3–4).
                self.announce_segment(s, id, h, size, &name);
                self.announce_segment(c, id, ch, size, &name);
                for p in waiting {
                    self.place_pair(p, id);
                }
            }
            Err(e) => {
                warn!(segment = id.0, error = %e, "ct segment creation failed");
                self.sessions.ct_segments.remove(&id);
                for ids in self.sessions.contexts.values_mut() {
                    ids.retain(|x| *x != id);
                }
                for p in waiting {
                    self.fail_pair(p, retval::ALLOC);
                }
            }
        }
        true
    }

    fn announce_segment(
        &mut self,
        w: WorkerKey,
        id: SegmentId,
        handle: u64,
        size: u32,
        name: &str,
    ) {
        let Some(sock) = self.worker_socket(w) else {
            return;
        };
        // The fault leaves the fd out altogether: sent after the ADD_SEGMENT instead, it would
        // race the app's look at its socket and be caught only sometimes.
        if !self.cfg.faults.has(InjectedFault::NoSendFdsBeforeCtSegment) {
            self.send(sock, Message::SendFds, vec![FdRef::Segment(id)]);
        }
        self.out.push(post(
            w,
            CtrlMessage::AppAddSegment(AppAddSegment {
                client_index: 0,
                context: 0,
                fd_flags: 0x02,
                segment_size: size,
                segment_name: name.as_bytes().to_vec(),
                segment_handle: handle,
            }),
        ));
    }

    pub(in crate::server) fn worker_socket(&self, w: WorkerKey) -> Option<crate::ids::SocketId> {
        self.apps.get(&w.app)?.workers.get(&w.wrk).map(|x| x.socket)
    }

    /// Asks the shell to carve the pair's fifos in segment `id`.
    fn place_pair(&mut self, pair_id: PairId, id: SegmentId) {
        let Some(pair) = self.sessions.pairs.get_mut(&pair_id) else {
            return;
        };
        pair.segment = Some(id);
        let (slice, rx_size, tx_size) = (pair.thread, pair.rx_size, pair.tx_size);
        if let Some(seg) = self.sessions.ct_segments.get_mut(&id) {
            seg.pairs_placed += 1;
            seg.server_sessions += 1;
            seg.client_sessions += 1;
        }
        self.out.push(Action::AllocFifoPair {
            pair: pair_id,
            segment: id,
            slice,
            rx_size,
            tx_size,
        });
    }

    pub(in crate::server) fn on_fifo_pair(
        &mut self,
        pair_id: PairId,
        result: Result<(u64, u64), ResourceError>,
    ) {
        let Some(pair) = self.sessions.pairs.get_mut(&pair_id) else {
            return;
        };
        let (a, b) = match result {
            Ok(x) => x,
            Err(e) => {
                warn!(pair = pair_id.0, error = %e, "fifo allocation failed");
                return self.fail_pair(pair_id, retval::ALLOC);
            }
        };
        pair.fifos = Some((a, b));
        let (thread, server, listener, lw) = (
            pair.thread,
            pair.server,
            pair.listener,
            pair.listener_worker,
        );
        let session = Session {
            pair: pair_id,
            side: Side::Server,
            worker: server,
            app_session_index: 0,
            state: SessionState::Accepting,
        };
        let Some(ss) = self.insert_session(thread, session) else {
            return self.fail_pair(pair_id, retval::ALLOC);
        };
        let Some(pair) = self.sessions.pairs.get_mut(&pair_id) else {
            return;
        };
        pair.ss = Some(ss);
        let segment_handle = pair
            .segment
            .and_then(|id| self.sessions.ct_segments.get(&id))
            .map_or(0, |s| s.handle);
        let key = self.sessions.listener(listener).map(|l| l.key);
        let (port, is_ip4) = key.map_or((0, true), |k| (k.port, k.is_ip4));
        let listener_handle = if self.cfg.faults.has(InjectedFault::WrongListenerHandle) {
            // An off-by-one in the low bits: still a plausible handle, not the one BOUND gave.
            listener.0 ^ 1
        } else {
            listener.0
        };
        let msg = CtrlMessage::Accepted(Accepted {
            // Echoed in ACCEPTED_REPLY, which is ignored unless it matches (§4.5).
            context: server.app.0,
            listener_handle,
            handle: ss.0,
            server_rx_fifo: a,
            server_tx_fifo: b,
            segment_handle,
            vpp_event_queue_address: self.cfg.vpp_mq_offset(usize::from(thread)),
            mq_index: u32::from(thread),
            lcl: TransportEndpoint {
                ip: Ip46::ZERO,
                port,
                is_ip4: false,
                ..TransportEndpoint::default()
            },
            rmt: TransportEndpoint {
                ip: Ip46::ZERO,
                port: 0,
                is_ip4,
                ..TransportEndpoint::default()
            },
            ..Accepted::default()
        });
        info!(%server, %ss, pair = pair_id.0, listener_sm = lw.segment_manager, "accepted sent");
        self.out.push(post(server, msg));
    }

    pub(in crate::server) fn on_accepted_reply(&mut self, thread: u8, m: AcceptedReply) {
        let ss = SessionHandle(m.handle);
        if ss.thread() != u64::from(thread) {
            debug!(%ss, thread, "ACCEPTED_REPLY on another thread's mq: ignored");
            return;
        }
        let Some(s) = self.sessions.session(ss) else {
            return;
        };
        // The context must echo ACCEPTED's: the owning app's index (§4.5).
        if s.side != Side::Server
            || s.state != SessionState::Accepting
            || s.worker.app.0 != m.context
        {
            debug!(%ss, context = m.context, "ACCEPTED_REPLY that does not match: ignored");
            return;
        }
        let pair_id = s.pair;
        if m.retval != 0 {
            info!(%ss, retval = m.retval, "accept rejected");
            // C gets REFUSED; ss goes silently (no DISCONNECTED or CLEANUP to S).
            self.sessions.remove(ss);
            if let Some(p) = self.sessions.pairs.get_mut(&pair_id) {
                p.ss = None;
            }
            return self.fail_pair(pair_id, retval::REFUSED);
        }
        if let Some(s) = self.sessions.session_mut(ss) {
            s.app_session_index = m.app_session_index;
            s.state = SessionState::Ready;
        }
        let Some(pair) = self.sessions.pairs.get(&pair_id) else {
            return;
        };
        if pair.client_gone {
            // C left before S answered: S's new session ends at once (§7.6, last row).
            return self.notify_peer_closed(pair_id, Side::Server, false);
        }
        let client = pair.client;
        let Some(first) = self
            .apps
            .get(&client.app)
            .and_then(|a| a.workers.get(&client.wrk))
            .and_then(|w| w.segments.first())
            .map(|s| s.id)
        else {
            return self.fail_pair(pair_id, retval::ALLOC);
        };
        self.out.push(Action::AllocShadows {
            pair: pair_id,
            segment: first,
        });
    }

    pub(in crate::server) fn on_shadows(
        &mut self,
        pair_id: PairId,
        result: Result<(u64, u64), ResourceError>,
    ) {
        let Some(pair) = self.sessions.pairs.get(&pair_id) else {
            return;
        };
        let client = pair.client;
        let Some((seg_id, seg_handle)) = self
            .apps
            .get(&client.app)
            .and_then(|a| a.workers.get(&client.wrk))
            .and_then(|w| w.segments.first())
            .map(|s| (s.id, s.handle))
        else {
            return self.fail_pair(pair_id, retval::ALLOC);
        };
        let (rx, tx) = match result {
            Ok(x) => x,
            Err(e) => {
                warn!(pair = pair_id.0, error = %e, "shadow allocation failed");
                // S accepted already: its session is closed, C is refused (§7.6).
                return self.fail_accepted_pair(pair_id);
            }
        };
        let session = Session {
            pair: pair_id,
            side: Side::Client,
            worker: client,
            app_session_index: pair.connect_context,
            state: SessionState::Ready,
        };
        let thread = pair.thread;
        let Some(cs) = self.insert_session(thread, session) else {
            return self.fail_accepted_pair(pair_id);
        };
        let Some(pair) = self.sessions.pairs.get_mut(&pair_id) else {
            return;
        };
        pair.shadows = Some((seg_id, rx, tx));
        pair.cs = Some(cs);
        let (a, b) = pair.fifos.unwrap_or_default();
        // C reads B and writes A (§5.10); the fault hands them over the other way round.
        let (ct_rx, ct_tx) = if self.cfg.faults.has(InjectedFault::SwapCtFifos) {
            (a, b)
        } else {
            (b, a)
        };
        let (context, listener, segment) = (pair.connect_context, pair.listener, pair.segment);
        let is_ip4 = self
            .sessions
            .listener(listener)
            .is_none_or(|l| l.key.is_ip4);
        let ct_handle = segment
            .and_then(|id| self.sessions.ct_segments.get(&id))
            .map_or(0, |s| s.client_handle);
        info!(%client, %cs, pair = pair_id.0, "connected");
        self.out.push(post(
            client,
            CtrlMessage::Connected(Connected {
                context,
                retval: 0,
                handle: cs.0,
                server_rx_fifo: rx,
                server_tx_fifo: tx,
                segment_handle: seg_handle,
                ct_rx_fifo: ct_rx,
                ct_tx_fifo: ct_tx,
                ct_segment_handle: ct_handle,
                vpp_event_queue_address: self.cfg.vpp_mq_offset(usize::from(thread)),
                lcl: TransportEndpoint {
                    is_ip4,
                    ..TransportEndpoint::default()
                },
                mq_index: u32::from(thread),
            }),
        ));
    }

    /// A pair that never reached S's app (or that S rejected): C is told `rv`, the fifos and
    /// segment share are given back.
    pub(in crate::server) fn fail_pair(&mut self, pair_id: PairId, rv: i32) {
        let Some(pair) = self.sessions.pairs.remove(&pair_id) else {
            return;
        };
        if let Some(ss) = pair.ss {
            self.sessions.remove(ss);
        }
        // C was answered already (or left): one CONNECTED per CONNECT.
        if !pair.client_gone
            && self
                .ready_worker_key(pair.client.app, pair.client.wrk)
                .is_some()
        {
            self.connected_error(pair.client, pair.connect_context, rv);
        }
        self.release_pair_resources(&pair, true, true);
    }

    /// S accepted but C's side cannot be completed: S's session closes (S is told
    /// DISCONNECTED), C is refused.
    fn fail_accepted_pair(&mut self, pair_id: PairId) {
        let Some(pair) = self.sessions.pairs.get_mut(&pair_id) else {
            return;
        };
        // C has its answer: whatever ends the pair later must not send it another.
        pair.client_gone = true;
        let (client, context, ss) = (pair.client, pair.connect_context, pair.ss);
        self.connected_error(client, context, retval::ALLOC);
        if let Some(ss) = ss {
            self.notify_peer_closed(pair_id, Side::Server, false);
            if let Some(s) = self.sessions.session_mut(ss) {
                s.state = SessionState::TransportClosing;
            }
        }
    }
}
