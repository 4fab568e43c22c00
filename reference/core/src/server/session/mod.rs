//! The session layer for local apps (`docs/sessions.md`): listeners in each namespace's local
//! table, cut-through session pairs, their ct segments and fifos, the relay of io events, and
//! teardown.
//!
//! Owns every decision of the session layer: which listener a connect matches, which retval a
//! failure gets, which handle a session has and when it may be reused (only after its CLEANUP
//! type 1), which app is told what and in which order, when a fifo pair and a ct segment are
//! freed. Everything that touches shared memory — creating a ct segment, carving fifos and
//! shadow headers, flipping signal words, posting into an app mq — is an [`Action`] the shell
//! performs; what the core must know back (where the fifos went, whether a reader left data)
//! comes back as an [`Input`], at once, before any other input.
//!
//! Must never: trust a message an app posted (every handle, index and context is looked up and
//! checked against the sender; an unknown one changes nothing for anyone), reuse a handle before
//! CLEANUP type 1, or send anything to a worker that has detached.
//!
//! [`Action`]: crate::Action
//! [`Input`]: crate::Input

mod close;
mod connect;
mod listen;
mod relay;

use std::collections::{BTreeMap, VecDeque};

use sapi_wire::ctrl::{CtrlMessage, Ip46};

use crate::ids::{AppIndex, FifoRef, NsIndex, PairId, SegmentId, SessionHandle, WorkerKey};

/// `SESSION_E_*` numbers the session layer answers with (`docs/sessions.md` §10.1).
pub(crate) mod retval {
    /// −1: the cut-through transport has no attributes.
    pub const UNKNOWN: i32 = -1;
    /// −2: the server app rejected the connection, or its listener side is gone.
    pub const REFUSED: i32 = -2;
    /// −4: a ct segment, fifo pair or shadow pair could not be allocated.
    pub const ALLOC: i32 = -4;
    /// −5: the handle belongs to another app.
    pub const OWNER: i32 = -5;
    /// −6: no local listener for a loopback destination.
    pub const NOROUTE: i32 = -6;
    /// −11: the handle is not a listener.
    pub const NOLISTEN: i32 = -11;
    /// −17: something listens there already.
    pub const ALREADY_LISTENING: i32 = -17;
    /// −20: the remote address is all zero.
    pub const INVALID_RMT_IP: i32 = -20;
    /// −22: the address is not local to the namespace.
    pub const INVALID_NS: i32 = -22;
    /// −27: a non-loopback destination for an app without global scope.
    pub const SCOPE: i32 = -27;
}

/// A key of a namespace's local table (`docs/sessions.md` §6.1): address, port, protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ListenKey {
    pub ip: [u8; 16],
    pub is_ip4: bool,
    pub port: u16,
    pub proto: u8,
}

impl ListenKey {
    pub fn new(ip: Ip46, is_ip4: bool, port: u16, proto: u8) -> ListenKey {
        let mut ip = ip.0;
        if is_ip4 {
            // VPP masks the bytes an IPv4 address does not use.
            ip[..12].fill(0);
        }
        ListenKey {
            ip,
            is_ip4,
            port,
            proto,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.ip == [0; 16]
    }

    pub fn is_loopback(&self) -> bool {
        if self.is_ip4 {
            self.ip[12] == 127
        } else {
            self.ip == std::net::Ipv6Addr::LOCALHOST.octets()
        }
    }

    /// The same port and protocol on the family's wildcard address.
    pub fn wildcard(&self) -> ListenKey {
        ListenKey {
            ip: [0; 16],
            ..*self
        }
    }
}

/// A listener: one per (app, key), listened on by one or more of the app's workers.
#[derive(Debug)]
pub(crate) struct Listener {
    pub app: AppIndex,
    pub ns: NsIndex,
    pub key: ListenKey,
    /// Listening workers, in the order they asked; accepts go round robin.
    pub workers: Vec<ListenWorker>,
    pub next_worker: usize,
}

/// A worker listening on a listener, with the segment manager its ct segments belong to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenWorker {
    pub wrk: u32,
    pub segment_manager: u32,
}

/// What a slot of a thread's session pool holds.
#[derive(Debug)]
pub(crate) enum Slot {
    Listener(Listener),
    Session(Session),
}

/// One side of a cut-through pair.
#[derive(Debug)]
pub(crate) struct Session {
    pub pair: PairId,
    pub side: Side,
    pub worker: WorkerKey,
    /// The app's own index of the session, put into every io event to it: ACCEPTED_REPLY's
    /// `app_session_index` for S, CONNECT's `context` for C.
    pub app_session_index: u32,
    pub state: SessionState,
}

/// Which side of a pair a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// ss: owned by the listening app S; reads fifo A, writes fifo B.
    Server,
    /// cs: owned by the connecting app C; reads fifo B, writes fifo A.
    Client,
}

