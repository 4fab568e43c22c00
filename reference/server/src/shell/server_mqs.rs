//! The server mqs apps post into (`docs/sessions.md` §3.1, §3.3): one per server thread, in the
//! VPP mqs segment, in mutex/condvar mode (apps attach them without an eventfd).
//!
//! Owns one waiter thread per mq and the consuming side. A waiter sleeps on the mq's shared condvar
//! (an app broadcasts it when the queue goes from empty to non-empty), then wakes the epoll loop
//! through an eventfd and waits until the loop releases it: an idle server with any number of apps
//! uses no CPU, and the first message is picked up as soon as its producer's broadcast lands. While
//! messages keep coming the loop polls the mqs itself and does not tell the waiters it has drained
//! them, which keeps them off the condvars (a waiter looks at its mq again once per `ACK_BOUND`,
//! and sleeps on the condvar only if it finds the mq empty then), so a busy app's broadcasts wake
//! nobody and cost it no system call (VPP's main loop polls too). The epoll loop is the only
//! consumer.
//!
//! A waiter is a latency device, not what service depends on: an app can hold an mq's mutex
//! forever, and a waiter woken from the condvar must take that mutex back before it can move
//! (no bound exists for that), so the loop also reads every mq's length itself (lock-free) on
//! each pass and at least every [`BACKSTOP`]. A hostage waiter costs that mq up to
//! [`BACKSTOP`] of latency, never its service.
//!
//! Must never: let an app block the epoll loop (it never waits for an mq's mutex), or hand the
//! core anything but a decoded message of the types and directions the codec accepts.

use std::cell::Cell;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use sapi_core::WarnBudget;
use sapi_shm::mq::{MqConsumer, MqError, PthreadGuard, PthreadSignal, Signal};
use sapi_shm::segment::Segment;
use sapi_wire::ctrl::{CTRL_ELEMENT_SIZE, CtrlMessage, IoEvent};
use sapi_wire::{Direction, Profile};
use tracing::warn;

/// How long a waiter sleeps before it looks at its stop flag again.
const WAIT_SLICE: Duration = Duration::from_millis(200);
/// How long a waiter waits for the loop to drain before it looks again.
const ACK_BOUND: Duration = Duration::from_secs(1);
/// How long a stop waits for the waiters to return. A free waiter returns within a
/// [`WAIT_SLICE`] of the stop; one still out after this is held by an app that keeps the mq's
/// mutex (its condvar wait cannot end without it), and is left behind rather than waited for.
const STOP_BOUND: Duration = Duration::from_secs(1);
/// The longest the loop sleeps without looking at the mqs itself: bounds what a waiter held
/// hostage by an app's mutex costs (ten lock-free looks a second cost an idle server nothing).
pub const BACKSTOP: Duration = Duration::from_millis(100);

/// What an app posted, decoded.
#[derive(Debug)]
pub enum Posted {
    /// A control message (ring 1).
    Ctrl(CtrlMessage),
    /// An io event (ring 0).
    Io(IoEvent),
    /// An element the codec refused, with why.
    Malformed(String),
}

