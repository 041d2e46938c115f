//! One channel block: header, the per-block choice among codecs, and decoding (FORMAT.md §2–3).
//!
//! The encoder estimates every applicable candidate and keeps the smallest, as tantivy's column
//! codec estimator does: constant; verbatim bit-packing (the worst-case guarantee); predictive
//! (value transform × predictor × partitioned Rice); runs (values and run lengths, each coded as a
//! nested block); and a zstd fallback for structure none of these see.

use crate::bits::{self, BitWriter, Cursor, bit_len};
use crate::dispatch::Isa;
use crate::error::{CodecError, Result};
use crate::predict::{self, Predictor};
use crate::transform::Transform;
use crate::{EncodeOptions, SampleWidth, rice};

/// The one format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u8 = 1;
/// Most samples one block may hold (2^20): bounds what a decoder allocates for a hostile header.
pub(crate) const MAX_BLOCK_SAMPLES: usize = 1 << 20;
/// Header bytes before the body: version, tag, and a varint of at most 3 bytes (n ≤ 2^20).
pub(crate) const MAX_HEADER_BYTES: usize = 5;
/// Bytes of a verbatim body before the packed values: bit width and a zig-zag varint base.
const VERBATIM_PREFIX_BYTES: usize = 1 + 4;
/// Samples the zstd fallback is first tried on (an eighth of a typical block): whole-block
/// attempts only when this prefix compresses within 25 % of the best candidate. Measured on the
/// real recordings: 1024 picks exactly the blocks 2048 did (same bytes) in half the time; 512
/// misses every block zstd wins.
const ZSTD_PROBE_SAMPLES: usize = 1024;
/// Tag bit selecting 24-bit samples.
const TAG_WIDTH_24: u8 = 0x10;
/// Tag bits that must be zero in version 1.
const TAG_RESERVED: u8 = 0xE0;

/// How a block is coded. Codes are stored in the low nibble of the tag byte and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum CodecId {
    /// Samples bit-packed above the block minimum: the worst case.
    Verbatim = 0,
    /// Every sample equal.
    Constant = 1,
    /// Value transform, linear predictor and partitioned Rice residuals.
    Predictive = 2,
    /// Run values and run lengths, each a nested block.
    Runs = 3,
    /// zstd over the stored little-endian bytes.
    Zstd = 4,
    /// The difference from a scaled reference channel, as a nested block; decoding needs the
    /// reference channel's samples of the same span.
    Reference = 5,
}

impl CodecId {
    /// The codec of a stored code, if this version knows it.
    pub fn try_from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Verbatim,
            1 => Self::Constant,
            2 => Self::Predictive,
            3 => Self::Runs,
            4 => Self::Zstd,
            5 => Self::Reference,
            _ => return None,
        })
    }
}

/// What a block's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Format version of the block.
    pub version: u8,
    /// The codec the encoder chose.
    pub codec: CodecId,
    /// Stored sample width.
    pub width: SampleWidth,
    /// Number of samples.
    pub len: usize,
}

fn width_bits(width: SampleWidth) -> u32 {
    match width {
        SampleWidth::Bits16 => 16,
        SampleWidth::Bits24 => 24,
    }
}

pub(crate) fn bytes_per_sample(width: SampleWidth) -> usize {
    width_bits(width) as usize / 8
}

/// Worst-case block size: header plus a verbatim body at full width.
pub(crate) fn max_encoded_len(n: usize, width: SampleWidth) -> usize {
    MAX_HEADER_BYTES + VERBATIM_PREFIX_BYTES + n * bytes_per_sample(width)
}

/// Parses the header; returns the info and the offset of the body.
pub(crate) fn read_header(encoded: &[u8]) -> Result<(BlockInfo, usize)> {
    let mut c = Cursor::new(encoded, 0);
    let version = c.u8("format version")?;
    if version != FORMAT_VERSION {
        return Err(CodecError::new(
            crate::ErrorKind::UnsupportedVersion,
            format!("format version {version} (this build reads version {FORMAT_VERSION})"),
        ));
    }
    let tag = c.u8("block tag")?;
    let (codec, width) = parse_tag(tag, 1)?;
    let at = c.offset();
    let len = c.varint("sample count")? as usize;
    if len > MAX_BLOCK_SAMPLES {
        return Err(CodecError::corrupt("sample count", at));
    }
    Ok((
        BlockInfo {
            version,
            codec,
            width,
            len,
        },
        c.offset(),
    ))
}

fn parse_tag(tag: u8, at: usize) -> Result<(CodecId, SampleWidth)> {
    if tag & TAG_RESERVED != 0 {
        return Err(CodecError::corrupt("block tag", at));
    }
    let codec =
        CodecId::try_from_code(tag & 0x0F).ok_or_else(|| CodecError::corrupt("codec", at))?;
    let width = if tag & TAG_WIDTH_24 != 0 {
        SampleWidth::Bits24
    } else {
        SampleWidth::Bits16
    };
    Ok((codec, width))
}

fn tag(codec: CodecId, width: SampleWidth) -> u8 {
    codec as u8
        | match width {
            SampleWidth::Bits16 => 0,
            SampleWidth::Bits24 => TAG_WIDTH_24,
        }
}

/// A reusable zstd compression context.
pub(crate) struct ZstdContext(zstd::bulk::Compressor<'static>);

impl std::fmt::Debug for ZstdContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZstdContext")
    }
}

