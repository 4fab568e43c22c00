//! The wake-up round trip between two threads that sleep when idle, and its anchor: a message
//! through one mq and the answer through another, each consumer blocked in `recv`, beside a
//! raw eventfd ping-pong (blocking `read`, `write`) between the same two threads. The caller's
//! thread is pinned to CPU 0, the echo thread to CPU 1, for subject and anchor alike.
//!
//! Shared by the criterion bench (`benches/wakeup.rs`) and `paired wakeup`, which runs the
//! three back to back in alternating rounds.
//!
//! Must never: let the echo thread of one member outlive its run (every run ends by sending
//! it the stop message), or time anything but the round trips.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use sapi_shm::mq::{self, EventFdSignal, MqConsumer, MqProducer, MqSpec, PthreadSignal};
use sapi_shm::segment::Segment;

use crate::sys;

const STOP: u8 = 0xff;

/// A segment with two app event queues (ping and pong) and an eventfd for each.
#[derive(Debug)]
pub struct WakeupRig {
    seg: Segment,
    ping: u64,
    pong: u64,
    ping_fd: OwnedFd,
    pong_fd: OwnedFd,
}

impl WakeupRig {
    /// Panics if the segment or its queues cannot be made: a bench has nothing to measure then.
    pub fn new() -> Self {
        let seg = crate::app_segment("bench-wakeup", 1 << 20);
        let ping = mq::create(&seg, &MqSpec::app_event_queue(0)).expect("mq");
        let pong = mq::create(&seg, &MqSpec::app_event_queue(0)).expect("mq");
        Self {
            seg,
            ping,
            pong,
            ping_fd: sys::eventfd(true),
            pong_fd: sys::eventfd(true),
        }
    }

    /// `iters` round trips through two eventfd-mode mqs.
    pub fn mq_eventfd(&self, iters: u64) -> Duration {
        self.mq_rtt(
            |off| {
                let fd = if off == self.ping {
                    &self.ping_fd
                } else {
                    &self.pong_fd
                };
                EventFdSignal::new(fd.as_fd())
            },
            iters,
        )
    }

    /// `iters` round trips through two mutex-mode mqs.
    pub fn mq_mutex(&self, iters: u64) -> Duration {
        self.mq_rtt(
            |off| PthreadSignal::new(&self.seg, off).expect("mutex"),
            iters,
        )
    }

    /// The anchor: `iters` round trips of a raw eventfd ping-pong.
    pub fn raw_eventfd(&self, iters: u64) -> Duration {
        let (a, b) = (sys::eventfd(false), sys::eventfd(false));
        std::thread::scope(|s| {
            s.spawn(|| {
                sys::pin_to(1);
                loop {
                    if sys::eventfd_take(a.as_fd()) == 2 {
                        return;
                    }
                    sys::eventfd_post(b.as_fd(), 1);
                }
            });
            sys::pin_to(0);
            let start = Instant::now();
            for _ in 0..iters {
                sys::eventfd_post(a.as_fd(), 1);
                sys::eventfd_take(b.as_fd());
            }
            let t = start.elapsed();
            sys::unpin();
            sys::eventfd_post(a.as_fd(), 2);
            t
        })
    }

    /// The echo thread answers every 18-byte event with one.
    fn mq_rtt<S: mq::Signal + Send>(&self, sig: impl Fn(u64) -> S, iters: u64) -> Duration {
        let (seg, ping, pong) = (&self.seg, self.ping, self.pong);
        let mut tx1 = MqProducer::attach(seg, ping, sig(ping)).expect("tx1");
        let mut rx1 = MqConsumer::attach(seg, ping, sig(ping)).expect("rx1");
        let mut tx2 = MqProducer::attach(seg, pong, sig(pong)).expect("tx2");
        let mut rx2 = MqConsumer::attach(seg, pong, sig(pong)).expect("rx2");
        std::thread::scope(|s| {
            s.spawn(move || {
                sys::pin_to(1);
                let mut buf = [0u8; 256];
                loop {
                    rx1.recv(&mut buf, None).expect("ping");
                    if buf[0] == STOP {
                        return;
                    }
                    tx2.send(&buf[..18], None).expect("pong");
                }
            });
            let mut msg = [1u8; 18];
            let mut buf = [0u8; 256];
            sys::pin_to(0);
            let start = Instant::now();
            for _ in 0..iters {
                tx1.send(&msg, None).expect("ping");
                rx2.recv(&mut buf, None).expect("pong");
            }
            let t = start.elapsed();
            sys::unpin();
            msg[0] = STOP;
            tx1.send(&msg, None).expect("stop");
            t
        })
    }
}

impl Default for WakeupRig {
    fn default() -> Self {
        Self::new()
    }
}
