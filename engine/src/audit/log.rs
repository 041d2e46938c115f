//! The writer: appends batches of events in one SQLite write transaction each, chains them,
//! signs checkpoints and the head seal, and purges past the retention period.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Months, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::canonical::{CheckpointKind, EVENT_VERSION, Hash, encode_event, event_fields, sha256};
use super::chain::{
    CheckpointInfo, StoredCheckpoint, read_head, read_last_checkpoint, read_seal, seq_sql,
    write_checkpoint, write_seal,
};
use super::error::{AuditError, Result};
use super::event::{Actor, AuditAction, AuditEvent, Origin, ResourceKind, ResourceRef};
use super::ids::{Environment, OpaqueId};
use super::keys::{AuditSigningKey, AuditVerifyKeys};
use super::schema::{LogMeta, configure_writer, migrate};
use super::verify::{VerifyReport, verify_connection};

/// How long audit events are kept. The security plan asks for at least one year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    days: u32,
}

impl Retention {
    /// The shortest retention accepted, in days.
    pub const MIN_DAYS: u32 = 365;

    /// A retention of `days` days.
    ///
    /// # Errors
    /// [`AuditError::InvalidConfig`] below [`Retention::MIN_DAYS`].
    pub fn days(days: u32) -> Result<Self> {
        if days < Self::MIN_DAYS {
            return Err(AuditError::InvalidConfig {
                setting: "retention_days",
                reason: format!(
                    "{days} days is below the one-year minimum ({} days)",
                    Self::MIN_DAYS
                ),
            });
        }
        Ok(Retention { days })
    }

    /// The retention in days.
    pub fn as_days(self) -> u32 {
        self.days
    }

    /// Events strictly older than this instant may be purged at `now`: `now - days`, but never
    /// later than one calendar year before `now`, so 365 days in a leap year still keeps a year.
    pub fn cutoff(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let by_days = now - TimeDelta::days(i64::from(self.days));
        let by_year = now
            .checked_sub_months(Months::new(12))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        by_days.min(by_year)
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            days: Self::MIN_DAYS,
        }
    }
}

/// Tuning of an [`AuditLog`].
#[derive(Clone, Debug)]
pub struct AuditLogOptions {
    /// A periodic checkpoint is signed at least every this many events (default 1000).
    pub checkpoint_every_events: u64,
    /// …and at the first append once this much time has passed since the last one (default 1 h).
    pub checkpoint_interval: Duration,
    /// Retention of events (default and minimum 365 days).
    pub retention: Retention,
    /// How long a writer waits for another process's write transaction (default 30 s).
    pub busy_timeout: Duration,
}

impl Default for AuditLogOptions {
    fn default() -> Self {
        AuditLogOptions {
            checkpoint_every_events: 1000,
            checkpoint_interval: Duration::from_secs(3600),
            retention: Retention::default(),
            busy_timeout: Duration::from_secs(30),
        }
    }
}

impl AuditLogOptions {
    /// Sets [`checkpoint_every_events`](Self::checkpoint_every_events).
    pub fn with_checkpoint_every_events(mut self, n: u64) -> Self {
        self.checkpoint_every_events = n;
        self
    }

    /// Sets [`checkpoint_interval`](Self::checkpoint_interval).
    pub fn with_checkpoint_interval(mut self, d: Duration) -> Self {
        self.checkpoint_interval = d;
        self
    }

    /// Sets [`retention`](Self::retention).
    pub fn with_retention(mut self, r: Retention) -> Self {
        self.retention = r;
        self
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    pub fn with_busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = d;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.checkpoint_every_events == 0 {
            return Err(AuditError::InvalidConfig {
                setting: "checkpoint_every_events",
                reason: "must be at least 1".into(),
            });
        }
        if self.checkpoint_interval.is_zero() {
            return Err(AuditError::InvalidConfig {
                setting: "checkpoint_interval",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }
}

/// Where the log and its keys live, as read from the service configuration.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The SQLite file of the log.
    pub log_path: PathBuf,
    /// The signing key file (mode 0600, not in the log's directory).
    pub signing_key_path: PathBuf,
    /// Where the verify key is published (default: [`AuditVerifyKeys::published_path`]).
    pub verify_key_path: Option<PathBuf>,
    /// The environment the log belongs to; the key must carry the same tag.
    pub environment: Environment,
    /// Tuning.
    pub options: AuditLogOptions,
}

/// What an append stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendReceipt {
    /// Sequence number of the first event of the batch (head + 1 for an empty batch).
    pub first_seq: u64,
    /// Number of events stored.
    pub count: u64,
    /// Periodic checkpoints signed by this append.
    pub checkpoints: u32,
}

impl AppendReceipt {
    /// Sequence number of the last event stored (the head before the call for an empty batch).
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.count - 1
    }
}

