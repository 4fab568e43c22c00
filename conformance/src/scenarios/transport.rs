//! Transport (`docs/protocol.md` §1): the socket exists, is SEQPACKET with mode 0775, refuses
//! stream and datagram clients, and an abstract-name namespace is reachable.
//!
//! Must never: follow a symlink at the target path (`symlink_metadata`: the socket file itself must
//! be a socket with mode 0775), or leave behind the namespace it adds for the abstract name: its
//! delete runs whatever the ATTACH did.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use nix::errno::Errno;
use nix::sys::socket::{SockType, getsockopt, sockopt};

use super::{Check, Ctx, Scenario, ScenarioError, skip};
use crate::client::{ClientError, Conn, Endpoint, connect_as};
use crate::wire::AttachRequest;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "transport.socket.exists",
            "protocol §1.2",
            "the namespace socket is a socket file at the target path",
            socket_exists,
        ),
        Scenario::new(
            "transport.socket.mode_0775",
            "protocol §1.2 rule 4; vpp-26.10 §1",
            "the socket file has mode 0775",
            socket_mode,
        ),
        Scenario::new(
            "transport.socket.seqpacket",
            "protocol §1",
            "a SOCK_SEQPACKET client connects and its socket reports SOCK_SEQPACKET",
            seqpacket,
        ),
        Scenario::new(
            "transport.client.stream_refused",
            "protocol §1",
            "a SOCK_STREAM client cannot connect",
            |ctx, c| refused(ctx, c, SockType::Stream),
        ),
        Scenario::new(
            "transport.client.dgram_refused",
            "protocol §1",
            "a SOCK_DGRAM client cannot connect",
            |ctx, c| refused(ctx, c, SockType::Datagram),
        ),
        Scenario::new(
            "transport.abstract.reachable",
            "protocol §1.2 rule 6",
            "a namespace on an abstract socket name accepts an ATTACH",
            abstract_reachable,
        ),
    ]
}

fn path_of(ctx: &Ctx) -> Result<std::path::PathBuf, ScenarioError> {
    match ctx.target.endpoint() {
        Endpoint::Path(p) => Ok(p.clone()),
        Endpoint::Abstract(_) => Err(ScenarioError::Skip(
            "the target is an abstract socket: there is no file".into(),
        )),
    }
}

fn socket_exists(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let p = path_of(ctx)?;
    match std::fs::symlink_metadata(&p) {
        Ok(md) => {
            c.that(
                md.file_type().is_socket(),
                format!(
                    "{}: expected a socket, observed {:?}",
                    p.display(),
                    md.file_type()
                ),
            );
        }
        Err(e) => c.fail(format!("{}: {e}", p.display())),
    }
    Ok(())
}

fn socket_mode(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let p = path_of(ctx)?;
    let md = std::fs::symlink_metadata(&p)
        .map_err(|e| ScenarioError::Setup(format!("{}: {e}", p.display())))?;
    let mode = md.permissions().mode() & 0o7777;
    c.that(
        mode == 0o775,
        format!(
            "{}: expected mode 0775 (srwxrwxr-x), observed {mode:04o}",
            p.display()
        ),
    );
    Ok(())
}

fn seqpacket(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let conn = ctx.connect()?;
    let ty = getsockopt(&conn, sockopt::SockType)
        .map_err(|errno| ScenarioError::Setup(format!("getsockopt SO_TYPE: {errno}")))?;
    c.eq("SO_TYPE of the connected socket", SockType::SeqPacket, ty);
    Ok(())
}

fn refused(ctx: &Ctx, c: &mut Check, ty: SockType) -> Result<(), ScenarioError> {
    match connect_as(ctx.target.endpoint(), ty) {
        Ok(_) => c.fail(format!(
            "{ty:?} client: connect succeeded, expected it to be refused"
        )),
        Err(ClientError::Connect { errno, .. }) => {
            // A path lookup finds the SEQPACKET socket and the kernel says EPROTOTYPE; abstract
            // names are looked up per type, so there the kernel says ECONNREFUSED.
            let ok = match ctx.target.endpoint() {
                Endpoint::Path(_) => errno == Errno::EPROTOTYPE,
                Endpoint::Abstract(_) => matches!(errno, Errno::EPROTOTYPE | Errno::ECONNREFUSED),
            };
            c.that(
                ok,
                format!("{ty:?} client: expected EPROTOTYPE, observed {errno}"),
            );
            c.note(format!("{ty:?} connect refused with {errno}"));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn abstract_reachable(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    // If the target itself is abstract, every other scenario already exercises it.
    if let Endpoint::Abstract(_) = ctx.target.endpoint() {
        let conn = ctx.connect()?;
        let e = conn.attach(&AttachRequest::probe(&ctx.app_name(), true))?;
        c.retval(
            "ATTACH over the abstract target",
            ctx.profile,
            0,
            e.reply.retval,
        );
        return Ok(());
    }
    if !ctx.target.has_ns_triggers() {
        return skip(
            "needs --ns-add-cmd and --ns-del-cmd to create a namespace on an abstract name",
        );
    }
    let id = format!("confabs{}", std::process::id());
    let ep = Endpoint::Abstract(format!("sapi-conformance-{}", std::process::id()).into_bytes());
    ctx.target.ns_add(&id, &ep)?;
    let result = (|| -> Result<(), ScenarioError> {
        let conn = Conn::connect(&ep, ctx.timeout)?;
        let e = conn.attach(&AttachRequest::probe(&ctx.app_name(), true))?;
        c.retval(&format!("ATTACH over {ep}"), ctx.profile, 0, e.reply.retval);
        c.eq(
            "api_client_handle namespace bits (≠ 0 for a non-default namespace)",
            true,
            e.reply.api_client_handle >> 16 != 0,
        );
        Ok(())
    })();
    ctx.target.ns_del(&id)?;
    result
}