/// One server mq's waiter and its two eventfds.
struct Waiter {
    /// Readable when the mq has messages: in the epoll loop's set.
    wake: OwnedFd,
    /// Written by the loop once it has drained the mq.
    drained: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

/// The consuming side of every server mq.
pub struct ServerMqs {
    profile: Profile,
    /// The loop's own mapping of the mqs segment (shared with the resources' one by fd).
    segment: Segment,
    offsets: Vec<u64>,
    waiters: Vec<Waiter>,
    stop: Arc<AtomicBool>,
    /// Per mq: any app can break a server mq it posts into, and every drain would say so.
    warnings: Vec<WarnBudget>,
    /// Per mq: a broadcast to producers waiting for room that the loop could not make yet.
    owed: Vec<bool>,
    /// Every waiter holds a clone of this sender until it returns: the channel disconnects
    /// when the last one has, which is how a stop waits for them with a bound.
    returned: (Option<mpsc::Sender<()>>, mpsc::Receiver<()>),
}

/// The loop's side of a server mq's signal: it never waits for the mutex. Any app can hold a
/// server mq's mutex for as long as it likes (or die holding it); the loop serves everyone else
/// regardless. A broadcast it cannot make when it frees room is owed, and made on a later pass.
struct LoopSignal<'s, 'o> {
    sig: PthreadSignal<'s>,
    owed: &'o Cell<bool>,
}

impl Signal for LoopSignal<'_, '_> {
    type Guard<'g>
        = PthreadGuard
    where
        Self: 'g;
    fn lock(&self, _block: bool) -> Result<Option<PthreadGuard>, MqError> {
        self.sig.lock(false)
    }
    fn notify_from_producer(&self, guard: &mut PthreadGuard) -> Result<(), MqError> {
        self.sig.notify_from_producer(guard)
    }
    fn wait_in_producer(
        &self,
        _guard: &mut PthreadGuard,
        ready: &mut dyn FnMut() -> bool,
        _deadline: Option<std::time::Instant>,
    ) -> Result<bool, MqError> {
        Ok(ready())
    }
    fn notify_from_consumer(&self) -> Result<(), MqError> {
        if !self.sig.try_broadcast()? {
            self.owed.set(true);
        }
        Ok(())
    }
    fn wait_in_consumer(
        &self,
        ready: &mut dyn FnMut() -> bool,
        _deadline: Option<std::time::Instant>,
    ) -> Result<bool, MqError> {
        Ok(ready())
    }
}

fn eventfd() -> std::io::Result<OwnedFd> {
    EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map(OwnedFd::from)
        .map_err(std::io::Error::from)
}

impl ServerMqs {
    /// Starts a waiter per mq of the mqs segment behind `fd`, at `offsets`.
    pub fn start(fd: &OwnedFd, offsets: Vec<u64>, profile: Profile) -> std::io::Result<ServerMqs> {
        let map = |fd: &OwnedFd| {
            Segment::attach(fd.try_clone()?).map_err(|e| std::io::Error::other(e.to_string()))
        };
        let (returned_tx, returned_rx) = mpsc::channel();
        // Built before the waiters, so that a failure half-way stops those already started.
        let mut mqs = ServerMqs {
            profile,
            segment: map(fd)?,
            warnings: vec![WarnBudget::default(); offsets.len()],
            owed: vec![false; offsets.len()],
            offsets: Vec::new(),
            waiters: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            returned: (Some(returned_tx), returned_rx),
        };
        for (thread, &offset) in offsets.iter().enumerate() {
            let wake = eventfd()?;
            let drained = Arc::new(eventfd()?);
            let seg = map(fd)?;
            let (wake_w, drained_r, stop_r) = (
                wake.try_clone()?,
                Arc::clone(&drained),
                Arc::clone(&mqs.stop),
            );
            let returned = mqs.returned.0.clone();
            let handle = std::thread::Builder::new()
                .name(format!("sapi-mq-{thread}"))
                .spawn(move || {
                    wait_loop(seg, offset, wake_w, drained_r, stop_r);
                    drop(returned);
                })?;
            mqs.waiters.push(Waiter {
                wake,
                drained,
                thread: Some(handle),
            });
        }
        mqs.offsets = offsets;
        Ok(mqs)
    }

    /// The eventfd of thread `t`'s waiter, for the epoll set.
    pub fn wake_fd(&self, t: usize) -> Option<&OwnedFd> {
        self.waiters.get(t).map(|w| &w.wake)
    }

    /// Number of server mqs.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Whether mq `t` holds messages: its length, read without the mutex.
    pub fn has_queued(&self, t: usize) -> bool {
        let Some(&offset) = self.offsets.get(t) else {
            return false;
        };
        PthreadSignal::new(&self.segment, offset)
            .and_then(|sig| MqConsumer::attach(&self.segment, offset, sig))
            .and_then(|c| c.len())
            .is_ok_and(|n| n > 0)
    }

