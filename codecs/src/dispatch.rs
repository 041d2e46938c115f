//! Runtime selection of the instruction set for the hot kernels (the decoder's, and the
//! encoder's estimators).
//!
//! Each kernel is written once as plain Rust (an `#[inline(always)]` body in its own module) and
//! instantiated here twice: for the baseline target, and inside a function compiled with AVX2,
//! BMI1/2 and LZCNT, where LLVM vectorises the eight-lane LPC kernel with 32-bit multiplies (SSE2
//! has none) and turns the unary scan into `tzcnt`/`blsr`. Kernels are separate, non-inlined
//! functions so each hot loop keeps its state in registers. The decoder steps that LLVM does
//! not vectorise well are written with intrinsics instead: the segmented-LPC transposes and
//! recurrence (`avx2_lanes`; orders 13–16 compiled with AVX-512VL for its 32 registers), the
//! Rice low-bit merge (`avx2_low`, a byte shuffle per eight values), the fixed-order restore as
//! prefix sums (`avx2_prefix`) and, on CPUs with AVX-512 VBMI/VBMI2, the unary scan
//! (`avx512_unary`, a byte compress per 64-bit word), the low-bit merge sixteen values at a
//! time (`avx512_low`, a byte permute) and lookups in tables held in registers
//! (`avx512_table`: up to 512 values as words, or 128 wider ones).
//!
//! This module holds the crate's only `unsafe`: calling a `#[target_feature]` function requires
//! the caller to guarantee the CPU has those features. The guarantee is the [`Isa`] token, whose
//! flags can only be set by [`Isa::detect`] after checking each feature (and [`Avx2Low`] and
//! [`Avx512Low`], which only this module can make, after checking the token). The intrinsic
//! kernels touch memory only through `mem`'s unaligned loads and stores, which take the first
//! 16, 32 or 64 bytes of a checked slice.
#![allow(unsafe_code)]

use crate::error::{CodecError, Result};
use crate::predict::LANES;

/// Which instruction set the decode kernels may use. Copy it freely; only [`Isa::detect`] can
/// enable AVX2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Isa {
    avx2: bool,
    /// AVX-512 with VBMI (byte permute) and VBMI2 (byte compress), used by the unary scan, the
    /// low-bit merge and small tables; implies `avx2`.
    avx512: bool,
}

impl Isa {
    /// The best instruction set this CPU supports (the check is cached by the standard library).
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("bmi1")
                && std::is_x86_feature_detected!("bmi2")
                && std::is_x86_feature_detected!("lzcnt")
                && std::is_x86_feature_detected!("popcnt");
            let avx512 = avx2
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512vbmi")
                && std::is_x86_feature_detected!("avx512vbmi2");
            Self { avx2, avx512 }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self {
            avx2: false,
            avx512: false,
        }
    }

    /// Baseline code only (used by tests to cover both paths).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn baseline() -> Self {
        Self {
            avx2: false,
            avx512: false,
        }
    }

    /// The detected instruction set without AVX-512 (used by tests to cover the AVX2 path).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn without_avx512(self) -> Self {
        Self {
            avx512: false,
            ..self
        }
    }
}

/// Defines `pub(crate) fn $name(isa, args…)` running `$body(args…)` with AVX2 when allowed.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:path;) => {
        $(#[$doc])*
        #[inline]
        #[allow(clippy::too_many_arguments)] // the kernel's own arguments plus `isa`
        pub(crate) fn $name(isa: Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
                #[inline(never)]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if isa.avx2 {
                    // SAFETY: `isa.avx2` is true only when `Isa::detect` found every feature
                    // enabled on `avx2` on this CPU.
                    return unsafe { avx2($($arg),*) };
                }
            }
            #[inline(never)]
            #[allow(clippy::too_many_arguments)]
            fn baseline($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            let _ = isa;
            baseline($($arg),*)
        }
    };
}

multiversion! {
    /// Positions of the one bits of a Rice quotient stream (see `rice::positions_body`).
    fn unary_positions(bytes: &[u8], ones: usize, pos: &mut [u32]) -> usize = crate::rice::positions_body;
}

multiversion! {
    /// Positions turned into quotients (see `rice::quotients_from_positions`).
    fn quotients_from_positions(pos: &mut [u32]) = crate::rice::quotients_from_positions;
}

/// The quotients of the first `ones` unary codes of a Rice quotient stream, into `qs[..ones]`
/// (`qs` grows to hold them plus slack), checking that the stream ends, zero-padded, right after
/// the last of them. The scans only scan; the stream is checked here, once for both.
pub(crate) fn unary_quotients(
    isa: Isa,
    bytes: &[u8],
    base: usize,
    ones: usize,
    qs: &mut Vec<u32>,
) -> Result<()> {
    use crate::rice::MAX_UNARY_BYTES;
    if bytes.len() > MAX_UNARY_BYTES {
        return Err(CodecError::corrupt("Rice quotient stream length", base));
    }
    let Some(end) = unary_codes(isa, bytes, ones, qs) else {
        return Err(CodecError::truncated("Rice quotients", base + bytes.len()));
    };
    crate::bits::check_padding(bytes, end, base, "Rice quotient padding")
}

/// The quotients (zeros before each one) of the first `ones` unary codes of `bytes` (at most
/// `rice::MAX_UNARY_BYTES` long) into `qs[..ones]`, which grows to hold them plus slack;
/// returns the bit after the last of them, or `None` if `bytes` holds fewer. Nothing about
/// the rest of `bytes` is checked.
pub(crate) fn unary_codes(isa: Isa, bytes: &[u8], ones: usize, qs: &mut Vec<u32>) -> Option<u64> {
    use crate::rice::{MAX_UNARY_BYTES, POSITION_SLACK};
    debug_assert!(bytes.len() <= MAX_UNARY_BYTES);
    // Grown, never cleared: every entry below the count found is written before it is read, so
    // zero-filling 32 KiB per block would be wasted.
    if qs.len() < ones + POSITION_SLACK {
        qs.resize(ones + POSITION_SLACK, 0);
    }
    #[cfg(target_arch = "x86_64")]
    if isa.avx512 {
        // SAFETY: `isa.avx512` is true only when `Isa::detect` found every feature enabled on
        // `avx512_unary::quotients` on this CPU.
        match unsafe { avx512_unary::quotients(bytes, ones, qs) } {
            avx512_unary::Scan::Found(end) => return Some(end),
            avx512_unary::Scan::TooFew => return None,
            // Rare (never in a valid block whose escape threshold is below 192): the exact
            // position scan below.
            avx512_unary::Scan::LongGap => {}
        }
    }
    if unary_positions(isa, bytes, ones, qs) < ones {
        return None;
    }
    let end = if ones == 0 {
        0
    } else {
        u64::from(qs[ones - 1]) + 1
    };
    quotients_from_positions(isa, &mut qs[..ones]);
    Some(end)
}

