//! Value transforms applied before prediction (FORMAT.md §4.1): the predictor works on `y`, and
//! the decoder maps `y` back to samples `x`.
//!
//! * Affine: `x = offset + scale·y`. `scale` is the greatest common divisor of the block's steps
//!   (BioSemi files store multiples of 4, some status channels multiples of 1365); `offset` centres
//!   `y` on zero so LPC sums stay small.
//! * Table: `x = table[y]` for a strictly increasing table. Recorders that rescale a coarser ADC
//!   into the 16-bit range produce values on a lattice with a non-integer step (one sleep
//!   recording steps by 40.96, 27.3, 22.7 … units); differences of such values are spread over
//!   two neighbouring integers and the low bits look random, so neither a divisor nor a plain
//!   predictor sees the structure. In table index space the signal is an ordinary smooth
//!   signal again. The table is stored either as its parameters, when the encoder finds the exact
//!   lattice `offset + ⌊(i·num + phase) / den⌋`, or as Rice-coded gaps.

use crate::SampleWidth;
use crate::bits::{self, BitReader, BitWriter, Cursor};
use crate::dispatch::Isa;
use crate::error::{CodecError, Result};

/// Transform kind codes.
const KIND_AFFINE: u8 = 0;
const KIND_TABLE: u8 = 1;
const KIND_LATTICE: u8 = 2;
/// Largest lattice denominator the encoder searches.
const MAX_LATTICE_DEN: u64 = 1 << 16;

/// A block's value transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transform {
    /// `x = offset + scale·y`.
    Affine {
        /// Added after scaling.
        offset: i32,
        /// At least 1.
        scale: u32,
    },
    /// `x = values[y]`.
    Table {
        /// Strictly increasing.
        values: Vec<i32>,
        /// Set when `values` is exactly a lattice, which is then stored instead of the values.
        lattice: Option<Lattice>,
    },
}

/// `values[i] = offset + ⌊(i·num + phase) / den⌋`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lattice {
    offset: i32,
    num: u32,
    den: u32,
    phase: u32,
}

