//! Tampering by raw SQL is found at the exact place, with the right kind.

use rusqlite::params;
use rusqlite::types::Value;

use super::*;
use crate::audit::canonical::{CheckpointKind, FIELD_NAMES, checkpoint_message};
use crate::audit::schema::read_meta;

const N: u64 = 30;
const K: i64 = 14;

fn chain_finding(fx: &Fixture) -> ChainFinding {
    let r = fx.verify();
    r.chain
        .clone()
        .unwrap_or_else(|| panic!("tampering not detected: {r:?}"))
}

#[test]
fn untouched_log_verifies() {
    let fx = log_with(N, 4, 10);
    let r = fx.verify();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.events_checked, N);
    assert_eq!((r.first_seq, r.last_seq), (Some(1), Some(N)));
    assert_eq!(r.last_checkpoint_seq, Some(30));
    assert_eq!(r.seal_seq, Some(30));
    // Periodic checkpoints at 10, 20, 30 plus the seal.
    assert_eq!(r.signatures_checked, 4);
}

/// Flips one bit of one byte of column `col` of row `seq`, whatever its type.
fn flip_one_byte(c: &Connection, seq: i64, col: &str) {
    let v: Value = c
        .query_row(
            &format!("SELECT {col} FROM events WHERE seq = ?1"),
            [seq],
            |r| r.get(0),
        )
        .unwrap();
    let new = match v {
        Value::Integer(i) => Value::Integer(i ^ 0x100),
        Value::Text(s) => {
            let mut b = s.into_bytes();
            let mid = b.len() / 2;
            b[mid] ^= 0x01;
            Value::Text(String::from_utf8(b).unwrap())
        }
        Value::Blob(mut b) => {
            let mid = b.len() / 2;
            b[mid] ^= 0x01;
            Value::Blob(b)
        }
        other => panic!("column {col} holds {other:?}"),
    };
    c.execute(
        &format!("UPDATE events SET {col} = ?1 WHERE seq = ?2"),
        params![new, seq],
    )
    .unwrap();
}

#[test]
fn one_byte_in_any_field_is_found_at_its_event() {
    let columns = ["v", "ts_ms"]
        .into_iter()
        .chain(FIELD_NAMES)
        .chain(["prev_hash", "hash"]);
    for col in columns {
        let fx = log_with(N, 4, 10);
        flip_one_byte(&fx.raw(), K, col);
        assert_eq!(
            chain_finding(&fx),
            ChainFinding::Modified { seq: K as u64 },
            "column {col}"
        );
    }
}

#[test]
fn changing_a_sequence_number_moves_the_event() {
    let fx = log_with(N, 4, 10);
    let moved = K ^ (1 << 40);
    fx.raw()
        .execute("UPDATE events SET seq = ?1 WHERE seq = ?2", [moved, K])
        .unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Reordered {
            seq: K as u64,
            stored_at: moved as u64
        }
    );
}

#[test]
fn first_and_last_events_too() {
    let fx = log_with(N, 4, 10);
    flip_one_byte(&fx.raw(), 1, "actor");
    assert_eq!(chain_finding(&fx), ChainFinding::Modified { seq: 1 });

    let fx = log_with(N, 4, 10);
    flip_one_byte(&fx.raw(), N as i64, "session");
    assert_eq!(chain_finding(&fx), ChainFinding::Modified { seq: N });
}

#[test]
fn deletions_are_found() {
    let fx = log_with(N, 4, 10);
    fx.raw()
        .execute("DELETE FROM events WHERE seq = ?1", [K])
        .unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Deleted {
            first_seq: K as u64,
            last_seq: K as u64
        }
    );

    let fx = log_with(N, 4, 10);
    fx.raw()
        .execute("DELETE FROM events WHERE seq BETWEEN ?1 AND ?2", [K, K + 2])
        .unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Deleted {
            first_seq: K as u64,
            last_seq: K as u64 + 2
        }
    );

    let fx = log_with(N, 4, 10);
    fx.raw()
        .execute("DELETE FROM events WHERE seq = 1", [])
        .unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Deleted {
            first_seq: 1,
            last_seq: 1
        }
    );
}

