//! Key-encryption keys: the [`Keyring`] seam and the local (file / environment) keyring.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::envelope::{DataKey, NONCE_LEN, TAG_LEN};

/// Environment variable holding key-encryption keys: `ID:HEX64[,ID:HEX64...]`, the first
/// being the current key (the one new data keys are wrapped under).
pub const KEK_ENV_VAR: &str = "THETA_KEK";

/// Length of a data key wrapped by [`LocalKeyring`]: nonce, 32 key bytes, tag.
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + 32 + TAG_LEN;

/// Errors of a keyring. They name keys by id and files by path, never by content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The keyring holds no key with this id.
    #[error("key-encryption key {id:?} is not in the keyring")]
    UnknownKek {
        /// The id that was asked for.
        id: String,
    },
    /// The wrapped key did not authenticate under this KEK: wrong key or altered bytes.
    #[error(
        "data key cannot be unwrapped with key-encryption key {kek:?} (wrong key or damaged wrapped key)"
    )]
    UnwrapFailed {
        /// The KEK tried.
        kek: String,
    },
    /// A key id that is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid key id {id:?}: 1-64 characters from A-Z a-z 0-9 . _ -")]
    InvalidKekId {
        /// The rejected id.
        id: String,
    },
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file or the environment variable is not a valid keyring.
    #[error("keyring {origin}: {detail}")]
    Malformed {
        /// Where the keyring came from (a path or the environment variable name).
        origin: String,
        /// What is wrong (never key material).
        detail: String,
    },
    /// The key file can be read by other users.
    #[error(
        "key file {path} has mode {mode:o}; it must not be readable by group or others (chmod 600)"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The keyring is read-only (for example the environment variable) and cannot be changed.
    #[error("keyring {origin} is read-only")]
    ReadOnly {
        /// Where the keyring came from.
        origin: String,
    },
    /// A remote key service failed (KMS implementations).
    #[error("key service: {detail}")]
    Backend {
        /// What failed (never key material).
        detail: String,
    },
}

/// The id of a key-encryption key: 1 to 64 characters from `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KekId(String);

impl KekId {
    /// Validates an id.
    ///
    /// # Errors
    /// [`KeyringError::InvalidKekId`] when the id is empty, longer than 64 or has other characters.
    pub fn new(id: impl Into<String>) -> Result<Self, KeyringError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(id))
        } else {
            Err(KeyringError::InvalidKekId { id })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A new id from the current UTC time and random bytes.
    pub fn generate() -> Self {
        let mut r = [0u8; 3];
        super::envelope::random_bytes(&mut r);
        Self(format!(
            "kek-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            hex::encode(r)
        ))
    }
}

impl TryFrom<String> for KekId {
    type Error = KeyringError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<KekId> for String {
    fn from(value: KekId) -> Self {
        value.0
    }
}

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where data keys are wrapped and unwrapped: a key file, the environment, or a key
/// management service. Implementations never log or return key material in errors.
///
/// The methods return boxed futures so that the trait stays object-safe while a KMS
/// implementation can perform network calls without blocking the runtime.
pub trait Keyring: fmt::Debug + Send + Sync + 'static {
    /// The environment the keys belong to (`dev`, `test`, `prod`), when the keyring knows
    /// it. A store refuses a keyring of another environment.
    fn environment(&self) -> Option<&str>;

    /// The id of the key that wraps new data keys.
    ///
    /// # Errors
    /// When the keyring holds no usable key.
    fn current_kek(&self) -> Result<KekId, KeyringError>;

    /// Whether the keyring holds a key with this id.
    fn has_kek(&self, kek: &KekId) -> bool;

    /// Wraps `dek` under the key `kek`, binding `aad`.
    fn wrap<'a>(
        &'a self,
        kek: &'a KekId,
        dek: &'a DataKey,
        aad: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, KeyringError>>;

    /// Unwraps a data key wrapped by [`Keyring::wrap`] with the same `kek` and `aad`.
    fn unwrap<'a>(
        &'a self,
        kek: &'a KekId,
        wrapped: &'a [u8],
        aad: &'a [u8],
    ) -> BoxFuture<'a, Result<DataKey, KeyringError>>;
}

