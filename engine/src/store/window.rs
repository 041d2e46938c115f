//! Window reads: any channels over any time span, one `ndarray` block per sample rate.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ndarray::Array2;

use super::cache::CacheKey;
use super::error::{Result, StoreError};
use super::ids::RecordingId;
use super::recording::Recording;

/// One channel asked for: by 0-based signal index (annotation signals not counted) or by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelRef {
    /// Signal index.
    Index(usize),
    /// Label as recorded (exact match first, then case- and space-insensitive if unique).
    Label(String),
}

/// Which channels to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ChannelSelection {
    /// Every signal, in order.
    #[default]
    All,
    /// These channels, in this order.
    List(Vec<ChannelRef>),
}

impl ChannelSelection {
    /// Parses `A,B,3`: a token of digits is an index, anything else a label; an empty
    /// string selects every channel.
    pub fn parse(spec: &str) -> Self {
        let refs: Vec<ChannelRef> = spec
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| match t.parse::<usize>() {
                Ok(i) if t.bytes().all(|b| b.is_ascii_digit()) => ChannelRef::Index(i),
                _ => ChannelRef::Label(t.to_string()),
            })
            .collect();
        if refs.is_empty() {
            ChannelSelection::All
        } else {
            ChannelSelection::List(refs)
        }
    }

    /// Channels by index.
    pub fn indices(indices: impl IntoIterator<Item = usize>) -> Self {
        ChannelSelection::List(indices.into_iter().map(ChannelRef::Index).collect())
    }
}

/// Units of returned samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Units {
    /// Stored integers, exactly as in the source.
    #[default]
    Digital,
    /// Physical units after the signal's calibration (for EEG, usually µV).
    Physical,
}

/// A window read: the samples whose time `t` satisfies `start <= t < start + duration`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRequest {
    /// Start in seconds from the recording start.
    pub start: f64,
    /// Duration in seconds (> 0).
    pub duration: f64,
    /// Channels to read.
    pub channels: ChannelSelection,
    /// Units of the result.
    pub units: Units,
    /// Whether to fetch the following page in the background (default: the store's option).
    pub read_ahead: Option<bool>,
    /// Most values (channels × samples, over every sample rate) the window may hold; a larger
    /// window is refused before anything is read. `None` (the default) for no limit: a service
    /// sets one so that no single request can take the machine's memory.
    pub max_values: Option<u64>,
}

impl WindowRequest {
    /// Every channel, digital units.
    pub fn new(start: f64, duration: f64) -> Self {
        Self {
            start,
            duration,
            channels: ChannelSelection::All,
            units: Units::Digital,
            read_ahead: None,
            max_values: None,
        }
    }
    /// With these channels.
    pub fn channels(mut self, channels: ChannelSelection) -> Self {
        self.channels = channels;
        self
    }
    /// In these units.
    pub fn units(mut self, units: Units) -> Self {
        self.units = units;
        self
    }
    /// Refusing windows of more than `max` values (see [`WindowRequest::max_values`]).
    pub fn max_values(mut self, max: u64) -> Self {
        self.max_values = Some(max);
        self
    }
}

/// Refuses a read of `values` values (channels × samples) above `max`, before it starts.
///
/// # Errors
/// [`StoreError::InvalidArgument`] naming both counts.
pub fn check_window_size(values: u64, max: Option<u64>) -> Result<()> {
    match max {
        Some(max) if values > max => Err(StoreError::InvalidArgument {
            what: format!(
                "window of {values} values (channels × samples) is above this service's limit of \
                 {max}: ask for a shorter span or fewer channels (or a research export)"
            ),
        }),
        _ => Ok(()),
    }
}

/// Samples of a block: digital integers or physical values.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleData {
    /// Stored integers, channels × samples.
    Digital(Array2<i32>),
    /// Physical values, channels × samples.
    Physical(Array2<f64>),
}

/// Start of a contiguous run of columns (the window's first column, and the first column
/// after each gap of an EDF+D recording).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// Column where the run starts.
    pub column: usize,
    /// Time of that column's sample, seconds from the recording start.
    pub time: f64,
}

/// The channels of one sample rate over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowBlock {
    /// Sample rate in Hz.
    pub sample_rate: f64,
    /// Samples per data record of these channels.
    pub samples_per_record: u32,
    /// Signal indices, one per row.
    pub channels: Vec<usize>,
    /// Global index (from the recording's first sample) of column 0.
    pub first_sample: u64,
    /// Contiguous runs: sample `k` of a run starting at `(column c, time t)` with record
    /// duration `D` is at the timeline's formula (see [`super::Timeline`]).
    pub runs: Vec<Run>,
    /// The samples.
    pub data: SampleData,
}

