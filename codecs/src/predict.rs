//! Linear predictors: fixed polynomial predictors of order 0–4 (as in Shorten and FLAC) and LPC
//! with quantised coefficients.
//!
//! All prediction arithmetic is two's-complement `i32` with wrapping, and the shift is an
//! arithmetic (flooring) shift. Encoder and decoder compute the identical function, so the round
//! trip is exact whatever the data; the encoder merely avoids coefficient sets whose sums would
//! actually wrap, because wrapped predictions compress badly.
//!
//! LPC blocks may be cut into 8 segments decoded side by side (FORMAT.md §4.3): the recurrence
//! `y[t] = r[t] + (Σ c·y[t-i] >> shift)` is latency-bound on one chain, while 8 independent chains
//! fill the vector lanes. Each segment restarts with `order` warm-up samples predicted by a fixed
//! order-≤2 predictor, which costs a few bits per segment.

use crate::dispatch::Isa;
use crate::error::{CodecError, Result};

/// Highest LPC order the format allows.
pub(crate) const MAX_LPC_ORDER: usize = 32;
/// Widest quantised LPC coefficient, in bits including the sign.
pub(crate) const MAX_LPC_PRECISION: u32 = 16;
/// Number of side-by-side segments of a segmented LPC block.
pub(crate) const LANES: usize = 8;

/// A block's predictor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Predictor {
    /// Fixed polynomial predictor of order 0..=4.
    Fixed(u8),
    /// Linear prediction with quantised coefficients.
    Lpc(Lpc),
}

/// Quantised LPC parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lpc {
    /// `coefs[i]` multiplies `y[t-1-i]`.
    pub(crate) coefs: Vec<i32>,
    /// Bits per stored coefficient, including the sign (1..=16).
    pub(crate) precision: u32,
    /// Right shift applied to the weighted sum (0..=31).
    pub(crate) shift: u32,
    /// 1 or [`LANES`].
    pub(crate) segments: usize,
}

/// Fixed-order prediction from the `order` previous values (`h[0]` is the most recent).
#[inline(always)]
fn fixed_pred(order: usize, h0: i32, h1: i32, h2: i32, h3: i32) -> i32 {
    match order {
        0 => 0,
        1 => h0,
        2 => h0.wrapping_mul(2).wrapping_sub(h1),
        3 => h0.wrapping_sub(h1).wrapping_mul(3).wrapping_add(h2),
        _ => h0
            .wrapping_add(h2)
            .wrapping_mul(4)
            .wrapping_sub(h1.wrapping_mul(6))
            .wrapping_sub(h3),
    }
}

/// Segment bounds of a block of `n` samples cut into `segments` pieces: every segment has
/// `n / segments` samples except the last, which also takes the remainder.
#[inline]
pub(crate) fn segment_len(n: usize, segments: usize) -> usize {
    n / segments
}

/// Residuals `y[t] - pred(t)` for `t` in `1..n`, zig-zag mapped, into `out` (cleared first).
pub(crate) fn residuals(y: &[i32], pred: &Predictor, out: &mut Vec<u32>, isa: Isa) {
    out.clear();
    let n = y.len();
    if n <= 1 {
        return;
    }
    out.reserve(n - 1);
    match pred {
        Predictor::Fixed(order) => fixed_residuals(y, usize::from(*order), 1, out),
        Predictor::Lpc(lpc) => {
            let l = segment_len(n, lpc.segments);
            let p = lpc.coefs.len();
            for j in 0..lpc.segments {
                let start = j * l;
                let end = if j + 1 == lpc.segments { n } else { start + l };
                if start > 0 {
                    // First sample of a later segment: predicted by the first of the previous one.
                    out.push(crate::bits::zigzag(y[start].wrapping_sub(y[start - l])));
                }
                let warm_end = (start + p).min(end);
                // Warm-up: fixed order min(local index, 2) within the segment.
                for t in start + 1..warm_end {
                    let o = (t - start).min(2);
                    let pr = fixed_pred(o, y[t - 1], if o > 1 { y[t - 2] } else { 0 }, 0, 0);
                    out.push(crate::bits::zigzag(y[t].wrapping_sub(pr)));
                }
                if warm_end < end {
                    lpc_residuals(&y[start..end], &lpc.coefs, lpc.shift, out, isa);
                }
            }
        }
    }
}

