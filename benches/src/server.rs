//! The reference server in a process of its own, and the client side of attach,
//! worker add and segment add — real sockets, real `SCM_RIGHTS`, real mappings.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::socket::{SockFlag, SockType, UnixAddr, connect, socket};
use sapi_core::AdminCommand;
use sapi_reference::shell::admin::{AdminIoError, AdminRequest, request};
use sapi_shm::mq::{EventFdSignal, MqConsumer};
use sapi_shm::segment::Segment;
use sapi_wire::ctrl::{AppAddSegment, SessionEventType};
use sapi_wire::{
    AddDelWorker, AppName, AppOptionFlags, Attach, AttachOptions, AttachReply, Direction, MSG_LEN,
    Message, OptionIndex, Profile,
};

use crate::sys;

/// A running reference server in a process of its own (`sapi-bench-peer serve`); killed and
/// cleaned up on drop.
#[derive(Debug)]
pub struct BenchServer {
    dir: PathBuf,
    child: Child,
}

impl BenchServer {
    /// Starts `peer_exe serve <fresh dir>` and waits until it listens; with `cpu`, the
    /// server process runs on that CPU only.
    pub fn start(peer_exe: &Path, tag: &str, cpu: Option<usize>) -> Self {
        sys::raise_nofile();
        let dir = std::env::temp_dir().join(format!("sapi-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("runtime dir");
        let mut cmd = Command::new(peer_exe);
        cmd.arg("serve").arg(&dir);
        if let Some(cpu) = cpu {
            cmd.arg("--cpu").arg(cpu.to_string());
        }
        let mut child = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server output");
        assert_eq!(line.trim(), "READY", "server started");
        Self { dir, child }
    }

    /// The default namespace's socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("app_ns_sockets/default")
    }

    fn admin(&self, command: AdminCommand) -> Result<String, AdminIoError> {
        request(
            &self.dir,
            &AdminRequest {
                command,
                json: false,
            },
        )
    }

    /// Returns once the server has processed every event that reached it before this call:
    /// the admin socket is served on the same loop, after earlier events. (Deleting a
    /// namespace that does not exist is the cheapest command; its refusal is the answer.)
    pub fn barrier(&self) {
        match self.admin(AdminCommand::NsDel {
            id: "no-such-namespace".into(),
        }) {
            Ok(_) | Err(AdminIoError::Refused(_)) => {}
            Err(e) => panic!("admin barrier: {e}"),
        }
    }

    /// Asks the server to give worker 0 of `app` one more segment.
    pub fn segment_add(&self, app: u32) {
        self.admin(AdminCommand::SegmentAdd { app, wrk: 0 })
            .expect("segment add");
    }

    /// Asks the server to take segment `handle` back from worker 0 of `app`.
    pub fn segment_del(&self, app: u32, handle: u64) {
        self.admin(AdminCommand::SegmentDel {
            app,
            wrk: 0,
            handle,
        })
        .expect("segment del");
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connects a `SOCK_SEQPACKET` socket to `path`.
pub fn connect_seqpacket(path: &Path) -> OwnedFd {
    let fd = socket(
        nix::sys::socket::AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    connect(fd.as_raw_fd(), &UnixAddr::new(path).expect("addr")).expect("connect");
    fd
}

/// Sends one request message.
pub fn send_msg(sock: &OwnedFd, msg: &Message) {
    let bytes = msg.encode(Profile::Head).expect("encodable");
    sys::send_with_fds(sock.as_fd(), &bytes, &[]);
}

/// Receives one reply and its fds.
pub fn recv_msg(sock: &OwnedFd) -> (Message, Vec<OwnedFd>) {
    let mut buf = [0u8; 512];
    let (n, fds) = sys::recv_with_fds(sock.as_fd(), &mut buf);
    assert_eq!(n, MSG_LEN, "a 209-byte reply");
    let msg = Message::decode(&buf[..n], Profile::Head, Direction::ServerToApp).expect("decodes");
    (msg, fds)
}

/// The options of an app that maps both segments and waits on an eventfd-mode mq.
pub fn eventfd_app_options() -> AttachOptions {
    AttachOptions::default()
        .with_flags(
            AppOptionFlags::ACCEPT_REDIRECT
                | AppOptionFlags::ADD_SEGMENT
                | AppOptionFlags::EVT_MQ_USE_EVENTFD,
        )
        .with(OptionIndex::EvtQueueSize, 256)
        .with(OptionIndex::SegmentSize, 16 << 20)
        .with(OptionIndex::AddSegmentSize, 16 << 20)
}

/// An attached app: its socket, the reply, both segments mapped and its mq eventfd.
#[derive(Debug)]
pub struct App {
    /// The app's socket (closing it detaches the app).
    pub sock: OwnedFd,
    /// The ATTACH reply.
    pub reply: AttachReply,
    /// The VPP mqs segment, mapped.
    pub mqs: Segment,
    /// The app's first fifo segment, mapped.
    pub seg: Segment,
    /// The eventfd of the app's mq.
    pub mq_eventfd: OwnedFd,
}

/// connect + ATTACH + reply + fds + both segments mapped.
pub fn attach(path: &Path, name: &str) -> App {
    let sock = connect_seqpacket(path);
    send_msg(
        &sock,
        &Message::Attach(Attach {
            name: AppName::new(name.as_bytes()).expect("name"),
            options: eventfd_app_options(),
        }),
    );
    let (msg, fds) = recv_msg(&sock);
    let Message::AttachReply(reply) = msg else {
        panic!("not an attach reply: {msg:?}")
    };
    assert_eq!(reply.retval, 0, "attach refused");
    let mut fds = fds.into_iter();
    let mqs = Segment::attach(fds.next().expect("mqs fd")).expect("map mqs segment");
    let seg = Segment::attach(fds.next().expect("segment fd")).expect("map app segment");
    let mq_eventfd = fds.next().expect("eventfd");
    App {
        sock,
        reply,
        mqs,
        seg,
        mq_eventfd,
    }
}

/// A bare attached app holding only its socket (the scale bench's background population).
pub fn attach_minimal(path: &Path, name: &str) -> OwnedFd {
    let sock = connect_seqpacket(path);
    send_msg(
        &sock,
        &Message::Attach(Attach {
            name: AppName::new(name.as_bytes()).expect("name"),
            options: AttachOptions::default(),
        }),
    );
    let (msg, _fds) = recv_msg(&sock);
    assert!(
        matches!(msg, Message::AttachReply(ref r) if r.retval == 0),
        "{msg:?}"
    );
    sock
}

/// Worker add on a new socket: the socket (closing it deletes the worker), the new worker's
/// index and the reply's fds.
pub fn worker_add(path: &Path, app_index: u32) -> (OwnedFd, u32, Vec<OwnedFd>) {
    let sock = connect_seqpacket(path);
    send_msg(
        &sock,
        &Message::AddDelWorker(AddDelWorker {
            app_index,
            wrk_index: 0,
            is_add: true,
        }),
    );
    let (msg, fds) = recv_msg(&sock);
    let Message::AddDelWorkerReply(r) = msg else {
        panic!("not a worker reply: {msg:?}")
    };
    assert_eq!(r.retval, 0, "worker add refused");
    (sock, r.wrk_index, fds)
}

/// Deletes worker `wrk_index` of `app_index` on its own socket and waits for the server to
/// close that socket.
pub fn worker_del(sock: OwnedFd, app_index: u32, wrk_index: u32) {
    send_msg(
        &sock,
        &Message::AddDelWorker(AddDelWorker {
            app_index,
            wrk_index,
            is_add: false,
        }),
    );
    let mut buf = [0u8; 512];
    let (n, _) = sys::recv_with_fds(sock.as_fd(), &mut buf);
    assert_eq!(n, 0, "the server closes a deleted worker's socket");
}

/// Receives SEND_FDS with one memfd on `app`'s socket, maps it, and reads the
/// APP_ADD_SEGMENT event from the app's mq; returns the new segment's handle.
pub fn receive_segment(app: &App) -> (Segment, u64) {
    let (msg, fds) = recv_msg(&app.sock);
    assert_eq!(msg, Message::SendFds);
    let seg = Segment::attach(fds.into_iter().next().expect("memfd")).expect("map new segment");
    let mut mq = MqConsumer::attach(
        &app.seg,
        app.reply.app_mq,
        EventFdSignal::new(app.mq_eventfd.as_fd()),
    )
    .expect("app mq");
    let mut element = [0u8; 256];
    mq.recv(&mut element, Some(Duration::from_secs(10)))
        .expect("APP_ADD_SEGMENT");
    let body =
        AppAddSegment::decode_element(&element, SessionEventType::AppAddSegment.number_head())
            .expect("an APP_ADD_SEGMENT element");
    (seg, body.segment_handle)
}

/// Drains one control event (APP_DEL_SEGMENT after a segment delete) from `app`'s mq.
pub fn drain_event(app: &App) {
    let mut mq = MqConsumer::attach(
        &app.seg,
        app.reply.app_mq,
        EventFdSignal::new(app.mq_eventfd.as_fd()),
    )
    .expect("app mq");
    let mut element = [0u8; 256];
    mq.recv(&mut element, Some(Duration::from_secs(10)))
        .expect("an event");
}