/// A keyring held locally: loaded from a key file (mode 0600) or from [`KEK_ENV_VAR`], or
/// generated in memory. Several keys can coexist so that a rotation keeps the old key
/// until every data key has been re-wrapped.
pub struct LocalKeyring {
    origin: Origin,
    environment: Option<String>,
    current: KekId,
    keys: BTreeMap<KekId, KekEntry>,
}

struct KekEntry {
    key: DataKey,
    created: String,
}

#[derive(Debug, Clone)]
enum Origin {
    File(PathBuf),
    Env,
    Memory,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env => write!(f, "${KEK_ENV_VAR}"),
            Origin::Memory => f.write_str("(in memory)"),
        }
    }
}

impl fmt::Debug for LocalKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyring")
            .field("origin", &self.origin.to_string())
            .field("environment", &self.environment)
            .field("current", &self.current)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// On-disk shape of the key file (see `engine/FORMAT.md`).
#[derive(Serialize, Deserialize)]
struct KeyFile {
    format: String,
    version: u32,
    environment: String,
    current: String,
    keys: Vec<KeyFileEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyFileEntry {
    id: String,
    created: String,
    key: String,
}

impl Drop for KeyFileEntry {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

const KEY_FILE_FORMAT: &str = "theta-keyring";
const KEY_FILE_VERSION: u32 = 1;

fn parse_key_hex(hex_key: &str, origin: &str) -> Result<DataKey, KeyringError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_key.trim(), bytes.as_mut()).map_err(|_| KeyringError::Malformed {
        origin: origin.to_string(),
        detail: "a key is not 64 hexadecimal digits".into(),
    })?;
    Ok(DataKey::from_bytes(&bytes))
}

impl LocalKeyring {
    /// A keyring in memory with one freshly generated key (tests, ephemeral stores).
    pub fn generate(environment: &str) -> Self {
        let id = KekId::generate();
        let mut keys = BTreeMap::new();
        keys.insert(
            id.clone(),
            KekEntry {
                key: DataKey::generate(),
                created: chrono::Utc::now().to_rfc3339(),
            },
        );
        Self {
            origin: Origin::Memory,
            environment: Some(environment.to_string()),
            current: id,
            keys,
        }
    }

    /// Creates a key file with one fresh key, readable by its owner only (mode 0600).
    ///
    /// # Errors
    /// [`KeyringError::Io`] when the file exists already or cannot be written.
    pub fn create_file(path: &Path, environment: &str) -> Result<Self, KeyringError> {
        let mut ring = Self::generate(environment);
        ring.origin = Origin::File(path.to_path_buf());
        let bytes = ring.to_file_bytes();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        set_owner_only(&mut opts);
        let io = |source| KeyringError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = opts.open(path).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(ring)
    }

    /// Opens a key file written by [`LocalKeyring::create_file`] or [`LocalKeyring::save`].
    ///
    /// # Errors
    /// [`KeyringError::Permissions`] when the file is readable by group or others,
    /// [`KeyringError::Io`] or [`KeyringError::Malformed`] otherwise.
    pub fn open_file(path: &Path) -> Result<Self, KeyringError> {
        let io = |source| KeyringError::Io {
            path: path.to_path_buf(),
            source,
        };
        check_owner_only(path)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        let origin = path.display().to_string();
        let malformed = |detail: String| KeyringError::Malformed {
            origin: origin.clone(),
            detail,
        };
        // serde_json's message names a line and column, never the content around it.
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        if file.format != KEY_FILE_FORMAT {
            return Err(malformed(format!(
                "format is {:?}, not {KEY_FILE_FORMAT:?}",
                file.format
            )));
        }
        if file.version != KEY_FILE_VERSION {
            return Err(malformed(format!("unsupported version {}", file.version)));
        }
        let mut keys = BTreeMap::new();
        for e in &file.keys {
            let id = KekId::new(e.id.clone())?;
            let key = parse_key_hex(&e.key, &origin)?;
            if keys
                .insert(
                    id.clone(),
                    KekEntry {
                        key,
                        created: e.created.clone(),
                    },
                )
                .is_some()
            {
                return Err(malformed(format!("key id {id} appears twice")));
            }
        }
        let current = KekId::new(file.current.clone())?;
        if !keys.contains_key(&current) {
            return Err(malformed(format!(
                "current key {current} is not in the file"
            )));
        }
        Ok(Self {
            origin: Origin::File(path.to_path_buf()),
            environment: Some(file.environment.clone()),
            current,
            keys,
        })
    }

