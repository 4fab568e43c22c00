//! What the server holds on a scenario's own behalf, each thing by the name the kernel gives it —
//! the server-side socket of each of the scenario's connections by inode (its peer, found with
//! [`crate::sockdiag`]), each segment the server sent by memfd inode, each mq eventfd by
//! `eventfd-id` — and the bounded wait until the server holds none of it (`docs/protocol.md`
//! §8.9).
//!
//! A scenario writes what is its own in a [`Ledger`]; [`ServerView::wait_released`] re-reads
//! the server's `/proc/<pid>/{fd,fdinfo,maps}`, each read paced by a round trip on a held
//! connection, until none of the ledger is held, or the scenario's timeout passes and each thing
//! still held is named with its kind, inode and whose it was. It can also watch the memfds that
//! *appeared* in the server since a snapshot and are still there: for what the suite never
//! received (the half-built app of a failed ATTACH). That set difference is sound only in an
//! exclusive scenario — nothing else creates memfds in the server meanwhile, and frees left over
//! from earlier scenarios only make inodes disappear.
//!
//! Prepared segments: a server may create segments ahead of the ATTACH that takes one (the
//! reference keeps a few, `reference/server/src/shell/pool.rs`), so a memfd it held before an
//! action may become an app's during it, and new ones appear as it refills. A memfd whose first
//! page is still all zero has no ssvm header: nothing was laid out in it and no app was given it.
//! Such a *blank* memfd held before the action is not taken for preexisting when an app got it
//! (it is the action's own), nor when it was laid out during the action and no reply carried it
//! (then it is watched like a memfd that appeared), and up to [`MAX_SPARES`] blank ones that
//! appeared are not leaks.
//!
//! Must never: count (a count is fooled by anything else the server does, and by a restart just
//! before), judge by anything but an inode or id the scenario obtained itself or saw appear, or
//! sleep for synchronisation (the timeout bounds a failure; `park_timeout` only spaces re-reads).
//!
//! Eventfds: they all share one anonymous inode, so only `fdinfo`'s `eventfd-id` tells them
//! apart, and ids come from a kernel IDA that hands a freed id out again. An id in the ledger
//! names the scenario's eventfd only while the server creates no other eventfd — true while the
//! ledger is watched (no ATTACH or worker ADD happens then) — and no eventfd claim is made on a
//! kernel that prints no ids.

use std::collections::BTreeSet;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::{Check, Ctx, ScenarioError};
use crate::client::Conn;
use crate::fds::{self, FdInfo, Holdings};
use crate::sockdiag::{Peer, SockDiag};

/// Blank memfds (nothing laid out in them, never sent: [`fds::MemfdHolding::blank`]) a server may
/// hold beyond what it held before an action without them counting as the action's: segments it
/// prepares ahead of the ATTACHes that will take them, refilled as they are taken. More than this
/// many is a leak of blank memfds, and each is reported.
pub const MAX_SPARES: usize = 8;

/// The kinds of thing a ledger names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A server-side socket, by inode.
    Socket,
    /// A memfd (held by an fd or mapped), by inode.
    Memfd,
    /// An eventfd, by `eventfd-id`.
    Eventfd,
}

/// One thing the server holds for the scenario, and whose it is (for the evidence).
#[derive(Clone, Debug)]
pub struct Owned {
    pub kind: Kind,
    /// The inode (sockets, memfds) or the `eventfd-id` (eventfds).
    pub key: u64,
    pub whose: String,
}

/// What a scenario names as its own in the server.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    items: Vec<Owned>,
    /// What the server held before the action: nothing in it is the action's own, whatever a
    /// reply's `fd_flags` said (a server that sends its fds out of order would otherwise have
    /// its shared VPP mqs segment taken for an app's own).
    before: Option<Holdings>,
}

impl Ledger {
    /// A ledger for what an action creates from here on, `before` being the server's holdings
    /// just before it.
    pub fn after(before: Holdings) -> Self {
        Ledger {
            items: Vec::new(),
            before: Some(before),
        }
    }

