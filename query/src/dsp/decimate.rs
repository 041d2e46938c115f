//! Display decimation: min/max per pixel column, so a page of thousands of samples draws in a few
//! hundred pixels without losing a single spike.
//!
//! # Column boundaries
//! For `n` samples into `px` columns, column `j` covers samples
//! `[floor(j * n / px), floor((j + 1) * n / px))` (integer arithmetic, no rounding drift): every
//! sample belongs to exactly one column and the columns' widths differ by at most one. When
//! `n < px` some of those ranges are empty; such a column takes the single sample
//! `min(floor(j * n / px), n - 1)`, so every column has a value and the trace stays continuous.

/// Minimum and maximum of each pixel column of one trace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MinMax {
    /// Per-column minimum.
    pub min: Vec<f64>,
    /// Per-column maximum.
    pub max: Vec<f64>,
}

/// The sample range of column `j` (see the module docs). Requires `n > 0`, `px > 0`.
#[inline]
pub fn column_range(j: usize, n: usize, px: usize) -> std::ops::Range<usize> {
    // u64 keeps j * n exact up to 2^64 (pages are far below); no u128 division in the hot loop.
    let start = (j as u64 * n as u64 / px as u64) as usize;
    let end = ((j as u64 + 1) * n as u64 / px as u64) as usize;
    if end > start {
        start..end
    } else {
        let s = start.min(n - 1);
        s..s + 1
    }
}

/// Min/max of `x` into `px` columns, written into `min` and `max` (each at least `px` long).
/// An empty `x` writes NaN (nothing to draw).
///
/// # Panics
/// If `min` or `max` is shorter than `px`.
pub fn minmax_into(x: &[f64], px: usize, min: &mut [f64], max: &mut [f64]) {
    minmax_strided(x.len(), px, |i| x[i], min, max);
}

/// Min/max over a trace given by an index function (used on lane-interleaved buffers).
#[inline]
fn minmax_strided(
    n: usize,
    px: usize,
    at: impl Fn(usize) -> f64,
    min: &mut [f64],
    max: &mut [f64],
) {
    if n == 0 {
        min[..px].fill(f64::NAN);
        max[..px].fill(f64::NAN);
        return;
    }
    for j in 0..px {
        let r = column_range(j, n, px);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for i in r {
            let v = at(i);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        min[j] = lo;
        max[j] = hi;
    }
}

/// Min/max of `x` into `px` columns (allocating twin of [`minmax_into`]).
pub fn minmax_columns(x: &[f64], px: usize) -> MinMax {
    let mut out = MinMax {
        min: vec![0.0; px],
        max: vec![0.0; px],
    };
    minmax_into(x, px, &mut out.min, &mut out.max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_single_sample_spike_survives() {
        let mut x = vec![0.0; 5120];
        x[3333] = 250.0;
        x[4000] = -90.0;
        let mm = minmax_columns(&x, 1920);
        assert_eq!(mm.max.iter().cloned().fold(f64::MIN, f64::max), 250.0);
        assert_eq!(mm.min.iter().cloned().fold(f64::MAX, f64::min), -90.0);
    }

    #[test]
    fn fewer_samples_than_pixels_repeats_samples() {
        let x = [1.0, 2.0, 3.0];
        let mm = minmax_columns(&x, 7);
        assert_eq!(mm.min, mm.max);
        assert_eq!(mm.min.first(), Some(&1.0));
        assert_eq!(mm.min.last(), Some(&3.0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn columns_partition_and_keep_extremes(
            x in proptest::collection::vec(-1e6f64..1e6, 1..3000),
            px in 1usize..2500,
        ) {
            let n = x.len();
            if n >= px {
                // Exact partition: consecutive, covering, widths differ by at most one.
                let mut next = 0;
                for j in 0..px {
                    let r = column_range(j, n, px);
                    prop_assert_eq!(r.start, next);
                    prop_assert!(r.len() == n / px || r.len() == n / px + 1);
                    next = r.end;
                }
                prop_assert_eq!(next, n);
            }
            let mm = minmax_columns(&x, px);
            let gmax = x.iter().cloned().fold(f64::MIN, f64::max);
            let gmin = x.iter().cloned().fold(f64::MAX, f64::min);
            prop_assert_eq!(mm.max.iter().cloned().fold(f64::MIN, f64::max), gmax);
            prop_assert_eq!(mm.min.iter().cloned().fold(f64::MAX, f64::min), gmin);
            for j in 0..px {
                prop_assert!(mm.min[j] <= mm.max[j]);
            }
        }
    }
}
