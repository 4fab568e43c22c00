//! Running ops: each op becomes inputs to the core, then the per-op checks.

use super::op::Op;
use super::shell::Target;
use super::{MAX_LIVE_SOCKETS, Sim, Stats, Violation};
use sapi_core::{Action, AdminCommand, Input, NsIndex, PeerCred, SocketId, WorkerKey};
use sapi_wire::{AddDelCertKey, AddDelWorker, AppName, Attach, Message, Profile};

impl Sim {
    // Running ops

    /// Runs one op and checks every invariant; `Err` carries what broke.
    pub fn apply(&mut self, op: &Op) -> Result<(), Violation> {
        self.step += 1;
        self.stats.ops += 1;
        self.sends.clear();
        self.send_failed_now = false;
        self.run(op);
        self.end_of_op();
        self.check_op(op);
        if self.step.is_multiple_of(self.full_check_every) {
            self.check();
        } else {
            self.check_counts();
        }
        let what = std::mem::take(&mut self.violations);
        if what.is_empty() {
            let c = self.core.counts();
            self.stats.max_live_apps = self.stats.max_live_apps.max(c.apps);
            self.stats.max_live_sockets = self.stats.max_live_sockets.max(c.sockets);
            Ok(())
        } else {
            Err(Violation {
                step: self.step,
                what: what.join("; "),
            })
        }
    }

