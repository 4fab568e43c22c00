//! Test-only mutations of the reference (`sapi-reference serve --inject-fault NAME`), used to
//! prove that conformance scenarios catch real deviations — and that they do not fail a server
//! that makes a different but faithful choice.
//!
//! Three kinds:
//! * defects the suite must catch (a wrong fd order, a short reply, …), among them VPP 26.10's
//!   own leaks (`keep-*`, `strand-*`, `docs/vpp-26.10.md` §9.1–§9.3);
//! * crashes on one input, as VPP 26.10 crashes (`crash-on-*`, §9.4 and §9.6): the suite must
//!   blame exactly the scenario that sent it and keep going after a restart;
//! * `reuse-indices`, VPP's pool behaviour: not a defect, so the whole suite must pass with it.
//!
//! The session-layer faults (`wrong-listener-handle` … `ignore-pct-first-alloc`) are
//! defects of the first kind, one per rule of `docs/sessions.md` §12.1 a server could plausibly
//! get wrong; each makes exactly the `session.*` scenarios that check the rule it breaks fail
//! (the lists: `fault_fails_exactly_these_scenarios` in the conformance tests, and the README).
//!
//! Owns the list of faults and their names. A fault must never be enabled by default, and each one
//! must change exactly one observable behaviour.

use std::fmt;

/// One deliberate deviation from the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InjectedFault {
    /// ATTACH_REPLY carries the app segment before the mqs segment.
    WrongFdOrder,
    /// ATTACH_REPLY announces the mq eventfd (flag and count) but does not send it.
    MissingEventfd,
    /// A closed socket's workers are kept (the app is never detached).
    NoCrashDetach,
    /// ATTACH_REPLY is sent as 208 bytes.
    ShortReply,
    /// A second ATTACH on a socket answers −13 (NOAPP) instead of −14 (APP_ATTACHED).
    WrongRetval,
    /// The app mq's control ring is created with 128-byte elements instead of 256.
    BadRingSize,
    /// Freed app and segment-manager indices are handed out again at once, most recently freed
    /// first, as VPP's pools do. Faithful: every scenario must pass with it.
    ReuseIndices,
    /// A socket that never attached is not freed when its peer closes (VPP 26.10's leak).
    KeepUnattachedSockets,
    /// A refused ATTACH leaves a half-built app behind, holding its first segment (VPP 26.10).
    KeepFailedAttach,
    /// Deleting one of two workers bound to one socket closes the socket and strands the other
    /// worker with its segment (VPP 26.10).
    StrandSharedSocketWorker,
    /// The server aborts on an ATTACH with MAX_FIFO_MEMORY set and SEGMENT_SIZE 0 (VPP 26.10
    /// divides by zero there).
    CrashOnMaxFifoMemory,
    /// The server aborts when the socket of an app attached with IS_PROXY and a tcp
    /// PROXY_TRANSPORT closes (VPP 26.10 crashes in the proxy listener's teardown).
    CrashOnProxyTcpClose,
    /// ACCEPTED carries a `listener_handle` one off BOUND's (its lowest bit flipped), breaking
    /// `docs/sessions.md` §4.2 and §5.7: ACCEPTED.listener_handle must equal BOUND.handle.
    WrongListenerHandle,
    /// CONNECTED carries `ct_rx_fifo` and `ct_tx_fifo` swapped, breaking `docs/sessions.md`
    /// §5.10: C's rx fifo is B (= ACCEPTED.server_tx_fifo), its tx fifo A.
    SwapCtFifos,
    /// A ct segment's ADD_SEGMENT is posted with no SEND_FDS on the socket before it (nor
    /// after), breaking `docs/sessions.md` §3.6 and §7.5: the memfd must be on the worker's
    /// socket before the ADD_SEGMENT is published.
    NoSendFdsBeforeCtSegment,
    /// The relay posts RX to the reader for every TX without setting (or looking at) the
    /// reader's `has_event`, breaking `docs/sessions.md` §8.3 step 5: RX only when `has_event`
    /// was 0, and then it is set.
    RxWithoutHasEvent,
    /// A ct segment's DEL_SEGMENTs go out as soon as one side (S's or C's) has no session left
    /// in it, while the other side's sessions still use its fifos, breaking `docs/sessions.md`
    /// §9.6: only after both sides of every pair in it are cleaned up.
    EarlyDelSegment,
    /// A new session of a worker takes the handle of one of that worker's sessions whose peer
    /// closed (DISCONNECTED or RESET sent) before that session's CLEANUP type 1, breaking
    /// `docs/sessions.md` §9.5; the old session is dropped without a word.
    ReuseHandleBeforeCleanup,
    /// Every segment's header says `pct_first_alloc` 0, whatever its owner's PCT_FIRST_ALLOC,
    /// so each fifo starts with a 4 KiB chunk; breaks `docs/sessions.md` §7.3 and §7.4 for an
    /// S that sends the option (VCL sends none, so VCL apps cannot tell).
    IgnorePctFirstAlloc,
}

