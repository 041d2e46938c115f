//! Seamless pages: filter a page with real data beyond its edges as padding, so that consecutive
//! pages join and each equals the filter of the whole recording cropped to the page.
//!
//! # How much padding
//! A forward-backward pass started inside a recording begins from a guessed state (SciPy's
//! steady-state `zi` scaled by the first sample, so a DC offset is exact and costs nothing) and the
//! guess's error dies out with the cascade's zero-input response. [`FilterPlan`] measures that
//! response from the design: it runs the cascade from each unit state (`2 x n_sections` runs) and
//! takes the first sample after which the summed magnitude `g[n]` stays below
//! `tolerance x SAFETY / (1 + ||h||_1)`. `||h||_1` (the impulse response's L1 norm) bounds how much
//! the backward pass can amplify the forward pass's residual error, and `SAFETY` (1e-2) covers a
//! start-up state error up to a hundred times the page's RMS (slow drifts under a 0.1 Hz
//! high-pass, where the page itself holds microvolts). Measured on the shared recordings
//! (`query/tests/dsp_real.rs`, 20 s pages): with `SAFETY = 1` the worst page was 5.8e-8 of its
//! RMS, with 1e-2 it is 5e-10. With the default tolerance 1e-6 at 256 Hz the padding is 5 340
//! samples (20.9 s) each side for a 0.5 Hz order-4 high-pass, 5 453 (21.3 s) for the standard
//! 0.5 Hz + 70 Hz + 50 Hz notch cascade and 28 801 (112.5 s) for a 0.1 Hz high-pass.
//!
//! # At the recording's edges
//! When the padding reaches the recording's first (last) sample, the page is computed exactly as
//! SciPy does: odd reflection of `padlen` samples and `zi` scaled by the extended signal's first
//! sample (the forward output's last sample). Between edges the same formula starts from the first
//! (last) padding sample, so one code path serves both.

use super::error::{DspError, Result};
use super::lanes::{self, LaneState};
use super::sos::Sos;
use std::ops::Range;

/// Zero-phase (forward-backward, no delay, squared magnitude response) or causal (one forward pass,
/// what analogue EEG machines showed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `sosfiltfilt` semantics.
    #[default]
    ZeroPhase,
    /// `sosfilt` from the steady state of the recording's first sample (`zi * x[0]`), so a DC
    /// offset causes no start-up step.
    Causal,
}

/// Whether a block of data touches the recording's first and last samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageEdges {
    /// The block's first sample is the recording's first sample.
    pub at_recording_start: bool,
    /// The block's last sample is the recording's last sample.
    pub at_recording_end: bool,
}

impl PageEdges {
    /// Edges of a block `[lo, hi)` of a recording of `n` samples.
    pub fn of_block(lo: usize, hi: usize, n: usize) -> Self {
        Self {
            at_recording_start: lo == 0,
            at_recording_end: hi >= n,
        }
    }
}

/// Safety factor on the transient tolerance (see the module docs for how it was chosen).
pub const SAFETY: f64 = 1e-2;

/// Default tolerance: the page differs from the whole-recording filter by less than this fraction
/// of the page's RMS.
pub const DEFAULT_TOLERANCE: f64 = 1e-6;

/// A filter cascade prepared for pages: its steady-state `zi`, SciPy's `padlen`, and the real-data
/// padding each side that makes pages seamless.
#[derive(Debug, Clone)]
pub struct FilterPlan {
    sos: Sos,
    zi: Vec<[f64; 2]>,
    edge: usize,
    padding: usize,
    phase: Phase,
}

impl FilterPlan {
    /// Plan with the default tolerance (1e-6 of the page's RMS).
    ///
    /// # Errors
    /// [`DspError::InvalidParameter`] when the cascade is unstable.
    pub fn new(sos: Sos, phase: Phase) -> Result<Self> {
        Self::with_tolerance(sos, phase, DEFAULT_TOLERANCE)
    }

