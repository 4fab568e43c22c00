//! The loops one side of a session bench runs — sink, source, duplex — over a `sapi-app`
//! session, and the same loops over a kernel stream socket for the anchors beside it.
//!
//! Every loop moves exactly `total` bytes in writes (and reads) of up to `chunk` bytes. The
//! session loops wait the way an app does, in [`App::poll`] on the app mq's eventfd, never by
//! spinning; the socket loops wait in `poll(2)`: each subject and anchor waits as a real
//! program of its kind would.
//!
//! Must never: hide a failure: a session error or a stalled stream (no progress for
//! [`STALL`]) panics with what was being done.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use sapi_app::{App, AppError, Session};

/// A failure bound: a stream that makes no progress for this long is broken.
pub const STALL: Duration = Duration::from_secs(20);

/// Reads `total` bytes from `session` in reads of up to `chunk` bytes into `buf`.
pub fn session_sink(session: &mut Session, chunk: usize, total: u64, buf: &mut [u8]) {
    let mut left = total;
    while left > 0 {
        let n = (chunk as u64).min(left) as usize;
        let got = session
            .read(&mut buf[..n], Some(STALL))
            .expect("session read");
        assert!(got > 0, "the session ended {left} bytes early");
        left -= got as u64;
    }
}

/// Writes `total` bytes into `session` in writes of up to `chunk` bytes from `src`.
pub fn session_source(session: &mut Session, chunk: usize, total: u64, src: &[u8]) {
    let mut left = total;
    while left > 0 {
        let n = (chunk as u64).min(left) as usize;
        let put = session
            .write(&src[..n], Some(STALL))
            .expect("session write");
        left -= put as u64;
    }
}

/// The loop of one side of a duplex stream, from one thread: `write(n)` and `read(n)` each
/// move up to `n` bytes and say how many (0: not now), whichever can; `wait(moved, sent,
/// received)` follows every pass and should wait only when nothing moved. Ends when `total`
/// bytes went each way.
pub fn duplex(
    chunk: usize,
    total: u64,
    mut write: impl FnMut(usize) -> usize,
    mut read: impl FnMut(usize) -> usize,
    mut wait: impl FnMut(bool, u64, u64),
) {
    let (mut sent, mut received) = (0u64, 0u64);
    while sent < total || received < total {
        let mut moved = false;
        if sent < total {
            let k = write((chunk as u64).min(total - sent) as usize);
            sent += k as u64;
            moved |= k > 0;
        }
        if received < total {
            let k = read((chunk as u64).min(total - received) as usize);
            received += k as u64;
            moved |= k > 0;
        }
        wait(moved, sent, received);
    }
}

/// [`duplex`] over a session, waiting in [`App::poll`].
pub fn session_duplex(
    app: &App,
    session: &mut Session,
    chunk: usize,
    total: u64,
    src: &[u8],
    dst: &mut [u8],
) {
    let session = std::cell::RefCell::new(session);
    duplex(
        chunk,
        total,
        |n| match session.borrow_mut().try_write(&src[..n]) {
            Ok(k) => k,
            Err(AppError::WouldBlock) => 0,
            Err(e) => panic!("session write: {e}"),
        },
        |n| match session.borrow_mut().try_read(&mut dst[..n]) {
            Ok(0) => panic!("the session ended early"),
            Ok(k) => k,
            Err(AppError::WouldBlock) => 0,
            Err(e) => panic!("session read: {e}"),
        },
        |moved, sent, received| {
            if !moved {
                let handled = app.poll(Some(STALL)).expect("app poll");
                assert!(
                    handled > 0,
                    "duplex stalled: {sent} sent, {received} received"
                );
            }
        },
    );
}

/// [`duplex`] over a non-blocking stream socket, waiting in `poll(2)`.
pub fn socket_duplex(fd: BorrowedFd<'_>, chunk: usize, total: u64, src: &[u8], dst: &mut [u8]) {
    set_nonblocking(fd);
    let raw = fd.as_raw_fd();
    duplex(
        chunk,
        total,
        // SAFETY: `n` readable bytes of `src`.
        |n| moved("write", unsafe { libc::write(raw, src.as_ptr().cast(), n) }),
        |n| {
            // SAFETY: `n` writable bytes of `dst`.
            let k = unsafe { libc::read(raw, dst.as_mut_ptr().cast(), n) };
            assert_ne!(k, 0, "the socket closed early");
            moved("read", k)
        },
        |moved, sent, received| {
            if moved {
                return;
            }
            let mut events = 0;
            if sent < total {
                events |= libc::POLLOUT;
            }
            if received < total {
                events |= libc::POLLIN;
            }
            let mut p = libc::pollfd {
                fd: raw,
                events,
                revents: 0,
            };
            // SAFETY: one pollfd.
            let r = unsafe { libc::poll(&mut p, 1, STALL.as_millis() as libc::c_int) };
            assert!(
                r > 0,
                "socket duplex stalled: {sent} sent, {received} received"
            );
        },
    );
    set_blocking(fd);
}

/// Bytes a non-blocking `read`/`write` moved: 0 when it would block.
fn moved(what: &str, k: isize) -> usize {
    if k >= 0 {
        return k as usize;
    }
    let e = std::io::Error::last_os_error();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ),
        "{what}: {e}"
    );
    0
}

fn set_flags(fd: BorrowedFd<'_>, nonblocking: bool) {
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: plain fcntl on a live fd.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        let flags = if nonblocking {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        libc::fcntl(raw, libc::F_SETFL, flags);
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    set_flags(fd, true);
}

fn set_blocking(fd: BorrowedFd<'_>) {
    set_flags(fd, false);
}
