//! Pages and spectra computed from a stored recording: what the viewer, `theta window` with
//! filters, and the service's window/PSD endpoints call.
//!
//! [`read_view`] reads one page of a [`Recording`] with the real-data padding its filter needs
//! (DESIGN.md §4, [`crate::dsp::page`]), so that consecutive pages join seamlessly and each equals
//! the filter of the whole recording cropped to the page; at the recording's first and last
//! samples the page is computed exactly as SciPy's `sosfiltfilt` (odd reflection). The CPU part
//! (montage, filter, crop, min/max) runs on Tokio's blocking pool and inside it on rayon, with a
//! [`PageProcessor`] taken from a small process-wide pool so its plan (the padding computed from
//! the filter design) and buffers are reused from page to page.
//!
//! [`psd`] computes a Welch power spectral density (SciPy's `welch`, density scaling) per channel,
//! with the default EEG band powers.
//!
//! A page holds one sample rate. When the channels asked for have several, the page keeps the
//! rate at which the montage forms the most derivations (or, without a montage, the rate of the
//! most channels) and says in a [`ViewWarning::ChannelsLeftOut`] which channels it left out.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{LazyLock, Mutex};

use ndarray::{Array2, Axis, Slice};
use rayon::prelude::*;
use theta_engine::store::{
    ChannelSelection, ErrorCategory, Recording, RecordingId, StoreError, Units, WindowBlock,
    WindowRequest, check_window_size,
};

use crate::dsp::{
    BandPowers, DspError, FilterSpec, PageEdges, PageInput, PageKind, PagePlan, PageProcessor,
    Phase, Welch, default_bands,
};
use crate::montage::{InputChannel, Montage, MontageError, MontageWarning};

/// Errors of [`read_view`] and [`psd`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The store refused or failed the read (unknown channel, integrity failure…).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A filter or spectrum parameter is invalid, or the data is too short for it.
    #[error(transparent)]
    Dsp(#[from] DspError),
    /// The montage cannot be formed from the recording's channels.
    #[error(transparent)]
    Montage(#[from] MontageError),
    /// The span is empty, not finite, or outside the recording.
    #[error(
        "span start {start:?} s, duration {duration:?} s is outside recording {recording} (0 to {end} s)"
    )]
    OutOfRange {
        /// The recording.
        recording: RecordingId,
        /// Requested start, seconds.
        start: f64,
        /// Requested duration, seconds.
        duration: f64,
        /// The recording's end, seconds.
        end: f64,
    },
    /// No channel (of a usable sample rate) was selected.
    #[error("no channel of recording {recording} to read: {reason}")]
    NoChannels {
        /// The recording.
        recording: RecordingId,
        /// Why.
        reason: String,
    },
    /// The store returned a block that does not cover the range asked for (a bug).
    #[error(
        "store returned samples {got:?} of rate {sample_rate} Hz for a read of {wanted:?} in recording {recording}"
    )]
    ShortRead {
        /// The recording.
        recording: RecordingId,
        /// Sample rate of the block.
        sample_rate: f64,
        /// Global sample range asked for.
        wanted: Range<u64>,
        /// Global sample range returned.
        got: Range<u64>,
    },
    /// The blocking task computing the page panicked or was cancelled.
    #[error("page computation did not finish: {0}")]
    Task(String),
}

impl ViewError {
    /// Whether the caller (bad argument, unknown channel, span outside the recording), stored
    /// data (corruption) or the system is at fault: a service maps `Caller` to a 4xx.
    pub fn category(&self) -> ErrorCategory {
        match self {
            ViewError::Store(e) => e.category(),
            ViewError::Dsp(_)
            | ViewError::Montage(_)
            | ViewError::OutOfRange { .. }
            | ViewError::NoChannels { .. } => ErrorCategory::Caller,
            ViewError::ShortRead { .. } | ViewError::Task(_) => ErrorCategory::Internal,
        }
    }
}

/// Result alias of this module.
pub type Result<T, E = ViewError> = std::result::Result<T, E>;

