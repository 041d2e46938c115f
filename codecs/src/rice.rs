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
    /// Escaped quotients the layout leads to (known from the planning histogram).
    n_exc: u64,
}

/// Rice parameter minimising `len·(k+1) + Σ(u >> k)` estimated from the sum of `len` values.
#[inline(always)]
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
#[inline(always)]
fn est_bits(sum: u64, len: u64, k: u32) -> u64 {
    let q = if k == 0 {
        sum
    } else {
        (sum >> k).saturating_sub(len / 2)
    };
    len * (u64::from(k) + 1) + q
}

#[inline(always)]
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
#[inline(always)]
fn fine_sums(u: &[u32], sums: &mut Vec<(u64, bool)>) -> u64 {
    let total: u64 = u.iter().map(|&v| u64::from(v)).sum();
    let k_mean = k_from_sum(total, u.len().max(1) as u64);
    let clip = u64::from(COST_CAP_Q) << k_mean;
    let clip32 = clip.min(u64::from(u32::MAX)) as u32;
    let fine = 1usize << MIN_PARTITION_SHIFT;
    sums.clear();
    sums.extend(u.chunks(fine).map(|part| {
        let mut s = 0u64;
        let mut any = 0u32;
        for &v in part {
            // min in u32 (the same value: v < 2^32), which vectorises.
            s += u64::from(v.min(clip32));
            any |= v;
        }
        (s, any == 0)
    }));
    clip
}

/// Estimated bits and partition shift of the cheapest level, from the finest sums.
#[inline(always)]
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
pub(crate) fn estimate_bits_fast(u: &[u32], isa: Isa) -> u64 {
    crate::dispatch::rice_estimate(isa, u)
}

/// Body of [`estimate_bits_fast`].
#[inline(always)]
pub(crate) fn estimate_body(u: &[u32]) -> u64 {
    if u.is_empty() {
        return 0;
    }
    let mut sums = Vec::with_capacity(u.len().div_ceil(1 << MIN_PARTITION_SHIFT));
    fine_sums(u, &mut sums);
    best_level(u.len(), &mut sums).0 + 64
}

/// Bits of the chosen layout, and the layout.
#[inline(always)]
pub(crate) fn plan(u: &[u32]) -> (u64, Plan) {
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
        let clip32 = clip.min(u64::from(u32::MAX)) as u32;
        for &v in part {
            sum += u64::from(v.min(clip32));
            any |= v;
        }
        if any == 0 {
            ks.push(ZERO_PARTITION);
            continue;
        }
        let len = part.len() as u64;
        let k0 = k_from_sum(sum, len);
        // The four candidates k0-2..=k0+1 (clamped, so duplicates tie and the smaller k wins)
        // costed in one pass. Each term is at most COST_CAP_Q and a block holds at most 2^20
        // values, so u32 sums cannot overflow.
        let (k_lo, k_hi) = (k0.saturating_sub(2), (k0 + 1).min(MAX_K));
        let kk: [u32; 4] = std::array::from_fn(|j| (k_lo + j as u32).min(k_hi));
        let mut acc = [0u32; 4];
        for &v in part {
            for j in 0..4 {
                acc[j] += (v >> kk[j]).min(COST_CAP_Q);
            }
        }
        let mut best = (u64::MAX, k0);
        for j in 0..4 {
            let c = u64::from(acc[j]) + len * u64::from(kk[j]);
            if c < best.0 {
                best = (c, kk[j]);
            }
        }
        ks.push(best.1);
    }
    // Escape threshold from the histogram of quotients. Most quotients are 0–2, so one
    // histogram would make every increment wait on the previous one to the same bucket: four
    // interleaved histograms, summed after (counts fit u32: at most 2^20 values).
    let mut hists = [[0u32; 257]; 4];
    let mut max_q = 0u32;
    let mut low = 0u64;
    for (part, &k) in u.chunks(size).zip(&ks) {
        if k == ZERO_PARTITION {
            continue;
        }
        low += part.len() as u64 * u64::from(k);
        let mut pmax = 0u32;
        let mut quads = part.chunks_exact(4);
        for q4 in &mut quads {
            for (h, &v) in hists.iter_mut().zip(q4) {
                let q = v >> k;
                pmax = pmax.max(q);
                h[q.min(256) as usize] += 1;
            }
        }
        for &v in quads.remainder() {
            let q = v >> k;
            pmax = pmax.max(q);
            hists[0][q.min(256) as usize] += 1;
        }
        max_q = max_q.max(pmax);
    }
    let hist: [u64; 257] =
        std::array::from_fn(|q| hists.iter().map(|h| u64::from(h[q])).sum::<u64>());
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
    let mut plan = Plan {
        shift: best_shift,
        ks,
        q_esc,
        w_exc,
        n_exc: 0,
    };
    // Exact size from the histogram (q_esc ≤ 255, so the last bucket is all escapes).
    let mut unary = 0u64;
    let mut n_exc = 0u64;
    for (q, &h) in hist.iter().enumerate() {
        let q = q as u32;
        if q >= q_esc {
            n_exc += h;
        }
        unary += h * (u64::from(q.min(q_esc)) + 1);
    }
    plan.n_exc = n_exc;
    let bits = section_bits(&plan, low, unary, n_exc);
    debug_assert_eq!(bits, exact_bits(u, &plan));
    (bits, plan)
}

