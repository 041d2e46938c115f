//! Annotations: an append-only, encrypted, hash-chained log of events per recording.
//!
//! Event `n` lives in `rec/<id>/ann/<n, 10 digits>`, sealed with the recording's data key
//! (associated data binds the sequence number), and carries the SHA-256 of event `n - 1`'s
//! object. Events are written with a conditional put (create only), so two writers can
//! never clobber each other: the loser re-reads the log and retries. Nothing is ever
//! rewritten, so every version of every annotation stays readable with its author and time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StoreInner;
use super::error::{Result, StoreError};
use super::format::{ANNOTATION_MAGIC, open_object, parse_sealed_header, paths, seal_object};
use super::ids::{ChunkPlace, RecordingId};
use super::ingest::validate_user_annotation;
use super::recording::Recording;
use super::source::Annotation;
use crate::crypto::{DataKey, ObjectKind};

/// Author id recorded for annotations imported from the source file.
pub const IMPORT_AUTHOR: &str = "import";

/// What an event did to an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationChange {
    /// Imported from the source at ingest.
    Imported,
    /// Added by a user.
    Added,
    /// Edited.
    Edited,
    /// Deleted.
    Deleted,
}

/// The current state of an annotation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnotationRecord {
    /// Stable id within the recording.
    pub id: u64,
    /// Current content.
    pub annotation: Annotation,
    /// Version number (1 when created, +1 per edit).
    pub version: u32,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Who changed it last.
    pub updated_by: String,
    /// When.
    pub updated_at: DateTime<Utc>,
}

/// One version of an annotation in the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnotationVersion {
    /// Annotation id.
    pub id: u64,
    /// Version number this event produced.
    pub version: u32,
    /// Sequence number of the event in the log.
    pub seq: u64,
    /// What happened.
    pub change: AnnotationChange,
    /// Content after the change (`None` for a deletion).
    pub annotation: Option<Annotation>,
    /// Who.
    pub author: String,
    /// When (UTC).
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Import { id: u64, annotation: Annotation },
    Add { id: u64, annotation: Annotation },
    Edit { id: u64, annotation: Annotation },
    Delete { id: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventBody {
    seq: u64,
    prev: String,
    author: String,
    at: DateTime<Utc>,
    ops: Vec<Op>,
}

/// Replayed log, cached per open recording.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    events: u64,
    last_hash: Option<[u8; 32]>,
    current: BTreeMap<u64, AnnotationRecord>,
    history: Vec<AnnotationVersion>,
    next_id: u64,
    ever: std::collections::BTreeSet<u64>,
}

fn seal_event(
    store: &StoreInner,
    recording: RecordingId,
    dek: &DataKey,
    body: &EventBody,
) -> Result<Vec<u8>> {
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(body)
            .map_err(|e| StoreError::internal(format!("annotation event: {e}")))?,
    );
    Ok(seal_object(
        ANNOTATION_MAGIC,
        ObjectKind::AnnotationEvent,
        body.seq,
        &store.scope(&recording),
        &[],
        &json,
        dek,
    ))
}

/// Writes the import event (sequence 0) during ingest; returns its size.
pub(crate) async fn write_import(
    store: &StoreInner,
    recording: RecordingId,
    dek: &DataKey,
    annotations: Vec<Annotation>,
) -> Result<u64> {
    let body = EventBody {
        seq: 0,
        prev: String::new(),
        author: IMPORT_AUTHOR.into(),
        at: Utc::now(),
        ops: annotations
            .into_iter()
            .enumerate()
            .map(|(i, annotation)| Op::Import {
                id: i as u64,
                annotation,
            })
            .collect(),
    };
    let sealed = seal_event(store, recording, dek, &body)?;
    let n = sealed.len() as u64;
    if !store
        .put_create(&paths::annotation(&recording, 0), sealed)
        .await?
    {
        return Err(StoreError::internal(
            "annotation log of a new recording exists",
        ));
    }
    Ok(n)
}

fn valid_author(author: &str) -> Result<()> {
    if author.is_empty() || author.len() > 128 || author.chars().any(char::is_control) {
        return Err(StoreError::InvalidArgument {
            what: "author id: 1-128 characters without control characters".into(),
        });
    }
    Ok(())
}

