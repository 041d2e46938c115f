//! Recordings: list, upload (streamed ingest), metadata, window, overview, annotations.
//!
//! Every handler opens the recording first (to learn its tenant), then makes the one
//! authorisation call; nothing of the recording is read before the decision.

use std::io::Write as _;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use theta_engine::edf::{ReadOptions, Warning};
use theta_engine::store::{
    Annotation, AnnotationRecord, AnnotationVersion, ChannelSelection, EdfSource, IngestOptions,
    OverviewRequest, Recording, RecordingId, RecordingStatus, TenantId, Units, WindowRequest,
};

use crate::audit::{AuditAction, Outcome, reason_of};
use crate::authz::{self, Action, Resource};
use crate::data::{DataStore, store_error};
use crate::error::{ApiError, Error};
use crate::extract::{ApiJson, Ctx};
use crate::render;
use crate::state::AppState;
use theta_query::dsp::{FilterSpec, Phase};
use theta_query::montage::Montage;
use theta_query::view::{ViewError, ViewRequest, read_view};

/// Media type of Arrow IPC streams.
pub(crate) const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

fn data(state: &AppState) -> Result<&DataStore, ApiError> {
    state.data().ok_or(ApiError::Unavailable {
        what: "recording store",
    })
}

fn parse_id(id: &str) -> Result<RecordingId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request("id", "not a recording id"))
}

fn resource(rec: &Recording) -> Resource {
    Resource::Recording {
        tenant_id: rec.tenant().as_str().to_owned(),
        recording_id: rec.id().to_string(),
    }
}

/// Opens a recording and authorises `action` on it.
async fn authorised(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    action: Action,
) -> Result<Recording, ApiError> {
    let id = parse_id(id)?;
    let rec = data(state)?.recording(id).await?;
    ctx.authorize(action, &resource(&rec))?;
    Ok(rec)
}

/// Runs CPU work (serialisation of large answers) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Internal(Error::Task))?
}

fn wants_arrow(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(ARROW_STREAM))
}

// ---------------------------------------------------------------------------------------------
// Listing and metadata

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this tenant.
    #[serde(default)]
    tenant: Option<String>,
}

/// One line of the recording list.
#[derive(Serialize)]
pub(crate) struct RecordingSummary {
    id: String,
    tenant: String,
    format: String,
    start: String,
    duration: f64,
    signals: usize,
    patient: String,
    recording: String,
    ingested_at: String,
}

fn summary(rec: &Recording) -> RecordingSummary {
    let h = rec.header();
    RecordingSummary {
        id: rec.id().to_string(),
        tenant: rec.tenant().as_str().to_owned(),
        format: h.format.clone(),
        start: h.start.clone(),
        duration: rec.duration(),
        signals: rec.signals().len(),
        patient: h.patient.trim().to_owned(),
        recording: h.recording.trim().to_owned(),
        ingested_at: rec.ingested_at().to_owned(),
    }
}

/// The recordings the caller may read (for an interpreter, those assigned to them).
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<RecordingSummary>>, ApiError> {
    let tenants: Vec<String> = match &q.tenant {
        Some(t) => vec![t.clone()],
        None => ctx.principal.tenants.iter().cloned().collect(),
    };
    if tenants.is_empty() {
        // No tenant at all (administrators, auditors): the decision point says why.
        ctx.authorize(Action::ListRecordings, &Resource::System)?;
    }
    let mut allowed = Vec::new();
    for t in &tenants {
        let r = Resource::Tenant {
            tenant_id: t.clone(),
        };
        if q.tenant.is_some() {
            ctx.authorize(Action::ListRecordings, &r)?;
            allowed.push(t.clone());
        } else if authz::authorize(&ctx.principal, Action::ListRecordings, &r).is_ok() {
            allowed.push(t.clone());
        }
    }
    if let (true, Some(first)) = (allowed.is_empty(), tenants.first()) {
        // Tenants, but none whose recordings this role may list: the decision point says why.
        ctx.authorize(
            Action::ListRecordings,
            &Resource::Tenant {
                tenant_id: first.clone(),
            },
        )?;
    }
    if q.tenant.is_none() {
        ctx.audit(
            AuditAction::RecordingList,
            &Resource::System,
            Outcome::Success,
            None,
        );
    }
    let store = data(&state)?;
    let mut out = Vec::new();
    for info in store.store().list().await.map_err(store_error)? {
        let Some(tenant) = info.tenant else { continue };
        if !allowed.iter().any(|t| t == tenant.as_str())
            || !matches!(info.status, RecordingStatus::Available { .. })
        {
            continue;
        }
        let r = Resource::Recording {
            tenant_id: tenant.as_str().to_owned(),
            recording_id: info.id.to_string(),
        };
        if authz::authorize(&ctx.principal, Action::ReadRecording, &r).is_err() {
            continue;
        }
        let rec = store.recording(info.id).await?;
        out.push(summary(&rec));
    }
    out.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
    Ok(Json(out))
}

