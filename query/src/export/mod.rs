//! Research export: a cohort chosen with SQL, written as pseudonymised BIDS-EEG or Parquet.
//!
//! [`export`] selects recordings with a predicate or a query over the [`crate::sql::Catalog`],
//! then writes each one — in parallel, resumable — under `spec.out`, with every identifying
//! field replaced (see [`pseudo`] and [`mask`]). The project's secret and the mapping from
//! pseudonyms back to source ids stay sealed in the store and never reach the output.

mod bids;
mod io;
pub mod mask;
mod parquet_out;
mod plan;
pub mod pseudo;
mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use theta_engine::store::{Store, StoreError, TenantId};

use crate::sql::SqlError;

pub use plan::{COHORT_TIME_LIMIT, select_cohort, select_cohort_within};
pub use run::{MAX_TASK_CHARS, check_authors, check_task};

/// Output format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// BIDS-EEG: EDF+/BDF+ files with JSON and TSV sidecars.
    Bids,
    /// One Parquet dataset: recordings, channels, annotations, samples partitioned by recording.
    Parquet,
}

/// What happens to dates (recording start, annotation times).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatePolicy {
    /// Shifted by a secret per-subject number of days (intervals within a subject are kept).
    #[default]
    Shift,
    /// Removed.
    Remove,
}

/// What happens to free-text annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextPolicy {
    /// Identifying substrings (names, dates, phones, e-mails, social security numbers) masked.
    #[default]
    Mask,
    /// Text dropped: only onset and duration are exported.
    Drop,
}

/// What to export, where and how.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportSpec {
    /// A predicate over the `recordings` table (`duration_s > 3600`), or a query whose first
    /// column (or column `id` / `recording_id`) lists recording ids.
    pub cohort: String,
    /// Output format.
    pub format: ExportFormat,
    /// Output folder (created; an interrupted export into it resumes).
    pub out: PathBuf,
    /// Project name: pseudonyms are stable within a project and unlinkable across projects.
    pub project: String,
    /// Dates: shifted (default) or removed.
    pub dates: DatePolicy,
    /// Annotation text: masked (default) or dropped.
    pub annotations: TextPolicy,
    /// BIDS task label (letters and digits).
    pub task: String,
    /// Mains frequency written to BIDS sidecars, Hz.
    pub power_line_hz: f64,
    /// The dataset's authors (BIDS `Authors`), as the researchers give them; never taken from
    /// the recordings. Not part of the settings a resumed export must repeat.
    #[serde(default)]
    pub authors: Vec<String>,
}

impl ExportSpec {
    /// A spec with the defaults: dates shifted, text masked, task `clinical`, 50 Hz mains.
    pub fn new(
        cohort: impl Into<String>,
        format: ExportFormat,
        out: impl Into<PathBuf>,
        project: impl Into<String>,
    ) -> Self {
        Self {
            cohort: cohort.into(),
            format,
            out: out.into(),
            project: project.into(),
            dates: DatePolicy::Shift,
            annotations: TextPolicy::Mask,
            task: "clinical".into(),
            power_line_hz: 50.0,
            authors: Vec::new(),
        }
    }
}

/// Where an export stands.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ExportProgress {
    /// Recordings in the cohort.
    pub recordings_total: usize,
    /// Recordings written (including those found complete from an earlier run).
    pub recordings_done: usize,
    /// Raw sample bytes of the cohort (as stored: 2 or 3 bytes per sample).
    pub bytes_total: u64,
    /// Raw sample bytes written so far.
    pub bytes_done: u64,
}

/// Callback receiving progress updates (from any thread).
pub type ProgressFn = Arc<dyn Fn(&ExportProgress) + Send + Sync>;

/// Optional hooks of a running export.
#[derive(Clone, Default)]
pub struct ExportHooks {
    /// Called after each step.
    pub progress: Option<ProgressFn>,
    /// Set to stop the export at the next recording boundary ([`ExportError::Cancelled`]).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for ExportHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportHooks")
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExportReport {
    /// Output folder.
    pub out: PathBuf,
    /// Format.
    pub format: ExportFormat,
    /// Recordings written.
    pub recordings: usize,
    /// Of which already complete from an interrupted run (not rewritten).
    pub resumed: usize,
    /// Recordings of the cohort left out: annotation-only recordings (no data signal) in a
    /// BIDS-EEG export.
    pub skipped: usize,
    /// Distinct subjects.
    pub subjects: usize,
    /// Raw sample bytes exported.
    pub raw_bytes: u64,
    /// Bytes of the files written.
    pub output_bytes: u64,
    /// Files in the output.
    pub files: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// Errors of an export. Messages name the step and the output path, never health data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The spec is invalid (empty project, bad task label, ...).
    #[error("invalid export: {0}")]
    Invalid(String),
    /// The cohort query failed or returned no usable recording id column.
    #[error("cohort: {0}")]
    Cohort(String),
    /// The cohort selection failed in the SQL layer.
    #[error("cohort query: {0}")]
    Sql(#[from] SqlError),
    /// The store failed (reading a recording, the project's sealed mapping).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Writing an output file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Encoding an output file failed.
    #[error("encoding {path}: {message}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The output folder holds another export (other project, format or options).
    #[error("{path} holds an export with other settings ({detail}); choose an empty folder")]
    Mismatch {
        /// The output folder.
        path: PathBuf,
        /// Which setting differs.
        detail: String,
    },
    /// Stopped through [`ExportHooks::cancel`]; running it again resumes.
    #[error("export cancelled")]
    Cancelled,
}

/// Exports the cohort of `spec` from the recordings of `tenants`.
///
/// Recordings are written concurrently (one per core), each into a temporary folder renamed
/// into place when complete, so that a run interrupted at any point resumes with the same
/// spec: complete recordings are kept, partial ones rewritten. The dataset-level files
/// (participants, dataset description, Parquet tables) are written last.
///
/// # Errors
/// See [`ExportError`]. Files of recordings completed before an error are kept and reused by
/// the next run with the same spec.
pub async fn export(
    store: &Store,
    tenants: Vec<TenantId>,
    spec: &ExportSpec,
    hooks: &ExportHooks,
) -> Result<ExportReport, ExportError> {
    run::export(store, tenants, spec, hooks).await
}
