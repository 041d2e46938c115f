//! Notch filters for mains interference, as SciPy's `iirnotch`.

use super::error::{DspError, Result, positive};
use super::sos::Sos;
use std::f64::consts::PI;

/// Second-order IIR notch at `w0` Hz with quality factor `q` for sample rate `fs`, as
/// `scipy.signal.iirnotch(w0, Q, fs)` (returned as one second-order section; `b`, `a` are the
/// row's halves).
///
/// # Errors
/// [`DspError::InvalidParameter`] when `q` or `fs` is not positive or `w0` is not strictly between 0
/// and Nyquist.
pub fn iirnotch(w0: f64, q: f64, fs: f64) -> Result<Sos> {
    let fs = positive("fs", fs)?;
    let q = positive("notch_q", q)?;
    let w = 2.0 * w0 / fs;
    // SciPy accepts 0 and Nyquist, where the notch degenerates; refuse them.
    if !(w.is_finite() && w > 0.0 && w < 1.0) {
        return Err(DspError::InvalidParameter {
            field: "notch",
            reason: format!(
                "notch frequency {w0} Hz must be strictly between 0 and Nyquist ({} Hz)",
                fs / 2.0
            ),
        });
    }
    let bw = w / q * PI;
    let w = w * PI;
    let beta = (bw / 2.0).tan();
    let gain = 1.0 / (1.0 + beta);
    let c = w.cos();
    Sos::try_new(vec![[
        gain,
        gain * (-2.0 * c),
        gain,
        1.0,
        -2.0 * gain * c,
        2.0 * gain - 1.0,
    ]])
}

/// `base`, `2 base`, `3 base`… strictly below Nyquist (mains harmonics to notch).
pub fn notch_harmonics(base: f64, fs: f64) -> Vec<f64> {
    if !(base.is_finite() && base > 0.0 && fs.is_finite() && fs > 0.0) {
        return Vec::new();
    }
    (1..)
        .map(|k| k as f64 * base)
        .take_while(|f| *f < fs / 2.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notch_removes_mains_and_keeps_the_rest() {
        let sos = iirnotch(50.0, 30.0, 256.0).unwrap();
        assert!(sos.gain_at(50.0, 256.0) < 1e-12);
        assert!((sos.gain_at(0.0, 256.0) - 1.0).abs() < 1e-12);
        assert!((sos.gain_at(10.0, 256.0) - 1.0).abs() < 1e-3);
        assert!(iirnotch(128.0, 30.0, 256.0).is_err());
        assert!(iirnotch(50.0, 0.0, 256.0).is_err());
    }

    #[test]
    fn harmonics_stop_below_nyquist() {
        assert_eq!(notch_harmonics(50.0, 256.0), vec![50.0, 100.0]);
        assert_eq!(
            notch_harmonics(60.0, 500.0),
            vec![60.0, 120.0, 180.0, 240.0]
        );
    }
}
