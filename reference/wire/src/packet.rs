//! Zero-copy field accessors over a datagram buffer `T: AsRef<[u8]>`, one view per message type
//! (after smoltcp's `wire` packets).
//!
//! The views read and write raw field values at their spec offsets, without normalising anything:
//! an `is_add` byte of 2 reads as 2 here, while [`Message::decode`](super::Message::decode) makes it
//! `true`. They do not check the type byte — a checker may want to read any buffer as any layout.
//!
//! No getter or setter can panic, whatever the buffer length: a field that does not fit reads as
//! zero and is not written. [`new_checked`](AttachPacket::new_checked) refuses buffers whose length
//! is not exactly [`MSG_LEN`], so with a checked view every field is real.

use super::{AppName, AttachOptions, DecodeError, FdFlags, MSG_LEN, OptionIndex, Profile};

/// Field offsets inside the datagram ("dgram offset", byte 0 = type byte), spec §3.
pub(crate) mod offset {
    pub(crate) const TYPE: usize = 0;

    /// ATTACH (spec §3.1).
    pub(crate) mod attach {
        pub(crate) const NAME: usize = 1;
        pub(crate) const OPTIONS: usize = 65;
    }
    /// ATTACH_REPLY (spec §3.2).
    pub(crate) mod attach_reply {
        pub(crate) const RETVAL: usize = 1;
        pub(crate) const APP_INDEX: usize = 5;
        pub(crate) const APP_MQ: usize = 9;
        pub(crate) const VPP_CTRL_MQ: usize = 17;
        pub(crate) const SEGMENT_HANDLE: usize = 25;
        pub(crate) const API_CLIENT_HANDLE: usize = 33;
        pub(crate) const VPP_CTRL_MQ_THREAD: usize = 37;
        pub(crate) const N_FDS: usize = 38;
        pub(crate) const FD_FLAGS: usize = 39;
    }
    /// ADD_DEL_WORKER (spec §3.3).
    pub(crate) mod worker {
        pub(crate) const APP_INDEX: usize = 1;
        pub(crate) const WRK_INDEX: usize = 5;
        pub(crate) const IS_ADD: usize = 9;
    }
    /// ADD_DEL_WORKER_REPLY (spec §3.4); the last three fields move with the profile.
    pub(crate) mod worker_reply {
        use crate::Profile;

        pub(crate) const RETVAL: usize = 1;
        pub(crate) const WRK_INDEX: usize = 5;
        pub(crate) const APP_EVENT_QUEUE_ADDRESS: usize = 9;
        pub(crate) const SEGMENT_HANDLE: usize = 17;
        /// Head only.
        pub(crate) const API_CLIENT_HANDLE: usize = 25;

        /// Offset of `n_fds`; `fd_flags` and `is_add` follow it.
        pub(crate) const fn n_fds(profile: Profile) -> usize {
            match profile {
                Profile::Head => 29,
                Profile::Seed => 25,
            }
        }
    }
    /// ADD_DEL_CERT_KEY (spec §3.6).
    pub(crate) mod cert_key {
        pub(crate) const CONTEXT: usize = 1;
        pub(crate) const INDEX: usize = 5;
        pub(crate) const CERT_LEN: usize = 9;
        pub(crate) const CERTKEY_LEN: usize = 11;
        pub(crate) const IS_ADD: usize = 13;
    }
    /// ADD_DEL_CERT_KEY_REPLY (spec §3.7).
    pub(crate) mod cert_key_reply {
        pub(crate) const CONTEXT: usize = 1;
        pub(crate) const RETVAL: usize = 5;
        pub(crate) const INDEX: usize = 9;
    }
}

/// `Truncated` / `Oversized` unless `len` is exactly [`MSG_LEN`].
pub fn check_len(len: usize) -> Result<(), DecodeError> {
    match len {
        MSG_LEN => Ok(()),
        len if len < MSG_LEN => Err(DecodeError::Truncated { len }),
        len => Err(DecodeError::Oversized { len }),
    }
}