/// What page to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRequest {
    /// Start in seconds from the recording start.
    pub start: f64,
    /// Duration in seconds: samples with `start <= t < start + duration`.
    pub duration: f64,
    /// The channels the montage may use (default all).
    pub channels: ChannelSelection,
    /// The montage; `None` shows the channels as recorded (`referential`).
    pub montage: Option<Montage>,
    /// Filter cascade (Butterworth high-/low-pass of `order`, notches); empty for none.
    pub filter: FilterSpec,
    /// Zero-phase (default) or causal.
    pub phase: Phase,
    /// Min/max pairs per pixel column instead of samples.
    pub px: Option<usize>,
    /// Labels (as recorded, or canonical 10-10 names) of channels marked bad: left out of average
    /// references and Laplacian means.
    pub bad_channels: Vec<String>,
    /// Most values (input channels × samples read, padding included) the page may read; a
    /// larger page is refused before anything is read. `None` for no limit (the command line);
    /// the service sets its configured limit.
    pub max_values: Option<u64>,
}

impl ViewRequest {
    /// All channels as recorded, unfiltered, zero-phase, samples.
    pub fn new(start: f64, duration: f64) -> Self {
        Self {
            start,
            duration,
            channels: ChannelSelection::All,
            montage: None,
            filter: FilterSpec::default(),
            phase: Phase::ZeroPhase,
            px: None,
            bad_channels: Vec::new(),
            max_values: None,
        }
    }
}

/// The rows of a page: samples, or min/max per pixel column.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewData {
    /// `rows x page samples`.
    Samples(Array2<f64>),
    /// `rows x px`, minima and maxima of the samples falling in each pixel column.
    MinMax {
        /// Per-column minima.
        min: Array2<f64>,
        /// Per-column maxima.
        max: Array2<f64>,
    },
}

/// Something the caller should know about a page that was nevertheless computed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ViewWarning {
    /// A derivation of the montage needs channels the recording lacks.
    DerivationLeftOut(MontageWarning),
    /// Channels at another sample rate than the page's were left out.
    ChannelsLeftOut {
        /// Their sample rate, Hz.
        sample_rate: f64,
        /// Their labels, as recorded.
        labels: Vec<String>,
    },
    /// The recording has a gap (EDF+D) inside the page or its padding: the filter runs across it
    /// as if the samples were contiguous.
    Discontinuous {
        /// Gaps inside the samples read.
        gaps: usize,
    },
}

impl std::fmt::Display for ViewWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ViewWarning::DerivationLeftOut(w) => w.fmt(f),
            ViewWarning::ChannelsLeftOut {
                sample_rate,
                labels,
            } => write!(
                f,
                "channels at {sample_rate} Hz left out (a page holds one sample rate): {}",
                labels.join(", ")
            ),
            ViewWarning::Discontinuous { gaps } => write!(
                f,
                "{gaps} recording gap(s) inside the page or its filter padding: filtered as contiguous"
            ),
        }
    }
}

/// A computed page.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The recording.
    pub recording: RecordingId,
    /// The montage's name (`referential` when none was asked for).
    pub montage: String,
    /// Row labels, in montage order.
    pub labels: Vec<String>,
    /// Signal indices of the channels read (the montage's inputs), in the order they were read.
    pub channels: Vec<usize>,
    /// Physical unit of the rows (from the first input channel, for example `uV`).
    pub unit: String,
    /// The finest quantisation step among the page's input channels, in `unit` per digital
    /// unit (`|physical range / digital range|`): the recording holds nothing finer, so text
    /// forms of the page may round to a small fraction of it.
    pub resolution: f64,
    /// Sample rate of the page, Hz.
    pub sample_rate: f64,
    /// Global index (from the recording's first sample, at this rate) of the page's first sample.
    pub first_sample: u64,
    /// Number of samples in the page.
    pub samples: usize,
    /// Time of the page's first sample, seconds from the recording start.
    pub start: f64,
    /// Samples of real data read before and after the page as filter padding.
    pub padding: (usize, usize),
    /// The rows.
    pub data: ViewData,
    /// Derivations and channels left out, gaps.
    pub warnings: Vec<ViewWarning>,
}

impl View {
    /// Samples or min/max.
    pub fn kind(&self) -> PageKind {
        match self.data {
            ViewData::Samples(_) => PageKind::Samples,
            ViewData::MinMax { .. } => PageKind::MinMax,
        }
    }
}

/// The channels a page reads: one sample rate, resolved against the montage.
struct Selection {
    spr: u32,
    channels: Vec<usize>,
    inputs: Vec<InputChannel>,
    warnings: Vec<ViewWarning>,
}

