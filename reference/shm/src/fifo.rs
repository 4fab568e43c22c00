//! The single-producer single-consumer byte fifo `svm_fifo` (shm spec §5), placed in a
//! segment: the 192-byte shared header, a singly linked list of chunks that grows as the
//! producer needs room and shrinks as the consumer finishes chunks.
//!
//! Owns: creating and freeing fifos in a segment, and the two halves of the algorithm —
//! [`FifoProducer`] (enqueue, chunk growth, `has_event`, `want_deq_ntf`) and [`FifoConsumer`]
//! (dequeue, peek, drop, returning consumed chunks to the slice free list — at once, as VPP's
//! reader does, or at a distance, [`FifoConsumer::recycle_at_a_distance`] — and `has_deq_ntf`).
//! They are separate types taking `&mut self`, so one process cannot have two producers or two
//! consumers of a fifo by accident.
//!
//! Positions are free-running `u32` byte counts (wrapping; compared with signed differences).
//! Orderings (§5.3): each side loads its own index relaxed and the peer's with acquire, and
//! publishes its own with release after the data copy and chunk-list changes. Chunk `next`
//! links are atomics (release on link, acquire on follow), because the consumer may look at
//! the last chunk's `next` while the producer appends to it.
//!
//! Must never: follow a chunk offset, start byte or length from the segment without checking
//! it against the segment bounds and the fifo's positions; free the last chunk of the list;
//! free a chunk that still holds unread bytes.

use super::alloc::FifoSegmentView;
use super::error::SegmentError;
use super::layout::{fifo as l, fsh};
use super::memory::{Memory, OutOfBounds};
use super::sync::{Atomic, Ordering, fence};

/// How far behind the head a finished chunk stays linked before a reader that recycles at a
/// distance ([`FifoConsumer::recycle_at_a_distance`]) frees it: at most this, and at most the
/// fifo's free space when the reader leaves a chunk (so the fifo then holds at most its size in
/// chunks, plus the chunk straddling the distance; if the writer fills it before the reader
/// leaves another chunk, up to twice its size until it does, or until a release).
///
/// Why not free it at once, as VPP's reader does: the free lists are last in, first out
/// (shm spec §3.2), so the producer's next growth pops the very chunk the reader just drained,
/// whose lines sit in the reader's cache, and every store of the next write first takes its
/// line back from the other CPU. A chunk freed 4 MiB of reading later has left the reader's
/// private caches (2 MiB of L2 on the Xeon this was measured on; 1 MiB on the EPYC of the same
/// kind, not yet measured with it): the
/// fifo then cycles through as much memory as a ring of its size, and moves what a ring moves
/// (README, Performance). The producer side is unchanged, so a VCL producer benefits alike.
/// Only within one chunk size class, and only until the next batch is freed: the free list
/// is shared by the slice's fifos.
pub const RECYCLE_DISTANCE: u32 = 4 << 20;

/// `want_deq_ntf` bit: notify the producer on every dequeue.
pub const WANT_DEQ_NOTIF: u32 = 1;
/// `want_deq_ntf` bit: notify if the fifo was full before the dequeue.
pub const WANT_DEQ_NOTIF_IF_FULL: u32 = 2;
/// `want_deq_ntf` bit: notify when the fifo becomes empty.
pub const WANT_DEQ_NOTIF_IF_EMPTY: u32 = 4;

