//! The Ed25519 key pair that signs checkpoints.
//!
//! The signing key lives in its own file (mode 0600, refused if group or others can read it, and
//! refused if it sits in the log's own directory), tagged with the environment; the verify key is
//! published beside the log as text so auditors can check a copy of the log without the secret.
//! Verifiers should pin the verify key from an out-of-band copy (configuration, escrow): a
//! tamperer who can rewrite the log directory could also replace the published file.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use super::canonical::sha256;
use super::error::{AuditError, Result};
use super::ids::Environment;

const SIGNING_HEADER: &str = "theta-audit-signing-key v1";
const VERIFY_PREFIX: &str = "theta-audit-verify-key v1";

/// Short identifier of a verify key: the first 8 bytes of SHA-256 of the public key, in hex.
/// Stored beside every signature so a log signed over a key rotation stays verifiable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    fn of(key: &VerifyingKey) -> Self {
        KeyId(hex::encode(&sha256(key.as_bytes())[..8]))
    }

    pub(crate) fn from_stored(s: String) -> Self {
        KeyId(s)
    }

    /// The id as 16 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The checkpoint signing key (secret). Zeroised on drop; `Debug` shows only its id.
pub struct AuditSigningKey {
    key: SigningKey,
    environment: Environment,
    id: KeyId,
}

impl fmt::Debug for AuditSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSigningKey")
            .field("environment", &self.environment)
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl AuditSigningKey {
    /// A fresh random key for `environment` (OS randomness).
    ///
    /// # Errors
    /// [`AuditError::Key`] if the operating system cannot provide randomness.
    pub fn generate(environment: Environment) -> Result<Self> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut()).map_err(|e| AuditError::Key {
            path: PathBuf::new(),
            reason: format!("no OS randomness: {e}"),
        })?;
        Ok(Self::from_secret(&secret, environment))
    }

    fn from_secret(secret: &[u8; 32], environment: Environment) -> Self {
        let key = SigningKey::from_bytes(secret);
        let id = KeyId::of(&key.verifying_key());
        AuditSigningKey {
            key,
            environment,
            id,
        }
    }

    /// Writes the key to a new file with mode 0600 (never overwrites).
    ///
    /// # Errors
    /// [`AuditError::Io`] if the file exists or cannot be written.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| AuditError::io(path, e))?;
        let text = Zeroizing::new(format!(
            "{SIGNING_HEADER}\nenvironment {}\nsecret {}\n",
            self.environment,
            hex::encode(self.key.to_bytes())
        ));
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| AuditError::io(path, e))
    }

    /// Reads a key file written by [`write_new`](Self::write_new).
    ///
    /// # Errors
    /// [`AuditError::Key`] if the file is readable by group or others, or is not a signing key
    /// file; [`AuditError::Io`] if it cannot be read.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: &str| AuditError::Key {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let meta = fs::metadata(path).map_err(|e| AuditError::io(path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(bad(&format!(
                    "mode {mode:o} lets group or others read the signing key; chmod 600"
                )));
            }
        }
        if !meta.is_file() {
            return Err(bad("not a regular file"));
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?);
        let mut lines = text.lines();
        if lines.next() != Some(SIGNING_HEADER) {
            return Err(bad("not a theta audit signing key (bad header)"));
        }
        let env = lines
            .next()
            .and_then(|l| l.strip_prefix("environment "))
            .ok_or_else(|| bad("missing `environment` line"))?;
        let environment = Environment::try_new(env).map_err(|_| bad("invalid environment tag"))?;
        let hex_secret = lines
            .next()
            .and_then(|l| l.strip_prefix("secret "))
            .ok_or_else(|| bad("missing `secret` line"))?;
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_secret, secret.as_mut())
            .map_err(|_| bad("secret is not 64 hex digits"))?;
        Ok(Self::from_secret(&secret, environment))
    }

    /// Loads the key at `path`, or generates one for `environment` and writes it there if the
    /// file does not exist yet.
    ///
    /// # Errors
    /// As [`load`](Self::load) and [`write_new`](Self::write_new); also
    /// [`AuditError::EnvironmentMismatch`] if an existing key belongs to another environment.
    pub fn load_or_generate(path: &Path, environment: &Environment) -> Result<Self> {
        if path.exists() {
            let key = Self::load(path)?;
            if key.environment() != environment {
                return Err(AuditError::EnvironmentMismatch {
                    key: key.environment.to_string(),
                    log: environment.to_string(),
                });
            }
            return Ok(key);
        }
        let key = Self::generate(environment.clone())?;
        key.write_new(path)?;
        Ok(key)
    }

    /// The environment this key signs for.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// The id of the matching verify key.
    pub fn key_id(&self) -> &KeyId {
        &self.id
    }

    /// The public half.
    pub fn verify_key(&self) -> AuditVerifyKey {
        AuditVerifyKey {
            key: self.key.verifying_key(),
            environment: self.environment.clone(),
            id: self.id.clone(),
        }
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// A published checkpoint verify key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditVerifyKey {
    key: VerifyingKey,
    environment: Environment,
    id: KeyId,
}

impl AuditVerifyKey {
    /// The environment the key was issued for.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// Its id.
    pub fn key_id(&self) -> &KeyId {
        &self.id
    }

    /// One published line: `theta-audit-verify-key v1 <environment> <64 hex digits>`.
    pub fn to_line(&self) -> String {
        format!(
            "{VERIFY_PREFIX} {} {}",
            self.environment,
            hex::encode(self.key.as_bytes())
        )
    }

