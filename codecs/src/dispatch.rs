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
//! AVX2 flag can only be set by [`Isa::detect`] after checking each feature.
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

multiversion! {
    /// The eight-lane LPC kernel (see `predict::lanes_body`).
    fn restore_lanes(
        coefs: &[i32],
        shift: u32,
        l: usize,
        out: &mut [i32],
        scratch: &mut Vec<[i32; LANES]>,
    ) = crate::predict::lanes_body;
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
    fn autocorrelation(x: &[f64], ac: &mut [f64]) = crate::predict::analysis::autocorrelation_body;
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
