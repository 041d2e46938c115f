//! Verification of the hash chain, the checkpoints and the seal.
//!
//! One read transaction (a consistent snapshot while writers go on appending). Rows are read in
//! sequence order into chunks of canonical encodings; a second thread hashes chunk *n* while this
//! one reads chunk *n + 1*; the links are then checked in order. At the first row that does not
//! fit, [`classify`] looks around it (a few rows ahead, re-hashing the row under nearby sequence
//! numbers, and one indexed-free search for the true successor) to name what happened: a
//! modification, a deletion, an insertion or a reordering, at an exact sequence number.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::mpsc;

use rayon::prelude::*;
use rusqlite::{Connection, OptionalExtension, Rows, types::ValueRef};

use super::canonical::{
    CheckpointKind, EVENT_MAGIC, EVENT_VERSION, FIELD_COUNT, Hash, genesis_hash, sha256,
};
use super::chain::{StoredCheckpoint, read_checkpoints, read_seal, seq_sql};
use super::error::Result;
use super::keys::AuditVerifyKeys;
use super::schema::{LogMeta, check_version, read_meta};

/// Rows per chunk handed to the hashing thread.
const CHUNK_ROWS: usize = 16 * 1024;
/// How far (in sequence numbers) a tampered row is re-hashed to find where it came from.
const SEARCH_WINDOW: u64 = 64;

/// The first place where the stored chain departs from what was written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainFinding {
    /// Event `seq`'s stored fields (any column, its hashes included) differ from what was
    /// written. Also reported for `seq` when the event was altered and its own hash recomputed:
    /// its successor's link then no longer matches.
    Modified {
        /// The altered event.
        seq: u64,
    },
    /// Events `first_seq..=last_seq` are missing.
    Deleted {
        /// First missing.
        first_seq: u64,
        /// Last missing.
        last_seq: u64,
    },
    /// The row stored at `seq` was never appended by the log (forged, or replayed from
    /// elsewhere); also reported for events found after the signed seal.
    Inserted {
        /// Where the foreign row sits (0 for a row stored at a sequence number ≤ 0).
        seq: u64,
    },
    /// Event `seq` is not at its place: it is stored at `stored_at`, and another event occupies
    /// position `seq` (changing an event's sequence number moves it).
    Reordered {
        /// The event out of place (and the first position whose event is wrong).
        seq: u64,
        /// Where event `seq` is stored now.
        stored_at: u64,
    },
    /// The events are self-consistent but a signed checkpoint or the seal disagrees: the chain
    /// was rewritten with recomputed hashes somewhere in `after_seq + 1 ..= through_seq`.
    Rewritten {
        /// Last event still matching a signature.
        after_seq: u64,
        /// The signed event whose hash differs.
        through_seq: u64,
    },
    /// The tail was cut: a signature covers `expected_last` but the chain ends at
    /// `last_present`.
    Truncated {
        /// Last event present (0 if none).
        last_present: u64,
        /// Last event a valid signature covers.
        expected_last: u64,
    },
    /// No valid seal covers the head (it was removed or altered): the events after `after_seq` up
    /// to `last_seq` are covered by no signature (none if equal), and a truncation of the tail
    /// after the last checkpoint cannot be excluded.
    UnsealedTail {
        /// The last event a valid signature covers (0 if none).
        after_seq: u64,
        /// The last event present.
        last_seq: u64,
    },
}

impl ChainFinding {
    /// A short stable name: `modified`, `deleted`, `inserted`, `reordered`, `rewritten`,
    /// `truncated`, `unsealed_tail`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChainFinding::Modified { .. } => "modified",
            ChainFinding::Deleted { .. } => "deleted",
            ChainFinding::Inserted { .. } => "inserted",
            ChainFinding::Reordered { .. } => "reordered",
            ChainFinding::Rewritten { .. } => "rewritten",
            ChainFinding::Truncated { .. } => "truncated",
            ChainFinding::UnsealedTail { .. } => "unsealed_tail",
        }
    }

    /// The first sequence number concerned.
    pub fn seq(&self) -> u64 {
        match *self {
            ChainFinding::Modified { seq }
            | ChainFinding::Inserted { seq }
            | ChainFinding::Reordered { seq, .. } => seq,
            ChainFinding::Deleted { first_seq, .. } => first_seq,
            ChainFinding::Rewritten { after_seq, .. }
            | ChainFinding::UnsealedTail { after_seq, .. } => after_seq + 1,
            ChainFinding::Truncated { last_present, .. } => last_present + 1,
        }
    }
}