/// Reusable encoder buffers.
#[derive(Debug)]
pub(crate) struct EncodeScratch {
    y: Vec<i32>,
    u: Vec<u32>,
    windows: predict::analysis::Windows,
    isa: Isa,
    windowed: Vec<f32>,
    body: Vec<u8>,
    candidate: Vec<u8>,
    zstd: Option<ZstdContext>,
    /// Residual buffers to reuse across candidates and blocks.
    pool: Vec<Vec<u32>>,
}

impl EncodeScratch {
    /// The instruction set the kernels run with.
    pub(crate) fn isa(&self) -> Isa {
        self.isa
    }

    /// An empty residual buffer with room for `n` values.
    fn take_buffer(&mut self, n: usize) -> Vec<u32> {
        let mut u = self.pool.pop().unwrap_or_default();
        u.clear();
        u.reserve(n);
        u
    }
}

impl Default for EncodeScratch {
    fn default() -> Self {
        Self {
            y: Vec::new(),
            u: Vec::new(),
            windows: Default::default(),
            isa: Isa::detect(),
            windowed: Vec::new(),
            body: Vec::new(),
            candidate: Vec::new(),
            zstd: None,
            pool: Vec::new(),
        }
    }
}

/// What one pass over a block tells the encoder (see [`stats_body`]): the range for sample
/// validation and the verbatim size, and the number of steps for the constant and runs
/// candidates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) min: i32,
    pub(crate) max: i32,
    /// Positions `t` where `x[t] != x[t - 1]`.
    pub(crate) steps: usize,
}

/// Encodes a whole block (header included) of validated samples, whose `stats` the caller has.
pub(crate) fn encode(
    x: &[i32],
    stats: Stats,
    width: SampleWidth,
    opts: &EncodeOptions,
    scratch: &mut EncodeScratch,
    out: &mut Vec<u8>,
) {
    let mut body = std::mem::take(&mut scratch.body);
    body.clear();
    let codec = encode_body(x, stats, width, opts, scratch, &mut body, false);
    out.reserve(MAX_HEADER_BYTES + body.len());
    out.push(FORMAT_VERSION);
    out.push(tag(codec, width));
    bits::put_varint(out, x.len() as u32);
    out.extend_from_slice(&body);
    scratch.body = body;
}

/// Fixed-point bits of the reference gain β (β = num / 2^6).
const REF_GAIN_BITS: u32 = 6;
/// Largest |num| allowed (|β| ≤ 64).
const REF_GAIN_MAX: i32 = 4096;

/// `round(β·a)` as the format defines it: `(num·a + 2^5) >> 6`, exactly.
#[inline(always)]
fn ref_pred(num: i32, a: i32) -> i64 {
    (i64::from(num) * i64::from(a) + (1 << (REF_GAIN_BITS - 1))) >> REF_GAIN_BITS
}

/// Least-squares gain of `x`'s steps on `reference`'s steps, in 1/64 units (0 when none helps).
fn reference_gain(x: &[i32], reference: &[i32]) -> i32 {
    let (mut sab, mut saa) = (0f64, 0f64);
    for t in 1..x.len() {
        let da = f64::from(reference[t]) - f64::from(reference[t - 1]);
        let db = f64::from(x[t]) - f64::from(x[t - 1]);
        sab += da * db;
        saa += da * da;
    }
    if saa <= 0.0 {
        return 0;
    }
    let num = (sab / saa * f64::from(1u32 << REF_GAIN_BITS)).round();
    num.clamp(f64::from(-REF_GAIN_MAX), f64::from(REF_GAIN_MAX)) as i32
}

/// Encodes `x` either alone or as its difference from `num/64 · reference`, whichever is
/// smaller (header included).
pub(crate) fn encode_referenced(
    x: &[i32],
    stats: Stats,
    reference: &[i32],
    width: SampleWidth,
    opts: &EncodeOptions,
    scratch: &mut EncodeScratch,
    out: &mut Vec<u8>,
) {
    let mut body = Vec::new();
    let mut codec = encode_body(x, stats, width, opts, scratch, &mut body, false);
    let num = reference_gain(x, reference);
    let lo = i64::from(SampleWidth::Bits24.min());
    let hi = i64::from(SampleWidth::Bits24.max());
    let d: Option<Vec<i32>> = (num != 0)
        .then(|| {
            x.iter()
                .zip(reference)
                .map(|(&b, &a)| {
                    let v = i64::from(b) - ref_pred(num, a);
                    (lo..=hi).contains(&v).then_some(v as i32)
                })
                .collect()
        })
        .flatten();
    if let Some(d) = d {
        let mut alt = Vec::new();
        bits::put_zz_varint(&mut alt, num);
        let mut sub = Vec::new();
        let sc = encode_fresh(&d, SampleWidth::Bits24, opts, scratch, &mut sub, false);
        alt.push(tag(sc, SampleWidth::Bits24));
        alt.extend_from_slice(&sub);
        if alt.len() < body.len() {
            body = alt;
            codec = CodecId::Reference;
        }
    }
    out.push(FORMAT_VERSION);
    out.push(tag(codec, width));
    bits::put_varint(out, x.len() as u32);
    out.extend_from_slice(&body);
}

