//! An open recording: manifest, index and data key in memory; chunk and page loading.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use serde::Serialize;

use super::annotations::LogState;
use super::cache::{CacheKey, Cached, DecodedChunk, DecodedPage};
use super::error::{Result, StoreError};
use super::format::{
    INDEX_MAGIC, MANIFEST_MAGIC, PACK_HEADER_LEN, PackKind, open_chunk, open_object,
    parse_sealed_header, paths,
};
use super::ids::{ChunkPlace, RecordingId, TenantId};
use super::layout::{ChunkLayout, PyramidGeometry, Timeline};
use super::manifest::{
    ChunkIndex, KeyRecord, ManifestBody, PageEntry, decode_key, parse_manifest_clear, wrap_aad,
};
use super::parallel::map_helping;
use super::scratch;
use super::source::{SignalInfo, SourceHeader};
use super::{OPEN_RECORDINGS, StoreInner};

/// Most samples a reading task decodes itself while rayon workers decode the rest (about a
/// millisecond of work): enough to carry a cold page alone when the workers are slow to wake.
const CALLER_DECODE_SAMPLES: u64 = 1 << 19;
use crate::crypto::{DataKey, KeyringError, ObjectKind};

/// What the store keeps of an open recording (shared by every handle on it).
#[derive(Debug)]
pub(crate) struct RecordingState {
    pub(crate) id: RecordingId,
    pub(crate) tenant: TenantId,
    pub(crate) body: ManifestBody,
    pub(crate) timeline: Timeline,
    pub(crate) dek: DataKey,
    pub(crate) chunk_offsets: Vec<u64>,
    pub(crate) chunk_lens: Vec<u32>,
    pub(crate) pages: HashMap<(u32, u32, u64), PageEntry>,
    pub(crate) prefetching: AtomicBool,
    pub(crate) annotations: tokio::sync::Mutex<LogState>,
}

/// A committed recording, open for reading and annotating. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Recording {
    pub(crate) store: Arc<StoreInner>,
    pub(crate) state: Arc<RecordingState>,
}

/// One line of [`Store::list`](super::Store::list).
#[derive(Debug, Clone, Serialize)]
pub struct RecordingInfo {
    /// The recording id.
    pub id: RecordingId,
    /// Its tenant, when the manifest could be read.
    pub tenant: Option<TenantId>,
    /// What state it is in.
    pub status: RecordingStatus,
}

/// State of a recording in a listing.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecordingStatus {
    /// Readable.
    Available {
        /// Number of signals (annotation signals excluded).
        signals: usize,
        /// Duration in seconds (end of the last record).
        duration: f64,
        /// When it was ingested (UTC, RFC 3339).
        ingested_at: String,
        /// Size of the input.
        raw_bytes: u64,
        /// Bytes stored.
        stored_bytes: u64,
    },
    /// Its data key was destroyed.
    Shredded {
        /// When (UTC, RFC 3339).
        at: String,
    },
    /// It could not be opened (wrong key, corruption).
    Unreadable {
        /// Why.
        error: String,
    },
}

pub(crate) async fn open(store: &Arc<StoreInner>, id: RecordingId) -> Result<Recording> {
    {
        let open = store.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = open.iter().find(|s| s.id == id) {
            return Ok(Recording {
                store: Arc::clone(store),
                state: Arc::clone(s),
            });
        }
    }
    let state = Arc::new(load_state(store, id).await?);
    {
        let mut open = store.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = open.iter().find(|s| s.id == id) {
            return Ok(Recording {
                store: Arc::clone(store),
                state: Arc::clone(s),
            });
        }
        if open.len() >= OPEN_RECORDINGS {
            open.remove(0);
        }
        open.push(Arc::clone(&state));
    }
    Ok(Recording {
        store: Arc::clone(store),
        state,
    })
}