/// Size in bits of a section with these totals, headers included.
fn section_bits(plan: &Plan, low: u64, unary: u64, n_exc: u64) -> u64 {
    let header = 8 * (1 + 2 + varint_len(n_exc as u32)) as u64;
    let kbits = (plan.ks.len() as u64 * u64::from(K_BITS)).div_ceil(8) * 8;
    header
        + kbits
        + (n_exc * u64::from(plan.w_exc)).div_ceil(8) * 8
        + low.div_ceil(8) * 8
        + unary.div_ceil(8) * 8
}

/// Exact size in bits of a residual section written with `plan`, headers included (the slow
/// reference for the histogram-based count in [`plan`]).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
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
    section_bits(plan, low, unary, n_exc)
}

fn varint_len(v: u32) -> usize {
    (bit_len(v).max(1) as usize).div_ceil(7)
}

/// Exact size in bytes of the residual section, and the layout that achieves it (to pass to
/// [`write`]).
pub(crate) fn planned(u: &[u32], isa: Isa) -> (usize, Option<Plan>) {
    if u.is_empty() {
        return (0, None);
    }
    let (bits, plan) = crate::dispatch::rice_plan(isa, u);
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
    let mut exc = Vec::with_capacity(plan.n_exc as usize);
    // The pass over every quotient only when the plan counted escapes.
    for (part, &k) in u.chunks(size).zip(&plan.ks) {
        if k != ZERO_PARTITION && plan.n_exc > 0 {
            exc.extend(
                part.iter()
                    .map(|&v| v >> k)
                    .filter(|&q| q >= plan.q_esc)
                    .map(|q| q - plan.q_esc),
            );
        }
    }
    debug_assert_eq!(exc.len() as u64, plan.n_exc);
    bits::put_varint(out, exc.len() as u32);
    let mut w = BitWriter::new(out);
    for &e in &exc {
        w.write(e, plan.w_exc);
    }
    w.finish();
    // The writer's state is one serial chain per call, so small fields go in twos and fours
    // (the same bits in the same order).
    let mut w = BitWriter::new(out);
    for (part, &k) in u.chunks(size).zip(&plan.ks) {
        if k != ZERO_PARTITION && k > 0 {
            let mask = (1u32 << k) - 1;
            if k <= 8 {
                let mut quads = part.chunks_exact(4);
                for q in &mut quads {
                    let v = (q[0] & mask)
                        | (q[1] & mask) << k
                        | (q[2] & mask) << (2 * k)
                        | (q[3] & mask) << (3 * k);
                    w.write(v, 4 * k);
                }
                for &v in quads.remainder() {
                    w.write(v & mask, k);
                }
            } else if k <= 16 {
                let mut pairs = part.chunks_exact(2);
                for p in &mut pairs {
                    w.write((p[0] & mask) | (p[1] & mask) << k, 2 * k);
                }
                for &v in pairs.remainder() {
                    w.write(v & mask, k);
                }
            } else {
                for &v in part {
                    w.write(v & mask, k);
                }
            }
        }
    }
    w.finish();
    let mut w = BitWriter::new(out);
    let q_esc = plan.q_esc;
    for (part, &k) in u.chunks(size).zip(&plan.ks) {
        if k != ZERO_PARTITION {
            let mut pairs = part.chunks_exact(2);
            for p in &mut pairs {
                let (a, b) = ((p[0] >> k).min(q_esc), (p[1] >> k).min(q_esc));
                if a < 15 && b < 15 {
                    // `a` zeros, a one, `b` zeros, a one: at most 32 bits.
                    w.write((1 << a) | (1 << (a + 1 + b)), a + b + 2);
                } else {
                    w.write_unary(a);
                    w.write_unary(b);
                }
            }
            for &v in pairs.remainder() {
                w.write_unary((v >> k).min(q_esc));
            }
        }
    }
    w.finish();
}

