//! Causal (`sosfilt`) and zero-phase forward-backward (`sosfiltfilt`) filtering with SciPy's
//! semantics, and a stateful causal filter for consecutive blocks.

use super::error::{DspError, Result};
use super::sos::Sos;

/// Padding of `sosfiltfilt` before the forward pass, as SciPy's `padtype`/`padlen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FiltFiltPad {
    /// `padtype='odd'` with SciPy's default `padlen` ([`Sos::default_padlen`]).
    #[default]
    Odd,
    /// `padtype='odd'` with an explicit `padlen`.
    OddLen(usize),
    /// `padtype=None`: no extension (the steady-state initial conditions still apply).
    None,
}

/// One direct-form II transposed step through every section; SciPy's `_sosfilt` operation order,
/// so results agree to the last bit where the compiler keeps the order (no FMA contraction in Rust).
#[inline(always)]
fn step(sections: &[[f64; 6]], zi: &mut [[f64; 2]], x: f64) -> f64 {
    let mut x = x;
    for (s, z) in sections.iter().zip(zi.iter_mut()) {
        let y = s[0] * x + z[0];
        z[0] = s[1] * x - s[4] * y + z[1];
        z[1] = s[2] * x - s[5] * y;
        x = y;
    }
    x
}

/// Filter `x` into `y` causally, starting from and updating the per-section state `zi`
/// (`scipy.signal.sosfilt(sos, x, zi=zi)`; pass zeros for SciPy's default).
///
/// # Panics
/// If `zi` does not have one entry per section or `y` is shorter than `x`.
pub fn sosfilt_into(sos: &Sos, x: &[f64], zi: &mut [[f64; 2]], y: &mut [f64]) {
    assert_eq!(zi.len(), sos.n_sections(), "one state pair per section");
    let sections = sos.sections();
    for (xi, yi) in x.iter().zip(&mut y[..x.len()]) {
        *yi = step(sections, zi, *xi);
    }
}

/// Steady-state initial conditions for a unit step, per section, as `scipy.signal.sosfilt_zi`
/// (same as [`Sos::zi`]).
pub fn sosfilt_zi(sos: &Sos) -> Vec<[f64; 2]> {
    sos.zi()
}

/// Causal filter from an optional initial state: returns the output and the final state, as
/// `scipy.signal.sosfilt(sos, x, zi=zi)` (zero state when `zi` is `None`).
///
/// # Errors
/// [`DspError::ShapeMismatch`] when `zi` does not have one pair per section.
pub fn sosfilt(sos: &Sos, x: &[f64], zi: Option<&[[f64; 2]]>) -> Result<(Vec<f64>, Vec<[f64; 2]>)> {
    let mut state = match zi {
        Some(z) if z.len() != sos.n_sections() => {
            return Err(DspError::ShapeMismatch {
                what: "zi",
                expected: sos.n_sections(),
                got: z.len(),
            });
        }
        Some(z) => z.to_vec(),
        None => vec![[0.0; 2]; sos.n_sections()],
    };
    let mut y = vec![0.0; x.len()];
    sosfilt_into(sos, x, &mut state, &mut y);
    Ok((y, state))
}

/// Zero-phase forward-backward filter with SciPy's `sosfiltfilt` semantics: odd extension by
/// `padlen` samples each side (or none), steady-state initial conditions scaled by the first sample
/// of each pass, forward pass, backward pass, crop.
///
/// # Errors
/// [`DspError::TooShort`] when `x.len() <= padlen` (SciPy raises the same).
pub fn sosfiltfilt(sos: &Sos, x: &[f64], pad: FiltFiltPad) -> Result<Vec<f64>> {
    let edge = match pad {
        FiltFiltPad::Odd => sos.default_padlen(),
        FiltFiltPad::OddLen(n) => n,
        FiltFiltPad::None => 0,
    };
    if x.len() <= edge {
        return Err(DspError::TooShort {
            operation: "sosfiltfilt",
            len: x.len(),
            needed: edge + 1,
        });
    }
    let mut ext = Vec::with_capacity(x.len() + 2 * edge);
    odd_ext_left(x, edge, &mut ext);
    ext.extend_from_slice(x);
    odd_ext_right(x, edge, &mut ext);
    let zi = sos.zi();
    let sections = sos.sections();
    let mut state: Vec<[f64; 2]> = zi.iter().map(|z| [z[0] * ext[0], z[1] * ext[0]]).collect();
    for v in ext.iter_mut() {
        *v = step(sections, &mut state, *v);
    }
    let last = ext[ext.len() - 1];
    for (s, z) in state.iter_mut().zip(&zi) {
        *s = [z[0] * last, z[1] * last];
    }
    for v in ext.iter_mut().rev() {
        *v = step(sections, &mut state, *v);
    }
    Ok(ext[edge..edge + x.len()].to_vec())
}

/// Append SciPy's left odd extension of length `n`: `2 x[0] - x[n], …, 2 x[0] - x[1]`.
pub(crate) fn odd_ext_left(x: &[f64], n: usize, out: &mut Vec<f64>) {
    out.extend((0..n).map(|i| 2.0 * x[0] - x[n - i]));
}