/// Who asked for an administrative operation on the log itself (a purge).
#[derive(Clone, Debug)]
pub struct Requester {
    /// The actor.
    pub actor: Actor,
    /// Their session, if any.
    pub session: Option<OpaqueId>,
    /// Where from.
    pub origin: Origin,
}

/// What a purge did.
#[derive(Clone, Debug)]
pub struct PurgeReport {
    /// Events older than this were eligible.
    pub cutoff: DateTime<Utc>,
    /// Number of events deleted.
    pub purged: u64,
    /// The signed anchor left at the last purged event (`None` if nothing was purged).
    pub anchor: Option<CheckpointInfo>,
    /// Sequence number of the `audit.purge` event recording the operation.
    pub purge_event_seq: u64,
}

/// A writable audit log (one SQLite connection). Several `AuditLog`s — in one process or in
/// several — may append to the same file: each batch is one `BEGIN IMMEDIATE` transaction that
/// reads the chain head inside it, so the chain stays linear.
pub struct AuditLog {
    conn: Connection,
    path: PathBuf,
    key: AuditSigningKey,
    trusted: AuditVerifyKeys,
    meta: LogMeta,
    opts: AuditLogOptions,
    /// The seal this handle last wrote or checked, to skip re-verifying its signature.
    known_seal: Option<StoredCheckpoint>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("environment", &self.meta.environment)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating if needed) the log of `config`, loading its signing key and publishing the
    /// verify key.
    ///
    /// # Errors
    /// [`AuditError::Key`] if the key file is missing, readable by others, or stored in the log's
    /// own directory; [`AuditError::EnvironmentMismatch`] if the key's tag is not
    /// `config.environment`; and the errors of [`open_with_key`](Self::open_with_key).
    pub fn open(config: &AuditConfig) -> Result<Self> {
        let key = AuditSigningKey::load(&config.signing_key_path)?;
        if key.environment() != &config.environment {
            return Err(AuditError::EnvironmentMismatch {
                key: key.environment().to_string(),
                log: config.environment.to_string(),
            });
        }
        let key_dir = parent_dir(&config.signing_key_path)?;
        let log_dir = parent_dir(&config.log_path)?;
        if key_dir == log_dir {
            return Err(AuditError::Key {
                path: config.signing_key_path.clone(),
                reason: "the signing key must not be stored in the log's directory".into(),
            });
        }
        let mut log = Self::open_with_key(&config.log_path, key, config.options.clone())?;
        if let Some(p) = &config.verify_key_path {
            AuditVerifyKeys::publish(p, &log.key.verify_key())?;
            log.trusted.insert(log.key.verify_key());
        }
        Ok(log)
    }

    /// Opens (creating if needed) the log at `path` with an already loaded key, and publishes the
    /// verify key beside it.
    ///
    /// # Errors
    /// [`AuditError::EnvironmentMismatch`] if the log belongs to another environment than the key;
    /// [`AuditError::Format`] for a file that is not an audit log of a known version;
    /// [`AuditError::HeadMismatch`] if the chain head no longer matches its signed seal;
    /// [`AuditError::InvalidConfig`] for bad options.
    pub fn open_with_key(path: &Path, key: AuditSigningKey, opts: AuditLogOptions) -> Result<Self> {
        opts.validate()?;
        let mut conn = Connection::open(path)?;
        // Switching a new file to WAL and creating its schema need the write lock; SQLite answers
        // SQLITE_BUSY at once (without the busy handler) when several processes or threads open
        // the same new log together, so retry within the busy time-out.
        let deadline = std::time::Instant::now() + opts.busy_timeout;
        let meta = loop {
            let r = configure_writer(&conn, opts.busy_timeout)
                .and_then(|()| migrate(&mut conn, path, key.environment()));
            match r {
                Err(AuditError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                r => break r?,
            }
        };
        if meta.environment != key.environment().as_str() {
            return Err(AuditError::EnvironmentMismatch {
                key: key.environment().to_string(),
                log: meta.environment.clone(),
            });
        }
        let published = AuditVerifyKeys::published_path(path);
        AuditVerifyKeys::publish(&published, &key.verify_key())?;
        let mut trusted = AuditVerifyKeys::load(&published)?;
        trusted.insert(key.verify_key());
        let mut log = AuditLog {
            conn,
            path: path.to_owned(),
            key,
            trusted,
            meta,
            opts,
            known_seal: None,
            buf: Vec::with_capacity(512),
        };
        // Notice a damaged head now rather than at the first append.
        let tx = log
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let seal = check_head(&tx, &log.meta, &log.trusted, None)?;
        tx.finish()?;
        log.known_seal = seal;
        Ok(log)
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The environment the log belongs to.
    pub fn environment(&self) -> &Environment {
        self.key.environment()
    }

    /// The options in force.
    pub fn options(&self) -> &AuditLogOptions {
        &self.opts
    }

    /// Appends `events` in order, in one transaction, and returns once it is committed (durable:
    /// `synchronous = FULL`).
    ///
    /// # Errors
    /// [`AuditError::HeadMismatch`] if the stored head does not match its seal (the log was
    /// truncated or rewritten: appending would hide it); [`AuditError::Sqlite`] on database
    /// failure (nothing is stored then).
    pub fn append(&mut self, events: &[AuditEvent]) -> Result<AppendReceipt> {
        let now = chrono::Utc::now().timestamp_millis();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seal = check_head(&tx, &self.meta, &self.trusted, self.known_seal.as_ref())?;
        let (receipt, new_seal) = append_in(
            &tx,
            &self.meta,
            &self.key,
            &self.opts,
            &mut self.buf,
            events,
            now,
            seal,
        )?;
        tx.commit()?;
        self.known_seal = new_seal;
        Ok(receipt)
    }

    /// Signs a periodic checkpoint over the head now if there are events since the last one.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub fn checkpoint(&mut self) -> Result<Option<CheckpointInfo>> {
        self.checkpoint_when(|_, _| true)
    }

    /// Signs a periodic checkpoint if [`AuditLogOptions::checkpoint_interval`] has passed since
    /// the last one and events were appended since (the background appender calls this on a
    /// timer, so an idle service still checkpoints every hour).
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub fn checkpoint_if_due(&mut self) -> Result<Option<CheckpointInfo>> {
        let interval = duration_ms(self.opts.checkpoint_interval);
        self.checkpoint_when(move |last_ms, now| now - last_ms >= interval)
    }

    fn checkpoint_when(
        &mut self,
        due: impl Fn(i64, i64) -> bool,
    ) -> Result<Option<CheckpointInfo>> {
        let now = chrono::Utc::now().timestamp_millis();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seal = check_head(&tx, &self.meta, &self.trusted, self.known_seal.as_ref())?;
        let (head_seq, head_hash) = read_head(&tx, &self.meta)?;
        let (cp_seq, cp_ms) = read_last_checkpoint(&tx, &self.meta)?;
        let cp = if head_seq > cp_seq && due(cp_ms, now) {
            Some(write_checkpoint(
                &tx,
                &self.meta,
                &self.key,
                CheckpointKind::Periodic,
                head_seq,
                &head_hash,
                now,
            )?)
        } else {
            None
        };
        tx.commit()?;
        self.known_seal = seal;
        Ok(cp)
    }

    /// Deletes the events older than the retention period (see [`Retention::cutoff`]), leaving a
    /// signed anchor checkpoint over the last purged event so the rest of the chain still
    /// verifies, and appends an `audit.purge` event naming the purged range — all in one
    /// transaction. A run that finds nothing old enough still records its `audit.purge` event.
    ///
    /// The part of the chain to be deleted is verified first; if it does not verify, nothing is
    /// deleted (the evidence is kept).
    ///
    /// # Errors
    /// [`AuditError::PurgeRefused`] if the chain to be purged does not verify; otherwise as
    /// [`append`](Self::append).
    pub fn purge_expired(&mut self, now: DateTime<Utc>, by: &Requester) -> Result<PurgeReport> {
        let cutoff = self.opts.retention.cutoff(now);
        let now_ms = now.timestamp_millis();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seal = check_head(&tx, &self.meta, &self.trusted, self.known_seal.as_ref())?;
        let (head_seq, _) = read_head(&tx, &self.meta)?;
        let start: u64 = tx
            .query_row(
                "SELECT seq FROM checkpoints WHERE kind = ?1 ORDER BY seq DESC LIMIT 1",
                [CheckpointKind::Anchor.code()],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map_or(0, |s| u64::try_from(s).unwrap_or(0));
        // The first event young enough to keep; everything before it goes (events from several
        // processes are not perfectly time-ordered, so the cut is at the first young one).
        let first_kept: Option<i64> = tx
            .query_row(
                "SELECT seq FROM events NOT INDEXED WHERE ts_ms >= ?1 ORDER BY seq LIMIT 1",
                [cutoff.timestamp_millis()],
                |r| r.get(0),
            )
            .optional()?;
        let through = first_kept.map_or(head_seq, |s| {
            u64::try_from(s).unwrap_or(0).saturating_sub(1)
        });

        let mut purged = 0;
        let mut anchor = None;
        let mut range = None;
        if through > start {
            let report = verify_connection(&tx, &self.path, &self.trusted, Some(through + 1))?;
            if !report.is_ok() {
                return Err(AuditError::PurgeRefused {
                    through_seq: through,
                    finding: report.to_string(),
                });
            }
            let hash: Vec<u8> = tx.query_row(
                "SELECT hash FROM events WHERE seq = ?1",
                [seq_sql(through)],
                |r| r.get(0),
            )?;
            let hash = Hash::try_from(hash.as_slice())
                .map_err(|_| AuditError::format(&self.path, "stored hash is not 32 bytes"))?;
            anchor = Some(write_checkpoint(
                &tx,
                &self.meta,
                &self.key,
                CheckpointKind::Anchor,
                through,
                &hash,
                now_ms,
            )?);
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('purge_in_progress', '1')",
                [],
            )?;
            purged = tx.execute("DELETE FROM events WHERE seq <= ?1", [seq_sql(through)])? as u64;
            tx.execute(
                "DELETE FROM checkpoints WHERE kind = ?1 AND seq <= ?2",
                params![CheckpointKind::Periodic.code(), seq_sql(through)],
            )?;
            tx.execute("DELETE FROM meta WHERE key = 'purge_in_progress'", [])?;
            range = Some(format!("{}-{}", start + 1, through));
        }

        let ev = AuditEvent {
            ts_ms: now_ms,
            action: AuditAction::AuditPurge,
            outcome: super::event::Outcome::Success,
            actor: by.actor.clone(),
            session: by.session.clone(),
            origin: by.origin.clone(),
            tenant: None,
            recording: None,
            resource: range
                .map(|r| {
                    OpaqueId::try_new("resource", &r).map(|id| ResourceRef {
                        kind: ResourceKind::AuditRange,
                        id,
                    })
                })
                .transpose()?,
            reason: None,
        };
        let (receipt, new_seal) = append_in(
            &tx,
            &self.meta,
            &self.key,
            &self.opts,
            &mut self.buf,
            std::slice::from_ref(&ev),
            now_ms,
            seal,
        )?;
        tx.commit()?;
        self.known_seal = new_seal;
        Ok(PurgeReport {
            cutoff,
            purged,
            anchor,
            purge_event_seq: receipt.first_seq,
        })
    }

    /// Verifies the whole log through this connection (see [`AuditReader::verify`]).
    ///
    /// [`AuditReader::verify`]: super::AuditReader::verify
    ///
    /// # Errors
    /// Database errors only; problems with the chain are reported in the [`VerifyReport`].
    pub fn verify(&mut self) -> Result<VerifyReport> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let r = verify_connection(&tx, &self.path, &self.trusted, None);
        tx.finish()?;
        r
    }

    #[cfg(feature = "bench")]
    pub(crate) fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

