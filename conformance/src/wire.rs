//! The suite's own reading and writing of the 209-byte SAPI datagrams, from the tables of
//! `docs/protocol.md` §2–§7.
//!
//! Owns: message type numbers, the dgram offset of every field, attach options and flags, fd
//! flags, error numbers and their names per [`Profile`], request encoders, reply decoders.
//! Every read names its field and returns a [`WireError`] on a short or foreign datagram: the
//! bytes come from the target under test and are untrusted.
//!
//! Must never: import the reference's codec (the suite checks it), panic on target bytes, or
//! decode by casting bytes to a struct — each field is read at its documented dgram offset so a
//! FAIL can say which byte was wrong.

use std::fmt;

/// Every control datagram, both directions, at every revision (§2).
pub const MSG_LEN: usize = 209;

/// Message type numbers (`app_sapi_msg_type_e`, §2.1).
pub mod msg_type {
    pub const NONE: u8 = 0;
    pub const ATTACH: u8 = 1;
    pub const ATTACH_REPLY: u8 = 2;
    pub const ADD_DEL_WORKER: u8 = 3;
    pub const ADD_DEL_WORKER_REPLY: u8 = 4;
    pub const SEND_FDS: u8 = 5;
    pub const ADD_DEL_CERT_KEY: u8 = 6;
    pub const ADD_DEL_CERT_KEY_REPLY: u8 = 7;
}

/// Human name of a type byte, for evidence.
pub fn msg_type_name(t: u8) -> &'static str {
    match t {
        0 => "NONE",
        1 => "ATTACH",
        2 => "ATTACH_REPLY",
        3 => "ADD_DEL_WORKER",
        4 => "ADD_DEL_WORKER_REPLY",
        5 => "SEND_FDS",
        6 => "ADD_DEL_CERT_KEY",
        7 => "ADD_DEL_CERT_KEY_REPLY",
        _ => "unknown",
    }
}

/// Attach option indices (§4).
pub mod opt {
    pub const FLAGS: usize = 0;
    pub const EVT_QUEUE_SIZE: usize = 1;
    pub const SEGMENT_SIZE: usize = 2;
    pub const ADD_SEGMENT_SIZE: usize = 3;
    pub const MAX_FIFO_MEMORY: usize = 4;
    pub const RX_FIFO_SIZE: usize = 5;
    pub const TX_FIFO_SIZE: usize = 6;
    pub const PREALLOC_FIFO_PAIRS: usize = 7;
    pub const PREALLOC_FIFO_HDRS: usize = 8;
    pub const NAMESPACE: usize = 9;
    pub const NAMESPACE_SECRET: usize = 10;
    pub const PROXY_TRANSPORT: usize = 11;
    pub const TLS_ENGINE: usize = 13;
    pub const PCT_FIRST_ALLOC: usize = 17;
    pub const N_OPTIONS: usize = 18;
}

/// `APP_OPTIONS_FLAGS_*` bits (§4.1).
pub mod app_flag {
    pub const ACCEPT_REDIRECT: u64 = 0x0001;
    pub const ADD_SEGMENT: u64 = 0x0002;
    pub const IS_BUILTIN: u64 = 0x0004;
    pub const IS_PROXY: u64 = 0x0010;
    pub const USE_GLOBAL_SCOPE: u64 = 0x0020;
    pub const USE_LOCAL_SCOPE: u64 = 0x0040;
    pub const EVT_MQ_USE_EVENTFD: u64 = 0x0080;
}

/// `SESSION_FD_F_*` bits (§5.2).
pub mod fd_flag {
    pub const VPP_MQ_SEGMENT: u8 = 0x01;
    pub const MEMFD_SEGMENT: u8 = 0x02;
    pub const MQ_EVENTFD: u8 = 0x04;
    pub const VPP_MQ_EVENTFD: u8 = 0x08;
}

/// Which revision's expectations apply (§12). `Head` pins the newest numbering and layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Head,
    Seed,
}