/// [`encode_body`] for a derived block (a reference difference, a runs block's values or
/// lengths) whose stats no caller has computed yet.
fn encode_fresh(
    x: &[i32],
    width: SampleWidth,
    opts: &EncodeOptions,
    scratch: &mut EncodeScratch,
    out: &mut Vec<u8>,
    nested: bool,
) -> CodecId {
    let stats = crate::dispatch::block_stats(scratch.isa, x);
    encode_body(x, stats, width, opts, scratch, out, nested)
}

/// Writes the cheapest body for `x` into `out` and returns its codec. Nested bodies (inside a
/// runs block) cannot be runs themselves.
fn encode_body(
    x: &[i32],
    stats: Stats,
    width: SampleWidth,
    opts: &EncodeOptions,
    scratch: &mut EncodeScratch,
    out: &mut Vec<u8>,
    nested: bool,
) -> CodecId {
    let start = out.len();
    let n = x.len();
    let Stats { min, max, steps } = stats;
    if n > 0 && steps == 0 {
        bits::put_zz_varint(out, x[0]);
        return CodecId::Constant;
    }
    let mut best_codec = CodecId::Verbatim;
    if n < 2 {
        write_verbatim(x, out);
        return best_codec;
    }
    // The verbatim body is sized, not written: it is written at the end only if nothing beats it.
    let mut best_len = verbatim_len(n, min, max);
    let raw = n * bytes_per_sample(width);
    let mut cand = std::mem::take(&mut scratch.candidate);

    let consider = |codec: CodecId,
                    cand: &[u8],
                    out: &mut Vec<u8>,
                    best: &mut CodecId,
                    best_len: &mut usize| {
        if cand.len() < *best_len {
            out.truncate(start);
            out.extend_from_slice(cand);
            *best = codec;
            *best_len = cand.len();
        }
    };

    cand.clear();
    encode_predictive(x, opts, scratch, &mut cand);
    consider(
        CodecId::Predictive,
        &cand,
        out,
        &mut best_codec,
        &mut best_len,
    );

    if !nested {
        let runs = steps + 1;
        if runs * 2 <= n {
            cand.clear();
            encode_runs(x, width, opts, scratch, &mut cand);
            consider(CodecId::Runs, &cand, out, &mut best_codec, &mut best_len);
        }
    }

    if opts.zstd_fallback {
        let best = best_len;
        // A fast probe on the first samples first; the whole block, and then the slow high
        // level, only when zstd looks competitive.
        let probe = n.min(ZSTD_PROBE_SAMPLES);
        cand.clear();
        let promising = zstd_may_pay(&x[..probe], width, best * probe / n)
            && encode_zstd(&x[..probe], width, 1, &mut scratch.zstd, &mut cand)
            && (cand.len() * n / probe) * 4 < best * 5;
        cand.clear();
        if promising
            && encode_zstd(x, width, 1, &mut scratch.zstd, &mut cand)
            && cand.len() * 4 < best * 5
        {
            consider(CodecId::Zstd, &cand, out, &mut best_codec, &mut best_len);
            cand.clear();
            if encode_zstd(x, width, opts.zstd_level, &mut scratch.zstd, &mut cand) {
                consider(CodecId::Zstd, &cand, out, &mut best_codec, &mut best_len);
            }
        }
    }
    if best_codec == CodecId::Verbatim {
        out.truncate(start);
        write_verbatim(x, out);
    }
    debug_assert_eq!(out.len() - start, best_len);
    debug_assert!(out.len() - start <= VERBATIM_PREFIX_BYTES + raw);
    scratch.candidate = cand;
    best_codec
}

/// Whether zstd could come within 25 % of `target` bytes on `x`, judged without running it.
///
/// zstd's only tools are matches (repeated byte strings) and order-0 entropy coding of the
/// bytes left over. So it cannot pay on a stretch where almost no three-sample window repeats
/// unless the order-0 entropy of the stored bytes alone is within reach. Both checks cost a
/// small fraction of a zstd run, and they are conservative: on the real recordings they skip
/// only blocks the zstd probe would also have rejected (same bytes out), while on EEG-like noise
/// they skip the probe altogether, about a tenth of the encoding time.
fn zstd_may_pay(x: &[i32], width: SampleWidth, target: usize) -> bool {
    /// Share of positions starting a repeated window above which matches may pay.
    const REPEAT_SHARE: f64 = 0.01;
    const HASH_BITS: u32 = 10;
    if x.len() < 64 {
        return true;
    }
    // Each window's 64-bit fingerprint in a direct-mapped table: a repeat is a fingerprint met
    // again. A rare false match only means zstd is tried.
    let mut table = [0u64; 1 << HASH_BITS];
    let mut repeats = 0usize;
    for w in x.windows(3) {
        let fp = (u64::from(w[0] as u32) | u64::from(w[1] as u32) << 32)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(w[2] as u32).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            | 1;
        let slot = &mut table[(fp >> (64 - HASH_BITS)) as usize];
        repeats += usize::from(*slot == fp);
        *slot = fp;
    }
    if repeats as f64 >= REPEAT_SHARE * (x.len() - 2) as f64 {
        return true;
    }
    // Order-0 entropy of each byte position of the stored little-endian samples: their mean is
    // at most the entropy of all bytes mixed, which bounds what zstd's literal coding can reach.
    let bps = bytes_per_sample(width);
    // Consecutive samples mostly share their high byte: one histogram would make each count wait
    // for the previous one to the same bucket, so even and odd samples count apart. (In pairs:
    // picking the table by index parity instead measured about 5 % slower ingest.)
    let mut hist = [[[0u32; 256]; 3]; 2];
    let mut pairs = x.chunks_exact(2);
    for p in &mut pairs {
        for (h, &v) in hist.iter_mut().zip(p) {
            let b = v.to_le_bytes();
            for (h, &byte) in h.iter_mut().zip(&b[..bps]) {
                h[usize::from(byte)] += 1;
            }
        }
    }
    for &v in pairs.remainder() {
        let b = v.to_le_bytes();
        for (h, &byte) in hist[0].iter_mut().zip(&b[..bps]) {
            h[usize::from(byte)] += 1;
        }
    }
    // Σ c·log2(n/c) = n·log2(n) − Σ c·log2(c), with c·log2(c) from a table (counts ≤ the probe),
    // summed in four lanes (one serial chain of adds would dominate).
    let table = c_log2_c();
    let n = x.len();
    let c_log_c = |c: u32| {
        table
            .get(c as usize)
            .copied()
            .unwrap_or_else(|| f64::from(c) * f64::from(c).log2())
    };
    let mut acc = [0.0f64; 4];
    let [even, odd] = &hist;
    for (e, o) in even[..bps].iter().zip(&odd[..bps]) {
        for (e4, o4) in e.chunks_exact(4).zip(o.chunks_exact(4)) {
            for k in 0..4 {
                acc[k] += c_log_c(e4[k] + o4[k]);
            }
        }
    }
    let sum_c_log_c: f64 = acc.iter().sum();
    let bits = bps as f64 * (n as f64) * (n as f64).log2() - sum_c_log_c;
    bits / 8.0 * 4.0 < target as f64 * 5.0
}

