//! Fifos in a mapped segment, written from `docs/shm.md` §3 and §5 and `docs/sessions.md` §8:
//!
//! * [`Allocator`]: a segment's chunk allocator as an app uses it — pop a chunk from a slice's
//!   free list of its size class (a lock-free stack whose head is `(tag << 48) | offset`, the tag
//!   bumped by every push and pop), else cut one from the bump allocator by compare-and-swap on
//!   `byte_index`; push consumed chunks back. Both apps of a cut-through pair allocate and free
//!   in the ct segment at the same time as each other (`docs/sessions.md` §8.6), so every shared
//!   word here is touched atomically.
//! * [`FifoWriter`] and [`FifoReader`]: the single producer and the single consumer of one
//!   `svm_fifo_shared_t`: free-running u32 positions, chunks linked from `start_chunk` to
//!   `end_chunk`; the producer grows the chain past its end, the consumer unlinks and frees fully
//!   consumed chunks (never the last); `tail` and `head` are stored with release after the data.
//! * [`Signals`]: the 24-byte signal block (bytes 40..63) of a fifo header — `has_event`,
//!   `want_deq_ntf`, `has_deq_ntf`, `deq_thresh` — which for C is the block of a shadow header in
//!   C's own segment, not of the data fifo (`docs/sessions.md` §2, §5.10).
//!
//! The producer keeps its own list of the chunks from its tail chunk to the end: it never reads
//! the link of a chunk the consumer may already have freed (and whose `next` the free list now
//! uses). The consumer reads links only of chunks it has not freed. Every offset read from the
//! segment is checked before use, and a chain longer than the segment can hold is an error.
//!
//! Must never: read or write outside the mapping, free the last chunk of a fifo, free a chunk
//! the other side may still write, or loop without bound over a chain the target wrote.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::mem::{MemError, Shm};

/// `svm_fifo_shared_t` offsets (`docs/shm.md` §5.1).
pub mod hdr {
    pub const START_CHUNK: u64 = 0;
    pub const END_CHUNK: u64 = 8;
    pub const MIN_ALLOC: u64 = 16;
    pub const SIZE: u64 = 20;
    pub const SLICE_INDEX: u64 = 24;
    pub const NEXT: u64 = 32;
    pub const HAS_EVENT: u64 = 40;
    pub const WANT_DEQ_NTF: u64 = 44;
    pub const HAS_DEQ_NTF: u64 = 48;
    pub const DEQ_THRESH: u64 = 60;
    pub const HEAD_CHUNK: u64 = 64;
    pub const HEAD: u64 = 72;
    pub const TAIL_CHUNK: u64 = 128;
    pub const TAIL: u64 = 136;
    pub const LEN: u64 = 192;
}

/// `svm_fifo_chunk_t` offsets (`docs/shm.md` §5.2).
pub mod chunk {
    pub const START_BYTE: u64 = 0;
    pub const LENGTH: u64 = 4;
    pub const NEXT: u64 = 8;
    pub const ENQ_RB_INDEX: u64 = 16;
    pub const DEQ_RB_INDEX: u64 = 20;
    pub const DATA: u64 = 24;
}

/// Fifo-segment header and slice offsets used by the allocator (`docs/shm.md` §3.1–§3.2).
mod seg {
    pub const N_CACHED_BYTES: u64 = 0;
    pub const N_SLICES: u64 = 20;
    pub const BYTE_INDEX: u64 = 64;
    pub const MAX_BYTE_INDEX: u64 = 72;
    pub const SLICES: u64 = 128;
    pub const SLICE_LEN: u64 = 192;
    pub const FREE_CHUNKS: u64 = 0;
    pub const N_FL_CHUNK_BYTES: u64 = 96;
    pub const NUM_CHUNKS: u64 = 112;
    /// Size classes 4 KiB × 2^i, i = 0..10.
    pub const N_CLASSES: u32 = 11;
    pub const MIN_CHUNK_LOG2: u32 = 12;
}

/// `want_deq_ntf` bits (`docs/shm.md` §5.1, `docs/sessions.md` §8.2).
pub mod deq {
    pub const WANT_DEQ_NOTIF: u32 = 1;
    pub const WANT_DEQ_NOTIF_IF_FULL: u32 = 2;
    pub const WANT_DEQ_NOTIF_IF_EMPTY: u32 = 4;
}

const TAG_ONE: u64 = 1 << 48;
const OFFSET_MASK: u64 = TAG_ONE - 1;

