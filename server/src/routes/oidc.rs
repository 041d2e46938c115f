//! OpenID Connect login: `/api/auth/oidc/{provider}/login` and `…/callback`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use rusqlite::{OptionalExtension, params};
use serde::Deserialize;

use crate::accounts::{self, Account, Status};
use crate::audit::{Actor, AuditAction, Outcome, Reason, ResourceKind};
use crate::auth::session;
use crate::clock::{from_millis, to_millis};
use crate::error::{ApiError, Error};
use crate::extract::RequestInfo;
use crate::routes::auth::open_session;
use crate::state::AppState;

/// Time allowed at the provider.
const PENDING_SECS: i64 = 600;

pub(crate) async fn login(
    State(state): State<AppState>,
    Path(provider): Path<String>,
) -> Result<Response, ApiError> {
    if !state.oidc().has(&provider) {
        return Err(ApiError::NotFound {
            what: format!("identity provider {provider}"),
        });
    }
    let started = state
        .oidc()
        .begin(&provider)
        .await
        .map_err(|e| ApiError::Upstream(e.to_string()))?;
    let browser = session::new_token();
    let now = state.now();
    let (state_hash, browser_hash) = (
        session::token_hash(&started.state),
        session::token_hash(&browser),
    );
    let (nonce, verifier, p) = (
        started.nonce.clone(),
        started.pkce_verifier.clone(),
        provider.clone(),
    );
    state
        .db()
        .call(move |c| -> Result<(), Error> {
            c.execute("DELETE FROM oidc_pending WHERE expires_at < ?1", [to_millis(now)])?;
            c.execute(
                "INSERT INTO oidc_pending (state_hash, provider, nonce, pkce_verifier, browser_hash, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![state_hash, p, nonce, verifier, browser_hash, to_millis(now + Duration::seconds(PENDING_SECS))],
            )?;
            Ok(())
        })
        .await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&started.authorize_url).map_err(|_| Error::Task)?,
    );
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&session::oidc_cookie(&browser, PENDING_SECS as u64))
            .map_err(|_| Error::Task)?,
    );
    Ok((StatusCode::SEE_OTHER, headers).into_response())
}

#[derive(Deserialize)]
pub(crate) struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

pub(crate) async fn callback(
    State(state): State<AppState>,
    info: RequestInfo,
    Path(provider): Path<String>,
    Query(q): Query<Callback>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut e = info.event(&state, AuditAction::LoginFailure);
    let refuse = |mut e: crate::audit::AuditEvent, code: &'static str| {
        e.reason = Some(oidc_reason(code));
        state.audit(e);
        Err(ApiError::Unauthorized { code })
    };
    if !state.oidc().has(&provider) {
        return Err(ApiError::NotFound {
            what: format!("identity provider {provider}"),
        });
    }
    if q.error.is_some() {
        return refuse(e, "oidc_provider_refused");
    }
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return refuse(e, "oidc_bad_request");
    };
    let browser = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| session::cookie_value(c, session::OIDC_COOKIE))
        .map(str::to_owned);
    let now = state.now();
    let state_hash = session::token_hash(&st);
    let p = provider.clone();
    // Consume the pending request whatever happens next: a state value works once.
    let pending = state
        .db()
        .call(move |c| -> Result<Option<(String, String, String, i64)>, Error> {
            let row = c
                .query_row(
                    "SELECT nonce, pkce_verifier, browser_hash, expires_at FROM oidc_pending WHERE state_hash = ?1 AND provider = ?2",
                    params![state_hash, p],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            c.execute("DELETE FROM oidc_pending WHERE state_hash = ?1", [&state_hash])?;
            Ok(row)
        })
        .await?;
    let Some((nonce, verifier, browser_hash, expires)) = pending else {
        return refuse(e, "oidc_unknown_state");
    };
    if now >= from_millis(expires) {
        return refuse(e, "oidc_state_expired");
    }
    if !browser.is_some_and(|b| session::matches(&b, &browser_hash)) {
        return refuse(e, "oidc_browser_mismatch");
    }
    let identity = match state
        .oidc()
        .finish(&provider, code, nonce, verifier, now)
        .await
    {
        Ok(i) => i,
        Err(r) => return refuse(e, r.code()),
    };
    e.actor = Actor::Attempted(
        format!("{}#{}", identity.issuer, identity.subject)
            .chars()
            .take(128)
            .collect(),
    );
    let by_email = state.oidc().links_by_email(&provider);
    let id2 = identity.clone();
    let mapped = state
        .db()
        .call(move |c| -> Result<Option<(Account, bool)>, Error> {
            let linked: Option<String> = c
                .query_row(
                    "SELECT account_id FROM oidc_links WHERE issuer = ?1 AND subject = ?2",
                    params![id2.issuer, id2.subject],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(aid) = linked {
                return Ok(accounts::get(c, &aid)?.map(|a| (a, false)));
            }
            if !by_email || !id2.email_verified {
                return Ok(None);
            }
            let Some(email) = &id2.email else { return Ok(None) };
            let mut st = c.prepare("SELECT id FROM accounts WHERE lower(email) = lower(?1)")?;
            let ids: Vec<String> = st.query_map([email], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            let [aid] = ids.as_slice() else { return Ok(None) };
            c.execute(
                "INSERT INTO oidc_links (issuer, subject, account_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![id2.issuer, id2.subject, aid, to_millis(now)],
            )?;
            Ok(accounts::get(c, aid)?.map(|a| (a, true)))
        })
        .await?;
    let Some((acc, newly_linked)) = mapped else {
        return refuse(e, "oidc_no_account");
    };
    e.actor = Actor::Account(acc.id.clone());
    e.resource = Some((ResourceKind::Account, acc.id.clone()));
    e.tenant_id = acc.tenant_id.clone();
    let policy = state.settings().accounts.clone();
    if acc.status != Status::Active || accounts::lapse_reason(&acc, &policy, now).is_some() {
        if let Some(reason) = accounts::lapse_reason(&acc, &policy, now) {
            let id = acc.id.clone();
            state
                .db()
                .call(move |c| accounts::disable(c, &id, reason, now))
                .await?;
        }
        e.reason = Some(Reason::AccountDisabled);
        state.audit(e);
        return Err(ApiError::AccountDisabled);
    }
    if newly_linked {
        let mut l = e.clone();
        l.action = AuditAction::AccountUpdate;
        l.outcome = Outcome::Success;
        l.reason = None;
        state.audit(l);
    }
    let mut resp = open_session(&state, &info, &acc, None, "oidc").await?;
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&session::oidc_cookie("", 0)).map_err(|_| Error::Task)?,
    );
    // Browsers land on the viewer (the session cookies are set on this answer); API clients
    // read the JSON body.
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        *resp.status_mut() = axum::http::StatusCode::SEE_OTHER;
        resp.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
    }
    Ok(resp)
}

/// The audit reason of an OpenID Connect refusal code.
fn oidc_reason(code: &str) -> Reason {
    if code.contains("mfa") {
        Reason::MfaRequired
    } else if code.contains("state") || code.contains("browser") {
        Reason::SessionInvalid
    } else if code.contains("bad_request") {
        Reason::InvalidRequest
    } else if code.contains("no_account") {
        Reason::UnknownAccount
    } else {
        Reason::NotAuthenticated
    }
}

/// The configured identity providers (names), for the login page.
pub(crate) async fn providers(State(state): State<AppState>) -> axum::Json<Vec<String>> {
    axum::Json(state.oidc().names())
}
