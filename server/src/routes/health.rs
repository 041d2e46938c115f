//! Liveness, readiness and the OpenAPI document.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::state::AppState;

/// The OpenAPI 3 description of the API, kept next to the routes.
pub(crate) const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if !state.db().ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
    }
    if let Some(data) = state.data()
        && data.store().recording_ids().await.is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable");
    }
    (StatusCode::OK, "ready")
}

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}