impl WindowBlock {
    /// Digital samples, if requested in digital units.
    pub fn digital(&self) -> Option<&Array2<i32>> {
        match &self.data {
            SampleData::Digital(a) => Some(a),
            SampleData::Physical(_) => None,
        }
    }
    /// Physical samples, if requested in physical units.
    pub fn physical(&self) -> Option<&Array2<f64>> {
        match &self.data {
            SampleData::Physical(a) => Some(a),
            SampleData::Digital(_) => None,
        }
    }
    /// Number of samples (columns).
    pub fn len(&self) -> usize {
        match &self.data {
            SampleData::Digital(a) => a.ncols(),
            SampleData::Physical(a) => a.ncols(),
        }
    }
    /// Whether the window holds no sample of these channels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The result of a window read.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The recording.
    pub recording: RecordingId,
    /// Requested start.
    pub start: f64,
    /// Requested duration.
    pub duration: f64,
    /// One block per sample rate, in the order the channels were asked for.
    pub blocks: Vec<WindowBlock>,
}

/// Channels of one rate and their sample range.
pub(crate) struct RatePlan {
    pub(crate) spr: u32,
    pub(crate) channels: Vec<usize>,
    pub(crate) range: Range<u64>,
}

impl Recording {
    /// Resolves a channel selection to signal indices.
    ///
    /// # Errors
    /// [`StoreError::UnknownChannel`], [`StoreError::AmbiguousChannel`].
    pub fn resolve_channels(&self, selection: &ChannelSelection) -> Result<Vec<usize>> {
        let signals = self.signals();
        let refs = match selection {
            ChannelSelection::All => return Ok((0..signals.len()).collect()),
            ChannelSelection::List(refs) => refs,
        };
        let unknown = |c: String| StoreError::UnknownChannel {
            recording: self.id(),
            channel: c,
            available: signals.len(),
        };
        refs.iter()
            .map(|r| match r {
                ChannelRef::Index(i) if *i < signals.len() => Ok(*i),
                ChannelRef::Index(i) => Err(unknown(i.to_string())),
                ChannelRef::Label(l) => {
                    let exact: Vec<usize> = (0..signals.len())
                        .filter(|&i| signals[i].label == *l)
                        .collect();
                    let found = if exact.is_empty() {
                        let norm =
                            |s: &str| s.split_whitespace().collect::<String>().to_lowercase();
                        let want = norm(l);
                        (0..signals.len())
                            .filter(|&i| norm(&signals[i].label) == want)
                            .collect()
                    } else {
                        exact
                    };
                    match found.len() {
                        0 => Err(unknown(l.clone())),
                        1 => Ok(found[0]),
                        _ => Err(StoreError::AmbiguousChannel {
                            recording: self.id(),
                            label: l.clone(),
                            indices: found,
                        }),
                    }
                }
            })
            .collect()
    }

    /// Checks a span against the recording and returns its end.
    pub(crate) fn check_span(&self, start: f64, duration: f64) -> Result<f64> {
        let end = self.duration();
        let ok = start.is_finite()
            && duration.is_finite()
            && duration > 0.0
            && start >= 0.0
            && start < end;
        if !ok {
            return Err(StoreError::WindowOutOfRange {
                recording: self.id(),
                start,
                duration,
                end,
            });
        }
        Ok(start + duration)
    }

    /// Groups channels by rate and computes their sample ranges and the chunks needed.
    pub(crate) fn plan(
        &self,
        channels: &[usize],
        start: f64,
        end: f64,
    ) -> (Vec<RatePlan>, Vec<u64>) {
        let signals = self.signals();
        let layout = self.layout();
        let tl = self.timeline();
        let mut plans: Vec<RatePlan> = Vec::new();
        for &c in channels {
            let spr = signals[c].samples_per_record;
            match plans.iter_mut().find(|p| p.spr == spr) {
                Some(p) => p.channels.push(c),
                None => plans.push(RatePlan {
                    spr,
                    channels: vec![c],
                    range: tl.sample_range(start, end, spr),
                }),
            }
        }
        let mut chunks = BTreeSet::new();
        for p in &plans {
            if p.range.is_empty() {
                continue;
            }
            let spr = u64::from(p.spr);
            let first_block = p.range.start / spr / layout.records_per_block;
            let last_block = (p.range.end - 1) / spr / layout.records_per_block;
            for &c in &p.channels {
                let g = layout.group_of(c as u32);
                for b in first_block..=last_block {
                    chunks.insert(layout.chunk(g, b));
                }
            }
        }
        (plans, chunks.into_iter().collect())
    }

