//! The filter cascade the viewer and CLI ask for (`--highpass`, `--lowpass`, `--notch`, `--order`),
//! validated and built into one [`Sos`].

use super::butterworth::{BandType, MAX_ORDER, butter};
use super::error::{DspError, Result, positive};
use super::notch::{iirnotch, notch_harmonics};
use super::sos::Sos;
use serde::{Deserialize, Serialize};

/// Most notches one cascade may hold, harmonics included: mains and its harmonics up to 800 Hz
/// at 50 Hz. Each is a section that every sample of a page passes twice, and the page plan's
/// start-up analysis costs the square of the section count, so a request must not choose it
/// freely.
pub const MAX_NOTCHES: usize = 16;

/// A display filter: Butterworth high-pass and low-pass of one order, then notches.
///
/// JSON form (every field optional): `{"highpass": 0.5, "lowpass": 70, "notch": [50],
/// "order": 4, "notch_q": 30, "notch_harmonics": false}`. The cascade runs high-pass sections, then
/// low-pass sections, then one `iirnotch` per notch frequency (with its harmonics below Nyquist
/// when `notch_harmonics` is set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterSpec {
    /// High-pass cut-off in Hz (`--highpass`).
    pub highpass: Option<f64>,
    /// Low-pass cut-off in Hz (`--lowpass`).
    pub lowpass: Option<f64>,
    /// Notch frequencies in Hz (`--notch`, repeatable).
    pub notch: Vec<f64>,
    /// Butterworth order of both high- and low-pass, 1..=8 (`--order`, default 4).
    pub order: usize,
    /// Notch quality factor (default 30, as the issue specifies).
    pub notch_q: f64,
    /// Also notch every harmonic of each notch frequency below Nyquist.
    pub notch_harmonics: bool,
}

impl Default for FilterSpec {
    fn default() -> Self {
        Self {
            highpass: None,
            lowpass: None,
            notch: Vec::new(),
            order: 4,
            notch_q: 30.0,
            notch_harmonics: false,
        }
    }
}

impl FilterSpec {
    /// True when the spec asks for no filtering at all.
    pub fn is_empty(&self) -> bool {
        self.highpass.is_none() && self.lowpass.is_none() && self.notch.is_empty()
    }

