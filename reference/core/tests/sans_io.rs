//! The sans-IO core driven without any syscall: every scenario is a list of inputs and the
//! actions they must produce. Resource requests are answered by a tiny deterministic shell.

use rstest::rstest;
use sapi_core::{
    Action, AdminCommand, AdminError, AdminOk, Config, Counts, FdRef, InjectedFault,
    InjectedFaults, Input, NsIndex, PeerCred, ResourceError, SegmentId, Server, SocketId,
    WorkerKey, WorkerResourcesReady,
};
use sapi_wire::ctrl::{AppAddSegment, CtrlMessage};
use sapi_wire::{
    AddDelCertKey, AddDelWorker, AppName, AppOptionFlags, Attach, AttachOptions, FdFlags, MSG_LEN,
    Message, OptionIndex, Profile, SapiError,
};

/// A deterministic stand-in for the IO shell: answers resource and listen requests, records
/// what would have been sent and closed.
struct Sim {
    core: Server,
    /// Fail the next worker resource creation with this error.
    fail_next_worker: Option<ResourceError>,
    sent: Vec<(SocketId, Message, Vec<FdRef>)>,
    closed: Vec<SocketId>,
    /// Sockets an injected fault abandoned (kept open, no longer watched).
    abandoned: Vec<SocketId>,
    /// Why an injected crash fault aborted the server.
    aborted: Vec<&'static str>,
    posted: Vec<(WorkerKey, CtrlMessage)>,
    freed_segments: Vec<SegmentId>,
    admin: Option<Result<AdminOk, AdminError>>,
    live_segments: std::collections::BTreeSet<SegmentId>,
}

const MQ_OFFSET: u64 = 0x140;

impl Sim {
    fn new(profile: Profile) -> Self {
        Self::with_faults(profile, InjectedFaults::default())
    }

    fn with_faults(profile: Profile, faults: InjectedFaults) -> Self {
        let core = Server::new(Config {
            profile,
            vpp_workers: 0,
            vpp_mq_offsets: vec![0x140],
            runtime_dir: "/run/test".into(),
            faults,
            access: Default::default(),
            enforce_ns_secret: false,
        });
        let mut sim = Sim {
            core,
            fail_next_worker: None,
            sent: vec![],
            closed: vec![],
            abandoned: vec![],
            aborted: vec![],
            posted: vec![],
            freed_segments: vec![],
            admin: None,
            live_segments: Default::default(),
        };
        let r = sim.admin(AdminCommand::NsAdd {
            id: "default".into(),
            sock_name: None,
            secret: None,
        });
        assert!(r.is_ok(), "{r:?}");
        sim
    }