/// Fixed-order residuals for `t` in `from..n` (warm-up samples use order `min(t, order)`).
pub(crate) fn fixed_residuals(y: &[i32], order: usize, from: usize, out: &mut Vec<u32>) {
    let n = y.len();
    let warm = order.min(n);
    for t in from..warm {
        let o = t.min(order);
        let h = |i: usize| if i <= t && i <= o { y[t - i] } else { 0 };
        out.push(crate::bits::zigzag(y[t].wrapping_sub(fixed_pred(
            o,
            h(1),
            h(2),
            h(3),
            h(4),
        ))));
    }
    let start = warm.max(from);
    if start >= n {
        return;
    }
    // Vectorisable loops per order, over windows of the previous values.
    macro_rules! run {
        ($o:literal) => {
            out.extend(y[start - $o..].windows($o + 1).map(|w| {
                let pr = fixed_pred(
                    $o,
                    w[$o - 1],
                    if $o > 1 { w[$o.max(2) - 2] } else { 0 },
                    if $o > 2 { w[$o.max(3) - 3] } else { 0 },
                    if $o > 3 { w[$o.max(4) - 4] } else { 0 },
                );
                crate::bits::zigzag(w[$o].wrapping_sub(pr))
            }))
        };
    }
    match order {
        0 => out.extend(y[start..].iter().map(|&v| crate::bits::zigzag(v))),
        1 => run!(1),
        2 => run!(2),
        3 => run!(3),
        _ => run!(4),
    }
}

/// `Σ zigzag(residual)` of every fixed order 0..=4 over `t` in `1..n`, in one pass and without
/// materialising the residuals (what [`fixed_residuals`] would produce, summed).
///
/// The order-`o` residual is the `o`-th wrapping difference, so all five come from one window
/// of five samples.
pub(crate) fn fixed_sums(y: &[i32], isa: Isa) -> [u64; 5] {
    crate::dispatch::fixed_sums(isa, y)
}

/// Body of [`fixed_sums`].
#[inline(always)]
pub(crate) fn fixed_sums_body(y: &[i32]) -> [u64; 5] {
    let mut sums = [0u64; 5];
    let n = y.len();
    // Warm-up samples (t < 4) use lower orders: the general routine on the first samples.
    let warm = n.min(4);
    let mut tmp = Vec::with_capacity(4);
    for (o, s) in sums.iter_mut().enumerate() {
        tmp.clear();
        fixed_residuals(&y[..warm], o, 1, &mut tmp);
        *s = tmp.iter().map(|&v| u64::from(v)).sum();
    }
    if n <= 4 {
        return sums;
    }
    use crate::bits::zigzag;
    let mut acc = [0u64; 5];
    for w in y.windows(5) {
        let (a, b, c, d, e) = (w[0], w[1], w[2], w[3], w[4]);
        let d1 = e.wrapping_sub(d);
        let d2 = d1.wrapping_sub(d.wrapping_sub(c));
        let d3 = d2.wrapping_sub(d.wrapping_sub(c).wrapping_sub(c.wrapping_sub(b)));
        let d4 = e
            .wrapping_sub(d.wrapping_mul(4))
            .wrapping_add(c.wrapping_mul(6))
            .wrapping_sub(b.wrapping_mul(4))
            .wrapping_add(a);
        acc[0] += u64::from(zigzag(e));
        acc[1] += u64::from(zigzag(d1));
        acc[2] += u64::from(zigzag(d2));
        acc[3] += u64::from(zigzag(d3));
        acc[4] += u64::from(zigzag(d4));
    }
    for (s, a) in sums.iter_mut().zip(acc) {
        *s += a;
    }
    sums
}

/// LPC residuals of one segment for local indices `p..seg.len()`.
///
/// Computed as one multiply-add pass per coefficient over the whole segment (rather than a dot
/// product per sample), which vectorises.
fn lpc_residuals(seg: &[i32], coefs: &[i32], shift: u32, out: &mut Vec<u32>, isa: Isa) {
    let p = coefs.len();
    let len = seg.len() - p;
    let mut acc = vec![0i32; len];
    crate::dispatch::lpc_sums(isa, seg, coefs, &mut acc);
    out.extend(
        acc.iter()
            .zip(&seg[p..])
            .map(|(&a, &v)| crate::bits::zigzag(v.wrapping_sub(a >> shift))),
    );
}

