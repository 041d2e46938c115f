//! SQL over the store with DataFusion: catalog tables, a streaming samples table with
//! predicate pushdown to chunk pruning, and `band_power(...)`.
//!
//! Every [`Catalog`] is scoped to a set of tenants when it is built: recordings of any other
//! tenant are never opened, listed or scanned, so no query (joins, sub-queries, `information_schema`
//! included) can reach them.
//!
//! # Tables
//!
//! | table | columns |
//! |---|---|
//! | `recordings` | `id`, `tenant`, `format`, `start` (timestamp, wall clock as recorded), `duration_s`, `signals`, `record_duration_s`, `num_records`, `ingested_at` (UTC), `raw_bytes`, `stored_bytes` |
//! | `channels` | `recording_id`, `channel_index`, `label`, `canonical` (10-10 name or NULL), `unit`, `sample_rate`, `samples_per_record`, `physical_min`, `physical_max`, `digital_min`, `digital_max`, `prefilter`, `transducer` |
//! | `annotations` | `recording_id`, `id`, `onset_s`, `duration_s`, `text`, `created_by`, `created_at`, `updated_by`, `updated_at`, `version` |
//! | `samples` | `recording_id`, `channel_index`, `channel`, `sample_rate`, `time`, `value` |
//!
//! `recordings` and `channels` come from the manifests opened with the catalog; `annotations`
//! are read from each recording's encrypted log when a query scans the table, only for the
//! recordings a `recording_id = …` / `IN (…)` filter names, if any.
//!
//! The patient and recording identification fields of the source header and the source file
//! name (which often carries the patient's name) are not exposed: a query over the catalogue
//! needs no identity, and identity stays behind the per-recording API and its audit. The
//! start date and time are kept (they are needed for cohort selection by period).
//!
//! # Samples: long format
//! `samples` has one row per sample per channel (`time` in seconds from the recording start,
//! `value` in physical units, usually µV). Long rather than wide because recordings differ in
//! channel set and sample rate (one wide table per recording could not be queried across
//! recordings, and channels of different rates share no time axis); joins to `channels` use
//! `(recording_id, channel_index)`.
//!
//! Filters `recording_id = '…'` / `IN (…)`, `channel = '…'` / `IN (…)`, `channel_index = n` /
//! `IN (…)` and time bounds (`time >= a`, `time > a`, `time < b`, `time <= b`, `BETWEEN`) are
//! pushed into the scan: only the selected recordings and channels are read, and only the time
//! blocks (chunks) overlapping the bounds are fetched and decoded, one [`Recording::window`] of
//! at most one chunk block at a time, streamed as Arrow batches. The pushdown is *inexact*
//! (DataFusion still applies the filter), so it can only make a scan cheaper, never change a
//! result.
//!
//! ```no_run
//! # async fn demo(store: theta_engine::store::Store) -> Result<(), theta_query::sql::SqlError> {
//! use theta_engine::store::TenantId;
//! use theta_query::sql::Catalog;
//! let catalog = Catalog::new(store, vec![TenantId::new("chu-a")?]).await?;
//! let batches = catalog
//!     .sql("SELECT channel, band_power(time, value, sample_rate, 'alpha') AS alpha \
//!           FROM samples WHERE time >= 60 AND time < 120 GROUP BY channel")
//!     .await?;
//! # Ok(()) }
//! ```

mod band_power;
mod samples;
mod tables;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::record_batch::RecordBatch;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::prelude::SessionConfig;
use theta_engine::store::{Recording, RecordingId, RecordingStatus, Store, StoreError, TenantId};

pub use band_power::{BandSpec, band_power_udaf};
pub use samples::SamplesTable;

/// The answer of a scan that narrows its reads on the filters `recognised` accepts: those are
/// pushed down as *inexact* (DataFusion still applies them, so a pushdown can only make a scan
/// cheaper, never change a result), the others are not pushed down.
pub(crate) fn inexact_pushdown(
    filters: &[&datafusion::logical_expr::Expr],
    recognised: impl Fn(&datafusion::logical_expr::Expr) -> bool,
) -> Vec<datafusion::logical_expr::TableProviderFilterPushDown> {
    use datafusion::logical_expr::TableProviderFilterPushDown as P;
    filters
        .iter()
        .map(|f| {
            if recognised(f) {
                P::Inexact
            } else {
                P::Unsupported
            }
        })
        .collect()
}

/// Errors of the SQL layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The store failed (listing, opening a recording, reading annotations).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Planning or execution failed (syntax, unknown column, bad function argument…).
    #[error("query: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// The result could not be written out.
    #[error("output: {0}")]
    Output(#[from] arrow::error::ArrowError),
    /// No tenant was given: a query must be scoped.
    #[error("no tenant given: every query is scoped to at least one tenant")]
    NoTenant,
}

/// Counters of the samples scans of one catalog (for tests and diagnostics).
#[derive(Debug, Default)]
pub(crate) struct ScanCounters {
    pub(crate) windows: AtomicU64,
    pub(crate) samples: AtomicU64,
}

/// What the samples scans of a [`Catalog`] have read so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Window reads issued to the store.
    pub windows: u64,
    /// Samples (all channels) returned by those reads.
    pub samples: u64,
}

/// A DataFusion session over the recordings of a set of tenants.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Store,
    tenants: Vec<TenantId>,
    recordings: Arc<Vec<Recording>>,
    counters: Arc<ScanCounters>,
}