    /// The shell's loop: one input, then every action the core hands out, answering resource
    /// requests with inputs as they come.
    fn feed(&mut self, input: Input<'_>) {
        self.core.input(input);
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Accepted(_) | Action::Refuse => {}
                Action::Send { sock, msg, fds } => self.sent.push((sock, msg, fds)),
                Action::Close(s) => self.closed.push(s),
                Action::Listen { ns, .. } => {
                    self.core.input(Input::Listened { ns, result: Ok(()) })
                }
                Action::Unlisten { .. } => {}
                Action::CreateWorkerResources { worker, spec } => {
                    let result = match self.fail_next_worker.take() {
                        Some(e) => Err(e),
                        None => {
                            self.live_segments.insert(spec.segment.id);
                            Ok(WorkerResourcesReady {
                                mq_offset: MQ_OFFSET,
                                ssvm_size: spec.segment.requested_size + 12 * 1024,
                            })
                        }
                    };
                    self.core.input(Input::WorkerResources { worker, result });
                }
                Action::CreateSegment(spec) => {
                    self.live_segments.insert(spec.id);
                    self.core.input(Input::SegmentCreated {
                        id: spec.id,
                        result: Ok(spec.requested_size + 12 * 1024),
                    });
                }
                Action::PostCtrl { worker, msg } => self.posted.push((worker, msg)),
                Action::FreeSegment(id) => {
                    self.live_segments.remove(&id);
                    self.freed_segments.push(id);
                }
                Action::FreeWorker(_) | Action::SetDeadline { .. } | Action::ClearDeadline(_) => {}
                Action::AdminReply(r) => self.admin = Some(r),
                Action::Abandon(s) => self.abandoned.push(s),
                Action::Abort(why) => self.aborted.push(why),
                other => panic!("no session is driven here: {other:?}"),
            }
        }
    }

    fn admin(&mut self, cmd: AdminCommand) -> Result<AdminOk, AdminError> {
        self.feed(Input::Admin(cmd));
        self.admin.take().expect("every admin command is answered")
    }

    fn connect(&mut self, ns: u16) -> SocketId {
        let before = self.core.counts().sockets;
        let actions = self.core.handle(Input::Accept {
            ns: NsIndex(ns),
            peer: PeerCred {
                pid: 42,
                uid: 1000,
                gid: 1000,
            },
        });
        assert_eq!(self.core.counts().sockets, before + 1);
        match actions.as_slice() {
            [Action::Accepted(id)] => *id,
            other => panic!("accept gave {other:?}"),
        }
    }

    fn request(&mut self, sock: SocketId, msg: &Message) {
        let bytes = msg.encode(self.core.config().profile).expect("encodable");
        self.datagram(sock, &bytes);
    }

    fn datagram(&mut self, sock: SocketId, bytes: &[u8]) {
        self.feed(Input::Datagram {
            sock,
            bytes,
            truncated: false,
            ctrunc: false,
        });
    }

    fn take_sent(&mut self) -> Vec<(SocketId, Message, Vec<FdRef>)> {
        std::mem::take(&mut self.sent)
    }

    fn attach(&mut self, sock: SocketId, options: AttachOptions) -> Message {
        self.request(
            sock,
            &Message::Attach(Attach {
                name: AppName::new(b"test-app").expect("valid"),
                options,
            }),
        );
        let mut sent = self.take_sent();
        assert_eq!(sent.len(), 1, "exactly one reply: {sent:?}");
        let (to, msg, _) = sent.remove(0);
        assert_eq!(to, sock);
        msg
    }

    fn attach_ok(&mut self, sock: SocketId) -> u32 {
        match self.attach(sock, eventfd_options()) {
            Message::AttachReply(r) if r.retval == 0 => r.app_index,
            other => panic!("attach failed: {other:?}"),
        }
    }
}

fn eventfd_options() -> AttachOptions {
    AttachOptions::default()
        .with_flags(AppOptionFlags::ACCEPT_REDIRECT | AppOptionFlags::EVT_MQ_USE_EVENTFD)
        .with(OptionIndex::SegmentSize, 16 << 20)
}

fn worker(app_index: u32, wrk_index: u32, is_add: bool) -> Message {
    Message::AddDelWorker(AddDelWorker {
        app_index,
        wrk_index,
        is_add,
    })
}

