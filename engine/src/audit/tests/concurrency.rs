//! Several writers — threads sharing an appender, threads with their own connection, and other
//! processes — keep one linear, verifiable chain.

use std::process::Command;
use std::sync::Arc;

use super::*;

fn event(writer: u64, i: u64) -> AuditEvent {
    AuditEvent::builder(AuditAction::RecordingReadMetadata)
        .actor_account(&format!("w{writer}"))
        .session(&format!("s{i}"))
        .recording("rec-1")
        .build()
        .unwrap()
}

fn count_by_actor(fx: &Fixture) -> std::collections::BTreeMap<String, u64> {
    let c = Connection::open(&fx.path).unwrap();
    let mut st = c
        .prepare("SELECT actor, COUNT(*) FROM events GROUP BY actor")
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Periodic checkpoints are strictly increasing, no more than `n` events apart, and the head is
/// less than `n` events past the last one.
fn assert_checkpoints_every(fx: &Fixture, n: i64) {
    let c = Connection::open(&fx.path).unwrap();
    let mut st = c
        .prepare("SELECT seq FROM checkpoints WHERE kind = 1 ORDER BY id")
        .unwrap();
    let mut seqs: Vec<i64> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let last: i64 = c
        .query_row("SELECT MAX(seq) FROM events", [], |r| r.get(0))
        .unwrap();
    seqs.insert(0, 0);
    for w in seqs.windows(2) {
        assert!(w[0] < w[1] && w[1] - w[0] <= n, "checkpoints {seqs:?}");
    }
    assert!(
        last - seqs.last().unwrap() < n,
        "head {last}, checkpoints {seqs:?}"
    );
}

#[test]
fn threads_sharing_one_appender() {
    let fx = Fixture::new("test");
    let log = fx.open(AuditLogOptions::default().with_checkpoint_every_events(100));
    let appender = AuditAppender::spawn(
        log,
        AppenderOptions {
            max_batch: 64,
            ..Default::default()
        },
    )
    .unwrap();
    std::thread::scope(|s| {
        for w in 0..8 {
            let a = appender.clone();
            s.spawn(move || {
                for i in 0..250 {
                    a.append(event(w, i)).unwrap();
                }
            });
        }
    });
    let head = appender.flush().unwrap();
    assert_eq!(head, 2000);
    let stats = appender.stats();
    assert_eq!(
        (stats.enqueued, stats.committed, stats.failed_commits),
        (2000, 2000, 0)
    );
    assert_eq!(appender.append_durable(event(9, 0)).unwrap(), 2001);
    appender.shutdown().unwrap();

    let r = fx.verify();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.events_checked, 2001);
    // Shutdown signed a final checkpoint over the head.
    assert_eq!(r.last_checkpoint_seq, Some(2001));
    let counts = count_by_actor(&fx);
    assert!((0..8).all(|w| counts[&format!("w{w}")] == 250));
    assert_checkpoints_every(&fx, 100);
}

#[test]
fn threads_with_their_own_connections() {
    let fx = Arc::new(Fixture::new("test"));
    std::thread::scope(|s| {
        for w in 0..4u64 {
            let fx = Arc::clone(&fx);
            s.spawn(move || {
                let mut log = fx.open(AuditLogOptions::default().with_checkpoint_every_events(10));
                for b in 0..40u64 {
                    let size = 1 + (b * 7 + w) % 5;
                    let batch: Vec<_> = (0..size).map(|i| event(w, b * 10 + i)).collect();
                    log.append(&batch).unwrap();
                }
            });
        }
    });
    let r = fx.verify();
    assert!(r.is_ok(), "{r:?}");
    let total: u64 = count_by_actor(&fx).values().sum();
    assert_eq!(r.events_checked, total);
    assert_checkpoints_every(&fx, 10);
}

#[test]
fn a_failing_log_is_reported_to_flush_and_shutdown() {
    let fx = log_with(5, 5, 10);
    let log = fx.open(AuditLogOptions::default());
    // Damage the head after opening: every commit is now refused.
    fx.raw()
        .execute("DELETE FROM events WHERE seq = 5", [])
        .unwrap();
    let appender = AuditAppender::spawn(
        log,
        AppenderOptions {
            max_retry_backoff: std::time::Duration::from_millis(5),
            ..Default::default()
        },
    )
    .unwrap();
    appender.append(event(1, 1)).unwrap();
    let err = appender.flush().unwrap_err();
    assert!(matches!(err, AuditError::CommitFailed { .. }), "{err}");
    let stats = appender.stats();
    assert!(stats.failed_commits >= 1);
    assert!(stats.last_error.unwrap().contains("seal"));
    assert!(matches!(
        appender.shutdown(),
        Err(AuditError::CommitFailed { .. })
    ));
}