#[test]
fn deletion_with_renumbering_is_found() {
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    c.execute("DELETE FROM events WHERE seq = ?1", [K]).unwrap();
    c.execute_batch(&format!(
        "UPDATE events SET seq = -seq WHERE seq > {K}; UPDATE events SET seq = -seq - 1 WHERE seq < 0;"
    ))
    .unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Deleted {
            first_seq: K as u64,
            last_seq: K as u64
        }
    );
}

#[test]
fn truncated_tails_are_reported_as_such() {
    // Cut inside the signed part: the last periodic checkpoint (30) is beyond the end.
    let fx = log_with(N, 4, 10);
    fx.raw()
        .execute("DELETE FROM events WHERE seq > 25", [])
        .unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Truncated {
            last_present: 25,
            expected_last: 30
        }
    );

    // Cut after the last periodic checkpoint (20): the seal over 27 reveals it.
    let fx = log_with(27, 4, 10);
    fx.raw()
        .execute("DELETE FROM events WHERE seq > 24", [])
        .unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Truncated {
            last_present: 24,
            expected_last: 27
        }
    );

    // The intruder also removed the seal: the unsigned tail after checkpoint 20 is reported.
    let fx = log_with(27, 4, 10);
    let c = fx.raw();
    c.execute("DELETE FROM events WHERE seq > 24", []).unwrap();
    c.execute("DELETE FROM seal", []).unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::UnsealedTail {
            after_seq: 20,
            last_seq: 24
        }
    );
}

/// Shifts events `from..` up by one, freeing `from`.
fn make_room(c: &Connection, from: i64) {
    c.execute_batch(&format!(
        "UPDATE events SET seq = -seq WHERE seq >= {from}; UPDATE events SET seq = -seq + 1 WHERE seq < 0;"
    ))
    .unwrap();
}

fn insert_row(
    c: &Connection,
    seq: i64,
    ts: i64,
    f: &[Option<Vec<u8>>; FIELD_COUNT],
    prev: &Hash,
    hash: &Hash,
) {
    let mut vals: Vec<Value> = vec![Value::Integer(seq), Value::Integer(1), Value::Integer(ts)];
    for (i, x) in f.iter().enumerate() {
        vals.push(match x {
            None => Value::Null,
            Some(b) if FIELD_NAMES[i] == "client_addr" => Value::Blob(b.clone()),
            Some(b) => Value::Text(String::from_utf8(b.clone()).unwrap()),
        });
    }
    vals.push(Value::Blob(prev.to_vec()));
    vals.push(Value::Blob(hash.to_vec()));
    c.execute(
        "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        rusqlite::params_from_iter(vals),
    )
    .unwrap();
}

#[test]
fn insertions_are_found() {
    // A forged event with a correct hash, linked to its predecessor, others renumbered.
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    let prev = stored_hash(&c, K - 1);
    let (ts, mut f) = stored_fields(&c, K - 1);
    f[4] = Some(b"sess-forged".to_vec());
    make_room(&c, K);
    let h = forge_hash(K as u64, ts, &prev, &f);
    insert_row(&c, K, ts, &f, &prev, &h);
    assert_eq!(chain_finding(&fx), ChainFinding::Inserted { seq: K as u64 });

    // A clumsy forgery (random hash).
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    let prev = stored_hash(&c, K - 1);
    let (ts, f) = stored_fields(&c, K - 1);
    make_room(&c, K);
    insert_row(&c, K, ts, &f, &prev, &[0x5A; 32]);
    assert_eq!(chain_finding(&fx), ChainFinding::Inserted { seq: K as u64 });

    // Appended after the head without the key: beyond the seal.
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    let prev = stored_hash(&c, N as i64);
    let (ts, f) = stored_fields(&c, N as i64);
    let h = forge_hash(N + 1, ts, &prev, &f);
    insert_row(&c, N as i64 + 1, ts, &f, &prev, &h);
    assert_eq!(chain_finding(&fx), ChainFinding::Inserted { seq: N + 1 });

    // Stored before the first event.
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    let (ts, f) = stored_fields(&c, 1);
    insert_row(&c, 0, ts, &f, &[0; 32], &[1; 32]);
    assert_eq!(chain_finding(&fx), ChainFinding::Inserted { seq: 0 });
}

