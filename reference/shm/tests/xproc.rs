//! Two real processes share a segment: the parent creates it, passes the memfd and an eventfd
//! over a `SOCK_SEQPACKET` socketpair with `SCM_RIGHTS`; the child — this test binary run again
//! with `SAPI_SHM_CHILD` set — maps it through `opaque[0]` and consumes. Every wait is bounded
//! by a deadline that fails the test; nothing sleeps to synchronise.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use sapi_shm::fifo::{self, FifoConsumer, FifoError, FifoProducer, WANT_DEQ_NOTIF_IF_FULL};
use sapi_shm::mq::{
    self, EventFdSignal, MqConsumer, MqError, MqProducer, MqSpec, PthreadSignal, Signal,
};
use sapi_shm::segment::{Segment, SegmentLayout, app_segment_ssvm_size};
use sapi_wire::ctrl::{SessionEvent, SessionEventType};

const ROLE_ENV: &str = "SAPI_SHM_CHILD";
const CHILD_SOCK: RawFd = 3;
const N_MSGS: u64 = 100_000;
const FIFO_BYTES: u64 = 256 << 20;
const FIFO_SIZE: u32 = 1 << 20;
const WAIT: Duration = Duration::from_secs(20);

/// Order-sensitive checksum of a byte stream, fed in arbitrary pieces.
#[derive(Default)]
struct Checksum {
    h: u64,
    n: u64,
}

impl Checksum {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.h = (self.h ^ b as u64)
                .wrapping_mul(0x100_0000_01b3)
                .rotate_left(1);
        }
        self.n += bytes.len() as u64;
    }
}

/// The byte at stream position `p`.
fn stream_byte(p: u64) -> u8 {
    (p ^ (p >> 8) ^ (p >> 16).wrapping_mul(7)) as u8
}

/// Message `i`: its sequence number then a pattern; 18-byte IO events and 200-byte bodies
/// alternate in runs, so both rings are used.
fn message(i: u64, buf: &mut [u8; 256]) -> usize {
    let len = if (i / 7).is_multiple_of(3) { 200 } else { 18 };
    buf[..8].copy_from_slice(&i.to_le_bytes());
    for (k, b) in buf[8..len].iter_mut().enumerate() {
        *b = (i as u8).wrapping_add(k as u8);
    }
    len
}

fn eventfd() -> OwnedFd {
    // SAFETY: plain syscall; the fd is owned below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd");
    // SAFETY: fresh fd.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn wait_readable(fd: RawFd, deadline: Instant) {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for the peer");
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            return;
        }
    }
}

fn send_with_fds(sock: RawFd, words: &[u64], fds: &[RawFd]) {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(
        sock,
        &[IoSlice::new(&bytes)],
        cmsgs,
        MsgFlags::empty(),
        None,
    )
    .expect("sendmsg");
}

fn recv_with_fds(sock: RawFd, deadline: Instant) -> (Vec<u64>, Vec<OwnedFd>) {
    wait_readable(sock, deadline);
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .expect("recvmsg");
    let mut fds = Vec::new();
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS gave us these fresh fds.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let n = msg.bytes;
    let words = buf[..n]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    (words, fds)
}

fn spawn_child(role: &str, sock: &OwnedFd) -> Child {
    let raw = sock.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        "--exact",
        "child_entry",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(ROLE_ENV, role);
    // SAFETY: dup2 is async-signal-safe; it puts the child's socket end at fd 3 without
    // FD_CLOEXEC, so only this child inherits it.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, CHILD_SOCK) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("spawn child")
}

fn finish(mut child: Child, sock: RawFd, deadline: Instant) -> Vec<u64> {
    let (words, _) = recv_with_fds(sock, deadline);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "child failed: {status}");
            return words;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child did not exit");
        }
        // The child already reported; it is only tearing down.
        wait_readable_or_eof(sock, deadline);
    }
}

