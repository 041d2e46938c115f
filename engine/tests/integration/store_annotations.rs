//! Annotations: import, add, edit, delete, history with authors, concurrent writers.

use theta_engine::store::{
    Annotation, AnnotationChange, ChunkPlace, IMPORT_AUTHOR, IngestOptions, StoreError,
};

use crate::common::{ingest, local_store};
use crate::synth::Spec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_history_and_concurrent_writers() {
    let ls = local_store().await;
    let spec = Spec::new(31, &[32], 1.0, 5);
    let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
    let imported = rec.annotations().await.unwrap();
    let want = spec.annotation_list();
    assert_eq!(imported.len(), want.len());
    for (a, w) in imported.iter().zip(&want) {
        assert_eq!(&a.annotation, w);
        assert_eq!(a.created_by, IMPORT_AUTHOR);
        assert_eq!(a.version, 1);
    }

    let note = |t: &str| Annotation {
        onset: 2.0,
        duration: Some(1.0),
        text: t.into(),
    };
    let id = rec.add_annotation("user-17", note("spike")).await.unwrap();
    rec.edit_annotation("user-18", id, note("sharp wave"))
        .await
        .unwrap();
    rec.delete_annotation("user-19", imported[0].id)
        .await
        .unwrap();
    let now = rec.annotations().await.unwrap();
    assert_eq!(now.len(), want.len());
    let edited = now.iter().find(|a| a.id == id).unwrap();
    assert_eq!(edited.annotation.text, "sharp wave");
    assert_eq!(edited.version, 2);
    assert_eq!(
        (edited.created_by.as_str(), edited.updated_by.as_str()),
        ("user-17", "user-18")
    );
    let history = rec.annotation_history().await.unwrap();
    let of_id: Vec<_> = history.iter().filter(|v| v.id == id).collect();
    assert_eq!(of_id.len(), 2);
    assert_eq!(of_id[0].annotation.as_ref().unwrap().text, "spike");
    assert_eq!(of_id[1].change, AnnotationChange::Edited);
    assert!(
        history
            .iter()
            .any(|v| v.change == AnnotationChange::Deleted && v.author == "user-19")
    );

    // Errors change nothing.
    assert!(matches!(
        rec.edit_annotation("u", 999, note("x")).await.unwrap_err(),
        StoreError::UnknownAnnotation { id: 999, .. }
    ));
    let bad = Annotation {
        onset: f64::NAN,
        duration: None,
        text: String::new(),
    };
    assert!(rec.add_annotation("u", bad).await.is_err());
    assert!(rec.add_annotation("", note("x")).await.is_err());

    // Two independent handles (as two processes) append at once: nobody is clobbered.
    let other = ls.reopen().await.recording(rec.id()).await.unwrap();
    let (a, b) = tokio::join!(
        async {
            let mut ids = Vec::new();
            for i in 0..8 {
                ids.push(
                    rec.add_annotation("writer-a", note(&format!("a{i}")))
                        .await
                        .unwrap(),
                );
            }
            ids
        },
        async {
            let mut ids = Vec::new();
            for i in 0..8 {
                ids.push(
                    other
                        .add_annotation("writer-b", note(&format!("b{i}")))
                        .await
                        .unwrap(),
                );
            }
            ids
        }
    );
    let mut all: Vec<u64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 16, "ids are unique");
    let fresh = ls.reopen().await.recording(rec.id()).await.unwrap();
    let texts: Vec<String> = fresh
        .annotations()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.annotation.text)
        .collect();
    for i in 0..8 {
        assert!(texts.contains(&format!("a{i}")) && texts.contains(&format!("b{i}")));
    }
    let seqs: Vec<u64> = fresh
        .annotation_history()
        .await
        .unwrap()
        .iter()
        .map(|v| v.seq)
        .collect();
    assert_eq!(
        *seqs.last().unwrap(),
        3 + 16,
        "import + 3 edits + 16 additions"
    );

    // A tampered event is named.
    let path = ls.root().join(format!("rec/{}/ann/{:010}", rec.id(), 2));
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let fresh = ls.reopen().await.recording(rec.id()).await.unwrap();
    match fresh.annotations().await.unwrap_err() {
        StoreError::Integrity { place, .. } => {
            assert_eq!(place, ChunkPlace::AnnotationEvent { seq: 2 })
        }
        e => panic!("{e}"),
    }
}
