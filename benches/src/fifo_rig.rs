//! A fifo in a memfd segment and the two loops that stream bytes through it.
//!
//! The copy benches place the application buffer at a stated distance (mod 4096) from the
//! fifo bytes it is copied to or from. The fifo decides where its bytes live — chunks are 24
//! bytes of header then data, carved 8-byte aligned and recycled — so each side looks up, from
//! the fields it owns, where its next copy lands: the consumer exactly (its head chunk, or the
//! chunk list it walks anyway); the producer exactly while its tail chunk has room, and as a
//! prediction (the free-list head of the size class the fifo will grow by, or the bump
//! cursor) when the write must grow the fifo. A prediction the consumer's concurrent chunk
//! frees falsify costs only that one write its stated distance.

use std::time::Duration;

use sapi_shm::fifo::{self, FifoConsumer, FifoError, FifoProducer};
use sapi_shm::layout::fifo as l;
use sapi_shm::memory::Memory;
use sapi_shm::segment::Segment;
use sapi_shm::sync::Ordering;

use crate::Backoff;
use crate::buf::PageBuf;

/// Low 48 bits of a free-list head word: the chunk offset (the top 16 are an ABA tag).
const FREE_LIST_OFFSET_MASK: u64 = (1 << 48) - 1;

/// Which reader drains a rig's fifo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// [`FifoConsumer::recycle_at_a_distance`]: what `sapi-app` uses, and the benches' subject.
    AtADistance,
    /// [`FifoConsumer::attach`] alone: VPP's reader, which frees every chunk it finishes at
    /// once (a control: what the distance buys).
    Vpp,
}

/// How a loop moves its bytes: `total` bytes in windows of up to `window` bytes, the
/// application buffer placed `delta` bytes (mod 4096) from the fifo bytes each window lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub window: usize,
    pub delta: usize,
    pub total: u64,
}

/// A segment holding one fifo.
#[derive(Debug)]
pub struct FifoRig {
    /// The segment (a memfd mapping).
    pub seg: Segment,
    /// The fifo header's offset.
    pub fifo: u64,
    /// The reader [`threads`] drains it with.
    pub reader: Reader,
}

impl FifoRig {
    /// A fifo of `size` bytes in a fresh segment with room for it to grow and recycle.
    pub fn new(size: u32) -> Self {
        let seg = crate::app_segment("bench-fifo", 4 * size as u64 + (16 << 20));
        let fifo = fifo::create(seg.fifo_segment(), 0, size).expect("fifo");
        Self {
            seg,
            fifo,
            reader: Reader::AtADistance,
        }
    }

    /// The same rig drained by `reader`.
    pub fn with_reader(self, reader: Reader) -> Self {
        Self { reader, ..self }
    }

    /// A second fifo of `size` bytes in the same segment (the other direction of a duplex
    /// stream).
    pub fn add_fifo(&self, size: u32) -> u64 {
        fifo::create(self.seg.fifo_segment(), 0, size).expect("second fifo")
    }
}

/// Address of the byte at offset `off` of `seg`'s fifo-segment region.
fn addr(seg: &Segment, off: u64) -> usize {
    seg.base_addr() + seg.header_offset() as usize + off as usize
}

fn chunk_holding(seg: &Segment, c: u64, pos: u32) -> Option<usize> {
    if c == 0 {
        return None;
    }
    let start = seg.read_u32(c + l::CHUNK_START_BYTE).ok()?;
    let len = seg.read_u32(c + l::CHUNK_LENGTH).ok()?;
    let k = pos.wrapping_sub(start);
    (k < len).then(|| addr(seg, c + l::CHUNK_HEADER_SIZE + k as u64))
}

