//! One attached app worker (`docs/protocol.md` §8.1, `docs/sessions.md` §3): its socket, the
//! VPP mqs segment with every server mq in it, its first segment with its app mq and the
//! eventfd that signals it, the segments added to it later, and its listeners and sessions.
//!
//! Owns: attaching (ATTACH, the reply and its three fds, the mappings, mq discovery), posting
//! into server mqs (the shared robust mutex and condvar: a full queue or ring is waited for, not
//! retried in a loop), taking everything out of the app mq and acting on it (ADD_SEGMENT with
//! the SEND_FDS fd taken from the socket first, DEL_SEGMENT, the session and listener
//! notifications), waiting for the app mq's eventfd in an edge-triggered epoll instance that
//! also reports the socket hanging up, and detaching.
//!
//! Must never: wait without a bound where the server owes an answer, sleep as a way to wait,
//! post into its own app mq, or trust a handle, offset or index the server sent without looking
//! it up (an unknown one is a typed error naming it, or is ignored when it names something this
//! app already forgot).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use sapi_shm::Segment;
use sapi_shm::layout::mq as lmq;
use sapi_shm::memory::Memory;
use sapi_shm::mq::{EventFdSignal, MqConsumer, MqError, MqProducer, PthreadSignal, Signal};
use sapi_wire::ctrl::{
    Accepted, AcceptedReply, AppDetach, CTRL_ELEMENT_SIZE, CleanupType, Connected, CtrlMessage,
    IoEvent, IoEventType,
};
use sapi_wire::{
    AppName, AppOptionFlags, Attach, AttachOptions, AttachReply, Direction, FdFlags, Message,
    OptionIndex, Profile,
};

use crate::error::AppError;
use crate::session::SessionState;
use crate::socket::AppSocket;

/// Ring 0 of every mq carries io events, ring 1 control messages (`docs/sessions.md` §3.1).
pub(crate) const IO_RING: usize = 0;
pub(crate) const CTRL_RING: usize = 1;

/// `ACCEPTED_REPLY` retval for an ACCEPTED this app cannot take (`SESSION_E_REFUSED`).
pub(crate) const REFUSED: i32 = -2;

const EVENTFD_TOKEN: u64 = 0;
const SOCKET_TOKEN: u64 = 1;

/// What an app asks for at ATTACH, and how long it waits for the server's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppOptions {
    /// RX_FIFO_SIZE: the rx fifo of the sessions this app accepts.
    pub rx_fifo_size: u32,
    /// TX_FIFO_SIZE: the tx fifo of the sessions this app accepts.
    pub tx_fifo_size: u32,
    /// SEGMENT_SIZE (and ADD_SEGMENT_SIZE): the first segment, which holds the app mq and the
    /// shadow headers of this app's connects; the server makes ct segments of at least this.
    pub segment_size: u64,
    /// EVT_QUEUE_SIZE: entries of the app mq.
    pub evt_queue_size: u32,
    /// Bound on every wait for an answer the server owes (ATTACH_REPLY, BOUND, CONNECTED,
    /// CLEANUP, UNLISTEN_REPLY, a SEND_FDS, room in a full server mq). A failure bound, not a
    /// pacing: nothing waits for it to pass.
    pub reply_timeout: Duration,
}

impl Default for AppOptions {
    /// 64 KiB fifos, a 16 MiB first segment, VCL's 2048-entry app mq, 10 s for answers.
    fn default() -> Self {
        AppOptions {
            rx_fifo_size: 64 << 10,
            tx_fifo_size: 64 << 10,
            segment_size: 16 << 20,
            evt_queue_size: 2048,
            reply_timeout: Duration::from_secs(10),
        }
    }
}