/// Append SciPy's right odd extension of length `n`: `2 x[-1] - x[-2], …, 2 x[-1] - x[-n-1]`.
pub(crate) fn odd_ext_right(x: &[f64], n: usize, out: &mut Vec<f64>) {
    let last = x.len() - 1;
    out.extend((0..n).map(|j| 2.0 * x[last] - x[last - 1 - j]));
}

/// A causal filter that keeps its state between calls, so consecutive blocks of one channel filter
/// exactly as one long call would (live streams, sequential paging).
#[derive(Debug, Clone)]
pub struct SosFilter {
    sos: Sos,
    zi: Vec<[f64; 2]>,
    state: Vec<[f64; 2]>,
}

impl SosFilter {
    /// A filter at rest (zero state, SciPy's default).
    pub fn new(sos: Sos) -> Self {
        let zi = sos.zi();
        let state = vec![[0.0; 2]; sos.n_sections()];
        Self { sos, zi, state }
    }

    /// The filter's design.
    pub fn sos(&self) -> &Sos {
        &self.sos
    }

    /// Reset to zero state.
    pub fn reset(&mut self) {
        self.state.iter_mut().for_each(|s| *s = [0.0; 2]);
    }

    /// Reset to the steady state of a constant input `x0` (no start-up transient from a DC offset).
    pub fn reset_steady(&mut self, x0: f64) {
        for (s, z) in self.state.iter_mut().zip(&self.zi) {
            *s = [z[0] * x0, z[1] * x0];
        }
    }

    /// The current state (one `[z0, z1]` per section), e.g. to save between sessions.
    pub fn state(&self) -> &[[f64; 2]] {
        &self.state
    }

    /// Filter the next block into `y` (`y.len() >= x.len()`).
    ///
    /// # Panics
    /// If `y` is shorter than `x`.
    pub fn process(&mut self, x: &[f64], y: &mut [f64]) {
        sosfilt_into(&self.sos, x, &mut self.state, y);
    }

    /// Filter the next block in place.
    pub fn process_in_place(&mut self, x: &mut [f64]) {
        let sections = self.sos.sections();
        for v in x.iter_mut() {
            *v = step(sections, &mut self.state, *v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{BandType, butter};
    use proptest::prelude::*;

    fn hp() -> Sos {
        butter(4, &[1.0], BandType::Highpass, 100.0).unwrap()
    }

    #[test]
    fn impulse_response_of_one_section_is_its_difference_equation() {
        let sos = Sos::try_new(vec![[0.5, 0.25, 0.0, 1.0, -0.5, 0.0]]).unwrap();
        let mut x = vec![0.0; 6];
        x[0] = 1.0;
        let (y, _) = sosfilt(&sos, &x, None).unwrap();
        // y[n] = 0.5 x[n] + 0.25 x[n-1] + 0.5 y[n-1]
        let expect = [0.5, 0.5, 0.25, 0.125, 0.0625, 0.03125];
        for (a, b) in y.iter().zip(expect) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn stateful_blocks_equal_one_call() {
        let x: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 113) as f64 - 50.0)
            .collect();
        let (whole, _) = sosfilt(&hp(), &x, None).unwrap();
        let mut f = SosFilter::new(hp());
        let mut out = vec![0.0; x.len()];
        for (xc, yc) in x.chunks(97).zip(out.chunks_mut(97)) {
            f.process(xc, yc);
        }
        assert_eq!(whole, out);
    }

    #[test]
    fn dc_offset_causes_no_transient_with_steady_start() {
        let x = vec![1000.0; 500];
        let y = sosfiltfilt(&hp(), &x, FiltFiltPad::Odd).unwrap();
        assert!(y.iter().all(|v| v.abs() < 1e-9));
        let mut f = SosFilter::new(hp());
        f.reset_steady(1000.0);
        let mut y = x.clone();
        f.process_in_place(&mut y);
        assert!(y.iter().all(|v| v.abs() < 1e-9));
    }

    #[test]
    fn too_short_is_refused() {
        let sos = hp();
        let n = sos.default_padlen();
        assert!(matches!(
            sosfiltfilt(&sos, &vec![0.0; n], FiltFiltPad::Odd),
            Err(DspError::TooShort { .. })
        ));
        assert!(sosfiltfilt(&sos, &vec![0.0; n + 1], FiltFiltPad::Odd).is_ok());
        assert!(sosfiltfilt(&sos, &[0.0], FiltFiltPad::None).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn filtfilt_is_linear(
            a in proptest::collection::vec(-1000.0f64..1000.0, 64..300),
            k in -10.0f64..10.0,
        ) {
            let sos = butter(2, &[5.0, 20.0], BandType::Bandpass, 100.0).unwrap();
            let b: Vec<f64> = a.iter().enumerate().map(|(i, v)| v * 0.3 + i as f64).collect();
            let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| k * x + y).collect();
            let fa = sosfiltfilt(&sos, &a, FiltFiltPad::Odd).unwrap();
            let fb = sosfiltfilt(&sos, &b, FiltFiltPad::Odd).unwrap();
            let fs = sosfiltfilt(&sos, &sum, FiltFiltPad::Odd).unwrap();
            let scale = sum.iter().chain(&a).chain(&b).fold(1.0f64, |m, v| m.max(v.abs())) * (1.0 + k.abs());
            for i in 0..a.len() {
                prop_assert!((k * fa[i] + fb[i] - fs[i]).abs() < 1e-9 * scale);
            }
        }
    }
}
