//! Typed messages and their codec: [`Message::encode`] into a 209-byte array and
//! [`Message::decode`] from a datagram into a message or a [`DecodeError`] naming what was wrong
//! (after rustls' `Codec`).
//!
//! Decoding validates only what makes bytes unreadable as a message — length, type byte,
//! direction. Field values are never judged here: VPP reads them as they are, and so does the
//! reference; the server decides what a value means.

use super::packet::{
    AddDelCertKeyPacket, AddDelCertKeyReplyPacket, AddDelWorkerPacket, AddDelWorkerReplyPacket,
    AttachPacket, AttachReplyPacket, check_len,
};
use super::{AppName, AttachOptions, Direction, FdFlags, MSG_LEN, MsgType, OptionIndex, Profile};

/// ATTACH (type 1): an application asks to attach (spec §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Attach {
    /// Application name (at most 63 bytes used).
    pub name: AppName,
    /// The 18 attach option slots.
    pub options: AttachOptions,
}

/// ATTACH_REPLY (type 2): result of ATTACH; on success fds travel with it (spec §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AttachReply {
    /// 0 or a negative error number of the profile.
    pub retval: i32,
    /// The new application's index.
    pub app_index: u32,
    /// Head: offset of the app event mq in the app's first segment. Seed: VPP address.
    pub app_mq: u64,
    /// Head: offset of VPP's control mq in the VPP mqs segment. Seed: VPP address.
    pub vpp_ctrl_mq: u64,
    /// Handle of the app's first fifo segment (`segment_manager << 32 | segment`).
    pub segment_handle: u64,
    /// The socket's handle (`ns_index << 16 | socket_index`).
    pub api_client_handle: u32,
    /// Which VPP control mq (thread) the app talks to.
    pub vpp_ctrl_mq_thread: u8,
    /// Number of fds carried with this datagram.
    pub n_fds: u8,
    /// Which fds are carried.
    pub fd_flags: FdFlags,
}

/// ADD_DEL_WORKER (type 3): add a worker to an app, or delete one (spec §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AddDelWorker {
    /// Application index from ATTACH_REPLY.
    pub app_index: u32,
    /// Delete: the worker's map index. Ignored on add.
    pub wrk_index: u32,
    /// Add (any non-zero byte) or delete (0).
    pub is_add: bool,
}

/// ADD_DEL_WORKER_REPLY (type 4): result of a worker add (spec §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AddDelWorkerReply {
    /// 0 or a negative error number of the profile.
    pub retval: i32,
    /// New worker's map index on success; echo of the request's on failure (Head).
    pub wrk_index: u32,
    /// Head: offset of the worker's event mq in its first segment. Seed: VPP address.
    pub app_event_queue_address: u64,
    /// The worker's first fifo segment handle; 0 on failure.
    pub segment_handle: u64,
    /// Head: handle of the requesting socket, `0xFFFF_FFFF` for an invalid app index.
    /// The seed layout has no such field: it is not encoded there and decodes as 0.
    pub api_client_handle: u32,
    /// Number of fds carried with this datagram.
    pub n_fds: u8,
    /// Which fds are carried.
    pub fd_flags: FdFlags,
    /// Echo of the request's `is_add`.
    pub is_add: bool,
}

/// ADD_DEL_CERT_KEY (type 6, Head only): add a cert-key pair (followed by a data datagram of
/// `certkey_len` bytes) or delete one (spec §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AddDelCertKey {
    /// Opaque, echoed in the reply.
    pub context: u32,
    /// Delete: index of the pair. Ignored on add.
    pub index: u32,
    /// Add: length of the certificate part.
    pub cert_len: u16,
    /// Add: total length of certificate + key, i.e. of the data datagram.
    pub certkey_len: u16,
    /// Add (any non-zero byte) or delete (0).
    pub is_add: bool,
}

/// ADD_DEL_CERT_KEY_REPLY (type 7, Head only): result of ADD_DEL_CERT_KEY (spec §3.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AddDelCertKeyReply {
    /// Echo of the request's context.
    pub context: u32,
    /// 0 or a negative error number.
    pub retval: i32,
    /// Index of the new pair on a successful add; 0 otherwise.
    pub index: u32,
}

