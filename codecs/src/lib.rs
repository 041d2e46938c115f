//! Lossless codecs for one channel's block of integer EEG samples (16-bit EDF, 24-bit BDF).
//!
//! `theta-codecs` turns a block of digital samples into the smallest bytes it can find and back,
//! exactly. It has no I/O, no async and no crypto: the engine wraps each encoded block into a
//! sealed chunk with its ids, checksum and encryption.
//!
//! ```text
//!  samples ──► candidates ──► smallest ──► [version | tag | n | body]
//!              constant                         │
//!              verbatim (worst case)            ▼
//!              predictive: transform → predictor → zig-zag → partitioned Rice
//!              runs: (values, lengths) as nested blocks
//!              zstd fallback
//!              reference (opt-in): difference from a scaled other channel, as a nested block
//! ```
//!
//! Each block carries a version byte, so the layout in `FORMAT.md` can evolve; golden files of
//! every version stay decodable. Decoding treats its input as hostile: truncated bytes give
//! [`ErrorKind::Truncated`], anything else invalid [`ErrorKind::Corrupt`], and allocation never
//! exceeds the checked sample count of the header.
//!
//! ```
//! use theta_codecs::{SampleWidth, decode_into, encode, max_encoded_len};
//!
//! let samples: Vec<i32> = (0..2560).map(|i| ((i as f64 * 0.05).sin() * 900.0) as i32).collect();
//! let mut bytes = Vec::with_capacity(max_encoded_len(samples.len(), SampleWidth::Bits16));
//! encode(&samples, SampleWidth::Bits16, &mut bytes)?;
//! assert!(bytes.len() < samples.len() * 2 / 3);
//!
//! let mut back = vec![0; samples.len()];
//! let n = decode_into(&bytes, &mut back)?;
//! assert_eq!(&back[..n], &samples[..]);
//! # Ok::<(), theta_codecs::CodecError>(())
//! ```
#![warn(missing_docs)]

mod bits;
mod block;
mod dispatch;
mod error;
mod predict;
mod rice;
mod transform;

#[cfg(test)]
mod tests;

pub use block::{BlockInfo, CodecId};
pub use error::{CodecError, ErrorKind, Result};

/// The format version this build writes (and the newest it reads).
pub const FORMAT_VERSION: u8 = block::FORMAT_VERSION;

/// Most samples one block may hold. Larger inputs are refused by [`encode`]; a header claiming
/// more is corrupt. It bounds what a decoder allocates for a hostile header.
pub const MAX_BLOCK_SAMPLES: usize = block::MAX_BLOCK_SAMPLES;

/// Samples per channel block the engine should store with, chosen by measurement.
///
/// A viewer page is 20–30 s of 20–256 channels, so at 256 Hz one channel's page is
/// 5120–7680 samples and a page read decodes on average `page + block` samples per channel.
/// `theta-bench codecs ../shared/eeg --block-sizes …` on the 15 real recordings (one core,
/// CPU time; page = 64 channels × 30 s × 256 Hz, modelled from the measured decode speed):
///
/// | block | ratio | encode M/s | decode M/s | page ms |
/// |------:|------:|-----------:|-----------:|--------:|
/// |  1024 | 3.002 | 27.0 | 509.4 |  1.09 |
/// |  2048 | 3.092 | 34.5 | 568.6 |  1.09 |
/// |  4096 | 3.154 | 44.0 | 612.3 |  1.23 |
/// |  8192 | 3.186 | 47.9 | 627.6 |  1.62 |
/// | 16384 | 3.197 | 48.8 | 660.5 |  2.33 |
/// | 32768 | 3.201 | 45.4 | 691.3 |  3.74 |
/// | 65536 | 3.204 | 45.0 | 682.8 |  6.86 |
///
/// (Measured 2026-11-28; the ratios have not moved since the block length was chosen, the speeds
/// have with the encoder and decoder work.)
///
/// 8192 is the knee: +1.0 % ratio over 4096 for +0.4 ms per page, while 16384 buys only
/// +0.3 % more for +0.7 ms. Any length up to [`MAX_BLOCK_SAMPLES`] is valid.
pub const RECOMMENDED_BLOCK_SAMPLES: usize = 8192;

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

    /// Bytes per stored sample: 2 or 3.
    pub fn bytes(self) -> usize {
        block::bytes_per_sample(self)
    }
}

