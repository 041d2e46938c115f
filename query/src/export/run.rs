//! Running an export: cohort, plan, parallel per-recording writes, dataset files, resume.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::json;
use theta_engine::store::{MAX_PROJECT_NAME, Store, TenantId};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use super::io::{io_err, tally, write_atomic};
use super::plan::{Planned, plan, select_cohort};
use super::pseudo::{ProjectSecret, Pseudonymizer};
use super::{
    ExportError, ExportFormat, ExportHooks, ExportProgress, ExportReport, ExportSpec, bids,
    parquet_out,
};
use crate::sql::Catalog;

/// Name of the file that marks a folder as a Theta export and pins its settings.
pub(crate) const STATE_FILE: &str = ".theta-export.json";

fn validate(spec: &ExportSpec) -> Result<(), ExportError> {
    let p = spec.project.trim();
    if p.is_empty() || spec.project.len() > MAX_PROJECT_NAME || p.chars().any(char::is_control) {
        return Err(ExportError::Invalid(format!(
            "project name: 1-{MAX_PROJECT_NAME} bytes without control characters"
        )));
    }
    check_task(&spec.task).map_err(ExportError::Invalid)?;
    check_authors(&spec.authors).map_err(ExportError::Invalid)?;
    if !(spec.power_line_hz.is_finite() && spec.power_line_hz > 0.0 && spec.power_line_hz < 1e3) {
        return Err(ExportError::Invalid(
            "power line frequency: a positive number of hertz (50 or 60)".into(),
        ));
    }
    Ok(())
}

/// Most authors a dataset description lists.
const MAX_AUTHORS: usize = 200;
/// Longest author entry, in characters.
const MAX_AUTHOR_CHARS: usize = 200;

/// Longest BIDS task label, in characters.
pub const MAX_TASK_CHARS: usize = 64;

/// Checks a BIDS task label (letters and digits only, at most [`MAX_TASK_CHARS`]): the one
/// rule for `theta export` and the service's export jobs.
///
/// # Errors
/// The rule broken, as text.
pub fn check_task(task: &str) -> Result<(), String> {
    if task.is_empty()
        || task.chars().count() > MAX_TASK_CHARS
        || !task.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "task label: 1-{MAX_TASK_CHARS} letters and digits (BIDS)"
        ));
    }
    Ok(())
}

/// Checks a dataset's authors (at most 200 names of 1 to 200 characters, no control
/// characters); the error says which rule and which author. The service checks a job's request
/// with it before queueing it.
///
/// # Errors
/// The rule broken, as text.
pub fn check_authors(authors: &[String]) -> Result<(), String> {
    if authors.len() > MAX_AUTHORS {
        return Err(format!("authors: at most {MAX_AUTHORS}"));
    }
    if let Some(i) = authors.iter().position(|a| {
        a.trim().is_empty()
            || a.chars().count() > MAX_AUTHOR_CHARS
            || a.chars().any(char::is_control)
    }) {
        return Err(format!(
            "author {}: 1-{MAX_AUTHOR_CHARS} characters, no control characters",
            i + 1
        ));
    }
    Ok(())
}

fn cohort_digest(cohort: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(cohort.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates the output folder, or checks that it holds an export of the same spec (resume).
fn prepare_out(spec: &ExportSpec) -> Result<(), ExportError> {
    let out = &spec.out;
    let state = json!({
        "theta_export": 1,
        "project": spec.project,
        // By digest: the cohort's text may quote identifying values, and this file travels
        // with the export.
        "cohort_sha256": cohort_digest(&spec.cohort),
        "format": spec.format,
        "dates": spec.dates,
        "annotations": spec.annotations,
        "task": spec.task,
        "power_line_hz": spec.power_line_hz,
    });
    let state_path = out.join(STATE_FILE);
    if out.exists() {
        match std::fs::read(&state_path) {
            Ok(bytes) => {
                let found: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|_| ExportError::Mismatch {
                        path: out.clone(),
                        detail: format!("unreadable {STATE_FILE}"),
                    })?;
                let obj = state.as_object().expect("an object");
                if let Some((k, _)) = obj.iter().find(|(k, v)| found.get(k.as_str()) != Some(v)) {
                    return Err(ExportError::Mismatch {
                        path: out.clone(),
                        detail: format!("{k} differs"),
                    });
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut entries = std::fs::read_dir(out).map_err(io_err(out))?;
                if entries.next().is_some() {
                    return Err(ExportError::Mismatch {
                        path: out.clone(),
                        detail: "the folder is not empty and is not a Theta export".into(),
                    });
                }
            }
            Err(e) => return Err(io_err(&state_path)(e)),
        }
    }
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Pseudonymised, not anonymous: readable by the owner only until it is handed over.
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(out))?;
    }
    write_atomic(
        &state_path,
        &serde_json::to_vec_pretty(&state).expect("JSON values serialise"),
    )
}

