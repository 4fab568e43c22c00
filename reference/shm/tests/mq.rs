//! The message queue in a real segment: VPP's mq-basic scenario, control events, corruption.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Duration;

use sapi_shm::layout::mq as l;
use sapi_shm::memory::Memory;
use sapi_shm::mq::{
    self, EventFdSignal, MqConsumer, MqError, MqGeometry, MqProducer, MqSpec, MsgHandle,
    PthreadSignal, RingSpec,
};
use sapi_shm::segment::{Segment, SegmentLayout, app_segment_ssvm_size};
use sapi_wire::ctrl::{AppAddSegment, AppDelSegment, SessionEvent, SessionEventType};

fn segment() -> Segment {
    Segment::create(
        "mq-test",
        SegmentLayout {
            ssvm_size: app_segment_ssvm_size(0),
            n_slices: 1,
        },
    )
    .expect("segment")
}

fn eventfd() -> OwnedFd {
    // SAFETY: plain syscall; the fd is owned below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: fresh fd.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn basic_spec() -> MqSpec {
    MqSpec {
        queue_len: 16,
        rings: vec![
            RingSpec {
                nitems: 8,
                elsize: 8,
            },
            RingSpec {
                nitems: 8,
                elsize: 16,
            },
        ],
    }
}

/// VPP's `mq-basic` unit test, re-told: two rings of 8×8 B and 8×16 B, queue of 16.
#[test]
fn mq_basic() {
    let seg = segment();
    let off = mq::create(&seg, &basic_spec()).expect("create");
    assert_eq!(off, 0x140);
    let efd = eventfd();
    let mut tx = MqProducer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("tx");
    let mut rx = MqConsumer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("rx");

    // Ring headers follow the handle array back to back, no padding.
    let g = tx.geometry();
    let r0 = off + 8 + 112 + 16 * 8;
    assert_eq!(g.ring_header_offset(0), Some(r0));
    assert_eq!(g.ring_header_offset(1), Some(r0 + 20 + 8 * 8));
    assert_eq!(seg.read_u32(off).expect("n_rings"), 2);

    // First fit: small messages go to ring 0, larger ones to ring 1; when ring 0 is full, an
    // 8-byte message spills to ring 1.
    for i in 0..8u8 {
        tx.try_send(&[i; 8]).expect("ring 0");
    }
    tx.try_send(&[100; 12]).expect("ring 1 by size");
    tx.try_send(&[101; 8])
        .expect("ring 1 because ring 0 is full");
    assert_eq!(
        tx.try_send(&[0; 17]),
        Err(MqError::TooLarge { len: 17, max: 16 })
    );
    let mut buf = [0u8; 16];
    for i in 0..8u8 {
        let m = rx.try_dequeue().expect("dequeue");
        assert_eq!(
            m,
            MsgHandle {
                ring: 0,
                elt: i as u32
            }
        );
        assert_eq!(rx.read(m, &mut buf).expect("read"), 8);
        assert_eq!(&buf[..8], &[i; 8]);
        rx.free(m).expect("free");
    }
    let a = rx.try_dequeue().expect("dequeue");
    let b = rx.try_dequeue().expect("dequeue");
    assert_eq!((a.ring, a.elt, b.ring, b.elt), (1, 0, 1, 1));
    // Elements are freed in order only.
    assert_eq!(
        rx.free(b),
        Err(MqError::OutOfOrderFree {
            ring: 1,
            expected: 0,
            got: 1
        })
    );
    rx.free(a).expect("free a");
    rx.free(b).expect("free b");
    assert_eq!(rx.try_dequeue(), Err(MqError::Empty));

    // Element indices wrap around the ring.
    for round in 0..3u8 {
        for i in 0..5u8 {
            tx.try_send(&[round * 10 + i; 8]).expect("send");
        }
        for i in 0..5u8 {
            let got = rx.try_recv(&mut buf).expect("recv");
            assert_eq!(got.ring, 0);
            assert_eq!(buf[0], round * 10 + i);
        }
    }
    let m = {
        tx.try_send(&[7; 8]).expect("send");
        rx.try_dequeue().expect("dequeue")
    };
    assert_eq!(m.elt, 15 % 8);
    rx.free(m).expect("free");
}