/// `c·log2(c)` for every count a probe's histogram can hold (0 for 0).
fn c_log2_c() -> &'static [f64] {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=ZSTD_PROBE_SAMPLES)
            .map(|c| {
                if c == 0 {
                    0.0
                } else {
                    c as f64 * (c as f64).log2()
                }
            })
            .collect()
    })
}

/// Bytes [`write_verbatim`] writes for `n > 0` samples between `min` and `max`.
fn verbatim_len(n: usize, min: i32, max: i32) -> usize {
    let b = bit_len(max.abs_diff(min));
    1 + (bit_len(bits::zigzag(min)).max(1) as usize).div_ceil(7) + bits::packed_bytes(n, b)
}

/// Smallest and largest sample and the number of steps (`x[t] != x[t - 1]`): what the
/// constant, runs and verbatim candidates need, and what sample validation needs.
#[inline(always)]
pub(crate) fn stats_body(x: &[i32]) -> Stats {
    // Separate simple loops: each vectorises (the steps count in u32 lanes; n ≤ 2^20).
    let min = x.iter().copied().fold(i32::MAX, i32::min);
    let max = x.iter().copied().fold(i32::MIN, i32::max);
    let steps: u32 = x.windows(2).map(|w| u32::from(w[0] != w[1])).sum();
    Stats {
        min,
        max,
        steps: steps as usize,
    }
}

