//! The 18 attach option slots of ATTACH (`options[APP_OPTIONS_N_OPTIONS]`, spec §4).
//!
//! Slots are raw `u64`s: VPP reads them without validation, so this type never rejects a value.
//! Whether a combination is acceptable is the server's decision, not the codec's.

use super::{AppOptionFlags, Profile};

/// Index of an attach option slot. Two slots were renamed between the profiles; see
/// [`OptionIndex::name`].
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptionIndex {
    /// 0: [`AppOptionFlags`] bitmask.
    Flags = 0,
    /// 1: app event-queue length in messages (VPP default 128).
    EvtQueueSize,
    /// 2: first segment size in bytes (VPP uses at least 1 MiB).
    SegmentSize,
    /// 3: size of additional segments; non-zero enables adding segments.
    AddSegmentSize,
    /// 4: Head: cap on fifo memory (MAX_FIFO_MEMORY, needs SEGMENT_SIZE ≠ 0).
    /// Seed: PRIVATE_SEGMENT_COUNT, unused.
    MaxFifoMemory,
    /// 5: default rx fifo size.
    RxFifoSize,
    /// 6: default tx fifo size.
    TxFifoSize,
    /// 7: number of fifo pairs to preallocate.
    PreallocFifoPairs,
    /// 8: number of fifo headers to preallocate (with slot 7 also non-zero: NOSUPPORT).
    PreallocFifoHdrs,
    /// 9: namespace index — overwritten by the server with the socket's namespace.
    Namespace,
    /// 10: namespace secret — ignored over the socket API.
    NamespaceSecret,
    /// 11: bitmask `1 << transport_proto` of proxied transports.
    ProxyTransport,
    /// 12: Head: UNUSED2. Seed: ACCEPT_COOKIE, unused.
    Unused2,
    /// 13: crypto engine (0 NONE, 1 OPENSSL, 2 PICOTLS, 3 VPP, 4 MBEDTLS).
    TlsEngine,
    /// 14: maximum fifo size.
    MaxFifoSize,
    /// 15: segment memory-pressure high watermark, percent.
    HighWatermark,
    /// 16: segment memory-pressure low watermark, percent.
    LowWatermark,
    /// 17: percent of the fifo size allocated initially.
    PctFirstAlloc,
}

impl OptionIndex {
    /// Number of option slots (`APP_OPTIONS_N_OPTIONS`), the same at every revision.
    pub const COUNT: usize = 18;

    /// All slots in index order.
    pub const ALL: [OptionIndex; Self::COUNT] = [
        OptionIndex::Flags,
        OptionIndex::EvtQueueSize,
        OptionIndex::SegmentSize,
        OptionIndex::AddSegmentSize,
        OptionIndex::MaxFifoMemory,
        OptionIndex::RxFifoSize,
        OptionIndex::TxFifoSize,
        OptionIndex::PreallocFifoPairs,
        OptionIndex::PreallocFifoHdrs,
        OptionIndex::Namespace,
        OptionIndex::NamespaceSecret,
        OptionIndex::ProxyTransport,
        OptionIndex::Unused2,
        OptionIndex::TlsEngine,
        OptionIndex::MaxFifoSize,
        OptionIndex::HighWatermark,
        OptionIndex::LowWatermark,
        OptionIndex::PctFirstAlloc,
    ];

    /// The slot with this index, if `index < 18`.
    pub fn from_index(index: usize) -> Option<OptionIndex> {
        Self::ALL.get(index).copied()
    }

