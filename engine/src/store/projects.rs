//! Research projects: a per-project secret (the key of every pseudonym of that project) and the
//! mapping from pseudonyms back to source ids, sealed in the store and never exported.
//!
//! One object per project, `projects/<project id>` (the id is derived from the name, so the
//! name itself is not in clear): the project's data key wrapped under the current KEK, then a
//! sealed JSON body with the secret and the mapping. See `engine/FORMAT.md` §Projects.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::StoreInner;
use super::error::{Result, StoreError};
use super::format::{FORMAT_VERSION, Reader, push_short_str};
use super::ids::RecordingId;
use super::manifest::wrap_aad;
use crate::crypto::{DataKey, KekId, NONCE_LEN, ObjectKind, TAG_LEN, random_bytes};

/// Magic of a project object.
pub(crate) const PROJECT_MAGIC: &[u8; 8] = b"THETA\0PJ";
const PROJECTS: &str = "projects";

/// Longest project name, in bytes.
pub const MAX_PROJECT_NAME: usize = 128;

/// What the store keeps about a research project, apart from its secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectMapping {
    /// Project name.
    pub project: String,
    /// When the project was created (UTC, RFC 3339).
    pub created_at: String,
    /// Subject pseudonym → source patient key.
    pub subjects: BTreeMap<String, String>,
    /// Exported recording pseudonym → store recording id.
    pub recordings: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    secret: String,
    #[serde(flatten)]
    mapping: ProjectMapping,
}

impl Drop for Body {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// The id a project's object is named by: a hash of its name, so that names stay sealed.
fn project_id(name: &str) -> RecordingId {
    let d = Sha256::new()
        .chain_update(b"theta/project/v1\0")
        .chain_update(name.as_bytes())
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    RecordingId(id)
}

fn path(id: &RecordingId) -> object_store::path::Path {
    object_store::path::Path::from(format!("{PROJECTS}/{id}"))
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > MAX_PROJECT_NAME || name.chars().any(char::is_control)
    {
        return Err(StoreError::InvalidArgument {
            what: format!("project name: 1-{MAX_PROJECT_NAME} bytes, no control characters"),
        });
    }
    Ok(())
}

fn prefix(store: &StoreInner, id: &RecordingId, kek: &KekId) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(PROJECT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(store.store_id.as_bytes());
    out.extend_from_slice(id.as_bytes());
    push_short_str(&mut out, kek.as_str());
    out
}

async fn encode(store: &StoreInner, id: &RecordingId, body: &Body) -> Result<Vec<u8>> {
    let kek = store.keyring.current_kek()?;
    let dek = DataKey::generate();
    let mut out = prefix(store, id, &kek);
    let wrapped = store
        .keyring
        .wrap(&kek, &dek, &wrap_aad(&store.scope(id), &out))
        .await?;
    let json = Zeroizing::new(serde_json::to_vec(body).map_err(|e| StoreError::Internal {
        detail: format!("project body: {e}"),
    })?);
    out.extend_from_slice(&(wrapped.len() as u16).to_le_bytes());
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    let nonce_at = out.len();
    let aad = store
        .scope(id)
        .aad(ObjectKind::ProjectMapping, 0, 0, 0, &out);
    out.extend_from_slice(&[0u8; NONCE_LEN]);
    out.extend_from_slice(&json);
    out.extend_from_slice(&[0u8; TAG_LEN]);
    dek.seal_in_place(&mut out, nonce_at, &aad);
    Ok(out)
}

async fn decode(store: &StoreInner, id: &RecordingId, bytes: &[u8]) -> Result<(Body, KekId)> {
    let object = path(id).to_string();
    let mut r = Reader::new(bytes, &object);
    r.magic(PROJECT_MAGIC)?;
    r.version()?;
    let _reserved = r.u16("reserved")?;
    let s: [u8; 16] = r.array("store id")?;
    let p: [u8; 16] = r.array("project id")?;
    if s != *store.store_id.as_bytes() || p != *id.as_bytes() {
        return Err(StoreError::corrupt(
            &object,
            "belongs to another store or project",
        ));
    }
    let kek = KekId::new(r.short_str("kek id")?)
        .map_err(|e| StoreError::corrupt(&object, format!("kek id: {e}")))?;
    let prefix_end = r.pos();
    let wrapped_len = usize::from(r.u16("wrapped key length")?);
    let wrapped = r.take(wrapped_len, "wrapped key")?;
    let body_len = r.u32("body length")? as usize;
    let nonce_at = r.pos();
    if r.remaining() != NONCE_LEN + body_len + TAG_LEN {
        return Err(StoreError::corrupt(&object, "sealed body length mismatch"));
    }
    let dek = store
        .keyring
        .unwrap(
            &kek,
            wrapped,
            &wrap_aad(&store.scope(id), &bytes[..prefix_end]),
        )
        .await?;
    let aad = store
        .scope(id)
        .aad(ObjectKind::ProjectMapping, 0, 0, 0, &bytes[..nonce_at]);
    let json = Zeroizing::new(
        dek.open(&bytes[nonce_at..], &aad)
            .map_err(|_| StoreError::corrupt(&object, "failed authentication"))?,
    );
    let body: Body = serde_json::from_slice(&json)
        .map_err(|e| StoreError::corrupt(&object, format!("body: {e}")))?;
    Ok((body, kek))
}

async fn load(store: &StoreInner, name: &str) -> Result<Option<Body>> {
    check_name(name)?;
    let id = project_id(name);
    match store.get_opt(&path(&id)).await? {
        None => Ok(None),
        Some(bytes) => {
            let (body, _) = decode(store, &id, &bytes).await?;
            if body.mapping.project != name {
                return Err(StoreError::corrupt(path(&id), "project name mismatch"));
            }
            Ok(Some(body))
        }
    }
}

fn secret_bytes(body: &Body) -> Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(&body.secret, out.as_mut())
        .map_err(|_| StoreError::corrupt(PROJECTS, "project secret is not 32 hex bytes"))?;
    Ok(out)
}