#[test]
fn a_full_queue_reports_full_and_the_consumer_signals_not_full() {
    let seg = segment();
    let spec = MqSpec {
        queue_len: 4,
        rings: vec![RingSpec {
            nitems: 8,
            elsize: 8,
        }],
    };
    let off = mq::create(&seg, &spec).expect("create");
    let efd = eventfd();
    let mut tx = MqProducer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("tx");
    let mut rx = MqConsumer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("rx");
    let counter = |fd: &OwnedFd| {
        let mut b = [0u8; 8];
        // SAFETY: 8-byte read into a live buffer.
        let n = unsafe {
            libc::read(
                std::os::fd::AsRawFd::as_raw_fd(fd),
                b.as_mut_ptr().cast(),
                8,
            )
        };
        if n == 8 { u64::from_ne_bytes(b) } else { 0 }
    };
    for i in 0..4u8 {
        tx.try_send(&[i]).expect("send");
    }
    assert_eq!(counter(&efd), 1, "one wake-up for empty -> non-empty");
    assert_eq!(tx.try_send(&[9]), Err(MqError::Full));
    assert_eq!(
        tx.send(&[9], Some(Duration::from_millis(20))),
        Err(MqError::Timeout)
    );
    let mut buf = [0u8; 8];
    rx.try_recv(&mut buf).expect("recv");
    assert_eq!(counter(&efd), 1, "one wake-up for full -> not full");
    tx.send(&[9], Some(Duration::from_secs(5)))
        .expect("room now");
    assert_eq!(
        rx.recv(&mut buf, Some(Duration::from_secs(5)))
            .expect("recv")
            .len,
        8
    );
}

