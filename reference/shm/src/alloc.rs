//! The fifo-segment header and its allocator (shm spec §3): bump allocation by CAS on
//! `byte_index`, and the per-slice lock-free free lists of fifo chunks.
//!
//! Owns: every read and write of the 128-byte fifo-segment header and of the slices, over any
//! [`Memory`] whose offset 0 is that header. The allocator state is genuinely shared between
//! processes (VCL allocates chunks in VPP's mqs segment; a fifo producer allocates, its
//! consumer frees), so every shared word is an atomic and every offset read back from the
//! segment is validated before use.
//!
//! Must never: trust an offset, length or tag found in the segment — a corrupted free list or
//! chunk yields a [`SegmentError`], never an out-of-bounds access or an endless walk.

use super::error::SegmentError;
use super::layout::{FS_CHUNK_VEC_LEN, fifo as lf, fsh};
use super::memory::Memory;
use super::sync::{Atomic, Ordering};

const TAG_INC: u64 = 1 << 48;
const OFFSET_MASK: u64 = TAG_INC - 1;
const TAG_MASK: u64 = !OFFSET_MASK;

/// Largest fifo VPP allows in a segment (`FIFO_SEGMENT_MAX_FIFO_SIZE`, 2 GiB).
pub const MAX_FIFO_SIZE: u64 = 2 << 30;

/// `max_log2_fifo_size` as VPP computes it: `floor(log2(min((ssvm_size - header_offset -
/// 192 · n_slices) / 2, 2 GiB)))`.
pub fn max_log2_fifo_size(bytes_after_header: u64, n_slices: u8) -> u32 {
    let usable = bytes_after_header.saturating_sub(fsh::SLICE_SIZE * n_slices as u64) / 2;
    let max_fifo = usable.clamp(1, MAX_FIFO_SIZE);
    63 - max_fifo.leading_zeros()
}

/// Offset of the first byte after the header and `n_slices` slices (`start_byte_index`).
pub const fn start_byte_index(n_slices: u8) -> u64 {
    fsh::SIZE + fsh::SLICE_SIZE * n_slices as u64
}

fn round_up(v: u64, align: u64) -> Option<u64> {
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

/// A typed view of the fifo-segment header at offset 0 of `mem`.
#[derive(Debug)]
pub struct FifoSegmentView<'m, M: Memory> {
    mem: &'m M,
}

impl<M: Memory> Clone for FifoSegmentView<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M: Memory> Copy for FifoSegmentView<'_, M> {}

impl<'m, M: Memory> FifoSegmentView<'m, M> {
    /// A view over `mem`, whose offset 0 is a fifo-segment header.
    pub fn new(mem: &'m M) -> Self {
        Self { mem }
    }

