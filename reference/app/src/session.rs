//! Listeners and sessions of an [`App`]: LISTEN / BOUND / UNLISTEN (`docs/sessions.md` §5.2–§5.5,
//! §6), ACCEPTED / ACCEPTED_REPLY and CONNECT / CONNECTED (§5.6–§5.10, §7), the data path with
//! the io-event protocol (§8) and the close (§9).
//!
//! Owns: the app's rules for moving bytes through a cut-through pair — the writer's (§8.2:
//! enqueue, then TX only when `has_event` was clear; on a full fifo ask for a dequeue
//! notification and make sure a TX carries the wish to the server) and the reader's (§8.4:
//! dequeue, then a dequeue notification when the writer asked; on an empty fifo clear `has_event`
//! and look again) — and which signal block each side uses (§2: C's are its shadow headers, S's
//! the ct fifos' own), the close each state calls for (DISCONNECT, DISCONNECTED_REPLY,
//! RESET_REPLY, TERMINATE) and the wait for CLEANUP.
//!
//! Must never: wait without a bound for an answer the server owes; sleep as a way to wait (every
//! wait is for the app mq's eventfd, after arming the event that ends it); read or write a fifo
//! whose header failed its checks; or touch a session the server has cleaned up (its fifos are
//! the server's again).

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sapi_shm::fifo::{FifoConsumer, FifoError, FifoProducer};
use sapi_shm::layout::fifo as lf;
use sapi_shm::memory::Memory;
use sapi_wire::ctrl::{
    Accepted, AcceptedReply, Connect, Connected, CtrlMessage, IoEvent, IoEventType, Ip46, Listen,
    SessionHandleMsg, SessionHandleReply, Unlisten,
};

use crate::app::{App, FifoEnd, Inner, Lstn, REFUSED, Sess, Shared};
use crate::error::AppError;
use crate::signals::SignalBlock;

/// `SESSION_E_INVALID`: the ACCEPTED_REPLY retval of an accept this app cannot attach (§5.7).
const INVALID: i32 = -19;

/// The transport of a listener or a session. Cut-through only carries TCP-like byte streams for
/// this crate (connected UDP needs the datagram framing of `docs/sessions.md` §8.7, which is not
/// implemented here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP (`proto` 0).
    Tcp,
}

impl Proto {
    fn number(self) -> u8 {
        match self {
            Proto::Tcp => 0,
        }
    }
}

/// Where a session stands, as this app knows it (`docs/sessions.md` §9.9 in this crate's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// CONNECT posted, no CONNECTED yet.
    Connecting,
    /// Established: reads and writes work.
    Ready,
    /// DISCONNECTED came: reads return what is left, then end of stream; writes fail.
    PeerClosed,
    /// RESET came: reads and writes fail.
    PeerReset,
    /// This app closed it and waits for CLEANUP.
    Closing,
    /// CLEANUP type 1 after this app's close: gone.
    Closed,
    /// CLEANUP type 1 before this app closed it: the server freed it.
    CleanedUp,
}

/// A listener: made by [`App::listen`], answered by BOUND, closed by [`Listener::close`] (or,
/// without waiting for the reply, by dropping it).
#[derive(Debug)]
pub struct Listener {
    app: Shared,
    index: u32,
    handle: u64,
    addr: SocketAddr,
    closed: bool,
}

/// One side of an established cut-through session: made by [`Listener::accept`] or
/// [`App::connect`], ended by [`Session::close`] (or [`Session::abort`]; dropping it closes it
/// without waiting for CLEANUP).
#[derive(Debug)]
pub struct Session {
    app: Shared,
    index: u32,
    handle: u64,
    ct_segment: u64,
    closed: bool,
}

fn endpoint(addr: SocketAddr) -> (Ip46, bool, u16) {
    (
        Ip46::from_ip(addr.ip()),
        matches!(addr.ip(), IpAddr::V4(_)),
        addr.port(),
    )
}

fn deadline_of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

