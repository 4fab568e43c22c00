//! Crash detach (`docs/protocol.md` §8.4–§8.6): a real child process — the suite's own binary as
//! `sapi-conformance client attach --hold-after POINT` — is SIGKILLed at each point of an attach,
//! or an attached socket of the suite's own is closed; the server must keep serving and free
//! the app.
//!
//! "Freed" is judged on the app's own resources, named by inode before the kill
//! ([`super::owned`]): its server-side sockets (the peers of the child's sockets, asked of
//! `sock_diag`), its segments (memfd inodes) and mq eventfds (`eventfd-id`) must leave the
//! server's `/proc/<pid>/{fd,maps}`. Then, through the protocol, a worker ADD for the app's index
//! must be refused with INVALID — probed before anything else can take the index: these
//! scenarios are exclusive, and no ATTACH is made before the probe, because a server may hand a
//! freed index to the next ATTACH at once (VPP's pools do, `docs/vpp-26.10.md` §12). Where the
//! server's `/proc` cannot be read (a remote target), the probe alone judges, and a note says so.
//!
//! Must never: ATTACH between the detach and the probe of the freed index, or count on the
//! server never reusing an index.

use std::process::{Child, Command, Stdio};

use super::owned::{Ledger, ServerView};
use super::{Check, Ctx, Scenario, ScenarioError, wait_app_gone};
use crate::debug_client::HoldLine;
use crate::fds;
use crate::target::read_line_within;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
"detach.kill.after_connect",
"protocol §8.5 step 2",
"a client killed right after connect leaves the server serving",
|ctx, c| kill_at(ctx, c, "connect", 0, false),
).exclusive(),
        Scenario::new(
"detach.kill.after_attach_sent",
"protocol §8.5",
"a client killed after sending ATTACH, before reading the reply: the app is freed",
|ctx, c| kill_at(ctx, c, "sent", 0, false),
).exclusive(),
        Scenario::new(
"detach.kill.after_reply",
"protocol §8.5 step 1",
"a client killed after the ATTACH reply: the app is freed",
|ctx, c| kill_at(ctx, c, "reply", 0, false),
).exclusive(),
        Scenario::new(
"detach.kill.with_workers",
"protocol §8.5; vpp-26.10 §6",
"a client with 2 extra workers killed: every worker and the app are freed",
|ctx, c| kill_at(ctx, c, "reply", 2, false),
).exclusive(),
        Scenario::new(
"detach.kill.during_segment_add",
"protocol §8.6 step 5",
"a client killed while the server adds a segment to it: the app is freed, the server serves",
|ctx, c| kill_at(ctx, c, "reply", 0, true),
).exclusive(),
        Scenario::new(
"detach.close.clean",
"protocol §8.4",
"closing the only socket of an attached app frees the app",
clean_close,
).exclusive(),
    ]
}

/// A crash-test child holding an attachment, killed on drop.
pub struct HeldClient {
    child: Child,
    /// What the child printed it holds (app index, socket, segment and eventfd names).
    pub hold: HoldLine,
}