/// Counts of what the app mq brought and what this app posted, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// RX io events received ("your rx fifo has data").
    pub rx_events: u64,
    /// TX io events received ("your tx fifo has room").
    pub tx_events: u64,
    /// TX io events posted (data written while no event was pending).
    pub tx_posted: u64,
    /// RX io events posted (dequeue notifications).
    pub deq_ntf_posted: u64,
    /// ADD_SEGMENT messages (each with its SEND_FDS).
    pub add_segment: u64,
    /// DEL_SEGMENT messages.
    pub del_segment: u64,
    /// ACCEPTED messages.
    pub accepted: u64,
    /// DISCONNECTED messages.
    pub disconnected: u64,
    /// RESET messages.
    pub reset: u64,
    /// CLEANUP messages of type 1 (session freed).
    pub cleanup: u64,
    /// Control messages of types this app does not act on (ignored).
    pub ignored: u64,
}

/// One side of a session's data path: a fifo whose data this side reads or writes, and the
/// header whose signal block is this side's (§2: not the same header for C).
#[derive(Debug)]
pub(crate) struct FifoEnd {
    pub data: Rc<Segment>,
    pub fifo: u64,
    pub signals: Rc<Segment>,
    pub header: u64,
}

/// What the app knows of one session.
#[derive(Debug)]
pub(crate) struct Sess {
    pub handle: u64,
    pub mq_index: u32,
    pub state: SessionState,
    pub rx: Option<FifoEnd>,
    pub tx: Option<FifoEnd>,
    /// The [`Session`](crate::Session) value was dropped: forget this once CLEANUP 1 came.
    pub orphan: bool,
    /// CONNECT parameters, for the error of a refused connect.
    pub peer: Option<(std::net::IpAddr, u16)>,
    /// CONNECTED, kept until `connect` takes it.
    pub connected: Option<Connected>,
}

/// What the app knows of one listener.
#[derive(Debug)]
pub(crate) struct Lstn {
    /// BOUND's handle and retval, once it came.
    pub bound: Option<(u64, i32)>,
    /// ACCEPTEDs not accepted yet, in arrival order.
    pub queue: VecDeque<Accepted>,
    /// UNLISTEN_REPLY came (or the listener never got bound).
    pub closed: bool,
    /// The [`Listener`](crate::Listener) value was dropped.
    pub orphan: bool,
}

/// The state behind an [`App`] and its sessions and listeners (single-threaded, like a VCL
/// worker).
#[derive(Debug)]
pub(crate) struct Inner {
    pub name: String,
    pub opts: AppOptions,
    socket: Option<AppSocket>,
    pub reply: AttachReply,
    mqs: Segment,
    server_mqs: Vec<u64>,
    first: Rc<Segment>,
    eventfd: Rc<OwnedFd>,
    epoll: Epoll,
    /// Every mapped segment by handle, the first one included.
    segments: HashMap<u64, Rc<Segment>>,
    pub listeners: HashMap<u32, Lstn>,
    pub sessions: HashMap<u32, Sess>,
    /// Session handle → app session index, while the server may still name the handle.
    pub by_handle: HashMap<u64, u32>,
    next_index: u32,
    pub stats: Stats,
    /// Messages handled since [`App::poll`] last returned (by any call: a `try_read` that
    /// found its fifo empty, a `close` waiting for CLEANUP, …).
    /// (A blocking call also compares it across a step to learn whether the step itself took
    /// a wake-up out of the app mq: only `poll` resets it.)
    pub(crate) unseen: usize,
    /// The socket hung up.
    gone: bool,
    pub detached: bool,
}

pub(crate) type Shared = Rc<RefCell<Inner>>;

/// An attached app worker: the handle to everything else.
///
/// Single-threaded (`!Send`), like a VCL worker: one app mq, one consumer. The app stays
/// attached until [`App::detach`], or until the `App` and every [`Session`](crate::Session) and
/// [`Listener`](crate::Listener) made from it are dropped (closing the socket, which the server
/// takes as a detach).
#[derive(Debug)]
pub struct App {
    pub(crate) inner: Shared,
}

impl App {
    /// Connects to the namespace socket at `socket`, attaches as `name` with local scope and an
    /// eventfd-signalled app mq (flags 0xc3, as VCL with `app-scope-local` and
    /// `use-mq-eventfd`), maps the VPP mqs segment and the first segment, finds every server mq
    /// and takes the app mq's eventfd.
    pub fn attach(
        socket: impl AsRef<Path>,
        name: &str,
        options: AppOptions,
    ) -> Result<App, AppError> {
        let inner = Inner::attach(socket.as_ref(), name, options)?;
        Ok(App {
            inner: Rc::new(RefCell::new(inner)),
        })
    }

