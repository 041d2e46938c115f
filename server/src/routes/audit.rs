//! `GET /api/audit/export`: the audit trail for auditors, filtered and streamed (JSON Lines or
//! CSV), the request itself audited as `audit.export`.

use std::io::Write;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use theta_engine::audit::{AuditReader, ExportFilter, ExportFormat};

use crate::audit::{AuditAction, Outcome, ResourceKind};
use crate::authz::{Action, Resource};
use crate::error::{ApiError, Error};
use crate::extract::Ctx;
use crate::state::AppState;

/// Bytes gathered before a chunk is sent to the client.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    recording: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

/// Parses an RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC).
pub(crate) fn parse_time(field: &'static str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| ApiError::bad_request(field, "an RFC 3339 time or a YYYY-MM-DD date"))
}

/// A `Write` that hands chunks to the response body.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

pub(crate) async fn export(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    ctx.authorize(Action::ReadAudit, &Resource::System)?;
    let format = match q.format.as_deref().unwrap_or("jsonl") {
        "jsonl" | "json" => ExportFormat::Jsonl,
        "csv" => ExportFormat::Csv,
        _ => return Err(ApiError::bad_request("format", "jsonl or csv")),
    };
    let filter = ExportFilter {
        from: q
            .from
            .as_deref()
            .map(|s| parse_time("from", s))
            .transpose()?,
        to: q.to.as_deref().map(|s| parse_time("to", s)).transpose()?,
        actor: q.actor.clone(),
        recording: q.recording.clone(),
        tenant: q.tenant.clone(),
    };
    let path = state.settings().audit_log_path();
    // Open before answering, so a missing or foreign file is an error, not an empty 200.
    let reader = tokio::task::spawn_blocking(move || AuditReader::open(&path))
        .await
        .map_err(|_| Error::Task)?
        .map_err(|e| ApiError::Internal(Error::Audit(e)))?;
    // The request is audited before a byte leaves: who exported what (the filter's ids).
    let mut e = ctx
        .event(AuditAction::AuditExport)
        .outcome(Outcome::Success, None);
    e.tenant_id = q.tenant.clone();
    e.recording_id = q.recording.clone();
    if let Some(a) = &q.actor {
        e.resource = Some((ResourceKind::Account, a.clone()));
    }
    state.audit(e);

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let r = reader
            .export(&filter, format, &mut w)
            .map(|_| ())
            .and_then(|()| {
                w.flush()
                    .map_err(|e| theta_engine::audit::AuditError::Export {
                        reason: e.to_string(),
                    })
            });
        if let Err(err) = r {
            tracing::warn!(target: "theta::audit", error = %err, "audit export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other("export failed")));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let (ctype, ext) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        _ => ("application/x-ndjson", "jsonl"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"theta-audit.{ext}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
