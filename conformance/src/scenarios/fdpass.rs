//! Fd passing (`docs/protocol.md` §5, §8.6; `docs/shm.md` §6.3, §6.5): SEND_FDS with one memfd
//! arrives before the APP_ADD_SEGMENT event is visible in the app mq; a client with too little
//! control space sees `MSG_CTRUNC`; fds sent by a client are not taken by the server.
//!
//! Must never: consume or change the app mq it checks (the segment is mapped read-only and the
//! event only peeked), or read a field of an element the target wrote without a bounds check
//! (`get`, never indexing).

use std::os::fd::AsFd;
use std::time::Duration;

use super::{Check, Ctx, Scenario, ScenarioError, skip};
use crate::client::{Recv, wait_readable};
use crate::fds;
use crate::shm::{Segment, add_segment_evt};
use crate::wire::{self, AttachRequest, Dgram, MSG_LEN, Profile, msg_type};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "fds.send_fds_before_add_segment",
            "protocol §3.5, §8.6; shm §6.3, §6.5",
            "a new segment: SEND_FDS with one memfd is queued before the ADD_SEGMENT event is visible, and they agree",
            send_fds_before_event,
        ),
        Scenario::new(
            "fds.ctrunc_small_buffer",
            "protocol §5.1",
            "a client with control room for 1 fd sees MSG_CTRUNC on the 3-fd ATTACH_REPLY",
            ctrunc,
        ),
        Scenario::new(
            "fds.client_fds_not_accepted",
            "protocol §5.1",
            "an fd sent with ATTACH is not kept by the server, and the ATTACH still succeeds",
            client_fds,
        ),
    ]
}

