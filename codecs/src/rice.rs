//! Partitioned Rice coding of zig-zag residuals, laid out for fast decoding (FORMAT.md §5).
//!
//! A Rice code of `u` with parameter `k` is the quotient `q = u >> k` in unary and the `k` low
//! bits. FLAC interleaves the two per sample, so each sample's position depends on the previous
//! sample's quotient: a serial chain of load, count-zeros and add per sample. Here the same bits
//! are split into streams: all low bits packed at fixed width (their positions are known up front,
//! so unpacking is independent per sample), and all quotients as one unary stream that is decoded
//! by walking its set bits a 64-bit word at a time. The size is exactly that of interleaved Rice.
//!
//! Partitions of `2^s` residuals each have their own `k` (or are marked all-zero and cost no
//! bits per sample). Quotients of `q_esc` or more are escaped: the unary stream holds `q_esc`
//! zeros and a one, and the excess goes to a fixed-width exception list, which bounds the cost of
//! outliers (spikes, the first sample after a jump).

use crate::bits::{self, BitReader, BitWriter, Cursor, bit_len};
use crate::dispatch::Isa;
use crate::error::{CodecError, Result};

/// `k` code marking a partition whose residuals are all zero.
const ZERO_PARTITION: u32 = 31;
/// Largest Rice parameter.
const MAX_K: u32 = 30;
/// Bits per stored `k` code.
const K_BITS: u32 = 5;
/// Smallest partition the encoder considers: 32 residuals (measured: 16 gains under 0.05 % and
/// costs a tenth of the encoding time).
const MIN_PARTITION_SHIFT: u32 = 5;
/// Largest partition shift the format allows (2^24 residuals).
const MAX_PARTITION_SHIFT: u32 = 24;
/// Quotient the encoder's cost model charges at most (an escaped value costs about this).
const COST_CAP_Q: u32 = 40;

/// Chosen layout of one residual section.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    shift: u32,
    /// Per partition: `k`, or [`ZERO_PARTITION`].
    ks: Vec<u32>,
    q_esc: u32,
    w_exc: u32,
}

/// Rice parameter minimising `len·(k+1) + Σ(u >> k)` estimated from the sum of `len` values.
#[inline]
fn k_from_sum(sum: u64, len: u64) -> u32 {
    if sum < len {
        0
    } else if len.is_power_of_two() {
        // ⌊log2(sum / len)⌋ without the division.
        (63 - sum.leading_zeros() - len.trailing_zeros()).min(MAX_K)
    } else {
        (63 - (sum / len).leading_zeros()).min(MAX_K)
    }
}

/// Estimated bits of a partition of `len` values summing to `sum` coded with parameter `k`:
/// `Σ(u >> k)` is about `sum / 2^k` minus half a unit per value for the dropped low bits.
#[inline]
fn est_bits(sum: u64, len: u64, k: u32) -> u64 {
    let q = if k == 0 {
        sum
    } else {
        (sum >> k).saturating_sub(len / 2)
    };
    len * (u64::from(k) + 1) + q
}

fn est_partition(sum: u64, len: u64, zero: bool) -> u64 {
    if zero {
        return u64::from(K_BITS);
    }
    let k = k_from_sum(sum, len);
    let lo = k.saturating_sub(1);
    (lo..=(k + 1).min(MAX_K))
        .map(|k| est_bits(sum, len, k))
        .min()
        .unwrap_or(u64::MAX)
        + u64::from(K_BITS)
}

/// Partition sums at the finest level, with values clipped at `clip` (an outlier costs an
/// escape, about the same whatever its size, so it must not drag the estimates up).
fn fine_sums(u: &[u32], sums: &mut Vec<(u64, bool)>) -> u64 {
    let total: u64 = u.iter().map(|&v| u64::from(v)).sum();
    let k_mean = k_from_sum(total, u.len().max(1) as u64);
    let clip = u64::from(COST_CAP_Q) << k_mean;
    let fine = 1usize << MIN_PARTITION_SHIFT;
    sums.clear();
    sums.extend(u.chunks(fine).map(|part| {
        let mut s = 0u64;
        let mut any = 0u32;
        for &v in part {
            s += u64::from(v).min(clip);
            any |= v;
        }
        (s, any == 0)
    }));
    clip
}

