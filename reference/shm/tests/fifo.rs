//! The fifo in a real segment: multi-chunk wrap, u32 position wrap, growth and chunk
//! recycling, peek/drop, the event flags, and corrupted headers.

use sapi_shm::alloc::FifoSegmentView;
use sapi_shm::fifo::{
    self, FifoConsumer, FifoError, FifoProducer, WANT_DEQ_NOTIF_IF_EMPTY, WANT_DEQ_NOTIF_IF_FULL,
};
use sapi_shm::layout::fifo as l;
use sapi_shm::memory::{HeapMemory, Memory};
use sapi_shm::segment::{Segment, SegmentLayout, app_segment_ssvm_size};
use sapi_shm::sync::Atomic;

fn segment(mib: u64) -> Segment {
    Segment::create(
        "fifo-test",
        SegmentLayout {
            ssvm_size: app_segment_ssvm_size(mib << 20),
            n_slices: 1,
        },
    )
    .expect("segment")
}

fn pattern(from: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((from + i) * 31 % 251) as u8)
        .collect()
}

fn chunk_count<M: Memory>(mem: &M, f: u64) -> usize {
    let mut c = mem
        .atomic_u64(f + l::START_CHUNK)
        .expect("start")
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut n = 0;
    while c != 0 {
        n += 1;
        c = mem
            .atomic_u64(c + l::CHUNK_NEXT)
            .expect("next")
            .load(std::sync::atomic::Ordering::Relaxed);
    }
    n
}

/// The bytes of the chunks a fifo holds, and its largest chunk.
fn linked_bytes<M: Memory>(mem: &M, f: u64) -> (u64, u64) {
    let mut c = mem
        .atomic_u64(f + l::START_CHUNK)
        .expect("start")
        .load(std::sync::atomic::Ordering::Relaxed);
    let (mut total, mut largest) = (0u64, 0u64);
    while c != 0 {
        let len = mem.read_u32(c + l::CHUNK_LENGTH).expect("length") as u64;
        total += len;
        largest = largest.max(len);
        c = mem
            .atomic_u64(c + l::CHUNK_NEXT)
            .expect("next")
            .load(std::sync::atomic::Ordering::Relaxed);
    }
    (total, largest)
}

/// Streams `total` bytes through a fifo of `size` in writes of `w` and reads of `r` bytes,
/// checking every byte, on any memory: once with VPP's reader, once with one that recycles at
/// a distance.
fn stream<M: Memory>(mem: &M, size: u32, start: u32, total: u64, w: usize, r: usize) {
    stream_with(mem, size, start, total, w, r, false);
    stream_with(mem, size, start, total, w, r, true);
}

fn stream_with<M: Memory>(
    mem: &M,
    size: u32,
    start: u32,
    total: u64,
    w: usize,
    r: usize,
    at_a_distance: bool,
) {
    let fs = FifoSegmentView::new(mem);
    let f = fifo::create_at(fs, 0, size, start).expect("fifo");
    let mut tx = FifoProducer::attach(mem, f).expect("tx");
    let mut rx = FifoConsumer::attach(mem, f).expect("rx");
    if at_a_distance {
        rx = rx.recycle_at_a_distance();
    }
    let (mut sent, mut got) = (0u64, 0u64);
    let mut buf = vec![0u8; r];
    while got < total {
        if sent < total {
            let n = w.min((total - sent) as usize);
            match tx.enqueue(&pattern(sent, n)) {
                Ok(k) => sent += k as u64,
                Err(FifoError::Full) => {}
                Err(e) => panic!("enqueue: {e}"),
            }
        }
        match rx.dequeue(&mut buf) {
            Ok(k) => {
                assert_eq!(&buf[..k], &pattern(got, k)[..], "at byte {got}");
                got += k as u64;
            }
            Err(FifoError::Empty) => {}
            Err(e) => panic!("dequeue: {e}"),
        }
        if at_a_distance {
            // The reader keeps finished chunks up to the free space behind its head when it
            // leaves a chunk, and the writer may fill that space before it leaves the next.
            let (linked, largest) = linked_bytes(mem, f);
            assert!(
                linked <= 2 * size as u64 + 2 * largest,
                "{linked} bytes of chunks in a fifo of {size}"
            );
        } else {
            assert!(chunk_count(mem, f) <= (size as usize).div_ceil(4096) + 2);
        }
    }
    fifo::free(fs, f).expect("free");
}

