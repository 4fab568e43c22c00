//! The session layer's messages in mq elements, written from the tables of `docs/sessions.md`
//! §3.2 and §5 (and `docs/shm.md` §6.3–§6.4 for the segment messages): the event type numbers
//! (head), encoders of what an app posts (LISTEN, CONNECT, ACCEPTED_REPLY, …) and decoders of
//! what a server posts (BOUND, ACCEPTED, CONNECTED, DISCONNECTED, CLEANUP, …), and the 18-byte
//! io events of ring 0.
//!
//! Owns: every body offset. A body is the element from byte 2 on ("Elem = Off + 2"). Decoders
//! read each field at its documented offset from a slice the target filled, and a body too short
//! for a field is a [`MsgError`] naming the message, the field and the offset — never a panic.
//! Ports and addresses are network order; every other integer little-endian.
//!
//! Must never: use the reference's codec (`sapi-wire`), or decode by casting bytes to a struct.

/// Event type numbers at head (`docs/shm.md` §6.2).
pub mod ty {
    pub const RX: u8 = 0;
    pub const TX: u8 = 1;
    pub const TX_FLUSH: u8 = 2;
    pub const RESET: u8 = 8;
    pub const BOUND: u8 = 9;
    pub const UNLISTEN_REPLY: u8 = 10;
    pub const ACCEPTED: u8 = 11;
    pub const ACCEPTED_REPLY: u8 = 12;
    pub const CONNECTED: u8 = 13;
    pub const DISCONNECTED: u8 = 14;
    pub const DISCONNECTED_REPLY: u8 = 15;
    pub const RESET_REPLY: u8 = 16;
    pub const SHUTDOWN: u8 = 20;
    pub const DISCONNECT: u8 = 21;
    pub const CONNECT: u8 = 22;
    pub const LISTEN: u8 = 24;
    pub const UNLISTEN: u8 = 26;
    pub const APP_DETACH: u8 = 27;
    pub const ADD_SEGMENT: u8 = 28;
    pub const DEL_SEGMENT: u8 = 29;
    pub const CLEANUP: u8 = 31;
    pub const TRANSPORT_ATTR: u8 = 33;
    pub const TRANSPORT_ATTR_REPLY: u8 = 34;
    pub const TERMINATE: u8 = 38;

    /// The name of a type byte, for evidence.
    pub fn name(t: u8) -> &'static str {
        match t {
            RX => "RX",
            TX => "TX",
            TX_FLUSH => "TX_FLUSH",
            RESET => "RESET",
            BOUND => "BOUND",
            UNLISTEN_REPLY => "UNLISTEN_REPLY",
            ACCEPTED => "ACCEPTED",
            ACCEPTED_REPLY => "ACCEPTED_REPLY",
            CONNECTED => "CONNECTED",
            DISCONNECTED => "DISCONNECTED",
            DISCONNECTED_REPLY => "DISCONNECTED_REPLY",
            RESET_REPLY => "RESET_REPLY",
            SHUTDOWN => "SHUTDOWN",
            DISCONNECT => "DISCONNECT",
            CONNECT => "CONNECT",
            LISTEN => "LISTEN",
            UNLISTEN => "UNLISTEN",
            APP_DETACH => "APP_DETACH",
            ADD_SEGMENT => "ADD_SEGMENT",
            DEL_SEGMENT => "DEL_SEGMENT",
            CLEANUP => "CLEANUP",
            TRANSPORT_ATTR => "TRANSPORT_ATTR",
            TRANSPORT_ATTR_REPLY => "TRANSPORT_ATTR_REPLY",
            TERMINATE => "TERMINATE",
            _ => "other",
        }
    }
}

/// `TRANSPORT_CFG_F_CONNECTED` (LISTEN and CONNECT `flags`, §5.2, §5.6).
pub const CFG_F_CONNECTED: u8 = 1;
/// Transport protocols of LISTEN and CONNECT.
pub const PROTO_TCP: u8 = 0;
pub const PROTO_UDP: u8 = 1;
/// Room for a control body in a 256-byte ring-1 element.
pub const CTRL_BODY_MAX: usize = 254;
/// A ring-0 element (`session_event_t`, 18 bytes).
pub const IO_EVENT_LEN: usize = 18;

