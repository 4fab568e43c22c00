//! `session_dgram_hdr_t` (`docs/sessions.md` §8.7): the 47-byte packed header VCL writes before
//! every UDP datagram it puts into a fifo.
//!
//! Not a message-queue element: it travels in fifo data, app to app; the server never parses it.
//! It lives here because it is session-layer wire and shares [`Ip46`].
//!
//! Owns: the header's layout. Must never: panic on a short buffer, or judge the values (a
//! `data_length` larger than the fifo holds is the reader's business).

use super::codec::{Flag, Ip46Field, Le16, Le32, Port, Rows, WireStruct, wire_struct};
use super::endpoint::Ip46;

wire_struct! {
    /// `session_dgram_hdr_t` (§8.7, 47 bytes packed), followed in the fifo by `data_length`
    /// payload bytes.
    #[derive(Default)]
    pub struct DgramHeader: SessionDgramHdr, repr(C, packed), "§8.7, 47 bytes" {
        /// `data_length`: payload bytes after the header.
        data_length: u32 [u32] = Le32,
        /// `data_offset`: payload bytes already read (VCL's partial reads).
        data_offset: u32 [u32] = Le32,
        /// `rmt_ip`.
        rmt_ip: Ip46 [[u8; 16]] = Ip46Field,
        /// `lcl_ip`.
        lcl_ip: Ip46 [[u8; 16]] = Ip46Field,
        /// `rmt_port` (network order on the wire).
        rmt_port: u16 [u16] = Port,
        /// `lcl_port` (network order on the wire).
        lcl_port: u16 [u16] = Port,
        /// `is_ip4`.
        is_ip4: bool [u8] = Flag,
        /// `gso_size` (little-endian).
        gso_size: u16 [u16] = Le16,
    }
}

/// A buffer too short for a [`DgramHeader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error(
    "{len} bytes are shorter than the {}-byte session_dgram_hdr_t",
    DgramHeader::SIZE
)]
pub struct DgramDecodeError {
    /// Bytes available.
    pub len: usize,
}

impl DgramHeader {
    /// Size of the header on the wire.
    pub const SIZE: usize = <Self as WireStruct>::SIZE;

    /// The 47 header bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        self.write(&mut b);
        b
    }

    /// Reads the first 47 bytes of `bytes` (what follows is the payload).
    pub fn decode(bytes: &[u8]) -> Result<DgramHeader, DgramDecodeError> {
        let b = bytes
            .get(..Self::SIZE)
            .ok_or(DgramDecodeError { len: bytes.len() })?;
        Ok(Self::read(b))
    }

    /// Field by field: offset, size, name, value.
    pub fn dump(&self) -> String {
        let mut rows = Rows::new(crate::Profile::Head);
        self.rows("", 0, &mut rows);
        rows.render(
            &format!(
                "session_dgram_hdr_t, {} bytes, then {} payload bytes",
                Self::SIZE,
                self.data_length
            ),
            "off",
        )
    }
}
