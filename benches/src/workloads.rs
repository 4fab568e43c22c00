//! Deterministic workloads, one per hot path, for the instruction-count gate (`icount`) and
//! the single-threaded `hotpaths` criterion bench.
//!
//! Each runs its operation `n` times after a setup that does not depend on `n`, so the gate
//! counts instructions at `n` and at 0 and divides the difference by `n`: what remains is the
//! cost of one operation, free of process start-up and setup. No clock, no threads, no
//! randomness: under `valgrind --tool=callgrind` the same build gives the same count.
//!
//! [`SLOW_ENV`] is read here and nowhere else: set, every operation does extra work, which is
//! how the compare tools are shown to fail on a slowed build.

use std::hint::black_box;
use std::os::fd::AsFd;

use sapi_core::{
    Action, AdminCommand, Config, Input, NsIndex, PeerCred, Server, WorkerResourcesReady,
};
use sapi_shm::fifo::{FifoConsumer, FifoProducer};
use sapi_shm::mq::{self, EventFdSignal, MqConsumer, MqProducer, MqSpec, RingSpec};
use sapi_shm::segment::Segment;
use sapi_wire::{AppName, Attach, AttachReply, Direction, FdFlags, Message, Profile};

use crate::buf::PageBuf;
use crate::fifo_rig::{self, FifoRig, Pace};
use crate::server::eventfd_app_options;
use crate::sys;

/// Environment variable that makes every workload operation do extra work (demo of a
/// regression; never read by the crates being measured).
pub const SLOW_ENV: &str = "SAPI_BENCH_SLOW";

/// The workloads, by name.
pub const NAMES: &[&str] = &[
    "wire_encode_decode",
    "mq_18b_send_recv",
    "mq_256b_send_recv",
    "mq_18b_batch_send_recv",
    "fifo_64k_aligned",
    "fifo_64k_16apart",
    "fifo_64b_write_read",
    "core_attach_detach",
    "shell_pooled_attach_detach",
];