/// `acc[t - p] = Σ c[i]·seg[t-1-i]` (wrapping) for `t` in `p..seg.len()`, one multiply-add pass
/// per coefficient.
#[inline(always)]
pub(crate) fn lpc_sums_body(seg: &[i32], coefs: &[i32], acc: &mut [i32]) {
    let p = coefs.len();
    let len = acc.len();
    for (i, &c) in coefs.iter().enumerate() {
        let hist = &seg[p - 1 - i..p - 1 - i + len];
        for (a, &h) in acc.iter_mut().zip(hist) {
            *a = a.wrapping_add(c.wrapping_mul(h));
        }
    }
}

/// Restores `y` in place: on entry `out[0]` is `y[0]` and `out[t]` for `t ≥ 1` holds the
/// (un-zig-zagged) residual of sample `t`; on return `out[t]` is `y[t]`.
pub(crate) fn restore(
    pred: &Predictor,
    out: &mut [i32],
    scratch: &mut Vec<[i32; LANES]>,
    isa: Isa,
) {
    match pred {
        Predictor::Fixed(order) => crate::dispatch::restore_fixed(isa, usize::from(*order), out),
        Predictor::Lpc(lpc) => restore_lpc(lpc, out, scratch, isa),
    }
}

/// Fixed-order restoration kernel.
#[inline(always)]
pub(crate) fn restore_fixed_body(order: usize, out: &mut [i32]) {
    let n = out.len();
    // Warm-up samples (order min(t, order)).
    let warm = order.min(n);
    for t in 1..warm {
        let o = t.min(order);
        let h = |i: usize, out: &[i32]| if i <= o { out[t - i] } else { 0 };
        let pr = fixed_pred(o, h(1, out), h(2, out), h(3, out), h(4, out));
        out[t] = out[t].wrapping_add(pr);
    }
    if warm >= n || order == 0 {
        return;
    }
    // Keep the history in registers: each step depends only on the previous `order` outputs.
    match order {
        1 => {
            let mut a = out[0];
            for v in &mut out[1..] {
                a = a.wrapping_add(*v);
                *v = a;
            }
        }
        2 => {
            let (mut a, mut b) = (out[0], out[1]);
            for v in &mut out[2..] {
                let y = v.wrapping_add(b.wrapping_mul(2).wrapping_sub(a));
                *v = y;
                a = b;
                b = y;
            }
        }
        3 => {
            let (mut a, mut b, mut c) = (out[0], out[1], out[2]);
            for v in &mut out[3..] {
                let y = v.wrapping_add(c.wrapping_sub(b).wrapping_mul(3).wrapping_add(a));
                *v = y;
                a = b;
                b = c;
                c = y;
            }
        }
        _ => {
            let (mut a, mut b, mut c, mut d) = (out[0], out[1], out[2], out[3]);
            for v in &mut out[4..] {
                let pr = d
                    .wrapping_add(b)
                    .wrapping_mul(4)
                    .wrapping_sub(c.wrapping_mul(6))
                    .wrapping_sub(a);
                let y = v.wrapping_add(pr);
                *v = y;
                a = b;
                b = c;
                c = d;
                d = y;
            }
        }
    }
}

fn restore_lpc(lpc: &Lpc, out: &mut [i32], scratch: &mut Vec<[i32; LANES]>, isa: Isa) {
    let n = out.len();
    let p = lpc.coefs.len();
    let s = lpc.segments;
    let l = segment_len(n, s);
    // Pass 1: the warm-up samples of every segment, in segment order (each segment's first sample
    // is predicted from the previous segment's first sample).
    for j in 0..s {
        let start = j * l;
        let end = if j + 1 == s { n } else { start + l };
        if start > 0 {
            out[start] = out[start].wrapping_add(out[start - l]);
        }
        let warm_end = (start + p).min(end);
        for t in start + 1..warm_end {
            let pr = if t - start == 1 {
                out[t - 1]
            } else {
                out[t - 1].wrapping_mul(2).wrapping_sub(out[t - 2])
            };
            out[t] = out[t].wrapping_add(pr);
        }
    }
    // Pass 2: the segments side by side (only the common length `l`).
    if s == LANES && p < l {
        crate::dispatch::restore_lanes(isa, &lpc.coefs, lpc.shift, l, out, scratch);
    }
    // Pass 3: whatever is left of each segment, one sample at a time.
    for j in 0..s {
        let start = j * l;
        let end = if j + 1 == s { n } else { start + l };
        let from = if s == LANES {
            start + l.max(p)
        } else {
            start + p
        };
        if from < end {
            scalar_lpc(&lpc.coefs, lpc.shift, start, from, end, out);
        }
    }
}

