//! Leases: a live ingest survives another process's cleanup; a failed ingest leaves nothing.

use std::sync::mpsc;
use std::time::Duration;

use theta_engine::store::{
    Annotation, IngestOptions, SampleSource, SignalInfo, SourceError, SourceHeader, StoreError,
};

use crate::common::{assert_window_matches, files_under, local_store};
use crate::synth::{Spec, Synth};

/// A source that waits for a go-ahead before each record after the first few, or fails.
struct Gated {
    inner: Synth,
    gate: mpsc::Receiver<bool>,
    served: u64,
}

impl SampleSource for Gated {
    fn header(&self) -> &SourceHeader {
        self.inner.header()
    }
    fn signals(&self) -> &[SignalInfo] {
        self.inner.signals()
    }
    fn record_duration(&self) -> f64 {
        self.inner.record_duration()
    }
    fn record_count(&self) -> Option<u64> {
        self.inner.record_count()
    }
    fn next_record(&mut self, out: &mut [&mut [i32]]) -> Result<Option<f64>, SourceError> {
        self.served += 1;
        if self.served == 25 {
            match self.gate.recv() {
                Ok(true) => {}
                _ => return Err("input truncated at record 25".into()),
            }
        }
        self.inner.next_record(out)
    }
    fn take_annotations(&mut self) -> Result<Vec<Annotation>, SourceError> {
        self.inner.take_annotations()
    }
}

async fn wait_for_lease(root: &std::path::Path) {
    for _ in 0..500 {
        let leases = root.join("leases");
        if leases.exists() && std::fs::read_dir(&leases).unwrap().count() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no lease appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_ingest_survives_cleanup_and_failed_ingest_leaves_nothing() {
    let ls = local_store().await;
    let mut spec = Spec::new(61, &[256, 64], 1.0, 60);
    spec.annotations = 1;
    let (go, gate) = mpsc::channel();
    let src = Gated {
        inner: spec.source(),
        gate,
        served: 0,
    };
    let store = ls.store.clone();
    let opts = IngestOptions {
        block_seconds: 2.0,
        data_object_bytes: 8 << 10,
        ..Default::default()
    };
    let task = tokio::spawn(async move { store.ingest(src, opts).await });
    wait_for_lease(&ls.root()).await;
    // Let the first blocks reach the object store, then clean up from "another process".
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = ls.reopen().await;
    let report = other.cleanup().await.unwrap();
    assert_eq!(report.live.len(), 1, "{report:?}");
    assert!(report.removed.is_empty());
    assert!(
        other.recording_ids().await.unwrap().is_empty(),
        "nothing visible yet"
    );
    go.send(true).unwrap();
    let done = task.await.unwrap().unwrap();
    let rec = other.recording(done.recording).await.unwrap();
    assert_window_matches(&rec, &spec, 0.0, rec.duration()).await;
    assert!(
        !ls.root().join("leases").exists() || files_under(&ls.root().join("leases")).is_empty()
    );

    // A source failing half-way: an error, and no trace of the recording.
    let before = files_under(&ls.root());
    let (go, gate) = mpsc::channel();
    let src = Gated {
        inner: spec.source(),
        gate,
        served: 0,
    };
    go.send(false).unwrap();
    let e = ls
        .store
        .ingest(
            src,
            IngestOptions {
                block_seconds: 2.0,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Source { .. }), "{e}");
    assert!(e.to_string().contains("record 25"));
    assert_eq!(files_under(&ls.root()), before);
    assert_eq!(
        ls.store.recording_ids().await.unwrap(),
        vec![done.recording]
    );
}
