-- Theta service schema, version 2: the security incident register (security plan §6) and the
-- login locks / address throttles set by the incident detectors.
-- Portable SQL (SQLite and PostgreSQL); timestamps in ms since the Unix epoch (UTC).

-- priority: 1 (notify within 12 h), 2 (24 h), 3 (72 h).
-- status: open, notified, contained, closed.
CREATE TABLE incidents (
    id           TEXT PRIMARY KEY,
    priority     INTEGER NOT NULL,
    category     TEXT NOT NULL,
    status       TEXT NOT NULL,
    tenant_id    TEXT,
    summary      TEXT NOT NULL,
    detected_at  BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    deadline_at  BIGINT NOT NULL,
    notified_at  BIGINT,
    contained_at BIGINT,
    closed_at    BIGINT,
    detections   BIGINT NOT NULL
);
CREATE INDEX incidents_status ON incidents (status, detected_at);

-- What happened, in order: detections, automatic responses, notifications, status changes, notes.
CREATE TABLE incident_timeline (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, at);

-- Indicators of compromise: accounts, attempted user names, client addresses, tenants,
-- recordings, other resources (ids only).
CREATE TABLE incident_indicators (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    hits        BIGINT NOT NULL,
    PRIMARY KEY (incident_id, kind, value)
);
CREATE INDEX incident_indicators_value ON incident_indicators (kind, value);

-- One row per incident and partner webhook.
CREATE TABLE incident_notifications (
    incident_id  TEXT NOT NULL REFERENCES incidents (id),
    target       TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    delivered_at BIGINT,
    last_error   TEXT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (incident_id, target)
);

-- scope: 'account' (key: account id, or 'u:' + attempted user name) or 'address'.
CREATE TABLE login_locks (
    scope        TEXT NOT NULL,
    lock_key     TEXT NOT NULL,
    level        INTEGER NOT NULL,
    locked_until BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, lock_key)
);