/// Plain LPC recurrence for `t` in `from..end` (history taken from `out`, never before `start`).
fn scalar_lpc(coefs: &[i32], shift: u32, start: usize, from: usize, end: usize, out: &mut [i32]) {
    let p = coefs.len();
    debug_assert!(from >= start + p);
    macro_rules! dispatch {
        ($($p:literal => $k:literal)*) => {
            match p {
                $($p => return scalar_lpc_order::<$k>(coefs, shift, from, end, out),)*
                _ => {}
            }
        };
    }
    // Short runs (the few samples a segmented block leaves after its segments) are not worth
    // loading the history into registers for.
    if end - from >= 64 {
        // Order 3 runs the order-4 kernel with a zero coefficient: LLVM's code for a
        // three-value history is twice as slow (measured).
        dispatch!(1 => 1 2 => 2 3 => 4 4 => 4 5 => 5 6 => 6 7 => 7 8 => 8 9 => 9 10 => 10
            11 => 11 12 => 12 13 => 13 14 => 14 15 => 15 16 => 16);
    }
    for t in from..end {
        let hist = &out[t - p..t];
        let mut acc = 0i32;
        for (i, &c) in coefs.iter().enumerate() {
            acc = acc.wrapping_add(c.wrapping_mul(hist[p - 1 - i]));
        }
        out[t] = out[t].wrapping_add(acc >> shift);
    }
}

/// [`scalar_lpc`] for orders up to `P`, with the history in registers rather than reloaded
/// from the samples just stored, and the newest sample's product added last: only its
/// multiply, one add, the shift and the residual's add wait on the previous sample
/// (unsegmented blocks, of fewer than 1024 samples, are one such chain from start to end).
#[inline(always)]
fn scalar_lpc_order<const P: usize>(
    coefs: &[i32],
    shift: u32,
    from: usize,
    end: usize,
    out: &mut [i32],
) {
    // Orders below `P` are padded with zero coefficients, and their extra history with zeros.
    let p = coefs.len();
    debug_assert!(p <= P && from >= p);
    let c: [i32; P] = std::array::from_fn(|i| coefs.get(i).copied().unwrap_or(0));
    // h[i] = y[t − 1 − i].
    let mut h: [i32; P] = std::array::from_fn(|i| if i < p { out[from - 1 - i] } else { 0 });
    for v in &mut out[from..end] {
        // Older products in two chains, off the path from the previous sample.
        let (mut even, mut odd) = (0i32, 0i32);
        for i in 1..P {
            let x = c[i].wrapping_mul(h[i]);
            if i % 2 == 0 {
                even = even.wrapping_add(x);
            } else {
                odd = odd.wrapping_add(x);
            }
        }
        let acc = even.wrapping_add(odd).wrapping_add(c[0].wrapping_mul(h[0]));
        let y = v.wrapping_add(acc >> shift);
        *v = y;
        for i in (1..P).rev() {
            h[i] = h[i - 1];
        }
        h[0] = y;
    }
}

/// The eight-lane LPC kernel on transposed rows: `rows[t][j]` holds sample `t` of segment `j`
/// (residuals from row `p` on); restores rows `p..`.
#[inline(always)]
pub(crate) fn lanes_body(coefs: &[i32], shift: u32, rows: &mut [[i32; LANES]]) {
    lanes::restore(coefs, shift, rows)
}

