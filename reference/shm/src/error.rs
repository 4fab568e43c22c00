//! What can go wrong with a segment: creating or attaching to it (system calls, a header a peer
//! wrote), and allocating inside it. One type for all of it, so every layer above (allocator,
//! fifo, mq) reports a segment problem the same way; it lives apart from [`crate::segment`] so
//! that the allocator, which the segment uses, need not import the segment back.
//!
//! Must never: lose the offending value (each variant carries the errno and call, the sizes, the
//! offset or the index that was wrong, unless its name already says it, as `ZeroSize` does), or
//! depend on a room above [`crate::memory`]: it imports only [`OutOfBounds`], so every layer can
//! return it.

use crate::memory::OutOfBounds;

/// Errors creating, attaching to or allocating in a segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// A system call failed.
    #[error("{op} failed: {err}")]
    Sys {
        /// The call.
        op: &'static str,
        /// Its errno.
        err: nix::errno::Errno,
    },
    /// The segment name cannot be a memfd name.
    #[error("segment name {0:?} contains a NUL byte or is longer than 249 bytes")]
    BadName(String),
    /// The requested or advertised size cannot hold the headers.
    #[error("segment needs {needed} bytes but has {available}")]
    TooSmall {
        /// Bytes needed.
        needed: u64,
        /// Bytes there.
        available: u64,
    },
    /// `ssvm_size` is 0.
    #[error("ssvm_size is 0")]
    ZeroSize,
    /// `ssvm_size` is larger than the file behind the fd.
    #[error("ssvm_size {ssvm_size} exceeds the file size {file_size}")]
    SizeBeyondFile {
        /// Advertised size.
        ssvm_size: u64,
        /// Size of the memfd.
        file_size: u64,
    },
    /// The segment asks to be mapped at a fixed address (`ssvm_va` ≠ 0, seed-era VPP).
    #[error("segment requires the fixed address {0:#x} (ssvm_va); not supported")]
    FixedAddress(u64),
    /// `opaque[0]` is 0: the segment has no fifo-segment header.
    #[error("segment has no fifo-segment header (opaque[0] = 0)")]
    NoFifoHeader,
    /// `opaque[0]` points outside the mapping or is misaligned.
    #[error(
        "fifo-segment header offset {offset:#x} is misaligned or outside the {size}-byte mapping"
    )]
    HeaderOutsideMapping {
        /// `opaque[0]`.
        offset: u64,
        /// `ssvm_size`.
        size: u64,
    },
    /// The bump allocator has no room.
    #[error(
        "cannot allocate {size} bytes: byte_index {byte_index:#x}, max_byte_index {max_byte_index:#x}"
    )]
    Exhausted {
        /// Bytes asked for.
        size: u64,
        /// Cursor at the time.
        byte_index: u64,
        /// Limit.
        max_byte_index: u64,
    },
    /// Alignment that is not a power of two.
    #[error("alignment {0} is not a power of two")]
    BadAlign(u64),
    /// A slice index beyond `n_slices`.
    #[error("slice {slice} does not exist (n_slices {n_slices})")]
    BadSlice {
        /// Index asked for.
        slice: u32,
        /// Slices in the segment.
        n_slices: u32,
    },
    /// A chunk found in the segment is malformed.
    #[error("bad chunk at {offset:#x}: {why}")]
    BadChunk {
        /// Offset of the chunk.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// An access outside the segment.
    #[error(transparent)]
    OutOfBounds(#[from] OutOfBounds),
}
