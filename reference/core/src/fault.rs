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
}

impl InjectedFault {
    /// Every fault, in the order `--inject-fault list` prints them.
    pub const ALL: [InjectedFault; 12] = [
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
        }
    }
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
