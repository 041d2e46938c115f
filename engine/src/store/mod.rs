//! The encrypted chunk store: recordings ingested from any [`SampleSource`], kept compressed
//! and sealed on an object store, read back by time window and overview.
//!
//! ```text
//!  SampleSource ──records──▶ ingest (rayon: encode with theta-codecs, seal AES-256-GCM,
//!  (EDF/BDF, stream)          min/max pyramid) ──▶ packed data + overview objects (multipart)
//!                                                   ──▶ index ──▶ manifest (commit point)
//!  Recording::window ◀── decoded-chunk LRU ◀── ranged GETs (coalesced) + parallel decode
//!  Recording::overview ◀── overview pages of the pyramid level that fits the width
//! ```
//!
//! Layout on the object store (byte-exact in `engine/FORMAT.md`):
//! `theta.store` (root: store id, environment), `leases/<id>` (ingests in progress),
//! `rec/<id>/{key, manifest, index, data/NNNNN, ovw/NNNNN, ann/NNNNNNNNNN}`.
//!
//! ```
//! # use std::sync::Arc;
//! use theta_engine::store::{
//!     IngestOptions, MemorySource, SignalInfo, SourceHeader, Store, StoreOptions, WindowRequest,
//! };
//! use theta_engine::crypto::LocalKeyring;
//! # let rt = tokio::runtime::Runtime::new().unwrap();
//! # rt.block_on(async {
//! let keyring = Arc::new(LocalKeyring::generate("dev"));
//! let store = Store::init(
//!     Arc::new(object_store::memory::InMemory::new()),
//!     "dev",
//!     keyring,
//!     StoreOptions::default(),
//! )
//! .await?;
//! let signal = SignalInfo {
//!     label: "Fp1".into(),
//!     transducer: String::new(),
//!     physical_dimension: "uV".into(),
//!     physical_min: -3276.8,
//!     physical_max: 3276.7,
//!     digital_min: -32768,
//!     digital_max: 32767,
//!     prefilter: String::new(),
//!     samples_per_record: 256,
//!     width: theta_codecs::SampleWidth::Bits16,
//! };
//! let mut source = MemorySource::new(SourceHeader::default(), vec![signal], 1.0);
//! for r in 0..60 {
//!     source.push_record(None, vec![(0..256).map(|i| (r * 256 + i) as i32 % 1000).collect()]);
//! }
//! let report = store.ingest(source, IngestOptions::default()).await?;
//! let recording = store.recording(report.recording).await?;
//! let window = recording.window(&WindowRequest::new(10.0, 2.0)).await?;
//! assert_eq!(window.blocks[0].digital().unwrap().shape(), &[1, 512]);
//! # Ok::<(), theta_engine::store::StoreError>(())
//! # }).unwrap();
//! ```

mod annotations;
mod cache;
mod edf_source;
mod error;
mod format;
mod ids;
mod ingest;
mod keys;
mod layout;
mod lease;
mod manifest;
mod overview;
mod pack;
mod parallel;
mod projects;
mod recording;
mod records;
mod scratch;
mod source;
mod verify;
mod window;

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use annotations::{AnnotationChange, AnnotationRecord, AnnotationVersion, IMPORT_AUTHOR};
pub use cache::CacheStats;
pub use edf_source::EdfSource;
pub use error::{ErrorCategory, Result, SourceError, StoreError};
pub use format::FORMAT_VERSION;
pub use ids::{ChunkPlace, RecordingId, StoreId, TenantId};
pub use ingest::{
    DEFAULT_BLOCK_SECONDS, DEFAULT_DATA_OBJECT_BYTES, DEFAULT_GROUP_SIZE, IngestOptions,
    IngestProgress, IngestReport, Progress,
};
pub use keys::RotateReport;
pub use layout::{ChunkLayout, PyramidGeometry, Segment, Timeline};
pub use lease::CleanupReport;
pub use overview::{MAX_WIDTH, Overview, OverviewRequest, OverviewSource};
pub use projects::{MAX_PROJECT_NAME, ProjectMapping};
pub use recording::{Recording, RecordingInfo, RecordingStatus};
pub use records::RecordBlock;
pub use source::{Annotation, MemorySource, SampleSource, SignalInfo, SourceHeader};
/// Sample width of a signal (re-exported from `theta-codecs`).
pub use theta_codecs::SampleWidth;
pub use verify::{VerifyProblem, VerifyReport};
pub use window::{
    ChannelRef, ChannelSelection, Run, SampleData, Units, Window, WindowBlock, WindowRequest,
    check_window_size,
};

