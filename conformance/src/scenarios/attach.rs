//! ATTACH (`docs/protocol.md` §3.1–§3.2, §4, §5.3, §6.1; `docs/shm.md` §2–§4): the reply's bytes
//! and fds, the segments and message queues they lead to, option variants, names, and the error
//! cases.
//!
//! Must never: map a segment the target sent writable (every one is opened read-only: checking a
//! reply must not change what the target reads), or index the fds of a reply beyond those that
//! arrived.

use std::os::fd::AsFd;

use super::{Check, Ctx, Scenario, ScenarioError, app_ring_lens, check_fds, check_segment};
use crate::client::Exchange;
use crate::shm::{self, Segment};
use crate::wire::{self, AttachReply, AttachRequest, Dgram, MSG_LEN, field, msg_type, opt};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "attach.reply.size",
            "protocol §2",
            "the ATTACH_REPLY datagram is exactly 209 bytes",
            reply_size,
        ),
        Scenario::new(
            "attach.reply.type",
            "protocol §3.2",
            "the reply's type byte is 2",
            reply_type,
        ),
        Scenario::new(
            "attach.reply.retval",
            "protocol §3.2, §6.1",
            "a well-formed ATTACH succeeds with retval 0",
            reply_retval,
        ),
        Scenario::new(
            "attach.reply.padding_zero",
            "protocol §2, §3.2",
            "reply bytes 40..208 are zero",
            reply_padding,
        ),
        Scenario::new(
            "attach.reply.n_fds",
            "protocol §3.2, §5",
            "n_fds = popcount(fd_flags) = fds received; flags 0x07 with eventfd",
            reply_n_fds,
        ),
        Scenario::new(
            "attach.reply.fd_order",
            "protocol §5.3",
            "fds arrive as [mqs-segment memfd, app-segment memfd, eventfd]",
            reply_fd_order,
        ),
        Scenario::new(
            "attach.reply.api_client_handle",
            "protocol §3.2",
            "api_client_handle = (ns 0 << 16) | socket index ≠ 0",
            reply_handle,
        ),
        Scenario::new(
            "attach.segment.ssvm_header",
            "shm §2",
            "both memfds start with a sane ssvm header (va 0, size, ready, type, opaque[0])",
            segment_ssvm,
        ),
        Scenario::new(
            "attach.segment.fifo_header",
            "shm §3.1",
            "the fifo-segment headers at opaque[0] are sane",
            segment_fifo_header,
        ),
        Scenario::new(
            "attach.segment.sizes",
            "protocol §4; vpp-26.10 §2.1",
            "the app segment holds at least SEGMENT_SIZE; the mqs segment is shared by apps",
            segment_sizes,
        ),
        Scenario::new(
            "attach.segment.sealed",
            "shm §2",
            "both memfds are sealed against shrinking (F_SEAL_SHRINK) unless in huge pages, as VPP's",
            segment_sealed,
        ),
        Scenario::new(
            "attach.mq.app",
            "shm §3.5, §4.1",
            "the app mq at app_mq: 2 rings (18, 256), queue length = EVT_QUEUE_SIZE",
            mq_app,
        ),
        Scenario::new(
            "attach.mq.vpp_ctrl",
            "shm §3.5, §3.6, §4.1",
            "the ctrl mq at vpp_ctrl_mq is a well-formed mq of the mqs segment",
            mq_ctrl,
        ),
        Scenario::new(
            "attach.options.no_eventfd",
            "protocol §5.3",
            "without EVT_MQ_USE_EVENTFD: n_fds 2, fd_flags 0x03, two memfds",
            options_no_eventfd,
        ),
        Scenario::new(
            "attach.options.segment_size",
            "protocol §4",
            "SEGMENT_SIZE 4 MiB gives a segment of ≥ 4 MiB; 0 gives the ≥ 1 MiB default",
            options_segment_size,
        ),
        Scenario::new(
            "attach.options.queue_size",
            "shm §3.5",
            "EVT_QUEUE_SIZE 1024 gives an app mq of 1024 and rings [1024, 64]",
            options_queue_size,
        ),
        Scenario::new(
            "attach.name.empty",
            "protocol §3.1",
            "an empty name attaches",
            name_empty,
        ),
        Scenario::new(
            "attach.name.63_bytes",
            "protocol §3.1",
            "a 63-byte name attaches",
            name_63,
        ),
        Scenario::new(
            "attach.name.64_unterminated",
            "protocol §3.1, §9",
            "64 name bytes without NUL attach (byte 63 forced to 0)",
            name_64,
        ),
        Scenario::new(
            "attach.twice_same_socket",
            "protocol §6.1 step 3, §9",
            "a second ATTACH on an attached socket → APP_ATTACHED, no fds",
            twice_same_socket,
        ),
        Scenario::new(
            "attach.same_name_two_apps",
            "protocol §3.1",
            "two sockets attaching one name get two apps",
            same_name_two_apps,
        ),
        Scenario::new(
            "attach.namespace_secret_ignored",
            "protocol §3.1 notes",
            "wrong NAMESPACE and NAMESPACE_SECRET options still attach",
            namespace_secret_ignored,
        ),
        Scenario::new(
            "attach.prealloc_pairs_and_hdrs",
            "protocol §4, §6.1 step 4",
            "PREALLOC_FIFO_PAIRS and _HDRS both set → NOSUPPORT, no fds",
            prealloc_both,
        ),
    ]
}