/// `N` bytes at `offset`, or zeros if the buffer is too short.
fn read<const N: usize>(buf: &[u8], offset: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(field) = offset.checked_add(N).and_then(|end| buf.get(offset..end)) {
        out.copy_from_slice(field);
    }
    out
}

/// Writes `bytes` at `offset` if they fit; otherwise writes nothing.
fn write<const N: usize>(buf: &mut [u8], offset: usize, bytes: [u8; N]) {
    if let Some(field) = offset
        .checked_add(N)
        .and_then(|end| buf.get_mut(offset..end))
    {
        field.copy_from_slice(&bytes);
    }
}

/// Common constructor, buffer access and type byte of every view.
macro_rules! view_common {
    ($name:ident) => {
        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps a buffer of any length; fields beyond its end read as zero.
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps a buffer of exactly [`MSG_LEN`] bytes.
            pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
                check_len(buffer.as_ref().len())?;
                Ok(Self { buffer })
            }

            /// The wrapped buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The whole buffer.
            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }

            /// Byte 0, the message type.
            pub fn type_byte(&self) -> u8 {
                u8::from_le_bytes(read(self.buffer.as_ref(), offset::TYPE))
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Sets byte 0, the message type.
            pub fn set_type_byte(&mut self, value: u8) {
                write(self.buffer.as_mut(), offset::TYPE, value.to_le_bytes());
            }
        }
    };
}