/// `rows[t][j] = out[j·l + t]` for `t < l` (the scalar transpose; `dispatch` has an AVX2 one).
#[inline(always)]
pub(crate) fn rows_from_segments(out: &[i32], l: usize, rows: &mut [[i32; LANES]]) {
    let (segs, _) = out.split_at(LANES * l);
    for (j, seg) in segs.chunks_exact(l).enumerate() {
        for (row, &v) in rows[..l].iter_mut().zip(seg) {
            row[j] = v;
        }
    }
}

/// `out[j·l + t] = rows[t][j]` for `t` in `from..l`.
#[inline(always)]
pub(crate) fn segments_from_rows(rows: &[[i32; LANES]], from: usize, l: usize, out: &mut [i32]) {
    let (segs, _) = out.split_at_mut(LANES * l);
    for (j, seg) in segs.chunks_exact_mut(l).enumerate() {
        if from < l {
            for (v, row) in seg[from..].iter_mut().zip(&rows[from..l]) {
                *v = row[j];
            }
        }
    }
}

mod lanes {
    use super::LANES;

    #[inline(always)]
    pub(super) fn restore(coefs: &[i32], shift: u32, rows: &mut [[i32; LANES]]) {
        macro_rules! dispatch {
            ($($p:literal)*) => {
                match coefs.len() {
                    $($p => kernel::<$p>(coefs.try_into().expect("order checked"), shift, rows),)*
                    _ => unreachable!("LPC order is validated to 1..=32"),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
    }

    /// Each row holds one sample of all eight segments, so the history of all lanes is one row
    /// and each step is a lane-wise multiply-add that LLVM vectorises. The last `P` rows live in
    /// the local `h` (registers for small orders), so the recurrence's critical path is one
    /// multiply, a few adds and the shift, never a store-to-load round trip.
    #[inline(always)]
    fn kernel<const P: usize>(c: &[i32; P], shift: u32, rows: &mut [[i32; LANES]]) {
        if rows.len() <= P {
            return;
        }
        // h[i] = row t-1-i
        let mut h = [[0i32; LANES]; P];
        for (i, hi) in h.iter_mut().enumerate() {
            *hi = rows[P - 1 - i];
        }
        for row in rows[P..].iter_mut() {
            let mut acc = [0i32; LANES];
            for i in (1..P).rev() {
                for j in 0..LANES {
                    acc[j] = acc[j].wrapping_add(c[i].wrapping_mul(h[i][j]));
                }
            }
            let mut y = [0i32; LANES];
            for j in 0..LANES {
                let a = acc[j].wrapping_add(c[0].wrapping_mul(h[0][j]));
                y[j] = row[j].wrapping_add(a >> shift);
            }
            *row = y;
            for i in (1..P).rev() {
                h[i] = h[i - 1];
            }
            h[0] = y;
        }
    }
}

/// Reads LPC parameters (FORMAT.md §4.3) after the predictor byte.
pub(crate) fn read_lpc(c: &mut crate::bits::Cursor<'_>, n: usize) -> Result<Lpc> {
    let at = c.offset();
    let order = usize::from(c.u8("LPC order")?);
    let precision = u32::from(c.u8("LPC precision")?);
    let shift = u32::from(c.u8("LPC shift")?);
    let segments = usize::from(c.u8("LPC segments")?);
    if !(1..=MAX_LPC_ORDER).contains(&order) {
        return Err(CodecError::corrupt("LPC order", at));
    }
    if !(1..=MAX_LPC_PRECISION).contains(&precision) {
        return Err(CodecError::corrupt("LPC precision", at + 1));
    }
    if shift > 31 {
        return Err(CodecError::corrupt("LPC shift", at + 2));
    }
    if segments != 1 && !(segments == LANES && n >= LANES) {
        return Err(CodecError::corrupt("LPC segment count", at + 3));
    }
    let sec = c.take_bits(order as u64 * u64::from(precision), "LPC coefficients")?;
    let mut r = crate::bits::BitReader::new(&sec);
    let mut coefs = Vec::with_capacity(order);
    for _ in 0..order {
        let raw = r.read(precision, "LPC coefficients")?;
        // Sign-extend from `precision` bits.
        let sh = 32 - precision;
        coefs.push(((raw << sh) as i32) >> sh);
    }
    r.finish("LPC coefficient padding")?;
    Ok(Lpc {
        coefs,
        precision,
        shift,
        segments,
    })
}

/// Writes LPC parameters after the predictor byte.
pub(crate) fn write_lpc(lpc: &Lpc, out: &mut Vec<u8>) {
    out.push(lpc.coefs.len() as u8);
    out.push(lpc.precision as u8);
    out.push(lpc.shift as u8);
    out.push(lpc.segments as u8);
    let mut w = crate::bits::BitWriter::new(out);
    let mask = if lpc.precision == 32 {
        u32::MAX
    } else {
        (1u32 << lpc.precision) - 1
    };
    for &c in &lpc.coefs {
        w.write((c as u32) & mask, lpc.precision);
    }
    w.finish();
}

/// LPC analysis: windowed autocorrelation, Levinson–Durbin and coefficient quantisation.
pub(crate) mod analysis {
    use super::{Lpc, MAX_LPC_ORDER};

    /// Tukey window with `p` = 0.5 (flat middle half, cosine tapers), FLAC's default apodisation.
    fn tukey(n: usize, out: &mut Vec<f64>) {
        out.clear();
        let np = n / 4;
        // The two tapers mirror each other: compute the cosines once.
        let taper: Vec<f64> = (0..np)
            .map(|i| 0.5 - 0.5 * (std::f64::consts::PI * i as f64 / np as f64).cos())
            .collect();
        out.extend_from_slice(&taper);
        out.resize(n - np, 1.0);
        out.extend(taper.iter().rev());
    }

    /// Windows of the last few block lengths: a store alternates full blocks with nested
    /// (runs) and tail blocks of other lengths, and the cosines cost as much as the analysis.
    #[derive(Debug, Default)]
    pub(crate) struct Windows(Vec<(usize, Vec<f64>)>);

    impl Windows {
        const KEEP: usize = 4;

        fn get(&mut self, n: usize) -> &[f64] {
            let i = match self.0.iter().position(|w| w.0 == n) {
                Some(i) => i,
                None => {
                    if self.0.len() >= Self::KEEP {
                        self.0.remove(0);
                    }
                    let mut w = Vec::with_capacity(n);
                    tukey(n, &mut w);
                    self.0.push((n, w));
                    self.0.len() - 1
                }
            };
            &self.0[i].1
        }
    }

    /// Windowed autocorrelation of `y` up to lag `max_lag`.
    ///
    /// The signal is not mean-removed: the predictor is applied to the raw values, and fitting
    /// on them teaches it that the coefficients sum to about one, which carries any DC offset.
    pub(crate) fn autocorrelation(
        y: &[i32],
        max_lag: usize,
        windows: &mut Windows,
        scratch: &mut Vec<f32>,
        isa: crate::dispatch::Isa,
    ) -> Vec<f64> {
        let window = windows.get(y.len());
        scratch.clear();
        scratch.extend(
            y.iter()
                .zip(window.iter())
                .map(|(&v, &w)| (f64::from(v) * w) as f32),
        );
        let mut ac = vec![0.0; max_lag + 1];
        crate::dispatch::autocorrelation(isa, scratch, &mut ac);
        ac
    }

    /// `ac[lag] = Σ x[t]·x[t-lag]` over f32 samples, thirty-two partial sums per lag (four
    /// vectors of eight) so the loop vectorises and the adds are not one serial chain; the
    /// partial sums are added in f64.
    #[inline(always)]
    pub(crate) fn autocorrelation_body(x: &[f32], ac: &mut [f64]) {
        let n = x.len();
        for (lag, a) in ac.iter_mut().enumerate() {
            if lag >= n {
                *a = 0.0;
                continue;
            }
            let mut s = [0.0f32; 32];
            let (hi, lo) = (&x[lag..], &x[..n - lag]);
            let mut ch = hi.chunks_exact(32).zip(lo.chunks_exact(32));
            for (a32, b32) in &mut ch {
                for k in 0..32 {
                    s[k] += a32[k] * b32[k];
                }
            }
            let done = (n - lag) / 32 * 32;
            let tail: f64 = hi[done..]
                .iter()
                .zip(&lo[done..])
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            *a = s.iter().map(|&v| f64::from(v)).sum::<f64>() + tail;
        }
    }

    /// Levinson–Durbin recursion: predictor coefficients for every order `1..=max_order`
    /// (`out[o-1][i]` multiplies `y[t-1-i]`) and the prediction error of each order.
    pub(crate) fn levinson(ac: &[f64], max_order: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut err = ac[0];
        let mut lpc = vec![0.0f64; max_order];
        let mut coefs = Vec::with_capacity(max_order);
        let mut errs = Vec::with_capacity(max_order);
        for i in 0..max_order {
            if err <= 0.0 {
                break;
            }
            let mut r = -ac[i + 1];
            for j in 0..i {
                r -= lpc[j] * ac[i - j];
            }
            r /= err;
            lpc[i] = r;
            for j in 0..i / 2 {
                let tmp = lpc[j];
                lpc[j] += r * lpc[i - 1 - j];
                lpc[i - 1 - j] += r * tmp;
            }
            if i % 2 == 1 {
                lpc[i / 2] += lpc[i / 2] * r;
            }
            err *= 1.0 - r * r;
            coefs.push(lpc[..=i].iter().map(|c| -c).collect());
            errs.push(err.max(0.0));
        }
        (coefs, errs)
    }

    /// Quantises coefficients to `precision` signed bits with error feedback, choosing the shift
    /// so the largest coefficient uses the full precision. `max_abs_y` bounds the data: the
    /// precision drops until `Σ|c|·max|y|` fits in `i32`, so the decoder's wrapping arithmetic
    /// never actually wraps on this block. Returns `None` when no precision fits.
    pub(crate) fn quantize(
        c: &[f64],
        precision: u32,
        max_abs_y: i64,
        segments: usize,
    ) -> Option<Lpc> {
        let cmax = c.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if !cmax.is_finite() || c.len() > MAX_LPC_ORDER {
            return None;
        }
        let mut precision = precision;
        while precision >= 2 {
            let qmax = (1i64 << (precision - 1)) - 1;
            let qmin = -(1i64 << (precision - 1));
            let mut shift: i32 = if cmax > 0.0 {
                (precision as i32 - 1) - (cmax.log2().floor() as i32 + 1)
            } else {
                0
            };
            shift = shift.clamp(0, 31);
            let scale = (1u64 << shift) as f64;
            let mut err = 0.0;
            let q: Vec<i32> = c
                .iter()
                .map(|&v| {
                    err += v * scale;
                    let qi = (err.round() as i64).clamp(qmin, qmax);
                    err -= qi as f64;
                    qi as i32
                })
                .collect();
            let sum_abs: i64 = q.iter().map(|&v| i64::from(v).abs()).sum();
            if sum_abs.saturating_mul(max_abs_y.max(1)) < i64::from(i32::MAX) {
                return Some(Lpc {
                    coefs: q,
                    precision,
                    shift: shift as u32,
                    segments,
                });
            }
            precision -= 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fixed_sums_match_the_residuals_for_any_block(y in prop_oneof![
            prop::collection::vec(-3000i32..3000, 0..300),
            prop::collection::vec(any::<i32>(), 0..300),
        ]) {
            let sums = fixed_sums(&y, Isa::detect());
            prop_assert_eq!(sums, fixed_sums(&y, Isa::baseline()));
            for (o, &s) in sums.iter().enumerate() {
                let mut u = Vec::new();
                fixed_residuals(&y, o, 1, &mut u);
                prop_assert_eq!(s, u.iter().map(|&v| u64::from(v)).sum::<u64>());
            }
        }

        /// Fixed orders restore any block on every path (the AVX2 path runs them as nested
        /// prefix sums, with a remainder after the last group of eight).
        #[test]
        fn fixed_orders_round_trip_any_block(y in prop_oneof![
            prop::collection::vec(-3000i32..3000, 0..80),
            prop::collection::vec(any::<i32>(), 0..80),
        ]) {
            for o in 0..=4 {
                round_trip(&y, &Predictor::Fixed(o));
            }
        }
    }

    fn round_trip(y: &[i32], pred: &Predictor) {
        let mut u = Vec::new();
        residuals(y, pred, &mut u, Isa::detect());
        assert_eq!(u.len(), y.len().saturating_sub(1));
        let mut u2 = Vec::new();
        residuals(y, pred, &mut u2, Isa::baseline());
        assert_eq!(u, u2);
        if y.is_empty() {
            return;
        }
        let mut out = vec![0i32; y.len()];
        out[0] = y[0];
        for (o, &r) in out[1..].iter_mut().zip(&u) {
            *o = crate::bits::unzigzag(r);
        }
        // Every code path: AVX-512 where present, AVX2, portable.
        let mut scratch = Vec::new();
        for isa in [
            Isa::detect(),
            Isa::detect().without_avx512(),
            Isa::baseline(),
        ] {
            let mut got = out.clone();
            restore(pred, &mut got, &mut scratch, isa);
            assert_eq!(got, y, "{pred:?} {isa:?}");
        }
    }

    fn signal(n: usize) -> Vec<i32> {
        (0..n)
            .map(|i| ((i as f64 * 0.07).sin() * 3000.0 + (i as f64 * 0.9).cos() * 40.0) as i32)
            .collect()
    }

    #[test]
    fn fixed_sums_match_the_residuals() {
        let mut cases = vec![vec![], vec![7], vec![1, -5], vec![3, 9, -2, 4, 100]];
        cases.push(signal(1000));
        cases.push(
            (0..300)
                .map(|i| if i % 2 == 0 { i32::MAX } else { i32::MIN })
                .collect(),
        );
        cases.push(
            (0..50)
                .map(|i| (i * 2_654_435_761u32 as i64) as i32)
                .collect(),
        );
        for y in cases {
            let sums = fixed_sums(&y, Isa::detect());
            assert_eq!(sums, fixed_sums(&y, Isa::baseline()));
            for (o, &sum) in sums.iter().enumerate() {
                let mut u = Vec::new();
                fixed_residuals(&y, o, 1, &mut u);
                let want: u64 = u.iter().map(|&v| u64::from(v)).sum();
                assert_eq!(sum, want, "order {o}, n {}", y.len());
            }
        }
    }

    #[test]
    fn fixed_orders_round_trip_any_length() {
        for n in [0, 1, 2, 3, 4, 5, 9, 100] {
            let y = signal(n);
            for o in 0..=4 {
                round_trip(&y, &Predictor::Fixed(o));
            }
        }
    }

    #[test]
    fn fixed_orders_round_trip_full_scale_with_wrapping() {
        let y: Vec<i32> = (0..50)
            .map(|i| {
                if i % 2 == 0 {
                    (1 << 23) - 1
                } else {
                    -(1 << 23)
                }
            })
            .collect();
        for o in 0..=4 {
            round_trip(&y, &Predictor::Fixed(o));
        }
    }

    #[test]
    fn lpc_round_trips_for_every_order_and_segmentation() {
        for n in [2, 7, 8, 9, 33, 64, 65, 300, 1000, 1031] {
            let y = signal(n);
            for p in 1..=MAX_LPC_ORDER {
                for segments in [1, LANES] {
                    if segments > n {
                        continue;
                    }
                    let coefs: Vec<i32> = (0..p)
                        .map(|i| {
                            if i == 0 {
                                7000
                            } else {
                                -((i as i32 * 977) % 3001) + 1500
                            }
                        })
                        .collect();
                    round_trip(
                        &y,
                        &Predictor::Lpc(Lpc {
                            coefs,
                            precision: 15,
                            shift: 12,
                            segments,
                        }),
                    );
                }
            }
        }
    }

    #[test]
    fn analysis_finds_a_good_predictor_for_a_sine() {
        let y = signal(4096);
        let mut scratch = Vec::new();
        let ac = analysis::autocorrelation(
            &y,
            8,
            &mut analysis::Windows::default(),
            &mut scratch,
            Isa::detect(),
        );
        let (coefs, errs) = analysis::levinson(&ac, 8);
        assert!(errs[1] < errs[0]);
        let lpc = analysis::quantize(&coefs[7], 15, 4000, 1).unwrap();
        let mut u = Vec::new();
        residuals(&y, &Predictor::Lpc(lpc), &mut u, Isa::detect());
        let mean = u.iter().map(|&v| f64::from(v)).sum::<f64>() / u.len() as f64;
        assert!(mean < 40.0, "mean zig-zag residual {mean}");
    }
}