    /// Handles every message queued in the app mq and returns how many messages were handled
    /// since the last `poll` returned, by this call or by any other (0 when the time ran out).
    /// Only when there were none does it wait, up to `timeout` (for ever if `None`), for the
    /// next one.
    ///
    /// That is what makes a loop over many sessions safe: "step every session until each says
    /// [`AppError::WouldBlock`], then `poll`". A message about session B can be handled while
    /// session A is stepped (A's `try_read` looks at the app mq before it says `WouldBlock`),
    /// after B was looked at; `poll` then returns at once instead of waiting for a wake-up that
    /// already came, and the loop looks at B again.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<usize, AppError> {
        self.inner.borrow_mut().poll(timeout)
    }

    /// Handles what the app mq brings until `done` holds, waiting up to `timeout` in all;
    /// [`AppError::Timeout`] naming `what` if it does not hold by then.
    pub fn poll_until(
        &self,
        what: &'static str,
        timeout: Duration,
        mut done: impl FnMut(&App) -> bool,
    ) -> Result<(), AppError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.inner.borrow_mut().drain()?;
            if done(self) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(AppError::Timeout {
                    what,
                    after: timeout,
                });
            }
            self.poll(Some(left))?;
        }
    }

    /// APP_DETACH on the ctrl mq, then the socket is closed (`docs/sessions.md` §5.16, §9.7):
    /// the server tears down every listener and session of this app and tells their peers.
    /// Sessions and listeners still held fail from now on with [`AppError::Detached`].
    pub fn detach(self) -> Result<(), AppError> {
        self.inner.borrow_mut().detach()
    }

    /// The name this app attached with.
    pub fn name(&self) -> String {
        self.inner.borrow().name.clone()
    }

    /// ATTACH_REPLY's `api_client_handle` (the `client_index` of this app's messages).
    pub fn api_client_handle(&self) -> u32 {
        self.inner.borrow().reply.api_client_handle
    }

    /// ATTACH_REPLY's `app_index`.
    pub fn app_index(&self) -> u32 {
        self.inner.borrow().reply.app_index
    }

    /// The number of server mqs (server threads).
    pub fn n_server_mqs(&self) -> usize {
        self.inner.borrow().server_mqs.len()
    }

    /// Handles of the segments ADD_SEGMENT mapped and no DEL_SEGMENT unmapped yet (the first
    /// segment is not among them).
    pub fn added_segments(&self) -> Vec<u64> {
        let inner = self.inner.borrow();
        let first = inner.reply.segment_handle;
        let mut v: Vec<u64> = inner
            .segments
            .keys()
            .copied()
            .filter(|h| *h != first)
            .collect();
        v.sort_unstable();
        v
    }

    /// Whether the segment `handle` is mapped.
    pub fn is_mapped(&self, handle: u64) -> bool {
        self.inner.borrow().segments.contains_key(&handle)
    }

    /// What came and went so far.
    pub fn stats(&self) -> Stats {
        self.inner.borrow().stats
    }
}

