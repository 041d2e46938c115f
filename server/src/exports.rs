//! Research export jobs: a researcher's pseudonymised cohort export run by the service.
//!
//! ```text
//!  POST …/exports ─► row `queued` ─► task waits for a slot (at most `[exports] max_concurrent`)
//!                                      └► `running` ─► theta_query::export::export(…)
//!                                            ├► `done`       (report kept; download as a tar)
//!                                            ├► `failed`     (message naming the step)
//!                                            └► `cancelled`  (DELETE; stops at a recording boundary)
//!  service stopped while queued/running ─► `interrupted` at the next start
//!  POST …/restart on interrupted/failed/cancelled ─► `queued` again, same folder: the export resumes
//! ```
//!
//! Jobs live in the `export_jobs` table (migration 3), so the list survives a restart; the
//! progress of a running job is kept in memory (updated by the engine's progress hook) and
//! written to the row every few seconds. Output goes to `<data_dir>/exports/<job id>/`
//! (mode 0700). Rows hold ids, settings and counters; a failure message names the step, never
//! health data (store and I/O details go to the service log only).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::{Value, json};
use theta_engine::store::TenantId;
use theta_query::export::{
    DatePolicy, ExportError, ExportFormat, ExportHooks, ExportProgress, ExportReport, ExportSpec,
    TextPolicy, export,
};
use tokio::sync::{Notify, Semaphore};

use crate::clock::{from_millis, to_millis};
use crate::config::Settings;
use crate::db::Db;
use crate::error::{ApiError, Error, Result};
use crate::state::AppState;

/// How often the progress of a running job is written to its row.
const PERSIST_EVERY: Duration = Duration::from_secs(2);

/// Longest cohort predicate or query accepted, in bytes.
pub const MAX_COHORT_BYTES: usize = 4096;

/// Longest project name, in characters.
pub const MAX_PROJECT_CHARS: usize = 64;

/// Most jobs one account may have queued or running at once (a researcher cannot fill the
/// queue for everyone else).
pub const MAX_ACTIVE_PER_ACCOUNT: usize = 4;

/// Longest failure message kept, in characters.
const MAX_ERROR_CHARS: usize = 500;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a slot.
    Queued,
    /// Exporting.
    Running,
    /// Finished; the output can be downloaded.
    Done,
    /// Stopped by an error (restartable).
    Failed,
    /// Stopped on request (restartable).
    Cancelled,
    /// Queued or running when the service stopped (restartable).
    Interrupted,
}

impl JobState {
    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }

    fn try_from_code(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            "interrupted" => JobState::Interrupted,
            _ => return None,
        })
    }

    /// Queued or running.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }

    /// Whether `restart` applies.
    pub fn is_restartable(self) -> bool {
        matches!(
            self,
            JobState::Failed | JobState::Cancelled | JobState::Interrupted
        )
    }
}

fn format_code(f: ExportFormat) -> &'static str {
    match f {
        ExportFormat::Bids => "bids",
        ExportFormat::Parquet => "parquet",
    }
}

fn dates_code(d: DatePolicy) -> &'static str {
    match d {
        DatePolicy::Shift => "shift",
        DatePolicy::Remove => "remove",
    }
}

fn text_code(t: TextPolicy) -> &'static str {
    match t {
        TextPolicy::Mask => "mask",
        TextPolicy::Drop => "drop",
    }
}

/// What a researcher asks for (the body of `POST …/exports`, validated by [`JobRequest::validate`]).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// A predicate over the `recordings` table, or a query listing recording ids.
    pub cohort: String,
    /// `bids` or `parquet`.
    pub format: ExportFormat,
    /// Project name: pseudonyms are stable within a project, unlinkable across projects.
    pub project: String,
    /// `shift` (default) or `remove`.
    #[serde(default)]
    pub dates: DatePolicy,
    /// `mask` (default) or `drop`.
    #[serde(default)]
    pub annotations: TextPolicy,
    /// BIDS task label (default `clinical`).
    #[serde(default = "default_task")]
    pub task: String,
    /// Mains frequency, 50 (default) or 60 Hz.
    #[serde(default = "default_power_line")]
    pub power_line_hz: f64,
    /// The dataset's authors (BIDS `Authors`).
    #[serde(default)]
    pub authors: Vec<String>,
}

fn default_task() -> String {
    "clinical".into()
}

fn default_power_line() -> f64 {
    50.0
}

impl JobRequest {
    /// A request with the defaults (dates shifted, text masked, task `clinical`, 50 Hz).
    pub fn new(
        cohort: impl Into<String>,
        format: ExportFormat,
        project: impl Into<String>,
    ) -> Self {
        JobRequest {
            cohort: cohort.into(),
            format,
            project: project.into(),
            dates: DatePolicy::default(),
            annotations: TextPolicy::default(),
            task: default_task(),
            power_line_hz: default_power_line(),
            authors: Vec::new(),
        }
    }

