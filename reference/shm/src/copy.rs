//! The bulk byte copy between an application buffer and fifo (or mq) data in a segment.
//!
//! Owns: [`copy_nonoverlapping`], the routine every plain copy into or out of shared memory
//! ends in (through [`super::memory::copy_bytes`]).
//!
//! Why it exists: the copy instruction that moves a fifo's bytes fastest differs by CPU, by
//! several times, and the fifo is the data path. Two facts decide it:
//!
//! * **The 4K-aliasing cliff.** glibc's `memcpy` copies kilobytes with `rep movsb`, and on some
//!   Intel parts that microcode path was measured 12–22× slower when source and destination
//!   are 1–31 bytes apart modulo 4096 (each load looks as if it depended on a store just
//!   issued). An application cannot choose where the fifo's write position lies, so on such a
//!   CPU a fifo copying with `rep movsb` would run fast or slow by an accident of addresses.
//!   There the vector loop below (unaligned loads, destination-aligned stores, four loads ahead
//!   of four stores) has no cliff, and it was also the faster copy between cores: Xeon dev VM,
//!   64 KiB writes streamed between two threads, 10.7–10.9 GiB/s with `memcpy`, 14.6–15.7 with
//!   the AVX2 loop.
//! * **Fast string moves between cores.** On a CPU with fast short `rep movsb` (FSRM) and no
//!   cliff (AMD Zen 5 measured: 64 KiB 16 bytes apart at 0.76× aligned, not 1/20) the string
//!   instruction moves lines another core just wrote several times faster than vector stores:
//!   a 4 MiB ring between two pinned threads, 64 KiB blocks, moved 15.9–17.5 GiB/s with
//!   `rep movsb` and 3.7 with the AVX2 loop; and unlike glibc's `memcpy` it does not switch to
//!   non-temporal stores at 1 MiB (5.1 GiB/s there against 17.2).
//!
//! So the routine is chosen once per process, at the first bulk copy, by what the CPU does
//! ([`CopyRoutine::detect`]): with ERMS or FSRM, a short calibration times `rep movsb` on 64 KiB
//! at equal addresses modulo 4096 and 16 bytes apart; no cliff (the aliased copy under twice
//! the aligned one's time) → [`CopyRoutine::RepMovsb`]. Otherwise the AVX2 loop, or without
//! AVX2 the SSE2 loop inside the aliasing window and `memcpy` outside it. Never a user's
//! tunable: the choice is a fact about the CPU, and [`copy_with`] lets tests and benches force
//! each routine.
//!
//! Small copies (below [`BULK_MIN`]) stay with `ptr::copy_nonoverlapping`: the compiler turns
//! fixed-size ones (the mq's 4- and 8-byte header words) into plain moves, and glibc copies
//! short variable ones with overlapping vector moves, which have no cliff either.
//!
//! Must never: read or write outside `src..src+len` / `dst..dst+len` (the vector loops copy
//! their tail with one overlapping vector, which stays inside both), or be called on
//! overlapping ranges.

use std::sync::atomic::{AtomicU8, Ordering};

/// Copies at or above this many bytes take the routine chosen for the CPU.
pub const BULK_MIN: usize = 256;

/// [`CopyRoutine::RepMovsb`] copies shorter ranges with `memcpy`'s vector moves: the string
/// instruction's start-up cost made 1 KiB fifo writes spend half their time in it (`perf`),
/// and below this size glibc does not use it either.
pub const REP_MOVSB_MIN: usize = 4096;

/// Without AVX2: destination minus source, modulo 4096, non-zero and closer than this to 0
/// (either way) takes the SSE2 vector loop: twice the widest distance measured slow, so a CPU
/// that looks a cache line further is covered too.
pub const ALIAS_WINDOW: usize = 64;

/// How bulk copies are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CopyRoutine {
    /// The string instruction (x86_64 with ERMS or FSRM and no aliasing cliff), from
    /// [`REP_MOVSB_MIN`] bytes; `memcpy` below.
    RepMovsb = 1,
    /// The AVX2 loop: no aliasing cliff, destination-aligned 32-byte stores.
    Avx2Loop = 2,
    /// `memcpy`, but the SSE2 loop when the two ends alias within [`ALIAS_WINDOW`].
    Sse2InAliasWindow = 3,
    /// `memcpy` (not x86_64).
    Memcpy = 4,
}