/// One SAPI control message of any type except NONE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Message {
    /// Type 1.
    Attach(Attach),
    /// Type 2.
    AttachReply(AttachReply),
    /// Type 3.
    AddDelWorker(AddDelWorker),
    /// Type 4.
    AddDelWorkerReply(AddDelWorkerReply),
    /// Type 5: zero body; the fd it carries is the point.
    SendFds,
    /// Type 6 (Head only).
    AddDelCertKey(AddDelCertKey),
    /// Type 7 (Head only).
    AddDelCertKeyReply(AddDelCertKeyReply),
}

/// Why a datagram is not a message of the profile in the expected direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than 209 bytes (0 included). VPP treats this as a socket error.
    #[error("datagram of {len} bytes is shorter than the {MSG_LEN}-byte SAPI message")]
    Truncated {
        /// Length received.
        len: usize,
    },
    /// Longer than 209 bytes. Not seen by a SEQPACKET server (the kernel truncates), but a buffer
    /// handed to the decoder can be.
    #[error("datagram of {len} bytes is longer than the {MSG_LEN}-byte SAPI message")]
    Oversized {
        /// Length received.
        len: usize,
    },
    /// Type byte 0 (NONE), valid in no direction.
    #[error("type byte 0 (NONE) is never a valid message")]
    NoneType,
    /// A type byte that names no message of the profile: 8..=255 at Head, 6..=255 at the seed.
    #[error("type byte {type_byte} is not a message type of this profile")]
    UnknownType {
        /// The type byte received.
        type_byte: u8,
    },
    /// A known type travelling the wrong way, e.g. ATTACH_REPLY sent to the server.
    #[error(
        "{msg_type} (type {}) only travels {}, but arrived {dir}",
        msg_type.as_u8(),
        opposite(*dir)
    )]
    WrongDirection {
        /// The type received.
        msg_type: MsgType,
        /// The direction it arrived in.
        dir: Direction,
    },
}