/// Estimated bits and partition shift of the cheapest level, from the finest sums.
fn best_level(m: usize, sums: &mut Vec<(u64, bool)>) -> (u64, u32) {
    let top = bit_len((m.max(1) - 1) as u32).max(MIN_PARTITION_SHIFT);
    let mut shift = MIN_PARTITION_SHIFT;
    let mut best = (u64::MAX, shift);
    loop {
        let size = 1u64 << shift;
        let parts = sums.len();
        let mut total = 0u64;
        for (p, &(s, z)) in sums.iter().enumerate() {
            let len = if p + 1 == parts {
                m as u64 - size * p as u64
            } else {
                size
            };
            total += est_partition(s, len, z);
        }
        if total < best.0 {
            best = (total, shift);
        }
        if shift >= top || parts <= 1 {
            break;
        }
        // Merge pairs in place into the next level.
        let merged = parts.div_ceil(2);
        for i in 0..merged {
            let a = sums[2 * i];
            sums[i] = match sums.get(2 * i + 1) {
                Some(&b) => (a.0 + b.0, a.1 && b.1),
                None => a,
            };
        }
        sums.truncate(merged);
        shift += 1;
    }
    best
}

/// Estimated size in bits of the residual section (within a few tenths of a percent); used to
/// rank candidate predictors before sizing the winners exactly.
pub(crate) fn estimate_bits_fast(u: &[u32]) -> u64 {
    if u.is_empty() {
        return 0;
    }
    let mut sums = Vec::with_capacity(u.len().div_ceil(1 << MIN_PARTITION_SHIFT));
    fine_sums(u, &mut sums);
    best_level(u.len(), &mut sums).0 + 64
}

/// Bits of the chosen layout, and the layout.
fn plan(u: &[u32]) -> (u64, Plan) {
    let m = u.len();
    let mut sums = Vec::with_capacity(m.div_ceil(1 << MIN_PARTITION_SHIFT));
    let clip = fine_sums(u, &mut sums);
    let (_, best_shift) = best_level(m, &mut sums);
    // Exact k per partition at the chosen level, searched around the estimate.
    let size = 1usize << best_shift;
    let mut ks = Vec::with_capacity(m.div_ceil(size));
    for part in u.chunks(size) {
        let mut sum = 0u64;
        let mut any = 0u32;
        for &v in part {
            sum += u64::from(v).min(clip);
            any |= v;
        }
        if any == 0 {
            ks.push(ZERO_PARTITION);
            continue;
        }
        let len = part.len() as u64;
        let k0 = k_from_sum(sum, len);
        let mut best = (u64::MAX, k0);
        for k in k0.saturating_sub(2)..=(k0 + 1).min(MAX_K) {
            let c: u64 = part
                .iter()
                .map(|&v| u64::from((v >> k).min(COST_CAP_Q)))
                .sum::<u64>()
                + len * u64::from(k);
            if c < best.0 {
                best = (c, k);
            }
        }
        ks.push(best.1);
    }
    // Escape threshold from the histogram of quotients.
    let mut hist = [0u64; 257];
    let mut max_q = 0u32;
    for (part, &k) in u.chunks(size).zip(&ks) {
        if k == ZERO_PARTITION {
            continue;
        }
        for &v in part {
            let q = v >> k;
            max_q = max_q.max(q);
            hist[q.min(256) as usize] += 1;
        }
    }
    let total_q: u64 = hist.iter().sum();
    // cost(t) = Σ min(q, t) + count(q ≥ t) · w(t) (+ the terminating ones, the same for all t).
    let mut best = (u64::MAX, 255u32, 0u32);
    let mut below_sum = 0u64; // Σ q over q < t
    let mut below_cnt = 0u64;
    for t in 0..=255u32 {
        let above = total_q - below_cnt;
        let w = if above > 0 { bit_len(max_q - t) } else { 0 };
        let cost = below_sum + above * u64::from(t) + above * u64::from(w) + 16;
        if cost < best.0 {
            best = (cost, t, w);
        }
        below_sum += hist[t as usize] * u64::from(t);
        below_cnt += hist[t as usize];
        if max_q < t {
            break;
        }
    }
    let (_, q_esc, w_exc) = best;
    let plan = Plan {
        shift: best_shift,
        ks,
        q_esc,
        w_exc,
    };
    (exact_bits(u, &plan), plan)
}

