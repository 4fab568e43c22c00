//! Hygiene (`docs/protocol.md` §8.9; `docs/vpp-26.10.md` §9): after an action — a socket that
//! never attached and closes, a failed ATTACH, a crash detach, worker deletes, many attach/close
//! cycles — the server must hold nothing of what the action created. Needs the suite on the
//! target's host with access to its `/proc` entries (the pid comes from `SO_PEERCRED` on the
//! suite's own connection or `--target-pid`) and `NETLINK_SOCK_DIAG`; without them it SKIPs.
//!
//! Each scenario names what is its own, by inode ([`super::owned`]): the server-side socket of
//! each of its connections (the peer the kernel paired it with, asked of `sock_diag`), the
//! memfd inode of each segment the server sent it, the `eventfd-id` of each mq eventfd; plus
//! every memfd that appeared in the server during the action (what no reply carried, such as a
//! failed ATTACH's half-built app) — except blank ones, segments a server prepares ahead of the
//! ATTACHes that take them, up to [`super::owned::MAX_SPARES`]. It then waits, each re-read paced by a round trip and the
//! whole bounded by the timeout, until the server holds none of it, and FAILs naming each thing
//! still held. Nothing is counted, so other work of the server — a restart just before, the
//! late frees of earlier scenarios — cannot make a scenario pass or fail: the scenarios are
//! exclusive, so nothing else creates anything in the server while they run, and what earlier
//! scenarios left can only disappear.
//!
//! Must never: compare totals, claim an eventfd the kernel gives no id for, or count on the
//! server's choice of app indices.

use super::owned::{Ledger, ServerView, own_connection};
use super::{Check, Ctx, Scenario, ScenarioError, detach::HeldClient, skip, wait_eof};
use crate::client::Conn;
use crate::fds::Holdings;
use crate::wire::{self, AttachRequest, opt};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "hygiene.unattached_close",
            "protocol §8.5 step 2; vpp-26.10 §9.1",
            "a socket that never attached and closes leaves nothing behind",
            unattached_close,
        )
        .exclusive(),
        Scenario::new(
            "hygiene.failed_attach",
            "vpp-26.10 §9.2",
            "a refused ATTACH (NOSUPPORT) and close leave nothing behind",
            failed_attach,
        )
        .exclusive(),
        Scenario::new(
            "hygiene.crash_detach",
            "protocol §8.5",
            "a SIGKILLed attached client leaves nothing behind",
            crash_detach,
        )
        .exclusive(),
        Scenario::new(
            "hygiene.worker_delete",
            "protocol §6.2, §8.3",
            "a worker ADD then DEL, then the app's close, leave nothing behind",
            worker_delete,
        )
        .exclusive(),
        Scenario::new(
            "hygiene.worker_delete_shared_socket",
            "protocol §3.3 notes; vpp-26.10 §9.3",
            "deleting one of two workers bound to one socket strands nothing",
            worker_delete_shared,
        )
        .exclusive(),
        Scenario::new(
            "hygiene.attach_close_cycles",
            "protocol §8.9",
            "1000 × scale attach/close cycles leave nothing behind",
            cycles,
        )
        .exclusive(),
    ]
}

/// The view, a warm-up and the snapshot the action is diffed against.
struct Setup {
    view: ServerView,
    before: Holdings,
    /// An app attached before the snapshot, so that state a server creates lazily with its first
    /// app (the VPP mqs segment) exists before it and is not mistaken for the action's.
    _warm: (Conn, crate::client::Exchange<wire::AttachReply>),
}

fn setup(ctx: &Ctx) -> Result<Setup, ScenarioError> {
    let view = ServerView::open_complete(ctx)?;
    let warm = ctx.attach_ok(true)?;
    let before = view.baseline(ctx)?;
    Ok(Setup {
        view,
        before,
        _warm: warm,
    })
}

impl Setup {
    fn ledger(&self) -> Ledger {
        Ledger::after(self.before.clone())
    }

    fn settle(
        &self,
        ctx: &Ctx,
        c: &mut Check,
        ledger: &Ledger,
        what: &str,
    ) -> Result<(), ScenarioError> {
        self.view
            .settle(ctx, c, ledger, Some(&self.before), what)
            .map(drop)
    }
}

fn unattached_close(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let s = setup(ctx)?;
    let mut ledger = s.ledger();
    for k in 1..=4 {
        let conn = ctx.connect()?;
        let whose = format!("connection {k} of 4, closed without attaching");
        own_connection(&s.view, ctx, c, &mut ledger, &conn, &whose)?;
        drop(conn);
    }
    s.settle(
        ctx,
        c,
        &ledger,
        "4 sockets connected and closed without attaching",
    )
}

fn failed_attach(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let s = setup(ctx)?;
    let mut ledger = s.ledger();
    for k in 1..=4 {
        let conn = ctx.connect()?;
        let mut r = AttachRequest::probe(&ctx.app_name(), true);
        r.options[opt::PREALLOC_FIFO_PAIRS] = 8;
        r.options[opt::PREALLOC_FIFO_HDRS] = 8;
        let e = conn.attach(&r)?;
        c.that(
            e.reply.retval != 0,
            "the PREALLOC pairs+hdrs ATTACH succeeded",
        );
        let whose = format!("connection {k} of 4, refused ATTACH");
        own_connection(&s.view, ctx, c, &mut ledger, &conn, &whose)?;
        // A refusal carries no fds; should one come anyway, it is the action's too.
        ledger.reply_fds(e.reply.fd_flags, &e.fds, &e.infos, &whose)?;
    }
    s.settle(ctx, c, &ledger, "4 refused ATTACHes and closes")
}

