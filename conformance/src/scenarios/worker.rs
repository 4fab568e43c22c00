//! Workers (`docs/protocol.md` §3.3–§3.4, §6.2, §8.2–§8.5; `docs/vpp-26.10.md` §3): adds on new
//! sockets with their own segment and mq, deletes that close the worker's socket without a reply
//! (HEAD), bad indices, and the app surviving the close of worker 0.
//!
//! Must never: take a missing reply on trust: a HEAD worker DEL is judged by the next thing on its
//! socket (EOF for a live worker, the reply to a barrier ATTACH for an unknown one), never by
//! waiting for silence.

use std::collections::HashSet;

use super::{
    Check, Ctx, Scenario, ScenarioError, check_fds, check_segment, wait_app_gone, wait_eof,
};
use crate::client::{Conn, DEFAULT_MAX_FDS, Exchange, Recv};
use crate::wire::{self, AttachRequest, Dgram, Profile, WorkerReply, field, msg_type};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "worker.add.reply",
            "protocol §3.4, §5.3, §8.2",
            "a worker ADD on a new socket: retval 0, new index, 2 fds [memfd, eventfd], own segment and mq",
            add_reply,
        ),
        Scenario::new(
            "worker.add.sixteen",
            "protocol §8.2",
            "16 workers on 16 sockets each get a distinct index, segment and well-formed mq",
            add_sixteen,
        ),
        Scenario::new(
            "worker.add.bad_app_index",
            "protocol §3.4, §6.2; vpp-26.10 §3",
            "ADD for an unknown app → INVALID, wrk_index echoed, handle 0xffffffff, no fds; socket still usable",
            add_bad_app,
        ),
        Scenario::new(
            "worker.del.eof_no_reply",
            "protocol §6.2, §8.3, §12 (2023-11-28)",
            "DEL of a worker: no reply (seed: a reply) and the worker's socket sees EOF",
            del_eof,
        ),
        Scenario::new(
            "worker.del.unknown_wrk",
            "protocol §6.2, §9",
            "DEL of an unknown worker index: no reply at HEAD (seed: INVALID); the socket stays usable",
            del_unknown,
        ),
        Scenario::new(
            "worker.del.then_readd",
            "protocol §6.2, §8.2",
            "after a worker DEL, a new worker ADD for the app succeeds",
            del_then_readd,
        ),
        Scenario::new(
            "worker.close.worker0_keeps_app",
            "protocol §8.4; vpp-26.10 §6",
            "closing worker 0's socket keeps the app alive for worker 1; closing the last frees it",
            close_worker0,
        )
        .exclusive(),
    ]
}

/// Adds a worker for `app` on a new socket, checking the reply like `worker.add.reply` does.
pub fn add_worker(ctx: &Ctx, app: u32) -> Result<(Conn, Exchange<WorkerReply>), ScenarioError> {
    let conn = ctx.connect()?;
    let e = conn.worker_add(app, ctx.profile)?;
    Ok((conn, e))
}

fn check_add_reply(ctx: &Ctx, c: &mut Check, what: &str, e: &Exchange<WorkerReply>) {
    let r = &e.reply;
    let shown = |f| wire::show_field(&e.raw, f);
    c.retval(
        &format!("{what}: {}", shown(field::WR_RETVAL)),
        ctx.profile,
        0,
        r.retval,
    );
    c.eq(&format!("{what}: is_add echo"), 1u8, r.is_add);
    c.eq(&format!("{what}: fd_flags"), 0x06u8, r.fd_flags);
    check_fds(c, what, r.n_fds, r.fd_flags, &e.infos);
    if let Some((off, b)) = Dgram(&e.raw).first_nonzero_from(WorkerReply::body_end(ctx.profile)) {
        c.fail(format!(
            "{what}: byte @{off} after the {}-byte body = {b:02x}, expected 00; reply {}",
            WorkerReply::body_end(ctx.profile) - 1,
            wire::dump(&e.raw)
        ));
    }
    if let (Some(fd), Some(info)) = (e.fds.first(), e.infos.first())
        && let Some(seg) = check_segment(c, &format!("{what}: worker segment"), fd, info)
    {
        super::attach::check_app_mq(
            ctx,
            c,
            &seg,
            r.app_event_queue_address,
            256,
            &format!("{what}: {}", shown(field::WR_APP_EVENT_QUEUE_ADDRESS)),
        );
    }
}

