//! Export of events on request (a partner's or an auditor's), as JSON Lines or CSV, streamed row
//! by row from one SQLite statement: memory use does not grow with the log.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, types::ValueRef};
use serde::Serialize;

use super::canonical::addr_from_octets;
use super::error::{AuditError, Result};
use super::event::ms_to_datetime;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row. Cells that a spreadsheet would take for a formula
    /// (starting with `=`, `+`, `-`, `@`, tab or CR) are prefixed with `'`.
    Csv,
}

impl ExportFormat {
    /// Parses `jsonl` or `csv`.
    pub fn try_from_name(name: &str) -> Option<Self> {
        match name {
            "jsonl" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }
}

/// Which events to export (all conditions must hold; `None` means no condition).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Events at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Events strictly before this time.
    pub to: Option<DateTime<Utc>>,
    /// Events by this actor (account id, attempted user name or service id).
    pub actor: Option<String>,
    /// Events about this recording.
    pub recording: Option<String>,
    /// Events of this tenant.
    pub tenant: Option<String>,
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Events written.
    pub events: u64,
    /// Smallest sequence number written.
    pub first_seq: Option<u64>,
    /// Largest sequence number written.
    pub last_seq: Option<u64>,
}

/// The exported columns, in order (CSV header and JSON keys).
pub const EXPORT_COLUMNS: [&str; 18] = [
    "seq",
    "time",
    "ts_ms",
    "action",
    "outcome",
    "actor_kind",
    "actor",
    "session",
    "client_addr",
    "user_agent",
    "tenant",
    "recording",
    "resource_kind",
    "resource_id",
    "reason",
    "prev_hash",
    "hash",
    "v",
];

#[derive(Serialize)]
struct Record<'a> {
    seq: i64,
    time: String,
    ts_ms: i64,
    action: Option<&'a str>,
    outcome: Option<&'a str>,
    actor_kind: Option<&'a str>,
    actor: Option<&'a str>,
    session: Option<&'a str>,
    client_addr: Option<String>,
    user_agent: Option<&'a str>,
    tenant: Option<&'a str>,
    recording: Option<&'a str>,
    resource_kind: Option<&'a str>,
    resource_id: Option<&'a str>,
    reason: Option<&'a str>,
    prev_hash: String,
    hash: String,
    v: i64,
}

fn text(v: ValueRef<'_>) -> Option<&str> {
    match v {
        // Stored values are ASCII/UTF-8 unless the row was tampered with; an invalid one is
        // shown as absent rather than failing the whole export (`verify` reports the tampering).
        ValueRef::Text(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

fn blob_hex(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Blob(b) => hex::encode(b),
        _ => String::new(),
    }
}

fn int(v: ValueRef<'_>) -> i64 {
    match v {
        ValueRef::Integer(i) => i,
        _ => 0,
    }
}

/// Guards a CSV cell against formula injection (OWASP "CSV injection").
fn csv_cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

/// Calls `each` for every event matching `filter`, in (time, seq) order, one row at a time.
fn for_each_record(
    conn: &Connection,
    filter: &ExportFilter,
    mut each: impl FnMut(&Record<'_>) -> Result<()>,
) -> Result<ExportSummary> {
    // `ORDER BY ts_ms, seq` walks the `events_ts` index (which carries the rowid), so no sort.
    let sql = "SELECT seq, ts_ms, action, outcome, actor_kind, actor, session, client_addr, user_agent, \
               tenant, recording, resource_kind, resource_id, reason, prev_hash, hash, v \
               FROM events \
               WHERE ts_ms >= ?1 AND ts_ms < ?2 \
                 AND (?3 IS NULL OR actor = ?3) \
                 AND (?4 IS NULL OR recording = ?4) \
                 AND (?5 IS NULL OR tenant = ?5) \
               ORDER BY ts_ms, seq";
    let mut stmt = conn.prepare(sql)?;
    let from = filter.from.map_or(i64::MIN, |t| t.timestamp_millis());
    let to = filter.to.map_or(i64::MAX, |t| t.timestamp_millis());
    let mut rows = stmt.query(rusqlite::params![
        from,
        to,
        filter.actor,
        filter.recording,
        filter.tenant
    ])?;
    let mut summary = ExportSummary::default();
    while let Some(row) = rows.next()? {
        let g = |i: usize| row.get_ref(i);
        let ts_ms = int(g(1)?);
        let rec = Record {
            seq: int(g(0)?),
            time: ms_to_datetime(ts_ms).to_rfc3339_opts(SecondsFormat::Millis, true),
            ts_ms,
            action: text(g(2)?),
            outcome: text(g(3)?),
            actor_kind: text(g(4)?),
            actor: text(g(5)?),
            session: text(g(6)?),
            client_addr: match g(7)? {
                ValueRef::Blob(b) => addr_from_octets(b).map(|a| a.to_string()),
                _ => None,
            },
            user_agent: text(g(8)?),
            tenant: text(g(9)?),
            recording: text(g(10)?),
            resource_kind: text(g(11)?),
            resource_id: text(g(12)?),
            reason: text(g(13)?),
            prev_hash: blob_hex(g(14)?),
            hash: blob_hex(g(15)?),
            v: int(g(16)?),
        };
        each(&rec)?;
        let seq = u64::try_from(rec.seq).unwrap_or(0);
        summary.events += 1;
        summary.first_seq = Some(summary.first_seq.map_or(seq, |s| s.min(seq)));
        summary.last_seq = Some(summary.last_seq.map_or(seq, |s| s.max(seq)));
    }
    Ok(summary)
}

fn export_err(e: &dyn std::fmt::Display) -> AuditError {
    AuditError::Export {
        reason: e.to_string(),
    }
}

/// Streams the events matching `filter` to `out`, in (time, seq) order.
pub(crate) fn export_to(
    conn: &Connection,
    filter: &ExportFilter,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<ExportSummary> {
    let summary = match format {
        ExportFormat::Jsonl => {
            let mut line = Vec::with_capacity(512);
            for_each_record(conn, filter, |rec| {
                line.clear();
                serde_json::to_writer(&mut line, rec).map_err(|e| export_err(&e))?;
                line.push(b'\n');
                out.write_all(&line).map_err(|e| export_err(&e))
            })?
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(EXPORT_COLUMNS).map_err(|e| export_err(&e))?;
            let summary = for_each_record(conn, filter, |rec| {
                let o = |s: Option<&str>| csv_cell(s.unwrap_or_default()).into_owned();
                w.write_record([
                    rec.seq.to_string(),
                    rec.time.clone(),
                    rec.ts_ms.to_string(),
                    o(rec.action),
                    o(rec.outcome),
                    o(rec.actor_kind),
                    o(rec.actor),
                    o(rec.session),
                    rec.client_addr.clone().unwrap_or_default(),
                    o(rec.user_agent),
                    o(rec.tenant),
                    o(rec.recording),
                    o(rec.resource_kind),
                    o(rec.resource_id),
                    o(rec.reason),
                    rec.prev_hash.clone(),
                    rec.hash.clone(),
                    rec.v.to_string(),
                ])
                .map_err(|e| export_err(&e))
            })?;
            w.flush().map_err(|e| export_err(&e))?;
            summary
        }
    };
    out.flush().map_err(|e| export_err(&e))?;
    Ok(summary)
}
