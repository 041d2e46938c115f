//! Opaque identifiers: store, recording, tenant, and the place of a chunk.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::StoreError;

fn parse_hex16(s: &str, what: &str) -> Result<[u8; 16], StoreError> {
    let compact: String = s.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    if compact.len() != 32 || hex::decode_to_slice(&compact, &mut out).is_err() {
        return Err(StoreError::InvalidArgument {
            what: format!("{what} {s:?} is not 32 hexadecimal digits"),
        });
    }
    Ok(out)
}

macro_rules! hex_id {
    ($name:ident, $what:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub(crate) [u8; 16]);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                let mut b = [0u8; 16];
                crate::crypto::random_bytes(&mut b);
                Self(b)
            }
            /// The 16 bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
            /// From 16 bytes.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex16(s.trim(), $what).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    StoreId,
    "store id",
    "The random id of a store, fixed at `init`."
);
hex_id!(
    RecordingId,
    "recording id",
    "The random, opaque id of a recording (32 hexadecimal digits); it carries no health data."
);

/// The opaque id of a tenant (partner establishment): 1-64 characters from `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Validates a tenant id.
    ///
    /// # Errors
    /// [`StoreError::InvalidArgument`] when empty, longer than 64 or with other characters.
    pub fn new(id: impl Into<String>) -> Result<Self, StoreError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(id))
        } else {
            Err(StoreError::InvalidArgument {
                what: format!("tenant id {id:?}: use 1-64 characters from A-Z a-z 0-9 . _ -"),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self("default".into())
    }
}

impl TryFrom<String> for TenantId {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where in a recording a sealed piece lives; named by integrity errors and `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChunkPlace {
    /// A data chunk: channel group `group` (signals `first_channel..first_channel+channels`)
    /// over time block `block`.
    Data {
        /// Channel group number.
        group: u32,
        /// First signal index of the group.
        first_channel: u32,
        /// Number of signals in the group.
        channels: u32,
        /// Time block number.
        block: u64,
    },
    /// A page of the overview pyramid.
    OverviewPage {
        /// Pyramid level (0 is the finest).
        level: u32,
        /// Signal index.
        channel: u32,
        /// Page number within the level.
        page: u64,
    },
    /// The chunk index.
    Index,
    /// The manifest.
    Manifest,
    /// The wrapped data key.
    Key,
    /// An annotation event.
    AnnotationEvent {
        /// Sequence number in the annotation log.
        seq: u64,
    },
}

impl fmt::Display for ChunkPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChunkPlace::Data {
                group,
                first_channel,
                channels,
                block,
            } => {
                if channels == 1 {
                    write!(f, "data chunk (channel {first_channel}, block {block})")
                } else {
                    write!(
                        f,
                        "data chunk (group {group}: channels {first_channel}..{}, block {block})",
                        first_channel + channels
                    )
                }
            }
            ChunkPlace::OverviewPage {
                level,
                channel,
                page,
            } => write!(
                f,
                "overview page (level {level}, channel {channel}, page {page})"
            ),
            ChunkPlace::Index => f.write_str("chunk index"),
            ChunkPlace::Manifest => f.write_str("manifest"),
            ChunkPlace::Key => f.write_str("wrapped data key"),
            ChunkPlace::AnnotationEvent { seq } => write!(f, "annotation event {seq}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let r = RecordingId::generate();
        assert_eq!(r.to_string().len(), 32);
        assert_eq!(r.to_string().parse::<RecordingId>().unwrap(), r);
        assert!("xyz".parse::<RecordingId>().is_err());
        assert!(TenantId::new("hospital-a.1").is_ok());
        for bad in ["", "a b", "é", &"x".repeat(65), "../x"] {
            assert!(TenantId::new(bad).is_err(), "{bad}");
        }
    }
}
