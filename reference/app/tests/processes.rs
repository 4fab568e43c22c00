//! Real processes: a `sapi-reference` server and `sapi-stream` apps, each a process of its own,
//! talking only through the namespace socket, the mqs and the shared fifos.
//!
//! * two apps stream 1 GiB each way, every byte checked by its receiver and the checksums of
//!   both ends compared;
//! * SIGKILL of either app mid-stream: the survivor gets DISCONNECTED or RESET
//!   (`docs/sessions.md` §9.7), its ct segment is deleted, and the server's fds and memfds come
//!   back to what they were;
//! * 100 session pairs at once among 20 app processes, every byte checked, then everything
//!   detaches and the server's fds and memfds come back to what they were.
//!
//! Every wait is bounded and waits for an event (a line, an exit, an admin round trip).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::{Ended, Reference, Stream, TIMEOUT, field};

/// Not a test: the reference server (or its admin client) when a test runs this binary again.
#[test]
#[ignore = "the reference server's process for the other tests, not a test"]
fn child_reference() {
    support::child_reference();
}

fn assert_exit(e: &Ended, code: i32) {
    assert_eq!(
        e.code(),
        Some(code),
        "{} exited {:?}: {e:#?}",
        e.name,
        e.status
    );
}

/// The checksums of one session line: (sent, sent_sum, received, received_sum).
fn sums(line: &str) -> (u64, String, u64, String) {
    (
        field(line, "sent").parse().expect("sent"),
        field(line, "sent_sum").to_string(),
        field(line, "received").parse().expect("received"),
        field(line, "received_sum").to_string(),
    )
}

fn stream_each_way(bytes: &str, tag: &str) {
    let r = Reference::start(tag);
    let baseline = r.counts();
    let sock = r.socket();
    let t0 = Instant::now();
    let server = Stream::spawn("s", &sock, &["server", "--sessions", "1", "--port", "5000"]);
    server.expect("LISTENING", TIMEOUT);
    let client = Stream::spawn(
        "c",
        &sock,
        &[
            "client", "--port", "5000", "--bytes", bytes, "--mode", "duplex",
        ],
    );
    let long = Duration::from_secs(600);
    let c = client.wait(long);
    let s = server.wait(long);
    let wall = t0.elapsed();
    assert_exit(&c, 0);
    assert_exit(&s, 0);
    let (c_sent, c_sent_sum, c_recv, c_recv_sum) = sums(c.line("SESSION 0 DONE verified"));
    let (s_sent, s_sent_sum, s_recv, s_recv_sum) = sums(s.line("SESSION 0 DONE verified"));
    // Each end checked every byte against the stream it expected; the checksums agree across.
    assert_eq!((c_sent, s_recv), (s_sent, c_recv), "{c:#?} {s:#?}");
    assert_eq!(c_sent_sum, s_recv_sum, "client → server checksum");
    assert_eq!(s_sent_sum, c_recv_sum, "server → client checksum");
    assert_eq!(field(c.line("SEGMENTS-RELEASED"), "ct"), "1");
    assert_eq!(field(s.line("SEGMENTS-RELEASED"), "ct"), "1");
    let after = r.await_counts(baseline);
    assert_eq!(
        after, baseline,
        "server (fds, memfds) before {baseline:?}, after {after:?}"
    );
    let summary = c.line("SUMMARY");
    eprintln!(
        "stream {bytes} each way: {} s in the client's loop ({} Gbit/s both ways), {:.2} s wall; \
         server fds/memfds {baseline:?} before and after",
        field(summary, "seconds"),
        field(summary, "gbit_s"),
        wall.as_secs_f64()
    );
}

/// 1 GiB each way between two app processes (~3 s in the test profile on the 2-vCPU VM).
#[test]
fn two_apps_stream_1gib_each_way() {
    stream_each_way("1G", "stream1g");
}

