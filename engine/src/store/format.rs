//! Byte layouts of the store's objects (documented in `engine/FORMAT.md`) and object paths.

use object_store::path::Path;

use super::error::{Result, StoreError};
use super::ids::{RecordingId, StoreId};
use crate::crypto::{AadContext, DataKey, NONCE_LEN, ObjectKind, TAG_LEN};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Magic of the store root object.
pub(crate) const ROOT_MAGIC: &[u8; 8] = b"THETA\0RT";
/// Magic of a wrapped-key object.
pub(crate) const KEY_MAGIC: &[u8; 8] = b"THETA\0DK";
/// Magic of a packed object (data chunks or overview pages).
pub(crate) const PACK_MAGIC: &[u8; 8] = b"THETA\0PK";
/// Magic of the manifest.
pub(crate) const MANIFEST_MAGIC: &[u8; 8] = b"THETA\0MF";
/// Magic of the chunk index.
pub(crate) const INDEX_MAGIC: &[u8; 8] = b"THETA\0IX";
/// Magic of an annotation event.
pub(crate) const ANNOTATION_MAGIC: &[u8; 8] = b"THETA\0AN";
/// Magic of a chunk inside a packed object.
pub(crate) const CHUNK_MAGIC: &[u8; 2] = b"TC";

/// Length of a chunk's clear header: magic, version, kind, plaintext length.
pub(crate) const CHUNK_HEADER_LEN: usize = 8;
/// Bytes a sealed chunk adds to its plaintext.
pub(crate) const CHUNK_OVERHEAD: usize = CHUNK_HEADER_LEN + NONCE_LEN + TAG_LEN;
/// Length of a packed object's header.
pub(crate) const PACK_HEADER_LEN: usize = 48;

/// Object paths, relative to the store root.
pub(crate) mod paths {
    use super::*;

    pub(crate) const ROOT: &str = "theta.store";
    pub(crate) const LEASES: &str = "leases";
    pub(crate) const RECORDINGS: &str = "rec";

    pub(crate) fn root() -> Path {
        Path::from(ROOT)
    }
    pub(crate) fn lease(r: &RecordingId) -> Path {
        Path::from(format!("{LEASES}/{r}"))
    }
    pub(crate) fn recording_dir(r: &RecordingId) -> Path {
        Path::from(format!("{RECORDINGS}/{r}"))
    }
    pub(crate) fn key(r: &RecordingId) -> Path {
        Path::from(format!("{RECORDINGS}/{r}/key"))
    }
    pub(crate) fn manifest(r: &RecordingId) -> Path {
        Path::from(format!("{RECORDINGS}/{r}/manifest"))
    }
    pub(crate) fn index(r: &RecordingId) -> Path {
        Path::from(format!("{RECORDINGS}/{r}/index"))
    }
    pub(crate) fn packed(r: &RecordingId, kind: PackKind, n: u32) -> Path {
        Path::from(format!("{RECORDINGS}/{r}/{}/{n:05}", kind.dir()))
    }
    pub(crate) fn annotations_dir(r: &RecordingId) -> Path {
        Path::from(format!("{RECORDINGS}/{r}/ann"))
    }
    pub(crate) fn annotation(r: &RecordingId, seq: u64) -> Path {
        Path::from(format!("{RECORDINGS}/{r}/ann/{seq:010}"))
    }
}

/// Which stream a packed object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PackKind {
    Data = 1,
    Overview = 2,
}

impl PackKind {
    pub(crate) fn dir(self) -> &'static str {
        match self {
            PackKind::Data => "data",
            PackKind::Overview => "ovw",
        }
    }
}

/// A bounds-checked little-endian reader over an object's bytes; every failure names the
/// object and the field.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    object: &'a str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], object: &'a str) -> Self {
        Self {
            bytes,
            pos: 0,
            object,
        }
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    pub(crate) fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(StoreError::corrupt(
                self.object,
                format!("truncated at byte {} reading {field}", self.pos),
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub(crate) fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }
    pub(crate) fn u16(&mut self, field: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn u32(&mut self, field: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn u64(&mut self, field: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn i64(&mut self, field: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }
    /// A `u8` length followed by that many UTF-8 bytes.
    pub(crate) fn short_str(&mut self, field: &str) -> Result<String> {
        let n = usize::from(self.u8(field)?);
        let b = self.take(n, field)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| StoreError::corrupt(self.object, format!("{field} is not UTF-8")))
    }
    pub(crate) fn magic(&mut self, expected: &[u8; 8]) -> Result<()> {
        let m = self.array::<8>("magic")?;
        if &m != expected {
            return Err(StoreError::corrupt(self.object, "wrong magic bytes"));
        }
        Ok(())
    }
    pub(crate) fn version(&mut self) -> Result<u16> {
        let v = self.u16("format version")?;
        if v != FORMAT_VERSION {
            return Err(StoreError::UnsupportedVersion {
                object: self.object.to_string(),
                version: v,
                supported: FORMAT_VERSION,
            });
        }
        Ok(v)
    }
    pub(crate) fn end(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(StoreError::corrupt(
                self.object,
                format!("{} unexpected trailing bytes", self.remaining()),
            ));
        }
        Ok(())
    }
}

pub(crate) fn push_short_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(255);
    out.push(n as u8);
    out.extend_from_slice(&b[..n]);
}