impl App {
    /// LISTEN on `addr` (a loopback or zero address) and wait for BOUND, at most the reply
    /// timeout. A refusal is [`AppError::ListenRefused`] with the retval (−17: another app
    /// listens there).
    pub fn listen(&self, addr: SocketAddr, proto: Proto) -> Result<Listener, AppError> {
        let mut inner = self.inner.borrow_mut();
        inner.check_attached()?;
        let index = inner.next_index();
        let (ip, is_ip4, port) = endpoint(addr);
        inner.listeners.insert(
            index,
            Lstn {
                bound: None,
                queue: Default::default(),
                closed: false,
                orphan: false,
            },
        );
        let msg = CtrlMessage::Listen(Listen {
            client_index: inner.reply.api_client_handle,
            context: index,
            wrk_index: 0,
            vrf: 0,
            port,
            proto: proto.number(),
            is_ip4,
            ip,
            flags: 0,
            ext_config: 0,
            dscp: 0,
        });
        if let Err(e) = inner.post_ctrl(inner.ctrl_mq(), &msg) {
            inner.listeners.remove(&index);
            return Err(e);
        }
        let after = inner.opts.reply_timeout;
        let waited = inner.wait_until("BOUND", after, deadline_of(Some(after)), |i| {
            i.listeners.get(&index).is_none_or(|l| l.bound.is_some())
        });
        if let Err(e) = waited {
            // BOUND may still come: the listener is forgotten then (and closed if bound).
            if let Some(l) = inner.listeners.get_mut(&index) {
                l.orphan = true;
            }
            return Err(e);
        }
        match inner.listeners.get(&index).and_then(|l| l.bound) {
            Some((handle, 0)) => Ok(Listener {
                app: self.inner.clone(),
                index,
                handle,
                addr,
                closed: false,
            }),
            Some((_, retval)) => {
                inner.listeners.remove(&index);
                Err(AppError::ListenRefused {
                    ip: addr.ip(),
                    port,
                    retval,
                })
            }
            None => Err(AppError::ListenerClosed { handle: 0 }),
        }
    }

    /// CONNECT to `addr` and wait for CONNECTED, at most the reply timeout (it comes once the
    /// listening app has accepted). A refusal is [`AppError::ConnectRefused`] with the retval
    /// (−6: nobody listens there; −2: the listening app refused).
    pub fn connect(&self, addr: SocketAddr, proto: Proto) -> Result<Session, AppError> {
        let timeout = self.inner.borrow().opts.reply_timeout;
        self.connect_timeout(addr, proto, timeout)
    }

    /// [`App::connect`] with a bound of its own on the wait for CONNECTED.
    pub fn connect_timeout(
        &self,
        addr: SocketAddr,
        proto: Proto,
        timeout: Duration,
    ) -> Result<Session, AppError> {
        let mut inner = self.inner.borrow_mut();
        inner.check_attached()?;
        let index = inner.next_index();
        let (ip, is_ip4, port) = endpoint(addr);
        inner.sessions.insert(
            index,
            Sess {
                handle: 0,
                mq_index: 0,
                state: SessionState::Connecting,
                rx: None,
                tx: None,
                orphan: false,
                peer: Some((addr.ip(), port)),
                connected: None,
            },
        );
        let msg = CtrlMessage::Connect(Connect {
            client_index: inner.reply.api_client_handle,
            context: index,
            wrk_index: 0,
            vrf: 0,
            port,
            lcl_port: 0,
            proto: proto.number(),
            is_ip4,
            ip,
            lcl_ip: Ip46::ZERO,
            parent_handle: u64::MAX,
            ckpair_index: 0,
            crypto_engine: 0,
            flags: 1,
            dscp: 0,
            ext_config: 0,
        });
        if let Err(e) = inner.post_ctrl(inner.ctrl_mq(), &msg) {
            inner.sessions.remove(&index);
            return Err(e);
        }
        let waited = inner.wait_until("CONNECTED", timeout, deadline_of(Some(timeout)), |i| {
            i.sessions.get(&index).is_none_or(|s| s.connected.is_some())
        });
        if let Err(e) = waited {
            // CONNECTED may still come: the session is closed then.
            if let Some(s) = inner.sessions.get_mut(&index) {
                s.orphan = true;
            }
            return Err(e);
        }
        let c = inner
            .sessions
            .get_mut(&index)
            .and_then(|s| s.connected.take())
            .ok_or(AppError::NotConnected { handle: 0 })?;
        let (handle, ct_segment) = (c.handle, c.ct_segment_handle);
        inner.establish_client(index, c)?;
        Ok(Session {
            app: self.inner.clone(),
            index,
            handle,
            ct_segment,
            closed: false,
        })
    }
}