/// `docs/sessions.md` §9.1, as far as the reference needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionState {
    /// ss waiting for ACCEPTED_REPLY.
    Accepting,
    /// Established.
    Ready,
    /// The peer closed or reset; this app was told.
    TransportClosing,
}

/// A cut-through pair: a connect matched to a listener.
#[derive(Debug)]
pub(crate) struct Pair {
    pub thread: u8,
    pub listener: SessionHandle,
    pub listener_worker: ListenWorker,
    pub server: WorkerKey,
    pub client: WorkerKey,
    /// CONNECT.context: C's app session index.
    pub connect_context: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    pub segment: Option<SegmentId>,
    /// Fifo A (S reads, C writes) and B (S writes, C reads), once carved.
    pub fifos: Option<(u64, u64)>,
    /// C's shadow RX and TX headers in C's first segment, once carved.
    pub shadows: Option<(SegmentId, u64, u64)>,
    pub ss: Option<SessionHandle>,
    pub cs: Option<SessionHandle>,
    /// Closes waiting for the shell to say whether their closer left unread data: one per
    /// side at most (both sides close in one batch when a worker paired with itself, or an app
    /// whose two workers are paired, detaches).
    pub closing: Vec<PendingClose>,
    /// C detached before S answered ACCEPTED, or was refused after S accepted: no CONNECTED
    /// can be delivered any more.
    pub client_gone: bool,
}

/// A close in progress: the closer's handle, whether it was a TERMINATE, and whether the
/// closer's app gets its CLEANUPs (not when it is detaching).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingClose {
    pub closer: SessionHandle,
    pub terminate: bool,
    pub tell_closer: bool,
}

impl Pair {
    pub fn fifo_a(&self) -> Option<FifoRef> {
        Some(FifoRef {
            segment: self.segment?,
            offset: self.fifos?.0,
        })
    }

    pub fn fifo_b(&self) -> Option<FifoRef> {
        Some(FifoRef {
            segment: self.segment?,
            offset: self.fifos?.1,
        })
    }

    pub fn shadow_rx(&self) -> Option<FifoRef> {
        let (segment, rx, _) = self.shadows?;
        Some(FifoRef {
            segment,
            offset: rx,
        })
    }

    pub fn shadow_tx(&self) -> Option<FifoRef> {
        let (segment, _, tx) = self.shadows?;
        Some(FifoRef {
            segment,
            offset: tx,
        })
    }

    /// The session of `side`, if it exists.
    pub fn session(&self, side: Side) -> Option<SessionHandle> {
        match side {
            Side::Server => self.ss,
            Side::Client => self.cs,
        }
    }

    /// The fifo `side` reads.
    pub fn rx_fifo(&self, side: Side) -> Option<FifoRef> {
        match side {
            Side::Server => self.fifo_a(),
            Side::Client => self.fifo_b(),
        }
    }
}

/// A ct segment: created for a (listener segment manager, client worker, server worker) and
/// shared by the pairs between them while it has room.
#[derive(Debug)]
pub(crate) struct CtSegment {
    pub key: CtKey,
    /// The handle S knows it by (`(listener segment manager << 32) | index`).
    pub handle: u64,
    /// The handle C knows it by: C's global worker index in the top byte.
    pub client_handle: u64,
    pub server: WorkerKey,
    pub client: WorkerKey,
    /// Pairs holding fifos in it (each side counts until its session is freed).
    pub server_sessions: u32,
    pub client_sessions: u32,
    /// Pairs ever placed, to cap how many share it.
    pub pairs_placed: u32,
    /// No new pair goes here any more (one side's count reached 0 once).
    pub closed_to_new: bool,
    /// C's worker detached: whatever worker later has its key (worker indices are reused
    /// within an app) never heard of this segment and gets no DEL_SEGMENT for it.
    pub client_detached: bool,
    /// Its DEL_SEGMENTs went out already, before both sides were cleaned up (only the
    /// `early-del-segment` fault does that).
    pub deleted_early: bool,
    pub ssvm_size: Option<u64>,
    /// Pairs waiting for this segment to be created.
    pub waiting: Vec<PairId>,
}

/// The identity of a ct segment context (`docs/sessions.md` §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct CtKey {
    pub listener_segment_manager: u32,
    pub client_global: u32,
    pub server_global: u32,
}

/// A pool of session slots for one server thread: indices are reused, most recently freed
/// first, as VPP's pools.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
}

impl Pool {
    pub fn insert(&mut self, slot: Slot) -> Option<u32> {
        if let Some(i) = self.free.pop()
            && let Some(s) = self.slots.get_mut(i as usize)
        {
            *s = Some(slot);
            return Some(i);
        }
        let i = u32::try_from(self.slots.len()).ok()?;
        self.slots.push(Some(slot));
        Some(i)
    }

    pub fn get(&self, i: u32) -> Option<&Slot> {
        self.slots.get(i as usize)?.as_ref()
    }

