//! Research export jobs of a tenant: start, list, state and progress, cancel, restart, and the
//! download of a finished export as a streamed tar.
//!
//! Every handler first makes the one authorisation call (`Action::ExportPseudonymised` on the
//! tenant: researchers of that tenant), then checks that the job is the caller's own: a job is
//! seen, cancelled, restarted and downloaded by the researcher who started it only. Start,
//! cancel, restart and download are audited with the job id; reads as `export.read`.

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::audit::{AuditAction, Outcome, Reason, ResourceKind, reason_of};
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::exports::{Job, JobRequest, JobState};
use crate::extract::Ctx;
use crate::state::AppState;

/// Bytes handed to the client per chunk of a download.
const TAR_CHUNK: usize = 256 * 1024;

/// Chunks buffered between the tar writer and the connection (back-pressure beyond this).
const TAR_QUEUE: usize = 4;

fn tenant(tenant_id: &str) -> Resource {
    Resource::Tenant {
        tenant_id: tenant_id.to_owned(),
    }
}

/// Records `action` on the job (tenant and export id), with the result's outcome. Refusals
/// were written as `access.denied` already.
fn audit_job<T>(
    ctx: &Ctx,
    action: AuditAction,
    tenant_id: &str,
    job_id: &str,
    r: &Result<T, ApiError>,
) {
    let (outcome, reason) = match r {
        Ok(_) => (Outcome::Success, None),
        Err(ApiError::Forbidden { .. }) => return,
        Err(e) => (Outcome::Failure, Some(reason_of(e))),
    };
    let e = ctx
        .event(action)
        .on(&tenant(tenant_id))
        .resource(ResourceKind::Export, job_id)
        .outcome(outcome, reason);
    ctx.audit_event(e);
}

/// The job, if it belongs to this tenant and to the caller.
async fn own_job(
    state: &AppState,
    ctx: &Ctx,
    tenant_id: &str,
    job_id: &str,
) -> Result<Job, ApiError> {
    let job = state
        .exports()
        .get(job_id)
        .await?
        .filter(|j| j.tenant_id == tenant_id)
        .ok_or_else(|| ApiError::NotFound {
            what: format!("export {job_id}"),
        })?;
    if job.account_id != ctx.principal.account_id {
        let e = ctx
            .event(AuditAction::AccessDenied)
            .on(&tenant(tenant_id))
            .resource(ResourceKind::Export, job_id)
            .outcome(Outcome::Denied, Some(Reason::NoGrant));
        ctx.audit_event(e);
        return Err(ApiError::forbidden(
            "only the researcher who started an export may see or download it",
        ));
    }
    Ok(job)
}

/// `POST /api/tenants/{tenant_id}/exports`: starts a job (202, queued).
pub(crate) async fn start(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(tenant_id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let res = tenant(&tenant_id);
    ctx.authorize(Action::ExportPseudonymised, &res)?;
    // The body is read only once the caller may export (a refusal says 403, not 400).
    let r = async {
        let request: JobRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("body", e.to_string()))?;
        state
            .exports()
            .start(&state, &tenant_id, &ctx.principal.account_id, request)
            .await
    }
    .await;
    match &r {
        Ok(job) => audit_job(&ctx, AuditAction::ExportStart, &tenant_id, &job.id, &r),
        Err(e) => ctx.audit(
            AuditAction::ExportStart,
            &res,
            Outcome::Failure,
            Some(reason_of(e)),
        ),
    }
    r.map(|job| (StatusCode::ACCEPTED, Json(job.to_json())))
}

/// `GET /api/tenants/{tenant_id}/exports`: the caller's jobs in this tenant, newest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(tenant_id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    ctx.authorize(Action::ExportPseudonymised, &tenant(&tenant_id))?;
    let jobs = state
        .exports()
        .list(&tenant_id, &ctx.principal.account_id)
        .await?;
    Ok(Json(jobs.iter().map(Job::to_json).collect()))
}

