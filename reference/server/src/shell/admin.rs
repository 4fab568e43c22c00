//! The admin socket: `<runtime-dir>/sapi-reference-admin.sock`, a `SOCK_STREAM` socket speaking
//! one JSON request per connection and answering `ok\n<body>` or `error\n<message>`.
//!
//! Owns the admin protocol on both ends (server side for the shell, client side for the CLI's
//! `show`, `ns`, `segment` commands). It must never touch the core's state directly: requests
//! become [`AdminCommand`] inputs like any other.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use sapi_core::AdminCommand;

/// File name of the admin socket inside the runtime directory.
pub const ADMIN_SOCKET_NAME: &str = "sapi-reference-admin.sock";
/// Largest request accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long an admin peer may take to send its request or read the answer. The admin socket is
/// served on the event loop's thread, so a stuck admin client delays apps by at most this.
pub const ADMIN_IO_TIMEOUT: Duration = Duration::from_secs(2);

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
}

/// Reads one request from an accepted admin connection.
pub fn read_request(stream: &mut UnixStream) -> Result<AdminRequest, AdminIoError> {
    stream.set_read_timeout(Some(ADMIN_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(ADMIN_IO_TIMEOUT))?;
    let mut buf = Vec::new();
    stream.take(MAX_REQUEST).read_to_end(&mut buf)?;
    serde_json::from_slice(&buf).map_err(|e| AdminIoError::BadRequest(e.to_string()))
}

/// Writes the answer to an admin connection.
pub fn write_answer(stream: &mut UnixStream, answer: Result<&str, &str>) -> std::io::Result<()> {
    let (head, body) = match answer {
        Ok(b) => ("ok\n", b),
        Err(e) => ("error\n", e),
    };
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
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
