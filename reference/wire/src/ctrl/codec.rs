//! Field codecs and [`wire_struct!`], which declares a message body once: the typed struct, its
//! `#[repr(C)]` / `#[repr(C, packed)]` mirror (the C layout, from which every offset is taken with
//! `offset_of!`), and its read, write and dump, all generated from the same field list so that they
//! cannot drift apart.
//!
//! Owns: how one field's bytes become a value and back (byte order, booleans, nested structures)
//! and how a value is shown in a dump.
//!
//! Must never: panic on a short or long slice. Callers hand in exact bodies; as a second fence a
//! field missing from the slice reads as zero and is not written.

use std::fmt::Write as _;
use std::marker::PhantomData;

use super::endpoint::Ip46;
use crate::Profile;
use crate::dump::{hex64, retval};

/// Dump rows: (element offset, size, field name, value).
pub(crate) struct Rows {
    /// The profile that names retvals.
    pub(crate) profile: Profile,
    pub(crate) rows: Vec<(usize, usize, String, String)>,
}

impl Rows {
    pub(crate) fn new(profile: Profile) -> Rows {
        Rows {
            profile,
            rows: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, at: usize, len: usize, name: &str, value: String) {
        self.rows.push((at, len, name.to_owned(), value));
    }

    /// The rows under a one-line title, one field per line: `offset len field value`, the
    /// offset column headed `column` (`elem` for element offsets, `off` for others).
    pub(crate) fn render(&self, title: &str, column: &str) -> String {
        let mut out = format!("{title}\n");
        let width = self.rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
        let _ = writeln!(out, "{column:>4} {:>4}  {:<width$}  value", "len", "field");
        for (at, len, name, value) in &self.rows {
            let _ = writeln!(out, "{at:>4} {len:>4}  {name:<width$}  {value}");
        }
        out
    }
}

/// The bytes of `b` from `at`, at most `len` of them (fewer, or none, when `b` is short).
pub(crate) fn field(b: &[u8], at: usize, len: usize) -> &[u8] {
    match b.get(at..) {
        Some(rest) => rest.get(..len).unwrap_or(rest),
        None => &[],
    }
}

/// Mutable twin of [`field`].
pub(crate) fn field_mut(b: &mut [u8], at: usize, len: usize) -> &mut [u8] {
    match b.get_mut(at..) {
        Some(rest) => {
            let n = len.min(rest.len());
            rest.split_at_mut(n).0
        }
        None => &mut [],
    }
}

/// `N` bytes from the front of `b`, zero where `b` is short.
pub(crate) fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (dst, src) in out.iter_mut().zip(b) {
        *dst = *src;
    }
    out
}

/// Copies as much of `src` as fits into `b`.
pub(crate) fn put(b: &mut [u8], src: &[u8]) {
    for (dst, s) in b.iter_mut().zip(src) {
        *dst = *s;
    }
}

/// How one field is read, written and shown.
pub(crate) trait Field {
    /// The typed value.
    type Value;
    /// Bytes on the wire (checked at compile time against the mirror's field).
    const LEN: usize;
    /// Reads a value from (at most) `LEN` bytes; missing bytes read as zero.
    fn read(b: &[u8]) -> Self::Value;
    /// Writes a value into (at most) `LEN` bytes.
    fn write(v: &Self::Value, b: &mut [u8]);
    /// Dump rows for the value at element offset `at`.
    fn rows(v: &Self::Value, name: &str, at: usize, rows: &mut Rows);
}

/// A decimal number, with its hex when that says more (handles packed from two halves).
fn number(v: u64) -> String {
    if v < 10 {
        v.to_string()
    } else {
        format!("{v} ({v:#x})")
    }
}

/// `u16`, little-endian.
pub(crate) struct Le16;
impl Field for Le16 {
    type Value = u16;
    const LEN: usize = 2;
    fn read(b: &[u8]) -> u16 {
        u16::from_le_bytes(array(b))
    }
    fn write(v: &u16, b: &mut [u8]) {
        put(b, &v.to_le_bytes());
    }
    fn rows(v: &u16, name: &str, at: usize, rows: &mut Rows) {
        rows.push(at, Self::LEN, name, number(u64::from(*v)));
    }
}

/// `u32`, little-endian.
pub(crate) struct Le32;
impl Field for Le32 {
    type Value = u32;
    const LEN: usize = 4;
    fn read(b: &[u8]) -> u32 {
        u32::from_le_bytes(array(b))
    }
    fn write(v: &u32, b: &mut [u8]) {
        put(b, &v.to_le_bytes());
    }
    fn rows(v: &u32, name: &str, at: usize, rows: &mut Rows) {
        rows.push(at, Self::LEN, name, number(u64::from(*v)));
    }
}