impl Profile {
    /// Error for a bad app or worker index (HEAD `SESSION_E_INVALID`, seed `INVALID_VALUE`).
    pub fn err_invalid(self) -> i32 {
        match self {
            Profile::Head => -19,
            Profile::Seed => -7,
        }
    }
    /// Error for an ATTACH on an already attached socket.
    pub fn err_app_attached(self) -> i32 {
        match self {
            Profile::Head => -14,
            Profile::Seed => -131,
        }
    }
    /// Error for an unsupported attach configuration.
    pub fn err_nosupport(self) -> i32 {
        match self {
            Profile::Head => -10,
            Profile::Seed => -108,
        }
    }
    /// Name of a retval under this profile's numbering, for evidence.
    pub fn retval_name(self, v: i32) -> String {
        let name = match (self, v) {
            (_, 0) => "OK",
            (Profile::Head, -1) => "SESSION_E_UNKNOWN",
            (Profile::Head, -4) => "SESSION_E_ALLOC",
            (Profile::Head, -10) => "SESSION_E_NOSUPPORT",
            (Profile::Head, -13) => "SESSION_E_NOAPP",
            (Profile::Head, -14) => "SESSION_E_APP_ATTACHED",
            (Profile::Head, -19) => "SESSION_E_INVALID",
            (Profile::Head, -21) => "SESSION_E_INVALID_APPWRK",
            (Profile::Head, -22) => "SESSION_E_INVALID_NS",
            (Profile::Head, -25) => "SESSION_E_SEG_CREATE",
            (Profile::Head, -33) => "SESSION_E_EVENTFD_ALLOC",
            (Profile::Head, -39) => "SESSION_E_SYSCALL",
            (Profile::Seed, -7) => "VNET_API_ERROR_INVALID_VALUE",
            (Profile::Seed, -30) => "VNET_API_ERROR_FEATURE_DISABLED",
            (Profile::Seed, -108) => "VNET_API_ERROR_APP_UNSUPPORTED_CFG",
            (Profile::Seed, -131) => "VNET_API_ERROR_APP_ALREADY_ATTACHED",
            _ => return format!("{v} (unnamed)"),
        };
        format!("{v} {name}")
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Head => "head",
            Profile::Seed => "seed",
        })
    }
}

/// One named field of a datagram: where it is and how wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub len: usize,
}

const fn f(name: &'static str, offset: usize, len: usize) -> Field {
    Field { name, offset, len }
}

/// Dgram offsets of every field the suite reads or writes (§3). Names follow the spec tables.
pub mod field {
    use super::{Field, f};
    pub const TYPE: Field = f("type", 0, 1);

    pub const ATTACH_NAME: Field = f("attach.name", 1, 64);
    /// `options[i]` is at `65 + 8 * i`.
    pub const fn attach_option(i: usize) -> Field {
        f("attach.options[i]", 65 + 8 * i, 8)
    }

    pub const AR_RETVAL: Field = f("attach_reply.retval", 1, 4);
    pub const AR_APP_INDEX: Field = f("attach_reply.app_index", 5, 4);
    pub const AR_APP_MQ: Field = f("attach_reply.app_mq", 9, 8);
    pub const AR_VPP_CTRL_MQ: Field = f("attach_reply.vpp_ctrl_mq", 17, 8);
    pub const AR_SEGMENT_HANDLE: Field = f("attach_reply.segment_handle", 25, 8);
    pub const AR_API_CLIENT_HANDLE: Field = f("attach_reply.api_client_handle", 33, 4);
    pub const AR_VPP_CTRL_MQ_THREAD: Field = f("attach_reply.vpp_ctrl_mq_thread", 37, 1);
    pub const AR_N_FDS: Field = f("attach_reply.n_fds", 38, 1);
    pub const AR_FD_FLAGS: Field = f("attach_reply.fd_flags", 39, 1);
    pub const AR_BODY_END: usize = 40;

    pub const WK_APP_INDEX: Field = f("add_del_worker.app_index", 1, 4);
    pub const WK_WRK_INDEX: Field = f("add_del_worker.wrk_index", 5, 4);
    pub const WK_IS_ADD: Field = f("add_del_worker.is_add", 9, 1);