/// Errors of the fifo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FifoError {
    /// No free space.
    #[error("fifo full")]
    Full,
    /// Nothing to read.
    #[error("fifo empty")]
    Empty,
    /// The fifo needs another chunk and the segment has none left.
    #[error("fifo cannot grow: segment out of chunk memory")]
    NoMemory,
    /// A header or chunk field is inconsistent.
    #[error("corrupt fifo at {offset:#x}: {field} = {value:#x}")]
    Corrupt {
        /// Offset of the fifo header (or chunk).
        offset: u64,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// Fifo size out of range at creation.
    #[error("fifo size {0} is 0 or above the segment's maximum")]
    BadSize(u64),
    /// An allocator error.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// An access outside the segment.
    #[error(transparent)]
    OutOfBounds(#[from] OutOfBounds),
}

#[inline]
fn pos_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
#[inline]
fn pos_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[derive(Debug, Clone, Copy)]
struct Chunk {
    off: u64,
    start: u32,
    len: u32,
}

impl Chunk {
    fn end(&self) -> u32 {
        self.start.wrapping_add(self.len)
    }
    fn includes(&self, pos: u32) -> bool {
        pos.wrapping_sub(self.start) < self.len
    }
    fn data(&self, pos: u32) -> u64 {
        self.off + l::CHUNK_HEADER_SIZE + pos.wrapping_sub(self.start) as u64
    }
}

/// The data bytes a fifo of `size` starts with in a segment whose header says `pct`
/// (`pct_first_alloc`): that share of the size, at most all of it. The allocator rounds it up
/// to a chunk class, at least the smallest (4 KiB: the whole first chunk at `pct` 0), and
/// past the largest class it takes several chunks.
pub fn first_chunk_bytes(pct: u8, size: u32) -> u64 {
    (u64::from(pct.min(100)) * u64::from(size) / 100).max(1)
}

/// Creates a fifo of `size` bytes in `slice` of the segment: a fresh 192-byte header (from
/// the slice's free list of headers or the bump allocator, 64-byte aligned) and the chunk the
/// segment's `pct_first_alloc` asks for ([`first_chunk_bytes`]; the smallest class at 0, as
/// every VCL app has it). Positions start at 0.
pub fn create<M: Memory>(
    fs: FifoSegmentView<'_, M>,
    slice: u32,
    size: u32,
) -> Result<u64, FifoError> {
    create_at(fs, slice, size, 0)
}

/// As [`create`], with head and tail starting at `start_pos` (VPP's `svm_fifo_init_pointers`;
/// lets tests exercise the `u32` wrap of positions).
pub fn create_at<M: Memory>(
    fs: FifoSegmentView<'_, M>,
    slice: u32,
    size: u32,
    start_pos: u32,
) -> Result<u64, FifoError> {
    let mem = fs.memory();
    let max = 1u64 << fs.max_log2_fifo_size()?.min(31);
    if size == 0 || size as u64 > max {
        return Err(FifoError::BadSize(size as u64));
    }
    let n_slices = fs.n_slices()? as u32;
    if slice >= n_slices {
        return Err(SegmentError::BadSlice { slice, n_slices }.into());
    }
    let slice_off = fsh::SIZE + fsh::SLICE_SIZE * slice as u64;
    let free_hdr = mem.read_u64(slice_off + fsh::SLICE_FREE_FIFOS)?;
    let f = if free_hdr != 0 {
        mem.check(free_hdr, l::SIZE)?;
        let next = mem.read_u64(free_hdr + l::NEXT)?;
        mem.write_u64(slice_off + fsh::SLICE_FREE_FIFOS, next)?;
        free_hdr
    } else {
        fs.alloc(l::SIZE, 64)?
    };
    let first_bytes = first_chunk_bytes(fs.pct_first_alloc()?, size);
    let Some((first, last)) = fs.alloc_chunks(slice, first_bytes)? else {
        // Give the header back to the slice's free list.
        mem.write_u64(f + l::NEXT, free_hdr_link(mem, slice_off)?)?;
        mem.write_u64(slice_off + fsh::SLICE_FREE_FIFOS, f)?;
        return Err(FifoError::NoMemory);
    };
    // One chunk, unless the share outgrew the largest class.
    number_chunks(fs, first, last, start_pos, first_bytes)?;
    let min_chunk = fs.class_size(0) as u32;
    // VPP: size > 32 KiB ? size / 8 : 4 KiB, at most 64 KiB (in units of the smallest chunk).
    let min_alloc = if size > 8 * min_chunk {
        size / 8
    } else {
        min_chunk
    }
    .min(16 * min_chunk);
    mem.atomic_u64(f + l::START_CHUNK)?
        .store(first, Ordering::Relaxed);
    mem.write_u64(f + l::END_CHUNK, last)?;
    mem.write_u32(f + l::MIN_ALLOC, min_alloc)?;
    mem.write_u32(f + l::FIFO_SIZE, size)?;
    mem.write_u8(f + l::SLICE_INDEX, slice as u8)?;
    mem.write_u64(f + l::NEXT, 0)?;
    mem.atomic_u32(f + l::HAS_EVENT)?
        .store(0, Ordering::Relaxed);
    mem.atomic_u32(f + l::WANT_DEQ_NTF)?
        .store(0, Ordering::Relaxed);
    mem.atomic_u32(f + l::HAS_DEQ_NTF)?
        .store(0, Ordering::Relaxed);
    mem.write_u8(f + l::N_SUBSCRIBERS, 0)?;
    mem.write_u32(f + l::DEQ_THRESH, 0)?;
    mem.write_u64(f + l::HEAD_CHUNK, first)?;
    mem.write_u64(f + l::TAIL_CHUNK, first)?;
    mem.atomic_u32(f + l::HEAD)?
        .store(start_pos, Ordering::Relaxed);
    mem.atomic_u32(f + l::TAIL)?
        .store(start_pos, Ordering::Release);
    mem.atomic_u32(fsh::N_ACTIVE_FIFOS)?
        .fetch_add(1, Ordering::Relaxed);
    let vm = slice_off + fsh::SLICE_VIRTUAL_MEM;
    mem.write_u64(vm, mem.read_u64(vm)?.wrapping_add(size as u64))?;
    Ok(f)
}

/// Sets `start_byte` of each chunk of the fresh list `first..=last` (allocated for `bytes`),
/// counting from `start`. The list is the allocator's, but it lies in memory every app of the
/// segment can write, so the walk stops at the most links `bytes` can need: a cycle planted
/// by an app must not hang the server (which numbers first chunks) or a producer.
fn number_chunks<M: Memory>(
    fs: FifoSegmentView<'_, M>,
    first: u64,
    last: u64,
    mut start: u32,
    bytes: u64,
) -> Result<(), FifoError> {
    let mem = fs.memory();
    let mut links_left = bytes / fs.class_size(0) + 1;
    let mut c = first;
    loop {
        mem.write_u32(c + l::CHUNK_START_BYTE, start)?;
        if c == last {
            return Ok(());
        }
        links_left -= 1;
        if links_left == 0 {
            return Err(FifoError::Corrupt {
                offset: c,
                field: "new chunk list: next (a cycle?)",
                value: c,
            });
        }
        start = start.wrapping_add(mem.read_u32(c + l::CHUNK_LENGTH)?);
        c = mem.atomic_u64(c + l::CHUNK_NEXT)?.load(Ordering::Relaxed);
    }
}

fn free_hdr_link<M: Memory>(mem: &M, slice_off: u64) -> Result<u64, OutOfBounds> {
    mem.read_u64(slice_off + fsh::SLICE_FREE_FIFOS)
}

/// Frees the fifo at `f` once neither side uses it any more: all its chunks go to the slice's
/// chunk free lists, the header to the slice's free list of headers.
pub fn free<M: Memory>(fs: FifoSegmentView<'_, M>, f: u64) -> Result<(), FifoError> {
    let mem = fs.memory();
    mem.check(f, l::SIZE)?;
    let slice = mem.read_u8(f + l::SLICE_INDEX)? as u32;
    let n_slices = fs.n_slices()? as u32;
    if slice >= n_slices {
        return Err(SegmentError::BadSlice { slice, n_slices }.into());
    }
    let start = mem.atomic_u64(f + l::START_CHUNK)?.load(Ordering::Acquire);
    if start != 0 {
        fs.free_chunks(slice, start)?;
    }
    let size = mem.read_u32(f + l::FIFO_SIZE)?;
    mem.atomic_u64(f + l::START_CHUNK)?
        .store(0, Ordering::Relaxed);
    for field in [l::END_CHUNK, l::HEAD_CHUNK, l::TAIL_CHUNK] {
        mem.write_u64(f + field, 0)?;
    }
    let slice_off = fsh::SIZE + fsh::SLICE_SIZE * slice as u64;
    mem.write_u64(f + l::NEXT, free_hdr_link(mem, slice_off)?)?;
    mem.write_u64(slice_off + fsh::SLICE_FREE_FIFOS, f)?;
    let vm = slice_off + fsh::SLICE_VIRTUAL_MEM;
    mem.write_u64(vm, mem.read_u64(vm)?.wrapping_sub(size as u64))?;
    mem.atomic_u32(fsh::N_ACTIVE_FIFOS)?
        .fetch_sub(1, Ordering::Relaxed);
    Ok(())
}

/// What both halves validate and cache when attaching.
struct FifoRef<'m, M: Memory> {
    fs: FifoSegmentView<'m, M>,
    f: u64,
    size: u32,
    slice: u32,
    max_chunks: u64,
    // The two positions, bounds- and alignment-checked once here: every enqueue and dequeue
    // touches them, and re-checking cost a 64-byte write and read a tenth of its instructions.
    head: &'m M::A32,
    tail: &'m M::A32,
}