    /// Items the server already held before the action, which are therefore not its own.
    fn preexisting(&self, o: &Owned) -> bool {
        self.before.as_ref().is_some_and(|b| match o.kind {
            Kind::Socket => b.sockets.contains_key(&o.key),
            // A blank memfd then (a prepared segment) that an app got since is the action's.
            Kind::Memfd => b.memfds.get(&o.key).is_some_and(|m| !m.blank),
            Kind::Eventfd => b.eventfds.contains_key(&o.key),
        })
    }

    pub fn socket(&mut self, ino: u64, whose: impl Into<String>) {
        self.push(Kind::Socket, ino, whose.into());
    }
    pub fn memfd(&mut self, ino: u64, whose: impl Into<String>) {
        self.push(Kind::Memfd, ino, whose.into());
    }
    pub fn eventfd(&mut self, id: u64, whose: impl Into<String>) {
        self.push(Kind::Eventfd, id, whose.into());
    }
    fn push(&mut self, kind: Kind, key: u64, whose: String) {
        self.items.push(Owned { kind, key, whose });
    }

    /// The segment and mq eventfd a reply carried for its own worker (by `fd_flags`,
    /// [`fds::worker_own_fds`]); the shared VPP mqs segment and VPP's mq eventfds are no one's.
    pub fn reply_fds(
        &mut self,
        fd_flags: u8,
        fds: &[OwnedFd],
        infos: &[FdInfo],
        whose: &str,
    ) -> Result<(), ScenarioError> {
        for at in fds::worker_own_fds(fd_flags, infos) {
            let (Some(fd), Some(info)) = (fds.get(at), infos.get(at)) else {
                continue;
            };
            if info.kind.is_memfd() {
                self.memfd(info.ino, format!("segment of {whose}"));
            } else if let Some(id) = fds::eventfd_id(fd.as_fd())? {
                self.eventfd(id, format!("mq eventfd of {whose}"));
            }
        }
        Ok(())
    }

    /// What a crash-test child said it holds (`segs`, `evs`; sockets are resolved separately).
    pub fn child_fds(&mut self, segs: &[u64], evs: &[u64], whose: &str) {
        for s in segs {
            self.memfd(*s, format!("segment of {whose}"));
        }
        for e in evs {
            self.eventfd(*e, format!("mq eventfd of {whose}"));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `3 sockets, 2 memfds, 2 eventfds`.
    pub fn summary(&self) -> String {
        let n = |k| {
            self.items
                .iter()
                .filter(|o| o.kind == k && !self.preexisting(o))
                .map(|o| o.key)
                .collect::<BTreeSet<_>>()
                .len()
        };
        format!(
            "{} sockets, {} memfds, {} eventfds",
            n(Kind::Socket),
            n(Kind::Memfd),
            n(Kind::Eventfd)
        )
    }
}

/// One thing the server still holds, for the evidence.
#[derive(Clone, Debug)]
pub struct Leak {
    pub kind: Kind,
    pub key: u64,
    /// Where the server holds it: its fds, its mappings.
    pub held: String,
    pub whose: String,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            Kind::Socket => "socket inode",
            Kind::Memfd => "memfd inode",
            Kind::Eventfd => "eventfd id",
        };
        write!(f, "{what} {} ({}): {}", self.key, self.held, self.whose)
    }
}

fn fds_of(v: &[i32]) -> String {
    let v: Vec<String> = v.iter().map(i32::to_string).collect();
    format!("server fds [{}]", v.join(", "))
}

fn memfd_held(m: &fds::MemfdHolding) -> String {
    format!(
        "\"{}\", {}, mapped {} time{}",
        m.name,
        fds_of(&m.fds),
        m.mappings,
        if m.mappings == 1 { "" } else { "s" }
    )
}

/// What [`ServerView::wait_released`] saw.
#[derive(Debug)]
pub enum Released {
    /// The server held none of it any more, after this long.
    After(Duration),
    /// Still held when the timeout passed.
    Leaked(Vec<Leak>),
}

/// The server's `/proc` and `sock_diag`, as far as the suite may read them.
pub struct ServerView {
    pid: u32,
    /// `Err(why)`: sockets cannot be named on this host.
    diag: Result<SockDiag, String>,
    pacer: Conn,
    eventfd_ids: bool,
}

