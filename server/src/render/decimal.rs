//! Fixed-point text for the numbers of a processed page.
//!
//! A page's values are filter outputs in physical units, and shortest round-trip doubles spell
//! them with 17 significant digits (`-12.345678901234567`) although the recording cannot
//! resolve anything below its quantisation step (typically 0.1 µV for EDF, 0.03 µV for BDF).
//! Rounded to a hundredth of that step they need 6–8 bytes instead of 18–20, which halves the
//! page on the wire, and formatting a scaled integer is several times cheaper than the
//! shortest-digits search. The error (at most 1/200 of a step) is far below the quantisation
//! noise already in the data.

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

/// Writes `[v,v,…]`: each value with `dec` (or as a shortest round-trip double without), and
/// `null` for a non-finite value (a bad channel's row, an unfilled gap).
///
/// # Errors
/// Only those of the underlying writer, which a `Vec` does not have.
pub(crate) fn write_row(
    out: &mut Vec<u8>,
    xs: ArrayView1<'_, f64>,
    dec: Option<Decimals>,
) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, &x) in xs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, x, dec)?;
    }
    out.push(b']');
    Ok(())
}

fn write_value(out: &mut Vec<u8>, x: f64, dec: Option<Decimals>) -> serde_json::Result<()> {
    if !x.is_finite() {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    let Some(dec) = dec else {
        return serde_json::to_writer(out, &x);
    };
    let y = x * dec.scale;
    if !(y.abs() < EXACT) {
        return serde_json::to_writer(out, &x);
    }
    // Round half away from zero without `f64::round` (a libm call on baseline x86-64): the
    // truncation and the remainder are exact below 2^53.
    let t = y as i64;
    let r = y - t as f64;
    let n = t + i64::from(r >= 0.5) - i64::from(r <= -0.5);
    // Digits from the right into a stack buffer, then one copy: the fraction without its
    // trailing zeros (and without the point when nothing is left), the integer part, the sign.
    // At most 16 digits (below 2^53), a point, a sign and MAX_DECIMALS leading zeros.
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    let mut frac = dec.decimals;
    while frac > 0 && m % 10 == 0 {
        m /= 10;
        frac -= 1;
    }
    if frac > 0 {
        for _ in 0..frac {
            i -= 1;
            buf[i] = b'0' + (m % 10) as u8;
            m /= 10;
        }
        i -= 1;
        buf[i] = b'.';
    }
    while m >= 100 {
        let pair = (m % 100) as usize * 2;
        m /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if m >= 10 {
        let pair = m as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + m as u8;
    }
    // "-0" never: a value that rounds to zero has had all its digits stripped to "0".
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    out.extend_from_slice(&buf[i..]);
    Ok(())
}

/// "00" "01" … "99": two digits per division.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

#[cfg(test)]
fn text(x: f64, dec: Option<Decimals>) -> String {
    let mut out = Vec::new();
    write_value(&mut out, x, dec).unwrap();
    String::from_utf8(out).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
