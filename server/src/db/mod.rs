//! The embedded account database (SQLite, bundled) and its versioned migrations.
//!
//! Migrations are plain SQL files under `db/migrations/`, numbered, applied in order inside a
//! transaction and recorded in `schema_migrations`. They use only portable SQL so a PostgreSQL
//! back end can run the same files.
//!
//! `rusqlite::Connection` is not `Sync`, so the connection sits behind a mutex and async callers
//! go through [`Db::call`], which runs the closure on tokio's blocking pool.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::error::{Error, Result};

/// Numbered migrations: (version, name, SQL). Never edit a released one; add a new file.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "accounts", include_str!("migrations/0001_accounts.sql")),
    (
        2,
        "incidents",
        include_str!("migrations/0002_incidents.sql"),
    ),
    (3, "exports", include_str!("migrations/0003_exports.sql")),
    (
        4,
        "export_authors_retention",
        include_str!("migrations/0004_export_authors_retention.sql"),
    ),
];

/// A handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the database file and applies pending migrations.
    ///
    /// # Errors
    /// [`Error::Db`] or [`Error::Migration`].
    pub fn open(path: &Path) -> Result<Db> {
        let fresh = !path.exists();
        let conn = Connection::open(path)?;
        if fresh {
            restrict_permissions(path)?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::init(conn)
    }

    /// An in-memory database (tests).
    ///
    /// # Errors
    /// [`Error::Db`] or [`Error::Migration`].
    pub fn open_in_memory() -> Result<Db> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Db> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    ///
    /// # Errors
    /// Whatever `f` returns, or [`Error::Task`] if the task died.
    pub async fn call<F, R, E>(&self, f: F) -> std::result::Result<R, E>
    where
        F: FnOnce(&mut Connection) -> std::result::Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means a closure panicked mid-transaction; SQLite rolled it back,
            // so the connection itself is still consistent.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|_| E::from(Error::Task))?
    }

    /// Runs `f` with the connection on the current thread (command line, start-up).
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn call_blocking<F, R, E>(&self, f: F) -> std::result::Result<R, E>
    where
        F: FnOnce(&mut Connection) -> std::result::Result<R, E>,
    {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        self.call(|c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(Error::from)
        })
        .await
        .is_ok()
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(Error::Migration {
            version: current,
            reason: format!("database is newer than this binary (knows up to {newest})"),
        });
    }
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql).map_err(|e| Error::Migration {
            version,
            reason: e.to_string(),
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, chrono::Utc::now().timestamp_millis()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(path, e))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_newer_databases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::open(&path).unwrap();
        let n: i64 = db
            .call_blocking(|c| {
                c.query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
                    .map_err(Error::from)
            })
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
        drop(db);
        // Re-opening applies nothing new.
        let db = Db::open(&path).unwrap();
        db.call_blocking(|c| {
            c.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'x', 0)",
                [],
            )
            .map_err(Error::from)
        })
        .unwrap();
        drop(db);
        let err = Db::open(&path).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
