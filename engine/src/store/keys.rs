//! Key rotation (re-wrap every data key under the current KEK) and crypto-shredding.

use std::sync::Arc;

use super::StoreInner;
use super::error::{Result, StoreError};
use super::format::paths;
use super::ids::RecordingId;
use super::manifest::{
    KeyRecord, decode_key, encode_tombstone, encode_wrapped_key, key_prefix, wrap_aad,
};
use super::recording::unwrap_key;
use crate::crypto::KekId;

/// What a rotation did.
#[derive(Debug, Clone, Default)]
pub struct RotateReport {
    /// The KEK every data key is now wrapped under.
    pub kek: Option<KekId>,
    /// Recordings whose data key was re-wrapped.
    pub rewrapped: Vec<RecordingId>,
    /// Recordings already wrapped under the current KEK.
    pub already_current: Vec<RecordingId>,
    /// Shredded recordings (nothing to re-wrap).
    pub shredded: Vec<RecordingId>,
    /// Recordings that could not be re-wrapped, with the reason.
    pub failed: Vec<(RecordingId, String)>,
    /// Research projects whose key was re-wrapped.
    pub projects_rewrapped: usize,
}

pub(crate) async fn rotate(store: &Arc<StoreInner>) -> Result<RotateReport> {
    let kek = store.keyring.current_kek()?;
    let mut report = RotateReport {
        kek: Some(kek.clone()),
        ..Default::default()
    };
    for id in store.committed_ids().await? {
        match rewrap(store, id, &kek).await {
            Ok(Outcome::Rewrapped) => report.rewrapped.push(id),
            Ok(Outcome::Current) => report.already_current.push(id),
            Ok(Outcome::Shredded) => report.shredded.push(id),
            Err(e) => report.failed.push((id, e.to_string())),
        }
    }
    report.projects_rewrapped = super::projects::rotate(store, &kek).await?;
    Ok(report)
}

enum Outcome {
    Rewrapped,
    Current,
    Shredded,
}

async fn rewrap(store: &StoreInner, id: RecordingId, kek: &KekId) -> Result<Outcome> {
    let path = paths::key(&id);
    let bytes = store
        .get_opt(&path)
        .await?
        .ok_or_else(|| StoreError::corrupt(&path, "the wrapped data key is missing"))?;
    let (record, _) = decode_key(&bytes, &store.store_id, &id)?;
    let tenant = match record {
        KeyRecord::Shredded { .. } => return Ok(Outcome::Shredded),
        KeyRecord::Wrapped { kek: old, .. } if old == *kek => return Ok(Outcome::Current),
        KeyRecord::Wrapped { tenant, .. } => tenant,
    };
    let (dek, _) = unwrap_key(store, id, Some(&tenant)).await?;
    let prefix = key_prefix(&store.store_id, &id, &tenant, kek);
    let wrapped = store
        .keyring
        .wrap(kek, &dek, &wrap_aad(&store.scope(&id), &prefix))
        .await?;
    // One atomic overwrite of a small object: the data is never touched, and a crash leaves
    // either the old or the new wrap, both readable while the keyring holds both KEKs.
    store
        .put(&path, encode_wrapped_key(&prefix, &wrapped))
        .await?;
    Ok(Outcome::Rewrapped)
}

pub(crate) async fn shred(store: &Arc<StoreInner>, id: RecordingId) -> Result<()> {
    if !store.exists(&paths::manifest(&id)).await? {
        return Err(StoreError::UnknownRecording { recording: id });
    }
    let path = paths::key(&id);
    let bytes = store
        .get_opt(&path)
        .await?
        .ok_or_else(|| StoreError::corrupt(&path, "the wrapped data key is missing"))?;
    let tenant = match decode_key(&bytes, &store.store_id, &id)?.0 {
        KeyRecord::Shredded { .. } => return Ok(()),
        KeyRecord::Wrapped { tenant, .. } => tenant,
    };
    let tombstone = encode_tombstone(
        &store.store_id,
        &id,
        &tenant,
        chrono::Utc::now().timestamp(),
    );
    store.put(&path, tombstone).await?;
    store.forget_open(&id);
    Ok(())
}
