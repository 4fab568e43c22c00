//! Segments: VPP's observed header values, attach through `opaque[0]`, bad input, no leaks.

use std::os::fd::OwnedFd;

use rstest::rstest;
use sapi_shm::SegmentError;
use sapi_shm::memory::Memory;
use sapi_shm::segment::{
    HEADER_OFFSET, Segment, SegmentLayout, app_segment_ssvm_size, mqs_segment_ssvm_size,
};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Tests here run one at a time so that the leak test's fd count sees only its own fds.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn dup(fd: std::os::fd::BorrowedFd<'_>) -> OwnedFd {
    fd.try_clone_to_owned().expect("dup")
}

fn file_len(fd: std::os::fd::BorrowedFd<'_>) -> u64 {
    std::fs::File::from(dup(fd))
        .metadata()
        .expect("fstat")
        .len()
}

#[rstest]
#[case(16 << 20, 16_789_504)]
#[case(0, 1_060_864)]
#[case(4096, 1_060_864)]
fn app_segment_sizes_match_vpp(#[case] requested: u64, #[case] ssvm_size: u64) {
    let _serial = serial();
    assert_eq!(app_segment_ssvm_size(requested), ssvm_size);
}

#[test]
fn mqs_segment_size_matches_vpp() {
    let _serial = serial();
    assert_eq!(mqs_segment_ssvm_size(1, 315_552), 0x14d0a0);
}

#[test]
fn app_segment_header_matches_observed_vpp() {
    let _serial = serial();
    let seg = Segment::create(
        "seg-1-0-1",
        SegmentLayout {
            ssvm_size: app_segment_ssvm_size(16 << 20),
            n_slices: 1,
        },
    )
    .expect("create");
    assert_eq!(file_len(seg.fd()), 16_789_504);
    let h = seg.ssvm_header().expect("ssvm header");
    assert_eq!(h.ssvm_va, 0);
    assert_eq!(h.ssvm_size, 16_789_504);
    assert_eq!(h.server_pid, std::process::id());
    assert_eq!(h.header_offset, 0x2000);
    assert_eq!(h.ready, 1);
    assert_eq!(h.segment_type, 1);
    let f = seg.fifo_segment_header().expect("fifo header");
    assert_eq!(f.n_slices, 1);
    assert_eq!(f.n_mqs, 0);
    assert_eq!(f.start_byte_index, 0x140);
    assert_eq!(f.byte_index, 0x140);
    assert_eq!(f.n_reserved_bytes, 0x140);
    assert_eq!(f.max_byte_index, 0x1001000);
    assert_eq!(f.max_log2_fifo_size, 23);
}

#[test]
fn mqs_segment_header_matches_observed_vpp() {
    let _serial = serial();
    let seg = Segment::create(
        "session: wrk-mqs-segment",
        SegmentLayout {
            ssvm_size: 0x14d0a0,
            n_slices: 1,
        },
    )
    .expect("create");
    assert_eq!(file_len(seg.fd()), 0x14e000);
    assert_eq!(
        seg.fifo_segment_header().expect("hdr").max_log2_fifo_size,
        19
    );
    let off = seg.alloc_reserved(315_552).expect("mq alloc");
    assert_eq!(off, 0x140);
    seg.set_n_mqs(1).expect("n_mqs");
    let f = seg.fifo_segment_header().expect("hdr");
    assert_eq!(f.n_mqs, 1);
    assert_eq!(f.n_reserved_bytes as u64, 0x140 + 315_552);
}

#[test]
fn two_slices_put_the_first_allocation_at_0x200() {
    let _serial = serial();
    let seg = Segment::create(
        "seg",
        SegmentLayout {
            ssvm_size: app_segment_ssvm_size(0),
            n_slices: 2,
        },
    )
    .expect("create");
    assert_eq!(seg.alloc(10, 8).expect("alloc"), 0x200);
    assert_eq!(seg.alloc(1, 64).expect("alloc"), 0x240);
}

#[test]
fn attach_finds_the_header_through_opaque0_and_writes_client_pid() {
    let _serial = serial();
    let seg = Segment::create(
        "seg-attach",
        SegmentLayout {
            ssvm_size: app_segment_ssvm_size(0),
            n_slices: 1,
        },
    )
    .expect("create");
    let off = seg.alloc(64, 8).expect("alloc");
    seg.write(off, b"hello through the header").expect("write");
    let peer = Segment::attach(dup(seg.fd())).expect("attach");
    assert_eq!(peer.name(), "seg-attach");
    assert_eq!(peer.ssvm_size(), seg.ssvm_size());
    assert_eq!(peer.header_offset(), HEADER_OFFSET);
    let mut buf = [0u8; 24];
    peer.read(off, &mut buf).expect("read");
    assert_eq!(&buf, b"hello through the header");
    assert_eq!(
        seg.ssvm_header().expect("hdr").client_pid,
        std::process::id()
    );
    // Allocations from either side share one cursor.
    let a = peer.alloc(8, 8).expect("alloc");
    let b = seg.alloc(8, 8).expect("alloc");
    assert_eq!(b, a + 8);
}

#[test]
fn attach_follows_a_header_moved_away_from_8192() {
    let _serial = serial();
    let seg = Segment::create(
        "moved",
        SegmentLayout {
            ssvm_size: app_segment_ssvm_size(0),
            n_slices: 1,
        },
    )
    .expect("create");
    // Copy the header to base + 0x3000 and point opaque[0] at it.
    let base = seg.base_region();
    let mut hdr = vec![0u8; 128 + 192];
    base.read(HEADER_OFFSET, &mut hdr).expect("read");
    base.write(0x3000, &hdr).expect("write");
    base.write_u64(56, 0x3000).expect("opaque");
    let peer = Segment::attach(dup(seg.fd())).expect("attach");
    assert_eq!(peer.header_offset(), 0x3000);
    assert_eq!(
        peer.fifo_segment_header().expect("hdr").start_byte_index,
        0x140
    );
}

