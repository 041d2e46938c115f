//! Opening, configuration, checkpoints, retention and purge.

use chrono::{TimeZone, Utc};

use super::*;

fn event_at(ts: chrono::DateTime<Utc>, i: u64) -> AuditEvent {
    AuditEvent::builder(AuditAction::RecordingReadWindow)
        .at(ts)
        .actor_account(&format!("acc-{}", i % 4))
        .recording("rec-1")
        .tenant("chu-a")
        .build()
        .unwrap()
}

fn requester() -> Requester {
    Requester {
        actor: Actor::service("retention").unwrap(),
        session: None,
        origin: Origin::default(),
    }
}

fn checkpoint_seqs(fx: &Fixture, kind: CheckpointKind) -> Vec<i64> {
    let c = Connection::open(&fx.path).unwrap();
    let mut st = c
        .prepare("SELECT seq FROM checkpoints WHERE kind = ?1 ORDER BY seq")
        .unwrap();
    st.query_map([kind.code()], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn retention_refuses_less_than_a_year() {
    assert!(Retention::days(364).is_err());
    assert_eq!(Retention::days(365).unwrap().as_days(), 365);
    assert!(Retention::days(3650).is_ok());
    assert_eq!(Retention::default().as_days(), Retention::MIN_DAYS);
    // 365 days before 1 March 2028 is 2 March 2027 (2028 is a leap year): the cutoff takes the
    // calendar year instead, so a full year is always kept.
    let now = Utc.with_ymd_and_hms(2028, 3, 1, 12, 0, 0).unwrap();
    assert_eq!(
        Retention::default().cutoff(now),
        Utc.with_ymd_and_hms(2027, 3, 1, 12, 0, 0).unwrap()
    );
    let long = Retention::days(400).unwrap();
    assert_eq!(long.cutoff(now), now - chrono::TimeDelta::days(400));
}

#[test]
fn options_are_validated() {
    let fx = Fixture::new("test");
    let bad = AuditLog::open_with_key(
        &fx.path,
        fx.key(),
        AuditLogOptions::default().with_checkpoint_every_events(0),
    );
    assert!(matches!(bad, Err(AuditError::InvalidConfig { .. })));
}

#[test]
fn checkpoints_fall_exactly_every_n_events() {
    let fx = log_with(35, 7, 10);
    assert_eq!(
        checkpoint_seqs(&fx, CheckpointKind::Periodic),
        vec![10, 20, 30]
    );
    assert!(fx.verify().is_ok());
}

#[test]
fn hourly_checkpoints() {
    let fx = Fixture::new("test");
    let mut log =
        fx.open(AuditLogOptions::default().with_checkpoint_interval(Duration::from_millis(1)));
    std::thread::sleep(Duration::from_millis(3));
    log.append(&[full_event(1)]).unwrap();
    // The interval has passed since the log was created: the append signed a checkpoint.
    assert_eq!(checkpoint_seqs(&fx, CheckpointKind::Periodic), vec![1]);
    std::thread::sleep(Duration::from_millis(3));
    // Nothing new since: nothing to sign.
    assert_eq!(log.checkpoint_if_due().unwrap(), None);

    let fx = Fixture::new("test");
    let mut log = fx.open(AuditLogOptions::default());
    log.append(&[full_event(1), full_event(2)]).unwrap();
    assert_eq!(
        log.checkpoint_if_due().unwrap(),
        None,
        "an hour has not passed"
    );
    let cp = log.checkpoint().unwrap().unwrap();
    assert_eq!((cp.kind, cp.seq), (CheckpointKind::Periodic, 2));
    assert_eq!(log.checkpoint().unwrap(), None);
}

#[test]
fn open_checks_key_placement_and_environment() {
    let fx = Fixture::new("prod");
    let config = AuditConfig {
        log_path: fx.path.clone(),
        signing_key_path: fx.key_path.clone(),
        verify_key_path: None,
        environment: fx.env.clone(),
        options: AuditLogOptions::default(),
    };
    let mut log = AuditLog::open(&config).unwrap();
    log.append(&[full_event(1)]).unwrap();
    drop(log);
    assert!(AuditVerifyKeys::published_path(&fx.path).exists());

    // A key in the log's own directory is refused.
    let beside = fx.path.with_file_name("audit.key");
    AuditSigningKey::generate(fx.env.clone())
        .unwrap()
        .write_new(&beside)
        .unwrap();
    let err = AuditLog::open(&AuditConfig {
        signing_key_path: beside,
        ..config.clone()
    })
    .unwrap_err();
    assert!(matches!(err, AuditError::Key { .. }), "{err}");

    // A dev key for a prod log is refused, by configuration and by the log's own tag.
    let dev_dir = tempfile::tempdir().unwrap();
    let dev_path = dev_dir.path().join("dev.key");
    let dev = AuditSigningKey::generate(Environment::try_new("dev").unwrap()).unwrap();
    dev.write_new(&dev_path).unwrap();
    let err = AuditLog::open(&AuditConfig {
        signing_key_path: dev_path,
        ..config
    })
    .unwrap_err();
    assert!(
        matches!(err, AuditError::EnvironmentMismatch { .. }),
        "{err}"
    );
    let err = AuditLog::open_with_key(&fx.path, dev, AuditLogOptions::default()).unwrap_err();
    assert!(
        matches!(err, AuditError::EnvironmentMismatch { .. }),
        "{err}"
    );
}

#[test]
fn unknown_schema_versions_are_refused() {
    let fx = log_with(3, 3, 10);
    Connection::open(&fx.path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(matches!(
        AuditReader::open(&fx.path),
        Err(AuditError::Format { .. })
    ));
    assert!(matches!(
        AuditLog::open_with_key(&fx.path, fx.key(), AuditLogOptions::default()),
        Err(AuditError::Format { .. })
    ));

    let other = fx.path.with_file_name("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = AuditReader::open(&other).unwrap_err();
    assert!(err.to_string().contains("not an audit log"), "{err}");
}

#[test]
fn the_append_only_guard_stops_stray_updates() {
    let fx = log_with(12, 3, 10);
    let c = Connection::open(&fx.path).unwrap();
    assert!(c.execute("UPDATE events SET tenant = 'x'", []).is_err());
    assert!(c.execute("DELETE FROM events", []).is_err());
    assert!(c.execute("DELETE FROM checkpoints", []).is_err());
}

#[test]
fn purge_keeps_the_chain_verifiable_and_is_audited() {
    let fx = Fixture::new("test");
    let mut log = fx.open(AuditLogOptions::default().with_checkpoint_every_events(10));
    let now = Utc::now();
    let old = now - chrono::TimeDelta::days(400);
    let young = now - chrono::TimeDelta::days(10);
    let olds: Vec<_> = (0..25)
        .map(|i| event_at(old + chrono::TimeDelta::seconds(i), i as u64))
        .collect();
    let youngs: Vec<_> = (0..15)
        .map(|i| event_at(young + chrono::TimeDelta::seconds(i), i as u64))
        .collect();
    for b in olds.chunks(6).chain(youngs.chunks(6)) {
        log.append(b).unwrap();
    }

    let report = log.purge_expired(now, &requester()).unwrap();
    assert_eq!(report.purged, 25);
    let anchor = report.anchor.clone().unwrap();
    assert_eq!((anchor.kind, anchor.seq), (CheckpointKind::Anchor, 25));
    assert_eq!(report.purge_event_seq, 41);
    let r = fx.verify();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        (r.anchor_seq, r.first_seq, r.last_seq),
        (Some(25), Some(26), Some(41))
    );
    assert_eq!(r.events_checked, 16);
    // Periodic checkpoints of the purged part are gone; later ones stay.
    assert_eq!(checkpoint_seqs(&fx, CheckpointKind::Periodic), vec![30, 40]);

    // The purge itself is an audit event naming the purged range.
    let mut out = Vec::new();
    AuditReader::open(&fx.path)
        .unwrap()
        .export(
            &ExportFilter {
                actor: Some("retention".into()),
                ..Default::default()
            },
            ExportFormat::Jsonl,
            &mut out,
        )
        .unwrap();
    let line: serde_json::Value =
        serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["action"], "audit.purge");
    assert_eq!(line["resource_kind"], "audit_range");
    assert_eq!(line["resource_id"], "1-25");
    assert_eq!(line["seq"], 41);

    // Nothing old enough: still recorded, nothing deleted.
    let report = log.purge_expired(now, &requester()).unwrap();
    assert_eq!(
        (
            report.purged,
            report.anchor.is_none(),
            report.purge_event_seq
        ),
        (0, true, 42)
    );

    // A year later everything goes; the newest anchor carries the chain.
    let later = now + chrono::TimeDelta::days(400);
    let report = log.purge_expired(later, &requester()).unwrap();
    assert_eq!(report.purged, 17);
    assert_eq!(report.anchor.unwrap().seq, 42);
    drop(log);
    let r = fx.verify();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        (r.anchor_seq, r.first_seq, r.last_seq),
        (Some(42), Some(43), Some(43))
    );
    assert_eq!(checkpoint_seqs(&fx, CheckpointKind::Anchor), vec![25, 42]);

    // Tampering after a purge is still found; removing the anchors does not make it pass.
    let c = fx.raw();
    c.execute("UPDATE events SET actor = 'retentioN' WHERE seq = 43", [])
        .unwrap();
    assert_eq!(fx.verify().chain, Some(ChainFinding::Modified { seq: 43 }));
    c.execute("UPDATE events SET actor = 'retention' WHERE seq = 43", [])
        .unwrap();
    assert!(fx.verify().is_ok());
    c.execute("DELETE FROM checkpoints WHERE kind = 2", [])
        .unwrap();
    assert_eq!(
        fx.verify().chain,
        Some(ChainFinding::Deleted {
            first_seq: 1,
            last_seq: 42
        })
    );
}

#[test]
fn purge_refuses_to_destroy_tampered_evidence() {
    let fx = Fixture::new("test");
    let mut log = fx.open(AuditLogOptions::default());
    let now = Utc::now();
    let old = now - chrono::TimeDelta::days(500);
    let events: Vec<_> = (0..20)
        .map(|i| event_at(old + chrono::TimeDelta::seconds(i), i as u64))
        .collect();
    log.append(&events).unwrap();
    log.append(&[event_at(now, 99)]).unwrap();
    fx.raw()
        .execute("UPDATE events SET tenant = 'chu-b' WHERE seq = 5", [])
        .unwrap();
    let err = log.purge_expired(now, &requester()).unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::PurgeRefused {
                through_seq: 20,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("event 5 was modified"), "{err}");
    assert_eq!(AuditReader::open(&fx.path).unwrap().len().unwrap(), 21);
}

#[test]
fn verify_log_uses_pinned_keys_over_the_published_file() {
    let fx = log_with(5, 5, 10);
    assert!(
        verify_log(&fx.path, &AuditVerifyKeys::default())
            .unwrap()
            .is_ok()
    );
    // An intruder replaces the published key file: a pinned verifier is not fooled.
    let intruder = AuditSigningKey::generate(fx.env.clone()).unwrap();
    std::fs::write(
        AuditVerifyKeys::published_path(&fx.path),
        intruder.verify_key().to_line(),
    )
    .unwrap();
    assert!(verify_log(&fx.path, &fx.trusted()).unwrap().is_ok());
    assert!(
        !verify_log(&fx.path, &AuditVerifyKeys::default())
            .unwrap()
            .is_ok()
    );
}

use std::time::Duration;
