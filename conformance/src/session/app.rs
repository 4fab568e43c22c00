//! One attached app as the session layer sees it (`docs/sessions.md` §2–§4): its socket, the VPP
//! mqs segment and every server mq in it, its first segment and app mq, the segments added to it
//! later, and the ends of its sessions.
//!
//! * [`App::attach`] attaches with local scope and an eventfd-mode app mq (VCL's flags, 0xc3),
//!   maps fd #1 (the VPP mqs segment) and finds every server mq (`docs/shm.md` §3.6), maps fd #2
//!   (its first segment) and consumes its app mq with fd #3.
//! * [`App::next`] takes the next message of the app mq in queue order, decoded; an
//!   ADD_SEGMENT with `fd_flags` set takes the SEND_FDS datagram from the socket and maps its
//!   memfd under the segment handle first (`docs/sessions.md` §3.6), noting whether the datagram
//!   was already queued when the message became visible; a DEL_SEGMENT forgets the segment.
//! * [`App::post`] and [`App::post_io`] produce into a server mq (the ctrl mq or a session's).
//! * [`End`]: one side of a cut-through session — its handle, mq, app session index and fifo
//!   ends — with the writer's and reader's rules of `docs/sessions.md` §8.2 and §8.4.
//!
//! Every message is kept in [`App::log`] with what broke a rule every message must keep
//! (`postponed` = 0, SEND_FDS before ADD_SEGMENT) in [`App::violations`], so that every
//! scenario can report them.
//!
//! Must never: wait without a bound, trust a handle or offset the target sent (a segment no
//! ADD_SEGMENT announced is an error naming it), or post into its own app mq.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SessionError;
use super::fifo::{FifoReader, FifoWriter, Signals, deq};
use super::mem::Shm;
use super::mq::{MqConsumer, MqError, MqProducer};
use super::msg::{self, Accepted, AddSegment, AppMsg, Connected, Ctrl, IoEvent, ty};
use crate::client::{Conn, Endpoint, Recv};
use crate::wire::{self, AttachReply, AttachRequest, app_flag, fd_flag, opt};

/// What an app asks for at ATTACH.
#[derive(Clone, Copy, Debug)]
pub struct AppOptions {
    pub rx_fifo_size: u64,
    pub tx_fifo_size: u64,
    pub segment_size: u64,
    pub evt_queue_size: u64,
    /// PCT_FIRST_ALLOC (0: not sent, as VCL does).
    pub pct_first_alloc: u64,
}

impl Default for AppOptions {
    /// VCL's queue length, 64 KiB fifos, a 16 MiB first segment.
    fn default() -> Self {
        AppOptions {
            rx_fifo_size: 64 << 10,
            tx_fifo_size: 64 << 10,
            segment_size: 16 << 20,
            evt_queue_size: 2048,
            pct_first_alloc: 0,
        }
    }
}

/// A mapped segment announced by ADD_SEGMENT.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub shm: Arc<Shm>,
    pub add: AddSegment,
    /// The SEND_FDS datagram was already queued on the socket when the ADD_SEGMENT was seen.
    pub send_fds_first: bool,
    /// The memfd's size.
    pub file_size: u64,
    /// Position in [`App::log`] of its ADD_SEGMENT.
    pub seq: usize,
}

/// One message taken from the app mq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the app's log (0 = the first message it got).
    pub seq: usize,
    /// The ring the element came from.
    pub ring: u32,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A control message: its type, `postponed`, the decoded body and the raw element.
    Ctrl {
        ty: u8,
        postponed: u8,
        msg: Ctrl,
        element: Vec<u8>,
    },
    Io(IoEvent),
}

impl Event {
    pub fn ctrl(&self) -> Option<&Ctrl> {
        match &self.kind {
            EventKind::Ctrl { msg, .. } => Some(msg),
            EventKind::Io(_) => None,
        }
    }
    pub fn io(&self) -> Option<IoEvent> {
        match self.kind {
            EventKind::Io(e) => Some(e),
            EventKind::Ctrl { .. } => None,
        }
    }
    /// The type byte.
    pub fn ty(&self) -> u8 {
        match &self.kind {
            EventKind::Ctrl { ty, .. } => *ty,
            EventKind::Io(e) => e.ty,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            EventKind::Ctrl { msg, .. } => write!(f, "#{} {msg:?}", self.seq),
            EventKind::Io(e) => write!(
                f,
                "#{} io {} {{session_index {}}} (ring {})",
                self.seq,
                ty::name(e.ty),
                e.session_index,
                self.ring
            ),
        }
    }
}

