//! Errors: [`Error`] for startup, configuration, storage and crypto; [`ApiError`] for HTTP answers.
//!
//! `ApiError` is the only type that becomes an HTTP response. Its 5xx bodies say nothing about the
//! cause: the detail goes to the log (without secrets or health data) and the client gets a stable
//! code it can branch on.

use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the service outside the HTTP layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is missing, unreadable or invalid.
    #[error("configuration {path}: {reason}")]
    Config {
        /// File (or `<profile>` section) at fault.
        path: PathBuf,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// A TLS certificate or key is unusable, or refused by the profile.
    #[error("TLS: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File at fault.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The embedded database failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A schema migration could not be applied.
    #[error("database migration {version}: {reason}")]
    Migration {
        /// Migration version number.
        version: i64,
        /// What went wrong.
        reason: String,
    },
    /// Stored data is inconsistent (a bad enum code, an unparsable hash …).
    #[error("stored data is inconsistent: {what}")]
    Corrupt {
        /// Which column or record.
        what: String,
    },
    /// Password hashing failed (never carries the password).
    #[error("password hashing failed")]
    Hash,
    /// A request is invalid for the domain (used by the CLI and mapped to 4xx by the API).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// OpenID Connect discovery, token exchange or verification failed.
    #[error("OpenID Connect ({provider}): {reason}")]
    Oidc {
        /// Provider name from the configuration.
        provider: String,
        /// What failed (no tokens in it).
        reason: String,
    },
    /// An outgoing HTTPS request failed.
    #[error("HTTP client: {0}")]
    HttpClient(String),
    /// The audit trail refused or failed an operation.
    #[error("audit trail: {0}")]
    Audit(#[from] theta_engine::audit::AuditError),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task,
    /// The recording store failed (the message names ids and places only, never content).
    #[error("store: {0}")]
    Store(String),
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// An HTTP error answer. Every handler returns `Result<_, ApiError>`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed or a field is invalid.
    #[error("{field}: {reason}")]
    BadRequest {
        /// Field at fault.
        field: String,
        /// Why.
        reason: String,
    },
    /// 422: the new password breaks the policy; each broken rule is listed.
    #[error("password refused")]
    PasswordPolicy {
        /// Broken rules, as stable codes.
        rules: Vec<String>,
    },
    /// 401: no valid session (or wrong credentials).
    #[error("authentication required: {code}")]
    Unauthorized {
        /// Stable code: `invalid_credentials`, `session_required`, `session_expired`, …
        code: &'static str,
    },
    /// 403: the account exists but cannot log in (disabled, expired, dormant).
    #[error("account disabled")]
    AccountDisabled,
    /// 403: the password must be changed before a session is granted.
    #[error("password change required")]
    PasswordChangeRequired,
    /// 403: the CSRF defence refused the request.
    #[error("CSRF check failed")]
    Csrf,
    /// 403: the authorisation decision point refused.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// The reason given by [`crate::authz::authorize`].
        reason: String,
    },
    /// 404.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked up (an id, never content).
        what: String,
    },
    /// 409: the request conflicts with the current state (duplicate username …).
    #[error("conflict: {reason}")]
    Conflict {
        /// Why.
        reason: String,
    },
    /// 410: the resource existed but was deleted for good (an export's output after its
    /// retention period).
    #[error("gone: {reason}")]
    Gone {
        /// What was deleted and why.
        reason: String,
    },
    /// 413: the request body is larger than the configured limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 429: the client address or account exceeded its rate, or the address is throttled after
    /// repeated failed logins.
    #[error("too many requests; retry in {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until a request may succeed (`Retry-After`).
        retry_after_secs: u64,
    },
    /// 423: the account is locked after repeated failed logins (exponential back-off).
    #[error("account temporarily locked; retry in {retry_after_secs} s")]
    Locked {
        /// Seconds until the lock ends (`Retry-After`).
        retry_after_secs: u64,
    },
    /// 503: a part the request needs is not configured or not ready (the recording store).
    #[error("unavailable: {what}")]
    Unavailable {
        /// Which part.
        what: &'static str,
    },
    /// 502: an upstream (identity provider) failed.
    #[error("upstream failure")]
    Upstream(String),
    /// 500: everything else. The detail is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Error),
}

impl ApiError {
    /// A 400 naming the field.
    pub fn bad_request(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A 403 with the decision's reason.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        ApiError::Forbidden {
            reason: reason.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PasswordPolicy { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::AccountDisabled
            | ApiError::PasswordChangeRequired
            | ApiError::Csrf
            | ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Locked { .. } => StatusCode::LOCKED,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code sent in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::PasswordPolicy { .. } => "password_policy",
            ApiError::Unauthorized { code } => code,
            ApiError::AccountDisabled => "account_disabled",
            ApiError::PasswordChangeRequired => "password_change_required",
            ApiError::Csrf => "csrf",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Gone { .. } => "gone",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Locked { .. } => "account_locked",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Upstream(_) => "upstream",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::Internal(Error::Db(e))
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<&'a [String]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // Internal detail stays in the log; the body is generic.
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                "internal error".to_owned()
            }
            ApiError::Upstream(detail) => {
                tracing::warn!(detail = %detail, "upstream failure");
                "upstream failure".to_owned()
            }
            other => other.to_string(),
        };
        let (field, rules) = match &self {
            ApiError::BadRequest { field, .. } => (Some(field.as_str()), None),
            ApiError::PasswordPolicy { rules } => (None, Some(rules.as_slice())),
            _ => (None, None),
        };
        let retry = match &self {
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::Locked { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let body = ErrorBody {
            error: self.code(),
            message,
            field,
            rules,
        };
        let reason = crate::audit::reason_of(&self);
        let mut resp = (status, Json(body)).into_response();
        // The audit middleware's fallback event reads the precise reason from here.
        resp.extensions_mut().insert(reason);
        if let Some(secs) = retry {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs.max(1)),
            );
        }
        resp
    }
}

impl From<Error> for ApiError {
    /// Domain refusals (`Error::Invalid`) become 400s; everything else is a 500.
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { field, reason } => ApiError::BadRequest { field, reason },
            other => ApiError::Internal(other),
        }
    }
}