/// Decodes `out.len()` residuals (un-zig-zagged) from the rest of `c`, which must end exactly
/// where the section does.
pub(crate) fn read(
    c: &mut Cursor<'_>,
    out: &mut [i32],
    isa: Isa,
    pos: &mut Vec<u32>,
) -> Result<()> {
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
    let ones: usize = ks
        .iter()
        .enumerate()
        .filter(|&(_, &k)| u32::from(k) != ZERO_PARTITION)
        .map(|(p, _)| size.min(m - p * size))
        .sum();
    crate::dispatch::unary_quotients(isa, usec.bytes(), usec.offset(), ones, pos)?;
    let sec = Section {
        low: lsec.bytes(),
        ks: &ks,
        size,
        q_esc,
        exc: &exc,
        base: usec.offset(),
    };
    let used = crate::dispatch::rice_merge(isa, pos, &sec, out)?;
    if used != n_exc as u64 {
        return Err(CodecError::corrupt("exception count", at));
    }
    Ok(())
}

/// Spare entries at the end of the quotients buffer: the byte-table scan writes up to 63 + 8
/// positions past the last one it needs before it stops, the AVX-512 scan up to 15.
pub(crate) const POSITION_SLACK: usize = 72;
/// Longest valid quotient stream in bytes: every quotient is at most 255 zeros and a one.
pub(crate) const MAX_UNARY_BYTES: usize = crate::block::MAX_BLOCK_SAMPLES * 256 / 8;

/// For each byte value, the bit indices of its one bits in increasing order (unused entries 0).
/// Stored as `u32` (8 KiB) so a byte's entries are one vector load and add.
static BYTE_ONES: [[u32; 8]; 256] = {
    let mut t = [[0u32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let (mut i, mut k) = (0, 0);
        while i < 8 {
            if (b >> i) & 1 == 1 {
                t[b][k] = i as u32;
                k += 1;
            }
            i += 1;
        }
        b += 1;
    }
    t
};

/// Bit positions of the first `ones` one bits of the quotient stream, into `pos[..ones]`
/// (`pos` holds at least `ones + POSITION_SLACK` entries); returns how many ones it found
/// (`ones` or more, or fewer when the stream ends first). The caller checks the stream.
///
/// Byte by byte through a table: each byte writes its eight table entries plus the byte's bit
/// offset unconditionally (one widening load, add and store; entries past the byte's ones are
/// overwritten by the next byte or land in the slack) and advances by its popcount, so the scan
/// has no branch per quotient.
#[inline(always)]
pub(crate) fn positions_body(bytes: &[u8], ones: usize, pos: &mut [u32]) -> usize {
    let flatten = |pos: &mut [u32], w: u64, at: u32, cnt: &mut usize| {
        if w == 0 {
            return;
        }
        let mut c = *cnt;
        for (i, &b) in w.to_le_bytes().iter().enumerate() {
            let e = &BYTE_ONES[usize::from(b)];
            let slot: &mut [u32; 8] = (&mut pos[c..c + 8]).try_into().expect("8 slots");
            let at = at.wrapping_add(8 * i as u32);
            let mut v = *e;
            for o in &mut v {
                *o = o.wrapping_add(at);
            }
            *slot = v;
            c += b.count_ones() as usize;
        }
        *cnt = c;
    };
    let mut cnt = 0usize;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0u32;
    let mut scanned_all = true;
    for w in &mut words {
        if cnt >= ones {
            scanned_all = false;
            break;
        }
        flatten(
            pos,
            u64::from_le_bytes(w.try_into().expect("8 bytes")),
            at,
            &mut cnt,
        );
        at = at.wrapping_add(64);
    }
    if cnt < ones && scanned_all {
        let rest = words.remainder();
        if !rest.is_empty() {
            flatten(pos, bits::load_u64_padded(rest, 0), at, &mut cnt);
        }
    }
    cnt
}

/// Turns positions of one bits (`pos[i]`, increasing) into the zeros before each one, in place:
/// `q[i] = pos[i] − pos[i−1] − 1`, with the stream starting at bit 0.
#[inline(always)]
pub(crate) fn quotients_from_positions(pos: &mut [u32]) {
    // `pos[−1] = −1` in wrapping arithmetic, so `q[0] = pos[0]`.
    let mut prev = u32::MAX;
    let mut chunks = pos.chunks_exact_mut(8);
    for c in &mut chunks {
        let c: &mut [u32; 8] = c.try_into().expect("8 positions");
        let a = *c;
        let mut b = [prev; 8];
        b[1..].copy_from_slice(&a[..7]);
        for j in 0..8 {
            c[j] = a[j].wrapping_sub(b[j]).wrapping_sub(1);
        }
        prev = a[7];
    }
    for v in chunks.into_remainder() {
        let p = *v;
        *v = p.wrapping_sub(prev).wrapping_sub(1);
        prev = p;
    }
}

/// A residual section's parts besides its quotients, as `read` parsed them.
#[derive(Clone, Copy)]
pub(crate) struct Section<'a> {
    /// The low-bit stream.
    pub(crate) low: &'a [u8],
    /// Rice parameter per partition (`ZERO_PARTITION` for all-zero ones).
    pub(crate) ks: &'a [u8],
    /// Partition length.
    pub(crate) size: usize,
    /// Escape threshold.
    pub(crate) q_esc: u32,
    /// Exception values, in order.
    pub(crate) exc: &'a [u32],
    /// Block offset of the quotient stream, for errors.
    pub(crate) base: usize,
}