impl Catalog {
    /// Opens every available recording of `tenants` (others are not even opened). Recordings
    /// that are shredded or unreadable are left out.
    ///
    /// # Errors
    /// [`SqlError::NoTenant`] when `tenants` is empty; store errors of the listing.
    pub async fn new(store: Store, tenants: Vec<TenantId>) -> Result<Self, SqlError> {
        Self::with_filter(store, tenants, |_| true).await
    }

    /// As [`Catalog::new`], keeping only the recordings of `tenants` for which `keep` is true
    /// (for a caller who may see only some recordings of a tenant, such as an interpreter and
    /// the recordings assigned to them). `keep` is asked before a recording is opened.
    ///
    /// # Errors
    /// As [`Catalog::new`].
    pub async fn with_filter(
        store: Store,
        tenants: Vec<TenantId>,
        keep: impl Fn(&RecordingId) -> bool,
    ) -> Result<Self, SqlError> {
        if tenants.is_empty() {
            return Err(SqlError::NoTenant);
        }
        let allowed: BTreeSet<&str> = tenants.iter().map(TenantId::as_str).collect();
        let mut recordings = Vec::new();
        for info in store.list().await? {
            let visible = info
                .tenant
                .as_ref()
                .is_some_and(|t| allowed.contains(t.as_str()));
            if !visible
                || !matches!(info.status, RecordingStatus::Available { .. })
                || !keep(&info.id)
            {
                continue;
            }
            let rec = store.recording(info.id).await?;
            // The listing's tenant comes from the manifest; check the opened recording too.
            if allowed.contains(rec.tenant().as_str()) {
                recordings.push(rec);
            }
        }
        recordings.sort_by_key(Recording::id);
        Ok(Self {
            store,
            tenants,
            recordings: Arc::new(recordings),
            counters: Arc::new(ScanCounters::default()),
        })
    }

    /// The tenants this catalog is scoped to.
    pub fn tenants(&self) -> &[TenantId] {
        &self.tenants
    }

    /// The recordings visible through this catalog.
    pub fn recordings(&self) -> &[Recording] {
        &self.recordings
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What the samples scans have read so far.
    pub fn scan_stats(&self) -> ScanStats {
        ScanStats {
            windows: self.counters.windows.load(Ordering::Relaxed),
            samples: self.counters.samples.load(Ordering::Relaxed),
        }
    }

    /// A new session with the four tables and `band_power` registered. Only this catalog's
    /// tables exist in it (no file-backed tables).
    ///
    /// # Errors
    /// When a table cannot be built.
    pub fn session(&self) -> Result<SessionContext, SqlError> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("theta", "public");
        // Sorts, joins and aggregates draw from a bounded pool (and spill to temporary files
        // past it) instead of growing until the process is killed: a query is text from a
        // researcher, and `ORDER BY` over a cross join with `range(1e9)` would take every byte.
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_limit(QUERY_MEMORY_BYTES, 1.0)
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.register_table("recordings", tables::recordings_table(&self.recordings)?)?;
        ctx.register_table("channels", tables::channels_table(&self.recordings)?)?;
        ctx.register_table(
            "annotations",
            Arc::new(tables::AnnotationsTable::new(Arc::clone(&self.recordings))),
        )?;
        ctx.register_table(
            "samples",
            Arc::new(SamplesTable::new(
                Arc::clone(&self.recordings),
                Arc::clone(&self.counters),
            )),
        )?;
        ctx.register_udaf(band_power_udaf());
        Ok(ctx)
    }

    /// Runs one read-only SQL query and collects its result (at least one batch, so that an
    /// empty result still has its schema). DDL (`CREATE EXTERNAL TABLE`
    /// would read any file the process can), DML (`COPY … TO`, `INSERT`) and `SET`-like
    /// statements are refused.
    ///
    /// # Errors
    /// Planning and execution errors.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>, SqlError> {
        let ctx = self.session()?;
        let df = ctx.sql_with_options(query, read_only()).await?;
        let schema: arrow::datatypes::SchemaRef = Arc::clone(df.schema().inner());
        let mut batches = df.collect().await?;
        // An empty result still carries its columns (a table header, a CSV header line).
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        Ok(batches)
    }
}

/// Memory a query's operators may hold at once (1 GiB); past it they spill or fail with
/// "resources exhausted".
pub const QUERY_MEMORY_BYTES: usize = 1 << 30;

/// Options that allow queries only.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// How a result is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// A text table (Arrow's pretty printer).
    #[default]
    Table,
    /// A JSON array of objects, one per row (NULLs written as `null`).
    Json,
    /// CSV with a header line.
    Csv,
}

/// Writes a query result in `format`.
///
/// # Errors
/// When a value cannot be formatted.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<Vec<u8>, SqlError> {
    match format {
        OutputFormat::Table => {
            let mut s =
                datafusion::arrow::util::pretty::pretty_format_batches(batches)?.to_string();
            s.push('\n');
            Ok(s.into_bytes())
        }
        OutputFormat::Json => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::JsonArray>(&mut buf);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
            if buf.is_empty() {
                buf.extend_from_slice(b"[]");
            }
            buf.push(b'\n');
            Ok(buf)
        }
        OutputFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buf);
                for b in batches {
                    w.write(b)?;
                }
            }
            Ok(buf)
        }
    }
}
