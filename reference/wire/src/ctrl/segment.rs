//! Segment notifications (`docs/shm.md` §6.3, §6.4; `docs/sessions.md` §5.9): APP_ADD_SEGMENT
//! and APP_DEL_SEGMENT, server → app.
//!
//! Owns: the two body layouts (identical at the seed and at HEAD), the segment-name rule (at most
//! 127 bytes, no NUL, NUL-terminated in its 128-byte field), and the element-level
//! `encode_element` / `decode_element` that `sapi-reference` and the benches use; those take the
//! type byte from the caller and predate [`CtrlMessage`](super::CtrlMessage), which they now share
//! the body code with.
//!
//! Must never: send or expect an fd: `fd_flags` is a number here, the socket is the shell's.

use super::codec::{Le32, Le64, Rows, WireStruct, array, field, put, wire_struct};
use super::layout as l;
use super::message::{CtrlDecodeError, CtrlEncodeError};
use super::{CTRL_BODY_OFFSET, CTRL_ELEMENT_SIZE, EventError};
use crate::dump::hex64;

/// Size of the `segment_name` field; the name proper is at most one byte shorter.
const NAME_FIELD: usize = 128;

/// `session_app_add_segment_msg_t` (§6.3, 152 bytes, not packed): the server maps a new segment
/// for the app; with `fd_flags` 0x02 its memfd went ahead on the socket (SEND_FDS).
///
/// The name is kept as bytes (VPP never checks UTF-8). It is the one heap allocation of a decode
/// in this module, kept because the other crates build this struct with a `Vec`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AppAddSegment {
    /// `client_index` (0 for SAPI).
    pub client_index: u32,
    /// `context` (0).
    pub context: u32,
    /// `fd_flags` (0x02 = an fd follows on the SAPI socket).
    pub fd_flags: u8,
    /// `segment_size` in bytes.
    pub segment_size: u32,
    /// Segment name: at most [`AppAddSegment::NAME_MAX_LEN`] bytes, no NUL.
    pub segment_name: Vec<u8>,
    /// `segment_handle`.
    pub segment_handle: u64,
}

impl AppAddSegment {
    /// Longest segment name the 128-byte field carries with its NUL.
    pub const NAME_MAX_LEN: usize = NAME_FIELD - 1;

    /// Refuses a name the wire cannot carry as it is: longer than 127 bytes, or with a NUL
    /// (a reader would stop there).
    pub fn check_name(&self) -> Result<(), CtrlEncodeError> {
        if let Some(at) = self.segment_name.iter().position(|&b| b == 0) {
            return Err(CtrlEncodeError::SegmentNameContainsNul { at });
        }
        if self.segment_name.len() > Self::NAME_MAX_LEN {
            return Err(CtrlEncodeError::SegmentNameTooLong {
                len: self.segment_name.len(),
            });
        }
        Ok(())
    }

    /// Reads a 152-byte body; the name ends at its first NUL (bytes after it are ignored).
    pub(crate) fn read(b: &[u8]) -> Result<AppAddSegment, CtrlDecodeError> {
        let name = field(b, l::ADD_SEGMENT_NAME, NAME_FIELD);
        let end = name
            .iter()
            .position(|&c| c == 0)
            .ok_or(CtrlDecodeError::UnterminatedName)?;
        Ok(AppAddSegment {
            client_index: u32::from_le_bytes(array(field(b, l::ADD_CLIENT_INDEX, 4))),
            context: u32::from_le_bytes(array(field(b, l::ADD_CONTEXT, 4))),
            fd_flags: field(b, l::ADD_FD_FLAGS, 1).first().copied().unwrap_or(0),
            segment_size: u32::from_le_bytes(array(field(b, l::ADD_SEGMENT_SIZE_FIELD, 4))),
            segment_name: name.get(..end).unwrap_or_default().to_vec(),
            segment_handle: u64::from_le_bytes(array(field(b, l::ADD_SEGMENT_HANDLE, 8))),
        })
    }

    /// Writes a 152-byte body (after checking the name; nothing is written if it is refused).
    /// Padding and the name field's tail are left as they are: callers zero the body first.
    pub(crate) fn write(&self, b: &mut [u8]) -> Result<(), CtrlEncodeError> {
        self.check_name()?;
        let mut at = |off: usize, bytes: &[u8]| {
            if let Some(dst) = b.get_mut(off..) {
                put(dst, bytes);
            }
        };
        at(l::ADD_CLIENT_INDEX, &self.client_index.to_le_bytes());
        at(l::ADD_CONTEXT, &self.context.to_le_bytes());
        at(l::ADD_FD_FLAGS, &[self.fd_flags]);
        at(l::ADD_SEGMENT_SIZE_FIELD, &self.segment_size.to_le_bytes());
        at(l::ADD_SEGMENT_NAME, &self.segment_name);
        at(l::ADD_SEGMENT_HANDLE, &self.segment_handle.to_le_bytes());
        Ok(())
    }