fn probe(ctx: &Ctx) -> Result<(crate::client::Conn, Exchange<AttachReply>), ScenarioError> {
    ctx.attach_ok(true)
}

fn raw_attach(ctx: &Ctx) -> Result<crate::client::Received, ScenarioError> {
    let conn = ctx.connect()?;
    conn.send(&AttachRequest::probe(&ctx.app_name(), true).encode())?;
    Ok(conn.expect_msg("ATTACH_REPLY", crate::client::DEFAULT_MAX_FDS)?)
}

fn reply_size(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let m = raw_attach(ctx)?;
    c.eq("ATTACH_REPLY datagram length", MSG_LEN, m.bytes.len());
    c.that(!m.trunc, "MSG_TRUNC set on a 64 KiB receive buffer");
    if m.bytes.len() != MSG_LEN {
        c.note(wire::dump(&m.bytes));
    }
    Ok(())
}

fn reply_type(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let m = raw_attach(ctx)?;
    let t = Dgram(&m.bytes)
        .u8(field::TYPE)
        .map_err(|e| ScenarioError::Setup(e.to_string()))?;
    c.that(
        t == msg_type::ATTACH_REPLY,
        format!(
            "type @0: expected 2 (ATTACH_REPLY), observed {t} ({})",
            wire::msg_type_name(t)
        ),
    );
    Ok(())
}

fn reply_retval(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let e = conn.attach(&AttachRequest::probe(&ctx.app_name(), true))?;
    c.retval(
        &wire::show_field(&e.raw, field::AR_RETVAL),
        ctx.profile,
        0,
        e.reply.retval,
    );
    Ok(())
}

fn reply_padding(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_conn, e) = probe(ctx)?;
    if let Some((off, b)) = Dgram(&e.raw).first_nonzero_from(field::AR_BODY_END) {
        c.fail(format!(
            "byte @{off} after the 39-byte body: expected 00, observed {b:02x}; reply {}",
            wire::dump(&e.raw)
        ));
    }
    Ok(())
}

fn reply_n_fds(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_conn, e) = probe(ctx)?;
    c.eq(
        &wire::show_field(&e.raw, field::AR_FD_FLAGS),
        0x07u8,
        e.reply.fd_flags,
    );
    c.eq(
        &wire::show_field(&e.raw, field::AR_N_FDS),
        3u8,
        e.reply.n_fds,
    );
    c.that(!e.ctrunc, "MSG_CTRUNC with room for 32 fds");
    check_fds(c, "ATTACH_REPLY", e.reply.n_fds, e.reply.fd_flags, &e.infos);
    Ok(())
}

fn reply_fd_order(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_conn, e) = probe(ctx)?;
    let kinds: Vec<&str> = e.infos.iter().map(|i| i.kind.short()).collect();
    c.that(
        kinds == ["memfd", "memfd", "eventfd"],
        format!(
            "fd kinds: expected [memfd (mqs segment), memfd (app segment), eventfd], observed {}",
            crate::fds::describe(&e.infos)
        ),
    );
    // The two memfds are told apart by their fifo-segment headers: only the mqs segment has n_mqs.
    if kinds.len() >= 2 && kinds[0] == "memfd" && kinds[1] == "memfd" {
        for (i, (want_mqs, role)) in [(true, "mqs segment"), (false, "app segment")]
            .iter()
            .enumerate()
        {
            match Segment::open(e.fds[i].as_fd(), false) {
                Ok(seg) => {
                    c.that(
                        (seg.fsh.n_mqs > 0) == *want_mqs,
                        format!(
                            "fd #{} should be the {role}: its fsh.n_mqs = {} ({})",
                            i + 1,
                            seg.fsh.n_mqs,
                            e.infos[i]
                        ),
                    );
                }
                Err(err) => c.fail(format!("fd #{} ({}): {err}", i + 1, e.infos[i])),
            }
        }
    }
    Ok(())
}

