//! What a file descriptor is, asked of the kernel: its kind from the `/proc/self/fd` link
//! (`/memfd:NAME (deleted)`, `anon_inode:[eventfd]`, `socket:[…]`), its size and inode from
//! `fstat`, an eventfd's id from `fdinfo`, a memfd's seals from `F_GET_SEALS`; and what a process
//! holds — sockets and memfds by inode, eventfds by id, memfd mappings by inode — from
//! `/proc/<pid>/{fd,fdinfo,maps}`, so the hygiene and detach scenarios can look for exactly what
//! they own in the server.
//!
//! Must never: guess a kind from the order or count of fds, keep an fd it was handed, or claim to
//! tell eventfds apart when the kernel prints no `eventfd-id`.

use std::collections::BTreeMap;
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

/// Positions, among a reply's fds, of the two that belong to the one worker the reply is for:
/// its fifo segment (`MEMFD_SEGMENT`) and its mq eventfd (`MQ_EVENTFD`), found by the fixed order
/// of `docs/protocol.md` §5.3 (VPP mqs segment, app segment, app mq eventfd, VPP mq eventfds).
/// The VPP mqs segment and VPP's mq eventfds are shared by every app and belong to none. A
/// position whose fd is not of the announced kind is left out: what the suite cannot identify,
/// it does not claim.
pub fn worker_own_fds(fd_flags: u8, infos: &[FdInfo]) -> Vec<usize> {
    use crate::wire::fd_flag;
    let mut own = Vec::new();
    let mut at = usize::from(fd_flags & fd_flag::VPP_MQ_SEGMENT != 0);
    if fd_flags & fd_flag::MEMFD_SEGMENT != 0 {
        if infos.get(at).is_some_and(|i| i.kind.is_memfd()) {
            own.push(at);
        }
        at += 1;
    }
    if fd_flags & fd_flag::MQ_EVENTFD != 0
        && infos.get(at).is_some_and(|i| i.kind == FdKind::Eventfd)
    {
        own.push(at);
    }
    own
}

/// Kinds of a list of fds, joined for evidence: `[memfd "x" (…), eventfd]`.
pub fn describe(fds: &[FdInfo]) -> String {
    let parts: Vec<String> = fds.iter().map(|f| f.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// One memfd a process holds, by inode: through which fds and in how many mappings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemfdHolding {
    pub name: String,
    pub fds: Vec<i32>,
    /// Lines of `/proc/<pid>/maps` with this inode.
    pub mappings: usize,
    /// Its first page read back all zero through one of its fds: nothing is laid out in it (no
    /// ssvm header), so no app was ever given it — a segment a server prepared ahead of the
    /// request that will take it. False for a memfd held by mappings only (it cannot be read).
    pub blank: bool,
}

/// What a process holds, each thing named the way the kernel names it: sockets by inode
/// (`socket:[INO]` links), memfds by inode (an fd's `st_ino`, the inode column of `maps`),
/// eventfds by `eventfd-id` (all eventfds share one anonymous inode, so `fdinfo`'s id is the
/// only name the kernel gives them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Socket inode → the fds holding it.
    pub sockets: BTreeMap<u64, Vec<i32>>,
    /// Memfd inode → its fds and mappings (a memfd that is only mapped has no fds).
    pub memfds: BTreeMap<u64, MemfdHolding>,
    /// `eventfd-id` → the fds holding it. Ids come from a kernel IDA: a freed id is handed out
    /// again, so an id names an eventfd only while nothing else creates one.
    pub eventfds: BTreeMap<u64, Vec<i32>>,
    /// Every eventfd's `fdinfo` had an `eventfd-id:` line. When false, `eventfds` is
    /// incomplete and no claim about eventfds may be made.
    pub eventfd_ids: bool,
}

