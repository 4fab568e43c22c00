//! The application side of VPP's session layer over the socket API (`docs/protocol.md` §8,
//! `docs/sessions.md`): attach to a namespace socket, listen, accept, connect, move bytes through
//! the cut-through fifos with the io-event protocol of `docs/sessions.md` §8, close, detach.
//!
//! The one place app-side code lives: the examples, the real-process tests and the benches use
//! this crate rather than a copy of it. (The conformance suite does not: it judges servers with a
//! client of its own, `conformance/src/session/`, so that the reference's code never judges
//! itself.)
//!
//! Built on [`sapi_wire`] (the socket messages and the mq elements) and [`sapi_shm`] (segments,
//! message queues, fifos); never on the server's crates.
//!
//! Rooms:
//! * [`error`] — [`AppError`]: every failure, with the value that was wrong.
//! * `socket` — the namespace socket: one datagram out, one datagram and its fds in, bounded.
//! * [`app`] — [`App`]: one attached app worker, its segments, server mqs and app mq, and the
//!   dispatch of everything the server puts into the app mq.
//! * [`session`] — [`Listener`] and [`Session`]: listen, accept, connect, read, write, close.
//! * `signals` — the app's half of the io-event protocol on a fifo header's signal block.
//!
//! ```no_run
//! use sapi_app::{App, AppOptions, Proto};
//! # fn main() -> Result<(), sapi_app::AppError> {
//! let app = App::attach("/tmp/sapi/app_ns_sockets/default", "echo", AppOptions::default())?;
//! let listener = app.listen("127.0.0.1:5000".parse().expect("address"), Proto::Tcp)?;
//! let mut session = listener.accept(None)?;
//! let mut buf = vec![0u8; 64 << 10];
//! loop {
//!     let n = session.read(&mut buf, None)?;
//!     if n == 0 {
//!         break; // the peer closed
//!     }
//!     session.write_all(&buf[..n], None)?;
//! }
//! session.close()?;
//! app.detach()
//! # }
//! ```
//!
//! Single-threaded by design, like a VCL worker: an [`App`] and everything made from it is
//! `!Send`; one process (or thread) drives one app worker. A process that serves many sessions
//! drives them from one loop with the non-blocking [`Session::try_read`] /
//! [`Session::try_write`] and waits in [`App::poll`]: every `WouldBlock` arms the event that ends
//! it, so nothing is missed between a look at a fifo and the wait.

pub mod app;
pub mod error;
pub mod session;
mod signals;
mod socket;

pub use app::{App, AppOptions, Stats};
pub use error::AppError;
pub use session::{Listener, Proto, Session, SessionState};
