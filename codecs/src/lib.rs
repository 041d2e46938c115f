//! Lossless codecs for one channel's block of integer EEG samples.
//!
//! PLACEHOLDER API (to be replaced by the real codec, issue 3): the functions below fix the
//! signatures the engine builds on. The current body stores samples raw.
#![warn(missing_docs)]

use std::fmt;

/// How wide the stored samples are: 16-bit (EDF) or 24-bit (BDF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleWidth {
    /// EDF: two's complement 16-bit little-endian.
    Bits16,
    /// BDF: two's complement 24-bit little-endian.
    Bits24,
}

impl SampleWidth {
    /// Smallest value the width can hold.
    pub fn min(self) -> i32 {
        match self {
            SampleWidth::Bits16 => i16::MIN as i32,
            SampleWidth::Bits24 => -(1 << 23),
        }
    }
    /// Largest value the width can hold.
    pub fn max(self) -> i32 {
        match self {
            SampleWidth::Bits16 => i16::MAX as i32,
            SampleWidth::Bits24 => (1 << 23) - 1,
        }
    }
}

/// What went wrong, for callers to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended before the encoding did.
    Truncated,
    /// The bytes are not a valid encoding.
    Corrupt,
    /// A format version this build does not know.
    UnsupportedVersion,
    /// The caller passed something out of range (sample outside the width, buffer too small).
    InvalidArgument,
}

/// A codec error: a kind and a message that never contains sample values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CodecError {
    /// The category.
    pub kind: ErrorKind,
    /// Human-readable detail.
    pub message: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// Result alias of this crate.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;

fn err(kind: ErrorKind, message: impl Into<String>) -> CodecError {
    CodecError {
        kind,
        message: message.into(),
    }
}

/// Worst-case encoded size of `n` samples, so callers allocate once.
pub fn max_encoded_len(n: usize, _width: SampleWidth) -> usize {
    8 + 4 * n
}

/// Encodes `samples` and appends the bytes to `out`.
///
/// # Errors
/// `InvalidArgument` when a sample is outside `width`.
pub fn encode(samples: &[i32], width: SampleWidth, out: &mut Vec<u8>) -> Result<()> {
    if let Some(i) = samples
        .iter()
        .position(|&s| s < width.min() || s > width.max())
    {
        return Err(err(
            ErrorKind::InvalidArgument,
            format!("sample {i} outside {width:?}"),
        ));
    }
    out.extend_from_slice(&(samples.len() as u64).to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    Ok(())
}

/// Number of samples an encoding holds.
///
/// # Errors
/// `Truncated` when the header is cut.
pub fn decoded_len(encoded: &[u8]) -> Result<usize> {
    let head: [u8; 8] = encoded
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| err(ErrorKind::Truncated, "header"))?;
    usize::try_from(u64::from_le_bytes(head)).map_err(|_| err(ErrorKind::Corrupt, "length"))
}

/// Decodes into the caller's buffer and returns the number of samples written.
///
/// # Errors
/// `Truncated`, `Corrupt`, or `InvalidArgument` when `out` is too small.
pub fn decode_into(encoded: &[u8], out: &mut [i32]) -> Result<usize> {
    let n = decoded_len(encoded)?;
    if n > out.len() {
        return Err(err(ErrorKind::InvalidArgument, "output buffer too small"));
    }
    let body = &encoded[8..];
    if body.len() / 4 < n {
        return Err(err(ErrorKind::Truncated, "body"));
    }
    for (o, c) in out.iter_mut().zip(body.chunks_exact(4)).take(n) {
        *o = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    Ok(n)
}

/// Decodes into a new vector.
///
/// # Errors
/// As [`decode_into`].
pub fn decode(encoded: &[u8]) -> Result<Vec<i32>> {
    let n = decoded_len(encoded)?;
    if n > encoded.len() {
        return Err(err(ErrorKind::Truncated, "body"));
    }
    let mut v = vec![0; n];
    decode_into(encoded, &mut v)?;
    Ok(v)
}
