//! The `conformance_readers` check, shared by the fuzz target and any replay of its regressions.
//!
//! Input: `[u64 LE mq offset A][u64 LE mq offset B][segment image]`. The image is written into a
//! real memfd (reused across runs) and opened with `sapi_conformance::shm::Segment::open`, as the
//! suite opens what a target sends. Then every reader the suite applies to a segment runs on it:
//! the header checks, `mq_at` on the two offsets and on the first allocation, `peek`, and the
//! `mq_violations` check; the first 209 bytes of the image also go through the suite's reply
//! decoders.

use std::cell::RefCell;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use sapi_conformance::shm::{self, Segment};
use sapi_conformance::wire::{self, AttachReply, CertKeyReply, Profile, WorkerReply};

thread_local! {
    static MEMFD: RefCell<Option<File>> = const { RefCell::new(None) };
}

fn memfd() -> File {
    // SAFETY: a plain memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"fuzz-segment".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create failed");
    // SAFETY: fd is a fresh descriptor we own.
    unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) }
}

fn with_image<T>(image: &[u8], f: impl FnOnce(&File) -> T) -> T {
    MEMFD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let file = slot.get_or_insert_with(memfd);
        file.set_len(0).expect("truncate");
        file.seek(SeekFrom::Start(0)).expect("seek");
        file.write_all(image).expect("write image");
        f(file)
    })
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = data.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

pub fn check(data: &[u8]) {
    let image = data.get(16..).unwrap_or_default();
    for profile in [Profile::Head, Profile::Seed] {
        let dgram = image.get(..wire::MSG_LEN).unwrap_or(image);
        let _ = AttachReply::parse(dgram);
        let _ = WorkerReply::parse(dgram, profile);
        let _ = CertKeyReply::parse(dgram);
        let _ = profile.retval_name(u64_at(data, 0) as i32);
    }
    let _ = wire::dump(image.get(..wire::MSG_LEN).unwrap_or(image));
    let offsets = [u64_at(data, 0), u64_at(data, 8)];
    with_image(image, |file| {
        for writable in [false, true] {
            let Ok(seg) = Segment::open(file, writable) else {
                continue;
            };
            let _ = shm::ssvm_violations(&seg.ssvm, image.len() as u64);
            let _ = shm::fsh_violations(&seg.fsh, &seg);
            let first = seg.fsh.start_byte_index;
            for off in [offsets[0], offsets[1], first] {
                if let Ok(mq) = seg.mq_at(off) {
                    let _ = shm::mq_violations(&mq, Some(128), Some([128, 32]));
                    let _ = seg.peek(&mq);
                }
            }
            let _ = seg.rel_u32(offsets[1], "fuzz");
        }
    });
}