impl ServerView {
    /// The server's pid and a first read of its `/proc`. `Ok(Err(why))` when they are out of
    /// reach (a remote target, no permission): the caller skips or falls back, saying why.
    pub fn open(ctx: &Ctx) -> Result<Result<Self, String>, ScenarioError> {
        let Some(pid) = ctx.target.pid() else {
            return Ok(Err(
                "server pid unknown (SO_PEERCRED gave none): give --target-pid".into(),
            ));
        };
        let h = match fds::holdings(pid) {
            Ok(h) => h,
            Err(e) => {
                return Ok(Err(format!(
                    "cannot read the server's /proc entries (is the suite on the target's host, with permission?): {e}"
                )));
            }
        };
        let diag = SockDiag::open().map_err(|e| {
            format!("NETLINK_SOCK_DIAG (unix_diag) cannot name the server's sockets here: {e}")
        });
        Ok(Ok(ServerView {
            pid,
            diag,
            pacer: ctx.connect()?,
            eventfd_ids: h.eventfd_ids,
        }))
    }

    /// [`ServerView::open`] for a scenario that needs all of it: every reason is a SKIP.
    pub fn open_complete(ctx: &Ctx) -> Result<Self, ScenarioError> {
        let v = ServerView::open(ctx)?.map_err(ScenarioError::Skip)?;
        if let Err(why) = &v.diag {
            return Err(ScenarioError::Skip(why.clone()));
        }
        Ok(v)
    }

    /// Why sockets cannot be named (`None` when they can).
    pub fn sockets_unavailable(&self) -> Option<&str> {
        self.diag.as_ref().err().map(String::as_str)
    }

    /// Whether eventfds can be told apart (the kernel prints `eventfd-id`).
    pub fn eventfd_ids(&self) -> bool {
        self.eventfd_ids
    }

    /// A round trip that changes no state: a worker ADD for an app index no server hands out.
    /// It paces re-reads (the server has turned its loop at least once since the last one) and
    /// shows the server still serving.
    pub fn round_trip(&self, ctx: &Ctx) -> Result<(), ScenarioError> {
        self.pacer.worker_add(0x00ff_fff1, ctx.profile)?;
        Ok(())
    }

    pub fn holdings(&self) -> Result<Holdings, ScenarioError> {
        Ok(fds::holdings(self.pid)?)
    }

    /// A snapshot to diff against later, taken after a round trip so that input the server had
    /// queued from earlier scenarios has been handled.
    pub fn baseline(&self, ctx: &Ctx) -> Result<Holdings, ScenarioError> {
        self.round_trip(ctx)?;
        self.holdings()
    }

    /// The server-side socket of one of our connections. `Ok(None)` when the server has
    /// already closed its side (it holds nothing then); waits (bounded) for the server to
    /// `accept` a connection it has not accepted yet.
    pub fn server_side(
        &self,
        ctx: &Ctx,
        conn: BorrowedFd<'_>,
        what: &str,
    ) -> Result<Option<u64>, ScenarioError> {
        self.server_side_of_inode(ctx, fds::stat_of(conn)?.ino, what)
    }

    /// As [`ServerView::server_side`], for a socket named by inode (a crash-test child's).
    pub fn server_side_of_inode(
        &self,
        ctx: &Ctx,
        ino: u64,
        what: &str,
    ) -> Result<Option<u64>, ScenarioError> {
        let diag = self
            .diag
            .as_ref()
            .map_err(|why| ScenarioError::Skip(why.clone()))?;
        let peer = diag
            .accepted_peer_of_inode(ino, ctx.timeout)
            .map_err(|e| ScenarioError::Setup(format!("sock_diag about {what}: {e}")))?;
        match peer {
            Ok(server) => Ok(Some(server)),
            Err(Peer::Closed) => Ok(None),
            Err(Peer::NotAccepted) => Err(ScenarioError::Setup(format!(
                "{what} (socket inode {ino}): the server did not accept it within {:?}",
                ctx.timeout
            ))),
            Err(p) => Err(ScenarioError::Setup(format!(
                "{what} (socket inode {ino}): the kernel names no peer ({p:?})"
            ))),
        }
    }