    pub(super) fn run(&mut self, op: &Op) {
        if self.run_session(op) {
            return;
        }
        match op {
            Op::Connect { ns, pid } => {
                if self.sockets.len() >= MAX_LIVE_SOCKETS {
                    return;
                }
                let live: Vec<NsIndex> = self.listeners.iter().copied().collect();
                let Some(ns) = ns.resolve(&live, |v| NsIndex(v as u16)) else {
                    return;
                };
                let before = self.sockets.len();
                let actions = self.core.handle(Input::Accept {
                    ns,
                    peer: PeerCred {
                        pid: *pid,
                        uid: 1000,
                        gid: 1000,
                    },
                });
                let accepted = matches!(actions.as_slice(), [Action::Accepted(_)]);
                let refused = matches!(actions.as_slice(), [Action::Refuse]);
                if !(accepted || refused) {
                    self.violation(format!("Accept answered {actions:?}"));
                }
                if accepted && !self.listeners.contains(&ns) {
                    self.violation(format!("accepted on ns {}, which does not listen", ns.0));
                }
                for a in actions {
                    self.perform(a);
                }
                if accepted && self.sockets.len() != before + 1 {
                    self.violation("Accepted did not add a socket");
                }
            }
            Op::Attach {
                sock,
                name,
                options,
            } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                self.set_target(s);
                let msg = Message::Attach(Attach {
                    name: AppName::from_wire(name),
                    options: *options,
                });
                self.request(s, &msg);
            }
            Op::WorkerAdd { sock, app } => {
                let (Some(s), Some(app)) = (self.pick_sock(*sock), self.pick_app(*app)) else {
                    return;
                };
                self.set_target(s);
                self.request(
                    s,
                    &Message::AddDelWorker(AddDelWorker {
                        app_index: app,
                        wrk_index: 0,
                        is_add: true,
                    }),
                );
            }
            Op::WorkerDel { sock, app, wrk } => {
                let (Some(s), Some(app)) = (self.pick_sock(*sock), self.pick_app(*app)) else {
                    return;
                };
                let wrk = self.pick_wrk(app, *wrk).unwrap_or(0);
                self.request(
                    s,
                    &Message::AddDelWorker(AddDelWorker {
                        app_index: app,
                        wrk_index: wrk,
                        is_add: false,
                    }),
                );
            }
            Op::CertKeyAdd {
                sock,
                cert_len,
                certkey_len,
                data,
            } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                self.request(
                    s,
                    &Message::AddDelCertKey(AddDelCertKey {
                        context: 7,
                        index: 0,
                        cert_len: *cert_len,
                        certkey_len: *certkey_len,
                        is_add: true,
                    }),
                );
                if let Some(len) = data {
                    let bytes = vec![b'k'; usize::from(*len)];
                    self.datagram(s, &bytes, false, false);
                }
            }
            Op::CertKeyDel { sock, index } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                if self.profile == Profile::Head {
                    // At the seed the type does not exist: the server ignores it.
                    self.set_target(s);
                }
                self.request(
                    s,
                    &Message::AddDelCertKey(AddDelCertKey {
                        context: 9,
                        index: *index,
                        cert_len: 0,
                        certkey_len: 0,
                        is_add: false,
                    }),
                );
            }
            Op::Raw {
                sock,
                bytes,
                truncated,
                ctrunc,
            } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                self.datagram(s, bytes, *truncated, *ctrunc);
            }
            Op::Close { sock } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                if self.sockets.contains(&s) {
                    self.stats.crashes += 1;
                }
                self.feed(Input::Closed { sock: s });
                if self.sockets.contains(&s) {
                    self.violation(format!("{s} still held after its peer closed"));
                }
            }
            Op::SendFailed { sock } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                self.feed(Input::SendFailed { sock: s });
            }
            Op::Deadline { sock } => {
                let armed: Vec<SocketId> = self.deadlines.iter().copied().collect();
                let Some(s) = sock.resolve(&armed, |v| SocketId {
                    ns: NsIndex((v >> 16) as u16),
                    index: v as u16,
                }) else {
                    return;
                };
                self.deadlines.remove(&s);
                self.feed(Input::DeadlineExpired { sock: s });
            }
            Op::SegmentAdd { app, wrk } => {
                let Some(app) = self.pick_app(*app) else {
                    return;
                };
                let wrk = self.pick_wrk(app, *wrk).unwrap_or(0);
                let key = WorkerKey {
                    app: sapi_core::AppIndex(app),
                    wrk,
                };
                self.segment_add_for = Some(key);
                let r = self.admin(AdminCommand::SegmentAdd { app, wrk });
                self.segment_add_for = None;
                if matches!(r, Some(Ok(_))) {
                    self.stats.segments_added += 1;
                }
            }
            Op::SegmentDel { app, wrk, seg } => {
                let Some(app) = self.pick_app(*app) else {
                    return;
                };
                let wrk = self.pick_wrk(app, *wrk).unwrap_or(0);
                let handle = self.pick_seg(app, wrk, *seg);
                self.admin(AdminCommand::SegmentDel { app, wrk, handle });
            }
            Op::NsAdd { id } => {
                let ns_id = Self::ns_id(*id);
                let r = self.admin(AdminCommand::NsAdd {
                    id: ns_id.clone(),
                    sock_name: Some(format!("abstract:sim-{ns_id}")),
                    secret: None,
                });
                if matches!(r, Some(Ok(_)))
                    && let Some(n) = self
                        .core
                        .snapshot()
                        .namespaces
                        .iter()
                        .find(|n| n.id == ns_id)
                {
                    self.ns_ids.insert(NsIndex(n.index), ns_id);
                }
            }
            Op::NsDel { id } => {
                let ns_id = Self::ns_id(*id);
                let r = self.admin(AdminCommand::NsDel { id: ns_id.clone() });
                if matches!(r, Some(Ok(_))) {
                    self.ns_ids.retain(|_, v| *v != ns_id);
                }
            }
            Op::Show => {
                self.admin(AdminCommand::Show);
            }
            Op::Request { sock, msg } => {
                let Some(s) = self.pick_sock(*sock) else {
                    return;
                };
                if matches!(msg, Message::Attach(_)) {
                    self.set_target(s);
                }
                self.request(s, msg);
            }
            Op::Listen { .. }
            | Op::Unlisten { .. }
            | Op::Dial { .. }
            | Op::Accept { .. }
            | Op::Write { .. }
            | Op::Read { .. }
            | Op::Shut { .. }
            | Op::CrashSession { .. }
            | Op::Detach { .. }
            | Op::Hostile { .. } => {}
            Op::Inject(i) => {
                // Keep at most a few armed so a run never starves every request.
                if self.injections.len() < 4 {
                    self.injections.push(*i);
                }
            }
        }
    }

    /// Per-op expectations: a request on a live socket gets exactly one reply of its type (or,
    /// when the socket awaits cert-key data, the cert-key reply it completes); none on a dead one.
    pub(super) fn check_op(&mut self, op: &Op) {
        let Some(target) = self.target.take() else {
            return;
        };
        if self.send_failed_now {
            return;
        }
        let expect: fn(&Message) -> bool = match op {
            Op::Attach { .. }
            | Op::Request {
                msg: Message::Attach(_),
                ..
            } => |m| matches!(m, Message::AttachReply(_)),
            Op::WorkerAdd { .. } => |m| matches!(m, Message::AddDelWorkerReply(r) if r.is_add),
            Op::CertKeyDel { .. } => |m| matches!(m, Message::AddDelCertKeyReply(_)),
            _ => return,
        };
        let replies: Vec<Message> = self
            .sends
            .iter()
            .filter(|(to, _, _)| *to == target.sock)
            .map(|(_, m, _)| *m)
            .collect();
        let fine = match (target.live, target.certkey_pending, replies.as_slice()) {
            (false, _, []) => true,
            (true, true, [Message::AddDelCertKeyReply(_)]) => true,
            (true, false, [m]) => expect(m),
            _ => false,
        };
        if !fine {
            self.violation(format!(
                "{op:?} on {} (live {}, awaiting cert-key data {}) answered {replies:?}",
                target.sock, target.live, target.certkey_pending
            ));
        }
        match replies.as_slice() {
            [Message::AttachReply(r)] if r.retval == 0 => self.stats.attaches_ok += 1,
            [Message::AddDelWorkerReply(r)] if r.retval == 0 && r.is_add => {
                self.stats.workers_added += 1
            }
            _ => {}
        }
    }

    pub(super) fn set_target(&mut self, sock: SocketId) {
        self.target = Some(Target {
            sock,
            live: self.sockets.contains(&sock),
            certkey_pending: self.deadlines.contains(&sock),
        });
    }

    /// Runs `ops` from a fresh server with every invariant checked after every op, then closes
    /// every socket and checks that nothing is left; the first violation (or panic, which
    /// propagates) stops it.
    pub fn run_ops(profile: Profile, ops: &[Op]) -> Result<Stats, Violation> {
        Self::run_ops_checking(profile, ops, 1)
    }

    /// Like [`Sim::run_ops`], but the full (snapshot) check runs after every `every`-th op and
    /// after the last; the count-based and per-action checks still run after every op. Picks
    /// resolve against the last full check's snapshot.
    pub fn run_ops_checking(
        profile: Profile,
        ops: &[Op],
        every: usize,
    ) -> Result<Stats, Violation> {
        let mut sim = Sim::new(profile);
        sim.full_check_every = every.max(1);
        sim.check();
        if !sim.violations.is_empty() {
            return Err(Violation {
                step: 0,
                what: sim.violations.join("; "),
            });
        }
        for op in ops {
            sim.apply(op)?;
        }
        sim.step += 1;
        sim.tear_down();
        sim.check();
        if !sim.violations.is_empty() {
            return Err(Violation {
                step: sim.step,
                what: format!("at the end: {}", sim.violations.join("; ")),
            });
        }
        Ok(sim.stats)
    }
}