/// Exact size in bits of a residual section written with `plan`, headers included.
fn exact_bits(u: &[u32], plan: &Plan) -> u64 {
    let size = 1usize << plan.shift;
    let mut low = 0u64;
    let mut unary = 0u64;
    let mut n_exc = 0u64;
    for (part, &k) in u.chunks(size).zip(&plan.ks) {
        if k == ZERO_PARTITION {
            continue;
        }
        low += part.len() as u64 * u64::from(k);
        for &v in part {
            let q = v >> k;
            if q >= plan.q_esc {
                n_exc += 1;
                unary += u64::from(plan.q_esc) + 1;
            } else {
                unary += u64::from(q) + 1;
            }
        }
    }
    let header = 8 * (1 + 2 + varint_len(n_exc as u32)) as u64;
    let kbits = (plan.ks.len() as u64 * u64::from(K_BITS)).div_ceil(8) * 8;
    header + kbits + (n_exc * u64::from(plan.w_exc)).div_ceil(8) * 8 + low.div_ceil(8) * 8
        + unary.div_ceil(8) * 8
}

fn varint_len(v: u32) -> usize {
    (bit_len(v).max(1) as usize).div_ceil(7)
}

/// Exact size in bytes of the residual section, and the layout that achieves it (to pass to
/// [`write`]).
pub(crate) fn planned(u: &[u32]) -> (usize, Option<Plan>) {
    if u.is_empty() {
        return (0, None);
    }
    let (bits, plan) = plan(u);
    (bits.div_ceil(8) as usize, Some(plan))
}

/// Writes a residual section for the zig-zag residuals `u` (nothing when `u` is empty), with
/// the layout from [`planned`] when the caller has it.
pub(crate) fn write(u: &[u32], plan: Option<Plan>, out: &mut Vec<u8>) {
    if u.is_empty() {
        return;
    }
    let plan = plan.unwrap_or_else(|| self::plan(u).1);
    let size = 1usize << plan.shift;
    out.push(plan.shift as u8);
    let mut w = BitWriter::new(out);
    for &k in &plan.ks {
        w.write(k, K_BITS);
    }
    w.finish();
    out.push(plan.q_esc as u8);
    out.push(plan.w_exc as u8);
    let mut exc = Vec::new();
    for (part, &k) in u.chunks(size).zip(&plan.ks) {
        if k != ZERO_PARTITION {
            exc.extend(
                part.iter()
                    .map(|&v| v >> k)
                    .filter(|&q| q >= plan.q_esc)
                    .map(|q| q - plan.q_esc),
            );
        }
    }
    bits::put_varint(out, exc.len() as u32);
    let mut w = BitWriter::new(out);
    for &e in &exc {
        w.write(e, plan.w_exc);
    }
    w.finish();
    let mut w = BitWriter::new(out);
    for (part, &k) in u.chunks(size).zip(&plan.ks) {
        if k != ZERO_PARTITION && k > 0 {
            let mask = (1u32 << k) - 1;
            for &v in part {
                w.write(v & mask, k);
            }
        }
    }
    w.finish();
    let mut w = BitWriter::new(out);
    for (part, &k) in u.chunks(size).zip(&plan.ks) {
        if k != ZERO_PARTITION {
            for &v in part {
                w.write_unary((v >> k).min(plan.q_esc));
            }
        }
    }
    w.finish();
}

