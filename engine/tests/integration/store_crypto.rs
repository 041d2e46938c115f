//! Encryption at rest and tamper detection, read through the documented byte layout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use theta_engine::crypto::LocalKeyring;
use theta_engine::store::{
    ChannelSelection, ChunkPlace, IngestOptions, Recording, Store, StoreError, StoreOptions,
    WindowRequest,
};

use crate::common::{assert_window_matches, files_under, ingest, local_store};
use crate::synth::Spec;

/// (path, offset, length) of every chunk of every data object, in chunk order, found by
/// walking the packed objects as `engine/FORMAT.md` describes them.
fn data_chunks(root: &Path, rec: &Recording) -> Vec<(PathBuf, usize, usize)> {
    let dir = root.join(format!("rec/{}/data", rec.id()));
    let mut objects: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    objects.sort();
    let mut out = Vec::new();
    for p in objects {
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"THETA\0PK");
        let mut off = 48;
        while off < bytes.len() {
            assert_eq!(&bytes[off..off + 2], b"TC", "chunk magic");
            let plain = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap()) as usize;
            let len = 8 + 12 + plain + 16;
            out.push((p.clone(), off, len));
            off += len;
        }
        assert_eq!(off, bytes.len());
    }
    out
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

fn read(path: &Path, at: usize, len: usize) -> Vec<u8> {
    std::fs::read(path).unwrap()[at..at + len].to_vec()
}

fn write(path: &Path, at: usize, data: &[u8]) {
    let mut b = std::fs::read(path).unwrap();
    b[at..at + data.len()].copy_from_slice(data);
    std::fs::write(path, b).unwrap();
}