impl<M: Memory> std::fmt::Debug for FifoRef<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FifoRef")
            .field("f", &self.f)
            .field("size", &self.size)
            .field("slice", &self.slice)
            .finish_non_exhaustive()
    }
}

impl<'m, M: Memory> FifoRef<'m, M> {
    fn attach(mem: &'m M, f: u64) -> Result<Self, FifoError> {
        let fs = FifoSegmentView::new(mem);
        let corrupt = |field, value| FifoError::Corrupt {
            offset: f,
            field,
            value,
        };
        if !f.is_multiple_of(8) || f < fsh::SIZE {
            return Err(corrupt("header offset", f));
        }
        mem.check(f, l::SIZE)?;
        let size = mem.read_u32(f + l::FIFO_SIZE)?;
        if size == 0 || size > 1 << 31 {
            return Err(corrupt("size", size as u64));
        }
        let slice = mem.read_u8(f + l::SLICE_INDEX)? as u32;
        if slice >= fs.n_slices()? as u32 {
            return Err(corrupt("slice_index", slice as u64));
        }
        let max_chunks = mem.len() / (l::CHUNK_HEADER_SIZE + fs.class_size(0)) + 1;
        Ok(Self {
            fs,
            f,
            size,
            slice,
            max_chunks,
            head: mem.atomic_u32(f + l::HEAD)?,
            tail: mem.atomic_u32(f + l::TAIL)?,
        })
    }

    fn mem(&self) -> &'m M {
        self.fs.memory()
    }

    /// `start_chunk`, which only the fifo's reader changes.
    fn start_chunk(&self) -> Result<u64, FifoError> {
        Ok(self
            .mem()
            .atomic_u64(self.f + l::START_CHUNK)?
            .load(Ordering::Relaxed))
    }

    fn corrupt(&self, field: &'static str, value: u64) -> FifoError {
        FifoError::Corrupt {
            offset: self.f,
            field,
            value,
        }
    }

    fn chunk(&self, off: u64) -> Result<Chunk, FifoError> {
        let len = self.fs.check_chunk(off)?;
        if len == 0 {
            return Err(self.corrupt("chunk length", off));
        }
        let start = self.mem().read_u32(off + l::CHUNK_START_BYTE)?;
        Ok(Chunk { off, start, len })
    }

    fn next(&self, c: &Chunk) -> Result<u64, FifoError> {
        // Acquire pairs with the producer's release when it linked the next chunk.
        Ok(self
            .mem()
            .atomic_u64(c.off + l::CHUNK_NEXT)?
            .load(Ordering::Acquire))
    }

    /// Occupancy from a (head, tail) pair, rejecting impossible values.
    fn occupancy(&self, head: u32, tail: u32) -> Result<u32, FifoError> {
        let n = tail.wrapping_sub(head);
        if n > self.size {
            return Err(self.corrupt("tail - head", n as u64));
        }
        Ok(n)
    }

    /// Walks from `c` to the chunk holding `pos` (which must be reachable).
    fn seek(&self, mut c: Chunk, pos: u32) -> Result<Chunk, FifoError> {
        let mut steps = 0;
        while !c.includes(pos) {
            steps += 1;
            let n = self.next(&c)?;
            if n == 0 || steps > self.max_chunks {
                return Err(self.corrupt("chunk list does not reach position", pos as u64));
            }
            let nc = self.chunk(n)?;
            if nc.start != c.end() {
                return Err(self.corrupt("chunk start_byte", nc.start as u64));
            }
            c = nc;
        }
        Ok(c)
    }
}