/// Encoder settings. The defaults are what the engine stores with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Highest LPC order tried (0 disables LPC; at most 32). The default, 16, is where higher
    /// orders stopped paying on the real recordings (order 32: +0.03 % size, −25 % decode speed).
    pub max_lpc_order: usize,
    /// Cut LPC blocks of 1024 samples or more into 8 segments decoded side by side: about 0.1 %
    /// larger, several times faster to decode.
    pub segmented_lpc: bool,
    /// Try zstd over the stored bytes as well.
    pub zstd_fallback: bool,
    /// zstd level used when zstd looks competitive.
    pub zstd_level: i32,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            max_lpc_order: 16,
            segmented_lpc: true,
            zstd_fallback: true,
            zstd_level: 19,
        }
    }
}

/// Worst-case encoded size of `n` samples: `n × width.bytes()` plus a 10-byte header, so
/// incompressible input grows by at most 10 bytes and callers can allocate once.
pub fn max_encoded_len(n: usize, width: SampleWidth) -> usize {
    block::max_encoded_len(n, width)
}

/// Checks a block's length and sample range, and returns its statistics for the encoder.
fn validate(samples: &[i32], width: SampleWidth, isa: dispatch::Isa) -> Result<block::Stats> {
    if samples.len() > MAX_BLOCK_SAMPLES {
        return Err(CodecError::invalid_argument(format!(
            "block of {} samples exceeds the maximum of {MAX_BLOCK_SAMPLES}",
            samples.len()
        )));
    }
    // The vectorised range first; the position only for the error.
    let stats = dispatch::block_stats(isa, samples);
    if stats.min >= width.min() && stats.max <= width.max() {
        return Ok(stats);
    }
    // The range check failed, so a sample outside exists.
    let i = samples
        .iter()
        .position(|&s| s < width.min() || s > width.max())
        .unwrap_or_default();
    Err(CodecError::invalid_argument(format!(
        "sample {i} outside {width:?}"
    )))
}

/// An encoder that keeps its scratch buffers between blocks.
#[derive(Debug, Default)]
pub struct Encoder {
    options: EncodeOptions,
    scratch: block::EncodeScratch,
}

impl Encoder {
    /// An encoder with the given options.
    pub fn new(options: EncodeOptions) -> Self {
        Self {
            options,
            scratch: block::EncodeScratch::default(),
        }
    }

    /// Encodes one block of `samples` and appends the bytes to `out`.
    ///
    /// # Errors
    /// `InvalidArgument` when a sample is outside `width` or the block is longer than
    /// [`MAX_BLOCK_SAMPLES`].
    pub fn encode(&mut self, samples: &[i32], width: SampleWidth, out: &mut Vec<u8>) -> Result<()> {
        let stats = validate(samples, width, self.scratch.isa())?;
        block::encode(samples, stats, width, &self.options, &mut self.scratch, out);
        Ok(())
    }

    /// Encodes `samples` knowing a *reference*: another channel's samples over the same span,
    /// which the decoder will have. The block is coded as its difference from a scaled
    /// reference when that is smaller (channels sharing a reference electrode often are), and
    /// alone otherwise. Decode it with [`Decoder::decode_referenced_into`].
    ///
    /// # Errors
    /// As [`Encoder::encode`], and `InvalidArgument` when `reference` has another length or a
    /// sample outside `width`.
    pub fn encode_referenced(
        &mut self,
        samples: &[i32],
        reference: &[i32],
        width: SampleWidth,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let stats = validate(samples, width, self.scratch.isa())?;
        validate(reference, width, self.scratch.isa())?;
        if reference.len() != samples.len() {
            return Err(CodecError::invalid_argument(format!(
                "reference holds {} samples, block has {}",
                reference.len(),
                samples.len()
            )));
        }
        block::encode_referenced(
            samples,
            stats,
            reference,
            width,
            &self.options,
            &mut self.scratch,
            out,
        );
        Ok(())
    }
}