    /// Checks every field; the error names the field and the rule.
    ///
    /// # Errors
    /// [`Error::Invalid`].
    pub fn validate(&self) -> Result<()> {
        let p = &self.project;
        if p.is_empty() || p.chars().count() > MAX_PROJECT_CHARS {
            return Err(Error::invalid(
                "project",
                format!("1 to {MAX_PROJECT_CHARS} characters"),
            ));
        }
        // The project names the download (`<project>-<job>.tar`) and keys the pseudonyms: a
        // plain label, no spaces, quotes or path separators.
        if !p.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::invalid(
                "project",
                "letters, digits, '-', '_' and '.', starting with a letter or digit",
            ));
        }
        let c = self.cohort.trim();
        if c.is_empty() {
            return Err(Error::invalid(
                "cohort",
                "empty: give a predicate over recordings (e.g. `duration_s > 0`) or a query",
            ));
        }
        if self.cohort.len() > MAX_COHORT_BYTES {
            return Err(Error::invalid(
                "cohort",
                format!("longer than {MAX_COHORT_BYTES} bytes"),
            ));
        }
        if self
            .cohort
            .chars()
            .any(|ch| ch.is_control() && !matches!(ch, '\n' | '\r' | '\t'))
        {
            return Err(Error::invalid("cohort", "control characters"));
        }
        theta_query::export::check_task(&self.task).map_err(|rule| Error::invalid("task", rule))?;
        if self.power_line_hz != 50.0 && self.power_line_hz != 60.0 {
            return Err(Error::invalid("power_line_hz", "50 or 60"));
        }
        theta_query::export::check_authors(&self.authors)
            .map_err(|rule| Error::invalid("authors", rule))?;
        Ok(())
    }

    fn spec(&self, out: PathBuf) -> ExportSpec {
        let mut s = ExportSpec::new(self.cohort.clone(), self.format, out, self.project.clone());
        s.dates = self.dates;
        s.annotations = self.annotations;
        s.task = self.task.clone();
        s.power_line_hz = self.power_line_hz;
        s.authors.clone_from(&self.authors);
        s
    }
}

/// A job as stored (and as the API shows it, through [`Job::to_json`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Job id (a UUID).
    pub id: String,
    /// The tenant exported from.
    pub tenant_id: String,
    /// The researcher who asked (account id); only they see and download it.
    pub account_id: String,
    /// What was asked.
    pub request: JobRequest,
    /// Where it stands.
    pub state: JobState,
    /// Counters (live while running).
    pub progress: ExportProgress,
    /// The engine's report of the last successful run (counts and sizes), JSON.
    pub report: Option<Value>,
    /// Why the last run failed.
    pub error: Option<String>,
    /// Runs started so far.
    pub attempts: u32,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When the last run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the last run ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// A cancellation was asked and the running export has not stopped yet.
    pub cancel_requested: bool,
    /// When the output was deleted at the end of its retention period (`None` while kept).
    pub purged_at: Option<DateTime<Utc>>,
}

impl Job {
    /// The API's view of the job.
    pub fn to_json(&self) -> Value {
        let ts = |t: &Option<DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
        let r = &self.request;
        json!({
            "id": self.id,
            "tenant": self.tenant_id,
            "requester": self.account_id,
            "project": r.project,
            "format": format_code(r.format),
            "cohort": r.cohort,
            "dates": dates_code(r.dates),
            "annotations": text_code(r.annotations),
            "task": r.task,
            "power_line_hz": r.power_line_hz,
            "authors": r.authors,
            "state": self.state,
            "cancel_requested": self.cancel_requested,
            "progress": self.progress,
            "report": self.report,
            "error": self.error,
            "attempts": self.attempts,
            "created_at": ts(&Some(self.created_at)),
            "started_at": ts(&self.started_at),
            "finished_at": ts(&self.finished_at),
            "purged_at": ts(&self.purged_at),
            "download": (self.state == JobState::Done).then(|| format!(
                "/api/tenants/{}/exports/{}/download", self.tenant_id, self.id
            )),
        })
    }

    /// The download's file name, `<project>-<job>.tar`.
    pub fn archive_name(&self) -> String {
        format!("{}-{}", self.request.project, self.id)
    }
}

/// A running (or queued) job's in-memory handle.
#[derive(Debug)]
struct Live {
    progress: Mutex<ExportProgress>,
    cancel: Arc<AtomicBool>,
    wake: Notify,
}