/// Where a copy across chunks ended: the chunk holding `end`, or the offset of the chunk after
/// the last one touched (0 if none yet) when `end` is exactly at that chunk's end; and the
/// last chunk touched.
fn copy_chunks<M: Memory>(
    fr: &FifoRef<'_, M>,
    first: Chunk,
    pos: u32,
    len: usize,
    mut each: impl FnMut(u64, usize, usize) -> Result<(), FifoError>,
) -> Result<(u64, Chunk), FifoError> {
    let mut c = first;
    let mut done = 0usize;
    let mut p = pos;
    let mut steps = 0;
    loop {
        let n = (len - done).min(c.end().wrapping_sub(p) as usize);
        each(c.data(p), done, n)?;
        done += n;
        p = p.wrapping_add(n as u32);
        if p != c.end() {
            return Ok((c.off, c));
        }
        // Landed exactly at the chunk's end: the position continues in the next chunk.
        let next = fr.next(&c)?;
        if done == len || next == 0 {
            if done != len {
                return Err(fr.corrupt("chunk list shorter than data", p as u64));
            }
            return Ok((next, c));
        }
        steps += 1;
        if steps > fr.max_chunks {
            return Err(fr.corrupt("chunk list cycle", next));
        }
        let nc = fr.chunk(next)?;
        if nc.start != p {
            return Err(fr.corrupt("chunk start_byte", nc.start as u64));
        }
        c = nc;
    }
}

/// Bytes in the fifo at `f`, as a third party sees them (the server relaying io events for two
/// apps: neither the producer nor the consumer). `head` is loaded with acquire first, then
/// `tail`: the consumer released `head` after it had seen a `tail` at least as far, so the `tail`
/// read after it is too — loaded the other way round (or `head` relaxed, as each side may for
/// its own position) a bystander can see `head` past `tail`.
pub fn occupancy<M: Memory>(mem: &M, f: u64) -> Result<u32, FifoError> {
    let r = FifoRef::attach(mem, f)?;
    let head = r.head.load(Ordering::Acquire);
    let tail = r.tail.load(Ordering::Acquire);
    r.occupancy(head, tail)
}

/// The fifo's capacity, for [`occupancy`]'s callers.
pub fn size<M: Memory>(mem: &M, f: u64) -> Result<u32, FifoError> {
    Ok(FifoRef::attach(mem, f)?.size)
}

/// The producing (enqueueing) half of a fifo.
///
/// It remembers the last `head` it loaded: `head` only moves forward, so the space that value
/// promises is there for sure, and a write that fits in it does not touch the consumer's cache
/// line. Only a write asking for more loads `head` again (`rtrb` does the same; without it a
/// 64-byte write cost one cache-line transfer between the two cores for `head`, ~110 ns when
/// the two vCPUs sit far apart). What [`FifoProducer::enqueue`] returns is unchanged by it.
///
/// It also remembers the chunk its tail is in (validated when it was found): a write that
/// stays inside it copies and publishes the tail, nothing more. The consumer never frees a
/// chunk at or after the head, and the tail is never behind the head, so the chunk stays ours;
/// what a peer may scribble over its header since then is not read again.
#[derive(Debug)]
pub struct FifoProducer<'m, M: Memory> {
    r: FifoRef<'m, M>,
    /// Our own position, as we last stored it: only the producer writes `tail`, so it never
    /// loads it again. (Loading it on every write cost a 64-byte write half its time across
    /// two CPUs: the consumer, polling `tail`, keeps pulling that line away.)
    tail: u32,
    head_seen: u32,
    tail_chunk: Option<Chunk>,
}

impl<'m, M: Memory> FifoProducer<'m, M> {
    /// Attaches to the fifo whose header is at `f`.
    pub fn attach(mem: &'m M, f: u64) -> Result<Self, FifoError> {
        let r = FifoRef::attach(mem, f)?;
        let head_seen = r.head.load(Ordering::Acquire);
        let tail = r.tail.load(Ordering::Relaxed);
        Ok(Self {
            r,
            tail,
            head_seen,
            tail_chunk: None,
        })
    }

    /// Fifo capacity in bytes.
    pub fn size(&self) -> u32 {
        self.r.size
    }

    /// Bytes that can be enqueued now.
    pub fn free_space(&self) -> Result<u32, FifoError> {
        let head = self.r.head.load(Ordering::Acquire);
        Ok(self.r.size - self.r.occupancy(head, self.tail)?)
    }

    /// The position the next byte enqueued will have (`tail`).
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Appends chunks holding at least `need` more bytes after the end chunk.
    fn grow(&self, head: u32, tail: u32, end: Chunk, need: u32) -> Result<bool, FifoError> {
        let r = &self.r;
        let mem = r.mem();
        let min_alloc = mem.read_u32(r.f + l::MIN_ALLOC)?;
        let occupied = tail.wrapping_sub(head);
        let mut want = min_alloc.min(r.size - occupied);
        want = want.max(need);
        let Some((first, last)) = r.fs.alloc_chunks(r.slice, want as u64)? else {
            return Ok(false);
        };
        // Number the new chunks before they become reachable.
        number_chunks(r.fs, first, last, end.end(), want as u64)?;
        // Release: a consumer that follows this link sees the numbered headers.
        mem.atomic_u64(end.off + l::CHUNK_NEXT)?
            .store(first, Ordering::Release);
        mem.write_u64(r.f + l::END_CHUNK, last)?;
        if mem.read_u64(r.f + l::TAIL_CHUNK)? == 0 {
            mem.write_u64(r.f + l::TAIL_CHUNK, first)?;
        }
        Ok(true)
    }

