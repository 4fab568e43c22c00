//! Thin wrappers over the system calls the benches and their anchors use.
//!
//! Bench harness code: a failing syscall is a broken machine, not a peer's input, so these
//! panic with the call's name.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};

/// A new eventfd; `nonblocking` as VCL makes the mq's, blocking for plain ping-pong.
pub fn eventfd(nonblocking: bool) -> OwnedFd {
    let flags = libc::EFD_CLOEXEC | if nonblocking { libc::EFD_NONBLOCK } else { 0 };
    // SAFETY: plain syscall; the fd is owned below.
    let fd = unsafe { libc::eventfd(0, flags) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Adds `v` to an eventfd counter.
pub fn eventfd_post(fd: BorrowedFd<'_>, v: u64) {
    let b = v.to_ne_bytes();
    // SAFETY: 8 bytes from a live buffer.
    let n = unsafe { libc::write(fd.as_raw_fd(), b.as_ptr().cast(), 8) };
    assert_eq!(n, 8, "write(eventfd): {}", std::io::Error::last_os_error());
}

/// Reads (and resets) a blocking eventfd's counter, blocking until it is non-zero.
pub fn eventfd_take(fd: BorrowedFd<'_>) -> u64 {
    let mut b = [0u8; 8];
    loop {
        // SAFETY: 8 bytes into a live buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
        if n == 8 {
            return u64::from_ne_bytes(b);
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::Interrupted,
            "read(eventfd): {e}"
        );
    }
}

/// A pipe (read end, write end) with its capacity raised to `size` bytes where allowed.
pub fn pipe(size: usize) -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: two-element array.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fds we own.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Best effort: capped by /proc/sys/fs/pipe-max-size.
    // SAFETY: plain fcntl on our fd.
    unsafe { libc::fcntl(wr.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
    (rd, wr)
}

/// An `AF_UNIX` socket pair of type `ty`.
pub fn unix_pair(ty: SockType) -> (OwnedFd, OwnedFd) {
    socketpair(AddressFamily::Unix, ty, None, SockFlag::SOCK_CLOEXEC).expect("socketpair")
}

/// Writes all of `buf` to a blocking fd.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: live buffer of that length.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "write: {e}");
            continue;
        }
        buf = &buf[n as usize..];
    }
}

/// One blocking read into `buf`; returns the bytes read (0 at EOF).
pub fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> usize {
    loop {
        // SAFETY: live buffer of that length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return n as usize;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "read: {e}");
    }
}

/// Sends one datagram carrying `fds` by `SCM_RIGHTS`.
pub fn send_with_fds(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[RawFd]) {
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(bytes)],
        cmsgs,
        MsgFlags::empty(),
        None,
    )
    .expect("sendmsg");
}

/// Receives one datagram (blocking) and the fds it carries; `(0, [])` at EOF.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> (usize, Vec<OwnedFd>) {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg");
    let mut fds = Vec::new();
    for c in msg.cmsgs().expect("cmsgs fit") {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these fds for us.
            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    (msg.bytes, fds)
}

/// Sends little-endian `u64` words with `fds` (the peer protocol of the cross-process benches).
pub fn send_words(sock: BorrowedFd<'_>, words: &[u64], fds: &[RawFd]) {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    send_with_fds(sock, &bytes, fds);
}

/// Receives little-endian `u64` words and fds; `None` at EOF.
pub fn recv_words(sock: BorrowedFd<'_>) -> Option<(Vec<u64>, Vec<OwnedFd>)> {
    let mut buf = [0u8; 256];
    let (n, fds) = recv_with_fds(sock, &mut buf);
    if n == 0 {
        return None;
    }
    let words = buf[..n]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    Some((words, fds))
}

/// Raises the soft fd limit to the hard one (the 1,000-app scale bench holds both ends).
pub fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// CPUs online in the machine — not `available_parallelism`, which counts the CPUs the
/// calling thread may run on: once a bench pinned itself to CPU 0, every thread and process
/// it started inherited that mask, counted 1 CPU, and "pinned to CPU 1" landed on CPU 0.
pub fn cpus_online() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// Pins the calling thread to CPU `cpu` (modulo the CPUs online). The wake-up benches pin
/// both ends, subject and anchor alike: whether the scheduler puts two ping-ponging threads
/// on one CPU or two changes a wake-up from a context switch to an inter-processor interrupt
/// (tens of µs on a VM) and would otherwise decide the ratio by chance.
///
/// # Panics
/// If the kernel refuses the mask: a bench that says where it runs must run there.
pub fn pin_to(cpu: usize) {
    let cpu = cpu % cpus_online();
    set_affinity(&[cpu]);
    // The kernel moves the calling thread before sched_setaffinity returns.
    assert_eq!(
        current_cpu(),
        cpu,
        "pinned to CPU {cpu} but running elsewhere"
    );
}

fn set_affinity(cpus: &[usize]) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays inside it (the CPUs
    // online are fewer than CPU_SETSIZE on any machine these benches run on).
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity({cpus:?}): {}",
        std::io::Error::last_os_error()
    );
}

/// The CPU the calling thread runs on now.
pub fn current_cpu() -> usize {
    // SAFETY: sched_getcpu has no preconditions.
    usize::try_from(unsafe { libc::sched_getcpu() }).unwrap_or(0)
}

/// Lets the calling thread run on every CPU again.
pub fn unpin() {
    set_affinity(&(0..cpus_online()).collect::<Vec<_>>());
}

/// Names the environment variable with which a bench forces `shm::copy`'s routine
/// (`rep_movsb`, `avx2`, `sse2`, `memcpy`), to set the routine chosen for this CPU beside the
/// others in one run. A bench knob: the crates measured never read it.
const COPY_ROUTINE_ENV: &str = "SAPI_BENCH_COPY";

/// Forces the routine `SAPI_BENCH_COPY` names, before this process's first bulk copy; returns
/// the routine in force either way, and whether it was forced. Panics on a name it does not
/// know or a routine this CPU cannot run: a comparison that silently measured the default
/// would mislead.
pub fn copy_routine_from_env() -> (sapi_shm::copy::CopyRoutine, bool) {
    use sapi_shm::copy::CopyRoutine;
    let name = std::env::var_os(COPY_ROUTINE_ENV);
    if let Some(name) = &name {
        let routine = match name.to_str() {
            Some("rep_movsb") => CopyRoutine::RepMovsb,
            Some("avx2") => CopyRoutine::Avx2Loop,
            Some("sse2") => CopyRoutine::Sse2InAliasWindow,
            Some("memcpy") => CopyRoutine::Memcpy,
            _ => panic!("{COPY_ROUTINE_ENV}={name:?}: expected rep_movsb, avx2, sse2 or memcpy"),
        };
        assert!(
            CopyRoutine::pin_for_measurement(routine),
            "{COPY_ROUTINE_ENV}: {routine:?} is not available here or a routine was already chosen"
        );
    }
    (CopyRoutine::chosen(), name.is_some())
}

/// `CPU: <model>, <n> online, <flags that choose the copy routine>` from `/proc/cpuinfo`.
pub fn cpu_line() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let online = info.lines().filter(|l| l.starts_with("processor")).count();
    let flags = field("flags").unwrap_or_default();
    let has: Vec<&str> = ["avx2", "avx512f", "erms", "fsrm"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    format!(
        "CPU: {}, {online} online, {}",
        field("model name").unwrap_or_else(|| "unknown".into()),
        has.join(" ")
    )
}