impl fmt::Display for ChainFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainFinding::Modified { seq } => write!(f, "event {seq} was modified"),
            ChainFinding::Deleted {
                first_seq,
                last_seq,
            } if first_seq == last_seq => write!(f, "event {first_seq} was deleted"),
            ChainFinding::Deleted {
                first_seq,
                last_seq,
            } => write!(f, "events {first_seq} to {last_seq} were deleted"),
            ChainFinding::Inserted { seq } => write!(f, "a foreign event was inserted at {seq}"),
            ChainFinding::Reordered { seq, stored_at } => {
                write!(f, "event {seq} was moved (it is stored at {stored_at})")
            }
            ChainFinding::Rewritten {
                after_seq,
                through_seq,
            } => write!(
                f,
                "events after {after_seq} up to {through_seq} were rewritten (signed checkpoint mismatch)"
            ),
            ChainFinding::Truncated {
                last_present,
                expected_last,
            } => write!(
                f,
                "the log was truncated: it ends at {last_present} but a signature covers {expected_last}"
            ),
            ChainFinding::UnsealedTail {
                after_seq,
                last_seq,
            } => write!(
                f,
                "no valid seal: the log ends at {last_seq}, the last signature covers {after_seq}; \
                 a truncated tail cannot be excluded"
            ),
        }
    }
}

/// A checkpoint (or the seal) whose signature does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureFinding {
    /// The signature does not verify with the key it names (forged or altered checkpoint).
    BadSignature {
        /// Periodic, anchor or seal.
        kind: Option<CheckpointKind>,
        /// Row id in `checkpoints` (1 for the seal).
        row_id: i64,
        /// The sequence number it claims to cover.
        seq: i64,
    },
    /// It names a key the verifier does not trust.
    UnknownKey {
        /// Periodic, anchor or seal.
        kind: Option<CheckpointKind>,
        /// Row id.
        row_id: i64,
        /// The key id stored with it.
        key_id: String,
    },
    /// It was signed by a trusted key of another environment.
    WrongEnvironment {
        /// Periodic, anchor or seal.
        kind: Option<CheckpointKind>,
        /// Row id.
        row_id: i64,
        /// The key's environment.
        key_environment: String,
    },
    /// The row is unreadable (unknown kind, negative sequence number, hash not 32 bytes).
    Malformed {
        /// Row id.
        row_id: i64,
    },
}

impl fmt::Display for SignatureFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |k: &Option<CheckpointKind>| match k {
            Some(CheckpointKind::Seal) => "seal",
            Some(CheckpointKind::Anchor) => "anchor checkpoint",
            _ => "checkpoint",
        };
        match self {
            SignatureFinding::BadSignature { kind, row_id, seq } => write!(
                f,
                "{} {row_id} (seq {seq}) has an invalid signature",
                name(kind)
            ),
            SignatureFinding::UnknownKey {
                kind,
                row_id,
                key_id,
            } => write!(
                f,
                "{} {row_id} is signed by unknown key {key_id}",
                name(kind)
            ),
            SignatureFinding::WrongEnvironment {
                kind,
                row_id,
                key_environment,
            } => write!(
                f,
                "{} {row_id} is signed by a key of environment `{key_environment}`",
                name(kind)
            ),
            SignatureFinding::Malformed { row_id } => write!(f, "checkpoint {row_id} is malformed"),
        }
    }
}

/// The result of verifying a log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events whose hash and link were checked and found good.
    pub events_checked: u64,
    /// First sequence number of the verified chain (after the purge anchor).
    pub first_seq: Option<u64>,
    /// Last sequence number verified.
    pub last_seq: Option<u64>,
    /// The purge anchor the chain starts from, if any.
    pub anchor_seq: Option<u64>,
    /// Signatures checked (periodic checkpoints, anchors and the seal).
    pub signatures_checked: u64,
    /// The last periodic checkpoint with a valid signature.
    pub last_checkpoint_seq: Option<u64>,
    /// The event the valid seal covers.
    pub seal_seq: Option<u64>,
    /// Events after the last periodic checkpoint (signed only by the seal).
    pub events_after_last_checkpoint: u64,
    /// The first problem in chain order, if any (verification of the chain stops there).
    pub chain: Option<ChainFinding>,
    /// Every checkpoint whose signature does not hold.
    pub signatures: Vec<SignatureFinding>,
}