impl Listener {
    /// BOUND's handle (what ACCEPTED.listener_handle names).
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// ACCEPTEDs waiting for [`Listener::accept`] (after handling what the app mq holds).
    pub fn pending(&self) -> Result<usize, AppError> {
        let mut inner = self.app.borrow_mut();
        inner.drain()?;
        Ok(inner
            .listeners
            .get(&self.index)
            .map_or(0, |l| l.queue.len()))
    }

    /// Accepts the oldest connection waiting, or `Ok(None)` when none is (never waits).
    pub fn try_accept(&self) -> Result<Option<Session>, AppError> {
        let mut inner = self.app.borrow_mut();
        inner.drain()?;
        self.take(&mut inner)
    }

    /// Accepts a connection, waiting up to `timeout` (for ever if `None`) for one:
    /// ACCEPTED_REPLY with this app's index of the session (§7.5 step 6).
    pub fn accept(&self, timeout: Option<Duration>) -> Result<Session, AppError> {
        let mut inner = self.app.borrow_mut();
        let index = self.index;
        inner.wait_until(
            "ACCEPTED",
            timeout.unwrap_or(Duration::MAX),
            deadline_of(timeout),
            |i| {
                i.listeners
                    .get(&index)
                    .is_none_or(|l| l.closed || !l.queue.is_empty())
            },
        )?;
        self.take(&mut inner)?.ok_or(AppError::ListenerClosed {
            handle: self.handle,
        })
    }

    fn take(&self, inner: &mut Inner) -> Result<Option<Session>, AppError> {
        inner.check_attached()?;
        let Some(l) = inner.listeners.get_mut(&self.index) else {
            return Err(AppError::ListenerClosed {
                handle: self.handle,
            });
        };
        let Some(a) = l.queue.pop_front() else {
            if l.closed {
                return Err(AppError::ListenerClosed {
                    handle: self.handle,
                });
            }
            return Ok(None);
        };
        let (handle, ct_segment) = (a.handle, a.segment_handle);
        let index = inner.establish_server(a)?;
        Ok(Some(Session {
            app: self.app.clone(),
            index,
            handle,
            ct_segment,
            closed: false,
        }))
    }

    /// UNLISTEN, and wait (at most the reply timeout) for UNLISTEN_REPLY. Connections still
    /// waiting to be accepted are refused first (ACCEPTED_REPLY −2). Sessions accepted from it
    /// go on (§9.8).
    pub fn close(mut self) -> Result<(), AppError> {
        self.closed = true;
        let mut inner = self.app.borrow_mut();
        if inner.detached {
            return Ok(());
        }
        inner.unlisten(self.index, self.handle)?;
        let index = self.index;
        let after = inner.opts.reply_timeout;
        let waited = inner.wait_until("UNLISTEN_REPLY", after, deadline_of(Some(after)), |i| {
            i.listeners.get(&index).is_none_or(|l| l.closed)
        });
        match waited {
            Ok(()) => {
                inner.listeners.remove(&index);
                Ok(())
            }
            Err(e) => {
                if let Some(l) = inner.listeners.get_mut(&index) {
                    l.orphan = true;
                }
                Err(e)
            }
        }
    }
}

impl Drop for Listener {
    /// UNLISTEN without waiting: UNLISTEN_REPLY makes the app forget it.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let Ok(mut inner) = self.app.try_borrow_mut() else {
            return;
        };
        if inner.detached {
            return;
        }
        let _ = inner.unlisten(self.index, self.handle);
        if let Some(l) = inner.listeners.get_mut(&self.index) {
            l.orphan = true;
        }
    }
}

