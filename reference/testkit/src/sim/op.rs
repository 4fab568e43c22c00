//! [`Op`]: one thing the world does to the server, naming what it acts on by [`Pick`]s resolved
//! against the live state when it runs, so that any op list is meaningful and a prefix or
//! subsequence of a failing list still runs (that is what makes shrinking work).

use std::fmt;

use sapi_core::ResourceError;
use sapi_wire::{AttachOptions, Message};

/// A reference to a live object, resolved when the op runs: below [`Pick::BOGUS`] it selects
/// `live[v % live.len()]`; at or above it, it is used as a raw (almost surely invalid) value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pick(pub u32);

impl Pick {
    /// Values from here on are raw ids, not indices into the live set.
    pub const BOGUS: u32 = 0xF000_0000;

    /// The socket accepted last (for sockets; otherwise an ordinary index).
    pub const NEWEST: Pick = Pick(0x0FFF_FFFF);

    /// A raw (bogus) id `v` (`v` < 2^28).
    pub const fn bogus(v: u32) -> Pick {
        Pick(Self::BOGUS + (v & 0x0FFF_FFFF))
    }

    pub(super) fn resolve<T: Copy>(self, live: &[T], bogus: impl FnOnce(u32) -> T) -> Option<T> {
        if self.0 >= Self::BOGUS {
            return Some(bogus(self.0 - Self::BOGUS));
        }
        if live.is_empty() {
            return None;
        }
        live.get(self.0 as usize % live.len()).copied()
    }
}

impl fmt::Debug for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::NEWEST {
            write!(f, "Pick::NEWEST")
        } else if self.0 >= Self::BOGUS {
            write!(f, "Pick::bogus({:#x})", self.0 - Self::BOGUS)
        } else {
            write!(f, "Pick({})", self.0)
        }
    }
}

/// The failure the shell injects into the next matching request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inject {
    /// The next worker resource creation fails with this error.
    WorkerResources(ResourceError),
    /// The next admin segment creation fails with this error.
    Segment(ResourceError),
    /// The next listener bind fails.
    Listen,
    /// The next `sendmsg` fails (the shell reports [`sapi_core::Input::SendFailed`]).
    Send,
}

/// One thing that happens to the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A client connects to the listener of a namespace (picked among live ones).
    Connect { ns: Pick, pid: i32 },
    /// A well-formed ATTACH with these options.
    Attach {
        sock: Pick,
        name: Vec<u8>,
        options: AttachOptions,
    },
    /// ADD_DEL_WORKER add for an app (picked among live ones).
    WorkerAdd { sock: Pick, app: Pick },
    /// ADD_DEL_WORKER delete of a worker (picked among the app's workers).
    WorkerDel { sock: Pick, app: Pick, wrk: Pick },
    /// ADD_DEL_CERT_KEY add, then (optionally) a data datagram of `data` bytes.
    CertKeyAdd {
        sock: Pick,
        cert_len: u16,
        certkey_len: u16,
        data: Option<u16>,
    },
    /// ADD_DEL_CERT_KEY delete.
    CertKeyDel { sock: Pick, index: u32 },
    /// Any bytes as one datagram.
    Raw {
        sock: Pick,
        bytes: Vec<u8>,
        truncated: bool,
        ctrunc: bool,
    },
    /// The peer closes or crashes.
    Close { sock: Pick },
    /// Sending on the socket failed.
    SendFailed { sock: Pick },
    /// A deadline passed (picked among armed deadlines, or any socket when bogus).
    Deadline { sock: Pick },
    /// Admin: give a worker one more segment.
    SegmentAdd { app: Pick, wrk: Pick },
    /// Admin: take a segment back.
    SegmentDel { app: Pick, wrk: Pick, seg: Pick },
    /// Admin: add namespace `ns<id>` (id 255: an invalid id).
    NsAdd { id: u8 },
    /// Admin: delete namespace `ns<id>` (id 0: `default`).
    NsDel { id: u8 },
    /// Admin: show.
    Show,
    /// Arm a failure for the next matching request.
    Inject(Inject),
    /// Any typed message, of any type and direction, encoded in the run's profile (cert-key
    /// messages at the seed: their Head bytes).
    Request { sock: Pick, msg: Message },
}