#[test]
fn attach_replies_with_mqs_segment_app_segment_and_eventfd_in_order() {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    sim.request(
        s,
        &Message::Attach(Attach {
            name: AppName::new(b"probe-app-1").expect("valid"),
            options: eventfd_options(),
        }),
    );
    let sent = sim.take_sent();
    let [(to, Message::AttachReply(r), fds)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(*to, s);
    assert_eq!(r.retval, 0);
    assert_eq!(r.app_index, 1, "app indices start at 1, as VPP's");
    assert_eq!(r.app_mq, MQ_OFFSET);
    assert_eq!(r.vpp_ctrl_mq, 0x140);
    assert_eq!(r.segment_handle, 1 << 32);
    assert_eq!(r.api_client_handle, 1, "(ns 0 << 16) | socket 1");
    assert_eq!(r.vpp_ctrl_mq_thread, 0);
    assert_eq!(r.n_fds, 3);
    assert_eq!(
        r.fd_flags,
        FdFlags::VPP_MQ_SEGMENT | FdFlags::MEMFD_SEGMENT | FdFlags::MQ_EVENTFD
    );
    let key = WorkerKey {
        app: sapi_core::AppIndex(1),
        wrk: 0,
    };
    assert!(matches!(
        fds.as_slice(),
        [FdRef::VppMqsSegment, FdRef::Segment(_), FdRef::WorkerEventfd(k)] if *k == key
    ));
}

#[test]
fn attach_without_eventfd_sends_two_fds() {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    let Message::AttachReply(r) = sim.attach(s, AttachOptions::default()) else {
        panic!()
    };
    assert_eq!((r.retval, r.n_fds, r.fd_flags.bits()), (0, 2, 0x03));
}

#[rstest]
#[case::head(Profile::Head, -14)]
#[case::seed(Profile::Seed, -131)]
fn second_attach_on_a_socket_is_app_attached(#[case] profile: Profile, #[case] retval: i32) {
    let mut sim = Sim::new(profile);
    let s = sim.connect(0);
    sim.attach_ok(s);
    let Message::AttachReply(r) = sim.attach(s, eventfd_options()) else {
        panic!()
    };
    assert_eq!(r.retval, retval);
    assert_eq!((r.app_index, r.n_fds, r.fd_flags.bits()), (0, 0, 0));
    assert_eq!(sim.core.counts().apps, 1);
}

#[test]
fn wrong_retval_fault_changes_the_number() {
    let mut faults = InjectedFaults::default();
    faults.insert(InjectedFault::WrongRetval);
    let mut sim = Sim::with_faults(Profile::Head, faults);
    let s = sim.connect(0);
    sim.attach_ok(s);
    let Message::AttachReply(r) = sim.attach(s, eventfd_options()) else {
        panic!()
    };
    assert_eq!(r.retval, -13);
}

#[rstest]
#[case::builtin_alone(AttachOptions::default().with_flags(AppOptionFlags::IS_BUILTIN), -10)]
#[case::builtin_with_eventfd(
    AttachOptions::default().with_flags(AppOptionFlags::IS_BUILTIN | AppOptionFlags::EVT_MQ_USE_EVENTFD),
    -10
)]
#[case::prealloc_pairs_and_hdrs(
    AttachOptions::default().with(OptionIndex::PreallocFifoPairs, 8).with(OptionIndex::PreallocFifoHdrs, 8),
    -10
)]
#[case::max_fifo_memory_without_segment_size(
    AttachOptions::default().with(OptionIndex::MaxFifoMemory, 1 << 20),
    -19
)]
#[case::one_tib_segment(AttachOptions::default().with(OptionIndex::SegmentSize, 1 << 40), -19)]
#[case::all_ones(AttachOptions([u64::MAX; 18]), -10)]
fn refused_attach_leaves_nothing_behind(#[case] options: AttachOptions, #[case] retval: i32) {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    let Message::AttachReply(r) = sim.attach(s, options) else {
        panic!()
    };
    assert_eq!(r.retval, retval);
    assert_eq!(
        sim.core.counts(),
        Counts {
            namespaces: 1,
            sockets: 1,
            ..Counts::default()
        }
    );
    // The socket stays usable.
    sim.attach_ok(s);
}

#[rstest]
#[case::segment(ResourceError::SegmentCreate, -25)]
#[case::huge_pages(ResourceError::HugePages, -1)]
#[case::eventfd(ResourceError::EventfdAlloc, -33)]
fn failed_resources_answer_their_retval_and_free_everything(
    #[case] error: ResourceError,
    #[case] retval: i32,
) {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    sim.fail_next_worker = Some(error);
    let Message::AttachReply(r) = sim.attach(s, eventfd_options()) else {
        panic!()
    };
    assert_eq!(r.retval, retval);
    assert_eq!(sim.core.counts().apps, 0);
    assert!(sim.live_segments.is_empty());
}

#[test]
fn socket_close_detaches_its_worker_and_frees_the_app() {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    sim.attach_ok(s);
    assert_eq!(sim.live_segments.len(), 1);
    sim.feed(Input::Closed { sock: s });
    assert_eq!(sim.closed, vec![s]);
    assert_eq!(sim.core.counts().apps, 0);
    assert!(sim.live_segments.is_empty());
}

#[test]
fn never_attached_socket_is_freed_on_close() {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    sim.feed(Input::Closed { sock: s });
    assert_eq!(sim.closed, vec![s]);
    assert_eq!(sim.core.counts().sockets, 0);
}

#[test]
fn no_crash_detach_fault_keeps_the_app() {
    let mut faults = InjectedFaults::default();
    faults.insert(InjectedFault::NoCrashDetach);
    let mut sim = Sim::with_faults(Profile::Head, faults);
    let s = sim.connect(0);
    sim.attach_ok(s);
    sim.feed(Input::Closed { sock: s });
    assert_eq!(sim.core.counts().apps, 1);
}