/// What a data call needs of a session, copied out so that the app can be borrowed again.
struct Ends {
    handle: u64,
    mq_index: u32,
    state: SessionState,
    rx: Option<(Rc<sapi_shm::Segment>, u64, Rc<sapi_shm::Segment>, u64)>,
    tx: Option<(Rc<sapi_shm::Segment>, u64, Rc<sapi_shm::Segment>, u64)>,
}

fn parts(e: &FifoEnd) -> (Rc<sapi_shm::Segment>, u64, Rc<sapi_shm::Segment>, u64) {
    (e.data.clone(), e.fifo, e.signals.clone(), e.header)
}

impl Inner {
    fn ends(&self, index: u32, handle: u64) -> Result<Ends, AppError> {
        self.check_attached()?;
        let s = self
            .sessions
            .get(&index)
            .ok_or(AppError::NotConnected { handle })?;
        Ok(Ends {
            handle: s.handle,
            mq_index: s.mq_index,
            state: s.state,
            rx: s.rx.as_ref().map(parts),
            tx: s.tx.as_ref().map(parts),
        })
    }

    fn state_of(&self, index: u32) -> Option<SessionState> {
        self.sessions.get(&index).map(|s| s.state)
    }

    /// UNLISTEN for listener `index`, after refusing what waits on it.
    fn unlisten(&mut self, index: u32, handle: u64) -> Result<(), AppError> {
        let waiting: Vec<Accepted> = self
            .listeners
            .get_mut(&index)
            .map(|l| l.queue.drain(..).collect())
            .unwrap_or_default();
        for a in &waiting {
            self.refuse(a, REFUSED)?;
        }
        if self.listeners.get(&index).is_none_or(|l| l.closed) {
            return Ok(());
        }
        self.post_ctrl(
            self.ctrl_mq(),
            &CtrlMessage::Unlisten(Unlisten {
                client_index: self.reply.api_client_handle,
                context: index,
                wrk_index: 0,
                handle,
            }),
        )
    }

    /// The checks every fifo end of ACCEPTED or CONNECTED must pass before this app touches it:
    /// the header is a fifo inside the segment, and the signal block is inside its segment.
    fn check_end(&self, handle: u64, end: &FifoEnd, reader: bool) -> Result<(), AppError> {
        let bad = |offset: u64| {
            move |err: FifoError| AppError::BadFifo {
                handle,
                offset,
                err,
            }
        };
        if reader {
            FifoConsumer::attach(&*end.data, end.fifo).map_err(bad(end.fifo))?;
        } else {
            FifoProducer::attach(&*end.data, end.fifo).map_err(bad(end.fifo))?;
        }
        for field in [
            lf::HAS_EVENT,
            lf::WANT_DEQ_NTF,
            lf::HAS_DEQ_NTF,
            lf::DEQ_THRESH,
        ] {
            end.signals
                .atomic_u32(end.header + field)
                .map_err(|e| bad(end.header)(e.into()))?;
        }
        Ok(())
    }

    /// S's side of an ACCEPTED (§5.7): A is read and B written, each with its own header's
    /// signals; the session's mq must exist and the ct segment be mapped (its ADD_SEGMENT came
    /// first). A session this app cannot attach is refused with −19 (as VCL does).
    fn establish_server(&mut self, a: Accepted) -> Result<u32, AppError> {
        let set_up = (|| {
            self.check_mq("ACCEPTED.mq_index", a.mq_index)?;
            let ct = self.segment("ACCEPTED.segment_handle", a.segment_handle)?;
            let rx = FifoEnd {
                data: ct.clone(),
                fifo: a.server_rx_fifo,
                signals: ct.clone(),
                header: a.server_rx_fifo,
            };
            let tx = FifoEnd {
                data: ct.clone(),
                fifo: a.server_tx_fifo,
                signals: ct,
                header: a.server_tx_fifo,
            };
            self.check_end(a.handle, &rx, true)?;
            self.check_end(a.handle, &tx, false)?;
            Ok((rx, tx))
        })();
        let (rx, tx) = match set_up {
            Ok(x) => x,
            Err(e) => {
                self.refuse(&a, INVALID)?;
                return Err(e);
            }
        };
        let index = self.next_index();
        self.post_ctrl(
            a.mq_index,
            &CtrlMessage::AcceptedReply(AcceptedReply {
                context: a.context,
                retval: 0,
                handle: a.handle,
                app_session_index: index,
            }),
        )?;
        self.sessions.insert(
            index,
            Sess {
                handle: a.handle,
                mq_index: a.mq_index,
                state: SessionState::Ready,
                rx: Some(rx),
                tx: Some(tx),
                orphan: false,
                peer: None,
                connected: None,
            },
        );
        self.by_handle.insert(a.handle, index);
        Ok(index)
    }

