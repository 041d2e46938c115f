//! Band powers from a PSD: delta, theta, alpha, beta, gamma, or any configured bands.
//!
//! # Integration rule
//! Power in `[lo, hi)` is the rectangle rule over the PSD's bins: `df * sum(density[k])` for every
//! bin whose centre frequency `f_k` satisfies `lo <= f_k < hi`. Bands are half-open so adjacent
//! bands (`4-8`, `8-13`) partition the spectrum without counting a bin twice, and the powers of a
//! partition add up to the total. Parts of a band above Nyquist simply have no bins.

use super::error::{DspError, Result};
use super::welch::Psd;
use serde::{Deserialize, Serialize};

/// A named frequency band `[lo, hi)` in Hz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// Name (`alpha`).
    pub name: String,
    /// Lower edge in Hz, included.
    pub lo: f64,
    /// Upper edge in Hz, excluded.
    pub hi: f64,
}

impl Band {
    /// A band `[lo, hi)`.
    pub fn new(name: impl Into<String>, lo: f64, hi: f64) -> Self {
        Self {
            name: name.into(),
            lo,
            hi,
        }
    }
}

/// The classic clinical bands: delta 0.5-4, theta 4-8, alpha 8-13, beta 13-30, gamma 30-80 Hz.
pub fn default_bands() -> Vec<Band> {
    vec![
        Band::new("delta", 0.5, 4.0),
        Band::new("theta", 4.0, 8.0),
        Band::new("alpha", 8.0, 13.0),
        Band::new("beta", 13.0, 30.0),
        Band::new("gamma", 30.0, 80.0),
    ]
}

/// Absolute and relative power per band.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BandPowers {
    /// Band names, in the order given.
    pub names: Vec<String>,
    /// Absolute power per band, in (signal unit)².
    pub absolute: Vec<f64>,
    /// Power per band divided by the power of all bins in `[min lo, max hi)`.
    pub relative: Vec<f64>,
}

/// Check bands: finite, `0 <= lo < hi`.
///
/// # Errors
/// [`DspError::InvalidParameter`] naming the band.
pub fn validate_bands(bands: &[Band]) -> Result<()> {
    for b in bands {
        if !(b.lo.is_finite() && b.hi.is_finite() && b.lo >= 0.0 && b.lo < b.hi) {
            return Err(DspError::InvalidParameter {
                field: "bands",
                reason: format!(
                    "band {:?} must have 0 <= lo < hi, got [{}, {})",
                    b.name, b.lo, b.hi
                ),
            });
        }
    }
    Ok(())
}

/// Power of `psd` in `[lo, hi)` (rectangle rule; see the module docs). A band holding no
/// frequency bin (beyond Nyquist, or narrower than a coarse resolution) has power 0, as NumPy's
/// empty sum: summed from +0.0, since Rust's empty `f64` sum is -0.0 and reports printed
/// `"absolute": -0.0`.
pub fn band_power(psd: &Psd, lo: f64, hi: f64) -> f64 {
    let df = psd.df();
    psd.freqs
        .iter()
        .zip(&psd.density)
        .filter(|(f, _)| **f >= lo && **f < hi)
        .fold(0.0, |acc, (_, p)| acc + p)
        * df
}

impl BandPowers {
    /// Band powers of `psd`.
    ///
    /// # Errors
    /// As [`validate_bands`].
    pub fn from_psd(psd: &Psd, bands: &[Band]) -> Result<Self> {
        validate_bands(bands)?;
        let absolute: Vec<f64> = bands.iter().map(|b| band_power(psd, b.lo, b.hi)).collect();
        let lo = bands.iter().map(|b| b.lo).fold(f64::INFINITY, f64::min);
        let hi = bands.iter().map(|b| b.hi).fold(f64::NEG_INFINITY, f64::max);
        let total = if bands.is_empty() {
            0.0
        } else {
            band_power(psd, lo, hi)
        };
        let relative = absolute
            .iter()
            .map(|p| if total > 0.0 { p / total } else { 0.0 })
            .collect();
        Ok(Self {
            names: bands.iter().map(|b| b.name.clone()).collect(),
            absolute,
            relative,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::Welch;

    #[test]
    fn alpha_sine_lands_in_alpha_and_partition_adds_up() {
        let fs = 256.0;
        let x: Vec<f64> = (0..256 * 30)
            .map(|i| {
                20.0 * (2.0 * std::f64::consts::PI * 10.0 * i as f64 / fs).sin()
                    + ((i * 13) % 7) as f64
            })
            .collect();
        let psd = Welch::try_new(fs, 512, 256).unwrap().psd(&x).unwrap();
        let bp = BandPowers::from_psd(&psd, &default_bands()).unwrap();
        let alpha = bp.names.iter().position(|n| n == "alpha").unwrap();
        assert!(bp.relative[alpha] > 0.8, "{:?}", bp.relative);
        let sum: f64 = bp.absolute.iter().sum();
        assert!((sum - band_power(&psd, 0.5, 80.0)).abs() < 1e-9 * sum);
        assert!((bp.relative.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(BandPowers::from_psd(&psd, &[Band::new("bad", 5.0, 4.0)]).is_err());
        // A band beyond Nyquist holds no bin: power +0, not -0.
        let empty = band_power(&psd, 200.0, 300.0);
        assert_eq!(empty.to_bits(), 0.0f64.to_bits(), "{empty}");
    }
}