fn write_verbatim(x: &[i32], out: &mut Vec<u8>) {
    let (min, max) = x
        .iter()
        .fold((i32::MAX, i32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (min, b) = if x.is_empty() {
        (0, 0)
    } else {
        (min, bit_len(max.abs_diff(min)))
    };
    out.push(b as u8);
    bits::put_zz_varint(out, min);
    let mut w = BitWriter::new(out);
    for &v in x {
        w.write(v.abs_diff(min), b);
    }
    w.finish();
}

/// The predictive body: transform, predictor, first value, residuals.
/// The best predictive candidate so far: (bytes, transform, predictor, residuals, Rice plan, y0).
type PredictiveCandidate = (
    usize,
    Transform,
    Predictor,
    Vec<u32>,
    Option<rice::Plan>,
    i32,
);

fn encode_predictive(
    x: &[i32],
    opts: &EncodeOptions,
    scratch: &mut EncodeScratch,
    out: &mut Vec<u8>,
) {
    let mut best: Option<PredictiveCandidate> = None;
    let mut y = std::mem::take(&mut scratch.y);
    let mut transforms = crate::transform::candidates(x);
    if transforms.len() > 1 {
        // Keep the transform whose order-2 residuals look cheapest (plus its header): the
        // predictor search is the expensive part and the ranking rarely changes with it.
        let mut scored = Vec::with_capacity(transforms.len());
        for t in transforms.drain(..) {
            if !t.forward(x, &mut y) {
                continue;
            }
            let mut head = Vec::new();
            t.write(&mut head);
            scratch.u.clear();
            predict::fixed_residuals(&y, 2, 1, &mut scratch.u);
            scored.push((
                rice::estimate_bits_fast(&scratch.u, scratch.isa) + 8 * head.len() as u64,
                t,
            ));
        }
        scored.sort_by_key(|s| s.0);
        transforms.extend(scored.into_iter().take(1).map(|s| s.1));
    }
    for t in transforms {
        if !t.forward(x, &mut y) {
            continue;
        }
        let mut head = Vec::new();
        t.write(&mut head);
        let head_len = head.len() + 5; // + first value
        let (pred, bytes, u, plan) = choose_predictor(&y, t.max_abs_y(&y), opts, scratch);
        let total = head_len + bytes;
        if best.as_ref().is_none_or(|b| total < b.0) {
            best = Some((total, t, pred, u, plan, y[0]));
        }
    }
    scratch.y = y;
    let (_, t, pred, u, plan, y0) = best.expect("the affine transform always applies");
    t.write(out);
    match &pred {
        Predictor::Fixed(o) => out.push(*o),
        Predictor::Lpc(lpc) => {
            out.push(PREDICTOR_LPC);
            predict::write_lpc(lpc, out);
        }
    }
    bits::put_zz_varint(out, y0);
    rice::write(&u, plan, out);
    if scratch.pool.len() < 8 {
        scratch.pool.push(u);
    }
}

/// Predictor code of LPC (fixed orders are 0..=4).
const PREDICTOR_LPC: u8 = 5;

/// The predictor with the smallest residual section for `y`: the predictor, that section's size
/// plus the predictor's own header bytes, and the residuals.
///
/// Candidates (the fixed orders, and LPC at the orders the Levinson errors favour) are ranked
/// by a fast size estimate from partition sums; the best is then sized exactly.
fn choose_predictor(
    y: &[i32],
    max_abs_y: i64,
    opts: &EncodeOptions,
    scratch: &mut EncodeScratch,
) -> (Predictor, usize, Vec<u32>, Option<rice::Plan>) {
    let n = y.len();
    let isa = scratch.isa;
    // (estimated bits including the predictor header, predictor, residuals)
    let mut ranked: Vec<(u64, Predictor, Vec<u32>)> = Vec::with_capacity(8);
    // Fixed orders: the residual sum ranks them well enough; size the two smallest.
    let sums = predict::fixed_sums(y, isa);
    let mut orders = [0u8, 1, 2, 3, 4];
    orders.sort_by_key(|&o| sums[usize::from(o)]);
    for &o in &orders[..2] {
        let mut u = scratch.take_buffer(n);
        predict::fixed_residuals(y, usize::from(o), 1, &mut u);
        ranked.push((
            8 + rice::estimate_bits_fast(&u, isa),
            Predictor::Fixed(o),
            u,
        ));
    }
    let max_order = opts.max_lpc_order.min(predict::MAX_LPC_ORDER).min(n / 4);
    if max_order >= 1 && n >= 32 {
        let ac = predict::analysis::autocorrelation(
            y,
            max_order,
            &mut scratch.windows,
            &mut scratch.windowed,
            isa,
        );
        if ac[0] > 0.0 {
            let (coefs, errs) = predict::analysis::levinson(&ac, max_order);
            // Rank orders by the bits the prediction error suggests plus, per coefficient, its
            // stored bits and a charge for the decode time it adds.
            let per_coef = 15.0 + LPC_DECODE_CHARGE * n as f64;
            let mut est: Vec<(f64, usize)> = errs
                .iter()
                .enumerate()
                .map(|(i, &e)| {
                    let per_sample = 0.5 * (e.max(1e-9) / n as f64).log2();
                    (n as f64 * per_sample + (i + 1) as f64 * per_coef, i + 1)
                })
                .collect();
            est.sort_by(|a, b| a.0.total_cmp(&b.0));
            for &(_, order) in est.iter().take(2) {
                let segments = if opts.segmented_lpc
                    && n >= 1024
                    && order * 4 <= predict::segment_len(n, predict::LANES)
                {
                    predict::LANES
                } else {
                    1
                };
                let Some(lpc) =
                    predict::analysis::quantize(&coefs[order - 1], 15, max_abs_y, segments)
                else {
                    continue;
                };
                let head = 8 * (5 + bits::packed_bytes(order, lpc.precision)) as u64;
                let pred = Predictor::Lpc(lpc);
                let mut u = scratch.take_buffer(n);
                predict::residuals(y, &pred, &mut u, isa);
                ranked.push((head + rice::estimate_bits_fast(&u, isa), pred, u));
            }
        }
    }
    // Only the estimated best is sized exactly. Sizing the runner-up as well when the two were
    // within 1 % saved 0.009 % of the bytes on the real recordings and cost a tenth of the
    // ingest time. (A stable sort: on a tie the earlier candidate wins.)
    ranked.sort_by_key(|r| r.0);
    let mut ranked = ranked.into_iter();
    let (_, pred, u) = ranked.next().expect("fixed predictors always apply");
    scratch.pool.extend(ranked.map(|r| r.2));
    let head = match &pred {
        Predictor::Fixed(_) => 1,
        Predictor::Lpc(l) => 5 + bits::packed_bytes(l.coefs.len(), l.precision),
    };
    let (res_bytes, plan) = rice::planned(&u, isa);
    (pred, head + res_bytes, u, plan)
}

/// Runs body: run count, values block (length-prefixed), lengths-minus-one block.
fn encode_runs(
    x: &[i32],
    width: SampleWidth,
    opts: &EncodeOptions,
    scratch: &mut EncodeScratch,
    out: &mut Vec<u8>,
) {
    let mut values = Vec::new();
    let mut lens = Vec::new();
    let mut i = 0;
    while i < x.len() {
        let v = x[i];
        let mut j = i + 1;
        while j < x.len() && x[j] == v {
            j += 1;
        }
        values.push(v);
        lens.push((j - i - 1) as i32);
        i = j;
    }
    bits::put_varint(out, values.len() as u32);
    let mut sub = Vec::new();
    let codec = encode_fresh(&values, width, opts, scratch, &mut sub, true);
    bits::put_varint(out, (sub.len() + 1) as u32);
    out.push(tag(codec, width));
    out.extend_from_slice(&sub);
    sub.clear();
    let codec = encode_fresh(&lens, SampleWidth::Bits24, opts, scratch, &mut sub, true);
    out.push(tag(codec, SampleWidth::Bits24));
    out.extend_from_slice(&sub);
}

/// zstd body: compressed length and a zstd frame of the stored bytes. `false` if zstd failed.
fn encode_zstd(
    x: &[i32],
    width: SampleWidth,
    level: i32,
    ctx: &mut Option<ZstdContext>,
    out: &mut Vec<u8>,
) -> bool {
    let bps = bytes_per_sample(width);
    let mut raw = Vec::with_capacity(x.len() * bps);
    for &v in x {
        raw.extend_from_slice(&v.to_le_bytes()[..bps]);
    }
    if ctx.is_none() {
        *ctx = zstd::bulk::Compressor::new(level).ok().map(ZstdContext);
    }
    let Some(ZstdContext(c)) = ctx.as_mut() else {
        return false;
    };
    if c.set_compression_level(level).is_err() {
        return false;
    }
    match c.compress(&raw) {
        Ok(z) => {
            bits::put_varint(out, z.len() as u32);
            out.extend_from_slice(&z);
            true
        }
        Err(_) => false,
    }
}

/// Bits per sample that each LPC coefficient is charged, on top of its 15 stored bits, when the
/// encoder ranks orders: each coefficient adds a multiply-add per sample to the decode. Measured
/// on the 15 real recordings (8192-sample blocks; total bytes, decode M samples/s best of 2):
///
/// | charge | bytes | decode |
/// |---|---|---|
/// | 0 | 3 379 472 | 760–764 |
/// | 0.002 | 3 378 939 | 776–797 |
/// | **0.004** | 3 379 333 | 783–807 |
/// | 0.008 | 3 380 624 | 805–846 |
/// | 0.016 | 3 384 957 | 860–881 |
///
/// 0.004 is the largest charge that costs no bytes in total (the error-based estimate slightly
/// overrates high orders); above it, the files where FLAC-8 comes closest lose margin
/// (`test_utf8.edf` 3.1718 → 3.1678 at 0.008, against FLAC's 3.165).
const LPC_DECODE_CHARGE: f64 = 0.004;

/// Reusable decoder buffers.
#[derive(Debug, Default)]
pub(crate) struct DecodeScratch {
    lanes: Vec<[i32; predict::LANES]>,
    positions: Vec<u32>,
    run_values: Vec<i32>,
    run_lens: Vec<i32>,
    bytes: Vec<u8>,
    /// A zstd context, made on first use (making one costs more than a small frame's decode).
    zstd: Option<ZstdDecompressor>,
}

/// A reusable zstd decompression context.
pub(crate) struct ZstdDecompressor(zstd::bulk::Decompressor<'static>);

impl std::fmt::Debug for ZstdDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZstdDecompressor")
    }
}

/// Decodes a whole block into `out`, which has room for the header's sample count.
pub(crate) fn decode(
    encoded: &[u8],
    out: &mut [i32],
    scratch: &mut DecodeScratch,
    isa: Isa,
) -> Result<usize> {
    decode_with(encoded, None, out, scratch, isa)
}

/// Where a body sits, which decides the codecs it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// The block itself: any codec.
    Top,
    /// The difference block inside a reference block: anything but another reference.
    InReference,
    /// A runs sub-block: neither runs nor reference.
    InRuns,
}