    /// C's side of a CONNECTED (§5.10): B is read with the shadow RX's signals, A written with
    /// the shadow TX's. A failure is [`AppError::ConnectRefused`]; fifos this app cannot attach
    /// are given back with DISCONNECT (as VCL does).
    pub(crate) fn establish_client(&mut self, index: u32, c: Connected) -> Result<(), AppError> {
        let Some(s) = self.sessions.get(&index) else {
            return Err(AppError::NotConnected { handle: c.handle });
        };
        let (ip, port) = s.peer.unwrap_or((IpAddr::from([0, 0, 0, 0]), 0));
        if c.retval != 0 {
            self.sessions.remove(&index);
            return Err(AppError::ConnectRefused {
                ip,
                port,
                retval: c.retval,
            });
        }
        let set_up = (|| {
            self.check_mq("CONNECTED.mq_index", c.mq_index)?;
            let ct = self.segment("CONNECTED.ct_segment_handle", c.ct_segment_handle)?;
            let shadows = self.segment("CONNECTED.segment_handle", c.segment_handle)?;
            let rx = FifoEnd {
                data: ct.clone(),
                fifo: c.ct_rx_fifo,
                signals: shadows.clone(),
                header: c.server_rx_fifo,
            };
            let tx = FifoEnd {
                data: ct,
                fifo: c.ct_tx_fifo,
                signals: shadows,
                header: c.server_tx_fifo,
            };
            self.check_end(c.handle, &rx, true)?;
            self.check_end(c.handle, &tx, false)?;
            Ok((rx, tx))
        })();
        let (rx, tx) = match set_up {
            Ok(x) => x,
            Err(e) => {
                self.sessions.remove(&index);
                if (c.mq_index as usize) < self.n_mqs() {
                    self.post_ctrl(c.mq_index, &self.disconnect(c.handle))?;
                }
                return Err(e);
            }
        };
        if let Some(s) = self.sessions.get_mut(&index) {
            s.handle = c.handle;
            s.mq_index = c.mq_index;
            s.rx = Some(rx);
            s.tx = Some(tx);
            s.state = SessionState::Ready;
        }
        self.by_handle.insert(c.handle, index);
        Ok(())
    }

    fn disconnect(&self, handle: u64) -> CtrlMessage {
        CtrlMessage::Disconnect(SessionHandleMsg {
            client_index: self.reply.api_client_handle,
            context: 0,
            handle,
        })
    }

    /// The close message this session's state calls for (§9.2, §9.4), posted to its mq; the
    /// session then waits for CLEANUP. `None` when there is nothing to close.
    pub(crate) fn start_close(&mut self, index: u32, abort: bool) -> Result<bool, AppError> {
        let Some(s) = self.sessions.get(&index) else {
            return Ok(false);
        };
        let (handle, mq) = (s.handle, s.mq_index);
        let msg = match s.state {
            SessionState::Ready | SessionState::PeerClosed if abort => {
                CtrlMessage::Terminate(SessionHandleMsg {
                    client_index: self.reply.api_client_handle,
                    context: 0,
                    handle,
                })
            }
            SessionState::Ready => self.disconnect(handle),
            SessionState::PeerClosed => CtrlMessage::DisconnectedReply(SessionHandleReply {
                context: self.reply.api_client_handle,
                retval: 0,
                handle,
            }),
            SessionState::PeerReset => CtrlMessage::ResetReply(SessionHandleReply {
                context: self.reply.api_client_handle,
                retval: 0,
                handle,
            }),
            SessionState::Connecting
            | SessionState::Closing
            | SessionState::Closed
            | SessionState::CleanedUp => return Ok(false),
        };
        if let Some(s) = self.sessions.get_mut(&index) {
            s.state = SessionState::Closing;
        }
        self.post_ctrl(mq, &msg)?;
        Ok(true)
    }

