//! The session layer of the sans-IO core (`docs/sessions.md`), driven by a stand-in shell that
//! answers every resource request at once and records what each worker would read in its app
//! mq: listening, the cut-through connect, accept and reject, the relay of io events, close,
//! reset, the passive side, detach, and what a hostile app cannot do to another's sessions.

use std::collections::BTreeMap;

use rstest::rstest;
use sapi_core::{
    Action, AdminCommand, Config, FifoRef, InjectedFault, InjectedFaults, Input, NsIndex, PeerCred,
    Relay, SegmentId, Server, SessionHandle, SocketId, WorkerKey, WorkerResourcesReady,
};
use sapi_wire::ctrl::{
    Accepted, AcceptedReply, AppDetach, Bound, Cleanup, CleanupType, Connect, Connected,
    CtrlMessage, IoEvent, Ip46, Listen, SessionHandleMsg, SessionHandleReply, Unlisten,
};
use sapi_wire::{AppName, AppOptionFlags, Attach, AttachOptions, Message, OptionIndex, Profile};

const MQ0: u64 = 0x140;

/// What the stand-in shell saw.
#[derive(Default)]
struct Shell {
    /// Control messages per worker, in app-mq order.
    ctrl: BTreeMap<WorkerKey, Vec<CtrlMessage>>,
    sends: Vec<(SocketId, Message, Vec<sapi_core::FdRef>)>,
    relays_tx: Vec<Relay>,
    relays_rx: Vec<Relay>,
    freed_segments: Vec<SegmentId>,
    freed_fifos: Vec<(SegmentId, u64)>,
    /// Answer ProbeUnread with this.
    unread: bool,
    /// Answer AllocShadows with NoRoom.
    no_room_for_shadows: bool,
    /// Every segment the core asked for (first segments and the rest), in order.
    segment_specs: Vec<sapi_core::SegmentSpec>,
    next_offset: u64,
}

struct World {
    core: Server,
    shell: Shell,
}

impl World {
    fn new(workers: u8) -> World {
        World::with_fault(workers, None)
    }

    /// A server with `fault` injected (none: the faithful server).
    fn with_fault(workers: u8, fault: Option<InjectedFault>) -> World {
        let mut faults = InjectedFaults::default();
        if let Some(f) = fault {
            faults.insert(f);
        }
        let mut core = Server::new(Config {
            profile: Profile::Head,
            vpp_workers: workers,
            vpp_mq_offsets: (0..=u64::from(workers)).map(|t| MQ0 + t * 0x1000).collect(),
            runtime_dir: "/run/test".into(),
            faults,
            access: Default::default(),
            enforce_ns_secret: false,
        });
        core.input(Input::Admin(AdminCommand::NsAdd {
            id: "default".into(),
            sock_name: None,
            secret: None,
        }));
        let mut w = World {
            core,
            shell: Shell {
                next_offset: 0x1000,
                ..Shell::default()
            },
        };
        w.drain();
        w
    }

    fn feed(&mut self, input: Input<'_>) {
        self.core.input(input);
        self.drain();
    }

