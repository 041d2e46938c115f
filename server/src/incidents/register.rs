//! The incident register in the service database: open or update an incident from a detection,
//! list, show, change status, record notifications, count for the alert, and the trend report.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{Category, Detection, Indicator, IndicatorKind, Priority, Status};
use crate::clock::{from_millis, to_millis};
use crate::error::{Error, Result};

/// Detections of one category that share an indicator with an incident not closed and detected
/// less than this long ago update it instead of opening another.
pub const CORRELATION_HOURS: i64 = 24;

/// An incident as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// Opaque id (UUID).
    pub id: String,
    /// P1, P2 or P3.
    pub priority: Priority,
    /// What kind of incident.
    pub category: Category,
    /// Open, notified, contained, closed.
    pub status: Status,
    /// The partner concerned, when one is.
    pub tenant_id: Option<String>,
    /// A fixed phrase for the category (no data).
    pub summary: String,
    /// First detection.
    pub detected_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The partner must be notified by then (detection + 12 h / 24 h / 72 h).
    pub deadline_at: DateTime<Utc>,
    /// When the partner was notified.
    pub notified_at: Option<DateTime<Utc>>,
    /// When it was contained.
    pub contained_at: Option<DateTime<Utc>>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Detections merged into it.
    pub detections: i64,
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (`incidents` for the detectors, an account id, `cli:<user>`).
    pub actor: String,
    /// `detected`, `redetected`, `response`, `notification`, `status`, `note`.
    pub kind: String,
    /// What.
    pub detail: String,
}

/// One indicator with its sightings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndicatorRow {
    /// Kind.
    pub kind: IndicatorKind,
    /// Value (an id or address).
    pub value: String,
    /// First seen.
    pub first_seen: DateTime<Utc>,
    /// Last seen.
    pub last_seen: DateTime<Utc>,
    /// Detections naming it.
    pub hits: i64,
}

/// One notification target's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationRow {
    /// Webhook URL.
    pub target: String,
    /// Tenant it serves (`*` for all).
    pub tenant: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The last failure (status code or transport error; no body).
    pub last_error: Option<String>,
}

/// An incident with everything known about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentDetail {
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
    /// Indicators.
    pub indicators: Vec<IndicatorRow>,
    /// Timeline, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Notifications.
    pub notifications: Vec<NotificationRow>,
}

/// What [`upsert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    /// The incident after the change.
    pub incident: Incident,
    /// A new incident was opened.
    pub created: bool,
    /// An existing incident's priority was raised.
    pub escalated: bool,
}

impl Upserted {
    /// The notification the partner is owed for this change: `incident.created`,
    /// `incident.escalated`, or none for a repeated detection.
    pub fn notification(&self) -> Option<&'static str> {
        if self.created {
            Some("incident.created")
        } else if self.escalated {
            Some("incident.escalated")
        } else {
            None
        }
    }
}

const COLUMNS: &str = "id, priority, category, status, tenant_id, summary, detected_at, updated_at, \
                       deadline_at, notified_at, contained_at, closed_at, detections";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Incident, bool)> {
    let priority: i64 = r.get(1)?;
    let category: String = r.get(2)?;
    let status: String = r.get(3)?;
    let (p, c, s) = (
        Priority::from_level(priority),
        Category::from_code(&category),
        Status::from_code(&status),
    );
    let ok = p.is_some() && c.is_some() && s.is_some();
    Ok((
        Incident {
            id: r.get(0)?,
            priority: p.unwrap_or(Priority::P1),
            category: c.unwrap_or(Category::Manual),
            status: s.unwrap_or(Status::Open),
            tenant_id: r.get(4)?,
            summary: r.get(5)?,
            detected_at: from_millis(r.get(6)?),
            updated_at: from_millis(r.get(7)?),
            deadline_at: from_millis(r.get(8)?),
            notified_at: r.get::<_, Option<i64>>(9)?.map(from_millis),
            contained_at: r.get::<_, Option<i64>>(10)?.map(from_millis),
            closed_at: r.get::<_, Option<i64>>(11)?.map(from_millis),
            detections: r.get(12)?,
        },
        ok,
    ))
}