impl LogState {
    fn apply(&mut self, body: EventBody, object: &str) -> Result<()> {
        let corrupt = |d: &str| StoreError::corrupt(object, d.to_string());
        for op in body.ops {
            let (id, change, annotation) = match op {
                Op::Import { id, annotation } => (id, AnnotationChange::Imported, Some(annotation)),
                Op::Add { id, annotation } => (id, AnnotationChange::Added, Some(annotation)),
                Op::Edit { id, annotation } => (id, AnnotationChange::Edited, Some(annotation)),
                Op::Delete { id } => (id, AnnotationChange::Deleted, None),
            };
            let version = match change {
                AnnotationChange::Imported | AnnotationChange::Added => {
                    if !self.ever.insert(id) {
                        return Err(corrupt("an annotation id is created twice"));
                    }
                    self.next_id = self.next_id.max(id + 1);
                    let a = annotation.clone().expect("creation carries content");
                    self.current.insert(
                        id,
                        AnnotationRecord {
                            id,
                            annotation: a,
                            version: 1,
                            created_by: body.author.clone(),
                            created_at: body.at,
                            updated_by: body.author.clone(),
                            updated_at: body.at,
                        },
                    );
                    1
                }
                AnnotationChange::Edited => {
                    let rec = self
                        .current
                        .get_mut(&id)
                        .ok_or_else(|| corrupt("an edit of a missing annotation"))?;
                    rec.version += 1;
                    rec.annotation = annotation.clone().expect("edit carries content");
                    rec.updated_by = body.author.clone();
                    rec.updated_at = body.at;
                    rec.version
                }
                AnnotationChange::Deleted => {
                    let rec = self
                        .current
                        .remove(&id)
                        .ok_or_else(|| corrupt("a deletion of a missing annotation"))?;
                    rec.version + 1
                }
            };
            self.history.push(AnnotationVersion {
                id,
                version,
                seq: body.seq,
                change,
                annotation,
                author: body.author.clone(),
                at: body.at,
            });
        }
        Ok(())
    }
}

impl Recording {
    /// Reads events written since the last sync (by this or any other process).
    async fn sync_annotations(&self, st: &mut LogState) -> Result<()> {
        let id = self.id();
        let metas = self.store.list_all(&paths::annotations_dir(&id)).await?;
        let mut seqs: Vec<u64> = metas
            .iter()
            .filter_map(|m| m.location.filename().and_then(|n| n.parse().ok()))
            .collect();
        seqs.sort_unstable();
        for (i, &s) in seqs.iter().enumerate() {
            if s != i as u64 {
                return Err(StoreError::corrupt(
                    paths::annotations_dir(&id),
                    format!("annotation event {i} is missing"),
                ));
            }
        }
        let scope = self.store.scope(&id);
        for seq in st.events..seqs.len() as u64 {
            let path = paths::annotation(&id, seq);
            let object = path.to_string();
            let bytes = self
                .store
                .get_opt(&path)
                .await?
                .ok_or_else(|| StoreError::corrupt(&object, "vanished while reading"))?;
            let integrity = StoreError::Integrity {
                recording: id,
                place: ChunkPlace::AnnotationEvent { seq },
            };
            let h = parse_sealed_header(
                &bytes,
                ANNOTATION_MAGIC,
                ObjectKind::AnnotationEvent,
                &object,
            )?;
            if h.store_id != self.store.store_id || h.recording != id {
                return Err(integrity);
            }
            let plain = zeroize::Zeroizing::new(
                open_object(
                    &bytes,
                    &h,
                    ObjectKind::AnnotationEvent,
                    seq,
                    &scope,
                    &self.state.dek,
                )
                .ok_or(integrity)?,
            );
            let body: EventBody = serde_json::from_slice(&plain)
                .map_err(|e| StoreError::corrupt(&object, format!("event body: {e}")))?;
            let want_prev = st.last_hash.map(hex::encode).unwrap_or_default();
            if body.seq != seq || body.prev != want_prev {
                return Err(StoreError::corrupt(&object, "broken hash chain"));
            }
            st.apply(body, &object)?;
            st.last_hash = Some(Sha256::digest(&bytes).into());
            st.events = seq + 1;
        }
        Ok(())
    }