    /// Plan whose pages differ from the whole-recording filter by less than `tolerance` of the
    /// page's RMS (before [`SAFETY`]).
    ///
    /// # Errors
    /// [`DspError::InvalidParameter`] when the cascade is unstable or `tolerance` is not in (0, 1).
    pub fn with_tolerance(sos: Sos, phase: Phase, tolerance: f64) -> Result<Self> {
        if !(tolerance > 0.0 && tolerance < 1.0) {
            return Err(DspError::InvalidParameter {
                field: "tolerance",
                reason: format!("must be in (0, 1), got {tolerance}"),
            });
        }
        let r = sos.max_pole_radius();
        if r >= 1.0 {
            return Err(DspError::InvalidParameter {
                field: "sos",
                reason: format!("unstable cascade: pole radius {r} >= 1"),
            });
        }
        let edge = sos.default_padlen();
        let too_slow = || DspError::InvalidParameter {
            field: "filter",
            reason: format!(
                "the cascade's start-up transient lasts more than {MAX_PADDING} samples \
                 (pole radius {r}): a cut-off this low for this sample rate cannot make \
                 seamless pages"
            ),
        };
        // The response decays like r^n and must fall by about 1e-10: that takes over 16 time
        // constants, so a time constant above MAX_PADDING / 16 is refused without running it.
        if 1.0 / (1.0 - r) > (MAX_PADDING / 16) as f64 {
            return Err(too_slow());
        }
        let padding = transient_len(&sos, tolerance * SAFETY)
            .ok_or_else(too_slow)?
            .max(edge + 1);
        Ok(Self {
            zi: sos.zi(),
            sos,
            edge,
            padding,
            phase,
        })
    }

    /// The cascade.
    pub fn sos(&self) -> &Sos {
        &self.sos
    }

    /// Zero-phase or causal.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// SciPy's `padlen` (odd reflection at the recording's edges).
    pub fn edge_padlen(&self) -> usize {
        self.edge
    }

    /// Samples of real data needed before the page (unless the recording starts sooner).
    pub fn padding_before(&self) -> usize {
        self.padding
    }

    /// Samples of real data needed after the page (unless the recording ends sooner); 0 when causal.
    pub fn padding_after(&self) -> usize {
        match self.phase {
            Phase::ZeroPhase => self.padding,
            Phase::Causal => 0,
        }
    }

    /// The shortest recording this plan can filter (SciPy refuses `len <= padlen` too).
    pub fn min_recording_len(&self) -> usize {
        self.edge + 1
    }

    /// Read range for page `[start, end)` of a recording of `n` samples: the page plus the padding,
    /// clipped to the recording.
    pub fn read_range(&self, page: Range<usize>, n: usize) -> Range<usize> {
        page.start.saturating_sub(self.padding_before())..(page.end + self.padding_after()).min(n)
    }

    /// Filter one channel's page. `data` is the page with its padding, `page` the page's range
    /// inside `data`; returns exactly the page's samples.
    ///
    /// # Errors
    /// [`DspError::InsufficientPadding`] when a side has less padding than the plan needs and is not
    /// a recording edge; [`DspError::TooShort`] when an edge block is too short to reflect;
    /// [`DspError::ShapeMismatch`] when `page` is not inside `data`.
    pub fn filter_page(
        &self,
        data: &[f64],
        page: Range<usize>,
        edges: PageEdges,
    ) -> Result<Vec<f64>> {
        let layout = self.layout(data.len(), page.clone(), edges)?;
        let mut work = vec![[0.0f64; 1]; layout.work_len];
        for (w, v) in work[layout.data_offset..].iter_mut().zip(data) {
            *w = [*v];
        }
        self.run(&mut work, &layout);
        Ok(work[layout.page.clone()].iter().map(|v| v[0]).collect())
    }

