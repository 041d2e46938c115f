//! Research projects: one secret per project, created once, sealed (nothing in clear), stable
//! across reopenings, re-wrapped by key rotation, tamper-evident.

use std::sync::Arc;

use theta_engine::crypto::LocalKeyring;
use theta_engine::store::{Store, StoreError, StoreOptions};

use crate::common::{KeyFileStore, files_under};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_secrets_are_sealed_stable_and_rotated() {
    let k = KeyFileStore::new().await;
    let (root, old_kek, store) = (&k.root, &k.first_kek, &k.store);

    let a = store.project_secret("Epilepsy cohort 2026").await.unwrap();
    let a2 = store.project_secret("Epilepsy cohort 2026").await.unwrap();
    let b = store.project_secret("sleep").await.unwrap();
    assert_eq!(*a, *a2, "created once, then read back");
    assert_ne!(*a, *b, "one secret per project");
    assert!(store.project_mapping("never-used").await.unwrap().is_none());
    let e = store.project_secret("").await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidArgument { .. }), "{e}");

    store
        .record_project_mapping(
            "Epilepsy cohort 2026",
            &[("abc123abc123".into(), "code:PAT-884213".into())],
            &[("0011223344556677".into(), "f".repeat(32))],
        )
        .await
        .unwrap();
    let m = store
        .project_mapping("Epilepsy cohort 2026")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.subjects["abc123abc123"], "code:PAT-884213");
    assert_eq!(m.recordings.len(), 1);

    // Nothing readable in clear: not the name, the secret, nor the mapping.
    let objects = files_under(&root.join("projects"));
    assert_eq!(objects.len(), 2);
    let secret_hex = hex::encode(*a);
    for p in &objects {
        let bytes = std::fs::read(p).unwrap();
        for needle in [
            "Epilepsy".as_bytes(),
            b"PAT-884213",
            b"abc123abc123",
            secret_hex.as_bytes(),
            &a[..],
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds a clear value",
                p.display()
            );
        }
    }

    // Rotation re-wraps projects; the old KEK can then go.
    let (_, store) = k.rekeyed(LocalKeyring::add_generated).await;
    let report = store.rotate_keys().await.unwrap();
    assert_eq!(report.projects_rewrapped, 2, "{report:?}");
    let (_, store) = k.rekeyed(|ring| ring.remove(old_kek).unwrap()).await;
    assert_eq!(
        *store.project_secret("Epilepsy cohort 2026").await.unwrap(),
        *a
    );
    assert_eq!(
        store
            .project_mapping("Epilepsy cohort 2026")
            .await
            .unwrap()
            .unwrap(),
        m
    );

    // A flipped byte anywhere in the object is refused, never read as another secret.
    // The object is named by the hash of the name (engine/FORMAT.md).
    let pid = {
        use sha2::Digest;
        let d = sha2::Sha256::new()
            .chain_update(b"theta/project/v1\0")
            .chain_update(b"Epilepsy cohort 2026")
            .finalize();
        hex::encode(&d[..16])
    };
    let path = root.join("projects").join(pid);
    let good = std::fs::read(&path).unwrap();
    for at in [9, 30, 50, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let r = store.project_secret("Epilepsy cohort 2026").await;
        assert!(r.is_err(), "byte {at} flipped was accepted");
    }
    std::fs::write(&path, &good).unwrap();
    assert!(store.project_secret("Epilepsy cohort 2026").await.is_ok());
}

/// Hostile bytes in place of a project object (truncated, extended, random, mutated) give an
/// error, never a panic and never a different secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_project_objects_are_refused_without_panicking() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::init_local(
        &root,
        "dev",
        Arc::new(LocalKeyring::generate("dev")),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    let secret = *store.project_secret("p").await.unwrap();
    let path = files_under(&root.join("projects")).pop().unwrap();
    let good = std::fs::read(&path).unwrap();

    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    let strategy = prop_oneof![
        (0..good.len()).prop_map({
            let g = good.clone();
            move |n| g[..n].to_vec()
        }),
        (0..good.len(), any::<u8>()).prop_map({
            let g = good.clone();
            move |(i, b)| {
                let mut v = g.clone();
                v[i] ^= b | 1;
                v
            }
        }),
        proptest::collection::vec(any::<u8>(), 0..400),
    ];
    let handle = tokio::runtime::Handle::current();
    runner
        .run(&strategy, |bytes| {
            std::fs::write(&path, &bytes).unwrap();
            let r = tokio::task::block_in_place(|| handle.block_on(store.project_secret("p")));
            // Even an empty file is an object that fails to parse, not "no project yet".
            prop_assert!(
                r.as_ref().map_or(true, |s| **s == secret),
                "another secret read back"
            );
            prop_assert!(r.is_err() || bytes == good);
            Ok(())
        })
        .unwrap();
    std::fs::write(&path, &good).unwrap();
    assert_eq!(*store.project_secret("p").await.unwrap(), secret);
}