    /// Parses a published line.
    ///
    /// # Errors
    /// [`AuditError::InvalidField`] (field `verify_key`) if the line is malformed or the point is
    /// not a valid Ed25519 public key.
    pub fn from_line(line: &str) -> Result<Self> {
        let bad = || {
            AuditError::invalid(
                "verify_key",
                "expected `theta-audit-verify-key v1 <environment> <64 hex digits>`",
            )
        };
        let rest = line.trim().strip_prefix(VERIFY_PREFIX).ok_or_else(bad)?;
        let mut parts = rest.split_whitespace();
        let env = parts.next().ok_or_else(bad)?;
        let hex_key = parts.next().ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        let environment = Environment::try_new(env)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut bytes).map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        let id = KeyId::of(&key);
        Ok(AuditVerifyKey {
            key,
            environment,
            id,
        })
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.key
            .verify_strict(message, &Signature::from_bytes(&sig))
            .is_ok()
    }
}

/// The set of verify keys a verifier trusts (several after a key rotation).
#[derive(Clone, Debug, Default)]
pub struct AuditVerifyKeys {
    keys: Vec<AuditVerifyKey>,
}

impl AuditVerifyKeys {
    /// A set holding one key.
    pub fn single(key: AuditVerifyKey) -> Self {
        AuditVerifyKeys { keys: vec![key] }
    }

    /// Adds a key (ignored if already present).
    pub fn insert(&mut self, key: AuditVerifyKey) {
        if !self.keys.iter().any(|k| k.id == key.id) {
            self.keys.push(key);
        }
    }

    /// The keys.
    pub fn keys(&self) -> &[AuditVerifyKey] {
        &self.keys
    }

    pub(crate) fn get(&self, id: &str) -> Option<&AuditVerifyKey> {
        self.keys.iter().find(|k| k.id.as_str() == id)
    }

    /// Reads a published verify-key file (one key per line; blank lines and `#` comments are
    /// skipped).
    ///
    /// # Errors
    /// [`AuditError::Io`] if unreadable; [`AuditError::InvalidField`] for a malformed line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
        let mut set = AuditVerifyKeys::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            set.insert(AuditVerifyKey::from_line(line)?);
        }
        Ok(set)
    }

    /// The published verify-key file that belongs to the log at `log_path`:
    /// `<log file name>.verify-key` in the same directory.
    pub fn published_path(log_path: &Path) -> PathBuf {
        let mut name = log_path.file_name().unwrap_or_default().to_os_string();
        name.push(".verify-key");
        log_path.with_file_name(name)
    }

    /// Adds `key` to the published file at `path` unless it is already listed.
    ///
    /// # Errors
    /// [`AuditError::Io`] on write failure; errors of [`load`](Self::load) for an existing file.
    pub fn publish(path: &Path, key: &AuditVerifyKey) -> Result<()> {
        if path.exists() {
            let existing = Self::load(path)?;
            if existing.get(key.id.as_str()).is_some() {
                return Ok(());
            }
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| AuditError::io(path, e))?;
        writeln!(f, "{}", key.to_line())
            .and_then(|()| f.sync_all())
            .map_err(|e| AuditError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trip_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let env = Environment::try_new("test").unwrap();
        let key = AuditSigningKey::generate(env.clone()).unwrap();
        key.write_new(&path).unwrap();
        assert!(key.write_new(&path).is_err(), "must not overwrite");
        let back = AuditSigningKey::load(&path).unwrap();
        assert_eq!(back.key_id(), key.key_id());
        assert_eq!(back.environment(), &env);
        let dbg = format!("{back:?}");
        assert!(!dbg.contains(&hex::encode(key.key.to_bytes())));

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let err = AuditSigningKey::load(&path).unwrap_err();
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn load_or_generate_refuses_other_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let dev = Environment::try_new("dev").unwrap();
        let prod = Environment::try_new("prod").unwrap();
        AuditSigningKey::load_or_generate(&path, &dev).unwrap();
        assert!(matches!(
            AuditSigningKey::load_or_generate(&path, &prod),
            Err(AuditError::EnvironmentMismatch { .. })
        ));
    }

    #[test]
    fn verify_key_lines_and_signatures() {
        let key = AuditSigningKey::generate(Environment::try_new("prod").unwrap()).unwrap();
        let vk = key.verify_key();
        let parsed = AuditVerifyKey::from_line(&vk.to_line()).unwrap();
        assert_eq!(parsed, vk);
        let sig = key.sign(b"hello");
        assert!(vk.verify(b"hello", &sig));
        assert!(!vk.verify(b"hellp", &sig));
        assert!(!vk.verify(b"hello", &sig[..63]));
        assert!(AuditVerifyKey::from_line("theta-audit-verify-key v1 prod zz").is_err());

        let dir = tempfile::tempdir().unwrap();
        let p = AuditVerifyKeys::published_path(&dir.path().join("audit.db"));
        assert!(p.ends_with("audit.db.verify-key"));
        AuditVerifyKeys::publish(&p, &vk).unwrap();
        AuditVerifyKeys::publish(&p, &vk).unwrap();
        let other = AuditSigningKey::generate(Environment::try_new("prod").unwrap()).unwrap();
        AuditVerifyKeys::publish(&p, &other.verify_key()).unwrap();
        assert_eq!(AuditVerifyKeys::load(&p).unwrap().keys().len(), 2);
    }
}
