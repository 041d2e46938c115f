//! Anti-aliased rational resampling for analysis (e.g. 512 Hz recordings to 256 Hz, or mixed-rate
//! channels to one rate).
//!
//! Polyphase FIR as SciPy's `resample_poly(x, up, down)` with its defaults: the low-pass is
//! `firwin(2 * half_len + 1, 1 / max(up, down), window=('kaiser', 5.0)) * up` with
//! `half_len = 10 * max(up, down)`, the signal is zero outside its ends (`padtype='constant'`), the
//! output has `ceil(n * up / down)` samples and output sample `m` sits at input position
//! `m * down / up` (no delay). Only the taps that meet a real input sample are computed (polyphase).
//! Agreement with SciPy is checked in `query/tests/dsp_golden.rs` (within 1e-9 of the peak; 1e-13
//! measured).

use super::error::{DspError, Result};

/// A rational resampler `up / down` with its designed anti-aliasing filter.
#[derive(Debug, Clone)]
pub struct Resampler {
    up: usize,
    down: usize,
    half_len: usize,
    taps: Vec<f64>,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// Kaiser betas used here).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    let q = x * x / 4.0;
    while term > 1e-17 * sum {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

impl Resampler {
    /// Resample by `up / down` (reduced by their gcd).
    ///
    /// # Errors
    /// [`DspError::InvalidParameter`] when either factor is 0 or above 1000 (a filter of more than
    /// 20 000 taps means the rates were not meant to be related rationally).
    pub fn try_new(up: usize, down: usize) -> Result<Self> {
        for (field, v) in [("up", up), ("down", down)] {
            if v == 0 || v > 1000 {
                return Err(DspError::InvalidParameter {
                    field,
                    reason: format!("must be in 1..=1000, got {v}"),
                });
            }
        }
        let g = gcd(up, down);
        let (up, down) = (up / g, down / g);
        let max_rate = up.max(down);
        let half_len = 10 * max_rate;
        let n = 2 * half_len + 1;
        let fc = 1.0 / max_rate as f64;
        let beta = 5.0;
        let alpha = (n - 1) as f64 / 2.0;
        let i0b = bessel_i0(beta);
        let mut taps: Vec<f64> = (0..n)
            .map(|i| {
                let m = i as f64 - alpha;
                let x = fc * m;
                let sinc = if x == 0.0 {
                    1.0
                } else {
                    (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
                };
                let r = 2.0 * i as f64 / (n - 1) as f64 - 1.0;
                fc * sinc * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0b
            })
            .collect();
        // firwin(scale=True): unit gain at DC; then times `up` for the zeros the upsampling inserts.
        let s: f64 = taps.iter().sum();
        taps.iter_mut().for_each(|t| *t = *t / s * up as f64);
        Ok(Self {
            up,
            down,
            half_len,
            taps,
        })
    }

    /// Resampler from one integer rate to another (`fs_out / fs_in` reduced).
    ///
    /// # Errors
    /// As [`try_new`](Self::try_new); also when a rate is 0.
    pub fn from_rates(fs_in: usize, fs_out: usize) -> Result<Self> {
        if fs_in == 0 || fs_out == 0 {
            return Err(DspError::InvalidParameter {
                field: "fs",
                reason: "rates must be positive".into(),
            });
        }
        let g = gcd(fs_in, fs_out);
        Self::try_new(fs_out / g, fs_in / g)
    }

    /// Reduced `(up, down)`.
    pub fn factors(&self) -> (usize, usize) {
        (self.up, self.down)
    }

    /// Output length for `n` input samples: `ceil(n * up / down)`.
    pub fn output_len(&self, n: usize) -> usize {
        (n * self.up).div_ceil(self.down)
    }

    /// Resample `x` into `y` (`y.len() == output_len(x.len())`).
    ///
    /// # Errors
    /// [`DspError::ShapeMismatch`] when `y` has the wrong length.
    pub fn process_into(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        let want = self.output_len(x.len());
        if y.len() != want {
            return Err(DspError::ShapeMismatch {
                what: "resample output",
                expected: want,
                got: y.len(),
            });
        }
        let (up, h, last) = (self.up as isize, &self.taps, 2 * self.half_len as isize);
        let n = x.len() as isize;
        for (m, out) in y.iter_mut().enumerate() {
            // out[m] = sum_i x[i] h[t - i up], t = half_len + m down, 0 <= t - i up <= 2 half_len.
            let t = (self.half_len + m * self.down) as isize;
            let i_lo = ((t - last).max(0) + up - 1) / up;
            let i_hi = (t / up).min(n - 1);
            let mut acc = 0.0;
            let mut i = i_lo;
            while i <= i_hi {
                acc += x[i as usize] * h[(t - i * up) as usize];
                i += 1;
            }
            *out = acc;
        }
        Ok(())
    }

    /// Resample `x` (allocating twin of [`process_into`](Self::process_into)).
    pub fn process(&self, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.output_len(x.len())];
        self.process_into(x, &mut y)
            .expect("output sized by output_len");
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(f: f64, fs: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * f * i as f64 / fs).sin())
            .collect()
    }

    fn interior_peak(y: &[f64]) -> f64 {
        let q = y.len() / 4;
        y[q..3 * q].iter().fold(0.0f64, |m, v| m.max(v.abs()))
    }

    #[test]
    fn keeps_passband_and_rejects_aliases() {
        let r = Resampler::from_rates(512, 256).unwrap();
        assert_eq!(r.factors(), (1, 2));
        assert_eq!(r.output_len(1001), 501);
        // 20 Hz passes untouched and lands at the right time.
        let y = r.process(&sine(20.0, 512.0, 5120));
        let want = sine(20.0, 256.0, 2560);
        let q = y.len() / 4;
        for m in q..3 * q {
            assert!(
                (y[m] - want[m]).abs() < 1e-3,
                "m={m}: {} vs {}",
                y[m],
                want[m]
            );
        }
        // 200 Hz would alias to 56 Hz at 256 Hz: it must be suppressed (> 40 dB).
        let y = r.process(&sine(200.0, 512.0, 5120));
        assert!(interior_peak(&y) < 1e-2, "{}", interior_peak(&y));
    }

    #[test]
    fn constant_stays_constant_and_upsampling_interpolates() {
        let r = Resampler::try_new(3, 2).unwrap();
        let y = r.process(&vec![7.0; 600]);
        let q = y.len() / 4;
        let worst = y[q..3 * q]
            .iter()
            .fold(0.0f64, |m, v| m.max((v - 7.0).abs()));
        // Each polyphase branch of a windowed-sinc design has a small DC ripple (as in SciPy).
        assert!(worst < 7.0 * 5e-3, "{worst}");
        let r = Resampler::try_new(2, 1).unwrap();
        let x = sine(5.0, 100.0, 1000);
        let y = r.process(&x);
        for m in (400..1600).step_by(2) {
            assert!((y[m] - x[m / 2]).abs() < 1e-3);
        }
        assert!(Resampler::try_new(0, 1).is_err());
    }
}