/// Everything a reader needs to lay out a recording: header, signals, time line.
pub(crate) async fn metadata(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = authorised(&state, &ctx, &id, Action::ReadRecording).await?;
    Ok(Json(render::recording_json(&rec)))
}

// ---------------------------------------------------------------------------------------------
// Upload

/// Streams an EDF/EDF+/BDF/BDF+ body to a private spool file, then ingests it into the tenant.
/// The body never sits in memory; the spool file is removed whatever happens.
pub(crate) async fn upload(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let res = Resource::Tenant {
        tenant_id: tenant_id.clone(),
    };
    ctx.authorize(Action::IngestRecording, &res)?;
    let r = ingest_body(&state, &tenant_id, &headers, body).await;
    match &r {
        Ok(v) => {
            let rid = v["recording_id"].as_str().unwrap_or_default().to_owned();
            ctx.audit(
                AuditAction::RecordingCreate,
                &Resource::Recording {
                    tenant_id: tenant_id.clone(),
                    recording_id: rid,
                },
                Outcome::Success,
                None,
            );
        }
        Err(e) => ctx.audit(
            AuditAction::RecordingCreate,
            &res,
            Outcome::Failure,
            Some(reason_of(e)),
        ),
    }
    r.map(|v| (StatusCode::CREATED, Json(v)))
}

async fn ingest_body(
    state: &AppState,
    tenant_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, ApiError> {
    let store = data(state)?.clone();
    let tenant = TenantId::new(tenant_id.to_owned())
        .map_err(|e| ApiError::bad_request("tenant", e.to_string()))?;
    let limit = state.settings().store.upload_limit_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return Err(ApiError::PayloadTooLarge);
    }
    let spool_dir = state.settings().data_dir.join("uploads");
    std::fs::create_dir_all(&spool_dir)
        .map_err(|e| ApiError::Internal(Error::io(&spool_dir, e)))?;
    // Created with mode 600 in a folder of the data directory, deleted on drop.
    let spool = tempfile::Builder::new()
        .prefix("upload-")
        .tempfile_in(&spool_dir)
        .map_err(|e| ApiError::Internal(Error::io(&spool_dir, e)))?;
    let (file, path) = spool.into_parts();
    let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("body", "upload interrupted"))?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        // Small blocking writes into the page cache; the spool is local disk.
        file.write_all(&chunk)
            .map_err(|e| ApiError::Internal(Error::io(&*path, e)))?;
    }
    file.flush()
        .map_err(|e| ApiError::Internal(Error::io(&*path, e)))?;
    drop(file);
    if received == 0 {
        return Err(ApiError::bad_request("body", "empty upload"));
    }
    let src_path = path.to_path_buf();
    let source =
        tokio::task::spawn_blocking(move || EdfSource::open(&src_path, ReadOptions::default()))
            .await
            .map_err(|_| ApiError::Internal(Error::Task))?
            .map_err(|e| ApiError::bad_request("body", e.to_string()))?;
    // A body shorter than its header declares is an interrupted upload, not a recording to
    // keep: the lenient reader would store the records present, so refuse here.
    for w in source.warnings() {
        if let Warning::RecordCountMismatch { declared, in_file } = w
            && i64::try_from(*in_file).is_ok_and(|n| n < *declared)
        {
            return Err(ApiError::bad_request(
                "body",
                format!(
                    "truncated: the header declares {declared} data records, the body holds {in_file}"
                ),
            ));
        }
    }
    let warnings: Vec<String> = source.warnings().iter().map(ToString::to_string).collect();
    let report = store
        .store()
        .ingest(
            source,
            IngestOptions {
                tenant,
                ..IngestOptions::default()
            },
        )
        .await
        .map_err(store_error)?;
    drop(path);
    Ok(json!({
        "recording_id": report.recording.to_string(),
        "tenant": report.tenant.as_str(),
        "signals": report.signals,
        "duration": report.duration,
        "annotations": report.annotations,
        "raw_bytes": report.raw_bytes,
        "stored_bytes": report.stored_bytes,
        "warnings": warnings,
    }))
}