/// The store root object: who this store is.
#[derive(Debug, Clone)]
pub(crate) struct RootRecord {
    pub(crate) store_id: StoreId,
    pub(crate) created_unix: i64,
    pub(crate) environment: String,
}

impl RootRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(ROOT_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(self.store_id.as_bytes());
        out.extend_from_slice(&self.created_unix.to_le_bytes());
        push_short_str(&mut out, &self.environment);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let object = paths::ROOT;
        if bytes.len() < 4 {
            return Err(StoreError::corrupt(object, "truncated"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let mut r = Reader::new(body, object);
        r.magic(ROOT_MAGIC)?;
        r.version()?;
        let _reserved = r.u16("reserved")?;
        let store_id = StoreId(r.array("store id")?);
        let created_unix = r.i64("created")?;
        let environment = r.short_str("environment")?;
        r.end()?;
        let want = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
        if crc32fast::hash(body) != want {
            return Err(StoreError::corrupt(object, "checksum mismatch"));
        }
        Ok(Self {
            store_id,
            created_unix,
            environment,
        })
    }
}

/// Identity a sealed object or chunk is bound to.
#[derive(Debug, Clone)]
pub(crate) struct SealScope<'a> {
    pub(crate) store_id: &'a StoreId,
    pub(crate) environment: &'a str,
    pub(crate) recording: &'a RecordingId,
}

impl SealScope<'_> {
    pub(crate) fn aad(&self, kind: ObjectKind, a: u32, b: u64, c: u64, extra: &[u8]) -> Vec<u8> {
        AadContext {
            format_version: FORMAT_VERSION,
            store_id: self.store_id.as_bytes(),
            environment: self.environment,
            recording: self.recording.as_bytes(),
            kind,
            a,
            b,
            c,
        }
        .bytes(extra)
    }
}

