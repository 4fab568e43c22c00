//! The admin socket against clients that misbehave and servers that collide: it is its owner's
//! alone, a second server cannot take it from a running one, and no admin client holds the
//! event loop (which serves it) for longer than `ADMIN_EXCHANGE_BOUND` and the short
//! `ADMIN_REFUSAL_BOUND` that tells it why.
//!
//! Every wait is bounded by a timeout that only decides failure; nothing sleeps to synchronise.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use sapi_reference::shell::admin::{ADMIN_EXCHANGE_BOUND, admin_socket_path};
use sapi_wire::Message;
use support::*;

fn attaches(server: &Server, name: &str) {
    let c = Client::connect(&server.socket_path());
    c.send(&attach_msg(name));
    let r = c.recv();
    assert!(
        matches!(r.msg, Message::AttachReply(a) if a.retval == 0),
        "{:?}",
        r.msg
    );
}

#[test]
fn the_admin_socket_is_its_owners_alone() {
    let server = Server::start("admin-mode", &[]);
    let meta = std::fs::metadata(admin_socket_path(&server.dir)).expect("admin socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_second_server_on_the_same_runtime_dir_is_refused_and_the_first_serves_on() {
    let server = Server::start("admin-twice", &[]);
    let mut second = Command::new(env!("CARGO_BIN_EXE_sapi-reference"))
        .arg("serve")
        .arg("--runtime-dir")
        .arg(&server.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a second server");
    let mut stderr = second.stderr.take().expect("stderr");
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = done_tx.send(text);
    });
    // Its stderr closes when it exits; a second server that serves would keep it open.
    let text = done.recv_timeout(TIMEOUT);
    let _ = second.kill();
    let status = second.wait().expect("wait");
    let text = text.expect("the second server gave up");
    assert!(!status.success(), "{status:?}");
    assert!(text.contains("in use"), "{text}");
    // The first one still answers on its admin socket and serves apps.
    assert!(server.show()["namespaces"].is_array());
    attaches(&server, "after-the-second");
}

#[test]
fn an_admin_client_that_trickles_its_request_is_cut_off_at_the_exchange_bound() {
    let server = Server::start("admin-trickle", &[]);
    let mut admin = UnixStream::connect(admin_socket_path(&server.dir)).expect("connect");
    let start = Instant::now();
    // A request that never ends: a byte of JSON white space every 300 ms, until the server
    // answers. Before the bound, each byte renewed a per-read timeout and the loop stayed
    // inside this exchange for as long as the bytes came.
    loop {
        assert!(
            start.elapsed() < TIMEOUT,
            "the server still read the trickle after {TIMEOUT:?}"
        );
        if admin.write_all(b" ").is_err() {
            break;
        }
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&admin),
            PollFlags::POLLIN,
        )];
        if poll(&mut fds, PollTimeout::from(300u16)).expect("poll") > 0 {
            break;
        }
    }
    let mut answer = String::new();
    admin.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    let _ = admin.read_to_string(&mut answer);
    let took = start.elapsed();
    assert!(
        answer.starts_with("error\n") && answer.contains("took longer than"),
        "{answer:?}"
    );
    assert!(
        took < ADMIN_EXCHANGE_BOUND + Duration::from_secs(3),
        "cut off after {took:?}"
    );
    attaches(&server, "after-the-trickle");
}