fn parent_dir(p: &Path) -> Result<PathBuf> {
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    parent.canonicalize().map_err(|e| AuditError::io(parent, e))
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Checks inside a transaction that the stored head matches the signed seal; returns the seal.
/// `known` is a seal this process wrote or checked before: if the stored one is identical its
/// signature is not checked again.
fn check_head(
    tx: &Transaction<'_>,
    meta: &LogMeta,
    trusted: &AuditVerifyKeys,
    known: Option<&StoredCheckpoint>,
) -> Result<Option<StoredCheckpoint>> {
    let (head_seq, head_hash) = read_head(tx, meta)?;
    let has_events: bool =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM events)", [], |r| r.get(0))?;
    let seal = read_seal(tx)?;
    let mismatch = |seal: Option<&StoredCheckpoint>| AuditError::HeadMismatch {
        seal_seq: seal.and_then(|s| u64::try_from(s.seq).ok()),
        head_seq: has_events.then_some(head_seq),
    };
    match &seal {
        None if !has_events => Ok(None),
        None => Err(mismatch(None)),
        Some(s) => {
            let same_as_known = known.is_some_and(|k| {
                k.seq == s.seq
                    && k.hash == s.hash
                    && k.time_ms == s.time_ms
                    && k.signature == s.signature
            });
            let signed = same_as_known
                || (s
                    .message(meta)
                    .zip(trusted.get(&s.key_id))
                    .is_some_and(|(msg, vk)| vk.verify(&msg, &s.signature)));
            if signed && s.seq == seq_sql(head_seq) && s.hash == head_hash {
                Ok(seal)
            } else {
                Err(mismatch(Some(s)))
            }
        }
    }
}

