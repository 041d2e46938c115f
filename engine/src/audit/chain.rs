//! Row-level access shared by the writer and the verifier: the chain head, checkpoints, the seal.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::canonical::{CheckpointKind, Hash, checkpoint_message, genesis_hash};
use super::error::Result;
use super::event::ms_to_datetime;
use super::keys::{AuditSigningKey, KeyId};
use super::schema::LogMeta;

/// A signed checkpoint (periodic, purge anchor or seal) as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// What it is for.
    pub kind: CheckpointKind,
    /// The sequence number of the event it covers (0 for an empty chain).
    pub seq: u64,
    /// That event's hash.
    pub hash: [u8; 32],
    /// When it was signed.
    pub time: DateTime<Utc>,
    /// The id of the key that signed it.
    pub key_id: KeyId,
}

/// A checkpoint row with its raw signature, as read for verification.
#[derive(Clone, Debug)]
pub(crate) struct StoredCheckpoint {
    pub(crate) row_id: i64,
    pub(crate) kind: Option<CheckpointKind>,
    pub(crate) seq: i64,
    pub(crate) hash: Vec<u8>,
    pub(crate) time_ms: i64,
    pub(crate) key_id: String,
    pub(crate) signature: Vec<u8>,
}

impl StoredCheckpoint {
    pub(crate) fn hash32(&self) -> Option<Hash> {
        Hash::try_from(self.hash.as_slice()).ok()
    }

    pub(crate) fn info(&self) -> Option<CheckpointInfo> {
        Some(CheckpointInfo {
            kind: self.kind?,
            seq: u64::try_from(self.seq).ok()?,
            hash: self.hash32()?,
            time: ms_to_datetime(self.time_ms),
            key_id: KeyId::from_stored(self.key_id.clone()),
        })
    }

    /// The message its signature must cover, for the log `meta`.
    pub(crate) fn message(&self, meta: &LogMeta) -> Option<Vec<u8>> {
        Some(checkpoint_message(
            self.kind?,
            &meta.log_id,
            &meta.environment,
            u64::try_from(self.seq).ok()?,
            &self.hash32()?,
            self.time_ms,
        ))
    }
}

/// The last event (`seq`, `hash`), else the latest purge anchor, else `(0, genesis)`.
pub(crate) fn read_head(conn: &Connection, meta: &LogMeta) -> Result<(u64, Hash)> {
    let last: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let anchor = || -> Result<Option<(i64, Vec<u8>)>> {
        Ok(conn
            .query_row(
                "SELECT seq, hash FROM checkpoints WHERE kind = ?1 ORDER BY seq DESC LIMIT 1",
                [CheckpointKind::Anchor.code()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    };
    let found = match last {
        Some(x) => Some(x),
        None => anchor()?,
    };
    Ok(match found {
        // A malformed head (negative seq, wrong hash length) can only come from tampering; the
        // seal check that follows refuses it.
        Some((seq, hash)) => (
            u64::try_from(seq).unwrap_or(0),
            Hash::try_from(hash.as_slice()).unwrap_or([0; 32]),
        ),
        None => (0, genesis_hash(&meta.log_id)),
    })
}

/// The latest periodic or anchor checkpoint `(seq, time_ms)`, or `(0, created_ms)`.
pub(crate) fn read_last_checkpoint(conn: &Connection, meta: &LogMeta) -> Result<(u64, i64)> {
    let row: Option<(i64, i64)> = conn
        .query_row(
            "SELECT seq, time_ms FROM checkpoints WHERE kind IN (1, 2) ORDER BY seq DESC, id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.map_or((0, meta.created_ms), |(s, t)| {
        (u64::try_from(s).unwrap_or(0), t)
    }))
}

/// Every checkpoint row (periodic and anchors), in id order.
pub(crate) fn read_checkpoints(conn: &Connection) -> Result<Vec<StoredCheckpoint>> {
    let mut stmt = conn.prepare(
        "SELECT id, kind, seq, hash, time_ms, key_id, signature FROM checkpoints ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StoredCheckpoint {
            row_id: r.get(0)?,
            kind: CheckpointKind::try_from_code(r.get(1)?),
            seq: r.get(2)?,
            hash: r.get(3)?,
            time_ms: r.get(4)?,
            key_id: r.get(5)?,
            signature: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The seal row, if any.
pub(crate) fn read_seal(conn: &Connection) -> Result<Option<StoredCheckpoint>> {
    Ok(conn
        .query_row(
            "SELECT id, seq, hash, time_ms, key_id, signature FROM seal WHERE id = 1",
            [],
            |r| {
                Ok(StoredCheckpoint {
                    row_id: r.get(0)?,
                    kind: Some(CheckpointKind::Seal),
                    seq: r.get(1)?,
                    hash: r.get(2)?,
                    time_ms: r.get(3)?,
                    key_id: r.get(4)?,
                    signature: r.get(5)?,
                })
            },
        )
        .optional()?)
}

/// Signs and stores a periodic or anchor checkpoint.
pub(crate) fn write_checkpoint(
    conn: &Connection,
    meta: &LogMeta,
    key: &AuditSigningKey,
    kind: CheckpointKind,
    seq: u64,
    hash: &Hash,
    time_ms: i64,
) -> Result<CheckpointInfo> {
    let msg = checkpoint_message(kind, &meta.log_id, &meta.environment, seq, hash, time_ms);
    let sig = key.sign(&msg);
    conn.prepare_cached(
        "INSERT INTO checkpoints (kind, seq, hash, time_ms, key_id, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        kind.code(),
        seq_sql(seq),
        &hash[..],
        time_ms,
        key.key_id().as_str(),
        &sig[..]
    ])?;
    Ok(CheckpointInfo {
        kind,
        seq,
        hash: *hash,
        time: ms_to_datetime(time_ms),
        key_id: key.key_id().clone(),
    })
}

/// Signs and stores the seal over the head `(seq, hash)`; returns what was stored.
pub(crate) fn write_seal(
    conn: &Connection,
    meta: &LogMeta,
    key: &AuditSigningKey,
    seq: u64,
    hash: &Hash,
    time_ms: i64,
) -> Result<StoredCheckpoint> {
    let msg = checkpoint_message(
        CheckpointKind::Seal,
        &meta.log_id,
        &meta.environment,
        seq,
        hash,
        time_ms,
    );
    let sig = key.sign(&msg);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO seal (id, seq, hash, time_ms, key_id, signature) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        seq_sql(seq),
        &hash[..],
        time_ms,
        key.key_id().as_str(),
        &sig[..]
    ])?;
    Ok(StoredCheckpoint {
        row_id: 1,
        kind: Some(CheckpointKind::Seal),
        seq: seq_sql(seq),
        hash: hash.to_vec(),
        time_ms,
        key_id: key.key_id().as_str().to_owned(),
        signature: sig.to_vec(),
    })
}

/// A sequence number as SQLite's signed integer. Sequence numbers count events one by one from 1,
/// so they cannot reach 2^63.
pub(crate) fn seq_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}