    pub(crate) fn rows(&self, at: usize, rows: &mut Rows) {
        rows.push(
            at + l::ADD_CLIENT_INDEX,
            4,
            "client_index",
            self.client_index.to_string(),
        );
        rows.push(at + l::ADD_CONTEXT, 4, "context", self.context.to_string());
        let fd = if self.fd_flags & 0x02 != 0 {
            "MEMFD_SEGMENT: an fd went ahead on the socket"
        } else {
            "no fd"
        };
        rows.push(
            at + l::ADD_FD_FLAGS,
            1,
            "fd_flags",
            format!("{:#04x} ({fd})", self.fd_flags),
        );
        rows.push(
            at + l::ADD_FD_FLAGS + 1,
            3,
            "padding",
            "ignored, written zero".to_owned(),
        );
        let size = self.segment_size;
        rows.push(
            at + l::ADD_SEGMENT_SIZE_FIELD,
            4,
            "segment_size",
            format!("{size} ({size:#x})"),
        );
        rows.push(
            at + l::ADD_SEGMENT_NAME,
            NAME_FIELD,
            "segment_name",
            format!(
                "\"{}\" ({} bytes, NUL-terminated)",
                self.segment_name.escape_ascii(),
                self.segment_name.len()
            ),
        );
        rows.push(
            at + l::ADD_SEGMENT_HANDLE,
            8,
            "segment_handle",
            hex64(self.segment_handle),
        );
    }

    /// The 256-byte ring-1 element: type `event_type` (28 HEAD / 26 seed), postponed 0, this
    /// body at offset 2, zero padding.
    ///
    /// Prefer [`CtrlMessage::encode`](super::CtrlMessage::encode), which takes the number from
    /// the profile.
    pub fn encode_element(&self, event_type: u8) -> Result<[u8; CTRL_ELEMENT_SIZE], EventError> {
        let mut e = [0u8; CTRL_ELEMENT_SIZE];
        let body = e.get_mut(CTRL_BODY_OFFSET..).unwrap_or_default();
        self.write(body).map_err(|err| match err {
            CtrlEncodeError::SegmentNameContainsNul { at } => EventError::NameContainsNul(at),
            _ => EventError::NameTooLong(self.segment_name.len()),
        })?;
        put(&mut e, &[event_type]);
        Ok(e)
    }

    /// Parses a ring-1 element whose type must be `event_type`.
    ///
    /// Prefer [`CtrlMessage::decode`](super::CtrlMessage::decode), which takes the number from the
    /// profile and checks the direction.
    pub fn decode_element(element: &[u8], event_type: u8) -> Result<Self, EventError> {
        let body = legacy_body(element, event_type, l::ADD_SEGMENT_SIZE)?;
        Self::read(body).map_err(|_| EventError::UnterminatedName)
    }
}

wire_struct! {
    /// `session_app_del_segment_msg_t` (§6.4, 16 bytes): the app unmaps a segment.
    #[derive(Default)]
    pub struct AppDelSegment: SessionAppDelSegmentMsg, repr(C), "docs/shm.md §6.4, 16 bytes" {
        /// `client_index`.
        client_index: u32 [u32] = Le32,
        /// `context`.
        context: u32 [u32] = Le32,
        /// `segment_handle`.
        segment_handle: u64 [u64] = Le64,
    }
}

impl AppDelSegment {
    /// The 256-byte ring-1 element: type `event_type` (29 HEAD / 27 seed), body at offset 2.
    ///
    /// Prefer [`CtrlMessage::encode`](super::CtrlMessage::encode), which takes the number from
    /// the profile.
    pub fn encode_element(&self, event_type: u8) -> [u8; CTRL_ELEMENT_SIZE] {
        let mut e = [0u8; CTRL_ELEMENT_SIZE];
        self.write(e.get_mut(CTRL_BODY_OFFSET..).unwrap_or_default());
        put(&mut e, &[event_type]);
        e
    }

    /// Parses a ring-1 element whose type must be `event_type`.
    ///
    /// Prefer [`CtrlMessage::decode`](super::CtrlMessage::decode), which takes the number from the
    /// profile and checks the direction.
    pub fn decode_element(element: &[u8], event_type: u8) -> Result<Self, EventError> {
        let body = legacy_body(element, event_type, <Self as WireStruct>::SIZE)?;
        Ok(Self::read(body))
    }
}

/// The body of `size` bytes of an element that must have type byte `event_type`: length first,
/// then type, as these functions always checked.
fn legacy_body(element: &[u8], event_type: u8, size: usize) -> Result<&[u8], EventError> {
    let needed = CTRL_BODY_OFFSET + size;
    let body = element
        .get(CTRL_BODY_OFFSET..needed)
        .ok_or(EventError::Truncated {
            len: element.len(),
            needed,
        })?;
    let got = element.first().copied().unwrap_or_default();
    if got != event_type {
        return Err(EventError::WrongType {
            got,
            expected: event_type,
        });
    }
    Ok(body)
}
