//! A ring-1 element as bytes: never-panicking accessors over any `T: AsRef<[u8]>` (after
//! smoltcp's `wire` packets), for a checker that wants what the typed layer ignores — the
//! `postponed` byte, the raw body, the stale bytes after it.
//!
//! Owns: the element framing of `docs/sessions.md` §3.2 — type byte at 0, `postponed` at 1, the
//! body from offset 2. Must never: panic whatever the buffer length (a missing byte reads as 0,
//! a missing body as `None`), or interpret a body (that is [`CtrlMessage`](super::CtrlMessage)).

use super::message::CtrlDecodeError;
use super::{CTRL_BODY_OFFSET, SessionEventType};
use crate::Profile;

/// A view of a control-message element (or any prefix of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtrlElement<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> CtrlElement<T> {
    /// A view of any buffer; accessors read missing bytes as zero.
    pub const fn new_unchecked(buffer: T) -> CtrlElement<T> {
        CtrlElement { buffer }
    }

    /// A view of a buffer that holds at least the 2-byte header.
    pub fn new_checked(buffer: T) -> Result<CtrlElement<T>, CtrlDecodeError> {
        let len = buffer.as_ref().len();
        if len < CTRL_BODY_OFFSET {
            return Err(CtrlDecodeError::NoHeader { len });
        }
        Ok(CtrlElement { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Byte 0: the event type number (profile-specific).
    pub fn type_byte(&self) -> u8 {
        self.buffer.as_ref().first().copied().unwrap_or(0)
    }

    /// The event type byte 0 names in `profile`.
    pub fn event_type(&self, profile: Profile) -> Option<SessionEventType> {
        SessionEventType::from_number_in(self.type_byte(), profile)
    }

    /// Byte 1: `postponed` (a server writes 0, §3.2 rule 3).
    pub fn postponed(&self) -> u8 {
        self.buffer.as_ref().get(1).copied().unwrap_or(0)
    }

    /// The `size` body bytes from offset 2, `None` if the buffer is shorter.
    pub fn body(&self, size: usize) -> Option<&[u8]> {
        self.buffer
            .as_ref()
            .get(CTRL_BODY_OFFSET..CTRL_BODY_OFFSET.checked_add(size)?)
    }

    /// Everything after a body of `size` bytes (stale in a ring slot); empty if there is nothing.
    pub fn after_body(&self, size: usize) -> &[u8] {
        let at = CTRL_BODY_OFFSET.saturating_add(size);
        self.buffer.as_ref().get(at..).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CtrlElement<T> {
    /// Sets byte 0 (no effect on an empty buffer).
    pub fn set_type_byte(&mut self, value: u8) {
        if let Some(b) = self.buffer.as_mut().first_mut() {
            *b = value;
        }
    }

    /// Sets byte 1 (no effect on a shorter buffer).
    pub fn set_postponed(&mut self, value: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(1) {
            *b = value;
        }
    }
}
