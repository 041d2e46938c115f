//! Component tests of the audit trail: real SQLite files in temporary directories, tampered with
//! by raw SQL as an intruder with write access to the file would.

mod concurrency;
mod export;
mod lifecycle;
mod tamper;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use tempfile::TempDir;

use super::canonical::{EVENT_VERSION, FIELD_COUNT, FieldBytes, Hash, encode_event, sha256};
use super::*;

/// A log in one temporary directory, its signing key in another.
pub(super) struct Fixture {
    pub(super) _dir: TempDir,
    pub(super) _key_dir: TempDir,
    pub(super) path: PathBuf,
    pub(super) key_path: PathBuf,
    pub(super) env: Environment,
}

impl Fixture {
    pub(super) fn new(env: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key_dir = tempfile::tempdir().unwrap();
        let env = Environment::try_new(env).unwrap();
        let key_path = key_dir.path().join("audit-signing.key");
        AuditSigningKey::generate(env.clone())
            .unwrap()
            .write_new(&key_path)
            .unwrap();
        Fixture {
            path: dir.path().join("audit.db"),
            _dir: dir,
            _key_dir: key_dir,
            key_path,
            env,
        }
    }

    pub(super) fn key(&self) -> AuditSigningKey {
        AuditSigningKey::load(&self.key_path).unwrap()
    }

    pub(super) fn open(&self, opts: AuditLogOptions) -> AuditLog {
        AuditLog::open_with_key(&self.path, self.key(), opts).unwrap()
    }

    pub(super) fn trusted(&self) -> AuditVerifyKeys {
        AuditVerifyKeys::single(self.key().verify_key())
    }

    pub(super) fn verify(&self) -> VerifyReport {
        AuditReader::open(&self.path)
            .unwrap()
            .verify(&self.trusted())
            .unwrap()
    }

    /// A raw connection with the append-only triggers dropped, as an intruder would.
    pub(super) fn raw(&self) -> Connection {
        let c = Connection::open(&self.path).unwrap();
        c.execute_batch(
            "DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete;
             DROP TRIGGER IF EXISTS checkpoints_no_update; DROP TRIGGER IF EXISTS checkpoints_no_delete;",
        )
        .unwrap();
        c
    }
}

/// Event `i`: every field filled, values varying with `i`.
pub(super) fn full_event(i: u64) -> AuditEvent {
    AuditEvent::builder(AuditAction::AnnotationUpdate)
        .at_ms(1_767_225_600_000 + i as i64 * 1000)
        .actor_account(&format!("acc-{}", i % 3))
        .session(&format!("sess-{i}"))
        .client_addr(std::net::IpAddr::from([192, 0, 2, (i % 250) as u8]))
        .user_agent("Mozilla/5.0 theta-viewer")
        .tenant(&format!("chu-{}", i % 2))
        .recording(&format!("rec-{:04}", i % 5))
        .resource(ResourceKind::Annotation, &format!("ann-{i}"))
        .outcome(Outcome::Failure)
        .reason(Reason::InternalError)
        .build()
        .unwrap()
}

/// A fixture holding `n` full events appended in batches of `batch`, checkpoints every `every`.
pub(super) fn log_with(n: u64, batch: usize, every: u64) -> Fixture {
    let fx = Fixture::new("test");
    let mut log = fx.open(AuditLogOptions::default().with_checkpoint_every_events(every));
    let events: Vec<_> = (1..=n).map(full_event).collect();
    for b in events.chunks(batch) {
        log.append(b).unwrap();
    }
    drop(log);
    fx
}

/// The stored hash of event `seq`.
pub(super) fn stored_hash(c: &Connection, seq: i64) -> Hash {
    let h: Vec<u8> = c
        .query_row("SELECT hash FROM events WHERE seq = ?1", [seq], |r| {
            r.get(0)
        })
        .unwrap();
    Hash::try_from(h.as_slice()).unwrap()
}

/// The 12 variable columns of row `seq`, raw.
pub(super) fn stored_fields(c: &Connection, seq: i64) -> (i64, [Option<Vec<u8>>; FIELD_COUNT]) {
    c.query_row(
        "SELECT ts_ms, action, outcome, actor_kind, actor, session, client_addr, user_agent, tenant, \
         recording, resource_kind, resource_id, reason FROM events WHERE seq = ?1",
        [seq],
        |r| {
            let ts: i64 = r.get(0)?;
            let mut f: [Option<Vec<u8>>; FIELD_COUNT] = Default::default();
            for (i, slot) in f.iter_mut().enumerate() {
                *slot = match r.get_ref(1 + i)? {
                    rusqlite::types::ValueRef::Null => None,
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        Some(b.to_vec())
                    }
                    _ => panic!("unexpected type"),
                };
            }
            Ok((ts, f))
        },
    )
    .unwrap()
}

/// The hash an event with these values would have: what an intruder who knows the format (but
/// not the signing key) can compute.
pub(super) fn forge_hash(
    seq: u64,
    ts: i64,
    prev: &Hash,
    fields: &[Option<Vec<u8>>; FIELD_COUNT],
) -> Hash {
    let refs: FieldBytes<'_> = std::array::from_fn(|i| fields[i].as_deref());
    let mut b = Vec::new();
    encode_event(&mut b, EVENT_VERSION, seq, ts, prev, &refs);
    sha256(&b)
}

/// Recomputes `prev_hash` and `hash` of every event from `from_seq` on (an intruder covering
/// their tracks after editing event `from_seq`).
pub(super) fn rehash_from(c: &Connection, from_seq: i64) {
    let mut prev: Hash = if from_seq > 1 {
        stored_hash(c, from_seq - 1)
    } else {
        let v: Vec<u8> = c
            .query_row("SELECT prev_hash FROM events WHERE seq = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        Hash::try_from(v.as_slice()).unwrap()
    };
    let last: i64 = c
        .query_row("SELECT MAX(seq) FROM events", [], |r| r.get(0))
        .unwrap();
    for seq in from_seq..=last {
        let (ts, fields) = stored_fields(c, seq);
        let h = forge_hash(seq as u64, ts, &prev, &fields);
        c.execute(
            "UPDATE events SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            params![&prev[..], &h[..], seq],
        )
        .unwrap();
        prev = h;
    }
}

pub(super) fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