/// `GET /api/tenants/{tenant_id}/exports/{job_id}`: state, progress and report.
pub(crate) async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((tenant_id, job_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    ctx.authorize(Action::ExportPseudonymised, &tenant(&tenant_id))?;
    let job = own_job(&state, &ctx, &tenant_id, &job_id).await?;
    Ok(Json(job.to_json()))
}

/// `DELETE /api/tenants/{tenant_id}/exports/{job_id}`: cancels a queued or running job (202;
/// a running export stops at the next recording boundary).
pub(crate) async fn cancel(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((tenant_id, job_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    act_on_job(state, ctx, tenant_id, job_id, AuditAction::ExportCancel).await
}

/// `POST /api/tenants/{tenant_id}/exports/{job_id}/restart`: queues an interrupted, failed or
/// cancelled job again; it resumes what the earlier runs wrote.
pub(crate) async fn restart(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((tenant_id, job_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    act_on_job(state, ctx, tenant_id, job_id, AuditAction::ExportRestart).await
}

/// Cancel or restart one of the caller's jobs (202), audited either way.
async fn act_on_job(
    state: AppState,
    ctx: Ctx,
    tenant_id: String,
    job_id: String,
    action: AuditAction,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.authorize(Action::ExportPseudonymised, &tenant(&tenant_id))?;
    let r = async {
        own_job(&state, &ctx, &tenant_id, &job_id).await?;
        if action == AuditAction::ExportCancel {
            state.exports().cancel(&state, &job_id).await
        } else {
            state.exports().restart(&state, &job_id).await
        }
    }
    .await;
    audit_job(&ctx, action, &tenant_id, &job_id, &r);
    r.map(|job| (StatusCode::ACCEPTED, Json(job.to_json())))
}

/// `GET /api/tenants/{tenant_id}/exports/{job_id}/download`: the finished output as one tar,
/// streamed (built on a blocking thread into a bounded channel; never held in memory).
pub(crate) async fn download(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((tenant_id, job_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.authorize(Action::ExportPseudonymised, &tenant(&tenant_id))?;
    let r = async {
        let job = own_job(&state, &ctx, &tenant_id, &job_id).await?;
        if let Some(at) = job.purged_at {
            return Err(ApiError::Gone {
                reason: format!(
                    "the output of export {job_id} was deleted on {} at the end of its retention \
                     period; restart the job to export again",
                    at.format("%Y-%m-%d")
                ),
            });
        }
        if job.state != JobState::Done {
            return Err(ApiError::Conflict {
                reason: format!(
                    "the export is {}: it can be downloaded once done",
                    job.state.as_str()
                ),
            });
        }
        let dir = state.exports().output_dir(&job.id);
        if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            return Err(ApiError::NotFound {
                what: format!("output of export {job_id}"),
            });
        }
        Ok((job, dir))
    }
    .await;
    audit_job(&ctx, AuditAction::ExportDownload, &tenant_id, &job_id, &r);
    let (job, dir) = r?;
    let name = job.archive_name();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}.tar\""))
        .map_err(|_| ApiError::bad_request("project", "not usable as a file name"))?;
    let body = tar_body(dir, name, job.id.clone());
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    h.insert(header::CONTENT_DISPOSITION, disposition);
    Ok(resp)
}

/// A `Write` that hands full chunks to the response body; fails (broken pipe) once the client
/// is gone, which stops the tar writer.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(TAR_CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= TAR_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The body streaming `dir` as a tar whose entries sit under `<prefix>/`.
fn tar_body(dir: PathBuf, prefix: String, job_id: String) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(TAR_QUEUE);
    let err_tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let w = ChannelWriter {
            tx,
            buf: Vec::with_capacity(TAR_CHUNK),
        };
        if let Err(e) = write_tar(&dir, &prefix, w) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                tracing::info!(job = %job_id, "export download abandoned by the client");
            } else {
                tracing::warn!(job = %job_id, error = %e, "export download failed");
                // The client sees a broken body rather than a short tar that looks whole.
                let _ = err_tx.blocking_send(Err(e));
            }
        }
    });
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Writes every folder and regular file under `dir` (sorted, symbolic links skipped) into a
/// tar; headers carry no owner names and a fixed time (`HeaderMode::Deterministic`).
fn write_tar(dir: &FsPath, prefix: &str, w: ChannelWriter) -> std::io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    b.append_dir(prefix, dir)?;
    let mut stack = vec![(dir.to_path_buf(), PathBuf::from(prefix))];
    while let Some((abs, rel)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&abs)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        let mut subdirs = Vec::new();
        for e in entries {
            let ft = e.file_type()?;
            let name = rel.join(e.file_name());
            if ft.is_dir() {
                b.append_dir(&name, e.path())?;
                subdirs.push((e.path(), name));
            } else if ft.is_file() {
                b.append_path_with_name(e.path(), &name)?;
            }
        }
        // Depth-first, in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    let mut w = b.into_inner()?;
    w.flush()
}
