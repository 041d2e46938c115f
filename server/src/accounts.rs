//! Accounts, tenants, grants, generic-name exceptions and the access review.
//!
//! Everything here is synchronous SQL on a `rusqlite::Connection`, shared by the HTTP handlers
//! (through [`crate::db::Db::call`]) and the `theta admin` commands.
//!
//! Rules (security plan §4.4):
//! - accounts are nominative: first name, last name, e-mail and a unique username;
//! - generic usernames or names (`admin`, `root`, `test`, …, see [`GENERIC_NAMES`]) are refused
//!   unless an administrator has recorded an exception with a written reason;
//! - the bootstrap administrator is disabled automatically once another administrator has
//!   completed a first full login (password changed, TOTP enrolled) — not at mere creation, so a
//!   mistyped second administrator cannot lock everybody out;
//! - guest accounts carry an expiry and are disabled by it; accounts without activity for
//!   `dormant_after_days` are disabled; disabling revokes every session.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::clock::{from_millis, to_millis};
use crate::config::AccountSettings;
use crate::error::{Error, Result};

/// Usernames and name parts refused unless an exception is recorded.
pub const GENERIC_NAMES: &[&str] = &[
    "admin",
    "administrator",
    "administrateur",
    "root",
    "superuser",
    "sysadmin",
    "system",
    "test",
    "tester",
    "testing",
    "user",
    "users",
    "utilisateur",
    "guest",
    "invite",
    "demo",
    "support",
    "helpdesk",
    "operator",
    "operateur",
    "info",
    "infos",
    "service",
    "services",
    "contact",
    "webmaster",
    "postmaster",
    "hostmaster",
    "noreply",
    "nobody",
    "anonymous",
    "default",
    "manager",
    "staff",
    "office",
    "secretariat",
    "secretaire",
    "accueil",
    "reception",
    "technicien",
    "technician",
    "medecin",
    "docteur",
    "doctor",
    "interprete",
    "labo",
    "lab",
    "temp",
    "tmp",
    "backup",
    "api",
    "bot",
    "shared",
    "commun",
    "generic",
];

/// A role (one per account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Accounts, grants, tenants; no health data by default.
    Administrator,
    /// Ingest and read recordings of their tenant(s).
    Technician,
    /// Read and annotate the recordings assigned to them.
    Interpreter,
    /// Pseudonymised exports only.
    Researcher,
    /// The audit trail (and the access review) only.
    Auditor,
}

impl Role {
    /// Every role, for tables and tests.
    pub const ALL: [Role; 5] = [
        Role::Administrator,
        Role::Technician,
        Role::Interpreter,
        Role::Researcher,
        Role::Auditor,
    ];

    /// Stored / wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Technician => "technician",
            Role::Interpreter => "interpreter",
            Role::Researcher => "researcher",
            Role::Auditor => "auditor",
        }
    }

    /// Whether accounts of this role belong to a tenant.
    pub fn needs_tenant(self) -> bool {
        matches!(
            self,
            Role::Technician | Role::Interpreter | Role::Researcher
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::invalid("role", format!("unknown role {s:?}")))
    }
}

/// Account status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// May log in.
    Active,
    /// May not log in; see `disabled_reason`.
    Disabled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
        }
    }
}

/// An account as the API shows it (no hash, no secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Account {
    /// Opaque id (UUID).
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Home tenant (technicians, interpreters, researchers).
    pub tenant_id: Option<String>,
    /// Status.
    pub status: Status,
    /// Why disabled: `administrator`, `expired`, `dormant`, `bootstrap_superseded`.
    pub disabled_reason: Option<String>,
    /// The account `theta admin bootstrap` created.
    pub is_bootstrap: bool,
    /// A guest account (has `expires_at`).
    pub is_guest: bool,
    /// When a guest account stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the password was last set.
    pub password_changed_at: Option<DateTime<Utc>>,
    /// The password must be changed before a session is granted.
    pub must_change_password: bool,
    /// TOTP enrolled.
    pub totp_enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last completed login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Last login, creation or re-activation: the dormancy clock.
    pub last_activity_at: DateTime<Utc>,
}

