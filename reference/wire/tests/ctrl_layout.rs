//! The sizes and offsets of the messages carried in mq elements (`docs/shm.md` §6), pinned on the
//! `#[repr(C)]` mirrors.

use std::mem::{align_of, offset_of, size_of};

use sapi_wire::ctrl::layout::*;

#[test]
fn session_events_match_section_6() {
    assert_eq!(size_of::<SessionEventRaw>(), 18);
    assert_eq!(offset_of!(SessionEventRaw, event_type), 0);
    assert_eq!(offset_of!(SessionEventRaw, postponed), 1);
    assert_eq!(offset_of!(SessionEventRaw, data), 2);
    type A = SessionAppAddSegmentMsg;
    assert_eq!(size_of::<A>(), 152);
    assert_eq!(align_of::<A>(), 8);
    assert_eq!(offset_of!(A, client_index), 0);
    assert_eq!(offset_of!(A, context), 4);
    assert_eq!(offset_of!(A, fd_flags), 8);
    assert_eq!(offset_of!(A, segment_size), 12);
    assert_eq!(offset_of!(A, segment_name), 16);
    assert_eq!(offset_of!(A, segment_handle), 144);
    type D = SessionAppDelSegmentMsg;
    assert_eq!(size_of::<D>(), 16);
    assert_eq!(offset_of!(D, client_index), 0);
    assert_eq!(offset_of!(D, context), 4);
    assert_eq!(offset_of!(D, segment_handle), 8);
}