/// Decodes a block that may have been coded against `reference` (the reference channel's
/// samples over the same span).
pub(crate) fn decode_with(
    encoded: &[u8],
    reference: Option<&[i32]>,
    out: &mut [i32],
    scratch: &mut DecodeScratch,
    isa: Isa,
) -> Result<usize> {
    let (info, body_at) = read_header(encoded)?;
    if out.len() < info.len {
        return Err(CodecError::invalid_argument(format!(
            "output buffer holds {} samples, block has {}",
            out.len(),
            info.len
        )));
    }
    let mut c = Cursor::new(&encoded[body_at..], body_at);
    let out = &mut out[..info.len];
    if info.codec == CodecId::Reference {
        let reference = reference.ok_or_else(|| {
            CodecError::invalid_argument("block was coded against a reference channel; pass it")
        })?;
        if reference.len() != info.len {
            return Err(CodecError::invalid_argument(format!(
                "reference holds {} samples, block has {}",
                reference.len(),
                info.len
            )));
        }
        decode_reference(info.width, &mut c, reference, out, scratch, isa)?;
    } else {
        decode_body(
            info.codec,
            info.width,
            &mut c,
            out,
            scratch,
            Depth::Top,
            isa,
        )?;
    }
    Ok(info.len)
}

fn decode_reference(
    width: SampleWidth,
    c: &mut Cursor<'_>,
    reference: &[i32],
    out: &mut [i32],
    scratch: &mut DecodeScratch,
    isa: Isa,
) -> Result<()> {
    let at = c.offset();
    let num = c.zz_varint("reference gain")?;
    if num == 0 || !(-REF_GAIN_MAX..=REF_GAIN_MAX).contains(&num) {
        return Err(CodecError::corrupt("reference gain", at));
    }
    let tat = c.offset();
    let (codec, dwidth) = parse_tag(c.u8("difference tag")?, tat)?;
    if dwidth != SampleWidth::Bits24 {
        return Err(CodecError::corrupt("difference width", tat));
    }
    decode_body(codec, dwidth, c, out, scratch, Depth::InReference, isa)?;
    let (lo, hi) = (i64::from(width.min()), i64::from(width.max()));
    let mut bad = false;
    for (o, &a) in out.iter_mut().zip(reference) {
        let x = i64::from(*o) + ref_pred(num, a);
        bad |= x < lo || x > hi;
        *o = x as i32;
    }
    if bad {
        return Err(CodecError::corrupt("decoded sample outside the width", at));
    }
    Ok(())
}

