//! Research projects: one secret per project, created once, sealed (nothing in clear), stable
//! across reopenings, re-wrapped by key rotation, tamper-evident.

use std::sync::Arc;

use theta_engine::crypto::{Keyring, LocalKeyring};
use theta_engine::store::{Store, StoreError, StoreOptions};

use crate::common::files_under;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_secrets_are_sealed_stable_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let key_path = dir.path().join("store.keys");
    let ring = LocalKeyring::create_file(&key_path, "dev").unwrap();
    let old_kek = ring.current_kek().unwrap();
    let store = Store::init_local(&root, "dev", Arc::new(ring), StoreOptions::default())
        .await
        .unwrap();

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
    let mut ring = LocalKeyring::open_file(&key_path).unwrap();
    ring.add_generated();
    ring.save().unwrap();
    let store = Store::open_local(&root, Arc::new(ring), StoreOptions::default())
        .await
        .unwrap();
    let report = store.rotate_keys().await.unwrap();
    assert_eq!(report.projects_rewrapped, 2, "{report:?}");
    let mut ring = LocalKeyring::open_file(&key_path).unwrap();
    ring.remove(&old_kek).unwrap();
    ring.save().unwrap();
    let store = Store::open_local(&root, Arc::new(ring), StoreOptions::default())
        .await
        .unwrap();
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
