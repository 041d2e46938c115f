//! Administration: accounts, grants, generic-name exceptions, tenants, access review.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::accounts::{
    self, Account, Grant, GrantScope, NameException, NewAccount, Role, Status, Tenant,
};
use crate::audit::{AuditAction, Outcome};
use crate::auth::password;
use crate::authz::{Action, Resource};
use crate::error::{ApiError, Error};
use crate::extract::{ApiJson, Ctx};
use crate::state::AppState;

fn account_res(id: &str) -> Resource {
    Resource::Account {
        account_id: id.to_owned(),
    }
}

pub(crate) async fn list_accounts(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Vec<Account>>, ApiError> {
    ctx.authorize(Action::ReadAccounts, &Resource::System)?;
    Ok(Json(state.db().call(|c| accounts::list(c)).await?))
}

pub(crate) async fn get_account(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Account>, ApiError> {
    ctx.authorize(Action::ReadAccounts, &account_res(&id))?;
    let id2 = id.clone();
    state
        .db()
        .call(move |c| accounts::get(c, &id2))
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound {
            what: format!("account {id}"),
        })
}

#[derive(Serialize)]
pub(crate) struct Created {
    account: Account,
    /// Shown once; must be changed at first login.
    one_time_password: String,
}

pub(crate) async fn create_account(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(new): ApiJson<NewAccount>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    ctx.authorize(Action::ManageAccounts, &Resource::System)?;
    let r = async {
        let now = state.now();
        let policy = state.settings().accounts.clone();
        let n2 = new.clone();
        state
            .db()
            .call(move |c| accounts::validate_new(c, &n2, &policy, now))
            .await?;
        let otp = Zeroizing::new(password::generate_one_time());
        let hash = password::hash_async(otp.clone()).await?;
        let by = ctx.principal.account_id.clone();
        let account = state
            .db()
            .call(move |c| accounts::insert(c, &new, &hash, Some(&by), false, now))
            .await?;
        Ok::<_, ApiError>(Created {
            account,
            one_time_password: otp.to_string(),
        })
    }
    .await;
    let res = match &r {
        Ok(c) => account_res(&c.account.id),
        Err(_) => Resource::System,
    };
    ctx.audited(AuditAction::AccountCreate, &res, r)
        .map(|c| (StatusCode::CREATED, Json(c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountPatch {
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    role: Option<Role>,
    /// Required with `role` for tenant roles; `null` for the others.
    #[serde(default)]
    tenant_id: Option<String>,
    /// New expiry for a guest being re-enabled.
    #[serde(default)]
    guest_expires_at: Option<DateTime<Utc>>,
}

pub(crate) async fn patch_account(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<AccountPatch>,
) -> Result<Json<Account>, ApiError> {
    let res = account_res(&id);
    ctx.authorize(Action::ManageAccounts, &res)?;
    if id == ctx.principal.account_id
        && (patch.status == Some(Status::Disabled) || patch.role.is_some())
    {
        return ctx.audited(
            AuditAction::AccountUpdate,
            &res,
            Err(ApiError::bad_request(
                "id",
                "administrators cannot disable or re-role themselves",
            )),
        );
    }
    let now = state.now();
    let id2 = id.clone();
    let (new_status, new_role) = (patch.status, patch.role);
    let r = state
        .db()
        .call(move |c| -> Result<Option<Account>, Error> {
            let tx = c.transaction()?;
            if accounts::get(&tx, &id2)?.is_none() {
                return Ok(None);
            }
            if let Some(role) = patch.role {
                accounts::update_role(&tx, &id2, role, patch.tenant_id.as_deref(), now)?;
            }
            match patch.status {
                Some(Status::Disabled) => {
                    accounts::disable(&tx, &id2, "administrator", now)?;
                }
                Some(Status::Active) => {
                    accounts::enable(&tx, &id2, patch.guest_expires_at, now)?;
                }
                None => {}
            }
            let a = accounts::get(&tx, &id2)?;
            tx.commit()?;
            Ok(a)
        })
        .await
        .map_err(ApiError::from)
        .and_then(|a| {
            a.ok_or(ApiError::NotFound {
                what: format!("account {id}"),
            })
        });
    // The precise act: a disable or enable is its own code; anything else is an update.
    let action = match (new_status, new_role) {
        (Some(Status::Disabled), None) => AuditAction::AccountDisable,
        (Some(Status::Active), None) => AuditAction::AccountEnable,
        _ => AuditAction::AccountUpdate,
    };
    ctx.audited(action, &res, r).map(Json)
}

#[derive(Serialize)]
pub(crate) struct Reset {
    one_time_password: String,
}

/// Lost password or authenticator: new one-time password, TOTP and recovery codes cleared,
/// sessions revoked. The holder re-enrols at next login.
pub(crate) async fn reset_credentials(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Reset>, ApiError> {
    let res = account_res(&id);
    ctx.authorize(Action::ManageAccounts, &res)?;
    let r = async {
        let otp = Zeroizing::new(password::generate_one_time());
        let hash = password::hash_async(otp.clone()).await?;
        let (id2, now) = (id.clone(), state.now());
        let found = state
            .db()
            .call(move |c| -> Result<bool, Error> {
                let tx = c.transaction()?;
                if accounts::get(&tx, &id2)?.is_none() {
                    return Ok(false);
                }
                accounts::set_password(&tx, &id2, &hash, true, now)?;
                accounts::set_totp(&tx, &id2, None, false)?;
                tx.execute("DELETE FROM recovery_codes WHERE account_id = ?1", [&id2])?;
                accounts::revoke_sessions(&tx, &id2, "credentials_reset", now)?;
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if found {
            Ok(Reset {
                one_time_password: otp.to_string(),
            })
        } else {
            Err(ApiError::NotFound {
                what: format!("account {id}"),
            })
        }
    }
    .await;
    ctx.audited(AuditAction::AccountMfaReset, &res, r).map(Json)
}

pub(crate) async fn list_grants(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Vec<Grant>>, ApiError> {
    ctx.authorize(Action::ReadAccounts, &account_res(&id))?;
    Ok(Json(
        state
            .db()
            .call(move |c| accounts::grants_of(c, &id))
            .await?,
    ))
}

pub(crate) async fn add_grant(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(scope): ApiJson<GrantScope>,
) -> Result<(StatusCode, Json<Grant>), ApiError> {
    let res = account_res(&id);
    ctx.authorize(Action::ManageGrants, &res)?;
    let (by, now) = (ctx.principal.account_id.clone(), state.now());
    let r = state
        .db()
        .call(move |c| -> Result<Grant, Error> {
            let g = accounts::add_grant(c, &id, &scope, Some(&by), now)?;
            // Live sessions pick grants up at the next request (principals are rebuilt each time).
            Ok(g)
        })
        .await
        .map_err(ApiError::from);
    ctx.audited(AuditAction::GrantCreate, &res, r)
        .map(|g| (StatusCode::CREATED, Json(g)))
}

pub(crate) async fn delete_grant(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.authorize(Action::ManageGrants, &Resource::System)?;
    let id2 = id.clone();
    let r = state
        .db()
        .call(move |c| accounts::remove_grant(c, &id2))
        .await
        .map_err(ApiError::from)
        .and_then(|h| {
            h.ok_or(ApiError::NotFound {
                what: format!("grant {id}"),
            })
        });
    let res = match &r {
        Ok(holder) => account_res(holder),
        Err(_) => Resource::System,
    };
    ctx.audited(AuditAction::GrantDelete, &res, r)
        .map(|_| StatusCode::NO_CONTENT)
}

pub(crate) async fn list_name_exceptions(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Vec<NameException>>, ApiError> {
    ctx.authorize(Action::ManageNameExceptions, &Resource::System)?;
    Ok(Json(
        state
            .db()
            .call(|c| accounts::list_name_exceptions(c))
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExceptionBody {
    username: String,
    reason: String,
}

pub(crate) async fn add_name_exception(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<ExceptionBody>,
) -> Result<(StatusCode, Json<NameException>), ApiError> {
    ctx.authorize(Action::ManageNameExceptions, &Resource::System)?;
    let (by, now) = (ctx.principal.account_id.clone(), state.now());
    let r = state
        .db()
        .call(move |c| accounts::add_name_exception(c, &body.username, &body.reason, &by, now))
        .await
        .map_err(ApiError::from);
    ctx.audited(AuditAction::AdminConfigChange, &Resource::System, r)
        .map(|e| (StatusCode::CREATED, Json(e)))
}

pub(crate) async fn list_tenants(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Vec<Tenant>>, ApiError> {
    let all = state.db().call(|c| accounts::list_tenants(c)).await?;
    // Administrators see every tenant; everyone else the tenants they belong to. Each tenant
    // goes through the decision point; the listing is audited once as a read.
    let p = &ctx.principal;
    let visible: Vec<Tenant> =
        if crate::authz::authorize(p, Action::ReadTenants, &Resource::System).is_ok() {
            all
        } else {
            all.into_iter()
                .filter(|t| {
                    let res = Resource::Tenant {
                        tenant_id: t.id.clone(),
                    };
                    crate::authz::authorize(p, Action::ReadTenants, &res).is_ok()
                })
                .collect()
        };
    ctx.audit(
        AuditAction::TenantRead,
        &Resource::System,
        Outcome::Success,
        None,
    );
    Ok(Json(visible))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantBody {
    #[serde(default)]
    id: Option<String>,
    name: String,
}

pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<TenantBody>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    ctx.authorize(Action::ManageTenants, &Resource::System)?;
    let (by, now) = (ctx.principal.account_id.clone(), state.now());
    let r = state
        .db()
        .call(move |c| accounts::create_tenant(c, body.id.as_deref(), &body.name, Some(&by), now))
        .await
        .map_err(ApiError::from);
    let res = match &r {
        Ok(t) => Resource::Tenant {
            tenant_id: t.id.clone(),
        },
        Err(_) => Resource::System,
    };
    ctx.audited(AuditAction::TenantCreate, &res, r)
        .map(|t| (StatusCode::CREATED, Json(t)))
}

#[derive(Deserialize)]
pub(crate) struct ReviewQuery {
    #[serde(default)]
    format: Option<String>,
}

pub(crate) async fn access_review(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ReviewQuery>,
) -> Result<Response, ApiError> {
    ctx.authorize(Action::ReadAccessReview, &Resource::System)?;
    let now = state.now();
    let rows = state
        .db()
        .call(move |c| accounts::access_review(c, now))
        .await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(rows).into_response()),
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            accounts::review_csv(&rows),
        )
            .into_response()),
        Some(_) => Err(ApiError::bad_request("format", "json or csv")),
    }
}

/// Lifts the lock the brute-force detector put on an account (its back-off level is kept, so a
/// renewed attack locks it for longer).
pub(crate) async fn unlock_account(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let res = account_res(&id);
    ctx.authorize(Action::ManageAccounts, &res)?;
    let id2 = id.clone();
    let exists = state
        .db()
        .call(move |c| accounts::get(c, &id2))
        .await?
        .is_some();
    let r = if exists {
        state
            .incidents()
            .unlock_account(&id, state.now())
            .await
            .map_err(ApiError::from)
            .map(|_| StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            what: format!("account {id}"),
        })
    };
    ctx.audited(AuditAction::AccountUnlock, &res, r)
}