#[test]
fn bytes_survive_chunk_growth_and_wrap_around() {
    let seg = segment(4);
    stream(&seg, 64 << 10, 0, 3 << 20, 5000, 3000);
    stream(&seg, 64 << 10, 0, 1 << 20, 70_000, 1 << 16);
}

#[test]
fn positions_wrap_through_u32_max() {
    let seg = segment(4);
    stream(&seg, 32 << 10, u32::MAX - 10_000, 1 << 20, 7777, 4099);
}

#[test]
fn the_heap_model_runs_the_same_algorithm() {
    let mem = HeapMemory::new(64 << 10, 12);
    let fs = FifoSegmentView::new(&mem);
    fs.init(1, mem.len() - 1, 20).expect("init");
    stream(&mem, 16 << 10, u32::MAX - 5000, 200_000, 3001, 1777);
}

#[test]
fn consumed_chunks_return_to_the_free_list_and_are_reused() {
    let seg = segment(4);
    let fs = seg.fifo_segment();
    let f = fifo::create(fs, 0, 1 << 20).expect("fifo");
    let mut tx = FifoProducer::attach(&seg, f).expect("tx");
    let mut rx = FifoConsumer::attach(&seg, f).expect("rx");
    let data = pattern(0, 600_000);
    let fill = |tx: &mut FifoProducer<'_, Segment>| {
        for piece in data.chunks(5000) {
            assert_eq!(tx.enqueue(piece).expect("enqueue"), piece.len());
        }
    };
    fill(&mut tx);
    // min_alloc is 64 KiB for a 1 MiB fifo: ~10 chunks.
    assert!(chunk_count(&seg, f) >= 9, "grew by several chunks");
    let bump_after_growth = seg.fifo_segment_header().expect("hdr").byte_index;
    let mut buf = vec![0u8; 600_000];
    let mut got = 0;
    while got < buf.len() {
        got += rx.dequeue(&mut buf[got..]).expect("dequeue");
    }
    assert_eq!(buf, data);
    assert_eq!(chunk_count(&seg, f), 1, "only the last chunk stays");
    assert!(seg.fifo_segment_header().expect("hdr").n_cached_bytes >= 8 * 65536);
    // Growing again pops the freed chunks instead of bump-allocating.
    fill(&mut tx);
    assert_eq!(
        seg.fifo_segment_header().expect("hdr").byte_index,
        bump_after_growth
    );
}

/// VPP's reader hands the writer back the chunk it has just drained (the free lists are last
/// in, first out), whose lines sit in the reader's cache; one that recycles at a distance
/// keeps finished chunks linked up to the fifo's free space behind its head instead, so the
/// writer cycles through the whole fifo as through a ring, and a release puts the chunk
/// finished longest ago on top of the free list.
#[rstest::rstest]
#[case::vpps_reader(false, 1..=2)]
#[case::at_a_distance(true, 16..=20)]
fn a_reader_that_keeps_up_makes_the_writer_cycle_through_the_whole_fifo(
    #[case] at_a_distance: bool,
    #[case] chunks: std::ops::RangeInclusive<usize>,
) {
    let seg = segment(8);
    let fs = seg.fifo_segment();
    let size = 1u32 << 20;
    let f = fifo::create(fs, 0, size).expect("fifo");
    let mut tx = FifoProducer::attach(&seg, f).expect("tx");
    let mut rx = FifoConsumer::attach(&seg, f).expect("rx");
    if at_a_distance {
        rx = rx.recycle_at_a_distance();
    }
    let write = pattern(0, 64 << 10);
    let mut buf = vec![0u8; 64 << 10];
    let mut chunks_written_into = std::collections::BTreeSet::new();
    for _ in 0..64 {
        assert_eq!(tx.enqueue(&write).expect("enqueue"), write.len());
        chunks_written_into.insert(seg.read_u64(f + l::END_CHUNK).expect("end_chunk"));
        assert_eq!(rx.dequeue(&mut buf).expect("dequeue"), buf.len());
        assert_eq!(buf, write);
    }
    // VPP's reader makes the writer alternate between two 64 KiB chunks; a ring of 1 MiB
    // spans 16 (and the first pass takes a few more before the first one is freed).
    assert!(
        chunks.contains(&chunks_written_into.len()),
        "the writer wrote into {} distinct chunks",
        chunks_written_into.len()
    );
    if !at_a_distance {
        return;
    }
    let (linked, _) = linked_bytes(&seg, f);
    assert!(linked <= size as u64 + (64 << 10), "{linked} bytes linked");

    let oldest = seg
        .atomic_u64(f + l::START_CHUNK)
        .expect("start")
        .load(std::sync::atomic::Ordering::Relaxed);
    rx.release_consumed().expect("release");
    assert_eq!(
        chunk_count(&seg, f),
        1,
        "only the chunk holding the head stays"
    );
    let (next_taken, _) = fs
        .alloc_chunks(0, 64 << 10)
        .expect("alloc")
        .expect("a free chunk");
    assert_eq!(
        next_taken, oldest,
        "the chunk finished longest ago is taken next"
    );
}

