//! SQLite schema of the audit log and its versioned migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Each migration runs in its own
//! `BEGIN IMMEDIATE` transaction that re-reads the version first, so two processes opening a new
//! file at once apply it exactly once. A file from a newer build (higher version) is refused.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::error::{AuditError, Result};
use super::ids::Environment;

/// Migrations in order; index `i` takes the schema from version `i` to `i + 1`. Never edit a
/// released entry: add a new one.
const MIGRATIONS: &[&str] = &[
    // v1: events, checkpoints, seal, metadata; append-only guards.
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE events (
    seq           INTEGER PRIMARY KEY,
    v             INTEGER NOT NULL,
    ts_ms         INTEGER NOT NULL,
    action        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    actor_kind    TEXT NOT NULL,
    actor         TEXT,
    session       TEXT,
    client_addr   BLOB,
    user_agent    TEXT,
    tenant        TEXT,
    recording     TEXT,
    resource_kind TEXT,
    resource_id   TEXT,
    reason        TEXT,
    prev_hash     BLOB NOT NULL,
    hash          BLOB NOT NULL
) STRICT;
-- Time-range exports walk this index in (ts_ms, seq) order without sorting.
CREATE INDEX events_ts ON events (ts_ms);

CREATE TABLE checkpoints (
    id        INTEGER PRIMARY KEY,
    kind      INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    hash      BLOB NOT NULL,
    time_ms   INTEGER NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL
) STRICT;
CREATE INDEX checkpoints_seq ON checkpoints (kind, seq);

-- The rolling signature of the chain head (one row, replaced by every batch).
CREATE TABLE seal (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       INTEGER NOT NULL,
    hash      BLOB NOT NULL,
    time_ms   INTEGER NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL
) STRICT;

-- Append-only guards against accidental writes by other code. They are not the security
-- boundary (anyone with write access can drop them); the hash chain and signatures are.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
WHEN (SELECT value FROM meta WHERE key = 'purge_in_progress') IS NULL
BEGIN SELECT RAISE(ABORT, 'audit events are append-only (use purge)'); END;
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
WHEN (SELECT value FROM meta WHERE key = 'purge_in_progress') IS NULL
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only (use purge)'); END;
"#,
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Identity of a log, fixed at creation and covered by every signature.
#[derive(Clone, Debug)]
pub(crate) struct LogMeta {
    pub(crate) log_id: [u8; 16],
    pub(crate) environment: String,
    pub(crate) created_ms: i64,
}

fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Brings a writable connection to the current schema and creates the metadata of a new log
/// (owned by `environment`). Returns the log's metadata.
pub(crate) fn migrate(
    conn: &mut Connection,
    path: &Path,
    environment: &Environment,
) -> Result<LogMeta> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let v = user_version(&tx)?;
        if v > SCHEMA_VERSION {
            return Err(AuditError::format(
                path,
                format!("schema version {v} is newer than this build ({SCHEMA_VERSION})"),
            ));
        }
        if v == SCHEMA_VERSION {
            if read_meta_opt(&tx)?.is_none() {
                let mut id = [0u8; 16];
                getrandom::fill(&mut id).map_err(|e| {
                    AuditError::format(path, format!("no OS randomness for the log id: {e}"))
                })?;
                let now = chrono::Utc::now().timestamp_millis();
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('log_id', ?1), ('environment', ?2), ('created_ms', ?3)",
                    params![hex::encode(id), environment.as_str(), now.to_string()],
                )?;
            }
            tx.commit()?;
            break;
        }
        let idx =
            usize::try_from(v).map_err(|_| AuditError::format(path, "negative schema version"))?;
        tx.execute_batch(MIGRATIONS[idx])?;
        tx.pragma_update(None, "user_version", v + 1)?;
        tx.commit()?;
    }
    read_meta(conn, path)
}

/// Checks that a connection (read-only included) holds a log of a known schema version.
pub(crate) fn check_version(conn: &Connection, path: &Path) -> Result<()> {
    let v = user_version(conn)?;
    if v == 0 {
        return Err(AuditError::format(path, "not an audit log (no schema)"));
    }
    if v > SCHEMA_VERSION {
        return Err(AuditError::format(
            path,
            format!("schema version {v} is newer than this build ({SCHEMA_VERSION})"),
        ));
    }
    Ok(())
}

fn read_meta_opt(conn: &Connection) -> Result<Option<(String, String, String)>> {
    let get = |k: &str| -> Result<Option<String>> {
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
            .optional()?)
    };
    Ok(
        match (get("log_id")?, get("environment")?, get("created_ms")?) {
            (Some(a), Some(b), Some(c)) => Some((a, b, c)),
            _ => None,
        },
    )
}

/// Reads the log's metadata.
pub(crate) fn read_meta(conn: &Connection, path: &Path) -> Result<LogMeta> {
    let (id_hex, environment, created) =
        read_meta_opt(conn)?.ok_or_else(|| AuditError::format(path, "metadata missing"))?;
    let mut log_id = [0u8; 16];
    hex::decode_to_slice(&id_hex, &mut log_id)
        .map_err(|_| AuditError::format(path, "metadata `log_id` is not 32 hex digits"))?;
    let created_ms = created
        .parse()
        .map_err(|_| AuditError::format(path, "metadata `created_ms` is not an integer"))?;
    Ok(LogMeta {
        log_id,
        environment,
        created_ms,
    })
}

/// Sets the durability and concurrency settings of a writing connection.
pub(crate) fn configure_writer(conn: &Connection, busy: std::time::Duration) -> Result<()> {
    conn.busy_timeout(busy)?;
    // WAL: readers (verify, export) never block the writer. FULL: a committed batch survives a
    // power cut, which `flush` promises.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(AuditError::Format {
            path: conn.path().unwrap_or_default().into(),
            reason: format!("could not enable WAL (journal_mode = {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}
