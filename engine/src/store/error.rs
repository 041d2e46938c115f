//! Errors of the store.

use crate::crypto::KeyringError;

use super::ids::{ChunkPlace, RecordingId};

/// An error of the input a recording is ingested from (an EDF reader error, for example).
pub type SourceError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Broad category of a [`StoreError`], for callers that map errors to exit codes or HTTP
/// statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCategory {
    /// The caller asked for something that does not exist or is not allowed (unknown
    /// recording or channel, window outside the recording, wrong key, bad argument).
    Caller,
    /// Stored bytes failed authentication or do not parse: corruption or tampering.
    Corruption,
    /// The object store, the key service or the input failed, or a bug.
    Internal,
}

/// Everything that can go wrong in the store. Messages name recordings by their opaque id and
/// places by channel and block numbers; they never contain keys, header fields, annotation
/// text or sample values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No committed recording has this id.
    #[error("unknown recording {recording}")]
    UnknownRecording {
        /// The id asked for.
        recording: RecordingId,
    },
    /// The requested time span does not intersect the recording. (Start and duration are
    /// printed as `Debug`, which spells `1e300` as such rather than in 301 digits.)
    #[error(
        "window start {start:?} s, duration {duration:?} s is outside recording {recording} (0 to {end} s)"
    )]
    WindowOutOfRange {
        /// The recording.
        recording: RecordingId,
        /// Requested start, seconds from the recording start.
        start: f64,
        /// Requested duration in seconds.
        duration: f64,
        /// End of the recording in seconds.
        end: f64,
    },
    /// A channel label or index that the recording does not have.
    #[error("recording {recording} has no channel {channel:?} (it has {available} signals)")]
    UnknownChannel {
        /// The recording.
        recording: RecordingId,
        /// The label or index asked for.
        channel: String,
        /// Number of signals.
        available: usize,
    },
    /// A label that names several channels; select by index instead.
    #[error(
        "channel label {label:?} is ambiguous in recording {recording}: use one of the indices {indices:?}"
    )]
    AmbiguousChannel {
        /// The recording.
        recording: RecordingId,
        /// The label.
        label: String,
        /// The signal indices carrying it.
        indices: Vec<usize>,
    },
    /// An unknown annotation id.
    #[error("recording {recording} has no annotation {id}")]
    UnknownAnnotation {
        /// The recording.
        recording: RecordingId,
        /// The annotation id.
        id: u64,
    },
    /// An argument outside what the store accepts.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What is wrong.
        what: String,
    },
    /// The data key cannot be unwrapped with the keys at hand.
    #[error("wrong key for recording {recording}: {source}")]
    WrongKey {
        /// The recording.
        recording: RecordingId,
        /// What the keyring said.
        source: KeyringError,
    },
    /// The keyring belongs to another environment than the store.
    #[error("the keyring is for environment {keyring:?} but the store is {store:?}")]
    EnvironmentMismatch {
        /// Environment tag of the store.
        store: String,
        /// Environment tag of the keyring.
        keyring: String,
    },
    /// The recording's data key has been destroyed; its data can never be read again.
    #[error("recording {recording} has been shredded")]
    Shredded {
        /// The recording.
        recording: RecordingId,
    },
    /// There is no store at this location.
    #[error("no Theta store at {location} (run `theta init`)")]
    NotAStore {
        /// The location.
        location: String,
    },
    /// `init` on a location that already holds a store.
    #[error("a Theta store already exists at {location}")]
    AlreadyInitialized {
        /// The location.
        location: String,
    },
    /// A concurrent writer won a conditional write (annotations); retry.
    #[error("concurrent update of {what}; retry")]
    Conflict {
        /// What was contended.
        what: String,
    },
    /// The source being ingested failed or is invalid.
    #[error("ingest source: {source}")]
    Source {
        /// The source's error.
        source: SourceError,
    },
    /// A sealed piece failed authentication: altered, moved, swapped or truncated bytes.
    #[error("integrity error in recording {recording}: {place} failed authentication")]
    Integrity {
        /// The recording.
        recording: RecordingId,
        /// Where.
        place: ChunkPlace,
    },
    /// An object does not have the expected structure.
    #[error("corrupt object {object}: {detail}")]
    Corrupt {
        /// Object path.
        object: String,
        /// What does not parse.
        detail: String,
    },
    /// An object of a format version this build does not read.
    #[error("object {object} has format version {version}; this build reads version {supported}")]
    UnsupportedVersion {
        /// Object path.
        object: String,
        /// Version found.
        version: u16,
        /// Version supported.
        supported: u16,
    },
    /// The object store failed.
    #[error("object store: {source}")]
    ObjectStore {
        /// The backend's error (it names the object path).
        #[from]
        source: object_store::Error,
    },
    /// The keyring failed outside of unwrapping a recording's key.
    #[error("keyring: {source}")]
    Keyring {
        /// The keyring's error.
        #[from]
        source: KeyringError,
    },
    /// A bug or a failed background task.
    #[error("internal error: {detail}")]
    Internal {
        /// What happened.
        detail: String,
    },
}

impl StoreError {
    /// The broad category, keeping caller mistakes apart from corruption and failures.
    pub fn category(&self) -> ErrorCategory {
        match self {
            StoreError::UnknownRecording { .. }
            | StoreError::WindowOutOfRange { .. }
            | StoreError::UnknownChannel { .. }
            | StoreError::AmbiguousChannel { .. }
            | StoreError::UnknownAnnotation { .. }
            | StoreError::InvalidArgument { .. }
            | StoreError::WrongKey { .. }
            | StoreError::EnvironmentMismatch { .. }
            | StoreError::Shredded { .. }
            | StoreError::NotAStore { .. }
            | StoreError::AlreadyInitialized { .. }
            | StoreError::Conflict { .. } => ErrorCategory::Caller,
            StoreError::Integrity { .. }
            | StoreError::Corrupt { .. }
            | StoreError::UnsupportedVersion { .. } => ErrorCategory::Corruption,
            StoreError::Source { .. }
            | StoreError::ObjectStore { .. }
            | StoreError::Keyring { .. }
            | StoreError::Internal { .. } => ErrorCategory::Internal,
        }
    }

    pub(crate) fn corrupt(object: impl std::fmt::Display, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            object: object.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        StoreError::Internal {
            detail: detail.into(),
        }
    }
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