/// The chunks a polling reader keeps at a distance never leave its writer waiting: in a
/// segment with room for little more than the fifo, the writer runs out of chunk memory while
/// the reader keeps finished ones, and the reader, finding the fifo empty with the writer out
/// of room, gives them back one per look until the writer can grow.
#[test]
fn a_writer_never_waits_on_the_chunks_its_reader_keeps() {
    let seg = segment(0); // 1 MiB segment
    let fs = seg.fifo_segment();
    let f = fifo::create(fs, 0, 512 << 10).expect("fifo");
    // Another fifo of the segment, never read, holds 448 KiB of it.
    let other = fifo::create(fs, 0, 512 << 10).expect("other fifo");
    let mut other_tx = FifoProducer::attach(&seg, other).expect("other tx");
    for piece in pattern(0, 448 << 10).chunks(64 << 10) {
        assert_eq!(other_tx.enqueue(piece).expect("fill"), piece.len());
    }
    let mut tx = FifoProducer::attach(&seg, f).expect("tx");
    let mut rx = FifoConsumer::attach(&seg, f)
        .expect("rx")
        .recycle_at_a_distance();
    let mut buf = vec![0u8; 64 << 10];
    let (mut sent, mut no_memory) = (0u64, 0);
    for _ in 0..64 {
        let data = pattern(sent, 64 << 10);
        let mut looks = 0;
        let n = loop {
            match tx.enqueue(&data) {
                Ok(n) => break n,
                Err(FifoError::NoMemory) => {
                    no_memory += 1;
                    looks += 1;
                    assert!(
                        looks <= 64,
                        "the writer stayed blocked through {looks} looks"
                    );
                    assert!(rx.is_empty().expect("is_empty"));
                }
                Err(e) => panic!("enqueue: {e}"),
            }
        };
        let mut got = 0;
        while got < n {
            got += rx.dequeue(&mut buf[got..n]).expect("dequeue");
        }
        assert_eq!(&buf[..n], &data[..n], "at byte {sent}");
        sent += n as u64;
    }
    assert!(sent >= 63 * (64 << 10), "moved {sent} bytes");
    assert!(
        no_memory > 0,
        "the segment never ran short: the test did not test the rule"
    );
}

#[test]
fn full_fifo_and_exhausted_segment_are_reported() {
    let seg = segment(0); // 1 MiB segment
    let fs = seg.fifo_segment();
    let f = fifo::create(fs, 0, 8192).expect("fifo");
    let mut tx = FifoProducer::attach(&seg, f).expect("tx");
    assert_eq!(tx.enqueue(&[1; 10_000]).expect("partial"), 8192);
    assert_eq!(tx.enqueue(&[1; 1]), Err(FifoError::Full));
    assert!(matches!(
        fifo::create(fs, 0, 1 << 30),
        Err(FifoError::BadSize(_))
    ));
    // A fifo larger than what is left of the segment fills what it can.
    let big = fifo::create(fs, 0, 1 << 19).expect("fifo");
    let mut tx = FifoProducer::attach(&seg, big).expect("tx");
    let mut total = 0;
    let err = loop {
        match tx.enqueue(&[7; 1 << 16]) {
            Ok(n) => total += n,
            Err(e) => break e,
        }
    };
    assert!(total >= 4096);
    assert!(
        matches!(err, FifoError::NoMemory | FifoError::Full),
        "{err}"
    );
}

