//! Request extractors: [`Ctx`] (an authenticated caller) and [`RequestInfo`] (anyone).
//!
//! `Ctx` is where authentication happens for every protected route: it finds the session token
//! (bearer header first, then the session cookie), checks the session's idle and absolute
//! time-outs and the account's status, applies the CSRF defence to cookie-authenticated
//! state-changing requests, and builds the [`Principal`]. Handlers then make exactly one
//! authorisation call, [`Ctx::authorize`].

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, header};
use chrono::Duration;
use rusqlite::{OptionalExtension, params};

use crate::accounts::{self, Status};
use crate::audit::scope::{self, Audited, RequestAudit};
use crate::audit::{Actor, AuditAction, AuditEvent, Origin, Outcome, Reason, resolve_client};
use crate::auth::session::{self, CSRF_HEADER, SESSION_COOKIE};
use crate::authz::{self, Action, Principal, Resource};
use crate::clock::{from_millis, to_millis};
use crate::error::{ApiError, Error};
use crate::state::AppState;

/// Who sent a request, authenticated or not.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// Client address, user agent.
    pub origin: Origin,
    /// The `Origin` header, when the browser sent one.
    pub origin_header: Option<String>,
}

impl RequestInfo {
    pub(crate) fn from_parts(parts: &Parts, state: &AppState) -> RequestInfo {
        let peer = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0);
        let xff = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        RequestInfo {
            origin: Origin {
                client_addr: resolve_client(peer, xff, state.trusted_proxies()),
                peer_addr: peer.map(|p| p.ip()),
                user_agent,
            },
            origin_header: parts
                .headers
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    /// Refuses a browser request from another origin (login CSRF, cross-site posts).
    ///
    /// # Errors
    /// [`ApiError::Csrf`].
    pub fn check_origin(&self, state: &AppState) -> Result<(), ApiError> {
        match &self.origin_header {
            Some(o) if o.trim_end_matches('/') != state.settings().public_origin() => {
                Err(ApiError::Csrf)
            }
            _ => Ok(()),
        }
    }

    /// An event from this request (anonymous until the caller sets the actor), with the
    /// action's default outcome.
    pub fn event(&self, state: &AppState, action: AuditAction) -> AuditEvent {
        let mut e = AuditEvent::new(state.now(), action);
        e.origin = self.origin.clone();
        e
    }
}

impl FromRequestParts<AppState> for RequestInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(RequestInfo::from_parts(parts, state))
    }
}

/// An authenticated request.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The caller.
    pub principal: Principal,
    /// Session id (not the token).
    pub session_id: String,
    /// Where the request came from.
    pub info: RequestInfo,
    /// Whether the session came from the cookie (CSRF applies) rather than a bearer header.
    pub via_cookie: bool,
    state: AppState,
}

/// The session token a request presents, and how.
pub(crate) fn presented_token(parts: &Parts) -> Option<(String, bool)> {
    if let Some(v) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (token.trim().to_owned(), false));
    }
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| session::cookie_value(c, SESSION_COOKIE))
        .map(|t| (t.to_owned(), true))
}

/// Granularity of `sessions.last_seen_at` updates, in seconds.
const LAST_SEEN_GRAIN_SECS: i64 = 15;

struct Loaded {
    session_id: String,
    csrf_hash: Option<String>,
    principal: Principal,
}