#[test]
fn reorderings_are_found() {
    let fx = log_with(N, 4, 10);
    fx.raw()
        .execute_batch(&format!(
            "UPDATE events SET seq = -1 WHERE seq = {K};
             UPDATE events SET seq = {K} WHERE seq = {K} + 1;
             UPDATE events SET seq = {K} + 1 WHERE seq = -1;"
        ))
        .unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Reordered {
            seq: K as u64,
            stored_at: K as u64 + 1
        }
    );

    // Event K moved three places later.
    let fx = log_with(N, 4, 10);
    fx.raw()
        .execute_batch(&format!(
            "UPDATE events SET seq = -1 WHERE seq = {K};
             UPDATE events SET seq = seq - 1 WHERE seq BETWEEN {K} + 1 AND {K} + 3;
             UPDATE events SET seq = {K} + 3 WHERE seq = -1;"
        ))
        .unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Reordered {
            seq: K as u64,
            stored_at: K as u64 + 3
        }
    );
}

#[test]
fn rehashed_edits_are_caught_by_links_and_signatures() {
    // Edited and re-hashed alone: the next event's link betrays it.
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    c.execute("UPDATE events SET tenant = 'chu-9' WHERE seq = ?1", [K])
        .unwrap();
    let (ts, f) = stored_fields(&c, K);
    let prev = stored_hash(&c, K - 1);
    let h = forge_hash(K as u64, ts, &prev, &f);
    c.execute(
        "UPDATE events SET hash = ?1 WHERE seq = ?2",
        params![&h[..], K],
    )
    .unwrap();
    assert_eq!(chain_finding(&fx), ChainFinding::Modified { seq: K as u64 });

    // Whole tail re-hashed: the next signed checkpoint (20) disagrees.
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    c.execute("UPDATE events SET tenant = 'chu-9' WHERE seq = ?1", [K])
        .unwrap();
    rehash_from(&c, K);
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Rewritten {
            after_seq: 10,
            through_seq: 20
        }
    );

    // After the last checkpoint: the seal disagrees.
    let fx = log_with(27, 4, 10);
    let c = fx.raw();
    c.execute("UPDATE events SET tenant = 'chu-9' WHERE seq = 24", [])
        .unwrap();
    rehash_from(&c, 24);
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Rewritten {
            after_seq: 20,
            through_seq: 27
        }
    );
}

fn signature_findings(fx: &Fixture) -> Vec<SignatureFinding> {
    fx.verify().signatures
}

