//! Theta's benchmarks: criterion groups per crate and the `theta-bench` macro runner.
//!
//! Each `theta-bench` sub-command lives in its own module and measures Theta against its peers
//! in the same run.

pub mod audit;
pub mod page;
pub mod read;
pub mod service;
pub mod store;