/// Secrets of an account, for the login path only.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub(crate) password_hash: Option<String>,
    pub(crate) totp_secret: Option<String>,
    pub(crate) totp_last_step: Option<i64>,
}

/// What an administrator supplies to create an account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Unique login name: `[a-z][a-z0-9._-]{2,63}`.
    pub username: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Home tenant; required for technicians, interpreters and researchers, refused otherwise.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Makes a guest account that stops working at this time.
    #[serde(default)]
    pub guest_expires_at: Option<DateTime<Utc>>,
}

const ACCOUNT_COLUMNS: &str = "id, username, first_name, last_name, email, role, tenant_id, \
    status, disabled_reason, is_bootstrap, is_guest, expires_at, password_changed_at, \
    must_change_password, totp_enabled, created_at, last_login_at, last_activity_at";

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    let role: String = r.get(5)?;
    let status: String = r.get(7)?;
    let bad = |what: &str, v: String| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(Error::Corrupt {
                what: format!("{what} {v:?}"),
            }),
        )
    };
    Ok(Account {
        id: r.get(0)?,
        username: r.get(1)?,
        first_name: r.get(2)?,
        last_name: r.get(3)?,
        email: r.get(4)?,
        role: role.parse().map_err(|_| bad("role", role.clone()))?,
        tenant_id: r.get(6)?,
        status: match status.as_str() {
            "active" => Status::Active,
            "disabled" => Status::Disabled,
            _ => return Err(bad("status", status)),
        },
        disabled_reason: r.get(8)?,
        is_bootstrap: r.get(9)?,
        is_guest: r.get(10)?,
        expires_at: r.get::<_, Option<i64>>(11)?.map(from_millis),
        password_changed_at: r.get::<_, Option<i64>>(12)?.map(from_millis),
        must_change_password: r.get(13)?,
        totp_enabled: r.get(14)?,
        created_at: from_millis(r.get(15)?),
        last_login_at: r.get::<_, Option<i64>>(16)?.map(from_millis),
        last_activity_at: from_millis(r.get(17)?),
    })
}

/// Normalises a username (trim, lower case).
pub fn normalise_username(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Whether a username or name part is generic (see [`GENERIC_NAMES`]): the whole name without
/// digits and separators, or any of its `.`/`-`/`_`-separated parts.
pub fn is_generic(name: &str) -> bool {
    let lower = name.trim().to_lowercase();
    let squashed: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
    if squashed.is_empty() || GENERIC_NAMES.contains(&squashed.as_str()) {
        return true;
    }
    lower
        .split(|c: char| !c.is_alphabetic())
        .filter(|p| !p.is_empty())
        .any(|p| GENERIC_NAMES.contains(&p))
}

fn valid_username(u: &str) -> bool {
    let b = u.as_bytes();
    (3..=64).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'_')
        })
}

fn valid_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
                && e.len() <= 254
        }
        None => false,
    }
}

