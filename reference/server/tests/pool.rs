//! The pool of segments prepared ahead of ATTACH (`shell/pool.rs`), seen from outside the
//! server process: which segments a burst of attaches gets (by the memfd name the kernel shows:
//! a prepared one is `seg-ready`, one made on demand `seg-<app>-<wrk>-<n>`), that the pool is
//! full again afterwards, that a size it does not hold still attaches and becomes the size it
//! prepares, and that the server's fds come back to their count once every app is gone.

mod support;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use sapi_reference::shell::pool::{POOL_SIZE, READY_SEGMENT_NAME};
use sapi_wire::{AddDelWorker, AppName, Attach, AttachOptions, Message, OptionIndex};
use support::*;

/// The memfd names a process holds by fd, one entry per fd.
fn memfd_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let name = link.to_string_lossy().strip_prefix("/memfd:")?.to_owned();
            Some(name.trim_end_matches(" (deleted)").to_owned())
        })
        .collect()
}

fn ready_in_server(server: &Server) -> usize {
    // `show` is a barrier: the pass that answers it comes after every earlier event's pass,
    // each of which ended with the pool topped up.
    let _ = server.show();
    memfd_names(server.pid())
        .iter()
        .filter(|n| *n == READY_SEGMENT_NAME)
        .count()
}

fn request(name: &str, options: AttachOptions) -> Message {
    Message::Attach(Attach {
        name: AppName::new(name.as_bytes()).expect("name"),
        options,
    })
}

/// The memfd name of the app segment (fd 1 of a successful reply) a client received.
fn segment_name(r: &Reply) -> String {
    let Message::AttachReply(a) = r.msg else {
        panic!("not an attach reply: {:?}", r.msg)
    };
    assert_eq!(a.retval, 0, "attach refused");
    let link = fd_target(&r.fds[1]);
    link.strip_prefix("/memfd:")
        .map(|n| n.trim_end_matches(" (deleted)").to_owned())
        .unwrap_or_else(|| panic!("fd 1 is not a memfd: {link}"))
}

/// Sends every request while the server is stopped, so that one pass of its loop finds them
/// all readable and handles them before it refills anything.
fn burst(server: &Server, clients: &[Client], msg: &Message) -> Vec<Reply> {
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    // Every connection accepted before the stop (a barrier after the connects).
    let _ = server.show();
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
    match waitpid(pid, Some(WaitPidFlag::WUNTRACED)) {
        Ok(WaitStatus::Stopped(..)) => {}
        other => panic!("the server did not stop: {other:?}"),
    }
    for c in clients {
        c.send(msg);
    }
    kill(pid, Signal::SIGCONT).expect("SIGCONT");
    clients.iter().map(Client::recv).collect()
}

#[test]
fn a_burst_larger_than_the_pool_drains_it_then_is_served_on_demand_and_the_pool_refills() {
    let server = Server::start("pool-burst", &[]);
    assert_eq!(ready_in_server(&server), POOL_SIZE, "full from the start");
    let baseline = server.fd_count();
    let n = 3 * POOL_SIZE;
    let clients: Vec<Client> = (0..n)
        .map(|_| Client::connect(&server.socket_path()))
        .collect();
    // SEGMENT_SIZE 0: the size the pool prepares from the start.
    let options = attach_options().with(OptionIndex::SegmentSize, 0);
    let replies = burst(&server, &clients, &request("burst", options));
    let names: Vec<String> = replies.iter().map(segment_name).collect();
    let pooled = names.iter().filter(|n| *n == READY_SEGMENT_NAME).count();
    assert_eq!(
        pooled, POOL_SIZE,
        "the first {POOL_SIZE} of a burst of {n} come from the pool, the rest on demand: {names:?}"
    );
    assert!(
        names
            .iter()
            .filter(|n| *n != READY_SEGMENT_NAME)
            .all(|n| n.starts_with("seg-") && n.ends_with("-0-0")),
        "{names:?}"
    );
    assert_eq!(
        ready_in_server(&server) - pooled,
        POOL_SIZE,
        "refilled: {POOL_SIZE} ready beside the {pooled} the apps hold"
    );
    // A second burst is served from the refilled pool just the same.
    let more: Vec<Client> = (0..POOL_SIZE)
        .map(|_| Client::connect(&server.socket_path()))
        .collect();
    let again = burst(&server, &more, &request("again", options));
    assert!(
        again.iter().all(|r| segment_name(r) == READY_SEGMENT_NAME),
        "every one of a burst of POOL_SIZE from the pool"
    );
    drop((replies, again, clients, more));
    assert_eq!(server.await_fd_count(baseline), baseline, "nothing leaked");
    assert_eq!(ready_in_server(&server), POOL_SIZE);
}

#[test]
fn a_size_the_pool_does_not_hold_attaches_on_demand_and_the_next_one_comes_from_the_pool() {
    let server = Server::start("pool-size", &[]);
    let baseline = server.fd_count();
    let three_mib = attach_options().with(OptionIndex::SegmentSize, 3 << 20);
    let ssvm_size = sapi_shm::segment::app_segment_ssvm_size(3 << 20);
    let mut kept: Vec<(Client, Vec<OwnedFd>)> = Vec::new();
    let mut names = Vec::new();
    for i in 0..3 {
        let c = Client::connect(&server.socket_path());
        c.send(&request(&format!("three-{i}"), three_mib));
        let r = c.recv();
        names.push(segment_name(&r));
        let size = std::fs::metadata(format!("/proc/self/fd/{}", r.fds[1].as_raw_fd()))
            .expect("stat")
            .len();
        assert_eq!(size, ssvm_size, "the memfd is the size asked for");
        let seg = sapi_shm::segment::Segment::attach(r.fds[1].try_clone().expect("dup"))
            .expect("a laid-out segment");
        assert_eq!(seg.ssvm_size(), ssvm_size);
        kept.push((c, r.fds));
    }
    assert!(
        names[0].starts_with("seg-") && names[0] != READY_SEGMENT_NAME,
        "the first 3 MiB attach is made on demand: {names:?}"
    );
    assert_eq!(
        &names[1..],
        [READY_SEGMENT_NAME, READY_SEGMENT_NAME],
        "then the pool prepares 3 MiB segments"
    );
    assert_eq!(ready_in_server(&server) - 2, POOL_SIZE);
    drop(kept);
    assert_eq!(server.await_fd_count(baseline), baseline, "nothing leaked");
}

#[test]
fn a_worker_add_takes_a_prepared_segment_too() {
    let server = Server::start("pool-worker", &[]);
    let c = Client::connect(&server.socket_path());
    c.send(&request(
        "owner",
        attach_options().with(OptionIndex::SegmentSize, 0),
    ));
    let r = c.recv();
    assert_eq!(segment_name(&r), READY_SEGMENT_NAME);
    let Message::AttachReply(a) = r.msg else {
        panic!()
    };
    let w = Client::connect(&server.socket_path());
    w.send(&Message::AddDelWorker(AddDelWorker {
        app_index: a.app_index,
        wrk_index: 0,
        is_add: true,
    }));
    let reply = w.recv();
    let Message::AddDelWorkerReply(wr) = reply.msg else {
        panic!("{:?}", reply.msg)
    };
    assert_eq!(wr.retval, 0);
    assert_eq!(
        fd_target(&reply.fds[0]).trim_end_matches(" (deleted)"),
        format!("/memfd:{READY_SEGMENT_NAME}")
    );
}
