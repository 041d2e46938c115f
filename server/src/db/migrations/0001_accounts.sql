-- Theta service schema, version 1: tenants, accounts, credentials, sessions, grants.
-- Portable SQL (SQLite and PostgreSQL): TEXT ids (UUIDs), BIGINT timestamps in milliseconds
-- since the Unix epoch (UTC), INTEGER 0/1 flags, no AUTOINCREMENT, no engine-specific types.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    created_by  TEXT
);

CREATE TABLE accounts (
    id                   TEXT PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    first_name           TEXT NOT NULL,
    last_name            TEXT NOT NULL,
    email                TEXT NOT NULL UNIQUE,
    role                 TEXT NOT NULL,
    tenant_id            TEXT REFERENCES tenants (id),
    status               TEXT NOT NULL,
    disabled_reason      TEXT,
    is_bootstrap         INTEGER NOT NULL DEFAULT 0,
    is_guest             INTEGER NOT NULL DEFAULT 0,
    expires_at           BIGINT,
    password_hash        TEXT,
    password_changed_at  BIGINT,
    must_change_password INTEGER NOT NULL DEFAULT 1,
    totp_secret          TEXT,   -- sealed (AES-256-GCM, see secrets.rs), never plain
    totp_enabled         INTEGER NOT NULL DEFAULT 0,
    totp_last_step       BIGINT,
    created_at           BIGINT NOT NULL,
    created_by           TEXT,
    last_login_at        BIGINT,
    last_activity_at     BIGINT NOT NULL
);

CREATE TABLE password_history (
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    hash        TEXT NOT NULL,
    set_at      BIGINT NOT NULL
);
CREATE INDEX password_history_account ON password_history (account_id, set_at);

CREATE TABLE recovery_codes (
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    code_hash   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT,
    PRIMARY KEY (account_id, code_hash)
);

-- stage: 'mfa' (password checked, second factor pending) or 'full'.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    csrf_hash     TEXT,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    stage         TEXT NOT NULL,
    method        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoked_why   TEXT,
    mfa_failures  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_account ON sessions (account_id);

-- kind 'tenant': access to a whole tenant (technicians, researchers);
-- kind 'recording': one recording of a tenant assigned to an interpreter.
-- recording_id is '' for tenant grants so the UNIQUE constraint works on both back ends.
CREATE TABLE grants (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    kind          TEXT NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    recording_id  TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    created_by    TEXT,
    UNIQUE (account_id, kind, tenant_id, recording_id)
);

-- A generic username allowed anyway, with the administrator's written reason.
CREATE TABLE name_exceptions (
    username    TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- An identity provider's user, linked to one nominative account.
CREATE TABLE oidc_links (
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

-- An authorisation request in flight; consumed once by the callback.
CREATE TABLE oidc_pending (
    state_hash    TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    browser_hash  TEXT NOT NULL,
    expires_at    BIGINT NOT NULL
);
