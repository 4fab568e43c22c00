//! The addresses embedded in session messages (`docs/sessions.md` §5.1): `ip46_address_t` and
//! `transport_endpoint_t`.
//!
//! Owns: their bytes. An [`Ip46`] keeps all 16 bytes as they came (network order), so a decode
//! loses nothing and a checker can see a non-zero byte 0..11 beside an IPv4 address; the
//! conversions to and from `std::net` are views, never a normalisation.
//!
//! Must never: decide what an address means (loopback, zero, matching a listener): that is the
//! server's business.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::codec::{Flag, Ip46Field, Le32, Port, wire_struct};

/// `ip46_address_t` (16 bytes): an IPv6 address in bytes 0..15, or an IPv4 address in bytes
/// 12..15 with bytes 0..11 zero (the form VCL writes). Bytes in network order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Ip46(pub [u8; 16]);

impl Ip46 {
    /// All zero: 0.0.0.0 or `::`.
    pub const ZERO: Ip46 = Ip46([0; 16]);

    /// An IPv4 address in the IPv4 form (bytes 12..15, the rest zero).
    pub const fn from_ipv4(ip: Ipv4Addr) -> Ip46 {
        let [a, b, c, d] = ip.octets();
        Ip46([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a, b, c, d])
    }

    /// An IPv6 address.
    pub const fn from_ipv6(ip: Ipv6Addr) -> Ip46 {
        Ip46(ip.octets())
    }

    /// `from_ipv4` or `from_ipv6`.
    pub const fn from_ip(ip: IpAddr) -> Ip46 {
        match ip {
            IpAddr::V4(v4) => Self::from_ipv4(v4),
            IpAddr::V6(v6) => Self::from_ipv6(v6),
        }
    }

    /// Bytes 12..15 as an IPv4 address (what VPP reads when `is_ip4` is set, whatever bytes
    /// 0..11 hold).
    pub const fn ipv4(&self) -> Ipv4Addr {
        let b = &self.0;
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    /// All 16 bytes as an IPv6 address.
    pub fn ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.0)
    }

    /// The address as VPP reads it given the message's `is_ip4`.
    pub fn to_ip(&self, is_ip4: bool) -> IpAddr {
        if is_ip4 {
            IpAddr::V4(self.ipv4())
        } else {
            IpAddr::V6(self.ipv6())
        }
    }

    /// Whether bytes 0..11 are zero (VPP's test for "this ip46 holds an IPv4 address").
    pub fn is_ipv4_form(&self) -> bool {
        self.0.iter().take(12).all(|&b| b == 0)
    }
}

impl fmt::Display for Ip46 {
    /// `zero`; both readings when bytes 0..11 are zero (`127.0.0.1 / ::7f00:1`: the message's
    /// `is_ip4` says which one VPP takes); otherwise the IPv6 address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ZERO {
            f.write_str("zero")
        } else if self.is_ipv4_form() {
            write!(f, "{} / {}", self.ipv4(), self.ipv6())
        } else {
            write!(f, "{}", self.ipv6())
        }
    }
}

impl fmt::Debug for Ip46 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ip46({self})")
    }
}

impl From<Ipv4Addr> for Ip46 {
    fn from(ip: Ipv4Addr) -> Ip46 {
        Ip46::from_ipv4(ip)
    }
}

impl From<Ipv6Addr> for Ip46 {
    fn from(ip: Ipv6Addr) -> Ip46 {
        Ip46::from_ipv6(ip)
    }
}

wire_struct! {
    /// `transport_endpoint_t` (§5.1, 28 bytes, not packed, align 4), embedded unchanged in
    /// ACCEPTED (`lcl`, `rmt`) and CONNECTED (`lcl`). Byte 19 is padding: ignored on decode,
    /// written as zero.
    #[derive(Default)]
    pub struct TransportEndpoint: TransportEndpointRaw, repr(C), "§5.1, 28 bytes" {
        /// `ip`, network order.
        ip: Ip46 [[u8; 16]] = Ip46Field,
        /// `port`, network order on the wire.
        port: u16 [u16] = Port,
        /// `is_ip4`: non-zero = IPv4.
        is_ip4: bool [u8] = Flag,
        /// `sw_if_index`: a VPP interface (0 in cut-through messages).
        sw_if_index: u32 [u32] = Le32,
        /// `fib_index`: a VPP FIB (0 in cut-through messages).
        fib_index: u32 [u32] = Le32,
    }
}