fn decode_body(
    codec: CodecId,
    width: SampleWidth,
    c: &mut Cursor<'_>,
    out: &mut [i32],
    scratch: &mut DecodeScratch,
    depth: Depth,
    isa: Isa,
) -> Result<()> {
    let n = out.len();
    let in_width = |v: i32| v >= width.min() && v <= width.max();
    match codec {
        CodecId::Constant => {
            let at = c.offset();
            let v = c.zz_varint("constant value")?;
            if !in_width(v) {
                return Err(CodecError::corrupt("constant value", at));
            }
            c.expect_end("constant block end")?;
            out.fill(v);
        }
        CodecId::Verbatim => {
            let at = c.offset();
            let b = u32::from(c.u8("verbatim bit width")?);
            let base = c.zz_varint("verbatim base")?;
            if b > width_bits(width) || !in_width(base) {
                return Err(CodecError::corrupt("verbatim header", at));
            }
            let sec = c.take_bits(n as u64 * u64::from(b), "verbatim samples")?;
            c.expect_end("verbatim block end")?;
            bits::check_padding(
                sec.bytes(),
                n as u64 * u64::from(b),
                sec.offset(),
                "verbatim padding",
            )?;
            let mut bad = false;
            let hi = i64::from(width.max());
            let mut done = 0u64;
            for chunk in out.chunks_mut(256) {
                let mut tmp = [0u32; 256];
                let t = &mut tmp[..chunk.len()];
                bits::unpack(sec.bytes(), done * u64::from(b), b, t);
                done += chunk.len() as u64;
                for (o, &u) in chunk.iter_mut().zip(t.iter()) {
                    let v = i64::from(base) + i64::from(u);
                    bad |= v > hi;
                    *o = v as i32;
                }
            }
            if bad {
                return Err(CodecError::corrupt("verbatim sample outside the width", at));
            }
        }
        CodecId::Predictive => decode_predictive(width, c, out, scratch, isa)?,
        CodecId::Runs => {
            if depth == Depth::InRuns {
                return Err(CodecError::corrupt("nested runs block", c.offset()));
            }
            decode_runs(width, c, out, scratch, isa)?;
        }
        CodecId::Reference => {
            // At the top level, `decode_with` handles it (it needs the reference samples).
            return Err(CodecError::corrupt("nested reference block", c.offset()));
        }
        CodecId::Zstd => {
            let at = c.offset();
            let len = c.varint("zstd length")? as usize;
            let frame = c.take(len, "zstd frame")?;
            c.expect_end("zstd block end")?;
            let bps = bytes_per_sample(width);
            let mut raw = std::mem::take(&mut scratch.bytes);
            raw.clear();
            raw.reserve_exact(n * bps);
            if scratch.zstd.is_none() {
                scratch.zstd = zstd::bulk::Decompressor::new().ok().map(ZstdDecompressor);
            }
            let res = match scratch.zstd.as_mut() {
                Some(ZstdDecompressor(d)) => d.decompress_to_buffer(frame, &mut raw),
                None => Err(std::io::Error::other("no zstd context")),
            };
            match res {
                Ok(got) if got == n * bps => {}
                _ => {
                    scratch.bytes = raw;
                    return Err(CodecError::corrupt("zstd frame", at));
                }
            }
            match width {
                SampleWidth::Bits16 => {
                    for (o, b) in out.iter_mut().zip(raw.chunks_exact(2)) {
                        *o = i32::from(i16::from_le_bytes([b[0], b[1]]));
                    }
                }
                SampleWidth::Bits24 => {
                    for (o, b) in out.iter_mut().zip(raw.chunks_exact(3)) {
                        *o = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                    }
                }
            }
            scratch.bytes = raw;
        }
    }
    Ok(())
}

fn decode_predictive(
    width: SampleWidth,
    c: &mut Cursor<'_>,
    out: &mut [i32],
    scratch: &mut DecodeScratch,
    isa: Isa,
) -> Result<()> {
    let n = out.len();
    let start = c.offset();
    let t = Transform::read(c, n, width, isa, &mut scratch.positions)?;
    let at = c.offset();
    let pred = match c.u8("predictor")? {
        o @ 0..=4 => Predictor::Fixed(o),
        PREDICTOR_LPC => Predictor::Lpc(predict::read_lpc(c, n)?),
        _ => return Err(CodecError::corrupt("predictor", at)),
    };
    let y0 = c.zz_varint("first value")?;
    if n == 0 {
        c.expect_end("predictive block end")?;
        return Ok(());
    }
    out[0] = y0;
    let mut rest = c.rest();
    if n == 1 {
        rest.expect_end("predictive block end")?;
    }
    rice::read(&mut rest, &mut out[1..], isa, &mut scratch.positions)?;
    predict::restore(&pred, out, &mut scratch.lanes, isa);
    t.inverse(out, width, start, isa)
}

