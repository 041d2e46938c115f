//! Welch power spectral density with SciPy's `welch` semantics: periodic Hann window, `nperseg`,
//! `noverlap`, `detrend='constant'` (each segment's mean removed), `scaling='density'` (V²/Hz),
//! one-sided, segments averaged with the mean. Built on rustfft; the FFT plan, window and scratch
//! buffers live in the [`Welch`] value and are reused for every call.

use super::error::{DspError, Result, positive};
use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// A one-sided power spectral density.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Psd {
    /// Bin frequencies in Hz: `k * fs / nperseg`, `k = 0..=nperseg/2`.
    pub freqs: Vec<f64>,
    /// Density per bin, in (signal unit)²/Hz.
    pub density: Vec<f64>,
}

impl Psd {
    /// Frequency resolution (bin spacing) in Hz.
    pub fn df(&self) -> f64 {
        if self.freqs.len() > 1 {
            self.freqs[1] - self.freqs[0]
        } else {
            0.0
        }
    }
}

/// Welch estimator with its FFT plan, window and buffers (reuse one per worker).
pub struct Welch {
    fs: f64,
    nperseg: usize,
    noverlap: usize,
    window: Vec<f64>,
    scale: f64,
    fft: Arc<dyn Fft<f64>>,
    buf: Vec<Complex64>,
    scratch: Vec<Complex64>,
}

impl std::fmt::Debug for Welch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Welch")
            .field("fs", &self.fs)
            .field("nperseg", &self.nperseg)
            .field("noverlap", &self.noverlap)
            .finish_non_exhaustive()
    }
}

/// The periodic Hann window of SciPy's `get_window('hann', n)` (`fftbins=True`).
pub fn hann_periodic(n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![1.0];
    }
    // SciPy builds the symmetric window of n + 1 points and drops the last: 0.5 - 0.5 cos(2 pi k / n).
    (0..n)
        .map(|k| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / n as f64).cos())
        .collect()
}

impl Welch {
    /// Estimator for sample rate `fs`, segments of `nperseg` samples overlapping by `noverlap`
    /// (SciPy's default is `nperseg / 2`).
    ///
    /// # Errors
    /// [`DspError::InvalidParameter`] when `fs` is not positive, `nperseg` is 0 or `noverlap >= nperseg`.
    pub fn try_new(fs: f64, nperseg: usize, noverlap: usize) -> Result<Self> {
        let fs = positive("fs", fs)?;
        if nperseg == 0 {
            return Err(DspError::InvalidParameter {
                field: "nperseg",
                reason: "must be at least 1".into(),
            });
        }
        if noverlap >= nperseg {
            return Err(DspError::InvalidParameter {
                field: "noverlap",
                reason: format!("must be less than nperseg ({nperseg}), got {noverlap}"),
            });
        }
        let window = hann_periodic(nperseg);
        let scale = 1.0 / (fs * window.iter().map(|w| w * w).sum::<f64>());
        let fft = FftPlanner::new().plan_fft_forward(nperseg);
        let scratch = vec![Complex64::default(); fft.get_inplace_scratch_len()];
        Ok(Self {
            fs,
            nperseg,
            noverlap,
            window,
            scale,
            fft,
            buf: vec![Complex64::default(); nperseg],
            scratch,
        })
    }

    /// Estimator with SciPy's default overlap, `nperseg / 2`.
    ///
    /// # Errors
    /// As [`try_new`](Self::try_new).
    pub fn with_default_overlap(fs: f64, nperseg: usize) -> Result<Self> {
        Self::try_new(fs, nperseg, nperseg / 2)
    }

    /// Sample rate in Hz.
    pub fn fs(&self) -> f64 {
        self.fs
    }

    /// Segment length.
    pub fn nperseg(&self) -> usize {
        self.nperseg
    }

    /// Overlap between segments.
    pub fn noverlap(&self) -> usize {
        self.noverlap
    }

