//! AES-256-GCM sealing with a data key.

use std::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroizing;

/// Length of an AES-GCM nonce in bytes (96 bits, random per sealed message).
pub const NONCE_LEN: usize = 12;
/// Length of an AES-GCM authentication tag in bytes.
pub const TAG_LEN: usize = 16;

/// Fills `buf` with bytes from the operating system's CSPRNG.
///
/// # Panics
/// When the operating system cannot provide randomness: no key or nonce may ever be made
/// from anything weaker, so there is no safe fallback.
pub fn random_bytes(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// Authentication failed: wrong key, wrong associated data, or altered bytes. Deliberately
/// carries nothing, so no caller can leak key material or plaintext through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

/// A 256-bit key: a recording's data key (DEK) or a key-encryption key (KEK).
///
/// The bytes are zeroised on drop (the expanded AES key schedule too, through `aes-gcm`'s
/// `zeroize` feature) and `Debug` prints no key material.
#[derive(Clone)]
pub struct DataKey {
    bytes: Zeroizing<[u8; 32]>,
    cipher: Aes256Gcm,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        random_bytes(bytes.as_mut());
        Self::from_bytes(&bytes)
    }

    /// A key from raw bytes (for keyring back ends that unwrap keys themselves, such as a KMS).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let bytes = Zeroizing::new(*bytes);
        let raw: &[u8; 32] = &bytes;
        let cipher = Aes256Gcm::new(raw.into());
        Self { bytes, cipher }
    }

    /// The raw key bytes, for wrapping by a keyring back end. Handle with care: never log,
    /// print or persist them unwrapped.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Seals `buf[plain_start..plain_end]` in place. The caller lays the buffer out as
    /// `prefix | nonce (12) | plaintext | tag (16)`, with `nonce_at + 12 == plain_start` and
    /// `plain_end + 16 == buf.len()`; this fills the nonce and the tag.
    ///
    /// # Panics
    /// When the layout above does not hold (a bug in the caller, never input-dependent).
    pub fn seal_in_place(&self, buf: &mut [u8], nonce_at: usize, aad: &[u8]) {
        let plain_start = nonce_at + NONCE_LEN;
        let plain_end = buf.len() - TAG_LEN;
        assert!(plain_start <= plain_end, "sealed buffer layout");
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce);
        buf[nonce_at..plain_start].copy_from_slice(&nonce);
        let tag = self
            .cipher
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                aad,
                (&mut buf[plain_start..plain_end]).into(),
            )
            .expect("AES-GCM accepts messages up to 64 GiB; chunks are far smaller");
        buf[plain_end..].copy_from_slice(&tag);
    }

    /// Seals `plaintext` into a new vector `nonce | ciphertext | tag`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&[0u8; NONCE_LEN]);
        buf.extend_from_slice(plaintext);
        buf.extend_from_slice(&[0u8; TAG_LEN]);
        self.seal_in_place(&mut buf, 0, aad);
        buf
    }

    /// Opens `nonce | ciphertext | tag` in place and returns the plaintext's range in `buf`.
    ///
    /// # Errors
    /// [`OpenError`] when the buffer is too short or authentication fails.
    pub fn open_in_place(
        &self,
        buf: &mut [u8],
        aad: &[u8],
    ) -> Result<std::ops::Range<usize>, OpenError> {
        if buf.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError);
        }
        let plain_end = buf.len() - TAG_LEN;
        let (head, tag) = buf.split_at_mut(plain_end);
        let (nonce, body) = head.split_at_mut(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().map_err(|_| OpenError)?;
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| OpenError)?;
        self.cipher
            .decrypt_inout_detached(&Nonce::from(nonce), aad, body.into(), &Tag::from(tag))
            .map_err(|_| OpenError)?;
        Ok(NONCE_LEN..plain_end)
    }

    /// Opens `nonce | ciphertext | tag` into a new vector.
    ///
    /// # Errors
    /// [`OpenError`] when the buffer is too short or authentication fails.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut buf = sealed.to_vec();
        let range = self.open_in_place(&mut buf, aad)?;
        buf.truncate(range.end);
        buf.drain(..range.start);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = DataKey::generate();
        let sealed = key.seal(b"hello eeg", b"aad");
        assert_eq!(sealed.len(), 9 + NONCE_LEN + TAG_LEN);
        assert_eq!(key.open(&sealed, b"aad").unwrap(), b"hello eeg");
        assert_eq!(key.open(&sealed, b"aae"), Err(OpenError));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(key.open(&bad, b"aad"), Err(OpenError), "byte {i}");
        }
        assert_eq!(key.open(&sealed[..10], b"aad"), Err(OpenError));
        let other = DataKey::generate();
        assert_eq!(other.open(&sealed, b"aad"), Err(OpenError));
    }

    #[test]
    fn debug_redacts() {
        let key = DataKey::from_bytes(&[0xAB; 32]);
        let s = format!("{key:?}");
        assert!(
            !s.to_lowercase().contains("abab") && !s.contains("171"),
            "{s}"
        );
    }
}
