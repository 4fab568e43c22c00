//! The server's static configuration and the limits it applies to what apps ask for.
//!
//! Must never: change while a server runs: `Server::new` takes the `Config` by value and hands out
//! only `&Config`, so every app is judged by the same limits from start to end.

use std::path::PathBuf;
use std::time::Duration;

use sapi_wire::Profile;

use crate::access::AccessPolicy;
use crate::fault::InjectedFaults;

/// Smallest first segment VPP hands out, whatever SEGMENT_SIZE says.
pub const MIN_SEGMENT_SIZE: u64 = 1 << 20;
/// Largest SEGMENT_SIZE / ADD_SEGMENT_SIZE accepted: the segment (plus VPP's 12 KiB of headers)
/// must fit the u32 `segment_size` of APP_ADD_SEGMENT.
pub const MAX_SEGMENT_SIZE: u64 = (1 << 32) - (1 << 16);
/// Largest EVT_QUEUE_SIZE accepted (the queue length is a u32 in the mq header).
pub const MAX_EVT_QUEUE_SIZE: u64 = 1 << 20;
/// Default EVT_QUEUE_SIZE.
pub const DEFAULT_EVT_QUEUE_SIZE: u32 = 128;
/// cert + key longer than this is refused before its data is read.
pub const MAX_CERTKEY_LEN: u16 = 20_000;
/// Each of cert and key longer than this is refused.
pub const MAX_CERT_OR_KEY_LEN: u16 = 10_000;
/// How long the second datagram of a cert-key add may take to arrive. VPP retries 6 reads 1 µs
/// apart; an event loop cannot read ahead, so the reference waits this long instead.
pub const CERTKEY_DATA_TIMEOUT: Duration = Duration::from_millis(100);
/// Most sockets a namespace can hold (index 0 is its listener).
pub(crate) const MAX_SOCKETS_PER_NS: usize = 1 << 16;

/// Static configuration of a server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which protocol revision to speak.
    pub profile: Profile,
    /// Simulated VPP worker threads (0 = main thread only).
    pub vpp_workers: u8,
    /// Offset of each server thread's mq in the VPP mqs segment (thread 0 first); the ctrl mq
    /// is the one of `vpp_ctrl_mq_thread`.
    pub vpp_mq_offsets: Vec<u64>,
    /// Directory under which `app_ns_sockets/<id>` are created.
    pub runtime_dir: PathBuf,
    /// Test-only deviations.
    pub faults: InjectedFaults,
    /// Who may connect (opt-in; VPP lets anyone with access to the socket file in).
    pub access: AccessPolicy,
    /// Refuse an ATTACH whose NAMESPACE_SECRET differs from the namespace's (opt-in; VPP
    /// ignores secrets over the socket API).
    pub enforce_ns_secret: bool,
}

impl Config {
    /// `vpp_ctrl_mq_thread`: 1 when VPP has worker threads, else 0.
    pub fn vpp_ctrl_mq_thread(&self) -> u8 {
        u8::from(self.vpp_workers > 0)
    }

    /// Offset of server thread `thread`'s mq (0 if the shell gave none).
    pub fn vpp_mq_offset(&self, thread: usize) -> u64 {
        self.vpp_mq_offsets.get(thread).copied().unwrap_or(0)
    }
}