impl Live {
    fn progress(&self) -> ExportProgress {
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The job registry held in the application state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ExportJobs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    root: PathBuf,
    retention: chrono::Duration,
    slots: Arc<Semaphore>,
    live: Mutex<HashMap<String, Arc<Live>>>,
}

const COLUMNS: &str = "id, tenant_id, account_id, project, format, cohort, dates, annotations, \
     task, power_line_hz, state, recordings_total, recordings_done, bytes_total, bytes_done, \
     report, error, attempts, created_at, started_at, finished_at, authors, purged_at";

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(Error::Corrupt {
            what: format!("export_jobs.{what}"),
        }),
    )
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let code = |i: usize, what: &str| -> rusqlite::Result<Value> {
        Ok(Value::String(
            r.get::<_, String>(i).map_err(|_| corrupt(what))?,
        ))
    };
    let format: ExportFormat =
        serde_json::from_value(code(4, "format")?).map_err(|_| corrupt("format"))?;
    let dates: DatePolicy =
        serde_json::from_value(code(6, "dates")?).map_err(|_| corrupt("dates"))?;
    let annotations: TextPolicy =
        serde_json::from_value(code(7, "annotations")?).map_err(|_| corrupt("annotations"))?;
    let state =
        JobState::try_from_code(&r.get::<_, String>(10)?).ok_or_else(|| corrupt("state"))?;
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    let report: Option<String> = r.get(15)?;
    Ok(Job {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        account_id: r.get(2)?,
        request: JobRequest {
            project: r.get(3)?,
            format,
            cohort: r.get(5)?,
            dates,
            annotations,
            task: r.get(8)?,
            power_line_hz: r.get(9)?,
            authors: serde_json::from_str(&r.get::<_, String>(21)?)
                .map_err(|_| corrupt("authors"))?,
        },
        state,
        progress: ExportProgress {
            recordings_total: count(11)? as usize,
            recordings_done: count(12)? as usize,
            bytes_total: count(13)?,
            bytes_done: count(14)?,
        },
        report: report.and_then(|s| serde_json::from_str(&s).ok()),
        error: r.get(16)?,
        attempts: r.get::<_, i64>(17)?.clamp(0, i64::from(u32::MAX)) as u32,
        created_at: from_millis(r.get(18)?),
        started_at: r.get::<_, Option<i64>>(19)?.map(from_millis),
        finished_at: r.get::<_, Option<i64>>(20)?.map(from_millis),
        purged_at: r.get::<_, Option<i64>>(22)?.map(from_millis),
        cancel_requested: false,
    })
}

fn load(conn: &rusqlite::Connection, id: &str) -> Result<Option<Job>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM export_jobs WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

/// The engine's report as stored and shown: counts and sizes, no server paths.
fn report_json(r: &ExportReport) -> Value {
    json!({
        "format": format_code(r.format),
        "recordings": r.recordings,
        "resumed": r.resumed,
        "skipped": r.skipped,
        "subjects": r.subjects,
        "raw_bytes": r.raw_bytes,
        "output_bytes": r.output_bytes,
        "files": r.files,
        "elapsed_s": r.elapsed.as_secs_f64(),
    })
}

/// The message kept for a failed run: what the researcher can act on (their cohort, their
/// settings); for store, I/O and encoding failures only the step (the detail, which may name
/// server paths, goes to the log).
fn failure_message(e: &ExportError) -> String {
    let msg = match e {
        ExportError::Invalid(m) => format!("invalid export: {m}"),
        ExportError::Cohort(m) => format!("cohort: {m}"),
        // Planning errors talk about the query (syntax, unknown column); execution errors may
        // quote values read from the catalog, so only their kind is kept.
        ExportError::Sql(q) => {
            let s = q.to_string();
            let inner = s.strip_prefix("query: ").unwrap_or(&s);
            if [
                "Error during planning",
                "SQL error",
                "Schema error",
                "This feature",
            ]
            .iter()
            .any(|p| inner.starts_with(p))
            {
                format!("cohort query: {inner}")
            } else {
                "cohort query: the query failed while running".to_owned()
            }
        }
        ExportError::Mismatch { detail, .. } => {
            format!("the output folder holds an export with other settings ({detail})")
        }
        ExportError::Store(_) => "reading the store failed (see the service log)".to_owned(),
        ExportError::Io { .. } => "writing the export failed (see the service log)".to_owned(),
        ExportError::Encode { .. } => "encoding the export failed (see the service log)".to_owned(),
        ExportError::Cancelled => "cancelled".to_owned(),
        _ => "the export failed (see the service log)".to_owned(),
    };
    msg.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(unix)]
fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    // An existing folder keeps its mode through `create`: set it.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

