//! Test-only mutations of the reference, used to prove that conformance scenarios catch real
//! deviations (`sapi-reference serve --inject-fault NAME`).
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
}

impl InjectedFault {
    /// Every fault, in the order `--inject-fault list` prints them.
    pub const ALL: [InjectedFault; 6] = [
        InjectedFault::WrongFdOrder,
        InjectedFault::MissingEventfd,
        InjectedFault::NoCrashDetach,
        InjectedFault::ShortReply,
        InjectedFault::WrongRetval,
        InjectedFault::BadRingSize,
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
