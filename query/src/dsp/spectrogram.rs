//! Spectrogram: one Welch periodogram per segment, for quantitative trends over long recordings.
//!
//! Equals `scipy.signal.spectrogram(x, fs, window='hann', nperseg, noverlap, detrend='constant',
//! scaling='density', mode='psd')` (note SciPy's own default window is a Tukey; we use the same
//! periodic Hann as [`Welch`] so a spectrogram's time average is the Welch PSD).

use super::error::{DspError, Result};
use super::welch::Welch;

/// Power spectral density over time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spectrogram {
    /// Bin frequencies in Hz.
    pub freqs: Vec<f64>,
    /// Segment centre times in seconds from the first sample: `(start + nperseg / 2) / fs`.
    pub times: Vec<f64>,
    /// `density[t * freqs.len() + f]`: row-major, one row per segment.
    pub density: Vec<f64>,
}

impl Spectrogram {
    /// The density row of segment `t`.
    pub fn row(&self, t: usize) -> &[f64] {
        let nf = self.freqs.len();
        &self.density[t * nf..(t + 1) * nf]
    }
}

/// Spectrogram of `x` with the estimator's window, segment length and overlap.
///
/// # Errors
/// [`DspError::TooShort`] when `x` holds less than one segment.
pub fn spectrogram(welch: &mut Welch, x: &[f64]) -> Result<Spectrogram> {
    let nseg = welch.n_segments(x.len());
    if nseg == 0 {
        return Err(DspError::TooShort {
            operation: "spectrogram",
            len: x.len(),
            needed: welch.nperseg(),
        });
    }
    let nb = welch.n_bins();
    let (n, fs) = (welch.nperseg(), welch.fs());
    let mut density = vec![0.0; nseg * nb];
    let mut times = Vec::with_capacity(nseg);
    for (t, start) in welch.segment_starts(x.len()).enumerate() {
        welch.accumulate_segment(
            &x[start..start + n],
            &mut density[t * nb..(t + 1) * nb],
            1.0,
        );
        times.push((start as f64 + n as f64 / 2.0) / fs);
    }
    Ok(Spectrogram {
        freqs: welch.freqs(),
        times,
        density,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_average_is_the_welch_psd() {
        let x: Vec<f64> = (0..5000)
            .map(|i| ((i * 37) % 101) as f64 - 50.0 + (i as f64 * 0.3).sin() * 20.0)
            .collect();
        let mut w = Welch::try_new(200.0, 256, 128).unwrap();
        let sg = spectrogram(&mut w, &x).unwrap();
        let psd = w.psd(&x).unwrap();
        let nt = sg.times.len();
        for f in 0..sg.freqs.len() {
            let mean: f64 = (0..nt).map(|t| sg.row(t)[f]).sum::<f64>() / nt as f64;
            assert!((mean - psd.density[f]).abs() <= 1e-9 * psd.density[f].abs().max(1e-12));
        }
        assert!((sg.times[0] - 128.0 / 200.0).abs() < 1e-12);
    }
}