/// Why a fifo or allocator operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FifoError {
    #[error(transparent)]
    Mem(#[from] MemError),
    #[error("fifo at {fifo:#x}: {field} = {value:#x}: {why}")]
    Corrupt {
        fifo: u64,
        field: &'static str,
        value: u64,
        why: &'static str,
    },
    #[error("chunk at {chunk:#x}: {why}")]
    BadChunk { chunk: u64, why: &'static str },
    #[error("slice {slice} of a segment with {n_slices} slices")]
    BadSlice { slice: u8, n_slices: u8 },
}

/// Rounds `n` up to a chunk size class: a power of two of at least 4 KiB (at most the largest
/// class, 4 MiB).
fn class_of(n: u64) -> u32 {
    let log2 = 64 - n.max(1).saturating_sub(1).leading_zeros();
    log2.saturating_sub(seg::MIN_CHUNK_LOG2)
        .min(seg::N_CLASSES - 1)
}

fn class_size(class: u32) -> u64 {
    1u64 << (seg::MIN_CHUNK_LOG2 + class)
}

/// Where a position lies relative to a chunk: in it, or how far past its start.
fn in_chunk(pos: u32, start: u32, len: u32) -> bool {
    pos.wrapping_sub(start) < len
}

/// The allocator of one segment, used from one slice.
#[derive(Clone, Debug)]
pub struct Allocator {
    shm: Arc<Shm>,
    slice: u8,
    /// Counters for evidence: chunks taken from free lists, cut from the bump allocator, freed.
    pub stats: AllocStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    pub popped: u64,
    pub carved: u64,
    pub freed: u64,
}

impl Allocator {
    pub fn new(shm: Arc<Shm>, slice: u8) -> Result<Self, FifoError> {
        let n_slices = shm.u8(seg::N_SLICES, "fsh.n_slices")?;
        if slice >= n_slices {
            return Err(FifoError::BadSlice { slice, n_slices });
        }
        Ok(Allocator {
            shm,
            slice,
            stats: AllocStats::default(),
        })
    }

    fn slice_field(&self, field: u64) -> u64 {
        seg::SLICES + seg::SLICE_LEN * u64::from(self.slice) + field
    }

    /// `byte_index`, the bump allocator's cursor.
    pub fn byte_index(&self) -> Result<u64, FifoError> {
        Ok(self
            .shm
            .atomic_u64(seg::BYTE_INDEX, "fsh.byte_index")?
            .load(Ordering::Acquire))
    }

    /// A chunk header at `c` with room for `len` data bytes, inside the mapping.
    fn check_chunk(&self, c: u64, len: u64) -> Result<(), FifoError> {
        if c < seg::SLICES || !c.is_multiple_of(8) {
            return Err(FifoError::BadChunk {
                chunk: c,
                why: "null, misaligned or inside the fifo-segment header",
            });
        }
        if c.saturating_add(chunk::DATA).saturating_add(len) > self.shm.span_len() {
            return Err(FifoError::BadChunk {
                chunk: c,
                why: "its data reaches past the mapping",
            });
        }
        Ok(())
    }

    fn pop(&self, class: u32) -> Result<Option<u64>, FifoError> {
        let head = self.shm.atomic_u64(
            self.slice_field(seg::FREE_CHUNKS + 8 * u64::from(class)),
            "slice.free_chunks[class]",
        )?;
        let mut old = head.load(Ordering::Acquire);
        loop {
            let c = old & OFFSET_MASK;
            if c == 0 {
                return Ok(None);
            }
            self.check_chunk(c, class_size(class))?;
            let next = self
                .shm
                .atomic_u64(c + chunk::NEXT, "chunk.next")?
                .load(Ordering::Relaxed)
                & OFFSET_MASK;
            let new = next | (old.wrapping_add(TAG_ONE) & !OFFSET_MASK);
            match head.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(Some(c)),
                Err(now) => old = now,
            }
        }
    }

    fn push(&self, class: u32, c: u64) -> Result<(), FifoError> {
        let head = self.shm.atomic_u64(
            self.slice_field(seg::FREE_CHUNKS + 8 * u64::from(class)),
            "slice.free_chunks[class]",
        )?;
        let link = self.shm.atomic_u64(c + chunk::NEXT, "chunk.next")?;
        let mut old = head.load(Ordering::Relaxed);
        loop {
            link.store(old & OFFSET_MASK, Ordering::Relaxed);
            let new = c | (old.wrapping_add(TAG_ONE) & !OFFSET_MASK);
            match head.compare_exchange_weak(old, new, Ordering::Release, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => old = now,
            }
        }
    }

    fn account_free(&self, bytes: u64, add: bool) -> Result<(), FifoError> {
        for (field, name) in [
            (seg::N_CACHED_BYTES, "fsh.n_cached_bytes"),
            (
                self.slice_field(seg::N_FL_CHUNK_BYTES),
                "slice.n_fl_chunk_bytes",
            ),
        ] {
            let a = self.shm.atomic_u64(field, name)?;
            if add {
                a.fetch_add(bytes, Ordering::Relaxed);
            } else {
                a.fetch_sub(bytes, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Cuts a chunk of `class` from the bump allocator (8-byte aligned, header + data).
    fn carve(&self, class: u32) -> Result<Option<u64>, FifoError> {
        let bi = self.shm.atomic_u64(seg::BYTE_INDEX, "fsh.byte_index")?;
        let max = self
            .shm
            .atomic_u64(seg::MAX_BYTE_INDEX, "fsh.max_byte_index")?
            .load(Ordering::Relaxed)
            .min(self.shm.span_len());
        let len = chunk::DATA + class_size(class);
        let mut cur = bi.load(Ordering::Acquire);
        loop {
            let start = cur.div_ceil(8) * 8;
            let end = start + len.div_ceil(8) * 8;
            if end >= max {
                return Ok(None);
            }
            match bi.compare_exchange_weak(cur, end, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.check_chunk(start, class_size(class))?;
                    self.shm
                        .atomic_u32(
                            self.slice_field(seg::NUM_CHUNKS + 4 * u64::from(class)),
                            "slice.num_chunks[class]",
                        )?
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(start));
                }
                Err(now) => cur = now,
            }
        }
    }

    /// One chunk of `class` with its header reset (`start_byte` 0, `next` 0, `length`), from
    /// the free list first; `None` when the segment has no room.
    pub fn alloc(&mut self, class: u32) -> Result<Option<u64>, FifoError> {
        let c = match self.pop(class)? {
            Some(c) => {
                self.account_free(class_size(class), false)?;
                self.stats.popped += 1;
                c
            }
            None => match self.carve(class)? {
                Some(c) => {
                    self.stats.carved += 1;
                    c
                }
                None => return Ok(None),
            },
        };
        let s = &self.shm;
        s.atomic_u32(c + chunk::START_BYTE, "chunk.start_byte")?
            .store(0, Ordering::Relaxed);
        s.atomic_u32(c + chunk::LENGTH, "chunk.length")?
            .store(class_size(class) as u32, Ordering::Relaxed);
        s.atomic_u64(c + chunk::NEXT, "chunk.next")?
            .store(0, Ordering::Relaxed);
        s.atomic_u32(c + chunk::ENQ_RB_INDEX, "chunk.enq_rb_index")?
            .store(0, Ordering::Relaxed);
        s.atomic_u32(c + chunk::DEQ_RB_INDEX, "chunk.deq_rb_index")?
            .store(0, Ordering::Relaxed);
        Ok(Some(c))
    }

    /// Gives chunk `c` of `length` bytes back to the free list of its class.
    pub fn free(&mut self, c: u64, length: u32) -> Result<(), FifoError> {
        let class = class_of(u64::from(length));
        if class_size(class) != u64::from(length) {
            return Err(FifoError::BadChunk {
                chunk: c,
                why: "its length is not a chunk size class",
            });
        }
        self.check_chunk(c, u64::from(length))?;
        self.push(class, c)?;
        self.account_free(u64::from(length), true)?;
        self.stats.freed += 1;
        Ok(())
    }
}

/// The signal block of a fifo header (bytes 40..63).
#[derive(Clone, Debug)]
pub struct Signals {
    shm: Arc<Shm>,
    /// Offset of the fifo header whose block this is.
    pub header: u64,
}

impl Signals {
    pub fn new(shm: Arc<Shm>, header: u64) -> Result<Self, FifoError> {
        check_header(&shm, header)?;
        Ok(Signals { shm, header })
    }

    fn word(
        &self,
        at: u64,
        field: &'static str,
    ) -> Result<&std::sync::atomic::AtomicU32, FifoError> {
        Ok(self.shm.atomic_u32(self.header + at, field)?)
    }

    /// `has_event`, loaded.
    pub fn has_event(&self) -> Result<u32, FifoError> {
        Ok(self
            .word(hdr::HAS_EVENT, "has_event")?
            .load(Ordering::Acquire))
    }
    /// Swaps `has_event` to 1 (release) and returns what it was (`docs/sessions.md` §8.2 rule 2).
    pub fn set_event(&self) -> Result<u32, FifoError> {
        Ok(self
            .word(hdr::HAS_EVENT, "has_event")?
            .swap(1, Ordering::Release))
    }
    /// Swaps `has_event` to 0 (acquire) and returns what it was (§8.4 rule 2).
    pub fn clear_event(&self) -> Result<u32, FifoError> {
        Ok(self
            .word(hdr::HAS_EVENT, "has_event")?
            .swap(0, Ordering::Acquire))
    }
    pub fn want_deq_ntf(&self) -> Result<u32, FifoError> {
        Ok(self
            .word(hdr::WANT_DEQ_NTF, "want_deq_ntf")?
            .load(Ordering::Acquire))
    }
    /// ORs `bits` into `want_deq_ntf` (release).
    pub fn want_deq(&self, bits: u32) -> Result<(), FifoError> {
        self.word(hdr::WANT_DEQ_NTF, "want_deq_ntf")?
            .fetch_or(bits, Ordering::Release);
        Ok(())
    }
    /// Clears `bits` from `want_deq_ntf` (release).
    pub fn unwant_deq(&self, bits: u32) -> Result<(), FifoError> {
        self.word(hdr::WANT_DEQ_NTF, "want_deq_ntf")?
            .fetch_and(!bits, Ordering::Release);
        Ok(())
    }
    pub fn has_deq_ntf(&self) -> Result<u32, FifoError> {
        Ok(self
            .word(hdr::HAS_DEQ_NTF, "has_deq_ntf")?
            .load(Ordering::Acquire))
    }
    pub fn set_has_deq_ntf(&self, v: u32) -> Result<(), FifoError> {
        self.word(hdr::HAS_DEQ_NTF, "has_deq_ntf")?
            .store(v, Ordering::Release);
        Ok(())
    }
    pub fn deq_thresh(&self) -> Result<u32, FifoError> {
        Ok(self
            .word(hdr::DEQ_THRESH, "deq_thresh")?
            .load(Ordering::Relaxed))
    }
    /// The 24 bytes of the block, for evidence.
    pub fn raw(&self) -> Result<[u8; 24], FifoError> {
        let mut b = [0u8; 24];
        self.shm.read(self.header + 40, &mut b, "signals")?;
        Ok(b)
    }
}

/// A fifo header's fields, read once (for checks and evidence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FifoHeader {
    pub start_chunk: u64,
    pub end_chunk: u64,
    pub min_alloc: u32,
    pub size: u32,
    pub slice_index: u8,
    pub has_event: u32,
    pub want_deq_ntf: u32,
    pub has_deq_ntf: u32,
    pub deq_thresh: u32,
    pub head_chunk: u64,
    pub head: u32,
    pub tail_chunk: u64,
    pub tail: u32,
}

impl FifoHeader {
    pub fn read(shm: &Shm, at: u64) -> Result<Self, FifoError> {
        let u32_ = |f: u64, n: &'static str| -> Result<u32, FifoError> {
            Ok(shm.atomic_u32(at + f, n)?.load(Ordering::Acquire))
        };
        let u64_ = |f: u64, n: &'static str| -> Result<u64, FifoError> {
            Ok(shm.atomic_u64(at + f, n)?.load(Ordering::Acquire))
        };
        check_header(shm, at)?;
        Ok(FifoHeader {
            start_chunk: u64_(hdr::START_CHUNK, "start_chunk")?,
            end_chunk: u64_(hdr::END_CHUNK, "end_chunk")?,
            min_alloc: u32_(hdr::MIN_ALLOC, "min_alloc")?,
            size: u32_(hdr::SIZE, "size")?,
            slice_index: shm.u8(at + hdr::SLICE_INDEX, "slice_index")?,
            has_event: u32_(hdr::HAS_EVENT, "has_event")?,
            want_deq_ntf: u32_(hdr::WANT_DEQ_NTF, "want_deq_ntf")?,
            has_deq_ntf: u32_(hdr::HAS_DEQ_NTF, "has_deq_ntf")?,
            deq_thresh: u32_(hdr::DEQ_THRESH, "deq_thresh")?,
            head_chunk: u64_(hdr::HEAD_CHUNK, "head_chunk")?,
            head: u32_(hdr::HEAD, "head")?,
            tail_chunk: u64_(hdr::TAIL_CHUNK, "tail_chunk")?,
            tail: u32_(hdr::TAIL, "tail")?,
        })
    }
}