impl Inner {
    fn attach(path: &Path, name: &str, opts: AppOptions) -> Result<Inner, AppError> {
        let socket = AppSocket::connect(path)?;
        let flags = AppOptionFlags::ACCEPT_REDIRECT
            | AppOptionFlags::ADD_SEGMENT
            | AppOptionFlags::USE_LOCAL_SCOPE
            | AppOptionFlags::EVT_MQ_USE_EVENTFD;
        let options = AttachOptions::default()
            .with_flags(flags)
            .with(OptionIndex::EvtQueueSize, u64::from(opts.evt_queue_size))
            .with(OptionIndex::SegmentSize, opts.segment_size)
            .with(OptionIndex::AddSegmentSize, opts.segment_size)
            .with(OptionIndex::RxFifoSize, u64::from(opts.rx_fifo_size))
            .with(OptionIndex::TxFifoSize, u64::from(opts.tx_fifo_size));
        let attach = Message::Attach(Attach {
            name: AppName::new(name.as_bytes())?,
            options,
        });
        socket.send(&attach.encode(Profile::Head)?)?;
        let d = socket.recv("ATTACH_REPLY", opts.reply_timeout)?;
        let msg =
            Message::decode(&d.bytes, Profile::Head, Direction::ServerToApp).map_err(|err| {
                AppError::Datagram {
                    len: d.bytes.len(),
                    err,
                }
            })?;
        let Message::AttachReply(reply) = msg else {
            return Err(AppError::UnexpectedDatagram {
                expected: "ATTACH_REPLY",
                got: format!("{} with {} fds", msg.msg_type(), d.fds.len()),
            });
        };
        if reply.retval != 0 {
            return Err(AppError::AttachRefused {
                retval: reply.retval,
            });
        }
        // Without private rx mqs: the mqs segment, the first segment, the app mq's eventfd, in
        // this order (`docs/protocol.md` §5.3).
        let want = FdFlags::VPP_MQ_SEGMENT | FdFlags::MEMFD_SEGMENT | FdFlags::MQ_EVENTFD;
        let bad_fds = AppError::AttachFds {
            fd_flags: reply.fd_flags.bits(),
            n_fds: reply.n_fds,
            received: d.fds.len(),
        };
        if reply.fd_flags != want || reply.n_fds != 3 {
            return Err(bad_fds);
        }
        let Ok([mqs_fd, first_fd, eventfd]) = <[OwnedFd; 3]>::try_from(d.fds) else {
            return Err(bad_fds);
        };
        let mqs = Segment::attach(mqs_fd)?;
        let first = Rc::new(Segment::attach(first_fd)?);
        let server_mqs = discover_mqs(&mqs, &reply)?;
        for &offset in &server_mqs {
            MqProducer::attach(&mqs, offset, PthreadSignal::new(&mqs, offset)?)?;
        }
        MqConsumer::attach(&*first, reply.app_mq, EventFdSignal::new(eventfd.as_fd()))?;
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(AppError::sys("epoll_create1"))?;
        // Edge-triggered and never read: every post to the eventfd is one wake-up of this
        // instance, and nothing is consumed that another waiter could miss (`sapi_shm::mq`'s
        // `EventFdSignal` waits the same way).
        epoll
            .add(
                &eventfd,
                EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, EVENTFD_TOKEN),
            )
            .map_err(AppError::sys("epoll_ctl(app mq eventfd)"))?;
        // No event bits: only a hang-up or an error wakes us for the socket (as VCL watches it,
        // `docs/protocol.md` §8.1 step 5); SEND_FDS datagrams are read when ADD_SEGMENT says.
        epoll
            .add(
                socket.as_fd(),
                EpollEvent::new(EpollFlags::empty(), SOCKET_TOKEN),
            )
            .map_err(AppError::sys("epoll_ctl(app socket)"))?;
        let mut segments = HashMap::new();
        segments.insert(reply.segment_handle, first.clone());
        Ok(Inner {
            name: name.to_owned(),
            opts,
            socket: Some(socket),
            reply,
            mqs,
            server_mqs,
            first,
            eventfd: Rc::new(eventfd),
            epoll,
            segments,
            listeners: HashMap::new(),
            sessions: HashMap::new(),
            by_handle: HashMap::new(),
            next_index: 0,
            stats: Stats::default(),
            unseen: 0,
            gone: false,
            detached: false,
        })
    }

    pub fn check_attached(&self) -> Result<(), AppError> {
        if self.detached {
            Err(AppError::Detached)
        } else {
            Ok(())
        }
    }

    /// A fresh index for a session or a listener (unique among the live ones: the counter would
    /// have to go round 2^32 while one stays open).
    pub fn next_index(&mut self) -> u32 {
        loop {
            let i = self.next_index;
            self.next_index = self.next_index.wrapping_add(1);
            if !self.sessions.contains_key(&i) && !self.listeners.contains_key(&i) {
                return i;
            }
        }
    }

    pub fn n_mqs(&self) -> usize {
        self.server_mqs.len()
    }

    pub fn ctrl_mq(&self) -> u32 {
        u32::from(self.reply.vpp_ctrl_mq_thread)
    }

    pub fn check_mq(&self, what: &'static str, index: u32) -> Result<(), AppError> {
        if (index as usize) < self.server_mqs.len() {
            Ok(())
        } else {
            Err(AppError::NoSuchMq {
                what,
                index,
                n: self.server_mqs.len(),
            })
        }
    }

    pub fn segment(&self, what: &'static str, handle: u64) -> Result<Rc<Segment>, AppError> {
        self.segments
            .get(&handle)
            .cloned()
            .ok_or(AppError::UnknownSegment { what, handle })
    }

    /// Posts `element` into ring `ring` of server mq `mq`. A full queue or ring, or the mutex
    /// held by another producer, is waited for on the mq's shared mutex and condvar (the server
    /// broadcasts after it frees room, `docs/sessions.md` §3.3), bounded by the reply timeout.
    pub fn post(&self, mq: u32, ring: usize, element: &[u8]) -> Result<(), AppError> {
        self.check_attached()?;
        let offset = *self.server_mqs.get(mq as usize).ok_or(AppError::NoSuchMq {
            what: "post",
            index: mq,
            n: self.server_mqs.len(),
        })?;
        let deadline = Instant::now() + self.opts.reply_timeout;
        let mut p = MqProducer::attach(&self.mqs, offset, PthreadSignal::new(&self.mqs, offset)?)?;
        loop {
            match p.try_send_ring(ring, element) {
                Ok(()) => return Ok(()),
                Err(MqError::Busy) => {
                    // Another process is enqueueing: wait for it to let go of the mutex.
                    drop(p.signal().lock(true)?);
                }
                Err(MqError::Full) => {
                    let mem = &self.mqs;
                    let g = p.geometry();
                    let (queue_len, ring_hdr, nitems) = (
                        g.queue_len(),
                        g.ring_header_offset(ring).unwrap_or(0),
                        g.rings().get(ring).map_or(0, |r| r.nitems),
                    );
                    let q_cursize = offset + lmq::PREFIX_SIZE + lmq::CURSIZE;
                    let room = || -> bool {
                        let used = |off: u64| {
                            mem.atomic_u32(off)
                                .map_or(u32::MAX, |a| a.load(std::sync::atomic::Ordering::Acquire))
                        };
                        used(q_cursize) < queue_len && used(ring_hdr + lmq::RING_CURSIZE) < nitems
                    };
                    let s = p.signal();
                    let Some(mut guard) = s.lock(true)? else {
                        continue;
                    };
                    let ok = s.wait_in_producer(&mut guard, &mut || room(), Some(deadline))?;
                    drop(guard);
                    if !ok {
                        return Err(AppError::Timeout {
                            what: "room in a full server mq",
                            after: self.opts.reply_timeout,
                        });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Posts a control message into server mq `mq`, ring 1.
    pub fn post_ctrl(&self, mq: u32, msg: &CtrlMessage) -> Result<(), AppError> {
        let mut element = [0u8; CTRL_ELEMENT_SIZE];
        let n = msg.encode_into(Profile::Head, &mut element)?;
        self.post(mq, CTRL_RING, element.get(..n).unwrap_or(&element))
    }

    /// Posts an io event into server mq `mq`, ring 0.
    pub fn post_io(&mut self, mq: u32, event: IoEvent) -> Result<(), AppError> {
        self.post(mq, IO_RING, &event.encode())?;
        match event.io_type {
            IoEventType::Rx => self.stats.deq_ntf_posted += 1,
            IoEventType::Tx | IoEventType::TxFlush => self.stats.tx_posted += 1,
        }
        Ok(())
    }

    fn app_mq_len(&self) -> Result<u32, AppError> {
        let c = MqConsumer::attach(
            &*self.first,
            self.reply.app_mq,
            EventFdSignal::new(self.eventfd.as_fd()),
        )?;
        Ok(c.len()?)
    }

    /// Takes every message out of the app mq and acts on it; returns how many.
    pub fn drain(&mut self) -> Result<usize, AppError> {
        if self.detached {
            return Err(AppError::Detached);
        }
        let first = self.first.clone();
        let eventfd = self.eventfd.clone();
        let mut mq = MqConsumer::attach(
            &*first,
            self.reply.app_mq,
            EventFdSignal::new(eventfd.as_fd()),
        )?;
        let mut n = 0;
        let mut element = [0u8; CTRL_ELEMENT_SIZE];
        loop {
            let d = match mq.try_recv(&mut element) {
                Ok(d) => d,
                Err(MqError::Empty) => return Ok(n),
                Err(e) => return Err(e.into()),
            };
            n += 1;
            self.unseen += 1;
            self.handle(d.ring, element.get(..d.len).unwrap_or(&element))?;
        }
    }

    /// Waits until the app mq holds a message or `deadline` passes (false then). An
    /// edge-triggered wait on the eventfd: a post after the look at the queue is an edge the
    /// wait returns for at once, so nothing is missed between the two.
    pub fn wait(&mut self, deadline: Option<Instant>) -> Result<bool, AppError> {
        loop {
            if self.app_mq_len()? > 0 {
                return Ok(true);
            }
            if self.gone {
                return Err(AppError::ServerGone);
            }
            let timeout = match deadline {
                None => EpollTimeout::NONE,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    // Rounded up: waking before the deadline would only spin.
                    EpollTimeout::try_from((d - now).as_micros().div_ceil(1000))
                        .unwrap_or(EpollTimeout::MAX)
                }
            };
            let mut events = [EpollEvent::empty(); 2];
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(err) => {
                    return Err(AppError::Sys {
                        op: "epoll_wait",
                        err,
                    });
                }
            };
            for ev in events.iter().take(n) {
                if ev.data() == SOCKET_TOKEN {
                    // Whatever the server put in the app mq before it hung up is still
                    // handled: the queue is looked at first on the next round.
                    self.gone = true;
                }
            }
        }
    }

    /// [`App::poll`].
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<usize, AppError> {
        self.drain()?;
        if self.unseen == 0 {
            let deadline = timeout.map(|t| Instant::now() + t);
            if !self.wait(deadline)? {
                return Ok(0);
            }
            self.drain()?;
        }
        Ok(std::mem::take(&mut self.unseen))
    }

    /// Handles messages until `done` holds, waiting for the app mq in between; fails with
    /// [`AppError::Timeout`] naming `what` if `deadline` passes first.
    pub fn wait_until(
        &mut self,
        what: &'static str,
        after: Duration,
        deadline: Option<Instant>,
        mut done: impl FnMut(&Inner) -> bool,
    ) -> Result<(), AppError> {
        loop {
            self.drain()?;
            if done(self) {
                return Ok(());
            }
            if !self.wait(deadline)? {
                self.drain()?;
                if done(self) {
                    return Ok(());
                }
                return Err(AppError::Timeout { what, after });
            }
        }
    }

    /// Acts on one element of the app mq.
    fn handle(&mut self, ring: u32, element: &[u8]) -> Result<(), AppError> {
        let type_byte = element.first().copied().unwrap_or(0);
        if ring as usize == IO_RING {
            let ev = IoEvent::decode(element, Profile::Head, Direction::ServerToApp)
                .map_err(|err| AppError::IoDecode { type_byte, err })?;
            // Wake-ups only: whoever waits on a session looks at its fifos again.
            match ev.io_type {
                IoEventType::Rx => self.stats.rx_events += 1,
                IoEventType::Tx | IoEventType::TxFlush => self.stats.tx_events += 1,
            }
            return Ok(());
        }
        let msg = CtrlMessage::decode(element, Profile::Head, Direction::ServerToApp)
            .map_err(|err| AppError::CtrlDecode { type_byte, err })?;
        match msg {
            CtrlMessage::AppAddSegment(a) => self.add_segment(a.segment_handle, a.fd_flags)?,
            CtrlMessage::AppDelSegment(d) => {
                self.stats.del_segment += 1;
                // The mapping goes when the last session using it lets go (all are cleaned
                // up by now: §9.6).
                self.segments.remove(&d.segment_handle);
            }
            CtrlMessage::Bound(b) => {
                if let Some(l) = self.listeners.get_mut(&b.context)
                    && l.bound.is_none()
                {
                    l.bound = Some((b.handle, b.retval));
                    l.closed = b.retval != 0;
                }
            }
            CtrlMessage::UnlistenReply(r) => {
                if let Some(l) = self.listeners.get_mut(&r.context)
                    && l.bound.map(|b| b.0) == Some(r.handle)
                {
                    l.closed = true;
                    if l.orphan {
                        self.listeners.remove(&r.context);
                    }
                }
            }
            CtrlMessage::Accepted(a) => self.accepted(a)?,
            CtrlMessage::Connected(c) => self.connected(c)?,
            CtrlMessage::Disconnected(m) => {
                self.stats.disconnected += 1;
                self.peer_closed(m.handle, SessionState::PeerClosed);
            }
            CtrlMessage::Reset(m) => {
                self.stats.reset += 1;
                self.peer_closed(m.handle, SessionState::PeerReset);
            }
            CtrlMessage::Cleanup(c) => {
                if c.cleanup_type == CleanupType::SESSION {
                    self.stats.cleanup += 1;
                    self.cleaned_up(c.handle);
                }
            }
            _ => self.stats.ignored += 1,
        }
        Ok(())
    }

    /// ADD_SEGMENT: the segment's memfd is already on the socket, in a SEND_FDS datagram sent
    /// before the message was published (`docs/sessions.md` §3.6).
    fn add_segment(&mut self, handle: u64, fd_flags: u8) -> Result<(), AppError> {
        self.stats.add_segment += 1;
        if !FdFlags::from_bits_retain(fd_flags).contains(FdFlags::MEMFD_SEGMENT) {
            return Err(AppError::SendFds {
                handle,
                why: format!("fd_flags {fd_flags:#04x} announces no memfd"),
            });
        }
        let socket = self.socket.as_ref().ok_or(AppError::Detached)?;
        let d = socket.recv("SEND_FDS", self.opts.reply_timeout)?;
        let msg =
            Message::decode(&d.bytes, Profile::Head, Direction::ServerToApp).map_err(|err| {
                AppError::Datagram {
                    len: d.bytes.len(),
                    err,
                }
            })?;
        let n_fds = d.fds.len();
        let fd = match (msg, <[OwnedFd; 1]>::try_from(d.fds)) {
            (Message::SendFds, Ok([fd])) => fd,
            (msg, _) => {
                return Err(AppError::SendFds {
                    handle,
                    why: format!(
                        "the socket's next datagram is {} with {n_fds} fds, not SEND_FDS with one",
                        msg.msg_type()
                    ),
                });
            }
        };
        let seg = Segment::attach(fd)?;
        if self.segments.insert(handle, Rc::new(seg)).is_some() {
            return Err(AppError::SendFds {
                handle,
                why: "the handle names a segment mapped already".into(),
            });
        }
        Ok(())
    }

    /// ACCEPTED: queued on its listener until the app accepts. One for no listener of this app
    /// (closed meanwhile) is refused at once, so that the server settles the pair.
    fn accepted(&mut self, a: Accepted) -> Result<(), AppError> {
        self.stats.accepted += 1;
        let listener = self.listeners.values_mut().find(|l| {
            !l.closed
                && !l.orphan
                && l.bound
                    .is_some_and(|(h, rv)| rv == 0 && h == a.listener_handle)
        });
        match listener {
            Some(l) => l.queue.push_back(a),
            None => self.refuse(&a, REFUSED)?,
        }
        Ok(())
    }

    /// CONNECTED: kept for the `connect` that waits for it; one for a connect that gave up
    /// waiting is closed at once (DISCONNECT), so that the pair does not stay open.
    fn connected(&mut self, c: Connected) -> Result<(), AppError> {
        let Some(s) = self.sessions.get_mut(&c.context) else {
            return Ok(());
        };
        if s.state != SessionState::Connecting || s.connected.is_some() {
            return Ok(());
        }
        if !s.orphan {
            s.connected = Some(c);
            return Ok(());
        }
        if c.retval != 0 || (c.mq_index as usize) >= self.server_mqs.len() {
            self.sessions.remove(&c.context);
            return Ok(());
        }
        s.handle = c.handle;
        s.mq_index = c.mq_index;
        s.state = SessionState::Closing;
        self.by_handle.insert(c.handle, c.context);
        self.post_ctrl(
            c.mq_index,
            &CtrlMessage::Disconnect(sapi_wire::ctrl::SessionHandleMsg {
                client_index: self.reply.api_client_handle,
                context: 0,
                handle: c.handle,
            }),
        )
    }

    /// ACCEPTED_REPLY with the non-zero `retval` for `a`.
    pub fn refuse(&self, a: &Accepted, retval: i32) -> Result<(), AppError> {
        if (a.mq_index as usize) >= self.server_mqs.len() {
            // No mq to answer on; the server settles the pair when this app detaches.
            return Ok(());
        }
        self.post_ctrl(
            a.mq_index,
            &CtrlMessage::AcceptedReply(AcceptedReply {
                context: a.context,
                retval,
                handle: a.handle,
                app_session_index: 0,
            }),
        )
    }

    fn peer_closed(&mut self, handle: u64, to: SessionState) {
        let Some(s) = self
            .by_handle
            .get(&handle)
            .and_then(|i| self.sessions.get_mut(i))
        else {
            return;
        };
        // After this app closed it, the server sends no DISCONNECTED or RESET; one queued
        // before the close is moot (`docs/sessions.md` §11.5 rule 2).
        if matches!(s.state, SessionState::Ready | SessionState::PeerClosed) {
            s.state = to;
        }
    }

    fn cleaned_up(&mut self, handle: u64) {
        let Some(index) = self.by_handle.remove(&handle) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&index) else {
            return;
        };
        s.state = match s.state {
            SessionState::Closing => SessionState::Closed,
            _ => SessionState::CleanedUp,
        };
        // The fifos are the server's to free now.
        s.rx = None;
        s.tx = None;
        if s.orphan {
            self.sessions.remove(&index);
        }
    }

    fn detach(&mut self) -> Result<(), AppError> {
        if self.detached {
            return Ok(());
        }
        let posted = if self.gone {
            Ok(())
        } else {
            self.post_ctrl(
                self.ctrl_mq(),
                &CtrlMessage::AppDetach(AppDetach {
                    client_index: self.reply.api_client_handle,
                    context: 0,
                }),
            )
        };
        // Closing the socket is the detach the server cannot miss; APP_DETACH before it makes
        // it an orderly one, and the server takes the two as one (§9.7).
        self.socket = None;
        self.detached = true;
        self.sessions.clear();
        self.by_handle.clear();
        self.listeners.clear();
        self.segments.clear();
        posted
    }
}

/// Every server mq of the VPP mqs segment (`docs/shm.md` §3.6): `n_mqs` of equal size from
/// `start_byte_index`; the ctrl mq must be mq `vpp_ctrl_mq_thread` of them.
fn discover_mqs(mqs: &Segment, reply: &AttachReply) -> Result<Vec<u64>, AppError> {
    let h = mqs.fifo_segment_header()?;
    let bad = AppError::MqDiscovery {
        n_mqs: h.n_mqs,
        n_reserved_bytes: h.n_reserved_bytes,
        start_byte_index: h.start_byte_index,
        ctrl_offset: reply.vpp_ctrl_mq,
        ctrl_thread: reply.vpp_ctrl_mq_thread,
    };
    let n = u64::from(h.n_mqs);
    let total = u64::from(h.n_reserved_bytes).saturating_sub(h.start_byte_index);
    if n == 0 || total == 0 || !total.is_multiple_of(n) {
        return Err(bad);
    }
    let size = total / n;
    let offsets: Vec<u64> = (0..n).map(|i| h.start_byte_index + i * size).collect();
    if offsets.get(usize::from(reply.vpp_ctrl_mq_thread)) != Some(&reply.vpp_ctrl_mq) {
        return Err(bad);
    }
    Ok(offsets)
}
