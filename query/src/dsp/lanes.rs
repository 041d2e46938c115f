//! Filter kernels over lane-interleaved buffers: `L` channels side by side (`[f64; L]` per sample),
//! so one recurrence step updates `L` independent channels with the same coefficients and LLVM
//! turns the lane loops into SIMD (SSE2 by default, AVX2/AVX-512 with `-C target-cpu=native`).
//! One channel's IIR recurrence is latency-bound; `L` channels at once are throughput-bound.

/// Lanes per group in the page pipeline: 4 keeps a group's section states in registers on AVX2 and
/// splits a double banana (18 rows) into 5 groups for rayon on small core counts.
pub(crate) const LANES: usize = 4;

/// Per-section state for `L` lanes: `[z0, z1]`, each `[f64; L]`.
pub(crate) type LaneState<const L: usize> = [[f64; L]; 2];

/// Set every section's state to `zi * x0` (steady state of a constant input, per lane).
#[inline]
pub(crate) fn steady_state<const L: usize>(
    zi: &[[f64; 2]],
    x0: &[f64; L],
    state: &mut [LaneState<L>],
) {
    for (s, z) in state.iter_mut().zip(zi) {
        for l in 0..L {
            s[0][l] = z[0] * x0[l];
            s[1][l] = z[1] * x0[l];
        }
    }
}

#[inline(always)]
fn step<const L: usize>(sections: &[[f64; 6]], state: &mut [LaneState<L>], v: &mut [f64; L]) {
    let mut x = *v;
    for (s, z) in sections.iter().zip(state.iter_mut()) {
        let mut y = [0.0; L];
        for l in 0..L {
            y[l] = s[0] * x[l] + z[0][l];
            z[0][l] = s[1] * x[l] - s[4] * y[l] + z[1][l];
            z[1][l] = s[2] * x[l] - s[5] * y[l];
        }
        x = y;
    }
    *v = x;
}

/// Filter `buf` forward in place from `state` (direct-form II transposed, SciPy's operation order).
pub(crate) fn forward<const L: usize>(
    sections: &[[f64; 6]],
    state: &mut [LaneState<L>],
    buf: &mut [[f64; L]],
) {
    for v in buf.iter_mut() {
        step(sections, state, v);
    }
}

/// Filter `buf` backward (last sample first) in place from `state`.
pub(crate) fn backward<const L: usize>(
    sections: &[[f64; 6]],
    state: &mut [LaneState<L>],
    buf: &mut [[f64; L]],
) {
    for v in buf.iter_mut().rev() {
        step(sections, state, v);
    }
}
