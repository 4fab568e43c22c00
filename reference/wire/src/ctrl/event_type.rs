//! `session_evt_type_t` (`docs/shm.md` §6.2): every session event type, its number in each
//! profile, its name, and which way it travels in the cut-through session layer
//! (`docs/sessions.md` §3.3, §3.4, §5).
//!
//! Owns: the numbering of both profiles (the seed numbering lacks HALF_CLOSE and SHUTDOWN, which
//! were inserted in 2021, and everything appended after 2020-09) and the direction table.
//!
//! Must never: know a body layout (that is each message's module) or how an element is queued.

use std::fmt;

use crate::{Direction, Profile};

const APP: &[Direction] = &[Direction::AppToServer];
const SERVER: &[Direction] = &[Direction::ServerToApp];
const BOTH: &[Direction] = &[Direction::AppToServer, Direction::ServerToApp];
const NEITHER: &[Direction] = &[];

macro_rules! event_types {
    ($($(#[$m:meta])* $name:ident = $seed:expr, $head:expr, $text:literal, $dirs:expr;)*) => {
        /// `session_evt_type_t` (§6.2), with its number in each profile.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub enum SessionEventType {
            $($(#[$m])* $name,)*
        }

        impl SessionEventType {
            /// Every event type, in HEAD order (so `ALL[n]` has HEAD number `n`).
            pub const ALL: &'static [SessionEventType] = &[$(SessionEventType::$name,)*];

            /// Number in the HEAD profile (current VPP).
            pub const fn number_head(self) -> u8 {
                match self { $(SessionEventType::$name => $head,)* }
            }

            /// Number in the seed profile (2020-09), `None` if it did not exist yet.
            pub const fn number_seed(self) -> Option<u8> {
                match self { $(SessionEventType::$name => $seed,)* }
            }

            /// VPP's name without the `SESSION_CTRL_EVT_` / `SESSION_IO_EVT_` prefix, e.g.
            /// `"ACCEPTED_REPLY"`.
            pub const fn name(self) -> &'static str {
                match self { $(SessionEventType::$name => $text,)* }
            }

            /// The directions this type travels in the cut-through session layer as this crate
            /// models it: app → server per §3.3 (plus the older app-sent DISCONNECTED of §5.13),
            /// server → app per §3.4 and §5. Empty for the types outside that scope (VPP's
            /// internal RPC, HALF_CLOSE, CLOSE; the URI and stream variants; MIGRATED, …) and for
            /// the io events BUILTIN_RX and TX_MAIN.
            pub const fn directions(self) -> &'static [Direction] {
                match self { $(SessionEventType::$name => $dirs,)* }
            }
        }
    };
}

event_types! {
    /// SESSION_IO_EVT_RX: app → server = dequeue notification; server → app = "your rx fifo
    /// has data" (§5.17).
    IoRx = Some(0), 0, "RX", BOTH;
    /// SESSION_IO_EVT_TX: app → server = "I enqueued"; server → app = "your tx fifo has room".
    IoTx = Some(1), 1, "TX", BOTH;
    /// SESSION_IO_EVT_TX_FLUSH: app → server only.
    IoTxFlush = Some(2), 2, "TX_FLUSH", APP;
    /// SESSION_IO_EVT_BUILTIN_RX (in-VPP apps only).
    IoBuiltinRx = Some(3), 3, "BUILTIN_RX", NEITHER;
    /// SESSION_IO_EVT_TX_MAIN (BUILTIN_TX before 2023-03-10; unconnected UDP).
    IoTxMain = Some(4), 4, "TX_MAIN", NEITHER;
    /// SESSION_CTRL_EVT_RPC (VPP internal; an app must never send it, Appendix A).
    Rpc = Some(5), 5, "RPC", NEITHER;
    /// SESSION_CTRL_EVT_HALF_CLOSE (VPP internal).
    HalfClose = None, 6, "HALF_CLOSE", NEITHER;
    /// SESSION_CTRL_EVT_CLOSE (VPP internal).
    Close = Some(6), 7, "CLOSE", NEITHER;
    /// SESSION_CTRL_EVT_RESET: server → app (§5.12). App-posted, it is VPP's internal "reset this
    /// transport", which a reference refuses (Appendix A).
    Reset = Some(7), 8, "RESET", SERVER;
    /// SESSION_CTRL_EVT_BOUND (§5.3).
    Bound = Some(8), 9, "BOUND", SERVER;
    /// SESSION_CTRL_EVT_UNLISTEN_REPLY (§5.5).
    UnlistenReply = Some(9), 10, "UNLISTEN_REPLY", SERVER;
    /// SESSION_CTRL_EVT_ACCEPTED (§5.7).
    Accepted = Some(10), 11, "ACCEPTED", SERVER;
    /// SESSION_CTRL_EVT_ACCEPTED_REPLY (§5.8).
    AcceptedReply = Some(11), 12, "ACCEPTED_REPLY", APP;
    /// SESSION_CTRL_EVT_CONNECTED (§5.10).
    Connected = Some(12), 13, "CONNECTED", SERVER;
    /// SESSION_CTRL_EVT_DISCONNECTED: server → app (§5.12), and app → server as the older
    /// "close and confirm" request VCL no longer sends (§5.13).
    Disconnected = Some(13), 14, "DISCONNECTED", BOTH;
    /// SESSION_CTRL_EVT_DISCONNECTED_REPLY: app → server (§5.13), and server → app as the answer
    /// to an app-sent DISCONNECTED (§5.13).
    DisconnectedReply = Some(14), 15, "DISCONNECTED_REPLY", BOTH;
    /// SESSION_CTRL_EVT_RESET_REPLY (§5.13).
    ResetReply = Some(15), 16, "RESET_REPLY", APP;
    /// SESSION_CTRL_EVT_REQ_WORKER_UPDATE (§5.19).
    ReqWorkerUpdate = Some(16), 17, "REQ_WORKER_UPDATE", SERVER;
    /// SESSION_CTRL_EVT_WORKER_UPDATE (§5.19).
    WorkerUpdate = Some(17), 18, "WORKER_UPDATE", APP;
    /// SESSION_CTRL_EVT_WORKER_UPDATE_REPLY (§5.19).
    WorkerUpdateReply = Some(18), 19, "WORKER_UPDATE_REPLY", SERVER;
    /// SESSION_CTRL_EVT_SHUTDOWN (§5.15; not in the seed profile).
    Shutdown = None, 20, "SHUTDOWN", APP;
    /// SESSION_CTRL_EVT_DISCONNECT (§5.11).
    Disconnect = Some(19), 21, "DISCONNECT", APP;
    /// SESSION_CTRL_EVT_CONNECT (§5.6).
    Connect = Some(20), 22, "CONNECT", APP;
    /// SESSION_CTRL_EVT_CONNECT_URI (not used by VCL over cut-through).
    ConnectUri = Some(21), 23, "CONNECT_URI", NEITHER;
    /// SESSION_CTRL_EVT_LISTEN (§5.2).
    Listen = Some(22), 24, "LISTEN", APP;
    /// SESSION_CTRL_EVT_LISTEN_URI (not used by VCL over cut-through).
    ListenUri = Some(23), 25, "LISTEN_URI", NEITHER;
    /// SESSION_CTRL_EVT_UNLISTEN (§5.4).
    Unlisten = Some(24), 26, "UNLISTEN", APP;
    /// SESSION_CTRL_EVT_APP_DETACH (§5.16).
    AppDetach = Some(25), 27, "APP_DETACH", APP;
    /// SESSION_CTRL_EVT_APP_ADD_SEGMENT (§5.9, `docs/shm.md` §6.3).
    AppAddSegment = Some(26), 28, "APP_ADD_SEGMENT", SERVER;
    /// SESSION_CTRL_EVT_APP_DEL_SEGMENT (§5.9, `docs/shm.md` §6.4).
    AppDelSegment = Some(27), 29, "APP_DEL_SEGMENT", SERVER;
    /// SESSION_CTRL_EVT_MIGRATED (never sent for cut-through sessions).
    Migrated = Some(28), 30, "MIGRATED", NEITHER;
    /// SESSION_CTRL_EVT_CLEANUP (§5.14).
    Cleanup = Some(29), 31, "CLEANUP", SERVER;
    /// SESSION_CTRL_EVT_APP_WRK_RPC (§5.20): app → ctrl mq, and the copy the server puts into
    /// worker `wrk_index`'s mq.
    AppWrkRpc = Some(30), 32, "APP_WRK_RPC", BOTH;
    /// SESSION_CTRL_EVT_TRANSPORT_ATTR (§5.18).
    TransportAttr = None, 33, "TRANSPORT_ATTR", APP;
    /// SESSION_CTRL_EVT_TRANSPORT_ATTR_REPLY (§5.18).
    TransportAttrReply = None, 34, "TRANSPORT_ATTR_REPLY", SERVER;
    /// SESSION_CTRL_EVT_TRANSPORT_CLOSED (never sent to socket-API apps).
    TransportClosed = None, 35, "TRANSPORT_CLOSED", NEITHER;
    /// SESSION_CTRL_EVT_HALF_CLEANUP (never sent to socket-API apps).
    HalfCleanup = None, 36, "HALF_CLEANUP", NEITHER;
    /// SESSION_CTRL_EVT_CONNECT_STREAM (QUIC-like transports only).
    ConnectStream = None, 37, "CONNECT_STREAM", NEITHER;
    /// SESSION_CTRL_EVT_TERMINATE (§5.15).
    Terminate = None, 38, "TERMINATE", APP;
}

impl SessionEventType {
    /// Number in the chosen profile (`seed` = the 2020-09 profile).
    pub const fn number(self, seed: bool) -> Option<u8> {
        if seed {
            self.number_seed()
        } else {
            Some(self.number_head())
        }
    }

    /// Number in `profile`, `None` if the type did not exist in it.
    pub const fn number_in(self, profile: Profile) -> Option<u8> {
        self.number(matches!(profile, Profile::Seed))
    }

    /// The type with number `n` in the chosen profile.
    pub fn from_number(n: u8, seed: bool) -> Option<Self> {
        if seed {
            Self::ALL
                .iter()
                .copied()
                .find(|t| t.number_seed() == Some(n))
        } else {
            Self::ALL.get(usize::from(n)).copied()
        }
    }

    /// The type with number `n` in `profile`.
    pub fn from_number_in(n: u8, profile: Profile) -> Option<Self> {
        Self::from_number(n, matches!(profile, Profile::Seed))
    }

    /// Whether this is an io event (types 0..=4, ring 0) rather than a control message.
    pub const fn is_io(self) -> bool {
        matches!(
            self,
            SessionEventType::IoRx
                | SessionEventType::IoTx
                | SessionEventType::IoTxFlush
                | SessionEventType::IoBuiltinRx
                | SessionEventType::IoTxMain
        )
    }

    /// Whether this type travels `dir` (see [`directions`](Self::directions)).
    pub fn travels(self, dir: Direction) -> bool {
        self.directions().contains(&dir)
    }
}

impl fmt::Display for SessionEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_numbers_are_indices_and_seed_numbers_are_a_shifted_prefix() {
        for (i, t) in SessionEventType::ALL.iter().enumerate() {
            assert_eq!(usize::from(t.number_head()), i);
            assert_eq!(
                SessionEventType::from_number(t.number_head(), false),
                Some(*t)
            );
            if let Some(n) = t.number_seed() {
                assert_eq!(SessionEventType::from_number(n, true), Some(*t));
            }
        }
        assert_eq!(SessionEventType::from_number(39, false), None);
        assert_eq!(SessionEventType::from_number(31, true), None);
    }
}
