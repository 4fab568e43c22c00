//! The reference server as a real process, driven by real clients: SEQPACKET sockets,
//! `SCM_RIGHTS`, memfds mapped with `mmap`, eventfds, child processes killed with `SIGKILL`.
//!
//! Every wait is bounded by a timeout that only decides failure; nothing sleeps to synchronise.

mod support;

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use rstest::rstest;
use sapi_shm::mq::{EventFdSignal, MqConsumer, MqSpec, PthreadSignal};
use sapi_shm::segment::Segment;
use sapi_wire::ctrl::{AppAddSegment, SessionEventType};
use sapi_wire::{AddDelWorker, AppName, Attach, AttachOptions, FdFlags, Message};
use support::*;

/// The child role: attach (and add a worker), print the app index, then block until killed.
fn child_main(path: &str, stage: &str) {
    if let Some(n) = stage.strip_prefix("many:") {
        let n: usize = n.parse().expect("count");
        let mut keep = Vec::with_capacity(n);
        for i in 0..n {
            let c = Client::connect(Path::new(path));
            c.send(&Message::Attach(Attach {
                name: AppName::new(format!("many-{i}").as_bytes()).expect("name"),
                options: AttachOptions::default(),
            }));
            let r = c.recv();
            assert!(matches!(r.msg, Message::AttachReply(ref a) if a.retval == 0));
            keep.push(c);
        }
        report(n);
        std::mem::forget(keep);
        block_until_killed();
    }
    if stage == "lifecycle" {
        lifecycle_child(Path::new(path));
    }
    let c = Client::connect(Path::new(path));
    if stage == "connect" {
        report(0);
    } else {
        c.send(&attach_msg("crash-child"));
        if stage == "sent" {
            report(0);
        } else {
            let r = c.recv();
            let Message::AttachReply(a) = r.msg else {
                panic!("not an attach reply")
            };
            let mut keep = vec![c];
            if stage == "worker" {
                let w = Client::connect(Path::new(path));
                w.send(&Message::AddDelWorker(AddDelWorker {
                    app_index: a.app_index,
                    wrk_index: 0,
                    is_add: true,
                }));
                let _ = w.recv();
                keep.push(w);
            }
            report(a.app_index as usize);
            std::mem::forget(keep);
        }
    }
    block_until_killed();
}

/// The whole life of an app in one process: attach, map both segments through `opaque[0]`,
/// check both mqs, receive SEND_FDS + APP_ADD_SEGMENT, add and delete a worker; then report and
/// wait to be SIGKILLed with everything still mapped and open.
fn lifecycle_child(path: &Path) -> ! {
    let runtime_dir = path.parent().and_then(Path::parent).expect("runtime dir");
    let c = Client::connect(path);
    c.send(&attach_msg("lifecycle-child"));
    let Reply { msg, fds } = c.recv();
    let Message::AttachReply(r) = msg else {
        panic!("{msg:?}")
    };
    assert_eq!(r.retval, 0);
    let mut fds = fds.into_iter();
    let mqs = Segment::attach(fds.next().expect("mqs fd")).expect("map mqs segment");
    let seg = Segment::attach(fds.next().expect("segment fd")).expect("map app segment");
    let evfd = fds.next().expect("eventfd");
    let ctrl = MqConsumer::attach(
        &mqs,
        r.vpp_ctrl_mq,
        PthreadSignal::new(&mqs, r.vpp_ctrl_mq).expect("mutex"),
    )
    .expect("ctrl mq");
    assert_eq!(ctrl.geometry().rings(), MqSpec::vpp_ctrl(2048).rings);
    let mut mq = MqConsumer::attach(&seg, r.app_mq, EventFdSignal::new(evfd.as_fd())).expect("mq");
    assert_eq!(mq.geometry().rings(), MqSpec::app_event_queue(256).rings);
    let out = Command::new(env!("CARGO_BIN_EXE_sapi-reference"))
        .args([
            "segment",
            "add",
            "--app",
            &r.app_index.to_string(),
            "--runtime-dir",
        ])
        .arg(runtime_dir)
        .output()
        .expect("segment add");
    assert!(out.status.success());
    let Reply { msg, fds: seg_fds } = c.recv();
    assert_eq!((msg, seg_fds.len()), (Message::SendFds, 1));
    let mut element = [0u8; 256];
    let got = mq
        .recv(&mut element, Some(TIMEOUT))
        .expect("APP_ADD_SEGMENT");
    assert_eq!((got.ring, element[0]), (1, 28));
    let w = Client::connect(path);
    w.send(&Message::AddDelWorker(AddDelWorker {
        app_index: r.app_index,
        wrk_index: 0,
        is_add: true,
    }));
    let Message::AddDelWorkerReply(wr) = w.recv().msg else {
        panic!()
    };
    assert_eq!(wr.retval, 0);
    w.send(&Message::AddDelWorker(AddDelWorker {
        app_index: r.app_index,
        wrk_index: wr.wrk_index,
        is_add: false,
    }));
    w.expect_eof();
    report(r.app_index as usize);
    // Everything stays open and mapped until the SIGKILL: this function never returns, so
    // nothing here is ever dropped.
    block_until_killed();
}