use crate::crypto::Keyring;
use format::{RootRecord, paths};

/// Tuning of an open store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Capacity of the decoded-chunk cache in bytes (shared by every recording).
    pub cache_bytes: usize,
    /// An ingest whose lease has not been refreshed for this long is considered dead and its
    /// leftovers are removed by the next cleanup.
    pub lease_ttl: Duration,
    /// How often a running ingest refreshes its lease.
    pub lease_heartbeat: Duration,
    /// Clean leftovers of dead ingests when opening the store.
    pub cleanup_on_open: bool,
    /// Byte ranges of one object closer than this are fetched with one request.
    pub coalesce_gap: u64,
    /// After a window read, fetch and decode the next page in the background.
    pub read_ahead: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 256 << 20,
            lease_ttl: Duration::from_secs(300),
            lease_heartbeat: Duration::from_secs(20),
            cleanup_on_open: true,
            coalesce_gap: 256 << 10,
            read_ahead: true,
        }
    }
}

/// A store of recordings on an object store. Cheap to clone; all clones share the cache.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
pub(crate) struct StoreInner {
    pub(crate) os: Arc<dyn ObjectStore>,
    pub(crate) store_id: StoreId,
    pub(crate) environment: String,
    pub(crate) keyring: Arc<dyn Keyring>,
    pub(crate) cache: cache::ChunkCache,
    pub(crate) options: StoreOptions,
    /// The folder behind a local store, to sweep staging files the object store hides.
    pub(crate) local_root: Option<PathBuf>,
    pub(crate) open: Mutex<Vec<Arc<recording::RecordingState>>>,
}

/// Recordings kept open (manifest, index and unwrapped key in memory) per store.
const OPEN_RECORDINGS: usize = 64;

fn check_environment(store_env: &str, keyring: &dyn Keyring) -> Result<()> {
    if let Some(k) = keyring.environment()
        && k != store_env
    {
        return Err(StoreError::EnvironmentMismatch {
            store: store_env.to_string(),
            keyring: k.to_string(),
        });
    }
    Ok(())
}

fn valid_environment(env: &str) -> Result<()> {
    let ok = !env.is_empty()
        && env.len() <= 32
        && env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument {
            what: format!("environment tag {env:?}: 1-32 characters from A-Z a-z 0-9 - _"),
        })
    }
}

impl Store {
    /// Creates a new store on `os` for `environment` and returns it open.
    ///
    /// # Errors
    /// [`StoreError::AlreadyInitialized`] when a store exists there, or an environment
    /// mismatch with the keyring.
    pub async fn init(
        os: Arc<dyn ObjectStore>,
        environment: &str,
        keyring: Arc<dyn Keyring>,
        options: StoreOptions,
    ) -> Result<Self> {
        create_root(os.as_ref(), environment, keyring.as_ref()).await?;
        Self::open(os, keyring, options).await
    }

