//! The incident register over HTTP: list, show, trend report (auditors and administrators),
//! status changes and notes (administrators).

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::Duration;
use serde::Deserialize;

use crate::audit::{AuditAction, ResourceKind};
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::extract::{ApiJson, Ctx};
use crate::incidents::register::{self, Incident, IncidentDetail, ListFilter, TrendReport};
use crate::incidents::{Priority, Status};
use crate::routes::audit::parse_time;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    open: Option<bool>,
    #[serde(default)]
    limit: Option<u32>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    ctx.authorize(Action::ReadIncidents, &Resource::System)?;
    let filter = ListFilter {
        status: q
            .status
            .as_deref()
            .map(|s| {
                Status::from_code(s).ok_or_else(|| {
                    ApiError::bad_request("status", "open, notified, contained or closed")
                })
            })
            .transpose()?,
        open_only: q.open.unwrap_or(false),
        priority: q
            .priority
            .as_deref()
            .map(|p| {
                Priority::parse(p).ok_or_else(|| ApiError::bad_request("priority", "P1, P2 or P3"))
            })
            .transpose()?,
        tenant: q.tenant,
        from: q
            .from
            .as_deref()
            .map(|s| parse_time("from", s))
            .transpose()?,
        to: q.to.as_deref().map(|s| parse_time("to", s)).transpose()?,
        limit: Some(q.limit.unwrap_or(1000).min(10_000)),
    };
    Ok(Json(
        state.db().call(move |c| register::list(c, &filter)).await?,
    ))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let res = Resource::System;
    ctx.authorize(Action::ReadIncidents, &res)?;
    let id2 = id.clone();
    state
        .db()
        .call(move |c| register::detail(c, &id2))
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound {
            what: format!("incident {id}"),
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

pub(crate) async fn report(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ReportQuery>,
) -> Result<Json<TrendReport>, ApiError> {
    ctx.authorize(Action::ReadIncidents, &Resource::System)?;
    let now = state.now();
    let to =
        q.to.as_deref()
            .map(|s| parse_time("to", s))
            .transpose()?
            .unwrap_or(now);
    let from = q
        .from
        .as_deref()
        .map(|s| parse_time("from", s))
        .transpose()?
        .unwrap_or(to - Duration::days(365));
    Ok(Json(
        state
            .db()
            .call(move |c| register::trend(c, from, to, now))
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    note: Option<String>,
}

pub(crate) async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Incident>, ApiError> {
    ctx.authorize(Action::ManageIncidents, &Resource::System)?;
    if body.status.is_none() && body.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "status",
            "give a status, a note or both",
        ));
    }
    let (actor, now, id2) = (ctx.principal.account_id.clone(), state.now(), id.clone());
    let r = state
        .db()
        .call(move |c| {
            register::set_status(c, &id2, body.status, body.note.as_deref(), &actor, now)
        })
        .await
        .map_err(ApiError::from)
        .and_then(|i: Option<Incident>| {
            i.ok_or(ApiError::NotFound {
                what: format!("incident {id}"),
            })
        });
    let e = ctx
        .event(AuditAction::IncidentUpdate)
        .resource(ResourceKind::Incident, id.clone());
    let e = match &r {
        Ok(i) => {
            let mut e = e.outcome(crate::audit::Outcome::Success, None);
            e.tenant_id = i.tenant_id.clone();
            e
        }
        Err(err) => e.outcome(
            crate::audit::Outcome::Failure,
            Some(crate::audit::reason_of(err)),
        ),
    };
    state.audit(e);
    state.incidents().refresh_metrics(now).await;
    r.map(Json)
}
