//! Theta's benchmarks: criterion groups per crate and the `theta-bench` macro runner.
//!
//! Each `theta-bench` sub-command lives in its own module and measures Theta against its peers
//! in the same run; `edf_samples` and `peers` are the codec benchmark's private EDF/BDF
//! de-interleaver and peer codecs.

pub mod audit;
pub mod codecs;
pub mod edf_samples;
pub mod export;
pub mod page;
pub mod peers;
pub mod read;
pub mod service;
pub mod service_audit;
mod stats;
pub mod store;