/// Where the producer's next write of `want` bytes, at `tail`, starts (see the module doc).
pub fn tail_addr(seg: &Segment, f: u64, tail: u32, want: u32) -> usize {
    let tc = seg.read_u64(f + l::TAIL_CHUNK).unwrap_or(0);
    if let Some(a) = chunk_holding(seg, tc, tail) {
        return a;
    }
    let end = seg.read_u64(f + l::END_CHUNK).unwrap_or(0);
    if let Some(a) = chunk_holding(seg, end, tail) {
        return a;
    }
    // The write grows the fifo by `max(min(min_alloc, size - occupied), want)` bytes in one
    // chunk of that size class (true for every write size benched). Predicted with the fifo
    // at least `min_alloc` short of full, without loading the consumer's `head`: the producer
    // itself does not load it while the head it remembers promises room, and one more
    // cross-CPU line a write was the rig's cost, not the fifo's (a nearly full fifo
    // mispredicts one write's distance).
    let fs = seg.fifo_segment();
    let min_alloc = seg.read_u32(f + l::MIN_ALLOC).unwrap_or(0);
    let grow = min_alloc.max(want);
    let class = fs.class_for(grow as u64);
    let next = fs.free_list_head(0, class).unwrap_or(0) & FREE_LIST_OFFSET_MASK;
    let chunk = if next != 0 {
        next
    } else {
        fs.byte_index().unwrap_or(0).next_multiple_of(8)
    };
    addr(seg, chunk + l::CHUNK_HEADER_SIZE)
}

/// Where the consumer's next read, at `head`, starts once bytes are ready.
pub fn head_addr(seg: &Segment, f: u64, head: u32) -> usize {
    let hc = seg.read_u64(f + l::HEAD_CHUNK).unwrap_or(0);
    if let Some(a) = chunk_holding(seg, hc, head) {
        return a;
    }
    let mut c = seg
        .atomic_u64(f + l::START_CHUNK)
        .map(|a| a.load(Ordering::Acquire))
        .unwrap_or(0);
    for _ in 0..4096 {
        if let Some(a) = chunk_holding(seg, c, head) {
            return a;
        }
        c = match seg.atomic_u64(c + l::CHUNK_NEXT) {
            Ok(n) => n.load(Ordering::Acquire),
            Err(_) => 0,
        };
        if c == 0 {
            break;
        }
    }
    0
}

/// The chunk (offset, first position, length) a side's last address lookup landed in: while
/// its position stays inside, the next address is arithmetic, not a walk over shared headers
/// (which cost the 64-byte rows a fifth of their time, measured with `perf`).
#[derive(Clone, Copy, Default)]
struct Landed(Option<(u64, u32, u32)>);

impl Landed {
    fn addr(&self, seg: &Segment, pos: u32, want: u32) -> Option<usize> {
        let (c, start, len) = self.0?;
        let k = pos.wrapping_sub(start);
        (k as u64 + want as u64 <= len as u64)
            .then(|| addr(seg, c + l::CHUNK_HEADER_SIZE + k as u64))
    }

    /// Remembers the chunk `field` (the fifo's tail or head chunk) names, if it holds `pos`.
    fn refresh(&mut self, seg: &Segment, f: u64, field: u64, pos: u32) {
        self.0 = seg.read_u64(f + field).ok().and_then(|c| {
            let start = seg.read_u32(c + l::CHUNK_START_BYTE).ok()?;
            let len = seg.read_u32(c + l::CHUNK_LENGTH).ok()?;
            (c != 0 && pos.wrapping_sub(start) < len).then_some((c, start, len))
        });
    }
}

/// Enqueues as `pace` says, each write from an application buffer placed `delta` bytes
/// (mod 4096) after the fifo bytes it lands on. Waits with [`Backoff`] when full.
pub fn produce(seg: &Segment, f: u64, pace: Pace, src: &mut PageBuf) {
    let Pace {
        window: write,
        delta,
        total,
    } = pace;
    let mut tx = FifoProducer::attach(seg, f).expect("producer");
    let mut left = total;
    let mut wait = Backoff::default();
    let mut landed = Landed::default();
    while left > 0 {
        let want = (write as u64).min(left) as usize;
        let mut done = 0;
        while done < want {
            let n = (want - done) as u32;
            let tail = tx.tail();
            let dst = match landed.addr(seg, tail, n) {
                Some(a) => a,
                None => {
                    let a = tail_addr(seg, f, tail, n);
                    landed.refresh(seg, f, l::TAIL_CHUNK, tail);
                    a
                }
            };
            let s = src.congruent(dst, delta, want - done);
            match tx.enqueue(s) {
                Ok(n) => {
                    done += n;
                    wait.reset();
                }
                Err(FifoError::Full | FifoError::NoMemory) => wait.snooze(),
                Err(e) => panic!("enqueue: {e}"),
            }
        }
        left -= want as u64;
    }
}

