//! Every size and offset of docs/shm.md §2–§6, pinned on the `#[repr(C)]` mirrors.

use std::mem::{align_of, offset_of, size_of};

use sapi_shm::layout::*;
use sapi_shm::mq::{MqSpec, RingSpec};

#[test]
fn ssvm_shared_header_is_120_bytes_as_in_section_2() {
    type T = SsvmSharedHeader;
    assert_eq!(size_of::<T>(), 120);
    assert_eq!(align_of::<T>(), 8);
    assert_eq!(offset_of!(T, lock), 0);
    assert_eq!(offset_of!(T, owner_pid), 4);
    assert_eq!(offset_of!(T, recursion_count), 8);
    assert_eq!(offset_of!(T, tag), 12);
    assert_eq!(offset_of!(T, heap), 16);
    assert_eq!(offset_of!(T, ssvm_va), 24);
    assert_eq!(offset_of!(T, ssvm_size), 32);
    assert_eq!(offset_of!(T, server_pid), 40);
    assert_eq!(offset_of!(T, client_pid), 44);
    assert_eq!(offset_of!(T, name), 48);
    assert_eq!(offset_of!(T, opaque), 56);
    assert_eq!(offset_of!(T, ready), 112);
    assert_eq!(offset_of!(T, type_), 116);
}

#[test]
fn fifo_segment_header_and_slice_match_section_3() {
    type H = FifoSegmentHeader;
    assert_eq!(size_of::<H>(), 128);
    assert_eq!(offset_of!(H, n_cached_bytes), 0);
    assert_eq!(offset_of!(H, n_active_fifos), 8);
    assert_eq!(offset_of!(H, n_reserved_bytes), 12);
    assert_eq!(offset_of!(H, max_log2_fifo_size), 16);
    assert_eq!(offset_of!(H, n_slices), 20);
    assert_eq!(offset_of!(H, pct_first_alloc), 21);
    assert_eq!(offset_of!(H, n_mqs), 22);
    assert_eq!(offset_of!(H, byte_index), 64);
    assert_eq!(offset_of!(H, max_byte_index), 72);
    assert_eq!(offset_of!(H, start_byte_index), 80);
    type S = FifoSegmentSlice;
    assert_eq!(size_of::<S>(), 192);
    assert_eq!(align_of::<S>(), 64);
    assert_eq!(offset_of!(S, free_chunks), 0);
    assert_eq!(offset_of!(S, free_fifos), 88);
    assert_eq!(offset_of!(S, n_fl_chunk_bytes), 96);
    assert_eq!(offset_of!(S, virtual_mem), 104);
    assert_eq!(offset_of!(S, num_chunks), 112);
    assert_eq!(FS_CHUNK_VEC_LEN, 11);
}

#[test]
fn message_queue_structures_match_section_4() {
    assert_eq!(size_of::<SvmMsgQShared>(), 8);
    assert_eq!(offset_of!(SvmMsgQShared, n_rings), 0);
    type Q = SvmMsgQSharedQueue;
    assert_eq!(size_of::<libc::pthread_mutex_t>(), 40);
    assert_eq!(size_of::<libc::pthread_cond_t>(), 48);
    assert_eq!(size_of::<Q>(), 112);
    assert_eq!(align_of::<Q>(), 8);
    assert_eq!(offset_of!(Q, mutex), 0);
    assert_eq!(offset_of!(Q, condvar), 40);
    assert_eq!(offset_of!(Q, head), 88);
    assert_eq!(offset_of!(Q, tail), 92);
    assert_eq!(offset_of!(Q, cursize), 96);
    assert_eq!(offset_of!(Q, maxsize), 100);
    assert_eq!(offset_of!(Q, elsize), 104);
    assert_eq!(offset_of!(Q, pad), 108);
    assert_eq!(size_of::<SvmMsgQMsg>(), 8);
    assert_eq!(offset_of!(SvmMsgQMsg, ring_index), 0);
    assert_eq!(offset_of!(SvmMsgQMsg, elt_index), 4);
    type R = SvmMsgQRingShared;
    assert_eq!(size_of::<R>(), 20);
    assert_eq!(align_of::<R>(), 4);
    assert_eq!(offset_of!(R, cursize), 0);
    assert_eq!(offset_of!(R, nitems), 4);
    assert_eq!(offset_of!(R, head), 8);
    assert_eq!(offset_of!(R, tail), 12);
    assert_eq!(offset_of!(R, elsize), 16);
}