fn add_reply(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_s0, a) = ctx.attach_ok(true)?;
    let (_s1, w) = add_worker(ctx, a.reply.app_index)?;
    check_add_reply(ctx, c, "worker ADD", &w);
    c.that(
        w.reply.wrk_index != 0,
        "wrk_index 0 belongs to the attach's worker",
    );
    c.that(
        w.reply.segment_handle != a.reply.segment_handle,
        format!(
            "worker segment_handle {:#x} equals the app's first segment's",
            w.reply.segment_handle
        ),
    );
    if let (Some(ws), Some(as_)) = (w.infos.first(), a.infos.get(1)) {
        c.that(
            ws.ino != as_.ino,
            "the worker got the app's segment instead of its own",
        );
    }
    if ctx.profile == Profile::Head {
        let h = w.reply.api_client_handle.unwrap_or(u32::MAX);
        c.that(
            h != a.reply.api_client_handle && h & 0xffff != 0 && h != u32::MAX,
            format!(
                "{}: expected the new socket's handle (≠ attach's {:#x}), observed {h:#x}",
                wire::show_field(&w.raw, field::WR_API_CLIENT_HANDLE),
                a.reply.api_client_handle
            ),
        );
    }
    Ok(())
}

fn add_sixteen(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_s0, a) = ctx.attach_ok(true)?;
    let mut keep = Vec::new();
    let mut idx = HashSet::new();
    let mut inodes = HashSet::new();
    for i in 0..16 {
        let (s, w) = add_worker(ctx, a.reply.app_index)?;
        let before = c.failures.len();
        check_add_reply(ctx, c, &format!("worker ADD #{}", i + 1), &w);
        c.that(
            idx.insert(w.reply.wrk_index),
            format!("wrk_index {} handed out twice", w.reply.wrk_index),
        );
        if let Some(info) = w.infos.first() {
            c.that(
                inodes.insert(info.ino),
                format!("worker #{} segment inode {} reused", i + 1, info.ino),
            );
        }
        keep.push((s, w));
        if c.failures.len() - before > 3 {
            break;
        }
    }
    c.note(format!("{} workers added, indices {:?}", keep.len(), {
        let mut v: Vec<_> = idx.into_iter().collect();
        v.sort();
        v
    }));
    Ok(())
}

fn add_bad_app(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let bad = 0x00ff_fff0u32;
    conn.send(&wire::encode_worker(bad, 0x1234, true))?;
    let m = conn.expect_msg("ADD_DEL_WORKER_REPLY", DEFAULT_MAX_FDS)?;
    let r = WorkerReply::parse(&m.bytes, ctx.profile)
        .map_err(|e| ScenarioError::Setup(format!("{e}; received {}", wire::dump(&m.bytes))))?;
    c.retval(
        &wire::show_field(&m.bytes, field::WR_RETVAL),
        ctx.profile,
        ctx.profile.err_invalid(),
        r.retval,
    );
    c.that(
        m.fds.is_empty(),
        format!("expected no fds, observed {}", m.fds.len()),
    );
    c.eq("n_fds", 0u8, r.n_fds);
    c.eq("is_add echo", 1u8, r.is_add);
    c.eq(
        "app_event_queue_address on failure",
        0u64,
        r.app_event_queue_address,
    );
    if ctx.profile == Profile::Head {
        c.eq(
            &wire::show_field(&m.bytes, field::WR_WRK_INDEX),
            0x1234u32,
            r.wrk_index,
        );
        c.eq("segment_handle on failure", 0u64, r.segment_handle);
        c.eq(
            &wire::show_field(&m.bytes, field::WR_API_CLIENT_HANDLE),
            Some(0xffff_ffffu32),
            r.api_client_handle,
        );
    }
    // Still usable: an ATTACH on the same socket works.
    let e = conn.attach(&AttachRequest::probe(&ctx.app_name(), true))?;
    c.retval(
        "ATTACH on the same socket afterwards",
        ctx.profile,
        0,
        e.reply.retval,
    );
    Ok(())
}