/// Dequeues as `pace` says, with `reader`, into an application buffer placed `delta` bytes
/// (mod 4096) after the fifo bytes read. Waits with [`Backoff`] when empty.
pub fn consume(seg: &Segment, f: u64, reader: Reader, pace: Pace, dst: &mut PageBuf) {
    let Pace {
        window: read,
        delta,
        total,
    } = pace;
    let rx = FifoConsumer::attach(seg, f).expect("consumer");
    // A reader that polls, so at a distance it may keep finished chunks (the segment has room).
    let mut rx = match reader {
        Reader::AtADistance => rx.recycle_at_a_distance(),
        Reader::Vpp => rx,
    };
    let mut left = total;
    let mut wait = Backoff::default();
    let mut landed = Landed::default();
    while left > 0 {
        if rx.is_empty().expect("fifo len") {
            wait.snooze();
            continue;
        }
        let want = (read as u64).min(left) as usize;
        let head = rx.head();
        let at = match landed.addr(seg, head, want as u32) {
            Some(a) => a,
            None => {
                let a = head_addr(seg, f, head);
                landed.refresh(seg, f, l::HEAD_CHUNK, head);
                a
            }
        };
        let d = dst.congruent(at, delta, want);
        match rx.dequeue(d) {
            Ok(n) => {
                left -= n as u64;
                wait.reset();
            }
            Err(FifoError::Empty) => wait.snooze(),
            Err(e) => panic!("dequeue: {e}"),
        }
    }
}

/// Moves `total` bytes each way at once from one thread ([`crate::streams::duplex`]):
/// enqueues into `tx` from `src` and dequeues from `rx` into `dst`, whichever can move,
/// waiting with [`Backoff`] only when neither can — as an app drives a session's two fifos.
pub fn duplex(
    seg: &Segment,
    tx: u64,
    rx: u64,
    write: usize,
    total: u64,
    src: &[u8],
    dst: &mut [u8],
) {
    let mut producer = FifoProducer::attach(seg, tx).expect("producer");
    let mut consumer = FifoConsumer::attach(seg, rx)
        .expect("consumer")
        .recycle_at_a_distance();
    let mut wait = Backoff::default();
    crate::streams::duplex(
        write,
        total,
        |n| match producer.enqueue(&src[..n]) {
            Ok(k) => k,
            Err(FifoError::Full | FifoError::NoMemory) => 0,
            Err(e) => panic!("enqueue: {e}"),
        },
        |n| match consumer.dequeue(&mut dst[..n]) {
            Ok(k) => k,
            Err(FifoError::Empty) => 0,
            Err(e) => panic!("dequeue: {e}"),
        },
        |moved, _, _| {
            if moved {
                wait.reset();
            } else {
                wait.snooze();
            }
        },
    );
}

/// Streams `total` bytes through `rig`'s fifo in writes and reads of `size` bytes placed
/// `delta` apart: producer on the calling thread (pin it to CPU 0 first), consumer on a thread
/// pinned to CPU 1. Returns the time from the first write to the last read.
pub fn threads(rig: &FifoRig, size: usize, delta: usize, total: u64) -> Duration {
    let pace = Pace {
        window: size,
        delta,
        total,
    };
    crate::time_pinned_pair(
        size,
        |dst| consume(&rig.seg, rig.fifo, rig.reader, pace, dst),
        |src| produce(&rig.seg, rig.fifo, pace, src),
    )
}
