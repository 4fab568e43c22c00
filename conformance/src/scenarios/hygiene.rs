//! Hygiene (`docs/protocol.md` §8.9; `docs/vpp-26.10.md` §9): the server's fd count and memfd
//! mappings (`/proc/<pid>/fd`, `/proc/<pid>/maps`) before and after an action must match — a
//! socket that never attached and closes, a failed ATTACH, a crash detach, worker deletes, many
//! attach/close cycles. Needs the suite on the target's host with access to its `/proc` entries;
//! the pid comes from `SO_PEERCRED` on the suite's own connection or `--target-pid`.
//!
//! The server frees asynchronously and the protocol has no "freed" event, so after the action the
//! counts are re-read, each read paced by a round trip on a held connection, until they are back
//! at the baseline; the timeout is the failure bound.

use std::time::{Duration, Instant};

use super::{Check, Ctx, Scenario, ScenarioError, detach::HeldClient, skip, wait_eof};
use crate::client::Conn;
use crate::fds::{ProcessResources, snapshot};
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

/// The server's pid and a held connection used to pace re-reads.
struct Probe {
    pid: u32,
    pacer: Conn,
}

impl Probe {
    fn new(ctx: &Ctx) -> Result<Self, ScenarioError> {
        let Some(pid) = ctx.target.pid() else {
            return Err(ScenarioError::Skip(
                "server pid unknown (SO_PEERCRED gave none): give --target-pid".into(),
            ));
        };
        if let Err(e) = snapshot(pid) {
            return Err(ScenarioError::Skip(format!(
                "cannot read the server's /proc entries (is the suite on the target's host, with permission?): {e}"
            )));
        }
        Ok(Probe {
            pid,
            pacer: ctx.connect()?,
        })
    }

    /// A round trip that changes no state: worker ADD for an app index that does not exist.
    fn round_trip(&self, ctx: &Ctx) -> Result<(), ScenarioError> {
        self.pacer.worker_add(0x00ff_fff1, ctx.profile)?;
        Ok(())
    }

    fn read(&self) -> Result<ProcessResources, ScenarioError> {
        Ok(snapshot(self.pid)?)
    }

    /// Baseline once two reads around a round trip agree (earlier frees have landed).
    fn baseline(&self, ctx: &Ctx) -> Result<ProcessResources, ScenarioError> {
        let deadline = Instant::now() + ctx.timeout;
        let mut prev = self.read()?;
        loop {
            self.round_trip(ctx)?;
            let now = self.read()?;
            if now == prev || Instant::now() >= deadline {
                return Ok(now);
            }
            prev = now;
        }
    }

    /// Re-reads until within `base` or the deadline; records the verdict.
    fn settle(
        &self,
        ctx: &Ctx,
        c: &mut Check,
        base: &ProcessResources,
        what: &str,
    ) -> Result<(), ScenarioError> {
        let start = Instant::now();
        let deadline = start + ctx.timeout;
        let mut backoff = Duration::from_millis(1);
        loop {
            self.round_trip(ctx)?;
            let now = self.read()?;
            if now.within(base) {
                c.note(format!(
                    "{what}: back to baseline ({now}) after {:?}",
                    start.elapsed()
                ));
                return Ok(());
            }
            if Instant::now() >= deadline {
                c.fail(format!(
                    "{what}: server resources before: {base}; after (+{:?}): {now}",
                    ctx.timeout
                ));
                return Ok(());
            }
            std::thread::park_timeout(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }
}

/// Warm-up so lazily created global state (the mqs segment) exists before the baseline.
fn warm(ctx: &Ctx) -> Result<(Conn, crate::client::Exchange<wire::AttachReply>), ScenarioError> {
    ctx.attach_ok(true)
}

fn unattached_close(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let p = Probe::new(ctx)?;
    let _w = warm(ctx)?;
    let base = p.baseline(ctx)?;
    for _ in 0..4 {
        drop(ctx.connect()?);
    }
    p.settle(
        ctx,
        c,
        &base,
        "4 sockets connected and closed without attaching",
    )
}

fn failed_attach(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let p = Probe::new(ctx)?;
    let _w = warm(ctx)?;
    let base = p.baseline(ctx)?;
    for _ in 0..4 {
        let conn = ctx.connect()?;
        let mut r = AttachRequest::probe(&ctx.app_name(), true);
        r.options[opt::PREALLOC_FIFO_PAIRS] = 8;
        r.options[opt::PREALLOC_FIFO_HDRS] = 8;
        let e = conn.attach(&r)?;
        c.that(
            e.reply.retval != 0,
            "the PREALLOC pairs+hdrs ATTACH succeeded",
        );
    }
    p.settle(ctx, c, &base, "4 refused ATTACHes and closes")
}

fn crash_detach(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let p = Probe::new(ctx)?;
    let _w = warm(ctx)?;
    let base = p.baseline(ctx)?;
    for point in ["connect", "sent", "reply"] {
        HeldClient::spawn(ctx, point, 1)?.kill();
    }
    p.settle(
        ctx,
        c,
        &base,
        "3 clients SIGKILLed (after connect, after sending ATTACH, after the reply with a worker)",
    )
}

fn worker_delete(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let p = Probe::new(ctx)?;
    let _w = warm(ctx)?;
    let base = p.baseline(ctx)?;
    {
        let (s0, a) = ctx.attach_ok(true)?;
        let (s1, w) = super::worker::add_worker(ctx, a.reply.app_index)?;
        if !c.retval("worker ADD", ctx.profile, 0, w.reply.retval) {
            return Ok(());
        }
        drop(w);
        s1.send(&wire::encode_worker(a.reply.app_index, 1, false))?;
        let _ = wait_eof(&s1)?;
        // A DEL of a worker that does not exist must not leave anything either (sent on the
        // app's own socket: the worker's socket is closed by now).
        s0.send(&wire::encode_worker(a.reply.app_index, u32::MAX, false))?;
        drop(a);
        drop(s0);
    }
    p.settle(ctx, c, &base, "attach + worker ADD + DEL + close")
}

fn worker_delete_shared(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    if ctx.profile == wire::Profile::Seed {
        return skip(
            "the seed closes the requesting socket on delete; the shared-socket case is a HEAD defect",
        );
    }
    let p = Probe::new(ctx)?;
    let _w = warm(ctx)?;
    let base = p.baseline(ctx)?;
    {
        let (s0, a) = ctx.attach_ok(true)?;
        // A worker ADD on the attached socket re-binds it to the new worker
        // (docs/protocol.md §3.3 notes).
        let w = s0.worker_add(a.reply.app_index, ctx.profile)?;
        if !c.retval(
            "worker ADD on the attached socket",
            ctx.profile,
            0,
            w.reply.retval,
        ) {
            return Ok(());
        }
        s0.send(&wire::encode_worker(
            a.reply.app_index,
            w.reply.wrk_index,
            false,
        ))?;
        // The server may close the socket (VPP does, stranding worker 0) or keep it for
        // worker 0 (the reference does); either way, closing it must free everything. A round
        // trip on another socket orders the check after the DEL without waiting on a timeout.
        p.round_trip(ctx)?;
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
    p.settle(
        ctx,
        c,
        &base,
        "two workers on one socket, one deleted, socket closed",
    )
}

fn cycles(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let p = Probe::new(ctx)?;
    let _w = warm(ctx)?;
    let base = p.baseline(ctx)?;
    let n = ctx.scaled(1000);
    let start = Instant::now();
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
    }
    c.note(format!("{n} attach/close cycles in {:?}", start.elapsed()));
    p.settle(ctx, c, &base, &format!("{n} attach/close cycles"))
}
