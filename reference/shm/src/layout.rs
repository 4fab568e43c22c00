//! The C structures VPP places in shared memory, mirrored as `#[repr(C)]` Rust structs.
//!
//! Owns: every size and offset of `docs/shm.md` §2–§6, derived with
//! `offset_of!`/`size_of` from the mirrors below, so the byte positions the algorithms use
//! and the declarations that document them cannot drift apart (the `shm_layout` tests pin
//! each one to the number printed in the spec).
//!
//! Platform: x86_64 Linux, glibc, LP64 (`uword` = pointer = 8 bytes), little-endian,
//! `CLIB_CACHE_LINE_BYTES` = 64, glibc `pthread_mutex_t` = 40 bytes and `pthread_cond_t` =
//! 48 bytes. On any other platform (aarch64 VPP with 128-byte cache lines, musl) these
//! layouts are wrong and the crate refuses to build the mirrors.
//!
//! Must never: be used to dereference peer memory. The mirrors exist for their layout; the
//! algorithms read and write through [`super::memory::Memory`] at the derived offsets.

#![allow(missing_docs)] // field names are VPP's, documented in the spec tables

use std::mem::{offset_of, size_of};

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
compile_error!("the VPP shared-memory layouts are specified for x86_64 Linux with glibc only");

/// `ssvm_shared_header_t` (§2), 120 bytes at offset 0 of every memfd segment.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SsvmSharedHeader {
    pub lock: u32,
    pub owner_pid: u32,
    pub recursion_count: u32,
    pub tag: u32,
    pub heap: u64,
    pub ssvm_va: u64,
    pub ssvm_size: u64,
    pub server_pid: u32,
    pub client_pid: u32,
    pub name: u64,
    pub opaque: [u64; 7],
    pub ready: u32,
    pub type_: u32,
}

/// `fifo_segment_header_t` (§3.1), 128 bytes, followed by the slices.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
pub struct FifoSegmentHeader {
    pub n_cached_bytes: u64,
    pub n_active_fifos: u32,
    pub n_reserved_bytes: u32,
    pub max_log2_fifo_size: u32,
    pub n_slices: u8,
    pub pct_first_alloc: u8,
    pub n_mqs: u8,
    pub _pad0: [u8; 41],
    pub byte_index: u64,
    pub max_byte_index: u64,
    pub start_byte_index: u64,
    pub _pad1: [u8; 40],
}

/// Number of chunk size classes (4 KiB · 2^i, i = 0..10).
pub const FS_CHUNK_VEC_LEN: usize = 11;

/// `fifo_segment_slice_t` (§3.2), 192 bytes, 64-byte aligned.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
pub struct FifoSegmentSlice {
    pub free_chunks: [u64; FS_CHUNK_VEC_LEN],
    pub free_fifos: u64,
    pub n_fl_chunk_bytes: u64,
    pub virtual_mem: u64,
    pub num_chunks: [u32; FS_CHUNK_VEC_LEN],
}

/// `svm_msg_q_shared_t` (§4.1), packed 8-byte prefix of an mq.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct SvmMsgQShared {
    pub n_rings: u32,
    pub pad: u32,
}

/// `svm_msg_q_shared_queue_t` (§4.1), 112 bytes, followed by the handle array.
#[repr(C)]
pub struct SvmMsgQSharedQueue {
    pub mutex: libc::pthread_mutex_t,
    pub condvar: libc::pthread_cond_t,
    pub head: u32,
    pub tail: u32,
    pub cursize: u32,
    pub maxsize: u32,
    pub elsize: u32,
    pub pad: u32,
}

/// `svm_msg_q_msg_t` (§4.1), the 8-byte handle queued for each message.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvmMsgQMsg {
    pub ring_index: u32,
    pub elt_index: u32,
}

/// `svm_msg_q_ring_shared_t` (§4.1), 20 bytes, followed by its elements.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SvmMsgQRingShared {
    pub cursize: u32,
    pub nitems: u32,
    pub head: u32,
    pub tail: u32,
    pub elsize: u32,
}

