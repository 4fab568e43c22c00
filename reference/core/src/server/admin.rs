//! The admin commands: namespaces (and their listeners), segment add and delete.
//!
//! Must never: delete namespace 0 (`default`) or a worker's first segment (it holds the event
//! queue), act on a worker still being created, or post APP_ADD_SEGMENT before the SEND_FDS that
//! carries the segment's fd.

use sapi_wire::{Message, OptionIndex};
use tracing::info;

use crate::action::{Action, FdRef};
use crate::admin::{AdminCommand, AdminError, AdminOk};
use crate::ids::{AppIndex, NsIndex, SegmentId, SocketId, WorkerKey, segment_handle};
use crate::input::ResourceError;
use crate::socket_name::{SocketName, parse_socket_name};
use sapi_wire::ctrl::{AppAddSegment, AppDelSegment, CtrlMessage};

use super::{Namespace, PendingAdmin, Server, Worker, WorkerSegment};

impl Server {
    pub(super) fn admin_reply(&mut self, r: Result<AdminOk, AdminError>) {
        self.out.push(Action::AdminReply(r));
    }

    pub(super) fn on_admin(&mut self, cmd: AdminCommand) {
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

    pub(super) fn ns_index(&self, id: &str) -> Option<NsIndex> {
        self.namespaces
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.id == id))
            .map(|i| NsIndex(i as u16))
    }

    pub(super) fn ns_add(&mut self, id: String, sock_name: Option<String>, secret: u64) {
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

    pub(super) fn on_listened(&mut self, ns: NsIndex, result: Result<(), String>) {
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

    pub(super) fn ns_del(&mut self, id: &str) {
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

    pub(super) fn ready_worker(&self, app: u32, wrk: u32) -> Option<&Worker> {
        self.apps
            .get(&AppIndex(app))?
            .workers
            .get(&wrk)
            .filter(|w| w.pending.is_none())
    }

    pub(super) fn segment_add(&mut self, app: u32, wrk: u32) {
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

    pub(super) fn on_segment_created(&mut self, id: SegmentId, result: Result<u64, ResourceError>) {
        if self.on_ct_segment_created(id, &result) {
            return;
        }
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
        self.out.push(Action::PostCtrl {
            worker: key,
            msg: CtrlMessage::AppAddSegment(AppAddSegment {
                client_index: 0,
                context: 0,
                fd_flags: 0x02,
                segment_size: u32::try_from(ssvm_size).unwrap_or(u32::MAX),
                segment_name: name.as_bytes().to_vec(),
                segment_handle: handle,
            }),
        });
        self.admin_reply(Ok(AdminOk::Done(format!(
            "segment {name} handle {handle:#x} ({ssvm_size} bytes) sent to {key}"
        ))));
    }

    pub(super) fn segment_del(&mut self, app: u32, wrk: u32, handle: u64) {
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
        self.out.push(Action::PostCtrl {
            worker: key,
            msg: CtrlMessage::AppDelSegment(AppDelSegment {
                client_index: 0,
                context: 0,
                segment_handle: handle,
            }),
        });
        self.out.push(Action::FreeSegment(seg.id));
        self.admin_reply(Ok(AdminOk::Done(format!(
            "segment {handle:#x} deleted from {key}"
        ))));
    }
}