/// Tells the parent the child reached its stage. libtest may have printed `test name ... `
/// without a newline, so the report starts on a line of its own and carries a marker.
fn report(n: usize) {
    println!("\nSAPI-CHILD {n}");
}

fn block_until_killed() -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Block until SIGKILL: read stdin, which the parent never writes or closes.
    let mut s = String::new();
    let _ = std::io::stdin().read_line(&mut s);
    std::process::exit(0);
}

fn spawn_child(path: &Path, stage: &str, test_name: &str) -> (Child, u32) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env("SAPI_TEST_CHILD", format!("{}|{stage}", path.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(Ok(n)) = line
                .split_once("SAPI-CHILD ")
                .map(|(_, n)| n.trim().parse::<u32>())
            {
                let _ = tx.send(n);
                return;
            }
        }
    });
    let app = rx.recv_timeout(TIMEOUT).expect("child reported");
    (child, app)
}

#[test]
fn child_entry() {
    // Not a test of its own: the entry point of the child processes spawned by other tests.
    if let Ok(spec) = std::env::var("SAPI_TEST_CHILD") {
        let (path, stage) = spec.split_once('|').expect("path|stage");
        child_main(path, stage);
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn socket_is_seqpacket_with_mode_0775() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let server = Server::start("mode", &[]);
    let meta = std::fs::symlink_metadata(server.socket_path()).expect("socket file");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o775);
}

#[test]
fn attach_maps_both_segments_and_finds_both_mqs() {
    let server = Server::start("attach", &[]);
    let c = Client::connect(&server.socket_path());
    c.send(&attach_msg("probe-app-1"));
    let Reply { msg, fds } = c.recv();
    let Message::AttachReply(r) = msg else {
        panic!("{msg:?}")
    };
    assert_eq!(r.retval, 0);
    assert_eq!(r.app_index, 1);
    assert_eq!(r.app_mq, 0x140);
    assert_eq!(r.vpp_ctrl_mq, 0x140);
    assert_eq!(r.segment_handle, 1 << 32);
    assert_eq!(r.api_client_handle, 1);
    assert_eq!(
        (r.n_fds, r.fd_flags),
        (3, FdFlags::all() - FdFlags::VPP_MQ_EVENTFD)
    );
    assert_eq!(fds.len(), 3);
    assert!(fd_target(&fds[0]).starts_with("/memfd:session: wrk-mqs-segment"));
    assert!(fd_target(&fds[1]).starts_with("/memfd:seg-1-0-0"));
    assert_eq!(fd_target(&fds[2]), "anon_inode:[eventfd]");

    let mut fds = fds.into_iter();
    let mqs = Segment::attach(fds.next().expect("fd")).expect("map mqs segment");
    let app_seg = Segment::attach(fds.next().expect("fd")).expect("map app segment");
    let eventfd = fds.next().expect("eventfd");
    assert_eq!(mqs.ssvm_size(), 0x14d0a0);
    assert_eq!(app_seg.ssvm_size(), 16_789_504);
    assert_eq!(mqs.fifo_segment_header().expect("header").n_mqs, 1);

    let ctrl = MqConsumer::attach(
        &mqs,
        r.vpp_ctrl_mq,
        PthreadSignal::new(&mqs, r.vpp_ctrl_mq).expect("ctrl mq mutex"),
    )
    .expect("ctrl mq well-formed");
    let spec = MqSpec::vpp_ctrl(2048);
    assert_eq!(ctrl.geometry().queue_len(), spec.queue_len);
    assert_eq!(ctrl.geometry().rings(), spec.rings);
    let app_mq = MqConsumer::attach(&app_seg, r.app_mq, EventFdSignal::new(eventfd.as_fd()))
        .expect("app mq well-formed");
    let spec = MqSpec::app_event_queue(256);
    assert_eq!(app_mq.geometry().queue_len(), spec.queue_len);
    assert_eq!(app_mq.geometry().rings(), spec.rings);
    assert_eq!(app_mq.len().expect("cursize"), 0);
}