async fn chunk_error(rec: &Recording, channel: usize, block_start: f64) -> Option<ChunkPlace> {
    let req = WindowRequest {
        read_ahead: Some(false),
        ..WindowRequest::new(block_start, 1.0).channels(ChannelSelection::indices([channel]))
    };
    match rec.window(&req).await {
        Ok(_) => None,
        Err(StoreError::Integrity { place, .. }) => Some(place),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn place(channel: u32, block: u64) -> ChunkPlace {
    ChunkPlace::Data {
        group: channel,
        first_channel: channel,
        channels: 1,
        block,
    }
}

/// Every chunk except `bad` reads; each of `bad` fails naming itself.
async fn assert_only_bad(rec: &Recording, store: &Store, bad: &[(u32, u64)]) {
    store.clear_cache();
    let layout = rec.layout();
    let block_seconds = layout.records_per_block as f64 * rec.timeline().record_duration();
    for c in 0..layout.signals {
        for b in 0..layout.blocks() {
            let got = chunk_error(rec, c as usize, b as f64 * block_seconds).await;
            if bad.contains(&(c, b)) {
                assert_eq!(got, Some(place(c, b)), "chunk ({c}, {b}) must fail");
            } else {
                assert_eq!(got, None, "chunk ({c}, {b}) must read");
            }
        }
    }
    let report = store.verify().await.unwrap();
    let mut found: Vec<ChunkPlace> = report.problems.iter().filter_map(|p| p.place).collect();
    found.sort_by_key(|p| format!("{p:?}"));
    let mut want: Vec<ChunkPlace> = bad.iter().map(|&(c, b)| place(c, b)).collect();
    want.sort_by_key(|p| format!("{p:?}"));
    assert_eq!(
        found, want,
        "verify reports exactly the bad chunks: {report:?}"
    );
}

fn spec() -> Spec {
    let mut s = Spec::new(41, &[256, 256, 128], 1.0, 60);
    s.constant = vec![1];
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_swapped_and_moved_chunks_are_detected() {
    let ls = local_store().await;
    let spec = spec();
    let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
    let other = ingest(&ls.store, &spec, IngestOptions::default()).await;
    let root = ls.root();
    let chunks = data_chunks(&root, &rec);
    let layout = rec.layout();
    assert_eq!(chunks.len() as u64, layout.chunks());
    let groups = u64::from(layout.groups());
    let at = |c: u32, b: u64| chunks[(b * groups + u64::from(c)) as usize].clone();
    assert_only_bad(&rec, &ls.store, &[]).await;

    // One byte of each class: clear header, nonce, ciphertext, tag.
    let (p, off, len) = at(0, 2);
    for (what, pos) in [
        ("header", off + 3),
        ("length", off + 5),
        ("nonce", off + 8 + 5),
        ("ciphertext", off + 20 + len / 3),
        ("tag", off + len - 1),
    ] {
        flip(&p, pos);
        let fresh = ls.reopen().await.recording(rec.id()).await.unwrap();
        assert_eq!(
            chunk_error(&fresh, 0, 25.0).await,
            Some(place(0, 2)),
            "{what}"
        );
        assert_eq!(
            chunk_error(&fresh, 1, 25.0).await,
            None,
            "{what}: other channel"
        );
        assert_eq!(
            chunk_error(&fresh, 0, 35.0).await,
            None,
            "{what}: next block"
        );
        flip(&p, pos);
    }
    assert_only_bad(&rec, &ls.store, &[]).await;

    // Swap two chunks of equal length (constant channel, blocks 1 and 3).
    let (p1, o1, l1) = at(1, 1);
    let (p3, o3, l3) = at(1, 3);
    assert_eq!(l1, l3, "constant blocks encode to the same length");
    let (c1, c3) = (read(&p1, o1, l1), read(&p3, o3, l3));
    write(&p1, o1, &c3);
    write(&p3, o3, &c1);
    let fresh_store = ls.reopen().await;
    let fresh = fresh_store.recording(rec.id()).await.unwrap();
    assert_only_bad(&fresh, &fresh_store, &[(1, 1), (1, 3)]).await;
    write(&p1, o1, &c1);
    write(&p3, o3, &c3);

    // Move a chunk from another recording to the same place in this one.
    let (po, oo, lo) = data_chunks(&root, &other)[(2 * groups + 1) as usize].clone();
    assert_eq!(lo, l1);
    let foreign = read(&po, oo, lo);
    let (p2, o2, _) = at(1, 2);
    let own = read(&p2, o2, lo);
    write(&p2, o2, &foreign);
    let fresh_store = ls.reopen().await;
    let fresh = fresh_store.recording(rec.id()).await.unwrap();
    store_assert_block_moved(&fresh, &fresh_store).await;
    write(&p2, o2, &own);
    let fresh_store = ls.reopen().await;
    assert!(fresh_store.verify().await.unwrap().is_clean());
    assert_window_matches(
        &fresh_store.recording(rec.id()).await.unwrap(),
        &spec,
        0.0,
        60.0,
    )
    .await;
}

async fn store_assert_block_moved(rec: &Recording, store: &Store) {
    store.clear_cache();
    assert_eq!(chunk_error(rec, 1, 25.0).await, Some(place(1, 2)));
    assert_eq!(chunk_error(rec, 0, 25.0).await, None);
    let report = store.verify().await.unwrap();
    let places: Vec<_> = report.problems.iter().filter_map(|p| p.place).collect();
    assert!(places.contains(&place(1, 2)), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_index_and_key_tampering_fail_to_open() {
    let ls = local_store().await;
    let spec = spec();
    let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
    let root = ls.root().join(format!("rec/{}", rec.id()));
    for (file, want) in [
        ("manifest", Some(ChunkPlace::Manifest)),
        ("index", Some(ChunkPlace::Index)),
        ("key", None),
    ] {
        let p = root.join(file);
        let n = std::fs::metadata(&p).unwrap().len() as usize;
        flip(&p, n - 3);
        let e = ls.reopen().await.recording(rec.id()).await.unwrap_err();
        match (&e, want) {
            (StoreError::Integrity { place, .. }, Some(w)) => assert_eq!(*place, w, "{file}"),
            (StoreError::WrongKey { .. }, None) => {}
            _ => panic!("{file}: {e}"),
        }
        let report = ls.reopen().await.verify().await.unwrap();
        assert_eq!(report.problems.len(), 1, "{file}: {report:?}");
        flip(&p, n - 3);
    }
    // A manifest copied from another recording does not open as this one.
    let other = ingest(&ls.store, &spec, IngestOptions::default()).await;
    let theirs = std::fs::read(ls.root().join(format!("rec/{}/manifest", other.id()))).unwrap();
    std::fs::write(root.join("manifest"), theirs).unwrap();
    assert!(matches!(
        ls.reopen().await.recording(rec.id()).await.unwrap_err(),
        StoreError::Integrity {
            place: ChunkPlace::Manifest,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keyring_and_environment() {
    let ls = local_store().await;
    let spec = spec();
    let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
    let stranger = Arc::new(LocalKeyring::generate("test"));
    let store = Store::open_local(&ls.root(), stranger, StoreOptions::default())
        .await
        .unwrap();
    let e = store.recording(rec.id()).await.unwrap_err();
    assert!(matches!(e, StoreError::WrongKey { .. }), "{e}");
    assert_eq!(e.category(), theta_engine::store::ErrorCategory::Caller);
    let prod = Arc::new(LocalKeyring::generate("prod"));
    let e = Store::open_local(&ls.root(), prod, StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::EnvironmentMismatch { .. }), "{e}");
}

/// A multiplicative hasher for `u64` keys: the default SipHash is far slower in debug builds,
/// and these keys are not attacker-controlled.
#[derive(Default)]
struct MulHasher(u64);

impl std::hash::Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// No header string and no run of source sample bytes appear anywhere in the store.
pub(crate) fn assert_no_plaintext(root: &Path, strings: &[String], sample_bytes: &[Vec<u8>]) {
    use std::collections::HashMap;
    use std::hash::BuildHasherDefault;
    // Any run of 64 source bytes contains a 32-byte block aligned on 32 in the source, so
    // looking up every 32-byte window of the store among the aligned blocks finds it. Blocks
    // are indexed by their first 8 bytes, then compared in full.
    let mut blocks: HashMap<u64, Vec<&[u8]>, BuildHasherDefault<MulHasher>> = HashMap::default();
    for s in sample_bytes {
        for b in s.chunks_exact(32) {
            // Blocks of at most three distinct bytes (flat lines, zero padding) carry no
            // information and also occur in clear headers.
            let mut seen = [false; 256];
            for &x in b {
                seen[usize::from(x)] = true;
            }
            if seen.iter().filter(|&&x| x).count() > 3 {
                let key = u64::from_le_bytes(b[..8].try_into().unwrap());
                blocks.entry(key).or_default().push(b);
            }
        }
    }
    for f in files_under(root) {
        let bytes = std::fs::read(&f).unwrap();
        for s in strings {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{s:?} found in {}",
                f.display()
            );
        }
        if blocks.is_empty() {
            continue;
        }
        for w in bytes.windows(32) {
            let key = u64::from_le_bytes(w[..8].try_into().unwrap());
            if let Some(candidates) = blocks.get(&key) {
                assert!(
                    !candidates.contains(&w),
                    "source sample bytes found in {}",
                    f.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_at_rest() {
    let ls = local_store().await;
    let spec = spec();
    let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
    rec.add_annotation(
        "user-1",
        theta_engine::store::Annotation {
            onset: 1.0,
            duration: None,
            text: "Patient Haagse_Harry moved".into(),
        },
    )
    .await
    .unwrap();
    let strings: Vec<String> = [
        "Haagse_Harry",
        "MCH-0234567",
        "02-MAY-1951",
        "EMG561",
        "Jopie_Kleinjan",
        "Median Nerve",
        "EEG S00-REF",
        "AgAgCl",
        "Seizure onset",
        "2002-03-02",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The samples as EDF stores them (16-bit) and as the codec placeholder would (32-bit).
    let mut s16 = Vec::new();
    let mut s32 = Vec::new();
    for r in 0..spec.records {
        for (ch, &spr) in spec.samples_per_record.iter().enumerate() {
            for j in 0..u64::from(spr) {
                let v = spec.sample(ch, r * u64::from(spr) + j);
                s16.extend_from_slice(&(v as i16).to_le_bytes());
                s32.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    assert_no_plaintext(&ls.root(), &strings, &[s16, s32]);
}
