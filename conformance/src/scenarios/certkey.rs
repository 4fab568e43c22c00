//! ADD_DEL_CERT_KEY (`docs/protocol.md` §3.6–§3.7, §6.3; `docs/vpp-26.10.md` §4): add with
//! its data datagram, oversize and short data, deletes. The seed has no cert-key messages.
//!
//! Must never: run against a seed target (every scenario starts with a skip there: the seed has no
//! types 6 and 7), or delete a pair another scenario added: a delete names its own add, the
//! preallocated pair 0, or an index (0xfffff0) no run comes near.

use super::{Check, Ctx, Scenario, ScenarioError, skip};
use crate::client::Exchange;
use crate::wire::{self, CertKeyReply, Dgram, Profile, encode_cert_key, field};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "certkey.add",
            "protocol §3.6, §3.7, §6.3",
            "an add with its data datagram → index ≥ 1, context echoed, no fds, zero padding",
            add,
        ),
        Scenario::new(
            "certkey.add.oversize",
            "protocol §6.3",
            "certkey_len 20001 → INVALID without reading data",
            oversize,
        ),
        Scenario::new(
            "certkey.add.short_data",
            "protocol §6.3; vpp-26.10 §4",
            "a 150-byte data datagram for certkey_len 200 → INVALID",
            short_data,
        ),
        Scenario::new(
            "certkey.del.unknown",
            "protocol §6.3",
            "delete of an unknown index → INVALID",
            del_unknown,
        ),
        Scenario::new(
            "certkey.del.valid",
            "protocol §6.3",
            "delete of an added pair → 0",
            del_valid,
        ),
        Scenario::new(
            "certkey.del.preallocated",
            "vpp-26.10 §4, §13",
            "delete of the preallocated pair 0 is refused with INVALID",
            del_zero,
        ),
    ]
}

fn head_only(ctx: &Ctx) -> Result<(), ScenarioError> {
    match ctx.profile {
        Profile::Head => Ok(()),
        Profile::Seed => {
            skip("the seed revision has no cert-key messages (types 6/7 since 2021-08-11)")
        }
    }
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"-----CERT-----"[i % 14]).collect()
}

fn do_add(ctx: &Ctx, context: u32) -> Result<Exchange<CertKeyReply>, ScenarioError> {
    let conn = ctx.connect()?;
    Ok(conn.cert_key(
        &encode_cert_key(context, 0, 100, 200, true),
        Some(&data(200)),
    )?)
}

fn add(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    head_only(ctx)?;
    let e = do_add(ctx, 0x5a5a_0001)?;
    c.retval(
        &wire::show_field(&e.raw, field::CKR_RETVAL),
        ctx.profile,
        0,
        e.reply.retval,
    );
    c.eq(
        &wire::show_field(&e.raw, field::CKR_CONTEXT),
        0x5a5a_0001u32,
        e.reply.context,
    );
    c.that(
        e.reply.index >= 1,
        format!(
            "{}: expected ≥ 1 (0 is preallocated)",
            wire::show_field(&e.raw, field::CKR_INDEX)
        ),
    );
    c.that(
        e.fds.is_empty(),
        format!("expected no fds, observed {}", e.fds.len()),
    );
    if let Some((off, b)) = Dgram(&e.raw).first_nonzero_from(field::CKR_BODY_END) {
        c.fail(format!(
            "byte @{off} = {b:02x}, expected zero after the 12-byte body"
        ));
    }
    Ok(())
}

fn expect_invalid(ctx: &Ctx, c: &mut Check, what: &str, e: &Exchange<CertKeyReply>) {
    c.retval(
        &format!("{what}: {}", wire::show_field(&e.raw, field::CKR_RETVAL)),
        ctx.profile,
        ctx.profile.err_invalid(),
        e.reply.retval,
    );
}

fn oversize(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    head_only(ctx)?;
    let conn = ctx.connect()?;
    let e = conn.cert_key(&encode_cert_key(3, 0, 100, 20001, true), None)?;
    expect_invalid(ctx, c, "certkey_len 20001", &e);
    Ok(())
}

fn short_data(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    head_only(ctx)?;
    let conn = ctx.connect()?;
    let e = conn.cert_key(&encode_cert_key(4, 0, 100, 200, true), Some(&data(150)))?;
    expect_invalid(ctx, c, "150 of 200 data bytes", &e);
    Ok(())
}

fn del_unknown(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    head_only(ctx)?;
    let conn = ctx.connect()?;
    let e = conn.cert_key(&encode_cert_key(5, 0x00ff_fff0, 0, 0, false), None)?;
    expect_invalid(ctx, c, "delete of index 0xfffff0", &e);
    Ok(())
}

fn del_valid(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    head_only(ctx)?;
    let a = do_add(ctx, 6)?;
    if !c.retval("setup add", ctx.profile, 0, a.reply.retval) {
        return Ok(());
    }
    let conn = ctx.connect()?;
    let e = conn.cert_key(&encode_cert_key(6, a.reply.index, 0, 0, false), None)?;
    c.retval(
        &format!("delete of index {}", a.reply.index),
        ctx.profile,
        0,
        e.reply.retval,
    );
    let again = conn.cert_key(&encode_cert_key(6, a.reply.index, 0, 0, false), None)?;
    expect_invalid(ctx, c, "second delete of the same index", &again);
    Ok(())
}

fn del_zero(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    head_only(ctx)?;
    let conn = ctx.connect()?;
    let e = conn.cert_key(&encode_cert_key(7, 0, 0, 0, false), None)?;
    expect_invalid(ctx, c, "delete of preallocated pair 0", &e);
    Ok(())
}