/// Extra work per operation when [`SLOW_ENV`] is set: about 1,800 instructions, from +3% of
/// an mq batch to +250% of a wire round trip.
#[inline(never)]
fn slow_tax(slow: bool) {
    if slow {
        let mut x = 0u64;
        for i in 0..black_box(200u64) {
            x = black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        black_box(x);
    }
}

/// Whether [`SLOW_ENV`] is set.
pub fn slow_from_env() -> bool {
    std::env::var_os(SLOW_ENV).is_some()
}

/// Runs workload `name` with `n` operations; `None` if there is no such workload.
pub fn run(name: &str, n: u64, slow: bool) -> Option<()> {
    match name {
        "wire_encode_decode" => wire(n, slow),
        "mq_18b_send_recv" => mq_send_recv(18, n, slow),
        "mq_256b_send_recv" => mq_send_recv(256, n, slow),
        "mq_18b_batch_send_recv" => mq_batch_send_recv(n, slow),
        "fifo_64k_aligned" => fifo_copy(0, n, slow),
        "fifo_64k_16apart" => fifo_copy(16, n, slow),
        "fifo_64b_write_read" => fifo_small(n, slow),
        "core_attach_detach" => core_attach(n, slow),
        "shell_pooled_attach_detach" => shell_pooled_attach(n, slow),
        _ => return None,
    }
    Some(())
}

/// One operation: encode an ATTACH and decode it as the server does, then encode and decode
/// its reply.
pub fn wire(n: u64, slow: bool) {
    let attach = Message::Attach(Attach {
        name: AppName::new(b"bench-app").expect("name"),
        options: eventfd_app_options(),
    });
    let reply = Message::AttachReply(AttachReply {
        retval: 0,
        app_index: 7,
        app_mq: 0x140,
        vpp_ctrl_mq: 0x140,
        segment_handle: 1 << 32,
        api_client_handle: 1,
        vpp_ctrl_mq_thread: 0,
        n_fds: 3,
        fd_flags: FdFlags::VPP_MQ_SEGMENT | FdFlags::MEMFD_SEGMENT | FdFlags::MQ_EVENTFD,
    });
    for _ in 0..n {
        let b = black_box(&attach).encode(Profile::Head).expect("encode");
        let m =
            Message::decode(black_box(&b), Profile::Head, Direction::AppToServer).expect("decode");
        black_box(m);
        let b = black_box(&reply).encode(Profile::Head).expect("encode");
        let m =
            Message::decode(black_box(&b), Profile::Head, Direction::ServerToApp).expect("decode");
        black_box(m);
        slow_tax(slow);
    }
}

/// The mq of the mq benches: 256 handles, rings of 256 × 18 and 256 × 256 bytes (an app
/// event queue's geometry, with a control ring as deep as the IO ring).
pub fn bench_mq_spec() -> MqSpec {
    MqSpec {
        queue_len: 256,
        rings: vec![
            RingSpec {
                nitems: 256,
                elsize: mq::IO_EVENT_ELSIZE,
            },
            RingSpec {
                nitems: 256,
                elsize: mq::CTRL_EVENT_ELSIZE,
            },
        ],
    }
}

/// Runs `f` on the two ends of an eventfd-mode [`bench_mq_spec`] mq in a fresh memfd segment.
fn with_bench_mq(
    f: impl FnOnce(
        &mut MqProducer<'_, Segment, EventFdSignal<'_>>,
        &mut MqConsumer<'_, Segment, EventFdSignal<'_>>,
    ),
) {
    let seg = crate::app_segment("icount-mq", 1 << 20);
    let off = mq::create(&seg, &bench_mq_spec()).expect("mq");
    let efd = sys::eventfd(true);
    let mut tx = MqProducer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("tx");
    let mut rx = MqConsumer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("rx");
    f(&mut tx, &mut rx);
}

/// One operation: 64 messages of `size` bytes sent, then 64 received, one by one.
pub fn mq_send_recv(size: usize, n: u64, slow: bool) {
    with_bench_mq(|tx, rx| {
        let msg = [0x5au8; 256];
        let mut buf = [0u8; 256];
        for _ in 0..n {
            for _ in 0..64 {
                tx.try_send(black_box(&msg[..size])).expect("send");
            }
            for _ in 0..64 {
                rx.try_recv(black_box(&mut buf)).expect("recv");
            }
            slow_tax(slow);
        }
    });
}

/// One operation: one batch of 64 18-byte messages sent, then received in one batch (so it
/// compares per message with [`mq_send_recv`]).
pub fn mq_batch_send_recv(n: u64, slow: bool) {
    with_bench_mq(|tx, rx| {
        let body = [0x5au8; 18];
        let msgs = [&body[..]; 64];
        let mut out = [[0u8; 18]; 64];
        for _ in 0..n {
            assert_eq!(tx.try_send_batch(black_box(&msgs)), Ok(64));
            assert_eq!(rx.try_recv_batch(black_box(&mut out)), Ok(64));
            slow_tax(slow);
        }
    });
}

/// One operation: a 64 KiB write into a 1 MiB fifo and a 64 KiB read out of it, the
/// application buffers `delta` bytes (mod 4096) from the fifo bytes.
pub fn fifo_copy(delta: usize, n: u64, slow: bool) {
    const W: usize = 64 << 10;
    let rig = FifoRig::new(1 << 20);
    let mut src = PageBuf::for_windows(W);
    src.fill_pattern();
    let mut dst = PageBuf::for_windows(W);
    for _ in 0..n {
        let pace = Pace {
            window: W,
            delta,
            total: W as u64,
        };
        fifo_rig::produce(&rig.seg, rig.fifo, pace, &mut src);
        fifo_rig::consume(&rig.seg, rig.fifo, rig.reader, pace, &mut dst);
        slow_tax(slow);
    }
}

/// One operation: a 64-byte write into a 1 MiB fifo and a 64-byte read out of it (the path
/// small writes take: inside the remembered chunk, no reload of the other side's position).
pub fn fifo_small(n: u64, slow: bool) {
    let rig = FifoRig::new(1 << 20);
    let mut tx = FifoProducer::attach(&rig.seg, rig.fifo).expect("producer");
    let mut rx = FifoConsumer::attach(&rig.seg, rig.fifo).expect("consumer");
    let src = [0x5au8; 64];
    let mut dst = [0u8; 64];
    for _ in 0..n {
        let wrote = tx.enqueue(black_box(&src)).expect("enqueue");
        let read = rx.dequeue(black_box(&mut dst)).expect("dequeue");
        assert_eq!((wrote, read), (64, 64));
        slow_tax(slow);
    }
}

/// A sans-IO core with the default namespace, answering its resource requests at once.
struct CoreDriver {
    core: Server,
    replies: u64,
}

impl CoreDriver {
    fn new() -> Self {
        let core = Server::new(Config {
            profile: Profile::Head,
            vpp_workers: 0,
            vpp_mq_offsets: vec![0x140],
            runtime_dir: "/run/bench".into(),
            faults: Default::default(),
            access: Default::default(),
            enforce_ns_secret: false,
        });
        let mut d = Self { core, replies: 0 };
        d.feed(Input::Admin(AdminCommand::NsAdd {
            id: "default".into(),
            sock_name: None,
            secret: None,
        }));
        d
    }

    /// The shell's loop (`sapi_reference::shell::Shell::feed`) with resources that always
    /// succeed and sends that only count.
    fn feed(&mut self, input: Input<'_>) -> Option<sapi_core::SocketId> {
        let mut accepted = None;
        self.core.input(input);
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Accepted(id) => accepted = Some(id),
                Action::Send { msg, .. } => {
                    black_box(msg);
                    self.replies += 1;
                }
                Action::Listen { ns, .. } => {
                    self.core.input(Input::Listened { ns, result: Ok(()) });
                }
                Action::CreateWorkerResources { worker, spec } => {
                    let ready = WorkerResourcesReady {
                        mq_offset: 0x140,
                        ssvm_size: spec.segment.requested_size + 12 * 1024,
                    };
                    self.core.input(Input::WorkerResources {
                        worker,
                        result: Ok(ready),
                    });
                }
                Action::CreateSegment(spec) => {
                    self.core.input(Input::SegmentCreated {
                        id: spec.id,
                        result: Ok(spec.requested_size + 12 * 1024),
                    });
                }
                _ => {}
            }
        }
        accepted
    }
}

