//! Sockets as the core sees them: accepting, closing, failed sends, and routing each datagram
//! to the request it carries.
//!
//! Must never: let in a peer the access policy refuses, decode more than a request datagram's first
//! `MSG_LEN` bytes, or act on a message an app may not send: it is ignored, and logged within the
//! peer's `WarnBudget`.

use sapi_wire::{
    AppOptionFlags, DecodeError, Direction, MSG_LEN, Message, OptionIndex, Profile, SapiError,
};
use tracing::{debug, info, warn};

use crate::access::PeerCred;
use crate::action::{Action, FdRef};
use crate::config::MAX_SOCKETS_PER_NS;
use crate::fault::InjectedFault;
use crate::ids::{AppIndex, NsIndex, SocketId};
use crate::warn_budget::WarnBudget;

use super::{Server, Socket};

/// A warning about what a peer sent, written within the peer's budget (`warn_budget`): a
/// flood of bad datagrams costs a few dozen lines, not one each.
macro_rules! peer_warn {
    ($server:expr, $sock:expr, $($field:tt)+) => {
        if let Some(suppressed) = $server.peer_warning($sock) {
            warn!(sock = %$sock, suppressed, $($field)+);
        }
    };
}

impl Server {
    pub(super) fn socket_mut(&mut self, sock: SocketId) -> Option<&mut Socket> {
        self.namespaces
            .get_mut(usize::from(sock.ns.0))?
            .as_mut()?
            .sockets
            .get_mut(usize::from(sock.index))?
            .as_mut()
    }

    /// Counts a warning about `sock`'s peer: `Some(left out since the last one)` when it is to
    /// be written.
    fn peer_warning(&mut self, sock: SocketId) -> Option<u64> {
        self.socket_mut(sock)?.warnings.admit()
    }

    pub(super) fn socket(&self, sock: SocketId) -> Option<&Socket> {
        self.namespaces
            .get(usize::from(sock.ns.0))?
            .as_ref()?
            .sockets
            .get(usize::from(sock.index))?
            .as_ref()
    }

    pub(super) fn on_accept(&mut self, ns: NsIndex, peer: PeerCred) {
        if !self.cfg.access.allows(&peer) {
            warn!(
                ns = ns.0,
                pid = peer.pid,
                uid = peer.uid,
                gid = peer.gid,
                "peer not allowed"
            );
            self.out.push(Action::Refuse);
            return;
        }
        let Some(Some(namespace)) = self.namespaces.get_mut(usize::from(ns.0)) else {
            self.out.push(Action::Refuse);
            return;
        };
        let slot = namespace
            .sockets
            .iter()
            .skip(1)
            .position(Option::is_none)
            .map(|i| i + 1);
        let index = match slot {
            Some(i) => i,
            None if namespace.sockets.len() < MAX_SOCKETS_PER_NS => {
                namespace.sockets.push(None);
                namespace.sockets.len() - 1
            }
            None => {
                warn!(ns = ns.0, "no socket index left, refusing connection");
                self.out.push(Action::Refuse);
                return;
            }
        };
        namespace.sockets[index] = Some(Socket {
            warnings: WarnBudget::default(),
            peer,
            ..Socket::default()
        });
        let id = SocketId {
            ns,
            index: index as u16,
        };
        debug!(%id, pid = peer.pid, "accepted");
        self.out.push(Action::Accepted(id));
    }

    /// Forgets a socket and tells the shell to close it. Workers must already be gone.
    pub(super) fn close_socket(&mut self, sock: SocketId) {
        let Some(Some(ns)) = self.namespaces.get_mut(usize::from(sock.ns.0)) else {
            return;
        };
        if let Some(s) = ns
            .sockets
            .get_mut(usize::from(sock.index))
            .and_then(Option::take)
        {
            if s.pending_certkey.is_some() {
                self.out.push(Action::ClearDeadline(sock));
            }
            if s.warnings.suppressed() > 0 {
                warn!(
                    %sock,
                    suppressed = s.warnings.suppressed(),
                    warnings = s.warnings.seen(),
                    "peer gone; the rest of its warnings were left out"
                );
            }
            self.out.push(Action::Close(sock));
        }
    }