    /// Enqueues as much of `data` as fits, growing the chunk list from the segment when the
    /// write passes the end chunk. Returns the bytes enqueued; [`FifoError::Full`] if none fit,
    /// [`FifoError::NoMemory`] if the fifo had room but the segment no chunk for it.
    #[inline]
    pub fn enqueue(&mut self, data: &[u8]) -> Result<usize, FifoError> {
        // The common write, inlined into the caller: all of it fits in the space the
        // remembered head promises and inside the remembered tail chunk, short of its end
        // (reaching the end moves `tail_chunk`, which the general path does). It is a copy
        // and a release store; anything else takes the general path.
        let tail = self.tail;
        if let Some(c) = self.tail_chunk {
            let free = self
                .r
                .size
                .saturating_sub(tail.wrapping_sub(self.head_seen)) as usize;
            let room = c.end().wrapping_sub(tail) as usize;
            if !data.is_empty() && data.len() <= free && data.len() < room && c.includes(tail) {
                self.r.mem().write(c.data(tail), data)?;
                self.tail = tail.wrapping_add(data.len() as u32);
                // Release: the bytes above are visible to a consumer that acquires the new
                // tail.
                self.r.tail.store(self.tail, Ordering::Release);
                return Ok(data.len());
            }
        }
        self.enqueue_general(data)
    }

    /// [`Self::enqueue`] of a write that does not fit the remembered head or tail chunk.
    #[inline(never)]
    fn enqueue_general(&mut self, data: &[u8]) -> Result<usize, FifoError> {
        let tail = self.tail;
        let r = &self.r;
        let mem = r.mem();
        let mut head = self.head_seen;
        // A remembered head the tail has run past was not ours to trust (the fifo changed
        // hands): fall through to the load.
        let mut free = r.size.saturating_sub(tail.wrapping_sub(head));
        if (free as usize) < data.len().max(1) {
            // Acquire pairs with the consumer's release of `head`: its reads of the space we
            // are about to overwrite, and its chunk frees, happened before.
            head = r.head.load(Ordering::Acquire);
            self.head_seen = head;
            free = r.size - r.occupancy(head, tail)?;
        }
        if free == 0 {
            return Err(FifoError::Full);
        }
        let mut len = (data.len() as u64).min(free as u64) as u32;
        if len == 0 {
            return Ok(0);
        }
        let end = r.chunk(mem.read_u64(r.f + l::END_CHUNK)?)?;
        if pos_lt(end.end(), tail) {
            return Err(r.corrupt("end_chunk", end.off));
        }
        if pos_gt(tail.wrapping_add(len), end.end()) {
            let have = end.end().wrapping_sub(tail);
            if !self.grow(head, tail, end, len - have)? {
                len = have;
                if len == 0 {
                    return Err(FifoError::NoMemory);
                }
            }
        }
        let tc = match mem.read_u64(r.f + l::TAIL_CHUNK)? {
            0 => r.seek(end, tail)?,
            off => r.chunk(off)?,
        };
        if !tc.includes(tail) {
            return Err(r.corrupt("tail_chunk", tc.off));
        }
        let src = &data[..len as usize];
        let (last, _) = copy_chunks(r, tc, tail, len as usize, |off, at, n| {
            Ok(mem.write(off, &src[at..at + n])?)
        })?;
        mem.write_u64(r.f + l::TAIL_CHUNK, last)?;
        let new_tail = tail.wrapping_add(len);
        self.tail_chunk = match last {
            0 => None,
            off => r.chunk(off).ok().filter(|c| c.includes(new_tail)),
        };
        self.tail = new_tail;
        // Release: the bytes and chunk links above are visible to a consumer that acquires
        // the new tail.
        self.r.tail.store(new_tail, Ordering::Release);
        Ok(len as usize)
    }

    /// Marks that an IO event is pending for the consumer (`has_event`, swap with release).
    /// Returns true if it was not already set: only then should the caller post the event.
    pub fn set_has_event(&self) -> Result<bool, FifoError> {
        Ok(self
            .r
            .mem()
            .atomic_u32(self.r.f + l::HAS_EVENT)?
            .swap(1, Ordering::Release)
            == 0)
    }