    /// The reader's rule (§8.4) once: dequeue what is there into `buf`; after a dequeue, post the
    /// dequeue notification the writer asked for. 0 when the fifo is empty.
    fn dequeue(&mut self, e: &Ends, buf: &mut [u8]) -> Result<usize, AppError> {
        let Some((data, fifo, signals, header)) = &e.rx else {
            return Err(AppError::NotConnected { handle: e.handle });
        };
        let bad = |err: FifoError| AppError::BadFifo {
            handle: e.handle,
            offset: *fifo,
            err,
        };
        // At a distance: every read that finds the fifo empty releases the kept chunks below,
        // which is the contract.
        let mut c = FifoConsumer::attach(&**data, *fifo)
            .map_err(bad)?
            .recycle_at_a_distance();
        let n = match c.dequeue(buf) {
            Ok(n) => n,
            // Caught up: the caller waits or returns, so the fifo goes back to holding what
            // VPP's does (while reading, the reader keeps finished chunks a distance behind).
            Err(FifoError::Empty) => {
                c.release_consumed().map_err(bad)?;
                return Ok(0);
            }
            Err(err) => return Err(bad(err)),
        };
        let ready = c.len().map_err(bad)?;
        let sig = SignalBlock::new(signals, *header);
        if sig.take_deq_ntf(n as u32, ready, c.size())? {
            self.post_io(
                e.mq_index,
                IoEvent {
                    io_type: IoEventType::Rx,
                    session_index: e.handle as u32,
                },
            )?;
        }
        Ok(n)
    }

