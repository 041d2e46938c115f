//! The service's handle on the recording store: opening it for a profile, a cache of open
//! recordings, and the mapping of store errors onto API answers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use theta_engine::crypto::{KEK_ENV_VAR, Keyring, LocalKeyring};
use theta_engine::store::{ErrorCategory, Recording, RecordingId, Store, StoreError, StoreOptions};

use crate::config::{ProfileKind, Settings};
use crate::error::{ApiError, Error, Result};

/// Most recordings kept open (manifest decrypted) at once; beyond, the oldest is dropped.
const OPEN_RECORDINGS: usize = 256;

/// The store and the recordings opened through it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DataStore {
    store: Store,
    open: Arc<Mutex<HashMap<RecordingId, (u64, Recording)>>>,
    tick: Arc<std::sync::atomic::AtomicU64>,
}

impl DataStore {
    /// Wraps an open store.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            open: Arc::default(),
            tick: Arc::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Opens a recording (or returns the already open one). Committed recordings are
    /// immutable; annotations are read through the recording at each call, so caching is safe.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for an unknown id; store failures.
    pub async fn recording(&self, id: RecordingId) -> std::result::Result<Recording, ApiError> {
        let now = self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(r) = self.lock().get_mut(&id) {
            r.0 = now;
            return Ok(r.1.clone());
        }
        let rec = self.store.recording(id).await.map_err(store_error)?;
        let mut open = self.lock();
        if open.len() >= OPEN_RECORDINGS
            && let Some(oldest) = open.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k)
        {
            open.remove(&oldest);
        }
        open.insert(id, (now, rec.clone()));
        Ok(rec)
    }

    /// Forgets an open recording (after it was shredded).
    pub fn forget(&self, id: RecordingId) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RecordingId, (u64, Recording)>> {
        // A panic while holding the map leaves it consistent (plain inserts and removes).
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The key file of a profile: `[store] key_file`, else (unless `THETA_KEK` is set)
/// `<data_dir>/store.keys`.
pub fn key_file(settings: &Settings) -> Option<PathBuf> {
    if let Some(k) = &settings.store.key_file {
        return Some(k.clone());
    }
    if std::env::var_os(KEK_ENV_VAR).is_some() {
        return None;
    }
    Some(settings.data_dir.join("store.keys"))
}

/// Opens the profile's store. The dev and test profiles create the store and its key file
/// (mode 600) on first start; prod requires both to exist (`theta init`).
///
/// # Errors
/// [`Error::Config`] naming the store or key file.
pub async fn open_store(settings: &Settings) -> Result<DataStore> {
    let dir = settings.store_dir();
    let environment = settings.environment();
    let may_create = settings.kind() != ProfileKind::Prod;
    let ring = match key_file(settings) {
        Some(path) if path.exists() => LocalKeyring::open_file(&path)
            .map_err(|e| Error::config(path.display().to_string(), e.to_string()))?,
        Some(path) if may_create => LocalKeyring::create_file(&path, &environment)
            .map_err(|e| Error::config(path.display().to_string(), e.to_string()))?,
        Some(path) => {
            return Err(Error::config(
                path.display().to_string(),
                "no key file (create the store with `theta init`)",
            ));
        }
        None => LocalKeyring::from_env()
            .map_err(|e| Error::config(KEK_ENV_VAR, e.to_string()))?
            .ok_or_else(|| Error::config(KEK_ENV_VAR, "empty"))?,
    };
    let ring: Arc<dyn Keyring> = Arc::new(ring);
    let options = StoreOptions {
        cache_bytes: settings.store.cache_mib.saturating_mul(1 << 20),
        ..StoreOptions::default()
    };
    let store_err = |e: StoreError| Error::config(dir.display().to_string(), e.to_string());
    let store = if dir.join("theta.store").exists() {
        Store::open_local(&dir, ring, options)
            .await
            .map_err(store_err)?
    } else if may_create {
        Store::init_local(&dir, &environment, ring, options)
            .await
            .map_err(store_err)?
    } else {
        return Err(Error::config(
            dir.display().to_string(),
            "no store here (create it with `theta init`)",
        ));
    };
    if store.environment() != environment {
        return Err(Error::config(
            dir.display().to_string(),
            format!(
                "store of environment {:?} opened by profile of environment {environment:?}",
                store.environment()
            ),
        ));
    }
    Ok(DataStore::new(store))
}

/// Maps a store error onto an answer: the caller's mistakes are 400/404; corruption and
/// failures are 500s whose detail (ids and places only, never content) stays in the log.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::UnknownRecording { recording } => ApiError::NotFound {
            what: format!("recording {recording}"),
        },
        e if e.category() == ErrorCategory::Caller => {
            ApiError::bad_request("request", e.to_string())
        }
        e => {
            if e.category() == ErrorCategory::Corruption {
                tracing::error!(error = %e, "store integrity failure");
            }
            ApiError::Internal(Error::Store(e.to_string()))
        }
    }
}
