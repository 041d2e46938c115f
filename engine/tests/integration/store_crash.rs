//! Crash safety: a child process ingesting in a loop is killed with SIGKILL at random
//! moments; after each kill the store opens, every committed recording reads back exactly,
//! nothing partial is visible, and leftovers are cleaned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use theta_engine::crypto::LocalKeyring;
use theta_engine::store::{IngestOptions, Store, StoreOptions};

use crate::common::{Rng, assert_window_matches, files_under};
use crate::synth::Spec;

const CHILD_ENV: &str = "THETA_CRASH_CHILD";

fn crash_spec(seed: u64) -> Spec {
    let mut s = Spec::new(seed, &[256, 256, 256, 64, 1], 1.0, 20 + seed % 90);
    s.annotations = (seed % 4) as usize;
    if seed.is_multiple_of(3) {
        s.gaps = vec![(7, 1.5)];
    }
    s
}

fn seed_of(patient: &str) -> u64 {
    patient
        .rsplit("seed=")
        .next()
        .and_then(|s| s.parse().ok())
        .expect("the synthetic patient field carries its seed")
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
    files_under(dir)
        .into_iter()
        .map(|f| {
            let n = std::fs::metadata(&f).unwrap().len();
            (f, n)
        })
        .collect()
}

/// The child: ingests recordings one after the other until killed.
#[test]
#[ignore = "run by sigkill_during_ingest_leaves_whole_recordings_or_nothing"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let base: u64 = std::env::var("THETA_CRASH_SEED").unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ring = LocalKeyring::open_file(&dir.join("keys")).unwrap();
        let store = Store::open_local(&dir.join("store"), Arc::new(ring), StoreOptions::default())
            .await
            .unwrap();
        for i in 0.. {
            let spec = crash_spec(base * 1000 + i);
            let opts = IngestOptions {
                block_seconds: 5.0,
                data_object_bytes: 48 << 10,
                ..Default::default()
            };
            store.ingest(spec.source(), opts).await.unwrap();
        }
    });
}

#[test]
fn sigkill_during_ingest_leaves_whole_recordings_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let ring = LocalKeyring::create_file(&dir.path().join("keys"), "test").unwrap();
    let ring = Arc::new(ring);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(Store::init_local(
        &root,
        "test",
        Arc::clone(&ring) as Arc<dyn theta_engine::crypto::Keyring>,
        StoreOptions::default(),
    ))
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let mut removed_total = 0;
    let mut committed_total = 0;
    // Files of recordings already checked: immutable, so a later round only has to show
    // they are untouched.
    let mut checked: BTreeMap<String, Vec<(PathBuf, u64)>> = BTreeMap::new();
    let rounds = 14;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "store_crash::crash_child",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("THETA_CRASH_SEED", (round + 1).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + rng.below(1500)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();

        rt.block_on(async {
            // The child is dead: its lease is stale at once (same host, process gone).
            let opts = StoreOptions {
                cleanup_on_open: false,
                lease_ttl: Duration::ZERO,
                ..Default::default()
            };
            let store = Store::open_local(
                &root,
                Arc::clone(&ring) as Arc<dyn theta_engine::crypto::Keyring>,
                opts,
            )
            .await
            .unwrap();
            let report = store.cleanup().await.unwrap();
            assert!(report.live.is_empty(), "{report:?}");
            removed_total += report.removed.len();
            let ids = store.recording_ids().await.unwrap();
            committed_total = ids.len();
            for id in &ids {
                let key = id.to_string();
                let rec = store.recording(*id).await.unwrap();
                if let Some(files) = checked.get(&key) {
                    assert_eq!(
                        &snapshot(&root.join("rec").join(&key)),
                        files,
                        "{key} changed"
                    );
                    continue;
                }
                let spec = crash_spec(seed_of(&rec.header().patient));
                assert_window_matches(&rec, &spec, 0.0, rec.duration()).await;
                let anns: Vec<_> = rec
                    .annotations()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|a| a.annotation)
                    .collect();
                assert_eq!(anns, spec.annotation_list());
                checked.insert(key.clone(), snapshot(&root.join("rec").join(&key)));
            }
            // Nothing but the root and committed recordings is left.
            let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
            for f in files_under(&root) {
                let rel = f
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                assert!(!rel.contains('#'), "staging file left: {rel}");
                if rel == "theta.store" {
                    continue;
                }
                let parts: Vec<&str> = rel.split('/').collect();
                assert_eq!(parts[0], "rec", "leftover {rel}");
                assert!(
                    names.iter().any(|n| n == parts[1]),
                    "partial recording left: {rel}"
                );
            }
            if round + 1 == rounds {
                let v = store.verify().await.unwrap();
                assert!(v.is_clean(), "{v:?}");
            }
        });
    }
    eprintln!("{committed_total} recordings committed, {removed_total} partial ingests cleaned");
    assert!(
        committed_total > 0,
        "the child never committed: lengthen the delays"
    );
    assert!(
        removed_total > 0,
        "no kill landed mid-ingest: the test proved nothing"
    );
}