/// Decodes `out.len()` residuals (un-zig-zagged) from the rest of `c`, which must end exactly
/// where the section does.
pub(crate) fn read(c: &mut Cursor<'_>, out: &mut [i32], isa: Isa) -> Result<()> {
    let m = out.len();
    if m == 0 {
        return Ok(());
    }
    let at = c.offset();
    let shift = u32::from(c.u8("partition shift")?);
    if shift > MAX_PARTITION_SHIFT {
        return Err(CodecError::corrupt("partition shift", at));
    }
    let size = 1usize << shift;
    let parts = m.div_ceil(size);
    let ksec = c.take_bits(parts as u64 * u64::from(K_BITS), "Rice parameters")?;
    let mut kr = BitReader::new(&ksec);
    let mut ks = Vec::with_capacity(parts);
    let mut low_bits = 0u64;
    for p in 0..parts {
        let k = kr.read(K_BITS, "Rice parameters")?;
        if k > MAX_K && k != ZERO_PARTITION {
            return Err(CodecError::corrupt("Rice parameter", ksec.offset()));
        }
        if k != ZERO_PARTITION {
            let len = size.min(m - p * size) as u64;
            low_bits += len * u64::from(k);
        }
        ks.push(k as u8);
    }
    kr.finish("Rice parameter padding")?;
    let at = c.offset();
    let q_esc = u32::from(c.u8("escape threshold")?);
    let w_exc = u32::from(c.u8("exception width")?);
    if w_exc > 32 {
        return Err(CodecError::corrupt("exception width", at + 1));
    }
    let at = c.offset();
    let n_exc = c.varint("exception count")? as usize;
    if n_exc > m {
        return Err(CodecError::corrupt("exception count", at));
    }
    let esec = c.take_bits(n_exc as u64 * u64::from(w_exc), "exceptions")?;
    let mut exc = vec![0u32; n_exc];
    bits::unpack(esec.bytes(), 0, w_exc, &mut exc);
    bits::check_padding(
        esec.bytes(),
        n_exc as u64 * u64::from(w_exc),
        esec.offset(),
        "exception padding",
    )?;
    let lsec = c.take_bits(low_bits, "Rice low bits")?;
    bits::check_padding(lsec.bytes(), low_bits, lsec.offset(), "low-bit padding")?;
    let usec = c.rest();
    let used = crate::dispatch::rice_quotients(isa, usec.bytes(), usec.offset(), &ks, size, q_esc, &exc, out)?;
    if used != n_exc as u64 {
        return Err(CodecError::corrupt("exception count", at));
    }
    crate::dispatch::rice_low_bits(isa, lsec.bytes(), &ks, size, out);
    Ok(())
}

/// Decodes the quotient of every residual into `out` (as `u32` bit patterns) and returns how many
/// exceptions were used. The stream must end, zero-padded, right after the last quotient.
#[inline(always)]
pub(crate) fn quotients_body(
    bytes: &[u8],
    base: usize,
    ks: &[u8],
    size: usize,
    q_esc: u32,
    exc: &[u32],
    out: &mut [i32],
) -> Result<u64> {
    let m = out.len();
    let mut unary = Unary::new(bytes, base);
    let mut next_exc = 0usize;
    for (p, &k) in ks.iter().enumerate() {
        let range = p * size..(p * size + size).min(m);
        let dst = &mut out[range];
        if u32::from(k) == ZERO_PARTITION {
            dst.fill(0);
            continue;
        }
        unary.read(dst, q_esc, u32::from(k), exc, &mut next_exc)?;
    }
    unary.finish()?;
    Ok(next_exc as u64)
}

/// Merges the low bits into the quotients in `out` and un-zig-zags.
#[inline(always)]
pub(crate) fn low_bits_body(bytes: &[u8], ks: &[u8], size: usize, out: &mut [i32]) {
    let m = out.len();
    let mut pos = 0u64;
    let mut low = [0u32; 256];
    for (p, &k) in ks.iter().enumerate() {
        let k = u32::from(k);
        if k == ZERO_PARTITION {
            continue;
        }
        let range = p * size..(p * size + size).min(m);
        for chunk in out[range].chunks_mut(low.len()) {
            let lo = &mut low[..chunk.len()];
            bits::unpack(bytes, pos, k, lo);
            pos += chunk.len() as u64 * u64::from(k);
            for (o, &l) in chunk.iter_mut().zip(lo.iter()) {
                // `q << k` cannot overflow: the unary reader bounds q by u32::MAX >> k.
                *o = bits::unzigzag(((*o as u32) << k) | l);
            }
        }
    }
}

/// Reader of the unary quotient stream, a 64-bit word at a time.
struct Unary<'a> {
    bytes: &'a [u8],
    base: usize,
    /// Index of the word in `cur`.
    word: usize,
    /// Unconsumed bits of the current word (consumed ones cleared).
    cur: u64,
    /// Bit position just after the last one consumed.
    next: u64,
}

impl<'a> Unary<'a> {
    fn new(bytes: &'a [u8], base: usize) -> Self {
        Self {
            bytes,
            base,
            word: 0,
            cur: bits::load_u64_padded(bytes, 0),
            next: 0,
        }
    }

    fn n_words(&self) -> usize {
        self.bytes.len().div_ceil(8)
    }

