//! The SAPI wire: VPP's session-layer application socket messages as bytes and as typed values.
//!
//! What this module owns (protocol spec §2–§7):
//!
//! * the 209-byte datagram ([`MSG_LEN`]) and its type byte ([`MsgType`]), for both protocol
//!   [`Profile`]s — `Head` (current VPP, types 0..=7) and `Seed` (2020-09, types 0..=5, 27-byte
//!   worker-reply body without `api_client_handle`);
//! * the typed messages ([`Message`] and one struct per body) with `encode` and `decode`
//!   (the `Repr` layer, after rustls' codec), and typed [`DecodeError`] / [`EncodeError`];
//! * a zero-copy accessor layer over any `T: AsRef<[u8]>` ([`packet`], after smoltcp's `wire`),
//!   which a checker can use to read raw field bytes the typed layer normalises;
//! * the attach options ([`AttachOptions`], [`OptionIndex`], [`AppOptionFlags`]), the fd flags
//!   ([`FdFlags`]), the application name ([`AppName`]) and the error numbers ([`SapiError`],
//!   [`session_error_name`]);
//! * a readable field-by-field dump ([`Message::dump`]) for snapshots and evidence;
//! * in [`ctrl`], the same for what travels in message-queue elements after attach: the
//!   session-layer control messages ([`ctrl::CtrlMessage`]) and io events ([`ctrl::IoEvent`]).
//!
//! What it must never do:
//!
//! * **panic on peer bytes** — every decoder and getter returns a value or a typed error for any
//!   input of any length (there is no indexing that can go out of bounds);
//! * **allocate per decode** beyond the message itself — decoded messages are plain `Copy` values,
//!   names are stored inline (one exception: [`ctrl::AppAddSegment`]'s name is a `Vec`, the
//!   type other crates build);
//! * **reject what VPP accepts**: non-zero bytes after a body (padding) are ignored on decode, as VPP
//!   ignores them; use [`nonzero_tail`] to report them. Non-zero `is_add` bytes mean "add".
//! * know anything about sockets, fds or server state: `n_fds`/`fd_flags` are just numbers here.
//!
//! All integers are little-endian and the layouts are packed (spec conventions); this matches the
//! x86_64/aarch64 machines VPP runs on.

#[cfg(feature = "arbitrary")]
mod arbitrary;
pub mod ctrl;
mod dump;
mod errno;
mod flags;
mod message;
mod name;
mod options;
pub mod packet;

pub use errno::{SapiError, session_error_name, vnet_api_error_name};
pub use flags::{AppOptionFlags, FdFlags};
pub use message::{
    AddDelCertKey, AddDelCertKeyReply, AddDelWorker, AddDelWorkerReply, Attach, AttachReply,
    DecodeError, EncodeError, Message, nonzero_tail,
};
pub use name::{AppName, NameError};
pub use options::{AttachOptions, OptionIndex};

use std::fmt;
use std::str::FromStr;

/// Size in bytes of every SAPI control datagram, request or reply, at every revision
/// (`sizeof(app_sapi_msg_t)`: one type byte plus the 208-byte ATTACH body, the largest member).
pub const MSG_LEN: usize = 209;

/// Which revision of the protocol a peer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// Current VPP (spec "HEAD"): message types 0..=7, 31-byte worker-reply body with
    /// `api_client_handle`, `SESSION_E_*` error numbers (§7.1).
    #[default]
    Head,
    /// The original 2020-09 revision (`61ae056bdb6`): types 0..=5, 27-byte worker-reply body,
    /// `VNET_API_ERROR_*` error numbers (§7.2), absolute pointers in replies.
    Seed,
}

impl Profile {
    /// Both profiles, newest first.
    pub const ALL: [Profile; 2] = [Profile::Head, Profile::Seed];

    /// Number of message type values defined in this profile (NONE included): 8 or 6.
    pub const fn type_count(self) -> u8 {
        match self {
            Profile::Head => 8,
            Profile::Seed => 6,
        }
    }