fn crash_detach(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let s = setup(ctx)?;
    let mut ledger = s.ledger();
    for point in ["connect", "sent", "reply"] {
        let held = HeldClient::spawn(ctx, point, 1)?;
        let whose = match held.hold.app {
            Some(app) => format!("the child killed after '{point}' (app {app})"),
            None => format!("the child killed after '{point}'"),
        };
        // Resolved before the kill: afterwards the child's sockets are gone.
        held.own_sockets(&s.view, ctx, c, &mut ledger, &whose)?;
        ledger.child_fds(&held.hold.segs, &held.hold.evs, &whose);
        held.kill();
    }
    s.settle(
        ctx,
        c,
        &ledger,
        "3 clients SIGKILLed (after connect, after sending ATTACH, after the reply with a worker)",
    )
}

fn worker_delete(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let s = setup(ctx)?;
    let mut ledger = s.ledger();
    {
        let (s0, a) = ctx.attach_ok(true)?;
        let app = a.reply.app_index;
        own_connection(
            &s.view,
            ctx,
            c,
            &mut ledger,
            &s0,
            &format!("app {app}'s socket"),
        )?;
        ledger.reply_fds(
            a.reply.fd_flags,
            &a.fds,
            &a.infos,
            &format!("app {app} worker 0"),
        )?;
        let (s1, w) = super::worker::add_worker(ctx, app)?;
        if !c.retval("worker ADD", ctx.profile, 0, w.reply.retval) {
            return Ok(());
        }
        let wrk = w.reply.wrk_index;
        let whose = format!("app {app} worker {wrk}");
        own_connection(
            &s.view,
            ctx,
            c,
            &mut ledger,
            &s1,
            &format!("{whose}'s socket"),
        )?;
        ledger.reply_fds(w.reply.fd_flags, &w.fds, &w.infos, &whose)?;
        drop(w);
        s1.send(&wire::encode_worker(app, wrk, false))?;
        let _ = wait_eof(&s1)?;
        // A DEL of a worker that does not exist must not leave anything either (sent on the
        // app's own socket: the worker's socket is closed by now).
        s0.send(&wire::encode_worker(app, u32::MAX, false))?;
        drop(a);
        drop(s0);
    }
    s.settle(ctx, c, &ledger, "attach + worker ADD + DEL + close")
}

fn worker_delete_shared(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    if ctx.profile == wire::Profile::Seed {
        return skip(
            "the seed closes the requesting socket on delete; the shared-socket case is a HEAD defect",
        );
    }
    let s = setup(ctx)?;
    let mut ledger = s.ledger();
    {
        let (s0, a) = ctx.attach_ok(true)?;
        let app = a.reply.app_index;
        own_connection(
            &s.view,
            ctx,
            c,
            &mut ledger,
            &s0,
            &format!("app {app}'s socket"),
        )?;
        ledger.reply_fds(
            a.reply.fd_flags,
            &a.fds,
            &a.infos,
            &format!("app {app} worker 0"),
        )?;
        // A worker ADD on the attached socket re-binds it to the new worker
        // (docs/protocol.md §3.3 notes).
        let w = s0.worker_add(app, ctx.profile)?;
        if !c.retval(
            "worker ADD on the attached socket",
            ctx.profile,
            0,
            w.reply.retval,
        ) {
            return Ok(());
        }
        let wrk = w.reply.wrk_index;
        ledger.reply_fds(
            w.reply.fd_flags,
            &w.fds,
            &w.infos,
            &format!("app {app} worker {wrk} (added on worker 0's socket)"),
        )?;
        s0.send(&wire::encode_worker(app, wrk, false))?;
        // The server may close the socket (VPP does, stranding worker 0) or keep it for
        // worker 0 (the reference does); either way, closing it must free everything. A round
        // trip on another socket orders the check after the DEL without waiting on a timeout.
        s.view.round_trip(ctx)?;
        let closed_by_server = s0.readable_now()?;
        c.note(format!(
            "socket after DEL of the re-bound worker: {}",
            if closed_by_server {
                "closed by the server"
            } else {
                "kept open for worker 0"
            }
        ));
    }
    s.settle(
        ctx,
        c,
        &ledger,
        "two workers on one socket, one deleted, socket closed",
    )
}

fn cycles(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let s = setup(ctx)?;
    let mut ledger = s.ledger();
    let n = ctx.scaled(1000);
    let start = std::time::Instant::now();
    for i in 0..n {
        let conn = ctx.connect()?;
        let e = conn.attach(&AttachRequest::probe(&ctx.app_name(), true))?;
        if e.reply.retval != 0 {
            c.fail(format!(
                "cycle {i}: ATTACH retval {}",
                ctx.profile.retval_name(e.reply.retval)
            ));
            break;
        }
        let whose = format!("cycle {i} (app {})", e.reply.app_index);
        own_connection(
            &s.view,
            ctx,
            c,
            &mut ledger,
            &conn,
            &format!("{whose}'s socket"),
        )?;
        ledger.reply_fds(e.reply.fd_flags, &e.fds, &e.infos, &whose)?;
    }
    c.note(format!("{n} attach/close cycles in {:?}", start.elapsed()));
    s.settle(ctx, c, &ledger, &format!("{n} attach/close cycles"))
}
