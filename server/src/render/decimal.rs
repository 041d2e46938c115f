//! Fixed-point text for the numbers of a processed page.
//!
//! A page's values are filter outputs in physical units, and shortest round-trip doubles spell
//! them with 17 significant digits (`-12.345678901234567`) although the recording cannot
//! resolve anything below its quantisation step (typically 0.1 µV for EDF, 0.03 µV for BDF).
//! Rounded to a hundredth of that step they need 6–8 bytes instead of 18–20 (the standard page
//! is 0.46 MB instead of 1.31 MB), and formatting a scaled integer eight digits at a time is
//! about twice as fast as the shortest-digits search (`benches/benches/render.rs`). The error
//! (at most 1/200 of a step) is far below the quantisation noise already in the data.

use ndarray::ArrayView1;

/// A value is rounded to at most a hundredth of the step.
const STEPS_PER_DIGIT: f64 = 100.0;

/// More decimals than this and the page falls back to shortest round-trip doubles (a step below
/// 1e-10 of the page's unit means a unit we cannot reason about, not a finer instrument).
const MAX_DECIMALS: u32 = 12;

/// Scaled values at or beyond this are no longer exact integers in an `f64`: such values fall
/// back to shortest round-trip doubles.
const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

/// How a page's values are written: `decimals` digits after the point, trailing zeros dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decimals {
    decimals: u32,
    scale: f64,
}

impl Decimals {
    /// The fewest decimals that keep every value within a two-hundredth of `step`
    /// (`10^-d ≤ step / 100`), or `None` (shortest round-trip doubles) when the step is not a
    /// positive finite number or needs more than [`MAX_DECIMALS`].
    pub(crate) fn for_step(step: f64) -> Option<Self> {
        if !(step.is_finite() && step > 0.0) {
            return None;
        }
        // The epsilon keeps an exact power of ten (step 0.1 → 10^-3) from rounding up a digit.
        let d = (-(step / STEPS_PER_DIGIT).log10() - 1e-9).ceil().max(0.0);
        if d > f64::from(MAX_DECIMALS) {
            return None;
        }
        // In 0..=MAX_DECIMALS, checked above.
        let decimals = d as u32;
        Some(Self {
            decimals,
            scale: 10f64.powi(decimals as i32),
        })
    }

    /// Digits after the point.
    pub(crate) fn decimals(self) -> u32 {
        self.decimals
    }
}

/// Values written per stretch of `out` (see [`write_row`]).
const CHUNK: usize = 256;

/// Room for one value: a comma, a shortest round-trip double (at most 24 bytes) and the
/// 8 bytes a fixed-size store may write past the end of a fixed-point value.
const ROOM: usize = 40;

/// Bytes [`write_row`] may grow `out` by beyond what it keeps.
pub(crate) const ROW_SLACK: usize = CHUNK * ROOM;

/// Writes `[v,v,…]`: each value with `dec` (or as a shortest round-trip double without), and
/// `null` for a non-finite value (a bad channel's row, an unfilled gap).
///
/// Values are written into a stretch of `out` grown for [`CHUNK`] of them at a time and cut
/// back after, through a local position: pushing each byte through the `Vec` keeps its
/// length in memory, a store-to-load chain from one value to the next that measured slower
/// than the formatting itself.
///
/// # Errors
/// Only those of the underlying writer, which a slice with room does not have.
pub(crate) fn write_row(
    out: &mut Vec<u8>,
    xs: ArrayView1<'_, f64>,
    dec: Option<Decimals>,
) -> serde_json::Result<()> {
    out.push(b'[');
    let mut first = true;
    let mut values = xs.iter().copied();
    // `out[..at]` is written; `out` always holds a stretch of at least ROW_SLACK bytes past it,
    // topped up by only what each stretch used (zero-filling the whole stretch per 256 values
    // was a 2.7 MB memset per standard page).
    let mut at = out.len();
    out.resize(at + ROW_SLACK, 0);
    loop {
        let buf = &mut out[at..];
        let mut pos = 0;
        let mut n = 0;
        for x in values.by_ref().take(CHUNK) {
            buf[pos] = b',';
            pos += usize::from(!first);
            first = false;
            pos = write_value(buf, pos, x, dec)?;
            n += 1;
        }
        at += pos;
        if n < CHUNK {
            break;
        }
        out.resize(at + ROW_SLACK, 0);
    }
    out.truncate(at);
    out.push(b']');
    Ok(())
}