fn reply_handle(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_conn, e) = probe(ctx)?;
    let h = e.reply.api_client_handle;
    if let crate::client::Endpoint::Path(_) = ctx.target.endpoint() {
        c.that(
            h >> 16 == 0,
            format!(
                "{}: expected namespace bits 0 (default namespace), observed {:#x}",
                wire::show_field(&e.raw, field::AR_API_CLIENT_HANDLE),
                h >> 16
            ),
        );
    }
    c.that(
        h & 0xffff != 0,
        format!("api_client_handle {h:#x}: socket index 0 is the listener's"),
    );
    Ok(())
}

fn segment_ssvm(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_conn, e) = probe(ctx)?;
    for (i, role) in ["mqs segment", "app segment"].iter().enumerate() {
        let (Some(fd), Some(info)) = (e.fds.get(i), e.infos.get(i)) else {
            c.fail(format!(
                "no fd #{} ({role}); received {}",
                i + 1,
                crate::fds::describe(&e.infos)
            ));
            continue;
        };
        if let Some(seg) = check_segment(c, role, fd, info) {
            c.note(format!("{role}: {:?}", seg.ssvm));
        }
    }
    Ok(())
}

fn segment_sealed(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_conn, e) = probe(ctx)?;
    for (i, role) in ["mqs segment", "app segment"].iter().enumerate() {
        let Some(fd) = e.fds.get(i) else {
            c.fail(format!("no fd #{} ({role})", i + 1));
            continue;
        };
        match crate::fds::shrink_seal_missing(fd.as_fd()) {
            None => c.note(format!("{role}: sealed against shrinking")),
            // VPP makes hugetlb memfds without MFD_ALLOW_SEALING (shm §2).
            Some(why) if crate::fds::is_hugetlb(fd.as_fd()) => {
                c.note(format!("{role}: in huge pages, not sealed ({why})"));
            }
            Some(why) => c.fail(format!("{role}: {why}")),
        }
    }
    Ok(())
}

fn segment_fifo_header(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_conn, e) = probe(ctx)?;
    for (i, role) in ["mqs segment", "app segment"].iter().enumerate() {
        let (Some(fd), Some(info)) = (e.fds.get(i), e.infos.get(i)) else {
            c.fail(format!("no fd #{} ({role})", i + 1));
            continue;
        };
        if let Some(seg) = check_segment(c, role, fd, info) {
            if i == 0 {
                c.that(
                    seg.fsh.n_mqs >= 1,
                    format!("mqs segment fsh.n_mqs = {}, expected ≥ 1", seg.fsh.n_mqs),
                );
            } else {
                c.eq("app segment fsh.n_mqs", 0u8, seg.fsh.n_mqs);
            }
            c.note(format!("{role}: {:?}", seg.fsh));
        }
    }
    Ok(())
}

fn segment_sizes(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_c1, a) = probe(ctx)?;
    let (_c2, b) = probe(ctx)?;
    if a.infos.len() < 2 || b.infos.len() < 2 {
        c.fail(format!(
            "expected two memfds per reply, observed {} and {}",
            crate::fds::describe(&a.infos),
            crate::fds::describe(&b.infos)
        ));
        return Ok(());
    }
    let requested = AttachRequest::probe("", true).options[opt::SEGMENT_SIZE];
    c.that(
        a.infos[1].size >= requested,
        format!(
            "app segment memfd: expected ≥ SEGMENT_SIZE {requested} bytes, observed {}",
            a.infos[1]
        ),
    );
    c.eq(
        "mqs segment inode shared by two apps",
        a.infos[0].ino,
        b.infos[0].ino,
    );
    c.that(
        a.infos[1].ino != b.infos[1].ino,
        format!("two apps got the same app segment inode {}", a.infos[1].ino),
    );
    c.note(format!(
        "app segment {}, mqs segment {}",
        a.infos[1], a.infos[0]
    ));
    Ok(())
}

fn mq_app(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_conn, e) = probe(ctx)?;
    let (Some(fd), Some(info)) = (e.fds.get(1), e.infos.get(1)) else {
        c.fail(format!(
            "no app segment fd; received {}",
            crate::fds::describe(&e.infos)
        ));
        return Ok(());
    };
    let Some(seg) = check_segment(c, "app segment", fd, info) else {
        return Ok(());
    };
    check_app_mq(
        ctx,
        c,
        &seg,
        e.reply.app_mq,
        256,
        &wire::show_field(&e.raw, field::AR_APP_MQ),
    );
    Ok(())
}

