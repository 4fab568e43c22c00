//! The server run in this test's own process and stopped: every fd and memfd it had — the
//! prepared segments of its pool (`shell/pool.rs`) and those of apps still attached included —
//! is gone once `serve` returns. The only test of this binary, so that nothing else opens fds
//! in the process meanwhile.

mod support;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;

use nix::sys::eventfd::{EfdFlags, EventFd};
use sapi_reference::shell::pool::{POOL_SIZE, READY_SEGMENT_NAME};
use sapi_reference::shell::{ServeConfig, serve};
use sapi_wire::{AppName, Attach, Message, OptionIndex, Profile};
use support::*;

/// `(fds, memfds, prepared memfds)` of this process.
fn counts() -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for e in std::fs::read_dir("/proc/self/fd")
        .expect("fd dir")
        .flatten()
    {
        c.0 += 1;
        if let Ok(l) = std::fs::read_link(e.path()) {
            let l = l.to_string_lossy();
            if l.starts_with("/memfd:") {
                c.1 += 1;
                c.2 += usize::from(l.contains(READY_SEGMENT_NAME));
            }
        }
    }
    c
}

#[test]
fn a_stopped_server_leaves_no_fd_no_memfd_and_no_prepared_segment() {
    let dir = scratch_dir("stop");
    let before = counts();
    let stop = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC).expect("eventfd");
    let stop_theirs: OwnedFd = stop.as_fd().try_clone_to_owned().expect("dup");
    let cfg = ServeConfig {
        runtime_dir: dir.clone(),
        namespaces: Vec::new(),
        vpp_workers: 0,
        profile: Profile::Head,
        faults: Default::default(),
        access: Default::default(),
        enforce_ns_secret: false,
    };
    let (ready_tx, ready) = mpsc::channel();
    let server = std::thread::spawn(move || {
        serve(cfg, Some(stop_theirs), |_| {
            let _ = ready_tx.send(());
        })
    });
    ready.recv_timeout(TIMEOUT).expect("the server started");
    let during = counts();
    assert!(
        during.2 >= POOL_SIZE,
        "{POOL_SIZE} prepared segments at start: {during:?}"
    );
    // Two apps attach (one of them from the pool) and stay attached through the stop.
    let path = dir.join("app_ns_sockets/default");
    let mut apps = Vec::new();
    for (i, size) in [0u64, 5 << 20].into_iter().enumerate() {
        let c = Client::connect(&path);
        c.send(&Message::Attach(Attach {
            name: AppName::new(format!("app-{i}").as_bytes()).expect("name"),
            options: attach_options().with(OptionIndex::SegmentSize, size),
        }));
        let r = c.recv();
        assert!(
            matches!(r.msg, Message::AttachReply(a) if a.retval == 0),
            "{:?}",
            r.msg
        );
        apps.push((c, r.fds));
    }
    // Their fds in this process are theirs, not the server's: closed before the comparison.
    drop(apps);
    stop.write(1).expect("stop");
    server
        .join()
        .expect("the server thread")
        .expect("serve returned cleanly");
    drop(stop);
    assert_eq!(
        counts(),
        before,
        "(fds, memfds, prepared memfds) before and after"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