    /// The lower-case name used on command lines and in reports: `"head"` or `"seed"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Profile::Head => "head",
            Profile::Seed => "seed",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A profile name that is neither `head` nor `seed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SAPI profile {input:?} (expected \"head\" or \"seed\")")]
pub struct ParseProfileError {
    /// The text that was given.
    pub input: String,
}

impl FromStr for Profile {
    type Err = ParseProfileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "head" => Ok(Profile::Head),
            "seed" => Ok(Profile::Seed),
            _ => Err(ParseProfileError {
                input: s.to_owned(),
            }),
        }
    }
}

/// The message type byte (byte 0 of every datagram, `app_sapi_msg_type_e`, spec §2.1).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// 0: never valid in either direction.
    None = 0,
    /// 1: app → server, attach an application.
    Attach = 1,
    /// 2: server → app, result of ATTACH (+ fds).
    AttachReply = 2,
    /// 3: app → server, add or delete a worker.
    AddDelWorker = 3,
    /// 4: server → app, result of a worker add (+ fds).
    AddDelWorkerReply = 4,
    /// 5: server → app, zero body, carries one segment fd.
    SendFds = 5,
    /// 6: app → server, add or delete a cert-key pair (Head only).
    AddDelCertKey = 6,
    /// 7: server → app, result of ADD_DEL_CERT_KEY (Head only).
    AddDelCertKeyReply = 7,
}

impl MsgType {
    /// All eight type values in numeric order.
    pub const ALL: [MsgType; 8] = [
        MsgType::None,
        MsgType::Attach,
        MsgType::AttachReply,
        MsgType::AddDelWorker,
        MsgType::AddDelWorkerReply,
        MsgType::SendFds,
        MsgType::AddDelCertKey,
        MsgType::AddDelCertKeyReply,
    ];

    /// The type for a type byte, if it is one of the eight Head values (whatever the profile).
    pub const fn from_u8(byte: u8) -> Option<MsgType> {
        match byte {
            0 => Some(MsgType::None),
            1 => Some(MsgType::Attach),
            2 => Some(MsgType::AttachReply),
            3 => Some(MsgType::AddDelWorker),
            4 => Some(MsgType::AddDelWorkerReply),
            5 => Some(MsgType::SendFds),
            6 => Some(MsgType::AddDelCertKey),
            7 => Some(MsgType::AddDelCertKeyReply),
            _ => None,
        }
    }

    /// The type byte.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// VPP's name without the `SAPI_MSG_TYPE_` prefix, e.g. `"ADD_DEL_WORKER_REPLY"`.
    pub const fn name(self) -> &'static str {
        match self {
            MsgType::None => "NONE",
            MsgType::Attach => "ATTACH",
            MsgType::AttachReply => "ATTACH_REPLY",
            MsgType::AddDelWorker => "ADD_DEL_WORKER",
            MsgType::AddDelWorkerReply => "ADD_DEL_WORKER_REPLY",
            MsgType::SendFds => "SEND_FDS",
            MsgType::AddDelCertKey => "ADD_DEL_CERT_KEY",
            MsgType::AddDelCertKeyReply => "ADD_DEL_CERT_KEY_REPLY",
        }
    }

    /// The direction this type travels; `None` for NONE, which is valid in neither.
    pub const fn direction(self) -> Option<Direction> {
        match self {
            MsgType::None => None,
            MsgType::Attach | MsgType::AddDelWorker | MsgType::AddDelCertKey => {
                Some(Direction::AppToServer)
            }
            MsgType::AttachReply
            | MsgType::AddDelWorkerReply
            | MsgType::SendFds
            | MsgType::AddDelCertKeyReply => Some(Direction::ServerToApp),
        }
    }

    /// Whether this type exists in `profile` (cert-key types are Head only).
    pub const fn exists_in(self, profile: Profile) -> bool {
        self.as_u8() < profile.type_count()
    }

    /// Length of this type's body in `profile` (the bytes after the type byte that carry fields;
    /// the rest of the 208 is zero padding). ATTACH fills the whole 208.
    pub const fn body_len(self, profile: Profile) -> usize {
        match (self, profile) {
            (MsgType::None, _) | (MsgType::SendFds, _) => 0,
            (MsgType::Attach, _) => MSG_LEN - 1,
            (MsgType::AttachReply, _) => 39,
            (MsgType::AddDelWorker, _) => 9,
            (MsgType::AddDelWorkerReply, Profile::Head) => 31,
            (MsgType::AddDelWorkerReply, Profile::Seed) => 27,
            (MsgType::AddDelCertKey, _) => 13,
            (MsgType::AddDelCertKeyReply, _) => 12,
        }
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u8> for MsgType {
    type Error = DecodeError;

    /// Maps a type byte to one of the eight Head types; `UnknownType` for 8..=255.
    fn try_from(byte: u8) -> Result<Self, Self::Error> {
        MsgType::from_u8(byte).ok_or(DecodeError::UnknownType { type_byte: byte })
    }
}

/// Which way a message travels: a datagram on the socket, or an element in a message queue
/// (an app's posts to the server's mqs, the server's to the app's mq).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Socket requests (ATTACH, ADD_DEL_WORKER, ADD_DEL_CERT_KEY); elements an app posts to a
    /// server mq.
    AppToServer,
    /// Socket replies and SEND_FDS; elements the server posts to an app mq.
    ServerToApp,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::AppToServer => "app->server",
            Direction::ServerToApp => "server->app",
        })
    }
}