/// A decoder that keeps its scratch buffers between blocks.
#[derive(Debug)]
pub struct Decoder {
    scratch: block::DecodeScratch,
    isa: dispatch::Isa,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with empty scratch buffers, using the best instruction set of this CPU.
    pub fn new() -> Self {
        Self {
            scratch: block::DecodeScratch::default(),
            isa: dispatch::Isa::detect(),
        }
    }

    /// Decodes one block into the caller's buffer and returns the number of samples written.
    ///
    /// # Errors
    /// `Truncated`, `Corrupt` or `UnsupportedVersion` for bad input; `InvalidArgument` when
    /// `out` is shorter than the block.
    pub fn decode_into(&mut self, encoded: &[u8], out: &mut [i32]) -> Result<usize> {
        block::decode(encoded, out, &mut self.scratch, self.isa)
    }

    /// Decodes a block written by [`Encoder::encode_referenced`] (or any other block), given the
    /// reference samples it was encoded against.
    ///
    /// # Errors
    /// As [`Decoder::decode_into`], and `InvalidArgument` when the block needs a reference of
    /// another length.
    pub fn decode_referenced_into(
        &mut self,
        encoded: &[u8],
        reference: &[i32],
        out: &mut [i32],
    ) -> Result<usize> {
        block::decode_with(encoded, Some(reference), out, &mut self.scratch, self.isa)
    }
}

/// Encodes `samples` with the default options and appends the bytes to `out`.
///
/// # Errors
/// `InvalidArgument` when a sample is outside `width` or the block is longer than
/// [`MAX_BLOCK_SAMPLES`].
pub fn encode(samples: &[i32], width: SampleWidth, out: &mut Vec<u8>) -> Result<()> {
    Encoder::default().encode(samples, width, out)
}

/// Encodes `samples` with `options` and appends the bytes to `out`.
///
/// # Errors
/// As [`encode`].
pub fn encode_with(
    samples: &[i32],
    width: SampleWidth,
    options: &EncodeOptions,
    out: &mut Vec<u8>,
) -> Result<()> {
    Encoder::new(options.clone()).encode(samples, width, out)
}

/// Encodes `samples` against `reference` with the default options (see
/// [`Encoder::encode_referenced`]).
///
/// # Errors
/// As [`Encoder::encode_referenced`].
pub fn encode_referenced(
    samples: &[i32],
    reference: &[i32],
    width: SampleWidth,
    out: &mut Vec<u8>,
) -> Result<()> {
    Encoder::default().encode_referenced(samples, reference, width, out)
}

/// Decodes a block given the reference samples it may have been encoded against.
///
/// # Errors
/// As [`Decoder::decode_referenced_into`].
pub fn decode_referenced_into(encoded: &[u8], reference: &[i32], out: &mut [i32]) -> Result<usize> {
    Decoder::new().decode_referenced_into(encoded, reference, out)
}

/// The header of an encoded block: version, codec, width and sample count.
///
/// # Errors
/// `Truncated` when the header is cut, `UnsupportedVersion`, or `Corrupt`.
pub fn inspect(encoded: &[u8]) -> Result<BlockInfo> {
    block::read_header(encoded).map(|(info, _)| info)
}

/// Number of samples an encoding holds (from its header alone).
///
/// # Errors
/// As [`inspect`].
pub fn decoded_len(encoded: &[u8]) -> Result<usize> {
    inspect(encoded).map(|i| i.len)
}

/// Decodes into the caller's buffer and returns the number of samples written.
///
/// # Errors
/// `Truncated`, `Corrupt` or `UnsupportedVersion` for bad input; `InvalidArgument` when `out` is
/// shorter than the block or the block was coded against a reference channel
/// ([`decode_referenced_into`]).
pub fn decode_into(encoded: &[u8], out: &mut [i32]) -> Result<usize> {
    Decoder::new().decode_into(encoded, out)
}

/// Decodes into a new vector.
///
/// # Errors
/// As [`decode_into`].
pub fn decode(encoded: &[u8]) -> Result<Vec<i32>> {
    let n = decoded_len(encoded)?;
    let mut v = vec![0; n];
    decode_into(encoded, &mut v)?;
    Ok(v)
}