/// One operation: accept a socket, ATTACH on it (reply with three fds), close it (detach and
/// free everything), in a core holding 100 other apps.
pub fn core_attach(n: u64, slow: bool) {
    let mut d = CoreDriver::new();
    let peer = PeerCred {
        pid: 42,
        uid: 1000,
        gid: 1000,
    };
    let attach = |i: u64| {
        Message::Attach(Attach {
            name: AppName::new(format!("app-{i}").as_bytes()).expect("name"),
            options: eventfd_app_options(),
        })
        .encode(Profile::Head)
        .expect("encode")
    };
    let connect_and_attach = |d: &mut CoreDriver, i: u64| {
        let sock = d
            .feed(Input::Accept {
                ns: NsIndex(0),
                peer,
            })
            .expect("accepted");
        let bytes = attach(i);
        d.feed(Input::Datagram {
            sock,
            bytes: &bytes,
            truncated: false,
            ctrunc: false,
        });
        sock
    };
    for i in 0..100 {
        connect_and_attach(&mut d, 1_000_000 + i);
    }
    let before = d.replies;
    for i in 0..n {
        let sock = connect_and_attach(&mut d, i);
        d.feed(Input::Closed { sock });
        slow_tax(slow);
    }
    assert_eq!(d.replies - before, n, "one reply per attach");
}