impl Lattice {
    fn value(&self, i: u64) -> i64 {
        i64::from(self.offset)
            + ((i * u64::from(self.num) + u64::from(self.phase)) / u64::from(self.den)) as i64
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Candidate transforms for `x` (non-empty), the affine one first.
pub(crate) fn candidates(x: &[i32]) -> Vec<Transform> {
    let (min, max) = x
        .iter()
        .fold((i32::MAX, i32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let x0 = x[0];
    let mut g = 0u32;
    for &v in x {
        let d = v.abs_diff(x0);
        // Most steps are multiples of the divisor found so far: test that with a mask (powers
        // of two, the common case) before paying for Euclid's divisions.
        let divides = if g.is_power_of_two() {
            d & (g - 1) == 0
        } else {
            g != 0 && d % g == 0
        };
        if divides {
            continue;
        }
        g = gcd(g, d);
        if g == 1 {
            break;
        }
    }
    let scale = g.max(1);
    // Centre y on zero: the lattice point nearest the middle of the range.
    let mid = (i64::from(min) + i64::from(max)) / 2;
    let steps = (mid - i64::from(x0)).div_euclid(i64::from(scale));
    let offset = (i64::from(x0) + steps * i64::from(scale)) as i32;
    let mut out = vec![Transform::Affine { offset, scale }];
    if let Some(t) = table_candidate(x, min, max, scale) {
        out.push(t);
    }
    out
}

/// A value table, when the block's distinct values are sparse on their range.
fn table_candidate(x: &[i32], min: i32, max: i32, scale: u32) -> Option<Transform> {
    let n = x.len();
    let range = u64::from(max.abs_diff(min));
    if n < 16 || range < 4 * u64::from(scale) {
        return None;
    }
    // Cheap rejection: dense signals show many distinct values early on.
    let probe = &x[..n.min(512)];
    let mut p: Vec<i32> = Vec::new();
    distinct_sorted(probe, &mut p);
    let probe_span = u64::from(p[p.len() - 1].abs_diff(p[0])) + 1;
    if p.len() > 8 && (p.len() as u64) * 2 * u64::from(scale) > probe_span {
        return None;
    }
    if p.len() > 8 {
        // Dense on the divisor's lattice: the typical gap is the divisor itself.
        let mut gaps: Vec<u32> = p.windows(2).map(|w| w[1].abs_diff(w[0])).collect();
        let mid = gaps.len() / 2;
        if *gaps.select_nth_unstable(mid).1 < 2 * scale {
            return None;
        }
    }
    let mut v = Vec::new();
    distinct_sorted(x, &mut v);
    let d = v.len();
    if d < 2 || (d as u64 - 1) * 2 * u64::from(scale) > range {
        return None;
    }
    // Typical step: the median gap. Each gap is then split into round(gap / step) steps, so the
    // table index grows in proportion to the value.
    let mut gaps: Vec<u32> = v.windows(2).map(|w| w[1].abs_diff(w[0])).collect();
    let mid = gaps.len() / 2;
    let step = f64::from(*gaps.select_nth_unstable(mid).1);
    if step < 2.0 {
        return None;
    }
    let mut values = Vec::with_capacity(d);
    let mut index = Vec::with_capacity(d); // table index of each distinct value
    values.push(v[0]);
    index.push(0u64);
    for w in v.windows(2) {
        let gap = f64::from(w[1].abs_diff(w[0]));
        let m = ((gap / step).round() as u64).max(1);
        for j in 1..m {
            values.push(w[0] + (gap * j as f64 / m as f64).round() as i32);
        }
        values.push(w[1]);
        index.push(values.len() as u64 - 1);
        if values.len() > n {
            return None;
        }
    }
    let lattice = find_lattice(&v, &index);
    let values = match lattice {
        Some(l) => (0..values.len() as u64)
            .map(|i| l.value(i) as i32)
            .collect(),
        None => values,
    };
    Some(Transform::Table { values, lattice })
}

/// The distinct values of `x` in increasing order, into `out` (cleared first).
///
/// A bitmap over the value range when that is at most 64 bits per sample (always for 16-bit
/// blocks of a few thousand samples): one pass to mark, one over the words to collect, instead
/// of an `n log n` sort.
fn distinct_sorted(x: &[i32], out: &mut Vec<i32>) {
    out.clear();
    let Some((min, max)) = x
        .iter()
        .fold(None, |acc: Option<(i32, i32)>, &v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
    else {
        return;
    };
    let span = max.abs_diff(min) as usize + 1;
    if span.div_ceil(64) > x.len().max(64) {
        out.extend_from_slice(x);
        out.sort_unstable();
        out.dedup();
        return;
    }
    let mut words = vec![0u64; span.div_ceil(64)];
    for &v in x {
        let i = v.abs_diff(min) as usize;
        words[i / 64] |= 1 << (i % 64);
    }
    for (wi, &w) in words.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            let b = w.trailing_zeros() as usize;
            // `wi·64 + b` < span ≤ 2^32, and `min + that` ≤ `max`.
            out.push((i64::from(min) + (wi * 64 + b) as i64) as i32);
            w &= w - 1;
        }
    }
}

/// Looks for `num/den` and `phase` with `v[i] = v[0] + ⌊(index[i]·num + phase)/den⌋` for all `i`.
fn find_lattice(v: &[i32], index: &[u64]) -> Option<Lattice> {
    let last = *index.last()?;
    if last == 0 {
        return None;
    }
    let span = f64::from(v[v.len() - 1].abs_diff(v[0]));
    let step = span / last as f64;
    // Continued-fraction convergents of the fitted step, and their neighbours.
    let (mut h0, mut h1, mut k0, mut k1) = (0u64, 1u64, 1u64, 0u64);
    let mut frac = step;
    for _ in 0..24 {
        let a = frac.floor();
        let a_u = a as u64;
        let (h2, k2) = (
            a_u.checked_mul(h1)?.checked_add(h0)?,
            a_u.checked_mul(k1)?.checked_add(k0)?,
        );
        if k2 > MAX_LATTICE_DEN {
            break;
        }
        for num in [h2.saturating_sub(1), h2, h2 + 1] {
            if let Some(l) = check_lattice(v, index, num, k2) {
                return Some(l);
            }
        }
        (h0, h1, k0, k1) = (h1, h2, k1, k2);
        let rem = frac - a;
        if rem < 1e-12 {
            break;
        }
        frac = 1.0 / rem;
    }
    None
}

fn check_lattice(v: &[i32], index: &[u64], num: u64, den: u64) -> Option<Lattice> {
    if num < den || den == 0 || num > u64::from(u32::MAX) || den > u64::from(u32::MAX) {
        return None;
    }
    // v[i] - v[0] = ⌊(k·num + phase)/den⌋  ⇔  den·(v[i]-v[0]) - k·num ≤ phase < den·(v[i]-v[0]+1) - k·num
    let (mut lo, mut hi) = (0i128, den as i128); // phase in [lo, hi)
    for (&x, &k) in v.iter().zip(index) {
        let d = i128::from(x) - i128::from(v[0]);
        let base = i128::from(den as u32) * d - i128::from(k) * i128::from(num as u32);
        lo = lo.max(base);
        hi = hi.min(base + den as i128);
        if lo >= hi {
            return None;
        }
    }
    Some(Lattice {
        offset: v[0],
        num: num as u32,
        den: den as u32,
        phase: lo as u32,
    })
}

impl Transform {
    /// `y` for every `x`; `false` when some `x` is not representable (the candidate is then
    /// unusable for this block).
    pub(crate) fn forward(&self, x: &[i32], y: &mut Vec<i32>) -> bool {
        y.clear();
        match self {
            Transform::Affine { offset, scale: 1 } => {
                // Samples are within 24 bits, so the difference cannot overflow.
                y.extend(x.iter().map(|&v| v - offset));
            }
            Transform::Affine { offset, scale } => {
                let (o, s) = (i64::from(*offset), i64::from(*scale));
                for &v in x {
                    let d = i64::from(v) - o;
                    if d % s != 0 {
                        return false;
                    }
                    y.push((d / s) as i32);
                }
            }
            Transform::Table { values, .. } => {
                // Direct lookup over the value range (at most 2^24 + 1 entries for 24-bit data,
                // but tables are only built for sparse blocks, so the range is what matters).
                let (lo, hi) = (values[0], values[values.len() - 1]);
                let span = hi.abs_diff(lo) as usize + 1;
                if span <= 1 << 22 {
                    let mut index = vec![u32::MAX; span];
                    for (i, &v) in values.iter().enumerate() {
                        index[v.abs_diff(lo) as usize] = i as u32;
                    }
                    for &v in x {
                        let i = if v < lo || v > hi {
                            u32::MAX
                        } else {
                            index[v.abs_diff(lo) as usize]
                        };
                        if i == u32::MAX {
                            return false;
                        }
                        y.push(i as i32);
                    }
                } else {
                    for v in x {
                        match values.binary_search(v) {
                            Ok(i) => y.push(i as i32),
                            Err(_) => return false,
                        }
                    }
                }
            }
        }
        true
    }

    /// Largest `|y|` the transform can produce from this block.
    pub(crate) fn max_abs_y(&self, y: &[i32]) -> i64 {
        match self {
            Transform::Affine { .. } => y.iter().map(|&v| i64::from(v).abs()).max().unwrap_or(0),
            Transform::Table { values, .. } => values.len() as i64,
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Transform::Affine { offset, scale } => {
                out.push(KIND_AFFINE);
                bits::put_zz_varint(out, *offset);
                bits::put_varint(out, *scale);
            }
            Transform::Table {
                lattice: Some(l),
                values,
            } => {
                out.push(KIND_LATTICE);
                bits::put_zz_varint(out, l.offset);
                bits::put_varint(out, l.num);
                bits::put_varint(out, l.den);
                bits::put_varint(out, l.phase);
                bits::put_varint(out, values.len() as u32);
            }
            Transform::Table {
                values,
                lattice: None,
            } => {
                out.push(KIND_TABLE);
                bits::put_varint(out, values.len() as u32);
                bits::put_zz_varint(out, values[0]);
                let gaps: Vec<u32> = values.windows(2).map(|w| w[1].abs_diff(w[0])).collect();
                let gmin = gaps.iter().copied().min().unwrap_or(1);
                bits::put_varint(out, gmin);
                let k = rice_param(&gaps, gmin);
                out.push(k as u8);
                let mut w = BitWriter::new(out);
                for &g in &gaps {
                    let v = g - gmin;
                    w.write_unary(v >> k);
                    if k > 0 {
                        w.write(v & ((1 << k) - 1), k);
                    }
                }
                w.finish();
            }
        }
    }

    /// Reads a transform for a block of `n` samples of `width`; `gaps` is scratch for a
    /// table's gaps.
    pub(crate) fn read(
        c: &mut Cursor<'_>,
        n: usize,
        width: SampleWidth,
        isa: Isa,
        gaps: &mut Vec<u32>,
    ) -> Result<Self> {
        let at = c.offset();
        let in_width = |v: i64| v >= i64::from(width.min()) && v <= i64::from(width.max());
        match c.u8("transform kind")? {
            KIND_AFFINE => {
                let at = c.offset();
                let offset = c.zz_varint("transform offset")?;
                let scale = c.varint("transform scale")?;
                if !in_width(i64::from(offset)) {
                    return Err(CodecError::corrupt("transform offset", at));
                }
                if scale == 0 || scale > 1 << 24 {
                    return Err(CodecError::corrupt("transform scale", at));
                }
                Ok(Transform::Affine { offset, scale })
            }
            KIND_LATTICE => {
                let at = c.offset();
                let offset = c.zz_varint("lattice offset")?;
                let num = c.varint("lattice numerator")?;
                let den = c.varint("lattice denominator")?;
                let phase = c.varint("lattice phase")?;
                let len = c.varint("table length")? as usize;
                if den == 0 || num < den || phase >= den || len == 0 || len > n {
                    return Err(CodecError::corrupt("lattice", at));
                }
                let l = Lattice {
                    offset,
                    num,
                    den,
                    phase,
                };
                if !in_width(l.value(0)) || !in_width(l.value(len as u64 - 1)) {
                    return Err(CodecError::corrupt("lattice range", at));
                }
                let values = (0..len as u64).map(|i| l.value(i) as i32).collect();
                Ok(Transform::Table {
                    values,
                    lattice: Some(l),
                })
            }
            KIND_TABLE => {
                let at = c.offset();
                let len = c.varint("table length")? as usize;
                if len == 0 || len > n {
                    return Err(CodecError::corrupt("table length", at));
                }
                let at = c.offset();
                let first = c.zz_varint("table start")?;
                let gmin = c.varint("table gap")?;
                let k = u32::from(c.u8("table Rice parameter")?);
                if !in_width(i64::from(first)) || gmin == 0 || k > 24 {
                    return Err(CodecError::corrupt("table header", at));
                }
                let mut values = Vec::with_capacity(len);
                values.push(first);
                let mut r = BitReader::new(c);
                let mut v = i64::from(first);
                // A gap larger than the width's span is corrupt, which also bounds the unary part.
                let span = i64::from(width.max()) - i64::from(width.min());
                let max_q = (span >> k) as u32 + 1;
                // Dense tables (97 % of table entries in the recordings) have k = 0: their gaps
                // are plain unary codes, read all at once by the vector scan when they are all
                // there and valid; otherwise, and for k > 0, one code at a time, which also
                // reports the first problem in stream order.
                if k == 0 && r.read_unaries(isa, max_q, len - 1, gaps) {
                    for &g in &gaps[..len - 1] {
                        v += i64::from(g) + i64::from(gmin);
                        if !in_width(v) {
                            return Err(CodecError::corrupt("table values", at));
                        }
                        values.push(v as i32);
                    }
                } else {
                    for _ in 1..len {
                        let g = r.read_rice(k, max_q, "table gaps")?;
                        v += i64::from(g) + i64::from(gmin);
                        if !in_width(v) {
                            return Err(CodecError::corrupt("table values", at));
                        }
                        values.push(v as i32);
                    }
                }
                let used = r.finish_len("table gap padding")?;
                c.take(used, "table gaps")?;
                Ok(Transform::Table {
                    values,
                    lattice: None,
                })
            }
            _ => Err(CodecError::corrupt("transform kind", at)),
        }
    }

    /// Maps restored `y` (in `out`) to samples, checking every one is valid.
    pub(crate) fn inverse(
        &self,
        out: &mut [i32],
        width: SampleWidth,
        at: usize,
        isa: Isa,
    ) -> Result<()> {
        match self {
            Transform::Affine { offset, scale } => {
                // x = o + s·y lies in the width exactly when y lies in [y_lo, y_hi]; checking y
                // rather than x lets the mapping run in plain (wrapping) i32 arithmetic, whose
                // results are only kept when every y passed.
                let (o, s) = (i64::from(*offset), i64::from(*scale));
                let lo = i64::from(width.min()) - o;
                let y_lo = lo.div_euclid(s) + i64::from(lo.rem_euclid(s) != 0);
                let y_hi = (i64::from(width.max()) - o).div_euclid(s);
                if !crate::dispatch::affine(isa, out, *offset, *scale as i32, y_lo, y_hi) {
                    return Err(CodecError::corrupt("decoded sample outside the width", at));
                }
            }
            Transform::Table { values, .. } => {
                if !crate::dispatch::table(isa, out, values) {
                    return Err(CodecError::corrupt("table index", at));
                }
            }
        }
        Ok(())
    }
}

/// `x = offset + scale·y` for every `y` in `[y_lo, y_hi]`; `false` (and `out` unspecified) if
/// some `y` is outside.
#[inline(always)]
pub(crate) fn affine_body(out: &mut [i32], offset: i32, scale: i32, y_lo: i64, y_hi: i64) -> bool {
    // One pass: every value is mapped while the range of the `y`s is gathered, and the check
    // comes after (on failure the caller discards `out`).
    let (mut lo, mut hi) = (i32::MAX, i32::MIN);
    if scale == 1 {
        for v in out.iter_mut() {
            lo = lo.min(*v);
            hi = hi.max(*v);
            *v = v.wrapping_add(offset);
        }
    } else {
        for v in out.iter_mut() {
            lo = lo.min(*v);
            hi = hi.max(*v);
            *v = v.wrapping_mul(scale).wrapping_add(offset);
        }
    }
    out.is_empty() || (i64::from(lo) >= y_lo && i64::from(hi) <= y_hi)
}

/// `x = values[y]`; `false` if some index is outside the table.
#[inline(always)]
pub(crate) fn table_body(out: &mut [i32], values: &[i32]) -> bool {
    let len = values.len();
    let mut bad = 0u32;
    for &v in out.iter() {
        bad |= u32::from(v as u32 as usize >= len);
    }
    if bad != 0 || len == 0 {
        return false;
    }
    for v in out.iter_mut() {
        *v = values[(*v as u32 as usize).min(len - 1)];
    }
    true
}

/// Rice parameter for the gaps above `gmin`.
fn rice_param(gaps: &[u32], gmin: u32) -> u32 {
    (0..=24)
        .min_by_key(|&k| {
            gaps.iter()
                .map(|&g| u64::from((g - gmin) >> k) + 1 + u64::from(k))
                .sum::<u64>()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;

    proptest! {
        /// Table lookups agree on every path (AVX-512 registers as words or as 32-bit lanes,
        /// AVX2, portable), for tables on both sides of each register limit (128 and 512
        /// values) and of the 16-bit range, and every path refuses an index outside.
        #[test]
        fn table_lookups_agree_on_every_path(
            t in prop_oneof![1usize..140, 100usize..700],
            kind in 0u8..4,
            y in prop::collection::vec(any::<prop::sample::Index>(), 0..80),
            outside in prop::collection::vec(
                prop_oneof![-3i32..0, 0i32..3, any::<i32>()], 0..3),
        ) {
            let t32 = t as i32;
            let values: Vec<i32> = match kind {
                // 16-bit values.
                0 => (0..t32).map(|i| i * 37 - 12_000).collect(),
                // Ending exactly at the 16-bit maximum, or one past it.
                1 => (0..t32).map(|i| i16::MAX as i32 - t32 + 1 + i).collect(),
                2 => (0..t32).map(|i| i16::MAX as i32 - t32 + 2 + i).collect(),
                // 24-bit values.
                _ => (0..t32).map(|i| i * 20_011 - (1 << 23)).collect(),
            };
            let mut y: Vec<i32> = y.iter().map(|i| i.index(t) as i32).collect();
            // Out-of-table indices, relative to the end when small.
            for (j, &o) in outside.iter().enumerate() {
                let v = if (0..3).contains(&o) { t32 + o } else { o };
                let at = (j * 7919) % (y.len() + 1);
                y.insert(at, v);
            }
            let valid = y.iter().all(|&v| v >= 0 && (v as usize) < t);
            for isa in [Isa::detect(), Isa::detect().without_avx512(), Isa::baseline()] {
                let mut out = y.clone();
                prop_assert_eq!(crate::dispatch::table(isa, &mut out, &values), valid);
                if valid {
                    let want: Vec<i32> = y.iter().map(|&v| values[v as usize]).collect();
                    prop_assert_eq!(&out, &want);
                }
            }
        }

        /// The Affine inverse accepts exactly the blocks whose every sample lands in the width,
        /// and maps them exactly, on every path.
        #[test]
        fn affine_inverse_checks_the_width_on_every_path(
            bits24 in any::<bool>(),
            offset in -(1i32 << 23)..(1 << 23),
            scale in prop_oneof![Just(1u32), 1u32..300, 1u32..=(1 << 24)],
            y in prop::collection::vec(prop_oneof![
                8 => -300i32..300,
                1 => any::<i32>(),
                1 => -70_000i32..70_000,
            ], 0..40),
            edge in any::<usize>(),
            at in any::<prop::sample::Index>(),
        ) {
            let width = if bits24 { SampleWidth::Bits24 } else { SampleWidth::Bits16 };
            let offset = offset.clamp(width.min(), width.max());
            let t = Transform::Affine { offset, scale };
            // The first and last `y` in the width, and one past each, somewhere in the block.
            let (o, sc) = (i64::from(offset), i64::from(scale));
            let first = -((o - i64::from(width.min())).div_euclid(sc));
            let last = (i64::from(width.max()) - o).div_euclid(sc);
            let mut y = y;
            let edge = [first - 1, first, last, last + 1][edge % 4];
            y.insert(at.index(y.len() + 1), edge as i32);
            let want: Option<Vec<i32>> = y
                .iter()
                .map(|&v| {
                    let x = i64::from(offset) + i64::from(scale) * i64::from(v);
                    (i64::from(width.min())..=i64::from(width.max()))
                        .contains(&x)
                        .then_some(x as i32)
                })
                .collect();
            for isa in [Isa::detect(), Isa::detect().without_avx512(), Isa::baseline()] {
                let mut out = y.clone();
                let r = t.inverse(&mut out, width, 0, isa);
                match &want {
                    Some(w) => prop_assert_eq!(&out, w),
                    None => prop_assert_eq!(r.unwrap_err().kind, ErrorKind::Corrupt),
                }
            }
        }

        #[test]
        fn distinct_values_match_a_sort_for_any_block(x in prop_oneof![
            prop::collection::vec(-40i32..40, 0..600),
            prop::collection::vec(-(1i32 << 23)..(1 << 23), 0..600),
            prop::collection::vec(any::<i32>(), 0..50),
        ]) {
            let mut want = x.clone();
            want.sort_unstable();
            want.dedup();
            let mut got = Vec::new();
            distinct_sorted(&x, &mut got);
            prop_assert_eq!(got, want);
        }
    }

    fn round_trip(x: &[i32], t: &Transform, width: SampleWidth) {
        let mut y = Vec::new();
        assert!(t.forward(x, &mut y));
        let mut bytes = Vec::new();
        t.write(&mut bytes);
        let mut c = Cursor::new(&bytes, 0);
        let back = Transform::read(&mut c, x.len(), width, Isa::detect(), &mut Vec::new()).unwrap();
        assert_eq!(c.remaining(), 0);
        assert_eq!(&back, t);
        back.inverse(&mut y, width, 0, Isa::detect()).unwrap();
        assert_eq!(y, x);
        for cut in 0..bytes.len() {
            let mut c = Cursor::new(&bytes[..cut], 0);
            assert_eq!(
                Transform::read(&mut c, x.len(), width, Isa::detect(), &mut Vec::new())
                    .unwrap_err()
                    .kind,
                crate::ErrorKind::Truncated
            );
        }
    }

    #[test]
    fn finds_a_common_divisor() {
        let x: Vec<i32> = (0..100).map(|i| 4 * ((i * 7) % 23) - 1000).collect();
        let c = candidates(&x);
        assert!(matches!(c[0], Transform::Affine { scale: 4, .. }));
        round_trip(&x, &c[0], SampleWidth::Bits16);
    }

    #[test]
    fn finds_a_non_integer_lattice() {
        // round(k · 40.96) as a recorder rescaling 12-bit data would write.
        let x: Vec<i32> = (0..2000)
            .map(|i| {
                let k = ((i as f64 * 0.05).sin() * 60.0).round() + ((i * 13) % 5) as f64;
                (k * 40.96).round() as i32
            })
            .collect();
        let c = candidates(&x);
        let t = c
            .iter()
            .find(|t| matches!(t, Transform::Table { .. }))
            .expect("table");
        assert!(
            matches!(
                t,
                Transform::Table {
                    lattice: Some(_),
                    ..
                }
            ),
            "lattice found"
        );
        round_trip(&x, t, SampleWidth::Bits16);
    }

    #[test]
    fn explicit_table_round_trips() {
        let mut x: Vec<i32> = vec![-32768, -31403, 100, 5000, 32767];
        x.extend((0..40).map(|i| [100, 5000, -31403][i % 3]));
        let t = Transform::Table {
            values: vec![-32768, -31403, 100, 5000, 32767],
            lattice: None,
        };
        round_trip(&x, &t, SampleWidth::Bits16);
    }

    #[test]
    fn distinct_values_match_a_sort() {
        let cases: Vec<Vec<i32>> = vec![
            vec![],
            vec![5],
            vec![3, -1, 3, 7, -1],
            (0..5000).map(|i| (i * 7919) % 1013 - 500).collect(),
            vec![i32::MIN, i32::MAX, 0, i32::MIN],
            (0..300)
                .map(|i| -(1 << 23) + (i * 55_001) % (1 << 24))
                .collect(),
        ];
        for x in cases {
            let mut want = x.clone();
            want.sort_unstable();
            want.dedup();
            let mut got = vec![1, 2, 3];
            distinct_sorted(&x, &mut got);
            assert_eq!(got, want);
        }
    }

    #[test]
    fn dense_signals_get_no_table() {
        let x: Vec<i32> = (0..4000)
            .map(|i| ((i as f64 * 0.01).sin() * 900.0) as i32)
            .collect();
        assert_eq!(candidates(&x).len(), 1);
    }
}