fn send_fds_before_event(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    if !ctx.target.has_segment_add() {
        return skip("needs --segment-add-cmd to make the target add a segment");
    }
    let (conn, e) = ctx.attach_ok(true)?;
    let (Some(segfd), Some(evfd)) = (e.fds.get(1), e.fds.get(2)) else {
        c.fail(format!(
            "setup: expected 3 fds, observed {}",
            fds::describe(&e.infos)
        ));
        return Ok(());
    };
    let seg = Segment::open(segfd, false)?;
    let mq = seg.mq_at(e.reply.app_mq)?;
    let out = ctx.target.segment_add(e.reply.app_index, 0)?;
    c.note(format!("segment add trigger: {}", out.trim()));
    // The mq eventfd fires when the event is published (queue was empty).
    if !wait_readable(evfd.as_fd(), ctx.timeout)? {
        c.fail(format!(
            "no signal on the app mq eventfd within {:?} after the segment add",
            ctx.timeout
        ));
        return Ok(());
    }
    let queued_first = conn.readable_now()?;
    c.that(
        queued_first,
        "the ADD_SEGMENT event was visible (eventfd signalled) while no SEND_FDS datagram was queued on the socket",
    );
    let m = match conn.recv_within(
        if queued_first {
            Duration::ZERO
        } else {
            ctx.timeout
        },
        4,
    )? {
        Recv::Msg(m) => m,
        other => {
            c.fail(format!("expected a SEND_FDS datagram, observed {other:?}"));
            return Ok(());
        }
    };
    c.eq("SEND_FDS datagram length", MSG_LEN, m.bytes.len());
    c.eq(
        "SEND_FDS type",
        msg_type::SEND_FDS,
        m.bytes.first().copied().unwrap_or(0),
    );
    if let Some((off, b)) = Dgram(&m.bytes).first_nonzero_from(1) {
        c.fail(format!("SEND_FDS body byte @{off} = {b:02x}, expected 00"));
    }
    let infos = m.fd_infos()?;
    c.that(
        infos.len() == 1 && infos[0].kind.is_memfd(),
        format!(
            "SEND_FDS: expected exactly one memfd, observed {}",
            fds::describe(&infos)
        ),
    );
    let mq = seg.mq_at(mq.offset)?;
    let msgs = seg.peek(&mq)?;
    let Some(ev) = msgs.iter().find(|m| m.ring_index == 1) else {
        c.fail(format!(
            "no ctrl (ring 1) message queued in the app mq; queue {:?}",
            mq.queue
        ));
        return Ok(());
    };
    let el = &ev.element;
    let rd32 = |o: usize| {
        el.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let want_type = match ctx.profile {
        Profile::Head => add_segment_evt::TYPE_HEAD,
        Profile::Seed => add_segment_evt::TYPE_SEED,
    };
    c.eq(
        "ctrl event type (APP_ADD_SEGMENT)",
        want_type,
        el.first().copied().unwrap_or(0),
    );
    c.eq(
        "event fd_flags @10 (MEMFD_SEGMENT)",
        0x02,
        el.get(add_segment_evt::FD_FLAGS).copied().unwrap_or(0),
    );
    let size = rd32(add_segment_evt::SEGMENT_SIZE).unwrap_or(0);
    let name = el
        .get(
            add_segment_evt::SEGMENT_NAME
                ..add_segment_evt::SEGMENT_NAME + add_segment_evt::SEGMENT_NAME_LEN,
        )
        .unwrap_or(&[]);
    c.that(
        name.contains(&0),
        "segment_name is not NUL-terminated within 128 bytes",
    );
    let handle = el
        .get(add_segment_evt::SEGMENT_HANDLE..add_segment_evt::SEGMENT_HANDLE + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .unwrap_or(0);
    c.that(
        handle != e.reply.segment_handle,
        format!("new segment handle {handle:#x} equals the first segment's"),
    );
    if let (Some(info), Some(fd)) = (infos.first(), m.fds.first()) {
        c.that(
            size > 0 && u64::from(size) <= info.size,
            format!("event segment_size {size:#x} vs SEND_FDS memfd {info}: expected 0 < size ≤ file size"),
        );
        if let Some(nseg) = super::check_segment(c, "new segment", fd, info) {
            c.note(format!("new segment ssvm_size {:#x}", nseg.ssvm.ssvm_size));
        }
    }
    c.note(format!(
        "event: size {size:#x}, handle {handle:#x}, name {:?}",
        String::from_utf8_lossy(name.split(|b| *b == 0).next().unwrap_or(&[]))
    ));
    Ok(())
}

fn ctrunc(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    conn.send(&AttachRequest::probe(&ctx.app_name(), true).encode())?;
    match conn.recv(1)? {
        Recv::Msg(m) => {
            c.that(
                m.ctrunc,
                format!(
                    "MSG_CTRUNC not set: the reply carried {} fd(s) in room for 1",
                    m.fds.len()
                ),
            );
            c.note(format!(
                "with room for 1 fd: MSG_CTRUNC = {}, {} fd received",
                m.ctrunc,
                m.fds.len()
            ));
        }
        other => c.fail(format!("expected ATTACH_REPLY, observed {other:?}")),
    }
    // The server is unaffected: a second client attaches normally.
    let (_s, e) = ctx.attach_ok(true)?;
    c.eq("fds of a normal ATTACH afterwards", 3usize, e.fds.len());
    Ok(())
}

fn client_fds(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let mine = nix::sys::memfd::memfd_create(
        c"sapi-conformance-client-fd",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )
    .map_err(|e| ScenarioError::Setup(format!("memfd_create: {e}")))?;
    let ino = fds::stat_of(&mine)?.ino;
    let conn = ctx.connect()?;
    conn.send_with_fds(
        &AttachRequest::probe(&ctx.app_name(), true).encode(),
        &[mine.as_fd()],
    )?;
    let m = conn.expect_msg("ATTACH_REPLY", crate::client::DEFAULT_MAX_FDS)?;
    match wire::AttachReply::parse(&m.bytes) {
        Ok(r) => {
            c.retval("ATTACH sent with an fd", ctx.profile, 0, r.retval);
        }
        Err(e) => c.fail(format!("{e}; {}", wire::dump(&m.bytes))),
    }
    match ctx.target.pid().map(fds::memfd_inodes) {
        Some(Ok(inodes)) => {
            c.that(
                !inodes.contains(&ino),
                format!("the server holds the client's memfd (inode {ino})"),
            );
        }
        Some(Err(e)) => c.note(format!(
            "server fds not inspectable ({e}); only the reply was checked"
        )),
        None => c.note("server pid unknown; only the reply was checked"),
    }
    Ok(())
}