// ---------------------------------------------------------------------------------------------
// Window and overview

fn units(s: Option<&str>, default: Units) -> Result<Units, ApiError> {
    match s {
        None => Ok(default),
        Some("physical") => Ok(Units::Physical),
        Some("digital") => Ok(Units::Digital),
        Some(_) => Err(ApiError::bad_request("units", "physical or digital")),
    }
}

/// Query of `GET /api/recordings/{id}/window`: the options of `theta window`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowQuery {
    start: f64,
    duration: f64,
    #[serde(default)]
    channels: Option<String>,
    #[serde(default)]
    units: Option<String>,
    /// Built-in montage name or a custom montage as JSON.
    #[serde(default)]
    montage: Option<String>,
    #[serde(default)]
    highpass: Option<f64>,
    #[serde(default)]
    lowpass: Option<f64>,
    /// Notch frequencies, comma-separated.
    #[serde(default)]
    notch: Option<String>,
    #[serde(default)]
    order: Option<usize>,
    #[serde(default)]
    causal: Option<bool>,
    /// Min/max pairs per pixel column.
    #[serde(default)]
    px: Option<usize>,
    /// Channels marked bad (left out of average references), comma-separated labels.
    #[serde(default)]
    bad: Option<String>,
    /// How a processed page's JSON writes its values (`auto` or `full`).
    #[serde(default)]
    precision: render::Precision,
}

impl WindowQuery {
    fn is_processed(&self) -> bool {
        self.montage
            .as_deref()
            .is_some_and(|m| !m.is_empty() && m != "referential")
            || self.highpass.is_some()
            || self.lowpass.is_some()
            || self.notch.as_deref().is_some_and(|n| !n.is_empty())
            || self.causal == Some(true)
            || self.px.is_some()
            || self.montage.as_deref() == Some("referential")
    }

    fn view_request(&self, max_values: u64) -> Result<ViewRequest, ApiError> {
        let montage = match self.montage.as_deref() {
            None | Some("") => None,
            Some(m) if m.trim_start().starts_with('{') => Some(
                Montage::from_json(m)
                    .map_err(|e| ApiError::bad_request("montage", e.to_string()))?,
            ),
            // Names only: the service never reads montage files from its own disk.
            Some(name) => Some(
                Montage::builtin(name)
                    .map_err(|e| ApiError::bad_request("montage", e.to_string()))?,
            ),
        };
        let notch = match self.notch.as_deref() {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|f| f.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| ApiError::bad_request("notch", "comma-separated frequencies in Hz"))?,
        };
        let list = |s: &Option<String>| -> Vec<String> {
            s.as_deref()
                .map(|b| {
                    b.split(',')
                        .map(|x| x.trim().to_owned())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut filter = FilterSpec {
            highpass: self.highpass,
            lowpass: self.lowpass,
            notch,
            ..FilterSpec::default()
        };
        if let Some(o) = self.order {
            filter.order = o;
        }
        Ok(ViewRequest {
            start: self.start,
            duration: self.duration,
            channels: ChannelSelection::parse(self.channels.as_deref().unwrap_or("")),
            montage,
            filter,
            phase: if self.causal == Some(true) {
                Phase::Causal
            } else {
                Phase::ZeroPhase
            },
            px: self.px,
            bad_channels: list(&self.bad),
            max_values: Some(max_values),
        })
    }
}

/// A failed read: stored bytes that fail authentication or parsing open (or update) a P1
/// integrity incident naming the recording and the place — ids only — before the 500.
fn read_failure(state: &AppState, rec: &Recording, e: ViewError) -> ApiError {
    if e.category() == theta_engine::store::ErrorCategory::Corruption {
        let id = rec.id().to_string();
        state.incidents().report_integrity(
            state,
            Some(rec.tenant().as_str()),
            Some(&id),
            &format!("recording:{id}"),
            &e.to_string(),
        );
    }
    view_error(e)
}

fn view_error(e: ViewError) -> ApiError {
    match e {
        ViewError::Store(e) => store_error(e),
        e if e.category() == theta_engine::store::ErrorCategory::Caller => {
            ApiError::bad_request("request", e.to_string())
        }
        e => ApiError::Internal(Error::Store(e.to_string())),
    }
}

/// A window: raw samples per sample rate (physical by default, digital on request), or — with
/// a montage, filters or a pixel width — the processed page of `theta window`; JSON, or Arrow
/// IPC on `Accept: application/vnd.apache.arrow.stream`.
pub(crate) async fn window(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<WindowQuery>,
) -> Result<Response, ApiError> {
    let rec = authorised(&state, &ctx, &id, Action::ReadRecording).await?;
    let arrow = wants_arrow(&headers);
    let max_values = state.settings().http.max_window_values;
    if q.is_processed() {
        if q.units.as_deref() == Some("digital") {
            return Err(ApiError::bad_request(
                "units",
                "processed pages are in physical units",
            ));
        }
        let req = q.view_request(max_values)?;
        let precision = q.precision;
        let r = rec.clone();
        let read = async move { read_view(&r, &req).await };
        return gated(&state, rec, read, move |_, v| async move {
            if arrow {
                let bytes = blocking(move || render::view_arrow(&v)).await?;
                Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], bytes).into_response())
            } else {
                json_response(move || render::view_json_bytes(&v, precision)).await
            }
        })
        .await;
    }
    let units = units(q.units.as_deref(), Units::Physical)?;
    let req = WindowRequest::new(q.start, q.duration)
        .channels(ChannelSelection::parse(q.channels.as_deref().unwrap_or("")))
        .units(units)
        .max_values(max_values);
    let r = rec.clone();
    let read = async move { r.window(&req).await.map_err(ViewError::Store) };
    gated(&state, rec, read, move |rec, w| async move {
        if arrow {
            let bytes = blocking(move || render::window_arrow(&rec, &w)).await?;
            Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], bytes).into_response())
        } else {
            json_response(move || serde_json::to_vec(&render::window_json(&rec, &w, units))).await
        }
    })
    .await
}

