//! Login (password, then second factor), first-login password change and TOTP enrolment,
//! logout, current user, password change.
//!
//! Flow: `POST /api/auth/login` checks the password and returns an `mfa_token` (a short-lived
//! pending session that opens nothing else). With it the client may change an expired or
//! one-time password (`/api/auth/mfa/password`), enrol TOTP the first time
//! (`/api/auth/mfa/enroll`), and must finally present a TOTP code or a recovery code
//! (`/api/auth/mfa/verify`), which returns the real session. No session exists without the
//! second factor.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::accounts::{self, Account, Status};
use crate::audit::{Actor, AuditAction, Outcome, Reason, ResourceKind};
use crate::auth::{self, NewSession, Stage, password, recovery, session, totp};
use crate::authz::{Action, Resource};
use crate::clock::to_millis;
use crate::error::{ApiError, Error};
use crate::extract::{ApiJson, Ctx, RequestInfo};
use crate::state::AppState;

/// Failed second-factor attempts allowed per pending login before it is cancelled.
const MFA_MAX_FAILURES: i64 = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize)]
pub(crate) struct LoginStep {
    mfa_token: String,
    expires_in: i64,
    /// Steps still required, in order: `change_password`, `enroll_totp`, `totp`.
    next: Vec<&'static str>,
}

fn secs(n: u64) -> Duration {
    Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 1000))
}

pub(crate) async fn login(
    State(state): State<AppState>,
    info: RequestInfo,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<LoginStep>, ApiError> {
    info.check_origin(&state)?;
    let now = state.now();
    let attempted = accounts::normalise_username(&body.username);
    let mut event = info.event(&state, AuditAction::LoginFailure);
    event.actor = Actor::Attempted(attempted.chars().take(64).collect());
    // An address throttled after repeated failures tests no password (exponential back-off).
    if let Some(secs) = info
        .origin
        .client_addr
        .and_then(|a| state.incidents().address_throttled(a, now))
    {
        state.metrics().rate_limited("login");
        event.reason = Some(Reason::RateLimited);
        state.audit(event);
        return Err(ApiError::TooManyRequests {
            retry_after_secs: secs,
        });
    }
    if body.password.chars().count() > password::MAX_LEN || attempted.len() > 64 {
        event.reason = Some(Reason::InvalidRequest);
        state.audit(event);
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
        });
    }
    let u = attempted.clone();
    let found = state
        .db()
        .call(move |c| accounts::by_username(c, &u))
        .await?;
    // A locked account (or a locked unknown name) tests no password either.
    let lock_key = found
        .as_ref()
        .map_or_else(|| format!("u:{attempted}"), |(a, _)| a.id.clone());
    if let Some((a, _)) = &found {
        event.resource = Some((ResourceKind::Account, a.id.clone()));
        event.tenant_id = a.tenant_id.clone();
    }
    if let Some(secs) = state.incidents().account_locked(&lock_key, now) {
        event.reason = Some(Reason::AccountLocked);
        state.audit(event);
        return Err(ApiError::Locked {
            retry_after_secs: secs,
        });
    }
    // Unknown users are checked against a dummy hash so timing does not reveal which exist.
    let phc = found
        .as_ref()
        .and_then(|(_, c)| c.password_hash.clone())
        .unwrap_or_else(|| password::dummy_hash().to_owned());
    let matched = password::verify_any_async(Zeroizing::new(body.password), vec![phc]).await?;
    let exists = found.is_some();
    let Some((acc, creds)) = found.filter(|_| matched) else {
        event.reason = Some(if exists {
            Reason::BadPassword
        } else {
            Reason::UnknownAccount
        });
        state.audit(event);
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
        });
    };
    // From here the password is right: the actor is the account.
    event.actor = Actor::Account(acc.id.clone());
    let policy = state.settings().accounts.clone();
    let lapse = accounts::lapse_reason(&acc, &policy, now);
    if acc.status != Status::Active || lapse.is_some() {
        if let Some(reason) = lapse {
            let id = acc.id.clone();
            state
                .db()
                .call(move |c| accounts::disable(c, &id, reason, now))
                .await?;
            let mut e = event.clone();
            e.action = AuditAction::AccountDisable;
            e.actor = Actor::Service("sweep".into());
            e.outcome = Outcome::Success;
            e.reason = Some(lapse_code(reason));
            state.audit(e);
        }
        event.reason = Some(Reason::AccountDisabled);
        state.audit(event);
        return Err(ApiError::AccountDisabled);
    }
    let lifetime = secs(state.settings().sessions.mfa_step_timeout_secs);
    let id = acc.id.clone();
    let pending = state
        .db()
        .call(move |c| auth::create_session(c, &id, Stage::Mfa, "password", now, lifetime))
        .await?;
    let mut next = Vec::new();
    if accounts::password_change_due(&acc, &policy, now) {
        next.push("change_password");
    }
    if !acc.totp_enabled || creds.totp_secret.is_none() {
        next.push("enroll_totp");
    }
    next.push("totp");
    event.action = AuditAction::LoginPassword;
    event.outcome = Outcome::Success;
    event.reason = None;
    event.session_id = Some(pending.id.clone());
    state.audit(event);
    Ok(Json(LoginStep {
        mfa_token: pending.token,
        expires_in: lifetime.num_seconds(),
        next,
    }))
}

