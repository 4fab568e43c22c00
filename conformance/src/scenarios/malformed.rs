//! Malformed input (`docs/protocol.md` §9; `docs/vpp-26.10.md` §7): each row of the table
//! sent to a real socket; the reaction must be the defined one and afterwards a fresh app can
//! still attach. The datagrams are built here from the table; besides, every file of
//! `corpus/malformed/` (embedded at build time) is a scenario of its own,
//! `malformed.corpus.<file stem>`, which only asks that the server survive it and keep serving.
//!
//! Every scenario here may crash a server, so every one runs alone: when the target goes down,
//! the runner blames exactly the input that did it.
//!
//! Must never: run beside another scenario (all are exclusive), or take a missing reply on trust:
//! where a row wants no reply, a barrier ATTACH on the same socket must be the next thing answered.

use super::{Check, Ctx, Scenario, ScenarioError, wait_app_gone, wait_eof};
use crate::client::{Conn, DEFAULT_MAX_FDS};
use crate::wire::{self, AttachReply, AttachRequest, MSG_LEN, app_flag, msg_type, opt};

pub fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        Scenario::new(
            "malformed.short_0.unattached",
            "protocol §2, §9",
            "a 0-byte datagram on a fresh socket: no reply, socket usable",
            |x, c| short_unattached(x, c, 0),
        ),
        Scenario::new(
            "malformed.short_1.unattached",
            "protocol §2, §9",
            "a 1-byte datagram on a fresh socket: no reply, socket usable",
            |x, c| short_unattached(x, c, 1),
        ),
        Scenario::new(
            "malformed.short_208.unattached",
            "protocol §2, §9",
            "a 208-byte datagram on a fresh socket: no reply, socket usable",
            |x, c| short_unattached(x, c, 208),
        ),
        Scenario::new(
            "malformed.short_208.attached",
            "protocol §2, §8.5, §9",
            "a 208-byte datagram on an attached socket: detach, EOF, app gone",
            short_attached,
        )
        .exclusive(),
        Scenario::new(
            "malformed.long_210.attach",
            "protocol §2, §9",
            "a 210-byte ATTACH is processed as its first 209 bytes",
            |x, c| long_attach(x, c, 210),
        ),
        Scenario::new(
            "malformed.long_500.attach",
            "protocol §2, §9",
            "a 500-byte ATTACH is processed as its first 209 bytes",
            |x, c| long_attach(x, c, 500),
        ),
        Scenario::new(
            "malformed.type_0",
            "protocol §6.4, §9",
            "type 0: no reply, socket usable",
            |x, c| bad_type(x, c, msg_type::NONE),
        ),
        Scenario::new(
            "malformed.type_2_reply",
            "protocol §6.4, §9",
            "type 2 (a reply type) from a client: no reply, socket usable",
            |x, c| bad_type(x, c, msg_type::ATTACH_REPLY),
        ),
        Scenario::new(
            "malformed.type_4_reply",
            "protocol §6.4, §9",
            "type 4 from a client: no reply, socket usable",
            |x, c| bad_type(x, c, msg_type::ADD_DEL_WORKER_REPLY),
        ),
        Scenario::new(
            "malformed.type_5_send_fds",
            "protocol §6.4, §9",
            "type 5 (SEND_FDS) from a client: no reply, socket usable",
            |x, c| bad_type(x, c, msg_type::SEND_FDS),
        ),
        Scenario::new(
            "malformed.type_7_reply",
            "protocol §6.4, §9",
            "type 7 from a client: no reply, socket usable",
            |x, c| bad_type(x, c, msg_type::ADD_DEL_CERT_KEY_REPLY),
        ),
        Scenario::new(
            "malformed.type_8",
            "protocol §6.4, §9",
            "type 8: no reply, socket usable",
            |x, c| bad_type(x, c, 8),
        ),
        Scenario::new(
            "malformed.type_99",
            "protocol §6.4, §9",
            "type 99: no reply, socket usable",
            |x, c| bad_type(x, c, 99),
        ),
        Scenario::new(
            "malformed.seed.type_6_certkey",
            "protocol §2.1, §12 (types 6/7 since 2021-08-11)",
            "seed: an ADD_DEL_CERT_KEY is an unknown type there: no reply, socket usable",
            seed_certkey_unknown,
        ),
        Scenario::new(
            "malformed.attach_pipelined_twice",
            "protocol §9; vpp-26.10 §2.2",
            "two ATTACHes sent back to back: success with fds, then APP_ATTACHED",
            pipelined,
        ),
        Scenario::new(
            "malformed.attach_builtin_eventfd",
            "protocol §6.1 step 4",
            "IS_BUILTIN with EVT_MQ_USE_EVENTFD → NOSUPPORT, no fds",
            builtin_eventfd,
        ),
        Scenario::new(
            "malformed.attach_all_options_ff",
            "vpp-26.10 §2.2",
            "every option 0xff…ff → NOSUPPORT, no fds",
            all_ff,
        ),
        Scenario::new(
            "malformed.attach_max_fifo_memory_no_segment_size",
            "protocol §9; vpp-26.10 §9.6",
            "ATTACH with MAX_FIFO_MEMORY set and SEGMENT_SIZE 0: an error, no fds, the server serves",
            max_fifo_memory_no_segment_size,
        ),
        Scenario::new(
            "malformed.attach_mq_exceeds_segment",
            "protocol §9; vpp-26.10 §9.5",
            "ATTACH whose eventfd mq (2^20 entries) cannot fit its 16 MiB segment: an error, no fds, the server serves",
            mq_exceeds_segment,
        ),
    ];
    v.extend(MALFORMED_CORPUS.iter().map(|(name, _, _)| {
        Scenario::new(
            name,
            "protocol §9; vpp-26.10 §7",
            "this corpus/malformed file sent on a fresh socket leaves the server serving",
            corpus_file,
        )
    }));
    // Every one of them may crash a server: alone, the blame is exact.
    v.into_iter().map(Scenario::exclusive).collect()
}