    /// The shell's loop with every resource granted.
    fn drain(&mut self) {
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Listen { ns, .. } => {
                    self.core.input(Input::Listened { ns, result: Ok(()) })
                }
                Action::CreateWorkerResources { worker, spec } => {
                    self.shell.segment_specs.push(spec.segment.clone());
                    self.core.input(Input::WorkerResources {
                        worker,
                        result: Ok(WorkerResourcesReady {
                            mq_offset: 0x140,
                            ssvm_size: spec.segment.requested_size + 12 * 1024,
                        }),
                    })
                }
                Action::CreateSegment(spec) => {
                    self.shell.segment_specs.push(spec.clone());
                    self.core.input(Input::SegmentCreated {
                        id: spec.id,
                        result: Ok(spec.requested_size + 12 * 1024),
                    })
                }
                Action::AllocFifoPair { pair, .. } => {
                    let a = self.offset();
                    let b = self.offset();
                    self.core.input(Input::FifoPairAllocated {
                        pair,
                        result: Ok((a, b)),
                    })
                }
                Action::AllocShadows { pair, .. } => {
                    let rx = self.offset();
                    let tx = self.offset();
                    let result = if self.shell.no_room_for_shadows {
                        Err(sapi_core::ResourceError::NoRoom)
                    } else {
                        Ok((rx, tx))
                    };
                    self.core.input(Input::ShadowsAllocated { pair, result })
                }
                Action::ProbeUnread { session, .. } => self.core.input(Input::Unread {
                    session,
                    unread: self.shell.unread,
                }),
                Action::PostCtrl { worker, msg } => {
                    self.shell.ctrl.entry(worker).or_default().push(msg)
                }
                Action::Send { sock, msg, fds } => self.shell.sends.push((sock, msg, fds)),
                Action::RelayTx(r) => self.shell.relays_tx.push(r),
                Action::RelayRx(r) => self.shell.relays_rx.push(r),
                Action::FreeSegment(id) => self.shell.freed_segments.push(id),
                Action::FreeFifoPair { segment, a, b } => {
                    self.shell.freed_fifos.push((segment, a));
                    self.shell.freed_fifos.push((segment, b));
                }
                _ => {}
            }
        }
    }

    fn offset(&mut self) -> u64 {
        self.shell.next_offset += 0xc0;
        self.shell.next_offset
    }

    /// An attached app with local scope: its worker 0 and its socket.
    fn app(&mut self, flags: AppOptionFlags) -> (WorkerKey, SocketId) {
        self.app_with(flags, 0)
    }

    /// [`World::app`], sending PCT_FIRST_ALLOC `pct_first_alloc` (0: not sent).
    fn app_with(&mut self, flags: AppOptionFlags, pct_first_alloc: u64) -> (WorkerKey, SocketId) {
        self.core.input(Input::Accept {
            ns: NsIndex(0),
            peer: PeerCred::default(),
        });
        let mut sock = None;
        while let Some(a) = self.core.poll_action() {
            if let Action::Accepted(id) = a {
                sock = Some(id);
            }
        }
        let sock = sock.expect("accepted");
        let bytes = Message::Attach(Attach {
            name: AppName::new(b"app").expect("name"),
            options: AttachOptions::default()
                .with_flags(flags)
                .with(OptionIndex::SegmentSize, 16 << 20)
                .with(OptionIndex::RxFifoSize, 1 << 16)
                .with(OptionIndex::TxFifoSize, 1 << 16)
                .with(OptionIndex::PctFirstAlloc, pct_first_alloc),
        })
        .encode(Profile::Head)
        .expect("encode");
        self.feed(Input::Datagram {
            sock,
            bytes: &bytes,
            truncated: false,
            ctrunc: false,
        });
        let app = self
            .shell
            .sends
            .iter()
            .rev()
            .find_map(|(s, m, _)| match m {
                Message::AttachReply(r) if *s == sock && r.retval == 0 => Some(r.app_index),
                _ => None,
            })
            .expect("attached");
        (
            WorkerKey {
                app: sapi_core::AppIndex(app),
                wrk: 0,
            },
            sock,
        )
    }

    fn local_app(&mut self) -> (WorkerKey, SocketId) {
        self.app(LOCAL_APP)
    }

    fn post(&mut self, thread: u8, msg: CtrlMessage) {
        self.feed(Input::AppCtrl { thread, msg });
    }

    fn take(&mut self, w: WorkerKey) -> Vec<CtrlMessage> {
        self.shell.ctrl.remove(&w).unwrap_or_default()
    }

    fn listen(&mut self, w: WorkerKey, sock: SocketId, ip: [u8; 4], port: u16) -> CtrlMessage {
        self.post(
            0,
            CtrlMessage::Listen(Listen {
                client_index: sock.api_client_handle(),
                context: 7,
                wrk_index: w.wrk,
                port,
                proto: 0,
                is_ip4: true,
                ip: Ip46::from_ipv4(ip.into()),
                ..Listen::default()
            }),
        );
        let mut m = self.take(w);
        assert_eq!(m.len(), 1, "one BOUND: {m:?}");
        m.remove(0)
    }

    fn connect(&mut self, c: (WorkerKey, SocketId), ip: [u8; 4], port: u16, context: u32) {
        self.post(
            0,
            CtrlMessage::Connect(Connect {
                client_index: c.1.api_client_handle(),
                context,
                wrk_index: c.0.wrk,
                port,
                proto: 0,
                is_ip4: true,
                ip: Ip46::from_ipv4(ip.into()),
                parent_handle: u64::MAX,
                flags: 1,
                ..Connect::default()
            }),
        );
    }

    /// A listening S, a connected C, the pair established; returns (S, C, ss, cs).
    fn established(&mut self) -> Pair {
        self.set_up().pair
    }

    /// [`World::established`], with what S and C were told on the way.
    fn set_up(&mut self) -> SetUp {
        let s = self.local_app();
        let c = self.local_app();
        let CtrlMessage::Bound(bound) = self.listen(s.0, s.1, [127, 0, 0, 1], 1234) else {
            panic!("not BOUND")
        };
        self.connect(c, [127, 0, 0, 1], 1234, 42);
        let to_s = self.take(s.0);
        let Some(CtrlMessage::Accepted(accepted)) = to_s.last().cloned() else {
            panic!("no ACCEPTED: {to_s:?}")
        };
        self.post(
            accepted.mq_index as u8,
            CtrlMessage::AcceptedReply(AcceptedReply {
                context: accepted.context,
                retval: 0,
                handle: accepted.handle,
                app_session_index: 9,
            }),
        );
        let to_c = self.take(c.0);
        let Some(CtrlMessage::Connected(connected)) = to_c.last().cloned() else {
            panic!("no CONNECTED: {to_c:?}")
        };
        assert_eq!(connected.retval, 0);
        SetUp {
            pair: Pair {
                s,
                c,
                listener: bound.handle,
                ss: SessionHandle(accepted.handle),
                cs: SessionHandle(connected.handle),
            },
            bound,
            accepted,
            connected,
            to_s,
            to_c,
        }
    }
}

/// The flags VCL attaches with.
const LOCAL_APP: AppOptionFlags = AppOptionFlags::ACCEPT_REDIRECT
    .union(AppOptionFlags::ADD_SEGMENT)
    .union(AppOptionFlags::USE_LOCAL_SCOPE)
    .union(AppOptionFlags::EVT_MQ_USE_EVENTFD);

/// An established pair and what its apps were told while it was set up.
struct SetUp {
    pair: Pair,
    bound: Bound,
    accepted: Accepted,
    connected: Connected,
    /// S's messages up to its ACCEPTED, and C's up to its CONNECTED.
    to_s: Vec<CtrlMessage>,
    to_c: Vec<CtrlMessage>,
}

struct Pair {
    s: (WorkerKey, SocketId),
    c: (WorkerKey, SocketId),
    listener: u64,
    ss: SessionHandle,
    cs: SessionHandle,
}

fn disconnect(sock: SocketId, h: SessionHandle) -> CtrlMessage {
    CtrlMessage::Disconnect(SessionHandleMsg {
        client_index: sock.api_client_handle(),
        context: 0,
        handle: h.0,
    })
}