    pub const WR_RETVAL: Field = f("worker_reply.retval", 1, 4);
    pub const WR_WRK_INDEX: Field = f("worker_reply.wrk_index", 5, 4);
    pub const WR_APP_EVENT_QUEUE_ADDRESS: Field = f("worker_reply.app_event_queue_address", 9, 8);
    pub const WR_SEGMENT_HANDLE: Field = f("worker_reply.segment_handle", 17, 8);
    /// HEAD layout (31-byte body).
    pub const WR_API_CLIENT_HANDLE: Field = f("worker_reply.api_client_handle", 25, 4);
    pub const WR_N_FDS: Field = f("worker_reply.n_fds", 29, 1);
    pub const WR_FD_FLAGS: Field = f("worker_reply.fd_flags", 30, 1);
    pub const WR_IS_ADD: Field = f("worker_reply.is_add", 31, 1);
    pub const WR_BODY_END: usize = 32;
    /// Seed layout (27-byte body, no api_client_handle).
    pub const WR_SEED_N_FDS: Field = f("worker_reply.n_fds (seed)", 25, 1);
    pub const WR_SEED_FD_FLAGS: Field = f("worker_reply.fd_flags (seed)", 26, 1);
    pub const WR_SEED_IS_ADD: Field = f("worker_reply.is_add (seed)", 27, 1);
    pub const WR_SEED_BODY_END: usize = 28;

    pub const CK_CONTEXT: Field = f("cert_key.context", 1, 4);
    pub const CK_INDEX: Field = f("cert_key.index", 5, 4);
    pub const CK_CERT_LEN: Field = f("cert_key.cert_len", 9, 2);
    pub const CK_CERTKEY_LEN: Field = f("cert_key.certkey_len", 11, 2);
    pub const CK_IS_ADD: Field = f("cert_key.is_add", 13, 1);

    pub const CKR_CONTEXT: Field = f("cert_key_reply.context", 1, 4);
    pub const CKR_RETVAL: Field = f("cert_key_reply.retval", 5, 4);
    pub const CKR_INDEX: Field = f("cert_key_reply.index", 9, 4);
    pub const CKR_BODY_END: usize = 13;
}

/// Why a datagram could not be read as the message the suite expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("datagram is {len} bytes, expected exactly {MSG_LEN}")]
    Length { len: usize },
    #[error(
        "field {field} (dgram offset {offset}, {width} bytes) lies past the end of a {len}-byte datagram"
    )]
    OutOfBounds {
        field: &'static str,
        offset: usize,
        width: usize,
        len: usize,
    },
    #[error("type byte is {found} ({}), expected {expected} ({})", msg_type_name(*found), msg_type_name(*expected))]
    Type { found: u8, expected: u8 },
}

/// Never-panicking accessors over a received datagram, smoltcp style.
#[derive(Clone, Copy, Debug)]
pub struct Dgram<'a>(pub &'a [u8]);

impl<'a> Dgram<'a> {
    /// The bytes of `field`, or an error naming it when the datagram is too short.
    pub fn bytes(&self, field: Field) -> Result<&'a [u8], WireError> {
        self.0
            .get(field.offset..field.offset + field.len)
            .ok_or(WireError::OutOfBounds {
                field: field.name,
                offset: field.offset,
                width: field.len,
                len: self.0.len(),
            })
    }
    pub fn u8(&self, field: Field) -> Result<u8, WireError> {
        Ok(self.bytes(field)?[0])
    }
    pub fn u16(&self, field: Field) -> Result<u16, WireError> {
        let b = self.bytes(field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&self, field: Field) -> Result<u32, WireError> {
        let b = self.bytes(field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i32(&self, field: Field) -> Result<i32, WireError> {
        self.u32(field).map(|v| v as i32)
    }
    pub fn u64(&self, field: Field) -> Result<u64, WireError> {
        let b = self.bytes(field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// Checks the length is exactly 209 and the type byte is `expected`.
    pub fn expect(&self, expected: u8) -> Result<(), WireError> {
        if self.0.len() != MSG_LEN {
            return Err(WireError::Length { len: self.0.len() });
        }
        let found = self.u8(field::TYPE)?;
        if found != expected {
            return Err(WireError::Type { found, expected });
        }
        Ok(())
    }
    /// First non-zero byte at or after `from`, as (dgram offset, value): replies must be zero after
    /// their body (§2).
    pub fn first_nonzero_from(&self, from: usize) -> Option<(usize, u8)> {
        self.0
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, b)| **b != 0)
            .map(|(i, b)| (i, *b))
    }
}

/// ATTACH_REPLY (§3.2), every field as read at its offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AttachReply {
    pub retval: i32,
    pub app_index: u32,
    pub app_mq: u64,
    pub vpp_ctrl_mq: u64,
    pub segment_handle: u64,
    pub api_client_handle: u32,
    pub vpp_ctrl_mq_thread: u8,
    pub n_fds: u8,
    pub fd_flags: u8,
}

impl AttachReply {
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let d = Dgram(bytes);
        d.expect(msg_type::ATTACH_REPLY)?;
        Ok(AttachReply {
            retval: d.i32(field::AR_RETVAL)?,
            app_index: d.u32(field::AR_APP_INDEX)?,
            app_mq: d.u64(field::AR_APP_MQ)?,
            vpp_ctrl_mq: d.u64(field::AR_VPP_CTRL_MQ)?,
            segment_handle: d.u64(field::AR_SEGMENT_HANDLE)?,
            api_client_handle: d.u32(field::AR_API_CLIENT_HANDLE)?,
            vpp_ctrl_mq_thread: d.u8(field::AR_VPP_CTRL_MQ_THREAD)?,
            n_fds: d.u8(field::AR_N_FDS)?,
            fd_flags: d.u8(field::AR_FD_FLAGS)?,
        })
    }
}

