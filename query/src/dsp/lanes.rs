//! Filter kernels over lane-interleaved buffers: `L` channels side by side (`[f64; L]` per sample),
//! so one recurrence step updates `L` independent channels with the same coefficients and LLVM
//! turns the lane loops into SIMD (SSE2 by default, AVX2/AVX-512 with `-C target-cpu=native`).
//! One channel's IIR recurrence is latency-bound (a 12-cycle chain per sample and section);
//! running one section at a time over a cache-resident chunk with its state in registers, `L`
//! channels wide, overlaps `L` chains. Measured on the standard page (18 rows as 2 groups of 9):
//! about 1.2 ms of CPU for the filter, still latency- rather than throughput-bound, which is why
//! AVX-512 (`-C target-cpu=native`) does not help here (`benches/benches/dsp.rs`).

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

/// Samples per chunk: each section runs over one chunk while the chunk stays in L1
/// (256 samples x 8 lanes x 8 bytes = 16 KiB).
const CHUNK: usize = 256;

/// Run one section over `chunk` with the section's state in registers. Operation order per sample
/// is SciPy's `_sosfilt` (direct-form II transposed), so results equal the sample-by-sample loop
/// bit for bit; running a whole chunk per section keeps the state out of memory, and the `L`
/// lanes give `L / 2` (SSE2) independent recurrences to hide the 12-cycle dependency chain.
#[inline(always)]
fn section_chunk<'a, const L: usize>(
    s: &[f64; 6],
    z: &mut LaneState<L>,
    chunk: impl Iterator<Item = &'a mut [f64; L]>,
) {
    let (b0, b1, b2, a1, a2) = (s[0], s[1], s[2], s[4], s[5]);
    let (mut z0, mut z1) = (z[0], z[1]);
    for v in chunk {
        let x = *v;
        let mut y = [0.0; L];
        for l in 0..L {
            y[l] = b0 * x[l] + z0[l];
            z0[l] = b1 * x[l] - a1 * y[l] + z1[l];
            z1[l] = b2 * x[l] - a2 * y[l];
        }
        *v = y;
    }
    *z = [z0, z1];
}

/// Filter `buf` forward in place from `state` (direct-form II transposed, SciPy's operation order).
pub(crate) fn forward<const L: usize>(
    sections: &[[f64; 6]],
    state: &mut [LaneState<L>],
    buf: &mut [[f64; L]],
) {
    for chunk in buf.chunks_mut(CHUNK) {
        for (s, z) in sections.iter().zip(state.iter_mut()) {
            section_chunk(s, z, chunk.iter_mut());
        }
    }
}

/// Filter `buf` backward (last sample first) in place from `state`.
pub(crate) fn backward<const L: usize>(
    sections: &[[f64; 6]],
    state: &mut [LaneState<L>],
    buf: &mut [[f64; L]],
) {
    for chunk in buf.rchunks_mut(CHUNK) {
        for (s, z) in sections.iter().zip(state.iter_mut()) {
            section_chunk(s, z, chunk.iter_mut().rev());
        }
    }
}
