//! In-process stand-ins for the two signalling modes, built from [`crate::sync`] primitives:
//! how the `loom` models see an eventfd ([`ModelEventFd`]) and the shared mutex/condvar
//! ([`ModelCondvar`]). They are never used over shared memory (loom atomics cannot live in a
//! mapping).

use std::time::Instant;

use crate::sync;

use super::queue::MqError;
use super::signal::Signal;

/// An in-process eventfd as [`EventFdSignal`](super::EventFdSignal) uses it: every post raises a pending edge for
/// each side (the producer's and the consumer's epoll instances); a wait sleeps until its own
/// side's edge and clears only that one. Built from [`crate::sync`] (so `loom` explores it).
/// Deadlines are ignored: a wait that can never be satisfied is a deadlock the model checker
/// reports.
#[derive(Debug, Default)]
pub struct ModelEventFd {
    /// Pending edges: `[producer side, consumer side]`.
    edges: sync::Mutex<[bool; 2]>,
    cv: sync::Condvar,
}

impl ModelEventFd {
    const PRODUCER: usize = 0;
    const CONSUMER: usize = 1;

    /// No edge pending.
    pub fn new() -> Self {
        Self {
            edges: sync::Mutex::new([false; 2]),
            cv: sync::Condvar::new(),
        }
    }
    fn post(&self) {
        let mut e = self.edges.lock().unwrap_or_else(|e| e.into_inner());
        *e = [true; 2];
        self.cv.notify_all();
    }
    fn wait(&self, side: usize, ready: &mut dyn FnMut() -> bool) {
        loop {
            if ready() {
                return;
            }
            let mut e = self.edges.lock().unwrap_or_else(|e| e.into_inner());
            while !e[side] {
                e = self.cv.wait(e).unwrap_or_else(|e| e.into_inner());
            }
            e[side] = false;
        }
    }
}

impl Signal for ModelEventFd {
    type Guard<'g>
        = ()
    where
        Self: 'g;
    fn lock(&self, _block: bool) -> Result<Option<()>, MqError> {
        Ok(Some(()))
    }
    fn notify_from_producer(&self, _g: &mut ()) -> Result<(), MqError> {
        self.post();
        Ok(())
    }
    fn wait_in_producer(
        &self,
        _g: &mut (),
        ready: &mut dyn FnMut() -> bool,
        _deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        self.wait(Self::PRODUCER, ready);
        Ok(true)
    }
    fn notify_from_consumer(&self) -> Result<(), MqError> {
        self.post();
        Ok(())
    }
    fn wait_in_consumer(
        &self,
        ready: &mut dyn FnMut() -> bool,
        _deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        self.wait(Self::CONSUMER, ready);
        Ok(true)
    }
}

/// An in-process mutex + condvar pair from [`crate::sync`], standing in for the shared
/// pthread objects. Deadlines are ignored (see [`ModelEventFd`]).
#[derive(Debug, Default)]
pub struct ModelCondvar {
    mutex: sync::Mutex<()>,
    cv: sync::Condvar,
}

impl ModelCondvar {
    /// A fresh pair.
    pub fn new() -> Self {
        Self {
            mutex: sync::Mutex::new(()),
            cv: sync::Condvar::new(),
        }
    }
}

impl Signal for ModelCondvar {
    type Guard<'g>
        = Option<sync::MutexGuard<'g, ()>>
    where
        Self: 'g;
    fn lock(&self, _block: bool) -> Result<Option<Self::Guard<'_>>, MqError> {
        Ok(Some(Some(
            self.mutex.lock().unwrap_or_else(|e| e.into_inner()),
        )))
    }
    fn notify_from_producer<'g>(&'g self, _g: &mut Self::Guard<'g>) -> Result<(), MqError> {
        self.cv.notify_all();
        Ok(())
    }
    fn wait_in_producer<'g>(
        &'g self,
        g: &mut Self::Guard<'g>,
        ready: &mut dyn FnMut() -> bool,
        _deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        while !ready() {
            if let Some(held) = g.take() {
                *g = Some(self.cv.wait(held).unwrap_or_else(|e| e.into_inner()));
            }
        }
        Ok(true)
    }
    fn notify_from_consumer(&self) -> Result<(), MqError> {
        let _g = self.mutex.lock().unwrap_or_else(|e| e.into_inner());
        self.cv.notify_all();
        Ok(())
    }
    fn wait_in_consumer(
        &self,
        ready: &mut dyn FnMut() -> bool,
        _deadline: Option<Instant>,
    ) -> Result<bool, MqError> {
        let mut g = self.mutex.lock().unwrap_or_else(|e| e.into_inner());
        while !ready() {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        Ok(true)
    }
}