fn input_channels(rec: &Recording, channels: &[usize], bad: &[String]) -> Vec<InputChannel> {
    let canon = |s: &str| theta_engine::edf::normalize_label(s);
    channels
        .iter()
        .map(|&c| {
            let label = rec.signals()[c].label.trim().to_string();
            let is_bad = bad.iter().any(|b| {
                b.trim().eq_ignore_ascii_case(&label)
                    || canon(b).is_some_and(|n| Some(n) == canon(&label))
            });
            InputChannel { label, bad: is_bad }
        })
        .collect()
}

/// Picks the sample rate (see the module docs) and narrows the channels to the montage's inputs.
fn select(
    rec: &Recording,
    selection: &ChannelSelection,
    montage: &Montage,
    bad: &[String],
) -> Result<Selection> {
    let all = rec.resolve_channels(selection)?;
    let signals = rec.signals();
    let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
    for c in all {
        let spr = signals[c].samples_per_record;
        if spr == 0 {
            continue;
        }
        match groups.iter_mut().find(|(s, _)| *s == spr) {
            Some((_, v)) => v.push(c),
            None => groups.push((spr, vec![c])),
        }
    }
    if groups.is_empty() {
        return Err(ViewError::NoChannels {
            recording: rec.id(),
            reason: "the selection holds no signal with samples".into(),
        });
    }
    // Score each rate: derivations the montage forms there, then channel count.
    let mut best: Option<(usize, usize, usize)> = None; // (derivations, channels, group)
    let mut first_err = None;
    for (g, (_, chans)) in groups.iter().enumerate() {
        let inputs = input_channels(rec, chans, bad);
        match montage.resolve(&inputs) {
            Ok(m) => {
                let key = (m.n_derivations(), chans.len(), g);
                if best.is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
                    best = Some(key);
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let Some((_, _, g)) = best else {
        return Err(first_err
            .map(ViewError::Montage)
            .unwrap_or_else(|| ViewError::NoChannels {
                recording: rec.id(),
                reason: "no sample rate can form the montage".into(),
            }));
    };
    let rd = rec.timeline().record_duration();
    let mut warnings = Vec::new();
    for (i, (_, chans)) in groups.iter().enumerate() {
        // A montage of named electrodes only loses what it could have used at that rate (a
        // double banana does not miss a 1 Hz oximetry channel); "as recorded" loses every channel.
        let relevant = matches!(montage, Montage::Referential)
            || montage
                .resolve(&input_channels(rec, chans, bad))
                .is_ok_and(|m| m.n_derivations() > 0);
        if i != g && relevant {
            warnings.push(ViewWarning::ChannelsLeftOut {
                sample_rate: signals[chans[0]].sample_rate(rd),
                labels: chans
                    .iter()
                    .map(|&c| signals[c].label.trim().to_string())
                    .collect(),
            });
        }
    }
    let (spr, chans) = groups.swap_remove(g);
    // Read only what the montage uses: a double banana needs 19 of 32 channels.
    let inputs = input_channels(rec, &chans, bad);
    let used = montage.resolve(&inputs)?.used_inputs();
    let channels: Vec<usize> = used.iter().map(|&i| chans[i]).collect();
    let inputs = used.iter().map(|&i| inputs[i].clone()).collect();
    Ok(Selection {
        spr,
        channels,
        inputs,
        warnings,
    })
}

fn check_span(rec: &Recording, start: f64, duration: f64) -> Result<f64> {
    let end = rec.duration();
    let ok =
        start.is_finite() && duration.is_finite() && duration > 0.0 && start >= 0.0 && start < end;
    if !ok {
        return Err(ViewError::OutOfRange {
            recording: rec.id(),
            start,
            duration,
            end,
        });
    }
    Ok(start + duration)
}

/// Reads global samples `range` (at `spr` samples per record) of `channels`, physical units.
async fn read_samples(
    rec: &Recording,
    channels: &[usize],
    spr: u32,
    range: Range<u64>,
) -> Result<(Array2<f64>, usize)> {
    let tl = rec.timeline();
    let n_total = tl.num_records() * u64::from(spr);
    let fs = f64::from(spr) / tl.record_duration();
    // Half a sample before each wanted sample time, so rounding never drops or adds one.
    let half = 0.5 / fs;
    let t0 = (tl.sample_time(range.start, spr) - half).max(0.0);
    let t1 = if range.end >= n_total {
        tl.end()
    } else {
        tl.sample_time(range.end, spr) - half
    };
    let mut req = WindowRequest::new(t0, (t1 - t0).max(half))
        .channels(ChannelSelection::indices(channels.iter().copied()))
        .units(Units::Physical);
    // The viewer pages by the page, not by the padded read: no read-ahead of the padded span.
    req.read_ahead = Some(false);
    let w = rec.window(&req).await?;
    let block: WindowBlock = w
        .blocks
        .into_iter()
        .find(|b| b.samples_per_record == spr)
        .ok_or_else(|| ViewError::NoChannels {
            recording: rec.id(),
            reason: "the store returned no block at the page's rate".into(),
        })?;
    let got = block.first_sample..block.first_sample + block.len() as u64;
    if got.start > range.start || got.end < range.end {
        return Err(ViewError::ShortRead {
            recording: rec.id(),
            sample_rate: fs,
            wanted: range,
            got,
        });
    }
    let gaps = block
        .runs
        .iter()
        .filter(|r| {
            let idx = block.first_sample + r.column as u64;
            idx > range.start && idx < range.end
        })
        .count();
    let a = (range.start - got.start) as usize;
    let b = a + (range.end - range.start) as usize;
    let theta_engine::store::SampleData::Physical(data) = block.data else {
        unreachable!("physical units were asked for");
    };
    let data = if a == 0 && b == data.ncols() {
        data
    } else {
        data.slice_axis(Axis(1), Slice::from(a..b)).to_owned()
    };
    Ok((data, gaps))
}

/// Process-wide pool of page processors by plan, so the filter plan (whose padding is computed
/// from the design) and the page buffers are built once per viewer configuration.
static PROCESSORS: LazyLock<Mutex<HashMap<String, Vec<PageProcessor>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Plans kept in [`PROCESSORS`] before it is emptied (a handful of montage/filter settings are in
/// use at any time).
const MAX_POOLED_PLANS: usize = 32;

fn plan_key(
    montage: &Montage,
    inputs: &[InputChannel],
    filter: &FilterSpec,
    phase: Phase,
    fs: f64,
    px: Option<usize>,
) -> String {
    format!(
        "{montage:?}|{inputs:?}|{filter:?}|{phase:?}|{}|{px:?}",
        fs.to_bits()
    )
}

fn take_processor(key: &str) -> Option<PageProcessor> {
    let mut pool = PROCESSORS.lock().unwrap_or_else(|e| e.into_inner());
    pool.get_mut(key).and_then(Vec::pop)
}

fn return_processor(key: String, p: PageProcessor) {
    let mut pool = PROCESSORS.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() >= MAX_POOLED_PLANS && !pool.contains_key(&key) {
        pool.clear();
    }
    let v = pool.entry(key).or_default();
    // One per concurrent viewer is plenty; more would only hold memory.
    if v.len() < 4 {
        v.push(p);
    }
}

/// Computes one page of a stored recording: channels at one sample rate, montage, filter
/// cascade with real-data padding (odd reflection at the recording's edges, as SciPy's
/// `sosfiltfilt`), crop to the page, then samples or min/max per pixel column.
///
/// The rows follow the montage's derivation order; derivations whose channels are missing and
/// channels at another sample rate are left out and listed in [`View::warnings`].
///
/// # Errors
/// [`ViewError::OutOfRange`] for a span outside the recording; [`ViewError::Store`] for unknown
/// channels and store failures; [`ViewError::Montage`] when no derivation can be formed;
/// [`ViewError::Dsp`] for invalid filter parameters (a cut-off at or above Nyquist, `px == 0`…)
/// or a recording too short for the filter.
pub async fn read_view(rec: &Recording, req: &ViewRequest) -> Result<View> {
    let end = check_span(rec, req.start, req.duration)?;
    let montage = req.montage.clone().unwrap_or(Montage::Referential);
    let sel = select(rec, &req.channels, &montage, &req.bad_channels)?;
    let tl = rec.timeline();
    let spr = sel.spr;
    let fs = f64::from(spr) / tl.record_duration();
    let n_total = tl.num_records() * u64::from(spr);
    let page = tl.sample_range(req.start, end.min(tl.end()), spr);
    if page.is_empty() {
        return Err(ViewError::OutOfRange {
            recording: rec.id(),
            start: req.start,
            duration: req.duration,
            end: rec.duration(),
        });
    }

    let key = plan_key(&montage, &sel.inputs, &req.filter, req.phase, fs, req.px);
    let mut processor = match take_processor(&key) {
        Some(p) => p,
        None => {
            let plan = PagePlan::build(&montage, &sel.inputs, &req.filter, req.phase, fs, req.px)?;
            PageProcessor::new(plan)
        }
    };
    let mut warnings = sel.warnings;
    warnings.extend(
        processor
            .plan()
            .montage()
            .warnings()
            .iter()
            .cloned()
            .map(ViewWarning::DerivationLeftOut),
    );

    // Usize on 64-bit targets; recordings are far below 2^63 samples.
    let n = n_total as usize;
    let page_us = page.start as usize..page.end as usize;
    let read = processor.plan().read_range(page_us.clone(), n);
    // The read holds inputs × samples, and the filter's working buffers derivations × samples
    // (a custom montage may list more derivations than the recording has channels).
    let rows = sel
        .channels
        .len()
        .max(processor.plan().montage().n_derivations());
    check_window_size(rows as u64 * (read.end - read.start) as u64, req.max_values)?;
    let edges = PageEdges::of_block(read.start, read.end, n);
    let (data, gaps) =
        read_samples(rec, &sel.channels, spr, read.start as u64..read.end as u64).await?;
    if gaps > 0 {
        warnings.push(ViewWarning::Discontinuous { gaps });
    }
    let in_block = page_us.start - read.start..page_us.end - read.start;

    let task = tokio::task::spawn_blocking(move || {
        let out = processor
            .process(PageInput {
                data: data.view(),
                page: in_block,
                edges,
            })
            .map(|p| {
                let labels = p.labels().to_vec();
                let data = match p.kind() {
                    PageKind::Samples => {
                        ViewData::Samples(p.samples().expect("samples page").to_owned())
                    }
                    PageKind::MinMax => ViewData::MinMax {
                        min: p.min().expect("min/max page").to_owned(),
                        max: p.max().expect("min/max page").to_owned(),
                    },
                };
                (labels, data)
            });
        (processor, out)
    });
    let (processor, out) = task.await.map_err(|e| ViewError::Task(e.to_string()))?;
    let padding = (page_us.start - read.start, read.end - page_us.end);
    return_processor(key, processor);
    let (labels, data) = out?;
    let unit = sel
        .channels
        .first()
        .map(|&c| rec.signals()[c].physical_dimension.trim().to_string())
        .unwrap_or_default();
    let resolution = sel
        .channels
        .iter()
        .map(|&c| rec.signals()[c].calibration().0.abs())
        .fold(f64::INFINITY, f64::min);
    Ok(View {
        recording: rec.id(),
        montage: montage.name().to_string(),
        labels,
        channels: sel.channels,
        unit,
        resolution,
        sample_rate: fs,
        first_sample: page.start,
        samples: page_us.len(),
        start: tl.sample_time(page.start, spr),
        padding,
        data,
        warnings,
    })
}

/// One channel's spectrum.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelPsd {
    /// Signal index.
    pub index: usize,
    /// Label as recorded.
    pub label: String,
    /// Physical unit of the samples (the density is in unit²/Hz).
    pub unit: String,
    /// Sample rate, Hz.
    pub sample_rate: f64,
    /// Samples the estimate used.
    pub samples: usize,
    /// Segment length used.
    pub nperseg: usize,
    /// Bin frequencies, Hz.
    pub freqs: Vec<f64>,
    /// Power spectral density per bin, unit²/Hz.
    pub density: Vec<f64>,
    /// Delta, theta, alpha, beta, gamma powers (absolute in unit², and relative).
    pub bands: BandPowers,
}

/// Spectra of a span of a recording, one per channel (each at its own sample rate).
#[derive(Debug, Clone, PartialEq)]
pub struct PsdView {
    /// The recording.
    pub recording: RecordingId,
    /// Requested start, seconds.
    pub start: f64,
    /// Requested duration, seconds.
    pub duration: f64,
    /// One spectrum per channel, in the order asked for.
    pub channels: Vec<ChannelPsd>,
}

/// The default Welch segment: the power of two at or above two seconds of samples, at most the
/// whole span (SciPy shortens `nperseg` to the input the same way).
fn default_nperseg(fs: f64, n: usize) -> usize {
    let two_s = (2.0 * fs).ceil().max(1.0) as usize;
    two_s.next_power_of_two().min(n).max(1)
}

/// Welch power spectral density (SciPy's `welch`: periodic Hann window, 50 % overlap, constant
/// detrend, density scaling, one-sided) of each channel over `[start, start + duration)`, in
/// physical units, with the default band powers (delta 0.5–4, theta 4–8, alpha 8–13, beta
/// 13–30, gamma 30–80 Hz). `nperseg` defaults to the power of two at or above 2 s of samples.
///
/// # Errors
/// [`ViewError::OutOfRange`], [`ViewError::Store`] as for [`read_view`]; [`ViewError::Dsp`] when
/// `nperseg` is 0 or longer than the span.
pub async fn psd(
    rec: &Recording,
    start: f64,
    duration: f64,
    channels: &ChannelSelection,
    nperseg: Option<usize>,
    max_values: Option<u64>,
) -> Result<PsdView> {
    check_span(rec, start, duration)?;
    let mut req = WindowRequest::new(start, duration)
        .channels(channels.clone())
        .units(Units::Physical);
    req.read_ahead = Some(false);
    req.max_values = max_values;
    let w = rec.window(&req).await?;
    let signals = rec.signals().to_vec();
    let blocks = w.blocks;
    let task = tokio::task::spawn_blocking(move || -> Result<Vec<ChannelPsd>> {
        let bands = default_bands();
        let mut out = Vec::new();
        for b in &blocks {
            let Some(data) = b.physical() else {
                unreachable!("physical units were asked for");
            };
            let n = data.ncols();
            let seg = match nperseg {
                Some(0) => {
                    return Err(DspError::InvalidParameter {
                        field: "nperseg",
                        reason: "must be at least 1".into(),
                    }
                    .into());
                }
                Some(k) if k > n => {
                    return Err(DspError::TooShort {
                        operation: "welch",
                        len: n,
                        needed: k,
                    }
                    .into());
                }
                Some(k) => k,
                None => default_nperseg(b.sample_rate, n),
            };
            let rows: Vec<Result<ChannelPsd>> = b
                .channels
                .par_iter()
                .enumerate()
                .map(|(row, &c)| {
                    let mut welch = Welch::with_default_overlap(b.sample_rate, seg)?;
                    let x = data.row(row);
                    let x = x.as_slice().expect("rows of a standard-layout array");
                    let p = welch.psd(x)?;
                    let bp = BandPowers::from_psd(&p, &bands)?;
                    Ok(ChannelPsd {
                        index: c,
                        label: signals[c].label.trim().to_string(),
                        unit: signals[c].physical_dimension.trim().to_string(),
                        sample_rate: b.sample_rate,
                        samples: n,
                        nperseg: seg,
                        freqs: p.freqs,
                        density: p.density,
                        bands: bp,
                    })
                })
                .collect();
            for r in rows {
                out.push(r?);
            }
        }
        Ok(out)
    });
    let mut spectra = task.await.map_err(|e| ViewError::Task(e.to_string()))??;
    // Blocks come per rate; put the channels back in the order asked for.
    let order = rec.resolve_channels(channels)?;
    spectra.sort_by_key(|c| order.iter().position(|&o| o == c.index));
    Ok(PsdView {
        recording: rec.id(),
        start,
        duration,
        channels: spectra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_segment_is_two_seconds_rounded_up() {
        assert_eq!(default_nperseg(256.0, 10_000), 512);
        assert_eq!(default_nperseg(200.0, 10_000), 512);
        assert_eq!(default_nperseg(256.0, 300), 300);
    }

    #[test]
    fn warnings_read_well() {
        let w = ViewWarning::ChannelsLeftOut {
            sample_rate: 1.0,
            labels: vec!["SpO2".into()],
        };
        assert_eq!(
            w.to_string(),
            "channels at 1 Hz left out (a page holds one sample rate): SpO2"
        );
    }
}