/// A body too short for the field the suite reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    #[error("{msg}.{field}: {width} bytes at body offset {offset} (element {}) past the {len}-byte body", offset + 2)]
    Short {
        msg: &'static str,
        field: &'static str,
        offset: usize,
        width: usize,
        len: usize,
    },
}

/// Never-panicking little-endian reads of a body, each naming its message and field.
struct Body<'a> {
    msg: &'static str,
    b: &'a [u8],
}

impl Body<'_> {
    fn get<const N: usize>(&self, field: &'static str, offset: usize) -> Result<[u8; N], MsgError> {
        self.b
            .get(offset..offset + N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(MsgError::Short {
                msg: self.msg,
                field,
                offset,
                width: N,
                len: self.b.len(),
            })
    }
    fn u8(&self, field: &'static str, offset: usize) -> Result<u8, MsgError> {
        Ok(self.get::<1>(field, offset)?[0])
    }
    fn u16(&self, field: &'static str, offset: usize) -> Result<u16, MsgError> {
        Ok(u16::from_le_bytes(self.get(field, offset)?))
    }
    fn port(&self, field: &'static str, offset: usize) -> Result<u16, MsgError> {
        Ok(u16::from_be_bytes(self.get(field, offset)?))
    }
    fn u32(&self, field: &'static str, offset: usize) -> Result<u32, MsgError> {
        Ok(u32::from_le_bytes(self.get(field, offset)?))
    }
    fn i32(&self, field: &'static str, offset: usize) -> Result<i32, MsgError> {
        Ok(i32::from_le_bytes(self.get(field, offset)?))
    }
    fn u64(&self, field: &'static str, offset: usize) -> Result<u64, MsgError> {
        Ok(u64::from_le_bytes(self.get(field, offset)?))
    }
    fn endpoint(&self, field: &'static str, offset: usize) -> Result<Endpoint, MsgError> {
        Ok(Endpoint {
            ip: self.get(field, offset)?,
            port: self.port(field, offset + 16)?,
            is_ip4: self.u8(field, offset + 18)?,
            sw_if_index: self.u32(field, offset + 20)?,
            fib_index: self.u32(field, offset + 24)?,
        })
    }
}

/// An ip46 (§5.1): IPv4 in bytes 12..15, bytes 0..11 zero.
pub fn ip4(a: [u8; 4]) -> [u8; 16] {
    let mut ip = [0u8; 16];
    ip[12..].copy_from_slice(&a);
    ip
}

/// `transport_endpoint_t` (28 bytes, §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Endpoint {
    pub ip: [u8; 16],
    pub port: u16,
    pub is_ip4: u8,
    pub sw_if_index: u32,
    pub fib_index: u32,
}

/// Writes `fields` (offset, bytes) into a zeroed body of `len` bytes.
fn body(len: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
    let mut b = vec![0u8; len];
    for (off, bytes) in fields {
        b[*off..*off + bytes.len()].copy_from_slice(bytes);
    }
    b
}

/// Something an app posts in ring 1: its type and its body.
pub trait AppMsg {
    const TYPE: u8;
    fn body(&self) -> Vec<u8>;
}

/// LISTEN (24), 46 bytes (§5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    pub client_index: u32,
    pub context: u32,
    pub wrk_index: u32,
    pub port: u16,
    pub proto: u8,
    pub is_ip4: u8,
    pub ip: [u8; 16],
    pub flags: u8,
}

impl AppMsg for Listen {
    const TYPE: u8 = ty::LISTEN;
    fn body(&self) -> Vec<u8> {
        body(
            46,
            &[
                (0, &self.client_index.to_le_bytes()),
                (4, &self.context.to_le_bytes()),
                (8, &self.wrk_index.to_le_bytes()),
                (16, &self.port.to_be_bytes()),
                (18, &[self.proto, self.is_ip4]),
                (20, &self.ip),
                (36, &[self.flags]),
            ],
        )
    }
}

