//! Cut-through sessions between two apps the suite plays itself (`docs/sessions.md`), one
//! scenario per statement of §12.2 a conformance client can check, plus connected UDP and the
//! crash of either app mid-stream.
//!
//! The apps are [`crate::session::App`]s: raw shared memory, the suite's own code. Each scenario
//! listens on a port of its own ([`port`]), so scenarios run side by side in one namespace.
//! Where a statement says something does *not* happen, the app that would have been told makes a
//! round trip first: through the session's own mq ([`App::fence_session`], TRANSPORT_ATTR) when
//! the cause was posted there, else through the ctrl mq ([`App::fence`], an UNLISTEN of a handle
//! nobody has), after something that shows the cause was handled. Everything the server did for
//! that app before the round trip is in its mq before the reply. Every scenario also reports what broke a
//! rule of every message (`postponed` = 0, SEND_FDS before ADD_SEGMENT, sessions §3.2, §3.6).
//!
//! Values that are VPP's choices (segment sizes and names, fifo offsets, handle values) are not
//! checked, only the relations §12.2 states. The seed profile has no session scenarios.
//!
//! Must never: wait without a bound, or judge by time rather than by a round trip.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use super::owned::{Ledger, ServerView};
use super::{Check, Ctx, Scenario, ScenarioError, skip};
use crate::debug_client::HoldLine;
use crate::session::app::{AppOptions, describe};
use crate::session::fifo::{FifoHeader, deq};
use crate::session::msg::{
    self, Accepted, AcceptedReply, Bound, Close, CloseReply, Connect, Connected, Ctrl, Listen,
    PROTO_TCP, PROTO_UDP, ip4, ty,
};
use crate::session::{App, End, Event, SessionError};
use crate::shm;
use crate::wire::Profile;

type Outcome = Result<(), ScenarioError>;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "session.listen.bound",
            "sessions §5.3, §6.1, §12.2 item 1",
            "LISTEN on 127.0.0.1 and on 0.0.0.0 yields exactly one BOUND each: context echoed, retval 0, the address and port, no fifos or segment",
            listen_bound,
        ),
        Scenario::new(
            "session.listen.already_listening",
            "sessions §6.1, §12.2 item 2",
            "a second LISTEN on the same (ip, port, proto) by another app yields BOUND retval -17",
            already_listening,
        ),
        Scenario::new(
            "session.connect.noroute",
            "sessions §7.1, §7.6, §12.2 item 3",
            "CONNECT to a loopback address nobody listens on: CONNECTED retval -6, handle 0, and nothing to any other app",
            noroute,
        ),
        Scenario::new(
            "session.connect.zero_address",
            "sessions §7.1 step 1, §7.6, §12.2 item 4",
            "CONNECT to 0.0.0.0 yields CONNECTED retval -20",
            zero_address,
        ),
        Scenario::new(
            "session.connect.wildcard_fallback",
            "sessions §7.1 step 3, §12.2 item 5",
            "127.0.0.1:P matches a listener on 0.0.0.0:P; 127.0.0.2:P does not match one on 127.0.0.1:P (-6)",
            wildcard_fallback,
        ),
        Scenario::new(
            "session.segment.send_fds_first",
            "sessions §3.6, §7.5, §12.2 item 6",
            "the first connect: SEND_FDS on S's socket before ADD_SEGMENT in S's mq, and ADD_SEGMENT before ACCEPTED",
            send_fds_first,
        ),
        Scenario::new(
            "session.segment.client_handle",
            "sessions §4.3, §7.3, §12.2 item 7",
            "C's ADD_SEGMENT: the low 56 bits of S's handle, a top byte the same for each ct segment of C's worker, the same memfd",
            client_handle,
        ),
        Scenario::new(
            "session.fifo.headers",
            "sessions §7.3, §7.4, §12.2 item 8; shm §2, §3.1, §5.1",
            "the ct segment's headers are valid; ACCEPTED's fifos are fresh 192-byte headers of S's sizes with a first chunk inside",
            fifo_headers,
        ),
        Scenario::new(
            "session.fifo.first_alloc",
            "sessions §7.3, §7.4; shm §2, §3.1, §5.1",
            "as session.fifo.headers, S having attached with PCT_FIRST_ALLOC 50: the ct segment's header says 50 and each fifo's first chunk holds at least half of it",
            fifo_first_alloc,
        ),
        Scenario::new(
            "session.accept.listener_handle",
            "sessions §4.1, §4.2, §4.6, §12.2 item 9",
            "ACCEPTED: listener_handle = BOUND.handle; mq_index = handle >> 32, below the number of server mqs, at vpp_event_queue_address",
            accept_listener_handle,
        ),
        Scenario::new(
            "session.connect.connected_after_accept",
            "sessions §5.10, §7.5, §12.2 item 10",
            "no CONNECTED before ACCEPTED_REPLY; then CONNECTED with the context, the fifos crossed, C's ct segment handle, the shadows, S's mq",
            connected_after_accept,
        ),
        Scenario::new(
            "session.accept.reject",
            "sessions §7.6, §9.5, §12.2 item 11",
            "ACCEPTED_REPLY with retval -2: CONNECTED retval -2 to C, neither DISCONNECTED nor CLEANUP to S",
            accept_reject,
        ),
        Scenario::new(
            "session.accept.wrong_context",
            "sessions §4.5, §12.2 item 12",
            "ACCEPTED_REPLY whose context is not ACCEPTED.context has no effect (no CONNECTED); the right one then works",
            accept_wrong_context,
        ),
        Scenario::new(
            "session.io.rx_once",
            "sessions §8.2, §8.3, §12.2 item 13",
            "C's TX yields one RX {S's app session index} with A's has_event 1 and the shadow TX's 0; a second TX then yields no RX",
            rx_once,
        ),
        Scenario::new(
            "session.io.reader_breaks_its_own_mq",
            "sessions §8.3, §9.7",
            "S zeroes its own app mq's n_rings, then C's TX: C is still served (whatever S gets)",
            reader_breaks_its_own_mq,
        ),
        Scenario::new(
            "session.io.rx_to_c",
            "sessions §8.3, §12.2 item 14",
            "S's TX yields RX {CONNECT.context} to C with C's shadow RX has_event set",
            rx_to_c,
        ),
        Scenario::new(
            "session.io.deq_notification",
            "sessions §8.3 step 4, §8.4, §8.5, §12.2 item 15",
            "C asks for a dequeue notification; S's dequeue and RX {ss} yield TX {C's app session index} to C",
            deq_notification,
        ),
        Scenario::new(
            "session.data.stream_64mib",
            "sessions §8.2, §8.4, §8.6, §12.2 item 16; shm §3.3, §5.3",
            "64 MiB each way through 64 KiB fifos, every byte checked, the fifos growing and both apps recycling chunks",
            stream_64mib,
        ),
        Scenario::new(
            "session.close.disconnect",
            "sessions §5.12, §5.14, §9.2, §12.2 item 17",
            "C's DISCONNECT: DISCONNECTED {S's handle, context = S's api_client_handle} to S, CLEANUP 0 then 1 to C, nothing more about it",
            close_disconnect,
        ),
        Scenario::new(
            "session.close.reset_on_unread",
            "sessions §9.2 step 3, §9.3, §12.2 item 18",
            "DISCONNECT by C with unread data in its rx fifo yields RESET to S, not DISCONNECTED",
            reset_on_unread,
        ),
        Scenario::new(
            "session.close.terminate",
            "sessions §5.15, §9.3, §12.2 item 18",
            "TERMINATE yields RESET to the peer even with nothing unread",
            close_terminate,
        ),
        Scenario::new(
            "session.close.passive_reply",
            "sessions §5.13, §9.4, §12.2 item 19",
            "after DISCONNECTED, S's DISCONNECTED_REPLY yields CLEANUP 0 then 1 for S's handle",
            passive_reply,
        ),
        Scenario::new(
            "session.close.data_before_disconnected",
            "sessions §9.2 step 3, §12.2 item 20",
            "data C wrote and announced before its DISCONNECT reaches S as RX before the DISCONNECTED",
            data_before_disconnected,
        ),
        Scenario::new(
            "session.segment.del_after_both",
            "sessions §9.6, §12.2 item 21",
            "DEL_SEGMENT only after both sides are cleaned up, C's with the client-form handle; the server lets the memfd go",
            del_after_both,
        ),
        Scenario::new(
            "session.shutdown.silent",
            "sessions §5.15, §9.3, §12.2 item 22",
            "SHUTDOWN on a CT session tells neither app anything",
            shutdown_silent,
        ),
        Scenario::new(
            "session.unlisten",
            "sessions §5.5, §6.2, §9.8, §12.2 item 23",
            "UNLISTEN: UNLISTEN_REPLY {context, handle, 0}; the live pair works on; a new connect gets -6; an unknown handle gets -11",
            unlisten,
        ),
        Scenario::new(
            "session.detach.peer_told",
            "sessions §5.16, §9.7, §12.2 item 24",
            "APP_DETACH of C: DISCONNECTED or RESET to S, nothing more in C's mq, the server closes C's socket",
            detach_peer_told,
        ),
        Scenario::new(
            "session.wire.postponed_zero",
            "sessions §3.2 rules 3 and 4, §5.17, §12.2 item 25",
            "a whole lifecycle: every control message has postponed 0 and its type's layout; every io event names the receiver's app session",
            wire_postponed_zero,
        ),
        Scenario::new(
            "session.handles.not_reused_before_cleanup",
            "sessions §4.1, §9.5, §12.2 item 26",
            "over overlapping connects and closes, no handle names a new session of a worker before the CLEANUP 1 of the previous one",
            handles_not_reused,
        ),
        Scenario::new(
            "session.udp.connected",
            "sessions §1, §6.1, §7.1, §8.7",
            "connected UDP (proto 1): listen, connect, one datagram each way with its 47-byte header",
            udp_connected,
        ),
        Scenario::new(
            "session.detach.server_after_accept_reply",
            "sessions §7.6, §9.7; vpp-26.10 §9.9",
            "S closes its socket right after posting ACCEPTED_REPLY: C gets a refused CONNECTED, or CONNECTED then DISCONNECTED or RESET; the server keeps serving",
            |ctx, c| vanish_after_accept_reply(ctx, c, Role::Listen),
        )
        .exclusive(),
        Scenario::new(
            "session.detach.client_after_accept_reply",
            "sessions §7.6, §9.7",
            "C closes its socket while S's ACCEPTED_REPLY is on its way: S's session ends with DISCONNECTED or RESET; the server keeps serving",
            |ctx, c| vanish_after_accept_reply(ctx, c, Role::Connect),
        )
        .exclusive(),
        Scenario::new(
            "session.crash.client_killed",
            "sessions §9.7, §9.6, §9.3; protocol §8.5",
            "SIGKILL of C mid-stream with data unread in its rx fifo: S gets RESET, then CLEANUP and DEL_SEGMENT; the server lets the ct memfd go",
            |ctx, c| crash(ctx, c, Role::Connect),
        )
        .exclusive(),
        Scenario::new(
            "session.crash.server_killed",
            "sessions §9.7, §9.6, §9.2; protocol §8.5",
            "SIGKILL of S mid-stream with its rx fifo drained: C gets DISCONNECTED, then CLEANUP and DEL_SEGMENT; the server lets the ct memfd go",
            |ctx, c| crash(ctx, c, Role::Listen),
        )
        .exclusive(),
    ]
}