/// The project's secret, created (random, 256 bits) on first use.
pub(crate) async fn secret(store: &Arc<StoreInner>, name: &str) -> Result<Zeroizing<[u8; 32]>> {
    if let Some(body) = load(store, name).await? {
        return secret_bytes(&body);
    }
    let mut fresh = Zeroizing::new([0u8; 32]);
    random_bytes(fresh.as_mut());
    let body = Body {
        secret: hex::encode(fresh.as_ref()),
        mapping: ProjectMapping {
            project: name.to_string(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ..Default::default()
        },
    };
    let id = project_id(name);
    // Create-only: two exports starting the same project at once agree on one secret.
    if store
        .put_create(&path(&id), encode(store, &id, &body).await?)
        .await?
    {
        return Ok(fresh);
    }
    let body = load(store, name)
        .await?
        .ok_or_else(|| StoreError::corrupt(path(&id), "vanished after a concurrent create"))?;
    secret_bytes(&body)
}

/// The sealed mapping of a project, if it exists.
pub(crate) async fn mapping(store: &Arc<StoreInner>, name: &str) -> Result<Option<ProjectMapping>> {
    Ok(load(store, name).await?.map(|b| b.mapping.clone()))
}

/// Adds pseudonym → source entries to a project's mapping (the project must exist).
pub(crate) async fn record(
    store: &Arc<StoreInner>,
    name: &str,
    subjects: &[(String, String)],
    recordings: &[(String, String)],
) -> Result<()> {
    let mut body = load(store, name)
        .await?
        .ok_or_else(|| StoreError::InvalidArgument {
            what: "unknown project (create it by taking its secret first)".into(),
        })?;
    body.mapping.subjects.extend(subjects.iter().cloned());
    body.mapping.recordings.extend(recordings.iter().cloned());
    let id = project_id(name);
    // Last writer wins: pseudonyms derive from the secret alone, so a lost concurrent mapping
    // update loses no pseudonym; the next export of the same recordings records it again.
    store
        .put(&path(&id), encode(store, &id, &body).await?)
        .await
}

/// Re-wraps every project under the current KEK; returns how many were re-written.
pub(crate) async fn rotate(store: &Arc<StoreInner>, kek: &KekId) -> Result<usize> {
    let prefix = object_store::path::Path::from(PROJECTS);
    let mut n = 0;
    for meta in store.list_all(&prefix).await? {
        let Some(hexid) = meta.location.filename() else {
            continue;
        };
        let Ok(id) = hexid.parse::<RecordingId>() else {
            continue;
        };
        let Some(bytes) = store.get_opt(&meta.location).await? else {
            continue;
        };
        let (body, old) = decode(store, &id, &bytes).await?;
        if old != *kek {
            store
                .put(&meta.location, encode(store, &id, &body).await?)
                .await?;
            n += 1;
        }
    }
    Ok(n)
}