#[test]
fn listen_answers_bound_with_the_request_echoed_and_mq_zero() {
    let mut w = World::new(0);
    let s = w.local_app();
    let CtrlMessage::Bound(b) = w.listen(s.0, s.1, [127, 0, 0, 1], 1234) else {
        panic!("not BOUND")
    };
    assert_eq!(
        (b.context, b.retval, b.lcl_port, b.lcl_is_ip4),
        (7, 0, 1234, true)
    );
    assert_eq!(b.lcl_ip, Ip46::from_ipv4([127, 0, 0, 1].into()));
    assert_eq!(
        (b.vpp_evt_q, b.mq_index, b.rx_fifo, b.segment_handle),
        (MQ0, 0, 0, 0)
    );
}

#[rstest]
#[case::same_key_other_app([127, 0, 0, 1], -17)]
#[case::not_local([10, 0, 0, 1], -22)]
fn listen_refusals(#[case] ip: [u8; 4], #[case] retval: i32) {
    let mut w = World::new(0);
    let s = w.local_app();
    let t = w.local_app();
    w.listen(s.0, s.1, [127, 0, 0, 1], 1234);
    let CtrlMessage::Bound(b) = w.listen(t.0, t.1, ip, 1234) else {
        panic!("not BOUND")
    };
    assert_eq!((b.retval, b.handle), (retval, 0));
}

#[rstest]
#[case::exact([127, 0, 0, 1], [127, 0, 0, 1], 0)]
#[case::loopback_falls_back_to_the_wildcard([0, 0, 0, 0], [127, 0, 0, 9], 0)]
#[case::other_loopback_address([127, 0, 0, 1], [127, 0, 0, 2], -6)]
#[case::no_listener_on_loopback([127, 0, 0, 1], [127, 0, 0, 1], -6)]
#[case::zero_address([127, 0, 0, 1], [0, 0, 0, 0], -20)]
#[case::not_loopback_without_global_scope([0, 0, 0, 0], [10, 1, 2, 3], -27)]
fn connect_matching(#[case] listen_ip: [u8; 4], #[case] connect_ip: [u8; 4], #[case] rv: i32) {
    let mut w = World::new(0);
    let s = w.local_app();
    let c = w.local_app();
    let port = if rv == -6 && listen_ip == connect_ip {
        99
    } else {
        1234
    };
    w.listen(s.0, s.1, listen_ip, port);
    w.connect(c, connect_ip, 1234, 5);
    let to_s = w.take(s.0);
    let to_c = w.take(c.0);
    if rv == 0 {
        // S: ADD_SEGMENT then ACCEPTED; C: ADD_SEGMENT; SEND_FDS on both sockets first.
        assert!(
            matches!(
                to_s.as_slice(),
                [CtrlMessage::AppAddSegment(_), CtrlMessage::Accepted(_)]
            ),
            "{to_s:?}"
        );
        assert!(
            matches!(to_c.as_slice(), [CtrlMessage::AppAddSegment(_)]),
            "{to_c:?}"
        );
        let fds: Vec<SocketId> = w
            .shell
            .sends
            .iter()
            .filter(|(_, m, _)| matches!(m, Message::SendFds))
            .map(|(s, _, _)| *s)
            .collect();
        assert_eq!(fds, vec![s.1, c.1]);
    } else {
        assert!(to_s.is_empty(), "nothing to S: {to_s:?}");
        let [CtrlMessage::Connected(m)] = to_c.as_slice() else {
            panic!("{to_c:?}")
        };
        assert_eq!((m.context, m.retval, m.handle), (5, rv, 0));
    }
}

#[test]
fn accept_gives_c_connected_with_the_fifos_crossed_and_the_client_form_handle() {
    let mut w = World::new(0);
    let s = w.local_app();
    let c = w.local_app();
    let CtrlMessage::Bound(bound) = w.listen(s.0, s.1, [127, 0, 0, 1], 1234) else {
        panic!()
    };
    w.connect(c, [127, 0, 0, 1], 1234, 42);
    let to_s = w.take(s.0);
    let to_c = w.take(c.0);
    let (CtrlMessage::AppAddSegment(seg_s), CtrlMessage::Accepted(acc)) = (&to_s[0], &to_s[1])
    else {
        panic!("{to_s:?}")
    };
    let CtrlMessage::AppAddSegment(seg_c) = &to_c[0] else {
        panic!()
    };
    assert_eq!(acc.listener_handle, bound.handle);
    assert_eq!(acc.segment_handle, seg_s.segment_handle);
    assert_eq!(seg_c.segment_handle & ((1 << 56) - 1), seg_s.segment_handle);
    assert_ne!(seg_c.segment_handle >> 56, 0xff);
    assert_eq!(u64::from(acc.mq_index), acc.handle >> 32);
    assert_eq!(acc.vpp_event_queue_address, MQ0);
    // No CONNECTED before S answers.
    assert!(w.take(c.0).is_empty());
    w.post(
        0,
        CtrlMessage::AcceptedReply(AcceptedReply {
            context: acc.context,
            retval: 0,
            handle: acc.handle,
            app_session_index: 9,
        }),
    );
    let to_c = w.take(c.0);
    let [CtrlMessage::Connected(conn)] = to_c.as_slice() else {
        panic!("{to_c:?}")
    };
    assert_eq!((conn.context, conn.retval), (42, 0));
    assert_eq!(conn.ct_rx_fifo, acc.server_tx_fifo);
    assert_eq!(conn.ct_tx_fifo, acc.server_rx_fifo);
    assert_eq!(conn.ct_segment_handle, seg_c.segment_handle);
    assert_eq!(conn.mq_index, acc.mq_index);
    assert_ne!(conn.server_rx_fifo, 0);
    assert_ne!(conn.server_tx_fifo, 0);
}