    /// Reads a window.
    ///
    /// # Errors
    /// [`StoreError::WindowOutOfRange`] when the span is empty, not finite, or starts outside
    /// `[0, duration)`; channel errors; [`StoreError::Integrity`] naming the first chunk that
    /// fails authentication; object store failures.
    pub async fn window(&self, req: &WindowRequest) -> Result<Window> {
        let end = self.check_span(req.start, req.duration)?;
        let channels = self.resolve_channels(&req.channels)?;
        let (plans, chunks) = self.plan(&channels, req.start, end);
        let values = plans
            .iter()
            .map(|p| p.channels.len() as u64 * (p.range.end - p.range.start))
            .sum();
        check_window_size(values, req.max_values)?;
        let decoded = self.load_chunks(&chunks).await?;
        let by_chunk: HashMap<u64, &Arc<super::cache::DecodedChunk>> =
            chunks.iter().copied().zip(decoded.iter()).collect();
        let layout = self.layout();
        let signals = self.signals();
        let tl = self.timeline();
        let mut blocks = Vec::with_capacity(plans.len());
        for p in &plans {
            let spr = u64::from(p.spr);
            let block_samples = layout.records_per_block * spr;
            let len = (p.range.end - p.range.start) as usize;
            // Each row is appended from its chunks' slices straight into the array's buffer, in
            // the requested units: no zero-filled array, no copy in digital units converted
            // after (a page's read is megabytes, and those passes were most of its time).
            // Physical values are `gain * (f64::from(d) + offset)`, the reader's formula.
            let (by_chunk, layout) = (&by_chunk, &layout);
            let segments = move |c: usize| {
                let g = layout.group_of(c as u32);
                let in_group = (c as u32 - layout.group_signals(g).start) as usize;
                let mut idx = p.range.start;
                std::iter::from_fn(move || {
                    if idx >= p.range.end {
                        return None;
                    }
                    let b = idx / block_samples;
                    let block_start = b * block_samples;
                    let block_end = (block_start + block_samples).min(p.range.end);
                    let src = &by_chunk[&layout.chunk(g, b)].channels[in_group];
                    let a = (idx - block_start) as usize;
                    let n = (block_end - idx) as usize;
                    idx = block_end;
                    Some(&src[a..a + n])
                })
            };
            let shape = (p.channels.len(), len);
            let data = match req.units {
                Units::Digital => {
                    let mut v = Vec::with_capacity(shape.0 * shape.1);
                    for &c in &p.channels {
                        for seg in segments(c) {
                            v.extend_from_slice(seg);
                        }
                    }
                    SampleData::Digital(from_rows(shape, v))
                }
                Units::Physical => {
                    let mut v = Vec::with_capacity(shape.0 * shape.1);
                    for &c in &p.channels {
                        let (gain, offset) = signals[c].calibration();
                        for seg in segments(c) {
                            v.extend(seg.iter().map(|&d| gain * (f64::from(d) + offset)));
                        }
                    }
                    SampleData::Physical(from_rows(shape, v))
                }
            };
            let runs = tl
                .runs_in(p.range.clone(), p.spr)
                .into_iter()
                .map(|(i, t)| Run {
                    column: (i - p.range.start) as usize,
                    time: t,
                })
                .collect();
            blocks.push(WindowBlock {
                sample_rate: signals[p.channels[0]].sample_rate(tl.record_duration()),
                samples_per_record: p.spr,
                channels: p.channels.clone(),
                first_sample: p.range.start,
                runs,
                data,
            });
        }
        if req.read_ahead.unwrap_or(self.store.options.read_ahead) {
            self.read_ahead(channels, end, req.duration);
        }
        Ok(Window {
            recording: self.id(),
            start: req.start,
            duration: req.duration,
            blocks,
        })
    }

    /// Starts fetching the page after `[.., start)` in the background, once at a time per
    /// recording, when a Tokio runtime is available.
    fn read_ahead(&self, channels: Vec<usize>, start: f64, duration: f64) {
        if start >= self.duration() {
            return;
        }
        let (_, chunks) = self.plan(&channels, start, start + duration);
        let id = self.id();
        let all_cached = chunks.iter().all(|&c| {
            self.store.cache.contains(&CacheKey::Chunk {
                recording: id,
                chunk: c,
            })
        });
        if all_cached {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.state.prefetching.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        // Fire and forget: a failed prefetch is retried, and reported, by the next read.
        handle.spawn(async move {
            let _ = this.load_chunks(&chunks).await;
            this.state.prefetching.store(false, Ordering::Release);
        });
    }
}

/// Rows appended one after the other as a `rows × len` array.
fn from_rows<T>(shape: (usize, usize), v: Vec<T>) -> Array2<T> {
    // Every row is exactly `len` samples: the plan's range is covered by its chunks.
    Array2::from_shape_vec(shape, v).expect("each row holds the window's length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_selection() {
        assert_eq!(ChannelSelection::parse(""), ChannelSelection::All);
        assert_eq!(
            ChannelSelection::parse("Fp1, 3,EEG C3-REF"),
            ChannelSelection::List(vec![
                ChannelRef::Label("Fp1".into()),
                ChannelRef::Index(3),
                ChannelRef::Label("EEG C3-REF".into()),
            ])
        );
        assert_eq!(
            ChannelSelection::parse("+3"),
            ChannelSelection::List(vec![ChannelRef::Label("+3".into())])
        );
    }
}