#[rstest]
#[case::empty(0)]
#[case::one(1)]
#[case::one_short(208)]
fn short_datagram_detaches_a_bound_socket_and_is_ignored_on_an_unbound_one(#[case] len: usize) {
    let mut sim = Sim::new(Profile::Head);
    let unbound = sim.connect(0);
    let bound = sim.connect(0);
    sim.attach_ok(bound);
    let junk = vec![1u8; len];
    sim.datagram(unbound, &junk);
    assert!(sim.closed.is_empty());
    assert!(sim.take_sent().is_empty());
    sim.datagram(bound, &junk);
    assert_eq!(sim.closed, vec![bound]);
    assert_eq!(sim.core.counts().apps, 0);
    sim.attach_ok(unbound);
}

#[test]
fn oversized_datagram_is_processed_as_its_first_209_bytes() {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    let mut bytes = Message::Attach(Attach {
        name: AppName::new(b"big").expect("valid"),
        options: AttachOptions::default(),
    })
    .encode(Profile::Head)
    .expect("encodable")
    .to_vec();
    bytes.extend_from_slice(&[0xee; 291]);
    sim.datagram(s, &bytes);
    let sent = sim.take_sent();
    assert!(matches!(sent.as_slice(), [(_, Message::AttachReply(r), _)] if r.retval == 0));
}

#[rstest]
#[case::none(0)]
#[case::attach_reply(2)]
#[case::worker_reply(4)]
#[case::send_fds(5)]
#[case::certkey_reply(7)]
#[case::unknown(99)]
#[case::max(255)]
fn unexpected_types_get_no_reply_and_change_nothing(#[case] type_byte: u8) {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    sim.attach_ok(s);
    let mut bytes = [0u8; MSG_LEN];
    bytes[0] = type_byte;
    sim.datagram(s, &bytes);
    assert!(sim.take_sent().is_empty());
    assert!(sim.closed.is_empty());
    assert_eq!(sim.core.counts().apps, 1);
}

