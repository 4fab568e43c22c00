//! Namespaces (`docs/protocol.md` §1.1, §1.2, §3.1, §3.2): a namespace's socket gives handles with
//! its index, deleting it closes its listener and every client socket of it (EOF) and leaves the
//! other namespaces serving. Needs namespace add/delete triggers (built in for the embedded
//! reference; `--ns-add-cmd`/`--ns-del-cmd` otherwise).
//!
//! Must never: add or delete a namespace not its own: each scenario adds one named
//! `conf<pid><tag>`, unique to the run and the scenario, and deletes only that one.

use super::{Check, Ctx, Scenario, ScenarioError, skip, wait_eof};
use crate::client::Conn;
use crate::wire::AttachRequest;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "namespace.handle_carries_index",
            "protocol §1.1, §3.1 notes, §3.2",
            "an app attached through another namespace's socket gets handle bits of that namespace",
            handle_carries_index,
        ),
        Scenario::new(
            "namespace.delete_closes_clients",
            "protocol §1.1 (since 2021-08-05), §10",
            "deleting a namespace closes its clients (EOF) and listener; the default namespace keeps serving",
            delete_closes_clients,
        ),
    ]
}

fn ns_id(tag: &str) -> String {
    format!("conf{}{tag}", std::process::id())
}

fn handle_carries_index(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    if !ctx.target.has_ns_triggers() {
        return skip("needs --ns-add-cmd and --ns-del-cmd");
    }
    let id = ns_id("h");
    let ep = ctx.target.ns_endpoint(&id);
    ctx.target.ns_add(&id, &ep)?;
    let r = (|| -> Result<(), ScenarioError> {
        let conn = Conn::connect(&ep, ctx.timeout)?;
        let e = conn.attach(&AttachRequest::probe(&ctx.app_name(), true))?;
        c.retval(&format!("ATTACH on {ep}"), ctx.profile, 0, e.reply.retval);
        let (_d, de) = ctx.attach_ok(true)?;
        c.that(
            e.reply.api_client_handle >> 16 != de.reply.api_client_handle >> 16,
            format!(
                "namespace bits of api_client_handle: {ep} gave {:#x}, default gave {:#x}; expected them to differ",
                e.reply.api_client_handle, de.reply.api_client_handle
            ),
        );
        Ok(())
    })();
    ctx.target.ns_del(&id)?;
    r
}

fn delete_closes_clients(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    if !ctx.target.has_ns_triggers() {
        return skip("needs --ns-add-cmd and --ns-del-cmd");
    }
    let id = ns_id("d");
    let ep = ctx.target.ns_endpoint(&id);
    ctx.target.ns_add(&id, &ep)?;
    let attached = Conn::connect(&ep, ctx.timeout)?;
    let e = attached.attach(&AttachRequest::probe(&ctx.app_name(), true))?;
    c.retval("ATTACH in the namespace", ctx.profile, 0, e.reply.retval);
    let unattached = Conn::connect(&ep, ctx.timeout)?;
    let (default_conn, _de) = ctx.attach_ok(true)?;
    ctx.target.ns_del(&id)?;
    if let Err(why) = wait_eof(&attached)? {
        c.fail(format!("attached client of the deleted namespace: {why}"));
    }
    if let Err(why) = wait_eof(&unattached)? {
        c.fail(format!("unattached client of the deleted namespace: {why}"));
    }
    c.that(
        Conn::connect(&ep, ctx.timeout).is_err(),
        format!("{ep} still accepts connections after the namespace was deleted"),
    );
    c.that(
        !default_conn.readable_now()?,
        "a default-namespace client saw EOF or data when another namespace was deleted",
    );
    let (_s, _e) = ctx.attach_ok(true)?;
    Ok(())
}
