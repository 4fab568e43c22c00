//! Error numbers in the `retval` fields of replies: `SESSION_E_*` at Head (spec §7.1),
//! `VNET_API_ERROR_*` at the seed (spec §7.2).
//!
//! [`SapiError`] names each error the socket API can answer with; its number depends on the
//! profile. The seed numbers given by the spec are INVALID → −7, NOSUPPORT → −108 and
//! APP_ATTACHED → −131. For the others:
//!
//! **Choice (seed numbers not given by the spec)** — taken from VPP's `vnet/api_errno.h` (the
//! `VNET_API_ERROR_*` numbers are append-only, checked in the public VPP source):
//!
//! | [`SapiError`] | seed number | seed name | why |
//! |---|---|---|---|
//! | `Unknown` | −1 | UNSPECIFIED | generic failure |
//! | `Alloc` | −1 | UNSPECIFIED | no allocation error existed |
//! | `EventfdAlloc` | −1 | UNSPECIFIED | private rx mqs (the only source) did not exist at the seed |
//! | `NoApp` | −118 | APPLICATION_NOT_ATTACHED | closest meaning |
//! | `InvalidNs` | −128 | APP_INVALID_NS | same meaning |
//! | `SegCreate` | −117 | SVM_SEGMENT_CREATE_FAIL | same meaning |
//! | `Syscall` | −11 | SYSCALL_ERROR_1 | what namespace socket creation returned then (§1.2 rule 9) |
//!
//! Because three errors share −1 at the seed, [`SapiError::from_retval`]`(-1, Seed)` is `Unknown`.
//!
//! Must never: guess a name: a retval outside the tables gets `None`, not the nearest error, and no
//! `i32` makes a lookup panic (`i32::MIN`, which has no negation, gets `None` too).

use super::Profile;

/// The errors the socket API answers with, independent of how a profile numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SapiError {
    /// Unspecified failure (Head −1 UNKNOWN; e.g. huge pages requested but unavailable).
    Unknown,
    /// Allocation failure (Head −4 ALLOC).
    Alloc,
    /// Unsupported attach configuration (Head −10 NOSUPPORT, seed −108 APP_UNSUPPORTED_CFG).
    NoSupport,
    /// No such application (Head −13 NOAPP).
    NoApp,
    /// The socket is already attached / bound (Head −14 APP_ATTACHED, seed −131).
    AppAttached,
    /// Invalid argument: bad app / worker / cert-key index, bad lengths (Head −19 INVALID,
    /// seed −7 INVALID_VALUE).
    Invalid,
    /// Invalid namespace (Head −22 INVALID_NS).
    InvalidNs,
    /// Segment creation failed (Head −25 SEG_CREATE).
    SegCreate,
    /// Eventfd allocation for private rx mqs failed (Head −33 EVENTFD_ALLOC).
    EventfdAlloc,
    /// The app's namespace secret does not match (Head −38 WRONG_NS_SECRET, seed −129). VPP
    /// never checks secrets over the socket API; the reference does only with
    /// `--enforce-ns-secret`.
    WrongNsSecret,
    /// A system call failed, e.g. creating a namespace socket directory (Head −39 SYSCALL).
    Syscall,
}

impl SapiError {
    /// Every error, in Head numbering order.
    pub const ALL: [SapiError; 11] = [
        SapiError::Unknown,
        SapiError::Alloc,
        SapiError::NoSupport,
        SapiError::NoApp,
        SapiError::AppAttached,
        SapiError::Invalid,
        SapiError::InvalidNs,
        SapiError::SegCreate,
        SapiError::EventfdAlloc,
        SapiError::WrongNsSecret,
        SapiError::Syscall,
    ];

    /// The `retval` this error is sent as in `profile`.
    pub const fn retval(self, profile: Profile) -> i32 {
        match profile {
            Profile::Head => match self {
                SapiError::Unknown => -1,
                SapiError::Alloc => -4,
                SapiError::NoSupport => -10,
                SapiError::NoApp => -13,
                SapiError::AppAttached => -14,
                SapiError::Invalid => -19,
                SapiError::InvalidNs => -22,
                SapiError::SegCreate => -25,
                SapiError::EventfdAlloc => -33,
                SapiError::WrongNsSecret => -38,
                SapiError::Syscall => -39,
            },
            Profile::Seed => match self {
                SapiError::Unknown | SapiError::Alloc | SapiError::EventfdAlloc => -1,
                SapiError::Invalid => -7,
                SapiError::Syscall => -11,
                SapiError::NoSupport => -108,
                SapiError::SegCreate => -117,
                SapiError::NoApp => -118,
                SapiError::InvalidNs => -128,
                SapiError::WrongNsSecret => -129,
                SapiError::AppAttached => -131,
            },
        }
    }

