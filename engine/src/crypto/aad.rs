//! Associated data that binds every sealed byte to its place.
//!
//! A sealed chunk authenticates the store, the environment, the recording, what the bytes are
//! (data chunk, overview page, index, manifest, annotation event, wrapped key), where they
//! belong (channel group and block, or level, channel and page, or sequence number) and the
//! format version. Moving a chunk to another place, another recording or another store,
//! swapping two chunks or replaying an older object therefore fails authentication.

/// What a sealed object or chunk is. The numeric codes are part of the on-disk format
/// (`engine/FORMAT.md`) and are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjectKind {
    /// A data chunk: one channel group over one time block.
    DataChunk = 1,
    /// A page of the overview pyramid: one level of one channel.
    OverviewPage = 2,
    /// The chunk index of a recording.
    Index = 3,
    /// The sealed body of a recording manifest.
    Manifest = 4,
    /// One annotation event (append-only log).
    AnnotationEvent = 5,
    /// A data key wrapped by a key-encryption key.
    WrappedKey = 6,
    /// The sealed body of a research project (secret and pseudonym mapping).
    ProjectMapping = 7,
}

/// Everything the associated data binds, apart from the bytes of the object's own clear
/// header (which the caller appends).
#[derive(Debug, Clone, Copy)]
pub struct AadContext<'a> {
    /// Format version of the object.
    pub format_version: u16,
    /// Store id (16 bytes).
    pub store_id: &'a [u8; 16],
    /// Environment tag of the store (`dev`, `test`, `prod`, ...).
    pub environment: &'a str,
    /// Recording id (16 bytes).
    pub recording: &'a [u8; 16],
    /// What is sealed.
    pub kind: ObjectKind,
    /// First coordinate: channel group (data), level (overview), sequence (annotations).
    pub a: u32,
    /// Second coordinate: block (data), channel (overview).
    pub b: u64,
    /// Third coordinate: page (overview).
    pub c: u64,
}

/// Domain separation prefix of every associated-data string.
const AAD_PREFIX: &[u8; 9] = b"THETA-AAD";

impl AadContext<'_> {
    /// The associated data: `"THETA-AAD" | version u16 | store id | env len u8 | env |
    /// recording | kind u8 | a u32 | b u64 | c u64 | extra` (integers little-endian).
    pub fn bytes(&self, extra: &[u8]) -> Vec<u8> {
        let env = self.environment.as_bytes();
        let env_len = u8::try_from(env.len()).unwrap_or(u8::MAX);
        let env = &env[..usize::from(env_len)];
        let mut out = Vec::with_capacity(9 + 2 + 16 + 1 + env.len() + 16 + 1 + 20 + extra.len());
        out.extend_from_slice(AAD_PREFIX);
        out.extend_from_slice(&self.format_version.to_le_bytes());
        out.extend_from_slice(self.store_id);
        out.push(env_len);
        out.extend_from_slice(env);
        out.extend_from_slice(self.recording);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.a.to_le_bytes());
        out.extend_from_slice(&self.b.to_le_bytes());
        out.extend_from_slice(&self.c.to_le_bytes());
        out.extend_from_slice(extra);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_bytes() {
        let s = [1u8; 16];
        let r = [2u8; 16];
        let base = AadContext {
            format_version: 1,
            store_id: &s,
            environment: "dev",
            recording: &r,
            kind: ObjectKind::DataChunk,
            a: 3,
            b: 4,
            c: 5,
        };
        let b0 = base.bytes(b"h");
        let s2 = [9u8; 16];
        let r2 = [8u8; 16];
        let variants = [
            AadContext {
                format_version: 2,
                ..base
            },
            AadContext {
                store_id: &s2,
                ..base
            },
            AadContext {
                environment: "prod",
                ..base
            },
            AadContext {
                recording: &r2,
                ..base
            },
            AadContext {
                kind: ObjectKind::OverviewPage,
                ..base
            },
            AadContext { a: 4, ..base },
            AadContext { b: 5, ..base },
            AadContext { c: 6, ..base },
        ];
        for v in variants {
            assert_ne!(v.bytes(b"h"), b0);
        }
        assert_ne!(base.bytes(b"i"), b0);
    }
}
