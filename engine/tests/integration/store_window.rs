//! Window reads against a synthetic source: every rate, gaps, block and group shapes,
//! record boundaries, first and last samples, units, bad requests, and a property test.

use std::sync::Arc;

use proptest::prelude::*;
use theta_codecs::SampleWidth;
use theta_engine::crypto::LocalKeyring;
use theta_engine::store::{
    ChannelRef, ChannelSelection, ErrorCategory, IngestOptions, MemorySource, SignalInfo,
    SourceHeader, Store, StoreError, StoreOptions, Units, WindowRequest,
};

use crate::common::{Rng, assert_window_matches, ingest, local_store};
use crate::synth::Spec;

fn mixed_spec(seed: u64) -> Spec {
    let mut spec = Spec::new(seed, &[256, 256, 64, 1, 100, 7], 1.0, 75);
    spec.gaps = vec![(20, 2.5), (21, 0.25), (60, 10.0)];
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_equal_the_source_for_every_layout() {
    let ls = local_store().await;
    let spec = mixed_spec(1);
    for (block_seconds, group_size) in [(10.0, 1), (3.0, 4), (1.0, 6), (100.0, 2)] {
        let opts = IngestOptions {
            block_seconds,
            group_size,
            data_object_bytes: 16 << 10,
            ..Default::default()
        };
        let rec = ingest(&ls.store, &spec, opts).await;
        let tl = rec.timeline();
        assert_eq!(tl.num_records(), spec.records);
        for r in 0..spec.records {
            assert!(
                (tl.record_onset(r) - spec.onset(r)).abs() < 1e-9,
                "onset of record {r}"
            );
        }
        assert_eq!(tl.segments().len(), 4, "three gaps");
        let end = rec.duration();
        assert!((end - (spec.onset(spec.records - 1) + 1.0)).abs() < 1e-9);

        // Whole recording, record boundaries, gaps, first and last samples.
        let mut spans = vec![(0.0, end), (0.0, 1e-9), (end - 1e-6, 1.0), (end - 1.0, 1.0)];
        for r in [0u64, 1, 9, 10, 19, 20, 21, 22, 59, 60, 74] {
            let o = tl.record_onset(r);
            spans.push((o, 1.0));
            spans.push((o, 0.5));
            if o > 0.5 {
                spans.push((o - 0.5, 1.0));
            }
            spans.push((o + 1.0 / 256.0, 3.0 / 256.0));
        }
        // In the middle of a gap: samples on both sides.
        spans.push((spec.onset(19) + 1.2, 3.0));
        let mut rng = Rng(block_seconds.to_bits() ^ u64::from(group_size));
        for _ in 0..25 {
            let s = rng.unit() * end;
            let d = 0.001 + rng.unit() * 20.0;
            spans.push((s, d));
        }
        for (s, d) in spans {
            assert_window_matches(&rec, &spec, s, d).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdf_width_physical_units_and_channel_selection() {
    let ls = local_store().await;
    let mut spec = Spec::new(7, &[128, 128, 32], 0.5, 40);
    spec.width = SampleWidth::Bits24;
    let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
    assert_window_matches(&rec, &spec, 0.0, rec.duration()).await;

    let req = WindowRequest::new(2.0, 3.0)
        .channels(ChannelSelection::parse("EEG S02-REF,0"))
        .units(Units::Physical);
    let w = rec.window(&req).await.unwrap();
    assert_eq!(w.blocks.len(), 2, "one block per rate, in request order");
    assert_eq!(w.blocks[0].channels, vec![2]);
    assert_eq!(w.blocks[1].channels, vec![0]);
    assert_eq!(w.blocks[0].sample_rate, 64.0);
    let dig = rec
        .window(&WindowRequest::new(2.0, 3.0).channels(ChannelSelection::indices([2, 0])))
        .await
        .unwrap();
    for (pb, db) in w.blocks.iter().zip(&dig.blocks) {
        let phys = pb.physical().unwrap();
        let d = db.digital().unwrap();
        for (row, &c) in pb.channels.iter().enumerate() {
            let s = &rec.signals()[c];
            for (p, q) in phys.row(row).iter().zip(d.row(row)) {
                assert_eq!(*p, s.to_physical(*q));
            }
        }
    }
    // Case- and space-insensitive label match when unique.
    let w = rec
        .window(&WindowRequest::new(0.0, 1.0).channels(ChannelSelection::parse("eeg s01-ref")))
        .await
        .unwrap();
    assert_eq!(w.blocks[0].channels, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_caller_errors_and_change_nothing() {
    let ls = local_store().await;
    let spec = Spec::new(3, &[64, 64], 1.0, 10);
    let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
    let end = rec.duration();
    for (s, d) in [
        (-1.0, 2.0),
        (end, 1.0),
        (end + 5.0, 1.0),
        (0.0, 0.0),
        (0.0, -1.0),
        (f64::NAN, 1.0),
        (0.0, f64::INFINITY),
        (1e300, 1.0),
        (0.0, -1e300),
    ] {
        let e = rec.window(&WindowRequest::new(s, d)).await.unwrap_err();
        assert!(
            matches!(e, StoreError::WindowOutOfRange { .. }),
            "{s}+{d}: {e}"
        );
        // Huge numbers are spelled short (`1e300`), not in 301 digits.
        assert!(e.to_string().len() < 120, "{e}");
        assert_eq!(e.category(), ErrorCategory::Caller);
    }
    for sel in [
        ChannelSelection::indices([2]),
        ChannelSelection::List(vec![ChannelRef::Label("Cz".into())]),
    ] {
        let e = rec
            .window(&WindowRequest::new(0.0, 1.0).channels(sel))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::UnknownChannel { .. }), "{e}");
    }
    let missing = "0123456789abcdef0123456789abcdef".parse().unwrap();
    assert!(matches!(
        ls.store.recording(missing).await.unwrap_err(),
        StoreError::UnknownRecording { .. }
    ));
    // A size limit: a window of exactly the limit reads, one value more is refused up front.
    let whole = rec.window(&WindowRequest::new(0.0, end)).await.unwrap();
    let values: u64 = whole
        .blocks
        .iter()
        .map(|b| (b.channels.len() * b.len()) as u64)
        .sum();
    assert!(values > 0);
    rec.window(&WindowRequest::new(0.0, end).max_values(values))
        .await
        .unwrap();
    let e = rec
        .window(&WindowRequest::new(0.0, end).max_values(values - 1))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidArgument { .. }), "{e}");
    assert_eq!(e.category(), ErrorCategory::Caller);
    assert!(
        e.to_string().contains(&format!("limit of {}", values - 1)),
        "{e}"
    );
    // Nothing changed: the recording still reads.
    assert_window_matches(&rec, &spec, 0.0, end).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_labels_need_an_index() {
    let ls = local_store().await;
    let spec = Spec::new(5, &[16, 16], 1.0, 3);
    let mut signals = spec.signals();
    signals[1].label = signals[0].label.clone();
    let mut src = MemorySource::new(SourceHeader::default(), signals, 1.0);
    for r in 0..3u64 {
        src.push_record(
            None,
            (0..2)
                .map(|c| (0..16).map(|j| spec.sample(c, r * 16 + j)).collect())
                .collect(),
        );
    }
    let report = ls
        .store
        .ingest(src, IngestOptions::default())
        .await
        .unwrap();
    let rec = ls.store.recording(report.recording).await.unwrap();
    let e = rec
        .window(&WindowRequest::new(0.0, 1.0).channels(ChannelSelection::parse("EEG S00-REF")))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::AmbiguousChannel { ref indices, .. } if indices == &vec![0, 1])
    );
    let w = rec
        .window(&WindowRequest::new(0.0, 3.0).channels(ChannelSelection::parse("1")))
        .await
        .unwrap();
    let want: Vec<i32> = (0..48).map(|i| spec.sample(1, i)).collect();
    assert_eq!(w.blocks[0].digital().unwrap().row(0).to_vec(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_store_and_empty_or_annotation_only_sources() {
    let keyring = Arc::new(LocalKeyring::generate("dev"));
    let store = Store::init(
        Arc::new(object_store::memory::InMemory::new()),
        "dev",
        keyring,
        StoreOptions::default(),
    )
    .await
    .unwrap();
    let spec = Spec::new(9, &[50], 0.2, 33);
    let rec = ingest(&store, &spec, IngestOptions::default()).await;
    assert_window_matches(&rec, &spec, 0.0, rec.duration()).await;

    // Annotation-only recording (EDF+ with record duration 0 and no signals).
    let mut src = MemorySource::new(SourceHeader::default(), Vec::new(), 0.0);
    src.push_record(Some(0.0), Vec::new());
    src.push_annotation(theta_engine::store::Annotation {
        onset: 30.0,
        duration: Some(30.0),
        text: "Sleep stage W".into(),
    });
    let report = store.ingest(src, IngestOptions::default()).await.unwrap();
    let rec = store.recording(report.recording).await.unwrap();
    assert!(rec.signals().is_empty());
    assert_eq!(rec.annotations().await.unwrap().len(), 1);

    // Invalid sources are refused before anything is written.
    let bad = SignalInfo {
        samples_per_record: 0,
        ..spec.signals()[0].clone()
    };
    let src = MemorySource::new(SourceHeader::default(), vec![bad], 1.0);
    let e = store
        .ingest(src, IngestOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Source { .. }), "{e}");
    assert_eq!(store.recording_ids().await.unwrap().len(), 2);
}

#[test]
fn window_bounds_property() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ls, rec, spec) = rt.block_on(async {
        let ls = local_store().await;
        let mut spec = Spec::new(11, &[10, 3, 1], 1.0, 30);
        spec.gaps = vec![(10, 0.5), (20, 3.0)];
        let opts = IngestOptions {
            block_seconds: 4.0,
            ..Default::default()
        };
        let rec = ingest(&ls.store, &spec, opts).await;
        (ls, rec, spec)
    });
    let end = rec.duration();
    let tl = rec.timeline().clone();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    // Starts on a 0.05 s grid hit sample times exactly as often as not.
    let strategy = (0u32..(end * 20.0) as u32, 1u32..400);
    runner
        .run(&strategy, |(s, d)| {
            let (start, duration) = (f64::from(s) * 0.05, f64::from(d) * 0.05);
            let w = rt
                .block_on(rec.window(&WindowRequest::new(start, duration)))
                .unwrap();
            for block in &w.blocks {
                let data = block.digital().unwrap();
                for (row, &ch) in block.channels.iter().enumerate() {
                    let (_, want) =
                        spec.expected(ch, |r| tl.record_onset(r), start, start + duration);
                    prop_assert_eq!(data.row(row).to_vec(), want);
                    // Every returned sample lies in [start, start + duration).
                    let spr = block.samples_per_record;
                    for k in 0..data.ncols() as u64 {
                        let t = tl.sample_time(block.first_sample + k, spr);
                        prop_assert!(t >= start && t < start + duration);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    drop(ls);
}
