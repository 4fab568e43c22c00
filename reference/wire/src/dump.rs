//! A readable, field-by-field dump of a message as it sits in its datagram: dgram offset, size,
//! field name, value. Used for `insta` snapshots and as evidence in reports.
//!
//! Must never: put a peer's bytes into the text unescaped: the app name goes through
//! `escape_ascii`, every other value is a number or a static name, so no name can forge a row of a
//! dump or of a report quoting it.

use std::fmt::Write as _;

use super::packet::{offset, option_offset};
use super::{
    FdFlags, MSG_LEN, Message, MsgType, OptionIndex, Profile, session_error_name,
    vnet_api_error_name,
};

/// Rows of (dgram offset, size, field name, value).
struct Rows(Vec<(usize, usize, String, String)>);

impl Rows {
    fn push(&mut self, off: usize, size: usize, name: impl Into<String>, value: String) {
        self.0.push((off, size, name.into(), value));
    }
}

pub(crate) fn retval(value: i32, profile: Profile) -> String {
    let name = match (value, profile) {
        (0, _) => Some("success"),
        (v, Profile::Head) => session_error_name(v),
        (v, Profile::Seed) => vnet_api_error_name(v),
    };
    format!("{value} ({})", name.unwrap_or("not a known error number"))
}

fn fd_flags(flags: FdFlags) -> String {
    format!("{:#04x} ({})", flags.bits(), flags.describe())
}

pub(crate) fn hex64(v: u64) -> String {
    format!("{v:#018x}")
}

fn hex32(v: u32) -> String {
    format!("{v:#010x}")
}

impl Message {
    /// The message as it is laid out in its datagram in `profile`, one field per line:
    /// `offset size name value`. Handles and addresses are hex; retvals carry their profile's
    /// name; flags list their bits. The trailing zero padding is one line.
    pub fn dump(&self, profile: Profile) -> String {
        let msg_type = self.msg_type();
        let mut rows = Rows(Vec::new());
        rows.push(
            offset::TYPE,
            1,
            "type",
            format!("{} ({msg_type})", msg_type.as_u8()),
        );
        match self {
            Message::Attach(m) => {
                rows.push(
                    offset::attach::NAME,
                    64,
                    "name",
                    format!(
                        "\"{}\" ({} bytes)",
                        m.name.as_bytes().escape_ascii(),
                        m.name.len()
                    ),
                );
                for index in OptionIndex::ALL {
                    let v = m.options.get(index);
                    let value = match index {
                        OptionIndex::Flags => {
                            format!("{} ({})", hex64(v), m.options.flags().describe())
                        }
                        _ if v == 0 => "0".to_owned(),
                        _ => format!("{v} ({v:#x})"),
                    };
                    let name = format!("options[{}] {}", index.index(), index.name(profile));
                    rows.push(option_offset(index), 8, name, value);
                }
            }
            Message::AttachReply(m) => {
                use offset::attach_reply as o;
                rows.push(o::RETVAL, 4, "retval", retval(m.retval, profile));
                rows.push(o::APP_INDEX, 4, "app_index", m.app_index.to_string());
                rows.push(o::APP_MQ, 8, "app_mq", hex64(m.app_mq));
                rows.push(o::VPP_CTRL_MQ, 8, "vpp_ctrl_mq", hex64(m.vpp_ctrl_mq));
                rows.push(
                    o::SEGMENT_HANDLE,
                    8,
                    "segment_handle",
                    hex64(m.segment_handle),
                );
                rows.push(
                    o::API_CLIENT_HANDLE,
                    4,
                    "api_client_handle",
                    hex32(m.api_client_handle),
                );
                rows.push(
                    o::VPP_CTRL_MQ_THREAD,
                    1,
                    "vpp_ctrl_mq_thread",
                    m.vpp_ctrl_mq_thread.to_string(),
                );
                rows.push(o::N_FDS, 1, "n_fds", m.n_fds.to_string());
                rows.push(o::FD_FLAGS, 1, "fd_flags", fd_flags(m.fd_flags));
            }
            Message::AddDelWorker(m) => {
                use offset::worker as o;
                rows.push(o::APP_INDEX, 4, "app_index", m.app_index.to_string());
                rows.push(o::WRK_INDEX, 4, "wrk_index", m.wrk_index.to_string());
                rows.push(o::IS_ADD, 1, "is_add", u8::from(m.is_add).to_string());
            }
            Message::AddDelWorkerReply(m) => {
                use offset::worker_reply as o;
                rows.push(o::RETVAL, 4, "retval", retval(m.retval, profile));
                rows.push(o::WRK_INDEX, 4, "wrk_index", m.wrk_index.to_string());
                rows.push(
                    o::APP_EVENT_QUEUE_ADDRESS,
                    8,
                    "app_event_queue_address",
                    hex64(m.app_event_queue_address),
                );
                rows.push(
                    o::SEGMENT_HANDLE,
                    8,
                    "segment_handle",
                    hex64(m.segment_handle),
                );
                if profile == Profile::Head {
                    rows.push(
                        o::API_CLIENT_HANDLE,
                        4,
                        "api_client_handle",
                        hex32(m.api_client_handle),
                    );
                }
                let tail = o::n_fds(profile);
                rows.push(tail, 1, "n_fds", m.n_fds.to_string());
                rows.push(tail + 1, 1, "fd_flags", fd_flags(m.fd_flags));
                rows.push(tail + 2, 1, "is_add", u8::from(m.is_add).to_string());
            }
            Message::SendFds => {}
            Message::AddDelCertKey(m) => {
                use offset::cert_key as o;
                rows.push(o::CONTEXT, 4, "context", hex32(m.context));
                rows.push(o::INDEX, 4, "index", m.index.to_string());
                rows.push(o::CERT_LEN, 2, "cert_len", m.cert_len.to_string());
                rows.push(o::CERTKEY_LEN, 2, "certkey_len", m.certkey_len.to_string());
                rows.push(o::IS_ADD, 1, "is_add", u8::from(m.is_add).to_string());
            }
            Message::AddDelCertKeyReply(m) => {
                use offset::cert_key_reply as o;
                rows.push(o::CONTEXT, 4, "context", hex32(m.context));
                rows.push(o::RETVAL, 4, "retval", retval(m.retval, profile));
                rows.push(o::INDEX, 4, "index", m.index.to_string());
            }
        }
        let body_end = 1 + msg_type.body_len(profile);
        if body_end < MSG_LEN {
            rows.push(body_end, MSG_LEN - body_end, "padding", "zero".to_owned());
        }
        render(msg_type, profile, &rows)
    }
}

fn render(msg_type: MsgType, profile: Profile, rows: &Rows) -> String {
    let mut out = format!(
        "{msg_type} (type {}), {profile} profile, {MSG_LEN} bytes, body {} bytes\n",
        msg_type.as_u8(),
        msg_type.body_len(profile)
    );
    let width = rows.0.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let _ = writeln!(out, "{:>4} {:>4}  {:<width$}  value", "off", "len", "field");
    for (off, size, name, value) in &rows.0 {
        let _ = writeln!(out, "{off:>4} {size:>4}  {name:<width$}  {value}");
    }
    out
}
