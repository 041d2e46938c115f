//! The manifest (sealed JSON body), the chunk index (sealed binary) and the wrapped-key object.

use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError};
use super::format::{FORMAT_VERSION, KEY_MAGIC, Reader, SealScope, paths, push_short_str};
use super::ids::{RecordingId, StoreId, TenantId};
use super::layout::{ChunkLayout, PyramidGeometry, Segment, Timeline};
use super::source::{SignalInfo, SourceHeader};
use crate::crypto::{KekId, ObjectKind};

/// Name of the codec family the chunks are encoded with.
pub(crate) const CODEC_NAME: &str = "theta-codecs";

/// One packed object (data or overview).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct PackedObjectInfo {
    /// Object number (its path is `rec/<id>/data/<number>` or `.../ovw/<number>`).
    pub(crate) number: u32,
    /// First chunk (data) or page entry (overview) it holds.
    pub(crate) first: u64,
    /// How many.
    pub(crate) count: u64,
    /// Object size in bytes.
    pub(crate) bytes: u64,
}

/// The sealed body of a manifest: everything about a recording except its samples.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManifestBody {
    pub(crate) format_version: u16,
    pub(crate) recording: RecordingId,
    pub(crate) tenant: TenantId,
    pub(crate) ingested_at: String,
    pub(crate) source_name: Option<String>,
    pub(crate) header: SourceHeader,
    pub(crate) signals: Vec<SignalInfo>,
    pub(crate) record_duration: f64,
    pub(crate) num_records: u64,
    pub(crate) segments: Vec<Segment>,
    pub(crate) layout: ChunkLayout,
    pub(crate) codec: String,
    pub(crate) data_objects: Vec<PackedObjectInfo>,
    pub(crate) overview: PyramidGeometry,
    pub(crate) overview_objects: Vec<PackedObjectInfo>,
    pub(crate) index_bytes: u64,
    pub(crate) annotation_events: u64,
    pub(crate) raw_bytes: u64,
    pub(crate) stored_bytes: u64,
}

impl ManifestBody {
    pub(crate) fn timeline(&self) -> Timeline {
        Timeline::new(
            self.record_duration,
            self.num_records,
            self.segments.clone(),
        )
    }

    /// Structural checks so that nothing downstream indexes out of bounds.
    pub(crate) fn validate(&self, object: &str) -> Result<()> {
        let bad = |d: String| Err(StoreError::corrupt(object, d));
        if self.format_version != FORMAT_VERSION {
            return Err(StoreError::UnsupportedVersion {
                object: object.to_string(),
                version: self.format_version,
                supported: FORMAT_VERSION,
            });
        }
        if self.codec != CODEC_NAME {
            return bad(format!("unknown codec {:?}", self.codec));
        }
        self.timeline().validate().or_else(bad)?;
        self.overview.validate().or_else(bad)?;
        let l = &self.layout;
        if l.signals as usize != self.signals.len() || l.records != self.num_records {
            return bad("layout does not match the signals or records".into());
        }
        if l.records_per_block == 0 || l.group_size == 0 {
            return bad("layout has a zero block or group".into());
        }
        if !self.signals.is_empty()
            && self.record_duration.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        {
            return bad("signals with a zero record duration".into());
        }
        for (i, s) in self.signals.iter().enumerate() {
            if s.samples_per_record == 0 {
                return bad(format!("signal {i} has no samples per record"));
            }
        }
        let mut next = 0;
        for o in &self.data_objects {
            if o.first != next || o.count == 0 || o.first % u64::from(l.groups().max(1)) != 0 {
                return bad("data objects do not tile the chunks at block boundaries".into());
            }
            next = o.first + o.count;
        }
        if next != l.chunks() {
            return bad("data objects do not cover every chunk".into());
        }
        let mut next = 0;
        for o in &self.overview_objects {
            if o.first != next {
                return bad("overview objects do not tile the pages".into());
            }
            next = o.first + o.count;
        }
        Ok(())
    }
}

/// Clear header of a manifest: the tenant. Encodes to the bytes stored in the clear.
pub(crate) fn manifest_clear(tenant: &TenantId) -> Vec<u8> {
    let mut out = Vec::new();
    push_short_str(&mut out, tenant.as_str());
    out
}

pub(crate) fn parse_manifest_clear(clear: &[u8], object: &str) -> Result<TenantId> {
    let mut r = Reader::new(clear, object);
    let t = r.short_str("tenant")?;
    r.end()?;
    TenantId::new(t).map_err(|_| StoreError::corrupt(object, "invalid tenant id"))
}

/// Location of an overview page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageEntry {
    pub(crate) level: u32,
    pub(crate) channel: u32,
    pub(crate) page: u64,
    pub(crate) object: u32,
    pub(crate) len: u32,
    pub(crate) offset: u64,
}

const PAGE_ENTRY_LEN: usize = 32;

/// The chunk index: sealed length of every data chunk, and where every overview page is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ChunkIndex {
    pub(crate) chunk_lens: Vec<u32>,
    pub(crate) pages: Vec<PageEntry>,
}

