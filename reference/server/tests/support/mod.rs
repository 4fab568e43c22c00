//! Shared by the server integration tests: a real `sapi-reference serve` process in its own
//! runtime directory, and a real SAPI client (SEQPACKET + `SCM_RIGHTS`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, connect, recvmsg,
    sendmsg, socket,
};
use sapi_wire::{
    AppName, AppOptionFlags, Attach, AttachOptions, Direction, MSG_LEN, Message, OptionIndex,
    Profile,
};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running `sapi-reference serve` in its own runtime directory.
pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
}

pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sapi-ref-test-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

impl Server {
    pub fn start(tag: &str, extra: &[&str]) -> Server {
        let filter = std::env::var("SAPI_TEST_LOG").unwrap_or_else(|_| "error".into());
        Server::spawn(scratch_dir(tag), extra, &filter, Stdio::inherit())
    }

    /// Like [`Server::start`], with the server's log at `filter` written to the returned file
    /// (outside the runtime directory, which goes when the server does).
    pub fn start_logged(tag: &str, extra: &[&str], filter: &str) -> (Server, PathBuf) {
        let log = scratch_dir(&format!("{tag}-log")).join("server.log");
        let file = std::fs::File::create(&log).expect("log file");
        (
            Server::spawn(scratch_dir(tag), extra, filter, Stdio::from(file)),
            log,
        )
    }

    fn spawn(dir: PathBuf, extra: &[&str], filter: &str, stderr: Stdio) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sapi-reference"))
            .arg("serve")
            .arg("--runtime-dir")
            .arg(&dir)
            .args(extra)
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn sapi-reference");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(TIMEOUT)
            .expect("server printed READY in time");
        assert_eq!(line.trim(), "READY");
        Server { child, dir }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("app_ns_sockets/default")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_sapi-reference"))
            .args(args)
            .arg("--runtime-dir")
            .arg(&self.dir)
            .output()
            .expect("run admin command");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn show(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin(&["show", "--json"])).expect("show --json is JSON")
    }

    /// The server's fd count once it has handled every earlier event (the `show` round trip
    /// is a barrier): the pass that answers it comes after the passes of those events, each of
    /// which ended with the pool of prepared segments topped up (`shell/pool.rs`), so the count
    /// does not depend on catching a refill half-way.
    pub fn fd_count(&self) -> usize {
        let _ = self.show();
        fd_count(self.pid())
    }

    /// Waits (bounded) until the server's fd count is `n`; returns the last count seen.
    pub fn await_fd_count(&self, n: usize) -> usize {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            // The admin round trip is processed after every earlier event on the server's one
            // loop, so each `show` is a barrier, not a sleep.
            let _ = self.show();
            let c = self.fd_count();
            if c == n || Instant::now() > deadline {
                return c;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        // A test that failed while it had the server stopped: SIGTERM waits for a SIGCONT.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A SAPI client connection.
pub struct Client {
    pub fd: OwnedFd,
}

pub struct Reply {
    pub msg: Message,
    pub fds: Vec<OwnedFd>,
}

impl Client {
    pub fn connect(path: &Path) -> Client {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        connect(fd.as_raw_fd(), &UnixAddr::new(path).expect("addr")).expect("connect");
        Client { fd }
    }

    pub fn send_bytes(&self, bytes: &[u8]) {
        self.try_send_bytes(bytes).expect("send");
    }

    /// Sends, reporting `EPIPE` when the server already closed the socket.
    pub fn try_send_bytes(&self, bytes: &[u8]) -> nix::Result<usize> {
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(bytes)],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
    }

    pub fn send(&self, msg: &Message) {
        self.send_as(Profile::Head, msg);
    }

    /// Sends `msg` as `profile` encodes it.
    pub fn send_as(&self, profile: Profile, msg: &Message) {
        self.send_bytes(&msg.encode(profile).expect("encodable"));
    }

    pub fn readable(&self, timeout: Duration) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
        n > 0
    }

    /// Receives one datagram and its fds; `None` on EOF (or a reset: the server closed the
    /// socket with requests of ours still unread).
    pub fn recv_raw(&self) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
        assert!(self.readable(TIMEOUT), "nothing arrived within {TIMEOUT:?}");
        let mut buf = [0u8; 512];
        let mut cmsg = nix::cmsg_space!([RawFd; 32]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            self.fd.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::ECONNRESET) => return None,
            Err(e) => panic!("recvmsg: {e}"),
        };
        let len = msg.bytes;
        let mut fds = Vec::new();
        for c in msg.cmsgs().expect("cmsgs fit") {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel just installed these fds for us.
                fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
            }
        }
        if len == 0 {
            return None;
        }
        Some((buf[..len].to_vec(), fds))
    }

    pub fn recv(&self) -> Reply {
        self.recv_as(Profile::Head)
    }

    /// Receives and decodes one reply as `profile` encodes it.
    pub fn recv_as(&self, profile: Profile) -> Reply {
        let (bytes, fds) = self.recv_raw().expect("a reply, not EOF");
        assert_eq!(bytes.len(), MSG_LEN, "every reply is 209 bytes");
        let msg = Message::decode(&bytes, profile, Direction::ServerToApp).expect("decodes");
        Reply { msg, fds }
    }

    pub fn expect_eof(&self) {
        assert!(self.recv_raw().is_none(), "expected EOF");
    }
}

pub fn attach_options() -> AttachOptions {
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

pub fn attach_msg(name: &str) -> Message {
    Message::Attach(Attach {
        name: AppName::new(name.as_bytes()).expect("name"),
        options: attach_options(),
    })
}

pub fn fd_target(fd: &OwnedFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

pub fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