/// Fixed-offset little-endian integer fields of a view.
macro_rules! view_fields {
    ($name:ident { $($(#[$doc:meta])* $get:ident / $set:ident : $ty:ty = $off:expr;)* }) => {
        impl<T: AsRef<[u8]>> $name<T> {
            $(
                $(#[$doc])*
                pub fn $get(&self) -> $ty {
                    <$ty>::from_le_bytes(read(self.buffer.as_ref(), $off))
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            $(
                #[doc = concat!("Sets `", stringify!($get), "`.")]
                pub fn $set(&mut self, value: $ty) {
                    write(self.buffer.as_mut(), $off, value.to_le_bytes());
                }
            )*
        }
    };
}

/// Any datagram: only the type byte is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<T: AsRef<[u8]>> {
    buffer: T,
}
view_common!(Datagram);

/// ATTACH (type 1) view: name at dgram offset 1 (64 bytes), options at 65 + 8·i.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachPacket<T: AsRef<[u8]>> {
    buffer: T,
}
view_common!(AttachPacket);

impl<T: AsRef<[u8]>> AttachPacket<T> {
    /// The raw 64-byte name field, terminated or not.
    pub fn name_field(&self) -> [u8; 64] {
        read(self.buffer.as_ref(), offset::attach::NAME)
    }

    /// The name as VPP reads it (up to the first NUL within the first 63 bytes).
    #[inline]
    pub fn name(&self) -> AppName {
        AppName::from_wire(&self.name_field())
    }

    /// One option slot.
    pub fn option(&self, index: OptionIndex) -> u64 {
        u64::from_le_bytes(read(self.buffer.as_ref(), option_offset(index)))
    }

    /// All 18 option slots.
    #[inline]
    pub fn options(&self) -> AttachOptions {
        let mut options = AttachOptions::default();
        for index in OptionIndex::ALL {
            options.set(index, self.option(index));
        }
        options
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> AttachPacket<T> {
    /// Sets the raw 64-byte name field.
    pub fn set_name_field(&mut self, field: [u8; 64]) {
        write(self.buffer.as_mut(), offset::attach::NAME, field);
    }

    /// Sets one option slot.
    pub fn set_option(&mut self, index: OptionIndex, value: u64) {
        write(
            self.buffer.as_mut(),
            option_offset(index),
            value.to_le_bytes(),
        );
    }
}

/// Dgram offset of an option slot.
pub(crate) const fn option_offset(index: OptionIndex) -> usize {
    offset::attach::OPTIONS + 8 * index.index()
}

/// ATTACH_REPLY (type 2) view; the layout is the same in both profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachReplyPacket<T: AsRef<[u8]>> {
    buffer: T,
}
view_common!(AttachReplyPacket);
view_fields!(AttachReplyPacket {
    /// `retval` at dgram offset 1.
    retval / set_retval: i32 = offset::attach_reply::RETVAL;
    /// `app_index` at dgram offset 5.
    app_index / set_app_index: u32 = offset::attach_reply::APP_INDEX;
    /// `app_mq` at dgram offset 9.
    app_mq / set_app_mq: u64 = offset::attach_reply::APP_MQ;
    /// `vpp_ctrl_mq` at dgram offset 17.
    vpp_ctrl_mq / set_vpp_ctrl_mq: u64 = offset::attach_reply::VPP_CTRL_MQ;
    /// `segment_handle` at dgram offset 25.
    segment_handle / set_segment_handle: u64 = offset::attach_reply::SEGMENT_HANDLE;
    /// `api_client_handle` at dgram offset 33.
    api_client_handle / set_api_client_handle: u32 = offset::attach_reply::API_CLIENT_HANDLE;
    /// `vpp_ctrl_mq_thread` at dgram offset 37.
    vpp_ctrl_mq_thread / set_vpp_ctrl_mq_thread: u8 = offset::attach_reply::VPP_CTRL_MQ_THREAD;
    /// `n_fds` at dgram offset 38.
    n_fds / set_n_fds: u8 = offset::attach_reply::N_FDS;
    /// Raw `fd_flags` at dgram offset 39.
    fd_flags_byte / set_fd_flags_byte: u8 = offset::attach_reply::FD_FLAGS;
});

impl<T: AsRef<[u8]>> AttachReplyPacket<T> {
    /// `fd_flags` as flags (unknown bits kept).
    pub fn fd_flags(&self) -> FdFlags {
        FdFlags::from_bits_retain(self.fd_flags_byte())
    }
}

/// ADD_DEL_WORKER (type 3) view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddDelWorkerPacket<T: AsRef<[u8]>> {
    buffer: T,
}
view_common!(AddDelWorkerPacket);
view_fields!(AddDelWorkerPacket {
    /// `app_index` at dgram offset 1.
    app_index / set_app_index: u32 = offset::worker::APP_INDEX;
    /// `wrk_index` at dgram offset 5.
    wrk_index / set_wrk_index: u32 = offset::worker::WRK_INDEX;
    /// Raw `is_add` byte at dgram offset 9 (VPP treats any non-zero value as add).
    is_add / set_is_add: u8 = offset::worker::IS_ADD;
});

/// ADD_DEL_WORKER_REPLY (type 4) view. The profile decides where `n_fds`, `fd_flags` and
/// `is_add` sit (29..=31 at Head, 25..=27 at the seed) and whether `api_client_handle` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddDelWorkerReplyPacket<T: AsRef<[u8]>> {
    buffer: T,
    profile: Profile,
}

impl<T: AsRef<[u8]>> AddDelWorkerReplyPacket<T> {
    /// Wraps a buffer of any length; fields beyond its end read as zero.
    pub const fn new_unchecked(buffer: T, profile: Profile) -> Self {
        Self { buffer, profile }
    }

    /// Wraps a buffer of exactly [`MSG_LEN`] bytes.
    pub fn new_checked(buffer: T, profile: Profile) -> Result<Self, DecodeError> {
        check_len(buffer.as_ref().len())?;
        Ok(Self { buffer, profile })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The layout profile of this view.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Byte 0, the message type.
    pub fn type_byte(&self) -> u8 {
        u8::from_le_bytes(read(self.buffer.as_ref(), offset::TYPE))
    }

    /// `retval` at dgram offset 1.
    pub fn retval(&self) -> i32 {
        i32::from_le_bytes(read(self.buffer.as_ref(), offset::worker_reply::RETVAL))
    }

    /// `wrk_index` at dgram offset 5.
    pub fn wrk_index(&self) -> u32 {
        u32::from_le_bytes(read(self.buffer.as_ref(), offset::worker_reply::WRK_INDEX))
    }

    /// `app_event_queue_address` at dgram offset 9.
    pub fn app_event_queue_address(&self) -> u64 {
        u64::from_le_bytes(read(
            self.buffer.as_ref(),
            offset::worker_reply::APP_EVENT_QUEUE_ADDRESS,
        ))
    }

    /// `segment_handle` at dgram offset 17.
    pub fn segment_handle(&self) -> u64 {
        u64::from_le_bytes(read(
            self.buffer.as_ref(),
            offset::worker_reply::SEGMENT_HANDLE,
        ))
    }

    /// `api_client_handle` at dgram offset 25 (Head); `None` at the seed, which has no such field.
    pub fn api_client_handle(&self) -> Option<u32> {
        match self.profile {
            Profile::Head => Some(u32::from_le_bytes(read(
                self.buffer.as_ref(),
                offset::worker_reply::API_CLIENT_HANDLE,
            ))),
            Profile::Seed => None,
        }
    }

    /// `n_fds` at dgram offset 29 (Head) / 25 (seed).
    pub fn n_fds(&self) -> u8 {
        self.tail_byte(0)
    }

    /// Raw `fd_flags` at dgram offset 30 (Head) / 26 (seed).
    pub fn fd_flags_byte(&self) -> u8 {
        self.tail_byte(1)
    }

    /// `fd_flags` as flags (unknown bits kept).
    pub fn fd_flags(&self) -> FdFlags {
        FdFlags::from_bits_retain(self.fd_flags_byte())
    }

    /// Raw `is_add` byte at dgram offset 31 (Head) / 27 (seed).
    pub fn is_add(&self) -> u8 {
        self.tail_byte(2)
    }

    fn tail_byte(&self, k: usize) -> u8 {
        u8::from_le_bytes(read(
            self.buffer.as_ref(),
            offset::worker_reply::n_fds(self.profile) + k,
        ))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> AddDelWorkerReplyPacket<T> {
    /// Sets byte 0, the message type.
    pub fn set_type_byte(&mut self, value: u8) {
        write(self.buffer.as_mut(), offset::TYPE, [value]);
    }

    /// Sets `retval`.
    pub fn set_retval(&mut self, value: i32) {
        write(
            self.buffer.as_mut(),
            offset::worker_reply::RETVAL,
            value.to_le_bytes(),
        );
    }

    /// Sets `wrk_index`.
    pub fn set_wrk_index(&mut self, value: u32) {
        write(
            self.buffer.as_mut(),
            offset::worker_reply::WRK_INDEX,
            value.to_le_bytes(),
        );
    }

    /// Sets `app_event_queue_address`.
    pub fn set_app_event_queue_address(&mut self, value: u64) {
        write(
            self.buffer.as_mut(),
            offset::worker_reply::APP_EVENT_QUEUE_ADDRESS,
            value.to_le_bytes(),
        );
    }

    /// Sets `segment_handle`.
    pub fn set_segment_handle(&mut self, value: u64) {
        write(
            self.buffer.as_mut(),
            offset::worker_reply::SEGMENT_HANDLE,
            value.to_le_bytes(),
        );
    }

    /// Sets `api_client_handle` (Head); does nothing at the seed, which has no such field.
    pub fn set_api_client_handle(&mut self, value: u32) {
        if self.profile == Profile::Head {
            write(
                self.buffer.as_mut(),
                offset::worker_reply::API_CLIENT_HANDLE,
                value.to_le_bytes(),
            );
        }
    }

    /// Sets `n_fds`.
    pub fn set_n_fds(&mut self, value: u8) {
        self.set_tail_byte(0, value);
    }

    /// Sets the raw `fd_flags` byte.
    pub fn set_fd_flags_byte(&mut self, value: u8) {
        self.set_tail_byte(1, value);
    }

    /// Sets the raw `is_add` byte.
    pub fn set_is_add(&mut self, value: u8) {
        self.set_tail_byte(2, value);
    }

    fn set_tail_byte(&mut self, k: usize, value: u8) {
        let at = offset::worker_reply::n_fds(self.profile) + k;
        write(self.buffer.as_mut(), at, [value]);
    }
}

/// ADD_DEL_CERT_KEY (type 6, Head only) view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddDelCertKeyPacket<T: AsRef<[u8]>> {
    buffer: T,
}
view_common!(AddDelCertKeyPacket);
view_fields!(AddDelCertKeyPacket {
    /// `context` at dgram offset 1.
    context / set_context: u32 = offset::cert_key::CONTEXT;
    /// `index` at dgram offset 5.
    index / set_index: u32 = offset::cert_key::INDEX;
    /// `cert_len` at dgram offset 9.
    cert_len / set_cert_len: u16 = offset::cert_key::CERT_LEN;
    /// `certkey_len` at dgram offset 11.
    certkey_len / set_certkey_len: u16 = offset::cert_key::CERTKEY_LEN;
    /// Raw `is_add` byte at dgram offset 13 (VPP treats any non-zero value as add).
    is_add / set_is_add: u8 = offset::cert_key::IS_ADD;
});

/// ADD_DEL_CERT_KEY_REPLY (type 7, Head only) view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddDelCertKeyReplyPacket<T: AsRef<[u8]>> {
    buffer: T,
}
view_common!(AddDelCertKeyReplyPacket);
view_fields!(AddDelCertKeyReplyPacket {
    /// `context` at dgram offset 1.
    context / set_context: u32 = offset::cert_key_reply::CONTEXT;
    /// `retval` at dgram offset 5.
    retval / set_retval: i32 = offset::cert_key_reply::RETVAL;
    /// `index` at dgram offset 9.
    index / set_index: u32 = offset::cert_key_reply::INDEX;
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffers_read_zero_and_ignore_writes() {
        let reply = AttachReplyPacket::new_unchecked([2u8, 0xff, 0xff].as_slice());
        assert_eq!(reply.type_byte(), 2);
        assert_eq!(reply.retval(), 0, "a field past the end reads as zero");
        assert_eq!(reply.fd_flags(), FdFlags::empty());

        let mut buf = [0u8; 3];
        let mut worker = AddDelWorkerReplyPacket::new_unchecked(&mut buf[..], Profile::Head);
        worker.set_segment_handle(u64::MAX);
        worker.set_is_add(1);
        assert_eq!(buf, [0; 3]);

        let empty = AttachPacket::new_unchecked(&[][..]);
        assert_eq!(empty.type_byte(), 0);
        assert!(empty.name().is_empty());
        assert_eq!(empty.options(), AttachOptions::default());
    }

    #[test]
    fn new_checked_wants_exactly_209() {
        assert_eq!(
            Datagram::new_checked(&[0u8; 208][..]).err(),
            Some(DecodeError::Truncated { len: 208 })
        );
        assert_eq!(
            Datagram::new_checked(&[0u8; 210][..]).err(),
            Some(DecodeError::Oversized { len: 210 })
        );
        assert!(Datagram::new_checked([0u8; MSG_LEN]).is_ok());
    }

    #[test]
    fn worker_reply_tail_moves_with_profile() {
        let mut buf = [0u8; MSG_LEN];
        buf[25] = 0xaa;
        buf[29] = 3;
        let head = AddDelWorkerReplyPacket::new_unchecked(&buf[..], Profile::Head);
        let seed = AddDelWorkerReplyPacket::new_unchecked(&buf[..], Profile::Seed);
        assert_eq!(head.api_client_handle(), Some(0xaa));
        assert_eq!(head.n_fds(), 3);
        assert_eq!(seed.api_client_handle(), None);
        assert_eq!(seed.n_fds(), 0xaa);
    }
}