/// The audit reason of an account lapse code (`expired`, `dormant`).
pub(crate) fn lapse_code(reason: &str) -> Reason {
    match reason {
        "dormant" => Reason::AccountDormant,
        "expired" => Reason::AccountExpired,
        "bootstrap_superseded" => Reason::BootstrapSuperseded,
        _ => Reason::AccountDisabled,
    }
}

/// Loads the pending login of an `mfa_token`, re-checking the account.
async fn pending(
    state: &AppState,
    info: &RequestInfo,
    token: &str,
) -> Result<(auth::Pending, Account, accounts::Credentials), ApiError> {
    let now = state.now();
    let token = token.to_owned();
    let found = state
        .db()
        .call(move |c| -> Result<_, Error> {
            let Some(p) = auth::find_pending(c, &token, now)? else {
                return Ok(None);
            };
            let acc = accounts::get(c, &p.account_id)?;
            let creds = accounts::credentials(c, &p.account_id)?;
            Ok(acc.map(|a| (p, a, creds)))
        })
        .await?;
    let Some((p, acc, creds)) = found else {
        let mut e = info.event(state, AuditAction::LoginMfaFailure);
        e.reason = Some(Reason::SessionInvalid);
        state.audit(e);
        return Err(ApiError::Unauthorized {
            code: "mfa_token_invalid",
        });
    };
    if acc.status != Status::Active {
        let mut e = info
            .event(state, AuditAction::LoginMfaFailure)
            .resource(ResourceKind::Account, acc.id.clone());
        e.actor = Actor::Account(acc.id.clone());
        e.session_id = Some(p.id.clone());
        e.reason = Some(Reason::AccountDisabled);
        state.audit(e);
        return Err(ApiError::AccountDisabled);
    }
    Ok((p, acc, creds))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PendingPasswordBody {
    mfa_token: String,
    current_password: String,
    new_password: String,
}

pub(crate) async fn mfa_password(
    State(state): State<AppState>,
    info: RequestInfo,
    ApiJson(body): ApiJson<PendingPasswordBody>,
) -> Result<StatusCode, ApiError> {
    info.check_origin(&state)?;
    let (p, acc, creds) = pending(&state, &info, &body.mfa_token).await?;
    let outcome = change_password(
        &state,
        &acc,
        creds.password_hash,
        Zeroizing::new(body.current_password),
        Zeroizing::new(body.new_password),
    )
    .await;
    let mut e = info
        .event(&state, AuditAction::AccountPasswordChange)
        .resource(ResourceKind::Account, acc.id.clone());
    e.actor = Actor::Account(acc.id.clone());
    e.tenant_id = acc.tenant_id.clone();
    e.session_id = Some(p.id);
    if let Err(err) = &outcome {
        e.outcome = Outcome::Failure;
        e.reason = Some(crate::audit::reason_of(err));
    }
    state.audit(e);
    outcome.map(|()| StatusCode::NO_CONTENT)
}

/// Checks the current password, the policy and the history, then stores the new hash.
async fn change_password(
    state: &AppState,
    acc: &Account,
    current_hash: Option<String>,
    current: Zeroizing<String>,
    new: Zeroizing<String>,
) -> Result<(), ApiError> {
    let Some(current_hash) = current_hash else {
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
        });
    };
    if current.chars().count() > password::MAX_LEN
        || !password::verify_any_async(current, vec![current_hash]).await?
    {
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
        });
    }
    let mut broken: Vec<String> =
        password::check_policy(&new, &[&acc.username, &acc.first_name, &acc.last_name])
            .into_iter()
            .map(|r| r.code().to_owned())
            .collect();
    if broken.is_empty() {
        let id = acc.id.clone();
        let history = state
            .db()
            .call(move |c| accounts::password_history(c, &id, password::HISTORY))
            .await?;
        if password::verify_any_async(new.clone(), history).await? {
            broken.push(password::Rule::Reused.code().to_owned());
        }
    }
    if !broken.is_empty() {
        return Err(ApiError::PasswordPolicy { rules: broken });
    }
    let hash = password::hash_async(new).await?;
    let id = acc.id.clone();
    let now = state.now();
    state
        .db()
        .call(move |c| accounts::set_password(c, &id, &hash, false, now))
        .await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    mfa_token: String,
}

