//! Tamper-evident audit-trail storage (issue 7; security plan §4.9 and §6).
//!
//! Every action on health data is recorded as an [`AuditEvent`] — who ([`Actor`]), from where
//! ([`Origin`]), what ([`AuditAction`], a closed vocabulary with stable codes), on which ids
//! (tenant, recording, [`ResourceRef`]), with which [`Outcome`] and, for refusals, which
//! [`Reason`]. Events hold ids and codes only: the builder validates every id as an
//! [`OpaqueId`], so free text and health data cannot ride along.
//!
//! ```text
//!  service / CLI ──append──▶ AuditAppender ──batch──▶ AuditLog ──one transaction──▶ SQLite (WAL)
//!   (enqueue only)           (writer thread)          │  events: seq, fields, prev_hash, hash
//!                                                     │  checkpoints: Ed25519 every N events / hour
//!                                                     │  seal: Ed25519 over the head, every batch
//!  theta audit verify ──▶ AuditReader::verify ───────▶ first modified / deleted / inserted /
//!  theta audit export ──▶ AuditReader::export          reordered event, bad signatures, truncation
//! ```
//!
//! * **Chain.** Each event stores the SHA-256 of the previous event's canonical encoding and its
//!   own (byte layout in `engine/src/audit/FORMAT.md`).
//! * **Signatures.** A checkpoint signed with an Ed25519 key kept apart from the data
//!   ([`AuditSigningKey`], its own 0600 file, tagged with the environment) is written at least
//!   every [`AuditLogOptions::checkpoint_every_events`] events and every
//!   [`AuditLogOptions::checkpoint_interval`]; the head is re-signed (the *seal*) by every
//!   batch, so cutting the tail after the last checkpoint is detected too. The verify key is
//!   published beside the log ([`AuditVerifyKeys::published_path`]).
//! * **Concurrency.** Within a process one [`AuditAppender`] batches events on a writer thread;
//!   across processes (service and CLI) each batch is one `BEGIN IMMEDIATE` transaction that reads
//!   the head inside it, so the chain stays linear. A writer refuses to append to a log whose head
//!   no longer matches its seal ([`AuditError::HeadMismatch`]).
//! * **Retention.** At least 365 days ([`Retention`]); [`AuditLog::purge_expired`] verifies the
//!   part it deletes, leaves a signed *anchor* checkpoint over the last purged event and records
//!   an `audit.purge` event.
//! * **Export.** [`AuditReader::export`] streams JSON Lines or CSV filtered by time, actor,
//!   recording and tenant. Callers record the request itself as an `audit.export` event.
//!
//! ```
//! use theta_engine::audit::*;
//! # let dir = tempfile::tempdir()?; let keys = tempfile::tempdir()?;
//! let env = Environment::try_new("dev")?;
//! let key = AuditSigningKey::load_or_generate(&keys.path().join("audit.key"), &env)?;
//! let log = AuditLog::open_with_key(&dir.path().join("audit.db"), key, AuditLogOptions::default())?;
//! let appender = AuditAppender::spawn(log, AppenderOptions::default())?;
//!
//! appender.append(
//!     AuditEvent::builder(AuditAction::RecordingReadWindow)
//!         .actor_account("acc-42")
//!         .session("s-1")
//!         .client_addr("192.0.2.10".parse()?)
//!         .tenant("chu-a")
//!         .recording("rec-0001")
//!         .build()?,
//! )?;
//! appender.flush()?; // durable from here
//!
//! let mut reader = AuditReader::open(&dir.path().join("audit.db"))?;
//! let trusted = AuditVerifyKeys::load(&AuditVerifyKeys::published_path(&dir.path().join("audit.db")))?;
//! assert!(reader.verify(&trusted)?.is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod appender;
mod canonical;
mod chain;
mod error;
mod event;
mod export;
mod ids;
mod keys;
mod log;
mod schema;
mod verify;

#[cfg(test)]
mod tests;

#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

pub use appender::{AppenderOptions, AppenderStats, AuditAppender};
pub use canonical::CheckpointKind;
pub use chain::CheckpointInfo;
pub use error::{AuditError, Result};
pub use event::{
    Actor, ActorKind, AuditAction, AuditEvent, AuditEventBuilder, Origin, Outcome, Reason,
    ResourceKind, ResourceRef,
};
pub use export::{EXPORT_COLUMNS, ExportFilter, ExportFormat, ExportSummary};
pub use ids::{
    Environment, MAX_ID_LEN, MAX_USER_AGENT_LEN, MAX_USERNAME_CHARS, OpaqueId, UserAgent, Username,
};
pub use keys::{AuditSigningKey, AuditVerifyKey, AuditVerifyKeys, KeyId};
pub use log::{
    AppendReceipt, AuditConfig, AuditLog, AuditLogOptions, PurgeReport, Requester, Retention,
};
pub use verify::{ChainFinding, SignatureFinding, VerifyReport};

/// A read-only handle for verifying and exporting a log (no key needed). Readers never block
/// writers (WAL) and see one consistent snapshot per call.
pub struct AuditReader {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for AuditReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AuditReader {
    /// Opens the log at `path` read-only.
    ///
    /// # Errors
    /// [`AuditError::Sqlite`] if it cannot be opened; [`AuditError::Format`] if it is not an
    /// audit log of a known version.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        schema::check_version(&conn, path)?;
        Ok(AuditReader {
            conn,
            path: path.to_owned(),
        })
    }

    /// Verifies the whole log against the trusted verify keys: every event's hash and link, every
    /// checkpoint signature, the seal over the head. Reports the first departure in chain order
    /// with its exact sequence number and kind.
    ///
    /// # Errors
    /// Database errors only; tampering is reported in the [`VerifyReport`].
    pub fn verify(&mut self, trusted: &AuditVerifyKeys) -> Result<VerifyReport> {
        let tx = self.conn.transaction()?;
        let r = verify::verify_connection(&tx, &self.path, trusted, None);
        tx.finish()?;
        r
    }

    /// Streams the events matching `filter` to `out` in (time, seq) order.
    ///
    /// # Errors
    /// [`AuditError::Export`] if writing fails; [`AuditError::Sqlite`] on database failure.
    pub fn export<W: Write>(
        &mut self,
        filter: &ExportFilter,
        format: ExportFormat,
        mut out: W,
    ) -> Result<ExportSummary> {
        let tx = self.conn.transaction()?;
        let r = export::export_to(&tx, filter, format, &mut out);
        tx.finish()?;
        r
    }

    /// The environment tag the log belongs to.
    ///
    /// # Errors
    /// [`AuditError::Format`] if the metadata is damaged.
    pub fn environment(&self) -> Result<String> {
        Ok(schema::read_meta(&self.conn, &self.path)?.environment)
    }

    /// Number of events stored.
    ///
    /// # Errors
    /// Database errors.
    pub fn len(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Whether the log holds no event.
    ///
    /// # Errors
    /// Database errors.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// Verifies the log at `path`. With a non-empty `pinned` set (keys the verifier holds out of
/// band — configuration, escrow) only those keys are trusted; with an empty set the keys
/// published beside the log are used, which only proves integrity against someone who could not
/// also replace that file.
///
/// # Errors
/// As [`AuditReader::open`], [`AuditVerifyKeys::load`] and [`AuditReader::verify`].
pub fn verify_log(path: &Path, pinned: &AuditVerifyKeys) -> Result<VerifyReport> {
    let trusted = if pinned.keys().is_empty() {
        AuditVerifyKeys::load(&AuditVerifyKeys::published_path(path))?
    } else {
        pinned.clone()
    };
    AuditReader::open(path)?.verify(&trusted)
}
