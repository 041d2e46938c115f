//! The HTTP API: [`router`] builds it as a value, callable without a socket.
//!
//! Adding a data endpoint (phase 2): write the handler in a new `routes/<area>.rs`, take a
//! [`crate::extract::Ctx`], resolve the recording's tenant, make the one call
//! `ctx.authorize(Action::ReadRecording, &Resource::Recording { tenant_id, recording_id })?`,
//! add one `.route(…)` line below and one row to [`AUDIT_TABLE`] (a read route
//! declares its audit code, e.g. `Audited::Read(AuditAction::RecordingReadWindow)`: the
//! authorisation call then writes the event), one row to the matrix test (`tests/matrix.rs`) and
//! to the audit table test (`tests/audit_trail.rs`), and document it in `openapi.yaml`.

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod exports;
pub(crate) mod health;
pub(crate) mod incidents;
pub(crate) mod middleware;
pub(crate) mod oidc;
pub(crate) mod recordings;
pub(crate) mod viewer;

pub(crate) use auth::lapse_code;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{delete, get, patch, post};
use tower::limit::ConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::audit::{AuditAction, Audited};
use crate::state::AppState;

/// Every (method, path) the router serves: the rows of [`AUDIT_TABLE`], the one list (a route
/// cannot be added without declaring how it is audited).
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    AUDIT_TABLE.iter().map(|&(m, p, _)| (m, p))
}