/// ADD_DEL_WORKER_REPLY (§3.4) in either profile's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WorkerReply {
    pub retval: i32,
    pub wrk_index: u32,
    pub app_event_queue_address: u64,
    pub segment_handle: u64,
    /// Absent in the seed layout.
    pub api_client_handle: Option<u32>,
    pub n_fds: u8,
    pub fd_flags: u8,
    pub is_add: u8,
}

impl WorkerReply {
    pub fn parse(bytes: &[u8], profile: Profile) -> Result<Self, WireError> {
        let d = Dgram(bytes);
        d.expect(msg_type::ADD_DEL_WORKER_REPLY)?;
        let (api_client_handle, n_fds, fd_flags, is_add) = match profile {
            Profile::Head => (
                Some(d.u32(field::WR_API_CLIENT_HANDLE)?),
                d.u8(field::WR_N_FDS)?,
                d.u8(field::WR_FD_FLAGS)?,
                d.u8(field::WR_IS_ADD)?,
            ),
            Profile::Seed => (
                None,
                d.u8(field::WR_SEED_N_FDS)?,
                d.u8(field::WR_SEED_FD_FLAGS)?,
                d.u8(field::WR_SEED_IS_ADD)?,
            ),
        };
        Ok(WorkerReply {
            retval: d.i32(field::WR_RETVAL)?,
            wrk_index: d.u32(field::WR_WRK_INDEX)?,
            app_event_queue_address: d.u64(field::WR_APP_EVENT_QUEUE_ADDRESS)?,
            segment_handle: d.u64(field::WR_SEGMENT_HANDLE)?,
            api_client_handle,
            n_fds,
            fd_flags,
            is_add,
        })
    }

    /// Dgram offset where this profile's body ends and zero padding begins.
    pub fn body_end(profile: Profile) -> usize {
        match profile {
            Profile::Head => field::WR_BODY_END,
            Profile::Seed => field::WR_SEED_BODY_END,
        }
    }
}

/// ADD_DEL_CERT_KEY_REPLY (§3.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertKeyReply {
    pub context: u32,
    pub retval: i32,
    pub index: u32,
}

impl CertKeyReply {
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let d = Dgram(bytes);
        d.expect(msg_type::ADD_DEL_CERT_KEY_REPLY)?;
        Ok(CertKeyReply {
            context: d.u32(field::CKR_CONTEXT)?,
            retval: d.i32(field::CKR_RETVAL)?,
            index: d.u32(field::CKR_INDEX)?,
        })
    }
}

/// An ATTACH request (§3.1). `name` is copied verbatim (at most 64 bytes), so a test can send an
/// unterminated name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachRequest {
    pub name: Vec<u8>,
    pub options: [u64; opt::N_OPTIONS],
}

impl AttachRequest {
    /// A well-behaved app: the options of `docs/vpp-26.10.md`'s probe (16 MiB segment, queue 256,
    /// eventfd on or off).
    pub fn probe(name: &str, eventfd: bool) -> Self {
        let mut options = [0u64; opt::N_OPTIONS];
        options[opt::FLAGS] = app_flag::ACCEPT_REDIRECT
            | app_flag::ADD_SEGMENT
            | if eventfd {
                app_flag::EVT_MQ_USE_EVENTFD
            } else {
                0
            };
        options[opt::EVT_QUEUE_SIZE] = 256;
        options[opt::SEGMENT_SIZE] = 16 << 20;
        options[opt::ADD_SEGMENT_SIZE] = 16 << 20;
        options[opt::RX_FIFO_SIZE] = 64 << 10;
        options[opt::TX_FIFO_SIZE] = 64 << 10;
        AttachRequest {
            name: name.as_bytes().to_vec(),
            options,
        }
    }