/// UNLISTEN (26), 20 bytes (§5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unlisten {
    pub client_index: u32,
    pub context: u32,
    pub wrk_index: u32,
    pub handle: u64,
}

impl AppMsg for Unlisten {
    const TYPE: u8 = ty::UNLISTEN;
    fn body(&self) -> Vec<u8> {
        body(
            20,
            &[
                (0, &self.client_index.to_le_bytes()),
                (4, &self.context.to_le_bytes()),
                (8, &self.wrk_index.to_le_bytes()),
                (12, &self.handle.to_le_bytes()),
            ],
        )
    }
}

/// CONNECT (22), 77 bytes (§5.6). `parent_handle` is all ones, `lcl_ip` and `lcl_port` 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect {
    pub client_index: u32,
    pub context: u32,
    pub wrk_index: u32,
    pub port: u16,
    pub proto: u8,
    pub is_ip4: u8,
    pub ip: [u8; 16],
    pub flags: u8,
}

impl AppMsg for Connect {
    const TYPE: u8 = ty::CONNECT;
    fn body(&self) -> Vec<u8> {
        body(
            77,
            &[
                (0, &self.client_index.to_le_bytes()),
                (4, &self.context.to_le_bytes()),
                (8, &self.wrk_index.to_le_bytes()),
                (16, &self.port.to_be_bytes()),
                (20, &[self.proto, self.is_ip4]),
                (22, &self.ip),
                (54, &u64::MAX.to_le_bytes()),
                (67, &[self.flags]),
            ],
        )
    }
}

/// ACCEPTED_REPLY (12), 20 bytes (§5.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptedReply {
    pub context: u32,
    pub retval: i32,
    pub handle: u64,
    pub app_session_index: u32,
}

impl AppMsg for AcceptedReply {
    const TYPE: u8 = ty::ACCEPTED_REPLY;
    fn body(&self) -> Vec<u8> {
        body(
            20,
            &[
                (0, &self.context.to_le_bytes()),
                (4, &self.retval.to_le_bytes()),
                (8, &self.handle.to_le_bytes()),
                (16, &self.app_session_index.to_le_bytes()),
            ],
        )
    }
}

/// DISCONNECT (21), SHUTDOWN (20) and TERMINATE (38), 16 bytes (§5.11, §5.15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    pub ty: u8,
    pub client_index: u32,
    pub handle: u64,
}

impl Close {
    /// The type this close is posted as.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        (
            self.ty,
            body(
                16,
                &[
                    (0, &self.client_index.to_le_bytes()),
                    (8, &self.handle.to_le_bytes()),
                ],
            ),
        )
    }
}

/// DISCONNECTED_REPLY (15) and RESET_REPLY (16), 16 bytes (§5.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseReply {
    pub ty: u8,
    pub context: u32,
    pub retval: i32,
    pub handle: u64,
}

impl CloseReply {
    pub fn encode(&self) -> (u8, Vec<u8>) {
        (
            self.ty,
            body(
                16,
                &[
                    (0, &self.context.to_le_bytes()),
                    (4, &self.retval.to_le_bytes()),
                    (8, &self.handle.to_le_bytes()),
                ],
            ),
        )
    }
}

/// APP_DETACH (27), 8 bytes (§5.16).
pub fn app_detach(client_index: u32) -> (u8, Vec<u8>) {
    (ty::APP_DETACH, body(8, &[(0, &client_index.to_le_bytes())]))
}

/// TRANSPORT_ATTR (33), 53 bytes (§5.18): a get of attribute type `attr_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportAttr {
    pub client_index: u32,
    pub handle: u64,
    pub attr_type: u8,
    pub is_get: u8,
}

impl AppMsg for TransportAttr {
    const TYPE: u8 = ty::TRANSPORT_ATTR;
    fn body(&self) -> Vec<u8> {
        body(
            53,
            &[
                (0, &self.client_index.to_le_bytes()),
                (4, &self.handle.to_le_bytes()),
                (12, &[self.attr_type]),
                (52, &[self.is_get]),
            ],
        )
    }
}