/// How every route is audited, one row per route (the API test checks that each is routed and
/// documented in `openapi.yaml`).
/// Reads are written by the authorisation call; acts by their handler; a middleware writes a
/// fallback event for an audited request that wrote none (`theta_audit_fallback_events_total`).
pub const AUDIT_TABLE: &[(&str, &str, Audited)] = &[
    (
        "GET",
        "/healthz",
        Audited::Exempt("liveness probe: no account, no data"),
    ),
    (
        "GET",
        "/readyz",
        Audited::Exempt("readiness probe: no account, no data"),
    ),
    (
        "GET",
        "/api/openapi.yaml",
        Audited::Exempt("public API description"),
    ),
    (
        "POST",
        "/api/auth/login",
        Audited::Act(AuditAction::LoginPassword),
    ),
    (
        "POST",
        "/api/auth/mfa/password",
        Audited::Act(AuditAction::AccountPasswordChange),
    ),
    (
        "POST",
        "/api/auth/mfa/enroll",
        Audited::Act(AuditAction::AccountMfaEnroll),
    ),
    (
        "POST",
        "/api/auth/mfa/verify",
        Audited::Act(AuditAction::LoginSuccess),
    ),
    (
        "POST",
        "/api/auth/logout",
        Audited::Act(AuditAction::Logout),
    ),
    (
        "POST",
        "/api/auth/password",
        Audited::Act(AuditAction::AccountPasswordChange),
    ),
    (
        "GET",
        "/api/auth/oidc/{provider}/login",
        Audited::Exempt("redirect to the identity provider; the callback is audited"),
    ),
    (
        "GET",
        "/api/auth/oidc/{provider}/callback",
        Audited::Act(AuditAction::LoginSuccess),
    ),
    (
        "GET",
        "/api/me",
        Audited::Exempt("the caller's own account; the login was audited"),
    ),
    (
        "GET",
        "/api/accounts",
        Audited::Read(AuditAction::AccountRead),
    ),
    (
        "POST",
        "/api/accounts",
        Audited::Act(AuditAction::AccountCreate),
    ),
    (
        "GET",
        "/api/accounts/{id}",
        Audited::Read(AuditAction::AccountRead),
    ),
    (
        "PATCH",
        "/api/accounts/{id}",
        Audited::Act(AuditAction::AccountUpdate),
    ),
    (
        "POST",
        "/api/accounts/{id}/reset-credentials",
        Audited::Act(AuditAction::AccountMfaReset),
    ),
    (
        "GET",
        "/api/accounts/{id}/grants",
        Audited::Read(AuditAction::AccountRead),
    ),
    (
        "POST",
        "/api/accounts/{id}/grants",
        Audited::Act(AuditAction::GrantCreate),
    ),
    (
        "DELETE",
        "/api/grants/{id}",
        Audited::Act(AuditAction::GrantDelete),
    ),
    (
        "GET",
        "/api/name-exceptions",
        Audited::Read(AuditAction::AccountRead),
    ),
    (
        "POST",
        "/api/name-exceptions",
        Audited::Act(AuditAction::AdminConfigChange),
    ),
    (
        "GET",
        "/api/tenants",
        Audited::Read(AuditAction::TenantRead),
    ),
    (
        "POST",
        "/api/tenants",
        Audited::Act(AuditAction::TenantCreate),
    ),
    (
        "GET",
        "/api/access-review",
        Audited::Read(AuditAction::AdminAccessReview),
    ),
    (
        "POST",
        "/api/accounts/{id}/unlock",
        Audited::Act(AuditAction::AccountUnlock),
    ),
    (
        "GET",
        "/api/audit/export",
        Audited::Act(AuditAction::AuditExport),
    ),
    (
        "GET",
        "/api/incidents",
        Audited::Read(AuditAction::IncidentRead),
    ),
    (
        "GET",
        "/api/incidents/report",
        Audited::Read(AuditAction::IncidentRead),
    ),
    (
        "GET",
        "/api/incidents/{id}",
        Audited::Read(AuditAction::IncidentRead),
    ),
    (
        "PATCH",
        "/api/incidents/{id}",
        Audited::Act(AuditAction::IncidentUpdate),
    ),
    (
        "GET",
        "/metrics",
        Audited::Exempt("operational counters, token-protected, no ids"),
    ),
    (
        "GET",
        "/api/auth/oidc",
        Audited::Exempt("names of the configured identity providers, public"),
    ),
    (
        "GET",
        "/api/recordings",
        Audited::Read(AuditAction::RecordingList),
    ),
    (
        "POST",
        "/api/tenants/{tenant_id}/recordings",
        Audited::Act(AuditAction::RecordingCreate),
    ),
    (
        "GET",
        "/api/recordings/{id}",
        Audited::Read(AuditAction::RecordingReadMetadata),
    ),
    (
        "GET",
        "/api/recordings/{id}/window",
        Audited::Read(AuditAction::RecordingReadWindow),
    ),
    (
        "GET",
        "/api/recordings/{id}/overview",
        Audited::Read(AuditAction::RecordingOverview),
    ),
    (
        "GET",
        "/api/recordings/{id}/psd",
        Audited::Read(AuditAction::RecordingPsd),
    ),
    (
        "GET",
        "/api/recordings/{id}/annotations",
        Audited::Read(AuditAction::AnnotationRead),
    ),
    (
        "POST",
        "/api/recordings/{id}/annotations",
        Audited::Act(AuditAction::AnnotationCreate),
    ),
    (
        "GET",
        "/api/recordings/{id}/annotations/history",
        Audited::Read(AuditAction::AnnotationRead),
    ),
    (
        "PATCH",
        "/api/recordings/{id}/annotations/{aid}",
        Audited::Act(AuditAction::AnnotationUpdate),
    ),
    (
        "DELETE",
        "/api/recordings/{id}/annotations/{aid}",
        Audited::Act(AuditAction::AnnotationDelete),
    ),
    (
        "POST",
        "/api/tenants/{tenant_id}/exports",
        Audited::Act(AuditAction::ExportStart),
    ),
    (
        "GET",
        "/api/tenants/{tenant_id}/exports",
        Audited::Read(AuditAction::ExportRead),
    ),
    (
        "GET",
        "/api/tenants/{tenant_id}/exports/{job_id}",
        Audited::Read(AuditAction::ExportRead),
    ),
    (
        "DELETE",
        "/api/tenants/{tenant_id}/exports/{job_id}",
        Audited::Act(AuditAction::ExportCancel),
    ),
    (
        "POST",
        "/api/tenants/{tenant_id}/exports/{job_id}/restart",
        Audited::Act(AuditAction::ExportRestart),
    ),
    (
        "GET",
        "/api/tenants/{tenant_id}/exports/{job_id}/download",
        Audited::Act(AuditAction::ExportDownload),
    ),
];

/// The audit declaration of a route, if it is in the table.
pub(crate) fn audited(method: &str, path: &str) -> Option<Audited> {
    AUDIT_TABLE
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|r| r.2)
}