/// SIGKILL of one app of a pair in the middle of a stream: the survivor hears DISCONNECTED or
/// RESET, closes its side, gets its ct segment's DEL_SEGMENT, and the server's fds and memfds
/// are those of the survivor alone, then of nobody once it detaches.
fn sigkill_mid_stream(kill_client: bool, tag: &str) {
    let r = Reference::start(tag);
    let baseline = r.counts();
    let sock = r.socket();
    let t0 = Instant::now();
    let mut server_args = vec!["server", "--sessions", "1", "--port", "5000"];
    let mut client_args = vec![
        "client", "--port", "5000", "--bytes", "1T", "--mode", "duplex",
    ];
    // The victim reports progress (so it is killed mid-stream); the survivor holds before it
    // detaches (so the server can be looked at with the survivor alone attached).
    if kill_client {
        client_args.extend(["--progress", "16M"]);
        server_args.push("--hold");
    } else {
        server_args.extend(["--progress", "16M"]);
        client_args.push("--hold");
    }
    let mut server = Stream::spawn("s", &sock, &server_args);
    server.expect("LISTENING", TIMEOUT);
    r.barrier();
    let one_app = r.counts();
    let per_app = (one_app.0 - baseline.0, one_app.1 - baseline.1);
    let mut client = Stream::spawn("c", &sock, &client_args);
    let (victim, survivor) = if kill_client {
        (&mut client, &mut server)
    } else {
        (&mut server, &mut client)
    };
    victim.expect("PROGRESS", TIMEOUT);
    r.barrier();
    let during = r.counts();
    victim.kill();
    // The survivor sees the peer go: RESET when the victim died with unread data in its rx
    // fifo, DISCONNECTED otherwise (§9.7).
    let gone = survivor.expect("SESSION 0 PEER-", TIMEOUT);
    assert!(
        gone.starts_with("SESSION 0 PEER-RESET (RESET)")
            || gone.starts_with("SESSION 0 PEER-CLOSED (DISCONNECTED)"),
        "{gone}"
    );
    survivor.expect("SEGMENTS-RELEASED ct=1", TIMEOUT);
    survivor.expect("HOLDING", TIMEOUT);
    // The survivor alone is attached: the ct segment and everything of the victim are gone.
    let alone = r.await_counts((baseline.0 + per_app.0, baseline.1 + per_app.1));
    survivor.go();
    let (victim, survivor) = if kill_client {
        (client, server)
    } else {
        (server, client)
    };
    let v = victim.wait(TIMEOUT);
    let s = survivor.wait(TIMEOUT);
    assert!(v.code().is_none(), "the victim died by a signal: {v:#?}");
    assert_exit(&s, 3);
    let summary = s.line("SUMMARY");
    assert_eq!(field(summary, "del_segment"), "1", "{s:#?}");
    let after = r.await_counts(baseline);
    eprintln!(
        "SIGKILL of the {} after {}: survivor saw {:?}; server (fds, memfds): baseline \
         {baseline:?}, one app {one_app:?}, mid-stream {during:?}, survivor alone {alone:?}, \
         after {after:?}; {:.2} s",
        if kill_client { "client" } else { "server" },
        field(v.line("PROGRESS"), "bytes"),
        gone.split_whitespace().nth(2).unwrap_or("?"),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        during.1,
        baseline.1 + 2 * per_app.1 + 1,
        "mid-stream: two apps' segments and one ct segment"
    );
    assert_eq!(
        alone,
        (baseline.0 + per_app.0, baseline.1 + per_app.1),
        "with the survivor alone attached"
    );
    assert_eq!(after, baseline, "after the survivor detached");
}

#[test]
fn sigkill_client_mid_stream() {
    sigkill_mid_stream(true, "killc");
}

#[test]
fn sigkill_server_mid_stream() {
    sigkill_mid_stream(false, "kills");
}