    /// Reads keys from [`KEK_ENV_VAR`]; `Ok(None)` when the variable is not set.
    ///
    /// # Errors
    /// [`KeyringError::Malformed`] when the variable is set but not `ID:HEX64[,ID:HEX64...]`.
    pub fn from_env() -> Result<Option<Self>, KeyringError> {
        match std::env::var(KEK_ENV_VAR) {
            Ok(value) => {
                let value = Zeroizing::new(value);
                Self::from_env_value(&value).map(Some)
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyringError::Malformed {
                origin: format!("${KEK_ENV_VAR}"),
                detail: "not valid UTF-8".into(),
            }),
        }
    }

    /// Parses the [`KEK_ENV_VAR`] syntax: `ID:HEX64[,ID:HEX64...]`, the first key current.
    ///
    /// # Errors
    /// [`KeyringError::Malformed`] on any syntax error.
    pub fn from_env_value(value: &str) -> Result<Self, KeyringError> {
        let origin = format!("${KEK_ENV_VAR}");
        let mut keys = BTreeMap::new();
        let mut current = None;
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, hex_key) = part
                .split_once(':')
                .ok_or_else(|| KeyringError::Malformed {
                    origin: origin.clone(),
                    detail: "expected ID:HEX64[,ID:HEX64...]".into(),
                })?;
            let id = KekId::new(id.trim())?;
            let key = parse_key_hex(hex_key, &origin)?;
            current.get_or_insert_with(|| id.clone());
            keys.insert(
                id,
                KekEntry {
                    key,
                    created: String::new(),
                },
            );
        }
        let current = current.ok_or_else(|| KeyringError::Malformed {
            origin: origin.clone(),
            detail: "no key".into(),
        })?;
        Ok(Self {
            origin: Origin::Env,
            environment: None,
            current,
            keys,
        })
    }

    /// The file this keyring was loaded from, if any.
    pub fn path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::File(p) => Some(p),
            _ => None,
        }
    }

    /// Ids of every key held, in sorted order.
    pub fn kek_ids(&self) -> Vec<KekId> {
        self.keys.keys().cloned().collect()
    }

    /// Adds a freshly generated key and makes it current; returns its id. Call
    /// [`LocalKeyring::save`] to persist a file keyring.
    pub fn add_generated(&mut self) -> KekId {
        let id = loop {
            let id = KekId::generate();
            if !self.keys.contains_key(&id) {
                break id;
            }
        };
        self.keys.insert(
            id.clone(),
            KekEntry {
                key: DataKey::generate(),
                created: chrono::Utc::now().to_rfc3339(),
            },
        );
        self.current = id.clone();
        id
    }

    /// Removes a key that is no longer current (after every data key has been re-wrapped).
    ///
    /// # Errors
    /// [`KeyringError::UnknownKek`], or [`KeyringError::Malformed`] for the current key.
    pub fn remove(&mut self, kek: &KekId) -> Result<(), KeyringError> {
        if *kek == self.current {
            return Err(KeyringError::Malformed {
                origin: self.origin.to_string(),
                detail: format!("{kek} is the current key and cannot be removed"),
            });
        }
        self.keys
            .remove(kek)
            .map(|_| ())
            .ok_or_else(|| KeyringError::UnknownKek {
                id: kek.to_string(),
            })
    }

    /// Writes a file keyring back atomically (temporary file with mode 0600, then rename).
    ///
    /// # Errors
    /// [`KeyringError::ReadOnly`] for environment or memory keyrings, [`KeyringError::Io`].
    pub fn save(&self) -> Result<(), KeyringError> {
        let Origin::File(path) = &self.origin else {
            return Err(KeyringError::ReadOnly {
                origin: self.origin.to_string(),
            });
        };
        let io = |source| KeyringError::Io {
            path: path.clone(),
            source,
        };
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let bytes = self.to_file_bytes();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        set_owner_only(&mut opts);
        let mut file = opts.open(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        let file = KeyFile {
            format: KEY_FILE_FORMAT.into(),
            version: KEY_FILE_VERSION,
            environment: self.environment.clone().unwrap_or_default(),
            current: self.current.to_string(),
            keys: self
                .keys
                .iter()
                .map(|(id, e)| KeyFileEntry {
                    id: id.to_string(),
                    created: e.created.clone(),
                    key: hex::encode(e.key.expose_bytes()),
                })
                .collect(),
        };
        let mut bytes = Zeroizing::new(
            serde_json::to_vec_pretty(&file).expect("the key file serialises to JSON"),
        );
        bytes.push(b'\n');
        bytes
    }

    fn key(&self, kek: &KekId) -> Result<&DataKey, KeyringError> {
        self.keys
            .get(kek)
            .map(|e| &e.key)
            .ok_or_else(|| KeyringError::UnknownKek {
                id: kek.to_string(),
            })
    }
}