/// Merges quotients, escapes and low bits into residuals, un-zig-zagged, partition by
/// partition. `qs` holds the unary stream's quotients (zeros before each one), non-zero
/// partitions only. Returns the number of exceptions used.
///
/// The merger (portable or vector) stops before a group holding a quotient at the escape
/// threshold or one that would overflow; that group is resolved here, and the merger resumes.
#[inline(always)]
pub(crate) fn merge_body<L: crate::dispatch::LowMerge>(
    lows: L,
    qs: &[u32],
    sec: &Section<'_>,
    out: &mut [i32],
) -> Result<u64> {
    let Section {
        low,
        ks,
        size,
        q_esc,
        exc,
        base,
    } = *sec;
    let m = out.len();
    let mut pi = 0usize;
    let mut lbit = 0u64;
    let mut e = 0usize;
    for (p, &k) in ks.iter().enumerate() {
        let k = u32::from(k);
        let dst = &mut out[p * size..(p * size + size).min(m)];
        if k == ZERO_PARTITION {
            dst.fill(0);
            continue;
        }
        let len = dst.len();
        let q = &qs[pi..pi + len];
        pi += len;
        let q_max = u32::MAX >> k;
        let lim = q_esc.min(q_max.saturating_add(1));
        // Merge runs of values below `lim` at full speed; a group holding an escape (or an
        // overflowing quotient) is resolved here, a few values at a time.
        let mut i = 0;
        while i < len {
            // With `lim = 0` (an escape threshold of 0) every value is an escape and the
            // merger, which takes `lim ≥ 1`, has nothing to do.
            if lim > 0 {
                i += lows.merge(
                    &q[i..],
                    low,
                    lbit + i as u64 * u64::from(k),
                    k,
                    lim,
                    &mut dst[i..],
                );
            }
            if i == len {
                break;
            }
            let g = (len - i).min(8);
            let mut t = [0u32; 8];
            for (r, &q) in t.iter_mut().zip(&q[i..i + g]) {
                let q = if q < lim {
                    u64::from(q)
                } else if q == q_esc {
                    let x = *exc
                        .get(e)
                        .ok_or_else(|| CodecError::corrupt("exception count", base))?;
                    e += 1;
                    u64::from(q) + u64::from(x)
                } else if q > q_esc {
                    return Err(CodecError::corrupt("Rice quotient above escape", base));
                } else {
                    u64::from(q)
                };
                if q > u64::from(q_max) {
                    return Err(CodecError::corrupt("Rice value overflow", base));
                }
                *r = q as u32;
            }
            let at = lbit + i as u64 * u64::from(k);
            let done = merge_portable(&t[..g], low, at, k, u32::MAX, &mut dst[i..i + g]);
            debug_assert_eq!(done, g);
            i += g;
        }
        lbit += len as u64 * u64::from(k);
    }
    Ok(e as u64)
}

