//! Scrubbing: authenticate and decode every stored byte of every recording.

use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStoreExt;
use rayon::prelude::*;
use serde::Serialize;

use super::StoreInner;
use super::error::{Result, StoreError};
use super::format::{PackKind, paths};
use super::ids::{ChunkPlace, RecordingId};
use super::recording::{self, Recording};
use super::run_cpu;

/// Bytes fetched per request while scrubbing a packed object.
const SCRUB_BYTES: u64 = 32 << 20;

/// One problem found by [`Store::verify`](super::Store::verify).
#[derive(Debug, Clone, Serialize)]
pub struct VerifyProblem {
    /// The recording.
    pub recording: RecordingId,
    /// Where, when known.
    pub place: Option<ChunkPlace>,
    /// What (an error message without health data).
    pub error: String,
}

/// Result of a scrub.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Committed recordings examined.
    pub recordings: usize,
    /// Recordings whose data key has been shredded (not readable by design).
    pub shredded: Vec<RecordingId>,
    /// Data chunks authenticated and decoded.
    pub chunks: u64,
    /// Overview pages authenticated and decoded.
    pub pages: u64,
    /// Annotation events authenticated.
    pub annotation_events: u64,
    /// Every problem found.
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn place_of(e: &StoreError) -> Option<ChunkPlace> {
    match e {
        StoreError::Integrity { place, .. } => Some(*place),
        _ => None,
    }
}

pub(crate) async fn verify(store: &Arc<StoreInner>) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    for id in store.committed_ids().await? {
        report.recordings += 1;
        // Always re-read from the object store, never from the open-recording cache.
        store.forget_open(&id);
        let rec = match recording::open(store, id).await {
            Ok(r) => r,
            Err(StoreError::Shredded { .. }) => {
                report.shredded.push(id);
                continue;
            }
            Err(e) => {
                report.problems.push(VerifyProblem {
                    recording: id,
                    place: place_of(&e),
                    error: e.to_string(),
                });
                continue;
            }
        };
        scrub_data(&rec, &mut report).await;
        scrub_pages(&rec, &mut report).await;
        match rec.annotation_history().await {
            Ok(h) => report.annotation_events += h.iter().map(|v| v.seq).max().map_or(0, |m| m + 1),
            Err(e) => report.problems.push(VerifyProblem {
                recording: id,
                place: place_of(&e),
                error: e.to_string(),
            }),
        }
        store.forget_open(&id);
    }
    Ok(report)
}

async fn scrub_data(rec: &Recording, report: &mut VerifyReport) {
    let st = &rec.state;
    for obj in &st.body.data_objects {
        let path = paths::packed(&st.id, PackKind::Data, obj.number);
        match rec.store.os.head(&path).await {
            Ok(meta) if meta.size == obj.bytes => {}
            Ok(meta) => report.problems.push(VerifyProblem {
                recording: st.id,
                place: None,
                error: format!(
                    "{path} is {} bytes, the manifest says {}",
                    meta.size, obj.bytes
                ),
            }),
            Err(e) => {
                report.problems.push(VerifyProblem {
                    recording: st.id,
                    place: None,
                    error: StoreError::from(e).to_string(),
                });
                continue;
            }
        }
        let mut c = obj.first;
        let end = obj.first + obj.count;
        while c < end {
            // A run of whole chunks of about SCRUB_BYTES, fetched as one range.
            let start = c;
            let mut bytes = 0u64;
            while c < end && (bytes == 0 || bytes < SCRUB_BYTES) {
                bytes += u64::from(st.chunk_lens[c as usize]);
                c += 1;
            }
            let a = st.chunk_offsets[start as usize];
            let range = a..a + bytes;
            let fetched = match rec
                .store
                .get_ranges(&path, std::slice::from_ref(&range))
                .await
            {
                Ok(mut v) => v.remove(0),
                Err(e) => {
                    for k in start..c {
                        report.problems.push(VerifyProblem {
                            recording: st.id,
                            place: Some(rec.data_place(k)),
                            error: e.to_string(),
                        });
                    }
                    continue;
                }
            };
            let r2 = rec.clone();
            let results = run_cpu(move || {
                (start..c)
                    .into_par_iter()
                    .map(|k| {
                        let off = (r2.state.chunk_offsets[k as usize] - a) as usize;
                        let len = r2.state.chunk_lens[k as usize] as usize;
                        let b: Bytes = fetched.slice(off..off + len);
                        (k, r2.decode_chunk(k, &b).err())
                    })
                    .collect::<Vec<_>>()
            })
            .await;
            match results {
                Ok(results) => {
                    for (k, err) in results {
                        report.chunks += 1;
                        if let Some(e) = err {
                            report.problems.push(VerifyProblem {
                                recording: st.id,
                                place: Some(rec.data_place(k)),
                                error: e.to_string(),
                            });
                        }
                    }
                }
                Err(e) => report.problems.push(VerifyProblem {
                    recording: st.id,
                    place: None,
                    error: e.to_string(),
                }),
            }
        }
    }
}

async fn scrub_pages(rec: &Recording, report: &mut VerifyReport) {
    let st = &rec.state;
    let mut entries: Vec<_> = st.pages.values().copied().collect();
    entries.sort_by_key(|e| (e.object, e.offset));
    for batch in entries.chunks(4096) {
        let fetched = match rec.fetch_pages(batch).await {
            Ok(f) => f,
            Err(e) => {
                report.problems.push(VerifyProblem {
                    recording: st.id,
                    place: None,
                    error: e.to_string(),
                });
                continue;
            }
        };
        for (e, b) in batch.iter().zip(fetched) {
            report.pages += 1;
            if let Err(err) = rec.decode_page(e, &b) {
                report.problems.push(VerifyProblem {
                    recording: st.id,
                    place: place_of(&err).or(Some(ChunkPlace::OverviewPage {
                        level: e.level,
                        channel: e.channel,
                        page: e.page,
                    })),
                    error: err.to_string(),
                });
            }
        }
    }
}