fn wait_readable_or_eof(sock: RawFd, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut p = libc::pollfd {
        fd: sock,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd; returns on the child's exit (EOF) or the deadline.
    unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
}

fn send_messages<S: Signal>(tx: &mut MqProducer<'_, Segment, S>) -> Checksum {
    let mut sum = Checksum::default();
    let mut buf = [0u8; 256];
    for i in 0..N_MSGS {
        let len = message(i, &mut buf);
        tx.send(&buf[..len], Some(WAIT)).expect("send");
        sum.feed(&buf[..len]);
    }
    sum
}

fn recv_messages<S: Signal>(rx: &mut MqConsumer<'_, Segment, S>) -> Checksum {
    let mut sum = Checksum::default();
    let mut buf = [0u8; 256];
    let mut want = [0u8; 256];
    for i in 0..N_MSGS {
        let got = rx.recv(&mut buf, Some(WAIT)).expect("recv");
        let len = message(i, &mut want);
        assert_eq!(got.ring, if len == 18 { 0 } else { 1 }, "message {i} ring");
        assert_eq!(&buf[..len], &want[..len], "message {i}");
        sum.feed(&buf[..len]);
    }
    sum
}

#[test]
fn mq_and_fifo_across_processes_in_eventfd_mode() {
    let seg = Segment::create(
        "xproc-eventfd",
        SegmentLayout {
            ssvm_size: app_segment_ssvm_size(16 << 20),
            n_slices: 1,
        },
    )
    .expect("segment");
    let mq_off = mq::create(&seg, &MqSpec::app_event_queue(256)).expect("mq");
    let ack_off = mq::create(&seg, &MqSpec::app_event_queue(0)).expect("ack mq");
    let fifo_off = fifo::create(seg.fifo_segment(), 0, FIFO_SIZE).expect("fifo");
    let (efd, ack_efd) = (eventfd(), eventfd());
    let (mine, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let child = spawn_child("eventfd", &theirs);
    drop(theirs);
    let deadline = Instant::now() + 3 * WAIT;
    send_with_fds(
        mine.as_raw_fd(),
        &[mq_off, ack_off, fifo_off],
        &[seg.fd().as_raw_fd(), efd.as_raw_fd(), ack_efd.as_raw_fd()],
    );

    let mut tx = MqProducer::attach(&seg, mq_off, EventFdSignal::new(efd.as_fd())).expect("tx");
    let mq_sum = send_messages(&mut tx);

    // 256 MiB through the fifo: RX events on the mq when `has_event` flips, and dequeue
    // notifications back on the ack mq when the fifo was full.
    let mut ftx = FifoProducer::attach(&seg, fifo_off).expect("fifo tx");
    let mut acks =
        MqConsumer::attach(&seg, ack_off, EventFdSignal::new(ack_efd.as_fd())).expect("acks");
    let mut sum = Checksum::default();
    let mut piece = vec![0u8; 192 << 10];
    let mut sent = 0u64;
    let rx_event = SessionEvent::io(SessionEventType::IoRx.number_head(), 0).encode();
    let mut ack = [0u8; 256];
    while sent < FIFO_BYTES {
        let n = (piece.len() as u64).min(FIFO_BYTES - sent) as usize;
        for (k, b) in piece[..n].iter_mut().enumerate() {
            *b = stream_byte(sent + k as u64);
        }
        let mut off = 0;
        while off < n {
            match ftx.enqueue(&piece[off..n]) {
                Ok(k) => {
                    sum.feed(&piece[off..off + k]);
                    off += k;
                    sent += k as u64;
                    if ftx.set_has_event().expect("has_event") {
                        tx.send(&rx_event, Some(WAIT)).expect("rx event");
                    }
                }
                Err(FifoError::Full) => {
                    ftx.add_want_deq_ntf(WANT_DEQ_NOTIF_IF_FULL).expect("want");
                    if ftx.free_space().expect("free") == 0 {
                        acks.recv(&mut ack, Some(WAIT))
                            .expect("dequeue notification");
                    }
                    ftx.clear_deq_ntf(WANT_DEQ_NOTIF_IF_FULL).expect("clear");
                    while acks.try_recv(&mut ack).is_ok() {}
                }
                Err(e) => panic!("enqueue: {e}"),
            }
        }
    }
    let words = finish(child, mine.as_raw_fd(), deadline);
    assert_eq!(words, vec![mq_sum.n, mq_sum.h, sum.n, sum.h]);
}

#[test]
fn mq_across_processes_in_mutex_condvar_mode() {
    let seg = Segment::create(
        "xproc-condvar",
        SegmentLayout {
            ssvm_size: app_segment_ssvm_size(0),
            n_slices: 1,
        },
    )
    .expect("segment");
    let mq_off = mq::create(&seg, &MqSpec::app_event_queue(64)).expect("mq");
    let (mine, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let child = spawn_child("condvar", &theirs);
    drop(theirs);
    let deadline = Instant::now() + 3 * WAIT;
    send_with_fds(mine.as_raw_fd(), &[mq_off], &[seg.fd().as_raw_fd()]);
    let signal = PthreadSignal::new(&seg, mq_off).expect("pthread");
    let mut tx = MqProducer::attach(&seg, mq_off, signal).expect("tx");
    let sum = send_messages(&mut tx);
    let words = finish(child, mine.as_raw_fd(), deadline);
    assert_eq!(words, vec![sum.n, sum.h]);
}

/// The child side; a no-op unless started by one of the tests above.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    // SAFETY: the parent placed our socket end at fd 3 and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(CHILD_SOCK) };
    let deadline = Instant::now() + WAIT;
    let (words, mut fds) = recv_with_fds(sock.as_raw_fd(), deadline);
    let seg = Segment::attach(fds.remove(0)).expect("attach");
    assert_eq!(
        seg.ssvm_header().expect("hdr").client_pid,
        std::process::id()
    );
    match role.as_str() {
        "eventfd" => {
            let (efd, ack_efd) = (fds.remove(0), fds.remove(0));
            let mut rx =
                MqConsumer::attach(&seg, words[0], EventFdSignal::new(efd.as_fd())).expect("rx");
            let mq_sum = recv_messages(&mut rx);
            let mut acks = MqProducer::attach(&seg, words[1], EventFdSignal::new(ack_efd.as_fd()))
                .expect("acks");
            let mut frx = FifoConsumer::attach(&seg, words[2]).expect("fifo rx");
            let mut sum = Checksum::default();
            let mut buf = vec![0u8; 256 << 10];
            let mut ev = [0u8; 256];
            let ack = SessionEvent::io(SessionEventType::IoTx.number_head(), 0).encode();
            while sum.n < FIFO_BYTES {
                let got = rx.recv(&mut ev, Some(WAIT)).expect("rx event");
                assert_eq!(got.ring, 0);
                assert_eq!(
                    SessionEvent::decode(&ev).expect("event").event_type,
                    SessionEventType::IoRx.number_head()
                );
                frx.clear_has_event().expect("clear");
                loop {
                    match frx.dequeue(&mut buf) {
                        Ok(n) => {
                            for (k, b) in buf[..n].iter().enumerate() {
                                assert_eq!(*b, stream_byte(sum.n + k as u64), "fifo byte");
                            }
                            sum.feed(&buf[..n]);
                            if frx.needs_deq_ntf(n as u32).expect("ntf") {
                                frx.set_has_deq_ntf().expect("has");
                                match acks.try_send(&ack) {
                                    Ok(()) | Err(MqError::Full) => {}
                                    Err(e) => panic!("ack: {e}"),
                                }
                            }
                        }
                        Err(FifoError::Empty) => break,
                        Err(e) => panic!("dequeue: {e}"),
                    }
                }
            }
            send_with_fds(sock.as_raw_fd(), &[mq_sum.n, mq_sum.h, sum.n, sum.h], &[]);
        }
        "condvar" => {
            let signal = PthreadSignal::new(&seg, words[0]).expect("pthread");
            let mut rx = MqConsumer::attach(&seg, words[0], signal).expect("rx");
            let sum = recv_messages(&mut rx);
            send_with_fds(sock.as_raw_fd(), &[sum.n, sum.h], &[]);
        }
        other => panic!("unknown child role {other}"),
    }
}