    /// [`Session::try_read`].
    fn try_read(&mut self, index: u32, handle: u64, buf: &mut [u8]) -> Result<usize, AppError> {
        let e = self.ends(index, handle)?;
        match e.state {
            SessionState::Ready | SessionState::PeerClosed => {}
            SessionState::PeerReset => return Err(AppError::PeerReset { handle }),
            _ => return Err(AppError::NotConnected { handle }),
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.dequeue(&e, buf)?;
        if n > 0 {
            return Ok(n);
        }
        // Empty: clear `has_event` and look again (§8.4 step 2). Data that came before the swap
        // is seen now; data that comes after it finds the flag clear, and the server posts RX.
        if let Some((_, _, signals, header)) = &e.rx {
            SignalBlock::new(signals, *header).clear_has_event()?;
        }
        let n = self.dequeue(&e, buf)?;
        if n > 0 {
            return Ok(n);
        }
        // Still empty: has the peer gone? What it wrote before its close is in the fifo before
        // the close is in the app mq, so one more look after learning the state decides.
        self.drain()?;
        match self.state_of(index) {
            Some(SessionState::Ready) => Err(AppError::WouldBlock),
            Some(SessionState::PeerClosed) => self.dequeue(&e, buf),
            Some(SessionState::PeerReset) => Err(AppError::PeerReset { handle }),
            _ => Err(AppError::NotConnected { handle }),
        }
    }

    /// The writer's rule (§8.2) once: enqueue what fits; TX only if `has_event` was clear.
    /// `Ok(None)` when the fifo is full (or the segment out of chunks).
    fn enqueue(&mut self, e: &Ends, data: &[u8]) -> Result<Option<usize>, AppError> {
        let Some((seg, fifo, signals, header)) = &e.tx else {
            return Err(AppError::NotConnected { handle: e.handle });
        };
        let bad = |err: FifoError| AppError::BadFifo {
            handle: e.handle,
            offset: *fifo,
            err,
        };
        let mut p = FifoProducer::attach(&**seg, *fifo).map_err(bad)?;
        let n = match p.enqueue(data) {
            Ok(n) => n,
            Err(FifoError::Full | FifoError::NoMemory) => return Ok(None),
            Err(err) => return Err(bad(err)),
        };
        if SignalBlock::new(signals, *header).set_has_event()? {
            self.post_tx(e)?;
        }
        Ok(Some(n))
    }

    fn post_tx(&mut self, e: &Ends) -> Result<(), AppError> {
        self.post_io(
            e.mq_index,
            IoEvent {
                io_type: IoEventType::Tx,
                session_index: e.handle as u32,
            },
        )
    }

    /// [`Session::try_write`].
    fn try_write(&mut self, index: u32, handle: u64, data: &[u8]) -> Result<usize, AppError> {
        let e = self.ends(index, handle)?;
        match e.state {
            SessionState::Ready => {}
            SessionState::PeerClosed => return Err(AppError::PeerClosed { handle }),
            SessionState::PeerReset => return Err(AppError::PeerReset { handle }),
            _ => return Err(AppError::NotConnected { handle }),
        }
        if data.is_empty() {
            return Ok(0);
        }
        if let Some(n) = self.enqueue(&e, data)? {
            return Ok(n);
        }
        // Full: ask for a dequeue notification, then look again (the fence in `want_deq_ntf`
        // pairs with the reader's: it sees the wish or this sees its dequeue).
        if let Some((_, _, signals, header)) = &e.tx {
            let sig = SignalBlock::new(signals, *header);
            sig.want_deq_ntf()?;
            if let Some(n) = self.enqueue(&e, data)? {
                return Ok(n);
            }
            // The server passes the wish on to the reader only when it relays a TX (§8.3 step
            // 4): make sure one is on its way. If `has_event` is set, a TX is pending and the
            // server reads the wish after clearing the flag; else post one now.
            if sig.set_has_event()? {
                self.post_tx(&e)?;
            }
        }
        self.drain()?;
        match self.state_of(index) {
            Some(SessionState::Ready) => Err(AppError::WouldBlock),
            Some(SessionState::PeerClosed) => Err(AppError::PeerClosed { handle }),
            Some(SessionState::PeerReset) => Err(AppError::PeerReset { handle }),
            _ => Err(AppError::NotConnected { handle }),
        }
    }

    /// Runs `f` until it does not say [`AppError::WouldBlock`], waiting for the app mq in
    /// between, until `deadline`.
    fn block<T>(
        &mut self,
        what: &'static str,
        timeout: Option<Duration>,
        mut f: impl FnMut(&mut Inner) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let deadline = deadline_of(timeout);
        let timed_out = || AppError::Timeout {
            what,
            after: timeout.unwrap_or(Duration::MAX),
        };
        loop {
            let handled = self.unseen;
            match f(self) {
                Err(AppError::WouldBlock) => {}
                other => return other,
            }
            if self.unseen != handled {
                // The step's own drain (after its last look at the fifo) took messages out
                // of the app mq, and one of them may be the very RX or TX this waits for:
                // the server sent it because the step had re-armed `has_event` or
                // `want_deq_ntf`, and sends no second one while that flag stays claimed.
                // Waiting for the mq now would wait for ever; look at the fifo again.
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(timed_out());
                }
                continue;
            }
            if !self.wait(deadline)? {
                return Err(timed_out());
            }
            self.drain()?;
        }
    }
}

impl Session {
    /// The session handle (ACCEPTED.handle or CONNECTED.handle).
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// The handle of the ct segment that holds the session's fifos, as this app knows it (the
    /// client form for a connected session, §4.3). Its DEL_SEGMENT comes once both sides of
    /// every pair in it are cleaned up (§9.6); [`App::is_mapped`] says whether it did.
    pub fn ct_segment(&self) -> u64 {
        self.ct_segment
    }

    /// This app's index of the session (what the server puts in the io events it sends here).
    pub fn app_session_index(&self) -> u32 {
        self.index
    }

    /// Where the session stands (after handling what the app mq holds).
    pub fn state(&self) -> Result<SessionState, AppError> {
        let mut inner = self.app.borrow_mut();
        inner.drain()?;
        Ok(inner.state_of(self.index).unwrap_or(SessionState::Closed))
    }

