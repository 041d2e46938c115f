//! theta-engine's integration tests: one binary, one module per area.

mod common;
mod synth;

mod edf;
mod store_annotations;
mod store_crash;
mod store_crypto;
mod store_keys;
mod store_lease;
mod store_overview;
mod store_projects;
mod store_real;
mod store_window;
