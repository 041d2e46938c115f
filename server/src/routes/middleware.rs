//! Cross-cutting middleware: the per-address rate limit (before routing), the audit guarantee and
//! request metrics (inside the routes, where the matched template is known), and `/metrics`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::audit::{
    Actor, AuditAction, Audited, Outcome, Reason, RequestAudit, ResourceKind, SinkHealth,
    resolve_client,
};
use crate::error::ApiError;
use crate::extract::RequestInfo;
use crate::state::AppState;

/// Refuses requests from an address over its token bucket (429, `Retry-After`).
pub(crate) async fn rate_limit(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let xff = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    if let Some(ip) = resolve_client(peer, xff, state.trusted_proxies()) {
        let now = state.now();
        if let Err(retry_after_secs) = state.limits().check_address(ip, now) {
            state.metrics().rate_limited("address");
            state.incidents().observe_rate_limited(&state, ip, now);
            if state.limits().should_audit_address(ip, now) {
                let (parts, _) = req.into_parts();
                let info = RequestInfo::from_parts(&parts, &state);
                let mut e = info
                    .event(&state, AuditAction::AccessDenied)
                    .outcome(Outcome::Denied, Some(Reason::RateLimited));
                e.actor = Actor::Anonymous;
                state.audit(e);
            }
            return ApiError::TooManyRequests { retry_after_secs }.into_response();
        }
    }
    next.run(req).await
}

/// Makes every audited route write at least one event, refuses to act when the trail cannot
/// store events, and measures latency by route template.
pub(crate) async fn audit_and_measure(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let audited = super::audited(&method, &route);
    let window = audited.and_then(Audited::action) == Some(AuditAction::RecordingReadWindow);
    let resp = match audited {
        None | Some(Audited::Exempt(_)) => next.run(req).await,
        Some(declared) => run_audited(&state, declared, &route, req, next).await,
    };
    state.metrics().request(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed(),
        window,
    );
    resp
}

async fn run_audited(
    state: &AppState,
    declared: Audited,
    route: &str,
    req: Request,
    next: Next,
) -> Response {
    if let SinkHealth::Failing(why) = state.audit_health() {
        tracing::error!(target: "theta::audit", reason = %why, route, "request refused: the audit trail cannot store events");
        return ApiError::Unavailable {
            what: "audit trail",
        }
        .into_response();
    }
    let (mut parts, body) = req.into_parts();
    let info = RequestInfo::from_parts(&parts, state);
    let params: Vec<(String, String)> = <RawPathParams as axum::extract::FromRequestParts<
        AppState,
    >>::from_request_parts(&mut parts, state)
    .await
    .map(|p| {
        p.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    })
    .unwrap_or_default();
    let req = Request::from_parts(parts, body);
    let scope = RequestAudit::new(declared);
    let resp = scope.clone().scope(next.run(req)).await;
    if scope.written() > 0 {
        return resp;
    }
    let status = resp.status();
    // Rate-limit refusals are audited by sampling, on purpose.
    if status == StatusCode::TOO_MANY_REQUESTS {
        return resp;
    }
    let Some(action) = declared.action() else {
        return resp;
    };
    let (actor, session) = {
        let g = scope.lock();
        (g.actor.clone(), g.session.clone())
    };
    let mut e = info.event(state, action);
    e.actor = actor.map_or(Actor::Anonymous, Actor::Account);
    e.session_id = session;
    fill_from_params(&mut e, route, &params);
    // `ApiError` answers carry their precise reason; others get one from the status.
    let precise = resp.extensions().get::<Reason>().copied();
    let (outcome_action, outcome, reason) = match status.as_u16() {
        200..=399 => (action, Outcome::Success, None),
        401 => (
            AuditAction::AccessDenied,
            Outcome::Denied,
            Some(precise.unwrap_or(Reason::NotAuthenticated)),
        ),
        403 => (
            AuditAction::AccessDenied,
            Outcome::Denied,
            Some(precise.unwrap_or(Reason::InsufficientRole)),
        ),
        404 => (action, Outcome::Failure, Some(Reason::NotFound)),
        409 => (action, Outcome::Failure, Some(Reason::Conflict)),
        400..=499 => (
            action,
            Outcome::Failure,
            Some(precise.unwrap_or(Reason::InvalidRequest)),
        ),
        _ => (action, Outcome::Failure, Some(Reason::InternalError)),
    };
    e.action = outcome_action;
    e.outcome = outcome;
    e.reason = reason;
    if status.is_success() {
        // A handler that succeeded without writing its event is a bug: counted and logged, and
        // the event is written here so nothing goes unrecorded.
        state.metrics().audit_fallback(route);
        tracing::error!(target: "theta::audit", route, "route wrote no audit event; fallback event written");
    }
    state.audit(e);
    resp
}

/// Ids in the path go to the event: `{tenant}`, `{recording}`, and `{id}` after `accounts`,
/// `grants`, `incidents`, `annotations`; `{job_id}` (an export job).
fn fill_from_params(e: &mut crate::audit::AuditEvent, route: &str, params: &[(String, String)]) {
    for (k, v) in params {
        match k.as_str() {
            "tenant" | "tenant_id" => e.tenant_id = Some(v.clone()),
            "recording" | "recording_id" => e.recording_id = Some(v.clone()),
            "aid" => e.resource = Some((ResourceKind::Annotation, v.clone())),
            "job_id" => e.resource = Some((ResourceKind::Export, v.clone())),
            "id" if route.starts_with("/api/recordings/") => e.recording_id = Some(v.clone()),
            "id" => {
                let kind = route
                    .split('/')
                    .take_while(|s| *s != "{id}")
                    .last()
                    .and_then(|seg| match seg {
                        "accounts" => Some(ResourceKind::Account),
                        "grants" => Some(ResourceKind::Grant),
                        "incidents" => Some(ResourceKind::Incident),
                        "annotations" => Some(ResourceKind::Annotation),
                        "tenants" => Some(ResourceKind::Tenant),
                        _ => None,
                    });
                if let Some(kind) = kind {
                    e.resource = Some((kind, v.clone()));
                }
            }
            _ => {}
        }
    }
}

/// `GET /metrics`: the OpenMetrics exposition, for the bearer of the scrape token only.
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = state.metrics_token() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let ok = presented.is_some_and(|p| {
        use sha2::Digest;
        // Compare digests: equal length, and no early exit on the secret's bytes.
        let (a, b) = (
            sha2::Sha256::digest(p.as_bytes()),
            sha2::Sha256::digest(expected.as_bytes()),
        );
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    });
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"theta-metrics\"")],
            "metrics token required",
        )
            .into_response();
    }
    let now = state.now();
    state.incidents().refresh_metrics(now).await;
    let _ = state.audit_health();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().encode(),
    )
        .into_response()
}
