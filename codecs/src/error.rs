//! The one error type of this crate: a kind to branch on and a message that never holds samples.

use std::fmt;

/// What went wrong, for callers to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended before the encoding did (every strict prefix of a valid block says this).
    Truncated,
    /// The bytes are not a valid encoding.
    Corrupt,
    /// A format version this build does not know.
    UnsupportedVersion,
    /// The caller passed something out of range (sample outside the width, buffer too small,
    /// block too long).
    InvalidArgument,
}

/// A codec error: a kind and a message.
///
/// Messages name the field and byte offset that failed, never sample values, so they can be
/// logged next to health data without leaking it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CodecError {
    /// The category.
    pub kind: ErrorKind,
    /// Human-readable detail: which field, at which byte offset.
    pub message: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// Result alias of this crate.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;

impl CodecError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The input ended inside `what`.
    pub(crate) fn truncated(what: &str, offset: usize) -> Self {
        Self::new(
            ErrorKind::Truncated,
            format!("input ends inside {what} (byte offset {offset})"),
        )
    }

    /// `what` holds an impossible value.
    pub(crate) fn corrupt(what: &str, offset: usize) -> Self {
        Self::new(
            ErrorKind::Corrupt,
            format!("invalid {what} (byte offset {offset})"),
        )
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
}