/// The routine chosen for this process; 0 until the first bulk copy decides.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

impl CopyRoutine {
    /// Every routine this CPU can run, for tests and benches that force each.
    pub fn available() -> Vec<CopyRoutine> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            v.push(CopyRoutine::RepMovsb);
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(CopyRoutine::Avx2Loop);
            }
            v.push(CopyRoutine::Sse2InAliasWindow);
        }
        v.push(CopyRoutine::Memcpy);
        v
    }

    /// The routine this process uses (decided at the first call, then fixed).
    #[inline]
    pub fn chosen() -> CopyRoutine {
        match CHOSEN.load(Ordering::Relaxed) {
            1 => CopyRoutine::RepMovsb,
            2 => CopyRoutine::Avx2Loop,
            3 => CopyRoutine::Sse2InAliasWindow,
            4 => CopyRoutine::Memcpy,
            _ => CopyRoutine::choose(),
        }
    }

    #[cold]
    fn choose() -> CopyRoutine {
        // Two threads racing here both calibrate; the first answer stays.
        let r = CopyRoutine::detect();
        match CHOSEN.compare_exchange(0, r as u8, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => r,
            Err(_) => CopyRoutine::chosen(),
        }
    }

    /// Fixes the routine for this process before its first bulk copy; false if one was
    /// chosen already or this CPU cannot run it. For instruction-count harnesses only: under valgrind `rep movsb` counts
    /// one instruction per byte and the calibration times an emulation, so the choice there
    /// would be neither the machine's nor stable.
    pub fn pin_for_measurement(routine: CopyRoutine) -> bool {
        CopyRoutine::available().contains(&routine)
            && CHOSEN
                .compare_exchange(0, routine as u8, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Decides by what this CPU does (see the module doc).
    pub fn detect() -> CopyRoutine {
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_fast_strings() && !x86::rep_movsb_has_alias_cliff() {
                return CopyRoutine::RepMovsb;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return CopyRoutine::Avx2Loop;
            }
            CopyRoutine::Sse2InAliasWindow
        }
        #[cfg(not(target_arch = "x86_64"))]
        CopyRoutine::Memcpy
    }
}