    /// Where data, extensions and the page sit in a working buffer (see [`PageLayout`]).
    pub(crate) fn layout(
        &self,
        data_len: usize,
        page: Range<usize>,
        edges: PageEdges,
    ) -> Result<PageLayout> {
        if page.start > page.end || page.end > data_len {
            return Err(DspError::ShapeMismatch {
                what: "page end",
                expected: data_len,
                got: page.end,
            });
        }
        let after = data_len - page.end;
        if !edges.at_recording_start && page.start < self.padding_before() {
            return Err(DspError::InsufficientPadding {
                side: "left",
                given: page.start,
                needed: self.padding_before(),
            });
        }
        if !edges.at_recording_end && after < self.padding_after() {
            return Err(DspError::InsufficientPadding {
                side: "right",
                given: after,
                needed: self.padding_after(),
            });
        }
        let zero_phase = self.phase == Phase::ZeroPhase;
        let reflect = |at: bool| if at && zero_phase { self.edge } else { 0 };
        let (left, right) = (
            reflect(edges.at_recording_start),
            reflect(edges.at_recording_end),
        );
        if (left > 0 || right > 0) && data_len <= self.edge {
            return Err(DspError::TooShort {
                operation: "sosfiltfilt",
                len: data_len,
                needed: self.edge + 1,
            });
        }
        // A causal page needs nothing after the page.
        let used = if zero_phase { data_len } else { page.end };
        Ok(PageLayout {
            work_len: left + used + right,
            data_offset: left,
            data_len: used,
            left_ext: left,
            right_ext: right,
            page: left + page.start..left + page.end,
        })
    }

    /// Fill the odd extensions and run the passes on a lane-interleaved working buffer whose data
    /// part (`layout.data_offset..+data_len`) is already written. The page's output is left in
    /// `work[layout.page]`.
    pub(crate) fn run<const L: usize>(&self, work: &mut [[f64; L]], layout: &PageLayout) {
        let (off, n, edge) = (layout.data_offset, layout.data_len, self.edge);
        if layout.left_ext > 0 {
            let (ext, data) = work.split_at_mut(off);
            for (i, e) in ext.iter_mut().enumerate() {
                for l in 0..L {
                    e[l] = 2.0 * data[0][l] - data[edge - i][l];
                }
            }
        }
        if layout.right_ext > 0 {
            let (data, ext) = work.split_at_mut(off + n);
            let last = data.len() - 1;
            for (j, e) in ext.iter_mut().enumerate() {
                for l in 0..L {
                    e[l] = 2.0 * data[last][l] - data[last - 1 - j][l];
                }
            }
        }
        let sections = self.sos.sections();
        let mut state: Vec<LaneState<L>> = vec![[[0.0; L]; 2]; sections.len()];
        let work = &mut work[..layout.work_len];
        match self.phase {
            Phase::ZeroPhase => {
                lanes::steady_state(&self.zi, &work[0], &mut state);
                lanes::forward(sections, &mut state, work);
                let last = work[work.len() - 1];
                lanes::steady_state(&self.zi, &last, &mut state);
                lanes::backward(sections, &mut state, &mut work[layout.page.start..]);
            }
            Phase::Causal => {
                lanes::steady_state(&self.zi, &work[0], &mut state);
                lanes::forward(sections, &mut state, &mut work[..layout.page.end]);
            }
        }
    }
}

/// Positions inside a page's working buffer: `[left reflection | data | right reflection]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageLayout {
    /// Total samples in the working buffer.
    pub(crate) work_len: usize,
    /// Where the real data starts.
    pub(crate) data_offset: usize,
    /// How many real samples are used.
    pub(crate) data_len: usize,
    /// Samples of odd reflection before the data (recording start, zero-phase only).
    pub(crate) left_ext: usize,
    /// Samples of odd reflection after the data (recording end, zero-phase only).
    pub(crate) right_ext: usize,
    /// The page inside the working buffer.
    pub(crate) page: Range<usize>,
}

/// Longest padding a plan may need, in samples (68 min at 256 Hz, 8.5 min at 2 kHz): a 0.01 Hz
/// high-pass at 256 Hz needs about a fifth of it. It bounds both a page's read and the start-up
/// analysis below, whose cost a request's cut-off would otherwise set.
pub const MAX_PADDING: usize = 1 << 20;