/// Whether an exception has been recorded for `username`.
pub fn has_name_exception(conn: &Connection, username: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM name_exceptions WHERE username = ?1",
            [username],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Checks a new account against the nominative rules, the tenant rules and the guest limit.
///
/// # Errors
/// [`Error::Invalid`] naming the field.
pub fn validate_new(
    conn: &Connection,
    new: &NewAccount,
    policy: &AccountSettings,
    now: DateTime<Utc>,
) -> Result<()> {
    let username = normalise_username(&new.username);
    if !valid_username(&username) {
        return Err(Error::invalid(
            "username",
            "3 to 64 characters: a lower-case letter, then letters, digits, '.', '-' or '_'",
        ));
    }
    for (field, v) in [
        ("first_name", &new.first_name),
        ("last_name", &new.last_name),
    ] {
        let v = v.trim();
        if v.is_empty() || v.chars().count() > 100 || v.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                "a real name is required (1 to 100 characters)",
            ));
        }
    }
    if !valid_email(new.email.trim()) {
        return Err(Error::invalid("email", "not an e-mail address"));
    }
    let generic =
        is_generic(&username) || is_generic(&new.first_name) || is_generic(&new.last_name);
    if generic && !has_name_exception(conn, &username)? {
        return Err(Error::invalid(
            "username",
            "generic account names are refused; an administrator may record an exception with a reason",
        ));
    }
    match (new.role.needs_tenant(), &new.tenant_id) {
        (true, None) => {
            return Err(Error::invalid(
                "tenant_id",
                format!("a {} needs a tenant", new.role),
            ));
        }
        (false, Some(_)) => {
            return Err(Error::invalid(
                "tenant_id",
                format!("a {} is not attached to a tenant", new.role),
            ));
        }
        (true, Some(t)) if !tenant_exists(conn, t)? => {
            return Err(Error::invalid("tenant_id", "no such tenant"));
        }
        _ => {}
    }
    if let Some(exp) = new.guest_expires_at {
        if exp <= now {
            return Err(Error::invalid("guest_expires_at", "already past"));
        }
        if exp > now + Duration::days(i64::from(policy.guest_max_days)) {
            return Err(Error::invalid(
                "guest_expires_at",
                format!("guest accounts last at most {} days", policy.guest_max_days),
            ));
        }
        if new.role == Role::Administrator {
            return Err(Error::invalid("role", "a guest cannot be an administrator"));
        }
    }
    Ok(())
}

/// Inserts a validated account with an initial (one-time) password hash; the password must be
/// changed at first login.
///
/// # Errors
/// [`Error::Invalid`] when the username or e-mail is taken; [`Error::Db`].
pub fn insert(
    conn: &Connection,
    new: &NewAccount,
    password_hash: &str,
    created_by: Option<&str>,
    is_bootstrap: bool,
    now: DateTime<Utc>,
) -> Result<Account> {
    let id = uuid::Uuid::new_v4().to_string();
    let username = normalise_username(&new.username);
    let taken: Option<String> = conn
        .query_row(
            "SELECT CASE WHEN username = ?1 THEN 'username' ELSE 'email' END FROM accounts \
             WHERE username = ?1 OR lower(email) = lower(?2)",
            params![username, new.email.trim()],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(field) = taken {
        return Err(Error::invalid(field, "already used by another account"));
    }
    let t = to_millis(now);
    conn.execute(
        "INSERT INTO accounts (id, username, first_name, last_name, email, role, tenant_id, \
         status, is_bootstrap, is_guest, expires_at, password_hash, password_changed_at, \
         must_change_password, created_at, created_by, last_activity_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active', ?8, ?9, ?10, ?11, ?12, 1, ?12, ?13, ?12)",
        params![
            id,
            username,
            new.first_name.trim(),
            new.last_name.trim(),
            new.email.trim(),
            new.role.as_str(),
            new.tenant_id,
            is_bootstrap,
            new.guest_expires_at.is_some(),
            new.guest_expires_at.map(to_millis),
            password_hash,
            t,
            created_by,
        ],
    )?;
    conn.execute(
        "INSERT INTO password_history (account_id, hash, set_at) VALUES (?1, ?2, ?3)",
        params![id, password_hash, t],
    )?;
    get(conn, &id)?.ok_or_else(|| Error::Corrupt {
        what: "account vanished after insert".into(),
    })
}

/// An account by id.
pub fn get(conn: &Connection, id: &str) -> Result<Option<Account>> {
    Ok(conn
        .query_row(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"),
            [id],
            account_from_row,
        )
        .optional()?)
}

/// An account and its credentials by username (login path).
pub(crate) fn by_username(
    conn: &Connection,
    username: &str,
) -> Result<Option<(Account, Credentials)>> {
    let acc = conn
        .query_row(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username = ?1"),
            [normalise_username(username)],
            account_from_row,
        )
        .optional()?;
    match acc {
        Some(a) => {
            let c = credentials(conn, &a.id)?;
            Ok(Some((a, c)))
        }
        None => Ok(None),
    }
}

/// An account's credentials.
pub(crate) fn credentials(conn: &Connection, id: &str) -> Result<Credentials> {
    Ok(conn.query_row(
        "SELECT password_hash, totp_secret, totp_last_step FROM accounts WHERE id = ?1",
        [id],
        |r| {
            Ok(Credentials {
                password_hash: r.get(0)?,
                totp_secret: r.get(1)?,
                totp_last_step: r.get(2)?,
            })
        },
    )?)
}

/// Every account, by username.
pub fn list(conn: &Connection) -> Result<Vec<Account>> {
    let mut st = conn.prepare(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY username"
    ))?;
    let rows = st.query_map([], account_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes every live session of an account.
pub fn revoke_sessions(
    conn: &Connection,
    account_id: &str,
    why: &str,
    now: DateTime<Utc>,
) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE sessions SET revoked_at = ?2, revoked_why = ?3 WHERE account_id = ?1 AND revoked_at IS NULL",
        params![account_id, to_millis(now), why],
    )?)
}