impl ExportJobs {
    /// The registry of a profile: output under `<data_dir>/exports`, at most
    /// `[exports] max_concurrent` jobs at once. Jobs the last process left queued or running
    /// are marked `interrupted` (a restart resumes them).
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn open(settings: &Settings, db: Db) -> Result<ExportJobs> {
        let n = db.call_blocking(|c| -> Result<usize> {
            Ok(c.execute(
                "UPDATE export_jobs SET state = 'interrupted' WHERE state IN ('queued', 'running')",
                [],
            )?)
        })?;
        if n > 0 {
            tracing::warn!(
                jobs = n,
                "export jobs interrupted by the last stop; restart them to resume"
            );
        }
        Ok(ExportJobs {
            inner: Arc::new(Inner {
                db,
                root: settings.data_dir.join("exports"),
                retention: chrono::Duration::days(i64::from(settings.exports.retention_days)),
                slots: Arc::new(Semaphore::new(settings.exports.max_concurrent.max(1))),
                live: Mutex::default(),
            }),
        })
    }

    /// The output folder of a job.
    pub fn output_dir(&self, id: &str) -> PathBuf {
        self.inner.root.join(id)
    }

    /// Deletes the output of every job that ended (done, failed or cancelled) longer ago than
    /// the retention period, and marks it `purged_at`; returns those jobs. Pseudonymised data is
    /// still personal data: it is kept for the researcher to download, not for ever. Interrupted
    /// jobs keep their partial output (a restart resumes them); a restarted job is kept afresh.
    ///
    /// # Errors
    /// [`Error::Db`]; [`Error::Io`] when a folder cannot be removed (that job stays unmarked and
    /// is tried again at the next sweep).
    pub async fn purge_expired(&self, now: DateTime<Utc>) -> Result<Vec<Job>> {
        let before = to_millis(now - self.inner.retention);
        let due: Vec<Job> = self
            .inner
            .db
            .call(move |c| -> Result<Vec<Job>> {
                let mut st = c.prepare(&format!(
                    "SELECT {COLUMNS} FROM export_jobs WHERE state IN ('done', 'failed', 'cancelled') \
                     AND purged_at IS NULL AND finished_at IS NOT NULL AND finished_at < ?1 \
                     ORDER BY finished_at"
                ))?;
                let jobs = st
                    .query_map([before], from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(jobs)
            })
            .await?;
        let mut purged = Vec::with_capacity(due.len());
        let mut first_error = None;
        for mut job in due {
            let dir = self.output_dir(&job.id);
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(Error::io(&dir, e));
                    continue;
                }
            }
            let id = job.id.clone();
            let at = to_millis(now);
            self.inner
                .db
                .call(move |c| -> Result<usize> {
                    Ok(c.execute(
                        "UPDATE export_jobs SET purged_at = ?2 WHERE id = ?1 AND purged_at IS NULL",
                        rusqlite::params![id, at],
                    )?)
                })
                .await?;
            job.purged_at = Some(now);
            purged.push(job);
        }
        match first_error {
            Some(e) if purged.is_empty() => Err(e),
            Some(e) => {
                tracing::error!(error = %e, "an export output could not be deleted; retried at the next sweep");
                Ok(purged)
            }
            None => Ok(purged),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Live>>> {
        // Plain inserts and removes: a panic while holding the map leaves it consistent.
        self.inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Overlays the in-memory progress and cancellation flag of a running job.
    fn overlay(&self, mut job: Job) -> Job {
        if let Some(l) = self.live().get(&job.id) {
            if job.state.is_active() {
                let p = l.progress();
                if p != ExportProgress::default() {
                    job.progress = p;
                }
            }
            job.cancel_requested = l.cancel.load(Ordering::Relaxed);
        }
        job
    }

    /// One job.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub async fn get(&self, id: &str) -> Result<Option<Job>> {
        let id = id.to_owned();
        let job = self.inner.db.call(move |c| load(c, &id)).await?;
        Ok(job.map(|j| self.overlay(j)))
    }

    /// The jobs of one account in one tenant, newest first.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub async fn list(&self, tenant_id: &str, account_id: &str) -> Result<Vec<Job>> {
        let (t, a) = (tenant_id.to_owned(), account_id.to_owned());
        let jobs = self
            .inner
            .db
            .call(move |c| -> Result<Vec<Job>> {
                let mut st = c.prepare(&format!(
                    "SELECT {COLUMNS} FROM export_jobs WHERE tenant_id = ?1 AND account_id = ?2 \
                     ORDER BY created_at DESC, id"
                ))?;
                let rows = st.query_map(params![t, a], from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        Ok(jobs.into_iter().map(|j| self.overlay(j)).collect())
    }

    /// Records a new job (`queued`) and starts it.
    ///
    /// # Errors
    /// 400 for an invalid request, 409 when the account already has
    /// [`MAX_ACTIVE_PER_ACCOUNT`] jobs queued or running, 503 without a store.
    pub async fn start(
        &self,
        state: &AppState,
        tenant_id: &str,
        account_id: &str,
        request: JobRequest,
    ) -> Result<Job, ApiError> {
        request.validate()?;
        TenantId::new(tenant_id.to_owned())
            .map_err(|e| ApiError::bad_request("tenant", e.to_string()))?;
        if state.data().is_none() {
            return Err(ApiError::Unavailable {
                what: "recording store",
            });
        }
        let job = Job {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant_id.to_owned(),
            account_id: account_id.to_owned(),
            request,
            state: JobState::Queued,
            progress: ExportProgress::default(),
            report: None,
            error: None,
            attempts: 0,
            created_at: state.now(),
            started_at: None,
            finished_at: None,
            cancel_requested: false,
            purged_at: None,
        };
        let row = job.clone();
        let inserted = self
            .inner
            .db
            .call(move |c| -> Result<bool> {
                let tx = c.transaction()?;
                let active: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM export_jobs WHERE account_id = ?1 \
                     AND state IN ('queued', 'running')",
                    [&row.account_id],
                    |r| r.get(0),
                )?;
                if usize::try_from(active).unwrap_or(usize::MAX) >= MAX_ACTIVE_PER_ACCOUNT {
                    return Ok(false);
                }
                let r = &row.request;
                tx.execute(
                    &format!(
                        "INSERT INTO export_jobs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
                         ?8, ?9, ?10, 'queued', 0, 0, 0, 0, NULL, NULL, 0, ?11, NULL, NULL, ?12, NULL)"
                    ),
                    params![
                        row.id,
                        row.tenant_id,
                        row.account_id,
                        r.project,
                        format_code(r.format),
                        r.cohort,
                        dates_code(r.dates),
                        text_code(r.annotations),
                        r.task,
                        r.power_line_hz,
                        to_millis(row.created_at),
                        json!(r.authors).to_string(),
                    ],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if !inserted {
            return Err(ApiError::Conflict {
                reason: format!(
                    "{MAX_ACTIVE_PER_ACCOUNT} exports of yours are already queued or running; wait for one to end or cancel it"
                ),
            });
        }
        self.spawn(state, &job);
        Ok(job)
    }

    /// Asks a queued or running job to stop (a queued one never starts; a running one stops
    /// at the next recording boundary, keeping what it wrote for a restart). An interrupted
    /// job becomes `cancelled` at once.
    ///
    /// # Errors
    /// 404 for an unknown job, 409 for a job that has ended.
    pub async fn cancel(&self, state: &AppState, id: &str) -> Result<Job, ApiError> {
        let live = self.live().get(id).cloned();
        if let Some(l) = live {
            l.cancel.store(true, Ordering::Relaxed);
            l.wake.notify_one();
            // A queued job may already be `cancelled` by now; a running one stops later.
            let mut job = self.get(id).await?.ok_or_else(|| not_found(id))?;
            job.cancel_requested = job.state.is_active();
            return Ok(job);
        }
        let (iid, now) = (id.to_owned(), to_millis(state.now()));
        let changed = self
            .inner
            .db
            .call(move |c| -> Result<usize> {
                Ok(c.execute(
                    "UPDATE export_jobs SET state = 'cancelled', finished_at = ?2 \
                     WHERE id = ?1 AND state = 'interrupted'",
                    params![iid, now],
                )?)
            })
            .await?;
        let job = self.get(id).await?.ok_or_else(|| not_found(id))?;
        if changed == 0 {
            return Err(ApiError::Conflict {
                reason: format!("the export is {}: nothing to cancel", job.state.as_str()),
            });
        }
        Ok(job)
    }

    /// Queues an interrupted, failed or cancelled job again; it resumes into its folder.
    ///
    /// # Errors
    /// 404 for an unknown job, 409 unless the job is restartable, 503 without a store.
    pub async fn restart(&self, state: &AppState, id: &str) -> Result<Job, ApiError> {
        if state.data().is_none() {
            return Err(ApiError::Unavailable {
                what: "recording store",
            });
        }
        let iid = id.to_owned();
        let changed = self
            .inner
            .db
            .call(move |c| -> Result<usize> {
                Ok(c.execute(
                    "UPDATE export_jobs SET state = 'queued', error = NULL, finished_at = NULL, \
                 purged_at = NULL \
                     WHERE id = ?1 AND state IN ('interrupted', 'failed', 'cancelled')",
                    [iid],
                )?)
            })
            .await?;
        let job = self.get(id).await?.ok_or_else(|| not_found(id))?;
        if changed == 0 {
            return Err(ApiError::Conflict {
                reason: format!(
                    "the export is {}: only interrupted, failed or cancelled exports restart",
                    job.state.as_str()
                ),
            });
        }
        self.spawn(state, &job);
        Ok(job)
    }

    fn spawn(&self, state: &AppState, job: &Job) {
        let live = Arc::new(Live {
            progress: Mutex::default(),
            cancel: Arc::new(AtomicBool::new(false)),
            wake: Notify::new(),
        });
        self.live().insert(job.id.clone(), Arc::clone(&live));
        let (this, state, job) = (self.clone(), state.clone(), job.clone());
        // The task owns its cancellation (the flag above); it ends on its own in every state.
        tokio::spawn(async move {
            let end = this.run(&state, &job, &live).await;
            if let Err(e) = end {
                tracing::error!(job = %job.id, error = %e, "export job bookkeeping failed");
            }
            let mut map = this.live();
            if map.get(&job.id).is_some_and(|l| Arc::ptr_eq(l, &live)) {
                map.remove(&job.id);
            }
        });
    }

    async fn set(&self, id: &str, sql: &'static str, p: Vec<rusqlite::types::Value>) -> Result<()> {
        let id = id.to_owned();
        self.inner
            .db
            .call(move |c| -> Result<()> {
                let mut all = vec![rusqlite::types::Value::Text(id)];
                all.extend(p);
                c.execute(sql, rusqlite::params_from_iter(all))?;
                Ok(())
            })
            .await
    }

    async fn save_progress(&self, id: &str, p: &ExportProgress) -> Result<()> {
        use rusqlite::types::Value as V;
        let n = |x: u64| V::Integer(i64::try_from(x).unwrap_or(i64::MAX));
        self.set(
            id,
            "UPDATE export_jobs SET recordings_total = ?2, recordings_done = ?3, \
             bytes_total = ?4, bytes_done = ?5 WHERE id = ?1",
            vec![
                n(p.recordings_total as u64),
                n(p.recordings_done as u64),
                n(p.bytes_total),
                n(p.bytes_done),
            ],
        )
        .await
    }

    async fn finish(
        &self,
        state: &AppState,
        id: &str,
        end: JobState,
        report: Option<Value>,
        error: Option<String>,
    ) -> Result<()> {
        use rusqlite::types::Value as V;
        let opt = |s: Option<String>| s.map_or(V::Null, V::Text);
        self.set(
            id,
            "UPDATE export_jobs SET state = ?2, report = COALESCE(?3, report), error = ?4, \
             finished_at = ?5 WHERE id = ?1",
            vec![
                V::Text(end.as_str().to_owned()),
                opt(report.map(|r| r.to_string())),
                opt(error),
                V::Integer(to_millis(state.now())),
            ],
        )
        .await
    }

    /// Ends a job as failed with a message for the researcher (no paths, no store detail).
    async fn fail(&self, state: &AppState, id: &str, message: &str) -> Result<()> {
        self.finish(state, id, JobState::Failed, None, Some(message.into()))
            .await
    }

    async fn run(&self, state: &AppState, job: &Job, live: &Arc<Live>) -> Result<()> {
        let id = job.id.as_str();
        // Wait for a slot, or for a cancellation while queued.
        let permit = tokio::select! {
            p = Arc::clone(&self.inner.slots).acquire_owned() => p.ok(),
            () = live.wake.notified() => None,
        };
        if permit.is_none() || live.cancel.load(Ordering::Relaxed) {
            return self
                .finish(state, id, JobState::Cancelled, None, None)
                .await;
        }
        let Some(store) = state.data().map(|d| d.store().clone()) else {
            return self
                .fail(state, id, "the recording store is not available")
                .await;
        };
        self.set(
            id,
            "UPDATE export_jobs SET state = 'running', started_at = ?2, attempts = attempts + 1 \
             WHERE id = ?1",
            vec![rusqlite::types::Value::Integer(to_millis(state.now()))],
        )
        .await?;
        let out = self.output_dir(id);
        let root = self.inner.root.clone();
        let made = {
            let out = out.clone();
            tokio::task::spawn_blocking(move || private_dir(&root).and_then(|()| private_dir(&out)))
                .await
                .map_err(|_| Error::Task)?
        };
        if let Err(e) = made {
            tracing::error!(job = %id, error = %e, "export folder could not be created");
            return self
                .fail(
                    state,
                    id,
                    "creating the export folder failed (see the service log)",
                )
                .await;
        }
        let spec = job.request.spec(out);
        let tenant =
            TenantId::new(job.tenant_id.clone()).map_err(|e| Error::Store(e.to_string()))?;
        // The hook only stores the latest counters (called from the engine's threads); readers
        // see them at once, the row gets them every `PERSIST_EVERY`.
        let hooks = ExportHooks {
            progress: Some({
                let sink = Arc::clone(live);
                Arc::new(move |p: &ExportProgress| {
                    *sink
                        .progress
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = p.clone();
                })
            }),
            cancel: Some(Arc::clone(&live.cancel)),
        };
        let mut run = std::pin::pin!(export(&store, vec![tenant], &spec, &hooks));
        let mut tick = tokio::time::interval(PERSIST_EVERY);
        tick.tick().await;
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                _ = tick.tick() => {
                    let p = live.progress();
                    if let Err(e) = self.save_progress(id, &p).await {
                        tracing::warn!(job = %id, error = %e, "export progress not saved");
                    }
                }
            }
        };
        let mut p = live.progress();
        if let Ok(r) = &result {
            p.recordings_total = r.recordings;
            p.recordings_done = r.recordings;
            p.bytes_done = r.raw_bytes;
            p.bytes_total = p.bytes_total.max(r.raw_bytes);
        }
        self.save_progress(id, &p).await?;
        drop(permit);
        match result {
            Ok(report) => {
                tracing::info!(job = %id, recordings = report.recordings, files = report.files, "export done");
                self.finish(state, id, JobState::Done, Some(report_json(&report)), None)
                    .await
            }
            Err(ExportError::Cancelled) => {
                tracing::info!(job = %id, "export cancelled");
                self.finish(state, id, JobState::Cancelled, None, None)
                    .await
            }
            Err(e) => {
                // The full error (it may name server paths) stays in the log.
                tracing::warn!(job = %id, error = %e, "export failed");
                self.finish(state, id, JobState::Failed, None, Some(failure_message(&e)))
                    .await
            }
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        what: format!("export {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated_field_by_field() {
        let ok = JobRequest::new("duration_s > 0", ExportFormat::Parquet, "study-2026_a");
        ok.validate().unwrap();
        let field = |r: &JobRequest| match r.validate() {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut r = ok.clone();
        r.project = "../etc".into();
        assert_eq!(field(&r), "project");
        r.project = "a b".into();
        assert_eq!(field(&r), "project");
        r.project = "x".repeat(MAX_PROJECT_CHARS + 1);
        assert_eq!(field(&r), "project");
        r.project = String::new();
        assert_eq!(field(&r), "project");
        let mut r = ok.clone();
        r.cohort = "  ".into();
        assert_eq!(field(&r), "cohort");
        r.cohort = "x".repeat(MAX_COHORT_BYTES + 1);
        assert_eq!(field(&r), "cohort");
        r.cohort = "true\0".into();
        assert_eq!(field(&r), "cohort");
        let mut r = ok.clone();
        r.task = "rest state".into();
        assert_eq!(field(&r), "task");
        let mut r = ok.clone();
        r.power_line_hz = f64::NAN;
        assert_eq!(field(&r), "power_line_hz");
        // Unknown formats and fields are refused by the body's parser.
        assert!(
            serde_json::from_str::<JobRequest>(r#"{"cohort":"true","format":"csv","project":"p"}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<JobRequest>(
                r#"{"cohort":"true","format":"bids","project":"p","out":"/tmp"}"#
            )
            .is_err()
        );
        let d: JobRequest =
            serde_json::from_str(r#"{"cohort":"true","format":"bids","project":"p","dates":"remove","annotations":"drop"}"#)
                .unwrap();
        assert_eq!(
            (d.dates, d.annotations),
            (DatePolicy::Remove, TextPolicy::Drop)
        );
        assert_eq!((d.task.as_str(), d.power_line_hz), ("clinical", 50.0));
    }

    #[test]
    fn failure_messages_keep_paths_and_store_detail_out() {
        let io = ExportError::Io {
            path: "/var/lib/theta/exports/j/sub-x".into(),
            source: std::io::Error::other("disk full"),
        };
        let m = failure_message(&io);
        assert!(!m.contains("/var/lib"), "{m}");
        let mm = ExportError::Mismatch {
            path: "/var/lib/theta/exports/j".into(),
            detail: "format".into(),
        };
        let m = failure_message(&mm);
        assert!(!m.contains("/var/lib") && m.contains("format"), "{m}");
        assert!(
            failure_message(&ExportError::Invalid("x".repeat(2000)))
                .chars()
                .count()
                <= MAX_ERROR_CHARS
        );
    }

    #[test]
    fn states_round_trip_and_say_what_applies() {
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Failed,
            JobState::Cancelled,
            JobState::Interrupted,
        ] {
            assert_eq!(JobState::try_from_code(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                Value::String(s.as_str().into())
            );
            assert!(!(s.is_active() && s.is_restartable()));
        }
        assert!(JobState::Interrupted.is_restartable() && !JobState::Done.is_restartable());
    }

    #[tokio::test]
    async fn jobs_left_running_are_interrupted_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::for_kind(crate::config::ProfileKind::Dev, dir.path());
        let db = Db::open_in_memory().unwrap();
        let now = to_millis(Utc::now());
        // Rows as a stopped process leaves them (no account needed for this: keys off).
        db.call_blocking(|c| -> Result<()> {
            c.pragma_update(None, "foreign_keys", "OFF")?;
            for (id, st) in [("j1", "running"), ("j2", "queued"), ("j3", "done")] {
                c.execute(
                    &format!(
                        "INSERT INTO export_jobs ({COLUMNS}) VALUES (?1, 't', 'a1', 'p', 'parquet', \
                         'true', 'shift', 'mask', 'clinical', 50.0, ?2, 0, 0, 0, 0, NULL, NULL, 1, \
                         ?3, NULL, NULL, '[]', NULL)"
                    ),
                    params![id, st, now],
                )?;
            }
            Ok(())
        })
        .unwrap();
        let jobs = ExportJobs::open(&settings, db).unwrap();
        let state = |id: &'static str| {
            let j = jobs.clone();
            async move { j.get(id).await.unwrap().unwrap().state }
        };
        assert_eq!(state("j1").await, JobState::Interrupted);
        assert_eq!(state("j2").await, JobState::Interrupted);
        assert_eq!(state("j3").await, JobState::Done);
        let listed = jobs.list("t", "a1").await.unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].to_json()["download"], Value::Null);
    }

    async fn wait_for(jobs: &ExportJobs, id: &str, done: impl Fn(&Job) -> bool) -> Job {
        for _ in 0..500 {
            let j = jobs.get(id).await.unwrap().unwrap();
            if done(&j) {
                return j;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {id} did not reach the expected state");
    }

    #[tokio::test]
    async fn queued_jobs_wait_for_a_slot_and_a_cancelled_one_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::for_kind(crate::config::ProfileKind::Dev, dir.path());
        let db = Db::open_in_memory().unwrap();
        // Jobs name an account; this test has none to name.
        db.call_blocking(|c| c.pragma_update(None, "foreign_keys", "OFF"))
            .unwrap();
        let data = crate::data::open_store(&settings).await.unwrap();
        let state = AppState::new(settings, db).unwrap().with_data(data);
        let jobs = state.exports().clone();
        let req = || JobRequest::new("true", ExportFormat::Parquet, "p");

        // The only slot (max_concurrent = 1) is taken: new jobs stay queued.
        let hold = Arc::clone(&jobs.inner.slots).acquire_owned().await.unwrap();
        let a = jobs.start(&state, "t1", "acc", req()).await.unwrap();
        let b = jobs.start(&state, "t1", "acc", req()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        for id in [&a.id, &b.id] {
            assert_eq!(jobs.get(id).await.unwrap().unwrap().state, JobState::Queued);
        }
        let c = jobs.cancel(&state, &b.id).await.unwrap();
        assert!(
            c.cancel_requested || c.state == JobState::Cancelled,
            "{c:?}"
        );
        let b_end = wait_for(&jobs, &b.id, |j| j.state == JobState::Cancelled).await;
        assert_eq!((b_end.attempts, b_end.started_at), (0, None));
        assert!(!jobs.output_dir(&b.id).exists());

        // Each account has a bounded number of active jobs.
        let more: Vec<_> = futures::future::join_all(
            (0..MAX_ACTIVE_PER_ACCOUNT).map(|_| jobs.start(&state, "t1", "acc", req())),
        )
        .await;
        let refused = more
            .iter()
            .filter(|r| matches!(r, Err(ApiError::Conflict { .. })))
            .count();
        assert_eq!(refused, 1, "a queued + {} more", MAX_ACTIVE_PER_ACCOUNT - 1);

        // The slot frees: the queued jobs run, one at a time, and end.
        drop(hold);
        let a_end = wait_for(&jobs, &a.id, |j| !j.state.is_active()).await;
        assert_eq!(a_end.attempts, 1);
        assert!(a_end.started_at.is_some() && a_end.finished_at.is_some());
        for r in more.into_iter().flatten() {
            wait_for(&jobs, &r.id, |j| !j.state.is_active()).await;
        }
        // The cancelled job restarts (and runs this time).
        let r = jobs.restart(&state, &b.id).await.unwrap();
        assert_eq!(r.state, JobState::Queued);
        let b2 = wait_for(&jobs, &b.id, |j| !j.state.is_active()).await;
        assert_eq!(b2.attempts, 1);
        assert!(matches!(
            jobs.restart(&state, "nope").await,
            Err(ApiError::NotFound { .. })
        ));
    }
}