#[test]
fn mq_size_formula_matches_the_spec_example() {
    let ctrl = MqSpec::vpp_ctrl(0);
    assert_eq!(ctrl.queue_len, 2048);
    assert_eq!(
        ctrl.rings,
        vec![
            RingSpec {
                nitems: 2048,
                elsize: 18
            },
            RingSpec {
                nitems: 1024,
                elsize: 256
            }
        ]
    );
    assert_eq!(ctrl.size_bytes(), 315_552);
    assert_eq!(
        ctrl.size_bytes(),
        8 + 112 + 2048 * 8 + 2 * 20 + 2048 * 18 + 1024 * 256
    );
    // mq 1 of a two-thread wrk-mqs segment.
    assert_eq!(0x140 + ctrl.size_bytes(), 0x4D1E0);
    let app = MqSpec::app_event_queue(256);
    assert_eq!(
        (app.queue_len, app.rings[0].nitems, app.rings[1].nitems),
        (256, 256, 16)
    );
    let default = MqSpec::app_event_queue(0);
    assert_eq!((default.queue_len, default.rings[1].nitems), (128, 16));
    assert_eq!(MqSpec::app_event_queue(2048).rings[1].nitems, 128);
    let rx = MqSpec::private_rx(64);
    assert_eq!(
        (rx.queue_len, rx.rings[0].nitems, rx.rings[1].nitems),
        (128, 128, 64)
    );
}

#[test]
fn fifo_header_and_chunk_match_section_5() {
    type F = SvmFifoShared;
    assert_eq!(size_of::<F>(), 192);
    assert_eq!(align_of::<F>(), 64);
    assert_eq!(offset_of!(F, start_chunk), 0);
    assert_eq!(offset_of!(F, end_chunk), 8);
    assert_eq!(offset_of!(F, min_alloc), 16);
    assert_eq!(offset_of!(F, size), 20);
    assert_eq!(offset_of!(F, slice_index), 24);
    assert_eq!(offset_of!(F, next), 32);
    assert_eq!(offset_of!(F, has_event), 40);
    assert_eq!(offset_of!(F, want_deq_ntf), 44);
    assert_eq!(offset_of!(F, has_deq_ntf), 48);
    assert_eq!(offset_of!(F, n_subscribers), 52);
    assert_eq!(offset_of!(F, subscribers), 53);
    assert_eq!(offset_of!(F, deq_thresh), 60);
    assert_eq!(offset_of!(F, head_chunk), 64);
    assert_eq!(offset_of!(F, head), 72);
    assert_eq!(offset_of!(F, tail_chunk), 128);
    assert_eq!(offset_of!(F, tail), 136);
    type C = SvmFifoChunk;
    assert_eq!(size_of::<C>(), 24);
    assert_eq!(align_of::<C>(), 8);
    assert_eq!(offset_of!(C, start_byte), 0);
    assert_eq!(offset_of!(C, length), 4);
    assert_eq!(offset_of!(C, next), 8);
    assert_eq!(offset_of!(C, enq_rb_index), 16);
    assert_eq!(offset_of!(C, deq_rb_index), 20);
}

#[test]
fn derived_offset_constants_agree_with_the_mirrors() {
    assert_eq!(ssvm::OPAQUE, 56);
    assert_eq!(fsh::SLICE_SIZE, 192);
    assert_eq!(mq::RING_HEADER_SIZE, 20);
    assert_eq!(mq::QUEUE_HEADER_SIZE, 112);
    assert_eq!(fifo::HEAD, 72);
    assert_eq!(fifo::TAIL, 136);
    assert_eq!(fifo::HAS_EVENT, 40);
    assert_eq!(fifo::WANT_DEQ_NTF, 44);
    assert_eq!(fifo::CHUNK_HEADER_SIZE, 24);
}
