//! The page pipeline: montage -> filter cascade -> crop -> min/max per pixel (or samples), on a
//! `channels x samples` block in physical units that carries the plan's real-data padding.
//!
//! The montage runs first: it is linear, as is the filter, so filtering the derivations equals
//! deriving the filtered channels, and a double banana filters 18 rows instead of 32. Rows are
//! processed in groups of 4 to 16 derivations written side by side into one working buffer (SIMD
//! across channels; the width is chosen per plan so the groups fill the rayon pool evenly), groups run on rayon's pool, and every buffer is owned by
//! the [`PageProcessor`] and reused from page to page: after the first page of a given size, a page
//! allocates nothing but rayon's task bookkeeping.

use super::decimate::column_range;
use super::error::{DspError, Result};
use super::page::Phase;
use super::page::{FilterPlan, PageEdges, PageLayout};
use super::spec::FilterSpec;
use crate::montage::{InputChannel, Montage, MontageMatrix};
use ndarray::ArrayView2;
use rayon::prelude::*;
use std::ops::Range;

/// Widest page in pixel columns: beyond any screen (the overview's limit too), and what keeps a
/// min/max page's arrays (`derivations × px`, twice) from being sized by a request alone.
pub const MAX_PX: usize = 65_536;

/// Everything that stays the same from page to page: montage, filter, output width.
#[derive(Debug, Clone)]
pub struct PagePlan {
    montage: MontageMatrix,
    filter: Option<FilterPlan>,
    px: Option<usize>,
}

impl PagePlan {
    /// A plan. `px` asks for min/max pairs per pixel column instead of samples.
    ///
    /// # Errors
    /// [`DspError::InvalidParameter`] when `px` is `Some(0)` or above [`MAX_PX`].
    pub fn try_new(
        montage: MontageMatrix,
        filter: Option<FilterPlan>,
        px: Option<usize>,
    ) -> Result<Self> {
        match px {
            Some(0) => {
                return Err(DspError::InvalidParameter {
                    field: "px",
                    reason: "must be at least 1".into(),
                });
            }
            Some(px) if px > MAX_PX => {
                return Err(DspError::InvalidParameter {
                    field: "px",
                    reason: format!("{px} columns is above the limit of {MAX_PX}"),
                });
            }
            _ => {}
        }
        Ok(Self {
            montage,
            filter,
            px,
        })
    }

    /// The whole plan from what a viewer or `theta window` asks for: montage, filter spec, phase,
    /// pixel width, against the recording's channels (all at sample rate `fs`).
    ///
    /// # Errors
    /// [`DspError::Montage`] when no derivation can be formed; the filter spec's validation errors;
    /// [`DspError::InvalidParameter`] for `px == Some(0)` or above [`MAX_PX`].
    pub fn build(
        montage: &Montage,
        channels: &[InputChannel],
        filter: &FilterSpec,
        phase: Phase,
        fs: f64,
        px: Option<usize>,
    ) -> Result<Self> {
        let montage = montage.resolve(channels)?;
        let filter = filter
            .build_opt(fs)?
            .map(|sos| FilterPlan::new(sos, phase))
            .transpose()?;
        Self::try_new(montage, filter, px)
    }

    /// The resolved montage.
    pub fn montage(&self) -> &MontageMatrix {
        &self.montage
    }

    /// The filter plan, if any.
    pub fn filter(&self) -> Option<&FilterPlan> {
        self.filter.as_ref()
    }

    /// Pixel columns, if min/max output.
    pub fn px(&self) -> Option<usize> {
        self.px
    }

    /// Samples of real data to read before the page.
    pub fn padding_before(&self) -> usize {
        self.filter.as_ref().map_or(0, FilterPlan::padding_before)
    }

    /// Samples of real data to read after the page.
    pub fn padding_after(&self) -> usize {
        self.filter.as_ref().map_or(0, FilterPlan::padding_after)
    }