#[test]
fn peek_and_drop_leave_the_rest_in_order() {
    let seg = segment(1);
    let f = fifo::create_at(seg.fifo_segment(), 0, 16 << 10, 4000).expect("fifo");
    let mut tx = FifoProducer::attach(&seg, f).expect("tx");
    let mut rx = FifoConsumer::attach(&seg, f).expect("rx");
    let data = pattern(0, 10_000);
    assert_eq!(tx.enqueue(&data).expect("enq"), 10_000);
    let mut buf = vec![0u8; 3000];
    assert_eq!(rx.peek(5000, &mut buf).expect("peek"), 3000);
    assert_eq!(&buf[..], &data[5000..8000]);
    assert_eq!(rx.drop_bytes(4500).expect("drop"), 4500);
    assert_eq!(rx.len().expect("len"), 5500);
    let mut rest = vec![0u8; 6000];
    assert_eq!(rx.dequeue(&mut rest).expect("deq"), 5500);
    assert_eq!(&rest[..5500], &data[4500..]);
    assert_eq!(rx.peek(0, &mut buf), Err(FifoError::Empty));
    assert_eq!(rx.drop_bytes(1), Err(FifoError::Empty));
}

#[test]
fn has_event_and_dequeue_notifications_follow_the_flag_protocol() {
    let seg = segment(1);
    let f = fifo::create(seg.fifo_segment(), 0, 8192).expect("fifo");
    let mut tx = FifoProducer::attach(&seg, f).expect("tx");
    let mut rx = FifoConsumer::attach(&seg, f).expect("rx");
    tx.enqueue(&[1; 100]).expect("enq");
    assert!(
        tx.set_has_event().expect("set"),
        "first setter posts the event"
    );
    assert!(
        !tx.set_has_event().expect("set"),
        "already pending: no second event"
    );
    assert_eq!(seg.read_u32(f + 40).ok(), Some(1));
    assert!(rx.clear_has_event().expect("clear"));
    assert!(!rx.clear_has_event().expect("clear"));
    tx.add_want_deq_ntf(WANT_DEQ_NOTIF_IF_EMPTY).expect("want");
    assert_eq!(seg.read_u32(f + 44).ok(), Some(4));
    let mut buf = [0u8; 60];
    let n = rx.dequeue(&mut buf).expect("deq") as u32;
    assert!(!rx.needs_deq_ntf(n).expect("ntf"), "not empty yet");
    let n = rx.dequeue(&mut buf).expect("deq") as u32;
    assert!(rx.needs_deq_ntf(n).expect("ntf"), "became empty");
    rx.set_has_deq_ntf().expect("has");
    assert!(!rx.needs_deq_ntf(n).expect("ntf"), "already notified");
    tx.clear_deq_ntf(WANT_DEQ_NOTIF_IF_EMPTY).expect("clear");
    tx.add_want_deq_ntf(WANT_DEQ_NOTIF_IF_FULL).expect("want");
    tx.enqueue(&[2; 8192]).expect("fill");
    let n = rx.dequeue(&mut buf).expect("deq") as u32;
    assert!(rx.needs_deq_ntf(n).expect("ntf"), "was full");
}

fn corrupt(edit: impl FnOnce(&Segment, u64)) -> FifoError {
    let seg = segment(1);
    let f = fifo::create(seg.fifo_segment(), 0, 16 << 10).expect("fifo");
    let mut tx = FifoProducer::attach(&seg, f).expect("tx");
    tx.enqueue(&[5; 6000]).expect("enq");
    edit(&seg, f);
    let mut buf = [0u8; 8000];
    match FifoConsumer::attach(&seg, f) {
        Err(e) => e,
        Ok(mut rx) => match rx.dequeue(&mut buf) {
            Err(e) => e,
            Ok(n) => panic!("dequeued {n} bytes from a corrupted fifo"),
        },
    }
}