/// The inode in a `socket:[INO]` link.
pub fn socket_link_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The `eventfd-id:` of an eventfd's `fdinfo` text, when the kernel prints one.
pub fn parse_eventfd_id(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("eventfd-id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Inode and memfd name of a `/proc/<pid>/maps` line backed by a memfd
/// (`addr perms offset dev inode /memfd:NAME (deleted)`).
pub fn parse_memfd_mapping(line: &str) -> Option<(u64, &str)> {
    let at = line.find("/memfd:")?;
    let ino = line[..at].split_whitespace().nth(4)?.parse().ok()?;
    let rest = &line[at + "/memfd:".len()..];
    Some((ino, rest.strip_suffix(" (deleted)").unwrap_or(rest)))
}

/// The `eventfd-id` of one of our own eventfds (`None` when the kernel prints none).
pub fn eventfd_id(fd: BorrowedFd<'_>) -> Result<Option<u64>, FdError> {
    let path = PathBuf::from(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()));
    let text = std::fs::read_to_string(&path).map_err(|source| FdError::Proc { path, source })?;
    Ok(parse_eventfd_id(&text))
}

/// Reads what process `pid` holds from `/proc/<pid>/{fd,fdinfo,maps}`. An fd that closes while
/// the directory is listed is skipped: it is no longer held.
pub fn holdings(pid: u32) -> Result<Holdings, FdError> {
    use std::os::unix::fs::MetadataExt;
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = std::fs::read_dir(&dir).map_err(|source| FdError::Proc {
        path: dir.clone(),
        source,
    })?;
    let mut h = Holdings {
        eventfd_ids: true,
        ..Holdings::default()
    };
    for e in entries.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        let link = link.to_string_lossy();
        match classify_link(&link) {
            FdKind::Socket => {
                if let Some(ino) = socket_link_inode(&link) {
                    h.sockets.entry(ino).or_default().push(fd);
                }
            }
            FdKind::Memfd { name } => {
                if let Ok(md) = std::fs::metadata(e.path()) {
                    let m = h.memfds.entry(md.ino()).or_default();
                    if m.fds.is_empty() {
                        m.blank = first_page_is_zero(&e.path());
                    }
                    m.name = name;
                    m.fds.push(fd);
                }
            }
            FdKind::Eventfd => {
                let info = PathBuf::from(format!("/proc/{pid}/fdinfo/{fd}"));
                match std::fs::read_to_string(&info) {
                    Ok(text) => match parse_eventfd_id(&text) {
                        Some(id) => h.eventfds.entry(id).or_default().push(fd),
                        None => h.eventfd_ids = false,
                    },
                    // Closed since the listing.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(FdError::Proc { path: info, source }),
                }
            }
            FdKind::Other(_) => {}
        }
    }
    let maps = PathBuf::from(format!("/proc/{pid}/maps"));
    let text =
        std::fs::read_to_string(&maps).map_err(|source| FdError::Proc { path: maps, source })?;
    for (ino, name) in text.lines().filter_map(parse_memfd_mapping) {
        let m = h.memfds.entry(ino).or_default();
        if m.name.is_empty() {
            m.name = name.to_string();
        }
        m.mappings += 1;
    }
    Ok(h)
}