/// `svm_fifo_shared_t` (§5.1), 192 bytes, three cache lines.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
pub struct SvmFifoShared {
    pub start_chunk: u64,
    pub end_chunk: u64,
    pub min_alloc: u32,
    pub size: u32,
    pub slice_index: u8,
    pub _pad0: [u8; 7],
    pub next: u64,
    pub has_event: u32,
    pub want_deq_ntf: u32,
    pub has_deq_ntf: u32,
    pub n_subscribers: u8,
    pub subscribers: [u8; 7],
    pub deq_thresh: u32,
    pub head_chunk: u64,
    pub head: u32,
    pub _pad1: [u8; 52],
    pub tail_chunk: u64,
    pub tail: u32,
    pub _pad2: [u8; 52],
}

/// `svm_fifo_chunk_t` (§5.2), 24-byte header followed by `length` data bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SvmFifoChunk {
    pub start_byte: u32,
    pub length: u32,
    pub next: u64,
    pub enq_rb_index: u32,
    pub deq_rb_index: u32,
}

macro_rules! off {
    ($t:ty, $f:ident) => {
        offset_of!($t, $f) as u64
    };
}

/// Offsets in [`SsvmSharedHeader`].
pub mod ssvm {
    use super::*;
    pub const SIZE: u64 = size_of::<SsvmSharedHeader>() as u64;
    pub const SSVM_VA: u64 = off!(SsvmSharedHeader, ssvm_va);
    pub const SSVM_SIZE: u64 = off!(SsvmSharedHeader, ssvm_size);
    pub const SERVER_PID: u64 = off!(SsvmSharedHeader, server_pid);
    pub const CLIENT_PID: u64 = off!(SsvmSharedHeader, client_pid);
    pub const OPAQUE: u64 = off!(SsvmSharedHeader, opaque);
    pub const READY: u64 = off!(SsvmSharedHeader, ready);
    pub const TYPE: u64 = off!(SsvmSharedHeader, type_);
    /// `type` value of a memfd segment.
    pub const TYPE_MEMFD: u32 = 1;
}

/// Offsets in [`FifoSegmentHeader`] and [`FifoSegmentSlice`].
pub mod fsh {
    use super::*;
    pub const SIZE: u64 = size_of::<FifoSegmentHeader>() as u64;
    pub const N_CACHED_BYTES: u64 = off!(FifoSegmentHeader, n_cached_bytes);
    pub const N_ACTIVE_FIFOS: u64 = off!(FifoSegmentHeader, n_active_fifos);
    pub const N_RESERVED_BYTES: u64 = off!(FifoSegmentHeader, n_reserved_bytes);
    pub const MAX_LOG2_FIFO_SIZE: u64 = off!(FifoSegmentHeader, max_log2_fifo_size);
    pub const N_SLICES: u64 = off!(FifoSegmentHeader, n_slices);
    pub const PCT_FIRST_ALLOC: u64 = off!(FifoSegmentHeader, pct_first_alloc);
    pub const N_MQS: u64 = off!(FifoSegmentHeader, n_mqs);
    pub const BYTE_INDEX: u64 = off!(FifoSegmentHeader, byte_index);
    pub const MAX_BYTE_INDEX: u64 = off!(FifoSegmentHeader, max_byte_index);
    pub const START_BYTE_INDEX: u64 = off!(FifoSegmentHeader, start_byte_index);
    pub const SLICE_SIZE: u64 = size_of::<FifoSegmentSlice>() as u64;
    pub const SLICE_FREE_CHUNKS: u64 = off!(FifoSegmentSlice, free_chunks);
    pub const SLICE_FREE_FIFOS: u64 = off!(FifoSegmentSlice, free_fifos);
    pub const SLICE_N_FL_CHUNK_BYTES: u64 = off!(FifoSegmentSlice, n_fl_chunk_bytes);
    pub const SLICE_VIRTUAL_MEM: u64 = off!(FifoSegmentSlice, virtual_mem);
    pub const SLICE_NUM_CHUNKS: u64 = off!(FifoSegmentSlice, num_chunks);
}

