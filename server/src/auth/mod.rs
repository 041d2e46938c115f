//! Authentication: passwords, TOTP, recovery codes, sessions, OpenID Connect, and the session
//! store shared by the login routes.

pub mod oidc;
pub mod password;
pub mod recovery;
pub mod session;
pub mod totp;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::{from_millis, to_millis};
use crate::error::Result;

/// A session just created: the token (returned once, stored hashed) and the CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Session id.
    pub id: String,
    /// Bearer / cookie token.
    pub token: String,
    /// CSRF token (full sessions only).
    pub csrf_token: Option<String>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
}

/// Session stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Password checked; second factor (and maybe a password change) pending.
    Mfa,
    /// Fully authenticated.
    Full,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Mfa => "mfa",
            Stage::Full => "full",
        }
    }
}

/// Inserts a session; returns its tokens.
pub(crate) fn create_session(
    conn: &Connection,
    account_id: &str,
    stage: Stage,
    method: &str,
    now: DateTime<Utc>,
    lifetime: Duration,
) -> Result<NewSession> {
    let id = uuid::Uuid::new_v4().to_string();
    let token = session::new_token();
    let csrf = (stage == Stage::Full).then(session::new_token);
    let expires_at = now + lifetime;
    conn.execute(
        "INSERT INTO sessions (id, token_hash, csrf_hash, account_id, stage, method, created_at, last_seen_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
        params![
            id,
            session::token_hash(&token),
            csrf.as_deref().map(session::token_hash),
            account_id,
            stage.as_str(),
            method,
            to_millis(now),
            to_millis(expires_at),
        ],
    )?;
    Ok(NewSession {
        id,
        token,
        csrf_token: csrf,
        expires_at,
    })
}

/// A pending (second-factor) session found by token.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) id: String,
    pub(crate) account_id: String,
    pub(crate) failures: i64,
}

/// Finds a live pending session by its token.
pub(crate) fn find_pending(
    conn: &Connection,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Pending>> {
    let row = conn
        .query_row(
            "SELECT id, account_id, expires_at, revoked_at, mfa_failures FROM sessions \
             WHERE token_hash = ?1 AND stage = 'mfa'",
            [session::token_hash(token)],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
    Ok(row.and_then(|(id, account_id, exp, revoked, failures)| {
        (revoked.is_none() && now < from_millis(exp)).then_some(Pending {
            id,
            account_id,
            failures,
        })
    }))
}

/// Revokes one session.
pub(crate) fn revoke_session(
    conn: &Connection,
    id: &str,
    why: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET revoked_at = ?2, revoked_why = ?3 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, to_millis(now), why],
    )?;
    Ok(())
}