/// The AVX-512 unary scan: each 64-bit word's one-bit indices come from one byte compress of
/// 0..64 under the word as mask. They are kept as bytes, modulo 256, stored unconditionally a
/// batch of words at a time, then differenced and widened sixteen at a time into quotients: no
/// branch per quotient or per word, and only one per batch.
#[cfg(target_arch = "x86_64")]
mod avx512_unary {
    use super::mem::{load128, load512, store512};
    use crate::bits::load_u64_padded;
    use std::arch::x86_64::{
        _mm_add_epi8, _mm_set1_epi8, _mm_sub_epi8, _mm512_add_epi8, _mm512_cvtepu8_epi32,
        _mm512_maskz_compress_epi8, _mm512_set1_epi8,
    };

    static IOTA: [u8; 64] = {
        let mut t = [0u8; 64];
        let mut i = 0;
        while i < 64 {
            t[i] = i as u8;
            i += 1;
        }
        t
    };

    /// Words compressed per batch before their positions become quotients.
    const BATCH: usize = 8;

    /// How a scan ended.
    pub(super) enum Scan {
        /// The quotients are written; the bit after the last needed one bit.
        Found(u64),
        /// The stream holds fewer one bits than asked for.
        TooFew,
        /// Three zero words in a row: a gap may reach 256 zeros, which bytes cannot count.
        LongGap,
    }

    /// The quotients of the first `ones` codes into `qs` (at least `ones + POSITION_SLACK`
    /// long).
    ///
    /// Positions are kept modulo 256, as bytes: a batch of words is compressed into a byte
    /// buffer with one unconditional 64-byte store per word, then the buffer is differenced and
    /// widened sixteen at a time. The byte differences are the quotients exactly while no gap
    /// between one bits reaches 256 zeros; such a gap spans at least three all-zero words, and
    /// a stream holding three in a row (a gap of 192 zeros or more, so never in a valid block
    /// whose escape threshold is below 192) is left to the exact position scan
    /// ([`Scan::LongGap`]).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi2,avx2,bmi1,bmi2,lzcnt,popcnt")]
    #[inline(never)]
    pub(super) fn quotients(bytes: &[u8], ones: usize, qs: &mut [u32]) -> Scan {
        let iota = load512(&IOTA);
        // `buf[0]` is the previous batch's last position (−1 before the first); the batch's
        // positions follow.
        let mut buf = [0u8; 1 + 64 * BATCH + 64];
        buf[0] = u8::MAX;
        let mut cnt = 0usize;
        let mut zero_run = 0u32;
        let words = bytes.len().div_ceil(8);
        let mut wi = 0;
        while wi < words && cnt < ones {
            let batch_end = (wi + BATCH).min(words);
            let first = wi;
            let mut n = 0usize;
            while wi < batch_end {
                let w = load_u64_padded(bytes, wi * 8);
                let bias = _mm512_set1_epi8(((wi * 64) & 0xff) as u8 as i8);
                let idx = _mm512_add_epi8(_mm512_maskz_compress_epi8(w, iota), bias);
                store512(&mut buf[1 + n..], idx);
                n += w.count_ones() as usize;
                zero_run = if w == 0 { zero_run + 1 } else { 0 };
                if zero_run >= 3 {
                    return Scan::LongGap;
                }
                wi += 1;
            }
            // Only what is needed is widened, so stores stay within `ones` + 15.
            let take = n.min(ones - cnt);
            widen_differences(&buf, take, &mut qs[cnt..]);
            if cnt + n >= ones {
                return Scan::Found(end_bit(bytes, first, ones - cnt));
            }
            buf[0] = buf[n];
            cnt += n;
        }
        if ones == 0 {
            Scan::Found(0)
        } else {
            Scan::TooFew
        }
    }

    /// `qs[j] = buf[j + 1] − buf[j] − 1` (modulo 256, widened) for `j < len`, sixteen at a
    /// time (up to fifteen more are written).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn widen_differences(buf: &[u8], len: usize, qs: &mut [u32]) {
        let minus_one = _mm_set1_epi8(-1);
        let mut j = 0;
        while j < len {
            let before = load128(&buf[j..]);
            let cur = load128(&buf[j + 1..]);
            let q = _mm_add_epi8(_mm_sub_epi8(cur, before), minus_one);
            store512(&mut qs[j..], _mm512_cvtepu8_epi32(q));
            j += 16;
        }
    }

    /// The bit after the `r`-th (≥ 1) one bit counted from word `wi`.
    fn end_bit(bytes: &[u8], mut wi: usize, mut r: usize) -> u64 {
        loop {
            let mut w = load_u64_padded(bytes, wi * 8);
            let c = w.count_ones() as usize;
            if r <= c {
                for _ in 1..r {
                    w &= w - 1;
                }
                return wi as u64 * 64 + u64::from(w.trailing_zeros()) + 1;
            }
            r -= c;
            wi += 1;
        }
    }
}

/// How `rice::merge_body` merges a partition's low bits into its quotients: portable code, or
/// AVX2 shuffles when the CPU has them.
pub(crate) trait LowMerge: Copy {
    /// `dst[i] = unzigzag((q[i] << k) | low_i)` for the `k`-bit values from bit `lbit`, for a
    /// prefix of `q` whose values are all below `lim` (≥ 1); returns the prefix length. Stops at
    /// the first value of `lim` or more, or (vector mergers) before the group holding it.
    fn merge(self, q: &[u32], low: &[u8], lbit: u64, k: u32, lim: u32, dst: &mut [i32]) -> usize;
}

/// The portable merge (`rice::merge_low`).
#[derive(Clone, Copy)]
pub(crate) struct PortableLow;