/// Samples after which any start-up state error's effect on the output stays below `threshold`
/// (per unit of state error, including the backward pass's gain); `None` beyond
/// [`MAX_PADDING`].
fn transient_len(sos: &Sos, threshold: f64) -> Option<usize> {
    let sections = sos.sections();
    let ns = sections.len();
    // The slowest pole's time constant in samples: the window over which the response must stay
    // small before we believe it has died out (a damped oscillation cannot hide longer).
    let r = sos.max_pole_radius();
    let window = ((1.0 / (1.0 - r)).ceil() as usize).max(64);

    // ||h||_1 of the cascade, the most the second pass can amplify the first pass's residue.
    let h1 = {
        let mut state = vec![[0.0; 2]; ns];
        let mut total = 0.0;
        let mut quiet = 0;
        let mut x = 1.0;
        let mut n = 0usize;
        while quiet < window {
            let mut v = x;
            for (s, z) in sections.iter().zip(state.iter_mut()) {
                let y = s[0] * v + z[0];
                z[0] = s[1] * v - s[4] * y + z[1];
                z[1] = s[2] * v - s[5] * y;
                v = y;
            }
            x = 0.0;
            total += v.abs();
            quiet = if v.abs() < 1e-16 * total.max(1.0) {
                quiet + 1
            } else {
                0
            };
            n += 1;
            // Still above 1e-16 of the sum this late: the rest cannot change ||h||_1 (the
            // start-up analysis below decides whether the cascade is too slow).
            if n > MAX_PADDING {
                break;
            }
        }
        total
    };
    let threshold = threshold / (1.0 + h1);

    // Zero-input responses from each unit state, run side by side.
    let k = 2 * ns;
    let mut states: Vec<Vec<[f64; 2]>> = (0..k)
        .map(|i| {
            let mut st = vec![[0.0; 2]; ns];
            st[i / 2][i % 2] = 1.0;
            st
        })
        .collect();
    let mut last_loud = 0usize;
    let mut n = 0usize;
    loop {
        let mut g = 0.0;
        for (i, st) in states.iter_mut().enumerate() {
            // Sections before the excited one have zero input and zero state: they stay at
            // exactly zero, so the run starts at its own section.
            let first = i / 2;
            let mut v = 0.0;
            for (s, z) in sections[first..].iter().zip(st[first..].iter_mut()) {
                let y = s[0] * v + z[0];
                z[0] = s[1] * v - s[4] * y + z[1];
                z[1] = s[2] * v - s[5] * y;
                v = y;
            }
            g += v.abs();
        }
        n += 1;
        if g >= threshold {
            last_loud = n;
        } else if n - last_loud >= window {
            return Some(last_loud);
        }
        if n > MAX_PADDING {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{BandType, FiltFiltPad, FilterSpec, butter, iirnotch, sosfiltfilt};

    fn signal(n: usize) -> Vec<f64> {
        // Deterministic EEG-like mix: DC offset, slow drift, alpha, mains, a little noise.
        let mut seed = 12345u64;
        (0..n)
            .map(|i| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 10.0;
                let t = i as f64 / 256.0;
                5000.0
                    + 300.0 * (0.05 * t).sin()
                    + 30.0 * (2.0 * std::f64::consts::PI * 10.0 * t).sin()
                    + 8.0 * (2.0 * std::f64::consts::PI * 50.0 * t).sin()
                    + noise
            })
            .collect()
    }

    #[test]
    fn cascades_too_slow_for_seamless_pages_are_refused_quickly() {
        let plan = |h: f64, fs: f64| {
            let spec = FilterSpec {
                highpass: Some(h),
                ..FilterSpec::default()
            };
            FilterPlan::new(spec.build(fs).unwrap(), Phase::ZeroPhase)
        };
        // Infraslow at EEG rates still plans (0.01 Hz at 256 Hz: about 5 minutes each side).
        let p = plan(0.01, 256.0).unwrap();
        assert!(p.padding_before() > 256 * 60 && p.padding_before() <= MAX_PADDING);
        // Far below: refused by the time-constant bound, or by the cap while measuring.
        for (h, fs) in [(1e-4, 256.0), (1e-8, 256.0), (0.002, 2048.0)] {
            match plan(h, fs) {
                Err(DspError::InvalidParameter {
                    field: "filter",
                    reason,
                }) => {
                    assert!(reason.contains(&MAX_PADDING.to_string()), "{reason}")
                }
                other => panic!("{h} Hz at {fs} Hz: {other:?}"),
            }
        }
    }

    #[test]
    fn padding_grows_as_the_cutoff_falls() {
        let p = |f: f64| {
            FilterPlan::new(
                butter(4, &[f], BandType::Highpass, 256.0).unwrap(),
                Phase::ZeroPhase,
            )
            .unwrap()
            .padding_before()
        };
        let (a, b) = (p(0.5), p(0.1));
        let std = FilterSpec {
            highpass: Some(0.5),
            lowpass: Some(70.0),
            notch: vec![50.0],
            ..Default::default()
        };
        let c = FilterPlan::new(std.build(256.0).unwrap(), Phase::ZeroPhase)
            .unwrap()
            .padding_before();
        eprintln!("padding at 256 Hz: hp 0.5 = {a}, hp 0.1 = {b}, hp 0.5 + lp 70 + notch 50 = {c}");
        assert!(a > 256 * 8 && a < 256 * 30, "{a}");
        assert!(b > 4 * a && b < 6 * a, "{a} {b}");
    }

    #[test]
    fn pages_equal_whole_recording_filtfilt() {
        let fs = 256.0;
        let sos = butter(4, &[0.5], BandType::Highpass, fs)
            .unwrap()
            .then(&butter(4, &[70.0], BandType::Lowpass, fs).unwrap())
            .then(&iirnotch(50.0, 30.0, fs).unwrap());
        let x = signal(256 * 120);
        let whole = sosfiltfilt(&sos, &x, FiltFiltPad::Odd).unwrap();
        for phase in [Phase::ZeroPhase, Phase::Causal] {
            let plan = FilterPlan::new(sos.clone(), phase).unwrap();
            let reference = match phase {
                Phase::ZeroPhase => whole.clone(),
                Phase::Causal => {
                    let zi: Vec<[f64; 2]> = sos
                        .zi()
                        .iter()
                        .map(|z| [z[0] * x[0], z[1] * x[0]])
                        .collect();
                    crate::dsp::sosfilt(&sos, &x, Some(&zi)).unwrap().0
                }
            };
            let page_len = 256 * 10;
            for start in (0..x.len()).step_by(page_len) {
                let end = (start + page_len).min(x.len());
                let read = plan.read_range(start..end, x.len());
                let edges = PageEdges::of_block(read.start, read.end, x.len());
                let got = plan
                    .filter_page(
                        &x[read.clone()],
                        start - read.start..end - read.start,
                        edges,
                    )
                    .unwrap();
                let want = &reference[start..end];
                let rms = (want.iter().map(|v| v * v).sum::<f64>() / want.len() as f64).sqrt();
                let err = got
                    .iter()
                    .zip(want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(
                    err <= 1e-6 * rms,
                    "{phase:?} page at {start}: err {err} rms {rms}"
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn any_page_with_its_padding_equals_the_whole(
            start in 0usize..256 * 90,
            len in 1usize..256 * 25,
            cut in 0.3f64..3.0,
            order in 1usize..=8,
            extra in 0usize..500,
        ) {
            let fs = 256.0;
            let x = signal(256 * 90);
            let start = start.min(x.len() - 1);
            let end = (start + len).min(x.len());
            let sos = butter(order, &[cut], BandType::Highpass, fs).unwrap();
            let whole = sosfiltfilt(&sos, &x, FiltFiltPad::Odd).unwrap();
            let plan = FilterPlan::new(sos, Phase::ZeroPhase).unwrap();
            // Reading more than the plan asks for is allowed.
            let lo = start.saturating_sub(plan.padding_before() + extra);
            let hi = (end + plan.padding_after() + extra).min(x.len());
            let got = plan.filter_page(&x[lo..hi], start - lo..end - lo, PageEdges::of_block(lo, hi, x.len())).unwrap();
            let want = &whole[start..end];
            let rms = (want.iter().map(|v| v * v).sum::<f64>() / want.len() as f64).sqrt();
            for (a, b) in got.iter().zip(want) {
                proptest::prop_assert!((a - b).abs() <= 1e-6 * rms.max(1e-9));
            }
        }
    }

    #[test]
    fn missing_padding_is_refused() {
        let plan = FilterPlan::new(
            butter(2, &[1.0], BandType::Highpass, 100.0).unwrap(),
            Phase::ZeroPhase,
        )
        .unwrap();
        let x = vec![0.0; 10];
        let e = plan
            .filter_page(&x, 2..8, PageEdges::default())
            .unwrap_err();
        assert!(matches!(
            e,
            DspError::InsufficientPadding { side: "left", .. }
        ));
    }
}
