//! Crate-level tests: round trips, hostile input, golden files.
mod roundtrip;