impl LowMerge for PortableLow {
    #[inline(always)]
    fn merge(self, q: &[u32], low: &[u8], lbit: u64, k: u32, lim: u32, dst: &mut [i32]) -> usize {
        crate::rice::merge_portable(q, low, lbit, k, lim, dst)
    }
}

/// The AVX2 merge. Only this module can make one (its field is private), and only after
/// [`Isa::detect`] found AVX2, which is what makes calling `avx2_low::merge` sound.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx2Low(());

#[cfg(target_arch = "x86_64")]
impl LowMerge for Avx2Low {
    #[inline(always)]
    fn merge(self, q: &[u32], low: &[u8], lbit: u64, k: u32, lim: u32, dst: &mut [i32]) -> usize {
        let (done, stopped) = if lbit.is_multiple_of(8) && (1..=LOW_MAX_K).contains(&k) {
            // SAFETY: an `Avx2Low` exists only on a CPU where `Isa::detect` found AVX2.
            unsafe { avx2_low::merge(q, (lbit / 8) as usize, low, k, lim, dst) }
        } else {
            (0, false)
        };
        if stopped || done == q.len() {
            return done;
        }
        done + crate::rice::merge_portable(
            &q[done..],
            low,
            lbit + done as u64 * u64::from(k),
            k,
            lim,
            &mut dst[done..],
        )
    }
}

/// The AVX-512 merge: sixteen values per step where it can, then [`Avx2Low`] for the rest.
/// Only this module can make one, and only after [`Isa::detect`] found AVX-512 (VBMI for the
/// byte permute), which is what makes calling `avx512_low::merge` sound.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx512Low(());

#[cfg(target_arch = "x86_64")]
impl LowMerge for Avx512Low {
    #[inline(always)]
    fn merge(self, q: &[u32], low: &[u8], lbit: u64, k: u32, lim: u32, dst: &mut [i32]) -> usize {
        let (done, stopped) = if lbit.is_multiple_of(8) && (1..=LOW_MAX_K).contains(&k) {
            // SAFETY: an `Avx512Low` exists only on a CPU where `Isa::detect` found AVX-512
            // with VBMI.
            unsafe { avx512_low::merge(q, (lbit / 8) as usize, low, k, lim, dst) }
        } else {
            (0, false)
        };
        if stopped || done == q.len() {
            return done;
        }
        done + Avx2Low(()).merge(
            &q[done..],
            low,
            lbit + done as u64 * u64::from(k),
            k,
            lim,
            &mut dst[done..],
        )
    }
}

/// Quotients, escapes and low bits merged into residuals (see `rice::merge_body`).
#[inline]
pub(crate) fn rice_merge(
    isa: Isa,
    qs: &[u32],
    sec: &crate::rice::Section<'_>,
    out: &mut [i32],
) -> Result<u64> {
    use crate::rice::{Section, merge_body};
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
        #[inline(never)]
        fn avx2(qs: &[u32], sec: &Section<'_>, out: &mut [i32]) -> Result<u64> {
            merge_body(Avx2Low(()), qs, sec, out)
        }
        #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt,avx512f,avx512bw,avx512vbmi")]
        #[inline(never)]
        fn avx512(qs: &[u32], sec: &Section<'_>, out: &mut [i32]) -> Result<u64> {
            merge_body(Avx512Low(()), qs, sec, out)
        }
        if isa.avx512 {
            // SAFETY: `isa.avx512` is true only when `Isa::detect` found every feature enabled
            // on `avx512` on this CPU.
            return unsafe { avx512(qs, sec, out) };
        }
        if isa.avx2 {
            // SAFETY: `isa.avx2` is true only when `Isa::detect` found every feature enabled on
            // `avx2` on this CPU.
            return unsafe { avx2(qs, sec, out) };
        }
    }
    #[inline(never)]
    fn baseline(qs: &[u32], sec: &Section<'_>, out: &mut [i32]) -> Result<u64> {
        merge_body(PortableLow, qs, sec, out)
    }
    let _ = isa;
    baseline(qs, sec, out)
}

/// Widest Rice parameter the vector low-bit mergers take: a value starts at most 7 bits into
/// its first byte and must end within that byte's 32-bit window.
#[cfg(target_arch = "x86_64")]
const LOW_MAX_K: u32 = 25;

/// For a vector merger that loads `per_load` values of `k` bits at a time (each load starting
/// at the byte that holds its first value), the bit of its load at which value `j` starts.
#[cfg(target_arch = "x86_64")]
const fn lane_bit(k: usize, j: usize, per_load: usize) -> usize {
    j * k - (j / per_load * per_load * k / 8) * 8
}

/// Per `k`, the byte shuffle (or permute) indices that bring the four bytes holding each of
/// `B / 4` values into its 32-bit lane, for loads of `per_load` values.
#[cfg(target_arch = "x86_64")]
const fn lane_bytes<const B: usize>(per_load: usize) -> [[u8; B]; LOW_MAX_K as usize + 1] {
    let mut t = [[0u8; B]; LOW_MAX_K as usize + 1];
    let mut k = 1;
    while k <= LOW_MAX_K as usize {
        let mut j = 0;
        while j < B / 4 {
            let mut b = 0;
            while b < 4 {
                t[k][4 * j + b] = (lane_bit(k, j, per_load) / 8 + b) as u8;
                b += 1;
            }
            j += 1;
        }
        k += 1;
    }
    t
}

/// Per `k`, the right shift that aligns each of `L` values in its lane after [`lane_bytes`].
#[cfg(target_arch = "x86_64")]
const fn lane_shifts<const L: usize>(per_load: usize) -> [[u32; L]; LOW_MAX_K as usize + 1] {
    let mut t = [[0u32; L]; LOW_MAX_K as usize + 1];
    let mut k = 1;
    while k <= LOW_MAX_K as usize {
        let mut j = 0;
        while j < L {
            t[k][j] = (lane_bit(k, j, per_load) % 8) as u32;
            j += 1;
        }
        k += 1;
    }
    t
}