/// The portable merge of quotients `q` and low bits into `dst`, up to the first quotient of
/// `lim` or more; returns how many values it merged.
#[inline(always)]
pub(crate) fn merge_portable(
    q: &[u32],
    low: &[u8],
    lbit: u64,
    k: u32,
    lim: u32,
    dst: &mut [i32],
) -> usize {
    let n = q.iter().position(|&q| q >= lim).unwrap_or(q.len());
    for (d, &q) in dst[..n].iter_mut().zip(&q[..n]) {
        *d = q as i32;
    }
    merge_low(low, lbit, k, &mut dst[..n]);
    n
}

/// `dst[i] = unzigzag((dst[i] << k) | low_i)` for the `k`-bit values starting at bit `lbit`.
#[inline(always)]
pub(crate) fn merge_low(low: &[u8], lbit: u64, k: u32, dst: &mut [i32]) {
    if lbit.is_multiple_of(8) {
        macro_rules! dispatch {
            ($($k:literal)*) => {
                match k {
                    0 => {
                        for d in dst.iter_mut() {
                            *d = bits::unzigzag(*d as u32);
                        }
                        return;
                    }
                    $($k => return merge_aligned::<$k>(low, (lbit / 8) as usize, dst),)*
                    _ => {}
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30);
    }
    // Unaligned start (only after partitions of fewer than 8 values): the generic unpacker.
    let mut tmp = [0u32; 64];
    let mut bit = lbit;
    for chunk in dst.chunks_mut(64) {
        let t = &mut tmp[..chunk.len()];
        bits::unpack(low, bit, k, t);
        bit += chunk.len() as u64 * u64::from(k);
        for (d, &l) in chunk.iter_mut().zip(t.iter()) {
            *d = bits::unzigzag(((*d as u32) << k) | l);
        }
    }
}

/// [`merge_low`] for a byte-aligned start and a constant width: eight values span exactly `K`
/// bytes, so every load offset and shift below is a constant.
#[inline(always)]
fn merge_aligned<const K: u32>(low: &[u8], start: usize, dst: &mut [i32]) {
    let mask = (1u64 << K) - 1;
    let kb = K as usize;
    let mut groups = dst.chunks_exact_mut(8);
    let mut at = start;
    for g in &mut groups {
        if K <= 8 {
            // Eight values of at most 8 bits: one 8-byte load holds the whole group.
            if let Some(win) = low.get(at..at + 8) {
                let w = u64::from_le_bytes(win.try_into().expect("8"));
                for (j, d) in g.iter_mut().enumerate() {
                    let l = ((w >> (j * kb)) & mask) as u32;
                    *d = bits::unzigzag(((*d as u32) << K) | l);
                }
                at += kb;
                continue;
            }
        }
        match low.get(at..at + kb + 8) {
            Some(win) => {
                for (j, d) in g.iter_mut().enumerate() {
                    let bit = j * kb;
                    let w = u64::from_le_bytes(win[bit / 8..bit / 8 + 8].try_into().expect("8"));
                    let l = ((w >> (bit % 8)) & mask) as u32;
                    *d = bits::unzigzag(((*d as u32) << K) | l);
                }
            }
            None => {
                for (j, d) in g.iter_mut().enumerate() {
                    let bit = j * kb;
                    let w = bits::load_u64_padded(low, at + bit / 8);
                    let l = ((w >> (bit % 8)) & mask) as u32;
                    *d = bits::unzigzag(((*d as u32) << K) | l);
                }
            }
        }
        at += kb;
    }
    for (j, d) in groups.into_remainder().iter_mut().enumerate() {
        let bit = j * kb;
        let w = bits::load_u64_padded(low, at + bit / 8);
        let l = ((w >> (bit % 8)) & mask) as u32;
        *d = bits::unzigzag(((*d as u32) << K) | l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Mostly small residuals with some medium ones and rare outliers (escapes): the
        /// planned size is the written size, and both decode paths read the values back.
        #[test]
        fn arbitrary_sections_round_trip(u in prop::collection::vec(
            prop_oneof![8 => 0u32..16, 2 => 0u32..5000, 1 => any::<u32>()],
            0..1500,
        )) {
            round_trip(&u);
        }

        /// Damaged sections (bytes flipped or dropped): every code path (AVX-512 scan, AVX2
        /// merge, portable) reads the same values or refuses with the same kind of error.
        #[test]
        fn every_path_agrees_on_damaged_sections(
            u in prop::collection::vec(
                prop_oneof![8 => 0u32..16, 2 => 0u32..5000, 1 => any::<u32>()],
                1..700,
            ),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let mut bytes = Vec::new();
            write(&u, None, &mut bytes);
            for (at, x) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= x;
            }
            if do_cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let mut first = None;
            for isa in paths() {
                let mut c = Cursor::new(&bytes, 0);
                let mut got = vec![0i32; u.len()];
                let r = read(&mut c, &mut got, isa, &mut Vec::new()).map(|()| got).map_err(|e| e.kind);
                match &first {
                    None => first = Some(r),
                    Some(f) => prop_assert_eq!(f, &r),
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Unary streams with any gaps, short ones and long ones around the AVX-512 scan's
        /// byte-position limits (128 and 256 zeros, three zero words): every path reads the
        /// same quotients and end, or the same error, asked for any number of codes.
        #[test]
        fn unary_scans_agree_on_any_gaps(
            gaps in prop::collection::vec(
                prop_oneof![8 => 0u32..4, 2 => 0u32..64, 2 => 120u32..300, 1 => 300u32..1000],
                0..400,
            ),
            extra in 0usize..3,
            junk in any::<u8>(),
            pad_junk in any::<bool>(),
        ) {
            let mut bytes = Vec::new();
            let mut w = BitWriter::new(&mut bytes);
            for &g in &gaps {
                w.write_unary(g);
            }
            w.finish();
            if pad_junk {
                bytes.push(junk);
            }
            let asked = gaps.len().saturating_sub(extra);
            let mut first = None;
            for isa in paths() {
                let mut qs = Vec::new();
                let r = crate::dispatch::unary_quotients(isa, &bytes, 0, asked, &mut qs)
                    .map(|()| qs[..asked].to_vec())
                    .map_err(|e| (e.kind, e.message));
                match &first {
                    None => first = Some(r),
                    Some(f) => prop_assert_eq!(f, &r, "{:?}", isa),
                }
            }
            if extra == 0 && !pad_junk {
                prop_assert_eq!(first.unwrap().unwrap(), gaps);
            }
        }
    }

    /// The decode paths this CPU can run: detected, without AVX-512, portable.
    fn paths() -> [Isa; 3] {
        [
            Isa::detect(),
            Isa::detect().without_avx512(),
            Isa::baseline(),
        ]
    }

    fn round_trip(u: &[u32]) -> usize {
        let mut out = Vec::new();
        write(u, None, &mut out);
        assert_eq!(out.len(), planned(u, Isa::detect()).0, "estimate is exact");
        let want: Vec<i32> = u.iter().map(|&v| bits::unzigzag(v)).collect();
        for isa in paths() {
            let mut c = Cursor::new(&out, 0);
            let mut got = vec![0i32; u.len()];
            read(&mut c, &mut got, isa, &mut Vec::new()).unwrap();
            assert_eq!(got, want, "{isa:?}");
            // Every strict prefix is truncated.
            for cut in 0..out.len() {
                let mut c = Cursor::new(&out[..cut], 0);
                let e = read(&mut c, &mut got, isa, &mut Vec::new()).unwrap_err();
                assert_eq!(
                    e.kind,
                    crate::ErrorKind::Truncated,
                    "cut {cut} of {} ({isa:?})",
                    out.len()
                );
            }
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

    /// An escape threshold of 0 (every quotient escaped) is valid, if wasteful: every path
    /// must resolve every value through the exceptions.
    #[test]
    fn a_zero_escape_threshold_escapes_every_value() {
        let u: Vec<u32> = (0..300u32).map(|i| (i * 7919) % 1000).collect();
        let (_, mut p) = plan(&u);
        let size = 1usize << p.shift;
        p.n_exc = u
            .chunks(size)
            .zip(&p.ks)
            .filter(|&(_, &k)| k != ZERO_PARTITION)
            .map(|(part, _)| part.len() as u64)
            .sum();
        p.q_esc = 0;
        p.w_exc = 32;
        let mut out = Vec::new();
        write(&u, Some(p), &mut out);
        let want: Vec<i32> = u.iter().map(|&v| bits::unzigzag(v)).collect();
        for isa in paths() {
            let mut got = vec![0i32; u.len()];
            read(&mut Cursor::new(&out, 0), &mut got, isa, &mut Vec::new()).unwrap();
            assert_eq!(got, want, "{isa:?}");
        }
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
