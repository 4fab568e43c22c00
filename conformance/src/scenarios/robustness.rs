//! Robustness (`docs/protocol.md` §9, §9.1; `docs/vpp-26.10.md` §9): inputs that have crashed real
//! servers.
//! The runner's liveness check after every scenario is what turns a crash into "target died
//! during `<scenario>`"; these scenarios add the inputs and their own follow-up attach, and each
//! runs alone so that the blame is exact.

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