enum Refusal {
    NoSession,
    Expired(Reason, String, String),
    Disabled(String, String),
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let info = RequestInfo::from_parts(parts, state);
        let Some((token, via_cookie)) = presented_token(parts) else {
            return Err(ApiError::Unauthorized {
                code: "session_required",
            });
        };
        let hash = session::token_hash(&token);
        let now = state.now();
        let s = state.settings();
        let idle = Duration::seconds(
            i64::try_from(s.sessions.idle_timeout_secs).unwrap_or(i64::MAX / 1000),
        );
        let policy = s.accounts.clone();
        let loaded = state
            .db()
            .call(move |conn| -> Result<Result<Loaded, Refusal>, Error> {
                let row = conn
                    .query_row(
                        "SELECT id, account_id, stage, csrf_hash, last_seen_at, expires_at, revoked_at \
                         FROM sessions WHERE token_hash = ?1",
                        [&hash],
                        |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, String>(2)?,
                                r.get::<_, Option<String>>(3)?,
                                r.get::<_, i64>(4)?,
                                r.get::<_, i64>(5)?,
                                r.get::<_, Option<i64>>(6)?,
                            ))
                        },
                    )
                    .optional()?;
                let Some((sid, account_id, stage, csrf_hash, last_seen, expires, revoked)) = row else {
                    return Ok(Err(Refusal::NoSession));
                };
                if stage != "full" || revoked.is_some() {
                    return Ok(Err(Refusal::NoSession));
                }
                let why = if now >= from_millis(expires) {
                    Some(Reason::AbsoluteTimeout)
                } else if now - from_millis(last_seen) > idle {
                    Some(Reason::IdleTimeout)
                } else {
                    None
                };
                if let Some(why) = why {
                    conn.execute(
                        "UPDATE sessions SET revoked_at = ?2, revoked_why = ?3 WHERE id = ?1",
                        params![sid, to_millis(now), why.code()],
                    )?;
                    return Ok(Err(Refusal::Expired(why, sid, account_id)));
                }
                let Some(acc) = accounts::get(conn, &account_id)? else {
                    return Ok(Err(Refusal::NoSession));
                };
                if acc.status != Status::Active {
                    accounts::revoke_sessions(conn, &acc.id, "account_disabled", now)?;
                    return Ok(Err(Refusal::Disabled(sid, acc.id)));
                }
                if let Some(reason) = accounts::lapse_reason(&acc, &policy, now) {
                    accounts::disable(conn, &acc.id, reason, now)?;
                    return Ok(Err(Refusal::Disabled(sid, acc.id)));
                }
                // The idle clock needs no finer grain than this; skipping the write keeps
                // busy sessions from taking SQLite's write lock on every request.
                if now - from_millis(last_seen) > Duration::seconds(LAST_SEEN_GRAIN_SECS) {
                    conn.execute(
                        "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1",
                        params![sid, to_millis(now)],
                    )?;
                }
                let grants = accounts::grants_of(conn, &acc.id)?;
                let tenants = accounts::effective_tenants(&acc, &grants);
                let recordings = grants
                    .iter()
                    .filter_map(|g| match &g.scope {
                        accounts::GrantScope::Recording { tenant_id, recording_id } => {
                            Some((tenant_id.clone(), recording_id.clone()))
                        }
                        accounts::GrantScope::Tenant { .. } => None,
                    })
                    .collect();
                Ok(Ok(Loaded {
                    session_id: sid,
                    csrf_hash,
                    principal: authz::Principal {
                        account_id: acc.id,
                        username: acc.username,
                        role: acc.role,
                        tenant_id: acc.tenant_id,
                        tenants,
                        recordings,
                    },
                }))
            })
            .await?;
        let loaded = match loaded {
            Ok(l) => l,
            Err(Refusal::NoSession) => {
                return Err(ApiError::Unauthorized {
                    code: "session_required",
                });
            }
            Err(Refusal::Expired(why, sid, account_id)) => {
                let mut e = info
                    .event(state, AuditAction::SessionExpired)
                    .resource(crate::audit::ResourceKind::Session, sid.clone());
                e.actor = Actor::Account(account_id);
                e.session_id = Some(sid);
                e.reason = Some(why);
                state.audit(e);
                return Err(ApiError::Unauthorized {
                    code: "session_expired",
                });
            }
            Err(Refusal::Disabled(sid, account_id)) => {
                let mut e = info
                    .event(state, AuditAction::AccessDenied)
                    .resource(crate::audit::ResourceKind::Account, account_id.clone());
                e.actor = Actor::Account(account_id);
                e.session_id = Some(sid);
                e.reason = Some(Reason::AccountDisabled);
                state.audit(e);
                return Err(ApiError::AccountDisabled);
            }
        };
        scope::note_caller(&loaded.principal.account_id, &loaded.session_id);
        let ctx = Ctx {
            principal: loaded.principal,
            session_id: loaded.session_id,
            info,
            via_cookie,
            state: state.clone(),
        };
        if let Err(retry_after_secs) = state
            .limits()
            .check_account(&ctx.principal.account_id, state.now())
        {
            state.metrics().rate_limited("account");
            if state
                .limits()
                .should_audit_account(&ctx.principal.account_id, state.now())
            {
                ctx.audit_denied(&Resource::System, Reason::RateLimited);
            }
            return Err(ApiError::TooManyRequests { retry_after_secs });
        }
        if via_cookie && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let ok = match (presented, &loaded.csrf_hash) {
                (Some(p), Some(h)) => session::matches(p, h),
                _ => false,
            } && ctx.info.check_origin(state).is_ok();
            if !ok {
                ctx.audit_denied(&Resource::System, Reason::CsrfMismatch);
                return Err(ApiError::Csrf);
            }
        }
        Ok(ctx)
    }
}

