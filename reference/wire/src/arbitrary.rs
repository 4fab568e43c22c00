//! `arbitrary::Arbitrary` for the wire types whose invariants a derive cannot keep (feature
//! `arbitrary`, used by the fuzz targets and the simulation harness).
//!
//! Flag sets keep unknown bits, as a decode does: a fuzzer must be able to build every value a
//! peer can send. A name is read the way VPP reads the 64-byte field, so every generated
//! [`AppName`] is one a datagram could carry.
//!
//! Must never: build a value a decode could not return, or miss one it could: a name goes through
//! the decoder's own [`AppName::from_wire`], and flag sets take any bits.

use arbitrary::{Arbitrary, Result, Unstructured};

use super::{AppName, AppOptionFlags, FdFlags};

impl<'a> Arbitrary<'a> for AppName {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let len = usize::from(u8::arbitrary(u)?) % (AppName::MAX_LEN + 1);
        let field = u.bytes(len.min(u.len()))?;
        Ok(AppName::from_wire(field))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(1 + AppName::MAX_LEN))
    }
}

impl<'a> Arbitrary<'a> for FdFlags {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(FdFlags::from_bits_retain(u8::arbitrary(u)?))
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        u8::size_hint(depth)
    }
}

impl<'a> Arbitrary<'a> for AppOptionFlags {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(AppOptionFlags::from_bits_retain(u64::arbitrary(u)?))
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        u64::size_hint(depth)
    }
}
