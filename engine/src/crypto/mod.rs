//! Envelope encryption for the store: per-recording data keys (DEKs) sealed with AES-256-GCM,
//! wrapped by key-encryption keys (KEKs) held in a [`Keyring`].
//!
//! ```text
//!   Keyring (file 0600 / THETA_KEK / KMS)        per recording                 per chunk
//!   KEK "kek-2026…"  ──wrap(AAD: store, env,──▶  DataKey (random 256-bit) ──▶  AES-256-GCM(nonce, AAD: store,
//!                      recording, tenant, kek)    in its own small object        env, recording, place, version)
//! ```
//!
//! Keys are zeroised on drop and never appear in `Debug` output, logs or errors.

mod aad;
mod envelope;
mod keyring;

pub use aad::{AadContext, ObjectKind};
pub use envelope::{DataKey, NONCE_LEN, OpenError, TAG_LEN, random_bytes};
pub use keyring::{KEK_ENV_VAR, KekId, Keyring, KeyringError, LocalKeyring, WRAPPED_KEY_LEN};
