//! LISTEN and UNLISTEN (`docs/sessions.md` §5.2–§5.5, §6): the namespace's local table.
//!
//! Must never: let an app listen on, or unlisten, another app's listener (ALREADY_LISTENING,
//! OWNER), open a listener other than a local one (an unspecified or loopback address, with
//! `USE_LOCAL_SCOPE`), or close a listener's live pairs when it goes (§9.8).

use sapi_wire::AppOptionFlags;
use sapi_wire::ctrl::{Bound, CtrlMessage, Listen, Unlisten, UnlistenReply};
use tracing::{debug, info};

use crate::ids::{AppIndex, SessionHandle, WorkerKey};

use super::super::Server;
use super::{ListenKey, ListenWorker, Listener, Slot, post, retval};

impl Server {
    /// The app a message's `client_index` names: the app of the worker bound to that socket.
    pub(in crate::server) fn app_of_client(&self, client_index: u32) -> Option<AppIndex> {
        let sock = crate::ids::SocketId {
            ns: crate::ids::NsIndex((client_index >> 16) as u16),
            index: client_index as u16,
        };
        let w = self.socket(sock)?.workers.last()?;
        self.apps.contains_key(&w.app).then_some(w.app)
    }

    /// A ready worker of `app` (its resources exist and its reply went out).
    /// A detaching worker is not ready: nothing more is sent to it (`docs/sessions.md` §9.7).
    pub(in crate::server) fn ready_worker_key(&self, app: AppIndex, wrk: u32) -> Option<WorkerKey> {
        let w = self.apps.get(&app)?.workers.get(&wrk)?;
        let key = WorkerKey { app, wrk };
        (w.pending.is_none() && self.sessions.detaching != Some(key)).then_some(key)
    }

    fn has_local_scope(&self, app: AppIndex) -> bool {
        self.apps
            .get(&app)
            .is_some_and(|a| a.options.flags().contains(AppOptionFlags::USE_LOCAL_SCOPE))
    }

    pub(in crate::server) fn on_listen(&mut self, m: Listen) {
        let Some(app) = self.app_of_client(m.client_index) else {
            debug!(
                client = m.client_index,
                "LISTEN from an unknown client: dropped"
            );
            return;
        };
        let Some(worker) = self.ready_worker_key(app, m.wrk_index) else {
            debug!(
                app = app.0,
                wrk = m.wrk_index,
                "LISTEN for a missing worker: dropped"
            );
            return;
        };
        let key = ListenKey::new(m.ip, m.is_ip4, m.port, m.proto);
        let bound = |retval: i32, handle: u64| {
            CtrlMessage::Bound(Bound {
                context: m.context,
                handle,
                retval,
                lcl_is_ip4: m.is_ip4,
                lcl_ip: m.ip,
                lcl_port: m.port,
                ..Bound::default()
            })
        };
        let refuse = |s: &mut Server, rv: i32| {
            info!(%worker, retval = rv, "listen refused");
            s.out.push(post(worker, bound(rv, 0)));
        };
        if !key.is_zero() && !key.is_loopback() {
            return refuse(self, retval::INVALID_NS);
        }
        if !self.has_local_scope(app) {
            // Only local (cut-through) listeners exist here: a global one would need a transport.
            return refuse(self, retval::ALLOC);
        }
        let Some(ns) = self.apps.get(&app).map(|a| a.ns) else {
            return;
        };
        let existing = self
            .sessions
            .tables
            .get(&ns)
            .and_then(|t| t.get(&key))
            .copied();
        let handle = match existing {
            Some(h) => {
                let listens_already = match self.sessions.listener(h) {
                    Some(l) => l.app != app || l.workers.iter().any(|w| w.wrk == worker.wrk),
                    None => true,
                };
                if listens_already {
                    return refuse(self, retval::ALREADY_LISTENING);
                }
                let segment_manager = self.alloc_segment_manager();
                if let Some(l) = self.sessions.listener_mut(h) {
                    l.workers.push(ListenWorker {
                        wrk: worker.wrk,
                        segment_manager,
                    });
                }
                h
            }
            None => {
                let segment_manager = self.alloc_segment_manager();
                let listener = Listener {
                    app,
                    ns,
                    key,
                    workers: vec![ListenWorker {
                        wrk: worker.wrk,
                        segment_manager,
                    }],
                    next_worker: 0,
                };
                let Some(h) = self.sessions.insert(0, Slot::Listener(listener)) else {
                    return refuse(self, retval::ALLOC);
                };
                self.sessions.tables.entry(ns).or_default().insert(key, h);
                h
            }
        };
        info!(%worker, listener = %handle, port = m.port, proto = m.proto, "listening");
        let mut msg = bound(0, handle.0);
        if let CtrlMessage::Bound(b) = &mut msg {
            b.vpp_evt_q = self.cfg.vpp_mq_offset(0);
        }
        self.out.push(post(worker, msg));
    }

    pub(in crate::server) fn on_unlisten(&mut self, m: Unlisten) {
        let Some(app) = self.app_of_client(m.client_index) else {
            return;
        };
        let Some(worker) = self.ready_worker_key(app, m.wrk_index) else {
            // INVALID_APPWRK, but the reply would go to that very worker: nothing is sent.
            return;
        };
        let h = SessionHandle(m.handle);
        let rv = match self.sessions.listener(h) {
            None => retval::NOLISTEN,
            Some(l) if l.app != app => retval::OWNER,
            Some(_) => {
                self.stop_listening(h, worker.wrk);
                0
            }
        };
        self.out.push(post(
            worker,
            CtrlMessage::UnlistenReply(UnlistenReply {
                context: m.context,
                handle: m.handle,
                retval: rv,
            }),
        ));
    }

    /// Worker `wrk` stops listening on `h`; the listener goes with its last worker. Live pairs
    /// of the listener are not touched (`docs/sessions.md` §9.8).
    pub(in crate::server) fn stop_listening(&mut self, h: SessionHandle, wrk: u32) {
        let Some(l) = self.sessions.listener_mut(h) else {
            return;
        };
        l.workers.retain(|w| w.wrk != wrk);
        if !l.workers.is_empty() {
            return;
        }
        let (ns, key) = (l.ns, l.key);
        self.sessions.remove(h);
        if let Some(t) = self.sessions.tables.get_mut(&ns) {
            t.remove(&key);
        }
        info!(listener = %h, "listener closed");
    }

    /// Every listener worker `worker` listens on, for its detach.
    pub(in crate::server) fn listeners_of(&self, worker: WorkerKey) -> Vec<SessionHandle> {
        let Some(ns) = self.apps.get(&worker.app).map(|a| a.ns) else {
            return Vec::new();
        };
        self.sessions
            .tables
            .get(&ns)
            .into_iter()
            .flat_map(|t| t.values().copied())
            .filter(|h| {
                self.sessions.listener(*h).is_some_and(|l| {
                    l.app == worker.app && l.workers.iter().any(|w| w.wrk == worker.wrk)
                })
            })
            .collect()
    }

    /// Whether the listener segment manager `sm` still belongs to a listening worker.
    pub(in crate::server) fn listener_sm_live(&self, listener: SessionHandle, sm: u32) -> bool {
        self.sessions
            .listener(listener)
            .is_some_and(|l| l.workers.iter().any(|w| w.segment_manager == sm))
    }
}