fn decode_runs(
    width: SampleWidth,
    c: &mut Cursor<'_>,
    out: &mut [i32],
    scratch: &mut DecodeScratch,
    isa: Isa,
) -> Result<()> {
    let n = out.len();
    let at = c.offset();
    let runs = c.varint("run count")? as usize;
    if runs == 0 && n > 0 || runs > n {
        return Err(CodecError::corrupt("run count", at));
    }
    let vlen = c.varint("run values length")? as usize;
    let vsec = c.take(vlen, "run values")?;
    let mut vc = Cursor::new(vsec, at);
    let mut values = std::mem::take(&mut scratch.run_values);
    let mut lens = std::mem::take(&mut scratch.run_lens);
    values.clear();
    values.resize(runs, 0);
    lens.clear();
    lens.resize(runs, 0);
    let result = (|| {
        let vt = vc.u8("run values tag")?;
        let (vcodec, vwidth) = parse_tag(vt, at)?;
        if vwidth != width {
            return Err(CodecError::corrupt("run values width", at));
        }
        decode_body(
            vcodec,
            width,
            &mut vc,
            &mut values,
            scratch,
            Depth::InRuns,
            isa,
        )?;
        vc.expect_end("run values end")?;
        let lat = c.offset();
        let lt = c.u8("run lengths tag")?;
        let (lcodec, lwidth) = parse_tag(lt, lat)?;
        if lwidth != SampleWidth::Bits24 {
            return Err(CodecError::corrupt("run lengths width", lat));
        }
        let mut lc = c.rest();
        decode_body(
            lcodec,
            lwidth,
            &mut lc,
            &mut lens,
            scratch,
            Depth::InRuns,
            isa,
        )?;
        lc.expect_end("run lengths end")?;
        let mut pos = 0usize;
        for (&v, &l) in values.iter().zip(&lens) {
            let len = usize::try_from(l).map_err(|_| CodecError::corrupt("run length", lat))? + 1;
            let end = pos
                .checked_add(len)
                .filter(|&e| e <= n)
                .ok_or_else(|| CodecError::corrupt("run lengths sum", lat))?;
            out[pos..end].fill(v);
            pos = end;
        }
        if pos != n {
            return Err(CodecError::corrupt("run lengths sum", lat));
        }
        Ok(())
    })();
    scratch.run_values = values;
    scratch.run_lens = lens;
    result
}

#[cfg(test)]
mod gate_tests {
    use super::*;
    use crate::tests::{Rng, eeg_like};

    /// zstd's own verdict on a probe, as the encoder asked it before the gate existed.
    fn zstd_probe_promising(x: &[i32], width: SampleWidth, target: usize) -> bool {
        let mut ctx = None;
        let mut out = Vec::new();
        encode_zstd(x, width, 1, &mut ctx, &mut out) && out.len() * 4 < target * 5
    }

    #[test]
    fn the_zstd_gate_skips_eeg_noise_and_keeps_every_case_zstd_would_win() {
        // On EEG-like noise the gate says no at the size predictive coding reaches.
        let noise = eeg_like(1024, SampleWidth::Bits16, 3, 300.0);
        let opts = EncodeOptions {
            zstd_fallback: false,
            ..EncodeOptions::default()
        };
        let mut predictive = Vec::new();
        let mut scratch = EncodeScratch::default();
        encode(
            &noise,
            crate::dispatch::block_stats(scratch.isa, &noise),
            SampleWidth::Bits16,
            &opts,
            &mut scratch,
            &mut predictive,
        );
        assert!(!zstd_may_pay(&noise, SampleWidth::Bits16, predictive.len()));
        // A repeating pattern (matches), few spread values (order-0 entropy), 24-bit steps.
        let mut rng = Rng::new(9);
        let pattern: Vec<i32> = (0..1024).map(|i| [3, -700, 12_000, 5, 5][i % 5]).collect();
        let few: Vec<i32> = (0..1024).map(|_| 2000 + 7 * rng.range(0, 40)).collect();
        let stairs: Vec<i32> = (0..1024i32).map(|i| (i / 64) * 40_000).collect();
        for (name, x, width) in [
            ("pattern", &pattern, SampleWidth::Bits16),
            ("few values", &few, SampleWidth::Bits16),
            ("stairs", &stairs, SampleWidth::Bits24),
        ] {
            for target in [64, 256, 1024, 4096] {
                if zstd_probe_promising(x, width, target) {
                    assert!(zstd_may_pay(x, width, target), "{name}, target {target}");
                }
            }
        }
        // The gate is a lower bound, so whatever zstd finds promising on noise it does too.
        for seed in 0..20 {
            let x = eeg_like(1024, SampleWidth::Bits16, seed, 20.0 + 30.0 * seed as f64);
            for target in [200, 800, 1600] {
                if zstd_probe_promising(&x, SampleWidth::Bits16, target) {
                    assert!(zstd_may_pay(&x, SampleWidth::Bits16, target), "seed {seed}");
                }
            }
        }
    }
}