fn is_done(out: &Path, format: ExportFormat, p: &Planned) -> bool {
    match format {
        ExportFormat::Bids => bids::is_done(out, p),
        ExportFormat::Parquet => parquet_out::is_done(out, p),
    }
}

/// Progress shared by the workers: fixed totals, counters they advance.
struct Shared {
    recordings_total: usize,
    bytes_total: u64,
    done: AtomicUsize,
    bytes: AtomicU64,
    hooks: ExportHooks,
    stop: AtomicBool,
}

impl Shared {
    fn report(&self) {
        if let Some(f) = &self.hooks.progress {
            f(&ExportProgress {
                recordings_total: self.recordings_total,
                recordings_done: self.done.load(Ordering::Relaxed),
                bytes_total: self.bytes_total,
                bytes_done: self.bytes.load(Ordering::Relaxed),
            });
        }
    }
    fn cancelled(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self
                .hooks
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

pub(crate) async fn export(
    store: &Store,
    tenants: Vec<TenantId>,
    spec: &ExportSpec,
    hooks: &ExportHooks,
) -> Result<ExportReport, ExportError> {
    let t0 = Instant::now();
    validate(spec)?;
    let catalog = Catalog::new(store.clone(), tenants).await?;
    let ids = select_cohort(&catalog, &spec.cohort).await?;
    if ids.is_empty() {
        return Err(ExportError::Cohort(
            "no recording matches the cohort".into(),
        ));
    }
    prepare_out(spec)?;

    let secret = store.project_secret(&spec.project).await?;
    let pseudo = Pseudonymizer::new(&ProjectSecret::from_bytes(*secret));
    drop(secret);
    let mut planned = Vec::with_capacity(ids.len());
    for id in &ids {
        let rec = catalog
            .recordings()
            .iter()
            .find(|r| r.id() == *id)
            .expect("the cohort comes from the catalog")
            .clone();
        planned.push(plan(rec, spec, &pseudo).await?);
    }
    drop(pseudo);
    // BIDS-EEG holds EEG files: an annotation-only recording (a scored hypnogram, say) has no
    // place there. It is left out and counted; Parquet keeps it (annotations table).
    let before = planned.len();
    if spec.format == ExportFormat::Bids {
        planned.retain(|p| !p.rec.signals().is_empty());
    }
    let skipped = before - planned.len();
    if planned.is_empty() {
        return Err(ExportError::Cohort(format!(
            "the {before} recording(s) of the cohort have no data signal (annotations only): nothing to write as BIDS-EEG"
        )));
    }
    // The mapping is sealed in the store before any file names a pseudonym.
    let subjects: Vec<(String, String)> = planned
        .iter()
        .map(|p| (p.subject.clone(), p.patient_key.clone()))
        .collect();
    let recordings: Vec<(String, String)> = planned
        .iter()
        .map(|p| (p.pid.clone(), p.rec.id().to_string()))
        .collect();
    store
        .record_project_mapping(&spec.project, &subjects, &recordings)
        .await?;

    let out = spec.out.clone();
    let mut resumed = 0;
    let mut bytes_done = 0;
    let mut pending = Vec::new();
    for p in &planned {
        if is_done(&out, spec.format, p) {
            resumed += 1;
            bytes_done += p.rec.raw_bytes();
        } else {
            pending.push(p.clone());
        }
    }
    let shared = Arc::new(Shared {
        recordings_total: planned.len(),
        bytes_total: planned.iter().map(|p| p.rec.raw_bytes()).sum(),
        done: AtomicUsize::new(resumed),
        bytes: AtomicU64::new(bytes_done),
        hooks: hooks.clone(),
        stop: AtomicBool::new(false),
    });
    shared.report();

    // One recording per core at a time; each one decodes its blocks on the rayon pool and
    // encodes on its own blocking thread.
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let permits = Arc::new(Semaphore::new(parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for p in pending {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if shared.cancelled() {
            break;
        }
        let shared = Arc::clone(&shared);
        let spec = spec.clone();
        let handle = Handle::current();
        tasks.spawn_blocking(move || {
            let _permit = permit;
            if shared.cancelled() {
                return Err(ExportError::Cancelled);
            }
            let on_bytes = |n: u64| {
                shared.bytes.fetch_add(n, Ordering::Relaxed);
                shared.report();
            };
            let r = match spec.format {
                ExportFormat::Bids => {
                    bids::write_recording(&spec.out, &p, &spec, &handle, &on_bytes)
                }
                ExportFormat::Parquet => {
                    parquet_out::write_recording(&spec.out, &p, &handle, &on_bytes)
                }
            };
            if r.is_ok() {
                shared.done.fetch_add(1, Ordering::Relaxed);
                shared.report();
            } else {
                // Stop starting new recordings; the ones running finish their current one.
                shared.stop.store(true, Ordering::Relaxed);
            }
            r
        });
        // Surface a failure early instead of queueing the whole cohort behind it.
        while let Some(done) = tasks.try_join_next() {
            done.map_err(|e| ExportError::Invalid(format!("export worker failed: {e}")))??;
        }
    }
    let mut first_err = None;
    while let Some(done) = tasks.join_next().await {
        let r = done
            .map_err(|e| ExportError::Invalid(format!("export worker failed: {e}")))
            .and_then(|r| r);
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if shared.cancelled() {
        return Err(ExportError::Cancelled);
    }

    let spec2 = spec.clone();
    let ((files, output_bytes), subjects) = tokio::task::spawn_blocking(move || {
        match spec2.format {
            ExportFormat::Bids => bids::write_dataset(&spec2.out, &planned, &spec2)?,
            ExportFormat::Parquet => {
                parquet_out::write_dataset(&spec2.out, &planned, spec2.annotations)?;
            }
        }
        let subjects = planned
            .iter()
            .map(|p| p.subject.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        tally(&spec2.out).map(|t| (t, subjects))
    })
    .await
    .map_err(|e| ExportError::Invalid(format!("export worker failed: {e}")))??;
    Ok(ExportReport {
        out,
        format: spec.format,
        recordings: ids.len() - skipped,
        resumed,
        skipped,
        subjects,
        raw_bytes: shared.bytes_total,
        output_bytes,
        files,
        elapsed: t0.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_labels_and_authors_follow_one_rule_for_the_cli_and_the_service() {
        assert!(check_task("clinical").is_ok());
        assert!(check_task(&"a".repeat(MAX_TASK_CHARS)).is_ok());
        for bad in [
            "",
            "rest state",
            "sleep-1",
            "é",
            &"a".repeat(MAX_TASK_CHARS + 1),
        ] {
            let e = check_task(bad).unwrap_err();
            assert!(e.contains(&MAX_TASK_CHARS.to_string()), "{bad:?}: {e}");
        }
        assert!(check_authors(&["Ada Lovelace".into()]).is_ok());
        assert!(check_authors(&[]).is_ok());
        let e = check_authors(&["Ada".into(), " ".into()]).unwrap_err();
        assert!(e.starts_with("author 2"), "{e}");
        assert!(check_authors(&["a\u{7}b".into()]).is_err());
        assert!(check_authors(&vec!["A".to_string(); MAX_AUTHORS + 1]).is_err());
    }
}