    /// The slot's position in the array.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// VPP's name without the `APP_OPTIONS_` prefix, as of `profile` (slots 4 and 12 differ).
    pub const fn name(self, profile: Profile) -> &'static str {
        match (self, profile) {
            (OptionIndex::Flags, _) => "FLAGS",
            (OptionIndex::EvtQueueSize, _) => "EVT_QUEUE_SIZE",
            (OptionIndex::SegmentSize, _) => "SEGMENT_SIZE",
            (OptionIndex::AddSegmentSize, _) => "ADD_SEGMENT_SIZE",
            (OptionIndex::MaxFifoMemory, Profile::Head) => "MAX_FIFO_MEMORY",
            (OptionIndex::MaxFifoMemory, Profile::Seed) => "PRIVATE_SEGMENT_COUNT",
            (OptionIndex::RxFifoSize, _) => "RX_FIFO_SIZE",
            (OptionIndex::TxFifoSize, _) => "TX_FIFO_SIZE",
            (OptionIndex::PreallocFifoPairs, _) => "PREALLOC_FIFO_PAIRS",
            (OptionIndex::PreallocFifoHdrs, _) => "PREALLOC_FIFO_HDRS",
            (OptionIndex::Namespace, _) => "NAMESPACE",
            (OptionIndex::NamespaceSecret, _) => "NAMESPACE_SECRET",
            (OptionIndex::ProxyTransport, _) => "PROXY_TRANSPORT",
            (OptionIndex::Unused2, Profile::Head) => "UNUSED2",
            (OptionIndex::Unused2, Profile::Seed) => "ACCEPT_COOKIE",
            (OptionIndex::TlsEngine, _) => "TLS_ENGINE",
            (OptionIndex::MaxFifoSize, _) => "MAX_FIFO_SIZE",
            (OptionIndex::HighWatermark, _) => "HIGH_WATERMARK",
            (OptionIndex::LowWatermark, _) => "LOW_WATERMARK",
            (OptionIndex::PctFirstAlloc, _) => "PCT_FIRST_ALLOC",
        }
    }
}

/// The 18 raw option slots of an ATTACH, with typed accessors. `Default` is all zero
/// ("use VPP defaults" for every slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AttachOptions(pub [u64; OptionIndex::COUNT]);

macro_rules! option_getters {
    ($($(#[$doc:meta])* $fn:ident => $idx:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub const fn $fn(&self) -> u64 {
                self.0[OptionIndex::$idx as usize]
            }
        )*
    };
}

impl AttachOptions {
    /// The raw value of one slot.
    pub const fn get(&self, index: OptionIndex) -> u64 {
        self.0[index as usize]
    }

    /// Sets one slot.
    pub fn set(&mut self, index: OptionIndex, value: u64) {
        self.0[index as usize] = value;
    }

    /// Builder form of [`AttachOptions::set`].
    #[must_use]
    pub fn with(mut self, index: OptionIndex, value: u64) -> Self {
        self.set(index, value);
        self
    }

    /// Builder: replaces slot 0 with `flags`.
    #[must_use]
    pub fn with_flags(self, flags: AppOptionFlags) -> Self {
        self.with(OptionIndex::Flags, flags.bits())
    }

    /// Slot 0 as flags; unknown bits are kept.
    pub const fn flags(&self) -> AppOptionFlags {
        AppOptionFlags::from_bits_retain(self.0[OptionIndex::Flags as usize])
    }

    option_getters! {
        /// Slot 1, EVT_QUEUE_SIZE.
        evt_queue_size => EvtQueueSize,
        /// Slot 2, SEGMENT_SIZE.
        segment_size => SegmentSize,
        /// Slot 3, ADD_SEGMENT_SIZE.
        add_segment_size => AddSegmentSize,
        /// Slot 4, MAX_FIFO_MEMORY (Head) / PRIVATE_SEGMENT_COUNT (Seed).
        max_fifo_memory => MaxFifoMemory,
        /// Slot 5, RX_FIFO_SIZE.
        rx_fifo_size => RxFifoSize,
        /// Slot 6, TX_FIFO_SIZE.
        tx_fifo_size => TxFifoSize,
        /// Slot 7, PREALLOC_FIFO_PAIRS.
        prealloc_fifo_pairs => PreallocFifoPairs,
        /// Slot 8, PREALLOC_FIFO_HDRS.
        prealloc_fifo_hdrs => PreallocFifoHdrs,
        /// Slot 9, NAMESPACE (the server overwrites it).
        namespace => Namespace,
        /// Slot 10, NAMESPACE_SECRET (ignored over the socket API).
        namespace_secret => NamespaceSecret,
        /// Slot 11, PROXY_TRANSPORT bitmask.
        proxy_transport => ProxyTransport,
        /// Slot 12, UNUSED2 (Head) / ACCEPT_COOKIE (Seed).
        unused2 => Unused2,
        /// Slot 13, TLS_ENGINE.
        tls_engine => TlsEngine,
        /// Slot 14, MAX_FIFO_SIZE.
        max_fifo_size => MaxFifoSize,
        /// Slot 15, HIGH_WATERMARK.
        high_watermark => HighWatermark,
        /// Slot 16, LOW_WATERMARK.
        low_watermark => LowWatermark,
        /// Slot 17, PCT_FIRST_ALLOC.
        pct_first_alloc => PctFirstAlloc,
    }
}