/// Inserts `events` after the head inside `tx`, signing periodic checkpoints and the new seal.
#[allow(clippy::too_many_arguments)] // internal: the writer's state, passed apart to split borrows
fn append_in(
    tx: &Transaction<'_>,
    meta: &LogMeta,
    key: &AuditSigningKey,
    opts: &AuditLogOptions,
    buf: &mut Vec<u8>,
    events: &[AuditEvent],
    now_ms: i64,
    seal: Option<StoredCheckpoint>,
) -> Result<(AppendReceipt, Option<StoredCheckpoint>)> {
    let (mut seq, mut prev) = read_head(tx, meta)?;
    let first_seq = seq + 1;
    if events.is_empty() {
        return Ok((
            AppendReceipt {
                first_seq,
                count: 0,
                checkpoints: 0,
            },
            seal,
        ));
    }
    let (mut cp_seq, mut cp_ms) = read_last_checkpoint(tx, meta)?;
    let mut checkpoints = 0;
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (seq, v, ts_ms, action, outcome, actor_kind, actor, session, client_addr, \
         user_agent, tenant, recording, resource_kind, resource_id, reason, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?;
    for ev in events {
        seq += 1;
        let mut addr = [0u8; 16];
        let f = event_fields(ev, &mut addr);
        buf.clear();
        encode_event(buf, EVENT_VERSION, seq, ev.ts_ms, &prev, &f);
        let hash = sha256(buf);
        let text = |i: usize| f[i].map(|b| std::str::from_utf8(b).unwrap_or_default());
        insert.execute(params![
            seq_sql(seq),
            EVENT_VERSION,
            ev.ts_ms,
            text(0),
            text(1),
            text(2),
            text(3),
            text(4),
            f[5],
            text(6),
            text(7),
            text(8),
            text(9),
            text(10),
            text(11),
            &prev[..],
            &hash[..],
        ])?;
        prev = hash;
        if seq - cp_seq >= opts.checkpoint_every_events {
            write_checkpoint(tx, meta, key, CheckpointKind::Periodic, seq, &hash, now_ms)?;
            (cp_seq, cp_ms) = (seq, now_ms);
            checkpoints += 1;
        }
    }
    drop(insert);
    if seq > cp_seq && now_ms - cp_ms >= duration_ms(opts.checkpoint_interval) {
        write_checkpoint(tx, meta, key, CheckpointKind::Periodic, seq, &prev, now_ms)?;
        checkpoints += 1;
    }
    let new_seal = write_seal(tx, meta, key, seq, &prev, now_ms)?;
    Ok((
        AppendReceipt {
            first_seq,
            count: events.len() as u64,
            checkpoints,
        },
        Some(new_seal),
    ))
}