/// Unaligned vector loads and stores through checked slices: the intrinsic kernels' only
/// memory accesses, so each is argued once, here. Each takes the first 16, 32 or 64 bytes of
/// its slice and panics if the slice is shorter.
#[cfg(target_arch = "x86_64")]
mod mem {
    use std::arch::x86_64::{
        __m128i, __m256i, __m512i, _mm_loadu_si128, _mm256_loadu_si256, _mm256_storeu_si256,
        _mm512_loadu_si512, _mm512_storeu_si512,
    };

    /// Plain integers: every bit pattern is a valid value, so a vector may be stored over them.
    pub(super) trait Plain: Copy {}
    impl Plain for u8 {}
    impl Plain for i16 {}
    impl Plain for u32 {}
    impl Plain for i32 {}

    #[inline]
    pub(super) fn load128<T: Plain>(s: &[T]) -> __m128i {
        let s = &s[..16 / size_of::<T>()];
        // SAFETY: `s` is 16 initialised bytes; `loadu` has no alignment requirement.
        unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) fn load256<T: Plain>(s: &[T]) -> __m256i {
        let s = &s[..32 / size_of::<T>()];
        // SAFETY: `s` is 32 initialised bytes; `loadu` has no alignment requirement.
        unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) fn store256<T: Plain>(d: &mut [T], v: __m256i) {
        let d = &mut d[..32 / size_of::<T>()];
        // SAFETY: `d` is 32 bytes borrowed mutably, of a type any bits are valid for; `storeu`
        // has no alignment requirement.
        unsafe { _mm256_storeu_si256(d.as_mut_ptr().cast(), v) }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn load512<T: Plain>(s: &[T]) -> __m512i {
        let s = &s[..64 / size_of::<T>()];
        // SAFETY: `s` is 64 initialised bytes; `loadu` has no alignment requirement.
        unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn store512<T: Plain>(d: &mut [T], v: __m512i) {
        let d = &mut d[..64 / size_of::<T>()];
        // SAFETY: `d` is 64 bytes borrowed mutably, of a type any bits are valid for; `storeu`
        // has no alignment requirement.
        unsafe { _mm512_storeu_si512(d.as_mut_ptr().cast(), v) }
    }
}

/// The AVX-512 low-bit merge: sixteen `k`-bit values at a time from one 64-byte load, pulled
/// into 32-bit lanes by one byte permute (VBMI) and aligned by a per-lane shift; quotients are
/// checked against the limit by one compare into a mask.
#[cfg(target_arch = "x86_64")]
mod avx512_low {
    use super::LOW_MAX_K as MAX_K;
    use super::mem::{load512, store512};
    use std::arch::x86_64::{
        _mm_cvtsi32_si128, _mm512_and_si512, _mm512_cmpge_epu32_mask, _mm512_or_si512,
        _mm512_permutexvar_epi8, _mm512_set1_epi32, _mm512_setzero_si512, _mm512_sll_epi32,
        _mm512_srli_epi32, _mm512_srlv_epi32, _mm512_sub_epi32, _mm512_xor_si512,
    };

    /// Per `k` and lane (value `j` of sixteen): the four bytes holding the value, and the bit
    /// shift that aligns it.
    static PERMUTES: [[u8; 64]; MAX_K as usize + 1] = super::lane_bytes::<64>(16);
    static SHIFTS: [[u32; 16]; MAX_K as usize + 1] = super::lane_shifts::<16>(16);

    /// Merges groups of sixteen from byte `start` of `low` while a group's 64-byte load stays
    /// inside `low`; returns how many values it merged and whether it stopped before a group
    /// holding a quotient of `lim` (≥ 1) or more.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) fn merge(
        q: &[u32],
        start: usize,
        low: &[u8],
        k: u32,
        lim: u32,
        dst: &mut [i32],
    ) -> (usize, bool) {
        debug_assert!((1..=MAX_K).contains(&k) && lim >= 1);
        let ku = k as usize;
        let perm = load512(&PERMUTES[ku]);
        let shifts = load512(&SHIFTS[ku]);
        let mask = _mm512_set1_epi32(((1u64 << k) - 1) as i32);
        let one = _mm512_set1_epi32(1);
        let zero = _mm512_setzero_si512();
        let limv = _mm512_set1_epi32(lim as i32);
        let kcount = _mm_cvtsi32_si128(k as i32);
        let mut at = start;
        let mut done = 0;
        for (g, qg) in dst.chunks_exact_mut(16).zip(q.chunks_exact(16)) {
            let Some(win) = low.get(at..at + 64) else {
                break;
            };
            let qv = load512(qg);
            if _mm512_cmpge_epu32_mask(qv, limv) != 0 {
                return (done, true);
            }
            let v = _mm512_permutexvar_epi8(perm, load512(win));
            let l = _mm512_and_si512(_mm512_srlv_epi32(v, shifts), mask);
            let u = _mm512_or_si512(_mm512_sll_epi32(qv, kcount), l);
            let r = _mm512_xor_si512(
                _mm512_srli_epi32::<1>(u),
                _mm512_sub_epi32(zero, _mm512_and_si512(u, one)),
            );
            store512(g, r);
            at += 2 * ku;
            done += 16;
        }
        (done, false)
    }
}

/// The AVX2 low-bit merge: eight `k`-bit values at a time, pulled into 32-bit lanes by one byte
/// shuffle from two 16-byte loads (values 0–3 from the group's first byte, 4–7 from byte
/// `⌊4k/8⌋`), aligned by a per-lane shift and masked; then shifted quotients are or-ed in and the
/// result un-zig-zagged, all in registers.
#[cfg(target_arch = "x86_64")]
mod avx2_low {
    use super::LOW_MAX_K as MAX_K;
    use super::mem::{load128, load256, store256};
    use std::arch::x86_64::{
        _mm_cvtsi32_si128, _mm256_and_si256, _mm256_cmpeq_epi32, _mm256_max_epu32,
        _mm256_movemask_epi8, _mm256_or_si256, _mm256_set_m128i, _mm256_set1_epi32,
        _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_sll_epi32, _mm256_srli_epi32,
        _mm256_srlv_epi32, _mm256_sub_epi32, _mm256_xor_si256,
    };

    /// Per `k` and lane (value `j` of a group of eight): the byte shuffle that brings the four
    /// bytes holding the value into the lane (values 0–3 from the group's first byte, 4–7 from
    /// byte `⌊4k/8⌋`), and the bit shift that then aligns it.
    static SHUFFLES: [[u8; 32]; MAX_K as usize + 1] = super::lane_bytes::<32>(4);
    static SHIFTS: [[u32; 8]; MAX_K as usize + 1] = super::lane_shifts::<8>(4);