/// Encodes a sealed small object (manifest, index, annotation event):
/// `magic | version u16 | kind u8 | 0 u8 | store id | recording | clear_len u16 | clear |
/// body_len u32 | nonce | ciphertext | tag`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal_object(
    magic: &[u8; 8],
    kind: ObjectKind,
    seq: u64,
    scope: &SealScope<'_>,
    clear: &[u8],
    body: &[u8],
    key: &DataKey,
) -> Vec<u8> {
    let clear_len = u16::try_from(clear.len()).expect("clear header fields are short");
    let body_len = u32::try_from(body.len()).expect("sealed objects are below 4 GiB");
    let mut out = Vec::with_capacity(50 + clear.len() + NONCE_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(scope.store_id.as_bytes());
    out.extend_from_slice(scope.recording.as_bytes());
    out.extend_from_slice(&clear_len.to_le_bytes());
    out.extend_from_slice(clear);
    out.extend_from_slice(&body_len.to_le_bytes());
    let nonce_at = out.len();
    let aad = scope.aad(kind, 0, seq, 0, &out);
    out.extend_from_slice(&[0u8; NONCE_LEN]);
    out.extend_from_slice(body);
    out.extend_from_slice(&[0u8; TAG_LEN]);
    key.seal_in_place(&mut out, nonce_at, &aad);
    out
}

/// The clear part of a sealed object, readable without the key.
#[derive(Debug, Clone)]
pub(crate) struct SealedHeader {
    pub(crate) store_id: StoreId,
    pub(crate) recording: RecordingId,
    pub(crate) clear: Vec<u8>,
    /// Offset of the nonce (everything before it is bound as associated data).
    pub(crate) nonce_at: usize,
}

pub(crate) fn parse_sealed_header(
    bytes: &[u8],
    magic: &[u8; 8],
    kind: ObjectKind,
    object: &str,
) -> Result<SealedHeader> {
    let mut r = Reader::new(bytes, object);
    r.magic(magic)?;
    r.version()?;
    let k = r.u8("kind")?;
    if k != kind as u8 {
        return Err(StoreError::corrupt(
            object,
            format!("kind {k}, expected {}", kind as u8),
        ));
    }
    let _reserved = r.u8("reserved")?;
    let store_id = StoreId(r.array("store id")?);
    let recording = RecordingId(r.array("recording id")?);
    let clear_len = usize::from(r.u16("clear length")?);
    let clear = r.take(clear_len, "clear header")?.to_vec();
    let body_len = r.u32("body length")? as usize;
    let nonce_at = r.pos();
    if r.remaining() != NONCE_LEN + body_len + TAG_LEN {
        return Err(StoreError::corrupt(
            object,
            format!(
                "sealed body is {} bytes, header says {}",
                r.remaining(),
                NONCE_LEN + body_len + TAG_LEN
            ),
        ));
    }
    Ok(SealedHeader {
        store_id,
        recording,
        clear,
        nonce_at,
    })
}

/// Opens a sealed object; `Err(None)` means authentication failed (the caller names the place).
pub(crate) fn open_object(
    bytes: &[u8],
    header: &SealedHeader,
    kind: ObjectKind,
    seq: u64,
    scope: &SealScope<'_>,
    key: &DataKey,
) -> Option<Vec<u8>> {
    let aad = scope.aad(kind, 0, seq, 0, &bytes[..header.nonce_at]);
    key.open(&bytes[header.nonce_at..], &aad).ok()
}

/// Header of a packed object: `magic | version u16 | kind u8 | 0 u8 | store id | recording |
/// object number u32 | 0 u32`.
pub(crate) fn pack_header(
    kind: PackKind,
    store_id: &StoreId,
    recording: &RecordingId,
    n: u32,
) -> [u8; PACK_HEADER_LEN] {
    let mut h = [0u8; PACK_HEADER_LEN];
    h[..8].copy_from_slice(PACK_MAGIC);
    h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[10] = kind as u8;
    h[12..28].copy_from_slice(store_id.as_bytes());
    h[28..44].copy_from_slice(recording.as_bytes());
    h[44..48].copy_from_slice(&n.to_le_bytes());
    h
}

/// Seals a chunk whose plaintext sits at `buf[CHUNK_HEADER_LEN + NONCE_LEN..len - TAG_LEN]`:
/// writes the clear header, the nonce and the tag.
pub(crate) fn seal_chunk(
    buf: &mut [u8],
    kind: ObjectKind,
    place: (u32, u64, u64),
    scope: &SealScope<'_>,
    key: &DataKey,
) {
    let plain_len = buf.len() - CHUNK_OVERHEAD;
    buf[..2].copy_from_slice(CHUNK_MAGIC);
    buf[2] = FORMAT_VERSION as u8;
    buf[3] = kind as u8;
    buf[4..8].copy_from_slice(&(plain_len as u32).to_le_bytes());
    let aad = scope.aad(kind, place.0, place.1, place.2, &buf[..CHUNK_HEADER_LEN]);
    key.seal_in_place(buf, CHUNK_HEADER_LEN, &aad);
}

/// Opens a sealed chunk in place; returns the plaintext range, or `None` when the header is
/// malformed or authentication fails.
pub(crate) fn open_chunk(
    buf: &mut [u8],
    kind: ObjectKind,
    place: (u32, u64, u64),
    scope: &SealScope<'_>,
    key: &DataKey,
) -> Option<std::ops::Range<usize>> {
    if buf.len() < CHUNK_OVERHEAD || &buf[..2] != CHUNK_MAGIC {
        return None;
    }
    let plain_len = u32::from_le_bytes(buf[4..8].try_into().ok()?) as usize;
    if plain_len != buf.len() - CHUNK_OVERHEAD {
        return None;
    }
    let aad = scope.aad(kind, place.0, place.1, place.2, &buf[..CHUNK_HEADER_LEN]);
    let r = key.open_in_place(&mut buf[CHUNK_HEADER_LEN..], &aad).ok()?;
    Some(r.start + CHUNK_HEADER_LEN..r.end + CHUNK_HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_round_trip_and_corruption() {
        let root = RootRecord {
            store_id: StoreId::generate(),
            created_unix: 1_700_000_000,
            environment: "dev".into(),
        };
        let bytes = root.encode();
        let back = RootRecord::decode(&bytes).unwrap();
        assert_eq!(back.store_id, root.store_id);
        assert_eq!(back.environment, "dev");
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(RootRecord::decode(&b).is_err(), "byte {i}");
        }
        for n in 0..bytes.len() {
            assert!(RootRecord::decode(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn chunk_seal_binds_place() {
        let key = DataKey::generate();
        let s = StoreId::generate();
        let r = RecordingId::generate();
        let scope = SealScope {
            store_id: &s,
            environment: "dev",
            recording: &r,
        };
        let plain = b"some encoded samples";
        let mut buf = vec![0u8; plain.len() + CHUNK_OVERHEAD];
        buf[CHUNK_HEADER_LEN + NONCE_LEN..CHUNK_HEADER_LEN + NONCE_LEN + plain.len()]
            .copy_from_slice(plain);
        seal_chunk(&mut buf, ObjectKind::DataChunk, (0, 7, 0), &scope, &key);
        let mut ok = buf.clone();
        let range = open_chunk(&mut ok, ObjectKind::DataChunk, (0, 7, 0), &scope, &key).unwrap();
        assert_eq!(&ok[range], plain);
        let mut moved = buf.clone();
        assert!(open_chunk(&mut moved, ObjectKind::DataChunk, (0, 8, 0), &scope, &key).is_none());
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 1;
            assert!(
                open_chunk(&mut b, ObjectKind::DataChunk, (0, 7, 0), &scope, &key).is_none(),
                "byte {i}"
            );
        }
    }
}