/// The application: routes, state and tower layers (trace, time-out, concurrency limit, body
/// limit, security headers).
pub fn router(state: AppState) -> Router {
    let s = state.settings().clone();
    let hsts = HeaderValue::from_str(&format!(
        "max-age={}; includeSubDomains",
        s.tls.hsts_max_age_secs.unwrap_or(31_536_000)
    ))
    .unwrap_or(HeaderValue::from_static(
        "max-age=31536000; includeSubDomains",
    ));
    // Uploads stream to disk under their own size limit (`[store] upload_limit_bytes`, checked
    // while streaming) and time-out; every other route keeps the small JSON body limit.
    let uploads = Router::new()
        .route(
            "/api/tenants/{tenant_id}/recordings",
            post(recordings::upload),
        )
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(s.http.request_timeout_secs.max(3600)),
        ));
    Router::new()
        .route("/", get(viewer::index))
        .route("/viewer/viewer.js", get(viewer::script))
        .route("/viewer/viewer.css", get(viewer::style))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/openapi.yaml", get(health::openapi))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/mfa/password", post(auth::mfa_password))
        .route("/api/auth/mfa/enroll", post(auth::mfa_enroll))
        .route("/api/auth/mfa/verify", post(auth::mfa_verify))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/password", post(auth::password_change))
        .route("/api/auth/oidc", get(oidc::providers))
        .route("/api/auth/oidc/{provider}/login", get(oidc::login))
        .route("/api/auth/oidc/{provider}/callback", get(oidc::callback))
        .route("/api/me", get(auth::me))
        .route("/api/accounts", get(admin::list_accounts).post(admin::create_account))
        .route("/api/accounts/{id}", get(admin::get_account).patch(admin::patch_account))
        .route("/api/accounts/{id}/reset-credentials", post(admin::reset_credentials))
        .route("/api/accounts/{id}/grants", get(admin::list_grants).post(admin::add_grant))
        .route("/api/grants/{id}", delete(admin::delete_grant))
        .route("/api/name-exceptions", get(admin::list_name_exceptions).post(admin::add_name_exception))
        .route("/api/tenants", get(admin::list_tenants).post(admin::create_tenant))
        .route("/api/access-review", get(admin::access_review))
        .route("/api/recordings", get(recordings::list))
        .route("/api/recordings/{id}", get(recordings::metadata))
        .route("/api/recordings/{id}/window", get(recordings::window))
        .route("/api/recordings/{id}/overview", get(recordings::overview))
        .route("/api/recordings/{id}/psd", get(recordings::psd))
        .route(
            "/api/recordings/{id}/annotations",
            get(recordings::annotations).post(recordings::add_annotation),
        )
        .route(
            "/api/recordings/{id}/annotations/history",
            get(recordings::annotation_history),
        )
        .route(
            "/api/recordings/{id}/annotations/{aid}",
            patch(recordings::edit_annotation).delete(recordings::delete_annotation),
        )
        .route(
            "/api/tenants/{tenant_id}/exports",
            get(exports::list).post(exports::start),
        )
        .route(
            "/api/tenants/{tenant_id}/exports/{job_id}",
            get(exports::show).delete(exports::cancel),
        )
        .route(
            "/api/tenants/{tenant_id}/exports/{job_id}/restart",
            post(exports::restart),
        )
        .route(
            "/api/tenants/{tenant_id}/exports/{job_id}/download",
            get(exports::download),
        )
        .route("/api/accounts/{id}/unlock", post(admin::unlock_account))
        .route("/api/audit/export", get(audit::export))
        .route("/api/incidents", get(incidents::list))
        .route("/api/incidents/report", get(incidents::report))
        .route("/api/incidents/{id}", get(incidents::show).patch(incidents::update))
        .route("/metrics", get(middleware::metrics))
        .layer(DefaultBodyLimit::max(s.http.body_limit_bytes))
        .layer(RequestBodyLimitLayer::new(s.http.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(s.http.request_timeout_secs),
        ))
        .merge(uploads)
        // Inside the routes (uploads included): sees the matched template (audit table, latency
        // labels).
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::audit_and_measure,
        ))
        .with_state(state.clone())
        .layer(ConcurrencyLimitLayer::new(s.http.max_concurrent_requests))
        // Outside the concurrency limit and before routing: a flooding address is refused
        // cheaply and cannot take the slots others need.
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::rate_limit,
        ))
        // Spans carry method and path only: query strings may hold OIDC codes and states.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        // Outermost, so answers made by the layers above (408, 413, …) carry the headers too.
        .layer(axum::middleware::map_response(move |mut r: Response| {
            let hsts = hsts.clone();
            async move {
                let h = r.headers_mut();
                h.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
                h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
                h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
                h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
                h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
                r
            }
        }))
}