fn checked(v: (Incident, bool)) -> Result<Incident> {
    if v.1 {
        Ok(v.0)
    } else {
        Err(Error::Corrupt {
            what: format!(
                "incident {}: unknown priority, category or status code",
                v.0.id
            ),
        })
    }
}

/// One incident.
///
/// # Errors
/// Database errors; [`Error::Corrupt`] for unknown codes.
pub fn get(conn: &Connection, id: &str) -> Result<Option<Incident>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"),
        [id],
        row,
    )
    .optional()?
    .map(checked)
    .transpose()
}

/// A stored lock: scope, key, back-off level, until, set at.
pub type StoredLock = (String, String, u32, DateTime<Utc>, DateTime<Utc>);

/// Filter of [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only incidents not closed.
    pub open_only: bool,
    /// Only this priority.
    pub priority: Option<Priority>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Detected at or after.
    pub from: Option<DateTime<Utc>>,
    /// Detected before.
    pub to: Option<DateTime<Utc>>,
    /// At most this many, newest first (default 1000).
    pub limit: Option<u32>,
}

/// Incidents, newest first.
///
/// # Errors
/// Database errors.
pub fn list(conn: &Connection, f: &ListFilter) -> Result<Vec<Incident>> {
    let mut sql = format!("SELECT {COLUMNS} FROM incidents WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(s) = f.status {
        sql.push_str(" AND status = ?");
        args.push(s.code().to_owned().into());
    }
    if f.open_only {
        sql.push_str(" AND status <> 'closed'");
    }
    if let Some(p) = f.priority {
        sql.push_str(" AND priority = ?");
        args.push(p.level().into());
    }
    if let Some(t) = &f.tenant {
        sql.push_str(" AND tenant_id = ?");
        args.push(t.clone().into());
    }
    if let Some(t) = f.from {
        sql.push_str(" AND detected_at >= ?");
        args.push(to_millis(t).into());
    }
    if let Some(t) = f.to {
        sql.push_str(" AND detected_at < ?");
        args.push(to_millis(t).into());
    }
    sql.push_str(" ORDER BY detected_at DESC, id LIMIT ?");
    args.push(i64::from(f.limit.unwrap_or(1000)).into());
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args), row)?;
    rows.map(|r| checked(r?)).collect()
}