    /// Creates a store in a local folder (created if missing).
    ///
    /// # Errors
    /// As [`Store::init`], or when the folder cannot be created.
    pub async fn init_local(
        dir: &FsPath,
        environment: &str,
        keyring: Arc<dyn Keyring>,
        options: StoreOptions,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::InvalidArgument {
            what: format!("cannot create store folder {}: {e}", dir.display()),
        })?;
        let os = local_object_store(dir)?;
        create_root(os.as_ref(), environment, keyring.as_ref()).await?;
        let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        Self::open_inner(os, keyring, options, Some(root)).await
    }

    /// Opens an existing store; cleans leftovers of dead ingests unless disabled.
    ///
    /// # Errors
    /// [`StoreError::NotAStore`], [`StoreError::EnvironmentMismatch`], corruption of the root
    /// object, object store failures.
    pub async fn open(
        os: Arc<dyn ObjectStore>,
        keyring: Arc<dyn Keyring>,
        options: StoreOptions,
    ) -> Result<Self> {
        Self::open_inner(os, keyring, options, None).await
    }

    /// Opens a store in a local folder.
    ///
    /// # Errors
    /// As [`Store::open`]; [`StoreError::NotAStore`] when the folder does not exist.
    pub async fn open_local(
        dir: &FsPath,
        keyring: Arc<dyn Keyring>,
        options: StoreOptions,
    ) -> Result<Self> {
        if !dir.is_dir() {
            return Err(StoreError::NotAStore {
                location: dir.display().to_string(),
            });
        }
        let os = local_object_store(dir)?;
        let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        Self::open_inner(os, keyring, options, Some(root)).await
    }

    async fn open_inner(
        os: Arc<dyn ObjectStore>,
        keyring: Arc<dyn Keyring>,
        options: StoreOptions,
        local_root: Option<PathBuf>,
    ) -> Result<Self> {
        let root_bytes = match os.get(&paths::root()).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::NotAStore {
                    location: local_root
                        .as_ref()
                        .map_or_else(|| os.to_string(), |p| p.display().to_string()),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let root = RootRecord::decode(&root_bytes)?;
        check_environment(&root.environment, keyring.as_ref())?;
        let cleanup = options.cleanup_on_open;
        let store = Self {
            inner: Arc::new(StoreInner {
                os,
                store_id: root.store_id,
                environment: root.environment,
                keyring,
                cache: cache::ChunkCache::new(options.cache_bytes),
                options,
                local_root,
                open: Mutex::new(Vec::new()),
            }),
        };
        if cleanup {
            store.cleanup().await?;
        }
        Ok(store)
    }

    /// The store's id.
    pub fn id(&self) -> StoreId {
        self.inner.store_id
    }

    /// The store's environment tag.
    pub fn environment(&self) -> &str {
        &self.inner.environment
    }

    /// The keyring in use.
    pub fn keyring(&self) -> &Arc<dyn Keyring> {
        &self.inner.keyring
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.os
    }

    /// Cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Empties the decoded-chunk cache (benchmarks measure cold reads this way).
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// Ids of every committed recording (shredded ones included), sorted.
    ///
    /// # Errors
    /// Object store failures.
    pub async fn recording_ids(&self) -> Result<Vec<RecordingId>> {
        self.inner.committed_ids().await
    }

    /// Opens a committed recording for reading (cached: repeated calls are cheap).
    ///
    /// # Errors
    /// [`StoreError::UnknownRecording`], [`StoreError::Shredded`], [`StoreError::WrongKey`],
    /// integrity or corruption errors of the manifest, index or key.
    pub async fn recording(&self, id: RecordingId) -> Result<Recording> {
        recording::open(&self.inner, id).await
    }

    /// Summaries of every committed recording, sorted by id. A recording that cannot be
    /// opened is listed with its error rather than failing the whole listing.
    ///
    /// # Errors
    /// Object store failures while listing.
    pub async fn list(&self) -> Result<Vec<RecordingInfo>> {
        recording::list(&self.inner).await
    }

    /// Ingests a recording and commits it atomically; see [`IngestOptions`].
    ///
    /// # Errors
    /// [`StoreError::Source`] when the source fails or is invalid, object store and keyring
    /// failures. On error nothing of the recording stays visible.
    pub async fn ingest<S: SampleSource + 'static>(
        &self,
        source: S,
        options: IngestOptions,
    ) -> Result<IngestReport> {
        ingest::ingest(&self.inner, Box::new(source), options).await
    }

    /// Scrubs the whole store: every chunk, page, index, manifest and annotation event is
    /// fetched and authenticated; every problem is reported (nothing is changed).
    ///
    /// # Errors
    /// Only failures to list the store; per-recording problems go into the report.
    pub async fn verify(&self) -> Result<VerifyReport> {
        verify::verify(&self.inner).await
    }

    /// Re-wraps every data key under the keyring's current KEK, without touching data.
    ///
    /// # Errors
    /// Failures to list the store; per-recording failures go into the report.
    pub async fn rotate_keys(&self) -> Result<RotateReport> {
        keys::rotate(&self.inner).await
    }

    /// Destroys a recording's data key: it can never be read again, and is listed as
    /// shredded.
    ///
    /// # Errors
    /// [`StoreError::UnknownRecording`], object store failures.
    pub async fn shred(&self, id: RecordingId) -> Result<()> {
        keys::shred(&self.inner, id).await
    }

    /// The secret of a research project (256 bits, created at random on first use and kept
    /// sealed in the store): the key of the project's pseudonyms.
    ///
    /// # Errors
    /// [`StoreError::InvalidArgument`] for an empty or overlong name; keyring and object store
    /// failures; [`StoreError::Corrupt`] when the project object does not authenticate.
    pub async fn project_secret(&self, project: &str) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        projects::secret(&self.inner, project).await
    }

    /// The sealed pseudonym mapping of a project (for the data controller; never exported).
    ///
    /// # Errors
    /// As [`Store::project_secret`].
    pub async fn project_mapping(&self, project: &str) -> Result<Option<ProjectMapping>> {
        projects::mapping(&self.inner, project).await
    }

    /// Records pseudonym → source entries (subjects, recordings) in a project's sealed mapping.
    ///
    /// # Errors
    /// As [`Store::project_secret`]; [`StoreError::InvalidArgument`] for an unknown project.
    pub async fn record_project_mapping(
        &self,
        project: &str,
        subjects: &[(String, String)],
        recordings: &[(String, String)],
    ) -> Result<()> {
        projects::record(&self.inner, project, subjects, recordings).await
    }

    /// Removes leftovers of ingests that died (stale lease), keeping live ones.
    ///
    /// # Errors
    /// Object store failures.
    pub async fn cleanup(&self) -> Result<CleanupReport> {
        lease::cleanup(&self.inner).await
    }
}