#[test]
fn corrupted_fifo_headers_are_errors_not_out_of_bounds_reads() {
    let field = |e: FifoError| match e {
        FifoError::Corrupt { field, .. } => field,
        FifoError::Segment(s) => {
            assert!(matches!(s, sapi_shm::SegmentError::BadChunk { .. }), "{s}");
            "bad chunk"
        }
        other => panic!("unexpected {other:?}"),
    };
    // Tail beyond head + size.
    assert_eq!(
        field(corrupt(|s, f| s
            .atomic_u32(f + l::TAIL)
            .expect("t")
            .store(1 << 30, std::sync::atomic::Ordering::Relaxed))),
        "tail - head"
    );
    // Chunk offsets outside the segment, misaligned, or into the header.
    assert_eq!(
        field(corrupt(|s, f| s
            .write_u64(f + l::HEAD_CHUNK, 1 << 40)
            .expect("w"))),
        "bad chunk"
    );
    assert_eq!(
        field(corrupt(|s, f| s
            .write_u64(f + l::HEAD_CHUNK, 0x1001)
            .expect("w"))),
        "bad chunk"
    );
    assert_eq!(
        field(corrupt(|s, f| s
            .write_u64(f + l::HEAD_CHUNK, 8)
            .expect("w"))),
        "bad chunk"
    );
    // A chunk whose next link leaves the segment.
    assert_eq!(
        field(corrupt(|s, f| {
            let c = s.read_u64(f + l::HEAD_CHUNK).expect("hc");
            s.write_u64(c + l::CHUNK_NEXT, (s.len() - 8) & !7)
                .expect("w");
        })),
        "bad chunk"
    );
    // A chunk length reaching past the end of the segment.
    assert_eq!(
        field(corrupt(|s, f| {
            let c = s.read_u64(f + l::HEAD_CHUNK).expect("hc");
            s.write_u32(c + l::CHUNK_LENGTH, u32::MAX).expect("w");
        })),
        "bad chunk"
    );
    // Size 0.
    assert_eq!(
        field(corrupt(|s, f| s.write_u32(f + l::FIFO_SIZE, 0).expect("w"))),
        "size"
    );
    // A head chunk that does not hold the head.
    assert_eq!(
        field(corrupt(|s, f| {
            let c = s.read_u64(f + l::HEAD_CHUNK).expect("hc");
            s.write_u32(c + l::CHUNK_START_BYTE, 1 << 20).expect("w");
        })),
        "head_chunk"
    );
}

/// The chunk lengths of a fifo's list, start to end, after checking that each starts where the
/// one before ended and that `end_chunk` is the last.
fn chunk_lengths(seg: &Segment, f: u64) -> Vec<u32> {
    let mut c = seg
        .atomic_u64(f + l::START_CHUNK)
        .expect("start")
        .load(std::sync::atomic::Ordering::Relaxed);
    let (mut lengths, mut next_start, mut last) = (vec![], 0u32, 0);
    while c != 0 {
        assert_eq!(
            seg.read_u32(c + l::CHUNK_START_BYTE).expect("start_byte"),
            next_start
        );
        let len = seg.read_u32(c + l::CHUNK_LENGTH).expect("length");
        lengths.push(len);
        next_start = next_start.wrapping_add(len);
        last = c;
        c = seg
            .atomic_u64(c + l::CHUNK_NEXT)
            .expect("next")
            .load(std::sync::atomic::Ordering::Relaxed);
    }
    assert_eq!(seg.read_u64(f + l::END_CHUNK).expect("end_chunk"), last);
    lengths
}

/// The segment header's `pct_first_alloc` sizes every new fifo's first chunk: that share of
/// the fifo, rounded up to a power of two, at least 4 KiB, and past the largest class (4 MiB)
/// several chunks (docs/sessions.md §7.4).
#[rstest::rstest]
#[case::vcl_sends_none(0, 64 << 10, &[4096])]
#[case::half(50, 64 << 10, &[32 << 10])]
#[case::thirty_percent_rounds_up(30, 64 << 10, &[32 << 10])]
#[case::a_tiny_share_is_the_smallest_chunk(1, 64 << 10, &[4096])]
#[case::the_whole_fifo(100, 1 << 20, &[1 << 20])]
#[case::past_the_largest_class(100, 6 << 20, &[4 << 20, 2 << 20])]
fn the_first_chunk_is_the_segments_share_of_the_fifo(
    #[case] pct: u8,
    #[case] size: u32,
    #[case] chunks: &[u32],
) {
    let seg = segment(64);
    seg.fifo_segment().set_pct_first_alloc(pct).expect("pct");
    let f = fifo::create(seg.fifo_segment(), 0, size).expect("fifo");
    assert_eq!(chunk_lengths(&seg, f), chunks);
    fifo::free(seg.fifo_segment(), f).expect("free");
    // Bytes stream through such a fifo as through any other, across its first chunks' ends.
    stream(&seg, size, 0, 3 * u64::from(size) + 12_345, 70_001, 65_536);
}
