//! Bit sets carried on the wire: attach option flags (`options[FLAGS]`, spec §4.1) and the fd flags
//! of replies (`SESSION_FD_F_*`, spec §5.2).
//!
//! Both keep unknown bits (`from_bits_retain`): a newer or broken peer's bits must survive a decode
//! and re-encode unchanged so a checker can report them.
//!
//! Must never: hide a bit it does not know: `describe` lists the unknown rest as `unknown 0x…`, and
//! nothing here clears one (the decoders build both sets with `from_bits_retain`).

use bitflags::bitflags;

bitflags! {
    /// `APP_OPTIONS_FLAGS_*`: the bitmask in attach option slot 0 (spec §4.1). Bit values are
    /// identical in both profiles; later bits simply did not exist at the seed.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct AppOptionFlags: u64 {
        /// Bit 0: stored, never consulted by the session layer.
        const ACCEPT_REDIRECT = 1 << 0;
        /// Bit 1: stored, not consulted; a non-zero ADD_SEGMENT_SIZE is what enables new segments.
        const ADD_SEGMENT = 1 << 1;
        /// Bit 2: in-VPP (builtin) app; meaningless over the socket API.
        const IS_BUILTIN = 1 << 2;
        /// Bit 3: the app is a transport protocol.
        const IS_TRANSPORT_APP = 1 << 3;
        /// Bit 4: proxy app.
        const IS_PROXY = 1 << 4;
        /// Bit 5: global session scope (VPP sets it when neither scope bit is given).
        const USE_GLOBAL_SCOPE = 1 << 5;
        /// Bit 6: local (cut-through) session scope.
        const USE_LOCAL_SCOPE = 1 << 6;
        /// Bit 7: the app mq is signalled by an eventfd, which the attach reply passes.
        const EVT_MQ_USE_EVENTFD = 1 << 7;
        /// Bit 8 (2021-07-19): builtin apps use memfd segments.
        const MEMFD_FOR_BUILTIN = 1 << 8;
        /// Bit 9 (2022-08-12): fifo segments backed by huge pages.
        const USE_HUGE_PAGE = 1 << 9;
        /// Bit 10 (2023-06-27): report the original destination.
        const GET_ORIGINAL_DST = 1 << 10;
        /// Bit 11 (2025-04-23, named LOG_COLLECTOR until 2025-06-20): event collector.
        const EVT_COLLECTOR = 1 << 11;
        /// Bit 12 (2025-09-26): exclude segments from core dumps.
        const NO_DUMP_SEGMENTS = 1 << 12;
    }
}

bitflags! {
    /// `SESSION_FD_F_*`: which fds an ATTACH_REPLY / ADD_DEL_WORKER_REPLY carries, in this bit
    /// order (spec §5.2–5.3). Identical at seed and Head.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct FdFlags: u8 {
        /// Memfd of the segment holding VPP's message queues (attach replies only).
        const VPP_MQ_SEGMENT = 0x01;
        /// Memfd of the app's (worker's) first fifo segment.
        const MEMFD_SEGMENT = 0x02;
        /// Eventfd of the app's (worker's) event mq.
        const MQ_EVENTFD = 0x04;
        /// Eventfds of VPP's per-thread rx mqs (private rx mqs mode only), one per VPP thread.
        const VPP_MQ_EVENTFD = 0x08;
    }
}

/// `A | B | C` names of the known bits set in `bits`, then the unknown rest as hex; `-` for none.
pub(crate) fn describe<I>(names: I, unknown: u64) -> String
where
    I: Iterator<Item = &'static str>,
{
    let mut parts: Vec<String> = names.map(str::to_owned).collect();
    if unknown != 0 {
        parts.push(format!("unknown {unknown:#x}"));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(" | ")
    }
}

impl AppOptionFlags {
    /// Human-readable list of the set bits, e.g. `ACCEPT_REDIRECT | EVT_MQ_USE_EVENTFD`.
    pub fn describe(self) -> String {
        let unknown = self.bits() & !Self::all().bits();
        describe(self.iter_names().map(|(n, _)| n), unknown)
    }
}

impl FdFlags {
    /// Human-readable list of the set bits, e.g. `VPP_MQ_SEGMENT | MEMFD_SEGMENT`.
    pub fn describe(self) -> String {
        let unknown = self.bits() & !Self::all().bits();
        describe(self.iter_names().map(|(n, _)| n), u64::from(unknown))
    }
}