async fn create_root(os: &dyn ObjectStore, environment: &str, keyring: &dyn Keyring) -> Result<()> {
    valid_environment(environment)?;
    check_environment(environment, keyring)?;
    let root = RootRecord {
        store_id: StoreId::generate(),
        created_unix: chrono::Utc::now().timestamp(),
        environment: environment.to_string(),
    };
    let opts = PutOptions::from(PutMode::Create);
    match os
        .put_opts(&paths::root(), PutPayload::from(root.encode()), opts)
        .await
    {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => Err(StoreError::AlreadyInitialized {
            location: os.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// A local folder as an object store.
///
/// # Errors
/// When the folder does not exist or cannot be resolved.
pub fn local_object_store(dir: &FsPath) -> Result<Arc<dyn ObjectStore>> {
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| {
        StoreError::InvalidArgument {
            what: format!("store folder {}: {e}", dir.display()),
        }
    })?;
    Ok(Arc::new(fs))
}

/// Builds an object store from a URL-like location: a plain path or `file://` (local
/// folder), `memory://` (in memory), or `s3://bucket/prefix` (with the `s3` feature;
/// credentials and region from the usual `AWS_*` environment variables).
///
/// # Errors
/// [`StoreError::InvalidArgument`] for unknown schemes or when S3 support is not built in.
pub fn object_store_from_location(location: &str) -> Result<Arc<dyn ObjectStore>> {
    if let Some(rest) = location.strip_prefix("s3://") {
        return s3_store(rest);
    }
    if location == "memory://" {
        return Ok(Arc::new(object_store::memory::InMemory::new()));
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    local_object_store(FsPath::new(path))
}

#[cfg(feature = "s3")]
fn s3_store(rest: &str) -> Result<Arc<dyn ObjectStore>> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
        .build()
        .map_err(|e| StoreError::InvalidArgument {
            what: format!("S3 bucket {bucket}: {e}"),
        })?;
    let os: Arc<dyn ObjectStore> = Arc::new(s3);
    if prefix.is_empty() {
        Ok(os)
    } else {
        Ok(Arc::new(object_store::prefix::PrefixStore::new(os, prefix)))
    }
}

#[cfg(not(feature = "s3"))]
fn s3_store(_rest: &str) -> Result<Arc<dyn ObjectStore>> {
    Err(StoreError::InvalidArgument {
        what: "this build has no S3 support (rebuild theta-engine with the `s3` feature)".into(),
    })
}

impl StoreInner {
    pub(crate) fn scope<'a>(&'a self, recording: &'a RecordingId) -> format::SealScope<'a> {
        format::SealScope {
            store_id: &self.store_id,
            environment: &self.environment,
            recording,
        }
    }

    /// Gets an object; `None` when it does not exist.
    pub(crate) async fn get_opt(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.os.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn exists(&self, path: &Path) -> Result<bool> {
        match self.os.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        self.os.put(path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Writes only if nothing is there; `Ok(false)` when the object exists.
    pub(crate) async fn put_create(&self, path: &Path, bytes: Vec<u8>) -> Result<bool> {
        match self
            .os
            .put_opts(
                path,
                PutPayload::from(bytes),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn delete_quiet(&self, path: &Path) -> Result<()> {
        match self.os.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn list_all(&self, prefix: &Path) -> Result<Vec<object_store::ObjectMeta>> {
        Ok(self.os.list(Some(prefix)).try_collect().await?)
    }

    /// Ids of recordings with a manifest.
    pub(crate) async fn committed_ids(&self) -> Result<Vec<RecordingId>> {
        let listing = self
            .os
            .list_with_delimiter(Some(&Path::from(paths::RECORDINGS)))
            .await?;
        let mut ids = Vec::new();
        for p in listing.common_prefixes {
            let Some(name) = p.filename() else { continue };
            let Ok(id) = name.parse::<RecordingId>() else {
                continue;
            };
            if self.exists(&paths::manifest(&id)).await? {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Fetches byte ranges of one object, merging ranges closer than the coalescing gap
    /// into single requests.
    pub(crate) async fn get_ranges(
        &self,
        path: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        order.sort_by_key(|&i| ranges[i].start);
        let mut merged: Vec<Range<u64>> = Vec::new();
        let mut owner: Vec<usize> = vec![0; ranges.len()];
        for &i in &order {
            let r = &ranges[i];
            match merged.last_mut() {
                Some(m) if r.start <= m.end.saturating_add(self.options.coalesce_gap) => {
                    m.end = m.end.max(r.end);
                }
                _ => merged.push(r.clone()),
            }
            owner[i] = merged.len() - 1;
        }
        let fetched = self.os.get_ranges(path, &merged).await?;
        if fetched.len() != merged.len() {
            return Err(StoreError::internal(
                "object store returned a wrong number of ranges",
            ));
        }
        let mut out = Vec::with_capacity(ranges.len());
        for (i, r) in ranges.iter().enumerate() {
            let m = &merged[owner[i]];
            let buf = &fetched[owner[i]];
            let a = (r.start - m.start) as usize;
            let b = (r.end - m.start) as usize;
            if b > buf.len() {
                return Err(StoreError::corrupt(
                    path,
                    "object shorter than its index says",
                ));
            }
            out.push(buf.slice(a..b));
        }
        Ok(out)
    }

    pub(crate) fn forget_open(&self, id: &RecordingId) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|r| r.id != *id);
        drop(open);
        self.cache.remove_recording(id);
    }
}

/// Runs CPU-bound work on the rayon pool and awaits it without blocking the async runtime.
pub(crate) async fn run_cpu<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .map_err(|_| StoreError::internal("a decode worker panicked"))
}