/// A chunk as one side knows it: where it is and which positions it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub at: u64,
    pub start_byte: u32,
    pub length: u32,
}

impl ChunkRef {
    fn end(&self) -> u32 {
        self.start_byte.wrapping_add(self.length)
    }
}

/// A fifo header offset the target sent: 64-byte aligned, all 192 bytes mapped.
fn check_header(shm: &Shm, at: u64) -> Result<(), FifoError> {
    if !at.is_multiple_of(64) || at < seg::SLICES || at.saturating_add(hdr::LEN) > shm.span_len() {
        return Err(FifoError::Corrupt {
            fifo: at,
            field: "fifo header offset",
            value: at,
            why: "not a 64-byte aligned 192-byte header inside the segment, past its fifo-segment header",
        });
    }
    Ok(())
}

fn read_chunk(shm: &Shm, at: u64, fifo: u64) -> Result<ChunkRef, FifoError> {
    if at < seg::SLICES || !at.is_multiple_of(8) || at.saturating_add(chunk::DATA) > shm.span_len()
    {
        return Err(FifoError::Corrupt {
            fifo,
            field: "chunk offset",
            value: at,
            why: "null, misaligned or inside the fifo-segment header",
        });
    }
    let start_byte = shm
        .atomic_u32(at + chunk::START_BYTE, "chunk.start_byte")?
        .load(Ordering::Acquire);
    let length = shm
        .atomic_u32(at + chunk::LENGTH, "chunk.length")?
        .load(Ordering::Acquire);
    if length == 0
        || at
            .saturating_add(chunk::DATA)
            .saturating_add(u64::from(length))
            > shm.span_len()
    {
        return Err(FifoError::BadChunk {
            chunk: at,
            why: "length 0, or its data reaches past the mapping",
        });
    }
    Ok(ChunkRef {
        at,
        start_byte,
        length,
    })
}