impl VerifyReport {
    /// True when the chain and every signature verify.
    pub fn is_ok(&self) -> bool {
        self.chain.is_none() && self.signatures.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.chain, self.signatures.first()) {
            (None, None) => write!(
                f,
                "ok: {} events verified ({}..={}), {} signatures valid",
                self.events_checked,
                self.first_seq.unwrap_or(0),
                self.last_seq.unwrap_or(0),
                self.signatures_checked
            ),
            (Some(c), _) => write!(f, "{c}"),
            (None, Some(s)) => write!(f, "{s}"),
        }
    }
}

/// One row's canonical encoding (in the chunk buffer) and stored hashes.
#[derive(Clone, Debug)]
struct RowRec {
    seq: i64,
    start: usize,
    end: usize,
    prev: Option<Hash>,
    hash: Option<Hash>,
    /// A column had a type or value the encoding cannot represent (only tampering does that).
    malformed: bool,
}

#[derive(Default)]
struct Chunk {
    buf: Vec<u8>,
    rows: Vec<RowRec>,
    content_ok: Vec<bool>,
}

impl Chunk {
    fn clear(&mut self) {
        self.buf.clear();
        self.rows.clear();
        self.content_ok.clear();
    }

    fn hash_all(&mut self) {
        let buf = &self.buf;
        self.content_ok = self
            .rows
            .iter()
            .map(|r| !r.malformed && r.hash == Some(sha256(&buf[r.start..r.end])))
            .collect();
    }
}

const SELECT_ROWS: &str = "SELECT seq, v, ts_ms, action, outcome, actor_kind, actor, session, client_addr, \
     user_agent, tenant, recording, resource_kind, resource_id, reason, prev_hash, hash FROM events";

/// Encodes one stored row exactly as the writer did, from whatever is stored.
fn push_row(row: &rusqlite::Row<'_>, chunk: &mut Chunk) -> rusqlite::Result<()> {
    let buf = &mut chunk.buf;
    let start = buf.len();
    let mut malformed = false;
    let int = |v: ValueRef<'_>, bad: &mut bool| match v {
        ValueRef::Integer(i) => i,
        _ => {
            *bad = true;
            0
        }
    };
    let seq = int(row.get_ref(0)?, &mut malformed);
    let v = int(row.get_ref(1)?, &mut malformed);
    let ts = int(row.get_ref(2)?, &mut malformed);
    let hash32 = |v: ValueRef<'_>| match v {
        ValueRef::Blob(b) => Hash::try_from(b).ok(),
        _ => None,
    };
    let prev = hash32(row.get_ref(15)?);
    let hash = hash32(row.get_ref(16)?);
    if v != i64::from(EVENT_VERSION) || prev.is_none() {
        malformed = true;
    }
    // Same layout as `canonical::encode_event`, written from borrowed column bytes so that no
    // allocation happens per field.
    buf.extend_from_slice(EVENT_MAGIC);
    buf.push(EVENT_VERSION);
    buf.extend_from_slice(&(seq as u64).to_be_bytes());
    buf.extend_from_slice(&ts.to_be_bytes());
    buf.extend_from_slice(&prev.unwrap_or([0; 32]));
    for i in 0..FIELD_COUNT {
        match row.get_ref(3 + i)? {
            ValueRef::Null => buf.push(0),
            ValueRef::Text(b) | ValueRef::Blob(b) => {
                buf.push(1);
                buf.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
                buf.extend_from_slice(b);
            }
            ValueRef::Integer(_) | ValueRef::Real(_) => {
                malformed = true;
                buf.push(0);
            }
        }
    }
    chunk.rows.push(RowRec {
        seq,
        start,
        end: buf.len(),
        prev,
        hash,
        malformed,
    });
    Ok(())
}