impl ChunkIndex {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(16 + 4 * self.chunk_lens.len() + PAGE_ENTRY_LEN * self.pages.len());
        out.extend_from_slice(&(self.chunk_lens.len() as u64).to_le_bytes());
        for l in &self.chunk_lens {
            out.extend_from_slice(&l.to_le_bytes());
        }
        out.extend_from_slice(&(self.pages.len() as u64).to_le_bytes());
        for p in &self.pages {
            out.extend_from_slice(&p.level.to_le_bytes());
            out.extend_from_slice(&p.channel.to_le_bytes());
            out.extend_from_slice(&p.page.to_le_bytes());
            out.extend_from_slice(&p.object.to_le_bytes());
            out.extend_from_slice(&p.len.to_le_bytes());
            out.extend_from_slice(&p.offset.to_le_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8], object: &str) -> Result<Self> {
        let mut r = Reader::new(bytes, object);
        let n = r.u64("chunk count")?;
        // Check the count against the bytes present before allocating anything sized by it.
        if n > (r.remaining() / 4) as u64 {
            return Err(StoreError::corrupt(
                object,
                "chunk count exceeds the index size",
            ));
        }
        let mut chunk_lens = Vec::with_capacity(n as usize);
        for _ in 0..n {
            chunk_lens.push(r.u32("chunk length")?);
        }
        let m = r.u64("page count")?;
        if m > (r.remaining() / PAGE_ENTRY_LEN) as u64 {
            return Err(StoreError::corrupt(
                object,
                "page count exceeds the index size",
            ));
        }
        let mut pages = Vec::with_capacity(m as usize);
        for _ in 0..m {
            pages.push(PageEntry {
                level: r.u32("page level")?,
                channel: r.u32("page channel")?,
                page: r.u64("page number")?,
                object: r.u32("page object")?,
                len: r.u32("page length")?,
                offset: r.u64("page offset")?,
            });
        }
        r.end()?;
        Ok(Self { chunk_lens, pages })
    }
}

/// The wrapped-key object of a recording: the data key wrapped by a KEK, or a tombstone
/// once the recording has been shredded.
#[derive(Debug, Clone)]
pub(crate) enum KeyRecord {
    Wrapped {
        tenant: TenantId,
        kek: KekId,
        wrapped: Vec<u8>,
    },
    Shredded {
        tenant: TenantId,
        at_unix: i64,
    },
}

const KEY_STATE_WRAPPED: u8 = 1;
const KEY_STATE_SHREDDED: u8 = 2;

/// Bytes of the key object up to the wrapped key, which the wrap binds as associated data.
pub(crate) fn key_prefix(
    store_id: &StoreId,
    recording: &RecordingId,
    tenant: &TenantId,
    kek: &KekId,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(KEY_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(KEY_STATE_WRAPPED);
    out.push(0);
    out.extend_from_slice(store_id.as_bytes());
    out.extend_from_slice(recording.as_bytes());
    push_short_str(&mut out, tenant.as_str());
    push_short_str(&mut out, kek.as_str());
    out
}

/// Associated data of a data-key wrap.
pub(crate) fn wrap_aad(scope: &SealScope<'_>, prefix: &[u8]) -> Vec<u8> {
    scope.aad(ObjectKind::WrappedKey, 0, 0, 0, prefix)
}

pub(crate) fn encode_wrapped_key(prefix: &[u8], wrapped: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    out.extend_from_slice(&(wrapped.len() as u16).to_le_bytes());
    out.extend_from_slice(wrapped);
    out
}

pub(crate) fn encode_tombstone(
    store_id: &StoreId,
    recording: &RecordingId,
    tenant: &TenantId,
    at_unix: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(KEY_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(KEY_STATE_SHREDDED);
    out.push(0);
    out.extend_from_slice(store_id.as_bytes());
    out.extend_from_slice(recording.as_bytes());
    push_short_str(&mut out, tenant.as_str());
    out.extend_from_slice(&at_unix.to_le_bytes());
    out
}

/// Parses a key object; returns the record and the prefix bytes bound by the wrap.
pub(crate) fn decode_key(
    bytes: &[u8],
    store_id: &StoreId,
    recording: &RecordingId,
) -> Result<(KeyRecord, Vec<u8>)> {
    let object = paths::key(recording).to_string();
    let mut r = Reader::new(bytes, &object);
    r.magic(KEY_MAGIC)?;
    r.version()?;
    let state = r.u8("state")?;
    let _ = r.u8("reserved")?;
    let s: [u8; 16] = r.array("store id")?;
    let rid: [u8; 16] = r.array("recording id")?;
    if &s != store_id.as_bytes() || &rid != recording.as_bytes() {
        return Err(StoreError::corrupt(
            &object,
            "key object belongs to another store or recording",
        ));
    }
    let tenant = TenantId::new(r.short_str("tenant")?)
        .map_err(|_| StoreError::corrupt(&object, "invalid tenant id"))?;
    match state {
        KEY_STATE_WRAPPED => {
            let kek = KekId::new(r.short_str("kek id")?)
                .map_err(|_| StoreError::corrupt(&object, "invalid kek id"))?;
            let prefix = bytes[..r.pos()].to_vec();
            let n = usize::from(r.u16("wrapped length")?);
            let wrapped = r.take(n, "wrapped key")?.to_vec();
            r.end()?;
            Ok((
                KeyRecord::Wrapped {
                    tenant,
                    kek,
                    wrapped,
                },
                prefix,
            ))
        }
        KEY_STATE_SHREDDED => {
            let at_unix = r.i64("shredded at")?;
            r.end()?;
            Ok((KeyRecord::Shredded { tenant, at_unix }, Vec::new()))
        }
        other => Err(StoreError::corrupt(
            &object,
            format!("unknown key state {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trip_and_hostile_counts() {
        let idx = ChunkIndex {
            chunk_lens: vec![10, 20, 30],
            pages: vec![PageEntry {
                level: 1,
                channel: 2,
                page: 3,
                object: 0,
                len: 99,
                offset: 48,
            }],
        };
        let b = idx.encode();
        assert_eq!(ChunkIndex::decode(&b, "x").unwrap(), idx);
        for n in 0..b.len() {
            assert!(ChunkIndex::decode(&b[..n], "x").is_err());
        }
        let mut huge = b.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(ChunkIndex::decode(&huge, "x").is_err());
    }
}