include!(concat!(env!("OUT_DIR"), "/malformed_corpus.rs"));

/// A fresh app can still attach (the closing check of every malformed row).
fn fresh_attach(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let e = conn.attach(&AttachRequest::probe(&ctx.app_name(), true))?;
    c.retval("fresh ATTACH afterwards", ctx.profile, 0, e.reply.retval);
    Ok(())
}

/// Sends an ATTACH as a barrier and checks the next datagram is its successful reply, proving the
/// earlier message got no reply and left the socket usable (requests are handled in order).
fn barrier_attach(ctx: &Ctx, c: &mut Check, conn: &Conn, after: &str) -> Result<(), ScenarioError> {
    conn.send(&AttachRequest::probe(&ctx.app_name(), true).encode())?;
    let m = match conn.expect_msg("ATTACH_REPLY to the barrier ATTACH", DEFAULT_MAX_FDS) {
        Ok(m) => m,
        Err(e) => {
            c.fail(format!("after {after}: {e}"));
            return Ok(());
        }
    };
    match AttachReply::parse(&m.bytes) {
        Ok(r) => {
            c.retval(&format!("ATTACH on the same socket after {after}"), ctx.profile, 0, r.retval);
        }
        Err(e) => c.fail(format!(
            "after {after}: expected no reply and then the barrier's ATTACH_REPLY, observed {e}: {}",
            wire::dump(&m.bytes)
        )),
    }
    Ok(())
}

fn short_unattached(ctx: &Ctx, c: &mut Check, len: usize) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let mut d = AttachRequest::probe(&ctx.app_name(), true)
        .encode()
        .to_vec();
    d.truncate(len);
    conn.send(&d)?;
    barrier_attach(ctx, c, &conn, &format!("a {len}-byte datagram"))?;
    fresh_attach(ctx, c)
}

fn short_attached(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (conn, e) = ctx.attach_ok(true)?;
    let app = e.reply.app_index;
    drop(e);
    conn.send(&AttachRequest::probe(&ctx.app_name(), true).encode()[..208])?;
    if let Err(why) = wait_eof(&conn)? {
        c.fail(format!("attached socket after a 208-byte datagram: {why}"));
    }
    drop(conn);
    match wait_app_gone(ctx, app)? {
        Ok(_) => {}
        Err(why) => c.fail(why),
    }
    fresh_attach(ctx, c)
}

fn long_attach(ctx: &Ctx, c: &mut Check, len: usize) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let mut d = AttachRequest::probe(&ctx.app_name(), true)
        .encode()
        .to_vec();
    d.resize(len, 0xa5);
    conn.send(&d)?;
    let m = conn.expect_msg("ATTACH_REPLY", DEFAULT_MAX_FDS)?;
    match AttachReply::parse(&m.bytes) {
        Ok(r) => {
            c.retval(&format!("{len}-byte ATTACH"), ctx.profile, 0, r.retval);
            c.eq("fds", 3usize, m.fds.len());
        }
        Err(e) => c.fail(format!("{e}: {}", wire::dump(&m.bytes))),
    }
    fresh_attach(ctx, c)
}

fn seed_certkey_unknown(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    if ctx.profile == wire::Profile::Head {
        return super::skip("HEAD answers cert-key messages (see certkey.*)");
    }
    let conn = ctx.connect()?;
    conn.send(&wire::encode_cert_key(1, 0xdead_beef, 0, 0, false))?;
    barrier_attach(ctx, c, &conn, "an ADD_DEL_CERT_KEY delete (type 6)")?;
    fresh_attach(ctx, c)
}