fn opposite(dir: Direction) -> Direction {
    match dir {
        Direction::AppToServer => Direction::ServerToApp,
        Direction::ServerToApp => Direction::AppToServer,
    }
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EncodeError {
    /// The message type does not exist in the profile (cert-key messages at the seed).
    #[error("{msg_type} (type {}) does not exist in the {profile} profile", msg_type.as_u8())]
    NotInProfile {
        /// The type that was asked for.
        msg_type: MsgType,
        /// The profile it was asked for in.
        profile: Profile,
    },
}

impl Message {
    /// This message's type.
    pub const fn msg_type(&self) -> MsgType {
        match self {
            Message::Attach(_) => MsgType::Attach,
            Message::AttachReply(_) => MsgType::AttachReply,
            Message::AddDelWorker(_) => MsgType::AddDelWorker,
            Message::AddDelWorkerReply(_) => MsgType::AddDelWorkerReply,
            Message::SendFds => MsgType::SendFds,
            Message::AddDelCertKey(_) => MsgType::AddDelCertKey,
            Message::AddDelCertKeyReply(_) => MsgType::AddDelCertKeyReply,
        }
    }

    /// The 209-byte datagram of this message in `profile`; every byte after the body is zero.
    /// Booleans encode as 0/1. At the seed a worker reply's `api_client_handle` has no place and
    /// is dropped.
    pub fn encode(&self, profile: Profile) -> Result<[u8; MSG_LEN], EncodeError> {
        let msg_type = self.msg_type();
        if !msg_type.exists_in(profile) {
            return Err(EncodeError::NotInProfile { msg_type, profile });
        }
        let mut buf = [0u8; MSG_LEN];
        let bytes = &mut buf[..];
        match self {
            Message::Attach(m) => {
                let mut p = AttachPacket::new_unchecked(bytes);
                p.set_type_byte(msg_type.as_u8());
                p.set_name_field(m.name.to_wire());
                for index in OptionIndex::ALL {
                    p.set_option(index, m.options.get(index));
                }
            }
            Message::AttachReply(m) => {
                let mut p = AttachReplyPacket::new_unchecked(bytes);
                p.set_type_byte(msg_type.as_u8());
                p.set_retval(m.retval);
                p.set_app_index(m.app_index);
                p.set_app_mq(m.app_mq);
                p.set_vpp_ctrl_mq(m.vpp_ctrl_mq);
                p.set_segment_handle(m.segment_handle);
                p.set_api_client_handle(m.api_client_handle);
                p.set_vpp_ctrl_mq_thread(m.vpp_ctrl_mq_thread);
                p.set_n_fds(m.n_fds);
                p.set_fd_flags_byte(m.fd_flags.bits());
            }
            Message::AddDelWorker(m) => {
                let mut p = AddDelWorkerPacket::new_unchecked(bytes);
                p.set_type_byte(msg_type.as_u8());
                p.set_app_index(m.app_index);
                p.set_wrk_index(m.wrk_index);
                p.set_is_add(u8::from(m.is_add));
            }
            Message::AddDelWorkerReply(m) => {
                let mut p = AddDelWorkerReplyPacket::new_unchecked(bytes, profile);
                p.set_type_byte(msg_type.as_u8());
                p.set_retval(m.retval);
                p.set_wrk_index(m.wrk_index);
                p.set_app_event_queue_address(m.app_event_queue_address);
                p.set_segment_handle(m.segment_handle);
                p.set_api_client_handle(m.api_client_handle);
                p.set_n_fds(m.n_fds);
                p.set_fd_flags_byte(m.fd_flags.bits());
                p.set_is_add(u8::from(m.is_add));
            }
            Message::SendFds => {
                if let Some(b) = bytes.first_mut() {
                    *b = msg_type.as_u8();
                }
            }
            Message::AddDelCertKey(m) => {
                let mut p = AddDelCertKeyPacket::new_unchecked(bytes);
                p.set_type_byte(msg_type.as_u8());
                p.set_context(m.context);
                p.set_index(m.index);
                p.set_cert_len(m.cert_len);
                p.set_certkey_len(m.certkey_len);
                p.set_is_add(u8::from(m.is_add));
            }
            Message::AddDelCertKeyReply(m) => {
                let mut p = AddDelCertKeyReplyPacket::new_unchecked(bytes);
                p.set_type_byte(msg_type.as_u8());
                p.set_context(m.context);
                p.set_retval(m.retval);
                p.set_index(m.index);
            }
        }
        Ok(buf)
    }

    /// Decodes one datagram that arrived travelling `dir`, in `profile`.
    ///
    /// Checks, in this order: length exactly 209 (`Truncated` / `Oversized`), type byte
    /// (`NoneType` / `UnknownType`), direction (`WrongDirection`). Bytes after the body are
    /// ignored, as VPP ignores them ([`nonzero_tail`] reports them).
    pub fn decode(
        datagram: &[u8],
        profile: Profile,
        dir: Direction,
    ) -> Result<Message, DecodeError> {
        check_len(datagram.len())?;
        let type_byte = datagram.first().copied().unwrap_or_default();
        let msg_type = match MsgType::from_u8(type_byte) {
            Some(MsgType::None) => return Err(DecodeError::NoneType),
            Some(t) if t.exists_in(profile) => t,
            _ => return Err(DecodeError::UnknownType { type_byte }),
        };
        if msg_type.direction() != Some(dir) {
            return Err(DecodeError::WrongDirection { msg_type, dir });
        }
        Ok(Self::decode_body(datagram, msg_type, profile))
    }

    /// Reads the fields of `msg_type` from `datagram` (any length; missing bytes read as zero).
    fn decode_body(datagram: &[u8], msg_type: MsgType, profile: Profile) -> Message {
        match msg_type {
            MsgType::Attach => {
                let p = AttachPacket::new_unchecked(datagram);
                Message::Attach(Attach {
                    name: p.name(),
                    options: p.options(),
                })
            }
            MsgType::AttachReply => {
                let p = AttachReplyPacket::new_unchecked(datagram);
                Message::AttachReply(AttachReply {
                    retval: p.retval(),
                    app_index: p.app_index(),
                    app_mq: p.app_mq(),
                    vpp_ctrl_mq: p.vpp_ctrl_mq(),
                    segment_handle: p.segment_handle(),
                    api_client_handle: p.api_client_handle(),
                    vpp_ctrl_mq_thread: p.vpp_ctrl_mq_thread(),
                    n_fds: p.n_fds(),
                    fd_flags: p.fd_flags(),
                })
            }
            MsgType::AddDelWorker => {
                let p = AddDelWorkerPacket::new_unchecked(datagram);
                Message::AddDelWorker(AddDelWorker {
                    app_index: p.app_index(),
                    wrk_index: p.wrk_index(),
                    is_add: p.is_add() != 0,
                })
            }
            MsgType::AddDelWorkerReply => {
                let p = AddDelWorkerReplyPacket::new_unchecked(datagram, profile);
                Message::AddDelWorkerReply(AddDelWorkerReply {
                    retval: p.retval(),
                    wrk_index: p.wrk_index(),
                    app_event_queue_address: p.app_event_queue_address(),
                    segment_handle: p.segment_handle(),
                    api_client_handle: p.api_client_handle().unwrap_or(0),
                    n_fds: p.n_fds(),
                    fd_flags: p.fd_flags(),
                    is_add: p.is_add() != 0,
                })
            }
            // NONE never reaches here (decode rejects it); an empty body is the honest reading.
            MsgType::SendFds | MsgType::None => Message::SendFds,
            MsgType::AddDelCertKey => {
                let p = AddDelCertKeyPacket::new_unchecked(datagram);
                Message::AddDelCertKey(AddDelCertKey {
                    context: p.context(),
                    index: p.index(),
                    cert_len: p.cert_len(),
                    certkey_len: p.certkey_len(),
                    is_add: p.is_add() != 0,
                })
            }
            MsgType::AddDelCertKeyReply => {
                let p = AddDelCertKeyReplyPacket::new_unchecked(datagram);
                Message::AddDelCertKeyReply(AddDelCertKeyReply {
                    context: p.context(),
                    retval: p.retval(),
                    index: p.index(),
                })
            }
        }
    }
}

/// Dgram offset of the first non-zero byte after the body of `msg_type` in `profile`, scanning to
/// the end of `datagram` (bytes past 209 included); `None` if all are zero. VPP ignores such
/// bytes and zero-fills its own replies, so a checker reports them rather than a decoder refusing.
pub fn nonzero_tail(datagram: &[u8], msg_type: MsgType, profile: Profile) -> Option<usize> {
    let body_end = 1 + msg_type.body_len(profile);
    datagram
        .iter()
        .enumerate()
        .skip(body_end)
        .find(|&(_, &b)| b != 0)
        .map(|(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_checks_length_then_type_then_direction() {
        let mut dgram = [0u8; MSG_LEN];
        dgram[0] = 2;
        let got = Message::decode(&dgram[..5], Profile::Head, Direction::AppToServer);
        assert_eq!(got, Err(DecodeError::Truncated { len: 5 }));
        let got = Message::decode(&dgram, Profile::Head, Direction::AppToServer);
        assert_eq!(
            got,
            Err(DecodeError::WrongDirection {
                msg_type: MsgType::AttachReply,
                dir: Direction::AppToServer
            })
        );
        dgram[0] = 6;
        let got = Message::decode(&dgram, Profile::Seed, Direction::AppToServer);
        assert_eq!(got, Err(DecodeError::UnknownType { type_byte: 6 }));
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let e = DecodeError::WrongDirection {
            msg_type: MsgType::AttachReply,
            dir: Direction::AppToServer,
        };
        assert_eq!(
            e.to_string(),
            "ATTACH_REPLY (type 2) only travels server->app, but arrived app->server"
        );
        let e = EncodeError::NotInProfile {
            msg_type: MsgType::AddDelCertKey,
            profile: Profile::Seed,
        };
        assert_eq!(
            e.to_string(),
            "ADD_DEL_CERT_KEY (type 6) does not exist in the seed profile"
        );
    }

    #[test]
    fn seed_drops_worker_reply_handle_and_shifts_tail() {
        let reply = Message::AddDelWorkerReply(AddDelWorkerReply {
            api_client_handle: 0xdead_beef,
            n_fds: 2,
            fd_flags: FdFlags::MEMFD_SEGMENT | FdFlags::MQ_EVENTFD,
            is_add: true,
            ..Default::default()
        });
        let seed = reply.encode(Profile::Seed).unwrap_or([0xff; MSG_LEN]);
        assert_eq!(&seed[25..28], &[2, 6, 1]);
        assert_eq!(
            nonzero_tail(&seed, MsgType::AddDelWorkerReply, Profile::Seed),
            None
        );
        let head = reply.encode(Profile::Head).unwrap_or([0xff; MSG_LEN]);
        assert_eq!(&head[25..32], &[0xef, 0xbe, 0xad, 0xde, 2, 6, 1]);
    }
}
