//! What the server shows about itself: the `show` snapshot, counts and lookups for tests.
//!
//! Must never: change the server (everything here takes `&self`, so looking cannot alter what it
//! does next), or show a cert-key pair's bytes: `show` lists only their indices.

use sapi_wire::AppName;

use crate::ids::{AppIndex, NsIndex, SegmentId, SocketId, WorkerKey};
use crate::snapshot::{AppView, NamespaceView, SegmentView, Snapshot, SocketView, WorkerView};

use super::Server;

impl Server {
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
        c.session_slots = self.sessions.pools.iter().map(|p| p.len()).sum();
        c.pairs = self.sessions.pairs.len();
        c.ct_segments = self.sessions.ct_segments.len();
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
    /// Listeners and sessions in the session pools of every thread.
    pub session_slots: usize,
    /// Cut-through pairs (from the connect until both sides are freed).
    pub pairs: usize,
    /// Live ct segments.
    pub ct_segments: usize,
}