#[derive(Serialize)]
pub(crate) struct Enrolment {
    /// Base32 secret, for manual entry.
    secret: String,
    /// `otpauth://` URI (QR code content).
    otpauth_uri: String,
    /// One-time recovery codes; shown once.
    recovery_codes: Vec<String>,
}

pub(crate) async fn mfa_enroll(
    State(state): State<AppState>,
    info: RequestInfo,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<Json<Enrolment>, ApiError> {
    info.check_origin(&state)?;
    let (p, acc, _) = pending(&state, &info, &body.mfa_token).await?;
    if acc.totp_enabled {
        return Err(ApiError::Conflict {
            reason: "TOTP already enrolled; an administrator can reset it".into(),
        });
    }
    let secret = totp::generate_secret();
    let uri = totp::otpauth_uri(&secret, &acc.username)?;
    let codes = recovery::generate();
    let hashes: Vec<String> = codes.iter().map(|c| recovery::hash(c)).collect();
    let sealed = state.secrets().seal_totp(&acc.id, &secret)?;
    let (id, s, now) = (acc.id.clone(), sealed, state.now());
    state
        .db()
        .call(move |c| -> Result<(), Error> {
            let tx = c.transaction()?;
            accounts::set_totp(&tx, &id, Some(&s), false)?;
            tx.execute("DELETE FROM recovery_codes WHERE account_id = ?1", [&id])?;
            for h in &hashes {
                tx.execute(
                    "INSERT INTO recovery_codes (account_id, code_hash, created_at) VALUES (?1, ?2, ?3)",
                    params![id, h, to_millis(now)],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await?;
    let mut e = info
        .event(&state, AuditAction::AccountMfaEnroll)
        .resource(ResourceKind::Account, acc.id.clone());
    e.actor = Actor::Account(acc.id.clone());
    e.tenant_id = acc.tenant_id.clone();
    e.session_id = Some(p.id);
    state.audit(e);
    Ok(Json(Enrolment {
        secret,
        otpauth_uri: uri,
        recovery_codes: codes,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyBody {
    mfa_token: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

/// The answer to a completed login: the session token (for API clients) and the account.
#[derive(Serialize)]
pub(crate) struct SessionOut {
    token: String,
    csrf_token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
    account: Account,
}

pub(crate) async fn mfa_verify(
    State(state): State<AppState>,
    info: RequestInfo,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Response, ApiError> {
    info.check_origin(&state)?;
    let (p, acc, creds) = pending(&state, &info, &body.mfa_token).await?;
    let now = state.now();
    let mut e = info
        .event(&state, AuditAction::LoginMfaFailure)
        .resource(ResourceKind::Account, acc.id.clone());
    e.actor = Actor::Account(acc.id.clone());
    e.tenant_id = acc.tenant_id.clone();
    e.session_id = Some(p.id.clone());
    if let Some(secs) = state.incidents().account_locked(&acc.id, now) {
        e.reason = Some(Reason::AccountLocked);
        state.audit(e);
        return Err(ApiError::Locked {
            retry_after_secs: secs,
        });
    }
    if accounts::password_change_due(&acc, &state.settings().accounts, now) {
        e.reason = Some(Reason::PasswordExpired);
        state.audit(e);
        return Err(ApiError::PasswordChangeRequired);
    }
    let Some(sealed) = creds.totp_secret.clone() else {
        e.reason = Some(Reason::MfaRequired);
        state.audit(e);
        return Err(ApiError::bad_request(
            "code",
            "enrol TOTP first (/api/auth/mfa/enroll)",
        ));
    };
    let secret = state.secrets().open_totp(&acc.id, &sealed)?;
    let unix = u64::try_from(now.timestamp()).unwrap_or(0);
    let (id, pid) = (acc.id.clone(), p.id.clone());
    let enabled = acc.totp_enabled;
    let accepted: Result<bool, Error> = match (&body.code, &body.recovery_code) {
        (Some(code), None) => match totp::verify(&secret, code, unix, creds.totp_last_step) {
            Some(step) => {
                state
                    .db()
                    .call(move |c| -> Result<bool, Error> {
                        // Conditional update: two concurrent uses of one code cannot both win.
                        let n = c.execute(
                            "UPDATE accounts SET totp_last_step = ?2, totp_enabled = 1 WHERE id = ?1 \
                             AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                            params![id, step],
                        )?;
                        Ok(n == 1)
                    })
                    .await
            }
            None => Ok(false),
        },
        (None, Some(rc)) if enabled => {
            let h = recovery::hash(rc);
            state
                .db()
                .call(move |c| -> Result<bool, Error> {
                    let n = c.execute(
                        "UPDATE recovery_codes SET used_at = ?3 WHERE account_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
                        params![id, h, to_millis(now)],
                    )?;
                    Ok(n == 1)
                })
                .await
        }
        _ => {
            return Err(ApiError::bad_request(
                "code",
                "give exactly one of code or recovery_code (recovery codes once enrolled)",
            ));
        }
    };
    if !accepted? {
        let failures = p.failures + 1;
        state
            .db()
            .call(move |c| -> Result<(), Error> {
                c.execute(
                    "UPDATE sessions SET mfa_failures = ?2 WHERE id = ?1",
                    params![pid, failures],
                )?;
                if failures >= MFA_MAX_FAILURES {
                    auth::revoke_session(c, &pid, "mfa_failures", now)?;
                }
                Ok(())
            })
            .await?;
        e.reason = Some(Reason::MfaInvalid);
        state.audit(e);
        return Err(ApiError::Unauthorized {
            code: "invalid_second_factor",
        });
    }
    let method = if body.recovery_code.is_some() {
        "password+recovery_code"
    } else {
        "password+totp"
    };
    let out = open_session(&state, &info, &acc, Some(&p.id), method).await?;
    Ok(out)
}

/// Ends the pending login (if any), creates the full session, records the login, and answers
/// with cookies and JSON.
pub(crate) async fn open_session(
    state: &AppState,
    info: &RequestInfo,
    acc: &Account,
    pending_id: Option<&str>,
    method: &'static str,
) -> Result<Response, ApiError> {
    let now = state.now();
    let lifetime = secs(state.settings().sessions.absolute_timeout_secs);
    let (id, pid, acc2) = (acc.id.clone(), pending_id.map(str::to_owned), acc.clone());
    let (s, superseded, account): (NewSession, Vec<String>, Option<Account>) = state
        .db()
        .call(move |c| -> Result<_, Error> {
            let tx = c.transaction()?;
            if let Some(pid) = pid {
                auth::revoke_session(&tx, &pid, "completed", now)?;
            }
            let s = auth::create_session(&tx, &id, Stage::Full, method, now, lifetime)?;
            let sup = accounts::record_login(&tx, &acc2, now)?;
            let account = accounts::get(&tx, &id)?;
            tx.commit()?;
            Ok((s, sup, account))
        })
        .await?;
    let account = account.ok_or(ApiError::Unauthorized {
        code: "session_required",
    })?;
    // The method (password+totp, recovery code, oidc) is kept with the session, which the
    // event names.
    let _ = method;
    let mut e = info
        .event(state, AuditAction::LoginSuccess)
        .resource(ResourceKind::Account, acc.id.clone());
    e.actor = Actor::Account(acc.id.clone());
    e.tenant_id = acc.tenant_id.clone();
    e.session_id = Some(s.id.clone());
    state.audit(e.clone());
    for b in superseded {
        let mut d = e.clone();
        d.action = AuditAction::AccountDisable;
        d.resource = Some((ResourceKind::Account, b));
        d.tenant_id = None;
        d.reason = Some(Reason::BootstrapSuperseded);
        state.audit(d);
    }
    let csrf = s.csrf_token.clone().unwrap_or_default();
    let max_age = u64::try_from(lifetime.num_seconds()).unwrap_or(0);
    let mut headers = HeaderMap::new();
    for c in [
        session::session_cookie(&s.token, max_age),
        session::csrf_cookie(&csrf, max_age),
    ] {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&c).map_err(|_| Error::Task)?,
        );
    }
    Ok((
        headers,
        Json(SessionOut {
            token: s.token,
            csrf_token: csrf,
            expires_at: s.expires_at,
            account,
        }),
    )
        .into_response())
}

pub(crate) async fn logout(State(state): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    let (sid, now) = (ctx.session_id.clone(), state.now());
    state
        .db()
        .call(move |c| auth::revoke_session(c, &sid, "logout", now))
        .await?;
    ctx.audit(
        AuditAction::Logout,
        &Resource::Account {
            account_id: ctx.principal.account_id.clone(),
        },
        Outcome::Success,
        None,
    );
    let mut headers = HeaderMap::new();
    for c in session::clearing_cookies() {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&c).map_err(|_| Error::Task)?,
        );
    }
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

#[derive(Serialize)]
pub(crate) struct Me {
    account: Account,
    grants: Vec<accounts::Grant>,
    tenants: Vec<String>,
    session_id: String,
}

pub(crate) async fn me(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Me>, ApiError> {
    let me = Resource::Account {
        account_id: ctx.principal.account_id.clone(),
    };
    ctx.authorize(Action::ReadSelf, &me)?;
    let id = ctx.principal.account_id.clone();
    let (account, grants) = state
        .db()
        .call(move |c| -> Result<_, Error> {
            Ok((accounts::get(c, &id)?, accounts::grants_of(c, &id)?))
        })
        .await?;
    let account = account.ok_or(ApiError::Unauthorized {
        code: "session_required",
    })?;
    Ok(Json(Me {
        account,
        grants,
        tenants: ctx.principal.tenants.iter().cloned().collect(),
        session_id: ctx.session_id.clone(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    current_password: String,
    new_password: String,
}

pub(crate) async fn password_change(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let me = Resource::Account {
        account_id: ctx.principal.account_id.clone(),
    };
    ctx.authorize(Action::ManageOwnCredentials, &me)?;
    let id = ctx.principal.account_id.clone();
    let (acc, creds) = state
        .db()
        .call(move |c| -> Result<_, Error> {
            Ok((accounts::get(c, &id)?, accounts::credentials(c, &id)?))
        })
        .await?;
    let acc = acc.ok_or(ApiError::Unauthorized {
        code: "session_required",
    })?;
    let r = change_password(
        &state,
        &acc,
        creds.password_hash,
        Zeroizing::new(body.current_password),
        Zeroizing::new(body.new_password),
    )
    .await;
    match &r {
        Ok(()) => {
            // Other sessions of the account end; this one continues.
            let (id, sid, now) = (acc.id.clone(), ctx.session_id.clone(), state.now());
            state
                .db()
                .call(move |c| -> Result<(), Error> {
                    c.execute(
                        "UPDATE sessions SET revoked_at = ?3, revoked_why = 'password_changed' \
                         WHERE account_id = ?1 AND id <> ?2 AND revoked_at IS NULL",
                        params![id, sid, to_millis(now)],
                    )?;
                    Ok(())
                })
                .await?;
            ctx.audit(
                AuditAction::AccountPasswordChange,
                &me,
                Outcome::Success,
                None,
            );
        }
        Err(e) => ctx.audit(
            AuditAction::AccountPasswordChange,
            &me,
            Outcome::Failure,
            Some(crate::audit::reason_of(e)),
        ),
    }
    r.map(|()| StatusCode::NO_CONTENT)
}
