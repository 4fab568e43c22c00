//! The bench's other process: `sapi-bench-peer`, started with a `SOCK_SEQPACKET` command
//! socket, pinned to CPU 1 (the bench itself runs on CPU 0), and told what to do in `u64`
//! words (the command list is in `src/bin/sapi-bench-peer.rs`).
//!
//! Must never: leave the process behind: dropping a [`Peer`] ends it (EOF on its socket) and
//! reaps it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};

use nix::sys::socket::SockType;

use crate::sys;

/// Where the peer finds its end of the command socket.
const PEER_FD: i32 = 100;

/// The peer process and the bench's end of its command socket.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    sock: OwnedFd,
}

impl Peer {
    /// Starts `exe` (the `sapi-bench-peer` binary) with `env` added to its environment.
    pub fn spawn(exe: &Path, env: &[(&str, &str)]) -> Self {
        let (mine, theirs) = sys::unix_pair(SockType::SeqPacket);
        let raw = theirs.as_raw_fd();
        let mut cmd = Command::new(exe);
        cmd.env("SAPI_BENCH_PEER_FD", PEER_FD.to_string());
        cmd.envs(env.iter().copied());
        // SAFETY: dup2 is async-signal-safe; it places the child's end at PEER_FD without
        // FD_CLOEXEC so only the child keeps it.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(raw, PEER_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn sapi-bench-peer");
        drop(theirs);
        Self { child, sock: mine }
    }

    /// Sends one command (and fds) without waiting for its answer.
    pub fn call(&self, words: &[u64], fds: &[RawFd]) {
        sys::send_words(self.sock.as_fd(), words, fds);
    }

    /// Waits for the answer to the oldest command not yet answered.
    pub fn answer(&self) -> Vec<u64> {
        sys::recv_words(self.sock.as_fd())
            .expect("the peer answered")
            .0
    }

    /// Waits for the answer to the oldest command and drops it.
    pub fn wait_done(&self) {
        self.answer();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // EOF on its socket ends the peer.
        let (a, _b) = sys::unix_pair(SockType::SeqPacket);
        let _ = std::mem::replace(&mut self.sock, a);
        let _ = self.child.wait();
    }
}