impl HeldClient {
    /// Spawns `exe client attach --hold-after POINT` and waits (bounded) for its HOLD line.
    pub fn spawn(ctx: &Ctx, point: &str, workers: u32) -> Result<Self, ScenarioError> {
        let mut child = Command::new(&ctx.exe)
            .arg("client")
            .arg("attach")
            .arg("--target")
            .arg(ctx.target.endpoint().to_string())
            .arg("--profile")
            .arg(ctx.profile.to_string())
            .arg("--hold-after")
            .arg(point)
            .arg("--workers")
            .arg(workers.to_string())
            .arg("--timeout")
            .arg(ctx.timeout.as_secs_f64().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ScenarioError::Setup(format!("spawning the crash-test client: {e}")))?;
        let Some(mut out) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ScenarioError::Setup(
                "crash-test client has no stdout".into(),
            ));
        };
        let line = read_line_within(&mut out, ctx.timeout).unwrap_or_default();
        match HoldLine::parse(&line) {
            Ok(hold) => Ok(HeldClient { child, hold }),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(ScenarioError::Setup(format!(
                    "crash-test client did not reach '{point}': {why}"
                )))
            }
        }
    }

    /// Writes the server-side peer of each of the child's sockets in `ledger` (resolved with
    /// `sock_diag`, so it must happen before the kill).
    pub fn own_sockets(
        &self,
        view: &ServerView,
        ctx: &Ctx,
        c: &mut Check,
        ledger: &mut Ledger,
        whose: &str,
    ) -> Result<(), ScenarioError> {
        for (k, ino) in self.hold.socks.iter().enumerate() {
            let what = if k == 0 {
                format!("{whose}, its attach socket")
            } else {
                format!("{whose}, its worker socket {k}")
            };
            match view.server_side_of_inode(ctx, *ino, &what)? {
                Some(server) => ledger.socket(server, format!("server side of {what}")),
                None => c.note(format!(
                    "{what}: the server had closed its side before the suite looked"
                )),
            }
        }
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HeldClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's `/proc`, or a note saying why the app's resources will not be observed.
fn view_or_note(ctx: &Ctx, c: &mut Check) -> Result<Option<ServerView>, ScenarioError> {
    match ServerView::open(ctx)? {
        Ok(v) => {
            if let Some(why) = v.sockets_unavailable() {
                c.note(format!(
                    "the app's server-side sockets are not checked: {why}"
                ));
            }
            Ok(Some(v))
        }
        Err(why) => {
            c.note(format!(
                "the app's resources in the server are not observed ({why}): judged by the protocol alone, probing the app's index before any ATTACH could take it"
            ));
            Ok(None)
        }
    }
}

/// Judges the detach of `app`: its resources in `ledger` leave the server (when it can be
/// observed), then the probe of its index, before any ATTACH. False when it failed.
fn judge_app_gone(
    ctx: &Ctx,
    c: &mut Check,
    view: Option<&ServerView>,
    ledger: &Ledger,
    since: Option<&fds::Holdings>,
    app: u32,
    after: &str,
) -> Result<bool, ScenarioError> {
    if let Some(v) = view
        && !v.settle(ctx, c, ledger, since, &format!("app {app} {after}"))?
    {
        c.note(format!(
            "app {app}'s index not probed: its resources are still held, so it was not freed"
        ));
        return Ok(false);
    }
    match wait_app_gone(ctx, app)? {
        Ok(t) => {
            c.note(format!(
                "app {app} {after}: a worker ADD for its index is refused after {t:?}"
            ));
            Ok(true)
        }
        Err(why) => {
            c.fail(format!("app {app} {after}: {why}"));
            Ok(false)
        }
    }
}

fn kill_at(
    ctx: &Ctx,
    c: &mut Check,
    point: &str,
    workers: u32,
    segment_add: bool,
) -> Result<(), ScenarioError> {
    if segment_add && !ctx.target.has_segment_add() {
        return super::skip("needs --segment-add-cmd to make the target add a segment");
    }
    let view = view_or_note(ctx, c)?;
    let mut ledger = match &view {
        Some(v) => Ledger::after(v.baseline(ctx)?),
        None => Ledger::default(),
    };
    let held = HeldClient::spawn(ctx, point, workers)?;
    let app = held.hold.app;
    c.note(format!("child reached '{point}': {}", held.hold));
    // Name the app's resources while the child lives: its sockets' peers are found through
    // the child's sockets. A child that never attached owns no app; what the server keeps of
    // its socket is hygiene's business (VPP keeps it, docs/vpp-26.10.md §9.1).
    if let (Some(v), Some(a)) = (&view, app) {
        let whose = format!("app {a} (the child killed after '{point}')");
        if v.sockets_unavailable().is_none() {
            held.own_sockets(v, ctx, c, &mut ledger, &whose)?;
        }
        ledger.child_fds(&held.hold.segs, &held.hold.evs, &whose);
    }
    // With a segment add, what the server creates for the dead app is no reply's: watch the
    // memfds that appear from here on too (the scenario is exclusive).
    let since = match (&view, segment_add) {
        (Some(v), true) => Some(v.baseline(ctx)?),
        _ => None,
    };
    if segment_add {
        let app_index =
            app.ok_or_else(|| ScenarioError::Setup("child printed no app index".into()))?;
        // Kill first, then add: the server's SEND_FDS meets a dead peer (docs/protocol.md §8.6
        // step 5). The other order races the kernel's socket teardown and is covered by
        // after_reply anyway.
        held.kill();
        if let Err(e) = ctx.target.segment_add(app_index, 0) {
            // A server that already detached the app may refuse the trigger: that is fine.
            c.note(format!("segment add trigger after the kill: {e}"));
        }
    } else {
        held.kill();
    }
    if let Some(app) = app {
        judge_app_gone(
            ctx,
            c,
            view.as_ref(),
            &ledger,
            since.as_ref(),
            app,
            "after SIGKILL of its client",
        )?;
    }
    // The server keeps serving (only now: this ATTACH may take the freed index).
    let (_s, e) = ctx.attach_ok(true)?;
    c.note(format!(
        "fresh ATTACH after the kill: app {}",
        e.reply.app_index
    ));
    Ok(())
}

fn clean_close(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let view = view_or_note(ctx, c)?;
    let mut ledger = match &view {
        Some(v) => Ledger::after(v.baseline(ctx)?),
        None => Ledger::default(),
    };
    let (s, e) = ctx.attach_ok(true)?;
    let app = e.reply.app_index;
    if let Some(v) = &view {
        if v.sockets_unavailable().is_none() {
            super::owned::own_connection(
                v,
                ctx,
                c,
                &mut ledger,
                &s,
                &format!("app {app}'s socket"),
            )?;
        }
        ledger.reply_fds(
            e.reply.fd_flags,
            &e.fds,
            &e.infos,
            &format!("app {app} worker 0"),
        )?;
    }
    drop(e);
    drop(s);
    judge_app_gone(
        ctx,
        c,
        view.as_ref(),
        &ledger,
        None,
        app,
        "after its only socket closed",
    )?;
    Ok(())
}
