//! The encrypted chunk store (issue 4).