/// Offsets in the mq structures.
pub mod mq {
    use super::*;
    pub const PREFIX_SIZE: u64 = size_of::<SvmMsgQShared>() as u64;
    pub const N_RINGS: u64 = off!(SvmMsgQShared, n_rings);
    pub const QUEUE_HEADER_SIZE: u64 = size_of::<SvmMsgQSharedQueue>() as u64;
    pub const MUTEX: u64 = off!(SvmMsgQSharedQueue, mutex);
    pub const CONDVAR: u64 = off!(SvmMsgQSharedQueue, condvar);
    pub const HEAD: u64 = off!(SvmMsgQSharedQueue, head);
    pub const TAIL: u64 = off!(SvmMsgQSharedQueue, tail);
    pub const CURSIZE: u64 = off!(SvmMsgQSharedQueue, cursize);
    pub const MAXSIZE: u64 = off!(SvmMsgQSharedQueue, maxsize);
    pub const ELSIZE: u64 = off!(SvmMsgQSharedQueue, elsize);
    pub const HANDLE_SIZE: u64 = size_of::<SvmMsgQMsg>() as u64;
    pub const RING_HEADER_SIZE: u64 = size_of::<SvmMsgQRingShared>() as u64;
    pub const RING_CURSIZE: u64 = off!(SvmMsgQRingShared, cursize);
    pub const RING_NITEMS: u64 = off!(SvmMsgQRingShared, nitems);
    pub const RING_HEAD: u64 = off!(SvmMsgQRingShared, head);
    pub const RING_TAIL: u64 = off!(SvmMsgQRingShared, tail);
    pub const RING_ELSIZE: u64 = off!(SvmMsgQRingShared, elsize);
}

/// Offsets in [`SvmFifoShared`] and [`SvmFifoChunk`].
pub mod fifo {
    use super::*;
    pub const SIZE: u64 = size_of::<SvmFifoShared>() as u64;
    pub const START_CHUNK: u64 = off!(SvmFifoShared, start_chunk);
    pub const END_CHUNK: u64 = off!(SvmFifoShared, end_chunk);
    pub const MIN_ALLOC: u64 = off!(SvmFifoShared, min_alloc);
    pub const FIFO_SIZE: u64 = off!(SvmFifoShared, size);
    pub const SLICE_INDEX: u64 = off!(SvmFifoShared, slice_index);
    pub const NEXT: u64 = off!(SvmFifoShared, next);
    pub const HAS_EVENT: u64 = off!(SvmFifoShared, has_event);
    pub const WANT_DEQ_NTF: u64 = off!(SvmFifoShared, want_deq_ntf);
    pub const HAS_DEQ_NTF: u64 = off!(SvmFifoShared, has_deq_ntf);
    pub const N_SUBSCRIBERS: u64 = off!(SvmFifoShared, n_subscribers);
    pub const DEQ_THRESH: u64 = off!(SvmFifoShared, deq_thresh);
    pub const HEAD_CHUNK: u64 = off!(SvmFifoShared, head_chunk);
    pub const HEAD: u64 = off!(SvmFifoShared, head);
    pub const TAIL_CHUNK: u64 = off!(SvmFifoShared, tail_chunk);
    pub const TAIL: u64 = off!(SvmFifoShared, tail);
    pub const CHUNK_HEADER_SIZE: u64 = size_of::<SvmFifoChunk>() as u64;
    pub const CHUNK_START_BYTE: u64 = off!(SvmFifoChunk, start_byte);
    pub const CHUNK_LENGTH: u64 = off!(SvmFifoChunk, length);
    pub const CHUNK_NEXT: u64 = off!(SvmFifoChunk, next);
    pub const CHUNK_ENQ_RB_INDEX: u64 = off!(SvmFifoChunk, enq_rb_index);
    pub const CHUNK_DEQ_RB_INDEX: u64 = off!(SvmFifoChunk, deq_rb_index);
}