#[test]
fn a_stuck_writer_still_shuts_down() {
    let fx = log_with(5, 5, 10);
    let log = fx.open(AuditLogOptions::default());
    fx.raw()
        .execute("DELETE FROM events WHERE seq = 5", [])
        .unwrap();
    let appender = AuditAppender::spawn(
        log,
        AppenderOptions {
            queue_capacity: 2,
            max_batch: 2,
            enqueue_timeout: std::time::Duration::from_millis(50),
            max_retry_backoff: std::time::Duration::from_millis(5),
            ..Default::default()
        },
    )
    .unwrap();
    // The writer holds a full, failing batch and stops draining: the queue fills and `append`
    // reports the log unavailable instead of blocking the caller for ever.
    let refused = (0..20)
        .map(|i| appender.append(event(1, i)))
        .filter(Result::is_err)
        .count();
    assert!(refused > 0);
    let other = appender.clone();
    assert!(matches!(
        appender.shutdown(),
        Err(AuditError::CommitFailed { .. })
    ));
    assert!(!other.is_running());
    assert!(matches!(
        other.append(event(1, 99)),
        Err(AuditError::AppenderUnavailable { .. })
    ));
}

/// Environment variables that turn [`child_process_appender`] into a writer.
const CHILD_DB: &str = "THETA_AUDIT_TEST_CHILD_DB";
const CHILD_KEY: &str = "THETA_AUDIT_TEST_CHILD_KEY";
const CHILD_ID: &str = "THETA_AUDIT_TEST_CHILD_ID";
const PER_PROCESS: u64 = 300;

/// Not a test on its own: the body of the writer processes spawned by
/// [`two_processes_and_this_one_append_to_one_chain`].
#[test]
#[ignore = "run by two_processes_and_this_one_append_to_one_chain as a child process"]
fn child_process_appender() {
    let (Ok(db), Ok(key), Ok(id)) = (
        std::env::var(CHILD_DB),
        std::env::var(CHILD_KEY),
        std::env::var(CHILD_ID),
    ) else {
        return;
    };
    let id: u64 = id.parse().unwrap();
    let key = AuditSigningKey::load(Path::new(&key)).unwrap();
    let log = AuditLog::open_with_key(
        Path::new(&db),
        key,
        AuditLogOptions::default().with_checkpoint_every_events(50),
    )
    .unwrap();
    let appender = AuditAppender::spawn(
        log,
        AppenderOptions {
            max_batch: 7,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..PER_PROCESS {
        appender.append(event(id, i)).unwrap();
        if i % 40 == 0 {
            appender.flush().unwrap();
        }
    }
    appender.shutdown().unwrap();
}

#[test]
fn two_processes_and_this_one_append_to_one_chain() {
    let fx = Fixture::new("test");
    // Create the schema first so the children race on appends, not on creation.
    drop(fx.open(AuditLogOptions::default().with_checkpoint_every_events(50)));
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (1..=2)
        .map(|id| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "audit::tests::concurrency::child_process_appender",
                    "--test-threads=1",
                ])
                .env(CHILD_DB, path_str(&fx.path))
                .env(CHILD_KEY, path_str(&fx.key_path))
                .env(CHILD_ID, id.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut log = fx.open(AuditLogOptions::default().with_checkpoint_every_events(50));
    for b in 0..(PER_PROCESS / 3) {
        log.append(&[event(0, b * 3), event(0, b * 3 + 1), event(0, b * 3 + 2)])
            .unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "child writer failed");
    }
    let r = fx.verify();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.events_checked, 3 * PER_PROCESS);
    let counts = count_by_actor(&fx);
    assert_eq!(counts.len(), 3);
    assert!(counts.values().all(|&n| n == PER_PROCESS), "{counts:?}");
    assert_checkpoints_every(&fx, 50);
}
