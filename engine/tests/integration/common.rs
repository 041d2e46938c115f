//! Shared helpers for the store tests.

use std::path::PathBuf;
use std::sync::Arc;

use theta_engine::crypto::{KekId, Keyring, LocalKeyring};
use theta_engine::store::{IngestOptions, Recording, Store, StoreOptions, WindowRequest};

use crate::synth::Spec;

pub(crate) struct LocalStore {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) store: Store,
    pub(crate) keyring: Arc<dyn Keyring>,
}

impl LocalStore {
    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    /// Another handle on the same folder (its own cache), as a second process would have.
    pub(crate) async fn reopen(&self) -> Store {
        Store::open_local(
            &self.root(),
            Arc::clone(&self.keyring),
            StoreOptions::default(),
        )
        .await
        .unwrap()
    }
}

pub(crate) async fn local_store() -> LocalStore {
    let dir = tempfile::tempdir().unwrap();
    let keyring: Arc<dyn Keyring> = Arc::new(LocalKeyring::generate("test"));
    let store = Store::init_local(
        &dir.path().join("store"),
        "test",
        Arc::clone(&keyring),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    LocalStore {
        dir,
        store,
        keyring,
    }
}

/// A store whose keyring is a key file (`dev`), as `theta init` makes: for the rotation tests,
/// which change the key file between openings.
pub(crate) struct KeyFileStore {
    _dir: tempfile::TempDir,
    pub(crate) root: PathBuf,
    key_path: PathBuf,
    /// The key-encryption key the store was created under.
    pub(crate) first_kek: KekId,
    pub(crate) store: Store,
}

impl KeyFileStore {
    pub(crate) async fn new() -> KeyFileStore {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let key_path = dir.path().join("store.keys");
        let ring = LocalKeyring::create_file(&key_path, "dev").unwrap();
        let first_kek = ring.current_kek().unwrap();
        let store = Store::init_local(&root, "dev", Arc::new(ring), StoreOptions::default())
            .await
            .unwrap();
        KeyFileStore {
            _dir: dir,
            root,
            key_path,
            first_kek,
            store,
        }
    }

    /// Changes the key file with `change`, saves it, and opens the store with it (as the next
    /// `theta` command would); returns what `change` returned and the store.
    pub(crate) async fn rekeyed<R>(
        &self,
        change: impl FnOnce(&mut LocalKeyring) -> R,
    ) -> (R, Store) {
        let mut ring = LocalKeyring::open_file(&self.key_path).unwrap();
        let r = change(&mut ring);
        ring.save().unwrap();
        let store = Store::open_local(&self.root, Arc::new(ring), StoreOptions::default())
            .await
            .unwrap();
        (r, store)
    }
}

pub(crate) async fn ingest(store: &Store, spec: &Spec, opts: IngestOptions) -> Recording {
    let report = store.ingest(spec.source(), opts).await.unwrap();
    store.recording(report.recording).await.unwrap()
}

pub(crate) use theta_fixtures::files_under;

/// Compares a window of every channel with the spec, using the recording's onsets.
pub(crate) async fn assert_window_matches(rec: &Recording, spec: &Spec, start: f64, duration: f64) {
    let w = rec
        .window(&WindowRequest::new(start, duration))
        .await
        .unwrap_or_else(|e| panic!("window {start}+{duration}: {e}"));
    let tl = rec.timeline().clone();
    let mut seen = 0;
    for block in &w.blocks {
        let data = block.digital().unwrap();
        for (row, &ch) in block.channels.iter().enumerate() {
            let (first, want) = spec.expected(ch, |r| tl.record_onset(r), start, start + duration);
            let got: Vec<i32> = data.row(row).to_vec();
            assert_eq!(
                got.len(),
                want.len(),
                "ch {ch} window {start}+{duration}: length"
            );
            assert_eq!(got, want, "ch {ch} window {start}+{duration}");
            if !want.is_empty() {
                assert_eq!(block.first_sample, first, "ch {ch} first sample");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, spec.samples_per_record.len());
}

/// A small deterministic generator for test parameters.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