/// S's app session index for accepted sessions, and C's CONNECT context (its app session index).
pub const S_ASI: u32 = 0x5a17;
pub const C_CTX: u32 = 0xc0de;
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];
const ANY: [u8; 4] = [0, 0, 0, 0];

fn head_only(ctx: &Ctx) -> Outcome {
    if ctx.profile == Profile::Seed {
        return skip(
            "the session layer is documented and checked at head only (docs/sessions.md follows head's numbering and layouts); the seed profile has no session scenarios",
        );
    }
    Ok(())
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A port no other scenario of this run uses (20000..60000, offset by the suite's pid so two
/// runs against one server rarely meet).
pub fn port() -> u16 {
    let base = (std::process::id() % 1000) as u16 * 37;
    20000 + (base + NEXT_PORT.fetch_add(1, Ordering::Relaxed)) % 40000
}

fn app(ctx: &Ctx, role: &str) -> Result<App, ScenarioError> {
    app_with(ctx, role, AppOptions::default())
}

fn app_with(ctx: &Ctx, role: &str, opts: AppOptions) -> Result<App, ScenarioError> {
    let mut name = format!("{}-{role}", ctx.app_name());
    if name.len() > 63 {
        name = format!("conf-s-{role}-{}", std::process::id());
    }
    Ok(App::attach(
        ctx.target.endpoint(),
        &name,
        opts,
        ctx.timeout,
    )?)
}

fn listen_req(a: &App, ip: [u8; 4], port: u16, proto: u8, context: u32) -> Listen {
    Listen {
        client_index: a.api_client_handle(),
        context,
        wrk_index: 0,
        port,
        proto,
        is_ip4: 1,
        ip: ip4(ip),
        flags: if proto == PROTO_UDP {
            msg::CFG_F_CONNECTED
        } else {
            0
        },
    }
}

/// LISTEN and the BOUND with its context (any retval).
fn listen(
    a: &mut App,
    ip: [u8; 4],
    port: u16,
    proto: u8,
    context: u32,
) -> Result<(Bound, Vec<Event>), ScenarioError> {
    a.post(a.ctrl_mq(), &listen_req(a, ip, port, proto, context))?;
    let (ev, before) = a.expect(
        "BOUND",
        |e| matches!(e.ctrl(), Some(Ctrl::Bound(b)) if b.context == context),
    )?;
    match ev.ctrl() {
        Some(Ctrl::Bound(b)) => Ok((*b, before)),
        _ => Err(ScenarioError::Setup("BOUND expected".into())),
    }
}

/// LISTEN that must succeed.
fn listen_ok(a: &mut App, ip: [u8; 4], port: u16, proto: u8) -> Result<Bound, ScenarioError> {
    let (b, _) = listen(a, ip, port, proto, 0x1157)?;
    if b.retval != 0 {
        return Err(ScenarioError::Setup(format!(
            "setup LISTEN on {ip:?}:{port} failed: BOUND retval {}",
            b.retval
        )));
    }
    Ok(b)
}

fn connect(a: &App, ip: [u8; 4], port: u16, proto: u8, context: u32) -> Outcome {
    a.post(
        a.ctrl_mq(),
        &Connect {
            client_index: a.api_client_handle(),
            context,
            wrk_index: 0,
            port,
            proto,
            is_ip4: 1,
            ip: ip4(ip),
            flags: msg::CFG_F_CONNECTED,
        },
    )?;
    Ok(())
}

fn expect_connected(a: &mut App, context: u32) -> Result<(Connected, Vec<Event>), ScenarioError> {
    let (ev, before) = a.expect(
        "CONNECTED",
        |e| matches!(e.ctrl(), Some(Ctrl::Connected(m)) if m.context == context),
    )?;
    match ev.ctrl() {
        Some(Ctrl::Connected(m)) => Ok((*m, before)),
        _ => Err(ScenarioError::Setup("CONNECTED expected".into())),
    }
}

fn expect_accepted(a: &mut App) -> Result<(Accepted, Vec<Event>), ScenarioError> {
    let (ev, before) = a.expect("ACCEPTED", |e| matches!(e.ctrl(), Some(Ctrl::Accepted(_))))?;
    match ev.ctrl() {
        Some(Ctrl::Accepted(m)) => Ok((*m, before)),
        _ => Err(ScenarioError::Setup("ACCEPTED expected".into())),
    }
}

fn accept_reply(s: &App, a: &Accepted, context: u32, retval: i32) -> Outcome {
    s.post(
        a.mq_index,
        &AcceptedReply {
            context,
            retval,
            handle: a.handle,
            app_session_index: S_ASI,
        },
    )?;
    Ok(())
}

/// Posts a DISCONNECT, SHUTDOWN or TERMINATE for `end` from `a`.
fn close(a: &App, end: &End, t: u8) -> Outcome {
    let (t, body) = Close {
        ty: t,
        client_index: a.api_client_handle(),
        handle: end.handle,
    }
    .encode();
    a.post_raw(end.mq_index, t, &body)?;
    Ok(())
}

/// Posts DISCONNECTED_REPLY or RESET_REPLY for `end` from `a`.
fn close_reply(a: &App, end: &End, t: u8) -> Outcome {
    let (t, body) = CloseReply {
        ty: t,
        context: a.api_client_handle(),
        retval: 0,
        handle: end.handle,
    }
    .encode();
    a.post_raw(end.mq_index, t, &body)?;
    Ok(())
}

/// Two apps and an established pair between them.
struct Pair {
    s: App,
    c: App,
    port: u16,
    bound: Bound,
    accepted: Accepted,
    connected: Connected,
    /// S's messages before ACCEPTED, and C's before CONNECTED.
    s_before: Vec<Event>,
    c_before: Vec<Event>,
    s_end: End,
    c_end: End,
}

/// Two apps and an established pair between them. The scenarios that move data through it
/// fail on the bytes when C's fifos are not ACCEPTED's crossed (sessions §5.10; only
/// `session.connect.connected_after_accept` checks that relation itself): `check` gets a note
/// that says why.
fn pair(ctx: &Ctx, check: &mut Check, proto: u8) -> Result<Pair, ScenarioError> {
    pair_with(ctx, check, proto, AppOptions::default())
}

fn pair_with(
    ctx: &Ctx,
    check: &mut Check,
    proto: u8,
    s_opts: AppOptions,
) -> Result<Pair, ScenarioError> {
    let mut s = app_with(ctx, "s", s_opts)?;
    let mut c = app(ctx, "c")?;
    let port = port();
    let bound = listen_ok(&mut s, LOOPBACK, port, proto)?;
    connect(&c, LOOPBACK, port, proto, C_CTX)?;
    let (accepted, s_before) = expect_accepted(&mut s)?;
    accept_reply(&s, &accepted, accepted.context, 0)?;
    let (connected, c_before) = expect_connected(&mut c, C_CTX)?;
    if connected.retval != 0 {
        return Err(ScenarioError::Setup(format!(
            "setup connect: CONNECTED retval {}",
            connected.retval
        )));
    }
    let crossed = (accepted.server_tx_fifo, accepted.server_rx_fifo);
    if (connected.ct_rx_fifo, connected.ct_tx_fifo) != crossed {
        check.note(format!(
            "C's CONNECTED has ct_rx_fifo {:#x} and ct_tx_fifo {:#x}, not ACCEPTED's server_tx_fifo {:#x} and server_rx_fifo {:#x} (sessions §5.10): C reads and writes other fifos than S writes and reads",
            connected.ct_rx_fifo, connected.ct_tx_fifo, crossed.0, crossed.1
        ));
    }
    let s_end = s.server_end(&accepted, S_ASI)?;
    let c_end = c.client_end(&connected, C_CTX)?;
    Ok(Pair {
        s,
        c,
        port,
        bound,
        accepted,
        connected,
        s_before,
        c_before,
        s_end,
        c_end,
    })
}

/// Reports the rules every message must keep, for each app.
fn finish(c: &mut Check, apps: &[&App]) {
    for a in apps {
        c.all(a.violations.clone());
    }
}

fn none_about(c: &mut Check, who: &str, events: &[Event], handle: u64, what: &str) {
    let bad: Vec<Event> = events
        .iter()
        .filter(|e| e.ctrl().and_then(Ctrl::session_handle) == Some(handle))
        .cloned()
        .collect();
    c.that(
        bad.is_empty(),
        format!(
            "{who}: {what}, observed about handle {handle:#x}: {}",
            describe(&bad)
        ),
    );
}

/// Waits for an RX or TX io event with `session_index` in `a`'s mq.
fn expect_io(a: &mut App, t: u8, session_index: u32) -> Result<(Event, Vec<Event>), ScenarioError> {
    let what = format!("io {} {{session_index {session_index:#x}}}", ty::name(t));
    Ok(a.expect(&what, |e| {
        e.io()
            .is_some_and(|io| io.ty == t && io.session_index == session_index)
    })?)
}

fn listen_bound(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut s = app(ctx, "s")?;
    for (ip, context) in [(LOOPBACK, 0x0b01), (ANY, 0x0b02)] {
        let p = port();
        let (b, before) = listen(&mut s, ip, p, PROTO_TCP, context)?;
        let what = format!("BOUND to LISTEN on {ip:?}:{p}");
        c.that(
            before.is_empty(),
            format!("{what}: messages before it: {}", describe(&before)),
        );
        c.retval(&format!("{what}: retval"), ctx.profile, 0, b.retval);
        c.eq(&format!("{what}: context"), context, b.context);
        c.eq(&format!("{what}: lcl_is_ip4"), 1, b.lcl_is_ip4);
        c.eq(&format!("{what}: lcl_ip"), ip4(ip), b.lcl_ip);
        c.eq(&format!("{what}: lcl_port"), p, b.lcl_port);
        c.eq(
            &format!("{what}: rx_fifo, tx_fifo, segment_handle"),
            (0, 0, 0),
            (b.rx_fifo, b.tx_fifo, b.segment_handle),
        );
        c.that(
            s.log.last().is_some_and(|e| e.ring == 1),
            format!("{what}: not in ring 1"),
        );
        let after = s.fence()?;
        let more: Vec<Event> = after
            .into_iter()
            .filter(|e| matches!(e.ctrl(), Some(Ctrl::Bound(_))))
            .collect();
        c.that(
            more.is_empty(),
            format!("{what}: a second BOUND: {}", describe(&more)),
        );
    }
    finish(c, &[&s]);
    Ok(())
}

fn already_listening(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut s = app(ctx, "s")?;
    let mut o = app(ctx, "o")?;
    let p = port();
    listen_ok(&mut s, LOOPBACK, p, PROTO_TCP)?;
    let (b, _) = listen(&mut o, LOOPBACK, p, PROTO_TCP, 0x0a17)?;
    c.retval(
        "BOUND to another app's LISTEN on the same (127.0.0.1, port, TCP)",
        ctx.profile,
        -17,
        b.retval,
    );
    c.eq("that BOUND's context", 0x0a17, b.context);
    finish(c, &[&s, &o]);
    Ok(())
}

fn noroute(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    // A bystander listening elsewhere must hear nothing of the failed connect.
    let mut x = app(ctx, "x")?;
    listen_ok(&mut x, LOOPBACK, port(), PROTO_TCP)?;
    let mut cl = app(ctx, "c")?;
    let p = port();
    connect(&cl, LOOPBACK, p, PROTO_TCP, C_CTX)?;
    let (m, before) = expect_connected(&mut cl, C_CTX)?;
    c.retval(
        &format!("CONNECTED to 127.0.0.1:{p} (no listener)"),
        ctx.profile,
        -6,
        m.retval,
    );
    c.eq("that CONNECTED's handle", 0, m.handle);
    c.that(
        before.is_empty(),
        format!("C got messages before CONNECTED: {}", describe(&before)),
    );
    let xs = x.fence()?;
    c.that(
        xs.is_empty(),
        format!("another app was told something: {}", describe(&xs)),
    );
    finish(c, &[&x, &cl]);
    Ok(())
}

fn zero_address(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut s = app(ctx, "s")?;
    let p = port();
    listen_ok(&mut s, ANY, p, PROTO_TCP)?;
    let mut cl = app(ctx, "c")?;
    connect(&cl, ANY, p, PROTO_TCP, C_CTX)?;
    let (m, _) = expect_connected(&mut cl, C_CTX)?;
    c.retval(
        &format!("CONNECTED to 0.0.0.0:{p} (a listener on 0.0.0.0:{p})"),
        ctx.profile,
        -20,
        m.retval,
    );
    let ss = s.fence()?;
    c.that(
        ss.is_empty(),
        format!("the listener was told something: {}", describe(&ss)),
    );
    finish(c, &[&s, &cl]);
    Ok(())
}

fn wildcard_fallback(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut s = app(ctx, "s")?;
    let mut cl = app(ctx, "c")?;
    let p = port();
    let b = listen_ok(&mut s, ANY, p, PROTO_TCP)?;
    connect(&cl, LOOPBACK, p, PROTO_TCP, C_CTX)?;
    let (a, _) = expect_accepted(&mut s)?;
    c.that(
        a.listener_handle == b.handle,
        format!(
            "ACCEPTED for 127.0.0.1:{p}: listener_handle {:#x} is not BOUND.handle {:#x} of the 0.0.0.0:{p} listener",
            a.listener_handle, b.handle
        ),
    );
    accept_reply(&s, &a, a.context, 0)?;
    let (m, _) = expect_connected(&mut cl, C_CTX)?;
    c.retval(
        "CONNECTED to 127.0.0.1:P with a listener on 0.0.0.0:P",
        ctx.profile,
        0,
        m.retval,
    );
    let p2 = port();
    listen_ok(&mut s, LOOPBACK, p2, PROTO_TCP)?;
    connect(&cl, [127, 0, 0, 2], p2, PROTO_TCP, C_CTX + 1)?;
    let (m2, _) = expect_connected(&mut cl, C_CTX + 1)?;
    c.retval(
        "CONNECTED to 127.0.0.2:P2 with a listener on 127.0.0.1:P2 only",
        ctx.profile,
        -6,
        m2.retval,
    );
    finish(c, &[&s, &cl]);
    Ok(())
}

fn send_fds_first(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let p = pair(ctx, c, PROTO_TCP)?;
    let h = p.accepted.segment_handle;
    match p.s.segments.get(&h) {
        None => c.fail(format!(
            "S got no ADD_SEGMENT for ACCEPTED.segment_handle {h:#x} before ACCEPTED; before it: {}",
            describe(&p.s_before)
        )),
        Some(info) => {
            c.that(
                info.send_fds_first,
                format!("S's ADD_SEGMENT {h:#x} was visible before its SEND_FDS was on S's socket"),
            );
            c.that(
                p.s_before.iter().any(|e| e.seq == info.seq),
                format!(
                    "S's ADD_SEGMENT {h:#x} (#{}) did not come before ACCEPTED in S's mq",
                    info.seq
                ),
            );
        }
    }
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

/// C's ADD_SEGMENT for the ct segment whose server handle is `h` (same low 56 bits).
fn client_copy(cl: &App, h: u64) -> Option<(u64, &crate::session::app::SegmentInfo)> {
    cl.segments
        .iter()
        .find(|(k, _)| *k & LOW56 == h & LOW56)
        .map(|(k, v)| (*k, v))
}

const LOW56: u64 = (1 << 56) - 1;

fn client_handle(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    let h = p.accepted.segment_handle;
    let Some((hc, info)) = client_copy(&p.c, h) else {
        c.fail(format!(
            "C got no ADD_SEGMENT with the low 56 bits of S's {h:#x}; C's segments: {:#x?}",
            p.c.segments.keys().collect::<Vec<_>>()
        ));
        finish(c, &[&p.s, &p.c]);
        return Ok(());
    };
    c.that(
        hc >> 56 < 0xff,
        format!("C's ct segment handle {hc:#x} has top byte 0xff (sessions §4.3)"),
    );
    if let Some(si) = p.s.segments.get(&h) {
        c.eq(
            "the memfd inode of S's and C's ct segment",
            si.shm.inode,
            info.shm.inode,
        );
    }
    // A second listener: a second ct segment for the same client worker.
    let p2 = port();
    listen_ok(&mut p.s, LOOPBACK, p2, PROTO_TCP)?;
    connect(&p.c, LOOPBACK, p2, PROTO_TCP, C_CTX + 1)?;
    let (a2, _) = expect_accepted(&mut p.s)?;
    accept_reply(&p.s, &a2, a2.context, 0)?;
    let (m2, _) = expect_connected(&mut p.c, C_CTX + 1)?;
    let h2 = a2.segment_handle;
    if h2 & LOW56 == h & LOW56 {
        c.note("the second listener's pair shares the first ct segment: the top byte is checked on one segment only");
    }
    match client_copy(&p.c, h2) {
        Some((hc2, _)) => {
            c.eq(
                "top byte of C's handles for two ct segments of one client worker",
                hc >> 56,
                hc2 >> 56,
            );
            c.eq(
                "CONNECTED.ct_segment_handle of the second pair = C's ADD_SEGMENT handle",
                hc2,
                m2.ct_segment_handle,
            );
        }
        None => c.fail(format!(
            "C got no ADD_SEGMENT for the second ct segment {h2:#x}"
        )),
    }
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn fifo_headers(ctx: &Ctx, c: &mut Check) -> Outcome {
    fifo_headers_of(ctx, c, 0)
}

/// The ct segment's and ACCEPTED's fifos' headers, S having sent PCT_FIRST_ALLOC `pct` (0: none,
/// as VCL).
fn fifo_headers_of(ctx: &Ctx, c: &mut Check, pct: u64) -> Outcome {
    head_only(ctx)?;
    let opts = AppOptions {
        rx_fifo_size: 64 << 10,
        tx_fifo_size: 16 << 10,
        pct_first_alloc: pct,
        ..AppOptions::default()
    };
    let mut s = app_with(ctx, "s", opts)?;
    let cl = app(ctx, "c")?;
    let p = port();
    listen_ok(&mut s, LOOPBACK, p, PROTO_TCP)?;
    connect(&cl, LOOPBACK, p, PROTO_TCP, C_CTX)?;
    let (a, _) = expect_accepted(&mut s)?;
    // Read before anyone touches the fifos (S has not replied, C has no CONNECTED).
    let seg = s.segment(a.segment_handle, "ACCEPTED.segment_handle")?;
    let info = s
        .segments
        .get(&a.segment_handle)
        .map(|i| i.file_size)
        .unwrap_or(0);
    for v in shm::ssvm_violations(&seg.seg.ssvm, info) {
        c.fail(format!("ct segment: {v}"));
    }
    for v in shm::fsh_violations(&seg.seg.fsh, &seg.seg) {
        c.fail(format!("ct segment: {v}"));
    }
    c.eq(
        "ct segment: pct_first_alloc = S's PCT_FIRST_ALLOC (0 if none)",
        pct,
        u64::from(seg.seg.fsh.pct_first_alloc),
    );
    c.note(format!(
        "ct segment: ssvm_size {:#x} (VPP: at least 128 MiB; not checked), n_slices {}",
        seg.seg.ssvm.ssvm_size, seg.seg.fsh.n_slices
    ));
    for (name, at, want) in [
        ("fifo A (S's rx)", a.server_rx_fifo, 64u32 << 10),
        ("fifo B (S's tx)", a.server_tx_fifo, 16u32 << 10),
    ] {
        let h = match FifoHeader::read(&seg, at) {
            Ok(h) => h,
            Err(e) => {
                c.fail(format!("{name} at {at:#x}: {e}"));
                continue;
            }
        };
        c.eq(
            &format!("{name}: size (S's option, ≥ 4096)"),
            want.max(4096),
            h.size,
        );
        c.eq(&format!("{name}: head, tail"), (0, 0), (h.head, h.tail));
        c.eq(
            &format!("{name}: has_event, want_deq_ntf, has_deq_ntf, deq_thresh"),
            (0, 0, 0, 0),
            (h.has_event, h.want_deq_ntf, h.has_deq_ntf, h.deq_thresh),
        );
        c.that(
            h.slice_index < seg.seg.fsh.n_slices,
            format!(
                "{name}: slice_index {} ≥ n_slices {}",
                h.slice_index, seg.seg.fsh.n_slices
            ),
        );
        c.that(
            h.start_chunk == h.head_chunk && h.start_chunk == h.tail_chunk,
            format!(
                "{name}: start_chunk {:#x}, head_chunk {:#x}, tail_chunk {:#x} differ in a fresh fifo",
                h.start_chunk, h.head_chunk, h.tail_chunk
            ),
        );
        let inside = h.start_chunk >= (shm::fsh::HEADER_LEN as u64)
            && h.start_chunk.saturating_add(24) <= seg.span_len();
        c.that(
            inside,
            format!(
                "{name}: start_chunk {:#x} is not a chunk inside the segment ({:#x} bytes past the header)",
                h.start_chunk,
                seg.span_len()
            ),
        );
        if inside {
            let mut ch = [0u8; 24];
            seg.read(h.start_chunk, &mut ch, "first chunk")?;
            let start_byte = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]);
            let length = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
            c.eq(&format!("{name}: first chunk start_byte"), 0, start_byte);
            // VPP's first chunk for S's PCT_FIRST_ALLOC; a larger one (the whole fifo) is allowed.
            let least = (u64::from(want) * pct / 100).max(4096).next_power_of_two();
            c.that(
                u64::from(length) >= least
                    && h.start_chunk.saturating_add(24 + u64::from(length)) <= seg.span_len(),
                format!(
                    "{name}: first chunk length {length} (expected ≥ {least}: {pct}% of {want} rounded up to a power of two, at least 4096; inside the segment)"
                ),
            );
        }
    }
    accept_reply(&s, &a, a.context, 0)?;
    let mut cl = cl;
    expect_connected(&mut cl, C_CTX)?;
    finish(c, &[&s, &cl]);
    Ok(())
}

/// S asks for half of each fifo up front: the ct segment's header carries it, and each fifo's
/// first chunk is at least VPP's max(pct × size / 100, 4096) rounded up to a power of two (a
/// server MAY give the whole fifo at once, sessions §7.4).
fn fifo_first_alloc(ctx: &Ctx, c: &mut Check) -> Outcome {
    fifo_headers_of(ctx, c, 50)
}

fn accept_listener_handle(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let p = pair(ctx, c, PROTO_TCP)?;
    let a = &p.accepted;
    c.that(
        a.listener_handle == p.bound.handle,
        format!(
            "ACCEPTED.listener_handle {:#x} is not BOUND.handle {:#x} (sessions §4.2: VCL drops an ACCEPTED that names none of its listeners)",
            a.listener_handle, p.bound.handle
        ),
    );
    c.eq(
        "ACCEPTED.mq_index = ACCEPTED.handle >> 32",
        a.handle >> 32,
        u64::from(a.mq_index),
    );
    match p.s.mq_offset(a.mq_index) {
        Some(off) => {
            c.eq(
                "ACCEPTED.vpp_event_queue_address = the offset of server mq mq_index",
                off,
                a.vpp_event_queue_address,
            );
            c.eq(
                "CONNECTED.vpp_event_queue_address = the same mq's offset",
                off,
                p.connected.vpp_event_queue_address,
            );
        }
        None => c.fail(format!(
            "ACCEPTED.mq_index {} is not below the number of server mqs ({})",
            a.mq_index,
            p.s.server_mqs.len()
        )),
    }
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn connected_after_accept(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut s = app(ctx, "s")?;
    let mut cl = app(ctx, "c")?;
    let p = port();
    listen_ok(&mut s, LOOPBACK, p, PROTO_TCP)?;
    connect(&cl, LOOPBACK, p, PROTO_TCP, C_CTX)?;
    let (a, _) = expect_accepted(&mut s)?;
    let early = cl.fence()?;
    let connected_early: Vec<Event> = early
        .iter()
        .filter(|e| matches!(e.ctrl(), Some(Ctrl::Connected(_))))
        .cloned()
        .collect();
    c.that(
        connected_early.is_empty(),
        format!(
            "C got CONNECTED before S sent ACCEPTED_REPLY: {}",
            describe(&connected_early)
        ),
    );
    accept_reply(&s, &a, a.context, 0)?;
    let (m, _) = expect_connected(&mut cl, C_CTX)?;
    c.retval("CONNECTED retval", ctx.profile, 0, m.retval);
    c.eq("CONNECTED.context = CONNECT.context", C_CTX, m.context);
    // C reads what S writes (B) and writes what S reads (A).
    c.that(
        m.ct_rx_fifo == a.server_tx_fifo,
        format!(
            "CONNECTED.ct_rx_fifo {:#x} is not ACCEPTED.server_tx_fifo {:#x} (fifo B, which S writes)",
            m.ct_rx_fifo, a.server_tx_fifo
        ),
    );
    c.that(
        m.ct_tx_fifo == a.server_rx_fifo,
        format!(
            "CONNECTED.ct_tx_fifo {:#x} is not ACCEPTED.server_rx_fifo {:#x} (fifo A, which S reads)",
            m.ct_tx_fifo, a.server_rx_fifo
        ),
    );
    match client_copy(&cl, a.segment_handle) {
        Some((hc, _)) => {
            c.eq(
                "CONNECTED.ct_segment_handle = the handle of C's ADD_SEGMENT",
                hc,
                m.ct_segment_handle,
            );
        }
        None => c.fail(format!(
            "C got no ADD_SEGMENT for the ct segment {:#x}",
            a.segment_handle
        )),
    }
    c.eq(
        "CONNECTED.mq_index = ACCEPTED.mq_index",
        a.mq_index,
        m.mq_index,
    );
    match cl.segment(m.segment_handle, "CONNECTED.segment_handle") {
        Ok(seg) => {
            for (name, at) in [
                ("shadow RX", m.server_rx_fifo),
                ("shadow TX", m.server_tx_fifo),
            ] {
                c.that(
                    at >= shm::fsh::HEADER_LEN as u64
                        && at.is_multiple_of(64)
                        && at.saturating_add(192) <= seg.span_len(),
                    format!(
                        "{name} at {at:#x}: not a 64-byte aligned 192-byte header inside C's segment {:#x} ({:#x} bytes)",
                        m.segment_handle,
                        seg.span_len()
                    ),
                );
            }
            c.that(
                m.server_rx_fifo.abs_diff(m.server_tx_fifo) >= 192,
                format!(
                    "shadow RX {:#x} and shadow TX {:#x} overlap",
                    m.server_rx_fifo, m.server_tx_fifo
                ),
            );
        }
        Err(e) => c.fail(format!("the shadows' segment: {e}")),
    }
    finish(c, &[&s, &cl]);
    Ok(())
}

fn accept_reject(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut s = app(ctx, "s")?;
    let mut cl = app(ctx, "c")?;
    let p = port();
    listen_ok(&mut s, LOOPBACK, p, PROTO_TCP)?;
    connect(&cl, LOOPBACK, p, PROTO_TCP, C_CTX)?;
    let (a, _) = expect_accepted(&mut s)?;
    let from = s.log.len();
    accept_reply(&s, &a, a.context, -2)?;
    let (m, _) = expect_connected(&mut cl, C_CTX)?;
    c.retval(
        "CONNECTED after S rejected (ACCEPTED_REPLY retval -2)",
        ctx.profile,
        -2,
        m.retval,
    );
    s.fence()?;
    let told = s.about(a.handle, from);
    none_about(
        c,
        "S",
        &told,
        a.handle,
        "expected neither DISCONNECTED nor CLEANUP for a rejected accept",
    );
    finish(c, &[&s, &cl]);
    Ok(())
}

fn accept_wrong_context(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut s = app(ctx, "s")?;
    let mut cl = app(ctx, "c")?;
    let p = port();
    listen_ok(&mut s, LOOPBACK, p, PROTO_TCP)?;
    connect(&cl, LOOPBACK, p, PROTO_TCP, C_CTX)?;
    let (a, _) = expect_accepted(&mut s)?;
    accept_reply(&s, &a, a.context ^ 0x00ff_0f0f, 0)?;
    // S's round trip through the session's mq shows the reply handled; C's through the ctrl
    // mq, made after it, shows C everything the server queued for it meanwhile.
    let se = s.server_end(&a, S_ASI)?;
    s.fence_session(&se)?;
    let seen = cl.fence()?;
    let connected: Vec<Event> = seen
        .iter()
        .filter(|e| matches!(e.ctrl(), Some(Ctrl::Connected(_))))
        .cloned()
        .collect();
    c.that(
        connected.is_empty(),
        format!(
            "an ACCEPTED_REPLY with context {:#x} (ACCEPTED.context {:#x}) had an effect: {}",
            a.context ^ 0x00ff_0f0f,
            a.context,
            describe(&connected)
        ),
    );
    accept_reply(&s, &a, a.context, 0)?;
    let (m, _) = expect_connected(&mut cl, C_CTX)?;
    c.retval(
        "CONNECTED after the right ACCEPTED_REPLY",
        ctx.profile,
        0,
        m.retval,
    );
    finish(c, &[&s, &cl]);
    Ok(())
}

fn rx_once(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    let data = [0x42u8; 1000];
    let n = p.c_end.write_only(&data)?;
    c.eq("bytes C enqueued into A", data.len(), n);
    let was = p.c_end.tx.signals.set_event()?;
    c.eq("the shadow TX's has_event before C's first TX", 0, was);
    p.c.post_io(p.c_end.mq_index, ty::TX, p.c_end.vpp_index())?;
    let (_, before) = expect_io(&mut p.s, ty::RX, S_ASI)?;
    c.that(
        before.is_empty(),
        format!("S got other messages before its RX: {}", describe(&before)),
    );
    c.eq(
        "A's has_event (S's rx signals) after the RX",
        1,
        p.s_end.rx.signals.has_event()?,
    );
    c.eq(
        "the shadow TX's has_event after the relay",
        0,
        p.c_end.tx.signals.has_event()?,
    );
    // A second TX while A's has_event is still 1: no second RX.
    p.c_end.write_only(&data)?;
    p.c_end.tx.signals.set_event()?;
    p.c.post_io(p.c_end.mq_index, ty::TX, p.c_end.vpp_index())?;
    let more = p.s.fence_session(&p.s_end)?;
    let rx: Vec<Event> = more.into_iter().filter(|e| e.io().is_some()).collect();
    c.that(
        rx.is_empty(),
        format!(
            "a second TX while A's has_event was 1 yielded io events to S: {}",
            describe(&rx)
        ),
    );
    let got = p.s_end.drain(&p.s)?;
    c.eq("bytes S read from A", 2 * data.len(), got.len());
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

/// The RX a TX relay owes S goes into an mq S broke: whatever the server makes of that (VPP,
/// which read the geometry once at attach, posts as before; the reference detaches S), the
/// writer C did nothing wrong and must keep being served. The reference once blamed C.
fn reader_breaks_its_own_mq(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    let n_rings = p.s.reply.app_mq + crate::shm::mq::N_RINGS as u64;
    p.s.first
        .write(n_rings, &0u32.to_le_bytes(), "S's app mq n_rings")
        .map_err(SessionError::from)?;
    let (n, posted) = p.c_end.send(&p.c, &[9u8; 1000])?;
    c.that(
        n == 1000 && posted,
        format!("C's write: {n} bytes, TX posted {posted}"),
    );
    // The fence goes through C's ctrl mq: when that is the mq its TX went through, the server
    // takes the fence up after the relay (one consumer, queue order); otherwise a second fence
    // comes after at least one more pass over every mq.
    let same_mq = p.c_end.mq_index == p.c.ctrl_mq();
    for _ in 0..if same_mq { 1 } else { 2 } {
        if let Err(e) = p.c.fence() {
            c.fail(format!(
                "C, whose TX went into a session whose reader broke its own mq, was not served \
                 afterwards: {e}"
            ));
            break;
        }
    }
    finish(c, &[&p.c]);
    Ok(())
}

fn rx_to_c(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let (n, posted) = p.s_end.send(&p.s, &data)?;
    c.eq("bytes S enqueued into B", data.len(), n);
    c.that(posted, "S's first write found B's has_event already set");
    let (_, before) = expect_io(&mut p.c, ty::RX, C_CTX)?;
    c.that(
        before.is_empty(),
        format!("C got other messages before its RX: {}", describe(&before)),
    );
    c.eq(
        "the has_event of C's shadow RX after the RX",
        1,
        p.c_end.rx.signals.has_event()?,
    );
    c.eq(
        "B's has_event (S's tx signals) after the relay",
        0,
        p.s_end.tx.signals.has_event()?,
    );
    let got = p.c_end.drain(&p.c)?;
    c.that(got == data, "C read other bytes than S wrote");
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn deq_notification(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    p.c_end.tx.signals.want_deq(deq::WANT_DEQ_NOTIF)?;
    let (n, posted) = p.c_end.send(&p.c, &[7u8; 2048])?;
    c.that(
        n == 2048 && posted,
        format!("C's write: {n} bytes, TX posted {posted}"),
    );
    expect_io(&mut p.s, ty::RX, S_ASI)?;
    let want = p.s_end.rx.signals.want_deq_ntf()?;
    c.that(
        want & deq::WANT_DEQ_NOTIF != 0,
        format!("A's want_deq_ntf after the TX relay = {want:#x}, expected bit 1 passed on from C's shadow TX"),
    );
    let mut buf = vec![0u8; 4096];
    let (got, notified) = p.s_end.recv(&p.s, &mut buf)?;
    c.eq("bytes S dequeued", 2048, got);
    if !notified {
        c.fail("S's dequeue found no request for a notification in A's want_deq_ntf, so S posted no RX");
        // Post it anyway, so the relay of the notification itself is still checked.
        p.s.post_io(p.s_end.mq_index, ty::RX, p.s_end.vpp_index())?;
    }
    let (_, before) = expect_io(&mut p.c, ty::TX, C_CTX)?;
    c.that(
        before.is_empty(),
        format!("C got other messages before its TX: {}", describe(&before)),
    );
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

/// The byte at stream position `i` of direction `dir`.
fn stream_byte(dir: u64, i: u64) -> u8 {
    let x = (i ^ dir.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    (x >> 29) as u8
}

/// Waits until either app's mq has a message (eventfds drained first), at most `within`.
fn wait_any(apps: [&App; 2], within: Duration) -> Result<bool, ScenarioError> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let deadline = Instant::now() + within;
    loop {
        for a in apps {
            let mut b = [0u8; 8];
            let _ = nix::unistd::read(a.mq.eventfd(), &mut b);
        }
        for a in apps {
            if a.mq.queued().map_err(SessionError::from)? > 0 {
                return Ok(true);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut fds = [
            PollFd::new(apps[0].mq.eventfd().as_fd(), PollFlags::POLLIN),
            PollFd::new(apps[1].mq.eventfd().as_fd(), PollFlags::POLLIN),
        ];
        let ms = left.as_millis().clamp(1, 60_000) as u16;
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(ScenarioError::Setup(format!(
                    "poll on the mq eventfds: {e}"
                )));
            }
        }
    }
}

fn stream_64mib(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    const TOTAL: u64 = 64 << 20;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    let ct =
        p.s.segment(p.accepted.segment_handle, "ACCEPTED.segment_handle")?;
    let byte_index_before = p.s_end.tx.alloc.byte_index()?;
    // Direction 0: C → S through A; direction 1: S → C through B.
    let mut sent = [0u64; 2];
    let mut got = [0u64; 2];
    let mut ready = [false; 2];
    let mut buf = vec![0u8; 96 << 10];
    let mut rbuf = vec![0u8; 96 << 10];
    let mut rx_events = [0u64; 2];
    let started = Instant::now();
    while got[0] < TOTAL || got[1] < TOTAL {
        let mut progress = false;
        for (dir, done) in sent.iter_mut().enumerate() {
            if *done >= TOTAL {
                continue;
            }
            let k = ((TOTAL - *done) as usize).min(buf.len());
            for (i, b) in buf[..k].iter_mut().enumerate() {
                *b = stream_byte(dir as u64, *done + i as u64);
            }
            let (n, _) = if dir == 0 {
                p.c_end.send(&p.c, &buf[..k])?
            } else {
                p.s_end.send(&p.s, &buf[..k])?
            };
            *done += n as u64;
            progress |= n > 0;
        }
        for (dir, (app, asi)) in [(&mut p.s, S_ASI), (&mut p.c, C_CTX)]
            .into_iter()
            .enumerate()
        {
            while let Some(ev) = app.next(Duration::ZERO)? {
                progress = true;
                match ev.io() {
                    Some(io) if io.ty == ty::RX && io.session_index == asi => {
                        ready[dir] = true;
                        rx_events[dir] += 1;
                    }
                    Some(_) => {}
                    None => {
                        c.fail(format!(
                            "unexpected control message during the stream: {ev}"
                        ));
                        return Ok(());
                    }
                }
            }
        }
        for dir in 0..2 {
            if !ready[dir] {
                continue;
            }
            ready[dir] = false;
            let (end, app) = if dir == 0 {
                (&mut p.s_end, &p.s)
            } else {
                (&mut p.c_end, &p.c)
            };
            // Drain, clear has_event, read again if data came meanwhile (§8.4 rule 2).
            loop {
                loop {
                    let (n, _) = end.recv(app, &mut rbuf)?;
                    if n == 0 {
                        break;
                    }
                    progress = true;
                    for (i, b) in rbuf[..n].iter().enumerate() {
                        let at = got[dir] + i as u64;
                        if *b != stream_byte(dir as u64, at) {
                            c.fail(format!(
                                "{}: byte {at} is {b:#04x}, expected {:#04x}",
                                if dir == 0 { "C → S" } else { "S → C" },
                                stream_byte(dir as u64, at)
                            ));
                            return Ok(());
                        }
                    }
                    got[dir] += n as u64;
                }
                end.rx.signals.clear_event()?;
                if end.rx.is_empty()? {
                    break;
                }
            }
        }
        if !progress && !wait_any([&p.s, &p.c], ctx.timeout)? {
            c.fail(format!(
                "stalled for {:?}: C → S sent {} read {}, S → C sent {} read {}; A has {} bytes, B {}; has_event A {} shadow RX {} shadow TX {} B {}",
                ctx.timeout,
                sent[0],
                got[0],
                sent[1],
                got[1],
                p.s_end.rx.len()?,
                p.c_end.rx.len()?,
                p.s_end.rx.signals.has_event()?,
                p.c_end.rx.signals.has_event()?,
                p.c_end.tx.signals.has_event()?,
                p.s_end.tx.signals.has_event()?,
            ));
            return Ok(());
        }
    }
    let grown = p
        .s_end
        .tx
        .alloc
        .byte_index()?
        .saturating_sub(byte_index_before);
    let (cw, sr, sw, cr) = (
        p.c_end.tx.alloc.stats,
        p.s_end.rx.alloc.stats,
        p.s_end.tx.alloc.stats,
        p.c_end.rx.alloc.stats,
    );
    c.note(format!(
        "64 MiB each way in {:?}; RX events S {} C {}; C grew A: {} chunks cut, {} reused; S freed {} of A's; S grew B: {} cut, {} reused; C freed {} of B's; the ct segment's byte_index moved {grown:#x}",
        started.elapsed(),
        rx_events[0],
        rx_events[1],
        cw.carved,
        cw.popped,
        sr.freed,
        sw.carved,
        sw.popped,
        cr.freed
    ));
    c.that(
        cw.carved + cw.popped > 0 && sw.carved + sw.popped > 0,
        "a fifo never grew past its first chunk",
    );
    c.that(
        cw.popped > 0 && sw.popped > 0 && sr.freed > 0 && cr.freed > 0,
        "consumed chunks were not recycled in both directions",
    );
    c.that(
        grown < (8 << 20),
        format!("the ct segment's bump allocator moved {grown:#x} bytes for 2 × 64 MiB through 64 KiB fifos: chunks were not reused"),
    );
    drop(ct);
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

/// Expects CLEANUP type 0, then type 1, for `handle` as the next messages about it in `a`.
fn expect_cleanups(c: &mut Check, a: &mut App, who: &str, handle: u64) -> Outcome {
    for kind in [0u8, 1] {
        let (ev, _) = a.expect(&format!("CLEANUP {{{handle:#x}, type {kind}}}"), |e| {
            matches!(e.ctrl(), Some(Ctrl::Cleanup(m)) if m.handle == handle)
                || matches!(e.ctrl(), Some(m) if m.session_handle() == Some(handle))
        })?;
        match ev.ctrl() {
            Some(Ctrl::Cleanup(m)) => {
                c.eq(&format!("{who}: CLEANUP type, in order"), kind, m.kind);
            }
            _ => c.fail(format!(
                "{who}: expected CLEANUP type {kind} for {handle:#x}, observed {ev}"
            )),
        }
    }
    Ok(())
}

fn expect_close_notice(a: &mut App, handle: u64) -> Result<(Event, Vec<Event>), ScenarioError> {
    Ok(a.expect(&format!("DISCONNECTED or RESET for {handle:#x}"), |e| {
        matches!(e.ctrl(), Some(Ctrl::Disconnected(m)) | Some(Ctrl::Reset(m)) if m.handle == handle)
    })?)
}

fn close_disconnect(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    close(&p.c, &p.c_end, ty::DISCONNECT)?;
    let (ev, _) = expect_close_notice(&mut p.s, p.s_end.handle)?;
    match ev.ctrl() {
        Some(Ctrl::Disconnected(m)) => {
            c.eq("DISCONNECTED.client_index", 0, m.client_index);
            c.eq(
                "DISCONNECTED.context = S's api_client_handle",
                p.s.api_client_handle(),
                m.context,
            );
        }
        _ => c.fail(format!("S: expected DISCONNECTED, observed {ev}")),
    }
    expect_cleanups(c, &mut p.c, "C", p.c_end.handle)?;
    let after = p.c.fence()?;
    none_about(c, "C", &after, p.c_end.handle, "nothing after CLEANUP 1");
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn reset_on_unread(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    p.s_end.send(&p.s, &[1u8; 1500])?;
    expect_io(&mut p.c, ty::RX, C_CTX)?;
    // C closes without reading B.
    close(&p.c, &p.c_end, ty::DISCONNECT)?;
    let (ev, _) = expect_close_notice(&mut p.s, p.s_end.handle)?;
    c.that(
        matches!(ev.ctrl(), Some(Ctrl::Reset(_))),
        format!("S: expected RESET (C closed with 1500 bytes unread in B), observed {ev}"),
    );
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn close_terminate(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    close(&p.c, &p.c_end, ty::TERMINATE)?;
    let (ev, _) = expect_close_notice(&mut p.s, p.s_end.handle)?;
    c.that(
        matches!(ev.ctrl(), Some(Ctrl::Reset(_))),
        format!("S: expected RESET after C's TERMINATE, observed {ev}"),
    );
    expect_cleanups(c, &mut p.c, "C", p.c_end.handle)?;
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn passive_reply(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    close(&p.c, &p.c_end, ty::DISCONNECT)?;
    let (ev, _) = expect_close_notice(&mut p.s, p.s_end.handle)?;
    let reply = if matches!(ev.ctrl(), Some(Ctrl::Reset(_))) {
        c.fail(format!("S: expected DISCONNECTED, observed {ev}"));
        ty::RESET_REPLY
    } else {
        ty::DISCONNECTED_REPLY
    };
    close_reply(&p.s, &p.s_end, reply)?;
    expect_cleanups(c, &mut p.s, "S", p.s_end.handle)?;
    let after = p.s.fence()?;
    none_about(c, "S", &after, p.s_end.handle, "nothing after CLEANUP 1");
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn data_before_disconnected(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    let (n, posted) = p.c_end.send(&p.c, &[9u8; 4000])?;
    c.that(
        n == 4000 && posted,
        format!("C's write: {n} bytes, TX posted {posted}"),
    );
    close(&p.c, &p.c_end, ty::DISCONNECT)?;
    let (ev, before) = expect_close_notice(&mut p.s, p.s_end.handle)?;
    c.that(
        before.iter().any(|e| {
            e.io()
                .is_some_and(|io| io.ty == ty::RX && io.session_index == S_ASI)
        }),
        format!(
            "S got {ev} without an RX {{{S_ASI:#x}}} before it; before it: {}",
            describe(&before)
        ),
    );
    c.that(
        matches!(ev.ctrl(), Some(Ctrl::Disconnected(_))),
        format!("S: expected DISCONNECTED (C's rx fifo was empty), observed {ev}"),
    );
    let got = p.s_end.drain(&p.s)?;
    c.eq(
        "bytes S still reads after the DISCONNECTED",
        4000,
        got.len(),
    );
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

/// Waits (bounded) until the server process lets memfd `inode` go; a FAIL naming it otherwise.
fn server_lets_go(ctx: &Ctx, c: &mut Check, inode: u64, whose: &str) -> Outcome {
    match ServerView::open(ctx)? {
        Ok(v) => {
            let mut ledger = Ledger::default();
            ledger.memfd(inode, whose.to_string());
            v.settle(ctx, c, &ledger, None, whose)?;
        }
        Err(why) => c.note(format!(
            "whether the server lets the ct memfd go is not observed: {why}"
        )),
    }
    Ok(())
}

fn del_segment_of(events: &[Event], handle: u64) -> Option<&Event> {
    events
        .iter()
        .find(|e| matches!(e.ctrl(), Some(Ctrl::DelSegment(d)) if d.segment_handle == handle))
}

/// Waits for `a`'s DEL_SEGMENT for the ct segment `segment`, which may come only after the
/// CLEANUP type 1 of `session`, the app's last session in it, the peer's side being gone already
/// (sessions §9.6, §9.7). One that came before is a FAIL that says so, and is not waited for
/// again.
fn expect_del_segment_last(
    c: &mut Check,
    a: &mut App,
    who: &str,
    segment: u64,
    session: u64,
) -> Outcome {
    let cleanup_1 = a
        .log
        .iter()
        .find(|e| matches!(e.ctrl(), Some(Ctrl::Cleanup(m)) if m.handle == session && m.kind == 1))
        .map(|e| e.seq);
    if let Some(del) = del_segment_of(&a.log, segment).map(|e| e.seq) {
        c.that(
            cleanup_1.is_some_and(|cl| cl < del),
            format!(
                "{who} got DEL_SEGMENT {segment:#x} (its message #{del}) before the CLEANUP 1 of its session {session:#x} in that segment ({}; sessions §9.6)",
                cleanup_1.map_or("none yet".to_string(), |cl| format!("#{cl}"))
            ),
        );
        return Ok(());
    }
    a.expect(
        &format!("DEL_SEGMENT {segment:#x}"),
        |e| matches!(e.ctrl(), Some(Ctrl::DelSegment(d)) if d.segment_handle == segment),
    )?;
    Ok(())
}

fn del_after_both(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    let h = p.accepted.segment_handle;
    let Some((hc, info)) = client_copy(&p.c, h) else {
        return Err(ScenarioError::Setup(format!(
            "C got no ADD_SEGMENT for ct segment {h:#x}"
        )));
    };
    let inode = info.shm.inode;
    close(&p.c, &p.c_end, ty::DISCONNECT)?;
    expect_close_notice(&mut p.s, p.s_end.handle)?;
    expect_cleanups(c, &mut p.c, "C", p.c_end.handle)?;
    // C's side is cleaned up (its CLEANUP 1 came); S's is not (S has not answered its
    // DISCONNECTED): no DEL_SEGMENT yet, to either app.
    let c_seen = p.c.fence()?;
    let s_seen = p.s.fence()?;
    let mut early = [false; 2];
    for (i, who, seen, handle) in [(0, "C", &c_seen, hc), (1, "S", &s_seen, h)] {
        if let Some(e) = del_segment_of(seen, handle) {
            early[i] = true;
            c.fail(format!(
                "{who} got DEL_SEGMENT {handle:#x} (its message #{}) while S's side of the segment's only pair was not cleaned up: C had its CLEANUP 1, S had not answered its DISCONNECTED (sessions §9.6)",
                e.seq
            ));
        }
    }
    close_reply(&p.s, &p.s_end, ty::DISCONNECTED_REPLY)?;
    expect_cleanups(c, &mut p.s, "S", p.s_end.handle)?;
    // Each app gets its DEL_SEGMENT now, unless it got it too early above (a FAIL already:
    // waiting for a second one would only add a timeout to the evidence).
    if !early[0] {
        p.c.expect(
            &format!("DEL_SEGMENT {hc:#x} (C's, client form)"),
            |e| matches!(e.ctrl(), Some(Ctrl::DelSegment(d)) if d.segment_handle == hc),
        )?;
    }
    if !early[1] {
        p.s.expect(
            &format!("DEL_SEGMENT {h:#x} (S's)"),
            |e| matches!(e.ctrl(), Some(Ctrl::DelSegment(d)) if d.segment_handle == h),
        )?;
    }
    c.note("VPP only (not checked): consecutive connections each get a fresh ct segment");
    finish(c, &[&p.s, &p.c]);
    drop(p);
    server_lets_go(
        ctx,
        c,
        inode,
        &format!("the ct segment {h:#x} (memfd inode {inode})"),
    )?;
    Ok(())
}

fn shutdown_silent(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    close(&p.c, &p.c_end, ty::SHUTDOWN)?;
    close(&p.s, &p.s_end, ty::SHUTDOWN)?;
    let cs = p.c.fence_session(&p.c_end)?;
    let ss = p.s.fence_session(&p.s_end)?;
    c.that(
        cs.is_empty() && ss.is_empty(),
        format!(
            "SHUTDOWN told someone something: C {}; S {}",
            describe(&cs),
            describe(&ss)
        ),
    );
    // The pair still carries data.
    p.c_end.send(&p.c, b"after shutdown")?;
    expect_io(&mut p.s, ty::RX, S_ASI)?;
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn unlisten(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    p.s.post(
        p.s.ctrl_mq(),
        &msg::Unlisten {
            client_index: p.s.api_client_handle(),
            context: 0x77,
            wrk_index: 0,
            handle: p.bound.handle,
        },
    )?;
    let (r, _) = p.s.expect_ctrl(ty::UNLISTEN_REPLY)?;
    match r {
        Ctrl::UnlistenReply(r) => {
            c.eq(
                "UNLISTEN_REPLY {context, handle, retval}",
                (0x77, p.bound.handle, 0),
                (r.context, r.handle, r.retval),
            );
        }
        other => c.fail(format!("expected UNLISTEN_REPLY, observed {other:?}")),
    }
    // The live pair works on.
    p.c_end.send(&p.c, b"still here")?;
    expect_io(&mut p.s, ty::RX, S_ASI)?;
    let got = p.s_end.drain(&p.s)?;
    c.eq(
        "bytes through the pair after UNLISTEN",
        &b"still here"[..],
        &got[..],
    );
    connect(&p.c, LOOPBACK, p.port, PROTO_TCP, C_CTX + 1)?;
    let (m, _) = expect_connected(&mut p.c, C_CTX + 1)?;
    c.retval("CONNECT to the unlistened key", ctx.profile, -6, m.retval);
    p.s.post(
        p.s.ctrl_mq(),
        &msg::Unlisten {
            client_index: p.s.api_client_handle(),
            context: 0x78,
            wrk_index: 0,
            handle: crate::session::app::FENCE_HANDLE - 1,
        },
    )?;
    let (r, _) = p.s.expect_ctrl(ty::UNLISTEN_REPLY)?;
    if let Ctrl::UnlistenReply(r) = r {
        c.retval("UNLISTEN of an unknown handle", ctx.profile, -11, r.retval);
    }
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn detach_peer_told(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    let (t, body) = msg::app_detach(p.c.api_client_handle());
    p.c.post_raw(p.c.ctrl_mq(), t, &body)?;
    let (ev, _) = expect_close_notice(&mut p.s, p.s_end.handle)?;
    c.note(format!("S was told: {ev}"));
    match super::wait_eof(&p.c.conn)? {
        Ok(()) => {}
        Err(why) => c.fail(format!("the server did not close C's socket: {why}")),
    }
    p.s.fence()?;
    let mut more = Vec::new();
    while let Some(e) = p.c.next(Duration::ZERO)? {
        more.push(e);
    }
    c.that(
        more.is_empty(),
        format!(
            "C's mq got messages after its APP_DETACH: {}",
            describe(&more)
        ),
    );
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn wire_postponed_zero(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_TCP)?;
    p.c_end.tx.signals.want_deq(deq::WANT_DEQ_NOTIF)?;
    p.c_end.send(&p.c, &[1u8; 5000])?;
    expect_io(&mut p.s, ty::RX, S_ASI)?;
    p.s_end.drain(&p.s)?;
    expect_io(&mut p.c, ty::TX, C_CTX)?;
    p.s_end.send(&p.s, &[2u8; 5000])?;
    expect_io(&mut p.c, ty::RX, C_CTX)?;
    p.c_end.drain(&p.c)?;
    close(&p.c, &p.c_end, ty::DISCONNECT)?;
    expect_close_notice(&mut p.s, p.s_end.handle)?;
    close_reply(&p.s, &p.s_end, ty::DISCONNECTED_REPLY)?;
    expect_cleanups(c, &mut p.c, "C", p.c_end.handle)?;
    expect_cleanups(c, &mut p.s, "S", p.s_end.handle)?;
    p.s.fence()?;
    p.c.fence()?;
    for (who, a, asi) in [("S", &p.s, S_ASI), ("C", &p.c, C_CTX)] {
        let mut ctrl = 0;
        let mut io = 0;
        for e in &a.log {
            match &e.kind {
                crate::session::EventKind::Ctrl { ty: t, .. } => {
                    ctrl += 1;
                    c.that(
                        e.ring == 1,
                        format!("{who}: control message {} in ring {}", ty::name(*t), e.ring),
                    );
                    if let Ctrl::Other(o) = e.ctrl().cloned().unwrap_or(Ctrl::Other(0)) {
                        c.fail(format!(
                            "{who}: control message of type {o} ({}), which a server does not send",
                            ty::name(o)
                        ));
                    }
                }
                crate::session::EventKind::Io(ev) => {
                    io += 1;
                    c.that(
                        ev.ty == ty::RX || ev.ty == ty::TX,
                        format!(
                            "{who}: io event #{} of type {} in ring {}: a server sends only RX and TX there",
                            e.seq, ev.ty, e.ring
                        ),
                    );
                    c.eq(
                        &format!("{who}: io event #{} session_index", e.seq),
                        asi,
                        ev.session_index,
                    );
                    if ev.postponed != 0 {
                        c.note(format!(
                            "{who}: io event #{} has postponed {} (sessions §3.2 rule 4: should be 0)",
                            e.seq, ev.postponed
                        ));
                    }
                }
            }
            if let Some(Ctrl::Disconnected(m)) = e.ctrl() {
                c.eq(
                    &format!("{who}: DISCONNECTED.client_index"),
                    0,
                    m.client_index,
                );
            }
        }
        c.note(format!(
            "{who}: {ctrl} control messages, {io} io events checked"
        ));
    }
    let p_s = &p.s_before;
    let p_c = &p.c_before;
    c.note(format!(
        "before ACCEPTED S had {}; before CONNECTED C had {}",
        describe(p_s),
        describe(p_c)
    ));
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

fn handles_not_reused(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    use std::collections::BTreeSet;
    let mut s = app(ctx, "s")?;
    let mut cl = app(ctx, "c")?;
    let port = port();
    listen_ok(&mut s, LOOPBACK, port, PROTO_TCP)?;
    // Live handles per app: from ACCEPTED/CONNECTED until the CLEANUP 1 delivered.
    let mut live_s: BTreeSet<u64> = BTreeSet::new();
    let mut live_c: BTreeSet<u64> = BTreeSet::new();
    let mut ends: Vec<(End, End)> = Vec::new();
    let mut closing_s: Vec<End> = Vec::new();
    let track = |c: &mut Check, who: &str, live: &mut BTreeSet<u64>, evs: &[Event]| {
        for e in evs {
            match e.ctrl() {
                Some(Ctrl::Accepted(m)) => {
                    c.that(
                        live.insert(m.handle),
                        format!(
                            "{who}: ACCEPTED reuses handle {:#x} before its CLEANUP 1",
                            m.handle
                        ),
                    );
                }
                Some(Ctrl::Connected(m)) if m.retval == 0 => {
                    c.that(
                        live.insert(m.handle),
                        format!(
                            "{who}: CONNECTED reuses handle {:#x} before its CLEANUP 1",
                            m.handle
                        ),
                    );
                }
                Some(Ctrl::Cleanup(m)) if m.kind == 1 => {
                    live.remove(&m.handle);
                }
                _ => {}
            }
        }
    };
    for round in 0..8u32 {
        let from_s = s.log.len();
        let from_c = cl.log.len();
        connect(&cl, LOOPBACK, port, PROTO_TCP, C_CTX + round)?;
        let (a, _) = expect_accepted(&mut s)?;
        accept_reply(&s, &a, a.context, 0)?;
        let (m, _) = expect_connected(&mut cl, C_CTX + round)?;
        let se = s.server_end(&a, S_ASI)?;
        let ce = cl.client_end(&m, C_CTX + round)?;
        // Close every other pair from C at once (C's handle is freed, S's lingers until S
        // replies), and S's lingering sides every third round.
        if round % 2 == 0 {
            close(&cl, &ce, ty::DISCONNECT)?;
            expect_close_notice(&mut s, se.handle)?;
            expect_cleanups(c, &mut cl, "C", ce.handle)?;
            closing_s.push(se);
        } else {
            ends.push((se, ce));
        }
        if round % 3 == 2 {
            for se in closing_s.drain(..) {
                close_reply(&s, &se, ty::DISCONNECTED_REPLY)?;
                expect_cleanups(c, &mut s, "S", se.handle)?;
            }
        }
        s.fence()?;
        cl.fence()?;
        let (sl, cll) = (s.log[from_s..].to_vec(), cl.log[from_c..].to_vec());
        track(c, "S", &mut live_s, &sl);
        track(c, "C", &mut live_c, &cll);
    }
    c.note(format!(
        "8 connects; live at the end: S {live_s:#x?}, C {live_c:#x?}"
    ));
    drop(ends);
    finish(c, &[&s, &cl]);
    Ok(())
}

/// A `session_dgram_hdr_t` (47 bytes, sessions §8.7) followed by `payload`.
fn datagram(payload: &[u8], rmt_port: u16, lcl_port: u16) -> Vec<u8> {
    let mut d = vec![0u8; 47];
    d[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    d[8..24].copy_from_slice(&ip4(LOOPBACK));
    d[24..40].copy_from_slice(&ip4(LOOPBACK));
    d[40..42].copy_from_slice(&rmt_port.to_be_bytes());
    d[42..44].copy_from_slice(&lcl_port.to_be_bytes());
    d[44] = 1;
    d.extend_from_slice(payload);
    d
}

fn udp_connected(ctx: &Ctx, c: &mut Check) -> Outcome {
    head_only(ctx)?;
    let mut p = pair(ctx, c, PROTO_UDP)?;
    c.retval(
        "BOUND for a connected UDP listener",
        ctx.profile,
        0,
        p.bound.retval,
    );
    let up = datagram(b"udp up", 0, p.port);
    let (n, _) = p.c_end.send(&p.c, &up)?;
    c.eq("datagram bytes C enqueued", up.len(), n);
    expect_io(&mut p.s, ty::RX, S_ASI)?;
    let got = p.s_end.drain(&p.s)?;
    c.that(
        got == up,
        format!("S read {} bytes, not C's datagram", got.len()),
    );
    let down = datagram(b"udp down", p.port, 0);
    p.s_end.send(&p.s, &down)?;
    expect_io(&mut p.c, ty::RX, C_CTX)?;
    let got = p.c_end.drain(&p.c)?;
    c.that(
        got == down,
        format!("C read {} bytes, not S's datagram", got.len()),
    );
    finish(c, &[&p.s, &p.c]);
    Ok(())
}

/// One app closes its socket while S's ACCEPTED_REPLY may still sit in the server mq: the
/// server must settle the half-open pair either way round and keep serving (VPP 26.10 takes the
/// reply of an app it already freed and crashes: `docs/vpp-26.10.md` §9.9).
fn vanish_after_accept_reply(ctx: &Ctx, c: &mut Check, goes: Role) -> Outcome {
    head_only(ctx)?;
    let mut s = app(ctx, "s")?;
    let mut cl = app(ctx, "c")?;
    let p = port();
    listen_ok(&mut s, LOOPBACK, p, PROTO_TCP)?;
    connect(&cl, LOOPBACK, p, PROTO_TCP, C_CTX)?;
    let (a, _) = expect_accepted(&mut s)?;
    accept_reply(&s, &a, a.context, 0)?;
    match goes {
        Role::Listen => {
            drop(s);
            let (m, _) = expect_connected(&mut cl, C_CTX)?;
            if m.retval == 0 {
                let (ev, _) = expect_close_notice(&mut cl, m.handle)?;
                c.note(format!("C: CONNECTED, then {ev}"));
            } else {
                c.note(format!("C: CONNECTED retval {}", m.retval));
            }
            finish(c, &[&cl]);
        }
        Role::Connect => {
            drop(cl);
            let (ev, _) = expect_close_notice(&mut s, a.handle)?;
            c.note(format!("S: {ev}"));
            finish(c, &[&s]);
        }
    }
    if let Err(why) = ctx.target.check_alive() {
        c.fail(format!("the target stopped serving: {why}"));
        return Ok(());
    }
    let mut again = app(ctx, "again")?;
    listen_ok(&mut again, LOOPBACK, port(), PROTO_TCP)?;
    Ok(())
}

/// Which side the crash-test child plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Listen,
    Connect,
}

fn crash(ctx: &Ctx, c: &mut Check, child_role: Role) -> Outcome {
    head_only(ctx)?;
    let port = port();
    match child_role {
        Role::Connect => {
            // The suite is S; the child C connects, writes, and is killed with B unread.
            let mut s = app(ctx, "s")?;
            listen_ok(&mut s, LOOPBACK, port, PROTO_TCP)?;
            let mut child = SessionChild::spawn(ctx, "connect", port)?;
            let (a, _) = expect_accepted(&mut s)?;
            accept_reply(&s, &a, a.context, 0)?;
            let held = child.hold_line(ctx)?;
            c.note(format!("child C: {held}"));
            let mut se = s.server_end(&a, S_ASI)?;
            expect_io(&mut s, ty::RX, S_ASI)?;
            let half = se.drain(&s)?;
            c.note(format!("S read {} bytes of the child's stream", half.len()));
            se.send(&s, &[5u8; 8192])?;
            let inode = s.segments.get(&a.segment_handle).map(|i| i.shm.inode);
            child.kill();
            let (ev, _) = expect_close_notice(&mut s, se.handle)?;
            c.that(
                matches!(ev.ctrl(), Some(Ctrl::Reset(_))),
                format!("S: expected RESET (C died with 8192 bytes unread in B), observed {ev}"),
            );
            close_reply(&s, &se, ty::RESET_REPLY)?;
            expect_cleanups(c, &mut s, "S", se.handle)?;
            expect_del_segment_last(c, &mut s, "S", a.segment_handle, se.handle)?;
            finish(c, &[&s]);
            drop(se);
            drop(s);
            if let Some(ino) = inode {
                server_lets_go(ctx, c, ino, &format!("the ct segment (memfd inode {ino})"))?;
            }
        }
        Role::Listen => {
            // The child is S: it listens, accepts, writes; the suite is C and drains A empty.
            let mut child = SessionChild::spawn(ctx, "listen", port)?;
            let mut cl = app(ctx, "c")?;
            connect(&cl, LOOPBACK, port, PROTO_TCP, C_CTX)?;
            let (m, _) = expect_connected(&mut cl, C_CTX)?;
            if m.retval != 0 {
                return Err(ScenarioError::Setup(format!(
                    "connect to the child's listener: CONNECTED retval {}",
                    m.retval
                )));
            }
            let held = child.hold_line(ctx)?;
            c.note(format!("child S: {held}"));
            let mut ce = cl.client_end(&m, C_CTX)?;
            expect_io(&mut cl, ty::RX, C_CTX)?;
            let mut buf = vec![0u8; 4096];
            let (n, _) = ce.recv(&cl, &mut buf)?;
            c.note(format!(
                "C read {n} bytes of the child's stream, leaving the rest"
            ));
            let inode = cl
                .segments
                .iter()
                .find(|(k, _)| **k == m.ct_segment_handle)
                .map(|(_, i)| i.shm.inode);
            child.kill();
            let (ev, _) = expect_close_notice(&mut cl, ce.handle)?;
            c.that(
                matches!(ev.ctrl(), Some(Ctrl::Disconnected(_))),
                format!("C: expected DISCONNECTED (S died with A empty), observed {ev}"),
            );
            close_reply(&cl, &ce, ty::DISCONNECTED_REPLY)?;
            expect_cleanups(c, &mut cl, "C", ce.handle)?;
            expect_del_segment_last(c, &mut cl, "C", m.ct_segment_handle, ce.handle)?;
            finish(c, &[&cl]);
            drop(ce);
            drop(cl);
            if let Some(ino) = inode {
                server_lets_go(ctx, c, ino, &format!("the ct segment (memfd inode {ino})"))?;
            }
        }
    }
    Ok(())
}

/// A crash-test child running `client session --role ROLE --port P`: it prints `READY` once it
/// listens (or is attached, for `connect`) and a [`HoldLine`] once its session carries data, then
/// blocks until killed. Killed on drop.
struct SessionChild {
    child: std::process::Child,
    out: std::process::ChildStdout,
}

impl SessionChild {
    fn spawn(ctx: &Ctx, role: &str, port: u16) -> Result<Self, ScenarioError> {
        use std::process::{Command, Stdio};
        let mut child = Command::new(&ctx.exe)
            .args(["client", "session", "--target"])
            .arg(ctx.target.endpoint().to_string())
            .args(["--role", role, "--port"])
            .arg(port.to_string())
            .arg("--name")
            .arg(format!("conf-crash-{role}"))
            .arg("--timeout")
            .arg(ctx.timeout.as_secs_f64().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ScenarioError::Setup(format!("spawning the session child: {e}")))?;
        let Some(out) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ScenarioError::Setup(
                "the session child has no stdout".into(),
            ));
        };
        let mut sc = SessionChild { child, out };
        let line = crate::target::read_line_within(&mut sc.out, ctx.timeout).unwrap_or_default();
        if line.trim() != "READY" {
            return Err(ScenarioError::Setup(format!(
                "the session child ({role}) did not get ready: {line:?}"
            )));
        }
        Ok(sc)
    }

    /// The child's HOLD line, once its session carries data.
    fn hold_line(&mut self, ctx: &Ctx) -> Result<HoldLine, ScenarioError> {
        let line = crate::target::read_line_within(&mut self.out, ctx.timeout).unwrap_or_default();
        HoldLine::parse(&line)
            .map_err(|why| ScenarioError::Setup(format!("the session child did not hold: {why}")))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SessionChild {
    fn drop(&mut self) {
        self.kill();
    }
}
