//! Choosing the cohort and deciding, per recording, every pseudonymised value the writers put
//! out: pseudonyms, shifted dates, age band, masked annotations. Writers never see the source
//! identity fields, only a [`Planned`].

use arrow::array::{Array, StringArray};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use theta_engine::store::{Annotation, Recording, RecordingId};

use super::mask::TextMasker;
use super::pseudo::{EdfPatient, EdfRecordingField, Pseudonymizer, Sex, age_band, patient_key};
use super::{DatePolicy, ExportError, ExportSpec, TextPolicy};
use crate::sql::Catalog;

/// Recording ids selected by `cohort`: a predicate over `recordings` (`duration_s > 60`), or a
/// query (`SELECT …` / `WITH …`) whose column `id` or `recording_id` (else its first column)
/// lists recording ids. Duplicates are dropped; the order is the catalog's.
///
/// # Errors
/// [`ExportError::Sql`] when the query fails; [`ExportError::Cohort`] when its result has no
/// text column of recording ids or names a recording outside the catalog.
pub async fn select_cohort(
    catalog: &Catalog,
    cohort: &str,
) -> Result<Vec<RecordingId>, ExportError> {
    select_cohort_within(catalog, cohort, COHORT_TIME_LIMIT).await
}

/// How long a cohort query may run. A cohort is a selection over a few tables of metadata; a
/// query still running after this (a cross join with `range(3000000000)`, a scan of every
/// sample) would hold the export slot (`[exports] max_concurrent`) and a core indefinitely.
pub const COHORT_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// [`select_cohort`] with another time limit.
///
/// # Errors
/// As [`select_cohort`], and [`ExportError::Cohort`] when the query runs longer than `limit`
/// (it is cancelled).
pub async fn select_cohort_within(
    catalog: &Catalog,
    cohort: &str,
    limit: std::time::Duration,
) -> Result<Vec<RecordingId>, ExportError> {
    let cohort = cohort.trim();
    if cohort.is_empty() {
        return Err(ExportError::Cohort(
            "empty cohort: give a predicate such as `true` or a query".into(),
        ));
    }
    let lower = cohort.to_ascii_lowercase();
    let query = if lower.starts_with("select") || lower.starts_with("with") {
        cohort.to_string()
    } else {
        format!("SELECT id FROM recordings WHERE {cohort}")
    };
    // Dropping the query's future cancels it: DataFusion aborts its spawned tasks, and its
    // leaf streams yield to the runtime (cooperative budget), so the deadline is noticed.
    let batches = tokio::time::timeout(limit, catalog.sql(&query))
        .await
        .map_err(|_| {
            ExportError::Cohort(format!(
                "the cohort query ran longer than {} s and was stopped: select from the \
                 recordings, channels and annotations tables",
                limit.as_secs_f64()
            ))
        })??;
    let mut wanted = std::collections::BTreeSet::new();
    for batch in &batches {
        let schema = batch.schema();
        let col = schema
            .index_of("id")
            .or_else(|_| schema.index_of("recording_id"))
            .unwrap_or(0);
        if batch.num_columns() == 0 {
            return Err(ExportError::Cohort(
                "the cohort query returns no column".into(),
            ));
        }
        let ids = batch
            .column(col)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| {
                ExportError::Cohort(format!(
                    "column {:?} of the cohort query is not text (recording ids)",
                    schema.field(col).name()
                ))
            })?;
        for i in 0..ids.len() {
            if ids.is_null(i) {
                continue;
            }
            let id: RecordingId = ids.value(i).parse().map_err(|_| {
                ExportError::Cohort(format!(
                    "column {:?} holds a value that is not a recording id",
                    schema.field(col).name()
                ))
            })?;
            wanted.insert(id);
        }
    }
    let visible: Vec<RecordingId> = catalog.recordings().iter().map(Recording::id).collect();
    if let Some(stray) = wanted.iter().find(|id| !visible.contains(id)) {
        return Err(ExportError::Cohort(format!(
            "recording {stray} is not in the tenants' catalog"
        )));
    }
    Ok(visible
        .into_iter()
        .filter(|id| wanted.contains(id))
        .collect())
}

/// Everything a writer needs about one recording, already pseudonymised.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) rec: Recording,
    /// Subject label (without `sub-`).
    pub(crate) subject: String,
    /// Session label (without `ses-`).
    pub(crate) session: String,
    /// Exported recording pseudonym.
    pub(crate) pid: String,
    /// What the subject pseudonym is keyed on (goes only into the sealed mapping).
    pub(crate) patient_key: String,
    /// Start, shifted by the subject's offset; `None` when dates are removed or unknown.
    pub(crate) start: Option<NaiveDateTime>,
    /// Time of day of the start (kept when dates are removed: it is not a date).
    pub(crate) time_of_day: NaiveTime,
    /// Age band at the recording, e.g. `40-44`.
    pub(crate) age_band: Option<String>,
    /// Sex from the EDF+ patient field.
    pub(crate) sex: Option<Sex>,
    /// Masks free text of this recording (transducer and prefilter fields too).
    pub(crate) masker: TextMasker,
    /// Annotations, text masked (or emptied when dropped), sorted by onset.
    pub(crate) annotations: Vec<Annotation>,
}

/// Plans one recording.
pub(crate) async fn plan(
    rec: Recording,
    spec: &ExportSpec,
    pseudo: &Pseudonymizer,
) -> Result<Planned, ExportError> {
    let header = rec.header();
    let rid = rec.id().to_string();
    let key = patient_key(&header.patient, &rid);
    let subject = pseudo.subject_id(&key);
    let session = pseudo.session_id(&rid);
    let pid = pseudo.recording_id(&rid);
    let patient = EdfPatient::parse(&header.patient);
    let recording_field = EdfRecordingField::parse(&header.recording);
    let source_start = NaiveDateTime::parse_from_str(&header.start, "%Y-%m-%dT%H:%M:%S%.f").ok();
    let time_of_day = source_start.map_or(NaiveTime::MIN, |s| s.time());
    let age = match (patient.birthdate, source_start) {
        (Some(b), Some(s)) => age_band(b, s.date()),
        _ => None,
    };
    let start = match spec.dates {
        DatePolicy::Remove => None,
        DatePolicy::Shift => source_start
            .and_then(|s| s.checked_add_signed(TimeDelta::days(pseudo.date_offset_days(&key)))),
    };
    let mut tokens = patient.name_tokens();
    tokens.extend(recording_field.identifying_tokens());
    let masker = TextMasker::new(&tokens);
    let mut annotations: Vec<Annotation> = rec
        .annotations()
        .await?
        .into_iter()
        .map(|r| {
            let mut a = r.annotation;
            a.text = match spec.annotations {
                TextPolicy::Mask => masker.mask(&a.text),
                TextPolicy::Drop => String::new(),
            };
            a
        })
        .collect();
    annotations.sort_by(|a, b| a.onset.total_cmp(&b.onset));
    Ok(Planned {
        rec,
        subject,
        session,
        pid,
        patient_key: key,
        start,
        time_of_day,
        age_band: age,
        sex: patient.sex,
        masker,
        annotations,
    })
}

impl Planned {
    /// The start written into EDF headers: the shifted start, or 1 January 1985 (the EDF+
    /// "unknown date") at the recorded time of day when dates are removed.
    pub(crate) fn edf_start(&self) -> NaiveDateTime {
        self.start.unwrap_or_else(|| {
            NaiveDate::from_ymd_opt(1985, 1, 1)
                .expect("a valid date")
                .and_time(self.time_of_day)
        })
    }
}
