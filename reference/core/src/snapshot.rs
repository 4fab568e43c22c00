//! A read-only dump of the server's state for `sapi-reference show` (VPP's
//! `show app ns id <id> api-clients`, `show app`, `show app mq`).
//!
//! Owns the shape of that dump. The core fills what it knows; the shell adds what only it knows
//! (fd numbers, mq occupancy read from shared memory). It must never be used to drive decisions.

use serde::Serialize;

use crate::access::PeerCred;

/// The whole server.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// The protocol profile served.
    pub profile: String,
    /// Namespaces by index.
    pub namespaces: Vec<NamespaceView>,
    /// Live apps by index.
    pub apps: Vec<AppView>,
    /// Live cert-key pairs (index 0 is preallocated).
    pub certkeys: Vec<u32>,
}

/// One namespace and its sockets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NamespaceView {
    /// Index (0 = default).
    pub index: u16,
    /// Id.
    pub id: String,
    /// Socket name (a path or `abstract:NAME`).
    pub socket: String,
    /// The listener (index 0) and every accepted socket.
    pub sockets: Vec<SocketView>,
}

/// One socket of a namespace, as in VPP's `api-clients` table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SocketView {
    /// Pool index (0 = listener).
    pub index: u16,
    /// `api_client_handle`.
    pub handle: u32,
    /// The app bound to it, −1 if none.
    pub app_index: i64,
    /// The worker bound to it, −1 if none.
    pub wrk_index: i64,
    /// Every worker created on this socket (normally at most one).
    pub workers: Vec<u32>,
    /// Server-side fd (filled by the shell).
    pub fd: Option<i32>,
    /// Peer credentials (none for the listener).
    pub peer: Option<PeerCred>,
}

/// One app.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AppView {
    /// Index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Namespace index.
    pub ns_index: u16,
    /// Option flags it attached with.
    pub flags: u64,
    /// Workers.
    pub workers: Vec<WorkerView>,
}

/// One worker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerView {
    /// Map index.
    pub index: u32,
    /// `api_client_handle` of the socket it was created on.
    pub socket_handle: u32,
    /// Offset of its event mq in its first segment.
    pub mq_offset: u64,
    /// Whether its mq is signalled by an eventfd.
    pub eventfd: bool,
    /// Messages queued in its mq (filled by the shell).
    pub mq_occupancy: Option<u32>,
    /// Its segments, the first one holding the mq.
    pub segments: Vec<SegmentView>,
}

/// One segment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentView {
    /// Wire handle.
    pub handle: u64,
    /// memfd name.
    pub name: String,
    /// `ssvm_size`.
    pub size: u64,
}

impl Snapshot {
    /// The human rendering: one block per namespace in the shape of VPP's
    /// `show app ns id <id> api-clients`, then apps with workers and segments.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "profile: {}", self.profile);
        for ns in &self.namespaces {
            let _ = writeln!(out, "namespace [{}] {}", ns.index, ns.id);
            let _ = writeln!(out, "socket: {}\n", ns.socket);
            let _ = writeln!(
                out,
                "{:>12}{:>12}{:>5}  peer",
                "app index", "wrk index", "fd"
            );
            for s in &ns.sockets {
                let fd = s.fd.map_or_else(|| "-".to_owned(), |fd| fd.to_string());
                let peer = s.peer.map_or_else(String::new, |p| {
                    format!("pid={} uid={} gid={}", p.pid, p.uid, p.gid)
                });
                let _ = writeln!(
                    out,
                    "{:>12}{:>12}{:>5}  {peer}",
                    s.app_index, s.wrk_index, fd
                );
            }
            let _ = writeln!(out);
        }
        for app in &self.apps {
            let _ = writeln!(
                out,
                "app {} {:?} ns {} flags {:#x}",
                app.index, app.name, app.ns_index, app.flags
            );
            for w in &app.workers {
                let occ = w
                    .mq_occupancy
                    .map_or_else(|| "?".to_owned(), |n| n.to_string());
                let _ = writeln!(
                    out,
                    "  worker {} socket {:#x} mq @{:#x} ({} queued{})",
                    w.index,
                    w.socket_handle,
                    w.mq_offset,
                    occ,
                    if w.eventfd { ", eventfd" } else { "" }
                );
                for seg in &w.segments {
                    let _ = writeln!(
                        out,
                        "    segment {:#x} {} {} bytes",
                        seg.handle, seg.name, seg.size
                    );
                }
            }
        }
        if !self.certkeys.is_empty() {
            let _ = writeln!(out, "cert-key pairs: {:?}", self.certkeys);
        }
        out
    }
}