    /// What to read for page `[start, end)` of a recording of `n` samples.
    pub fn read_range(&self, page: Range<usize>, n: usize) -> Range<usize> {
        page.start.saturating_sub(self.padding_before())..(page.end + self.padding_after()).min(n)
    }
}

/// One page's input: the block read from the store (page plus padding) and where the page sits.
#[derive(Debug, Clone)]
pub struct PageInput<'a> {
    /// `channels x samples`, physical units, rows in the order the montage was resolved against.
    pub data: ArrayView2<'a, f64>,
    /// The page's columns inside `data`.
    pub page: Range<usize>,
    /// Whether `data` starts/ends at the recording's first/last sample.
    pub edges: PageEdges,
}

/// What a page holds: samples, or min/max per pixel column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// `derivations x page samples`.
    Samples,
    /// `derivations x px`, once for minima and once for maxima.
    MinMax,
}

/// A processed page. Its buffers belong to the [`PageProcessor`] and are overwritten by the next page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    labels: Vec<String>,
    width: usize,
    minmax: bool,
    a: Vec<f64>,
    b: Vec<f64>,
}

impl Page {
    /// Row labels (derivation names), in montage order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Samples or min/max.
    pub fn kind(&self) -> PageKind {
        if self.minmax {
            PageKind::MinMax
        } else {
            PageKind::Samples
        }
    }

    /// Columns per row (page samples, or pixels).
    pub fn width(&self) -> usize {
        self.width
    }

    fn view<'s>(&self, v: &'s [f64]) -> ArrayView2<'s, f64> {
        ArrayView2::from_shape(
            (self.labels.len(), self.width),
            &v[..self.labels.len() * self.width],
        )
        .expect("page buffers are sized rows x width")
    }

    /// The samples (`derivations x samples`), for a [`PageKind::Samples`] page.
    pub fn samples(&self) -> Option<ArrayView2<'_, f64>> {
        (!self.minmax).then(|| self.view(&self.a))
    }

    /// Per-pixel minima (`derivations x px`), for a [`PageKind::MinMax`] page.
    pub fn min(&self) -> Option<ArrayView2<'_, f64>> {
        self.minmax.then(|| self.view(&self.a))
    }

    /// Per-pixel maxima (`derivations x px`), for a [`PageKind::MinMax`] page.
    pub fn max(&self) -> Option<ArrayView2<'_, f64>> {
        self.minmax.then(|| self.view(&self.b))
    }
}

/// Lane widths the kernels are compiled for; [`PageProcessor::new`] picks one per plan.
const LANE_WIDTHS: [usize; 6] = [4, 6, 8, 9, 12, 16];

/// Pick the group width for `rows` derivations on `threads` workers: the least wall-clock work
/// (`rounds of groups x lanes per group`), then the wider group (more independent recurrences to
/// hide latency).
/// A double banana (18 rows) on 2 threads gets 2 groups of 9; 32 referential rows get 2 x 16.
fn pick_lanes(rows: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    let mut best = (usize::MAX, usize::MAX, 0);
    for &l in &LANE_WIDTHS {
        let groups = rows.div_ceil(l).max(1);
        let key = (groups.div_ceil(threads) * l, usize::MAX - l, 0);
        if key < best {
            best = key;
        }
    }
    usize::MAX - best.1
}

/// Runs a [`PagePlan`] page after page with reusable buffers (one per worker thread or viewer).
#[derive(Debug)]
pub struct PageProcessor {
    plan: PagePlan,
    lanes: usize,
    groups: Vec<Vec<f64>>,
    references: Vec<Vec<f64>>,
    page: Page,
}

impl PageProcessor {
    /// A processor for `plan`, with its group width chosen for the current rayon pool's size.
    pub fn new(plan: PagePlan) -> Self {
        let lanes = pick_lanes(plan.montage.n_derivations(), rayon::current_num_threads());
        let n_groups = plan.montage.n_derivations().div_ceil(lanes);
        let page = Page {
            labels: plan.montage.labels().to_vec(),
            minmax: plan.px.is_some(),
            ..Page::default()
        };
        Self {
            plan,
            lanes,
            groups: vec![Vec::new(); n_groups],
            references: Vec::new(),
            page,
        }
    }