#[cfg(unix)]
fn set_owner_only(opts: &mut std::fs::OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    opts.mode(0o600);
}

#[cfg(not(unix))]
fn set_owner_only(_opts: &mut std::fs::OpenOptions) {}

#[cfg(unix)]
fn check_owner_only(path: &Path) -> Result<(), KeyringError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| KeyringError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyringError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path) -> Result<(), KeyringError> {
    Ok(())
}

impl Keyring for LocalKeyring {
    fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    fn current_kek(&self) -> Result<KekId, KeyringError> {
        Ok(self.current.clone())
    }

    fn has_kek(&self, kek: &KekId) -> bool {
        self.keys.contains_key(kek)
    }

    fn wrap<'a>(
        &'a self,
        kek: &'a KekId,
        dek: &'a DataKey,
        aad: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, KeyringError>> {
        Box::pin(async move {
            let key = self.key(kek)?;
            Ok(key.seal(dek.expose_bytes(), aad))
        })
    }

    fn unwrap<'a>(
        &'a self,
        kek: &'a KekId,
        wrapped: &'a [u8],
        aad: &'a [u8],
    ) -> BoxFuture<'a, Result<DataKey, KeyringError>> {
        Box::pin(async move {
            let key = self.key(kek)?;
            let failed = || KeyringError::UnwrapFailed {
                kek: kek.to_string(),
            };
            if wrapped.len() != WRAPPED_KEY_LEN {
                return Err(failed());
            }
            let plain = Zeroizing::new(key.open(wrapped, aad).map_err(|_| failed())?);
            let bytes: &[u8; 32] = plain.as_slice().try_into().map_err(|_| failed())?;
            Ok(DataKey::from_bytes(bytes))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn file_round_trip_mode_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let mut ring = LocalKeyring::create_file(&path, "dev").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(
            LocalKeyring::create_file(&path, "dev").is_err(),
            "never overwrites"
        );
        let first = ring.current_kek().unwrap();
        let dek = DataKey::generate();
        let wrapped = block_on(ring.wrap(&first, &dek, b"ctx")).unwrap();
        assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);

        let second = ring.add_generated();
        ring.save().unwrap();
        let reopened = LocalKeyring::open_file(&path).unwrap();
        assert_eq!(reopened.current_kek().unwrap(), second);
        assert_eq!(reopened.environment(), Some("dev"));
        let back = block_on(reopened.unwrap(&first, &wrapped, b"ctx")).unwrap();
        assert_eq!(back.expose_bytes(), dek.expose_bytes());
        assert!(matches!(
            block_on(reopened.unwrap(&first, &wrapped, b"other")),
            Err(KeyringError::UnwrapFailed { .. })
        ));
        assert!(matches!(
            block_on(reopened.unwrap(&second, &wrapped, b"ctx")),
            Err(KeyringError::UnwrapFailed { .. })
        ));
        let text = format!("{reopened:?}");
        assert!(!text.contains(&hex::encode(dek.expose_bytes())));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_world_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        LocalKeyring::create_file(&path, "dev").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            LocalKeyring::open_file(&path),
            Err(KeyringError::Permissions { .. })
        ));
    }

    #[test]
    fn env_syntax() {
        let k1 = "a".repeat(64);
        let k2 = "b".repeat(64);
        let ring = LocalKeyring::from_env_value(&format!("new:{k1}, old:{k2}")).unwrap();
        assert_eq!(ring.current_kek().unwrap().as_str(), "new");
        assert_eq!(ring.kek_ids().len(), 2);
        let bads = [
            String::new(),
            "x".into(),
            "id:zz".into(),
            "id:abcd".into(),
            format!("bad id:{k1}"),
        ];
        for bad in bads {
            let err = LocalKeyring::from_env_value(&bad).unwrap_err();
            assert!(!err.to_string().contains(&k1), "{err}");
        }
    }
}
