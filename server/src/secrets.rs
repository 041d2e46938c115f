//! Encryption of the service's own secrets at rest (TOTP seeds): AES-256-GCM under a key kept
//! outside the database.
//!
//! A leaked database alone then yields neither sessions (token hashes), nor passwords (Argon2id),
//! nor second factors (sealed seeds). Each sealed value is bound to its purpose and account
//! through the associated data, so a seed cannot be moved to another account.
//!
//! Key file format (text, mode 0600): `theta-secret-key v1 <environment>` on the first line, the
//! base64 key on the second. The `dev` profile generates `<data_dir>/keys/secrets.key` on first
//! start; other profiles require `secrets_key_file` (make one with `theta admin secret-key`), and
//! every profile refuses a key tagged for another environment — so production refuses dev keys.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::config::{ProfileKind, Settings};
use crate::error::{Error, Result};

const HEADER: &str = "theta-secret-key v1";
const SEALED_PREFIX: &str = "v1:";

/// The key sealing the service's secrets. Zeroised on drop; never printed.
pub struct SecretKey {
    key: Zeroizing<[u8; 32]>,
    environment: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// The dev key's location inside a data folder.
pub fn dev_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("secrets.key")
}

impl SecretKey {
    /// A fresh random key for `environment`.
    pub fn generate(environment: &str) -> SecretKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(&mut key[..]);
        SecretKey {
            key,
            environment: environment.to_owned(),
        }
    }

    /// The environment the key was made for.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Writes the key file (refuses to overwrite), mode 0600.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn write_new(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(|e| Error::io(path, e))?;
        let text = Zeroizing::new(format!(
            "{HEADER} {}\n{}\n",
            self.environment,
            STANDARD.encode(&self.key[..])
        ));
        f.write_all(text.as_bytes()).map_err(|e| Error::io(path, e))
    }

    /// Reads a key file.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::Config`] for a malformed file.
    pub fn read(path: &Path) -> Result<SecretKey> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?);
        let mut lines = text.lines();
        let env = lines
            .next()
            .and_then(|l| l.strip_prefix(HEADER))
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                Error::config(
                    path,
                    format!("not a Theta secret key (first line must be `{HEADER} <environment>`)"),
                )
            })?;
        let raw = Zeroizing::new(
            lines
                .next()
                .and_then(|l| STANDARD.decode(l.trim()).ok())
                .ok_or_else(|| Error::config(path, "second line must be the base64 key"))?,
        );
        let key: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| Error::config(path, "the key must be 32 bytes"))?;
        Ok(SecretKey {
            key: Zeroizing::new(key),
            environment: env,
        })
    }

    /// The key for a profile: the configured file, or (dev only) the generated one. Refuses a
    /// key made for another environment.
    ///
    /// # Errors
    /// [`Error::Config`] when missing or from another environment; [`Error::Io`].
    pub fn for_settings(settings: &Settings) -> Result<SecretKey> {
        let env = settings.environment();
        let key = match &settings.secrets_key_file {
            Some(p) => Self::read(p)?,
            None if settings.kind() == ProfileKind::Dev => {
                let p = dev_key_path(&settings.data_dir);
                if p.exists() {
                    Self::read(&p)?
                } else {
                    let k = Self::generate(&env);
                    k.write_new(&p)?;
                    tracing::warn!(path = %p.display(), "generated a development secret key");
                    k
                }
            }
            None => {
                return Err(Error::config(
                    format!("<profile {}>", settings.name),
                    "secrets_key_file is required outside the dev profile (create one with `theta admin secret-key`)",
                ));
            }
        };
        if key.environment != env {
            return Err(Error::config(
                format!("<profile {}>", settings.name),
                format!(
                    "the secret key belongs to environment {:?}, this profile is {env:?}",
                    key.environment
                ),
            ));
        }
        Ok(key)
    }

    /// Seals `plain` for `purpose` (e.g. `totp:<account id>`): `v1:` + base64(nonce ‖ ciphertext).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if encryption fails (it does not for valid sizes).
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Result<String> {
        let cipher = Aes256Gcm::new_from_slice(&self.key[..]).map_err(|_| Error::Corrupt {
            what: "secret key".into(),
        })?;
        let mut nonce = [0u8; 12];
        rand::fill(&mut nonce);
        let ct = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| Error::Corrupt {
                what: "sealing a secret".into(),
            })?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens a value sealed for `purpose`. One opaque error for every failure.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the value is malformed, tampered with, moved, or sealed under
    /// another key.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>> {
        let fail = || Error::Corrupt {
            what: format!(
                "sealed secret ({})",
                purpose.split(':').next().unwrap_or("")
            ),
        };
        let bytes = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .ok_or_else(fail)?;
        if bytes.len() < 12 + 16 {
            return Err(fail());
        }
        let (nonce, ct) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| fail())?;
        let cipher = Aes256Gcm::new_from_slice(&self.key[..]).map_err(|_| fail())?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: purpose.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| fail())
    }

    /// Seals an account's TOTP seed (base32 text).
    ///
    /// # Errors
    /// As [`SecretKey::seal`].
    pub fn seal_totp(&self, account_id: &str, secret_b32: &str) -> Result<String> {
        self.seal(&format!("totp:{account_id}"), secret_b32.as_bytes())
    }

    /// Opens an account's TOTP seed.
    ///
    /// # Errors
    /// As [`SecretKey::open`].
    pub fn open_totp(&self, account_id: &str, sealed: &str) -> Result<Zeroizing<String>> {
        let b = self.open(&format!("totp:{account_id}"), sealed)?;
        String::from_utf8(b.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| Error::Corrupt {
                what: "sealed secret (totp)".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_bindings() {
        let k = SecretKey::generate("dev");
        let s = k.seal_totp("acc-1", "JBSWY3DPEHPK3PXP").unwrap();
        assert!(!s.contains("JBSWY3DP"));
        assert_eq!(
            k.open_totp("acc-1", &s).unwrap().as_str(),
            "JBSWY3DPEHPK3PXP"
        );
        // Moved to another account, tampered with, or under another key: refused.
        assert!(k.open_totp("acc-2", &s).is_err());
        let mut t = s.clone().into_bytes();
        let i = t.len() - 3;
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        assert!(
            k.open_totp("acc-1", std::str::from_utf8(&t).unwrap())
                .is_err()
        );
        assert!(SecretKey::generate("dev").open_totp("acc-1", &s).is_err());
        assert!(k.open_totp("acc-1", "v1:AAAA").is_err());
        assert!(k.open_totp("acc-1", "plain").is_err());
    }

    #[test]
    fn key_files_and_environments() {
        let dir = tempfile::tempdir().unwrap();
        let dev = Settings::for_kind(ProfileKind::Dev, dir.path());
        let a = SecretKey::for_settings(&dev).unwrap();
        let b = SecretKey::for_settings(&dev).unwrap();
        let sealed = a.seal("x", b"y").unwrap();
        assert_eq!(
            &b.open("x", &sealed).unwrap()[..],
            b"y",
            "the dev key is reused"
        );
        let mut prod = Settings::for_kind(ProfileKind::Prod, dir.path());
        let err = SecretKey::for_settings(&prod).unwrap_err().to_string();
        assert!(err.contains("secrets_key_file is required"), "{err}");
        prod.secrets_key_file = Some(dev_key_path(dir.path()));
        let err = SecretKey::for_settings(&prod).unwrap_err().to_string();
        assert!(err.contains("belongs to environment \"dev\""), "{err}");
        let p = dir.path().join("prod.key");
        SecretKey::generate("prod").write_new(&p).unwrap();
        assert!(
            SecretKey::generate("prod").write_new(&p).is_err(),
            "never overwritten"
        );
        prod.secrets_key_file = Some(p);
        SecretKey::for_settings(&prod).unwrap();
        std::fs::write(dir.path().join("bad.key"), "hello\n").unwrap();
        assert!(SecretKey::read(&dir.path().join("bad.key")).is_err());
    }
}