    /// Merges whole groups of eight from byte `start` of `low` while both 16-byte loads of a
    /// group stay inside `low`; returns how many values of `dst` it merged (a multiple of 8).
    #[target_feature(enable = "avx2")]
    pub(super) fn merge(
        q: &[u32],
        start: usize,
        low: &[u8],
        k: u32,
        lim: u32,
        dst: &mut [i32],
    ) -> (usize, bool) {
        debug_assert!((1..=MAX_K).contains(&k) && lim >= 1);
        let ku = k as usize;
        let hi_byte = 4 * ku / 8;
        let shuf = load256(&SHUFFLES[ku]);
        let shifts = load256(&SHIFTS[ku]);
        let mask = _mm256_set1_epi32(((1u64 << k) - 1) as i32);
        let one = _mm256_set1_epi32(1);
        let zero = _mm256_setzero_si256();
        let kcount = _mm_cvtsi32_si128(k as i32);
        let mut at = start;
        let mut done = 0;
        // `lim ≥ 1` (`LowMerge::merge`), so `lim − 1` is the largest quotient merged here.
        let top = _mm256_set1_epi32(lim.wrapping_sub(1) as i32);
        for (g, qg) in dst.chunks_exact_mut(8).zip(q.chunks_exact(8)) {
            let (Some(lo), Some(hi)) = (
                low.get(at..at + 16),
                low.get(at + hi_byte..at + hi_byte + 16),
            ) else {
                break;
            };
            let v = _mm256_set_m128i(load128(hi), load128(lo));
            let l = _mm256_and_si256(
                _mm256_srlv_epi32(_mm256_shuffle_epi8(v, shuf), shifts),
                mask,
            );
            let qv = load256(qg);
            let below = _mm256_cmpeq_epi32(_mm256_max_epu32(qv, top), top);
            if _mm256_movemask_epi8(below) != -1 {
                return (done, true);
            }
            let u = _mm256_or_si256(_mm256_sll_epi32(qv, kcount), l);
            let r = _mm256_xor_si256(
                _mm256_srli_epi32::<1>(u),
                _mm256_sub_epi32(zero, _mm256_and_si256(u, one)),
            );
            store256(g, r);
            at += ku;
            done += 8;
        }
        (done, false)
    }
}

multiversion! {
    /// Fixed-order restoration, one sample at a time (see `predict::restore_fixed_body`).
    fn restore_fixed_serial(order: usize, out: &mut [i32]) = crate::predict::restore_fixed_body;
}

/// Fixed-order restoration (see `predict::restore_fixed_body`). With AVX2, order `k` runs as
/// `k` prefix sums, over `out[k−1..]`, then `out[k−2..]`, … `out[0..]`: the order-`k`
/// residual is the `k`-th difference (of lower order for the first samples, which is what
/// starting each sum one sample later gives), and a vector prefix sum carries only one add per
/// eight samples from one group to the next, where the serial recurrence waits on each sample.
pub(crate) fn restore_fixed(isa: Isa, order: usize, out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if isa.avx2 && (1..=4).contains(&order) {
        for from in (0..order).rev() {
            if let Some(part) = out.get_mut(from..) {
                // SAFETY: `isa.avx2` is true only when `Isa::detect` found AVX2 on this CPU.
                unsafe { avx2_prefix::prefix_sum(part) };
            }
        }
        return;
    }
    restore_fixed_serial(isa, order, out);
}

/// The AVX2 prefix sum: each group of eight summed in registers (two in-half shifts and a
/// cross-half add), then offset by the running total, which is the only dependency between
/// groups.
#[cfg(target_arch = "x86_64")]
mod avx2_prefix {
    use super::mem::{load256, store256};
    use std::arch::x86_64::{
        _mm256_add_epi32, _mm256_permute2x128_si256, _mm256_permutevar8x32_epi32,
        _mm256_set1_epi32, _mm256_setzero_si256, _mm256_shuffle_epi32, _mm256_slli_si256,
    };