#[test]
fn forged_checkpoints_are_detected() {
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    let meta = read_meta(&c, &fx.path).unwrap();
    let intruder = AuditSigningKey::generate(fx.env.clone()).unwrap();
    let h = stored_hash(&c, 25);
    let msg = checkpoint_message(
        CheckpointKind::Periodic,
        &meta.log_id,
        &meta.environment,
        25,
        &h,
        7,
    );
    let sig = intruder.sign(&msg);
    // Claiming the real key's id: the signature fails.
    c.execute(
        "INSERT INTO checkpoints (kind, seq, hash, time_ms, key_id, signature) VALUES (1, 25, ?1, 7, ?2, ?3)",
        params![&h[..], fx.key().key_id().as_str(), &sig[..]],
    )
    .unwrap();
    // Under its own id: unknown key.
    c.execute(
        "INSERT INTO checkpoints (kind, seq, hash, time_ms, key_id, signature) VALUES (1, 25, ?1, 7, ?2, ?3)",
        params![&h[..], intruder.key_id().as_str(), &sig[..]],
    )
    .unwrap();
    let r = fx.verify();
    assert!(r.chain.is_none(), "{r:?}");
    assert_eq!(r.signatures.len(), 2, "{r:?}");
    assert!(matches!(
        r.signatures[0],
        SignatureFinding::BadSignature {
            seq: 25,
            kind: Some(CheckpointKind::Periodic),
            ..
        }
    ));
    assert!(
        matches!(&r.signatures[1], SignatureFinding::UnknownKey { key_id, .. } if key_id == intruder.key_id().as_str())
    );
}

#[test]
fn altered_checkpoints_and_seal_fail_their_signature() {
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    c.execute(
        "UPDATE checkpoints SET time_ms = time_ms + 1 WHERE seq = 20",
        [],
    )
    .unwrap();
    let s = signature_findings(&fx);
    assert!(
        matches!(
            s.as_slice(),
            [SignatureFinding::BadSignature { seq: 20, .. }]
        ),
        "{s:?}"
    );

    let fx = log_with(N, 4, 10);
    fx.raw()
        .execute("UPDATE seal SET time_ms = time_ms + 1", [])
        .unwrap();
    let r = fx.verify();
    assert!(
        matches!(
            r.signatures.as_slice(),
            [SignatureFinding::BadSignature {
                kind: Some(CheckpointKind::Seal),
                ..
            }]
        ),
        "{r:?}"
    );
    assert_eq!(
        r.chain,
        Some(ChainFinding::UnsealedTail {
            after_seq: 30,
            last_seq: 30
        })
    );
}

#[test]
fn a_forged_anchor_does_not_excuse_deleted_events() {
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    let meta = read_meta(&c, &fx.path).unwrap();
    let intruder = AuditSigningKey::generate(fx.env.clone()).unwrap();
    let h = stored_hash(&c, 10);
    c.execute("DELETE FROM events WHERE seq <= 10", []).unwrap();
    let msg = checkpoint_message(
        CheckpointKind::Anchor,
        &meta.log_id,
        &meta.environment,
        10,
        &h,
        7,
    );
    c.execute(
        "INSERT INTO checkpoints (kind, seq, hash, time_ms, key_id, signature) VALUES (2, 10, ?1, 7, ?2, ?3)",
        params![&h[..], fx.key().key_id().as_str(), &intruder.sign(&msg)[..]],
    )
    .unwrap();
    let r = fx.verify();
    assert_eq!(
        r.chain,
        Some(ChainFinding::Deleted {
            first_seq: 1,
            last_seq: 10
        })
    );
    assert!(matches!(
        r.signatures.as_slice(),
        [SignatureFinding::BadSignature {
            kind: Some(CheckpointKind::Anchor),
            ..
        }]
    ));
}

#[test]
fn keys_of_another_environment_are_refused_by_the_verifier() {
    let fx = Fixture::new("prod");
    let mut log = fx.open(AuditLogOptions::default().with_checkpoint_every_events(5));
    log.append(&(1..=5).map(full_event).collect::<Vec<_>>())
        .unwrap();
    drop(log);
    let c = fx.raw();
    let meta = read_meta(&c, &fx.path).unwrap();
    let dev = AuditSigningKey::generate(Environment::try_new("dev").unwrap()).unwrap();
    let h = stored_hash(&c, 5);
    let msg = checkpoint_message(
        CheckpointKind::Periodic,
        &meta.log_id,
        &meta.environment,
        5,
        &h,
        9,
    );
    c.execute(
        "INSERT INTO checkpoints (kind, seq, hash, time_ms, key_id, signature) VALUES (1, 5, ?1, 9, ?2, ?3)",
        params![&h[..], dev.key_id().as_str(), &dev.sign(&msg)[..]],
    )
    .unwrap();
    let mut trusted = fx.trusted();
    trusted.insert(dev.verify_key()); // a misconfigured verifier
    let r = AuditReader::open(&fx.path)
        .unwrap()
        .verify(&trusted)
        .unwrap();
    assert!(
        matches!(r.signatures.as_slice(), [SignatureFinding::WrongEnvironment { key_environment, .. }] if key_environment == "dev"),
        "{r:?}"
    );
}