/// Checks the app event mq at `offset` of `seg` (queue length `q`, first allocation).
pub fn check_app_mq(_ctx: &Ctx, c: &mut Check, seg: &Segment, offset: u64, q: u32, shown: &str) {
    c.eq(
        &format!("{shown}: app mq is the first allocation (= fsh.start_byte_index)"),
        seg.fsh.start_byte_index,
        offset,
    );
    match seg.mq_at(offset) {
        Ok(m) => {
            c.all(shm::mq_violations(&m, Some(q), Some(app_ring_lens(q))));
            c.note(format!("app mq: {:?}, rings {:?}", m.queue, m.rings));
        }
        Err(err) => c.fail(format!("{shown}: {err}")),
    }
}

fn mq_ctrl(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_conn, e) = probe(ctx)?;
    let (Some(fd), Some(info)) = (e.fds.first(), e.infos.first()) else {
        c.fail("no mqs segment fd");
        return Ok(());
    };
    let Some(seg) = check_segment(c, "mqs segment", fd, info) else {
        return Ok(());
    };
    let shown = wire::show_field(&e.raw, field::AR_VPP_CTRL_MQ);
    // docs/shm.md §3.6: n mqs back to back from start_byte_index, each
    // (n_reserved − start) / n bytes.
    let n = u64::from(seg.fsh.n_mqs);
    let total = u64::from(seg.fsh.n_reserved_bytes).saturating_sub(seg.fsh.start_byte_index);
    if n == 0 || total % n != 0 {
        c.fail(format!(
            "mq discovery (shm §3.6): n_mqs {n}, n_reserved − start_byte_index = {total:#x} must divide evenly"
        ));
    } else {
        let size = total / n;
        let thread = u64::from(e.reply.vpp_ctrl_mq_thread);
        c.that(
            thread < n,
            format!("vpp_ctrl_mq_thread {thread} ≥ n_mqs {n}"),
        );
        c.eq(
            &format!(
                "{shown}: offset of mq #{thread} (start {:#x} + thread × {size:#x})",
                seg.fsh.start_byte_index
            ),
            seg.fsh.start_byte_index + thread * size,
            e.reply.vpp_ctrl_mq,
        );
        for i in 0..n {
            match seg.mq_at(seg.fsh.start_byte_index + i * size) {
                Ok(m) => {
                    c.all(shm::mq_violations(&m, None, None));
                    c.eq(
                        &format!("mq #{i} image length = discovered size"),
                        size,
                        m.total_len,
                    );
                    if m.queue.maxsize < 2048 {
                        c.fail(format!(
                            "mq #{i}: queue length {}, expected ≥ 2048 (shm §3.5)",
                            m.queue.maxsize
                        ));
                    }
                }
                Err(err) => c.fail(format!("mq #{i}: {err}")),
            }
        }
    }
    match seg.mq_at(e.reply.vpp_ctrl_mq) {
        Ok(m) => c.all(shm::mq_violations(&m, None, None)),
        Err(err) => c.fail(format!("{shown}: {err}")),
    }
    Ok(())
}

fn options_no_eventfd(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_conn, e) = ctx.attach_ok(false)?;
    c.eq(
        &wire::show_field(&e.raw, field::AR_N_FDS),
        2u8,
        e.reply.n_fds,
    );
    c.eq(
        &wire::show_field(&e.raw, field::AR_FD_FLAGS),
        0x03u8,
        e.reply.fd_flags,
    );
    check_fds(c, "ATTACH_REPLY", e.reply.n_fds, e.reply.fd_flags, &e.infos);
    Ok(())
}

fn options_segment_size(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    for (req, min) in [(4u64 << 20, 4u64 << 20), (0, 1 << 20)] {
        let conn = ctx.connect()?;
        let mut r = AttachRequest::probe(&ctx.app_name(), true);
        r.options[opt::SEGMENT_SIZE] = req;
        let e = conn.attach(&r)?;
        if !c.retval(
            &format!("ATTACH with SEGMENT_SIZE {req}"),
            ctx.profile,
            0,
            e.reply.retval,
        ) {
            continue;
        }
        match (e.fds.get(1), e.infos.get(1)) {
            (Some(fd), Some(info)) => {
                c.that(
                    info.size >= min,
                    format!("SEGMENT_SIZE {req}: app segment {info}, expected ≥ {min} bytes"),
                );
                if let Some(seg) = check_segment(c, "app segment", fd, info) {
                    c.that(
                        seg.ssvm.ssvm_size >= min,
                        format!(
                            "SEGMENT_SIZE {req}: ssvm_size {:#x}, expected ≥ {min:#x}",
                            seg.ssvm.ssvm_size
                        ),
                    );
                }
            }
            _ => c.fail(format!(
                "SEGMENT_SIZE {req}: no app segment fd in {}",
                crate::fds::describe(&e.infos)
            )),
        }
    }
    Ok(())
}