    /// Reads what the rx fifo holds, up to `buf.len()` bytes, without waiting. `Ok(0)` is the
    /// end of the stream (the peer closed and everything it wrote was read);
    /// [`AppError::WouldBlock`] means nothing is there yet, and that an RX will wake
    /// [`App::poll`] when something comes.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, AppError> {
        self.app.borrow_mut().try_read(self.index, self.handle, buf)
    }

    /// Reads at least one byte, waiting up to `timeout` (for ever if `None`); `Ok(0)` at the end
    /// of the stream.
    pub fn read(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, AppError> {
        let (index, handle) = (self.index, self.handle);
        self.app
            .borrow_mut()
            .block("data in the rx fifo", timeout, |i| {
                i.try_read(index, handle, buf)
            })
    }

    /// Fills `buf`, waiting up to `timeout` in all; [`AppError::UnexpectedEof`] if the stream
    /// ends first.
    pub fn read_exact(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<(), AppError> {
        let deadline = deadline_of(timeout);
        let mut at = 0;
        while at < buf.len() {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let n = self.read(buf.get_mut(at..).unwrap_or_default(), left)?;
            if n == 0 {
                return Err(AppError::UnexpectedEof {
                    handle: self.handle,
                    missing: buf.len() - at,
                });
            }
            at += n;
        }
        Ok(())
    }

    /// Writes what fits in the tx fifo, without waiting; [`AppError::WouldBlock`] when it is
    /// full, and then a TX will wake [`App::poll`] once the reader has made room.
    pub fn try_write(&mut self, data: &[u8]) -> Result<usize, AppError> {
        self.app
            .borrow_mut()
            .try_write(self.index, self.handle, data)
    }

    /// Writes at least one byte, waiting up to `timeout` (for ever if `None`) for room.
    pub fn write(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<usize, AppError> {
        let (index, handle) = (self.index, self.handle);
        self.app
            .borrow_mut()
            .block("room in the tx fifo", timeout, |i| {
                i.try_write(index, handle, data)
            })
    }

    /// Writes all of `data`, waiting up to `timeout` in all.
    pub fn write_all(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<(), AppError> {
        let deadline = deadline_of(timeout);
        let mut at = 0;
        while at < data.len() {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            at += self.write(data.get(at..).unwrap_or_default(), left)?;
        }
        Ok(())
    }

    /// Closes the session and waits (at most the reply timeout) for its CLEANUP: DISCONNECT
    /// when it is established (the peer gets DISCONNECTED, or RESET if this side left data
    /// unread), DISCONNECTED_REPLY after the peer closed, RESET_REPLY after it reset (§9.2,
    /// §9.4).
    pub fn close(self) -> Result<(), AppError> {
        self.finish(false)
    }

    /// Resets the session (TERMINATE: the peer gets RESET, §9.3) and waits for its CLEANUP.
    pub fn abort(self) -> Result<(), AppError> {
        self.finish(true)
    }

    fn finish(mut self, abort: bool) -> Result<(), AppError> {
        self.closed = true;
        let mut inner = self.app.borrow_mut();
        if inner.detached {
            return Ok(());
        }
        inner.drain()?;
        let index = self.index;
        if inner.start_close(index, abort)? {
            let after = inner.opts.reply_timeout;
            let waited = inner.wait_until("CLEANUP", after, deadline_of(Some(after)), |i| {
                i.state_of(index) != Some(SessionState::Closing)
            });
            if let Err(e) = waited {
                if let Some(s) = inner.sessions.get_mut(&index) {
                    s.orphan = true;
                }
                return Err(e);
            }
        }
        inner.sessions.remove(&index);
        Ok(())
    }
}

impl Drop for Session {
    /// Closes without waiting for CLEANUP (which makes the app forget the session).
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let Ok(mut inner) = self.app.try_borrow_mut() else {
            return;
        };
        if inner.detached {
            return;
        }
        let _ = inner.start_close(self.index, false);
        match inner.sessions.get_mut(&self.index) {
            Some(s) if s.state == SessionState::Closing => s.orphan = true,
            _ => {
                inner.sessions.remove(&self.index);
            }
        }
    }
}