/// Disables an account (revoking its sessions) with a reason code.
pub fn disable(conn: &Connection, id: &str, reason: &str, now: DateTime<Utc>) -> Result<bool> {
    let n = conn.execute(
        "UPDATE accounts SET status = 'disabled', disabled_reason = ?2 WHERE id = ?1",
        params![id, reason],
    )?;
    revoke_sessions(conn, id, reason, now)?;
    Ok(n == 1)
}

/// Re-activates an account; restarts its dormancy clock. Guests must be given a new expiry.
///
/// # Errors
/// [`Error::Invalid`] for an expired guest without a new expiry.
pub fn enable(
    conn: &Connection,
    id: &str,
    guest_expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let Some(acc) = get(conn, id)? else {
        return Ok(false);
    };
    let expiry = guest_expires_at.or(acc.expires_at);
    if acc.is_guest && expiry.is_none_or(|e| e <= now) {
        return Err(Error::invalid(
            "guest_expires_at",
            "an expired guest needs a new expiry",
        ));
    }
    conn.execute(
        "UPDATE accounts SET status = 'active', disabled_reason = NULL, last_activity_at = ?2, \
         expires_at = ?3 WHERE id = ?1",
        params![id, to_millis(now), expiry.map(to_millis)],
    )?;
    Ok(true)
}