impl Ctx {
    /// The one authorisation call: decides with [`authz::authorize`], maps a refusal to 403, and
    /// writes the audit event. A refusal is `access.denied` with the decision's reason code. An
    /// allowed call on a route the audit table declares a read ([`Audited::Read`]) writes that
    /// read (once per resource per request), so a read endpoint cannot forget its event; on other
    /// routes allowed reads (`Action::is_read`) with no declaration fall back to a per-action
    /// code, and changes are written by the handler with their outcome.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] with the decision's reason.
    pub fn authorize(&self, action: Action, resource: &Resource) -> Result<(), ApiError> {
        match authz::authorize(&self.principal, action, resource) {
            Ok(()) => {
                let declared = RequestAudit::current();
                let read = match declared.as_ref().map(|r| r.audited) {
                    Some(Audited::Read(a)) => Some(a),
                    Some(_) => None,
                    None if action.is_read() => Some(read_action(action)),
                    None => None,
                };
                if let Some(a) = read {
                    let mut e = self.event(a).on(resource);
                    e.outcome = Outcome::Success;
                    let key = (
                        a,
                        e.tenant_id.clone(),
                        e.recording_id.clone(),
                        e.resource.as_ref().map(|r| r.1.clone()),
                    );
                    let first = declared.is_none_or(|r| {
                        let mut g = r.lock();
                        if g.reads.contains(&key) {
                            false
                        } else {
                            g.reads.push(key);
                            true
                        }
                    });
                    if first {
                        self.state.audit(e);
                    }
                }
                Ok(())
            }
            Err(d) => {
                self.audit_denied(resource, d.code);
                Err(ApiError::forbidden(d.reason))
            }
        }
    }

    /// An event by this caller (actor, session, origin filled in) about nothing yet.
    pub fn event(&self, action: AuditAction) -> AuditEvent {
        let mut e = self.info.event(&self.state, action);
        e.actor = Actor::Account(self.principal.account_id.clone());
        e.session_id = Some(self.session_id.clone());
        e
    }

    /// Records `action` by this caller on `resource` with `outcome`.
    pub fn audit(
        &self,
        action: AuditAction,
        resource: &Resource,
        outcome: Outcome,
        reason: Option<Reason>,
    ) {
        let e = self.event(action).on(resource).outcome(outcome, reason);
        self.state.audit(e);
    }

    /// Records an event built from [`Ctx::event`] (one naming a resource that
    /// [`Resource`] has no variant for, such as an export job).
    pub fn audit_event(&self, e: AuditEvent) {
        self.state.audit(e);
    }

    /// Records a refusal (`access.denied`) of this caller on `resource`.
    pub fn audit_denied(&self, resource: &Resource, reason: Reason) {
        self.audit(
            AuditAction::AccessDenied,
            resource,
            Outcome::Denied,
            Some(reason),
        );
    }

    /// Records the outcome of a change under `action` and passes the result through.
    pub fn audited<T>(
        &self,
        action: AuditAction,
        resource: &Resource,
        r: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        match &r {
            Ok(_) => self.audit(action, resource, Outcome::Success, None),
            Err(e) => self.audit(
                action,
                resource,
                Outcome::Failure,
                Some(crate::audit::reason_of(e)),
            ),
        }
        r
    }
}

/// The audit code of an allowed read outside a declared route (CLI helpers, tests).
fn read_action(action: Action) -> AuditAction {
    match action {
        Action::ReadAccounts => AuditAction::AccountRead,
        Action::ReadTenants => AuditAction::TenantRead,
        Action::ReadAccessReview => AuditAction::AdminAccessReview,
        Action::ReadAudit => AuditAction::AuditExport,
        Action::ReadIncidents => AuditAction::IncidentRead,
        Action::ListRecordings => AuditAction::RecordingList,
        _ => AuditAction::RecordingReadMetadata,
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s (stable JSON error bodies, field named).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            Err(e) => Err(ApiError::bad_request("body", e.body_text())),
        }
    }
}
