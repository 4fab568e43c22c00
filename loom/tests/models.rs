//! Loom models of the mq and the fifo (run with `--cfg loom`; empty otherwise).
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};
use std::time::Instant;

use loom::sync::Arc;
use sapi_shm::alloc::FifoSegmentView;
use sapi_shm::fifo::{self, FifoConsumer, FifoError, FifoProducer};
use sapi_shm::memory::{HeapMemory, Memory};
use sapi_shm::mq::{
    self, ModelCondvar, ModelEventFd, MqConsumer, MqError, MqProducer, MqSpec, RingSpec, Signal,
};

fn preemption_bound() -> usize {
    std::env::var("SAPI_LOOM_PREEMPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Runs `f` under loom with the configured preemption bound and reports how many
/// interleavings were explored.
fn check(name: &str, f: impl Fn() + Sync + Send + 'static) {
    check_bounded(name, usize::MAX, f)
}

/// As [`check`], with the preemption bound at most `cap` (for a model whose interleavings grow
/// too fast to explore at the full run's bound in reasonable time).
fn check_bounded(name: &str, cap: usize, f: impl Fn() + Sync + Send + 'static) {
    static ITERATIONS: AtomicUsize = AtomicUsize::new(0);
    let bound = preemption_bound().min(cap);
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(bound);
    b.max_branches = 100_000;
    let start = Instant::now();
    let before = ITERATIONS.load(StdOrdering::SeqCst);
    b.check(move || {
        ITERATIONS.fetch_add(1, StdOrdering::SeqCst);
        f();
    });
    let n = ITERATIONS.load(StdOrdering::SeqCst) - before;
    println!(
        "loom model {name}: {n} interleavings, preemption bound {bound}, {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

/// A model segment: 1 slice, chunks of 4 bytes · 2^class (so per-byte race tracking stays
/// cheap), the allocator limit just below the end.
fn model_segment(len: usize) -> HeapMemory {
    let mem = HeapMemory::new(len, 2);
    FifoSegmentView::new(&mem)
        .init(1, len as u64 - 1, 20)
        .expect("init");
    mem
}

fn byte(i: u32) -> u8 {
    (i * 7 + 1) as u8
}

/// One producer thread and one consumer (the model's main thread) moving `total` bytes through
/// a fifo of 8 bytes whose first chunk is 4 bytes, in writes of up to `write` and reads of up
/// to `read` bytes: the producer grows the list and the consumer returns consumed chunks to the
/// free list while the other side runs; the producer later reuses them. Bytes arrive exactly
/// once, in order; loom's cell tracking fails the model if a chunk is reused while still
/// readable. Positions start 6 short of the `u32` wrap. `at_a_distance`: the reader keeps
/// finished chunks (`recycle_at_a_distance`), which the tiny segment soon runs out of, so the
/// writer then meets `NoMemory` until the reader, finding the fifo empty with the writer out of
/// room, gives them back; with VPP's reader the segment never runs out.
fn fifo_spsc(total: u32, write: u32, read: usize, at_a_distance: bool) {
    let mem = Arc::new(model_segment(640));
    let f = fifo::create_at(FifoSegmentView::new(&*mem), 0, 8, u32::MAX - 5).expect("fifo");
    let m2 = mem.clone();
    let producer = loom::thread::spawn(move || {
        let mut tx = FifoProducer::attach(&*m2, f).expect("tx");
        let mut sent = 0u32;
        while sent < total {
            let n = write.min(total - sent);
            let data: Vec<u8> = (sent..sent + n).map(byte).collect();
            match tx.enqueue(&data) {
                Ok(k) => sent += k as u32,
                Err(FifoError::Full) => loom::thread::yield_now(),
                Err(FifoError::NoMemory) if at_a_distance => loom::thread::yield_now(),
                Err(e) => panic!("enqueue: {e}"),
            }
        }
    });
    let mut rx = FifoConsumer::attach(&*mem, f).expect("rx");
    if at_a_distance {
        rx = rx.recycle_at_a_distance();
    }
    let mut got = 0u32;
    let mut buf = vec![0u8; read];
    while got < total {
        match rx.dequeue(&mut buf) {
            Ok(k) => {
                for (i, b) in buf[..k].iter().enumerate() {
                    assert_eq!(*b, byte(got + i as u32), "byte {}", got + i as u32);
                }
                got += k as u32;
            }
            Err(FifoError::Empty) => loom::thread::yield_now(),
            Err(e) => panic!("dequeue: {e}"),
        }
    }
    producer.join().expect("producer");
    assert_eq!(rx.dequeue(&mut buf), Err(FifoError::Empty));
}

/// (a) fifo: writes of 5 bytes and reads of 6 over chunks of 4, so nearly every operation
/// crosses a chunk and takes the general paths.
#[test]
fn fifo_spsc_growth_and_recycling() {
    check("fifo_spsc_growth_and_recycling", || {
        fifo_spsc(14, 5, 6, false)
    });
}

/// (a″) fifo: (a) with a reader that recycles at a distance: kept chunks, their freeing oldest
/// first, and the give-back to a writer out of room (the reader polls with `dequeue`),
/// interleaved with the writer's growth. `release_consumed` and `drop_bytes` are not modelled.
#[test]
fn fifo_spsc_recycling_at_a_distance() {
    check("fifo_spsc_recycling_at_a_distance", || {
        fifo_spsc(14, 5, 6, true)
    });
}

/// (a′) fifo: writes of one byte and reads of up to two, so most of them take the inlined
/// paths that copy inside the remembered tail or head chunk and publish the position (a write
/// or read reaching a chunk's end takes the general path), interleaved with the other side's
/// growth and recycling.
#[test]
fn fifo_spsc_small_writes_inside_chunks() {
    check("fifo_spsc_small_writes_inside_chunks", || {
        fifo_spsc(7, 1, 2, false)
    });
}

fn model_mq(spec: &MqSpec) -> (Arc<HeapMemory>, u64) {
    let mem = model_segment(512);
    let off = FifoSegmentView::new(&mem)
        .alloc_reserved(spec.size_bytes())
        .expect("alloc");
    mq::init_image(&mem, off, spec).expect("image");
    (Arc::new(mem), off)
}

fn one_ring(queue_len: u32, nitems: u32) -> MqSpec {
    MqSpec {
        queue_len,
        rings: vec![RingSpec { nitems, elsize: 4 }],
    }
}

/// Consumer that blocks in the signal's wait; producer given by `send`.
fn mq_model<S: Signal + Send + Sync + 'static>(
    spec: MqSpec,
    n: u8,
    signal: impl Fn() -> S,
    blocking_send: bool,
    blocking_recv: bool,
) {
    let (mem, off) = model_mq(&spec);
    let sig = Arc::new(signal());
    let (m2, s2) = (mem.clone(), sig.clone());
    let producer = loom::thread::spawn(move || {
        let mut tx = MqProducer::attach(&*m2, off, &*s2).expect("tx");
        for i in 0..n {
            let msg = [i, i ^ 0x5a, 0, i];
            if blocking_send {
                tx.send(&msg, None).expect("send");
            } else {
                loop {
                    match tx.try_send(&msg) {
                        Ok(()) => break,
                        Err(MqError::Full) => loom::thread::yield_now(),
                        Err(e) => panic!("try_send: {e}"),
                    }
                }
            }
        }
    });
    let mut rx = MqConsumer::attach(&*mem, off, &*sig).expect("rx");
    let mut buf = [0u8; 4];
    for i in 0..n {
        let got = if blocking_recv {
            rx.recv(&mut buf, None).expect("recv")
        } else {
            loop {
                match rx.try_recv(&mut buf) {
                    Ok(r) => break r,
                    Err(MqError::Empty) => loom::thread::yield_now(),
                    Err(e) => panic!("try_recv: {e}"),
                }
            }
        };
        assert_eq!(got.ring, 0);
        assert_eq!(buf, [i, i ^ 0x5a, 0, i], "message {i} in order, intact");
    }
    producer.join().expect("producer");
    assert_eq!(rx.try_recv(&mut buf), Err(MqError::Empty));
}

/// (b) mq, eventfd mode: a non-blocking producer (as VPP) and a consumer that waits on the
/// eventfd when empty. Every message exactly once, in order; elements freed in order (free
/// errors otherwise); a lost empty→non-empty wake-up would leave the consumer blocked, which
/// loom reports as a deadlock.
#[test]
fn mq_eventfd_empty_to_non_empty_wakeup() {
    check("mq_eventfd_empty_to_non_empty_wakeup", || {
        mq_model(one_ring(2, 2), 3, ModelEventFd::new, false, true)
    });
}

/// (c) mq, eventfd mode: a producer that blocks while the queue (length 1) or its ring is
/// full, and a consumer that never waits. A lost full→not-full wake-up deadlocks the
/// producer.
#[test]
fn mq_eventfd_full_to_not_full_wakeup() {
    check("mq_eventfd_full_to_not_full_wakeup", || {
        mq_model(one_ring(1, 2), 3, ModelEventFd::new, true, false)
    });
    check("mq_eventfd_ring_full_to_not_full_wakeup", || {
        mq_model(one_ring(2, 1), 3, ModelEventFd::new, true, false)
    });
}

/// (b)+(c) in mutex/condvar mode, where both sides may block at once: producer blocks on
/// full, consumer on empty, one mutex and a broadcast condvar.
#[test]
fn mq_condvar_both_sides_block() {
    check("mq_condvar_both_sides_block", || {
        mq_model(one_ring(1, 1), 3, ModelCondvar::new, true, true)
    });
}

/// (e) mq batches, eventfd mode: the producer sends three messages with `try_send_batch`
/// into a queue and ring of 2 (so batches are cut by the room left), the consumer takes them
/// with `try_recv_batch` and, when empty, blocks in `recv`. Every message exactly once, in
/// order, intact; a batch's single signal that fails to wake the consumer deadlocks it.
#[test]
fn mq_eventfd_batches() {
    check("mq_eventfd_batches", || {
        let (mem, off) = model_mq(&one_ring(2, 2));
        let sig = Arc::new(ModelEventFd::new());
        let (m2, s2) = (mem.clone(), sig.clone());
        let msg = |i: u8| [i, i ^ 0x5a, 0, i];
        let producer = loom::thread::spawn(move || {
            let mut tx = MqProducer::attach(&*m2, off, &*s2).expect("tx");
            let bodies = [msg(0), msg(1), msg(2)];
            let mut sent = 0;
            while sent < bodies.len() {
                let batch: Vec<&[u8]> = bodies[sent..].iter().map(|b| &b[..]).collect();
                match tx.try_send_batch(&batch) {
                    Ok(k) => sent += k,
                    Err(MqError::Full) => loom::thread::yield_now(),
                    Err(e) => panic!("try_send_batch: {e}"),
                }
            }
        });
        let mut rx = MqConsumer::attach(&*mem, off, &*sig).expect("rx");
        let mut next = 0u8;
        let mut out = [[0u8; 4]; 2];
        while next < 3 {
            match rx.try_recv_batch(&mut out) {
                Ok(k) => {
                    for body in &out[..k] {
                        assert_eq!(*body, msg(next), "message {next} in order, intact");
                        next += 1;
                    }
                }
                Err(MqError::Empty) => {
                    let mut one = [0u8; 4];
                    rx.recv(&mut one, None).expect("recv");
                    assert_eq!(one, msg(next), "message {next} in order, intact");
                    next += 1;
                }
                Err(e) => panic!("try_recv_batch: {e}"),
            }
        }
        producer.join().expect("producer");
        assert_eq!(rx.try_recv_batch(&mut out), Err(MqError::Empty));
    });
}

/// How the model's reader takes up an RX (`docs/sessions.md` §8.4 step 2).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReaderRule {
    /// Drain, clear `has_event`, then look at the fifo again (VCL's rule).
    DrainClearRecheck,
    /// Drain and clear, without the second look: a write that lands between the drain and the
    /// clear is announced to nobody (the server sees `has_event` still set and posts no RX).
    DrainClearNoRecheck,
}

/// (f) the io-event relay of a cut-through pair (`docs/sessions.md` §8.2–§8.5): a writer app
/// enqueues into fifo A and posts TX when its own `has_event` was clear; the server relays each
/// TX with `sapi_shm::relay::relay_tx` and, at delivery, posts RX only if it could claim the
/// reader's `has_event`; the reader takes data only when an RX comes. Every byte must reach
/// the reader through RXs alone: a lost wake-up leaves bytes unread once the server has relayed
/// everything the writer posted.
/// The writer's fifo is small, so it also runs out of room: as VCL it asks for a dequeue
/// notification (`want_deq_ntf`, carried to the reader by the next TX relay) and then waits with
/// short timed waits that look at the free space again (§8.2 step 3 — the protocol does not
/// promise the TX, VCL makes progress without it), modelled as yields; the reader's dequeue
/// notifications and the server's `relay_rx` run meanwhile.
fn relay_model(rule: ReaderRule) {
    use loom::sync::mpsc::channel;
    use sapi_shm::fifo::WANT_DEQ_NOTIF;
    use sapi_shm::relay::{self, Signals};

    const TOTAL: u32 = 6;
    let mem = Arc::new(model_segment(1024));
    let fs = FifoSegmentView::new(&*mem);
    // Fifo A (data and the reader's signals) and the writer's shadow header (its signals).
    let a = fifo::create(fs, 0, 4).expect("fifo A");
    let shadow = fifo::create(fs, 0, 4).expect("shadow");
    enum Ev {
        Tx,
        RxDeq,
        /// The writer has written everything (and posted every TX it was going to).
        WriterDone,
        /// The reader is done: the server stops (loom's channels do not report the senders'
        /// drop).
        Stop,
    }
    enum ToReader {
        Rx,
        /// Everything the writer posted has been relayed: an RX the reader still waits for
        /// was lost.
        Done,
    }
    let (to_server, server_in) = channel::<Ev>();
    let (to_reader, reader_in) = channel::<ToReader>();
    let (to_writer, writer_in) = channel::<()>();

    let m = mem.clone();
    let reader_tx = to_server.clone();
    let writer = loom::thread::spawn(move || {
        let mut tx = FifoProducer::attach(&*m, a).expect("tx");
        let sig = FifoProducer::attach(&*m, shadow).expect("shadow");
        let mut sent = 0u32;
        while sent < TOTAL {
            let n = 3.min(TOTAL - sent);
            let data: Vec<u8> = (sent..sent + n).map(byte).collect();
            match tx.enqueue(&data) {
                Ok(k) => {
                    sent += k as u32;
                    if sig.set_has_event().expect("has_event") {
                        // The server may have stopped already: the reader found these bytes by
                        // looking again after an earlier RX.
                        let _ = to_server.send(Ev::Tx);
                    }
                }
                Err(FifoError::Full) => {
                    // §8.2 step 3: ask for a dequeue notification, then wait for room.
                    sig.add_want_deq_ntf(WANT_DEQ_NOTIF).expect("want");
                    while tx.free_space().expect("free") == 0 {
                        let _ = writer_in.try_recv();
                        loom::thread::yield_now();
                    }
                }
                Err(e) => panic!("enqueue: {e}"),
            }
        }
        let _ = to_server.send(Ev::WriterDone);
        // Handed back so the dequeue notifications it did not need can be taken out.
        writer_in
    });

    let m = mem.clone();
    let server = loom::thread::spawn(move || {
        let writer_sig = Signals::new(&*m, shadow);
        let reader_sig = Signals::new(&*m, a);
        while let Ok(ev) = server_in.recv() {
            let out = match ev {
                Ev::Stop => break,
                Ev::WriterDone => {
                    let _ = to_reader.send(ToReader::Done);
                    continue;
                }
                Ev::Tx => relay::relay_tx(writer_sig, Some(reader_sig), || {
                    Ok(fifo::occupancy(&*m, a)? == 0)
                }),
                Ev::RxDeq => relay::relay_rx(writer_sig, reader_sig, || {
                    Ok(fifo::occupancy(&*m, a)? == fifo::size(&*m, a)?)
                }),
            }
            .expect("relay");
            if out.tx_to_writer {
                let _ = to_writer.send(());
            }
            if out.rx_to_reader && reader_sig.claim_rx().expect("claim") {
                let _ = to_reader.send(ToReader::Rx);
            }
        }
        server_in
    });

    let mut rx = FifoConsumer::attach(&*mem, a).expect("rx");
    let mut got = Vec::new();
    let mut buf = [0u8; 8];
    // Only an RX makes the reader look; once the server has relayed everything the writer
    // posted, bytes still unread were announced to nobody.
    while (got.len() as u32) < TOTAL {
        if let ToReader::Done = reader_in.recv().expect("an RX or the end") {
            break;
        }
        loop {
            let n = match rx.dequeue(&mut buf) {
                Ok(n) => n,
                Err(FifoError::Empty) => 0,
                Err(e) => panic!("dequeue: {e}"),
            };
            got.extend_from_slice(&buf[..n]);
            if n > 0 && rx.needs_deq_ntf(n as u32).expect("ntf") {
                rx.set_has_deq_ntf().expect("has_deq");
                reader_tx.send(Ev::RxDeq).expect("server");
            }
            rx.clear_has_event().expect("clear");
            if rule == ReaderRule::DrainClearNoRecheck || rx.is_empty().expect("empty") {
                break;
            }
        }
    }
    reader_tx.send(Ev::Stop).expect("stop");
    let writer_in = writer.join().expect("writer");
    let server_in = server.join().expect("server");
    // Loom fails a model that leaves messages in a channel: RXs for data already taken, TXs
    // for room the writer found by looking.
    while reader_in.try_recv().is_ok() {}
    while writer_in.try_recv().is_ok() {}
    while server_in.try_recv().is_ok() {}
    let want: Vec<u8> = (0..TOTAL).map(byte).collect();
    assert_eq!(got, want, "every byte, in order, announced by an RX");
}

/// (f) the relay with VCL's reader: no lost RX, no lost TX.
#[test]
fn relay_no_lost_wakeup() {
    check("relay_no_lost_wakeup", || {
        relay_model(ReaderRule::DrainClearRecheck)
    });
}

/// (f, broken) a reader that clears `has_event` without looking at the fifo again: loom finds
/// the interleaving where a write lands unannounced.
#[test]
#[should_panic]
fn relay_reader_without_recheck_loses_a_wakeup() {
    check("relay_reader_without_recheck_loses_a_wakeup", || {
        relay_model(ReaderRule::DrainClearNoRecheck)
    });
}

#[allow(dead_code)]
fn assert_memory<M: Memory>(_: &M) {}
