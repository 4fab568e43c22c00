//! Where a namespace's listener lives: a filesystem path or an abstract name, parsed with VPP's
//! limits (`docs/protocol.md` §1.2).
//!
//! Must never: touch the filesystem or a socket: it only parses a name; binding, unlinking and
//! creating directories are the shell's, on `Action::Listen`.

use std::path::PathBuf;

/// Where a namespace's listener lives.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SocketName {
    /// A filesystem path.
    Path(std::path::PathBuf),
    /// A Linux abstract socket name (no leading NUL).
    Abstract(String),
}

impl std::fmt::Display for SocketName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketName::Path(p) => write!(f, "{}", p.display()),
            SocketName::Abstract(n) => write!(f, "abstract:{n}"),
        }
    }
}

/// Parses a `sock-name`: `abstract:NAME[,netns_...]` or an absolute path (`unix:` prefix allowed),
/// with VPP's limits (path ≤ 106 characters of `[A-Za-z0-9/._-]`, abstract name ≤ 105).
pub fn parse_socket_name(s: &str) -> Result<SocketName, &'static str> {
    if let Some(rest) = s.strip_prefix("abstract:") {
        let name = rest.split(',').next().unwrap_or_default();
        if rest.contains(',') {
            return Err("netns options are not supported by the reference");
        }
        if name.is_empty() || name.len() > 105 {
            return Err("an abstract name has 1 to 105 characters");
        }
        return Ok(SocketName::Abstract(name.to_owned()));
    }
    let path = s.strip_prefix("unix:").unwrap_or(s);
    if !path.starts_with('/') {
        return Err("a socket path must be absolute (or use abstract:NAME)");
    }
    if path.len() > 106 {
        return Err("a socket path has at most 106 characters");
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        return Err("only [A-Za-z0-9/._-] may appear in a socket path");
    }
    Ok(SocketName::Path(PathBuf::from(path)))
}