/// TRANSPORT_ATTR_REPLY (34), 53 bytes (§5.18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportAttrReply {
    pub retval: i32,
    pub handle: u64,
    pub is_get: u8,
}

impl TransportAttrReply {
    pub fn parse(b: &[u8]) -> Result<Self, MsgError> {
        let d = Body {
            msg: "TRANSPORT_ATTR_REPLY",
            b,
        };
        Ok(TransportAttrReply {
            retval: d.i32("retval", 0)?,
            handle: d.u64("handle", 4)?,
            is_get: d.u8("is_get", 52)?,
        })
    }
}

/// BOUND (9), 79 bytes (§5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub context: u32,
    pub handle: u64,
    pub cl_sh_handle: u64,
    pub retval: i32,
    pub lcl_is_ip4: u8,
    pub lcl_ip: [u8; 16],
    pub lcl_port: u16,
    pub rx_fifo: u64,
    pub tx_fifo: u64,
    pub vpp_evt_q: u64,
    pub segment_handle: u64,
    pub mq_index: u32,
}

impl Bound {
    pub fn parse(b: &[u8]) -> Result<Self, MsgError> {
        let d = Body { msg: "BOUND", b };
        Ok(Bound {
            context: d.u32("context", 0)?,
            handle: d.u64("handle", 4)?,
            cl_sh_handle: d.u64("cl_sh_handle", 12)?,
            retval: d.i32("retval", 20)?,
            lcl_is_ip4: d.u8("lcl_is_ip4", 24)?,
            lcl_ip: d.get("lcl_ip", 25)?,
            lcl_port: d.port("lcl_port", 41)?,
            rx_fifo: d.u64("rx_fifo", 43)?,
            tx_fifo: d.u64("tx_fifo", 51)?,
            vpp_evt_q: d.u64("vpp_evt_q", 59)?,
            segment_handle: d.u64("segment_handle", 67)?,
            mq_index: d.u32("mq_index", 75)?,
        })
    }
}

/// UNLISTEN_REPLY (10), 16 bytes (§5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnlistenReply {
    pub context: u32,
    pub handle: u64,
    pub retval: i32,
}

impl UnlistenReply {
    pub fn parse(b: &[u8]) -> Result<Self, MsgError> {
        let d = Body {
            msg: "UNLISTEN_REPLY",
            b,
        };
        Ok(UnlistenReply {
            context: d.u32("context", 0)?,
            handle: d.u64("handle", 4)?,
            retval: d.i32("retval", 12)?,
        })
    }
}

/// ACCEPTED (11), 120 bytes (§5.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub context: u32,
    pub listener_handle: u64,
    pub handle: u64,
    pub server_rx_fifo: u64,
    pub server_tx_fifo: u64,
    pub segment_handle: u64,
    pub vpp_event_queue_address: u64,
    pub mq_index: u32,
    pub lcl: Endpoint,
    pub rmt: Endpoint,
    pub flags: u16,
    pub original_dst_ip4: u32,
    pub original_dst_port: u16,
}

impl Accepted {
    pub fn parse(b: &[u8]) -> Result<Self, MsgError> {
        let d = Body { msg: "ACCEPTED", b };
        Ok(Accepted {
            context: d.u32("context", 0)?,
            listener_handle: d.u64("listener_handle", 4)?,
            handle: d.u64("handle", 12)?,
            server_rx_fifo: d.u64("server_rx_fifo", 20)?,
            server_tx_fifo: d.u64("server_tx_fifo", 28)?,
            segment_handle: d.u64("segment_handle", 36)?,
            vpp_event_queue_address: d.u64("vpp_event_queue_address", 44)?,
            mq_index: d.u32("mq_index", 52)?,
            lcl: d.endpoint("lcl", 56)?,
            rmt: d.endpoint("rmt", 84)?,
            flags: d.u16("flags", 112)?,
            original_dst_ip4: d.u32("original_dst_ip4", 114)?,
            original_dst_port: d.u16("original_dst_port", 118)?,
        })
    }
}