#[test]
fn worker_add_binds_the_new_socket_and_delete_closes_it_without_reply() {
    let mut sim = Sim::new(Profile::Head);
    let s0 = sim.connect(0);
    let app = sim.attach_ok(s0);
    let s1 = sim.connect(0);
    sim.request(s1, &worker(app, 0, true));
    let sent = sim.take_sent();
    let [(to, Message::AddDelWorkerReply(r), fds)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(*to, s1);
    assert_eq!((r.retval, r.wrk_index, r.is_add), (0, 1, true));
    assert_eq!(r.api_client_handle, s1.api_client_handle());
    assert_eq!(r.app_event_queue_address, MQ_OFFSET);
    assert_eq!((r.n_fds, r.fd_flags.bits()), (2, 0x06));
    assert!(matches!(
        fds.as_slice(),
        [FdRef::Segment(_), FdRef::WorkerEventfd(_)]
    ));
    assert_ne!(r.segment_handle >> 32, 1, "own segment manager");

    sim.request(s1, &worker(app, 1, false));
    assert!(sim.take_sent().is_empty(), "HEAD never replies to a delete");
    assert_eq!(sim.closed, vec![s1]);
    assert_eq!(sim.core.counts().workers, 1);
    // Delete then re-add gets the freed map index back.
    let s2 = sim.connect(0);
    sim.request(s2, &worker(app, 0, true));
    let sent = sim.take_sent();
    assert!(matches!(sent.as_slice(), [(_, Message::AddDelWorkerReply(r), _)] if r.wrk_index == 1));
}

#[test]
fn seed_replies_to_a_delete() {
    let mut sim = Sim::new(Profile::Seed);
    let s0 = sim.connect(0);
    let app = sim.attach_ok(s0);
    let s1 = sim.connect(0);
    sim.request(s1, &worker(app, 0, true));
    sim.take_sent();
    sim.request(s1, &worker(app, 1, false));
    let sent = sim.take_sent();
    assert!(
        matches!(sent.as_slice(), [(to, Message::AddDelWorkerReply(r), _)] if *to == s1 && r.retval == 0 && !r.is_add)
    );
    assert_eq!(sim.closed, vec![s1]);
}

#[rstest]
#[case::head_add(Profile::Head, true, Some(-19))]
#[case::head_del(Profile::Head, false, None)]
#[case::seed_add(Profile::Seed, true, Some(-7))]
#[case::seed_del(Profile::Seed, false, Some(-7))]
fn worker_request_for_an_unknown_app(
    #[case] profile: Profile,
    #[case] is_add: bool,
    #[case] retval: Option<i32>,
) {
    let mut sim = Sim::new(profile);
    let s = sim.connect(0);
    sim.request(s, &worker(0xdead_beef, 7, is_add));
    let sent = sim.take_sent();
    match retval {
        None => assert!(sent.is_empty()),
        Some(rv) => {
            let [(_, Message::AddDelWorkerReply(r), fds)] = sent.as_slice() else {
                panic!("{sent:?}")
            };
            assert_eq!(r.retval, rv);
            assert_eq!(r.wrk_index, 7, "echoed");
            assert_eq!(r.api_client_handle, u32::MAX);
            assert_eq!(r.is_add, is_add);
            assert!(fds.is_empty());
        }
    }
    assert!(sim.closed.is_empty(), "the socket stays usable");
}

#[test]
fn deleting_one_of_two_workers_on_one_socket_keeps_the_socket_for_the_other() {
    let mut sim = Sim::new(Profile::Head);
    let s0 = sim.connect(0);
    let app = sim.attach_ok(s0);
    let s1 = sim.connect(0);
    sim.request(s1, &worker(app, 0, true));
    sim.request(s1, &worker(app, 0, true));
    assert_eq!(sim.take_sent().len(), 2);
    assert_eq!(sim.core.counts().workers, 3);
    sim.request(s1, &worker(app, 1, false));
    assert!(sim.closed.is_empty(), "worker 2 still uses the socket");
    sim.feed(Input::Closed { sock: s1 });
    assert_eq!(sim.closed, vec![s1]);
    assert_eq!(sim.core.counts().workers, 1, "no stranded worker");
}

#[test]
fn closing_worker_zero_keeps_the_app_alive_with_worker_one() {
    let mut sim = Sim::new(Profile::Head);
    let s0 = sim.connect(0);
    let app = sim.attach_ok(s0);
    let s1 = sim.connect(0);
    sim.request(s1, &worker(app, 0, true));
    sim.feed(Input::Closed { sock: s0 });
    assert_eq!(sim.core.counts().apps, 1);
    sim.feed(Input::Closed { sock: s1 });
    assert_eq!(sim.core.counts().apps, 0);
    assert!(sim.live_segments.is_empty());
}

fn certkey_add(cert_len: u16, certkey_len: u16) -> Message {
    Message::AddDelCertKey(AddDelCertKey {
        context: 77,
        index: 0,
        cert_len,
        certkey_len,
        is_add: true,
    })
}

#[test]
fn certkey_add_then_delete() {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    sim.request(s, &certkey_add(100, 200));
    assert!(sim.take_sent().is_empty(), "waits for the data datagram");
    sim.datagram(s, &[7u8; 200]);
    let sent = sim.take_sent();
    let [(_, Message::AddDelCertKeyReply(r), _)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!((r.context, r.retval, r.index), (77, 0, 1));
    let del = |index| {
        Message::AddDelCertKey(AddDelCertKey {
            context: 5,
            index,
            cert_len: 0,
            certkey_len: 0,
            is_add: false,
        })
    };
    sim.request(s, &del(1));
    sim.request(s, &del(1));
    sim.request(s, &del(0));
    let rv: Vec<i32> = sim
        .take_sent()
        .into_iter()
        .map(|(_, m, _)| match m {
            Message::AddDelCertKeyReply(r) => r.retval,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(rv, vec![0, -19, -19]);
}

#[rstest]
#[case::oversize(certkey_add(100, 20_001), None)]
#[case::zero(certkey_add(0, 0), None)]
#[case::short_data(certkey_add(100, 200), Some(150))]
#[case::cert_longer_than_total(certkey_add(300, 200), Some(200))]
fn certkey_add_refused(#[case] req: Message, #[case] data: Option<usize>) {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    sim.request(s, &req);
    if let Some(len) = data {
        sim.datagram(s, &vec![1u8; len]);
    }
    let sent = sim.take_sent();
    assert!(
        matches!(sent.as_slice(), [(_, Message::AddDelCertKeyReply(r), _)] if r.retval == -19 && r.index == 0),
        "{sent:?}"
    );
}

#[test]
fn certkey_data_that_never_comes_times_out_with_invalid() {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    sim.request(s, &certkey_add(10, 20));
    sim.feed(Input::DeadlineExpired { sock: s });
    let sent = sim.take_sent();
    assert!(matches!(sent.as_slice(), [(_, Message::AddDelCertKeyReply(r), _)] if r.retval == -19));
}

#[test]
fn segment_add_sends_the_fd_before_posting_the_event() {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    let app = sim.attach_ok(s);
    let r = sim.admin(AdminCommand::SegmentAdd { app, wrk: 0 });
    assert!(r.is_ok(), "{r:?}");
    let sent = sim.take_sent();
    let [(to, Message::SendFds, fds)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(*to, s);
    assert!(matches!(fds.as_slice(), [FdRef::Segment(_)]));
    let [
        (
            _,
            CtrlMessage::AppAddSegment(AppAddSegment {
                segment_handle: handle,
                ..
            }),
        ),
    ] = sim.posted.as_slice()
    else {
        panic!("{:?}", sim.posted)
    };
    assert_eq!(*handle, (1 << 32) | 1);
    let handle = *handle;
    let r = sim.admin(AdminCommand::SegmentDel {
        app,
        wrk: 0,
        handle,
    });
    assert!(r.is_ok());
    assert!(
        matches!(sim.posted.last(), Some((_, CtrlMessage::AppDelSegment(d))) if d.segment_handle == handle)
    );
    assert_eq!(sim.live_segments.len(), 1);
}

#[test]
fn send_failure_of_a_segment_fd_detaches_the_whole_app() {
    let mut sim = Sim::new(Profile::Head);
    let s0 = sim.connect(0);
    let app = sim.attach_ok(s0);
    let s1 = sim.connect(0);
    sim.request(s1, &worker(app, 0, true));
    let r = sim.admin(AdminCommand::SegmentAdd { app, wrk: 1 });
    assert!(r.is_ok(), "{r:?}");
    sim.feed(Input::SendFailed { sock: s1 });
    assert_eq!(
        sim.core.counts().apps,
        0,
        "HEAD: the whole app, worker 0 included"
    );
    assert!(sim.live_segments.is_empty());
}

#[rstest]
#[case::head(Profile::Head)]
#[case::seed(Profile::Seed)]
fn send_failure_of_a_reply_detaches_only_that_socket(#[case] profile: Profile) {
    let mut sim = Sim::new(profile);
    let s0 = sim.connect(0);
    let app = sim.attach_ok(s0);
    let s1 = sim.connect(0);
    sim.request(s1, &worker(app, 0, true));
    sim.feed(Input::SendFailed { sock: s1 });
    assert_eq!(sim.closed, vec![s1]);
    assert_eq!(sim.core.counts().workers, 1, "worker 0 lives on");
}

#[test]
fn namespaces_isolate_apps_and_deleting_one_closes_its_sockets() {
    let mut sim = Sim::new(Profile::Head);
    let r = sim.admin(AdminCommand::NsAdd {
        id: "blue".into(),
        sock_name: None,
        secret: None,
    });
    assert!(r.is_ok(), "{r:?}");
    let a = sim.connect(1);
    assert_eq!(a.api_client_handle(), 0x10001);
    sim.attach_ok(a);
    let idle = sim.connect(1);
    let other = sim.connect(0);
    sim.attach_ok(other);
    let r = sim.admin(AdminCommand::NsDel { id: "blue".into() });
    assert!(r.is_ok(), "{r:?}");
    let mut closed = sim.closed.clone();
    closed.sort();
    assert_eq!(closed, vec![a, idle]);
    assert_eq!(sim.core.counts().apps, 1);
    assert_eq!(
        sim.admin(AdminCommand::NsDel {
            id: "default".into()
        }),
        Err(AdminError::DefaultNamespace)
    );
}

#[test]
fn app_indices_are_not_reused() {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    let first = sim.attach_ok(s);
    sim.feed(Input::Closed { sock: s });
    let s = sim.connect(0);
    assert_eq!(sim.attach_ok(s), first + 1);
}

#[test]
fn snapshot_lists_sockets_like_api_clients() {
    let mut sim = Sim::new(Profile::Head);
    let s = sim.connect(0);
    sim.connect(0);
    sim.attach_ok(s);
    let Ok(AdminOk::Snapshot(snap)) = sim.admin(AdminCommand::Show) else {
        panic!()
    };
    insta::assert_snapshot!(snap.render_text());
}

fn with_fault(fault: InjectedFault) -> Sim {
    let mut faults = InjectedFaults::default();
    faults.insert(fault);
    Sim::with_faults(Profile::Head, faults)
}

#[test]
fn reuse_indices_fault_hands_out_the_last_freed_app_and_segment_manager_first() {
    let mut sim = with_fault(InjectedFault::ReuseIndices);
    let (a, b) = (sim.connect(0), sim.connect(0));
    let (app_a, app_b) = (sim.attach_ok(a), sim.attach_ok(b));
    assert_eq!((app_a, app_b), (1, 2));
    sim.feed(Input::Closed { sock: a });
    sim.feed(Input::Closed { sock: b });
    let c = sim.connect(0);
    let reply = sim.attach(c, eventfd_options());
    let Message::AttachReply(r) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(r.app_index, 2, "most recently freed first, as VPP's pools");
    assert_eq!(r.segment_handle >> 32, 2, "its segment manager too");
}

#[test]
fn keep_unattached_sockets_fault_abandons_the_socket_instead_of_closing_it() {
    let mut sim = with_fault(InjectedFault::KeepUnattachedSockets);
    let s = sim.connect(0);
    sim.feed(Input::Closed { sock: s });
    assert!(sim.closed.is_empty());
    assert_eq!(sim.abandoned, vec![s]);
    assert_eq!(sim.core.counts().sockets, 1, "the slot stays taken");
    // An attached socket still detaches as usual.
    let t = sim.connect(0);
    sim.attach_ok(t);
    sim.feed(Input::Closed { sock: t });
    assert_eq!(sim.closed, vec![t]);
}

#[test]
fn keep_failed_attach_fault_refuses_a_built_app_and_never_frees_it() {
    let mut sim = with_fault(InjectedFault::KeepFailedAttach);
    let s = sim.connect(0);
    let options = eventfd_options()
        .with(OptionIndex::PreallocFifoPairs, 8)
        .with(OptionIndex::PreallocFifoHdrs, 8);
    let Message::AttachReply(r) = sim.attach(s, options) else {
        panic!("not an attach reply")
    };
    assert_eq!(
        (r.retval, r.n_fds),
        (SapiError::NoSupport.retval(Profile::Head), 0)
    );
    assert_eq!(
        sim.live_segments.len(),
        1,
        "the half-built app holds a segment"
    );
    sim.feed(Input::Closed { sock: s });
    assert_eq!(sim.closed, vec![s], "the socket itself closes");
    assert_eq!(sim.core.counts().apps, 1);
    assert_eq!(sim.live_segments.len(), 1, "and the segment is never freed");
}

#[test]
fn strand_shared_socket_worker_fault_closes_the_socket_and_keeps_worker_zero() {
    let mut sim = with_fault(InjectedFault::StrandSharedSocketWorker);
    let s = sim.connect(0);
    let app = sim.attach_ok(s);
    sim.request(s, &worker(app, 0, true));
    assert_eq!(sim.take_sent().len(), 1);
    sim.request(s, &worker(app, 1, false));
    assert_eq!(sim.closed, vec![s], "the shared socket is closed");
    assert_eq!(sim.core.counts().workers, 1, "worker 0 is stranded");
    assert_eq!(sim.live_segments.len(), 1, "with its segment");
}

#[rstest]
#[case::max_fifo_memory(InjectedFault::CrashOnMaxFifoMemory)]
#[case::proxy_tcp_close(InjectedFault::CrashOnProxyTcpClose)]
fn crash_faults_abort_on_their_input_only(#[case] fault: InjectedFault) {
    let mut sim = with_fault(fault);
    let s = sim.connect(0);
    sim.attach_ok(s);
    sim.feed(Input::Closed { sock: s });
    assert!(sim.aborted.is_empty(), "an ordinary app does not crash it");
    let s = sim.connect(0);
    match fault {
        InjectedFault::CrashOnMaxFifoMemory => {
            let options = eventfd_options()
                .with(OptionIndex::SegmentSize, 0)
                .with(OptionIndex::MaxFifoMemory, 1 << 20);
            sim.request(
                s,
                &Message::Attach(Attach {
                    name: AppName::new(b"fpe").expect("valid"),
                    options,
                }),
            );
        }
        _ => {
            let options = eventfd_options()
                .with_flags(AppOptionFlags::IS_PROXY | AppOptionFlags::EVT_MQ_USE_EVENTFD)
                .with(OptionIndex::ProxyTransport, 1);
            sim.attach(s, options);
            assert!(sim.aborted.is_empty(), "the attach itself succeeds");
            sim.feed(Input::Closed { sock: s });
        }
    }
    assert_eq!(sim.aborted.len(), 1, "{:?}", sim.aborted);
}