    /// Number of one-sided bins: `nperseg / 2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.nperseg / 2 + 1
    }

    /// Bin frequencies in Hz.
    pub fn freqs(&self) -> Vec<f64> {
        (0..self.n_bins())
            .map(|k| k as f64 * self.fs / self.nperseg as f64)
            .collect()
    }

    /// Number of segments SciPy uses for `n` samples: `(n - noverlap) / (nperseg - noverlap)`.
    pub fn n_segments(&self, n: usize) -> usize {
        if n < self.nperseg {
            0
        } else {
            (n - self.noverlap) / (self.nperseg - self.noverlap)
        }
    }

    /// Start sample of each segment.
    pub(crate) fn segment_starts(&self, n: usize) -> impl Iterator<Item = usize> + use<> {
        let step = self.nperseg - self.noverlap;
        (0..self.n_segments(n)).map(move |i| i * step)
    }

    /// The one-sided density periodogram of one segment (`seg.len() == nperseg`), added into `acc`
    /// times `weight`.
    pub(crate) fn accumulate_segment(&mut self, seg: &[f64], acc: &mut [f64], weight: f64) {
        let mean = seg.iter().sum::<f64>() / seg.len() as f64;
        for ((b, x), w) in self.buf.iter_mut().zip(seg).zip(&self.window) {
            *b = Complex64::new((x - mean) * w, 0.0);
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let nb = self.n_bins();
        let even = self.nperseg.is_multiple_of(2);
        for (k, a) in acc[..nb].iter_mut().enumerate() {
            let mut p = self.buf[k].norm_sqr() * self.scale;
            // One-sided: fold the negative frequencies in, except DC and (even length) Nyquist.
            if k > 0 && !(even && k == nb - 1) {
                p *= 2.0;
            }
            *a += p * weight;
        }
    }

    /// Welch PSD of `x` into `density` (`n_bins()` long).
    ///
    /// # Errors
    /// [`DspError::TooShort`] when `x` is shorter than `nperseg` (SciPy would shrink `nperseg`
    /// with a warning; we refuse, so the frequency grid never changes silently);
    /// [`DspError::ShapeMismatch`] when `density` has the wrong length.
    pub fn psd_into(&mut self, x: &[f64], density: &mut [f64]) -> Result<()> {
        if density.len() != self.n_bins() {
            return Err(DspError::ShapeMismatch {
                what: "density",
                expected: self.n_bins(),
                got: density.len(),
            });
        }
        let k = self.n_segments(x.len());
        if k == 0 {
            return Err(DspError::TooShort {
                operation: "welch",
                len: x.len(),
                needed: self.nperseg,
            });
        }
        density.fill(0.0);
        let w = 1.0 / k as f64;
        for start in self.segment_starts(x.len()) {
            self.accumulate_segment(&x[start..start + self.nperseg], density, w);
        }
        Ok(())
    }

    /// Welch PSD of `x` (allocating twin of [`psd_into`](Self::psd_into)).
    ///
    /// # Errors
    /// As [`psd_into`](Self::psd_into).
    pub fn psd(&mut self, x: &[f64]) -> Result<Psd> {
        let mut density = vec![0.0; self.n_bins()];
        self.psd_into(x, &mut density)?;
        Ok(Psd {
            freqs: self.freqs(),
            density,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parseval_white_noise_and_sine_peak() {
        let fs = 256.0;
        let n = 256 * 60;
        let x: Vec<f64> = (0..n)
            .map(|i| 10.0 * (2.0 * std::f64::consts::PI * 10.0 * i as f64 / fs).sin())
            .collect();
        let mut w = Welch::try_new(fs, 512, 256).unwrap();
        let psd = w.psd(&x).unwrap();
        let peak = psd
            .density
            .iter()
            .cloned()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
            .0;
        assert_eq!(psd.freqs[peak], 10.0);
        // Total power of a sine of amplitude A is A^2 / 2.
        let total: f64 = psd.density.iter().sum::<f64>() * psd.df();
        assert!((total - 50.0).abs() < 0.5, "{total}");
    }

    #[test]
    fn refuses_bad_parameters() {
        assert!(Welch::try_new(256.0, 0, 0).is_err());
        assert!(Welch::try_new(256.0, 256, 256).is_err());
        assert!(Welch::try_new(0.0, 256, 128).is_err());
        let mut w = Welch::try_new(256.0, 256, 128).unwrap();
        assert!(matches!(w.psd(&[0.0; 100]), Err(DspError::TooShort { .. })));
    }
}