    /// The plan.
    pub fn plan(&self) -> &PagePlan {
        &self.plan
    }

    /// Derivations filtered side by side in one SIMD group.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Process one page.
    ///
    /// # Errors
    /// [`DspError::ShapeMismatch`] when the block's channel count differs from the montage's
    /// inputs, the page is outside the block or the block is not row-contiguous;
    /// [`DspError::InsufficientPadding`] / [`DspError::TooShort`] from the filter plan.
    pub fn process(&mut self, input: PageInput<'_>) -> Result<&Page> {
        match self.lanes {
            4 => self.process_lanes::<4>(input),
            6 => self.process_lanes::<6>(input),
            8 => self.process_lanes::<8>(input),
            9 => self.process_lanes::<9>(input),
            12 => self.process_lanes::<12>(input),
            _ => self.process_lanes::<16>(input),
        }
    }

    fn process_lanes<const L: usize>(&mut self, input: PageInput<'_>) -> Result<&Page> {
        debug_assert_eq!(L, self.lanes);
        let montage = &self.plan.montage;
        let data = input.data;
        if data.nrows() != montage.n_inputs() {
            return Err(DspError::ShapeMismatch {
                what: "channels",
                expected: montage.n_inputs(),
                got: data.nrows(),
            });
        }
        if !data.is_standard_layout() {
            return Err(DspError::ShapeMismatch {
                what: "row-contiguous block",
                expected: 1,
                got: 0,
            });
        }
        let layout = match &self.plan.filter {
            Some(f) => f.layout(data.ncols(), input.page.clone(), input.edges)?,
            None => {
                if input.page.start > input.page.end || input.page.end > data.ncols() {
                    return Err(DspError::ShapeMismatch {
                        what: "page end",
                        expected: data.ncols(),
                        got: input.page.end,
                    });
                }
                PageLayout {
                    work_len: input.page.len(),
                    data_offset: 0,
                    data_len: input.page.len(),
                    left_ext: 0,
                    right_ext: 0,
                    page: 0..input.page.len(),
                }
            }
        };
        // Data columns the working buffer's data part holds.
        let src_start = if self.plan.filter.is_some() {
            0
        } else {
            input.page.start
        };
        let src = src_start..src_start + layout.data_len;

        self.references
            .resize_with(montage.n_references(), Vec::new);
        montage.compute_references(data, src.clone(), &mut self.references);

        let n_rows = montage.n_derivations();
        let width = self.plan.px.unwrap_or(layout.page.len());
        let page = &mut self.page;
        page.width = width;
        page.a.resize(self.groups.len() * L * width, 0.0);
        if page.minmax {
            page.b.resize(page.a.len(), 0.0);
        }
        let (filter, px, references) = (self.plan.filter.as_ref(), self.plan.px, &self.references);
        let chunk = (L * width).max(1);
        let mut b_chunks: Vec<&mut [f64]> = if page.minmax {
            page.b.chunks_mut(chunk).collect()
        } else {
            Vec::new()
        };
        b_chunks.resize_with(self.groups.len(), Default::default);
        self.groups
            .par_iter_mut()
            .zip(page.a.par_chunks_mut(chunk))
            .zip(b_chunks.into_par_iter())
            .enumerate()
            .for_each(|(g, ((buf, out_a), out_b))| {
                // Spare lanes of the last group stay zero: the buffer is zeroed when (re)sized, the
                // montage writes zeros there, and filtering zeros from a zero state gives zeros.
                if buf.len() != layout.work_len * L {
                    buf.clear();
                    buf.resize(layout.work_len * L, 0.0);
                }
                let work: &mut [[f64; L]] = buf.as_chunks_mut::<L>().0;
                let first = g * L;
                let lanes = (n_rows - first).min(L);
                let data_part = &mut work[layout.data_offset..layout.data_offset + layout.data_len];
                montage.derive_group(first, lanes, data, src.clone(), references, data_part);
                if let Some(f) = filter {
                    f.run(work, &layout);
                }
                let p = &work[layout.page.clone()];
                match px {
                    Some(px) => minmax_lanes(p, px, out_a, out_b, width),
                    None => {
                        for (t, v) in p.iter().enumerate() {
                            for l in 0..L {
                                out_a[l * width + t] = v[l];
                            }
                        }
                    }
                }
            });
        Ok(&self.page)
    }
}

