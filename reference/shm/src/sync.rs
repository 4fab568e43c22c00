//! The one switch between real and model-checked synchronisation.
//!
//! Owns: the choice of atomics, locks and data cells — `std` normally, `loom` under
//! `--cfg loom` — and the [`Atomic`] glue that lets one algorithm drive either kind of atomic.
//! Nothing else in the crate names `loom` or tests `cfg(loom)`; every other module imports its
//! synchronisation from here.
//!
//! Must never: be used for atomics that live inside an mmap'd segment. Those are shared with
//! another process, which no model checker can see, and are always `std` atomics placed on the
//! mapped bytes (see [`super::memory`]). What `loom` checks is the same algorithm run over
//! [`super::memory::HeapMemory`], whose atomics come from this module.

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(loom)]
pub use loom::sync::{Condvar, Mutex, MutexGuard};

/// Gives up the processor inside a spin loop (a scheduling point under `loom`).
pub fn spin_yield() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// A byte of plain (non-atomic) data whose accesses `loom` checks for data races.
///
/// Under `std` this is a bare `UnsafeCell<u8>`; under `loom` every read and write is recorded,
/// so a reader not ordered after the writer by some acquire/release pair is reported.
#[derive(Debug)]
pub struct DataCell(
    #[cfg(not(loom))] std::cell::UnsafeCell<u8>,
    #[cfg(loom)] loom::cell::UnsafeCell<u8>,
);

impl DataCell {
    /// A cell holding `v`.
    pub fn new(v: u8) -> Self {
        #[cfg(not(loom))]
        return Self(std::cell::UnsafeCell::new(v));
        #[cfg(loom)]
        return Self(loom::cell::UnsafeCell::new(v));
    }

    /// Reads the byte.
    ///
    /// # Safety
    /// No write to this cell may run concurrently (loom checks this; `std` trusts it).
    pub unsafe fn read(&self) -> u8 {
        #[cfg(not(loom))]
        // SAFETY: the caller excludes concurrent writes.
        return unsafe { *self.0.get() };
        #[cfg(loom)]
        // SAFETY: the caller excludes concurrent writes; loom verifies it.
        return self.0.with(|p| unsafe { *p });
    }

    /// Writes the byte.
    ///
    /// # Safety
    /// No other access to this cell may run concurrently.
    pub unsafe fn write(&self, v: u8) {
        #[cfg(not(loom))]
        // SAFETY: the caller excludes concurrent accesses.
        unsafe {
            *self.0.get() = v
        };
        #[cfg(loom)]
        // SAFETY: the caller excludes concurrent accesses; loom verifies it.
        self.0.with_mut(|p| unsafe { *p = v });
    }
}

/// The operations an algorithm needs from an atomic word, whichever implementation backs it.
///
/// Implemented for `std`'s `AtomicU32`/`AtomicU64` (which is also what the mapped segments
/// use) and, under `loom`, for loom's.
pub trait Atomic<T: Copy> {
    /// `load`.
    fn load(&self, o: Ordering) -> T;
    /// `store`.
    fn store(&self, v: T, o: Ordering);
    /// `swap`.
    fn swap(&self, v: T, o: Ordering) -> T;
    /// `fetch_add` (wrapping).
    fn fetch_add(&self, v: T, o: Ordering) -> T;
    /// `fetch_sub` (wrapping).
    fn fetch_sub(&self, v: T, o: Ordering) -> T;
    /// `fetch_or`.
    fn fetch_or(&self, v: T, o: Ordering) -> T;
    /// `fetch_and`.
    fn fetch_and(&self, v: T, o: Ordering) -> T;
    /// `compare_exchange_weak`.
    fn compare_exchange_weak(&self, cur: T, new: T, s: Ordering, f: Ordering) -> Result<T, T>;
}

macro_rules! impl_atomic {
    ($atomic:ty, $int:ty) => {
        impl Atomic<$int> for $atomic {
            #[inline]
            fn load(&self, o: Ordering) -> $int {
                <$atomic>::load(self, o)
            }
            #[inline]
            fn store(&self, v: $int, o: Ordering) {
                <$atomic>::store(self, v, o)
            }
            #[inline]
            fn swap(&self, v: $int, o: Ordering) -> $int {
                <$atomic>::swap(self, v, o)
            }
            #[inline]
            fn fetch_add(&self, v: $int, o: Ordering) -> $int {
                <$atomic>::fetch_add(self, v, o)
            }
            #[inline]
            fn fetch_sub(&self, v: $int, o: Ordering) -> $int {
                <$atomic>::fetch_sub(self, v, o)
            }
            #[inline]
            fn fetch_or(&self, v: $int, o: Ordering) -> $int {
                <$atomic>::fetch_or(self, v, o)
            }
            #[inline]
            fn fetch_and(&self, v: $int, o: Ordering) -> $int {
                <$atomic>::fetch_and(self, v, o)
            }
            #[inline]
            fn compare_exchange_weak(
                &self,
                cur: $int,
                new: $int,
                s: Ordering,
                f: Ordering,
            ) -> Result<$int, $int> {
                <$atomic>::compare_exchange_weak(self, cur, new, s, f)
            }
        }
    };
}

impl_atomic!(std::sync::atomic::AtomicU32, u32);
impl_atomic!(std::sync::atomic::AtomicU64, u64);
#[cfg(loom)]
impl_atomic!(loom::sync::atomic::AtomicU32, u32);
#[cfg(loom)]
impl_atomic!(loom::sync::atomic::AtomicU64, u64);