/// CONNECTED (13), 104 bytes (§5.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connected {
    pub context: u32,
    pub retval: i32,
    pub handle: u64,
    pub server_rx_fifo: u64,
    pub server_tx_fifo: u64,
    pub segment_handle: u64,
    pub ct_rx_fifo: u64,
    pub ct_tx_fifo: u64,
    pub ct_segment_handle: u64,
    pub vpp_event_queue_address: u64,
    pub lcl: Endpoint,
    pub mq_index: u32,
}

impl Connected {
    pub fn parse(b: &[u8]) -> Result<Self, MsgError> {
        let d = Body {
            msg: "CONNECTED",
            b,
        };
        Ok(Connected {
            context: d.u32("context", 0)?,
            retval: d.i32("retval", 4)?,
            handle: d.u64("handle", 8)?,
            server_rx_fifo: d.u64("server_rx_fifo", 16)?,
            server_tx_fifo: d.u64("server_tx_fifo", 24)?,
            segment_handle: d.u64("segment_handle", 32)?,
            ct_rx_fifo: d.u64("ct_rx_fifo", 40)?,
            ct_tx_fifo: d.u64("ct_tx_fifo", 48)?,
            ct_segment_handle: d.u64("ct_segment_handle", 56)?,
            vpp_event_queue_address: d.u64("vpp_event_queue_address", 64)?,
            lcl: d.endpoint("lcl", 72)?,
            mq_index: d.u32("mq_index", 100)?,
        })
    }
}

/// DISCONNECTED (14) and RESET (8), 16 bytes (§5.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disconnected {
    pub client_index: u32,
    pub context: u32,
    pub handle: u64,
}

impl Disconnected {
    pub fn parse(msg: &'static str, b: &[u8]) -> Result<Self, MsgError> {
        let d = Body { msg, b };
        Ok(Disconnected {
            client_index: d.u32("client_index", 0)?,
            context: d.u32("context", 4)?,
            handle: d.u64("handle", 8)?,
        })
    }
}

/// CLEANUP (31), 9 bytes (§5.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cleanup {
    pub handle: u64,
    pub kind: u8,
}

impl Cleanup {
    pub fn parse(b: &[u8]) -> Result<Self, MsgError> {
        let d = Body { msg: "CLEANUP", b };
        Ok(Cleanup {
            handle: d.u64("handle", 0)?,
            kind: d.u8("type", 8)?,
        })
    }
}

/// APP_ADD_SEGMENT (28), 152 bytes, not packed (`docs/shm.md` §6.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddSegment {
    pub client_index: u32,
    pub context: u32,
    pub fd_flags: u8,
    pub segment_size: u32,
    /// Up to the first NUL of the 128 bytes; `None` when there is no NUL in them.
    pub name: Option<String>,
    pub segment_handle: u64,
}

impl AddSegment {
    pub fn parse(b: &[u8]) -> Result<Self, MsgError> {
        let d = Body {
            msg: "ADD_SEGMENT",
            b,
        };
        let raw: [u8; 128] = d.get("segment_name", 16)?;
        Ok(AddSegment {
            client_index: d.u32("client_index", 0)?,
            context: d.u32("context", 4)?,
            fd_flags: d.u8("fd_flags", 8)?,
            segment_size: d.u32("segment_size", 12)?,
            name: raw
                .iter()
                .position(|b| *b == 0)
                .map(|n| String::from_utf8_lossy(&raw[..n]).into_owned()),
            segment_handle: d.u64("segment_handle", 144)?,
        })
    }
}

/// APP_DEL_SEGMENT (29), 16 bytes (`docs/shm.md` §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelSegment {
    pub client_index: u32,
    pub context: u32,
    pub segment_handle: u64,
}

impl DelSegment {
    pub fn parse(b: &[u8]) -> Result<Self, MsgError> {
        let d = Body {
            msg: "DEL_SEGMENT",
            b,
        };
        Ok(DelSegment {
            client_index: d.u32("client_index", 0)?,
            context: d.u32("context", 4)?,
            segment_handle: d.u64("segment_handle", 8)?,
        })
    }
}