/// Copies `len` bytes from `src` to `dst`, like `ptr::copy_nonoverlapping`, with the routine
/// chosen for this CPU: as fast as it copies between cores, and at the same speed whatever the
/// two addresses are modulo 4096.
///
/// # Safety
/// `src` must be valid for `len` reads, `dst` valid for `len` writes, and the two ranges must
/// not overlap.
#[inline]
pub unsafe fn copy_nonoverlapping(dst: *mut u8, src: *const u8, len: usize) {
    if len < BULK_MIN {
        // SAFETY: forwarded from the caller.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe { copy_bulk(dst, src, len) }
}

/// Kept out of line so that [`copy_nonoverlapping`] stays a compare and a call: inlined with a
/// constant length it must still become plain moves (the mq's header words; inlining the
/// dispatch here cost the mq's batch workload 11% more instructions).
///
/// # Safety
/// As [`copy_nonoverlapping`].
#[inline(never)]
unsafe fn copy_bulk(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the chosen routine is one the CPU runs; the rest is forwarded from the caller.
    unsafe { copy_by(CopyRoutine::chosen(), dst, src, len) }
}

/// [`copy_nonoverlapping`] with the routine forced, for any `len`. A routine the CPU cannot
/// run (not in [`CopyRoutine::available`]) falls back to `memcpy`.
///
/// # Safety
/// As [`copy_nonoverlapping`].
pub unsafe fn copy_with(routine: CopyRoutine, dst: *mut u8, src: *const u8, len: usize) {
    let routine = if CopyRoutine::available().contains(&routine) {
        routine
    } else {
        CopyRoutine::Memcpy
    };
    // SAFETY: the CPU runs `routine` (checked above); the rest is forwarded from the caller.
    unsafe { copy_by(routine, dst, src, len) }
}

/// # Safety
/// As [`copy_nonoverlapping`], and the CPU runs `routine` (it is in
/// [`CopyRoutine::available`]: [`CopyRoutine::chosen`] and [`copy_with`] see to it).
#[inline]
unsafe fn copy_by(routine: CopyRoutine, dst: *mut u8, src: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    match routine {
        // SAFETY: forwarded from the caller; `rep movsb` is part of every x86_64.
        CopyRoutine::RepMovsb if len >= REP_MOVSB_MIN => {
            return unsafe { x86::rep_movsb(dst, src, len) };
        }
        // SAFETY: the CPU has AVX2 (the caller's promise); `len >= 32`; the rest is the
        // caller's.
        CopyRoutine::Avx2Loop if len >= 32 => return unsafe { x86::copy_avx2(dst, src, len) },
        CopyRoutine::Sse2InAliasWindow if len >= 16 => {
            let distance = (dst as usize).wrapping_sub(src as usize) % 4096;
            // Equal addresses modulo 4096 alias nothing: `memcpy`'s best case.
            if distance != 0 && !(ALIAS_WINDOW..=4096 - ALIAS_WINDOW).contains(&distance) {
                // SAFETY: SSE2 is part of the x86_64 baseline; `len >= 16`; the rest is
                // forwarded from the caller.
                return unsafe { x86::copy_sse2(dst, src, len) };
            }
        }
        _ => {}
    }
    let _ = routine;
    // SAFETY: forwarded from the caller.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// One copy loop written once for a vector type: `$load` unaligned, `$store_a` aligned,
    /// `$store_u` unaligned, `$w` the vector width in bytes.
    ///
    /// Shape: the first vector is copied unaligned; then the destination is rounded up to a
    /// vector boundary and the body copies four vectors per step — all four loads before the
    /// four stores, so a load never waits behind a store that only looks (by its low 12
    /// address bits) as if it could alias; the last vector is copied unaligned and may
    /// overlap bytes already written, which is harmless because source and destination are
    /// distinct.
    macro_rules! copy_loop {
        ($dst:ident, $src:ident, $len:ident, $vec:ty, $w:expr, $load:ident, $store_a:ident, $store_u:ident) => {{
            const W: usize = $w;
            let end = $len - W;
            let head = $load($src as *const $vec);
            // Bytes until the destination is vector-aligned: 1..=W (a whole vector when it
            // already is, which the head store covered).
            let mut i = W - ($dst as usize & (W - 1));
            while i + 4 * W <= end {
                let a = $load($src.add(i) as *const $vec);
                let b = $load($src.add(i + W) as *const $vec);
                let c = $load($src.add(i + 2 * W) as *const $vec);
                let d = $load($src.add(i + 3 * W) as *const $vec);
                $store_a($dst.add(i) as *mut $vec, a);
                $store_a($dst.add(i + W) as *mut $vec, b);
                $store_a($dst.add(i + 2 * W) as *mut $vec, c);
                $store_a($dst.add(i + 3 * W) as *mut $vec, d);
                i += 4 * W;
            }
            while i < end {
                let a = $load($src.add(i) as *const $vec);
                $store_a($dst.add(i) as *mut $vec, a);
                i += W;
            }
            let tail = $load($src.add(end) as *const $vec);
            $store_u($dst as *mut $vec, head);
            $store_u($dst.add(end) as *mut $vec, tail);
        }};
    }

    /// # Safety
    /// The CPU supports AVX2; `len >= 32`; `src` valid for `len` reads, `dst` for `len`
    /// writes; no overlap.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn copy_avx2(dst: *mut u8, src: *const u8, len: usize) {
        debug_assert!(len >= 32);
        // SAFETY: every access is at `i .. i + 32` with `i + 32 <= len` (the body's indices
        // stay below `end = len - 32` plus one vector, the tail is at `end`), so it stays
        // inside both ranges; aligned stores are issued only at `dst + i` with `dst + i`
        // 32-byte aligned (i starts at the distance to the next boundary and grows by 32).
        unsafe {
            copy_loop!(
                dst,
                src,
                len,
                __m256i,
                32,
                _mm256_loadu_si256,
                _mm256_store_si256,
                _mm256_storeu_si256
            )
        }
    }

    /// # Safety
    /// `len >= 16`; `src` valid for `len` reads, `dst` for `len` writes; no overlap.
    pub(super) unsafe fn copy_sse2(dst: *mut u8, src: *const u8, len: usize) {
        debug_assert!(len >= 16);
        // SAFETY: as in `copy_avx2`, with 16-byte vectors; SSE2 is always present on x86_64.
        unsafe {
            copy_loop!(
                dst,
                src,
                len,
                __m128i,
                16,
                _mm_loadu_si128,
                _mm_store_si128,
                _mm_storeu_si128
            )
        }
    }

    /// # Safety
    /// `src` valid for `len` reads, `dst` for `len` writes; no overlap.
    #[inline]
    pub(super) unsafe fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: copies exactly `len` bytes forward from `src` to `dst` (the direction flag
        // is clear by the ABI), which the caller vouches for.
        unsafe {
            std::arch::asm!(
                "rep movsb",
                inout("rcx") len => _,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                options(nostack, preserves_flags)
            );
        }
    }

    /// Whether the CPU says its string moves are fast (ERMS: CPUID.7.0:EBX bit 9; FSRM:
    /// CPUID.7.0:EDX bit 4).
    pub(super) fn has_fast_strings() -> bool {
        // Leaf 7 is read only on CPUs that report it.
        if __cpuid(0).eax < 7 {
            return false;
        }
        let l7 = __cpuid_count(7, 0);
        l7.ebx & (1 << 9) != 0 || l7.edx & (1 << 4) != 0
    }

    /// Times `rep movsb` of 64 KiB (in cache) at equal addresses modulo 4096 and 16 bytes
    /// apart, the best of several tries each; a cliff is the aliased copy taking twice as long
    /// or more (the CPUs that have one were measured at 12–22×, those without at ≤ 1.3×).
    pub(super) fn rep_movsb_has_alias_cliff() -> bool {
        const LEN: usize = 64 << 10;
        const TRIES: usize = 12;
        let mut buf = vec![0x5au8; 2 * LEN + 3 * 4096];
        let base = buf.as_mut_ptr();
        let page0 = (base as usize).next_multiple_of(4096) - base as usize;
        let time = |dst_off: usize| {
            let mut best = std::time::Duration::MAX;
            for _ in 0..TRIES {
                // SAFETY: source [page0, page0 + LEN) and destination [page0 + LEN + 4096 +
                // dst_off, + LEN) lie inside `buf` (dst_off < 4096) and do not overlap.
                let t = std::time::Instant::now();
                unsafe {
                    let s = base.add(page0);
                    let d = base.add(page0 + LEN + 4096 + dst_off);
                    rep_movsb(std::hint::black_box(d), std::hint::black_box(s), LEN);
                }
                best = best.min(t.elapsed());
            }
            best
        };
        let aligned = time(0);
        let aliased = time(16);
        aliased >= aligned * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source and destination carved from one allocation so their distance modulo 4096 is
    /// chosen, with guard bytes around the destination range that must survive the copy.
    struct Rig {
        buf: Vec<u8>,
    }

    const GUARD: u8 = 0xa5;
    const PAGE: usize = 4096;

    impl Rig {
        fn new(len: usize) -> Self {
            Self {
                buf: vec![GUARD; 5 * PAGE + 2 * len],
            }
        }

        /// Runs `copy` from `src_off` to `dst_off` (both from a page boundary in `buf`) and
        /// checks the result against a byte-wise reference, guards included.
        fn check(
            &mut self,
            len: usize,
            src_off: usize,
            dst_off: usize,
            copy: unsafe fn(*mut u8, *const u8, usize),
        ) {
            let base = self.buf.as_ptr() as usize;
            let page0 = base.next_multiple_of(PAGE) - base;
            let s = page0 + src_off;
            // The destination lives a page-multiple after the whole source range.
            let d = page0 + (src_off + len).next_multiple_of(PAGE) + PAGE + dst_off;
            assert!(d + len + 64 <= self.buf.len());
            self.buf[d - 64..d + len + 64].fill(GUARD);
            for (k, b) in self.buf[s..s + len].iter_mut().enumerate() {
                *b = (k as u8).wrapping_mul(31).wrapping_add(7) ^ (k >> 8) as u8;
            }
            let want: Vec<u8> = self.buf[s..s + len].to_vec();
            let p = self.buf.as_mut_ptr();
            // SAFETY: both ranges lie inside `buf` and are disjoint (d >= s + len).
            unsafe { copy(p.add(d), p.add(s), len) };
            assert_eq!(
                &self.buf[d..d + len],
                &want[..],
                "len {len} src {src_off} dst {dst_off}"
            );
            let before = &self.buf[d.saturating_sub(64)..d];
            assert!(
                before.iter().all(|&b| b == GUARD),
                "wrote before dst: len {len} src {src_off} dst {dst_off}"
            );
            let after = &self.buf[d + len..d + len + 64];
            assert!(
                after.iter().all(|&b| b == GUARD),
                "wrote past dst: len {len} src {src_off} dst {dst_off}"
            );
        }
    }

    fn every_case(min_len: usize, copy: unsafe fn(*mut u8, *const u8, usize)) {
        let mut rig = Rig::new(300);
        for len in min_len..300 {
            for src_off in 0..64 {
                for dst_off in 0..64 {
                    rig.check(len, src_off, dst_off, copy);
                }
            }
        }
    }

    #[test]
    fn public_routine_matches_bytewise_copy_for_every_short_length_and_offset() {
        every_case(0, copy_nonoverlapping);
    }

    /// Every routine this CPU can run, forced, on every short length and offset pair: the
    /// routine chosen on another machine must have been tested here too.
    #[test]
    fn every_available_routine_matches_bytewise_copy_for_every_length_and_offset() {
        unsafe fn rep_movsb(d: *mut u8, s: *const u8, n: usize) {
            // SAFETY: forwarded.
            unsafe { copy_with(CopyRoutine::RepMovsb, d, s, n) }
        }
        unsafe fn avx2(d: *mut u8, s: *const u8, n: usize) {
            // SAFETY: forwarded.
            unsafe { copy_with(CopyRoutine::Avx2Loop, d, s, n) }
        }
        unsafe fn sse2(d: *mut u8, s: *const u8, n: usize) {
            // SAFETY: forwarded.
            unsafe { copy_with(CopyRoutine::Sse2InAliasWindow, d, s, n) }
        }
        unsafe fn memcpy(d: *mut u8, s: *const u8, n: usize) {
            // SAFETY: forwarded.
            unsafe { copy_with(CopyRoutine::Memcpy, d, s, n) }
        }
        for routine in CopyRoutine::available() {
            let f: unsafe fn(*mut u8, *const u8, usize) = match routine {
                CopyRoutine::RepMovsb => rep_movsb,
                CopyRoutine::Avx2Loop => avx2,
                CopyRoutine::Sse2InAliasWindow => sse2,
                CopyRoutine::Memcpy => memcpy,
            };
            every_case(0, f);
            let mut rig = Rig::new(1 << 20);
            for (len, src_off, dst_off) in [(4096, 0, 16), (65536 + 13, 3, 31), (1 << 20, 4095, 1)]
            {
                rig.check(len, src_off, dst_off, f);
            }
        }
    }

    #[test]
    fn the_chosen_routine_is_one_this_cpu_runs_and_stays_chosen() {
        let first = CopyRoutine::chosen();
        assert!(CopyRoutine::available().contains(&first), "{first:?}");
        assert_eq!(CopyRoutine::chosen(), first);
    }

    #[test]
    fn large_copies_at_misaligned_distances_are_exact() {
        for len in [4096, 65536 + 13, 1 << 20] {
            let mut rig = Rig::new(len);
            for (src_off, dst_off) in [
                (0, 0),
                (0, 16),
                (16, 0),
                (3, 31),
                (4095, 1),
                (0, 2048),
                (7, 64),
            ] {
                rig.check(len, src_off, dst_off, copy_nonoverlapping);
            }
        }
    }
}
