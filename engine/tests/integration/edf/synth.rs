//! Generated recordings (the fixtures crate's own, independent EDF writer) read back by the
//! engine: a cross-check of reader and generator.