#[test]
fn rejected_accept_refuses_c_silently_for_s_and_frees_the_segment() {
    let mut w = World::new(0);
    let s = w.local_app();
    let c = w.local_app();
    w.listen(s.0, s.1, [127, 0, 0, 1], 1234);
    w.connect(c, [127, 0, 0, 1], 1234, 42);
    let CtrlMessage::Accepted(acc) = w.take(s.0).pop().expect("accepted") else {
        panic!()
    };
    w.take(c.0);
    w.post(
        0,
        CtrlMessage::AcceptedReply(AcceptedReply {
            context: acc.context,
            retval: -19,
            handle: acc.handle,
            app_session_index: 9,
        }),
    );
    let to_c = w.take(c.0);
    assert!(
        matches!(to_c.first(), Some(CtrlMessage::Connected(m)) if m.retval == -2),
        "{to_c:?}"
    );
    let to_s = w.take(s.0);
    assert!(
        to_s.iter()
            .all(|m| matches!(m, CtrlMessage::AppDelSegment(_))),
        "no DISCONNECTED or CLEANUP to S: {to_s:?}"
    );
    assert_eq!(w.shell.freed_segments.len(), 1);
    assert_eq!(w.core.counts().pairs, 0);
}

#[test]
fn s_going_before_its_accepted_reply_is_read_refuses_c() {
    // S posts ACCEPTED_REPLY and closes its socket at once; the server sees the close first.
    let mut w = World::new(0);
    let s = w.local_app();
    let c = w.local_app();
    w.listen(s.0, s.1, [127, 0, 0, 1], 1234);
    w.connect(c, [127, 0, 0, 1], 1234, 42);
    let CtrlMessage::Accepted(acc) = w.take(s.0).pop().expect("accepted") else {
        panic!()
    };
    w.take(c.0);
    w.post(
        0,
        CtrlMessage::AppDetach(AppDetach {
            client_index: s.1.api_client_handle(),
            context: 0,
        }),
    );
    w.post(
        0,
        CtrlMessage::AcceptedReply(AcceptedReply {
            context: acc.context,
            retval: 0,
            handle: acc.handle,
            app_session_index: 9,
        }),
    );
    let to_c = w.take(c.0);
    assert!(
        matches!(to_c.first(), Some(CtrlMessage::Connected(m)) if m.retval == -2 && m.context == 42),
        "C is refused, not left waiting: {to_c:?}"
    );
    assert!(
        to_c[1..]
            .iter()
            .all(|m| matches!(m, CtrlMessage::AppDelSegment(_))),
        "{to_c:?}"
    );
    assert!(w.take(s.0).is_empty(), "nothing to the detached S");
    assert_eq!(w.core.counts().pairs, 0);
    assert_eq!(w.core.counts().ct_segments, 0, "the ct segment went");
}

#[rstest]
#[case::wrong_context(1, 0)]
#[case::another_thread(0, 1)]
fn accepted_reply_that_does_not_match_changes_nothing(#[case] ctx_delta: u32, #[case] thread: u8) {
    let mut w = World::new(1);
    let s = w.local_app();
    let c = w.local_app();
    w.listen(s.0, s.1, [127, 0, 0, 1], 1234);
    w.connect(c, [127, 0, 0, 1], 1234, 42);
    let CtrlMessage::Accepted(acc) = w.take(s.0).pop().expect("accepted") else {
        panic!()
    };
    w.take(c.0);
    let wrong_thread = (acc.mq_index as u8 + thread) % 2;
    w.post(
        if thread == 0 {
            acc.mq_index as u8
        } else {
            wrong_thread
        },
        CtrlMessage::AcceptedReply(AcceptedReply {
            context: acc.context + ctx_delta,
            retval: 0,
            handle: acc.handle,
            app_session_index: 9,
        }),
    );
    assert!(w.take(c.0).is_empty(), "no CONNECTED");
}

#[test]
fn tx_from_c_is_relayed_over_cs_signals_to_s_with_its_app_index() {
    let mut w = World::new(0);
    let p = w.established();
    w.feed(Input::AppIo {
        thread: 0,
        event: IoEvent::tx(p.cs.index()),
    });
    let [r] = *w.shell.relays_tx.as_slice() else {
        panic!("{:?}", w.shell.relays_tx)
    };
    let reader = r.reader.expect("S is told");
    assert_eq!((reader.worker, reader.app_session_index), (p.s.0, 9));
    assert_eq!((r.writer.worker, r.writer.app_session_index), (p.c.0, 42));
    // C writes A: its signals are a shadow header, S reads with A's own.
    assert_eq!(r.reader_signals, r.data);
    assert_ne!(r.writer_signals.segment, r.data.segment);
    // S writes B back: TX on ss.
    w.feed(Input::AppIo {
        thread: 0,
        event: IoEvent::tx(p.ss.index()),
    });
    let r2 = w.shell.relays_tx[1];
    assert_eq!(r2.reader.map(|x| x.app_session_index), Some(42));
    assert_eq!(r2.writer_signals, r2.data);
    assert_ne!(r2.data, r.data);
}

#[test]
fn an_io_event_naming_no_session_or_another_threads_is_ignored() {
    let mut w = World::new(1);
    let p = w.established();
    let other = (p.cs.thread() as u8 + 1) % 2;
    for (thread, index) in [(other, p.cs.index()), (p.cs.thread() as u8, 0xffff)] {
        w.feed(Input::AppIo {
            thread,
            event: IoEvent::tx(index),
        });
    }
    assert!(w.shell.relays_tx.is_empty());
}