fn read_chunk(rows: &mut Rows<'_>, chunk: &mut Chunk) -> Result<bool> {
    while chunk.rows.len() < CHUNK_ROWS {
        match rows.next()? {
            Some(row) => push_row(row, chunk)?,
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// The valid signatures, by sequence number.
struct Signed {
    /// Periodic checkpoints and anchors after the chain start: seq → hashes signed there.
    checkpoints: BTreeMap<u64, Vec<Hash>>,
    anchor: Option<(u64, Hash)>,
    seal: Option<(u64, Hash)>,
    last_periodic: Option<u64>,
}

fn check_signatures(
    meta: &LogMeta,
    keys: &AuditVerifyKeys,
    cps: &[StoredCheckpoint],
    seal: Option<&StoredCheckpoint>,
    report: &mut VerifyReport,
) -> Signed {
    let all: Vec<&StoredCheckpoint> = cps.iter().chain(seal).collect();
    let verdicts: Vec<Option<SignatureFinding>> = all
        .par_iter()
        .map(|cp| {
            let Some(msg) = cp.message(meta) else {
                return Some(SignatureFinding::Malformed { row_id: cp.row_id });
            };
            let Some(key) = keys.get(&cp.key_id) else {
                return Some(SignatureFinding::UnknownKey {
                    kind: cp.kind,
                    row_id: cp.row_id,
                    key_id: cp.key_id.clone(),
                });
            };
            if key.environment().as_str() != meta.environment {
                return Some(SignatureFinding::WrongEnvironment {
                    kind: cp.kind,
                    row_id: cp.row_id,
                    key_environment: key.environment().to_string(),
                });
            }
            (!key.verify(&msg, &cp.signature)).then_some(SignatureFinding::BadSignature {
                kind: cp.kind,
                row_id: cp.row_id,
                seq: cp.seq,
            })
        })
        .collect();
    report.signatures_checked = all.len() as u64;
    let mut signed = Signed {
        checkpoints: BTreeMap::new(),
        anchor: None,
        seal: None,
        last_periodic: None,
    };
    let mut valid = Vec::new();
    for (cp, verdict) in all.into_iter().zip(verdicts) {
        match verdict {
            Some(f) => report.signatures.push(f),
            None => {
                // `message` succeeded, so kind, seq and hash are well-formed.
                if let Some(info) = cp.info() {
                    valid.push(info);
                }
            }
        }
    }
    for info in &valid {
        match info.kind {
            CheckpointKind::Anchor if signed.anchor.is_none_or(|(s, _)| info.seq > s) => {
                signed.anchor = Some((info.seq, info.hash));
            }
            CheckpointKind::Seal => signed.seal = Some((info.seq, info.hash)),
            _ => {}
        }
    }
    let start = signed.anchor.map_or(0, |(s, _)| s);
    for info in valid {
        if info.kind != CheckpointKind::Seal && info.seq > start {
            signed
                .checkpoints
                .entry(info.seq)
                .or_default()
                .push(info.hash);
            if info.kind == CheckpointKind::Periodic {
                signed.last_periodic = signed.last_periodic.max(Some(info.seq));
            }
        }
    }
    signed
}

/// Verifies the log behind `conn` (call inside a transaction for a consistent snapshot). With
/// `upto`, only events up to that sequence number are checked and the tail checks are skipped
/// (used by purge).
pub(crate) fn verify_connection(
    conn: &Connection,
    path: &Path,
    keys: &AuditVerifyKeys,
    upto: Option<u64>,
) -> Result<VerifyReport> {
    check_version(conn, path)?;
    let meta = read_meta(conn, path)?;
    let mut report = VerifyReport::default();
    let cps = read_checkpoints(conn)?;
    let seal = read_seal(conn)?;
    let signed = check_signatures(&meta, keys, &cps, seal.as_ref(), &mut report);
    report.anchor_seq = signed.anchor.map(|(s, _)| s);

    let (start, start_hash) = signed
        .anchor
        .unwrap_or_else(|| (0, genesis_hash(&meta.log_id)));
    let mut walk = Walk {
        e: start + 1,
        p1: start_hash,
        p2: None,
        start,
        last_good_cp: start,
        count: 0,
    };

    let sql = match upto {
        Some(_) => format!("{SELECT_ROWS} WHERE seq <= ?1 ORDER BY seq"),
        None => format!("{SELECT_ROWS} ORDER BY seq"),
    };
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = match upto {
        Some(u) => stmt.query([seq_sql(u)])?,
        None => stmt.query([])?,
    };

    let stop = std::thread::scope(|s| -> Result<Option<(RowRec, Vec<u8>, bool)>> {
        let (work_tx, work_rx) = mpsc::sync_channel::<Chunk>(1);
        let (done_tx, done_rx) = mpsc::sync_channel::<Chunk>(2);
        s.spawn(move || {
            for mut c in work_rx {
                c.hash_all();
                if done_tx.send(c).is_err() {
                    break;
                }
            }
        });
        let mut spare: Vec<Chunk> = Vec::new();
        let mut in_flight = 0;
        let mut more = true;
        loop {
            // Keep two chunks ahead: one being hashed, one queued.
            while more && in_flight < 2 {
                let mut c = spare.pop().unwrap_or_default();
                c.clear();
                more = read_chunk(&mut rows, &mut c)?;
                if c.rows.is_empty() {
                    break;
                }
                if work_tx.send(c).is_err() {
                    break;
                }
                in_flight += 1;
            }
            if in_flight == 0 {
                return Ok(None);
            }
            let Ok(c) = done_rx.recv() else {
                return Ok(None);
            };
            in_flight -= 1;
            if let Some(i) = walk.feed(&c, &signed, &mut report) {
                let r = c.rows[i].clone();
                let bytes = c.buf[r.start..r.end].to_vec();
                return Ok(Some((r, bytes, c.content_ok[i])));
            }
            if report.chain.is_some() {
                return Ok(None);
            }
            spare.push(c);
        }
    })?;
    drop(rows);

    if let Some((row, bytes, ok)) = stop {
        report.chain = Some(classify(conn, &walk, &row, &bytes, ok)?);
    }
    report.events_checked = walk.count;
    if walk.count > 0 {
        report.first_seq = Some(start + 1);
        report.last_seq = Some(walk.e - 1);
    }
    report.last_checkpoint_seq = signed.last_periodic;
    report.events_after_last_checkpoint =
        (walk.e - 1).saturating_sub(signed.last_periodic.unwrap_or(start));
    if report.chain.is_some() || upto.is_some() {
        return Ok(report);
    }

    // Tail: every valid signature must be within the chain, and the seal must sit on its head.
    let last = walk.e - 1;
    let max_cp = signed.checkpoints.keys().next_back().copied().unwrap_or(0);
    let seal_seq = signed.seal.map(|(s, _)| s);
    report.seal_seq = seal_seq;
    let expected_last = max_cp.max(seal_seq.unwrap_or(0));
    report.chain = if expected_last > last {
        Some(ChainFinding::Truncated {
            last_present: last,
            expected_last,
        })
    } else {
        match signed.seal {
            Some((s, _)) if s < last => Some(ChainFinding::Inserted { seq: s + 1 }),
            Some((_, h)) if h != walk.p1 => Some(ChainFinding::Rewritten {
                after_seq: walk.last_good_cp,
                through_seq: last,
            }),
            Some(_) => None,
            None if last > start => Some(ChainFinding::UnsealedTail {
                after_seq: max_cp.max(start),
                last_seq: last,
            }),
            None => None,
        }
    };
    Ok(report)
}

/// Running state of the in-order walk.
struct Walk {
    /// The sequence number expected next.
    e: u64,
    /// Hash of the last accepted event (or of the anchor / genesis).
    p1: Hash,
    /// Hash of the one before.
    p2: Option<Hash>,
    /// The chain start (anchor seq or 0).
    start: u64,
    /// Last sequence number where a signed checkpoint matched.
    last_good_cp: u64,
    count: u64,
}

impl Walk {
    /// Accepts rows in order; returns the index of the first row that does not fit, or records a
    /// checkpoint mismatch in `report`.
    fn feed(&mut self, c: &Chunk, signed: &Signed, report: &mut VerifyReport) -> Option<usize> {
        for (i, r) in c.rows.iter().enumerate() {
            let fits = c.content_ok[i] && r.seq == seq_sql(self.e) && r.prev == Some(self.p1);
            if !fits {
                return Some(i);
            }
            let h = r.hash.unwrap_or([0; 32]);
            if let Some(hs) = signed.checkpoints.get(&self.e) {
                if hs.iter().any(|s| *s != h) {
                    report.chain = Some(ChainFinding::Rewritten {
                        after_seq: self.last_good_cp,
                        through_seq: self.e,
                    });
                    return None;
                }
                self.last_good_cp = self.e;
            }
            self.p2 = Some(self.p1);
            self.p1 = h;
            self.e += 1;
            self.count += 1;
        }
        None
    }
}

/// Re-hashes `bytes` under each candidate sequence number; returns the one matching `hash`.
fn original_seq(
    bytes: &[u8],
    hash: Option<Hash>,
    candidates: impl Iterator<Item = u64>,
) -> Option<u64> {
    let hash = hash?;
    let mut b = bytes.to_vec();
    if b.len() < 17 {
        return None;
    }
    candidates.into_iter().find(|&s| {
        b[9..17].copy_from_slice(&s.to_be_bytes());
        sha256(&b) == hash
    })
}

/// Names the first departure at row `r` (expected: seq `w.e`, linked to `w.p1`).
fn classify(
    conn: &Connection,
    w: &Walk,
    r: &RowRec,
    bytes: &[u8],
    content_ok: bool,
) -> Result<ChainFinding> {
    let e = w.e;
    let around = |c: u64| c.saturating_sub(SEARCH_WINDOW).max(1)..=c.saturating_add(SEARCH_WINDOW);
    let next_prev = |after: i64| -> Result<Option<Vec<u8>>> {
        Ok(conn
            .query_row(
                "SELECT prev_hash FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1",
                [after],
                |x| x.get(0),
            )
            .optional()?)
    };
    // Where the true successor of the last good event went (a full scan, on the failure path only).
    let successor = |not: i64| -> Result<Option<u64>> {
        let s: Option<i64> = conn
            .query_row(
                "SELECT seq FROM events WHERE prev_hash = ?1 AND seq <> ?2 ORDER BY seq LIMIT 1",
                rusqlite::params![&w.p1[..], not],
                |x| x.get(0),
            )
            .optional()?;
        Ok(s.map(|s| u64::try_from(s).unwrap_or(0)))
    };

    if r.seq < seq_sql(e) {
        // Stored before the chain start: an event moved there from later, or a foreign row.
        let moved = (!r.malformed)
            .then(|| original_seq(bytes, r.hash, around(e)))
            .flatten();
        return Ok(match moved {
            Some(x) if x >= e => ChainFinding::Reordered {
                seq: x,
                stored_at: u64::try_from(r.seq).unwrap_or(0),
            },
            _ => ChainFinding::Inserted {
                seq: u64::try_from(r.seq).unwrap_or(0),
            },
        });
    }
    let rs = u64::try_from(r.seq).unwrap_or(0);
    let orig = if content_ok {
        Some(rs)
    } else if r.malformed {
        None
    } else {
        original_seq(bytes, r.hash, around(rs).chain(around(e)))
    };

    // The previous accepted row was foreign: this one links to the row before it.
    if e >= 2 && orig == Some(e - 1) && w.p2.is_some() && r.prev == w.p2 {
        return Ok(ChainFinding::Inserted { seq: e - 1 });
    }
    let next_links_here =
        |seq: i64| -> Result<bool> { Ok(next_prev(seq)?.as_deref() == Some(&w.p1[..])) };
    Ok(match orig {
        Some(x) if x == e && rs == e => {
            // Intact and in place, but not linked to the previous event.
            if next_links_here(r.seq)? {
                ChainFinding::Inserted { seq: e }
            } else if e - 1 > w.start {
                ChainFinding::Modified { seq: e - 1 }
            } else {
                ChainFinding::Modified { seq: e }
            }
        }
        Some(x) if x == e => ChainFinding::Modified { seq: e },
        Some(x) if x > e => match successor(r.seq)? {
            Some(s) => ChainFinding::Reordered {
                seq: e,
                stored_at: s,
            },
            None => ChainFinding::Deleted {
                first_seq: e,
                last_seq: x - 1,
            },
        },
        Some(_) => ChainFinding::Inserted { seq: rs },
        None => {
            if rs == e && next_links_here(r.seq)? {
                ChainFinding::Inserted { seq: e }
            } else if rs > e {
                match successor(r.seq)? {
                    Some(s) => ChainFinding::Reordered {
                        seq: e,
                        stored_at: s,
                    },
                    None => ChainFinding::Deleted {
                        first_seq: e,
                        last_seq: rs - 1,
                    },
                }
            } else {
                ChainFinding::Modified { seq: e }
            }
        }
    })
}
