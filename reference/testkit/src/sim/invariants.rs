//! The invariants checked after every op (counts) and every few ops (the full snapshot).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::Sim;
use sapi_core::{NsIndex, SocketId, WorkerKey};

impl Sim {
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
        if c.ct_segments != self.sess.ct_segments.len() {
            self.violation(format!(
                "the core has {} ct segments, the shell holds {}",
                c.ct_segments,
                self.sess.ct_segments.len()
            ));
        }
        let data_fifos = self.sess.fifos.values().filter(|f| !f.is_shadow()).count();
        if data_fifos > 2 * c.pairs {
            self.violation(format!(
                "the shell holds {data_fifos} data fifos for {} pairs",
                c.pairs
            ));
        }
    }
}