    /// What of `ledger`, and of the memfds that appeared since `since`, the server holds now.
    fn leaks(&self, ledger: &Ledger, since: Option<&Holdings>) -> Result<Vec<Leak>, ScenarioError> {
        let now = self.holdings()?;
        let mut leaks = Vec::new();
        let mut seen = BTreeSet::new();
        for o in &ledger.items {
            if !seen.insert((o.kind, o.key)) || ledger.preexisting(o) {
                continue;
            }
            let held = match o.kind {
                Kind::Socket => now.sockets.get(&o.key).map(|v| fds_of(v)),
                Kind::Memfd => now.memfds.get(&o.key).map(memfd_held),
                Kind::Eventfd if now.eventfd_ids => now.eventfds.get(&o.key).map(|v| fds_of(v)),
                Kind::Eventfd => None,
            };
            if let Some(held) = held {
                let whose = ledger
                    .items
                    .iter()
                    .filter(|x| x.kind == o.kind && x.key == o.key)
                    .map(|x| x.whose.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                leaks.push(Leak {
                    kind: o.kind,
                    key: o.key,
                    held,
                    whose,
                });
            }
        }
        if let Some(before) = since {
            let appeared: Vec<(&u64, &fds::MemfdHolding)> = now
                .memfds
                .iter()
                .filter(|(ino, m)| {
                    let new = match before.memfds.get(*ino) {
                        None => true,
                        // A prepared segment laid out during the action is the action's as
                        // much as one created in it (a refused ATTACH's app built from the
                        // pool and kept: `keep-failed-attach`).
                        Some(b) => b.blank && !m.blank,
                    };
                    new && !seen.contains(&(Kind::Memfd, **ino))
                })
                .collect();
            let spares = appeared.iter().filter(|(_, m)| m.blank).count();
            for (ino, m) in appeared {
                if m.blank && spares <= MAX_SPARES {
                    continue;
                }
                let whose = if before.memfds.contains_key(ino) {
                    "a prepared segment the server laid out during the scenario; no reply carried it"
                        .into()
                } else if m.blank {
                    format!(
                        "a blank memfd that appeared in the server during the scenario, one of {spares} (more than the {MAX_SPARES} prepared segments a server may keep)"
                    )
                } else {
                    "appeared in the server during the scenario; no reply carried it".into()
                };
                leaks.push(Leak {
                    kind: Kind::Memfd,
                    key: *ino,
                    held: memfd_held(m),
                    whose,
                });
            }
        }
        Ok(leaks)
    }

    /// Re-reads (each read after a round trip, spaced by a `park_timeout` backoff) until the
    /// server holds nothing of `ledger` and, with `since`, no memfd that appeared after it; or
    /// the timeout passes.
    pub fn wait_released(
        &self,
        ctx: &Ctx,
        ledger: &Ledger,
        since: Option<&Holdings>,
    ) -> Result<Released, ScenarioError> {
        let start = Instant::now();
        let deadline = start + ctx.timeout;
        let mut backoff = Duration::from_micros(200);
        loop {
            self.round_trip(ctx)?;
            let leaks = self.leaks(ledger, since)?;
            if leaks.is_empty() {
                return Ok(Released::After(start.elapsed()));
            }
            if Instant::now() >= deadline {
                return Ok(Released::Leaked(leaks));
            }
            std::thread::park_timeout(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }

    /// [`ServerView::wait_released`], recorded in `c`: a note when all is released, one failure
    /// naming each thing still held otherwise (the first 20, then a count). True when released.
    pub fn settle(
        &self,
        ctx: &Ctx,
        c: &mut Check,
        ledger: &Ledger,
        since: Option<&Holdings>,
        what: &str,
    ) -> Result<bool, ScenarioError> {
        let watched = if since.is_some() {
            format!("{} + any memfd that appeared", ledger.summary())
        } else {
            ledger.summary()
        };
        let mut shared: Vec<String> = ledger
            .items
            .iter()
            .filter(|o| ledger.preexisting(o))
            .map(|o| format!("{:?} {} ({})", o.kind, o.key, o.whose))
            .collect();
        shared.dedup();
        if !shared.is_empty() {
            c.note(format!(
                "{what}: held by the server before, so not counted as the action's own (shared, or a reply's fds out of order): {}",
                shared.join("; ")
            ));
        }
        match self.wait_released(ctx, ledger, since)? {
            Released::After(t) => {
                c.note(format!(
                    "{what}: the server holds none of its {watched} after {t:?}"
                ));
                if !self.eventfd_ids {
                    c.note("this kernel prints no eventfd-id: eventfds were not checked");
                }
                Ok(true)
            }
            Released::Leaked(leaks) => {
                const SHOWN: usize = 20;
                let mut lines: Vec<String> =
                    leaks.iter().take(SHOWN).map(|l| format!("  {l}")).collect();
                if leaks.len() > SHOWN {
                    lines.push(format!("  … and {} more", leaks.len() - SHOWN));
                }
                c.fail(format!(
                    "{what}: the server (pid {}) still holds, {:?} later, {} of what it watched ({watched}):\n{}",
                    self.pid,
                    ctx.timeout,
                    leaks.len(),
                    lines.join("\n")
                ));
                Ok(false)
            }
        }
    }
}

/// The server-side socket of `conn`, written in `ledger` as `whose`; a note instead when the
/// server had already closed it.
pub fn own_connection(
    view: &ServerView,
    ctx: &Ctx,
    c: &mut Check,
    ledger: &mut Ledger,
    conn: &impl AsFd,
    whose: &str,
) -> Result<(), ScenarioError> {
    match view.server_side(ctx, conn.as_fd(), whose)? {
        Some(ino) => ledger.socket(ino, format!("server side of {whose}")),
        None => c.note(format!(
            "{whose}: the server had closed its side before the suite looked"
        )),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fds::MemfdHolding;

    #[test]
    fn what_the_server_held_before_the_action_is_never_the_actions() {
        let mut before = Holdings::default();
        before.memfds.insert(7, MemfdHolding::default());
        before.eventfds.insert(1, vec![9]);
        let mut l = Ledger::after(before);
        l.memfd(
            7,
            "the shared mqs segment, taken for an app's by a reply out of order",
        );
        l.memfd(8, "segment of app 1 worker 0");
        l.eventfd(1, "an id the server held before");
        // Ids are reused: two of the action's eventfds may share one.
        l.eventfd(3, "mq eventfd of cycle 0");
        l.eventfd(3, "mq eventfd of cycle 1");
        l.socket(40, "server side of connection 1");
        assert_eq!(l.summary(), "1 sockets, 1 memfds, 1 eventfds");
        let own: Vec<u64> = l
            .items
            .iter()
            .filter(|o| !l.preexisting(o))
            .map(|o| o.key)
            .collect();
        assert_eq!(own, [8, 3, 3, 40]);
    }

    #[test]
    fn a_blank_memfd_held_before_and_given_to_an_app_since_is_the_actions() {
        let mut before = Holdings::default();
        before.memfds.insert(
            7,
            MemfdHolding {
                blank: true,
                ..MemfdHolding::default()
            },
        );
        before.memfds.insert(9, MemfdHolding::default());
        let mut l = Ledger::after(before);
        l.memfd(7, "segment of app 1 worker 0 (prepared before the ATTACH)");
        l.memfd(9, "the shared VPP mqs segment");
        assert_eq!(l.summary(), "0 sockets, 1 memfds, 0 eventfds");
    }

    #[test]
    fn a_leak_names_its_kind_inode_holder_and_owner() {
        let l = Leak {
            kind: Kind::Socket,
            key: 1081719,
            held: fds_of(&[39]),
            whose: "server side of connection 1 of 4, closed without attaching".into(),
        };
        assert_eq!(
            l.to_string(),
            "socket inode 1081719 (server fds [39]): server side of connection 1 of 4, closed without attaching"
        );
        let m = MemfdHolding {
            name: "seg-13-0-0".into(),
            fds: vec![],
            mappings: 2,
            blank: false,
        };
        assert_eq!(
            memfd_held(&m),
            "\"seg-13-0-0\", server fds [], mapped 2 times"
        );
    }
}