    /// Asks the consumer for dequeue notifications ([`WANT_DEQ_NOTIF`] and friends).
    ///
    /// A producer that found the fifo full sets this and then re-checks
    /// [`FifoProducer::free_space`]: the SeqCst fence here and the one in
    /// [`FifoConsumer::needs_deq_ntf`] guarantee that either the re-check sees the consumer's
    /// new head or the consumer sees the request (without them, each side's store could sit in
    /// its store buffer while it loads the other's stale value, and the wake-up is lost).
    pub fn add_want_deq_ntf(&self, bits: u32) -> Result<(), FifoError> {
        self.r
            .mem()
            .atomic_u32(self.r.f + l::WANT_DEQ_NTF)?
            .fetch_or(bits, Ordering::Release);
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Clears the requested notification bits and `has_deq_ntf` after a notification was
    /// handled, so the consumer may send the next one.
    pub fn clear_deq_ntf(&self, bits: u32) -> Result<(), FifoError> {
        let mem = self.r.mem();
        let want = mem.atomic_u32(self.r.f + l::WANT_DEQ_NTF)?;
        let mut cur = want.load(Ordering::Relaxed);
        while let Err(now) =
            want.compare_exchange_weak(cur, cur & !bits, Ordering::AcqRel, Ordering::Relaxed)
        {
            cur = now;
        }
        mem.atomic_u32(self.r.f + l::HAS_DEQ_NTF)?
            .store(0, Ordering::Release);
        Ok(())
    }
}

/// The consuming (dequeueing) half of a fifo.
///
/// It remembers the last `tail` it loaded, as the producer remembers `head`: bytes up to it
/// are ready for sure (and visible: that load was an acquire), so a read they satisfy, or an
/// [`FifoConsumer::is_empty`] they answer, does not touch the producer's cache line.
///
/// And it remembers its head chunk: a read that stays inside it copies and publishes the
/// head, nothing more. Finished chunks are freed when a read leaves a chunk (or drops bytes):
/// all of them, or, recycling at a distance, those that distance behind the head;
/// [`FifoConsumer::release_consumed`] frees them all.
#[derive(Debug)]
pub struct FifoConsumer<'m, M: Memory> {
    r: FifoRef<'m, M>,
    /// Our own position, as we last stored it (only the consumer writes `head`; see
    /// [`FifoProducer`]'s `tail`).
    head: u32,
    tail_seen: std::cell::Cell<u32>,
    head_chunk: Option<Chunk>,
    /// How far behind the head finished chunks stay linked: 0 (VPP's reader) unless
    /// [`FifoConsumer::recycle_at_a_distance`].
    distance: u32,
    /// Recycling at a distance: the chunk our last `dequeue` ended exactly at the end of, when
    /// it was the last chunk then (the writer needed a new one for its next byte): what
    /// [`Self::give_back_to_a_blocked_writer`] looks at. Still linked while set: a read keeps
    /// the chunk it ended at (its lag is at least the bytes it read), the give-back never
    /// frees it, and `release_consumed` and `drop_bytes` clear it.
    ended_at_last: Option<Chunk>,
}

impl<'m, M: Memory> FifoConsumer<'m, M> {
    /// Attaches to the fifo whose header is at `f`.
    pub fn attach(mem: &'m M, f: u64) -> Result<Self, FifoError> {
        let r = FifoRef::attach(mem, f)?;
        let tail_seen = r.tail.load(Ordering::Acquire);
        let head = r.head.load(Ordering::Relaxed);
        Ok(Self {
            r,
            head,
            tail_seen: std::cell::Cell::new(tail_seen),
            head_chunk: None,
            distance: 0,
            ended_at_last: None,
        })
    }

    /// Keeps finished chunks linked until the head is [`RECYCLE_DISTANCE`] past them (or the
    /// fifo's free space, if less), and frees them oldest on top, so that the writer cycles
    /// through the fifo's size as through a ring instead of refilling the chunk this reader
    /// has just drained (the README's Performance section: 0.8× `rtrb` at 64 KiB without,
    /// 1.1× with, on a Xeon).
    ///
    /// The contract that comes with it, because the kept chunks are memory the segment's
    /// writers cannot have: call [`Self::release_consumed`] before waiting for data (an idle
    /// fifo then holds what VPP's does), and expect a streaming fifo to hold up to twice its
    /// size (plus its unfilled last chunk) until then; a reader that polls for ever without
    /// releasing keeps that from the segment's other fifos. Its own writer never waits on them:
    /// a reader that finds the fifo empty after a `dequeue` that ended at the end of the last
    /// chunk (the writer's next byte needs a new chunk) gives back the oldest kept chunk, one
    /// per look. `len`, `peek` and `drop_bytes` take no part in that (`drop_bytes` frees every
    /// finished chunk, as VPP's reader does). `sapi-app` attaches a reader per read and
    /// releases whenever one finds the fifo empty.
    pub fn recycle_at_a_distance(mut self) -> Self {
        self.distance = RECYCLE_DISTANCE;
        self.ended_at_last = None;
        self
    }

    /// Fifo capacity in bytes.
    pub fn size(&self) -> u32 {
        self.r.size
    }

    fn positions(&self) -> (u32, u32) {
        let head = self.head;
        // Acquire pairs with the producer's release of `tail`: bytes and links before it
        // are visible.
        let tail = self.r.tail.load(Ordering::Acquire);
        self.tail_seen.set(tail);
        (head, tail)
    }

    /// Like [`Self::positions`], but from the remembered tail when it already shows at least
    /// `want` bytes (a remembered tail behind head, from a fifo that changed hands, shows none).
    #[inline]
    fn positions_for(&self, want: usize) -> (u32, u32) {
        let head = self.head;
        let tail = self.tail_seen.get();
        let ready = tail.wrapping_sub(head);
        if ready <= self.r.size && ready as usize >= want.max(1) {
            return (head, tail);
        }
        self.positions()
    }

    /// The position of the next byte to dequeue (`head`).
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Bytes ready to read.
    pub fn len(&self) -> Result<u32, FifoError> {
        let (h, t) = self.positions();
        self.r.occupancy(h, t)
    }

    /// Whether nothing is ready.
    ///
    /// Recycling at a distance, on an empty fifo whose last chunk our last `dequeue` ended at
    /// the end of, it also gives back the chunk it finished longest ago, as [`Self::dequeue`]
    /// does (the polling reader's half of [`Self::recycle_at_a_distance`]'s contract).
    pub fn is_empty(&self) -> Result<bool, FifoError> {
        let (h, t) = self.positions_for(1);
        if self.r.occupancy(h, t)? != 0 {
            return Ok(false);
        }
        self.give_back_to_a_blocked_writer(h)?;
        Ok(true)
    }

