//! Errors of the signal-processing layer.

/// Result alias for the DSP layer.
pub type Result<T, E = DspError> = std::result::Result<T, E>;

/// What went wrong in filter design, filtering, resampling or spectral estimation.
///
/// Caller mistakes (bad parameters, too-short inputs) are kept apart by variant so a CLI or HTTP
/// layer can map them to a 4xx with the field named. No variant carries sample values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DspError {
    /// A design or processing parameter is out of range.
    #[error("invalid {field}: {reason}")]
    InvalidParameter {
        /// The parameter's name, as the caller spelled it (`highpass`, `order`, `nperseg`…).
        field: &'static str,
        /// Why it was refused, with the allowed range.
        reason: String,
    },
    /// The signal is too short for the requested operation (SciPy raises the same cases).
    #[error("signal of {len} samples is too short for {operation}: needs at least {needed}")]
    TooShort {
        /// The operation (`sosfiltfilt`, `welch`…).
        operation: &'static str,
        /// Samples given.
        len: usize,
        /// Samples needed.
        needed: usize,
    },
    /// Buffers or blocks whose shapes do not agree.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which argument.
        what: &'static str,
        /// Expected length or count.
        expected: usize,
        /// Given length or count.
        got: usize,
    },
    /// A page was handed less real-data padding than its plan requires, away from a recording edge.
    #[error(
        "page has {given} samples of padding on the {side} side, the filter needs {needed} (or the recording edge)"
    )]
    InsufficientPadding {
        /// `left` or `right`.
        side: &'static str,
        /// Samples of real data given beyond the page on that side.
        given: usize,
        /// Samples the plan needs.
        needed: usize,
    },
    /// A montage could not be parsed or resolved.
    #[error(transparent)]
    Montage(#[from] crate::montage::MontageError),
}

/// Refuse a non-finite or non-positive parameter.
pub(crate) fn positive(field: &'static str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(DspError::InvalidParameter {
            field,
            reason: format!("must be a finite number > 0, got {v}"),
        })
    }
}