/// A server → app control message, decoded by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ctrl {
    Bound(Bound),
    UnlistenReply(UnlistenReply),
    Accepted(Accepted),
    Connected(Connected),
    Disconnected(Disconnected),
    Reset(Disconnected),
    Cleanup(Cleanup),
    AddSegment(AddSegment),
    DelSegment(DelSegment),
    TransportAttrReply(TransportAttrReply),
    /// A type this client does not expect from a server.
    Other(u8),
}

impl Ctrl {
    /// Decodes the body of a control element of type `t`.
    pub fn parse(t: u8, b: &[u8]) -> Result<Self, MsgError> {
        Ok(match t {
            ty::BOUND => Ctrl::Bound(Bound::parse(b)?),
            ty::UNLISTEN_REPLY => Ctrl::UnlistenReply(UnlistenReply::parse(b)?),
            ty::ACCEPTED => Ctrl::Accepted(Accepted::parse(b)?),
            ty::CONNECTED => Ctrl::Connected(Connected::parse(b)?),
            ty::DISCONNECTED => Ctrl::Disconnected(Disconnected::parse("DISCONNECTED", b)?),
            ty::RESET => Ctrl::Reset(Disconnected::parse("RESET", b)?),
            ty::CLEANUP => Ctrl::Cleanup(Cleanup::parse(b)?),
            ty::ADD_SEGMENT => Ctrl::AddSegment(AddSegment::parse(b)?),
            ty::DEL_SEGMENT => Ctrl::DelSegment(DelSegment::parse(b)?),
            ty::TRANSPORT_ATTR_REPLY => Ctrl::TransportAttrReply(TransportAttrReply::parse(b)?),
            other => Ctrl::Other(other),
        })
    }

    /// The session handle the message is about, when it names one.
    pub fn session_handle(&self) -> Option<u64> {
        match self {
            Ctrl::Accepted(m) => Some(m.handle),
            Ctrl::Connected(m) => Some(m.handle),
            Ctrl::Disconnected(m) | Ctrl::Reset(m) => Some(m.handle),
            Ctrl::Cleanup(m) => Some(m.handle),
            _ => None,
        }
    }
}

/// An io event (ring 0, 18 bytes, §3.2, §5.17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoEvent {
    pub ty: u8,
    pub postponed: u8,
    pub session_index: u32,
}

impl IoEvent {
    /// The element an app posts: type, `postponed` 0, `session_index`, the rest zero.
    pub fn encode(ty: u8, session_index: u32) -> [u8; IO_EVENT_LEN] {
        let mut e = [0u8; IO_EVENT_LEN];
        e[0] = ty;
        e[2..6].copy_from_slice(&session_index.to_le_bytes());
        e
    }