/// Changes role and/or home tenant.
///
/// # Errors
/// [`Error::Invalid`] when the combination breaks the tenant rules.
pub fn update_role(
    conn: &Connection,
    id: &str,
    role: Role,
    tenant_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool> {
    if role.needs_tenant() != tenant_id.is_some() {
        return Err(Error::invalid(
            "tenant_id",
            format!(
                "a {role} {} a tenant",
                if role.needs_tenant() {
                    "needs"
                } else {
                    "has no"
                }
            ),
        ));
    }
    if let Some(t) = tenant_id
        && !tenant_exists(conn, t)?
    {
        return Err(Error::invalid("tenant_id", "no such tenant"));
    }
    let n = conn.execute(
        "UPDATE accounts SET role = ?2, tenant_id = ?3 WHERE id = ?1",
        params![id, role.as_str(), tenant_id],
    )?;
    // Grants were given for the old role; a role change starts from none, and live sessions
    // (which carry the old role) end.
    conn.execute("DELETE FROM grants WHERE account_id = ?1", [id])?;
    revoke_sessions(conn, id, "role_changed", now)?;
    Ok(n == 1)
}

/// The last `n` password hashes, newest first (the current one included).
pub fn password_history(conn: &Connection, id: &str, n: usize) -> Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT hash FROM password_history WHERE account_id = ?1 ORDER BY set_at DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![id, n as i64], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Stores a new password hash (already checked against the policy and the history).
pub fn set_password(
    conn: &Connection,
    id: &str,
    hash: &str,
    must_change: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let t = to_millis(now);
    conn.execute(
        "UPDATE accounts SET password_hash = ?2, password_changed_at = ?3, must_change_password = ?4 WHERE id = ?1",
        params![id, hash, t, must_change],
    )?;
    conn.execute(
        "INSERT INTO password_history (account_id, hash, set_at) VALUES (?1, ?2, ?3)",
        params![id, hash, t],
    )?;
    // Keep only what the reuse rule needs.
    conn.execute(
        "DELETE FROM password_history WHERE account_id = ?1 AND set_at NOT IN \
         (SELECT set_at FROM password_history WHERE account_id = ?1 ORDER BY set_at DESC LIMIT ?2)",
        params![id, crate::auth::password::HISTORY as i64],
    )?;
    Ok(())
}

/// Stores an account's sealed TOTP secret (`None` removes it) and whether it is in force, with
/// the replay guard started afresh: enrolment stores it off until a first code confirms it, an
/// administrator's reset removes it, the demo and the test and bench fixtures enrol it directly.
pub fn set_totp(
    conn: &Connection,
    id: &str,
    sealed_secret: Option<&str>,
    enabled: bool,
) -> Result<()> {
    conn.execute(
        "UPDATE accounts SET totp_secret = ?2, totp_enabled = ?3, totp_last_step = NULL WHERE id = ?1",
        params![id, sealed_secret, enabled],
    )?;
    Ok(())
}

/// Whether the password must be changed now (flagged, or older than the policy allows).
pub fn password_change_due(acc: &Account, policy: &AccountSettings, now: DateTime<Utc>) -> bool {
    acc.must_change_password
        || acc
            .password_changed_at
            .is_none_or(|t| now - t > Duration::days(i64::from(policy.password_max_age_days)))
}

/// Why an active account may not log in any more (guest expired, dormant), if so.
pub fn lapse_reason(
    acc: &Account,
    policy: &AccountSettings,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    if acc.status != Status::Active {
        return None;
    }
    if acc.expires_at.is_some_and(|e| e <= now) {
        return Some("expired");
    }
    if now - acc.last_activity_at > Duration::days(i64::from(policy.dormant_after_days)) {
        return Some("dormant");
    }
    None
}

/// Disables every lapsed account (expired guests, dormant accounts). Returns (id, reason).
pub fn sweep(
    conn: &Connection,
    policy: &AccountSettings,
    now: DateTime<Utc>,
) -> Result<Vec<(String, &'static str)>> {
    let mut out = Vec::new();
    for acc in list(conn)? {
        if let Some(reason) = lapse_reason(&acc, policy, now) {
            disable(conn, &acc.id, reason, now)?;
            out.push((acc.id, reason));
        }
    }
    Ok(out)
}

/// Records a completed login; if a non-bootstrap administrator just completed one, disables the
/// bootstrap account(s). Returns the ids disabled that way.
pub fn record_login(conn: &Connection, acc: &Account, now: DateTime<Utc>) -> Result<Vec<String>> {
    conn.execute(
        "UPDATE accounts SET last_login_at = ?2, last_activity_at = ?2 WHERE id = ?1",
        params![acc.id, to_millis(now)],
    )?;
    let mut superseded = Vec::new();
    if acc.role == Role::Administrator && !acc.is_bootstrap {
        let mut st = conn.prepare(
            "SELECT id FROM accounts WHERE is_bootstrap = 1 AND status = 'active' AND id <> ?1",
        )?;
        let ids: Vec<String> = st
            .query_map([&acc.id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for id in ids {
            disable(conn, &id, "bootstrap_superseded", now)?;
            superseded.push(id);
        }
    }
    Ok(superseded)
}

/// Whether any administrator account exists (bootstrap runs only on an empty installation).
pub fn any_administrator(conn: &Connection) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM accounts WHERE role = 'administrator' LIMIT 1",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

// ---------------------------------------------------------------------------------- tenants

/// A tenant (partner establishment).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Tenant {
    /// Opaque id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Whether a tenant exists.
pub fn tenant_exists(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM tenants WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Creates a tenant. `id` defaults to a new UUID; given ids must be `[a-z0-9-]{1,64}`.
///
/// # Errors
/// [`Error::Invalid`] for a bad or duplicate id or name.
pub fn create_tenant(
    conn: &Connection,
    id: Option<&str>,
    name: &str,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Tenant> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("name", "1 to 200 characters"));
    }
    let id = match id {
        Some(i)
            if !i.is_empty()
                && i.len() <= 64
                && i.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            i.to_owned()
        }
        Some(_) => {
            return Err(Error::invalid(
                "id",
                "1 to 64 characters among a-z, 0-9 and '-'",
            ));
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let dup: bool = conn
        .query_row(
            "SELECT 1 FROM tenants WHERE id = ?1 OR name = ?2",
            params![id, name],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if dup {
        return Err(Error::invalid(
            "name",
            "a tenant with this id or name exists",
        ));
    }
    conn.execute(
        "INSERT INTO tenants (id, name, created_at, created_by) VALUES (?1, ?2, ?3, ?4)",
        params![id, name, to_millis(now), by],
    )?;
    Ok(Tenant {
        id,
        name: name.to_owned(),
        created_at: now,
    })
}

/// Every tenant, by name.
pub fn list_tenants(conn: &Connection) -> Result<Vec<Tenant>> {
    let mut st = conn.prepare("SELECT id, name, created_at FROM tenants ORDER BY name")?;
    let rows = st.query_map([], |r| {
        Ok(Tenant {
            id: r.get(0)?,
            name: r.get(1)?,
            created_at: from_millis(r.get(2)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ----------------------------------------------------------------------------------- grants

/// What a grant gives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum GrantScope {
    /// A whole tenant (technicians and researchers working for several establishments).
    Tenant {
        /// Tenant id.
        tenant_id: String,
    },
    /// One recording assigned to an interpreter.
    Recording {
        /// Tenant owning the recording.
        tenant_id: String,
        /// Recording id (opaque, from the store).
        recording_id: String,
    },
}

/// A stored grant.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Grant {
    /// Grant id.
    pub id: String,
    /// Holder.
    pub account_id: String,
    /// What it gives.
    #[serde(flatten)]
    pub scope: GrantScope,
    /// When given.
    pub created_at: DateTime<Utc>,
    /// By whom (account id).
    pub created_by: Option<String>,
}

/// Adds a grant after checking it fits the holder's role and tenant:
/// tenant grants go to technicians and researchers; recording grants go to interpreters, for a
/// recording of their own tenant only (no path crosses tenants).
///
/// # Errors
/// [`Error::Invalid`] when the grant does not fit.
pub fn add_grant(
    conn: &Connection,
    account_id: &str,
    scope: &GrantScope,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Grant> {
    let acc =
        get(conn, account_id)?.ok_or_else(|| Error::invalid("account_id", "no such account"))?;
    let (kind, tenant, recording) = match scope {
        GrantScope::Tenant { tenant_id } => {
            if !matches!(acc.role, Role::Technician | Role::Researcher) {
                return Err(Error::invalid(
                    "kind",
                    format!(
                        "tenant grants are for technicians and researchers, not a {}",
                        acc.role
                    ),
                ));
            }
            ("tenant", tenant_id.as_str(), "")
        }
        GrantScope::Recording {
            tenant_id,
            recording_id,
        } => {
            if acc.role != Role::Interpreter {
                return Err(Error::invalid(
                    "kind",
                    format!(
                        "recording assignments are for interpreters, not a {}",
                        acc.role
                    ),
                ));
            }
            if acc.tenant_id.as_deref() != Some(tenant_id.as_str()) {
                return Err(Error::invalid(
                    "tenant_id",
                    "an interpreter is assigned recordings of their own tenant only",
                ));
            }
            if recording_id.is_empty()
                || recording_id.len() > 128
                || recording_id.chars().any(char::is_control)
            {
                return Err(Error::invalid(
                    "recording_id",
                    "1 to 128 printable characters",
                ));
            }
            ("recording", tenant_id.as_str(), recording_id.as_str())
        }
    };
    if !tenant_exists(conn, tenant)? {
        return Err(Error::invalid("tenant_id", "no such tenant"));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let n = conn.execute(
        "INSERT INTO grants (id, account_id, kind, tenant_id, recording_id, created_at, created_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        params![id, account_id, kind, tenant, recording, to_millis(now), by],
    )?;
    if n == 0 {
        return Err(Error::invalid("grant", "already granted"));
    }
    Ok(Grant {
        id,
        account_id: account_id.to_owned(),
        scope: scope.clone(),
        created_at: now,
        created_by: by.map(str::to_owned),
    })
}

/// Removes a grant. Returns its holder when it existed.
pub fn remove_grant(conn: &Connection, grant_id: &str) -> Result<Option<String>> {
    let holder: Option<String> = conn
        .query_row(
            "SELECT account_id FROM grants WHERE id = ?1",
            [grant_id],
            |r| r.get(0),
        )
        .optional()?;
    conn.execute("DELETE FROM grants WHERE id = ?1", [grant_id])?;
    Ok(holder)
}

/// An account's grants.
pub fn grants_of(conn: &Connection, account_id: &str) -> Result<Vec<Grant>> {
    let mut st = conn.prepare(
        "SELECT id, account_id, kind, tenant_id, recording_id, created_at, created_by FROM grants \
         WHERE account_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = st.query_map([account_id], |r| {
        let kind: String = r.get(2)?;
        let tenant_id: String = r.get(3)?;
        let recording_id: String = r.get(4)?;
        Ok(Grant {
            id: r.get(0)?,
            account_id: r.get(1)?,
            scope: if kind == "recording" {
                GrantScope::Recording {
                    tenant_id,
                    recording_id,
                }
            } else {
                GrantScope::Tenant { tenant_id }
            },
            created_at: from_millis(r.get(5)?),
            created_by: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Tenants an account may act in: its home tenant plus tenant grants.
pub fn effective_tenants(acc: &Account, grants: &[Grant]) -> BTreeSet<String> {
    let mut t: BTreeSet<String> = acc.tenant_id.iter().cloned().collect();
    for g in grants {
        if let GrantScope::Tenant { tenant_id } = &g.scope {
            t.insert(tenant_id.clone());
        }
    }
    t
}

// ---------------------------------------------------------------------------- name exceptions

/// A recorded exception to the generic-name rule.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NameException {
    /// The (generic) username allowed.
    pub username: String,
    /// The administrator's written reason.
    pub reason: String,
    /// Who recorded it (account id).
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Records an exception. The reason must say why (at least 10 characters).
///
/// # Errors
/// [`Error::Invalid`] for a short reason or a bad username.
pub fn add_name_exception(
    conn: &Connection,
    username: &str,
    reason: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<NameException> {
    let username = normalise_username(username);
    if !valid_username(&username) {
        return Err(Error::invalid("username", "not a valid username"));
    }
    let reason = reason.trim();
    if reason.chars().count() < 10 {
        return Err(Error::invalid(
            "reason",
            "write the reason (at least 10 characters)",
        ));
    }
    conn.execute(
        "INSERT INTO name_exceptions (username, reason, created_by, created_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (username) DO UPDATE SET reason = excluded.reason, created_by = excluded.created_by, created_at = excluded.created_at",
        params![username, reason, by, to_millis(now)],
    )?;
    Ok(NameException {
        username,
        reason: reason.to_owned(),
        created_by: by.to_owned(),
        created_at: now,
    })
}

/// Every exception.
pub fn list_name_exceptions(conn: &Connection) -> Result<Vec<NameException>> {
    let mut st = conn.prepare(
        "SELECT username, reason, created_by, created_at FROM name_exceptions ORDER BY username",
    )?;
    let rows = st.query_map([], |r| {
        Ok(NameException {
            username: r.get(0)?,
            reason: r.get(1)?,
            created_by: r.get(2)?,
            created_at: from_millis(r.get(3)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ------------------------------------------------------------------------------ access review

/// One line of the access review (security plan §4.6).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReviewRow {
    /// Account id.
    pub account_id: String,
    /// Username.
    pub username: String,
    /// "First Last".
    pub full_name: String,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Home tenant.
    pub tenant_id: Option<String>,
    /// Grants, as `tenant:<id>` or `recording:<tenant>/<recording>`.
    pub grants: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// Why disabled.
    pub disabled_reason: Option<String>,
    /// Bootstrap account.
    pub bootstrap: bool,
    /// Guest expiry.
    pub guest_expires_at: Option<DateTime<Utc>>,
    /// TOTP enrolled.
    pub mfa_enrolled: bool,
    /// Linked identity-provider subjects, as `issuer#subject`.
    pub federated: Vec<String>,
    /// Last completed login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Age of the password in whole days.
    pub password_age_days: Option<i64>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The access review: every account with role, tenant, grants, status, last login, password age.
pub fn access_review(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<ReviewRow>> {
    let mut rows = Vec::new();
    for a in list(conn)? {
        let grants = grants_of(conn, &a.id)?
            .into_iter()
            .map(|g| match g.scope {
                GrantScope::Tenant { tenant_id } => format!("tenant:{tenant_id}"),
                GrantScope::Recording {
                    tenant_id,
                    recording_id,
                } => format!("recording:{tenant_id}/{recording_id}"),
            })
            .collect();
        let mut st = conn.prepare(
            "SELECT issuer, subject FROM oidc_links WHERE account_id = ?1 ORDER BY issuer",
        )?;
        let federated = st
            .query_map([&a.id], |r| {
                Ok(format!(
                    "{}#{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.push(ReviewRow {
            account_id: a.id,
            username: a.username,
            full_name: format!("{} {}", a.first_name, a.last_name),
            email: a.email,
            role: a.role,
            tenant_id: a.tenant_id,
            grants,
            status: a.status.as_str().to_owned(),
            disabled_reason: a.disabled_reason,
            bootstrap: a.is_bootstrap,
            guest_expires_at: a.expires_at,
            mfa_enrolled: a.totp_enabled,
            federated,
            last_login_at: a.last_login_at,
            password_age_days: a.password_changed_at.map(|t| (now - t).num_days()),
            created_at: a.created_at,
        });
    }
    Ok(rows)
}

/// The access review as CSV (RFC 4180 quoting; grants joined with `;`).
pub fn review_csv(rows: &[ReviewRow]) -> String {
    fn q(s: &str) -> String {
        // Neutralise spreadsheet formulas as well as quoting (CSV injection).
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let fmt_t = |t: &Option<DateTime<Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    let mut out = String::from(
        "account_id,username,full_name,email,role,tenant_id,grants,status,disabled_reason,bootstrap,guest_expires_at,mfa_enrolled,federated,last_login_at,password_age_days,created_at\n",
    );
    for r in rows {
        let fields = [
            q(&r.account_id),
            q(&r.username),
            q(&r.full_name),
            q(&r.email),
            r.role.as_str().to_owned(),
            q(r.tenant_id.as_deref().unwrap_or("")),
            q(&r.grants.join(";")),
            r.status.clone(),
            q(r.disabled_reason.as_deref().unwrap_or("")),
            r.bootstrap.to_string(),
            fmt_t(&r.guest_expires_at),
            r.mfa_enrolled.to_string(),
            q(&r.federated.join(";")),
            fmt_t(&r.last_login_at),
            r.password_age_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            fmt_t(&Some(r.created_at)),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