impl InjectedFault {
    /// Every fault, in the order `--inject-fault list` prints them.
    pub const ALL: [InjectedFault; 19] = [
        InjectedFault::WrongFdOrder,
        InjectedFault::MissingEventfd,
        InjectedFault::NoCrashDetach,
        InjectedFault::ShortReply,
        InjectedFault::WrongRetval,
        InjectedFault::BadRingSize,
        InjectedFault::ReuseIndices,
        InjectedFault::KeepUnattachedSockets,
        InjectedFault::KeepFailedAttach,
        InjectedFault::StrandSharedSocketWorker,
        InjectedFault::CrashOnMaxFifoMemory,
        InjectedFault::CrashOnProxyTcpClose,
        InjectedFault::WrongListenerHandle,
        InjectedFault::SwapCtFifos,
        InjectedFault::NoSendFdsBeforeCtSegment,
        InjectedFault::RxWithoutHasEvent,
        InjectedFault::EarlyDelSegment,
        InjectedFault::ReuseHandleBeforeCleanup,
        InjectedFault::IgnorePctFirstAlloc,
    ];

    /// What it does, in one line (the command line's help).
    pub fn description(self) -> &'static str {
        match self {
            InjectedFault::WrongFdOrder => {
                "ATTACH_REPLY carries the app segment before the mqs segment"
            }
            InjectedFault::MissingEventfd => {
                "ATTACH_REPLY announces the mq eventfd but does not send it"
            }
            InjectedFault::NoCrashDetach => {
                "a closed socket's workers are kept (the app is never detached)"
            }
            InjectedFault::ShortReply => "ATTACH_REPLY is sent as 208 bytes",
            InjectedFault::WrongRetval => "a second ATTACH answers NOAPP instead of APP_ATTACHED",
            InjectedFault::BadRingSize => {
                "the app mq's control ring has 128-byte elements, not 256"
            }
            InjectedFault::ReuseIndices => {
                "freed app and segment-manager indices are reused at once, last freed first (as VPP's pools; faithful)"
            }
            InjectedFault::KeepUnattachedSockets => {
                "a socket that never attached is kept when its peer closes (VPP 26.10's leak)"
            }
            InjectedFault::KeepFailedAttach => {
                "a refused ATTACH leaves a half-built app holding a segment (VPP 26.10)"
            }
            InjectedFault::StrandSharedSocketWorker => {
                "deleting one of two workers on a socket closes it, stranding the other (VPP 26.10)"
            }
            InjectedFault::CrashOnMaxFifoMemory => {
                "abort on an ATTACH with MAX_FIFO_MEMORY and no SEGMENT_SIZE (as VPP 26.10)"
            }
            InjectedFault::CrashOnProxyTcpClose => {
                "abort when an IS_PROXY + tcp app's socket closes (as VPP 26.10)"
            }
            InjectedFault::WrongListenerHandle => {
                "ACCEPTED.listener_handle is BOUND's handle with its lowest bit flipped"
            }
            InjectedFault::SwapCtFifos => "CONNECTED has ct_rx_fifo and ct_tx_fifo swapped",
            InjectedFault::NoSendFdsBeforeCtSegment => {
                "a ct segment's ADD_SEGMENT is posted without its SEND_FDS on the socket"
            }
            InjectedFault::RxWithoutHasEvent => {
                "the relay posts RX for every TX, ignoring and not setting the reader's has_event"
            }
            InjectedFault::EarlyDelSegment => {
                "a ct segment's DEL_SEGMENT goes out when the first side is cleaned up"
            }
            InjectedFault::ReuseHandleBeforeCleanup => {
                "a worker's new session takes the handle of its closing session before CLEANUP 1"
            }
            InjectedFault::IgnorePctFirstAlloc => {
                "segment headers say pct_first_alloc 0 and fifos start with 4 KiB, whatever PCT_FIRST_ALLOC"
            }
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            InjectedFault::WrongFdOrder => "wrong-fd-order",
            InjectedFault::MissingEventfd => "missing-eventfd",
            InjectedFault::NoCrashDetach => "no-crash-detach",
            InjectedFault::ShortReply => "short-reply",
            InjectedFault::WrongRetval => "wrong-retval",
            InjectedFault::BadRingSize => "bad-ring-size",
            InjectedFault::ReuseIndices => "reuse-indices",
            InjectedFault::KeepUnattachedSockets => "keep-unattached-sockets",
            InjectedFault::KeepFailedAttach => "keep-failed-attach",
            InjectedFault::StrandSharedSocketWorker => "strand-shared-socket-worker",
            InjectedFault::CrashOnMaxFifoMemory => "crash-on-max-fifo-memory",
            InjectedFault::CrashOnProxyTcpClose => "crash-on-proxy-tcp-close",
            InjectedFault::WrongListenerHandle => "wrong-listener-handle",
            InjectedFault::SwapCtFifos => "swap-ct-fifos",
            InjectedFault::NoSendFdsBeforeCtSegment => "no-send-fds-before-ct-segment",
            InjectedFault::RxWithoutHasEvent => "rx-without-has-event",
            InjectedFault::EarlyDelSegment => "early-del-segment",
            InjectedFault::ReuseHandleBeforeCleanup => "reuse-handle-before-cleanup",
            InjectedFault::IgnorePctFirstAlloc => "ignore-pct-first-alloc",
        }
    }
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// One bit per fault in `InjectedFaults`: a 33rd fault needs a wider word.
const _: () = assert!(InjectedFault::ALL.len() <= u32::BITS as usize);

/// The set of enabled faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedFaults(u32);

impl InjectedFaults {
    /// Enables `fault`.
    pub fn insert(&mut self, fault: InjectedFault) {
        self.0 |= 1 << fault as u8;
    }

    /// Whether `fault` is enabled.
    pub fn has(self, fault: InjectedFault) -> bool {
        self.0 & (1 << fault as u8) != 0
    }
}
