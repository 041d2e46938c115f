//! Second-order sections: the one representation every IIR filter here is designed into.

use super::error::{DspError, Result};
use serde::{Deserialize, Serialize};

/// A cascade of second-order sections, each row `[b0, b1, b2, a0, a1, a2]` with `a0 == 1`, as
/// SciPy's `output='sos'`. Sections run in order (row 0 first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<[f64; 6]>", into = "Vec<[f64; 6]>")]
pub struct Sos {
    sections: Vec<[f64; 6]>,
}

impl Sos {
    /// Wrap rows `[b0, b1, b2, a0, a1, a2]`.
    ///
    /// # Errors
    /// [`DspError::InvalidParameter`] when there is no section, a coefficient is not finite, or
    /// `a0 != 1` (SciPy's `sosfilt` refuses the same).
    pub fn try_new(sections: Vec<[f64; 6]>) -> Result<Self> {
        if sections.is_empty() {
            return Err(DspError::InvalidParameter {
                field: "sos",
                reason: "a filter needs at least one section".into(),
            });
        }
        for (i, s) in sections.iter().enumerate() {
            if s.iter().any(|c| !c.is_finite()) {
                return Err(DspError::InvalidParameter {
                    field: "sos",
                    reason: format!("section {i} has a non-finite coefficient"),
                });
            }
            if s[3] != 1.0 {
                return Err(DspError::InvalidParameter {
                    field: "sos",
                    reason: format!("section {i} has a0 = {} (must be 1)", s[3]),
                });
            }
        }
        Ok(Self { sections })
    }

    /// The rows, in filtering order.
    pub fn sections(&self) -> &[[f64; 6]] {
        &self.sections
    }

    /// Number of second-order sections.
    pub fn n_sections(&self) -> usize {
        self.sections.len()
    }

    /// This cascade followed by `other` (a filter chain: `self` runs first).
    pub fn then(mut self, other: &Sos) -> Sos {
        self.sections.extend_from_slice(&other.sections);
        self
    }

    /// Steady-state initial conditions of the cascade for a unit step input, as SciPy's
    /// `sosfilt_zi`: scaling them by `x[0]` starts the filter as if `x[0]` had always been there.
    pub fn zi(&self) -> Vec<[f64; 2]> {
        let mut scale = 1.0;
        self.sections
            .iter()
            .map(|s| {
                let z = lfilter_zi2(s);
                let out = [scale * z[0], scale * z[1]];
                // H(1) of this section: the step response's steady state feeds the next section.
                scale *= (s[0] + s[1] + s[2]) / (s[3] + s[4] + s[5]);
                out
            })
            .collect()
    }

    /// SciPy's default `padlen` for `sosfiltfilt`: `3 * (2 * n_sections + 1 - min(#b2 == 0, #a2 == 0))`.
    pub fn default_padlen(&self) -> usize {
        let zb = self.sections.iter().filter(|s| s[2] == 0.0).count();
        let za = self.sections.iter().filter(|s| s[5] == 0.0).count();
        3 * (2 * self.sections.len() + 1 - zb.min(za))
    }

    /// Magnitude of the frequency response `|H(e^{jw})|` at `freq` for sample rate `fs`.
    pub fn gain_at(&self, freq: f64, fs: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / fs;
        let (c1, s1, c2, s2) = (w.cos(), -w.sin(), (2.0 * w).cos(), -(2.0 * w).sin());
        self.sections
            .iter()
            .map(|s| {
                let (nr, ni) = (s[0] + s[1] * c1 + s[2] * c2, s[1] * s1 + s[2] * s2);
                let (dr, di) = (s[3] + s[4] * c1 + s[5] * c2, s[4] * s1 + s[5] * s2);
                ((nr * nr + ni * ni) / (dr * dr + di * di)).sqrt()
            })
            .product()
    }

    /// Largest pole radius of the cascade (< 1 for a stable filter).
    pub fn max_pole_radius(&self) -> f64 {
        self.sections
            .iter()
            .map(|s| {
                let (a1, a2) = (s[4], s[5]);
                let disc = a1 * a1 - 4.0 * a2;
                if disc < 0.0 {
                    a2.abs().sqrt()
                } else {
                    let r = disc.sqrt();
                    ((-a1 + r) / 2.0).abs().max(((-a1 - r) / 2.0).abs())
                }
            })
            .fold(0.0, f64::max)
    }
}

impl TryFrom<Vec<[f64; 6]>> for Sos {
    type Error = DspError;
    fn try_from(v: Vec<[f64; 6]>) -> Result<Self> {
        Sos::try_new(v)
    }
}

impl From<Sos> for Vec<[f64; 6]> {
    fn from(s: Sos) -> Self {
        s.sections
    }
}

/// `scipy.signal.lfilter_zi` for one section (`a0 == 1`): solves `(I - A^T) zi = b[1:] - a[1:] b0`.
fn lfilter_zi2(s: &[f64; 6]) -> [f64; 2] {
    let (b0, b1, b2, a1, a2) = (s[0], s[1], s[2], s[4], s[5]);
    let rhs0 = b1 - a1 * b0;
    let rhs1 = b2 - a2 * b0;
    // (1 + a1) z0 - z1 = rhs0 ; a2 z0 + z1 = rhs1
    let z0 = (rhs0 + rhs1) / (1.0 + a1 + a2);
    [z0, rhs1 - a2 * z0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_sections() {
        assert!(Sos::try_new(vec![]).is_err());
        assert!(Sos::try_new(vec![[1.0, 0.0, 0.0, 2.0, 0.0, 0.0]]).is_err());
        assert!(Sos::try_new(vec![[f64::NAN, 0.0, 0.0, 1.0, 0.0, 0.0]]).is_err());
        assert!(serde_json::from_str::<Sos>("[[1,0,0,1,0.5,0]]").is_ok());
        assert!(serde_json::from_str::<Sos>("[[1,0,0,3,0.5,0]]").is_err());
    }

    #[test]
    fn zi_is_the_step_steady_state() {
        let sos = Sos::try_new(vec![
            [0.2, 0.4, 0.2, 1.0, -0.5, 0.2],
            [1.0, -2.0, 1.0, 1.0, -1.8, 0.81],
        ])
        .unwrap();
        let mut zi = sos.zi();
        // Filtering a constant 1 from the steady state leaves the state unchanged.
        let mut y = [0.0; 8];
        super::super::filtfilt::sosfilt_into(&sos, &[1.0; 8], &mut zi, &mut y);
        let dc: f64 = sos
            .sections()
            .iter()
            .map(|s| (s[0] + s[1] + s[2]) / (s[3] + s[4] + s[5]))
            .product();
        for v in y {
            assert!((v - dc).abs() < 1e-12, "{v} vs {dc}");
        }
        assert!((sos.gain_at(0.0, 2.0) - dc.abs()).abs() < 1e-12);
    }
}
