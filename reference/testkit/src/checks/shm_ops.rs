//! The `shm_ops` check, shared by the fuzz target and `reference/tests/regressions.rs`: a sequence
//! of fifo operations (enqueue, dequeue, peek, drop) on the reference's SPSC byte fifo over the
//! heap memory model, each compared with a `VecDeque<u8>` model of the same capacity.
//!
//! Input: byte 0 picks the fifo size (64 B to 32 KiB), byte 1 whether positions start near the
//! `u32` wrap, then 5-byte ops (tag, two u16 arguments). The message queue is covered by its own
//! tests and the simulation; this check is the fifo's.

use std::collections::VecDeque;

use sapi_shm::alloc::FifoSegmentView;
use sapi_shm::fifo::{self, FifoConsumer, FifoError, FifoProducer};
use sapi_shm::memory::{HeapMemory, Memory};

/// Most ops one input runs.
const MAX_OPS: usize = 512;

/// Bytes `off..off + len` of the model, copied out slice-wise (no per-byte loop: under coverage
/// instrumentation those dominate an exec).
fn model_range(model: &VecDeque<u8>, off: usize, len: usize) -> Vec<u8> {
    let (a, b) = model.as_slices();
    let mut out = Vec::with_capacity(len);
    if off < a.len() {
        out.extend_from_slice(&a[off..a.len().min(off + len)]);
    }
    let off_b = off.saturating_sub(a.len());
    let rest = len - out.len();
    out.extend_from_slice(&b[off_b.min(b.len())..b.len().min(off_b + rest)]);
    out
}

/// A byte pattern with period 251 (prime, so it never lines up with chunk or fifo sizes); a
/// write of `n` bytes starting at stream offset `at` is `&pattern()[at % 251..][..n]`.
fn pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| (0..(64 << 10) + 251).map(|i| (i % 251) as u8).collect())
}

fn arg(data: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([
        data.get(at).copied().unwrap_or(0),
        data.get(at + 1).copied().unwrap_or(0),
    ])
}

pub fn check(data: &[u8]) {
    let size: u32 = 64 << (data.first().copied().unwrap_or(0) % 10);
    let start = match data.get(1).copied().unwrap_or(0) % 4 {
        0 => 0,
        1 => u32::MAX - size / 2,
        2 => u32::MAX - 3,
        _ => u32::MAX / 2 + 7,
    };
    // Room for the largest fifo (32 KiB) several times over; small keeps an exec cheap.
    let mem = HeapMemory::new(256 << 10, 12);
    let fs = FifoSegmentView::new(&mem);
    fs.init(1, mem.len() - 1, 20).expect("init heap segment");
    let f = fifo::create_at(fs, 0, size, start).expect("create fifo");
    let mut tx = FifoProducer::attach(&mem, f).expect("producer");
    let mut rx = FifoConsumer::attach(&mem, f).expect("consumer");
    let cap = size as usize;
    let mut model: VecDeque<u8> = VecDeque::new();
    let mut next: u64 = 0;
    for (i, op) in data
        .get(2..)
        .unwrap_or_default()
        .chunks(5)
        .take(MAX_OPS)
        .enumerate()
    {
        let (a, b) = (arg(op, 1), arg(op, 3));
        let tag = op.first().copied().unwrap_or(0) % 5;
        match tag {
            0 | 1 => {
                let n = 1 + usize::from(a) % (2 * cap);
                let from = (next % 251) as usize;
                let bytes = &pattern()[from..from + n];
                let room = cap - model.len();
                match tx.enqueue(bytes) {
                    Ok(k) => {
                        assert_eq!(k, n.min(room), "op {i}: enqueue {n} with {room} free");
                        model.extend(&bytes[..k]);
                        next += k as u64;
                    }
                    Err(FifoError::Full) => assert_eq!(room, 0, "op {i}: Full with {room} free"),
                    Err(e) => panic!("op {i}: enqueue {n}: {e}"),
                }
            }
            2 => {
                let n = 1 + usize::from(a) % (2 * cap);
                let mut buf = vec![0u8; n];
                match rx.dequeue(&mut buf) {
                    Ok(k) => {
                        assert_eq!(k, n.min(model.len()), "op {i}: dequeue {n}");
                        let want = model_range(&model, 0, k);
                        assert!(buf[..k] == want[..], "op {i}: dequeued bytes differ");
                        model.drain(..k);
                    }
                    Err(FifoError::Empty) => assert!(model.is_empty(), "op {i}: Empty"),
                    Err(e) => panic!("op {i}: dequeue {n}: {e}"),
                }
            }
            3 => {
                let off = u32::from(b) % (size + 8);
                let n = 1 + usize::from(a) % cap;
                let mut buf = vec![0u8; n];
                let avail = model.len().saturating_sub(off as usize);
                match rx.peek(off, &mut buf) {
                    Ok(k) => {
                        assert_eq!(k, n.min(avail), "op {i}: peek {n} at {off}");
                        let want = model_range(&model, off as usize, k);
                        assert!(buf[..k] == want[..], "op {i}: peeked bytes differ");
                    }
                    Err(FifoError::Empty) => assert_eq!(avail, 0, "op {i}: peek Empty"),
                    Err(e) => panic!("op {i}: peek {n} at {off}: {e}"),
                }
            }
            _ => {
                let n = 1 + u32::from(a) % (2 * size);
                match rx.drop_bytes(n) {
                    Ok(k) => {
                        assert_eq!(
                            k as usize,
                            (n as usize).min(model.len()),
                            "op {i}: drop {n}"
                        );
                        model.drain(..k as usize);
                    }
                    Err(FifoError::Empty) => assert!(model.is_empty(), "op {i}: drop Empty"),
                    Err(e) => panic!("op {i}: drop {n}: {e}"),
                }
            }
        }
        let len = rx.len().expect("len") as usize;
        assert_eq!(len, model.len(), "op {i}: consumer len");
        let free = tx.free_space().expect("free space") as usize;
        assert_eq!(free, cap - model.len(), "op {i}: free space");
    }
}