    /// The underlying memory.
    pub fn memory(&self) -> &'m M {
        self.mem
    }

    /// Writes a fresh header with `n_slices` zeroed slices and `max_byte_index`
    /// (VPP's `fifo_segment_init`). The memory must be zero-filled (a new memfd is).
    pub fn init(
        &self,
        n_slices: u8,
        max_byte_index: u64,
        max_log2: u32,
    ) -> Result<(), SegmentError> {
        let n_slices = n_slices.max(1);
        let start = start_byte_index(n_slices);
        if start >= max_byte_index || max_byte_index > self.mem.len() {
            return Err(SegmentError::TooSmall {
                needed: start,
                available: max_byte_index.min(self.mem.len()),
            });
        }
        let m = self.mem;
        m.atomic_u64(fsh::N_CACHED_BYTES)?
            .store(0, Ordering::Relaxed);
        m.atomic_u32(fsh::N_ACTIVE_FIFOS)?
            .store(0, Ordering::Relaxed);
        m.atomic_u32(fsh::N_RESERVED_BYTES)?
            .store(start as u32, Ordering::Relaxed);
        m.write_u32(fsh::MAX_LOG2_FIFO_SIZE, max_log2)?;
        m.write_u8(fsh::N_SLICES, n_slices)?;
        m.write_u8(fsh::PCT_FIRST_ALLOC, 0)?;
        m.write_u8(fsh::N_MQS, 0)?;
        m.write_u64(fsh::MAX_BYTE_INDEX, max_byte_index)?;
        m.write_u64(fsh::START_BYTE_INDEX, start)?;
        // The slices' shared counters and free-list heads are zero already; storing the
        // zeros as atomics makes them exist before any fifo side runs (the loom models'
        // memory creates an atomic on first use, and a counter first touched by the consumer
        // freeing a chunk and then by the producer reusing it would otherwise race with its
        // own creation).
        for slice in 0..n_slices as u64 {
            let s = fsh::SIZE + fsh::SLICE_SIZE * slice;
            for class in 0..FS_CHUNK_VEC_LEN as u64 {
                m.atomic_u64(s + fsh::SLICE_FREE_CHUNKS + 8 * class)?
                    .store(0, Ordering::Relaxed);
                m.atomic_u32(s + fsh::SLICE_NUM_CHUNKS + 4 * class)?
                    .store(0, Ordering::Relaxed);
            }
            m.atomic_u64(s + fsh::SLICE_N_FL_CHUNK_BYTES)?
                .store(0, Ordering::Relaxed);
        }
        // Release: whoever later acquires `byte_index` sees the initialised header.
        m.atomic_u64(fsh::BYTE_INDEX)?
            .store(start, Ordering::Release);
        Ok(())
    }

    /// `n_slices`.
    pub fn n_slices(&self) -> Result<u8, SegmentError> {
        Ok(self.mem.read_u8(fsh::N_SLICES)?)
    }
    /// `n_mqs`.
    pub fn n_mqs(&self) -> Result<u8, SegmentError> {
        Ok(self.mem.read_u8(fsh::N_MQS)?)
    }
    /// Sets `n_mqs` (the number of mqs of an mqs-only segment, §3.6).
    pub fn set_n_mqs(&self, n: u8) -> Result<(), SegmentError> {
        Ok(self.mem.write_u8(fsh::N_MQS, n)?)
    }
    /// `pct_first_alloc`: the share of its size, in percent, a fifo made here starts with.
    pub fn pct_first_alloc(&self) -> Result<u8, SegmentError> {
        Ok(self.mem.read_u8(fsh::PCT_FIRST_ALLOC)?)
    }
    /// Sets `pct_first_alloc` (the owner's PCT_FIRST_ALLOC option), before any fifo is made.
    pub fn set_pct_first_alloc(&self, pct: u8) -> Result<(), SegmentError> {
        Ok(self.mem.write_u8(fsh::PCT_FIRST_ALLOC, pct)?)
    }
    /// `n_reserved_bytes`.
    pub fn n_reserved_bytes(&self) -> Result<u32, SegmentError> {
        Ok(self
            .mem
            .atomic_u32(fsh::N_RESERVED_BYTES)?
            .load(Ordering::Relaxed))
    }
    /// `max_log2_fifo_size`.
    pub fn max_log2_fifo_size(&self) -> Result<u32, SegmentError> {
        Ok(self.mem.read_u32(fsh::MAX_LOG2_FIFO_SIZE)?)
    }
    /// `byte_index`, the bump-allocator cursor.
    pub fn byte_index(&self) -> Result<u64, SegmentError> {
        Ok(self
            .mem
            .atomic_u64(fsh::BYTE_INDEX)?
            .load(Ordering::Acquire))
    }
    /// `max_byte_index`.
    pub fn max_byte_index(&self) -> Result<u64, SegmentError> {
        Ok(self.mem.read_u64(fsh::MAX_BYTE_INDEX)?)
    }
    /// `start_byte_index`.
    pub fn start_byte_index(&self) -> Result<u64, SegmentError> {
        Ok(self.mem.read_u64(fsh::START_BYTE_INDEX)?)
    }
    /// `n_cached_bytes` (bytes sitting on chunk free lists).
    pub fn n_cached_bytes(&self) -> Result<u64, SegmentError> {
        Ok(self
            .mem
            .atomic_u64(fsh::N_CACHED_BYTES)?
            .load(Ordering::Relaxed))
    }

    /// Bump-allocates `size` bytes aligned to `align` (a power of two) and returns the
    /// offset from the header: CAS `byte_index` from `cur` to `round_up(cur, align) +
    /// round_up(size, align)`, failing if that reaches `max_byte_index`.
    pub fn alloc(&self, size: u64, align: u64) -> Result<u64, SegmentError> {
        if !align.is_power_of_two() {
            return Err(SegmentError::BadAlign(align));
        }
        let max = self.max_byte_index()?.min(self.mem.len());
        let bi = self.mem.atomic_u64(fsh::BYTE_INDEX)?;
        let mut cur = bi.load(Ordering::Relaxed);
        loop {
            let exhausted = SegmentError::Exhausted {
                size,
                byte_index: cur,
                max_byte_index: max,
            };
            let start = round_up(cur, align).ok_or(exhausted.clone())?;
            let len = round_up(size, align).ok_or(exhausted.clone())?;
            let end = start.checked_add(len).ok_or(exhausted.clone())?;
            if end >= max {
                return Err(exhausted);
            }
            match bi.compare_exchange_weak(cur, end, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(start),
                Err(now) => cur = now,
            }
        }
    }

    /// Allocates an mq-sized block and accounts it in `n_reserved_bytes`, as VPP's
    /// `fifo_segment_msg_q_alloc` does (8-byte aligned). The reservation grows by the
    /// rounded size, so that §3.6 discovery (`(n_reserved − start) / n_mqs`) lands on every mq.
    pub fn alloc_reserved(&self, size: u64) -> Result<u64, SegmentError> {
        let off = self.alloc(size, 8)?;
        let rounded = round_up(size, 8).unwrap_or(size);
        self.mem
            .atomic_u32(fsh::N_RESERVED_BYTES)?
            .fetch_add(rounded as u32, Ordering::Relaxed);
        Ok(off)
    }

    fn slice_off(&self, slice: u32) -> Result<u64, SegmentError> {
        let n = self.n_slices()? as u32;
        if slice >= n {
            return Err(SegmentError::BadSlice { slice, n_slices: n });
        }
        Ok(fsh::SIZE + fsh::SLICE_SIZE * slice as u64)
    }

    /// Size of chunks in size class `class` (4 KiB · 2^class in real segments).
    pub fn class_size(&self, class: usize) -> u64 {
        1u64 << (self.mem.min_chunk_log2() as usize + class)
    }

    /// The size class holding chunks of at least `bytes` (capped at the largest class).
    pub fn class_for(&self, bytes: u64) -> usize {
        let min = self.mem.min_chunk_log2();
        let log2 = if bytes <= 1 {
            0
        } else {
            64 - (bytes - 1).leading_zeros()
        };
        (log2.saturating_sub(min) as usize).min(FS_CHUNK_VEC_LEN - 1)
    }

    fn class_of_length(&self, chunk: u64, length: u32) -> Result<usize, SegmentError> {
        let l = length as u64;
        let class = self.class_for(l);
        if l.is_power_of_two() && self.class_size(class) == l {
            Ok(class)
        } else {
            Err(SegmentError::BadChunk {
                offset: chunk,
                why: "length is not a chunk size class",
            })
        }
    }

    /// Fails unless a chunk header plus `length` data bytes at `chunk` lie in the region.
    pub fn check_chunk(&self, chunk: u64) -> Result<u32, SegmentError> {
        if chunk == 0 || !chunk.is_multiple_of(8) || chunk < fsh::SIZE {
            return Err(SegmentError::BadChunk {
                offset: chunk,
                why: "offset null, misaligned or inside the header",
            });
        }
        let length =
            self.mem
                .read_u32(chunk + lf::CHUNK_LENGTH)
                .map_err(|_| SegmentError::BadChunk {
                    offset: chunk,
                    why: "header outside the segment",
                })?;
        self.mem
            .check(chunk + lf::CHUNK_HEADER_SIZE, length as u64)
            .map_err(|_| SegmentError::BadChunk {
                offset: chunk,
                why: "data outside the segment",
            })?;
        Ok(length)
    }

    fn free_head(&self, slice: u32, class: usize) -> Result<&'m M::A64, SegmentError> {
        let s = self.slice_off(slice)?;
        Ok(self
            .mem
            .atomic_u64(s + fsh::SLICE_FREE_CHUNKS + 8 * class as u64)?)
    }

    /// Pushes the chunk list `first ..= last` (linked through `next`) on free list `class`.
    fn push_list(
        &self,
        slice: u32,
        class: usize,
        first: u64,
        last: u64,
    ) -> Result<(), SegmentError> {
        let head = self.free_head(slice, class)?;
        let last_next = self.mem.atomic_u64(last + lf::CHUNK_NEXT)?;
        let mut old = head.load(Ordering::Relaxed);
        loop {
            last_next.store(old & OFFSET_MASK, Ordering::Relaxed);
            let new = first | (old.wrapping_add(TAG_INC) & TAG_MASK);
            // Release publishes the chunk's header and the consumer's last reads of its data
            // to the next popper; acquire on failure re-reads the newer head.
            match head.compare_exchange_weak(old, new, Ordering::Release, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => old = now,
            }
        }
    }

    /// Pops one chunk from free list `class`; `None` when the list is empty.
    fn pop(&self, slice: u32, class: usize) -> Result<Option<u64>, SegmentError> {
        let head = self.free_head(slice, class)?;
        // Acquire: pairs with the pusher's release so `next` and the header are visible.
        let mut old = head.load(Ordering::Acquire);
        loop {
            let c = old & OFFSET_MASK;
            if c == 0 {
                return Ok(None);
            }
            if !c.is_multiple_of(8) || c < fsh::SIZE {
                return Err(SegmentError::BadChunk {
                    offset: c,
                    why: "free-list entry misaligned or inside the header",
                });
            }
            // `next` may be rewritten by a concurrent pop+push of the same chunk; the tag
            // then makes our CAS fail, and the access itself is atomic and bounds-checked.
            let next = self
                .mem
                .atomic_u64(c + lf::CHUNK_NEXT)?
                .load(Ordering::Relaxed);
            let new = (next & OFFSET_MASK) | (old.wrapping_add(TAG_INC) & TAG_MASK);
            match head.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(Some(c)),
                Err(now) => old = now,
            }
        }
    }

    /// Head word of free list `class` of `slice` (`(tag << 48) | offset`), for inspection.
    pub fn free_list_head(&self, slice: u32, class: usize) -> Result<u64, SegmentError> {
        Ok(self.free_head(slice, class)?.load(Ordering::Acquire))
    }

    fn carve(&self, slice: u32, class: usize) -> Result<Option<u64>, SegmentError> {
        let size = self.class_size(class);
        let c = match self.alloc(lf::CHUNK_HEADER_SIZE + size, 8) {
            Ok(c) => c,
            Err(SegmentError::Exhausted { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.mem.write_u32(c + lf::CHUNK_LENGTH, size as u32)?;
        let s = self.slice_off(slice)?;
        self.mem
            .atomic_u32(s + fsh::SLICE_NUM_CHUNKS + 4 * class as u64)?
            .fetch_add(1, Ordering::Relaxed);
        Ok(Some(c))
    }

    fn account_free(&self, slice: u32, bytes: u64, add: bool) -> Result<(), SegmentError> {
        let s = self.slice_off(slice)?;
        let fl = self.mem.atomic_u64(s + fsh::SLICE_N_FL_CHUNK_BYTES)?;
        let cached = self.mem.atomic_u64(fsh::N_CACHED_BYTES)?;
        if add {
            fl.fetch_add(bytes, Ordering::Relaxed);
            cached.fetch_add(bytes, Ordering::Relaxed);
        } else {
            fl.fetch_sub(bytes, Ordering::Relaxed);
            cached.fetch_sub(bytes, Ordering::Relaxed);
        }
        Ok(())
    }

    /// One chunk of class `class` or smaller: the slice free list first, then the bump
    /// allocator, then ever smaller classes. Its header is reset (`start_byte` 0, `next` 0).
    fn alloc_one(&self, slice: u32, class: usize) -> Result<Option<u64>, SegmentError> {
        for k in (0..=class).rev() {
            let got = match self.pop(slice, k)? {
                Some(c) => {
                    self.account_free(slice, self.class_size(k), false)?;
                    Some(c)
                }
                None => self.carve(slice, k)?,
            };
            if let Some(c) = got {
                let m = self.mem;
                m.write_u32(c + lf::CHUNK_START_BYTE, 0)?;
                m.write_u32(c + lf::CHUNK_LENGTH, self.class_size(k) as u32)?;
                m.atomic_u64(c + lf::CHUNK_NEXT)?
                    .store(0, Ordering::Relaxed);
                // VPP's "no rbtree node" is RBTREE_TNIL_INDEX = 0.
                m.write_u32(c + lf::CHUNK_ENQ_RB_INDEX, 0)?;
                m.write_u32(c + lf::CHUNK_DEQ_RB_INDEX, 0)?;
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Allocates a linked list of chunks holding at least `bytes` data bytes from `slice`.
    /// Returns `(first, last)` or `None` if the segment cannot provide them (nothing leaks:
    /// a partial list goes back to the free lists).
    pub fn alloc_chunks(&self, slice: u32, bytes: u64) -> Result<Option<(u64, u64)>, SegmentError> {
        let mut first = 0u64;
        let mut last = 0u64;
        let mut remaining = bytes.max(1);
        while remaining > 0 {
            let class = self.class_for(remaining);
            let Some(c) = self.alloc_one(slice, class)? else {
                if first != 0 {
                    self.free_chunks(slice, first)?;
                }
                return Ok(None);
            };
            let len = self.mem.read_u32(c + lf::CHUNK_LENGTH)? as u64;
            if first == 0 {
                first = c;
            } else {
                self.mem
                    .atomic_u64(last + lf::CHUNK_NEXT)?
                    .store(c, Ordering::Relaxed);
            }
            last = c;
            remaining = remaining.saturating_sub(len);
        }
        Ok(Some((first, last)))
    }

    /// Returns the chunk list starting at `first` (linked through `next`, ending at 0) to the
    /// free lists of `slice`, each chunk on the list of its size class.
    pub fn free_chunks(&self, slice: u32, first: u64) -> Result<(), SegmentError> {
        let max_chunks = self.mem.len() / (lf::CHUNK_HEADER_SIZE + self.class_size(0)) + 1;
        let mut c = first;
        let mut n = 0u64;
        while c != 0 {
            n += 1;
            if n > max_chunks {
                return Err(SegmentError::BadChunk {
                    offset: c,
                    why: "chunk list longer than the segment can hold (a cycle?)",
                });
            }
            let length = self.check_chunk(c)?;
            let class = self.class_of_length(c, length)?;
            let next = self
                .mem
                .atomic_u64(c + lf::CHUNK_NEXT)?
                .load(Ordering::Relaxed);
            self.push_list(slice, class, c, c)?;
            self.account_free(slice, length as u64, true)?;
            c = next & OFFSET_MASK;
        }
        Ok(())
    }
}
