//! What an application maps after attaching: memfd segments, the message queue and the byte
//! fifo, byte-compatible with VPP HEAD (`docs/shm.md`).
//!
//! Platform assumptions for every layout here: x86_64 Linux, glibc, LP64, little-endian,
//! 64-byte cache lines (`CLIB_CACHE_LINE_BYTES` = 64), glibc `pthread_mutex_t` = 40 bytes and
//! `pthread_cond_t` = 48 bytes. aarch64 VPP builds with 128-byte cache lines are not covered.
//!
//! Rooms:
//! * [`sync`] — the only place that knows about `loom`.
//! * [`memory`] — byte-addressed storage ([`memory::Memory`]): a real mapping or a heap model.
//! * [`layout`] — `#[repr(C)]` mirrors of VPP's structs and the offsets derived from them.
//! * [`error`] — [`SegmentError`], what can go wrong with a segment.
//! * [`segment`] — memfd segments: create, attach, own fd + mapping.
//! * [`alloc`] — the fifo-segment header: bump allocator and chunk free lists.
//! * [`copy`] — the bulk copy into and out of segments, fast at any address alignment.
//! * [`mq`] — the message queue (handles + rings), both signalling modes.
//! * [`fifo`] — the SPSC byte fifo with chunk growth.
//!
//! The mq, fifo and allocator algorithms are generic over [`memory::Memory`], so the exact
//! code run over mapped segments is the code the `sapi-loom` models check over heap memory.
//!
//! Must never: know what a message or a byte means (`sapi-wire` is only a dev-dependency: an mq
//! moves opaque elements, a fifo opaque bytes), or trust anything found in a segment: a peer can
//! write it, so each offset, index and length read there is checked before it is used (a typed
//! error, never a fault).

pub mod alloc;
pub mod copy;
pub mod error;
pub mod fifo;
pub mod layout;
pub mod memory;
pub mod mq;
pub mod relay;
pub mod segment;
pub mod sync;

pub use error::SegmentError;
pub use segment::{BlankSegment, Segment, SegmentLayout};
