//! Runtime selection of the instruction set for the hot kernels (the decoder's, and the
//! encoder's estimators).
//!
//! Each kernel is written once as plain Rust (an `#[inline(always)]` body in its own module) and
//! instantiated here twice: for the baseline target, and inside a function compiled with AVX2,
//! BMI1/2 and LZCNT, where LLVM vectorises the eight-lane LPC kernel with 32-bit multiplies (SSE2
//! has none) and turns the unary scan into `tzcnt`/`blsr`. Kernels are separate, non-inlined
//! functions so each hot loop keeps its state in registers.
//!
//! This module holds the crate's only `unsafe`: calling a `#[target_feature]` function requires
//! the caller to guarantee the CPU has those features. The guarantee is the [`Isa`] token, whose
//! AVX2 flag can only be set by [`Isa::detect`] after checking each feature. The one exception
//! is the segmented-LPC transpose (`avx2_lanes`), whose unaligned 32-byte loads and stores take
//! raw pointers; each goes through a helper that takes a checked 8-element array first.
#![allow(unsafe_code)]

use crate::error::Result;
use crate::predict::LANES;

/// Which instruction set the decode kernels may use. Copy it freely; only [`Isa::detect`] can
/// enable AVX2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Isa {
    avx2: bool,
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
            Self { avx2 }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self { avx2: false }
    }

    /// Baseline code only (used by tests to cover both paths).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn baseline() -> Self {
        Self { avx2: false }
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
    fn unary_positions(bytes: &[u8], base: usize, ones: usize, pos: &mut Vec<u32>) -> Result<()> = crate::rice::positions_body;
}

multiversion! {
    /// Quotients, escapes and low bits merged into residuals (see `rice::merge_body`).
    fn rice_merge(
        pos: &[u32],
        low: &[u8],
        ks: &[u8],
        size: usize,
        q_esc: u32,
        exc: &[u32],
        out: &mut [i32],
        base: usize,
    ) -> Result<u64> = crate::rice::merge_body;
}

multiversion! {
    /// Fixed-order restoration (see `predict::restore_fixed_body`).
    fn restore_fixed(order: usize, out: &mut [i32]) = crate::predict::restore_fixed_body;
}

/// The eight-lane LPC restoration of the first `l` samples of all eight segments of `out`
/// (local indices `p..l`): transpose to rows, run the kernel (`predict::lanes_body`), transpose
/// back.
pub(crate) fn restore_lanes(
    isa: Isa,
    coefs: &[i32],
    shift: u32,
    l: usize,
    out: &mut [i32],
    scratch: &mut Vec<[i32; LANES]>,
) {
    // Every row below `l` is overwritten by the transpose, so stale contents are harmless.
    if scratch.len() < l {
        scratch.resize(l, [0; LANES]);
    }
    let rows = &mut scratch[..l];
    #[cfg(target_arch = "x86_64")]
    if isa.avx2 {
        // SAFETY: `isa.avx2` is true only when `Isa::detect` found every feature enabled on
        // `lanes_avx2` on this CPU.
        unsafe { avx2_lanes::lanes_avx2(coefs, shift, l, out, rows) };
        return;
    }
    let _ = isa;
    lanes_baseline(coefs, shift, l, out, rows);
}

#[inline(never)]
fn lanes_baseline(coefs: &[i32], shift: u32, l: usize, out: &mut [i32], rows: &mut [[i32; LANES]]) {
    crate::predict::rows_from_segments(out, l, rows);
    crate::predict::lanes_body(coefs, shift, rows);
    crate::predict::segments_from_rows(rows, coefs.len(), l, out);
}

/// The AVX2 LPC path: the transposes as 8×8 register tiles (unpack and 128-bit permute), which
/// LLVM does not find on its own and which otherwise cost more than the recurrence itself
/// (one strided scalar load and store per sample each way).
#[cfg(target_arch = "x86_64")]
mod avx2_lanes {
    use super::LANES;
    use std::arch::x86_64::{
        __m256i, _mm256_loadu_si256, _mm256_permute2x128_si256, _mm256_setzero_si256,
        _mm256_storeu_si256, _mm256_unpackhi_epi32, _mm256_unpackhi_epi64, _mm256_unpacklo_epi32,
        _mm256_unpacklo_epi64,
    };

    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
    #[inline(never)]
    pub(super) fn lanes_avx2(
        coefs: &[i32],
        shift: u32,
        l: usize,
        out: &mut [i32],
        rows: &mut [[i32; LANES]],
    ) {
        rows_from_segments(out, l, rows);
        crate::predict::lanes_body(coefs, shift, rows);
        segments_from_rows(rows, coefs.len(), l, out);
    }

    /// Loads eight `i32` from the start of `s`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn load8(s: &[i32]) -> __m256i {
        let s: &[i32; 8] = s[..8].try_into().expect("8 values");
        // SAFETY: `s` is 8 initialised `i32` (32 bytes); `loadu` has no alignment requirement.
        unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
    }

    /// Stores eight `i32` to the start of `d`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn store8(d: &mut [i32], v: __m256i) {
        let d: &mut [i32; 8] = (&mut d[..8]).try_into().expect("8 values");
        // SAFETY: `d` is 8 writable `i32` (32 bytes) borrowed mutably; `storeu` has no alignment
        // requirement.
        unsafe { _mm256_storeu_si256(d.as_mut_ptr().cast(), v) }
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

    /// `rows[t][j] = out[j·l + t]` for `t < l`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn rows_from_segments(out: &[i32], l: usize, rows: &mut [[i32; LANES]]) {
        let tiles = l / LANES;
        for b in 0..tiles {
            let t0 = b * LANES;
            let mut r = [_mm256_setzero_si256(); 8];
            for (j, v) in r.iter_mut().enumerate() {
                *v = load8(&out[j * l + t0..]);
            }
            let c = transpose(r);
            for (i, &v) in c.iter().enumerate() {
                store8(&mut rows[t0 + i], v);
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
                *v = load8(&rows[t0 + i]);
            }
            let c = transpose(r);
            for (j, &v) in c.iter().enumerate() {
                store8(&mut out[j * l + t0..], v);
            }
        }
    }
}

multiversion! {
    /// Affine inverse transform with range check (see `transform::affine_body`).
    fn affine(out: &mut [i32], offset: i32, scale: i32, y_lo: i64, y_hi: i64) -> bool = crate::transform::affine_body;
}

multiversion! {
    /// Table inverse transform with index check (see `transform::table_body`).
    fn table(out: &mut [i32], values: &[i32]) -> bool = crate::transform::table_body;
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
