//! Signal processing (issue 5).