/// Runs a window, page, spectrum or overview computation behind `http.max_concurrent_reads`
/// ([`crate::limits::Gate::run`]) in its two stages: `read` (decode, filter), then `write`
/// (the answer's bytes). It holds its place until it ends, even when its client has gone, so
/// the bound holds for the work actually running; and it skips `write` once nobody waits (the
/// error is then answered to no one). A read failure goes through [`read_failure`].
async fn gated<T, R, W>(
    state: &AppState,
    rec: Recording,
    read: R,
    write: impl FnOnce(Recording, T) -> W + Send + 'static,
) -> Result<Response, ApiError>
where
    T: Send + 'static,
    R: std::future::Future<Output = Result<T, ViewError>> + Send + 'static,
    W: std::future::Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    // The request's audit bookkeeping (a task-local) follows the work onto its task, so the
    // events it writes (an integrity incident) still count against the request.
    let audit = crate::audit::RequestAudit::current();
    let st = state.clone();
    state
        .reads()
        .run(move |wanted| {
            let work = async move {
                let out = read.await.map_err(|e| read_failure(&st, &rec, e))?;
                if !wanted.still() {
                    return Err(ApiError::Internal(Error::Task));
                }
                write(rec, out).await
            };
            async move {
                match audit {
                    Some(a) => a.scope(work).await,
                    None => work.await,
                }
            }
        })
        .await?
}

/// Serialises a (possibly large) JSON answer off the async workers.
/// Serialises on a blocking thread (a page is tens of thousands of numbers).
async fn json_response(
    f: impl FnOnce() -> serde_json::Result<Vec<u8>> + Send + 'static,
) -> Result<Response, ApiError> {
    let body =
        blocking(move || f().map_err(|e| ApiError::Internal(Error::Store(e.to_string())))).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Query of `GET /api/recordings/{id}/psd`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PsdQuery {
    start: f64,
    duration: f64,
    #[serde(default)]
    channels: Option<String>,
    #[serde(default)]
    nperseg: Option<usize>,
}

/// Welch spectra (density) and band powers of a span, as `theta psd --json`.
pub(crate) async fn psd(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<PsdQuery>,
) -> Result<Response, ApiError> {
    let rec = authorised(&state, &ctx, &id, Action::ReadRecording).await?;
    let sel = ChannelSelection::parse(q.channels.as_deref().unwrap_or(""));
    let max_values = Some(state.settings().http.max_window_values);
    let r = rec.clone();
    let read = async move {
        theta_query::view::psd(&r, q.start, q.duration, &sel, q.nperseg, max_values).await
    };
    gated(&state, rec, read, |_, p| {
        json_response(move || serde_json::to_vec(&render::psd_json(&p)))
    })
    .await
}

/// Query of `GET /api/recordings/{id}/overview`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverviewQuery {
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    duration: Option<f64>,
    width: usize,
    #[serde(default)]
    channels: Option<String>,
    #[serde(default)]
    units: Option<String>,
}

