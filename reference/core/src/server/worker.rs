//! ADD_DEL_WORKER and the teardown of workers and apps (`docs/protocol.md` §3.3, §3.4, §6.2,
//! §8.3–§8.5).
//!
//! Must never: free a worker's segments before its sessions are detached (C's shadow headers live
//! in them), delete a worker still being created, or close a socket another worker still uses
//! (outside the injected `strand-shared-socket-worker` fault).

use sapi_wire::{AddDelWorker, AddDelWorkerReply, Message, Profile, SapiError};
use tracing::{info, warn};

use crate::action::Action;
use crate::fault::InjectedFault;
use crate::ids::{AppIndex, SocketId, WorkerKey};

use super::{PendingReply, Server};

impl Server {
    pub(super) fn on_add_del_worker(&mut self, sock: SocketId, req: AddDelWorker) {
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
    pub(super) fn delete_worker(&mut self, key: WorkerKey) {
        if !self
            .apps
            .get(&key.app)
            .is_some_and(|a| a.workers.contains_key(&key.wrk))
        {
            return;
        }
        // Its sessions first, while its segments (C's shadows) are still there.
        self.detach_sessions(key);
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
        let reuse = self.cfg.faults.has(InjectedFault::ReuseIndices);
        if reuse {
            self.freed_segment_managers.push(worker.segment_manager);
        }
        if let Some(s) = self.socket_mut(worker.socket) {
            s.workers.retain(|w| *w != key);
            if s.workers.is_empty() {
                self.close_socket(worker.socket);
            } else if self.cfg.faults.has(InjectedFault::StrandSharedSocketWorker) {
                // The fault: close the socket anyway; its other workers stay, unreachable.
                warn!(sock = %worker.socket, "injected strand-shared-socket-worker");
                if let Some(s) = self.socket_mut(worker.socket) {
                    s.workers.clear();
                }
                self.close_socket(worker.socket);
            }
        }
        if app_empty {
            info!(app = key.app.0, "app freed with its last worker");
            self.apps.remove(&key.app);
            if reuse {
                self.freed_apps.push(key.app.0);
            }
        }
    }

    pub(super) fn delete_app(&mut self, app: AppIndex) {
        let workers: Vec<u32> = self
            .apps
            .get(&app)
            .map(|a| a.workers.keys().copied().collect())
            .unwrap_or_default();
        for wrk in workers {
            self.delete_worker(WorkerKey { app, wrk });
        }
    }
}