/// One incident with indicators, timeline and notifications.
///
/// # Errors
/// Database errors.
pub fn detail(conn: &Connection, id: &str) -> Result<Option<IncidentDetail>> {
    let Some(incident) = get(conn, id)? else {
        return Ok(None);
    };
    let mut st = conn.prepare(
        "SELECT kind, value, first_seen, last_seen, hits FROM incident_indicators \
         WHERE incident_id = ?1 ORDER BY kind, value",
    )?;
    let indicators = st
        .query_map([id], |r| {
            Ok(IndicatorRow {
                kind: IndicatorKind::from_code(&r.get::<_, String>(0)?)
                    .unwrap_or(IndicatorKind::Resource),
                value: r.get(1)?,
                first_seen: from_millis(r.get(2)?),
                last_seen: from_millis(r.get(3)?),
                hits: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare(
        "SELECT at, actor, kind, detail FROM incident_timeline WHERE incident_id = ?1 \
         ORDER BY at, rowid",
    )?;
    let timeline = st
        .query_map([id], |r| {
            Ok(TimelineEntry {
                at: from_millis(r.get(0)?),
                actor: r.get(1)?,
                kind: r.get(2)?,
                detail: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare(
        "SELECT target, tenant, attempts, delivered_at, last_error FROM incident_notifications \
         WHERE incident_id = ?1 ORDER BY target",
    )?;
    let notifications = st
        .query_map([id], |r| {
            Ok(NotificationRow {
                target: r.get(0)?,
                tenant: r.get(1)?,
                attempts: r.get(2)?,
                delivered_at: r.get::<_, Option<i64>>(3)?.map(from_millis),
                last_error: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(IncidentDetail {
        incident,
        indicators,
        timeline,
        notifications,
    }))
}

/// Appends a timeline entry.
///
/// # Errors
/// Database errors.
pub fn add_timeline(
    conn: &Connection,
    id: &str,
    at: DateTime<Utc>,
    actor: &str,
    kind: &str,
    detail: &str,
) -> Result<()> {
    conn.execute(
        "INSERT INTO incident_timeline (incident_id, at, actor, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, to_millis(at), actor, kind, detail],
    )?;
    Ok(())
}

fn add_indicators(
    conn: &Connection,
    id: &str,
    inds: &[Indicator],
    at: DateTime<Utc>,
) -> Result<()> {
    for i in inds {
        conn.execute(
            "INSERT INTO incident_indicators (incident_id, kind, value, first_seen, last_seen, hits) \
             VALUES (?1, ?2, ?3, ?4, ?4, 1) \
             ON CONFLICT (incident_id, kind, value) DO UPDATE SET last_seen = ?4, hits = hits + 1",
            params![id, i.kind.code(), i.value, to_millis(at)],
        )?;
    }
    Ok(())
}

/// Opens an incident for `det`, or updates the open one of the same category sharing an
/// indicator (detected within [`CORRELATION_HOURS`]): one attack, one incident.
///
/// # Errors
/// Database errors.
pub fn upsert(conn: &mut Connection, det: &Detection, actor: &str) -> Result<Upserted> {
    let tx = conn.transaction()?;
    let since = det.at - Duration::hours(CORRELATION_HOURS);
    let mut existing: Option<Incident> = None;
    {
        let mut st = tx.prepare(&format!(
            "SELECT {COLUMNS} FROM incidents WHERE category = ?1 AND status <> 'closed' \
             AND detected_at >= ?2 ORDER BY detected_at"
        ))?;
        let candidates: Vec<Incident> = st
            .query_map(params![det.category.code(), to_millis(since)], row)?
            .map(|r| r.map_err(Error::from).and_then(checked))
            .collect::<Result<_>>()?;
        let mut has = tx.prepare(
            "SELECT 1 FROM incident_indicators WHERE incident_id = ?1 AND kind = ?2 AND value = ?3",
        )?;
        'outer: for c in candidates {
            // Platform-wide categories (no indicator to share) merge by category alone.
            if det.indicators.is_empty() {
                existing = Some(c);
                break;
            }
            for i in &det.indicators {
                if has.exists(params![c.id, i.kind.code(), i.value])? {
                    existing = Some(c);
                    break 'outer;
                }
            }
        }
    }
    let out = match existing {
        Some(inc) => {
            let escalated = det.priority < inc.priority;
            let priority = det.priority.min(inc.priority);
            let deadline = if escalated {
                inc.deadline_at
                    .min(det.at + det.priority.notification_delay())
            } else {
                inc.deadline_at
            };
            tx.execute(
                "UPDATE incidents SET priority = ?2, deadline_at = ?3, updated_at = ?4, \
                 detections = detections + 1, tenant_id = COALESCE(tenant_id, ?5) WHERE id = ?1",
                params![
                    inc.id,
                    priority.level(),
                    to_millis(deadline),
                    to_millis(det.at),
                    det.tenant
                ],
            )?;
            add_indicators(&tx, &inc.id, &det.indicators, det.at)?;
            add_timeline(&tx, &inc.id, det.at, actor, "redetected", &det.detail)?;
            if escalated {
                add_timeline(
                    &tx,
                    &inc.id,
                    det.at,
                    actor,
                    "status",
                    &format!("priority raised to {}", priority.code()),
                )?;
            }
            let incident = get(&tx, &inc.id)?.ok_or_else(|| Error::Corrupt {
                what: "incident vanished during an update".into(),
            })?;
            Upserted {
                incident,
                created: false,
                escalated,
            }
        }
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            let deadline = det.at + det.priority.notification_delay();
            tx.execute(
                "INSERT INTO incidents (id, priority, category, status, tenant_id, summary, detected_at, \
                 updated_at, deadline_at, detections) VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?6, ?7, 1)",
                params![
                    id,
                    det.priority.level(),
                    det.category.code(),
                    det.tenant,
                    det.category.summary(),
                    to_millis(det.at),
                    to_millis(deadline)
                ],
            )?;
            add_indicators(&tx, &id, &det.indicators, det.at)?;
            add_timeline(&tx, &id, det.at, actor, "detected", &det.detail)?;
            let incident = get(&tx, &id)?.ok_or_else(|| Error::Corrupt {
                what: "incident vanished after its insertion".into(),
            })?;
            Upserted {
                incident,
                created: true,
                escalated: false,
            }
        }
    };
    for r in &det.responses {
        add_timeline(&tx, &out.incident.id, det.at, actor, "response", r)?;
    }
    tx.commit()?;
    Ok(out)
}

/// Changes an incident's status (and adds a note), stamping notified/contained/closed times.
/// Returns the incident after the change, `None` if unknown.
///
/// # Errors
/// [`Error::Invalid`] for a closed incident being re-opened without a note; database errors.
pub fn set_status(
    conn: &mut Connection,
    id: &str,
    status: Option<Status>,
    note: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<Incident>> {
    let tx = conn.transaction()?;
    let Some(inc) = get(&tx, id)? else {
        return Ok(None);
    };
    if let Some(s) = status
        && s != inc.status
    {
        if inc.status == Status::Closed && note.is_none_or(|n| n.trim().is_empty()) {
            return Err(Error::invalid(
                "note",
                "re-opening a closed incident needs a note saying why",
            ));
        }
        let column = match s {
            Status::Notified => Some("notified_at"),
            Status::Contained => Some("contained_at"),
            Status::Closed => Some("closed_at"),
            Status::Open => None,
        };
        tx.execute(
            "UPDATE incidents SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, s.code(), to_millis(now)],
        )?;
        if let Some(c) = column {
            tx.execute(
                &format!("UPDATE incidents SET {c} = COALESCE({c}, ?2) WHERE id = ?1"),
                params![id, to_millis(now)],
            )?;
        }
        add_timeline(
            &tx,
            id,
            now,
            actor,
            "status",
            &format!("{} -> {}", inc.status.code(), s.code()),
        )?;
    }
    if let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) {
        let n: String = n.chars().take(2000).collect();
        add_timeline(&tx, id, now, actor, "note", &n)?;
        tx.execute(
            "UPDATE incidents SET updated_at = ?2 WHERE id = ?1",
            params![id, to_millis(now)],
        )?;
    }
    let out = get(&tx, id)?;
    tx.commit()?;
    Ok(out)
}

/// Records a delivery attempt to a webhook; when `delivered` and every target of the incident has
/// been reached, an open incident becomes `notified`. Returns whether that happened.
///
/// # Errors
/// Database errors.
#[allow(clippy::too_many_arguments)] // one row's columns
pub fn record_notification(
    conn: &mut Connection,
    id: &str,
    target: &str,
    tenant: &str,
    attempts: u32,
    delivered: bool,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO incident_notifications (incident_id, target, tenant, attempts, delivered_at, last_error, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (incident_id, target) DO UPDATE SET attempts = ?4, \
         delivered_at = COALESCE(?5, delivered_at), last_error = ?6, updated_at = ?7",
        params![
            id,
            target,
            tenant,
            i64::from(attempts),
            delivered.then(|| to_millis(now)),
            error,
            to_millis(now)
        ],
    )?;
    let detail = if delivered {
        format!("delivered to the {tenant} webhook after {attempts} attempt(s)")
    } else {
        format!(
            "delivery to the {tenant} webhook failed after {attempts} attempt(s): {}",
            error.unwrap_or("unknown error")
        )
    };
    add_timeline(&tx, id, now, "incidents", "notification", &detail)?;
    let mut became_notified = false;
    if delivered {
        let pending: i64 = tx.query_row(
            "SELECT COUNT(*) FROM incident_notifications WHERE incident_id = ?1 AND delivered_at IS NULL",
            [id],
            |r| r.get(0),
        )?;
        if pending == 0 {
            let n = tx.execute(
                "UPDATE incidents SET status = 'notified', notified_at = COALESCE(notified_at, ?2), \
                 updated_at = ?2 WHERE id = ?1 AND status = 'open'",
                params![id, to_millis(now)],
            )?;
            if n == 1 {
                add_timeline(&tx, id, now, "incidents", "status", "open -> notified")?;
                became_notified = true;
            }
        }
    }
    tx.commit()?;
    Ok(became_notified)
}

/// Webhook deliveries still owed: `(incident id, target)` of incidents not closed whose
/// notification to `target` was never acknowledged and was last tried before `before` (given up
/// after its retries, or cut short by a stopped process).
///
/// # Errors
/// Database errors.
pub fn pending_notifications(
    conn: &Connection,
    before: DateTime<Utc>,
) -> Result<Vec<(String, String)>> {
    let mut st = conn.prepare(
        "SELECT n.incident_id, n.target FROM incident_notifications n \
         JOIN incidents i ON i.id = n.incident_id \
         WHERE n.delivered_at IS NULL AND i.status <> 'closed' AND n.updated_at < ?1 \
         ORDER BY n.incident_id, n.target",
    )?;
    let rows = st
        .query_map([to_millis(before)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Counts for the metrics: open incidents per priority, and un-notified ones whose deadline is
/// within `warning` (near) or past.
///
/// # Errors
/// Database errors.
pub fn alert_counts(
    conn: &Connection,
    now: DateTime<Utc>,
    warning: Duration,
) -> Result<([i64; 3], [i64; 3], [i64; 3])> {
    let (mut open, mut near, mut past) = ([0i64; 3], [0i64; 3], [0i64; 3]);
    let mut st = conn.prepare(
        "SELECT priority, status, deadline_at, notified_at FROM incidents WHERE status <> 'closed'",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    for row in rows {
        let (p, _status, deadline, notified) = row?;
        let Some(i) = usize::try_from(p - 1).ok().filter(|i| *i < 3) else {
            continue;
        };
        open[i] += 1;
        if notified.is_none() {
            let d = from_millis(deadline);
            if d <= now {
                past[i] += 1;
            } else if d - now <= warning {
                near[i] += 1;
            }
        }
    }
    Ok((open, near, past))
}

/// One cell of the trend report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrendCell {
    /// Incidents detected.
    pub incidents: u64,
    /// Of which notified before their deadline.
    pub notified_in_time: u64,
    /// Of which notified late (or not yet, deadline past).
    pub notified_late: u64,
    /// Median hours from detection to notification (notified ones).
    pub median_hours_to_notify: Option<f64>,
    /// Median hours from detection to containment (contained or closed ones).
    pub median_hours_to_contain: Option<f64>,
}

/// The trend report: incidents per period (month) × priority × category, and totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendReport {
    /// Start of the period covered.
    pub from: DateTime<Utc>,
    /// End of the period covered.
    pub to: DateTime<Utc>,
    /// `YYYY-MM` → `P1`/`P2`/`P3` → category → cell.
    pub by_month: BTreeMap<String, BTreeMap<String, BTreeMap<String, TrendCell>>>,
    /// Priority → category → cell, over the whole period.
    pub totals: BTreeMap<String, BTreeMap<String, TrendCell>>,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// The trend of past incidents between `from` and `to` (security plan §6.1.5).
///
/// # Errors
/// Database errors.
pub fn trend(
    conn: &Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<TrendReport> {
    let all = list(
        conn,
        &ListFilter {
            from: Some(from),
            to: Some(to),
            limit: Some(u32::MAX),
            ..ListFilter::default()
        },
    )?;
    type Acc = (TrendCell, Vec<f64>, Vec<f64>);
    let mut by_month: BTreeMap<(String, String, String), Acc> = BTreeMap::new();
    let mut totals: BTreeMap<(String, String), Acc> = BTreeMap::new();
    for i in &all {
        let month = i.detected_at.format("%Y-%m").to_string();
        let p = i.priority.code().to_owned();
        let c = i.category.code().to_owned();
        let to_notify = i
            .notified_at
            .map(|n| (n - i.detected_at).num_milliseconds() as f64 / 3.6e6);
        let to_contain = i
            .contained_at
            .or(i.closed_at)
            .map(|n| (n - i.detected_at).num_milliseconds() as f64 / 3.6e6);
        let in_time = i.notified_at.is_some_and(|n| n <= i.deadline_at);
        let late = i
            .notified_at
            .map_or(now > i.deadline_at, |n| n > i.deadline_at);
        for acc in [
            by_month
                .entry((month.clone(), p.clone(), c.clone()))
                .or_default(),
            totals.entry((p.clone(), c.clone())).or_default(),
        ] {
            acc.0.incidents += 1;
            acc.0.notified_in_time += u64::from(in_time);
            acc.0.notified_late += u64::from(late);
            acc.1.extend(to_notify);
            acc.2.extend(to_contain);
        }
    }
    let finish = |mut a: Acc| {
        a.0.median_hours_to_notify = median(&mut a.1);
        a.0.median_hours_to_contain = median(&mut a.2);
        a.0
    };
    let mut report = TrendReport {
        from,
        to,
        by_month: BTreeMap::new(),
        totals: BTreeMap::new(),
    };
    for ((m, p, c), a) in by_month {
        report
            .by_month
            .entry(m)
            .or_default()
            .entry(p)
            .or_default()
            .insert(c, finish(a));
    }
    for ((p, c), a) in totals {
        report.totals.entry(p).or_default().insert(c, finish(a));
    }
    Ok(report)
}

/// Persists a lock or throttle.
///
/// # Errors
/// Database errors.
pub fn save_lock(
    conn: &Connection,
    scope: &str,
    key: &str,
    level: u32,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO login_locks (scope, lock_key, level, locked_until, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (scope, lock_key) DO UPDATE SET level = ?3, locked_until = ?4, updated_at = ?5",
        params![scope, key, i64::from(level), to_millis(until), to_millis(now)],
    )?;
    Ok(())
}

/// Removes a lock (administrator unlock). Returns whether one existed.
///
/// # Errors
/// Database errors.
pub fn delete_lock(conn: &Connection, scope: &str, key: &str) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM login_locks WHERE scope = ?1 AND lock_key = ?2",
        params![scope, key],
    )? == 1)
}

/// Every lock updated since `since` (loaded at start-up: the back-off level survives restarts).
///
/// # Errors
/// Database errors.
pub fn load_locks(conn: &Connection, since: DateTime<Utc>) -> Result<Vec<StoredLock>> {
    let mut st = conn.prepare(
        "SELECT scope, lock_key, level, locked_until, updated_at FROM login_locks WHERE updated_at >= ?1",
    )?;
    let rows = st.query_map([to_millis(since)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            u32::try_from(r.get::<_, i64>(2)?).unwrap_or(1),
            from_millis(r.get(3)?),
            from_millis(r.get(4)?),
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