    /// `out[i] = out[0] + … + out[i]` (wrapping).
    #[target_feature(enable = "avx2")]
    #[inline(never)]
    pub(super) fn prefix_sum(out: &mut [i32]) {
        let last = _mm256_set1_epi32(7);
        let mut carry = _mm256_setzero_si256();
        let mut groups = out.chunks_exact_mut(8);
        for g in &mut groups {
            let mut v = load256(g);
            v = _mm256_add_epi32(v, _mm256_slli_si256::<4>(v));
            v = _mm256_add_epi32(v, _mm256_slli_si256::<8>(v));
            // Lane 3 (the low half's total) into every lane of the high half.
            let low_total = _mm256_shuffle_epi32::<0xFF>(v);
            v = _mm256_add_epi32(v, _mm256_permute2x128_si256::<0x08>(low_total, low_total));
            store256(g, _mm256_add_epi32(v, carry));
            carry = _mm256_add_epi32(carry, _mm256_permutevar8x32_epi32(v, last));
        }
        let mut acc = {
            let mut c = [0i32; 8];
            store256(&mut c, carry);
            c[0]
        };
        for v in groups.into_remainder() {
            acc = acc.wrapping_add(*v);
            *v = acc;
        }
    }
}

/// The eight-lane LPC restoration of the first `l` samples of all eight segments of `out`
/// (local indices `p..l`): transpose to rows, run the kernel (`predict::lanes_body`), transpose
/// back; with AVX2, orders up to 12 run the three fused, one 8×8 tile at a time, and with
/// AVX-512VL orders up to 16.
pub(crate) fn restore_lanes(
    isa: Isa,
    coefs: &[i32],
    shift: u32,
    l: usize,
    out: &mut [i32],
    scratch: &mut Vec<[i32; LANES]>,
) {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512 && (13..=16).contains(&coefs.len()) {
        // SAFETY: `isa.avx512` is true only when `Isa::detect` found every feature enabled on
        // `lanes_avx512vl` (AVX2 and AVX-512F/VL among them) on this CPU.
        unsafe { avx2_lanes::lanes_avx512vl(coefs, shift, l, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa.avx2 {
        // SAFETY: `isa.avx2` is true only when `Isa::detect` found every feature enabled on
        // `lanes_avx2` on this CPU.
        unsafe { avx2_lanes::lanes_avx2(coefs, shift, l, out, scratch) };
        return;
    }
    let _ = isa;
    // Every row below `l` is overwritten by the transpose, so stale contents are harmless.
    if scratch.len() < l {
        scratch.resize(l, [0; LANES]);
    }
    lanes_baseline(coefs, shift, l, out, &mut scratch[..l]);
}

#[inline(never)]
fn lanes_baseline(coefs: &[i32], shift: u32, l: usize, out: &mut [i32], rows: &mut [[i32; LANES]]) {
    crate::predict::rows_from_segments(out, l, rows);
    crate::predict::lanes_body(coefs, shift, rows);
    crate::predict::segments_from_rows(rows, coefs.len(), l, out);
}

/// The AVX2 LPC path: the transposes as 8×8 register tiles (unpack and 128-bit permute), which
/// LLVM does not find on its own and which otherwise cost more than the recurrence itself
/// (one strided scalar load and store per sample each way), fused with the recurrence for
/// orders up to 12. Per-sample cost measured on 8192-sample blocks (ns, separate passes →
/// fused): order 1 0.47 → 0.24, 4 0.66 → 0.30, 8 0.59 → 0.39, 12 0.66 → 0.61; order 16 stays
/// on the separate passes (0.72, fused 0.85–0.88).
#[cfg(target_arch = "x86_64")]
mod avx2_lanes {
    use super::LANES;
    use super::mem::{load256, store256};
    use std::arch::x86_64::{
        __m128i, __m256i, _mm_cvtsi32_si128, _mm256_add_epi32, _mm256_mullo_epi32,
        _mm256_permute2x128_si256, _mm256_set1_epi32, _mm256_setzero_si256, _mm256_sra_epi32,
        _mm256_unpackhi_epi32, _mm256_unpackhi_epi64, _mm256_unpacklo_epi32, _mm256_unpacklo_epi64,
    };

    /// Highest order run by the fused kernel. Above it, its history, coefficients and tile no
    /// longer fit in 16 registers and the spills cost more than separate transposes: the
    /// rows path (transpose in, `predict::lanes_body`, transpose out) is faster (measured per
    /// order on 8192- and 2560-sample blocks). With AVX-512VL's 32 registers the fused kernel
    /// runs up to order 16 (`lanes_avx512vl`).
    const FUSED_MAX_ORDER: usize = 12;

    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
    #[inline(never)]
    pub(super) fn lanes_avx2(
        coefs: &[i32],
        shift: u32,
        l: usize,
        out: &mut [i32],
        rows: &mut Vec<[i32; LANES]>,
    ) {
        if coefs.len() > FUSED_MAX_ORDER {
            // Every row below `l` is overwritten by the transpose, so stale contents are
            // harmless.
            if rows.len() < l {
                rows.resize(l, [0; LANES]);
            }
            let rows = &mut rows[..l];
            rows_from_segments(out, l, rows);
            crate::predict::lanes_body(coefs, shift, rows);
            segments_from_rows(rows, coefs.len(), l, out);
            return;
        }
        macro_rules! dispatch {
            ($($p:literal)*) => {
                match coefs.len() {
                    $($p => fused::<$p>(coefs.try_into().expect("order checked"), shift, l, out),)*
                    _ => unreachable!("orders above FUSED_MAX_ORDER take the rows path"),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12);
    }

    /// Orders 13–16 through the fused kernel compiled with AVX-512VL: its 32 vector registers
    /// hold the history and coefficients that spill from AVX2's 16 (decode of the real
    /// recordings +1.5–3 %; orders up to 12 gain nothing from it, measured).
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    #[inline(never)]
    pub(super) fn lanes_avx512vl(coefs: &[i32], shift: u32, l: usize, out: &mut [i32]) {
        match coefs.len() {
            13 => fused::<13>(coefs.try_into().expect("order checked"), shift, l, out),
            14 => fused::<14>(coefs.try_into().expect("order checked"), shift, l, out),
            15 => fused::<15>(coefs.try_into().expect("order checked"), shift, l, out),
            16 => fused::<16>(coefs.try_into().expect("order checked"), shift, l, out),
            _ => unreachable!("only orders 13-16 are sent here"),
        }
    }

    /// Sample `t` of each of the eight segments (of length `l`) of `out`, as one row.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn gather_row(out: &[i32], l: usize, t: usize) -> __m256i {
        let row: [i32; LANES] = std::array::from_fn(|j| out[j * l + t]);
        load256(&row)
    }

    /// Writes a row back as sample `t` of each segment.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn scatter_row(out: &mut [i32], l: usize, t: usize, v: __m256i) {
        let mut row = [0i32; LANES];
        store256(&mut row, v);
        for (j, &x) in row.iter().enumerate() {
            out[j * l + t] = x;
        }
    }

    /// The segmented recurrence with the transposes fused in: each 8×8 tile of residuals is
    /// transposed into rows in registers, run through eight steps and transposed back, so the
    /// shuffles of one tile overlap the latency-bound recurrence instead of running as passes of
    /// their own over a rows buffer. The last `P` rows live in `h`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn fused<const P: usize>(c: &[i32; P], shift: u32, l: usize, out: &mut [i32]) {
        if l <= P {
            return;
        }
        let cb: [__m256i; P] = std::array::from_fn(|i| _mm256_set1_epi32(c[i]));
        let sh = _mm_cvtsi32_si128(shift as i32);
        // h[i] = row t−1−i.
        let mut h: [__m256i; P] = std::array::from_fn(|i| gather_row(out, l, P - 1 - i));
        #[target_feature(enable = "avx2")]
        #[inline]
        fn step<const P: usize>(
            cb: &[__m256i; P],
            sh: __m128i,
            h: &mut [__m256i; P],
            r: __m256i,
        ) -> __m256i {
            // The newest row's product is added last: it alone is on the critical path.
            // Older products summed in four independent chains (short dependency chains).
            let mut part = [_mm256_setzero_si256(); 4];
            for i in 1..P {
                part[i % 4] = _mm256_add_epi32(part[i % 4], _mm256_mullo_epi32(cb[i], h[i]));
            }
            let old = _mm256_add_epi32(
                _mm256_add_epi32(part[0], part[1]),
                _mm256_add_epi32(part[2], part[3]),
            );
            let acc = _mm256_add_epi32(old, _mm256_mullo_epi32(cb[0], h[0]));
            let y = _mm256_add_epi32(r, _mm256_sra_epi32(acc, sh));
            for i in (1..P).rev() {
                h[i] = h[i - 1];
            }
            h[0] = y;
            y
        }
        let tiles = l / LANES;
        let first = P.div_ceil(LANES);
        let lead = (first * LANES).min(l);
        for t in P..lead {
            let y = step(&cb, sh, &mut h, gather_row(out, l, t));
            scatter_row(out, l, t, y);
        }
        for b in first..tiles {
            let t0 = b * LANES;
            let r = transpose(std::array::from_fn(|j| load256(&out[j * l + t0..])));
            let mut y = [_mm256_setzero_si256(); LANES];
            for i in 0..LANES {
                y[i] = step(&cb, sh, &mut h, r[i]);
            }
            for (j, &v) in transpose(y).iter().enumerate() {
                store256(&mut out[j * l + t0..], v);
            }
        }
        for t in (tiles * LANES).max(lead)..l {
            let y = step(&cb, sh, &mut h, gather_row(out, l, t));
            scatter_row(out, l, t, y);
        }
    }

    /// `rows[t][j] = out[j·l + t]` for `t < l`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn rows_from_segments(out: &[i32], l: usize, rows: &mut [[i32; LANES]]) {
        let tiles = l / LANES;
        for b in 0..tiles {
            let t0 = b * LANES;
            let mut r = [_mm256_setzero_si256(); 8];
            for (j, v) in r.iter_mut().enumerate() {
                *v = load256(&out[j * l + t0..]);
            }
            let c = transpose(r);
            for (i, &v) in c.iter().enumerate() {
                store256(&mut rows[t0 + i], v);
            }
        }
        for (j, seg) in out[..LANES * l].chunks_exact(l).enumerate() {
            for (row, &v) in rows[tiles * LANES..l].iter_mut().zip(&seg[tiles * LANES..]) {
                row[j] = v;
            }
        }
    }

    /// `out[j·l + t] = rows[t][j]` for `t` in `from..l`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn segments_from_rows(rows: &[[i32; LANES]], from: usize, l: usize, out: &mut [i32]) {
        let tiles = l / LANES;
        let first = from.div_ceil(LANES);
        // Samples outside whole tiles from `first` on: one at a time.
        let lead = (first * LANES).min(l);
        let tail = (tiles * LANES).max(lead);
        for (j, seg) in out[..LANES * l].chunks_exact_mut(l).enumerate() {
            if from < lead {
                for (v, row) in seg[from..lead].iter_mut().zip(&rows[from..lead]) {
                    *v = row[j];
                }
            }
            for (v, row) in seg[tail..].iter_mut().zip(&rows[tail..l]) {
                *v = row[j];
            }
        }
        for b in first..tiles {
            let t0 = b * LANES;
            let mut r = [_mm256_setzero_si256(); 8];
            for (i, v) in r.iter_mut().enumerate() {
                *v = load256(&rows[t0 + i]);
            }
            let c = transpose(r);
            for (j, &v) in c.iter().enumerate() {
                store256(&mut out[j * l + t0..], v);
            }
        }
    }

    /// Transposes the 8×8 tile whose rows are `r`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose(r: [__m256i; 8]) -> [__m256i; 8] {
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let s0 = _mm256_unpacklo_epi64(t0, t2);
        let s1 = _mm256_unpackhi_epi64(t0, t2);
        let s2 = _mm256_unpacklo_epi64(t1, t3);
        let s3 = _mm256_unpackhi_epi64(t1, t3);
        let s4 = _mm256_unpacklo_epi64(t4, t6);
        let s5 = _mm256_unpackhi_epi64(t4, t6);
        let s6 = _mm256_unpacklo_epi64(t5, t7);
        let s7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256::<0x20>(s0, s4),
            _mm256_permute2x128_si256::<0x20>(s1, s5),
            _mm256_permute2x128_si256::<0x20>(s2, s6),
            _mm256_permute2x128_si256::<0x20>(s3, s7),
            _mm256_permute2x128_si256::<0x31>(s0, s4),
            _mm256_permute2x128_si256::<0x31>(s1, s5),
            _mm256_permute2x128_si256::<0x31>(s2, s6),
            _mm256_permute2x128_si256::<0x31>(s3, s7),
        ]
    }
}