/// Unwraps a recording's data key.
pub(crate) async fn unwrap_key(
    store: &StoreInner,
    id: RecordingId,
    expected_tenant: Option<&TenantId>,
) -> Result<(DataKey, TenantId)> {
    let key_path = paths::key(&id);
    let bytes = store
        .get_opt(&key_path)
        .await?
        .ok_or_else(|| StoreError::corrupt(&key_path, "the wrapped data key is missing"))?;
    let (record, prefix) = decode_key(&bytes, &store.store_id, &id)?;
    match record {
        KeyRecord::Shredded { .. } => Err(StoreError::Shredded { recording: id }),
        KeyRecord::Wrapped {
            tenant,
            kek,
            wrapped,
        } => {
            if expected_tenant.is_some_and(|t| *t != tenant) {
                return Err(StoreError::Integrity {
                    recording: id,
                    place: ChunkPlace::Key,
                });
            }
            let aad = wrap_aad(&store.scope(&id), &prefix);
            match store.keyring.unwrap(&kek, &wrapped, &aad).await {
                Ok(dek) => Ok((dek, tenant)),
                Err(e @ (KeyringError::UnknownKek { .. } | KeyringError::UnwrapFailed { .. })) => {
                    Err(StoreError::WrongKey {
                        recording: id,
                        source: e,
                    })
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

async fn load_state(store: &Arc<StoreInner>, id: RecordingId) -> Result<RecordingState> {
    let mpath = paths::manifest(&id);
    let mobj = mpath.to_string();
    let mbytes = store
        .get_opt(&mpath)
        .await?
        .ok_or(StoreError::UnknownRecording { recording: id })?;
    let integrity = |place| StoreError::Integrity {
        recording: id,
        place,
    };
    let mh = parse_sealed_header(&mbytes, MANIFEST_MAGIC, ObjectKind::Manifest, &mobj)?;
    if mh.store_id != store.store_id || mh.recording != id {
        return Err(integrity(ChunkPlace::Manifest));
    }
    let tenant = parse_manifest_clear(&mh.clear, &mobj)?;
    let (dek, _) = unwrap_key(store, id, Some(&tenant)).await?;
    let scope = store.scope(&id);
    let plain = open_object(&mbytes, &mh, ObjectKind::Manifest, 0, &scope, &dek)
        .ok_or_else(|| integrity(ChunkPlace::Manifest))?;
    let body: ManifestBody = serde_json::from_slice(&plain)
        .map_err(|e| StoreError::corrupt(&mobj, format!("manifest body: {e}")))?;
    body.validate(&mobj)?;
    if body.recording != id || body.tenant != tenant {
        return Err(integrity(ChunkPlace::Manifest));
    }

    let ipath = paths::index(&id);
    let iobj = ipath.to_string();
    let ibytes = store
        .get_opt(&ipath)
        .await?
        .ok_or_else(|| StoreError::corrupt(&iobj, "the chunk index is missing"))?;
    let ih = parse_sealed_header(&ibytes, INDEX_MAGIC, ObjectKind::Index, &iobj)?;
    if ih.store_id != store.store_id || ih.recording != id {
        return Err(integrity(ChunkPlace::Index));
    }
    let iplain = open_object(&ibytes, &ih, ObjectKind::Index, 0, &scope, &dek)
        .ok_or_else(|| integrity(ChunkPlace::Index))?;
    let index = ChunkIndex::decode(&iplain, &iobj)?;
    let layout = body.layout;
    if index.chunk_lens.len() as u64 != layout.chunks() {
        return Err(StoreError::corrupt(
            &iobj,
            "chunk count differs from the layout",
        ));
    }
    let mut chunk_offsets = vec![0u64; index.chunk_lens.len()];
    for o in &body.data_objects {
        let mut off = PACK_HEADER_LEN as u64;
        for c in o.first..o.first + o.count {
            chunk_offsets[c as usize] = off;
            off += u64::from(index.chunk_lens[c as usize]);
        }
        if off != o.bytes {
            return Err(StoreError::corrupt(
                &iobj,
                "chunk lengths do not add up to the object size",
            ));
        }
    }
    let geometry = body.overview;
    let mut pages = HashMap::with_capacity(index.pages.len());
    let total_pages: u64 = body.overview_objects.iter().map(|o| o.count).sum();
    if total_pages != index.pages.len() as u64 {
        return Err(StoreError::corrupt(
            &iobj,
            "page count differs from the manifest",
        ));
    }
    for (i, p) in index.pages.iter().enumerate() {
        let obj = body
            .overview_objects
            .iter()
            .find(|o| o.number == p.object)
            .ok_or_else(|| StoreError::corrupt(&iobj, "page in an unknown object"))?;
        let i = i as u64;
        let ch = body
            .signals
            .get(p.channel as usize)
            .ok_or_else(|| StoreError::corrupt(&iobj, "page of an unknown channel"))?;
        let samples = body.num_records * u64::from(ch.samples_per_record);
        let in_range = i >= obj.first
            && i < obj.first + obj.count
            && p.offset >= PACK_HEADER_LEN as u64
            && p.offset + u64::from(p.len) <= obj.bytes
            && p.level < geometry.levels(samples)
            && p.page < geometry.pages(p.level, samples);
        if !in_range || pages.insert((p.level, p.channel, p.page), *p).is_some() {
            return Err(StoreError::corrupt(&iobj, "page entry out of range"));
        }
    }
    let timeline = body.timeline();
    Ok(RecordingState {
        id,
        tenant,
        timeline,
        dek,
        chunk_offsets,
        chunk_lens: index.chunk_lens,
        pages,
        prefetching: AtomicBool::new(false),
        annotations: tokio::sync::Mutex::new(LogState::default()),
        body,
    })
}

pub(crate) async fn list(store: &Arc<StoreInner>) -> Result<Vec<RecordingInfo>> {
    let ids = store.committed_ids().await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let info = match open(store, id).await {
            Ok(r) => {
                let b = &r.state.body;
                RecordingInfo {
                    id,
                    tenant: Some(r.state.tenant.clone()),
                    status: RecordingStatus::Available {
                        signals: b.signals.len(),
                        duration: r.state.timeline.end(),
                        ingested_at: b.ingested_at.clone(),
                        raw_bytes: b.raw_bytes,
                        stored_bytes: b.stored_bytes,
                    },
                }
            }
            Err(StoreError::Shredded { .. }) => {
                let (tenant, at) = match store.get_opt(&paths::key(&id)).await? {
                    Some(bytes) => match decode_key(&bytes, &store.store_id, &id) {
                        Ok((KeyRecord::Shredded { tenant, at_unix }, _)) => (
                            Some(tenant),
                            chrono::DateTime::from_timestamp(at_unix, 0)
                                .map(|d| d.to_rfc3339())
                                .unwrap_or_default(),
                        ),
                        _ => (None, String::new()),
                    },
                    None => (None, String::new()),
                };
                RecordingInfo {
                    id,
                    tenant,
                    status: RecordingStatus::Shredded { at },
                }
            }
            Err(e) => RecordingInfo {
                id,
                tenant: None,
                status: RecordingStatus::Unreadable {
                    error: e.to_string(),
                },
            },
        };
        out.push(info);
    }
    Ok(out)
}

impl Recording {
    /// The recording id.
    pub fn id(&self) -> RecordingId {
        self.state.id
    }
    /// The tenant it belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.state.tenant
    }
    /// Header fields of the source (decrypted).
    pub fn header(&self) -> &SourceHeader {
        &self.state.body.header
    }
    /// The signals (annotation signals excluded).
    pub fn signals(&self) -> &[SignalInfo] {
        &self.state.body.signals
    }
    /// The time axis (records, gaps).
    pub fn timeline(&self) -> &Timeline {
        &self.state.timeline
    }
    /// Duration in seconds: end of the last record.
    pub fn duration(&self) -> f64 {
        self.state.timeline.end()
    }
    /// How samples are cut into chunks.
    pub fn layout(&self) -> ChunkLayout {
        self.state.body.layout
    }
    /// Geometry of the overview pyramid.
    pub fn pyramid(&self) -> PyramidGeometry {
        self.state.body.overview
    }
    /// When the recording was ingested (UTC, RFC 3339).
    pub fn ingested_at(&self) -> &str {
        &self.state.body.ingested_at
    }
    /// Name of the ingested file, if given (stored encrypted: it may identify the patient).
    pub fn source_name(&self) -> Option<&str> {
        self.state.body.source_name.as_deref()
    }
    /// Size of the input in bytes.
    pub fn raw_bytes(&self) -> u64 {
        self.state.body.raw_bytes
    }
    /// Bytes stored for this recording (all objects, annotation edits excluded).
    pub fn stored_bytes(&self) -> u64 {
        self.state.body.stored_bytes
    }

    pub(crate) fn data_place(&self, chunk: u64) -> ChunkPlace {
        let l = self.state.body.layout;
        let groups = u64::from(l.groups());
        let group = (chunk % groups) as u32;
        let sig = l.group_signals(group);
        ChunkPlace::Data {
            group,
            first_channel: sig.start,
            channels: sig.end - sig.start,
            block: chunk / groups,
        }
    }

    /// Fetches (coalesced ranged GETs), authenticates and decodes data chunks, in parallel,
    /// through the cache. The result is in the order of `chunks`.
    pub(crate) async fn load_chunks(&self, chunks: &[u64]) -> Result<Vec<Arc<DecodedChunk>>> {
        let id = self.state.id;
        let mut out: Vec<Option<Arc<DecodedChunk>>> = Vec::with_capacity(chunks.len());
        let mut missing: Vec<(usize, u64)> = Vec::new();
        for (i, &c) in chunks.iter().enumerate() {
            match self.store.cache.get(&CacheKey::Chunk {
                recording: id,
                chunk: c,
            }) {
                Some(Cached::Chunk(d)) => out.push(Some(d)),
                _ => {
                    out.push(None);
                    missing.push((i, c));
                }
            }
        }
        if missing.is_empty() {
            return Ok(out.into_iter().map(|c| c.expect("all cached")).collect());
        }
        let fetched = self.fetch_data(missing.iter().map(|m| m.1)).await?;
        let state = Arc::clone(&self.state);
        let store = Arc::clone(&self.store);
        let work: Vec<(usize, u64, Bytes)> = missing
            .iter()
            .zip(fetched)
            .map(|(&(i, c), b)| (i, c, b))
            .collect();
        let this = self.clone();
        let l = self.state.body.layout;
        let max_spr = self
            .state
            .body
            .signals
            .iter()
            .map(|s| u64::from(s.samples_per_record))
            .max()
            .unwrap_or(1);
        let chunk_samples = (l.records_per_block * max_spr * u64::from(l.group_size)).max(1);
        let budget = usize::try_from(CALLER_DECODE_SAMPLES / chunk_samples).unwrap_or(1);
        let decoded = map_helping(work, budget, move |(i, c, b)| {
            this.decode_chunk(*c, b).map(|d| (*i, *c, d))
        })
        .await?;
        for (i, c, d) in decoded {
            let d = Arc::new(d);
            store.cache.insert(
                CacheKey::Chunk {
                    recording: state.id,
                    chunk: c,
                },
                Cached::Chunk(Arc::clone(&d)),
            );
            out[i] = Some(d);
        }
        Ok(out.into_iter().map(|c| c.expect("filled")).collect())
    }

    /// Raw sealed bytes of data chunks, in order.
    pub(crate) async fn fetch_data(&self, chunks: impl Iterator<Item = u64>) -> Result<Vec<Bytes>> {
        let objects = &self.state.body.data_objects;
        // Group requests per object, keeping the caller's order for the answer.
        let mut per_object: HashMap<usize, Vec<(usize, std::ops::Range<u64>)>> = HashMap::new();
        let mut n = 0;
        for (pos, c) in chunks.enumerate() {
            let oi = objects.partition_point(|o| o.first + o.count <= c);
            let off = self.state.chunk_offsets[c as usize];
            let len = u64::from(self.state.chunk_lens[c as usize]);
            per_object
                .entry(oi)
                .or_default()
                .push((pos, off..off + len));
            n += 1;
        }
        let mut out: Vec<Bytes> = vec![Bytes::new(); n];
        let futs = per_object.into_iter().map(|(oi, reqs)| {
            let path = paths::packed(&self.state.id, PackKind::Data, objects[oi].number);
            async move {
                let ranges: Vec<_> = reqs.iter().map(|r| r.1.clone()).collect();
                let got = self.store.get_ranges(&path, &ranges).await?;
                Ok::<_, StoreError>(reqs.into_iter().map(|r| r.0).zip(got).collect::<Vec<_>>())
            }
        });
        for part in futures::future::try_join_all(futs).await? {
            for (pos, b) in part {
                out[pos] = b;
            }
        }
        Ok(out)
    }

    /// Authenticates and decodes one data chunk.
    pub(crate) fn decode_chunk(&self, chunk: u64, sealed: &[u8]) -> Result<DecodedChunk> {
        let s = &self.state;
        let l = s.body.layout;
        let groups = u64::from(l.groups());
        let group = (chunk % groups) as u32;
        let block = chunk / groups;
        let place = self.data_place(chunk);
        let integrity = || StoreError::Integrity {
            recording: s.id,
            place,
        };
        let scope = self.store.scope(&s.id);
        scratch::with_copy(sealed, |buf| {
            let range = open_chunk(
                buf,
                ObjectKind::DataChunk,
                (group, block, 0),
                &scope,
                &s.dek,
            )
            .ok_or_else(integrity)?;
            self.decode_chunk_plain(group, block, &buf[range])
        })
    }

    /// Decodes the plaintext of data chunk (group, block).
    fn decode_chunk_plain(&self, group: u32, block: u64, plain: &[u8]) -> Result<DecodedChunk> {
        let s = &self.state;
        let l = s.body.layout;
        let place = self.data_place(l.chunk(group, block));
        let records = l.block_records(block);
        let nrec = records.end - records.start;
        let corrupt = |d: String| StoreError::corrupt(format!("recording {} {place}", s.id), d);
        let mut pos = 0usize;
        let mut channels = Vec::new();
        for sig in l.group_signals(group) {
            let spr = u64::from(s.body.signals[sig as usize].samples_per_record);
            let n = (nrec * spr) as usize;
            let len_bytes = plain
                .get(pos..pos + 4)
                .ok_or_else(|| corrupt("truncated channel length".into()))?;
            let len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
            pos += 4;
            let enc = plain
                .get(pos..pos + len)
                .ok_or_else(|| corrupt("truncated channel block".into()))?;
            pos += len;
            let declared = theta_codecs::decoded_len(enc).map_err(|e| corrupt(e.to_string()))?;
            if declared != n {
                return Err(corrupt(format!(
                    "{declared} samples where {n} are expected"
                )));
            }
            let mut v = vec![0i32; n];
            let got = scratch::decode_into(enc, &mut v).map_err(|e| corrupt(e.to_string()))?;
            if got != n {
                return Err(corrupt(format!(
                    "{got} samples decoded where {n} are expected"
                )));
            }
            channels.push(v);
        }
        if pos != plain.len() {
            return Err(corrupt("trailing bytes".into()));
        }
        Ok(DecodedChunk { channels })
    }

    /// Loads overview pages `(level, channel, page)` through the cache, in order.
    pub(crate) async fn load_pages(
        &self,
        keys: &[(u32, u32, u64)],
    ) -> Result<Vec<Arc<DecodedPage>>> {
        let id = self.state.id;
        let mut out: Vec<Option<Arc<DecodedPage>>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, &(level, channel, page)) in keys.iter().enumerate() {
            match self.store.cache.get(&CacheKey::Page {
                recording: id,
                level,
                channel,
                page,
            }) {
                Some(Cached::Page(p)) => out.push(Some(p)),
                _ => {
                    out.push(None);
                    missing.push(i);
                }
            }
        }
        if missing.is_empty() {
            return Ok(out.into_iter().map(|p| p.expect("cached")).collect());
        }
        let entries: Vec<PageEntry> = missing
            .iter()
            .map(|&i| {
                let k = keys[i];
                self.state.pages.get(&k).copied().ok_or_else(|| {
                    StoreError::corrupt(
                        format!("recording {id}"),
                        format!("overview page {k:?} is missing from the index"),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let fetched = self.fetch_pages(&entries).await?;
        let this = self.clone();
        let work: Vec<(usize, PageEntry, Bytes)> = missing
            .iter()
            .zip(entries)
            .zip(fetched)
            .map(|((&i, e), b)| (i, e, b))
            .collect();
        let page_values = (2 * self.state.body.overview.page_buckets).max(1);
        let budget = usize::try_from(CALLER_DECODE_SAMPLES / page_values).unwrap_or(1);
        let decoded = map_helping(work, budget, move |(i, e, b)| {
            this.decode_page(e, b).map(|p| (*i, *e, p))
        })
        .await?;
        for (i, e, p) in decoded {
            let p = Arc::new(p);
            self.store.cache.insert(
                CacheKey::Page {
                    recording: id,
                    level: e.level,
                    channel: e.channel,
                    page: e.page,
                },
                Cached::Page(Arc::clone(&p)),
            );
            out[i] = Some(p);
        }
        Ok(out.into_iter().map(|p| p.expect("filled")).collect())
    }

    pub(crate) async fn fetch_pages(&self, entries: &[PageEntry]) -> Result<Vec<Bytes>> {
        let mut per_object: HashMap<u32, Vec<(usize, std::ops::Range<u64>)>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            per_object
                .entry(e.object)
                .or_default()
                .push((i, e.offset..e.offset + u64::from(e.len)));
        }
        let mut out = vec![Bytes::new(); entries.len()];
        let futs = per_object.into_iter().map(|(number, reqs)| {
            let path = paths::packed(&self.state.id, PackKind::Overview, number);
            async move {
                let ranges: Vec<_> = reqs.iter().map(|r| r.1.clone()).collect();
                let got = self.store.get_ranges(&path, &ranges).await?;
                Ok::<_, StoreError>(reqs.into_iter().map(|r| r.0).zip(got).collect::<Vec<_>>())
            }
        });
        for part in futures::future::try_join_all(futs).await? {
            for (i, b) in part {
                out[i] = b;
            }
        }
        Ok(out)
    }

    pub(crate) fn decode_page(&self, e: &PageEntry, sealed: &[u8]) -> Result<DecodedPage> {
        let s = &self.state;
        let place = ChunkPlace::OverviewPage {
            level: e.level,
            channel: e.channel,
            page: e.page,
        };
        let scope = self.store.scope(&s.id);
        scratch::with_copy(sealed, |buf| {
            let range = open_chunk(
                buf,
                ObjectKind::OverviewPage,
                (e.level, u64::from(e.channel), e.page),
                &scope,
                &s.dek,
            )
            .ok_or(StoreError::Integrity {
                recording: s.id,
                place,
            })?;
            self.decode_page_plain(e, place, &buf[range])
        })
    }

    /// Decodes the plaintext of an overview page.
    fn decode_page_plain(
        &self,
        e: &PageEntry,
        place: ChunkPlace,
        plain: &[u8],
    ) -> Result<DecodedPage> {
        let s = &self.state;
        let corrupt = |d: String| StoreError::corrupt(format!("recording {} {place}", s.id), d);
        let g = s.body.overview;
        let spr = u64::from(s.body.signals[e.channel as usize].samples_per_record);
        let buckets = g.buckets(e.level, s.body.num_records * spr);
        let n = (buckets - e.page * g.page_buckets).min(g.page_buckets) as usize;
        let len = plain
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| corrupt("truncated".into()))?;
        let (a, b) = (
            plain
                .get(4..4 + len)
                .ok_or_else(|| corrupt("truncated".into()))?,
            &plain[(4 + len).min(plain.len())..],
        );
        let decode = |enc: &[u8]| -> Result<Vec<i32>> {
            let declared = theta_codecs::decoded_len(enc).map_err(|e| corrupt(e.to_string()))?;
            if declared != n {
                return Err(corrupt(format!(
                    "{declared} buckets where {n} are expected"
                )));
            }
            let mut v = vec![0i32; n];
            scratch::decode_into(enc, &mut v).map_err(|e| corrupt(e.to_string()))?;
            Ok(v)
        };
        let min = decode(a)?;
        let max = decode(b)?;
        Ok(DecodedPage { min, max })
    }
}
