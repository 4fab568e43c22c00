//! What apps post into the server mqs (`docs/sessions.md` §3.3): dispatch of control messages by
//! type (only the types an app may send; everything else is ignored, Appendix A), and the io
//! events the server relays between the two apps of a pair (§8.3, §8.5).
//!
//! Must never: act on a type an app may not post, or on a ctrl-mq message (LISTEN, UNLISTEN,
//! CONNECT, APP_DETACH) that came through an mq above the ctrl mq's thread (both are ignored), or
//! name the other app of a pair in a relay before its session is `Ready` (its app knows it).

use sapi_wire::ctrl::{CtrlMessage, IoEvent, IoEventType, TransportAttr, TransportAttrReply};
use tracing::debug;

use crate::action::{Action, IoPeer, Relay};
use crate::ids::SessionHandle;

use super::super::Server;
use super::{SessionState, Side, post, retval};

impl Server {
    /// A control message an app posted into server mq `thread`.
    pub(in crate::server) fn on_app_ctrl(&mut self, thread: u8, msg: CtrlMessage) {
        let ctrl_thread = self.cfg.vpp_ctrl_mq_thread();
        match msg {
            // The ctrl mq's messages (§3.3): VPP runs them from that mq or a lower one.
            CtrlMessage::Listen(m) if thread <= ctrl_thread => self.on_listen(m),
            CtrlMessage::Unlisten(m) if thread <= ctrl_thread => self.on_unlisten(m),
            CtrlMessage::Connect(m) if thread <= ctrl_thread => self.on_connect(m),
            CtrlMessage::AppDetach(m) if thread <= ctrl_thread => {
                self.on_app_detach(m.client_index)
            }
            // The session's mq messages.
            CtrlMessage::AcceptedReply(m) => self.on_accepted_reply(thread, m),
            CtrlMessage::Disconnect(m) => self.on_disconnect(thread, m, false),
            CtrlMessage::Terminate(m) => self.on_disconnect(thread, m, true),
            CtrlMessage::DisconnectedReply(m) | CtrlMessage::ResetReply(m) => {
                self.on_close_reply(thread, m)
            }
            // No half-close on cut-through: nothing happens, nobody is told (§5.15).
            CtrlMessage::Shutdown(_) => {}
            CtrlMessage::TransportAttr(m) => self.on_transport_attr(thread, m),
            other => debug!(
                thread,
                msg = other.event_type().name(),
                "a type an app may not post here: ignored"
            ),
        }
    }

    /// APP_DETACH: the sender's worker goes, as if its socket closed (§5.16, §9.7).
    fn on_app_detach(&mut self, client_index: u32) {
        let sock = crate::ids::SocketId {
            ns: crate::ids::NsIndex((client_index >> 16) as u16),
            index: client_index as u16,
        };
        if self.socket(sock).is_some_and(|s| !s.workers.is_empty()) {
            self.on_closed(sock);
        }
    }

    /// The cut-through transport has no attributes: every request gets UNKNOWN back (§5.18).
    fn on_transport_attr(&mut self, thread: u8, m: TransportAttr) {
        let h = SessionHandle(m.handle);
        let Some(app) = self.app_of_client(m.client_index) else {
            return;
        };
        let Some(s) = self.sessions.session(h) else {
            return;
        };
        if h.thread() != u64::from(thread) || s.worker.app != app {
            return;
        }
        let worker = s.worker;
        self.out.push(post(
            worker,
            CtrlMessage::TransportAttrReply(TransportAttrReply {
                retval: retval::UNKNOWN,
                handle: m.handle,
                attr: m.attr,
                is_get: m.is_get,
            }),
        ));
    }

    /// An io event an app posted into server mq `thread`: `session_index` is the sender's own
    /// session on that thread (§8.2, §8.4).
    pub(in crate::server) fn on_app_io(&mut self, thread: u8, ev: IoEvent) {
        let h = SessionHandle::new(thread, ev.session_index);
        let Some(s) = self.sessions.session(h) else {
            debug!(session = %h, "io event for no session: ignored");
            return;
        };
        let (pair_id, side, me) = (
            s.pair,
            s.side,
            IoPeer {
                worker: s.worker,
                app_session_index: s.app_session_index,
            },
        );
        if s.state == SessionState::Accepting {
            return;
        }
        let Some(pair) = self.sessions.pairs.get(&pair_id) else {
            return;
        };
        let peer_handle = match side {
            Side::Server => pair.cs,
            Side::Client => pair.ss,
        };
        // The peer hears of it only while it is established and its app knows it.
        let peer = peer_handle
            .and_then(|p| self.sessions.session(p))
            .filter(|p| p.state == SessionState::Ready)
            .map(|p| IoPeer {
                worker: p.worker,
                app_session_index: p.app_session_index,
            });
        let (a, b) = (pair.fifo_a(), pair.fifo_b());
        let (shadow_rx, shadow_tx) = (pair.shadow_rx(), pair.shadow_tx());
        // Whose signals: C's live in its shadow headers, S's in the ct fifo headers (§8.1).
        let (Some(a), Some(b), Some(shadow_rx), Some(shadow_tx)) = (a, b, shadow_rx, shadow_tx)
        else {
            return;
        };
        match ev.io_type {
            IoEventType::Tx | IoEventType::TxFlush => {
                let relay = match side {
                    // C wrote A: its signals are the shadow TX; S reads A with A's signals.
                    Side::Client => Relay {
                        writer_signals: shadow_tx,
                        reader_signals: a,
                        data: a,
                        writer: me,
                        reader: peer,
                    },
                    // S wrote B; C reads B with its shadow RX.
                    Side::Server => Relay {
                        writer_signals: b,
                        reader_signals: shadow_rx,
                        data: b,
                        writer: me,
                        reader: peer,
                    },
                };
                self.out.push(Action::RelayTx(relay));
            }
            IoEventType::Rx => {
                let Some(writer) = peer else { return };
                let relay = match side {
                    // S dequeued from A: C, the writer of A, may be waiting for room.
                    Side::Server => Relay {
                        writer_signals: shadow_tx,
                        reader_signals: a,
                        data: a,
                        writer,
                        reader: Some(me),
                    },
                    Side::Client => Relay {
                        writer_signals: b,
                        reader_signals: shadow_rx,
                        data: b,
                        writer,
                        reader: Some(me),
                    },
                };
                self.out.push(Action::RelayRx(relay));
            }
        }
    }
}