/// Writes one value at `buf[pos..]` (at least [`ROOM`] - 1 bytes) and returns the position
/// after it.
fn write_value(
    buf: &mut [u8],
    pos: usize,
    x: f64,
    dec: Option<Decimals>,
) -> serde_json::Result<usize> {
    let shortest = |buf: &mut [u8], v: f64| -> serde_json::Result<usize> {
        let mut w = &mut buf[pos..];
        let room = w.len();
        serde_json::to_writer(&mut w, &v)?;
        Ok(pos + room - w.len())
    };
    if !x.is_finite() {
        buf[pos..pos + 4].copy_from_slice(b"null");
        return Ok(pos + 4);
    }
    let Some(dec) = dec else {
        return shortest(buf, x);
    };
    let y = x * dec.scale;
    if y.abs() >= EXACT {
        return shortest(buf, x);
    }
    // Round half away from zero without `f64::round` (a libm call on baseline x86-64): the
    // truncation and the remainder are exact below 2^53.
    let t = y as i64;
    let r = y - t as f64;
    let n = t + i64::from(r >= 0.5) - i64::from(r <= -0.5);
    let m = n.unsigned_abs();
    let d = dec.decimals;
    if m >= 100_000_000 || d > 7 {
        // Beyond eight digits (|x| ≥ 10^(8-d)): the rounded value as a shortest round-trip
        // double, which spells the same decimal (it is the double nearest to it).
        return shortest(buf, n as f64 / dec.scale);
    }
    // The eight digits of `m` in one register, most significant in the lowest byte (memory
    // order), written with fixed-size stores (no `memcpy` call per value) and counted to
    // their length.
    let raw = digits8(m as u32);
    // Digits before the point: eight minus the decimals, leading zeros dropped but one kept.
    let int_len = 8 - d;
    let lead = (raw.trailing_zeros() / 8).min(int_len - 1);
    // Decimals after dropping the trailing zeros.
    let frac = d - (raw.leading_zeros() / 8).min(d);
    let ascii = raw | 0x3030_3030_3030_3030;
    // The sign without a branch: written always, counted when negative ("-0" cannot occur:
    // a value that rounds to zero has n = 0).
    buf[pos] = b'-';
    let mut pos = pos + usize::from(n < 0);
    buf[pos..pos + 8].copy_from_slice(&(ascii >> (8 * lead)).to_le_bytes());
    pos += (int_len - lead) as usize;
    if frac > 0 {
        buf[pos] = b'.';
        // int_len < 8 here (frac > 0 needs d > 0): the shift is below 64.
        buf[pos + 1..pos + 9].copy_from_slice(&(ascii >> (8 * int_len)).to_le_bytes());
        pos += 1 + frac as usize;
    }
    Ok(pos)
}

/// The eight decimal digits of `v < 10^8` as byte values 0–9, the most significant in the
/// lowest byte: split in 4 + 4, then 2 + 2, then 1 + 1 digits, all lanes of one `u64` at once
/// (quotients by multiplication with the reciprocal, exact in these ranges).
fn digits8(v: u32) -> u64 {
    let v = u64::from(v);
    // Lanes of 32 bits: [v / 10^4, v % 10^4].
    let x = (v / 10_000) | ((v % 10_000) << 32);
    // Lanes of 16 bits: n / 100 = n * 5243 >> 19 for n < 10^4.
    let q = ((x * 5243) >> 19) & 0x0000_007f_0000_007f;
    let x = q | ((x - q * 100) << 16);
    // Lanes of 8 bits: n / 10 = n * 103 >> 10 for n < 100.
    let q = ((x * 103) >> 10) & 0x000f_000f_000f_000f;
    q | ((x - q * 10) << 8)
}

#[cfg(test)]
fn text(x: f64, dec: Option<Decimals>) -> String {
    let mut buf = [0u8; ROOM];
    let end = write_value(&mut buf, 0, x, dec).unwrap();
    String::from_utf8(buf[..end].to_vec()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn eight_digits_at_once() {
        for v in [
            0, 7, 10, 99, 100, 1234, 10_000, 12_345_678, 99_999_999, 40_000_001,
        ] {
            let want: Vec<u8> = format!("{v:08}").bytes().map(|b| b - b'0').collect();
            assert_eq!(digits8(v).to_le_bytes().to_vec(), want, "{v}");
        }
    }

    #[test]
    fn decimals_follow_the_step() {
        let d = |s: f64| Decimals::for_step(s).map(Decimals::decimals);
        assert_eq!(d(0.1), Some(3)); // 16-bit EDF at ±3276.7 µV
        assert_eq!(d(0.031_25), Some(4)); // BioSemi BDF
        assert_eq!(d(1.0), Some(2));
        assert_eq!(d(100.0), Some(0));
        assert_eq!(d(1e6), Some(0));
        assert_eq!(d(1e-9), Some(11)); // volts from a 24-bit converter
        assert_eq!(d(1e-12), None);
        assert_eq!(d(0.0), None);
        assert_eq!(d(f64::INFINITY), None);
        assert_eq!(d(f64::NAN), None);
    }

    #[test]
    fn values_are_written_as_the_shortest_fixed_decimal() {
        let dec = Decimals::for_step(0.1);
        for (x, want) in [
            (12.345_678_9, "12.346"),
            (-12.345_678_9, "-12.346"),
            (0.5, "0.5"),
            (-0.0004, "0"),
            (-0.0, "0"),
            (0.0015, "0.002"),
            (0.000_6, "0.001"),
            (-0.02, "-0.02"),
            (3000.0, "3000"),
            (1e20, "1e+20"),
            (f64::NAN, "null"),
            (f64::NEG_INFINITY, "null"),
        ] {
            assert_eq!(text(x, dec), want, "{x}");
        }
        assert_eq!(text(12.345_678_9, None), "12.3456789");
    }

    proptest! {
        /// Any finite value is written as a JSON number within half a last digit of it.
        #[test]
        fn written_values_parse_back_within_half_a_digit(
            x in prop_oneof![
                -1e4f64..1e4,
                -1e-3f64..1e-3,
                proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
            ],
            step_exp in -11i32..4,
        ) {
            let dec = Decimals::for_step(10f64.powi(step_exp) * 0.37);
            let t = text(x, dec);
            let back: f64 = serde_json::from_str(&t).unwrap();
            let tol = dec.map_or(0.0, |d| 0.5 / d.scale * (1.0 + 1e-9)) + x.abs() * 1e-15;
            prop_assert!((back - x).abs() <= tol, "{x} → {t}");
        }
    }
}
