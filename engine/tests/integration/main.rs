//! Integration tests of theta-engine, one binary with a module per area.

mod common;
mod synth;

mod store_annotations;
mod store_crash;
mod store_crypto;
mod store_keys;
mod store_lease;
mod store_overview;
mod store_window;