    pub(super) fn on_closed(&mut self, sock: SocketId) {
        let Some(s) = self.socket(sock) else { return };
        let workers = s.workers.clone();
        if self.cfg.faults.has(InjectedFault::CrashOnProxyTcpClose)
            && workers.iter().any(|w| self.is_proxy_tcp(w.app))
        {
            self.out.push(Action::Abort(
                "injected crash-on-proxy-tcp-close: the socket of an IS_PROXY + tcp app closed",
            ));
            return;
        }
        if self.cfg.faults.has(InjectedFault::KeepUnattachedSockets) && workers.is_empty() {
            // The fault: the slot stays taken and the fd open, as VPP 26.10 leaves them.
            warn!(%sock, "injected keep-unattached-sockets: keeping a closed socket");
            self.out.push(Action::Abandon(sock));
            return;
        }
        if self.cfg.faults.has(InjectedFault::NoCrashDetach) && !workers.is_empty() {
            // The fault: leave every worker in place, pointing at a dead socket.
            if let Some(s) = self.socket_mut(sock) {
                s.workers.clear();
            }
            self.close_socket(sock);
            return;
        }
        info!(%sock, workers = workers.len(), "socket closed: detaching its workers");
        for w in workers {
            self.delete_worker(w);
        }
        self.close_socket(sock);
    }

    fn is_proxy_tcp(&self, app: AppIndex) -> bool {
        self.apps.get(&app).is_some_and(|a| {
            a.options.flags().contains(AppOptionFlags::IS_PROXY)
                && a.options.get(OptionIndex::ProxyTransport) & 1 != 0
        })
    }

    /// A send that cannot complete means a peer that is gone or does not read: the socket is
    /// treated as closed (crash detach of its workers). When the lost datagram carried a new
    /// segment's fd, HEAD force-detaches the whole app, as VPP does since 2026-04.
    pub(super) fn on_send_failed(&mut self, sock: SocketId) {
        let Some(s) = self.socket(sock) else { return };
        warn!(%sock, segment_fd = s.segment_fd_in_flight, "send failed");
        if self.cfg.profile == Profile::Head && s.segment_fd_in_flight {
            let apps: Vec<AppIndex> = s.workers.iter().map(|w| w.app).collect();
            for app in apps {
                self.delete_app(app);
            }
        }
        self.on_closed(sock);
    }

    pub(super) fn on_datagram(
        &mut self,
        sock: SocketId,
        bytes: &[u8],
        truncated: bool,
        ctrunc: bool,
    ) {
        if self.socket(sock).is_none() {
            return;
        }
        if ctrunc {
            peer_warn!(
                self,
                sock,
                "peer sent ancillary data (fds?); dropped by the kernel"
            );
        }
        let Some(s) = self.socket_mut(sock) else {
            return;
        };
        if let Some(req) = s.pending_certkey.take() {
            self.out.push(Action::ClearDeadline(sock));
            self.finish_certkey_add(sock, req, Some(bytes));
            return;
        }
        let bound = !s.workers.is_empty();
        if bytes.len() < MSG_LEN {
            if bound {
                // VPP treats a short read as a socket error: crash detach.
                warn!(%sock, len = bytes.len(), "short datagram on a bound socket: detaching");
                self.on_closed(sock);
            } else {
                peer_warn!(
                    self,
                    sock,
                    len = bytes.len(),
                    "short datagram on an unbound socket: ignored"
                );
            }
            return;
        }
        if truncated || bytes.len() > MSG_LEN {
            debug!(%sock, "datagram longer than 209 bytes: processing its first 209");
        }
        let request = &bytes[..MSG_LEN];
        match Message::decode(request, self.cfg.profile, Direction::AppToServer) {
            Ok(Message::Attach(a)) => self.on_attach(sock, a),
            Ok(Message::AddDelWorker(w)) => self.on_add_del_worker(sock, w),
            Ok(Message::AddDelCertKey(c)) => self.on_certkey(sock, c),
            Ok(other) => {
                peer_warn!(self, sock, ty = ?other.msg_type(), "unexpected message: ignored")
            }
            Err(e @ DecodeError::Truncated { .. }) => {
                peer_warn!(self, sock, error = %e, "undecodable datagram: ignored")
            }
            Err(e) => peer_warn!(self, sock, error = %e, "ignored"),
        }
    }

    pub(super) fn retval(&self, err: SapiError) -> i32 {
        err.retval(self.cfg.profile)
    }

    pub(super) fn send(&mut self, sock: SocketId, msg: Message, fds: Vec<FdRef>) {
        let carries_segment = matches!(msg, Message::SendFds);
        if let Some(s) = self.socket_mut(sock) {
            s.segment_fd_in_flight = carries_segment;
        }
        self.out.push(Action::Send { sock, msg, fds });
    }
}