    pub fn encode(&self) -> [u8; MSG_LEN] {
        let mut m = [0u8; MSG_LEN];
        m[0] = msg_type::ATTACH;
        let n = self.name.len().min(field::ATTACH_NAME.len);
        m[field::ATTACH_NAME.offset..field::ATTACH_NAME.offset + n]
            .copy_from_slice(&self.name[..n]);
        for (i, v) in self.options.iter().enumerate() {
            let o = field::attach_option(i).offset;
            m[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
        m
    }
}

/// ADD_DEL_WORKER (§3.3).
pub fn encode_worker(app_index: u32, wrk_index: u32, is_add: bool) -> [u8; MSG_LEN] {
    let mut m = [0u8; MSG_LEN];
    m[0] = msg_type::ADD_DEL_WORKER;
    m[1..5].copy_from_slice(&app_index.to_le_bytes());
    m[5..9].copy_from_slice(&wrk_index.to_le_bytes());
    m[9] = u8::from(is_add);
    m
}

/// ADD_DEL_CERT_KEY (§3.6); for an add, the data datagram of `certkey_len` bytes follows.
pub fn encode_cert_key(
    context: u32,
    index: u32,
    cert_len: u16,
    certkey_len: u16,
    is_add: bool,
) -> [u8; MSG_LEN] {
    let mut m = [0u8; MSG_LEN];
    m[0] = msg_type::ADD_DEL_CERT_KEY;
    m[1..5].copy_from_slice(&context.to_le_bytes());
    m[5..9].copy_from_slice(&index.to_le_bytes());
    m[9..11].copy_from_slice(&cert_len.to_le_bytes());
    m[11..13].copy_from_slice(&certkey_len.to_le_bytes());
    m[13] = u8::from(is_add);
    m
}

/// Lower-case hex, bytes separated by spaces, for evidence.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// "field name @offset = hex" for a FAIL's observed side.
pub fn show_field(bytes: &[u8], field: Field) -> String {
    match Dgram(bytes).bytes(field) {
        Ok(b) => format!("{} @{} = [{}]", field.name, field.offset, hex(b)),
        Err(e) => e.to_string(),
    }
}

/// Hex of the non-zero prefix of a datagram (the rest summarised), for evidence.
pub fn dump(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .rposition(|b| *b != 0)
        .map(|p| p + 1)
        .unwrap_or(0);
    if end == bytes.len() {
        format!("{} bytes: {}", bytes.len(), hex(bytes))
    } else {
        format!(
            "{} bytes: {} (then {} zero bytes)",
            bytes.len(),
            hex(&bytes[..end]),
            bytes.len() - end
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/protocol.md §11.1, transcribed row by row.
    const ATTACH_11_1: &str = "
        01 76 63 6c 2d 65 63 68 6f 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        00 e3 00 00 00 00 00 00 00 00 08 00 00 00 00 00
        00 00 00 00 10 00 00 00 00 00 00 00 10 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00
        00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        00";

    const ATTACH_REPLY_11_2: &str = "
        02 00 00 00 00 00 00 00 00 00 02 00 00 00 00 00
        00 e0 d1 04 00 00 00 00 00 00 00 00 00 01 00 00
        00 01 00 00 00 01 03 07";

    fn unhex(s: &str, len: usize) -> Vec<u8> {
        let mut v: Vec<u8> = s
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).expect("test hex"))
            .collect();
        v.resize(len, 0);
        v
    }

    #[test]
    fn attach_request_encodes_the_worked_example() {
        let mut req = AttachRequest {
            name: b"vcl-echo".to_vec(),
            options: [0; opt::N_OPTIONS],
        };
        req.options[opt::FLAGS] = 0xe3;
        req.options[opt::EVT_QUEUE_SIZE] = 2048;
        req.options[opt::SEGMENT_SIZE] = 0x1000_0000;
        req.options[opt::ADD_SEGMENT_SIZE] = 0x1000_0000;
        req.options[opt::RX_FIFO_SIZE] = 0x10000;
        req.options[opt::TX_FIFO_SIZE] = 0x10000;
        req.options[opt::TLS_ENGINE] = 1;
        let expected = unhex(ATTACH_11_1, MSG_LEN);
        assert_eq!(hex(&req.encode()), hex(&expected));
    }

    #[test]
    fn attach_reply_decodes_the_worked_example() {
        let bytes = unhex(ATTACH_REPLY_11_2, MSG_LEN);
        let r = AttachReply::parse(&bytes).expect("valid example");
        assert_eq!(
            r,
            AttachReply {
                retval: 0,
                app_index: 0,
                app_mq: 0x200,
                vpp_ctrl_mq: 0x4d1e0,
                segment_handle: 0x1_0000_0000,
                api_client_handle: 1,
                vpp_ctrl_mq_thread: 1,
                n_fds: 3,
                fd_flags: 7,
            }
        );
        assert_eq!(Dgram(&bytes).first_nonzero_from(field::AR_BODY_END), None);
    }

    #[test]
    fn worker_request_and_reply_decode_the_worked_example() {
        let req = encode_worker(0, 0, true);
        assert_eq!(hex(&req[..11]), "03 00 00 00 00 00 00 00 00 01 00");
        let reply = unhex(
            "04 00 00 00 00 01 00 00 00 00 02 00 00 00 00 00
             00 00 00 00 00 02 00 00 00 02 00 00 00 02 06 01",
            MSG_LEN,
        );
        let r = WorkerReply::parse(&reply, Profile::Head).expect("valid example");
        assert_eq!(r.wrk_index, 1);
        assert_eq!(r.app_event_queue_address, 0x200);
        assert_eq!(r.segment_handle, 0x2_0000_0000);
        assert_eq!(r.api_client_handle, Some(2));
        assert_eq!((r.n_fds, r.fd_flags, r.is_add), (2, 6, 1));
    }

    #[test]
    fn observed_vpp_worker_reply_decodes() {
        // docs/vpp-26.10.md: 04 | 00000000 | 01000000 | 4001.. | 00000000 05000000 | 08000000 | 02 | 06 | 01
        let reply = unhex(
            "04 00 00 00 00 01 00 00 00 40 01 00 00 00 00 00 00
             00 00 00 00 05 00 00 00 08 00 00 00 02 06 01",
            MSG_LEN,
        );
        let r = WorkerReply::parse(&reply, Profile::Head).expect("valid");
        assert_eq!(r.app_event_queue_address, 0x140);
        assert_eq!(r.segment_handle, 0x5_0000_0000);
        assert_eq!(r.api_client_handle, Some(8));
    }

    #[test]
    fn seed_worker_reply_has_no_client_handle() {
        let mut reply = vec![0u8; MSG_LEN];
        reply[0] = 4;
        reply[25] = 2;
        reply[26] = 6;
        reply[27] = 1;
        let r = WorkerReply::parse(&reply, Profile::Seed).expect("valid");
        assert_eq!(r.api_client_handle, None);
        assert_eq!((r.n_fds, r.fd_flags, r.is_add), (2, 6, 1));
    }

    #[test]
    fn short_and_foreign_datagrams_are_errors_naming_the_problem() {
        assert_eq!(
            AttachReply::parse(&[2u8; 208]),
            Err(WireError::Length { len: 208 })
        );
        let mut m = [0u8; MSG_LEN];
        m[0] = 4;
        let e = AttachReply::parse(&m).expect_err("type 4");
        assert_eq!(
            e.to_string(),
            "type byte is 4 (ADD_DEL_WORKER_REPLY), expected 2 (ATTACH_REPLY)"
        );
        let e = Dgram(&[2, 0]).u32(field::AR_RETVAL).expect_err("short");
        assert!(e.to_string().contains("attach_reply.retval"));
    }

    #[test]
    fn cert_key_layout() {
        let m = encode_cert_key(7, 0, 100, 200, true);
        assert_eq!(hex(&m[..14]), "06 07 00 00 00 00 00 00 00 64 00 c8 00 01");
        let mut r = [0u8; MSG_LEN];
        r[0] = 7;
        r[1] = 7;
        r[5..9].copy_from_slice(&(-19i32).to_le_bytes());
        let p = CertKeyReply::parse(&r).expect("valid");
        assert_eq!((p.context, p.retval, p.index), (7, -19, 0));
        assert_eq!(Profile::Head.retval_name(p.retval), "-19 SESSION_E_INVALID");
    }
}