    /// The error a `retval` means in `profile`; `None` for 0 (success) and for numbers outside
    /// this enum. At the seed −1 maps to `Unknown` (see the module doc).
    pub fn from_retval(retval: i32, profile: Profile) -> Option<SapiError> {
        Self::ALL.into_iter().find(|e| e.retval(profile) == retval)
    }

    /// The full C name in `profile`, e.g. `"SESSION_E_INVALID"` or
    /// `"VNET_API_ERROR_INVALID_VALUE"`.
    pub fn name(self, profile: Profile) -> &'static str {
        let retval = self.retval(profile);
        let name = match profile {
            Profile::Head => session_error_name(retval),
            Profile::Seed => vnet_api_error_name(retval),
        };
        // Every number above is in both tables (pinned by tests); the fallback is unreachable.
        name.unwrap_or("UNKNOWN")
    }
}

/// Head's `SESSION_E_*` names, index = −value (spec §7.1, complete through −41).
const SESSION_ERRORS: [&str; 42] = [
    "SESSION_E_NONE",
    "SESSION_E_UNKNOWN",
    "SESSION_E_REFUSED",
    "SESSION_E_TIMEDOUT",
    "SESSION_E_ALLOC",
    "SESSION_E_OWNER",
    "SESSION_E_NOROUTE",
    "SESSION_E_NOINTF",
    "SESSION_E_NOIP",
    "SESSION_E_NOPORT",
    "SESSION_E_NOSUPPORT",
    "SESSION_E_NOLISTEN",
    "SESSION_E_NOSESSION",
    "SESSION_E_NOAPP",
    "SESSION_E_APP_ATTACHED",
    "SESSION_E_PORTINUSE",
    "SESSION_E_IPINUSE",
    "SESSION_E_ALREADY_LISTENING",
    "SESSION_E_ADDR_NOT_IN_USE",
    "SESSION_E_INVALID",
    "SESSION_E_INVALID_RMT_IP",
    "SESSION_E_INVALID_APPWRK",
    "SESSION_E_INVALID_NS",
    "SESSION_E_SEG_NO_SPACE",
    "SESSION_E_SEG_NO_SPACE2",
    "SESSION_E_SEG_CREATE",
    "SESSION_E_FILTERED",
    "SESSION_E_SCOPE",
    "SESSION_E_BAPI_NO_FD",
    "SESSION_E_BAPI_SEND_FD",
    "SESSION_E_BAPI_NO_REG",
    "SESSION_E_MQ_MSG_ALLOC",
    "SESSION_E_TLS_HANDSHAKE",
    "SESSION_E_EVENTFD_ALLOC",
    "SESSION_E_NOEXTCFG",
    "SESSION_E_NOCRYPTOENG",
    "SESSION_E_NOCRYPTOCKP",
    "SESSION_E_LOCAL_CONNECT",
    "SESSION_E_WRONG_NS_SECRET",
    "SESSION_E_SYSCALL",
    "SESSION_E_TRANSPORT_NO_REG",
    "SESSION_E_MAX_STREAMS_HIT",
];

/// The Head name of a `retval` (0 ..= −41, spec §7.1), e.g. `session_error_name(-19)` =
/// `Some("SESSION_E_INVALID")`. `None` outside the table.
pub fn session_error_name(retval: i32) -> Option<&'static str> {
    let index = usize::try_from(retval.checked_neg()?).ok()?;
    SESSION_ERRORS.get(index).copied()
}

/// The seed name of the `VNET_API_ERROR_*` numbers the socket API used or that
/// [`SapiError`] maps to; `None` for 0 (success) and for other numbers.
pub fn vnet_api_error_name(retval: i32) -> Option<&'static str> {
    Some(match retval {
        -1 => "VNET_API_ERROR_UNSPECIFIED",
        -7 => "VNET_API_ERROR_INVALID_VALUE",
        -11 => "VNET_API_ERROR_SYSCALL_ERROR_1",
        -30 => "VNET_API_ERROR_FEATURE_DISABLED",
        -108 => "VNET_API_ERROR_APP_UNSUPPORTED_CFG",
        -117 => "VNET_API_ERROR_SVM_SEGMENT_CREATE_FAIL",
        -118 => "VNET_API_ERROR_APPLICATION_NOT_ATTACHED",
        -128 => "VNET_API_ERROR_APP_INVALID_NS",
        -129 => "VNET_API_ERROR_APP_WRONG_NS_SECRET",
        -131 => "VNET_API_ERROR_APP_ALREADY_ATTACHED",
        _ => return None,
    })
}