#[test]
fn verifying_with_the_wrong_key_fails() {
    let fx = log_with(12, 4, 10);
    let other = AuditSigningKey::generate(fx.env.clone()).unwrap();
    let r = AuditReader::open(&fx.path)
        .unwrap()
        .verify(&AuditVerifyKeys::single(other.verify_key()))
        .unwrap();
    assert!(!r.is_ok());
    assert_eq!(r.signatures.len(), 2); // checkpoint 10 and the seal
    assert!(
        r.signatures
            .iter()
            .all(|s| matches!(s, SignatureFinding::UnknownKey { .. }))
    );
}

#[test]
fn the_writer_refuses_to_extend_a_damaged_head() {
    let fx = log_with(N, 4, 10);
    fx.raw()
        .execute("DELETE FROM events WHERE seq > 27", [])
        .unwrap();
    let err = AuditLog::open_with_key(&fx.path, fx.key(), AuditLogOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::HeadMismatch {
                seal_seq: Some(30),
                head_seq: Some(27)
            }
        ),
        "{err}"
    );

    // A handle opened before the damage notices it at the next append.
    let fx = log_with(N, 4, 10);
    let mut log = fx.open(AuditLogOptions::default());
    fx.raw()
        .execute("DELETE FROM events WHERE seq = 30", [])
        .unwrap();
    assert!(matches!(
        log.append(&[full_event(99)]),
        Err(AuditError::HeadMismatch { .. })
    ));
    // Forged seal (intruder key) over the truncated head: refused as well.
    let c = fx.raw();
    let meta = read_meta(&c, &fx.path).unwrap();
    let intruder = AuditSigningKey::generate(fx.env.clone()).unwrap();
    let h = stored_hash(&c, 29);
    let msg = checkpoint_message(
        CheckpointKind::Seal,
        &meta.log_id,
        &meta.environment,
        29,
        &h,
        1,
    );
    c.execute(
        "UPDATE seal SET seq = 29, hash = ?1, time_ms = 1, signature = ?2",
        params![&h[..], &intruder.sign(&msg)[..]],
    )
    .unwrap();
    assert!(matches!(
        log.append(&[full_event(99)]),
        Err(AuditError::HeadMismatch { .. })
    ));
}

#[test]
fn tampering_in_the_middle_is_still_reported_after_later_appends() {
    let fx = log_with(N, 4, 10);
    flip_one_byte(&fx.raw(), K, "recording");
    let mut log = fx.open(AuditLogOptions::default());
    log.append(&[full_event(31), full_event(32)]).unwrap();
    drop(log);
    assert_eq!(chain_finding(&fx), ChainFinding::Modified { seq: K as u64 });
}

#[test]
fn the_first_of_several_problems_is_reported() {
    let fx = log_with(N, 4, 10);
    let c = fx.raw();
    flip_one_byte(&c, 22, "tenant");
    c.execute("DELETE FROM events WHERE seq = 9", []).unwrap();
    c.execute("DELETE FROM events WHERE seq > 28", []).unwrap();
    assert_eq!(
        chain_finding(&fx),
        ChainFinding::Deleted {
            first_seq: 9,
            last_seq: 9
        }
    );
    let r = fx.verify();
    assert_eq!(r.events_checked, 8);
    assert_eq!(r.to_string(), "event 9 was deleted");
}