/// One operation: accept a socket and ATTACH on it through the core with the shell's real
/// resources, the app's segment taken from the pool of prepared ones (laid out, its mq written)
/// and its eventfd created; close it (detach, the segment unmapped and closed); then the pool
/// topped up again, as the loop does after the pass's replies. In a server holding 100 other
/// apps. The system calls' and page faults' cost is the kernel's and not counted here; what is
/// counted is every user-space instruction of the request path and of the refill.
pub fn shell_pooled_attach(n: u64, slow: bool) {
    use sapi_reference::shell::pool::POOL_SIZE;
    use sapi_reference::shell::resources::Resources;

    let mut resources = Resources::new(1, Profile::Head, Default::default()).expect("resources");
    let core = Server::new(Config {
        profile: Profile::Head,
        vpp_workers: 0,
        vpp_mq_offsets: vec![resources.vpp_mq_offset(0).expect("ctrl mq")],
        runtime_dir: "/run/bench".into(),
        faults: Default::default(),
        access: Default::default(),
        enforce_ns_secret: false,
    });
    // Cells: the counters are read between calls of the closures that bump them.
    let replies = std::cell::Cell::new(0u64);
    let pooled = std::cell::Cell::new(0u64);
    let mut core = core;
    // The shell's `feed`/`perform`, for the actions an attach and a detach produce.
    let feed = |core: &mut Server, resources: &mut Resources, input: Input<'_>| {
        let mut accepted = None;
        core.input(input);
        while let Some(action) = core.poll_action() {
            match action {
                Action::Accepted(id) => accepted = Some(id),
                Action::Send { msg, .. } => {
                    black_box(msg);
                    replies.set(replies.get() + 1);
                }
                Action::Listen { ns, .. } => core.input(Input::Listened { ns, result: Ok(()) }),
                Action::CreateWorkerResources { worker, spec } => {
                    let ready = resources.pool().len();
                    let result = resources.create_worker(worker, &spec);
                    pooled.set(pooled.get() + u64::from(resources.pool().len() < ready));
                    core.input(Input::WorkerResources { worker, result });
                }
                Action::FreeSegment(id) => resources.free_segment(id),
                Action::FreeWorker(key) => resources.free_worker(key),
                _ => {}
            }
        }
        accepted
    };
    feed(
        &mut core,
        &mut resources,
        Input::Admin(AdminCommand::NsAdd {
            id: "default".into(),
            sock_name: None,
            secret: None,
        }),
    );
    resources.refill_pool();
    let peer = PeerCred {
        pid: 42,
        uid: 1000,
        gid: 1000,
    };
    let attach = |core: &mut Server, resources: &mut Resources, i: u64, detach: bool| {
        let sock = feed(
            core,
            resources,
            Input::Accept {
                ns: NsIndex(0),
                peer,
            },
        )
        .expect("accepted");
        let bytes = Message::Attach(Attach {
            name: AppName::new(format!("app-{i}").as_bytes()).expect("name"),
            options: eventfd_app_options(),
        })
        .encode(Profile::Head)
        .expect("encode");
        feed(
            core,
            resources,
            Input::Datagram {
                sock,
                bytes: &bytes,
                truncated: false,
                ctrunc: false,
            },
        );
        if detach {
            feed(core, resources, Input::Closed { sock });
        }
        resources.refill_pool();
    };
    for i in 0..100 {
        attach(&mut core, &mut resources, 1_000_000 + i, false);
    }
    let (replies_before, pooled_before) = (replies.get(), pooled.get());
    for i in 0..n {
        attach(&mut core, &mut resources, i, true);
        slow_tax(slow);
    }
    assert_eq!(replies.get() - replies_before, n, "one reply per attach");
    assert_eq!(
        pooled.get() - pooled_before,
        n,
        "every attach served from the pool"
    );
    assert_eq!(resources.pool().len(), POOL_SIZE);
    assert_eq!(
        resources.counts(),
        (100, 100),
        "the 100 apps alone hold segments"
    );
}