/// `u64`, little-endian, shown in hex (handles and offsets).
pub(crate) struct Le64;
impl Field for Le64 {
    type Value = u64;
    const LEN: usize = 8;
    fn read(b: &[u8]) -> u64 {
        u64::from_le_bytes(array(b))
    }
    fn write(v: &u64, b: &mut [u8]) {
        put(b, &v.to_le_bytes());
    }
    fn rows(v: &u64, name: &str, at: usize, rows: &mut Rows) {
        rows.push(at, Self::LEN, name, hex64(*v));
    }
}

/// `i32` retval, little-endian, shown with its `SESSION_E_*` name at HEAD. At the seed the
/// spec does not say which numbering session messages used, so no name is guessed.
pub(crate) struct Retval;
impl Field for Retval {
    type Value = i32;
    const LEN: usize = 4;
    fn read(b: &[u8]) -> i32 {
        i32::from_le_bytes(array(b))
    }
    fn write(v: &i32, b: &mut [u8]) {
        put(b, &v.to_le_bytes());
    }
    fn rows(v: &i32, name: &str, at: usize, rows: &mut Rows) {
        let value = match (rows.profile, *v) {
            (Profile::Head, v) | (Profile::Seed, v @ 0) => retval(v, Profile::Head),
            (Profile::Seed, v) => format!("{v} (seed: numbering not stated by the spec)"),
        };
        rows.push(at, Self::LEN, name, value);
    }
}

/// A port: `u16` in **network** byte order on the wire, a plain number in the typed value.
pub(crate) struct Port;
impl Field for Port {
    type Value = u16;
    const LEN: usize = 2;
    fn read(b: &[u8]) -> u16 {
        u16::from_be_bytes(array(b))
    }
    fn write(v: &u16, b: &mut [u8]) {
        put(b, &v.to_be_bytes());
    }
    fn rows(v: &u16, name: &str, at: usize, rows: &mut Rows) {
        let [hi, lo] = v.to_be_bytes();
        rows.push(
            at,
            Self::LEN,
            name,
            format!("{v} (bytes {hi:02x} {lo:02x}, network order)"),
        );
    }
}

/// A `u8` number.
pub(crate) struct Byte;
impl Field for Byte {
    type Value = u8;
    const LEN: usize = 1;
    fn read(b: &[u8]) -> u8 {
        b.first().copied().unwrap_or(0)
    }
    fn write(v: &u8, b: &mut [u8]) {
        put(b, &[*v]);
    }
    fn rows(v: &u8, name: &str, at: usize, rows: &mut Rows) {
        rows.push(at, Self::LEN, name, v.to_string());
    }
}

/// A `u8` boolean as VPP reads it: any non-zero byte is true; written as 0 or 1.
pub(crate) struct Flag;
impl Field for Flag {
    type Value = bool;
    const LEN: usize = 1;
    fn read(b: &[u8]) -> bool {
        b.first().is_some_and(|&x| x != 0)
    }
    fn write(v: &bool, b: &mut [u8]) {
        put(b, &[u8::from(*v)]);
    }
    fn rows(v: &bool, name: &str, at: usize, rows: &mut Rows) {
        rows.push(at, Self::LEN, name, u8::from(*v).to_string());
    }
}

/// An `ip46_address_t` (16 bytes, network order), kept as bytes.
pub(crate) struct Ip46Field;
impl Field for Ip46Field {
    type Value = Ip46;
    const LEN: usize = 16;
    fn read(b: &[u8]) -> Ip46 {
        Ip46(array(b))
    }
    fn write(v: &Ip46, b: &mut [u8]) {
        put(b, &v.0);
    }
    fn rows(v: &Ip46, name: &str, at: usize, rows: &mut Rows) {
        rows.push(at, Self::LEN, name, v.to_string());
    }
}

/// An IPv4 address (4 bytes, network order), kept as bytes.
pub(crate) struct Ip4Field;
impl Field for Ip4Field {
    type Value = [u8; 4];
    const LEN: usize = 4;
    fn read(b: &[u8]) -> [u8; 4] {
        array(b)
    }
    fn write(v: &[u8; 4], b: &mut [u8]) {
        put(b, v);
    }
    fn rows(v: &[u8; 4], name: &str, at: usize, rows: &mut Rows) {
        let [a, b, c, d] = *v;
        rows.push(at, Self::LEN, name, format!("{a}.{b}.{c}.{d}"));
    }
}