fn del_eof(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_s0, a) = ctx.attach_ok(true)?;
    let (s1, w) = add_worker(ctx, a.reply.app_index)?;
    if !c.retval("setup worker ADD", ctx.profile, 0, w.reply.retval) {
        return Ok(());
    }
    s1.send(&wire::encode_worker(
        a.reply.app_index,
        w.reply.wrk_index,
        false,
    ))?;
    if ctx.profile == Profile::Seed {
        match s1.recv(DEFAULT_MAX_FDS)? {
            Recv::Msg(m) => match WorkerReply::parse(&m.bytes, ctx.profile) {
                Ok(r) => {
                    c.retval("seed worker DEL reply", ctx.profile, 0, r.retval);
                    c.eq("seed worker DEL reply is_add", 0u8, r.is_add);
                }
                Err(e) => c.fail(format!(
                    "seed worker DEL reply: {e}; {}",
                    wire::dump(&m.bytes)
                )),
            },
            other => c.fail(format!(
                "seed: expected a DEL reply before EOF, observed {other:?}"
            )),
        }
    }
    if let Err(why) = wait_eof(&s1)? {
        c.fail(format!("worker socket after DEL: {why}"));
    }
    Ok(())
}

fn del_unknown(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (s0, a) = ctx.attach_ok(true)?;
    s0.send(&wire::encode_worker(a.reply.app_index, 0x7fff, false))?;
    // Requests on a socket are handled in order: the next datagram answers either the DEL or this
    // second ATTACH, which is the barrier.
    s0.send(&AttachRequest::probe(&ctx.app_name(), true).encode())?;
    let m = s0.expect_msg("a reply", DEFAULT_MAX_FDS)?;
    let t = m.bytes.first().copied().unwrap_or(0);
    match ctx.profile {
        Profile::Head => {
            c.that(
                t == msg_type::ATTACH_REPLY,
                format!(
                    "expected no reply to the DEL (next datagram = ATTACH_REPLY), observed {}",
                    wire::dump(&m.bytes)
                ),
            );
        }
        Profile::Seed => match WorkerReply::parse(&m.bytes, ctx.profile) {
            Ok(r) => {
                c.retval(
                    "seed DEL of unknown worker",
                    ctx.profile,
                    ctx.profile.err_invalid(),
                    r.retval,
                );
            }
            Err(e) => c.fail(format!(
                "seed: expected a DEL reply: {e}; {}",
                wire::dump(&m.bytes)
            )),
        },
    }
    if t == msg_type::ATTACH_REPLY {
        match crate::wire::AttachReply::parse(&m.bytes) {
            Ok(r) => {
                c.retval(
                    "barrier ATTACH (socket still attached)",
                    ctx.profile,
                    ctx.profile.err_app_attached(),
                    r.retval,
                );
            }
            Err(e) => c.fail(e.to_string()),
        }
    }
    Ok(())
}

fn del_then_readd(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_s0, a) = ctx.attach_ok(true)?;
    let (s1, w) = add_worker(ctx, a.reply.app_index)?;
    if !c.retval("setup worker ADD", ctx.profile, 0, w.reply.retval) {
        return Ok(());
    }
    s1.send(&wire::encode_worker(
        a.reply.app_index,
        w.reply.wrk_index,
        false,
    ))?;
    // Wait for the DEL to take effect (seed sends a reply first; skip it).
    loop {
        match s1.recv(DEFAULT_MAX_FDS)? {
            Recv::Eof => break,
            Recv::Msg(_) if ctx.profile == Profile::Seed => continue,
            other => {
                c.fail(format!(
                    "worker socket after DEL: expected EOF, observed {other:?}"
                ));
                return Ok(());
            }
        }
    }
    let (_s2, w2) = add_worker(ctx, a.reply.app_index)?;
    check_add_reply(ctx, c, "worker re-ADD", &w2);
    Ok(())
}

fn close_worker0(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (s0, a) = ctx.attach_ok(true)?;
    let app = a.reply.app_index;
    let (s1, w) = add_worker(ctx, app)?;
    if !c.retval("setup worker ADD", ctx.profile, 0, w.reply.retval) {
        return Ok(());
    }
    drop(a);
    drop(s0);
    // The app must live on: a barrier round trip on worker 1's socket, then an ADD for the app.
    let (s2, w2) = add_worker(ctx, app)?;
    c.retval(
        "worker ADD after closing worker 0's socket (app must live)",
        ctx.profile,
        0,
        w2.reply.retval,
    );
    drop(s2);
    drop(s1);
    match wait_app_gone(ctx, app)? {
        Ok(t) => c.note(format!("app {app} gone {t:?} after its last socket closed")),
        Err(why) => c.fail(format!("after closing the last worker's socket: {why}")),
    }
    Ok(())
}
