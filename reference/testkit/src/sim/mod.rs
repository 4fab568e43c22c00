//! The deterministic simulation of the sans-IO core, shared by `tests/sim.rs`,
//! `tests/regressions.rs` and the `core_sequence` fuzz target.
//!
//! It owns three things:
//! * [`Op`]: one thing the world does to the server (an app connects, attaches, adds a worker,
//!   sends junk, crashes; an admin adds a segment or deletes a namespace; the next memfd, listen or
//!   send fails). Ops name sockets, apps, workers and segments by [`Pick`]s resolved against the
//!   live state when they run, so any op list is meaningful and a prefix or subsequence of a
//!   failing list still runs — that is what makes shrinking work.
//! * [`Sim`]: a fake IO shell over the real sans-IO [`Server`]. It performs the core's actions the
//!   way the real shell does (in order, feeding the answers to resource requests back at once,
//!   with the core's own loop), keeps
//!   its own tables of sockets, listeners, segments, workers' mqs and eventfds, and after every
//!   op checks the invariants (see [`Sim::check`]).
//! * two input decoders that never fail: [`Program`] / [`ops_from_bytes`] (the fuzzer's reading
//!   of raw bytes through `arbitrary::Unstructured`: hand-written `Arbitrary` impls for ops and
//!   picks, invertible by [`encode_ops`] so simulation runs become fuzz seeds, and the derived
//!   `Arbitrary` of the wire's typed [`Message`] for structured requests of any type) and
//!   [`ops_from_seed`] (the seeded simulation's generator).
//!
//! It must never use anything but the core's public API, and never weaken a check to make a run
//! pass: a failed check is a finding.

mod fuzz_input;
mod generate;
mod invariants;
mod op;
mod run;
mod sessions;
mod shell;

use shell::Target;

pub(crate) use shell::normalise;

pub use fuzz_input::{
    FUZZ_FULL_CHECK_EVERY, MAX_FUZZ_OPS, Program, check_core_sequence, check_core_sequence_every,
    check_program, encode_op, encode_ops, ops_from_bytes,
};
pub use generate::{Rng, ops_from_seed, sim_op};
pub use op::{CloseHow, Hostile, Inject, Op, Pick};
pub use sessions::SessionStats;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use sapi_core::{AdminError, AdminOk, FdRef, NsIndex, SegmentId, Server, SocketId, WorkerKey};
use sapi_wire::{Message, Profile};

/// A failed invariant, with the op that broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub step: usize,
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {}", self.step, self.what)
    }
}

/// Where the shell's offset for every worker's mq lands.
pub(super) const MQ_OFFSET: u64 = 0x140;
/// What the shell adds to a requested segment size (VPP's headers).
pub(super) const SEGMENT_OVERHEAD: u64 = 12 * 1024;
/// Upper bound on live client sockets in a run, so hundreds of apps stay cheap to check.
pub const MAX_LIVE_SOCKETS: usize = 400;

/// The fake shell and the core it drives.
pub struct Sim {
    pub core: Server,
    profile: Profile,
    step: usize,
    /// Client sockets the shell holds.
    sockets: BTreeSet<SocketId>,
    /// Listeners by namespace.
    listeners: BTreeSet<NsIndex>,
    /// Namespace ids as the sim created them (index → id).
    ns_ids: BTreeMap<NsIndex, String>,
    /// Segments the shell holds, with the worker they were created for.
    segments: HashMap<SegmentId, WorkerKey>,
    /// How many of those each worker owns.
    owned: HashMap<WorkerKey, usize>,
    /// Worker mqs the shell holds (one per ready worker).
    workers: HashSet<WorkerKey>,
    /// Eventfds the shell holds.
    eventfds: HashSet<WorkerKey>,
    /// Armed deadlines.
    deadlines: BTreeSet<SocketId>,
    /// Resource ids whose creation the shell reported as failed (freeing them is a no-op).
    failed_segments: BTreeSet<SegmentId>,
    failed_workers: BTreeSet<WorkerKey>,
    /// Pending injections, consumed in order by the next matching request.
    injections: Vec<Inject>,
    /// The worker the admin segment-add in progress is for (for segment ownership).
    segment_add_for: Option<WorkerKey>,
    /// What the current op produced.
    sends: Vec<(SocketId, Message, Vec<FdRef>)>,
    admin_replies: Vec<Result<AdminOk, AdminError>>,
    send_failed_now: bool,
    target: Option<Target>,
    /// The socket accepted last.
    newest: Option<SocketId>,
    /// Run the full check after every this many ops (1 = every op).
    full_check_every: usize,
    /// The last snapshot, taken by `check`.
    snap: sapi_core::Snapshot,
    violations: Vec<String>,
    /// Totals over the run, for reports.
    pub stats: Stats,
    /// The session layer: the shell's ct segments and fifos, the apps' view (`sessions.rs`).
    sess: sessions::SessionWorld,
}

/// What a run did, summed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub ops: usize,
    pub attaches_ok: usize,
    pub workers_added: usize,
    pub segments_added: usize,
    pub crashes: usize,
    pub max_live_apps: usize,
    pub max_live_sockets: usize,
    pub sessions: SessionStats,
}
