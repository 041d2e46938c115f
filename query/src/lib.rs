//! Theta's query layer: DSP (filters, montages, decimation, spectra), DataFusion tables and
//! functions over the store, research export and pseudonymisation.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dsp;
pub mod export;
pub mod montage;
pub mod sql;
pub mod view;