fn options_queue_size(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let mut r = AttachRequest::probe(&ctx.app_name(), true);
    r.options[opt::EVT_QUEUE_SIZE] = 1024;
    let e = conn.attach(&r)?;
    if !c.retval(
        "ATTACH with EVT_QUEUE_SIZE 1024",
        ctx.profile,
        0,
        e.reply.retval,
    ) {
        return Ok(());
    }
    if let (Some(fd), Some(info)) = (e.fds.get(1), e.infos.get(1))
        && let Some(seg) = check_segment(c, "app segment", fd, info)
    {
        check_app_mq(ctx, c, &seg, e.reply.app_mq, 1024, "app_mq");
    }
    Ok(())
}

fn name_case(ctx: &Ctx, c: &mut Check, name: Vec<u8>) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let mut r = AttachRequest::probe("", true);
    r.name = name;
    let e = conn.attach(&r)?;
    c.retval(
        &format!("ATTACH with a {}-byte name", r.name.len()),
        ctx.profile,
        0,
        e.reply.retval,
    );
    c.eq("fds with the reply", 3usize, e.fds.len());
    Ok(())
}

fn name_empty(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    name_case(ctx, c, Vec::new())
}
fn name_63(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    name_case(ctx, c, vec![b'n'; 63])
}
fn name_64(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    name_case(ctx, c, vec![b'u'; 64])
}

/// A failed ATTACH: only type and retval set, no fds (`docs/vpp-26.10.md` §2.2).
pub fn check_failed_attach(
    ctx: &Ctx,
    c: &mut Check,
    what: &str,
    e: &Exchange<AttachReply>,
    expected: i32,
) {
    c.retval(
        &format!("{what}: {}", wire::show_field(&e.raw, field::AR_RETVAL)),
        ctx.profile,
        expected,
        e.reply.retval,
    );
    c.that(
        e.fds.is_empty(),
        format!(
            "{what}: expected no fds, observed {}",
            crate::fds::describe(&e.infos)
        ),
    );
    if let Some((off, b)) = Dgram(&e.raw).first_nonzero_from(field::AR_APP_INDEX.offset) {
        c.fail(format!(
            "{what}: byte @{off} = {b:02x}, expected all zero after retval; reply {}",
            wire::dump(&e.raw)
        ));
    }
}

fn twice_same_socket(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (conn, _first) = probe(ctx)?;
    let e = conn.attach(&AttachRequest::probe(&ctx.app_name(), true))?;
    check_failed_attach(ctx, c, "second ATTACH", &e, ctx.profile.err_app_attached());
    Ok(())
}

fn same_name_two_apps(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let (_c1, a) = probe(ctx)?;
    let (_c2, b) = probe(ctx)?;
    c.that(
        a.reply.app_index != b.reply.app_index,
        format!("both ATTACHes got app_index {}", a.reply.app_index),
    );
    Ok(())
}

fn namespace_secret_ignored(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let mut r = AttachRequest::probe(&ctx.app_name(), true);
    r.options[opt::NAMESPACE] = 7;
    r.options[opt::NAMESPACE_SECRET] = 0xdead_beef;
    let e = conn.attach(&r)?;
    c.retval(
        "ATTACH with NAMESPACE 7, NAMESPACE_SECRET 0xdeadbeef",
        ctx.profile,
        0,
        e.reply.retval,
    );
    c.eq(
        "api_client_handle namespace bits (the socket's namespace)",
        0u32,
        e.reply.api_client_handle >> 16,
    );
    Ok(())
}

fn prealloc_both(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let mut r = AttachRequest::probe(&ctx.app_name(), true);
    r.options[opt::PREALLOC_FIFO_PAIRS] = 8;
    r.options[opt::PREALLOC_FIFO_HDRS] = 8;
    let e = conn.attach(&r)?;
    check_failed_attach(
        ctx,
        c,
        "ATTACH with PREALLOC pairs and hdrs",
        &e,
        ctx.profile.err_nosupport(),
    );
    Ok(())
}
