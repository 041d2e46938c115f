//! The `theta` service and command line: HTTPS API, accounts, MFA, OIDC, roles, tenants, audit,
//! incidents, the web viewer and the CLI sub-commands.
//!
//! ```text
//!   client ──TLS (rustls, ring)──► tower layers (trace, time-out, concurrency, body limit, HSTS)
//!      └► router ─► extract::Ctx (session → Principal, time-outs, CSRF)
//!                    └► handler ─► authz::authorize (one decision point) ─► audit::AuditSink
//!                                   └► db (SQLite, versioned migrations) / engine (phase 2)
//! ```
//!
//! [`router`] builds the application without a socket; [`serve`] runs it over HTTPS.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod cli;
pub mod clock;
pub mod config;
pub mod data;
pub mod db;
pub mod error;
pub mod exports;
pub mod extract;
pub mod http_client;
pub mod incidents;
pub mod limits;
pub mod metrics;
pub mod render;
mod routes;
pub mod secrets;
pub mod serve;
pub mod state;
pub mod tls;

pub use audit::{AuditEvent, AuditSink};
pub use authz::{Action, Denied, Principal, Resource, authorize};
pub use config::Settings;
pub use error::{ApiError, Error, Result};
pub use routes::{AUDIT_TABLE, router, routes};
pub use serve::{Running, serve, serve_state};
pub use state::AppState;

/// The OpenAPI document served at `/api/openapi.yaml`.
pub const OPENAPI_YAML: &str = routes::health::OPENAPI_YAML;