/// Min/max per pixel column for every lane at once: one pass over the page, columns as
/// [`column_range`]; lane `l`'s row goes to `min[l * width..]` / `max[l * width..]`.
fn minmax_lanes<const L: usize>(
    p: &[[f64; L]],
    px: usize,
    min: &mut [f64],
    max: &mut [f64],
    width: usize,
) {
    let n = p.len();
    if n == 0 {
        min.fill(f64::NAN);
        max.fill(f64::NAN);
        return;
    }
    for j in 0..px {
        let r = column_range(j, n, px);
        let (mut lo, mut hi) = ([f64::INFINITY; L], [f64::NEG_INFINITY; L]);
        for v in &p[r] {
            for l in 0..L {
                lo[l] = lo[l].min(v[l]);
                hi[l] = hi[l].max(v[l]);
            }
        }
        for l in 0..L {
            min[l * width + j] = lo[l];
            max[l * width + j] = hi[l];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{FiltFiltPad, FilterSpec, Phase, minmax_columns, sosfiltfilt};
    use crate::montage::{InputChannel, Montage};
    use ndarray::Array2;

    fn block(ch: usize, n: usize) -> Array2<f64> {
        Array2::from_shape_fn((ch, n), |(c, t)| {
            let t = t as f64 / 256.0;
            1000.0 * c as f64
                + 40.0 * (2.0 * std::f64::consts::PI * (3.0 + c as f64) * t).sin()
                + 5.0 * (2.0 * std::f64::consts::PI * 50.0 * t).cos()
        })
    }

    #[test]
    fn pixel_widths_outside_one_to_max_px_are_refused() {
        let chans = [InputChannel::new("Fp1"), InputChannel::new("F7")];
        let plan = |px| {
            PagePlan::build(
                &Montage::Referential,
                &chans,
                &FilterSpec::default(),
                Phase::ZeroPhase,
                256.0,
                Some(px),
            )
        };
        assert!(plan(1).is_ok());
        assert!(plan(MAX_PX).is_ok());
        for px in [0, MAX_PX + 1, usize::MAX] {
            assert!(
                matches!(
                    plan(px),
                    Err(DspError::InvalidParameter { field: "px", .. })
                ),
                "{px}"
            );
        }
    }

    #[test]
    fn pipeline_equals_montage_then_filtfilt() {
        let labels = [
            "Fp1", "F7", "T7", "P7", "O1", "F3", "C3", "P3", "Fz", "Cz", "Pz",
        ];
        let chans: Vec<InputChannel> = labels.iter().map(|l| InputChannel::new(*l)).collect();
        let montage = Montage::DoubleBanana.resolve(&chans).unwrap();
        let sos = FilterSpec {
            highpass: Some(1.0),
            lowpass: Some(40.0),
            notch: vec![50.0],
            ..Default::default()
        }
        .build(256.0)
        .unwrap();
        let x = block(labels.len(), 256 * 20);
        let derived = montage.apply(x.view()).unwrap();
        for px in [None, Some(300)] {
            let plan = PagePlan::try_new(
                montage.clone(),
                Some(crate::dsp::FilterPlan::new(sos.clone(), Phase::ZeroPhase).unwrap()),
                px,
            )
            .unwrap();
            let mut proc = PageProcessor::new(plan);
            // The whole block is the recording: both edges are real edges.
            let page = 256 * 5..256 * 9;
            let out = proc
                .process(PageInput {
                    data: x.view(),
                    page: page.clone(),
                    edges: PageEdges {
                        at_recording_start: true,
                        at_recording_end: true,
                    },
                })
                .unwrap();
            assert_eq!(out.labels(), montage.labels());
            for d in 0..montage.n_derivations() {
                let want = sosfiltfilt(&sos, derived.row(d).as_slice().unwrap(), FiltFiltPad::Odd)
                    .unwrap();
                let want = &want[page.clone()];
                match px {
                    None => {
                        let got = out.samples().unwrap();
                        for (a, b) in got.row(d).iter().zip(want) {
                            assert!((a - b).abs() < 1e-9, "{a} {b}");
                        }
                    }
                    Some(px) => {
                        let mm = minmax_columns(want, px);
                        for j in 0..px {
                            assert!((out.min().unwrap()[(d, j)] - mm.min[j]).abs() < 1e-9);
                            assert!((out.max().unwrap()[(d, j)] - mm.max[j]).abs() < 1e-9);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn lane_widths_fill_the_pool() {
        assert_eq!(pick_lanes(18, 2), 9);
        assert_eq!(pick_lanes(18, 1), 9);
        assert_eq!(pick_lanes(32, 2), 16);
        assert_eq!(pick_lanes(1, 2), 4);
        assert_eq!(pick_lanes(19, 2), 12);
        for rows in 1..40 {
            for threads in 1..5 {
                assert!(LANE_WIDTHS.contains(&pick_lanes(rows, threads)));
            }
        }
    }

    #[test]
    fn plan_from_a_request() {
        let chans: Vec<InputChannel> = ["Fp1", "F7", "Cz", "Pz"]
            .iter()
            .map(|l| InputChannel::new(*l))
            .collect();
        let spec = FilterSpec {
            highpass: Some(0.5),
            ..Default::default()
        };
        let plan = PagePlan::build(
            &Montage::DoubleBanana,
            &chans,
            &spec,
            Phase::Causal,
            256.0,
            Some(100),
        )
        .unwrap();
        assert_eq!(plan.montage().labels(), ["Fp1-F7", "Cz-Pz"]);
        assert!(plan.padding_before() > 0);
        assert_eq!(plan.padding_after(), 0);
        let plan = PagePlan::build(
            &Montage::Referential,
            &chans,
            &FilterSpec::default(),
            Phase::ZeroPhase,
            256.0,
            None,
        )
        .unwrap();
        assert!(plan.filter().is_none());
        assert_eq!(plan.read_range(10..20, 100), 10..20);
        let bad = FilterSpec {
            lowpass: Some(200.0),
            ..Default::default()
        };
        assert!(
            PagePlan::build(
                &Montage::Referential,
                &chans,
                &bad,
                Phase::ZeroPhase,
                256.0,
                None
            )
            .is_err()
        );
        assert!(matches!(
            PagePlan::build(
                &Montage::DoubleBanana,
                &chans[..1],
                &spec,
                Phase::ZeroPhase,
                256.0,
                None
            ),
            Err(DspError::Montage(_))
        ));
    }

    #[test]
    fn unfiltered_page_is_the_montage() {
        let chans: Vec<InputChannel> = ["Fp1", "Fp2", "Cz"]
            .iter()
            .map(|l| InputChannel::new(*l))
            .collect();
        let montage = Montage::Average.resolve(&chans).unwrap();
        let x = block(3, 100);
        let mut proc = PageProcessor::new(PagePlan::try_new(montage.clone(), None, None).unwrap());
        let out = proc
            .process(PageInput {
                data: x.view(),
                page: 10..60,
                edges: PageEdges::default(),
            })
            .unwrap();
        let want = montage.apply(x.view()).unwrap();
        let got = out.samples().unwrap();
        for d in 0..3 {
            for t in 0..50 {
                assert!((got[(d, t)] - want[(d, t + 10)]).abs() < 1e-12);
            }
        }
        let bad = Array2::<f64>::zeros((2, 100));
        assert!(
            proc.process(PageInput {
                data: bad.view(),
                page: 0..10,
                edges: PageEdges::default()
            })
            .is_err()
        );
    }
}
