//! Annotations: import, add, edit, delete, history with authors, concurrent writers.

use proptest::prelude::*;
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

/// An annotation entered by a user lies on the recording's timeline and says something printable;
/// each refusal names what is wrong (never the text) and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entered_annotations_lie_on_the_recording_and_say_something() {
    let ls = local_store().await;
    let spec = Spec::new(32, &[32], 1.0, 5);
    let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
    let end = rec.duration();
    let before = rec.annotations().await.unwrap().len();
    let a = |onset: f64, duration: Option<f64>, text: &str| Annotation {
        onset,
        duration,
        text: text.into(),
    };
    let refused = [
        (
            a(1e308, None, "x"),
            "beyond what an EDF+ annotation can hold",
        ),
        (a(-10.0, None, "x"), "outside the recording"),
        (a(end + 1.0, None, "x"), "outside the recording"),
        (a(1.0, Some(1e308), "x"), "not a finite number"),
        (a(1.0, Some(end), "x"), "past the recording's end"),
        (a(1.0, None, ""), "empty"),
        (a(1.0, None, " \u{3000} "), "empty"),
        (a(1.0, None, "secret\u{14}x"), "EDF+ annotation delimiters"),
        (a(1.0, None, "secret\u{0}x"), "EDF+ annotation delimiters"),
        (a(1.0, None, "secret\nx"), "control character"),
        (a(1.0, None, "secret\u{7f}"), "control character"),
    ];
    for (bad, why) in refused {
        let err = rec.add_annotation("u", bad.clone()).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::InvalidArgument { .. }), "{msg}");
        assert!(msg.contains(why), "{bad:?}: {msg}");
        assert!(!msg.contains("secret"), "the text leaked: {msg}");
    }
    assert_eq!(rec.annotations().await.unwrap().len(), before);
    // The edges and any printable text are fine; an edit is held to the same rules.
    let id = rec
        .add_annotation("u", a(0.0, Some(end), "Pointe-onde 3 Hz — réveil ✓"))
        .await
        .unwrap();
    rec.add_annotation("u", a(end, Some(0.0), "fin"))
        .await
        .unwrap();
    assert!(
        rec.edit_annotation("u", id, a(0.0, Some(end + 1.0), "x"))
            .await
            .is_err()
    );
    assert_eq!(rec.annotations().await.unwrap().len(), before + 2);
}

/// Whatever the store accepts from a user can be written back as an EDF+ annotation: the research
/// export writes one TAL per stored annotation, so no annotation can make its recording
/// unexportable.
#[test]
fn every_accepted_annotation_fits_an_edf_plus_file() {
    use theta_engine::edf::{EdfReader, EdfWriterBuilder, Format, SignalHeader};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ls, rec) = rt.block_on(async {
        let ls = local_store().await;
        let spec = Spec::new(33, &[16], 1.0, 5);
        let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
        (ls, rec)
    });
    let onset = prop_oneof![
        12 => 0.0..5.0f64,
        2 => -20.0..30.0f64,
        1 => Just(0.0),
        1 => Just(5.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(1e300),
        1 => Just(-1e300),
        1 => Just(9.3e9),
    ];
    let duration = prop::option::of(prop_oneof![
        8 => 0.0..2.0f64,
        1 => 0.0..10.0f64,
        1 => Just(f64::MAX),
        1 => Just(-1.0)
    ]);
    let text = prop::collection::vec(
        prop_oneof![
            1 => Just('\u{0}'),
            1 => Just('\u{14}'),
            1 => Just('\u{15}'),
            1 => Just('\n'),
            1 => Just(' '),
            1 => Just('é'),
            1 => Just('✓'),
            1 => Just('\u{202e}'),
            60 => proptest::char::range('a', 'z'),
        ],
        0..12,
    )
    .prop_map(|cs| cs.into_iter().collect::<String>());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    });
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&(onset, duration, text), |(onset, duration, text)| {
            let a = Annotation {
                onset,
                duration,
                text,
            };
            if rt.block_on(rec.add_annotation("u", a.clone())).is_err() {
                return Ok(());
            }
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let start = chrono::NaiveDate::from_ymd_opt(2024, 5, 1)
                .unwrap()
                .and_hms_opt(8, 0, 0)
                .unwrap();
            let mut w = EdfWriterBuilder::new(Format::EdfPlusC, start, 1.0)
                .with_signals(vec![SignalHeader::new(
                    "EEG Cz-Ref",
                    4,
                    (-32768, 32767),
                    (-3276.8, 3276.7),
                    "uV",
                )])
                .with_annotations(vec![theta_engine::edf::Annotation {
                    onset: a.onset,
                    duration: a.duration,
                    text: a.text.clone(),
                }])
                .with_expected_records(5)
                .build(std::io::Cursor::new(Vec::new()))
                .map_err(|e| TestCaseError::fail(format!("{a:?}: {e}")))?;
            for _ in 0..5 {
                w.write_record(&[&[0; 4]]).unwrap();
            }
            let bytes = w.finish().unwrap().into_inner();
            let r = EdfReader::new(std::io::Cursor::new(bytes), Default::default()).unwrap();
            prop_assert!(
                r.annotations().iter().any(|b| b.text == a.text),
                "{a:?} did not come back"
            );
            Ok(())
        })
        .unwrap();
    let accepted = accepted.into_inner();
    assert!(accepted > 10, "only {accepted} cases were accepted");
    drop(ls);
}
