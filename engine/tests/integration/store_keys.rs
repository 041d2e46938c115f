//! Key rotation re-wraps data keys without touching data; shredding makes a recording
//! unreadable forever.

use theta_engine::crypto::LocalKeyring;
use theta_engine::store::{IngestOptions, RecordingStatus, StoreError};

use crate::common::{KeyFileStore, assert_window_matches, files_under, ingest};
use crate::synth::Spec;

fn digest(path: &std::path::Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_then_shred() {
    let k = KeyFileStore::new().await;
    let (root, old_kek, store) = (&k.root, &k.first_kek, &k.store);
    let specs = [
        Spec::new(51, &[64, 16], 1.0, 30),
        Spec::new(52, &[32], 2.0, 10),
    ];
    let mut ids = Vec::new();
    for s in &specs {
        ids.push(ingest(store, s, IngestOptions::default()).await.id());
    }
    let before: Vec<_> = files_under(root)
        .into_iter()
        .filter(|p| !p.ends_with("key"))
        .map(|p| (p.clone(), digest(&p)))
        .collect();

    // Rotate: a new KEK becomes current; the old one stays until everything is re-wrapped.
    let (new_kek, store) = k.rekeyed(LocalKeyring::add_generated).await;
    let report = store.rotate_keys().await.unwrap();
    assert_eq!(report.rewrapped.len(), 2, "{report:?}");
    assert!(report.failed.is_empty());
    let again = store.rotate_keys().await.unwrap();
    assert_eq!(again.already_current.len(), 2);
    for (p, d) in &before {
        assert_eq!(&digest(p), d, "{} must not change", p.display());
    }
    // The old KEK can now go: everything reads with the new one alone.
    let (ids_left, store) = k
        .rekeyed(|ring| {
            ring.remove(old_kek).unwrap();
            ring.kek_ids()
        })
        .await;
    assert_eq!(ids_left, vec![new_kek]);
    for (s, id) in specs.iter().zip(&ids) {
        let rec = store.recording(*id).await.unwrap();
        assert_window_matches(&rec, s, 0.0, rec.duration()).await;
    }

    // Shred the first recording.
    let wrapped_before = std::fs::read(root.join(format!("rec/{}/key", ids[0]))).unwrap();
    store.shred(ids[0]).await.unwrap();
    let after = std::fs::read(root.join(format!("rec/{}/key", ids[0]))).unwrap();
    assert!(after.len() < wrapped_before.len());
    let tail = &wrapped_before[wrapped_before.len() - 60..];
    assert!(
        !after.windows(60).any(|w| w == tail),
        "the wrapped key is gone"
    );
    let e = store.recording(ids[0]).await.unwrap_err();
    assert!(matches!(e, StoreError::Shredded { .. }), "{e}");
    // Even a fresh process with every key cannot read it.
    let (_, fresh) = k.rekeyed(|_| ()).await;
    assert!(matches!(
        fresh.recording(ids[0]).await.unwrap_err(),
        StoreError::Shredded { .. }
    ));
    let list = fresh.list().await.unwrap();
    let status = |id| &list.iter().find(|i| i.id == id).unwrap().status;
    assert!(matches!(status(ids[0]), RecordingStatus::Shredded { .. }));
    assert!(matches!(status(ids[1]), RecordingStatus::Available { .. }));
    let report = fresh.verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.shredded, vec![ids[0]]);
    let rot = fresh.rotate_keys().await.unwrap();
    assert_eq!(rot.shredded, vec![ids[0]]);
    assert!(matches!(
        fresh
            .shred("00000000000000000000000000000000".parse().unwrap())
            .await
            .unwrap_err(),
        StoreError::UnknownRecording { .. }
    ));
}
