//! The blocking calls (`Session::read`, `Session::write`) never miss a wake-up.
//!
//! A blocking read looks at its fifo, re-arms `has_event`, looks again, and then drains the
//! app mq before it waits; an RX the server sent between the second look and that drain is
//! taken out of the mq by the drain. The server sends no second RX while the first one's
//! claim on `has_event` stands, so a read that then waited for the mq waited for ever with
//! data in its fifo (found by the session bench: a 64 KiB reader and writer stalled within
//! a few hundred rounds). The same holds for a blocking write and its TX.
//!
//! Two apps (one thread each, the reference in a process of its own) stream in rounds: the
//! reader is idle between rounds, so every round starts and ends with an empty fifo, and the
//! writer fills a small fifo many times a round — the transitions where a wake-up can be
//! consumed. Every wait is bounded; a stall fails the test with what was waiting.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use sapi_app::{App, AppError, AppOptions, Proto, Session};
use support::Reference;

/// Not a test: the reference server when a test runs this binary again.
#[test]
#[ignore = "the reference server's process for the other tests, not a test"]
fn child_reference() {
    support::child_reference();
}

const CHUNK: usize = 64 << 10;
/// Far longer than any round takes; reaching it is a lost wake-up.
const STALL: Duration = Duration::from_secs(10);

fn pattern(round: u64, at: u64) -> u8 {
    (at.wrapping_mul(31) ^ round) as u8
}

fn read_round(s: &mut Session, round: u64, total: u64, buf: &mut [u8]) {
    let mut at = 0;
    while at < total {
        let n = (CHUNK as u64).min(total - at) as usize;
        let got = match s.read(&mut buf[..n], Some(STALL)) {
            Ok(0) => panic!("round {round}: the stream ended at {at} of {total}"),
            Ok(k) => k,
            Err(AppError::Timeout { .. }) => {
                let again = s.try_read(&mut buf[..n]);
                panic!(
                    "round {round}: a blocking read waited {STALL:?} at {at} of {total}; \
                     a look at the fifo now gives {again:?} (a lost RX if it is data)"
                )
            }
            Err(e) => panic!("round {round}: read: {e}"),
        };
        for (i, b) in buf[..got].iter().enumerate() {
            assert_eq!(
                *b,
                pattern(round, at + i as u64),
                "round {round} byte {}",
                at + i as u64
            );
        }
        at += got as u64;
    }
}

fn write_round(s: &mut Session, round: u64, total: u64, buf: &mut [u8]) {
    // Small writes keep the reader finding its fifo empty, large ones fill the fifo.
    let write = [1 << 10, 4 << 10, CHUNK][round as usize % 3] as u64;
    let mut at = 0;
    while at < total {
        let n = write.min(total - at) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(round, at + i as u64);
        }
        let mut done = 0;
        while done < n {
            done += match s.write(&buf[done..n], Some(STALL)) {
                Ok(k) => k,
                Err(AppError::Timeout { .. }) => panic!(
                    "round {round}: a blocking write waited {STALL:?} at {} of {total} \
                     (a lost TX unless the reader stalled first)",
                    at + done as u64
                ),
                Err(e) => panic!("round {round}: write: {e}"),
            };
        }
        at += n as u64;
    }
}

/// Reader and writer on distinct CPUs, where the windows the race needs are widest. (Modulo
/// the CPUs online, not `available_parallelism`: that counts the caller's own mask, which a
/// thread started by a pinned one inherits.)
fn pin_to(cpu: usize) {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let n = usize::try_from(online).ok().filter(|&n| n > 0).unwrap_or(1);
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[test]
fn blocking_reads_and_writes_in_rounds_never_lose_a_wake_up() {
    let server = Reference::start("blocking-rounds");
    let socket = server.socket();
    let small = AppOptions {
        rx_fifo_size: 256 << 10,
        tx_fifo_size: 256 << 10,
        ..AppOptions::default()
    };
    let (round_tx, round_rx) = mpsc::channel::<(u64, u64)>();
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let reader_socket = socket.clone();
    let reader = std::thread::spawn(move || {
        pin_to(1);
        let app = App::attach(&reader_socket, "blocking-reader", small).expect("attach");
        let listener = app
            .listen(([127, 0, 0, 1], 7000).into(), Proto::Tcp)
            .expect("listen");
        ready_tx.send(()).expect("main thread");
        let mut s = listener.accept(Some(STALL)).expect("accept");
        let mut buf = vec![0u8; CHUNK];
        for (round, total) in round_rx {
            read_round(&mut s, round, total, &mut buf);
            done_tx.send(round).expect("main thread");
        }
        s.close().expect("close");
        app.detach().expect("detach");
    });
    ready_rx.recv().expect("the reader listens");
    pin_to(0);
    let app = App::attach(&socket, "blocking-writer", AppOptions::default()).expect("attach");
    let mut s = app
        .connect(([127, 0, 0, 1], 7000).into(), Proto::Tcp)
        .expect("connect");
    let mut buf = vec![0u8; CHUNK];
    let rounds = 2000u64;
    let mut moved = 0;
    for round in 0..rounds {
        // 1 to 32 chunks (64 KiB to 2 MiB, up to 8 fifos' worth) and an odd tail.
        let total = (round % 32 + 1) * CHUNK as u64 + round % 7;
        round_tx.send((round, total)).expect("reader");
        write_round(&mut s, round, total, &mut buf);
        let ended = done_rx.recv_timeout(STALL * 2);
        assert_eq!(ended, Ok(round), "round {round}: the reader did not finish");
        moved += total;
    }
    drop(round_tx);
    reader.join().expect("the reader");
    eprintln!("{rounds} rounds, {moved} bytes, stats {:?}", app.stats());
    s.close().expect("close");
    app.detach().expect("detach");
}