#[test]
fn segment_add_sends_fd_then_event_and_worker_lifecycle_and_kill_leave_nothing() {
    let server = Server::start("lifecycle", &[]);
    let baseline = server.fd_count();

    let c = Client::connect(&server.socket_path());
    c.send(&attach_msg("lifecycle"));
    let Reply { msg, fds } = c.recv();
    let Message::AttachReply(r) = msg else {
        panic!("{msg:?}")
    };
    let mut fds = fds.into_iter();
    let _mqs = fds.next();
    let seg = Segment::attach(fds.next().expect("fd")).expect("map");
    let eventfd = fds.next().expect("eventfd");
    let mut mq =
        MqConsumer::attach(&seg, r.app_mq, EventFdSignal::new(eventfd.as_fd())).expect("mq");

    // Segment add: SEND_FDS with one memfd arrives, then the event is in the mq.
    server.admin(&["segment", "add", "--app", &r.app_index.to_string()]);
    let Reply { msg, fds } = c.recv();
    assert_eq!(msg, Message::SendFds);
    assert_eq!(fds.len(), 1);
    let new_seg = Segment::attach(fds.into_iter().next().expect("fd")).expect("map new");
    let mut element = [0u8; 256];
    let got = mq
        .recv(&mut element, Some(TIMEOUT))
        .expect("APP_ADD_SEGMENT posted");
    assert_eq!(got.ring, 1, "control events use ring 1");
    let body =
        AppAddSegment::decode_element(&element, SessionEventType::AppAddSegment.number_head())
            .expect("an APP_ADD_SEGMENT element");
    assert_eq!(u64::from(body.segment_size), new_seg.ssvm_size());
    assert_eq!(body.fd_flags, 0x02);
    assert_eq!(body.segment_handle, (1 << 32) | 1);

    // Worker add on a new socket, then delete: no reply, EOF.
    let w = Client::connect(&server.socket_path());
    w.send(&Message::AddDelWorker(AddDelWorker {
        app_index: r.app_index,
        wrk_index: 0,
        is_add: true,
    }));
    let Reply { msg, fds } = w.recv();
    let Message::AddDelWorkerReply(wr) = msg else {
        panic!("{msg:?}")
    };
    assert_eq!((wr.retval, wr.wrk_index, wr.n_fds, fds.len()), (0, 1, 2, 2));
    drop(fds);
    w.send(&Message::AddDelWorker(AddDelWorker {
        app_index: r.app_index,
        wrk_index: 1,
        is_add: false,
    }));
    w.expect_eof();

    drop(mq);
    drop((c, seg, new_seg, eventfd));
    let after = server.await_fd_count(baseline);
    assert_eq!(after, baseline, "server fd count back to baseline");
    let show = server.show();
    assert_eq!(show["apps"].as_array().map(Vec::len), Some(0));
}

#[rstest]
#[case::after_a_whole_lifecycle("lifecycle")]
#[case::after_connect("connect")]
#[case::after_sending_attach("sent")]
#[case::after_the_reply("reply")]
#[case::with_a_worker("worker")]
fn sigkilled_client_leaves_nothing_behind(#[case] stage: &str) {
    let server = Server::start(&format!("kill-{stage}"), &[]);
    let baseline = server.fd_count();
    let (mut child, app) = spawn_child(&server.socket_path(), stage, "child_entry");
    kill(&mut child);
    assert_eq!(server.await_fd_count(baseline), baseline);
    let show = server.show();
    assert_eq!(show["apps"].as_array().map(Vec::len), Some(0), "{show}");
    assert_eq!(
        show["namespaces"][0]["sockets"].as_array().map(Vec::len),
        Some(1),
        "only the listener is left: {show}"
    );
    if app != 0 {
        // Observed through the protocol: a worker add for the dead app is INVALID.
        let c = Client::connect(&server.socket_path());
        c.send(&Message::AddDelWorker(AddDelWorker {
            app_index: app,
            wrk_index: 0,
            is_add: true,
        }));
        let Message::AddDelWorkerReply(r) = c.recv().msg else {
            panic!()
        };
        assert_eq!(r.retval, -19);
    }
}

#[test]
fn a_thousand_apps_then_all_killed() {
    raise_nofile();
    let server = Server::start("thousand", &[]);
    let baseline = server.fd_count();
    let path = server.socket_path();
    // Four real processes with 250 attached apps each, then SIGKILL for all of them.
    let mut children: Vec<Child> = (0..4)
        .map(|_| spawn_child(&path, "many:250", "child_entry").0)
        .collect();
    let show = server.show();
    assert_eq!(show["apps"].as_array().map(Vec::len), Some(1000));
    // The server holds each app's socket and segment memfd.
    assert!(server.fd_count() >= baseline + 2000);
    for c in &mut children {
        kill(c);
    }
    assert_eq!(server.await_fd_count(baseline), baseline);
    assert_eq!(server.show()["apps"].as_array().map(Vec::len), Some(0));
    let c = Client::connect(&path);
    c.send(&attach_msg("still-serving"));
    assert!(matches!(c.recv().msg, Message::AttachReply(ref a) if a.retval == 0));
}