    /// A polling reader's half of [`Self::recycle_at_a_distance`]'s contract: when the fifo is
    /// empty and our last `dequeue` ended at the end of the last chunk, which is still the last
    /// (the writer's next byte needs a new chunk, which a full segment may not have), the
    /// chunk finished longest ago goes back to the free list — one per look, so a writer that
    /// still cannot grow gets another at the next, until none is left. (It also fires when the
    /// writer simply has not grown yet; a kept chunk given back early costs only distance.)
    fn give_back_to_a_blocked_writer(&self, head: u32) -> Result<(), FifoError> {
        // Set only when recycling at a distance.
        let Some(last) = self.ended_at_last else {
            return Ok(());
        };
        if last.end() != head || self.r.next(&last)? != 0 {
            return Ok(());
        }
        let r = &self.r;
        let start = r.start_chunk()?;
        // Nothing kept, or only `last` (which the writer may be linking a next to right now,
        // and which `ended_at_last` must keep naming a linked chunk).
        if start == last.off {
            return Ok(());
        }
        let first = r.chunk(start)?;
        if pos_gt(first.end(), head) {
            return Ok(());
        }
        self.free_consumed(first.end())
    }

    fn head_chunk(&self, head: u32) -> Result<Chunk, FifoError> {
        let r = &self.r;
        let mem = r.mem();
        match mem.read_u64(r.f + l::HEAD_CHUNK)? {
            0 => r.seek(r.chunk(r.start_chunk()?)?, head),
            off => {
                let c = r.chunk(off)?;
                if !c.includes(head) {
                    return Err(r.corrupt("head_chunk", off));
                }
                Ok(c)
            }
        }
    }