    pub fn parse(e: &[u8]) -> Result<Self, MsgError> {
        let d = Body {
            msg: "io event",
            b: e,
        };
        Ok(IoEvent {
            ty: d.u8("event_type", 0)?,
            postponed: d.u8("postponed", 1)?,
            session_index: d.u32("session_index", 2)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the hex dumps of `docs/sessions.md` §11 (offset column and comments dropped).
    fn hex(dump: &str) -> Vec<u8> {
        dump.lines()
            .flat_map(|l| {
                let l = l.split_once(':').map_or(l, |(_, r)| r);
                l.split("   ")
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn element(t: u8, body: &[u8]) -> Vec<u8> {
        let mut e = vec![t, 0];
        e.extend_from_slice(body);
        e
    }

    #[test]
    fn listen_is_the_element_of_section_11_1() {
        let want = hex(
            "0000: 18 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00   type\n\
                        0010: 00 00 04 d2 00 01 00 00 00 00 00 00 00 00 00 00   port\n\
                        0020: 00 00 7f 00 00 01 00 00 00 00 00 00 00 00 00 00   ip",
        );
        let l = Listen {
            client_index: 1,
            context: 0,
            wrk_index: 0,
            port: 1234,
            proto: PROTO_TCP,
            is_ip4: 1,
            ip: ip4([127, 0, 0, 1]),
            flags: 0,
        };
        let e = element(Listen::TYPE, &l.body());
        assert_eq!(e.len(), 48);
        assert_eq!(&e[..], &want[..48]);
    }

    #[test]
    fn connect_is_the_element_of_section_11_2() {
        let want = hex(
            "0000: 16 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00   a\n\
                        0010: 00 00 04 d2 00 00 00 01 00 00 00 00 00 00 00 00   b\n\
                        0020: 00 00 00 00 7f 00 00 01 00 00 00 00 00 00 00 00   c\n\
                        0030: 00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff   d\n\
                        0040: 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00      e",
        );
        let c = Connect {
            client_index: 2,
            context: 0,
            wrk_index: 0,
            port: 1234,
            proto: PROTO_TCP,
            is_ip4: 1,
            ip: ip4([127, 0, 0, 1]),
            flags: CFG_F_CONNECTED,
        };
        assert_eq!(element(Connect::TYPE, &c.body()), want);
    }

    #[test]
    fn bound_accepted_and_connected_of_section_11_decode() {
        let bound = hex(
            "0000: 09 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00   a\n\
                         0010: 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00   b\n\
                         0020: 00 00 00 00 00 00 00 7f 00 00 01 04 d2 00 00 00   c\n\
                         0030: 00 00 00 00 00 00 00 00 00 00 00 00 00 40 01 00   d\n\
                         0040: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00   e\n\
                         0050: 00",
        );
        let b = Bound::parse(&bound[2..]).expect("bound");
        assert_eq!((b.retval, b.lcl_is_ip4, b.lcl_port), (0, 1, 1234));
        assert_eq!(b.lcl_ip, ip4([127, 0, 0, 1]));
        assert_eq!((b.vpp_evt_q, b.mq_index, b.handle), (0x140, 0, 0));

        let acc = hex(
            "0000: 0b 00 01 00 00 00 00 00 00 00 00 00 00 00 03 00   a\n\
                       0010: 00 00 00 00 00 00 80 18 00 00 00 00 00 00 c0 17   b\n\
                       0020: 00 00 00 00 00 00 00 00 00 00 02 00 00 00 40 01   c\n\
                       0030: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00   d\n\
                       0040: 00 00 00 00 00 00 00 00 00 00 04 d2 00 00 00 00   e\n\
                       0050: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00   f\n\
                       0060: 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00   g\n\
                       0070: 00 00 00 00 00 00 00 00 00 00                     h",
        );
        let a = Accepted::parse(&acc[2..]).expect("accepted");
        assert_eq!((a.context, a.listener_handle, a.handle), (1, 0, 3));
        assert_eq!((a.server_rx_fifo, a.server_tx_fifo), (0x1880, 0x17c0));
        assert_eq!(a.segment_handle, 0x2_0000_0000);
        assert_eq!((a.vpp_event_queue_address, a.mq_index), (0x140, 0));
        assert_eq!(
            (a.lcl.port, a.lcl.is_ip4, a.rmt.port, a.rmt.is_ip4),
            (1234, 0, 0, 1)
        );

        let con = hex(
            "0000: 0d 00 00 00 00 00 00 00 00 00 04 00 00 00 00 00   a\n\
                       0010: 00 00 00 5e 81 00 00 00 00 00 40 5d 81 00 00 00   b\n\
                       0020: 00 00 00 00 00 00 04 00 00 00 c0 17 00 00 00 00   c\n\
                       0030: 00 00 80 18 00 00 00 00 00 00 00 00 00 00 02 00   d\n\
                       0040: 00 01 40 01 00 00 00 00 00 00 00 00 00 00 00 00   e\n\
                       0050: 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00   f\n\
                       0060: 00 00 00 00 00 00 00 00 00 00                     g",
        );
        let c = Connected::parse(&con[2..]).expect("connected");
        assert_eq!((c.context, c.retval, c.handle), (0, 0, 4));
        assert_eq!((c.server_rx_fifo, c.server_tx_fifo), (0x815e00, 0x815d40));
        assert_eq!(c.segment_handle, 0x4_0000_0000);
        assert_eq!((c.ct_rx_fifo, c.ct_tx_fifo), (0x17c0, 0x1880));
        assert_eq!(c.ct_segment_handle, 0x0100_0002_0000_0000);
        assert_eq!(
            (c.vpp_event_queue_address, c.mq_index, c.lcl.is_ip4),
            (0x140, 0, 1)
        );
    }

    #[test]
    fn close_messages_of_section_11_5() {
        let (t, b) = Close {
            ty: ty::DISCONNECT,
            client_index: 2,
            handle: 6,
        }
        .encode();
        assert_eq!(
            element(t, &b),
            hex("15 00 02 00 00 00 00 00 00 00 06 00 00 00 00 00 00 00")
        );
        let (t, b) = CloseReply {
            ty: ty::DISCONNECTED_REPLY,
            context: 1,
            retval: 0,
            handle: 5,
        }
        .encode();
        assert_eq!(
            element(t, &b),
            hex("0f 00 01 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00")
        );
        let d = hex("0e 00 00 00 00 00 01 00 00 00 05 00 00 00 00 00 00 00");
        assert_eq!(
            Ctrl::parse(d[0], &d[2..]),
            Ok(Ctrl::Disconnected(Disconnected {
                client_index: 0,
                context: 1,
                handle: 5
            }))
        );
        let c = hex("1f 00 06 00 00 00 00 00 00 00 01");
        assert_eq!(
            Ctrl::parse(c[0], &c[2..]),
            Ok(Ctrl::Cleanup(Cleanup { handle: 6, kind: 1 }))
        );
        let s = hex("1d 00 00 00 00 00 00 00 00 00 00 00 00 00 03 00 00 01");
        assert_eq!(
            Ctrl::parse(s[0], &s[2..]),
            Ok(Ctrl::DelSegment(DelSegment {
                client_index: 0,
                context: 0,
                segment_handle: 0x0100_0003_0000_0000
            }))
        );
        let (t, b) = app_detach(2);
        assert_eq!(element(t, &b), hex("1b 00 02 00 00 00 00 00 00 00"));
    }

    #[test]
    fn io_events_of_section_11_4() {
        assert_eq!(
            &IoEvent::encode(ty::TX, 6)[..6],
            &hex("01 00 06 00 00 00")[..]
        );
        assert_eq!(
            IoEvent::parse(&hex(
                "00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
            )),
            Ok(IoEvent {
                ty: ty::RX,
                postponed: 0,
                session_index: 4
            })
        );
    }

    #[test]
    fn transport_attr_is_53_bytes_and_its_reply_decodes() {
        let b = TransportAttr {
            client_index: 1,
            handle: 0x0002_0000_0005,
            attr_type: 0,
            is_get: 1,
        }
        .body();
        assert_eq!(b.len(), 53);
        assert_eq!(
            (&b[4..12], b[52]),
            (&0x0002_0000_0005u64.to_le_bytes()[..], 1)
        );
        let mut r = vec![0u8; 53];
        r[..4].copy_from_slice(&(-1i32).to_le_bytes());
        r[4..12].copy_from_slice(&5u64.to_le_bytes());
        r[52] = 1;
        assert_eq!(
            Ctrl::parse(ty::TRANSPORT_ATTR_REPLY, &r),
            Ok(Ctrl::TransportAttrReply(TransportAttrReply {
                retval: -1,
                handle: 5,
                is_get: 1
            }))
        );
    }

    #[test]
    fn short_bodies_name_the_field() {
        let e = Accepted::parse(&[0u8; 60]).expect_err("short");
        assert_eq!(
            e,
            MsgError::Short {
                msg: "ACCEPTED",
                field: "lcl",
                offset: 56,
                width: 16,
                len: 60
            }
        );
        assert!(Ctrl::parse(ty::CLEANUP, &[0u8; 8]).is_err());
    }
}