/// The most chunks a chain in `shm` can have (every chunk takes at least 24 + 4096 bytes).
fn max_chain(shm: &Shm) -> usize {
    (shm.span_len() / (chunk::DATA + 4096)) as usize + 1
}

/// The producing end of a fifo.
#[derive(Debug)]
pub struct FifoWriter {
    shm: Arc<Shm>,
    pub at: u64,
    size: u32,
    min_alloc: u32,
    /// The chunks from the one holding `tail` to `end_chunk`, as this producer linked them.
    chain: VecDeque<ChunkRef>,
    pub alloc: Allocator,
    /// The signal block the writer uses (the data fifo's own for S, C's shadow TX for C).
    pub signals: Signals,
}

impl FifoWriter {
    /// Takes the producer's side of the fifo at `at`, whose signals live at `signals`.
    pub fn new(shm: Arc<Shm>, at: u64, signals: Signals) -> Result<Self, FifoError> {
        let h = FifoHeader::read(&shm, at)?;
        if h.size == 0 {
            return Err(FifoError::Corrupt {
                fifo: at,
                field: "size",
                value: 0,
                why: "a fifo of no bytes",
            });
        }
        // Walk from tail_chunk to end_chunk once, before anything was consumed past it.
        let mut chain = VecDeque::new();
        let mut c = h.tail_chunk;
        for _ in 0..max_chain(&shm) {
            let r = read_chunk(&shm, c, at)?;
            chain.push_back(r);
            if c == h.end_chunk {
                break;
            }
            c = shm
                .atomic_u64(c + chunk::NEXT, "chunk.next")?
                .load(Ordering::Acquire);
        }
        if chain.back().map(|r| r.at) != Some(h.end_chunk) {
            return Err(FifoError::Corrupt {
                fifo: at,
                field: "end_chunk",
                value: h.end_chunk,
                why: "not reached from tail_chunk",
            });
        }
        if !chain
            .front()
            .is_some_and(|r| in_chunk(h.tail, r.start_byte, r.length))
        {
            return Err(FifoError::Corrupt {
                fifo: at,
                field: "tail",
                value: h.tail.into(),
                why: "not inside tail_chunk",
            });
        }
        let alloc = Allocator::new(shm.clone(), h.slice_index)?;
        Ok(FifoWriter {
            shm,
            at,
            size: h.size,
            min_alloc: h.min_alloc,
            chain,
            alloc,
            signals,
        })
    }

