//! The admin socket: `<runtime-dir>/sapi-reference-admin.sock`, a `SOCK_STREAM` socket speaking
//! one JSON request per connection and answering `ok\n<body>` or `error\n<message>`.
//!
//! Owns the admin protocol on both ends (server side for the shell, client side for the CLI's
//! `show`, `ns`, `segment` commands). It must never touch the core's state directly: requests
//! become [`AdminCommand`] inputs like any other, and it must never let an admin client hold the
//! event loop (whose thread serves it) for longer than [`ADMIN_EXCHANGE_BOUND`] (and
//! [`ADMIN_REFUSAL_BOUND`] to say why it was cut off) beyond what the command itself takes.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use sapi_core::AdminCommand;

/// File name of the admin socket inside the runtime directory.
pub const ADMIN_SOCKET_NAME: &str = "sapi-reference-admin.sock";
/// Largest request accepted.
const MAX_REQUEST: usize = 64 * 1024;
/// How long a whole admin exchange may take, from the accept to the answer's last byte: the
/// admin socket is served on the event loop's thread, so a slow or stuck admin client (one
/// that sends a byte now and then, or reads the answer slowly) delays apps by at most this and
/// [`ADMIN_REFUSAL_BOUND`].
pub const ADMIN_EXCHANGE_BOUND: Duration = Duration::from_secs(2);
/// How long the answer to a request that could not be read may take: its own short bound, so
/// that a client cut off at [`ADMIN_EXCHANGE_BOUND`] still learns why.
pub const ADMIN_REFUSAL_BOUND: Duration = Duration::from_millis(100);

/// The admin socket's path for a runtime directory.
pub fn admin_socket_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(ADMIN_SOCKET_NAME)
}

/// One admin request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRequest {
    /// What to do.
    pub command: AdminCommand,
    /// Answer `show` as JSON instead of text.
    #[serde(default)]
    pub json: bool,
}

/// Why an admin exchange failed, on either side.
#[derive(Debug, thiserror::Error)]
pub enum AdminIoError {
    /// Could not reach the server.
    #[error("cannot reach the server's admin socket {path}: {source}")]
    Connect {
        /// The admin socket path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading or writing failed.
    #[error("admin socket i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The request was not valid JSON for an [`AdminRequest`].
    #[error("bad admin request: {0}")]
    BadRequest(String),
    /// The server answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The answer was not `ok` / `error`.
    #[error("malformed admin answer: {0:?}")]
    BadAnswer(String),
    /// The request was longer than the server reads.
    #[error("admin request longer than {MAX_REQUEST} bytes")]
    TooLong,
    /// The exchange ran out of time ([`ADMIN_EXCHANGE_BOUND`]).
    #[error("the admin exchange took longer than {0:?}")]
    TimedOut(Duration),
}

/// The time left before `deadline` as a socket timeout, or [`AdminIoError::TimedOut`].
fn time_left(deadline: Instant) -> Result<Duration, AdminIoError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(AdminIoError::TimedOut(ADMIN_EXCHANGE_BOUND));
    }
    Ok(left)
}

/// A socket timeout (`EAGAIN` on a blocking socket) is the exchange running out of time.
fn io_error(e: std::io::Error) -> AdminIoError {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => AdminIoError::TimedOut(ADMIN_EXCHANGE_BOUND),
        _ => AdminIoError::Io(e),
    }
}

/// Reads one request (up to the peer's shutdown of its writing side) from an accepted admin
/// connection, by `deadline`.
pub fn read_request(
    stream: &mut UnixStream,
    deadline: Instant,
) -> Result<AdminRequest, AdminIoError> {
    stream.set_nonblocking(false)?;
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        stream.set_read_timeout(Some(time_left(deadline)?))?;
        match stream.read(&mut piece) {
            Ok(0) => break,
            Ok(n) if buf.len() + n > MAX_REQUEST => return Err(AdminIoError::TooLong),
            Ok(n) => buf.extend_from_slice(&piece[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    serde_json::from_slice(&buf).map_err(|e| AdminIoError::BadRequest(e.to_string()))
}

/// Writes the answer to an admin connection, by `deadline` (after [`read_request`], which made
/// the stream blocking so that its timeouts apply).
pub fn write_answer(
    stream: &mut UnixStream,
    answer: Result<&str, &str>,
    deadline: Instant,
) -> Result<(), AdminIoError> {
    let (head, body) = match answer {
        Ok(b) => ("ok\n", b),
        Err(e) => ("error\n", e),
    };
    for mut bytes in [head.as_bytes(), body.as_bytes()] {
        while !bytes.is_empty() {
            stream.set_write_timeout(Some(time_left(deadline)?))?;
            match stream.write(bytes) {
                Ok(0) => return Err(AdminIoError::Io(ErrorKind::WriteZero.into())),
                Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
    }
    Ok(())
}

/// Sends `request` to the server whose runtime directory is `runtime_dir`; returns the body of an
/// `ok` answer.
pub fn request(runtime_dir: &Path, request: &AdminRequest) -> Result<String, AdminIoError> {
    let path = admin_socket_path(runtime_dir);
    let mut stream = UnixStream::connect(&path).map_err(|source| AdminIoError::Connect {
        path: path.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = serde_json::to_vec(request).map_err(|e| AdminIoError::BadRequest(e.to_string()))?;
    stream.write_all(&body)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    if let Some(body) = answer.strip_prefix("ok\n") {
        Ok(body.to_owned())
    } else if let Some(msg) = answer.strip_prefix("error\n") {
        Err(AdminIoError::Refused(msg.to_owned()))
    } else {
        Err(AdminIoError::BadAnswer(answer))
    }
}