    /// Takes what is queued in mq `t` (up to `max`), in queue order.
    pub fn drain(&mut self, t: usize, max: usize) -> Vec<Posted> {
        let mut out = Vec::new();
        if let Some(w) = self.waiters.get(t) {
            let mut counter = [0u8; 8];
            let _ = nix::unistd::read(w.wake.as_fd(), &mut counter);
        }
        let Some(&offset) = self.offsets.get(t) else {
            return out;
        };
        let owed = Cell::new(self.owed.get(t).copied().unwrap_or(false));
        let consumer = PthreadSignal::new(&self.segment, offset).and_then(|sig| {
            // A broadcast owed from an earlier pass, paid if the mutex is free now.
            if owed.get() && sig.try_broadcast()? {
                owed.set(false);
            }
            MqConsumer::attach(&self.segment, offset, LoopSignal { sig, owed: &owed })
        });
        let mut consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                if let Some(suppressed) = self.warnings.get_mut(t).and_then(WarnBudget::admit) {
                    warn!(thread = t, error = %e, suppressed, "server mq unusable");
                }
                return out;
            }
        };
        let mut buf = [0u8; CTRL_ELEMENT_SIZE];
        while out.len() < max {
            match consumer.try_recv(&mut buf) {
                Ok(d) => {
                    let element = &buf[..d.len.min(buf.len())];
                    out.push(if d.ring == 0 {
                        IoEvent::decode(element, self.profile, Direction::AppToServer)
                            .map_or_else(|e| Posted::Malformed(e.to_string()), Posted::Io)
                    } else {
                        CtrlMessage::decode(element, self.profile, Direction::AppToServer)
                            .map_or_else(|e| Posted::Malformed(e.to_string()), Posted::Ctrl)
                    });
                }
                Err(MqError::Empty) => break,
                Err(e) => {
                    if let Some(suppressed) = self.warnings.get_mut(t).and_then(WarnBudget::admit) {
                        warn!(thread = t, error = %e, suppressed, "server mq corrupt: dropping what is left");
                    }
                    break;
                }
            }
        }
        if let Some(o) = self.owed.get_mut(t) {
            *o = owed.get();
        }
        out
    }

    /// Makes the broadcasts owed to producers on mqs whose mutex is free now.
    pub fn pay_owed_broadcasts(&mut self) {
        for (t, owed) in self.owed.iter_mut().enumerate() {
            if *owed
                && let Some(&offset) = self.offsets.get(t)
                && let Ok(sig) = PthreadSignal::new(&self.segment, offset)
            {
                *owed = !sig.try_broadcast().unwrap_or(true);
            }
        }
    }

    /// Whether a broadcast to producers is owed on some mq (the loop then looks again soon).
    pub fn owes_broadcast(&self) -> bool {
        self.owed.iter().any(|o| *o)
    }

    /// The loop stops polling: every waiter goes back to sleeping on its condvar.
    pub fn release_waiters(&self) {
        for w in &self.waiters {
            let _ = nix::unistd::write(w.drained.as_fd(), &1u64.to_ne_bytes());
        }
    }
}

impl Drop for ServerMqs {
    /// Stops the waiters, and waits up to `STOP_BOUND` for them to return: an app holding a
    /// server mq's mutex must not be able to keep the server from stopping. A waiter it holds
    /// is left behind with its mapping and eventfds, which it releases when the mutex comes
    /// free (or the process ends).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in &self.waiters {
            let _ = nix::unistd::write(w.drained.as_fd(), &1u64.to_ne_bytes());
        }
        drop(self.returned.0.take());
        let deadline = Instant::now() + STOP_BOUND;
        let all_returned = loop {
            match self
                .returned
                .1
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Err(RecvTimeoutError::Disconnected) => break true,
                Err(RecvTimeoutError::Timeout) => break false,
                Ok(()) => {}
            }
        };
        for (t, w) in self.waiters.iter_mut().enumerate() {
            match w.thread.take() {
                Some(h) if all_returned || h.is_finished() => {
                    let _ = h.join();
                }
                Some(_) => warn!(
                    thread = t,
                    bound = ?STOP_BOUND,
                    "a server mq's waiter did not return (an app holds the mq's mutex): left behind"
                ),
                None => {}
            }
        }
    }
}

/// A waiter: sleep until the mq has something, wake the loop, wait until it drained.
fn wait_loop(
    seg: Segment,
    offset: u64,
    wake: OwnedFd,
    drained: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
) {
    let consumer =
        PthreadSignal::new(&seg, offset).and_then(|sig| MqConsumer::attach(&seg, offset, sig));
    let consumer = match consumer {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "server mq waiter cannot attach its mq");
            return;
        }
    };
    while !stop.load(Ordering::SeqCst) {
        match consumer.wait(Some(WAIT_SLICE)) {
            Ok(()) => {}
            Err(MqError::Timeout) => continue,
            Err(e) => {
                warn!(error = %e, "server mq wait failed");
                // Do not spin on a broken mq: wait a slice on the stop/drained fd instead.
                let _ = poll_in(drained.as_fd(), WAIT_SLICE);
                continue;
            }
        }
        let _ = nix::unistd::write(wake.as_fd(), &1u64.to_ne_bytes());
        // Until the loop says the mq is empty (or a bound passes, then look again).
        if poll_in(drained.as_fd(), ACK_BOUND) {
            let mut counter = [0u8; 8];
            let _ = nix::unistd::read(drained.as_fd(), &mut counter);
        }
    }
}

/// Waits up to `timeout` for `fd` to be readable.
fn poll_in(fd: std::os::fd::BorrowedFd<'_>, timeout: Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
}