    fn tail(&self) -> Result<&std::sync::atomic::AtomicU32, FifoError> {
        Ok(self.shm.atomic_u32(self.at + hdr::TAIL, "tail")?)
    }

    /// Bytes the reader has not taken yet.
    pub fn len(&self) -> Result<u32, FifoError> {
        let head = self
            .shm
            .atomic_u32(self.at + hdr::HEAD, "head")?
            .load(Ordering::Acquire);
        let tail = self.tail()?.load(Ordering::Relaxed);
        Ok(tail.wrapping_sub(head))
    }

    pub fn is_empty(&self) -> Result<bool, FifoError> {
        Ok(self.len()? == 0)
    }

    /// Free bytes.
    pub fn free_space(&self) -> Result<u32, FifoError> {
        Ok(self.size.saturating_sub(self.len()?))
    }

    /// Appends chunks holding at least `missing` bytes (and at least min(min_alloc, free)),
    /// all allocated first, then linked after the end chunk at once. False when the segment
    /// has no room.
    fn grow(&mut self, missing: u32, free: u32) -> Result<bool, FifoError> {
        let want = u64::from(missing.max(self.min_alloc.min(free)));
        let mut got: Vec<ChunkRef> = Vec::new();
        let mut have = 0u64;
        let Some(last) = self.chain.back().copied() else {
            return Ok(false);
        };
        let mut start = last.end();
        while have < want {
            let class = class_of(want - have);
            let Some(c) = self.alloc.alloc(class)? else {
                for g in got {
                    self.alloc.free(g.at, g.length)?;
                }
                return Ok(false);
            };
            let length = class_size(class) as u32;
            self.shm
                .atomic_u32(c + chunk::START_BYTE, "chunk.start_byte")?
                .store(start, Ordering::Relaxed);
            if let Some(prev) = got.last() {
                self.shm
                    .atomic_u64(prev.at + chunk::NEXT, "chunk.next")?
                    .store(c, Ordering::Relaxed);
            }
            got.push(ChunkRef {
                at: c,
                start_byte: start,
                length,
            });
            start = start.wrapping_add(length);
            have += u64::from(length);
        }
        let (Some(first), Some(new_end)) = (got.first().copied(), got.last().copied()) else {
            return Ok(true);
        };
        // Link: the consumer may follow `next` of the old end as soon as it is stored.
        self.shm
            .atomic_u64(last.at + chunk::NEXT, "chunk.next")?
            .store(first.at, Ordering::Release);
        self.shm
            .atomic_u64(self.at + hdr::END_CHUNK, "end_chunk")?
            .store(new_end.at, Ordering::Release);
        self.chain.extend(got);
        Ok(true)
    }

