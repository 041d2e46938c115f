//! Theta's benchmarks: criterion groups per crate and the `theta-bench` macro runner.
//!
//! Each `theta-bench` subcommand has a module here; `edf_samples` and `peers` are the codec
//! benchmark's private EDF/BDF de-interleaver and peer codecs.

pub mod codecs;
pub mod edf_samples;
pub mod peers;