multiversion! {
    /// Affine inverse transform with range check (see `transform::affine_body`).
    fn affine(out: &mut [i32], offset: i32, scale: i32, y_lo: i64, y_hi: i64) -> bool = crate::transform::affine_body;
}

multiversion! {
    /// Table inverse transform with index check (see `transform::table_body`).
    fn table_portable(out: &mut [i32], values: &[i32]) -> bool = crate::transform::table_body;
}

/// Table inverse transform with index check: `x = values[y]`, `false` (and `out` unspecified)
/// if some `y` is outside the table (see `transform::table_body`). With AVX-512 a table is held
/// in registers and looked up by two-table permutes: as words, 32 indices at a time, when its
/// values fit 16 bits and it has at most [`avx512_table::MAX_LEN16`] of them; else as 32-bit
/// lanes, sixteen at a time, up to [`avx512_table::MAX_LEN`] values. The portable loop costs a
/// load and an insert per value.
pub(crate) fn table(isa: Isa, out: &mut [i32], values: &[i32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512 && !values.is_empty() {
        // Strictly increasing, so the ends bound every value.
        let words =
            values[0] >= i32::from(i16::MIN) && values[values.len() - 1] <= i32::from(i16::MAX);
        if words && values.len() <= avx512_table::MAX_LEN16 {
            // SAFETY: `isa.avx512` is true only when `Isa::detect` found every feature enabled
            // on `avx512_table::lookup16` on this CPU.
            return unsafe { avx512_table::lookup16(out, values) };
        }
        if values.len() <= avx512_table::MAX_LEN {
            // SAFETY: as above, for `avx512_table::lookup`.
            return unsafe { avx512_table::lookup(out, values) };
        }
    }
    table_portable(isa, out, values)
}

#[cfg(target_arch = "x86_64")]
mod avx512_table {
    use super::mem::{load512, store512};
    use std::arch::x86_64::{
        __m512i, _mm512_castsi256_si512, _mm512_castsi512_si256, _mm512_cmpeq_epi16_mask,
        _mm512_cmpeq_epi32_mask, _mm512_cmpge_epu32_mask, _mm512_cvtepi16_epi32,
        _mm512_cvtepi32_epi16, _mm512_extracti64x4_epi64, _mm512_inserti64x4,
        _mm512_mask_mov_epi16, _mm512_mask_mov_epi32, _mm512_permutex2var_epi16,
        _mm512_permutex2var_epi32, _mm512_set1_epi16, _mm512_set1_epi32, _mm512_setzero_si512,
        _mm512_srli_epi16, _mm512_srli_epi32,
    };

    /// Largest table looked up in registers: four pairs of 16-value vectors (above that the
    /// permutes per value cost more than the portable loop's load and insert).
    pub(super) const MAX_LEN: usize = 128;

    #[target_feature(enable = "avx512f")]
    #[inline(never)]
    pub(super) fn lookup(out: &mut [i32], values: &[i32]) -> bool {
        debug_assert!(!values.is_empty() && values.len() <= MAX_LEN);
        let mut padded = [0i32; MAX_LEN];
        padded[..values.len()].copy_from_slice(values);
        let tab: [__m512i; MAX_LEN / 16] = std::array::from_fn(|i| load512(&padded[16 * i..]));
        let pairs = values.len().div_ceil(32);
        let len = _mm512_set1_epi32(values.len() as i32);
        let mut bad = 0u16;
        let mut groups = out.chunks_exact_mut(16);
        for g in &mut groups {
            let idx = load512(g);
            // Unsigned, so negative indices count as too large.
            bad |= _mm512_cmpge_epu32_mask(idx, len);
            let hi = _mm512_srli_epi32::<5>(idx);
            let mut x = _mm512_setzero_si512();
            for p in 0..pairs {
                // The permute reads the low five bits of each index; the pair is chosen by the
                // rest.
                let v = _mm512_permutex2var_epi32(tab[2 * p], idx, tab[2 * p + 1]);
                let m = _mm512_cmpeq_epi32_mask(hi, _mm512_set1_epi32(p as i32));
                x = _mm512_mask_mov_epi32(x, m, v);
            }
            store512(g, x);
        }
        // The last few indices: the portable lookup, with its check.
        bad == 0 && crate::transform::table_body(groups.into_remainder(), values)
    }

    /// Largest table of 16-bit values looked up in registers: eight pairs of 32-value vectors.
    pub(super) const MAX_LEN16: usize = 512;

    /// [`lookup`] for tables whose values fit 16 bits (the usual case: EDF samples): the table
    /// is held as words, so one two-table word permute covers 64 values and resolves 32
    /// indices, narrowed to words after their range check.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline(never)]
    pub(super) fn lookup16(out: &mut [i32], values: &[i32]) -> bool {
        debug_assert!(!values.is_empty() && values.len() <= MAX_LEN16);
        let mut padded = [0i16; MAX_LEN16];
        for (p, &v) in padded.iter_mut().zip(values) {
            // In range: the caller checked both ends of the increasing table.
            *p = v as i16;
        }
        let tab: [__m512i; MAX_LEN16 / 32] = std::array::from_fn(|i| load512(&padded[32 * i..]));
        let pairs = values.len().div_ceil(64);
        let len = _mm512_set1_epi32(values.len() as i32);
        let mut bad = 0u16;
        let mut groups = out.chunks_exact_mut(32);
        for g in &mut groups {
            let (a, b) = (load512(&g[..16]), load512(&g[16..]));
            // Unsigned, so negative indices count as too large.
            bad |= _mm512_cmpge_epu32_mask(a, len) | _mm512_cmpge_epu32_mask(b, len);
            let idx = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm512_cvtepi32_epi16(a)),
                _mm512_cvtepi32_epi16(b),
            );
            let hi = _mm512_srli_epi16::<6>(idx);
            let mut x = _mm512_setzero_si512();
            for p in 0..pairs {
                // The permute reads the low six bits of each index; the pair is chosen by the
                // rest.
                let v = _mm512_permutex2var_epi16(tab[2 * p], idx, tab[2 * p + 1]);
                let m = _mm512_cmpeq_epi16_mask(hi, _mm512_set1_epi16(p as i16));
                x = _mm512_mask_mov_epi16(x, m, v);
            }
            store512(
                &mut g[..16],
                _mm512_cvtepi16_epi32(_mm512_castsi512_si256(x)),
            );
            store512(
                &mut g[16..],
                _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64::<1>(x)),
            );
        }
        // The last few indices: the portable lookup, with its check.
        bad == 0 && crate::transform::table_body(groups.into_remainder(), values)
    }
}

multiversion! {
    /// LPC prediction sums for the encoder (see `predict::lpc_sums_body`).
    fn lpc_sums(seg: &[i32], coefs: &[i32], acc: &mut [i32]) = crate::predict::lpc_sums_body;
}

multiversion! {
    /// Autocorrelation for LPC analysis (see `predict::analysis::autocorrelation_body`).
    fn autocorrelation(x: &[f32], ac: &mut [f64]) = crate::predict::analysis::autocorrelation_body;
}

multiversion! {
    /// Fast size estimate of a residual section (see `rice::estimate_body`).
    fn rice_estimate(u: &[u32]) -> u64 = crate::rice::estimate_body;
}

multiversion! {
    /// Layout and exact size of a residual section (see `rice::plan`).
    fn rice_plan(u: &[u32]) -> (u64, crate::rice::Plan) = crate::rice::plan;
}

multiversion! {
    /// Residual sums of the fixed orders (see `predict::fixed_sums_body`).
    fn fixed_sums(y: &[i32]) -> [u64; 5] = crate::predict::fixed_sums_body;
}

multiversion! {
    /// Minimum, maximum and step count of a block (see `block::stats_body`).
    fn block_stats(x: &[i32]) -> crate::block::Stats = crate::block::stats_body;
}
