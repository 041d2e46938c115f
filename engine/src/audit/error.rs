//! Errors of the audit trail.
//!
//! Messages never carry event contents: a rejected identifier is reported by field name and the
//! position of the first offending character, never by its value, because a caller who put a
//! patient's name where an id belongs must not see it copied into a log line.

use std::path::PathBuf;

/// Result type of the audit module.
pub type Result<T, E = AuditError> = std::result::Result<T, E>;

/// Everything that can go wrong while building, storing, verifying or exporting audit events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A field of an event was rejected by the builder (caller mistake).
    #[error("invalid audit field `{field}`: {reason}")]
    InvalidField {
        /// Which field (`actor`, `session`, `tenant`, …).
        field: &'static str,
        /// Why, without the rejected value.
        reason: String,
    },
    /// A configuration value was refused (retention below the legal minimum, zero interval, …).
    #[error("invalid audit configuration `{setting}`: {reason}")]
    InvalidConfig {
        /// Which setting.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// A key file could not be used.
    #[error("audit key file {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why (never the key material).
        reason: String,
    },
    /// The signing key belongs to another environment than the log (e.g. a dev key on a prod log).
    #[error("audit signing key is tagged `{key}` but the log belongs to environment `{log}`")]
    EnvironmentMismatch {
        /// Environment tag of the key.
        key: String,
        /// Environment tag of the log.
        log: String,
    },
    /// The stored log is not an audit log of a version this build understands, or its metadata is
    /// damaged.
    #[error("audit log {path}: {reason}")]
    Format {
        /// The log file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The head of the chain does not match its signed seal: events were removed or rewritten
    /// since the last append. Appending would hide the damage, so the writer refuses; run
    /// `verify` and keep the file as evidence.
    #[error(
        "audit chain head does not match its signed seal (seal at seq {seal_seq:?}, head at seq {head_seq:?}); \
         refusing to append — run `theta audit verify`"
    )]
    HeadMismatch {
        /// Sequence number the seal covers (`None` if the seal is missing or unreadable).
        seal_seq: Option<u64>,
        /// Sequence number of the last stored event (`None` if there is none).
        head_seq: Option<u64>,
    },
    /// Purging was refused because the part of the chain that would be deleted does not verify;
    /// deleting it would destroy the evidence.
    #[error(
        "refusing to purge: the audit chain does not verify up to seq {through_seq} ({finding})"
    )]
    PurgeRefused {
        /// Last sequence number that would have been purged.
        through_seq: u64,
        /// The first problem found, as text.
        finding: String,
    },
    /// The background appender stopped or could not accept the event in time.
    #[error("audit appender unavailable: {reason}")]
    AppenderUnavailable {
        /// Why.
        reason: String,
    },
    /// A batch could not be committed by the background appender (reported to `flush` callers;
    /// the events stay queued and are retried).
    #[error("audit batch not committed: {reason}")]
    CommitFailed {
        /// The underlying error, as text.
        reason: String,
    },
    /// SQLite failed.
    #[error("audit database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// File I/O failed.
    #[error("audit I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing an export failed.
    #[error("audit export: {reason}")]
    Export {
        /// Why.
        reason: String,
    },
}

impl AuditError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        AuditError::InvalidField {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuditError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        AuditError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