/// The min/max envelope over a span (default the whole recording) at a pixel width.
pub(crate) async fn overview(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<OverviewQuery>,
) -> Result<Response, ApiError> {
    let rec = authorised(&state, &ctx, &id, Action::ReadRecording).await?;
    let start = q.start.unwrap_or(0.0);
    let duration = q.duration.unwrap_or(rec.duration() - start);
    let mut req = OverviewRequest::new(start, duration, q.width);
    req.channels = ChannelSelection::parse(q.channels.as_deref().unwrap_or(""));
    req.units = units(q.units.as_deref(), Units::Physical)?;
    req.max_values = Some(state.settings().http.max_window_values);
    // A zoomed-in envelope reads raw samples (up to 2^26): it waits its turn like a window, and
    // its answer (up to max_window_values numbers) is written off the async workers.
    let units = req.units;
    let r = rec.clone();
    let read = async move { r.overview(&req).await.map_err(ViewError::Store) };
    gated(&state, rec, read, move |rec, ov| {
        json_response(move || serde_json::to_vec(&render::overview_json(&rec, &ov, units)))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Annotations

/// An annotation as the API takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnnotationBody {
    onset: f64,
    #[serde(default)]
    duration: Option<f64>,
    text: String,
}

impl From<AnnotationBody> for Annotation {
    fn from(b: AnnotationBody) -> Self {
        Annotation {
            onset: b.onset,
            duration: b.duration,
            text: b.text,
        }
    }
}

pub(crate) async fn annotations(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Vec<AnnotationRecord>>, ApiError> {
    let rec = authorised(&state, &ctx, &id, Action::ReadRecording).await?;
    let mut list = rec.annotations().await.map_err(store_error)?;
    list.sort_by(|a, b| {
        a.annotation
            .onset
            .total_cmp(&b.annotation.onset)
            .then(a.id.cmp(&b.id))
    });
    Ok(Json(list))
}

pub(crate) async fn annotation_history(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Vec<AnnotationVersion>>, ApiError> {
    let rec = authorised(&state, &ctx, &id, Action::ReadRecording).await?;
    Ok(Json(rec.annotation_history().await.map_err(store_error)?))
}

pub(crate) async fn add_annotation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AnnotationBody>,
) -> Result<(StatusCode, Json<AnnotationRecord>), ApiError> {
    let rec = authorised(&state, &ctx, &id, Action::Annotate).await?;
    let res = resource(&rec);
    let r = async {
        let aid = rec
            .add_annotation(&ctx.principal.username, body.into())
            .await
            .map_err(store_error)?;
        current(&rec, aid).await
    }
    .await;
    ctx.audited(AuditAction::AnnotationCreate, &res, r)
        .map(|a| (StatusCode::CREATED, Json(a)))
}

async fn current(rec: &Recording, aid: u64) -> Result<AnnotationRecord, ApiError> {
    rec.annotations()
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|a| a.id == aid)
        .ok_or(ApiError::NotFound {
            what: format!("annotation {aid}"),
        })
}

pub(crate) async fn edit_annotation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, aid)): Path<(String, u64)>,
    ApiJson(body): ApiJson<AnnotationBody>,
) -> Result<Json<AnnotationRecord>, ApiError> {
    let rec = authorised(&state, &ctx, &id, Action::Annotate).await?;
    let res = resource(&rec);
    let r = async {
        rec.edit_annotation(&ctx.principal.username, aid, body.into())
            .await
            .map_err(annotation_error)?;
        current(&rec, aid).await
    }
    .await;
    ctx.audited(AuditAction::AnnotationUpdate, &res, r)
        .map(Json)
}

pub(crate) async fn delete_annotation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, aid)): Path<(String, u64)>,
) -> Result<StatusCode, ApiError> {
    let rec = authorised(&state, &ctx, &id, Action::Annotate).await?;
    let res = resource(&rec);
    let r = rec
        .delete_annotation(&ctx.principal.username, aid)
        .await
        .map_err(annotation_error);
    ctx.audited(AuditAction::AnnotationDelete, &res, r)
        .map(|()| StatusCode::NO_CONTENT)
}

fn annotation_error(e: theta_engine::store::StoreError) -> ApiError {
    match e {
        theta_engine::store::StoreError::UnknownAnnotation { id, .. } => ApiError::NotFound {
            what: format!("annotation {id}"),
        },
        e => store_error(e),
    }
}