#[test]
fn a_ctrl_event_travels_in_ring_1_at_element_offset_2() {
    let seg = segment();
    let off = mq::create(&seg, &MqSpec::app_event_queue(0)).expect("create");
    let signal = PthreadSignal::new(&seg, off).expect("pthread");
    let mut tx = MqProducer::attach(&seg, off, signal).expect("tx");
    let add = AppAddSegment {
        client_index: 0,
        context: 0,
        fd_flags: 2,
        segment_size: 64 << 20,
        segment_name: b"vcl-echo-1".to_vec(),
        segment_handle: 0x0000_0001_0000_0001,
    };
    let ty = SessionEventType::AppAddSegment.number_head();
    assert_eq!(ty, 28);
    tx.try_send(&add.encode_element(ty).expect("encode"))
        .expect("send");
    let mut rx =
        MqConsumer::attach(&seg, off, PthreadSignal::new(&seg, off).expect("p")).expect("rx");
    let mut el = [0u8; 256];
    let got = rx
        .recv(&mut el, Some(Duration::from_secs(1)))
        .expect("recv");
    assert_eq!((got.ring, got.len), (1, 256));
    assert_eq!(
        &el[..0x12],
        &[0x1c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x04][..]
    );
    assert_eq!(&el[18..28], b"vcl-echo-1");
    assert_eq!(&el[146..154], &[1, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(AppAddSegment::decode_element(&el, 28).expect("decode"), add);
    assert!(AppAddSegment::decode_element(&el, 26).is_err());

    let del = AppDelSegment {
        client_index: 3,
        context: 4,
        segment_handle: 5,
    };
    let e = del.encode_element(SessionEventType::AppDelSegment.number_seed().expect("seed"));
    assert_eq!(e[0], 27);
    assert_eq!(&e[2..18], &[3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(AppDelSegment::decode_element(&e, 27).expect("decode"), del);

    let io = SessionEvent::io(SessionEventType::IoRx.number_head(), 7);
    tx.try_send(&io.encode()).expect("send io");
    let got = rx.try_recv(&mut el).expect("recv io");
    assert_eq!((got.ring, got.len), (0, 18));
    assert_eq!(SessionEvent::decode(&el[..18]).expect("decode"), io);
}

#[test]
fn event_numbers_follow_both_profiles() {
    use SessionEventType as T;
    assert_eq!(T::ALL.len(), 39);
    for (i, t) in T::ALL.iter().enumerate() {
        assert_eq!(t.number_head() as usize, i);
        assert_eq!(T::from_number(i as u8, false), Some(*t));
    }
    assert_eq!(
        (
            T::AppAddSegment.number_seed(),
            T::AppDelSegment.number_seed()
        ),
        (Some(26), Some(27))
    );
    assert_eq!(
        (
            T::AppAddSegment.number_head(),
            T::AppDelSegment.number_head()
        ),
        (28, 29)
    );
    assert_eq!(T::HalfClose.number_seed(), None);
    assert_eq!(T::AppWrkRpc.number_seed(), Some(30));
    assert_eq!(T::from_number(6, true), Some(T::Close));
    assert_eq!(T::from_number(31, true), None);
}

fn corrupted(edit: impl FnOnce(&Segment, u64)) -> MqError {
    let seg = segment();
    let off = mq::create(&seg, &basic_spec()).expect("create");
    edit(&seg, off);
    MqGeometry::read_quiescent(&seg, off).expect_err("must be rejected")
}

#[test]
fn corrupt_mq_headers_are_errors_not_out_of_bounds_reads() {
    let q = |off| off + l::PREFIX_SIZE;
    let r0 = |off: u64| off + 8 + 112 + 16 * 8;
    let field = |e: MqError| match e {
        MqError::Corrupt { field, value, .. } => (field, value),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        field(corrupted(|s, o| s.write_u32(o, 0).expect("w"))),
        ("n_rings", 0)
    );
    assert_eq!(
        field(corrupted(|s, o| s.write_u32(o, 1000).expect("w"))),
        ("n_rings", 1000)
    );
    assert_eq!(
        field(corrupted(|s, o| s
            .write_u32(q(o) + l::MAXSIZE, 0)
            .expect("w"))),
        ("maxsize", 0)
    );
    assert_eq!(
        field(corrupted(|s, o| s
            .write_u32(q(o) + l::ELSIZE, 16)
            .expect("w"))),
        ("elsize", 16)
    );
    assert_eq!(
        field(corrupted(|s, o| s
            .write_u32(q(o) + l::HEAD, 16)
            .expect("w"))),
        ("queue head", 16)
    );
    assert_eq!(
        field(corrupted(|s, o| s
            .write_u32(q(o) + l::TAIL, 99)
            .expect("w"))),
        ("queue tail", 99)
    );
    assert_eq!(
        field(corrupted(|s, o| s
            .write_u32(r0(o) + l::RING_NITEMS, 0)
            .expect("w"))),
        ("ring nitems", 0)
    );
    assert_eq!(
        field(corrupted(|s, o| s
            .write_u32(r0(o) + l::RING_HEAD, 8)
            .expect("w"))),
        ("ring head", 8)
    );
    assert_eq!(
        field(corrupted(|s, o| s
            .write_u32(r0(o) + l::RING_TAIL, 8)
            .expect("w"))),
        ("ring tail", 8)
    );
    assert_eq!(
        field(corrupted(|s, o| s
            .write_u32(r0(o) + l::RING_ELSIZE, 0)
            .expect("w"))),
        ("ring elsize", 0)
    );
    // A ring reaching past the end of the segment, and a queue bigger than the segment.
    assert!(matches!(
        corrupted(|s, o| s.write_u32(r0(o) + l::RING_NITEMS, u32::MAX).expect("w")),
        MqError::OutOfBounds(_)
    ));
    assert!(matches!(
        corrupted(|s, o| s.write_u32(q(o) + l::MAXSIZE, u32::MAX).expect("w")),
        MqError::OutOfBounds(_)
    ));
}

#[test]
fn a_corrupted_handle_or_index_fails_the_operation_cleanly() {
    let seg = segment();
    let off = mq::create(&seg, &basic_spec()).expect("create");
    let efd = eventfd();
    let mut tx = MqProducer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("tx");
    let mut rx = MqConsumer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("rx");
    tx.try_send(&[1; 8]).expect("send");
    // The peer scribbles over the handle: ring 7 does not exist.
    seg.write_u32(off + 8 + 112, 7).expect("w");
    assert!(matches!(
        rx.try_dequeue(),
        Err(MqError::Corrupt {
            field: "handle ring_index",
            value: 7,
            ..
        })
    ));
    // The peer moves the ring tail out of range after we attached.
    seg.write_u32(off + 8 + 112 + 16 * 8 + l::RING_TAIL, 1000)
        .expect("w");
    assert!(matches!(
        tx.try_send(&[1; 8]),
        Err(MqError::Corrupt {
            field: "ring tail",
            value: 1000,
            ..
        })
    ));
}

#[test]
fn odd_queue_lengths_that_misalign_ring_1_are_refused() {
    let seg = segment();
    assert!(matches!(
        mq::create(&seg, &MqSpec::app_event_queue(1)),
        Err(MqError::MisalignedRing { ring: 1, .. })
    ));
}

/// Batches are the single-message protocol with fewer counter updates: a batch sent is read
/// back one by one in order, single sends are read back in batches, both across the ring and
/// queue wrap, and a batch stops at the room left.
#[test]
fn batches_interleave_with_single_messages_across_the_wrap() {
    let seg = segment();
    let off = mq::create(&seg, &basic_spec()).expect("create");
    let efd = eventfd();
    let mut tx = MqProducer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("tx");
    let mut rx = MqConsumer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("rx");
    let mut next_sent = 0u8;
    let mut next_read = 0u8;
    for round in 0..40 {
        // A batch of up to 6 into ring 0 (8 × 8 B) — fewer when the ring or the queue is short.
        let bodies: Vec<[u8; 8]> = (0..6).map(|i| [next_sent.wrapping_add(i); 8]).collect();
        let msgs: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
        let sent = tx.try_send_batch(&msgs).expect("batch");
        assert!((1..=6).contains(&sent), "round {round}: sent {sent}");
        next_sent = next_sent.wrapping_add(sent as u8);
        // Then one single message.
        tx.try_send(&[next_sent; 8]).expect("single");
        next_sent = next_sent.wrapping_add(1);
        // Read half one by one, the rest in a batch.
        let queued = rx.len().expect("len");
        let mut buf = [0u8; 8];
        for _ in 0..queued / 2 {
            rx.try_recv(&mut buf).expect("single recv");
            assert_eq!(buf, [next_read; 8], "round {round}");
            next_read = next_read.wrapping_add(1);
        }
        let mut out = [[0u8; 8]; 16];
        let got = rx.try_recv_batch(&mut out).expect("batch recv");
        assert_eq!(got as u32, queued - queued / 2);
        for body in &out[..got] {
            assert_eq!(*body, [next_read; 8], "round {round}");
            next_read = next_read.wrapping_add(1);
        }
        assert_eq!(rx.try_recv_batch(&mut out), Err(MqError::Empty));
    }
    assert_eq!(next_read, next_sent);

    // Room: ring 0 holds 8; a batch of 10 small messages takes 8, the next one spills to ring 1.
    let msgs: Vec<&[u8]> = vec![&[7u8; 4][..]; 10];
    assert_eq!(tx.try_send_batch(&msgs), Ok(8));
    assert_eq!(tx.try_send_batch(&msgs), Ok(8), "ring 1 takes the next 8");
    assert_eq!(
        tx.try_send_batch(&msgs),
        Err(MqError::Full),
        "queue of 16 is full"
    );
    let mut out = [[0u8; 16]; 32];
    assert_eq!(rx.try_recv_batch(&mut out), Ok(16));
    // A message reads back as its whole element (the rest of it is whatever an earlier message
    // left, as in VPP); past the element size the output is zero-padded.
    assert!(out[..16].iter().all(|b| b[..4] == [7; 4]));
    assert!(
        out[..8].iter().all(|b| b[8..] == [0; 8]),
        "ring 0 elements are 8 bytes"
    );
}

/// Batches carry every message exactly once between threads (checksummed), both counters end
/// at zero, and a blocked consumer is woken by a batch's single signal.
#[test]
fn batches_between_threads_lose_nothing() {
    let seg = segment();
    let off = mq::create(&seg, &basic_spec()).expect("create");
    let efd = eventfd();
    let mut tx = MqProducer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("tx");
    let mut rx = MqConsumer::attach(&seg, off, EventFdSignal::new(efd.as_fd())).expect("rx");
    const TOTAL: u64 = 200_000;
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut n = 0u64;
            while n < TOTAL {
                let bodies: Vec<[u8; 8]> = (n..(n + 5).min(TOTAL)).map(u64::to_le_bytes).collect();
                let msgs: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
                match tx.try_send_batch(&msgs) {
                    Ok(k) => n += k as u64,
                    Err(MqError::Full) => std::thread::yield_now(),
                    Err(e) => panic!("send: {e}"),
                }
            }
        });
        let mut expect = 0u64;
        let mut out = [[0u8; 8]; 7];
        while expect < TOTAL {
            let got = match rx.try_recv_batch(&mut out) {
                Ok(k) => k,
                Err(MqError::Empty) => {
                    // Sleeps until the producer's next batch (no timeout: a lost wake-up hangs
                    // the test, which is the failure it checks for).
                    let mut one = [0u8; 8];
                    rx.recv(&mut one, None).expect("recv");
                    out[0] = one;
                    1
                }
                Err(e) => panic!("recv: {e}"),
            };
            for body in &out[..got] {
                assert_eq!(u64::from_le_bytes(*body), expect);
                expect += 1;
            }
        }
    });
    assert_eq!(seg.read_u32(off + 8 + l::CURSIZE).ok(), Some(0));
}