    /// Enqueues as much of `data` as fits (growing the fifo as needed); returns how many bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, FifoError> {
        let tail = self.tail()?.load(Ordering::Relaxed);
        let free = self.free_space()?;
        let mut n = (data.len() as u64).min(u64::from(free)) as u32;
        if n == 0 {
            return Ok(0);
        }
        // Forget chunks wholly behind the tail (the consumer may free them), keeping one.
        while self.chain.len() > 1
            && self
                .chain
                .front()
                .is_some_and(|c| !in_chunk(tail, c.start_byte, c.length))
        {
            self.chain.pop_front();
        }
        let Some(last) = self.chain.back().copied() else {
            return Ok(0);
        };
        // The chain runs from the chunk holding the tail to the end: its room is up to the end.
        let room = last.end().wrapping_sub(tail);
        if n > room && !self.grow(n - room, free)? {
            n = room;
            if n == 0 {
                return Ok(0);
            }
        }
        let mut pos = tail;
        let mut done = 0usize;
        let mut tail_chunk = self.chain.front().map_or(0, |c| c.at);
        for c in self.chain.iter() {
            if done == n as usize {
                break;
            }
            if !in_chunk(pos, c.start_byte, c.length) {
                continue;
            }
            let off = pos.wrapping_sub(c.start_byte);
            let k = ((c.length - off) as usize).min(n as usize - done);
            self.shm.write(
                c.at + chunk::DATA + u64::from(off),
                &data[done..done + k],
                "chunk data",
            )?;
            done += k;
            pos = pos.wrapping_add(k as u32);
            tail_chunk = c.at;
        }
        if done != n as usize {
            return Err(FifoError::Corrupt {
                fifo: self.at,
                field: "tail",
                value: tail.into(),
                why: "the producer's chunk chain does not cover the bytes it has room for",
            });
        }
        self.shm
            .atomic_u64(self.at + hdr::TAIL_CHUNK, "tail_chunk")?
            .store(tail_chunk, Ordering::Relaxed);
        self.tail()?.store(pos, Ordering::Release);
        Ok(done)
    }
}