/// Whether the file at `path` (another process's memfd, through `/proc/<pid>/fd`) reads back
/// all zero in its first page; false when it cannot be read.
fn first_page_is_zero(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut page = [0u8; 4096];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut n = 0;
    while n < page.len() {
        match f.read(&mut page[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    page[..n].iter().all(|b| *b == 0)
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

/// Whether `fd` is a file in huge pages (a hugetlb memfd).
pub fn is_hugetlb(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statfs::fstatfs(fd)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::HUGETLBFS_MAGIC)
}

/// Why the memfd `fd` is not sealed against shrinking (`docs/shm.md` §2), or `None` when it is.
pub fn shrink_seal_missing(fd: BorrowedFd<'_>) -> Option<String> {
    match nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GET_SEALS) {
        Ok(seals) if seals & libc::F_SEAL_SHRINK != 0 => None,
        Ok(seals) => Some(format!(
            "seals {seals:#x}, without F_SEAL_SHRINK ({:#x}): the server could cut the file \
             under a client's mapping (SIGBUS)",
            libc::F_SEAL_SHRINK
        )),
        Err(errno) => Some(format!("F_GET_SEALS failed ({errno}): not a memfd")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// A real memfd, made with sealing allowed and given `seals`.
    fn memfd_sealed(seals: libc::c_int) -> std::os::fd::OwnedFd {
        use std::os::fd::FromRawFd;
        // SAFETY: a NUL-terminated name; the returned fd is checked and owned at once.
        let raw = unsafe { libc::memfd_create(c"seal-test".as_ptr(), libc::MFD_ALLOW_SEALING) };
        assert!(
            raw >= 0,
            "memfd_create: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh fd of ours alone.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: fcntl on an fd we own.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
        assert_eq!(rc, 0, "F_ADD_SEALS: {}", std::io::Error::last_os_error());
        fd
    }

    #[rstest]
    #[case::shrink(libc::F_SEAL_SHRINK, true)]
    #[case::shrink_and_grow(libc::F_SEAL_SHRINK | libc::F_SEAL_GROW, true)]
    #[case::grow_only(libc::F_SEAL_GROW, false)]
    #[case::none(0, false)]
    fn only_a_shrink_seal_counts(#[case] seals: libc::c_int, #[case] sealed: bool) {
        let fd = memfd_sealed(seals);
        let missing = shrink_seal_missing(fd.as_fd());
        assert_eq!(missing.is_none(), sealed, "{missing:?}");
    }

    #[test]
    fn an_fd_that_is_no_memfd_is_not_sealed() {
        let (r, _w) = nix::unistd::pipe().expect("pipe");
        let why = shrink_seal_missing(r.as_fd()).expect("a pipe has no seals");
        assert!(why.contains("not a memfd"), "{why}");
    }

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
        let me = holdings(std::process::id()).expect("self");
        let held = &me.memfds[&mi.ino];
        assert_eq!((held.name.as_str(), held.fds.len()), ("probe", 1));
        assert!(me.eventfd_ids, "this kernel prints eventfd-id");
        let id = eventfd_id(e.as_fd()).expect("fdinfo").expect("eventfd-id");
        assert_eq!(me.eventfds[&id], vec![e.as_fd().as_raw_fd()]);
    }

    #[test]
    fn a_mapped_memfd_is_found_by_inode_after_its_fd_closes() {
        let m = nix::sys::memfd::memfd_create(c"mapped", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .expect("memfd");
        nix::unistd::ftruncate(&m, 4096).expect("truncate");
        let ino = stat_of(&m).expect("stat").ino;
        use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
        let len = std::num::NonZeroUsize::new(4096).expect("non-zero");
        // SAFETY: a fresh shared mapping of a memfd of ours, unmapped below and never read.
        let p = unsafe { mmap(None, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED, &m, 0) }
            .expect("mmap");
        drop(m);
        let me = holdings(std::process::id()).expect("self");
        // SAFETY: unmaps exactly the mapping made above.
        unsafe { munmap(p, 4096) }.expect("munmap");
        assert!(me.memfds[&ino].fds.is_empty());
        assert_eq!(me.memfds[&ino].mappings, 1);
        assert_eq!(me.memfds[&ino].name, "mapped");
        assert!(
            !holdings(std::process::id())
                .expect("self")
                .memfds
                .contains_key(&ino)
        );
    }

    #[rstest]
    #[case("7f00-7f10 rw-s 00000000 00:01 4242 /memfd:seg-1-0 (deleted)", Some((4242, "seg-1-0")))]
    #[case("7f00-7f10 rw-s 00000000 00:01 77 /memfd:session: wrk-mqs-segment (deleted)", Some((77, "session: wrk-mqs-segment")))]
    #[case("7f00-7f10 r-xp 00000000 08:01 12 /usr/lib/libc.so.6", None)]
    #[case("/memfd:x", None)]
    fn maps_lines_give_memfd_inodes(#[case] line: &str, #[case] want: Option<(u64, &str)>) {
        assert_eq!(parse_memfd_mapping(line), want);
    }

    #[rstest]
    #[case("socket:[1234]", Some(1234))]
    #[case("socket:[]", None)]
    #[case("anon_inode:[eventfd]", None)]
    fn socket_links_give_inodes(#[case] link: &str, #[case] want: Option<u64>) {
        assert_eq!(socket_link_inode(link), want);
    }

    fn info(kind: FdKind) -> FdInfo {
        FdInfo {
            kind,
            size: 0,
            ino: 0,
        }
    }

    #[rstest]
    #[case::attach_with_eventfd(0x07, vec![memfd(), memfd(), FdKind::Eventfd], vec![1, 2])]
    #[case::attach_without(0x03, vec![memfd(), memfd()], vec![1])]
    #[case::private_rx_mqs(0x0f, vec![memfd(), memfd(), FdKind::Eventfd, FdKind::Eventfd], vec![1, 2])]
    #[case::worker(0x06, vec![memfd(), FdKind::Eventfd], vec![0, 1])]
    #[case::wrong_kinds_are_not_claimed(0x07, vec![memfd(), FdKind::Eventfd, memfd()], vec![])]
    #[case::missing_fds(0x07, vec![memfd()], vec![])]
    fn a_workers_own_fds_follow_the_flags(
        #[case] flags: u8,
        #[case] kinds: Vec<FdKind>,
        #[case] own: Vec<usize>,
    ) {
        let infos: Vec<FdInfo> = kinds.into_iter().map(info).collect();
        assert_eq!(worker_own_fds(flags, &infos), own);
    }

    fn memfd() -> FdKind {
        FdKind::Memfd { name: "s".into() }
    }

    #[test]
    fn eventfd_ids_are_read_when_printed() {
        assert_eq!(
            parse_eventfd_id("pos:\t0\neventfd-count: 0\neventfd-id: 12\n"),
            Some(12)
        );
        assert_eq!(parse_eventfd_id("pos:\t0\neventfd-count: 0\n"), None);
    }
}