/// Lists events for evidence.
pub fn describe(events: &[Event]) -> String {
    if events.is_empty() {
        return "nothing".into();
    }
    events
        .iter()
        .map(Event::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// An attached app with a session-capable client.
#[derive(Debug)]
pub struct App {
    pub name: String,
    pub conn: Conn,
    pub reply: AttachReply,
    pub options: AppOptions,
    pub mqs: Arc<Shm>,
    /// Every server mq, by index (offsets from the mqs segment's fifo-segment header).
    pub server_mqs: Vec<MqProducer>,
    pub first: Arc<Shm>,
    pub mq: MqConsumer,
    pub segments: BTreeMap<u64, SegmentInfo>,
    pub log: Vec<Event>,
    pub violations: Vec<String>,
    pub timeout: Duration,
    fence_context: u32,
}

impl App {
    /// Connects to `ep` and attaches as `name` with local scope and an eventfd-mode app mq.
    pub fn attach(
        ep: &Endpoint,
        name: &str,
        options: AppOptions,
        timeout: Duration,
    ) -> Result<App, SessionError> {
        let conn = Conn::connect(ep, timeout)?;
        let mut req = AttachRequest::probe(name, true);
        req.options[opt::FLAGS] = app_flag::ACCEPT_REDIRECT
            | app_flag::ADD_SEGMENT
            | app_flag::USE_LOCAL_SCOPE
            | app_flag::EVT_MQ_USE_EVENTFD;
        req.options[opt::EVT_QUEUE_SIZE] = options.evt_queue_size;
        req.options[opt::SEGMENT_SIZE] = options.segment_size;
        req.options[opt::RX_FIFO_SIZE] = options.rx_fifo_size;
        req.options[opt::TX_FIFO_SIZE] = options.tx_fifo_size;
        req.options[opt::PCT_FIRST_ALLOC] = options.pct_first_alloc;
        let e = conn.attach(&req)?;
        let r = e.reply;
        if r.retval != 0 {
            return Err(SessionError::Attach { retval: r.retval });
        }
        let want = fd_flag::VPP_MQ_SEGMENT | fd_flag::MEMFD_SEGMENT | fd_flag::MQ_EVENTFD;
        if r.fd_flags & want != want || e.fds.len() < 3 {
            return Err(SessionError::Fds {
                fd_flags: r.fd_flags,
                received: crate::fds::describe(&e.infos),
            });
        }
        let mut fds = e.fds.into_iter();
        let (Some(mqs_fd), Some(seg_fd), Some(ev_fd)) = (fds.next(), fds.next(), fds.next()) else {
            return Err(SessionError::Fds {
                fd_flags: r.fd_flags,
                received: "fewer than 3 fds".into(),
            });
        };
        let mqs = Arc::new(Shm::open(&mqs_fd)?);
        let first = Arc::new(Shm::open(&seg_fd)?);
        let server_mqs = discover_mqs(&mqs, r.vpp_ctrl_mq, r.vpp_ctrl_mq_thread)?;
        let mq = MqConsumer::new(first.clone(), r.app_mq, ev_fd)?;
        Ok(App {
            name: name.to_string(),
            conn,
            reply: r,
            options,
            mqs,
            server_mqs,
            first,
            mq,
            segments: BTreeMap::new(),
            log: Vec::new(),
            violations: Vec::new(),
            timeout,
            fence_context: 0x5e55_0000,
        })
    }

    pub fn api_client_handle(&self) -> u32 {
        self.reply.api_client_handle
    }

    /// The ctrl mq's index (`vpp_ctrl_mq_thread`).
    pub fn ctrl_mq(&self) -> u32 {
        u32::from(self.reply.vpp_ctrl_mq_thread)
    }

    /// The offset of server mq `i`, when it exists.
    pub fn mq_offset(&self, i: u32) -> Option<u64> {
        self.server_mqs.get(i as usize).map(|p| p.layout.offset)
    }

    fn producer(&self, mq: u32) -> Result<&MqProducer, SessionError> {
        self.server_mqs
            .get(mq as usize)
            .ok_or(SessionError::NoSuchMq {
                index: mq,
                n: self.server_mqs.len(),
            })
    }

    fn send_element(&self, mq: u32, ring: usize, element: &[u8]) -> Result<(), SessionError> {
        let p = self.producer(mq)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match p.try_send(ring, element) {
                Ok(()) => return Ok(()),
                // A full server mq: the server has not consumed for a while. Retry, bounded.
                Err(MqError::Full { .. }) if Instant::now() < deadline => {
                    std::thread::park_timeout(Duration::from_micros(200));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Posts a control message (ring 1) of type `t` with `body` into server mq `mq`.
    pub fn post_raw(&self, mq: u32, t: u8, body: &[u8]) -> Result<(), SessionError> {
        let mut e = vec![t, 0];
        e.extend_from_slice(body);
        self.send_element(mq, 1, &e)
    }

    /// Posts `m` into server mq `mq`, ring 1.
    pub fn post<M: AppMsg>(&self, mq: u32, m: &M) -> Result<(), SessionError> {
        self.post_raw(mq, M::TYPE, &m.body())
    }

    /// Posts an io event (ring 0) into server mq `mq`.
    pub fn post_io(&self, mq: u32, t: u8, session_index: u32) -> Result<(), SessionError> {
        self.send_element(mq, 0, &IoEvent::encode(t, session_index))
    }

    /// Takes the next message of the app mq, waiting at most `within`.
    pub fn next(&mut self, within: Duration) -> Result<Option<Event>, SessionError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(el) = self.mq.try_recv()? {
                return self.take(el.ring, el.bytes).map(Some);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.mq.wait(left)? {
                return Ok(None);
            }
        }
    }

    fn take(&mut self, ring: u32, el: Vec<u8>) -> Result<Event, SessionError> {
        let seq = self.log.len();
        let t = el.first().copied().unwrap_or(0);
        let kind = if ring == 0 {
            EventKind::Io(IoEvent::parse(&el).map_err(|source| SessionError::Msg {
                app: self.name.clone(),
                source,
                element: wire::hex(&el),
            })?)
        } else {
            let postponed = el.get(1).copied().unwrap_or(0);
            let body = el.get(2..).unwrap_or(&[]);
            let msg = Ctrl::parse(t, body).map_err(|source| SessionError::Msg {
                app: self.name.clone(),
                source,
                element: wire::hex(&el[..el.len().min(160)]),
            })?;
            if postponed != 0 {
                self.violations.push(format!(
                    "{}: {} (#{seq}) has postponed = {postponed}, expected 0 (sessions §3.2 rule 3)",
                    self.name,
                    ty::name(t)
                ));
            }
            EventKind::Ctrl {
                ty: t,
                postponed,
                msg,
                element: el,
            }
        };
        let ev = Event { seq, ring, kind };
        if let Some(Ctrl::AddSegment(a)) = ev.ctrl() {
            self.add_segment(a.clone(), seq)?;
        }
        if let Some(Ctrl::DelSegment(d)) = ev.ctrl() {
            self.segments.remove(&d.segment_handle);
        }
        self.log.push(ev.clone());
        Ok(ev)
    }

    /// Takes the SEND_FDS that must precede an ADD_SEGMENT with `fd_flags` and maps its memfd.
    fn add_segment(&mut self, a: AddSegment, seq: usize) -> Result<(), SessionError> {
        if a.fd_flags & fd_flag::MEMFD_SEGMENT == 0 {
            return Err(SessionError::SendFds {
                app: self.name.clone(),
                handle: a.segment_handle,
                why: format!("fd_flags {:#04x} announces no memfd", a.fd_flags),
            });
        }
        let first = self.conn.readable_now()?;
        if !first {
            self.violations.push(format!(
                "{}: ADD_SEGMENT {:#x} was visible in the app mq before its SEND_FDS was queued on the socket (sessions §3.6)",
                self.name, a.segment_handle
            ));
        }
        let fd: OwnedFd = match self.conn.recv_within(self.timeout, 4)? {
            Recv::Msg(m) => {
                let t = m.bytes.first().copied();
                let mut fds = m.fds.into_iter();
                match (t, fds.next(), fds.next()) {
                    (Some(wire::msg_type::SEND_FDS), Some(fd), None) => fd,
                    (t, fd, extra) => {
                        return Err(SessionError::SendFds {
                            app: self.name.clone(),
                            handle: a.segment_handle,
                            why: format!(
                                "the socket's next datagram has type {t:?} and {} fd(s), expected SEND_FDS (5) with one memfd",
                                usize::from(fd.is_some()) + usize::from(extra.is_some())
                            ),
                        });
                    }
                }
            }
            Recv::Timeout => {
                return Err(SessionError::SendFds {
                    app: self.name.clone(),
                    handle: a.segment_handle,
                    why: format!(
                        "no SEND_FDS on the socket within {:?}, so its memfd cannot be mapped (sessions §3.6: the SEND_FDS must be on the socket before the ADD_SEGMENT is published)",
                        self.timeout
                    ),
                });
            }
            Recv::Eof => {
                return Err(SessionError::SendFds {
                    app: self.name.clone(),
                    handle: a.segment_handle,
                    why: "the server closed the socket instead of sending the SEND_FDS".into(),
                });
            }
        };
        let file_size = crate::fds::info_of(std::os::fd::AsFd::as_fd(&fd))?.size;
        let shm = Arc::new(Shm::open(&fd)?);
        if self.segments.contains_key(&a.segment_handle)
            || a.segment_handle == self.reply.segment_handle
        {
            self.violations.push(format!(
                "{}: ADD_SEGMENT handle {:#x} is already a segment of this worker (sessions §4.3)",
                self.name, a.segment_handle
            ));
        }
        self.segments.insert(
            a.segment_handle,
            SegmentInfo {
                shm,
                add: a.clone(),
                send_fds_first: first,
                file_size,
                seq,
            },
        );
        Ok(())
    }

    /// Waits for the first message for which `want` holds; returns it and the messages taken
    /// before it. Fails naming `what` and what came instead when none does within the bound.
    pub fn expect(
        &mut self,
        what: &str,
        want: impl Fn(&Event) -> bool,
    ) -> Result<(Event, Vec<Event>), SessionError> {
        let deadline = Instant::now() + self.timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left)? {
                Some(ev) if want(&ev) => return Ok((ev, before)),
                Some(ev) => before.push(ev),
                None => {
                    return Err(SessionError::Timeout {
                        app: self.name.clone(),
                        what: what.to_string(),
                        after: self.timeout,
                        instead: describe(&before),
                    });
                }
            }
        }
    }

    /// Waits for a control message of type `t`.
    pub fn expect_ctrl(&mut self, t: u8) -> Result<(Ctrl, Vec<Event>), SessionError> {
        let (ev, before) = self.expect(ty::name(t), |e| e.ring == 1 && e.ty() == t)?;
        Ok((ev.ctrl().cloned().unwrap_or(Ctrl::Other(t)), before))
    }

    /// A round trip through the ctrl mq that orders everything the server did for this app
    /// before it: UNLISTEN of a handle no listener has, answered by UNLISTEN_REPLY. Returns the
    /// messages that came before the reply. (With several server mqs, messages posted to
    /// another mq are not ordered by it.)
    pub fn fence(&mut self) -> Result<Vec<Event>, SessionError> {
        self.fence_context = self.fence_context.wrapping_add(1);
        let context = self.fence_context;
        let handle = FENCE_HANDLE;
        self.post(
            self.ctrl_mq(),
            &msg::Unlisten {
                client_index: self.api_client_handle(),
                context,
                wrk_index: 0,
                handle,
            },
        )?;
        let (_, before) = self.expect("UNLISTEN_REPLY to the fence", |e| {
            matches!(e.ctrl(), Some(Ctrl::UnlistenReply(r)) if r.context == context && r.handle == handle)
        })?;
        Ok(before)
    }

    /// A round trip through a session's own mq (`end.mq_index`): TRANSPORT_ATTR for the
    /// session, answered by TRANSPORT_ATTR_REPLY to this app (sessions §5.18). Every message
    /// posted into that mq before it has been handled by the time the reply comes, and what the
    /// server told this app meanwhile is in its mq before the reply. Returns those messages.
    pub fn fence_session(&mut self, end: &End) -> Result<Vec<Event>, SessionError> {
        let handle = end.handle;
        self.post(
            end.mq_index,
            &msg::TransportAttr {
                client_index: self.api_client_handle(),
                handle,
                attr_type: 0,
                is_get: 1,
            },
        )?;
        let (_, before) = self.expect(
            "TRANSPORT_ATTR_REPLY to the session fence",
            |e| matches!(e.ctrl(), Some(Ctrl::TransportAttrReply(r)) if r.handle == handle),
        )?;
        Ok(before)
    }

    /// The segment a handle names: the first segment, or one an ADD_SEGMENT announced.
    pub fn segment(&self, handle: u64, what: &'static str) -> Result<Arc<Shm>, SessionError> {
        if handle == self.reply.segment_handle {
            return Ok(self.first.clone());
        }
        self.segments
            .get(&handle)
            .map(|s| s.shm.clone())
            .ok_or(SessionError::UnknownSegment {
                app: self.name.clone(),
                handle,
                what,
            })
    }

    /// S's end of an accepted session: rx = A and tx = B, each with its own signals.
    pub fn server_end(&self, a: &Accepted, app_session_index: u32) -> Result<End, SessionError> {
        let ct = self.segment(a.segment_handle, "ACCEPTED.segment_handle")?;
        let rx = FifoReader::new(
            ct.clone(),
            a.server_rx_fifo,
            Signals::new(ct.clone(), a.server_rx_fifo)?,
        )?;
        let tx = FifoWriter::new(
            ct.clone(),
            a.server_tx_fifo,
            Signals::new(ct, a.server_tx_fifo)?,
        )?;
        Ok(End {
            handle: a.handle,
            mq_index: a.mq_index,
            app_session_index,
            rx,
            tx,
        })
    }

    /// C's end of a connected session: rx = B with the shadow RX's signals, tx = A with the
    /// shadow TX's (`docs/sessions.md` §5.10).
    pub fn client_end(&self, c: &Connected, context: u32) -> Result<End, SessionError> {
        let ct = self.segment(c.ct_segment_handle, "CONNECTED.ct_segment_handle")?;
        let shadows = self.segment(c.segment_handle, "CONNECTED.segment_handle")?;
        let rx = FifoReader::new(
            ct.clone(),
            c.ct_rx_fifo,
            Signals::new(shadows.clone(), c.server_rx_fifo)?,
        )?;
        let tx = FifoWriter::new(ct, c.ct_tx_fifo, Signals::new(shadows, c.server_tx_fifo)?)?;
        Ok(End {
            handle: c.handle,
            mq_index: c.mq_index,
            app_session_index: context,
            rx,
            tx,
        })
    }

    /// The messages of the log after position `from` that name session `handle`.
    pub fn about(&self, handle: u64, from: usize) -> Vec<Event> {
        self.log
            .iter()
            .skip(from)
            .filter(|e| e.ctrl().and_then(Ctrl::session_handle) == Some(handle))
            .cloned()
            .collect()
    }
}

/// A listener handle no server hands out, for the fence: thread 0 (which every server has, so
/// a server that indexes its threads by the handle stays in bounds) and a session index far
/// past any pool this suite fills.
pub const FENCE_HANDLE: u64 = 0x00ff_beef;

/// Every server mq of the mqs segment (`docs/shm.md` §3.6): `n_mqs` of equal size from
/// `start_byte_index`. The ctrl mq must be one of them, at index `vpp_ctrl_mq_thread`.
fn discover_mqs(
    mqs: &Arc<Shm>,
    ctrl_offset: u64,
    ctrl_thread: u8,
) -> Result<Vec<MqProducer>, SessionError> {
    let h = mqs.seg.fsh;
    let n = u64::from(h.n_mqs);
    let total = u64::from(h.n_reserved_bytes).saturating_sub(h.start_byte_index);
    if n == 0 || total == 0 || !total.is_multiple_of(n) {
        return Err(SessionError::MqDiscovery {
            why: format!(
                "n_mqs {n}, n_reserved_bytes {:#x}, start_byte_index {:#x}: not n equal mqs",
                h.n_reserved_bytes, h.start_byte_index
            ),
        });
    }
    let size = total / n;
    let offsets: Vec<u64> = (0..n).map(|i| h.start_byte_index + i * size).collect();
    if offsets.get(usize::from(ctrl_thread)) != Some(&ctrl_offset) {
        return Err(SessionError::MqDiscovery {
            why: format!("vpp_ctrl_mq {ctrl_offset:#x} is not mq {ctrl_thread} of {offsets:#x?}"),
        });
    }
    offsets
        .into_iter()
        .map(|o| MqProducer::new(mqs.clone(), o).map_err(SessionError::from))
        .collect()
}

/// One side of a cut-through session.
#[derive(Debug)]
pub struct End {
    pub handle: u64,
    pub mq_index: u32,
    /// This side's app session index: what the server must put in the io events it sends here.
    pub app_session_index: u32,
    pub rx: FifoReader,
    pub tx: FifoWriter,
}

impl End {
    /// This side's VPP session index: what it names in the io events it posts.
    pub fn vpp_index(&self) -> u32 {
        self.handle as u32
    }

    /// The writer's rule (`docs/sessions.md` §8.2): enqueue what fits, then swap `has_event`
    /// to 1 and post TX to the session's mq if it was 0. Returns the bytes written and whether
    /// a TX was posted.
    pub fn send(&mut self, app: &App, data: &[u8]) -> Result<(usize, bool), SessionError> {
        let n = self.tx.write(data)?;
        if n == 0 {
            return Ok((0, false));
        }
        let posted = self.tx.signals.set_event()? == 0;
        if posted {
            app.post_io(self.mq_index, ty::TX, self.vpp_index())?;
        }
        Ok((n, posted))
    }

    /// Enqueues without any event (for scenarios that post their own).
    pub fn write_only(&mut self, data: &[u8]) -> Result<usize, SessionError> {
        Ok(self.tx.write(data)?)
    }

    /// The reader's rule (`docs/sessions.md` §8.4): dequeue, then post a dequeue notification
    /// (RX with this side's VPP index) when the reader's signals ask for one. Returns the bytes
    /// read and whether a notification was posted.
    pub fn recv(&mut self, app: &App, out: &mut [u8]) -> Result<(usize, bool), SessionError> {
        let was_full = self.rx.len()? >= self.rx.size();
        let n = self.rx.read(out)?;
        if n == 0 {
            return Ok((0, false));
        }
        let s = &self.rx.signals;
        let want = s.want_deq_ntf()?;
        let len = self.rx.len()?;
        let free = self.rx.size().saturating_sub(len);
        let ntf = s.has_deq_ntf()? != 0;
        let yes = (want & deq::WANT_DEQ_NOTIF != 0 && free >= s.deq_thresh()?)
            || (want & deq::WANT_DEQ_NOTIF_IF_FULL != 0
                && was_full
                && len < self.rx.size()
                && !ntf)
            || (want & deq::WANT_DEQ_NOTIF_IF_EMPTY != 0 && len == 0 && !ntf);
        if !yes {
            return Ok((n, false));
        }
        s.unwant_deq(deq::WANT_DEQ_NOTIF)?;
        if want & (deq::WANT_DEQ_NOTIF_IF_FULL | deq::WANT_DEQ_NOTIF_IF_EMPTY) != 0 {
            s.set_has_deq_ntf(1)?;
        }
        app.post_io(self.mq_index, ty::RX, self.vpp_index())?;
        Ok((n, true))
    }

    /// Reads everything queued now; clears `has_event` after draining and reads again if data
    /// came meanwhile (`docs/sessions.md` §8.4 rule 2).
    pub fn drain(&mut self, app: &App) -> Result<Vec<u8>, SessionError> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            loop {
                let (n, _) = self.recv(app, &mut buf)?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            self.rx.signals.clear_event()?;
            if self.rx.is_empty()? {
                return Ok(out);
            }
        }
    }
}
