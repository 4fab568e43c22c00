//! Robustness (`docs/protocol.md` §9, §9.1; `docs/vpp-26.10.md` §9): inputs that have crashed real
//! servers.
//! The runner's liveness check after every scenario is what turns a crash into "target died
//! during `<scenario>`"; these scenarios add the inputs and their own follow-up attach, and each
//! runs alone so that the blame is exact.
//!
//! Must never: run beside another scenario, or wait on time for an event: the one timed pause is a
//! measurement window, opened only after a follow-up ATTACH's round trip showed the server had
//! taken up every close.

use super::{Check, Ctx, Scenario, ScenarioError};
use crate::wire::{AttachRequest, app_flag, encode_cert_key, opt};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "robustness.proxy_tcp_attach_close",
            "vpp-26.10 §9.4",
            "ATTACH with IS_PROXY and PROXY_TRANSPORT = tcp, then close: the server keeps serving",
            proxy_tcp,
        )
        .exclusive(),
        Scenario::new(
            "robustness.vanish_mid_certkey",
            "protocol §6.3, §9.1",
            "a cert-key add whose data datagram never comes because the peer closed: the server keeps serving",
            vanish_mid_certkey,
        )
        .exclusive(),
        Scenario::new(
            "robustness.vanish_before_reply",
            "protocol §8.5",
            "a peer that sends ATTACH and closes at once: the server keeps serving",
            vanish_before_reply,
        )
        .exclusive(),
        Scenario::new(
            "robustness.idle_after_unattached_closes",
            "protocol §8.5 step 2; vpp-26.10 §9.1, §9.8",
            "after 32 sockets connect and close without attaching, the idle server uses under half a core",
            idle_after_unattached_closes,
        )
        .exclusive(),
    ]
}

fn follow_up(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let e = conn.attach(&AttachRequest::probe(&ctx.app_name(), true))?;
    c.retval("ATTACH afterwards", ctx.profile, 0, e.reply.retval);
    Ok(())
}

fn proxy_tcp(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let mut r = AttachRequest::probe(&ctx.app_name(), true);
    r.options[opt::FLAGS] |= app_flag::IS_PROXY;
    r.options[opt::PROXY_TRANSPORT] = 1; // 1 << TCP
    let e = conn.attach(&r)?;
    c.note(format!(
        "proxy ATTACH: retval {}",
        ctx.profile.retval_name(e.reply.retval)
    ));
    drop(e);
    drop(conn);
    if let Err(why) = ctx.target.check_alive() {
        c.fail(format!(
            "after closing the proxy app's socket the target stopped accepting: {why}"
        ));
        return Ok(());
    }
    follow_up(ctx, c)
}

fn vanish_mid_certkey(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    if ctx.profile == crate::wire::Profile::Seed {
        return super::skip("the seed revision has no cert-key messages");
    }
    let conn = ctx.connect()?;
    conn.send(&encode_cert_key(9, 0, 100, 200, true))?;
    drop(conn);
    follow_up(ctx, c)
}

fn vanish_before_reply(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    for _ in 0..8 {
        let conn = ctx.connect()?;
        conn.send(&AttachRequest::probe(&ctx.app_name(), true).encode())?;
    }
    follow_up(ctx, c)
}

/// Sockets a peer closed keep reporting EOF to a level-triggered poll until the server closes
/// them: a server that leaks them (VPP 26.10, `docs/vpp-26.10.md` §9.1) spins on them, and
/// with enough of them starves everything else on its main thread (its CLI stops answering).
/// Measured as the server's CPU time (`/proc/<pid>/stat`) over a quiet window after the closes.
fn idle_after_unattached_closes(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    const SOCKETS: usize = 32;
    const WINDOW: std::time::Duration = std::time::Duration::from_millis(500);
    let Some(pid) = ctx.target.pid() else {
        return super::skip("server pid unknown (SO_PEERCRED gave none): give --target-pid");
    };
    if cpu_ticks(pid).is_none() {
        return super::skip(format!(
            "cannot read /proc/{pid}/stat (is the suite on the target's host?)"
        ));
    }
    for _ in 0..SOCKETS {
        drop(ctx.connect()?);
    }
    // A round trip: the server has taken up every close before the window opens.
    follow_up(ctx, c)?;
    let ticks_per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let (Some(before), t0) = (cpu_ticks(pid), std::time::Instant::now()) else {
        return super::skip("the server's /proc entry went away");
    };
    // A measurement window, not a wait for an event: nothing the suite could wait on says
    // "the server is idle".
    std::thread::park_timeout(WINDOW);
    let (Some(after), spent) = (cpu_ticks(pid), t0.elapsed()) else {
        return super::skip("the server's /proc entry went away");
    };
    let share = (after.saturating_sub(before)) as f64 / ticks_per_s / spent.as_secs_f64();
    c.that(
        share < 0.5,
        format!(
            "after {SOCKETS} unattached closes the idle server used {:.0}% of a core over {spent:?}",
            share * 100.0
        ),
    );
    c.note(format!(
        "server CPU over {spent:?} after {SOCKETS} unattached closes: {:.1}% of a core",
        share * 100.0
    ));
    Ok(())
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}