    /// Puts `slot` into the free slot `i` (only the `reuse-handle-before-cleanup` fault picks
    /// the index itself); `None` if `i` is not free.
    pub fn insert_at(&mut self, i: u32, slot: Slot) -> Option<u32> {
        let pos = self.free.iter().rposition(|f| *f == i)?;
        let s = self.slots.get_mut(i as usize)?;
        self.free.remove(pos);
        *s = Some(slot);
        Some(i)
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut Slot> {
        self.slots.get_mut(i as usize)?.as_mut()
    }

    pub fn remove(&mut self, i: u32) -> Option<Slot> {
        let slot = self.slots.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(slot)
    }

    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

/// Everything of the session layer the server holds.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    /// One pool per server thread; listeners live in thread 0's.
    pub pools: Vec<Pool>,
    /// Per namespace: key → listener handle.
    pub tables: BTreeMap<NsIndex, BTreeMap<ListenKey, SessionHandle>>,
    pub pairs: BTreeMap<PairId, Pair>,
    pub next_pair: u64,
    pub ct_segments: BTreeMap<SegmentId, CtSegment>,
    /// Segments of each context, oldest first.
    pub contexts: BTreeMap<CtKey, Vec<SegmentId>>,
    /// Counter of cut-through connects, for thread placement (§4.7).
    pub connects: u64,
    /// Counter naming ct segments.
    pub segment_names: u64,
    /// Global worker indices in use (the top byte of a client-form ct handle).
    pub global_workers: BTreeMap<WorkerKey, u32>,
    pub free_global: VecDeque<u32>,
    /// The worker whose sessions `detach_sessions` is closing: it is told nothing more, even
    /// about a pair it is on both sides of (an app connected to its own listener).
    pub detaching: Option<WorkerKey>,
}

impl Sessions {
    pub fn slot(&self, h: SessionHandle) -> Option<&Slot> {
        self.pools.get(h.thread() as usize)?.get(h.index())
    }

    pub fn slot_mut(&mut self, h: SessionHandle) -> Option<&mut Slot> {
        self.pools.get_mut(h.thread() as usize)?.get_mut(h.index())
    }

    pub fn session(&self, h: SessionHandle) -> Option<&Session> {
        match self.slot(h)? {
            Slot::Session(s) => Some(s),
            Slot::Listener(_) => None,
        }
    }

    pub fn session_mut(&mut self, h: SessionHandle) -> Option<&mut Session> {
        match self.slot_mut(h)? {
            Slot::Session(s) => Some(s),
            Slot::Listener(_) => None,
        }
    }

    pub fn listener(&self, h: SessionHandle) -> Option<&Listener> {
        match self.slot(h)? {
            Slot::Listener(l) => Some(l),
            Slot::Session(_) => None,
        }
    }

    pub fn listener_mut(&mut self, h: SessionHandle) -> Option<&mut Listener> {
        match self.slot_mut(h)? {
            Slot::Listener(l) => Some(l),
            Slot::Session(_) => None,
        }
    }

    /// Puts a slot into thread `thread`'s pool and names it.
    pub fn insert(&mut self, thread: u8, slot: Slot) -> Option<SessionHandle> {
        let pool = self.pools.get_mut(usize::from(thread))?;
        pool.insert(slot).map(|i| SessionHandle::new(thread, i))
    }

    pub fn remove(&mut self, h: SessionHandle) -> Option<Slot> {
        self.pools.get_mut(h.thread() as usize)?.remove(h.index())
    }

    /// Puts a slot under the freed handle `h`, if `h` is free.
    pub fn insert_at(&mut self, h: SessionHandle, slot: Slot) -> Option<SessionHandle> {
        let pool = self.pools.get_mut(h.thread() as usize)?;
        pool.insert_at(h.index(), slot).map(|_| h)
    }

    /// The global index of a worker, given on first use: 1 to 0xfe, so a client-form handle
    /// never starts with 0xff (`docs/sessions.md` §4.3) and never equals the server form of the
    /// same segment (top byte 0): an app that connects to its own listener from the same
    /// worker is told of one ct segment twice, and its two handles must differ.
    pub fn global_index(&mut self, w: WorkerKey) -> Option<u32> {
        if let Some(i) = self.global_workers.get(&w) {
            return Some(*i);
        }
        let used = self.global_workers.len() as u32;
        let i = self
            .free_global
            .pop_front()
            .or((used < 0xfe).then_some(used + 1))?;
        self.global_workers.insert(w, i);
        Some(i)
    }

    pub fn forget_worker(&mut self, w: WorkerKey) {
        if let Some(i) = self.global_workers.remove(&w) {
            self.free_global.push_back(i);
        }
    }
}

/// A control message for a worker (the shell queues it behind everything earlier to that
/// worker and never drops it).
pub(crate) fn post(worker: WorkerKey, msg: CtrlMessage) -> crate::Action {
    crate::Action::PostCtrl { worker, msg }
}
