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

/// Writes `total` bytes and reads `total` bytes at once, from one thread: whichever of the
/// two can move, and a wait in [`App::poll`] only when neither can.
pub fn session_duplex(
    app: &App,
    session: &mut Session,
    chunk: usize,
    total: u64,
    src: &[u8],
    dst: &mut [u8],
) {
    let (mut sent, mut received) = (0u64, 0u64);
    while sent < total || received < total {
        let mut moved = false;
        if sent < total {
            let n = (chunk as u64).min(total - sent) as usize;
            match session.try_write(&src[..n]) {
                Ok(k) => {
                    sent += k as u64;
                    moved |= k > 0;
                }
                Err(AppError::WouldBlock) => {}
                Err(e) => panic!("session write: {e}"),
            }
        }
        if received < total {
            let n = (chunk as u64).min(total - received) as usize;
            match session.try_read(&mut dst[..n]) {
                Ok(0) => panic!("the session ended {} bytes early", total - received),
                Ok(k) => {
                    received += k as u64;
                    moved = true;
                }
                Err(AppError::WouldBlock) => {}
                Err(e) => panic!("session read: {e}"),
            }
        }
        if !moved {
            let handled = app.poll(Some(STALL)).expect("app poll");
            assert!(
                handled > 0,
                "duplex stalled: {sent} sent, {received} received"
            );
        }
    }
}

/// The same duplex loop over a non-blocking stream socket, waiting in `poll(2)`.
pub fn socket_duplex(fd: BorrowedFd<'_>, chunk: usize, total: u64, src: &[u8], dst: &mut [u8]) {
    set_nonblocking(fd);
    let (mut sent, mut received) = (0u64, 0u64);
    while sent < total || received < total {
        let mut moved = false;
        if sent < total {
            let n = (chunk as u64).min(total - sent) as usize;
            // SAFETY: `n` readable bytes of `src`.
            let k = unsafe { libc::write(fd.as_raw_fd(), src.as_ptr().cast(), n) };
            if k > 0 {
                sent += k as u64;
                moved = true;
            } else {
                would_block("write", k);
            }
        }
        if received < total {
            let n = (chunk as u64).min(total - received) as usize;
            // SAFETY: `n` writable bytes of `dst`.
            let k = unsafe { libc::read(fd.as_raw_fd(), dst.as_mut_ptr().cast(), n) };
            assert_ne!(k, 0, "the socket closed {} bytes early", total - received);
            if k > 0 {
                received += k as u64;
                moved = true;
            } else {
                would_block("read", k);
            }
        }
        if !moved {
            let mut events = 0;
            if sent < total {
                events |= libc::POLLOUT;
            }
            if received < total {
                events |= libc::POLLIN;
            }
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events,
                revents: 0,
            };
            // SAFETY: one pollfd.
            let r = unsafe { libc::poll(&mut p, 1, STALL.as_millis() as libc::c_int) };
            assert!(
                r > 0,
                "socket duplex stalled: {sent} sent, {received} received"
            );
        }
    }
    set_blocking(fd);
}

fn would_block(what: &str, k: isize) {
    assert!(k < 0);
    let e = std::io::Error::last_os_error();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ),
        "{what}: {e}"
    );
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