/// 10 listening apps and 10 connecting apps; each client opens one session to every listener,
/// so 100 pairs, each in a ct segment of its own (a distinct listener, client worker and server
/// worker, `docs/sessions.md` §7.3), all open at once before any byte moves.
#[test]
fn hundred_session_pairs_among_twenty_apps() {
    const APPS: usize = 10;
    let r = Reference::start("hundred");
    let baseline = r.counts();
    let sock = r.socket();
    let t0 = Instant::now();
    let ports: Vec<String> = (0..APPS).map(|i| (6000 + i).to_string()).collect();
    let common = ["--fifo-size", "256K", "--idle-timeout", "30"];
    let servers: Vec<Stream> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut args = vec!["server", "--port", p, "--sessions", "10"];
            args.extend(common);
            Stream::spawn(&format!("s{i}"), &sock, &args)
        })
        .collect();
    for s in &servers {
        s.expect("LISTENING", TIMEOUT);
    }
    let all_ports = ports.join(",");
    let mut clients: Vec<Stream> = (0..APPS)
        .map(|i| {
            let seed = (i + 1).to_string();
            let mut args = vec![
                "client",
                "--port",
                &all_ports,
                "--sessions",
                "10",
                "--bytes",
                "8M",
                "--mode",
                "duplex",
                "--seed",
                &seed,
                "--wait-go",
            ];
            args.extend(common);
            Stream::spawn(&format!("c{i}"), &sock, &args)
        })
        .collect();
    for c in &clients {
        c.expect("CONNECTED-ALL sessions=10", TIMEOUT);
    }
    // Every pair exists now: 20 first segments and 100 ct segments beside the baseline's.
    r.barrier();
    let peak = r.counts();
    assert_eq!(
        peak.1,
        baseline.1 + 2 * APPS + APPS * APPS,
        "memfds at the peak"
    );
    let connected = t0.elapsed();
    for c in &mut clients {
        c.go();
    }
    let long = Duration::from_secs(120);
    let ended: Vec<Ended> = clients
        .into_iter()
        .chain(servers)
        .map(|p| p.wait(long))
        .collect();
    let wall = t0.elapsed();
    // Every byte was checked by its receiver; the checksums of each direction match as sets.
    let mut client_sent = BTreeMap::new();
    let mut server_sent = BTreeMap::new();
    let mut client_recv = BTreeMap::new();
    let mut server_recv = BTreeMap::new();
    for e in &ended {
        if e.code() != Some(0) {
            eprintln!("{e:#?}");
        }
    }
    for e in &ended {
        assert_exit(e, 0);
        let done = e.lines_with("SESSION");
        let done: Vec<_> = done
            .iter()
            .filter(|l| l.contains(" DONE verified "))
            .collect();
        assert_eq!(done.len(), 10, "{} completed sessions: {e:#?}", e.name);
        assert_eq!(field(e.line("SEGMENTS-RELEASED"), "ct"), "10", "{e:#?}");
        let client = e.name.starts_with('c');
        for l in done {
            let (_, ss, _, rs) = sums(l);
            let (sent, recv) = if client {
                (&mut client_sent, &mut client_recv)
            } else {
                (&mut server_sent, &mut server_recv)
            };
            *sent.entry(ss).or_insert(0) += 1;
            *recv.entry(rs).or_insert(0) += 1;
        }
    }
    assert_eq!(client_sent.values().sum::<usize>(), 100);
    assert_eq!(client_sent, server_recv, "client → server checksums");
    assert_eq!(server_sent, client_recv, "server → client checksums");
    let after = r.await_counts(baseline);
    eprintln!(
        "100 pairs among 20 apps, 8 MiB each way each: connected in {:.2} s, all done in {:.2} s; \
         server (fds, memfds): baseline {baseline:?}, peak {peak:?}, after {after:?}",
        connected.as_secs_f64(),
        wall.as_secs_f64()
    );
    assert_eq!(after, baseline, "after everything detached");
}