fn bad_type(ctx: &Ctx, c: &mut Check, t: u8) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let mut d = [0u8; MSG_LEN];
    d[0] = t;
    conn.send(&d)?;
    barrier_attach(
        ctx,
        c,
        &conn,
        &format!("type {t} ({})", wire::msg_type_name(t)),
    )?;
    fresh_attach(ctx, c)
}

fn pipelined(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let req = AttachRequest::probe(&ctx.app_name(), true).encode();
    conn.send(&req)?;
    conn.send(&req)?;
    for (i, want) in [0, ctx.profile.err_app_attached()].into_iter().enumerate() {
        let m = conn.expect_msg("ATTACH_REPLY", DEFAULT_MAX_FDS)?;
        match AttachReply::parse(&m.bytes) {
            Ok(r) => {
                c.retval(&format!("reply #{}", i + 1), ctx.profile, want, r.retval);
                c.eq(
                    &format!("fds with reply #{}", i + 1),
                    if want == 0 { 3 } else { 0 },
                    m.fds.len(),
                );
            }
            Err(e) => c.fail(format!("reply #{}: {e}: {}", i + 1, wire::dump(&m.bytes))),
        }
    }
    Ok(())
}

fn refused_attach(
    ctx: &Ctx,
    c: &mut Check,
    what: &str,
    req: AttachRequest,
) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let e = conn.attach(&req)?;
    super::attach::check_failed_attach(ctx, c, what, &e, ctx.profile.err_nosupport());
    fresh_attach(ctx, c)
}

fn builtin_eventfd(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let mut r = AttachRequest::probe(&ctx.app_name(), true);
    r.options[opt::FLAGS] |= app_flag::IS_BUILTIN;
    refused_attach(ctx, c, "ATTACH with IS_BUILTIN|EVT_MQ_USE_EVENTFD", r)
}

fn all_ff(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let mut r = AttachRequest::probe(&ctx.app_name(), true);
    r.options = [u64::MAX; opt::N_OPTIONS];
    refused_attach(ctx, c, "ATTACH with every option 0xff…ff", r)
}

/// One file of `corpus/malformed/`, the one the scenario's name names, sent on a fresh socket
/// that then closes; the server must survive it (the runner checks) and still attach an app.
fn corpus_file(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let Some((_, file, bytes)) = MALFORMED_CORPUS.iter().find(|(n, _, _)| *n == ctx.scenario)
    else {
        return Err(ScenarioError::Setup(format!(
            "no corpus file for scenario {}",
            ctx.scenario
        )));
    };
    let conn = ctx.connect()?;
    conn.send(bytes)?;
    c.note(format!("sent {file} ({} bytes) and closed", bytes.len()));
    drop(conn);
    fresh_attach(ctx, c)
}

/// Checks that an ATTACH is refused (any error, no fds) and that the server still serves.
fn refused_with_an_error(
    ctx: &Ctx,
    c: &mut Check,
    what: &str,
    req: AttachRequest,
) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let e = conn.attach(&req)?;
    c.that(
        e.reply.retval < 0,
        format!(
            "{what}: expected an error retval, observed {}",
            ctx.profile.retval_name(e.reply.retval)
        ),
    );
    c.eq(&format!("{what}: fds"), 0usize, e.fds.len());
    c.note(format!(
        "{what}: retval {}",
        ctx.profile.retval_name(e.reply.retval)
    ));
    drop(e);
    drop(conn);
    fresh_attach(ctx, c)
}

fn max_fifo_memory_no_segment_size(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    if ctx.profile == wire::Profile::Seed {
        return super::skip("option 4 was not MAX_FIFO_MEMORY before 2025-07-19");
    }
    let mut r = AttachRequest::probe(&ctx.app_name(), true);
    r.options[opt::MAX_FIFO_MEMORY] = 16 << 20;
    r.options[opt::SEGMENT_SIZE] = 0;
    // Which error is the server's choice (the reference answers INVALID); that it is one is not.
    refused_with_an_error(ctx, c, "ATTACH with MAX_FIFO_MEMORY and no SEGMENT_SIZE", r)
}

fn mq_exceeds_segment(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let mut r = AttachRequest::probe(&ctx.app_name(), true);
    r.options[opt::EVT_QUEUE_SIZE] = 1 << 20;
    r.options[opt::SEGMENT_SIZE] = 16 << 20;
    refused_with_an_error(
        ctx,
        c,
        "ATTACH with an eventfd mq of 2^20 entries in a 16 MiB segment",
        r,
    )
}
