//! Signal processing for EEG pages (issue 5): IIR filter design and filtering, seamless pages,
//! display decimation, resampling and spectra.
//!
//! Data flow for one displayed page (see [`pipeline::PageProcessor`]):
//!
//! ```text
//! store read (channels x [page + real-data padding], f64 physical units)
//!   -> montage (sparse linear combination, written lane-interleaved)
//!   -> filter cascade (zero-phase forward-backward or causal, f64 state)
//!   -> crop to the page
//!   -> min/max per pixel column, or the samples themselves
//! ```
//!
//! Every filter matches SciPy: [`butterworth`] reproduces `scipy.signal.butter(..., output='sos')`
//! coefficient for coefficient and section for section, [`notch::iirnotch`] reproduces
//! `scipy.signal.iirnotch`, [`filtfilt::sosfiltfilt`] reproduces `scipy.signal.sosfiltfilt`, and
//! [`welch::Welch`] reproduces `scipy.signal.welch`. The golden vectors in
//! `../shared/golden/dsp_scipy.json` check this (`query/tests/dsp_golden.rs`).
//!
//! ```
//! use theta_query::dsp::{FilterSpec, sosfiltfilt, FiltFiltPad};
//! let spec = FilterSpec { highpass: Some(0.5), lowpass: Some(70.0), notch: vec![50.0], ..FilterSpec::default() };
//! let sos = spec.build(256.0)?;
//! let x: Vec<f64> = (0..2560).map(|i| (i as f64 * 0.1).sin() + 100.0).collect();
//! let y = sosfiltfilt(&sos, &x, FiltFiltPad::Odd)?;
//! assert_eq!(y.len(), x.len());
//! # Ok::<(), theta_query::dsp::DspError>(())
//! ```

pub mod bands;
pub mod butterworth;
pub mod decimate;
mod error;
pub mod filtfilt;
pub(crate) mod lanes;
pub mod notch;
pub mod page;
pub mod pipeline;
pub mod resample;
pub mod sos;
pub mod spec;
pub mod spectrogram;
pub mod welch;

pub use bands::{Band, BandPowers, band_power, default_bands};
pub use butterworth::{BandType, butter};
pub use decimate::{MinMax, minmax_columns, minmax_into};
pub use error::{DspError, Result};
pub use filtfilt::{FiltFiltPad, SosFilter, sosfilt, sosfilt_into, sosfilt_zi, sosfiltfilt};
pub use notch::{iirnotch, notch_harmonics};
pub use page::{FilterPlan, PageEdges, Phase};
pub use pipeline::{MAX_PX, Page, PageInput, PageKind, PagePlan, PageProcessor};
pub use resample::Resampler;
pub use sos::Sos;
pub use spec::FilterSpec;
pub use spectrogram::{Spectrogram, spectrogram};
pub use welch::{Psd, Welch};
