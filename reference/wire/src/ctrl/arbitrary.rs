//! `arbitrary::Arbitrary` for the one ctrl type whose invariant a derive cannot keep
//! (feature `arbitrary`): an [`AppAddSegment`] name is at most 127 bytes with no NUL, read the
//! way a decode reads the 128-byte field, so every generated value encodes and decodes back to
//! itself.
//!
//! Must never: generate a name a decode would read back differently (longer than `NAME_MAX_LEN` or
//! holding a NUL): a round-trip target that fails must have found a codec bug, not a generator one.

use arbitrary::{Arbitrary, Result, Unstructured};

use super::AppAddSegment;

impl<'a> Arbitrary<'a> for AppAddSegment {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let client_index = u32::arbitrary(u)?;
        let context = u32::arbitrary(u)?;
        let fd_flags = u8::arbitrary(u)?;
        let segment_size = u32::arbitrary(u)?;
        let segment_handle = u64::arbitrary(u)?;
        let len = usize::from(u8::arbitrary(u)?) % (AppAddSegment::NAME_MAX_LEN + 1);
        let field = u.bytes(len.min(u.len()))?;
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        Ok(AppAddSegment {
            client_index,
            context,
            fd_flags,
            segment_size,
            segment_name: field.get(..end).unwrap_or_default().to_vec(),
            segment_handle,
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (22, Some(22 + AppAddSegment::NAME_MAX_LEN))
    }
}
