//! The application name of ATTACH: a 64-byte field of which at most 63 bytes are used (spec §3.1,
//! §6.1: VPP forces byte 63 to NUL and takes the bytes up to the first NUL).
//!
//! Names are bytes, not text: VPP never checks UTF-8, so neither does this type. Stored inline so a
//! decode never allocates.

use std::fmt;

/// Size of the name field on the wire.
pub(crate) const NAME_FIELD_LEN: usize = 64;

/// An application name: at most [`AppName::MAX_LEN`] bytes, no NUL byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppName {
    // Invariant: bytes[len..] are zero, so derived equality and hashing see only the name.
    bytes: [u8; AppName::MAX_LEN],
    len: u8,
}

/// Why bytes cannot be an [`AppName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// More than 63 bytes: VPP would cut the name at 63.
    #[error("application name of {len} bytes is longer than the 63 bytes the wire keeps")]
    TooLong {
        /// Length given.
        len: usize,
    },
    /// A NUL byte inside: VPP would cut the name there.
    #[error("application name contains a NUL byte at offset {at}")]
    ContainsNul {
        /// Offset of the first NUL.
        at: usize,
    },
}

impl AppName {
    /// Longest name the wire carries (the 64th byte is always NUL).
    pub const MAX_LEN: usize = NAME_FIELD_LEN - 1;

    /// A name from bytes; refuses what VPP would silently change.
    pub fn new(name: &[u8]) -> Result<AppName, NameError> {
        if let Some(at) = name.iter().position(|&b| b == 0) {
            return Err(NameError::ContainsNul { at });
        }
        if name.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { len: name.len() });
        }
        Ok(Self::truncating(name))
    }

    /// The empty name (which VPP accepts).
    pub const fn empty() -> AppName {
        AppName {
            bytes: [0; Self::MAX_LEN],
            len: 0,
        }
    }

    /// The name VPP sees in a 64-byte name field: the bytes before the first NUL among the first
    /// 63 (byte 63 is forced to NUL, so 64 unterminated bytes yield their first 63). Fields shorter
    /// than 64 bytes are read as if zero-padded.
    pub fn from_wire(field: &[u8]) -> AppName {
        let used = field.get(..Self::MAX_LEN).unwrap_or(field);
        let len = used.iter().position(|&b| b == 0).unwrap_or(used.len());
        Self::truncating(used.get(..len).unwrap_or_default())
    }

    /// The 64-byte wire field: name bytes then zeros.
    pub fn to_wire(&self) -> [u8; NAME_FIELD_LEN] {
        let mut field = [0; NAME_FIELD_LEN];
        for (dst, src) in field.iter_mut().zip(self.as_bytes()) {
            *dst = *src;
        }
        field
    }

    /// The name's bytes (no NUL).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Number of name bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the name is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    // Callers guarantee no NUL; the length is clamped here so the invariant holds regardless.
    fn truncating(name: &[u8]) -> AppName {
        let mut out = Self::empty();
        let n = name.len().min(Self::MAX_LEN);
        for (dst, src) in out.bytes.iter_mut().zip(name.iter().take(n)) {
            *dst = *src;
        }
        // n <= 63 fits in u8.
        out.len = n as u8;
        out
    }
}

impl Default for AppName {
    fn default() -> Self {
        Self::empty()
    }
}

impl TryFrom<&str> for AppName {
    type Error = NameError;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        AppName::new(name.as_bytes())
    }
}

impl fmt::Display for AppName {
    /// Lossy UTF-8 rendering (invalid sequences become U+FFFD).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Debug for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppName(\"{}\")", self.as_bytes().escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_refuses_what_vpp_would_change() {
        assert_eq!(
            AppName::new(&[b'a'; 64]),
            Err(NameError::TooLong { len: 64 })
        );
        assert_eq!(
            AppName::new(b"ab\0c"),
            Err(NameError::ContainsNul { at: 2 })
        );
        assert_eq!(AppName::new(&[b'a'; 63]).map(|n| n.len()), Ok(63));
        assert_eq!(AppName::new(b"").map(|n| n.is_empty()), Ok(true));
    }

    #[test]
    fn from_wire_stops_at_nul_and_at_63() {
        assert_eq!(AppName::from_wire(&[b'x'; 64]).as_bytes(), &[b'x'; 63][..]);
        assert_eq!(AppName::from_wire(b"ab\0cd").as_bytes(), b"ab");
        assert_eq!(AppName::from_wire(b"").as_bytes(), b"");
        assert_eq!(AppName::from_wire(&[b'y'; 10]).as_bytes(), &[b'y'; 10][..]);
    }

    #[test]
    fn wire_field_is_zero_padded_and_debug_escapes() {
        let name = AppName::new(b"a\xffb").unwrap_or_default();
        let field = name.to_wire();
        assert_eq!(&field[..4], b"a\xffb\0");
        assert!(field[3..].iter().all(|&b| b == 0));
        assert_eq!(format!("{name:?}"), "AppName(\"a\\xffb\")");
        assert_eq!(name.to_string(), "a\u{fffd}b");
    }
}