    fn read_at(
        &self,
        head: u32,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(usize, u64, Chunk), FifoError> {
        let r = &self.r;
        let mem = r.mem();
        let hc = self.head_chunk(head)?;
        let pos = head.wrapping_add(offset);
        let c = r.seek(hc, pos)?;
        let n = buf.len();
        let (last, touched) = copy_chunks(r, c, pos, n, |off, at, k| {
            Ok(mem.read(off, &mut buf[at..at + k])?)
        })?;
        Ok((n, last, touched))
    }

    /// Where a read that moves the head to `head` keeps finished chunks from: the recycling
    /// distance behind it, at most the free space (`head` itself for VPP's reader).
    fn keep_from(&self, head: u32) -> u32 {
        let occupied = self.tail_seen.get().wrapping_sub(head);
        head.wrapping_sub(self.distance.min(self.r.size.saturating_sub(occupied)))
    }

    /// Unlinks the finished chunks that end at or before `keep_from` (never the last chunk,
    /// never the one holding `head`) and returns them to the slice free list, then publishes
    /// `head` (release).
    fn advance(
        &mut self,
        head: u32,
        keep_from: u32,
        new_head_chunk: Option<u64>,
    ) -> Result<(), FifoError> {
        self.free_consumed(keep_from)?;
        let r = &self.r;
        if let Some(hc) = new_head_chunk {
            r.mem().write_u64(r.f + l::HEAD_CHUNK, hc)?;
        }
        // Release: our reads of the dequeued bytes happen before the producer overwrites them.
        self.head = head;
        self.r.head.store(head, Ordering::Release);
        Ok(())
    }

    /// Returns every chunk the reader has finished to the slice free list, the one finished
    /// longest ago on top, keeping only the chunk that holds the head (or the last chunk).
    /// For a reader recycling at a distance that is about to wait (the contract of
    /// [`Self::recycle_at_a_distance`]): an idle fifo then holds no more than VPP's does.
    pub fn release_consumed(&mut self) -> Result<(), FifoError> {
        // It may free the chunk our last read ended at, if the writer has linked one after it.
        self.ended_at_last = None;
        self.free_consumed(self.head)
    }

    /// Unlinks from the front of the chunk list the chunks that end at or before `keep_from`
    /// (at or behind the head; never the last chunk) and frees them, the oldest last so that
    /// it is the free list's head: the next chunk any producer of the slice takes is then the
    /// one its reader left longest ago.
    fn free_consumed(&self, keep_from: u32) -> Result<(), FifoError> {
        let r = &self.r;
        let mem = r.mem();
        let start = r.chunk(r.start_chunk()?)?;
        if pos_gt(start.end(), keep_from) {
            return Ok(());
        }
        // Find the first chunk to keep, checking every link on the way, before changing any:
        // a corrupt link found halfway must leave the list as it was.
        let mut c = start;
        let mut n_freed = 0u64;
        while !pos_gt(c.end(), keep_from) {
            let n = r.next(&c)?;
            if n == 0 {
                break;
            }
            n_freed += 1;
            if n_freed > r.max_chunks {
                return Err(r.corrupt("chunk list cycle", n));
            }
            let next = r.chunk(n)?;
            if next.start != c.end() {
                return Err(r.corrupt("chunk start_byte", next.start as u64));
            }
            c = next;
        }
        if n_freed == 0 {
            return Ok(());
        }
        // Reverse the prefix in place (newest first, `start` last with `next` 0), so that
        // freeing it in list order leaves the oldest on top of the free list.
        // Only this reader writes these links, but they are memory a peer can write too: the
        // second walk follows exactly the links the first checked, or stops.
        let keep = c.off;
        let (mut rev, mut at) = (0u64, start.off);
        for _ in 0..n_freed {
            let link = mem.atomic_u64(at + l::CHUNK_NEXT)?;
            let next = link.load(Ordering::Relaxed);
            if next == 0 {
                return Err(r.corrupt("chunk next changed under the reader", at));
            }
            link.store(rev, Ordering::Relaxed);
            rev = at;
            at = next;
        }
        if at != keep {
            return Err(r.corrupt("chunk next changed under the reader", at));
        }
        mem.atomic_u64(r.f + l::START_CHUNK)?
            .store(keep, Ordering::Release);
        r.fs.free_chunks(r.slice, rev)?;
        Ok(())
    }

    /// Dequeues up to `buf.len()` bytes; [`FifoError::Empty`] if there are none.
    #[inline]
    pub fn dequeue(&mut self, buf: &mut [u8]) -> Result<usize, FifoError> {
        let (head, tail) = self.positions_for(buf.len());
        // The common read, inlined into the caller: inside the remembered head chunk, short
        // of its end. It is a copy and a release store; anything else takes the general path.
        let ready = tail.wrapping_sub(head);
        if let Some(c) = self.head_chunk
            && ready != 0
            && ready <= self.r.size
        {
            let len = buf.len().min(ready as usize);
            if (c.end().wrapping_sub(head) as usize) > len && c.includes(head) {
                self.r.mem().read(c.data(head), &mut buf[..len])?;
                self.head = head.wrapping_add(len as u32);
                // Release: our reads of the dequeued bytes happen before the producer
                // overwrites them.
                self.r.head.store(self.head, Ordering::Release);
                return Ok(len);
            }
        }
        self.dequeue_general(buf)
    }

    /// [`Self::dequeue`] of a read that leaves the remembered head chunk (or of none).
    #[inline(never)]
    fn dequeue_general(&mut self, buf: &mut [u8]) -> Result<usize, FifoError> {
        // The positions `dequeue` just looked at (`positions_for` remembers the tail it used).
        let (head, tail) = (self.head, self.tail_seen.get());
        let n = self.r.occupancy(head, tail)?;
        if n == 0 {
            self.give_back_to_a_blocked_writer(head)?;
            return Err(FifoError::Empty);
        }
        let len = (buf.len() as u64).min(n as u64) as usize;
        let (len, last, touched) = self.read_at(head, 0, &mut buf[..len])?;
        let new_head = head.wrapping_add(len as u32);
        self.advance(new_head, self.keep_from(new_head), Some(last))?;
        // After `advance`: it never frees the last chunk, nor one that ends at the head.
        self.ended_at_last = (last == 0 && self.distance != 0).then_some(touched);
        // Reads inside the head chunk leave the chunks before it to the next read that
        // leaves a chunk.
        self.head_chunk = match last {
            0 => None,
            off => self.r.chunk(off).ok().filter(|c| c.includes(new_head)),
        };
        Ok(len)
    }

    /// Copies up to `buf.len()` bytes starting `offset` bytes past the head, without
    /// consuming them.
    pub fn peek(&self, offset: u32, buf: &mut [u8]) -> Result<usize, FifoError> {
        let (head, tail) = self.positions();
        let n = self.r.occupancy(head, tail)?;
        if offset >= n {
            return Err(FifoError::Empty);
        }
        let len = (buf.len() as u64).min((n - offset) as u64) as usize;
        Ok(self.read_at(head, offset, &mut buf[..len])?.0)
    }

    /// Discards up to `len` bytes without copying them; returns how many.
    pub fn drop_bytes(&mut self, len: u32) -> Result<u32, FifoError> {
        let (head, tail) = self.positions();
        let n = self.r.occupancy(head, tail)?;
        if n == 0 {
            return Err(FifoError::Empty);
        }
        let len = len.min(n);
        self.head_chunk = None;
        self.ended_at_last = None;
        // Re-derive the head chunk lazily (VPP sets it to 0 unless the start chunk holds
        // the new head). Every finished chunk goes, at a distance too: a reader that drops
        // (VPP's tx side, peek then drop) takes no part in the give-back to a blocked writer.
        let new_head = head.wrapping_add(len);
        self.advance(new_head, new_head, Some(0))?;
        Ok(len)
    }

    /// Clears `has_event` (swap with acquire) before draining; returns whether it was set.
    pub fn clear_has_event(&self) -> Result<bool, FifoError> {
        Ok(self
            .r
            .mem()
            .atomic_u32(self.r.f + l::HAS_EVENT)?
            .swap(0, Ordering::Acquire)
            != 0)
    }

    /// Whether the producer wants a dequeue notification now, after a dequeue of `n_last`
    /// bytes (VPP's `svm_fifo_needs_deq_ntf`). Call [`FifoConsumer::set_has_deq_ntf`] when
    /// sending one.
    pub fn needs_deq_ntf(&self, n_last: u32) -> Result<bool, FifoError> {
        let mem = self.r.mem();
        // Pairs with the fence in `add_want_deq_ntf` (after our release of `head`).
        fence(Ordering::SeqCst);
        let want = mem
            .atomic_u32(self.r.f + l::WANT_DEQ_NTF)?
            .load(Ordering::Acquire);
        if want == 0 {
            return Ok(false);
        }
        if want & WANT_DEQ_NOTIF != 0 {
            return Ok(true);
        }
        let has = mem
            .atomic_u32(self.r.f + l::HAS_DEQ_NTF)?
            .load(Ordering::Acquire)
            != 0;
        let ready = self.len()?;
        if want & WANT_DEQ_NOTIF_IF_FULL != 0
            && !has
            && ready < self.r.size
            && ready as u64 + n_last as u64 >= self.r.size as u64
        {
            return Ok(true);
        }
        if want & WANT_DEQ_NOTIF_IF_EMPTY != 0 && !has && ready == 0 {
            return Ok(true);
        }
        Ok(false)
    }

    /// Records that a dequeue notification was sent (`has_deq_ntf` = 1).
    pub fn set_has_deq_ntf(&self) -> Result<(), FifoError> {
        self.r
            .mem()
            .atomic_u32(self.r.f + l::HAS_DEQ_NTF)?
            .store(1, Ordering::Release);
        Ok(())
    }
}