fn corrupt_and_attach(edit: impl FnOnce(&Segment)) -> SegmentError {
    corrupt_sized_and_attach(app_segment_ssvm_size(0), edit)
}

fn corrupt_sized_and_attach(ssvm_size: u64, edit: impl FnOnce(&Segment)) -> SegmentError {
    let seg = Segment::create(
        "corrupt",
        SegmentLayout {
            ssvm_size,
            n_slices: 1,
        },
    )
    .expect("create");
    edit(&seg);
    Segment::attach(dup(seg.fd())).expect_err("attach must fail")
}

#[test]
fn attach_rejects_bad_headers() {
    let _serial = serial();
    let e = corrupt_and_attach(|s| s.base_region().write_u64(32, 0).expect("w"));
    assert_eq!(e, SegmentError::ZeroSize);
    let e = corrupt_and_attach(|s| s.base_region().write_u64(32, 1 << 40).expect("w"));
    assert!(matches!(e, SegmentError::SizeBeyondFile { ssvm_size, .. } if ssvm_size == 1 << 40));
    let e = corrupt_and_attach(|s| s.base_region().write_u64(56, 0).expect("w"));
    assert_eq!(e, SegmentError::NoFifoHeader);
    let e = corrupt_and_attach(|s| s.base_region().write_u64(56, 1_060_864 - 64).expect("w"));
    assert!(matches!(e, SegmentError::HeaderOutsideMapping { .. }));
    let e = corrupt_and_attach(|s| s.base_region().write_u64(56, 0x2001).expect("w"));
    assert!(matches!(
        e,
        SegmentError::HeaderOutsideMapping { offset: 0x2001, .. }
    ));
    let e = corrupt_and_attach(|s| s.base_region().write_u64(24, 0x7f00_0000_0000).expect("w"));
    assert_eq!(e, SegmentError::FixedAddress(0x7f00_0000_0000));
    let e = corrupt_sized_and_attach(0x4000, |s| s.write_u8(20, 255).expect("w"));
    assert!(matches!(e, SegmentError::TooSmall { .. }), "{e:?}");
}

#[test]
fn attach_rejects_a_file_too_small_for_the_header() {
    let _serial = serial();
    let memfd = memfd::MemfdOptions::default()
        .create("tiny")
        .expect("memfd");
    memfd.as_file().set_len(16).expect("truncate");
    let fd: OwnedFd = memfd.into_file().into();
    assert!(matches!(
        Segment::attach(fd),
        Err(SegmentError::TooSmall { available: 16, .. })
    ));
}

#[test]
fn bump_allocator_stops_before_max_byte_index() {
    let _serial = serial();
    let seg = Segment::create(
        "small",
        SegmentLayout {
            ssvm_size: 0x4000,
            n_slices: 1,
        },
    )
    .expect("create");
    // max_byte_index = 0x2000; start 0x140.
    let off = seg.alloc(0x2000 - 0x140 - 8, 8).expect("fits");
    assert_eq!(off, 0x140);
    assert!(matches!(
        seg.alloc(8, 8),
        Err(SegmentError::Exhausted { .. })
    ));
    assert!(matches!(seg.alloc(8, 3), Err(SegmentError::BadAlign(3))));
}

#[test]
fn create_rejects_bad_names_and_sizes() {
    let _serial = serial();
    let layout = SegmentLayout {
        ssvm_size: 1 << 20,
        n_slices: 1,
    };
    assert!(matches!(
        Segment::create("a\0b", layout),
        Err(SegmentError::BadName(_))
    ));
    assert!(matches!(
        Segment::create(&"x".repeat(300), layout),
        Err(SegmentError::BadName(_))
    ));
    assert!(matches!(
        Segment::create(
            "s",
            SegmentLayout {
                ssvm_size: 4096,
                n_slices: 1
            }
        ),
        Err(SegmentError::TooSmall { .. })
    ));
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("proc").count()
}

fn mapped_regions() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("maps")
        .lines()
        .filter(|l| l.contains("memfd:"))
        .count()
}

#[test]
fn no_fd_or_mapping_leaks_on_success_or_failure() {
    let _serial = serial();
    let fds_before = open_fds();
    let maps_before = mapped_regions();
    for i in 0..200 {
        let layout = SegmentLayout {
            ssvm_size: app_segment_ssvm_size(0),
            n_slices: 1,
        };
        let seg = Segment::create(&format!("leak-{i}"), layout).expect("create");
        let peer = Segment::attach(dup(seg.fd())).expect("attach");
        drop(peer);
        // Failing attaches after the full mapping was made.
        seg.base_region().write_u64(56, 0).expect("w");
        assert!(Segment::attach(dup(seg.fd())).is_err());
        seg.base_region().write_u64(56, 1 << 30).expect("w");
        assert!(Segment::attach(dup(seg.fd())).is_err());
        seg.base_region().write_u64(32, 0).expect("w");
        assert!(Segment::attach(dup(seg.fd())).is_err());
        assert!(Segment::create("bad\0", layout).is_err());
        drop(seg);
        // An early-failing create (too small) must not leak its memfd either.
        assert!(
            Segment::create(
                "probe",
                SegmentLayout {
                    ssvm_size: 4096,
                    n_slices: 1
                }
            )
            .is_err()
        );
    }
    assert_eq!(open_fds(), fds_before, "fd leak");
    assert_eq!(mapped_regions(), maps_before, "mapping leak");
}