/// `N` opaque bytes, shown in hex.
pub(crate) struct Bytes<const N: usize>;
impl<const N: usize> Field for Bytes<N> {
    type Value = [u8; N];
    const LEN: usize = N;
    fn read(b: &[u8]) -> [u8; N] {
        array(b)
    }
    fn write(v: &[u8; N], b: &mut [u8]) {
        put(b, v);
    }
    fn rows(v: &[u8; N], name: &str, at: usize, rows: &mut Rows) {
        let value = if v.iter().all(|&x| x == 0) {
            "zero".to_owned()
        } else {
            v.iter().fold(String::with_capacity(3 * N), |mut s, x| {
                let _ = write!(s, "{}{x:02x}", if s.is_empty() { "" } else { " " });
                s
            })
        };
        rows.push(at, Self::LEN, name, value);
    }
}

/// A structure declared with [`wire_struct!`], read and written at its own offsets.
pub(crate) trait WireStruct: Sized {
    /// Size of the C structure.
    const SIZE: usize;
    /// Reads every field from (at most) `SIZE` bytes.
    fn read(b: &[u8]) -> Self;
    /// Writes every field; bytes that are no field's (padding) are left as they are.
    fn write(&self, b: &mut [u8]);
    /// One dump row per field, names prefixed with `prefix`, offsets from `at`.
    fn rows(&self, prefix: &str, at: usize, rows: &mut Rows);
}

/// A structure embedded in another (`transport_endpoint_t` in ACCEPTED, …).
pub(crate) struct Nested<T>(PhantomData<T>);
impl<T: WireStruct> Field for Nested<T> {
    type Value = T;
    const LEN: usize = T::SIZE;
    fn read(b: &[u8]) -> T {
        T::read(b)
    }
    fn write(v: &T, b: &mut [u8]) {
        v.write(b);
    }
    fn rows(v: &T, name: &str, at: usize, rows: &mut Rows) {
        v.rows(&format!("{name}."), at, rows);
    }
}

/// Declares a wire structure: the typed struct (public fields, `Copy`, `Arbitrary` with the
/// `arbitrary` feature), its C-layout mirror, and a [`WireStruct`] impl reading and writing each
/// field at `offset_of!(mirror, field)` with the field's codec. Each field is written
/// `name: Type [CType] = Codec`; a compile-time assertion checks `size_of::<CType>()` against
/// the codec's length, so a field cannot be read with the wrong width.
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident : $mirror:ident, repr($($repr:tt)*), $spec:literal {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty [$raw:ty] = $codec:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        #[doc = concat!(
            "C layout of [`", stringify!($name), "`] (", $spec, "): `repr(",
            stringify!($($repr)*), ")`, for `size_of` and `offset_of!` only (never read)."
        )]
        #[repr($($repr)*)]
        #[derive(Clone, Copy, Debug)]
        #[allow(missing_docs)]
        pub struct $mirror {
            $( pub $field: $raw, )*
        }

        const _: () = {
            $( assert!(
                ::core::mem::size_of::<$raw>()
                    == <$codec as $crate::ctrl::codec::Field>::LEN
            ); )*
        };

        impl $crate::ctrl::codec::WireStruct for $name {
            const SIZE: usize = ::core::mem::size_of::<$mirror>();

            fn read(b: &[u8]) -> Self {
                use $crate::ctrl::codec::{field, Field};
                Self {
                    $( $field: <$codec as Field>::read(field(
                        b,
                        ::core::mem::offset_of!($mirror, $field),
                        <$codec as Field>::LEN,
                    )), )*
                }
            }

            fn write(&self, b: &mut [u8]) {
                use $crate::ctrl::codec::{field_mut, Field};
                $( <$codec as Field>::write(
                    &self.$field,
                    field_mut(
                        b,
                        ::core::mem::offset_of!($mirror, $field),
                        <$codec as Field>::LEN,
                    ),
                ); )*
            }

            fn rows(&self, prefix: &str, at: usize, rows: &mut $crate::ctrl::codec::Rows) {
                use $crate::ctrl::codec::Field;
                $( <$codec as Field>::rows(
                    &self.$field,
                    &format!("{prefix}{}", stringify!($field)),
                    at + ::core::mem::offset_of!($mirror, $field),
                    rows,
                ); )*
            }
        }
    };
}

pub(crate) use wire_struct;