    /// Build the cascade for sample rate `fs`; `None` when [`is_empty`](Self::is_empty).
    ///
    /// # Errors
    /// [`DspError::InvalidParameter`] naming the field: a cut-off or notch not strictly between 0
    /// and Nyquist, `order` outside 1..=8, a high-pass at or above the low-pass, a non-positive Q,
    /// more than [`MAX_NOTCHES`] notches.
    pub fn build_opt(&self, fs: f64) -> Result<Option<Sos>> {
        let fs = positive("fs", fs)?;
        if !(1..=MAX_ORDER).contains(&self.order) {
            return Err(DspError::InvalidParameter {
                field: "order",
                reason: format!("must be in 1..={MAX_ORDER}, got {}", self.order),
            });
        }
        let nyq = fs / 2.0;
        let check = |field: &'static str, f: f64| -> Result<f64> {
            if f.is_finite() && f > 0.0 && f < nyq {
                Ok(f)
            } else {
                Err(DspError::InvalidParameter {
                    field,
                    reason: format!(
                        "{f} Hz must be strictly between 0 and Nyquist ({nyq} Hz at {fs} Hz sampling)"
                    ),
                })
            }
        };
        if let (Some(h), Some(l)) = (self.highpass, self.lowpass)
            && h >= l
        {
            return Err(DspError::InvalidParameter {
                field: "highpass",
                reason: format!("high-pass {h} Hz must be below low-pass {l} Hz"),
            });
        }
        let mut sections: Vec<[f64; 6]> = Vec::new();
        if let Some(h) = self.highpass {
            let h = check("highpass", h)?;
            sections
                .extend_from_slice(butter(self.order, &[h], BandType::Highpass, fs)?.sections());
        }
        if let Some(l) = self.lowpass {
            let l = check("lowpass", l)?;
            sections.extend_from_slice(butter(self.order, &[l], BandType::Lowpass, fs)?.sections());
        }
        let q = positive("notch_q", self.notch_q)?;
        let mut notches = 0usize;
        for &f in &self.notch {
            let f = check("notch", f)?;
            let freqs = if self.notch_harmonics {
                notch_harmonics(f, fs)
            } else {
                vec![f]
            };
            notches += freqs.len();
            if notches > MAX_NOTCHES {
                return Err(DspError::InvalidParameter {
                    field: "notch",
                    reason: format!("more than {MAX_NOTCHES} notches (harmonics included)"),
                });
            }
            for h in freqs {
                sections.extend_from_slice(iirnotch(h, q, fs)?.sections());
            }
        }
        if sections.is_empty() {
            Ok(None)
        } else {
            Sos::try_new(sections).map(Some)
        }
    }

    /// Build the cascade for sample rate `fs`.
    ///
    /// # Errors
    /// As [`build_opt`](Self::build_opt), and [`DspError::InvalidParameter`] when the spec is empty.
    pub fn build(&self, fs: f64) -> Result<Sos> {
        self.build_opt(fs)?.ok_or(DspError::InvalidParameter {
            field: "filter",
            reason: "no high-pass, low-pass or notch given".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notches_are_counted_with_their_harmonics_and_capped() {
        let spec = |notch: Vec<f64>, harmonics: bool| FilterSpec {
            notch,
            notch_harmonics: harmonics,
            ..FilterSpec::default()
        };
        let sections = |s: FilterSpec| s.build(2048.0).map(|c| c.sections().len());
        assert_eq!(
            sections(spec(vec![50.0; MAX_NOTCHES], false)).unwrap(),
            MAX_NOTCHES
        );
        // 50 Hz and its harmonics below 1024 Hz: 20 notches.
        for s in [
            spec(vec![50.0; MAX_NOTCHES + 1], false),
            spec(vec![50.0], true),
        ] {
            assert!(matches!(
                sections(s),
                Err(DspError::InvalidParameter { field: "notch", .. })
            ),);
        }
        assert_eq!(sections(spec(vec![200.0], true)).unwrap(), 5);
    }

    #[test]
    fn cli_cascade_has_expected_sections() {
        let spec = FilterSpec {
            highpass: Some(0.5),
            lowpass: Some(70.0),
            notch: vec![50.0],
            ..Default::default()
        };
        let sos = spec.build(256.0).unwrap();
        assert_eq!(sos.n_sections(), 2 + 2 + 1);
        assert!(sos.gain_at(50.0, 256.0) < 1e-9);
        assert!((sos.gain_at(10.0, 256.0) - 1.0).abs() < 1e-2);
        let spec: FilterSpec =
            serde_json::from_str(r#"{"highpass": 1, "notch": [60], "notch_harmonics": true}"#)
                .unwrap();
        assert_eq!(spec.build(500.0).unwrap().n_sections(), 2 + 4);
    }

    #[test]
    fn validation_names_the_field() {
        let field = |s: FilterSpec| match s.build(256.0) {
            Err(DspError::InvalidParameter { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(FilterSpec {
                lowpass: Some(128.0),
                ..Default::default()
            }),
            "lowpass"
        );
        assert_eq!(
            field(FilterSpec {
                highpass: Some(-1.0),
                ..Default::default()
            }),
            "highpass"
        );
        assert_eq!(
            field(FilterSpec {
                highpass: Some(1.0),
                order: 9,
                ..Default::default()
            }),
            "order"
        );
        assert_eq!(
            field(FilterSpec {
                highpass: Some(1.0),
                order: 0,
                ..Default::default()
            }),
            "order"
        );
        assert_eq!(
            field(FilterSpec {
                highpass: Some(40.0),
                lowpass: Some(30.0),
                ..Default::default()
            }),
            "highpass"
        );
        assert_eq!(
            field(FilterSpec {
                notch: vec![200.0],
                ..Default::default()
            }),
            "notch"
        );
        assert_eq!(
            field(FilterSpec {
                notch: vec![50.0],
                notch_q: 0.0,
                ..Default::default()
            }),
            "notch_q"
        );
        assert_eq!(field(FilterSpec::default()), "filter");
        assert!(serde_json::from_str::<FilterSpec>(r#"{"hipass": 1}"#).is_err());
    }
}