    /// Reads `dst.len()` quotients.
    #[inline(always)]
    fn read(
        &mut self,
        dst: &mut [i32],
        q_esc: u32,
        k: u32,
        exc: &[u32],
        next_exc: &mut usize,
    ) -> Result<()> {
        let q_max = u64::from(u32::MAX >> k);
        // Quotients below `lim` need no escape and no overflow check.
        let lim = u64::from(q_esc).min(q_max + 1);
        let n_words = self.n_words();
        // Work on locals so the state stays in registers.
        let (mut word, mut cur, mut next) = (self.word, self.cur, self.next);
        let mut i = 0;
        while i < dst.len() {
            if cur == 0 {
                word += 1;
                if word >= n_words {
                    return Err(CodecError::truncated(
                        "Rice quotients",
                        self.base + self.bytes.len(),
                    ));
                }
                cur = bits::load_u64_padded(self.bytes, word * 8);
                continue;
            }
            let one = word as u64 * 64 + u64::from(cur.trailing_zeros());
            let mut q = one - next;
            next = one + 1;
            cur &= cur - 1;
            if q >= lim {
                self.next = next;
                q = self.slow(q, q_esc, q_max, exc, next_exc)?;
            }
            dst[i] = q as u32 as i32;
            i += 1;
        }
        (self.word, self.cur, self.next) = (word, cur, next);
        Ok(())
    }

    #[cold]
    fn slow(
        &self,
        q: u64,
        q_esc: u32,
        q_max: u64,
        exc: &[u32],
        next_exc: &mut usize,
    ) -> Result<u64> {
        let at = self.base + (self.next / 8) as usize;
        let q = if q == u64::from(q_esc) {
            let e = *exc
                .get(*next_exc)
                .ok_or_else(|| CodecError::corrupt("exception count", at))?;
            *next_exc += 1;
            q + u64::from(e)
        } else if q > u64::from(q_esc) {
            return Err(CodecError::corrupt("Rice quotient above escape", at));
        } else {
            q
        };
        if q > q_max {
            return Err(CodecError::corrupt("Rice value overflow", at));
        }
        Ok(q)
    }

    /// Checks the stream ends with zero padding right after the last quotient.
    fn finish(&self) -> Result<()> {
        bits::check_padding(self.bytes, self.next, self.base, "Rice quotient padding")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(u: &[u32]) -> usize {
        let mut out = Vec::new();
        write(u, None, &mut out);
        assert_eq!(out.len(), planned(u).0, "estimate is exact");
        let mut c = Cursor::new(&out, 0);
        let mut got = vec![0i32; u.len()];
        read(&mut c, &mut got, Isa::detect()).unwrap();
        let mut c = Cursor::new(&out, 0);
        let mut got2 = vec![0i32; u.len()];
        read(&mut c, &mut got2, Isa::baseline()).unwrap();
        assert_eq!(got, got2);
        let want: Vec<i32> = u.iter().map(|&v| bits::unzigzag(v)).collect();
        assert_eq!(got, want);
        // Every strict prefix is truncated.
        for cut in 0..out.len() {
            let mut c = Cursor::new(&out[..cut], 0);
            let e = read(&mut c, &mut got, Isa::detect()).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::Truncated, "cut {cut} of {}", out.len());
        }
        out.len()
    }

    #[test]
    fn round_trips_small_and_odd_sections() {
        round_trip(&[]);
        round_trip(&[0]);
        round_trip(&[5]);
        round_trip(&[u32::MAX]);
        round_trip(&[0; 100]);
        round_trip(&[u32::MAX; 33]);
        let mixed: Vec<u32> = (0..1000u32)
            .map(|i| if i % 97 == 0 { 1 << 27 } else { (i * 37) % 11 })
            .collect();
        round_trip(&mixed);
    }

    #[test]
    fn zero_runs_cost_almost_nothing() {
        let mut u = vec![0u32; 4096];
        u[100] = 3;
        let len = round_trip(&u);
        assert!(len < 64, "{len} bytes");
    }

    #[test]
    fn outliers_are_escaped() {
        let mut u: Vec<u32> = (0..4096u32).map(|i| (i * 7) % 16).collect();
        u[2000] = u32::MAX;
        let len = round_trip(&u);
        // ~ 4096 × (3 low + ~2 unary) bits, plus a few bytes for the escape.
        assert!(len < 4096 * 6 / 8, "{len} bytes");
    }
}
