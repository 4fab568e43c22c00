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
    /// The next fifo pair carved in a ct segment does not fit.
    FifoPair,
    /// The next pair of C's shadow headers does not fit.
    Shadows,
}

/// How an app closes one of its sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseHow {
    /// DISCONNECT.
    Disconnect,
    /// TERMINATE (a reset).
    Terminate,
    /// The passive side's answer: RESET_REPLY after RESET, else DISCONNECTED_REPLY.
    Reply,
    /// SHUTDOWN: nothing happens on cut-through.
    Shutdown,
}

impl CloseHow {
    pub const ALL: [CloseHow; 4] = [
        CloseHow::Disconnect,
        CloseHow::Terminate,
        CloseHow::Reply,
        CloseHow::Shutdown,
    ];
}

/// A message an app posts that must change nothing for anyone (`docs/sessions.md` §4.5: every
/// handle, index and context is checked against the sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// DISCONNECT of another app's session.
    OthersDisconnect,
    /// TERMINATE of another app's session.
    OthersTerminate,
    /// DISCONNECTED_REPLY for another app's session.
    OthersCloseReply,
    /// TRANSPORT_ATTR about another app's session.
    OthersAttr,
    /// DISCONNECT of a handle no session has.
    UnknownHandle,
    /// DISCONNECT of the sender's own session, posted into another thread's mq.
    WrongThread,
    /// ACCEPTED_REPLY whose context does not echo ACCEPTED's.
    WrongContext,
    /// LISTEN and CONNECT naming a worker the app does not have.
    WrongWorker,
    /// An io event TX naming no session.
    UnknownIo,
}

impl Hostile {
    pub const ALL: [Hostile; 9] = [
        Hostile::OthersDisconnect,
        Hostile::OthersTerminate,
        Hostile::OthersCloseReply,
        Hostile::OthersAttr,
        Hostile::UnknownHandle,
        Hostile::WrongThread,
        Hostile::WrongContext,
        Hostile::WrongWorker,
        Hostile::UnknownIo,
    ];
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

    // The session layer. Workers are picked among those whose ATTACH_REPLY or
    // ADD_DEL_WORKER_REPLY the shell delivered; sessions, listeners and ACCEPTEDs among what
    // the apps were told; addresses and ports index small tables (see `sessions.rs`).
    /// LISTEN by a worker on address `addr`, port `port`, TCP or UDP.
    Listen {
        wrk: Pick,
        addr: u8,
        port: u8,
        udp: bool,
    },
    /// UNLISTEN of one of the worker's listeners (bogus: a handle that is none).
    Unlisten { wrk: Pick, listener: Pick },
    /// CONNECT by a worker: to a listener's port and protocol (picked among every listener any
    /// worker was told of) at address variant `addr`, or, when `to` is bogus or nobody listens,
    /// to address `addr`, port `port` of the tables.
    Dial {
        wrk: Pick,
        to: Pick,
        addr: u8,
        port: u8,
        udp: bool,
    },
    /// ACCEPTED_REPLY to an ACCEPTED not yet answered: retval 0, or REFUSED when `reject`.
    Accept { acc: Pick, reject: bool },
    /// An app writes up to `len` bytes into a session's tx fifo (TX when `has_event` was 0).
    Write { sess: Pick, len: u16 },
    /// An app reads up to `len` bytes (RX when the writer asked for a dequeue notification).
    Read { sess: Pick, len: u16 },
    /// An app closes a session.
    Shut { sess: Pick, how: CloseHow },
    /// The socket of the app owning a session closes: a crash mid-session.
    CrashSession { sess: Pick },
    /// APP_DETACH from a worker.
    Detach { wrk: Pick },
    /// A message that must change nothing.
    Hostile {
        wrk: Pick,
        sess: Pick,
        kind: Hostile,
    },
}