    /// Current annotations (deleted ones excluded), by id (imported ones in source order).
    ///
    /// # Errors
    /// Integrity errors naming the event; object store failures.
    pub async fn annotations(&self) -> Result<Vec<AnnotationRecord>> {
        let mut st = self.state.annotations.lock().await;
        self.sync_annotations(&mut st).await?;
        Ok(st.current.values().cloned().collect())
    }

    /// Every version of every annotation, in log order.
    ///
    /// # Errors
    /// As [`Recording::annotations`].
    pub async fn annotation_history(&self) -> Result<Vec<AnnotationVersion>> {
        let mut st = self.state.annotations.lock().await;
        self.sync_annotations(&mut st).await?;
        Ok(st.history.clone())
    }

    async fn append_event(
        &self,
        author: &str,
        make: impl Fn(&LogState) -> Result<(u64, Op)>,
    ) -> Result<u64> {
        valid_author(author)?;
        let mut st = self.state.annotations.lock().await;
        for _ in 0..16 {
            self.sync_annotations(&mut st).await?;
            let (id, op) = make(&st)?;
            let body = EventBody {
                seq: st.events,
                prev: st.last_hash.map(hex::encode).unwrap_or_default(),
                author: author.to_string(),
                at: Utc::now(),
                ops: vec![op],
            };
            let sealed = seal_event(&self.store, self.id(), &self.state.dek, &body)?;
            if self
                .store
                .put_create(&paths::annotation(&self.id(), body.seq), sealed)
                .await?
            {
                self.sync_annotations(&mut st).await?;
                return Ok(id);
            }
            // Another writer took this sequence number: read its event and try again.
        }
        Err(StoreError::Conflict {
            what: format!("annotations of recording {}", self.id()),
        })
    }

    /// Adds an annotation; returns its id.
    ///
    /// # Errors
    /// [`StoreError::InvalidArgument`] for an onset outside the recording, a negative duration
    /// or one running past the recording's end, an empty text, a text over 64 KiB or holding a
    /// control character, or a bad author id; [`StoreError::Conflict`] under sustained contention.
    pub async fn add_annotation(&self, author: &str, annotation: Annotation) -> Result<u64> {
        validate_user_annotation(&annotation, self.duration())
            .map_err(|what| StoreError::InvalidArgument { what })?;
        self.append_event(author, |st| {
            let id = st.next_id;
            Ok((
                id,
                Op::Add {
                    id,
                    annotation: annotation.clone(),
                },
            ))
        })
        .await
    }

    /// Replaces an annotation's content (the previous version stays in the history).
    ///
    /// # Errors
    /// [`StoreError::UnknownAnnotation`], and as [`Recording::add_annotation`].
    pub async fn edit_annotation(
        &self,
        author: &str,
        id: u64,
        annotation: Annotation,
    ) -> Result<()> {
        validate_user_annotation(&annotation, self.duration())
            .map_err(|what| StoreError::InvalidArgument { what })?;
        let recording = self.id();
        self.append_event(author, |st| {
            if !st.current.contains_key(&id) {
                return Err(StoreError::UnknownAnnotation { recording, id });
            }
            Ok((
                id,
                Op::Edit {
                    id,
                    annotation: annotation.clone(),
                },
            ))
        })
        .await
        .map(|_| ())
    }

    /// Deletes an annotation (it stays in the history).
    ///
    /// # Errors
    /// [`StoreError::UnknownAnnotation`], and as [`Recording::add_annotation`].
    pub async fn delete_annotation(&self, author: &str, id: u64) -> Result<()> {
        let recording = self.id();
        self.append_event(author, |st| {
            if !st.current.contains_key(&id) {
                return Err(StoreError::UnknownAnnotation { recording, id });
            }
            Ok((id, Op::Delete { id }))
        })
        .await
        .map(|_| ())
    }
}