#[rstest]
#[case::drained(false, false)]
#[case::unread_data(true, true)]
fn disconnect_by_c(#[case] unread: bool, #[case] reset: bool) {
    let mut w = World::new(0);
    let p = w.established();
    w.shell.unread = unread;
    w.post(0, disconnect(p.c.1, p.cs));
    let to_s = w.take(p.s.0);
    let to_c = w.take(p.c.0);
    match to_s.as_slice() {
        [CtrlMessage::Reset(m)] if reset => assert_eq!(m.handle, p.ss.0),
        [CtrlMessage::Disconnected(m)] if !reset => {
            assert_eq!((m.handle, m.context), (p.ss.0, p.s.1.api_client_handle()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        to_c,
        vec![
            CtrlMessage::Cleanup(Cleanup {
                handle: p.cs.0,
                cleanup_type: CleanupType::TRANSPORT
            }),
            CtrlMessage::Cleanup(Cleanup {
                handle: p.cs.0,
                cleanup_type: CleanupType::SESSION
            }),
        ]
    );
    // The passive side closes: its CLEANUPs, then the segment goes to both.
    w.post(
        0,
        CtrlMessage::DisconnectedReply(SessionHandleReply {
            context: p.s.1.api_client_handle(),
            retval: 0,
            handle: p.ss.0,
        }),
    );
    let to_s = w.take(p.s.0);
    assert!(
        matches!(to_s.as_slice(), [CtrlMessage::Cleanup(a), CtrlMessage::Cleanup(b), CtrlMessage::AppDelSegment(_)]
            if a.cleanup_type == CleanupType::TRANSPORT && b.cleanup_type == CleanupType::SESSION),
        "{to_s:?}"
    );
    assert!(matches!(
        w.take(p.c.0).as_slice(),
        [CtrlMessage::AppDelSegment(_)]
    ));
    assert_eq!(w.core.counts().pairs, 0);
    assert_eq!(w.core.counts().ct_segments, 0);
}

#[test]
fn terminate_is_always_a_reset() {
    let mut w = World::new(0);
    let p = w.established();
    w.post(
        0,
        CtrlMessage::Terminate(SessionHandleMsg {
            client_index: p.s.1.api_client_handle(),
            context: 0,
            handle: p.ss.0,
        }),
    );
    assert!(matches!(w.take(p.c.0).as_slice(), [CtrlMessage::Reset(_)]));
}

#[test]
fn simultaneous_close_cleans_both_and_tells_neither_of_the_other() {
    let mut w = World::new(0);
    let p = w.established();
    w.post(0, disconnect(p.c.1, p.cs));
    w.post(0, disconnect(p.s.1, p.ss));
    let to_s = w.take(p.s.0);
    // S was told DISCONNECTED (its close came after); its own close still gets CLEANUPs.
    assert!(
        matches!(to_s.first(), Some(CtrlMessage::Disconnected(_))),
        "{to_s:?}"
    );
    assert_eq!(
        to_s.iter()
            .filter(|m| matches!(m, CtrlMessage::Cleanup(_)))
            .count(),
        2
    );
    assert_eq!(w.core.counts().pairs, 0);
}

#[test]
fn another_apps_disconnect_of_a_session_changes_nothing() {
    let mut w = World::new(0);
    let p = w.established();
    let intruder = w.local_app();
    w.post(0, disconnect(intruder.1, p.cs));
    w.post(0, disconnect(intruder.1, p.ss));
    assert!(w.take(p.s.0).is_empty());
    assert!(w.take(p.c.0).is_empty());
    assert!(w.take(intruder.0).is_empty());
    assert_eq!(w.core.counts().pairs, 1);
}

#[test]
fn detach_of_c_tells_s_and_nothing_to_c() {
    let mut w = World::new(0);
    let p = w.established();
    w.post(
        0,
        CtrlMessage::AppDetach(AppDetach {
            client_index: p.c.1.api_client_handle(),
            context: 0,
        }),
    );
    assert!(matches!(
        w.take(p.s.0).as_slice(),
        [CtrlMessage::Disconnected(_)]
    ));
    assert!(
        w.take(p.c.0).is_empty(),
        "nothing more to the detached worker"
    );
    // S closes its side: its CLEANUPs; the segment goes, DEL_SEGMENT to S only.
    w.post(
        0,
        CtrlMessage::DisconnectedReply(SessionHandleReply {
            context: p.s.1.api_client_handle(),
            retval: 0,
            handle: p.ss.0,
        }),
    );
    let to_s = w.take(p.s.0);
    assert!(
        matches!(to_s.last(), Some(CtrlMessage::AppDelSegment(_))),
        "{to_s:?}"
    );
    assert!(w.take(p.c.0).is_empty());
}

#[test]
fn unlisten_answers_and_keeps_live_pairs_and_later_connects_fail() {
    let mut w = World::new(0);
    let p = w.established();
    w.post(
        0,
        CtrlMessage::Unlisten(Unlisten {
            client_index: p.s.1.api_client_handle(),
            context: 3,
            wrk_index: 0,
            handle: p.listener,
        }),
    );
    let to_s = w.take(p.s.0);
    assert!(
        matches!(to_s.as_slice(), [CtrlMessage::UnlistenReply(r)] if r.retval == 0 && r.context == 3 && r.handle == p.listener),
        "{to_s:?}"
    );
    assert_eq!(w.core.counts().pairs, 1);
    w.connect(p.c, [127, 0, 0, 1], 1234, 77);
    assert!(matches!(w.take(p.c.0).as_slice(), [CtrlMessage::Connected(m)] if m.retval == -6));
    // An unknown handle: NOLISTEN.
    w.post(
        0,
        CtrlMessage::Unlisten(Unlisten {
            client_index: p.s.1.api_client_handle(),
            context: 3,
            wrk_index: 0,
            handle: 0xdead,
        }),
    );
    assert!(matches!(w.take(p.s.0).as_slice(), [CtrlMessage::UnlistenReply(r)] if r.retval == -11));
}

#[test]
fn a_handle_is_not_reused_before_its_cleanup_type_1() {
    let mut w = World::new(0);
    let p = w.established();
    // Close C's side fully: CLEANUP 1 for cs has gone out, so cs's slot may be reused.
    w.post(0, disconnect(p.c.1, p.cs));
    w.take(p.c.0);
    // S has not closed ss: a new pair must not get ss's handle.
    w.connect(p.c, [127, 0, 0, 1], 1234, 43);
    let to_s = w.take(p.s.0);
    let acc = to_s
        .iter()
        .find_map(|m| match m {
            CtrlMessage::Accepted(a) => Some(*a),
            _ => None,
        })
        .expect("ACCEPTED");
    assert_ne!(acc.handle, p.ss.0);
}

#[test]
fn shutdown_and_types_an_app_may_not_post_change_nothing() {
    let mut w = World::new(0);
    let p = w.established();
    w.post(
        0,
        CtrlMessage::Shutdown(SessionHandleMsg {
            client_index: p.c.1.api_client_handle(),
            context: 0,
            handle: p.cs.0,
        }),
    );
    // A server → app type posted by an app (Appendix A): ignored.
    w.post(
        0,
        CtrlMessage::Reset(SessionHandleMsg {
            client_index: 0,
            context: 0,
            handle: p.ss.0,
        }),
    );
    assert!(w.take(p.s.0).is_empty());
    assert!(w.take(p.c.0).is_empty());
    assert_eq!(w.core.counts().pairs, 1);
}

#[test]
fn pairs_go_to_worker_threads_in_turn_with_their_mq() {
    let mut w = World::new(2);
    let s = w.local_app();
    let c = w.local_app();
    w.listen(s.0, s.1, [0, 0, 0, 0], 80);
    let mut threads = Vec::new();
    for ctx in 0..3 {
        w.connect(c, [127, 0, 0, 1], 80, ctx);
        let acc = w
            .take(s.0)
            .into_iter()
            .find_map(|m| match m {
                CtrlMessage::Accepted(a) => Some(a),
                _ => None,
            })
            .expect("accepted");
        assert_eq!(
            acc.vpp_event_queue_address,
            MQ0 + u64::from(acc.mq_index) * 0x1000
        );
        threads.push(acc.mq_index);
    }
    assert_eq!(threads, vec![2, 1, 2]);
    let _ = FifoRef {
        segment: SegmentId(0),
        offset: 0,
    };
}

// The session-layer faults (`--inject-fault`): each test takes the same steps with the faithful
// server and with the faulty one, and shows the one thing that differs.

#[rstest]
#[case::faithful(None)]
#[case::faulty(Some(InjectedFault::WrongListenerHandle))]
fn fault_wrong_listener_handle_flips_the_low_bit_of_accepted_listener_handle(
    #[case] fault: Option<InjectedFault>,
) {
    let mut w = World::with_fault(0, fault);
    // The pair is established either way: S's ACCEPTED_REPLY names the session, not the
    // listener.
    let up = w.set_up();
    let want = if fault.is_some() {
        up.bound.handle ^ 1
    } else {
        up.bound.handle
    };
    assert_eq!(up.accepted.listener_handle, want);
}

#[rstest]
#[case::faithful(None)]
#[case::faulty(Some(InjectedFault::SwapCtFifos))]
fn fault_swap_ct_fifos_hands_c_the_fifos_uncrossed(#[case] fault: Option<InjectedFault>) {
    let mut w = World::with_fault(0, fault);
    let up = w.set_up();
    // A: S reads, C writes. B: S writes, C reads.
    let (a, b) = (up.accepted.server_rx_fifo, up.accepted.server_tx_fifo);
    let c_rx_tx = (up.connected.ct_rx_fifo, up.connected.ct_tx_fifo);
    assert_eq!(c_rx_tx, if fault.is_some() { (a, b) } else { (b, a) });
}

#[rstest]
#[case::faithful(None)]
#[case::faulty(Some(InjectedFault::NoSendFdsBeforeCtSegment))]
fn fault_no_send_fds_before_ct_segment_announces_the_segment_without_its_fd(
    #[case] fault: Option<InjectedFault>,
) {
    let mut w = World::with_fault(0, fault);
    let up = w.set_up();
    // Both apps are told of the ct segment, with fd_flags announcing a memfd, either way…
    let memfd_adds = |m: &[CtrlMessage]| {
        m.iter()
            .filter(|m| matches!(m, CtrlMessage::AppAddSegment(a) if a.fd_flags == 0x02))
            .count()
    };
    assert_eq!((memfd_adds(&up.to_s), memfd_adds(&up.to_c)), (1, 1));
    // …but only the faithful server puts the memfd on their sockets.
    let send_fds: Vec<SocketId> = w
        .shell
        .sends
        .iter()
        .filter(|(_, m, _)| matches!(m, Message::SendFds))
        .map(|(sock, _, _)| *sock)
        .collect();
    let want = if fault.is_some() {
        vec![]
    } else {
        vec![up.pair.s.1, up.pair.c.1]
    };
    assert_eq!(send_fds, want);
}

fn del_segments(m: &[CtrlMessage]) -> usize {
    m.iter()
        .filter(|m| matches!(m, CtrlMessage::AppDelSegment(_)))
        .count()
}

#[rstest]
#[case::faithful(None)]
#[case::faulty(Some(InjectedFault::EarlyDelSegment))]
fn fault_early_del_segment_deletes_when_the_first_side_is_cleaned_up(
    #[case] fault: Option<InjectedFault>,
) {
    let mut w = World::with_fault(0, fault);
    let p = w.established();
    // C closes: C's side is cleaned up at once, S's waits for S's DISCONNECTED_REPLY.
    w.post(0, disconnect(p.c.1, p.cs));
    let (to_s, to_c) = (w.take(p.s.0), w.take(p.c.0));
    assert!(
        matches!(to_s.first(), Some(CtrlMessage::Disconnected(_))),
        "{to_s:?}"
    );
    assert!(
        matches!(to_c.get(1), Some(CtrlMessage::Cleanup(m)) if m.cleanup_type == CleanupType::SESSION),
        "{to_c:?}"
    );
    let early = usize::from(fault.is_some());
    assert_eq!((del_segments(&to_s), del_segments(&to_c)), (early, early));
    // The server keeps its own copy until both sides are gone, faulty or not.
    assert!(w.shell.freed_segments.is_empty());
    w.post(
        0,
        CtrlMessage::DisconnectedReply(SessionHandleReply {
            context: p.s.1.api_client_handle(),
            retval: 0,
            handle: p.ss.0,
        }),
    );
    let (to_s, to_c) = (w.take(p.s.0), w.take(p.c.0));
    // One DEL_SEGMENT per app in all: the faulty server does not send it again.
    assert_eq!(
        (del_segments(&to_s), del_segments(&to_c)),
        (1 - early, 1 - early)
    );
    assert_eq!(w.shell.freed_segments.len(), 1);
    assert_eq!(w.core.counts().ct_segments, 0);
}

#[test]
fn fault_early_del_segment_puts_no_new_pair_in_the_segment_it_deleted() {
    let mut w = World::with_fault(0, Some(InjectedFault::EarlyDelSegment));
    let up = w.set_up();
    let p = &up.pair;
    w.post(0, disconnect(p.c.1, p.cs));
    assert_eq!(del_segments(&w.take(p.s.0)), 1);
    w.take(p.c.0);
    // S still owes its DISCONNECTED_REPLY, so the server still has the segment; a new pair
    // goes into a fresh one, announced first, not into the one S was told is gone.
    w.connect(p.c, [127, 0, 0, 1], 1234, 43);
    let to_s = w.take(p.s.0);
    let [CtrlMessage::AppAddSegment(add), CtrlMessage::Accepted(acc)] = to_s.as_slice() else {
        panic!("{to_s:?}")
    };
    assert_eq!(acc.segment_handle, add.segment_handle);
    assert_ne!(acc.segment_handle, up.accepted.segment_handle);
}

#[rstest]
#[case::faithful(None)]
#[case::faulty(Some(InjectedFault::ReuseHandleBeforeCleanup))]
fn fault_reuse_handle_before_cleanup_hands_out_a_closing_sessions_handle(
    #[case] fault: Option<InjectedFault>,
) {
    let mut w = World::with_fault(0, fault);
    let p = w.established();
    // C closes: S is told, and owes its DISCONNECTED_REPLY; ss's CLEANUP 1 has not gone out.
    w.post(0, disconnect(p.c.1, p.cs));
    assert!(matches!(
        w.take(p.s.0).as_slice(),
        [CtrlMessage::Disconnected(_)]
    ));
    w.take(p.c.0);
    w.connect(p.c, [127, 0, 0, 1], 1234, 43);
    let to_s = w.take(p.s.0);
    let Some(acc) = to_s.iter().find_map(|m| match m {
        CtrlMessage::Accepted(a) => Some(*a),
        _ => None,
    }) else {
        panic!("no ACCEPTED: {to_s:?}")
    };
    // The faulty server drops ss without a word and gives S's new session its handle.
    assert_eq!(acc.handle == p.ss.0, fault.is_some(), "{to_s:?}");
}

/// An app connecting to its own listener from the same worker (found by the simulation).
fn self_pair(w: &mut World) -> ((WorkerKey, SocketId), Vec<CtrlMessage>) {
    let s = w.local_app();
    w.listen(s.0, s.1, [127, 0, 0, 1], 1234);
    w.connect(s, [127, 0, 0, 1], 1234, 42);
    (s, w.take(s.0))
}

#[test]
fn an_app_connected_to_itself_knows_the_ct_segment_by_two_different_handles() {
    let mut w = World::new(0);
    let (_, told) = self_pair(&mut w);
    let handles: Vec<u64> = told
        .iter()
        .filter_map(|m| match m {
            CtrlMessage::AppAddSegment(a) => Some(a.segment_handle),
            _ => None,
        })
        .collect();
    // §4.3: the client form must differ from every other segment handle of C's worker, and
    // here C's worker is S's: with global worker index 0 both forms were the same value.
    assert_eq!(handles.len(), 2, "{told:?}");
    assert_ne!(handles[0], handles[1], "{told:?}");
    assert!(matches!(told.last(), Some(CtrlMessage::Accepted(_))));
}

#[rstest]
#[case::before_accepting(false)]
#[case::established(true)]
fn an_app_detaching_from_a_pair_with_itself_is_told_nothing(#[case] accept: bool) {
    let mut w = World::new(0);
    let (s, told) = self_pair(&mut w);
    if accept {
        let Some(CtrlMessage::Accepted(a)) = told.last().cloned() else {
            panic!("no ACCEPTED: {told:?}")
        };
        w.post(
            0,
            CtrlMessage::AcceptedReply(AcceptedReply {
                context: a.context,
                retval: 0,
                handle: a.handle,
                app_session_index: 9,
            }),
        );
        let connected = w.take(s.0);
        assert!(
            matches!(connected.as_slice(), [CtrlMessage::Connected(c)] if c.retval == 0),
            "{connected:?}"
        );
    }
    w.post(
        0,
        CtrlMessage::AppDetach(AppDetach {
            client_index: s.1.api_client_handle(),
            context: 0,
        }),
    );
    // §9.7: no notification to the detaching worker — not the CONNECTED −2, DISCONNECTED or
    // DEL_SEGMENT it would have got as the other side of its own pair.
    assert_eq!(w.take(s.0), Vec::new());
    assert_eq!(w.core.counts().pairs, 0);
    assert_eq!(w.core.counts().ct_segments, 0);
}

#[test]
fn c_refused_for_want_of_shadows_is_refused_once_when_s_detaches() {
    // Found by the session simulation: C got CONNECTED −4, then CONNECTED −2 for the same
    // CONNECT when S detached with the pair still half-built.
    let mut w = World::new(0);
    let s = w.local_app();
    let c = w.local_app();
    w.listen(s.0, s.1, [127, 0, 0, 1], 1234);
    w.connect(c, [127, 0, 0, 1], 1234, 42);
    let Some(CtrlMessage::Accepted(a)) = w.take(s.0).last().cloned() else {
        panic!("no ACCEPTED")
    };
    w.take(c.0);
    w.shell.no_room_for_shadows = true;
    w.post(
        0,
        CtrlMessage::AcceptedReply(AcceptedReply {
            context: a.context,
            retval: 0,
            handle: a.handle,
            app_session_index: 9,
        }),
    );
    assert!(
        matches!(w.take(c.0).as_slice(), [CtrlMessage::Connected(x)] if x.retval == -4),
        "C refused with ALLOC"
    );
    assert!(matches!(
        w.take(s.0).as_slice(),
        [CtrlMessage::Disconnected(_)]
    ));
    w.post(
        0,
        CtrlMessage::AppDetach(AppDetach {
            client_index: s.1.api_client_handle(),
            context: 0,
        }),
    );
    let to_c = w.take(c.0);
    assert!(
        to_c.iter().all(|m| !matches!(m, CtrlMessage::Connected(_))),
        "a second CONNECTED for one CONNECT: {to_c:?}"
    );
    assert_eq!(w.core.counts().pairs, 0);
}

#[test]
fn s_detaching_after_c_closed_tells_c_nothing() {
    // Found by the session simulation: S's detach took a pair whose client session had closed
    // for one that never got its CONNECTED, and sent C a CONNECTED −2 for a CONNECT answered
    // long before.
    let mut w = World::new(0);
    let p = w.established();
    w.post(0, disconnect(p.c.1, p.cs));
    let to_c = w.take(p.c.0);
    assert!(
        matches!(to_c.last(), Some(CtrlMessage::Cleanup(c)) if c.cleanup_type == CleanupType::SESSION),
        "{to_c:?}"
    );
    w.take(p.s.0);
    w.post(
        0,
        CtrlMessage::AppDetach(AppDetach {
            client_index: p.s.1.api_client_handle(),
            context: 0,
        }),
    );
    let to_c = w.take(p.c.0);
    assert!(
        to_c.iter().all(|m| !matches!(m, CtrlMessage::Connected(_))),
        "{to_c:?}"
    );
    assert_eq!(w.core.counts().pairs, 0);
}

#[rstest]
#[case::c_refused_for_want_of_shadows(true)]
#[case::c_gone_before_s_accepted(false)]
fn a_pair_whose_c_never_had_a_session_frees_its_ct_segment_when_s_closes(#[case] shadows: bool) {
    // Found by the session simulation: C's share of the ct segment was never given back, so
    // the segment outlived both apps' sessions (and S never got its DEL_SEGMENT).
    let mut w = World::new(0);
    let s = w.local_app();
    let c = w.local_app();
    w.listen(s.0, s.1, [127, 0, 0, 1], 1234);
    w.connect(c, [127, 0, 0, 1], 1234, 42);
    let Some(CtrlMessage::Accepted(a)) = w.take(s.0).last().cloned() else {
        panic!("no ACCEPTED")
    };
    if shadows {
        w.shell.no_room_for_shadows = true;
    } else {
        w.post(
            0,
            CtrlMessage::AppDetach(AppDetach {
                client_index: c.1.api_client_handle(),
                context: 0,
            }),
        );
    }
    w.post(
        0,
        CtrlMessage::AcceptedReply(AcceptedReply {
            context: a.context,
            retval: 0,
            handle: a.handle,
            app_session_index: 9,
        }),
    );
    assert!(matches!(
        w.take(s.0).as_slice(),
        [CtrlMessage::Disconnected(_)]
    ));
    w.post(
        0,
        CtrlMessage::DisconnectedReply(SessionHandleReply {
            context: s.1.api_client_handle(),
            retval: 0,
            handle: a.handle,
        }),
    );
    let to_s = w.take(s.0);
    assert!(
        matches!(to_s.last(), Some(CtrlMessage::AppDelSegment(_))),
        "{to_s:?}"
    );
    assert_eq!(w.core.counts().ct_segments, 0);
    assert_eq!(w.core.counts().pairs, 0);
}

/// VPP writes an app's PCT_FIRST_ALLOC into the header of each of its segments, and S's into a
/// ct segment (docs/sessions.md §7.3), where it sizes each fifo's first chunk; above 100 the
/// reference keeps 100, a whole fifo up front.
#[rstest]
#[case::not_sent(None, 0, 0)]
#[case::half(None, 50, 50)]
#[case::beyond_a_whole_fifo(None, 250, 100)]
#[case::fault_ignore_pct_first_alloc(Some(InjectedFault::IgnorePctFirstAlloc), 50, 0)]
fn segments_carry_their_owners_pct_first_alloc(
    #[case] fault: Option<InjectedFault>,
    #[case] option: u64,
    #[case] header: u8,
) {
    let mut w = World::with_fault(0, fault);
    let s = w.app_with(LOCAL_APP, option);
    let last_spec = |w: &World| w.shell.segment_specs.last().cloned().expect("a segment");
    let first = last_spec(&w);
    assert_eq!(first.pct_first_alloc, header, "S's first segment");
    let c = w.local_app();
    let c_first = last_spec(&w);
    assert_eq!(c_first.pct_first_alloc, 0, "C sent no PCT_FIRST_ALLOC");
    let CtrlMessage::Bound(_) = w.listen(s.0, s.1, [127, 0, 0, 1], 1234) else {
        panic!("not BOUND")
    };
    w.connect(c, [127, 0, 0, 1], 1234, 42);
    let ct = last_spec(&w);
    assert!(ct.name.starts_with("seg-"), "{ct:?}");
    assert_ne!(ct.id, c_first.id, "no ct segment was created");
    assert_eq!(ct.pct_first_alloc, header, "the ct segment takes S's");
}
