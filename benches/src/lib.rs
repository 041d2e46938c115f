//! Theta's benchmarks: criterion groups per crate and the `theta-bench` macro runner.

pub mod audit;