/// The consuming end of a fifo.
#[derive(Debug)]
pub struct FifoReader {
    shm: Arc<Shm>,
    pub at: u64,
    size: u32,
    pub alloc: Allocator,
    /// The signal block the reader uses (the data fifo's own for S, C's shadow RX for C).
    pub signals: Signals,
}

impl FifoReader {
    pub fn new(shm: Arc<Shm>, at: u64, signals: Signals) -> Result<Self, FifoError> {
        let h = FifoHeader::read(&shm, at)?;
        let alloc = Allocator::new(shm.clone(), h.slice_index)?;
        Ok(FifoReader {
            shm,
            at,
            size: h.size,
            alloc,
            signals,
        })
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Bytes ready to read.
    pub fn len(&self) -> Result<u32, FifoError> {
        let tail = self
            .shm
            .atomic_u32(self.at + hdr::TAIL, "tail")?
            .load(Ordering::Acquire);
        let head = self
            .shm
            .atomic_u32(self.at + hdr::HEAD, "head")?
            .load(Ordering::Relaxed);
        Ok(tail.wrapping_sub(head))
    }

    pub fn is_empty(&self) -> Result<bool, FifoError> {
        Ok(self.len()? == 0)
    }

    fn chunk_at(&self, field: u64, name: &'static str) -> Result<ChunkRef, FifoError> {
        let at = self
            .shm
            .atomic_u64(self.at + field, name)?
            .load(Ordering::Acquire);
        read_chunk(&self.shm, at, self.at)
    }

    fn next_of(&self, c: &ChunkRef) -> Result<Option<ChunkRef>, FifoError> {
        let n = self
            .shm
            .atomic_u64(c.at + chunk::NEXT, "chunk.next")?
            .load(Ordering::Acquire);
        if n == 0 {
            return Ok(None);
        }
        let r = read_chunk(&self.shm, n, self.at)?;
        if r.start_byte != c.end() {
            return Err(FifoError::Corrupt {
                fifo: self.at,
                field: "chunk.start_byte",
                value: r.start_byte.into(),
                why: "does not follow the previous chunk's end",
            });
        }
        Ok(Some(r))
    }

    /// Dequeues up to `out.len()` bytes; frees the chunks it consumed wholly (never the last).
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize, FifoError> {
        let head = self
            .shm
            .atomic_u32(self.at + hdr::HEAD, "head")?
            .load(Ordering::Relaxed);
        let avail = self.len()?;
        let n = (out.len() as u64).min(u64::from(avail)) as usize;
        if n == 0 {
            return Ok(0);
        }
        let mut c = self.chunk_at(hdr::HEAD_CHUNK, "head_chunk")?;
        let mut pos = head;
        let mut done = 0usize;
        let limit = max_chain(&self.shm);
        let mut steps = 0usize;
        while done < n {
            steps += 1;
            if steps > limit {
                return Err(FifoError::Corrupt {
                    fifo: self.at,
                    field: "head_chunk",
                    value: c.at,
                    why: "chain longer than the segment can hold",
                });
            }
            if in_chunk(pos, c.start_byte, c.length) {
                let off = pos.wrapping_sub(c.start_byte);
                let k = ((c.length - off) as usize).min(n - done);
                self.shm.read(
                    c.at + chunk::DATA + u64::from(off),
                    &mut out[done..done + k],
                    "chunk data",
                )?;
                done += k;
                pos = pos.wrapping_add(k as u32);
                if done == n {
                    break;
                }
            }
            c = self.next_of(&c)?.ok_or(FifoError::Corrupt {
                fifo: self.at,
                field: "tail",
                value: u64::from(head.wrapping_add(avail)),
                why: "past the end of the chunk chain",
            })?;
        }
        // head_chunk: the chunk holding the new head, or the last one read when the head sits
        // at its end with nothing linked after it yet.
        if !in_chunk(pos, c.start_byte, c.length)
            && let Some(next) = self.next_of(&c)?
        {
            c = next;
        }
        self.shm
            .atomic_u64(self.at + hdr::HEAD_CHUNK, "head_chunk")?
            .store(c.at, Ordering::Relaxed);
        // Unlink and free every chunk from start_chunk that lies wholly before the new head.
        let mut start = self.chunk_at(hdr::START_CHUNK, "start_chunk")?;
        let mut freed = 0usize;
        while start.at != c.at && !in_chunk(pos, start.start_byte, start.length) {
            let Some(next) = self.next_of(&start)? else {
                break;
            };
            self.shm
                .atomic_u64(self.at + hdr::START_CHUNK, "start_chunk")?
                .store(next.at, Ordering::Release);
            self.alloc.free(start.at, start.length)?;
            start = next;
            freed += 1;
            if freed > limit {
                return Err(FifoError::Corrupt {
                    fifo: self.at,
                    field: "start_chunk",
                    value: start.at,
                    why: "chain longer than the segment can hold",
                });
            }
        }
        self.shm
            .atomic_u32(self.at + hdr::HEAD, "head")?
            .store(pos, Ordering::Release);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A real memfd laid out as `docs/shm.md` §2–§3 say, with one fifo whose first chunk is
    /// 4 KiB, as a server would carve it (`docs/sessions.md` §7.4).
    fn segment_with_fifo(size: u32) -> (Arc<Shm>, u64) {
        let len = 4 << 20;
        let fd =
            nix::sys::memfd::memfd_create(c"fifo-test", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .expect("memfd");
        let mut b = vec![0u8; len];
        let h = 0x2000usize;
        b[32..40].copy_from_slice(&(len as u64).to_le_bytes());
        b[56..64].copy_from_slice(&(h as u64).to_le_bytes());
        b[h + 20] = 1;
        let start = 128 + 192;
        let fifo = start as u64;
        let first = fifo + 192;
        let byte_index = first + 24 + 4096;
        b[h + 64..h + 72].copy_from_slice(&byte_index.to_le_bytes());
        b[h + 72..h + 80].copy_from_slice(&((len - h - 8192) as u64).to_le_bytes());
        b[h + 80..h + 88].copy_from_slice(&(start as u64).to_le_bytes());
        let f = h + fifo as usize;
        for o in [0, 8, 64, 128] {
            b[f + o..f + o + 8].copy_from_slice(&first.to_le_bytes());
        }
        b[f + 16..f + 20].copy_from_slice(&(size / 8).clamp(4096, 65536).to_le_bytes());
        b[f + 20..f + 24].copy_from_slice(&size.to_le_bytes());
        let c = h + first as usize;
        b[c + 4..c + 8].copy_from_slice(&4096u32.to_le_bytes());
        let mut file = std::fs::File::from(fd);
        file.write_all(&b).expect("write");
        (Arc::new(Shm::open(&file).expect("open")), fifo)
    }

    #[test]
    fn bytes_pass_through_growth_and_recycling() {
        let (shm, at) = segment_with_fifo(64 << 10);
        let sig = Signals::new(shm.clone(), at).expect("signals");
        let mut w = FifoWriter::new(shm.clone(), at, sig.clone()).expect("writer");
        let mut r = FifoReader::new(shm.clone(), at, sig).expect("reader");
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        let byte = |i: u64| (i.wrapping_mul(2654435761) >> 7) as u8;
        let total = 8u64 << 20;
        let mut buf = vec![0u8; 40_000];
        while next_out < total {
            let k = ((total - next_in) as usize).min(23_456);
            let data: Vec<u8> = (next_in..next_in + k as u64).map(byte).collect();
            next_in += w.write(&data).expect("write") as u64;
            let got = r.read(&mut buf).expect("read");
            for (i, b) in buf[..got].iter().enumerate() {
                assert_eq!(
                    *b,
                    byte(next_out + i as u64),
                    "byte {}",
                    next_out + i as u64
                );
            }
            next_out += got as u64;
        }
        assert!(w.alloc.stats.carved > 0, "the fifo grew");
        assert!(w.alloc.stats.popped > 0, "freed chunks were reused");
        assert!(r.alloc.stats.freed > 0, "consumed chunks were freed");
        // Recycling bounds the segment's growth: far less than the 8 MiB that went through.
        assert!(w.alloc.byte_index().expect("byte_index") < 1 << 20);
    }

    #[test]
    fn a_corrupt_chunk_offset_is_an_error() {
        let (shm, at) = segment_with_fifo(64 << 10);
        shm.atomic_u64(at + hdr::TAIL_CHUNK, "t")
            .expect("word")
            .store(u64::MAX - 7, Ordering::Relaxed);
        let sig = Signals::new(shm.clone(), at).expect("signals");
        assert!(FifoWriter::new(shm, at, sig).is_err());
    }
}
