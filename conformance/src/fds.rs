//! What a file descriptor is, asked of the kernel: its kind from the `/proc/self/fd` link
//! (`/memfd:NAME (deleted)`, `anon_inode:[eventfd]`, `socket:[…]`), its size and inode from
//! `fstat`; and a process's fd count and memfd mappings from `/proc/<pid>/{fd,maps}` for the
//! hygiene scenarios.
//!
//! Must never: guess a kind from the order or count of fds, or keep an fd it was handed.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;

/// The kind of an fd as the kernel names it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum FdKind {
    Memfd { name: String },
    Eventfd,
    Socket,
    Other(String),
}

impl FdKind {
    pub fn is_memfd(&self) -> bool {
        matches!(self, FdKind::Memfd { .. })
    }
    pub fn short(&self) -> &'static str {
        match self {
            FdKind::Memfd { .. } => "memfd",
            FdKind::Eventfd => "eventfd",
            FdKind::Socket => "socket",
            FdKind::Other(_) => "other",
        }
    }
}

impl fmt::Display for FdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdKind::Memfd { name } => write!(f, "memfd \"{name}\""),
            FdKind::Eventfd => f.write_str("eventfd"),
            FdKind::Socket => f.write_str("socket"),
            FdKind::Other(l) => write!(f, "other ({l})"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FdError {
    #[error("readlink {path}: {source}")]
    Readlink {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fstat of fd {fd}: {errno}")]
    Stat { fd: i32, errno: nix::errno::Errno },
    #[error("reading {path}: {source}")]
    Proc {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Classifies a link target of `/proc/*/fd/N`.
pub fn classify_link(link: &str) -> FdKind {
    if let Some(rest) = link.strip_prefix("/memfd:") {
        let name = rest.strip_suffix(" (deleted)").unwrap_or(rest);
        FdKind::Memfd {
            name: name.to_string(),
        }
    } else if link == "anon_inode:[eventfd]" {
        FdKind::Eventfd
    } else if link.starts_with("socket:[") {
        FdKind::Socket
    } else {
        FdKind::Other(link.to_string())
    }
}

/// The kind of one of our own fds.
pub fn kind_of(fd: BorrowedFd<'_>) -> Result<FdKind, FdError> {
    let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let link = std::fs::read_link(&path).map_err(|source| FdError::Readlink { path, source })?;
    Ok(classify_link(&link.to_string_lossy()))
}

/// File size and (dev, inode) of an fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FdStat {
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
}

pub fn stat_of(fd: impl AsFd) -> Result<FdStat, FdError> {
    let raw = fd.as_fd().as_raw_fd();
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|errno| FdError::Stat { fd: raw, errno })?;
    Ok(FdStat {
        size: st.st_size as u64,
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// A summary of one fd received from the target, for evidence.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FdInfo {
    pub kind: FdKind,
    pub size: u64,
    pub ino: u64,
}

impl fmt::Display for FdInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FdKind::Memfd { .. } => {
                write!(f, "{} ({} bytes, ino {})", self.kind, self.size, self.ino)
            }
            _ => write!(f, "{}", self.kind),
        }
    }
}

pub fn info_of(fd: BorrowedFd<'_>) -> Result<FdInfo, FdError> {
    let kind = kind_of(fd)?;
    let st = stat_of(fd)?;
    Ok(FdInfo {
        kind,
        size: st.size,
        ino: st.ino,
    })
}

/// Kinds of a list of fds, joined for evidence: `[memfd "x" (…), eventfd]`.
pub fn describe(fds: &[FdInfo]) -> String {
    let parts: Vec<String> = fds.iter().map(|f| f.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// What a process holds, for before/after comparisons.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProcessResources {
    pub fds: usize,
    pub sockets: usize,
    pub memfds: usize,
    pub eventfds: usize,
    /// Lines of `/proc/<pid>/maps` backed by a memfd.
    pub memfd_maps: usize,
}

impl fmt::Display for ProcessResources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} fds ({} sockets, {} memfds, {} eventfds), {} memfd mappings",
            self.fds, self.sockets, self.memfds, self.eventfds, self.memfd_maps
        )
    }
}

impl ProcessResources {
    /// True when nothing grew compared to `before`.
    pub fn within(&self, before: &ProcessResources) -> bool {
        self.fds <= before.fds
            && self.memfds <= before.memfds
            && self.memfd_maps <= before.memfd_maps
    }
}

/// Reads `/proc/<pid>/fd` and `/proc/<pid>/maps`. Fds that vanish while listing are skipped.
pub fn snapshot(pid: u32) -> Result<ProcessResources, FdError> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = std::fs::read_dir(&dir).map_err(|source| FdError::Proc {
        path: dir.clone(),
        source,
    })?;
    let mut r = ProcessResources {
        fds: 0,
        sockets: 0,
        memfds: 0,
        eventfds: 0,
        memfd_maps: 0,
    };
    for e in entries.flatten() {
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        r.fds += 1;
        match classify_link(&link.to_string_lossy()) {
            FdKind::Memfd { .. } => r.memfds += 1,
            FdKind::Eventfd => r.eventfds += 1,
            FdKind::Socket => r.sockets += 1,
            FdKind::Other(_) => {}
        }
    }
    let maps = PathBuf::from(format!("/proc/{pid}/maps"));
    let text =
        std::fs::read_to_string(&maps).map_err(|source| FdError::Proc { path: maps, source })?;
    r.memfd_maps = text.lines().filter(|l| l.contains("/memfd:")).count();
    Ok(r)
}

/// Inodes of every memfd a process holds open (to check a client's fd was not taken).
pub fn memfd_inodes(pid: u32) -> Result<Vec<u64>, FdError> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = std::fs::read_dir(&dir).map_err(|source| FdError::Proc { path: dir, source })?;
    let mut v = Vec::new();
    for e in entries.flatten() {
        if let Ok(link) = std::fs::read_link(e.path())
            && classify_link(&link.to_string_lossy()).is_memfd()
            && let Ok(md) = std::fs::metadata(e.path())
        {
            use std::os::unix::fs::MetadataExt;
            v.push(md.ino());
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("/memfd:seg-1-0-0 (deleted)", FdKind::Memfd { name: "seg-1-0-0".into() })]
    #[case("/memfd:session: wrk-mqs-segment (deleted)", FdKind::Memfd { name: "session: wrk-mqs-segment".into() })]
    #[case("anon_inode:[eventfd]", FdKind::Eventfd)]
    #[case("socket:[1234]", FdKind::Socket)]
    #[case("/dev/null", FdKind::Other("/dev/null".into()))]
    fn links_classify(#[case] link: &str, #[case] kind: FdKind) {
        assert_eq!(classify_link(link), kind);
    }

    #[test]
    fn real_memfd_and_eventfd_are_told_apart() {
        let m = nix::sys::memfd::memfd_create(c"probe", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .expect("memfd");
        nix::unistd::ftruncate(&m, 12288).expect("truncate");
        let e = nix::sys::eventfd::EventFd::new().expect("eventfd");
        let mi = info_of(m.as_fd()).expect("info");
        assert_eq!(
            mi.kind,
            FdKind::Memfd {
                name: "probe".into()
            }
        );
        assert_eq!(mi.size, 12288);
        assert_eq!(kind_of(e.as_fd()).expect("kind"), FdKind::Eventfd);
        let me = snapshot(std::process::id()).expect("self");
        assert!(me.memfds >= 1 && me.eventfds >= 1);
    }
}