#[test]
fn seed_profile_speaks_the_2020_messages() {
    use sapi_wire::Profile::Seed;
    let server = Server::start("seed", &["--profile", "seed"]);
    let c = Client::connect(&server.socket_path());
    c.send_as(Seed, &attach_msg("seed-app"));
    let Reply { msg, fds } = c.recv_as(Seed);
    let Message::AttachReply(r) = msg else {
        panic!("{msg:?}")
    };
    assert_eq!((r.retval, fds.len()), (0, 3));
    // A second ATTACH: the seed's number for "already attached".
    c.send_as(Seed, &attach_msg("seed-app"));
    let Message::AttachReply(again) = c.recv_as(Seed).msg else {
        panic!()
    };
    assert_eq!(again.retval, -131, "VNET_API_ERROR_APP_ALREADY_ATTACHED");

    // Worker add: the 27-byte reply body has no api_client_handle.
    let w = Client::connect(&server.socket_path());
    w.send_as(
        Seed,
        &Message::AddDelWorker(AddDelWorker {
            app_index: r.app_index,
            wrk_index: 0,
            is_add: true,
        }),
    );
    let (bytes, fds) = w.recv_raw().expect("worker reply");
    assert_eq!(fds.len(), 2);
    assert_eq!(bytes[25], 2, "n_fds sits at offset 25 in the seed layout");
    assert_eq!(bytes[26], 0x06, "fd_flags at 26");
    assert_eq!(bytes[27], 1, "is_add at 27");
    assert!(bytes[28..].iter().all(|b| *b == 0));

    // Segment add: the event carries the seed's APP_ADD_SEGMENT number, 26.
    let mut fds = fds.into_iter();
    let seg = Segment::attach(fds.next().expect("segment")).expect("map");
    let evfd = fds.next().expect("eventfd");
    let mut mq = MqConsumer::attach(&seg, 0x140, EventFdSignal::new(evfd.as_fd())).expect("mq");
    server.admin(&[
        "segment",
        "add",
        "--app",
        &r.app_index.to_string(),
        "--worker",
        "1",
    ]);
    assert!(matches!(w.recv_as(Seed).msg, Message::SendFds));
    let mut element = [0u8; 256];
    mq.recv(&mut element, Some(TIMEOUT)).expect("event");
    assert_eq!(element[0], 26);
    drop(mq);

    // Worker delete: the seed replies, then the worker's socket is closed.
    w.send_as(
        Seed,
        &Message::AddDelWorker(AddDelWorker {
            app_index: r.app_index,
            wrk_index: 1,
            is_add: false,
        }),
    );
    let Message::AddDelWorkerReply(d) = w.recv_as(Seed).msg else {
        panic!()
    };
    assert_eq!((d.retval, d.is_add), (0, false));
    w.expect_eof();

    // Cert-key messages did not exist: type 6 is ignored, the socket stays served.
    let mut certkey = [0u8; 209];
    certkey[0] = 6;
    c.send_bytes(&certkey);
    c.send_as(
        Seed,
        &Message::AddDelWorker(AddDelWorker {
            app_index: 0xabcdef,
            wrk_index: 5,
            is_add: true,
        }),
    );
    let Message::AddDelWorkerReply(bad) = c.recv_as(Seed).msg else {
        panic!("type 6 got an answer")
    };
    assert_eq!(bad.retval, -7, "VNET_API_ERROR_INVALID_VALUE");
}

#[test]
fn sigterm_stops_cleanly_and_unlinks_the_socket_files() {
    let mut server = Server::start("sigterm", &["--namespace", "blue"]);
    let blue = server.dir.join("app_ns_sockets/blue");
    assert!(blue.exists() && server.socket_path().exists());
    let c = Client::connect(&server.socket_path());
    c.send(&attach_msg("at-shutdown"));
    drop(c.recv());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert!(!blue.exists() && !server.socket_path().exists());
    assert!(!server.dir.join("sapi-reference-admin.sock").exists());
    c.expect_eof();
}

#[rstest]
#[case::bad_namespace_id(&["--namespace", "no spaces"], "no spaces")]
#[case::bad_sock_name(&["--namespace", "x,sock-name=relative/path"], "relative/path")]
#[case::bad_fault(&["--inject-fault", "gremlins"], "gremlins")]
#[case::bad_profile(&["--profile", "2019"], "2019")]
fn command_line_errors_name_the_bad_value(#[case] args: &[&str], #[case] value: &str) {
    let dir = scratch_dir("cli-error");
    let out = Command::new(env!("CARGO_BIN_EXE_sapi-reference"))
        .arg("serve")
        .arg("--runtime-dir")
        .arg(&dir)
        .args(args)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(value), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
