//! The overview pyramid: built during ingest, queried for min/max envelopes at screen width.

use ndarray::Array2;

use super::error::{Result, StoreError};
use super::ids::RecordingId;
use super::layout::{MAX_LEVELS, PyramidGeometry};
use super::recording::Recording;
use super::window::{ChannelSelection, SampleData, Units, WindowRequest};

/// A min/max envelope request: `width` pixels over `start <= t < start + duration`.
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewRequest {
    /// Start in seconds from the recording start.
    pub start: f64,
    /// Duration in seconds (> 0).
    pub duration: f64,
    /// Number of pixels (1 to 65536).
    pub width: usize,
    /// Channels.
    pub channels: ChannelSelection,
    /// Units of the envelope.
    pub units: Units,
    /// Most values (channels × width × 2, minima and maxima) the envelope may hold; `None` for
    /// no limit (see [`super::WindowRequest::max_values`]).
    pub max_values: Option<u64>,
}

impl OverviewRequest {
    /// Every channel, digital units.
    pub fn new(start: f64, duration: f64, width: usize) -> Self {
        Self {
            start,
            duration,
            width,
            channels: ChannelSelection::All,
            units: Units::Digital,
            max_values: None,
        }
    }
}

/// Where a channel's envelope came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverviewSource {
    /// A pyramid level whose buckets hold `bucket_samples` samples; a pixel's envelope covers
    /// every bucket that overlaps it, so it may reach up to one bucket beyond the pixel.
    Pyramid {
        /// Level.
        level: u32,
        /// Samples per bucket.
        bucket_samples: u64,
    },
    /// The raw samples (zoomed in further than the finest level): exact.
    Raw,
}

/// A min/max envelope: `min[[c, p]]` and `max[[c, p]]` for channel row `c` and pixel `p`;
/// `NaN` where a pixel holds no sample (a gap, or past the end).
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// The recording.
    pub recording: RecordingId,
    /// Requested start.
    pub start: f64,
    /// Requested duration.
    pub duration: f64,
    /// Pixels.
    pub width: usize,
    /// Signal index of each row.
    pub channels: Vec<usize>,
    /// Minimum per channel and pixel.
    pub min: Array2<f64>,
    /// Maximum per channel and pixel.
    pub max: Array2<f64>,
    /// Source of each row.
    pub sources: Vec<OverviewSource>,
}

/// (samples per record, samples per bucket): pixels with these share bucket ranges.
type PixelKey = (u32, u64);

/// Largest width accepted.
pub const MAX_WIDTH: usize = 65_536;
/// Above this many raw samples (all channels) a zoomed-in envelope uses level 0 instead.
const RAW_SAMPLE_BUDGET: u64 = 1 << 26;

impl Recording {
    /// Computes a min/max envelope, from the pyramid level whose buckets fit the pixel size,
    /// or from raw samples when zoomed in further than the finest level.
    ///
    /// # Errors
    /// As [`Recording::window`]; [`StoreError::InvalidArgument`] for a width of 0 or above
    /// 65536, or an envelope above `max_values`.
    pub async fn overview(&self, req: &OverviewRequest) -> Result<Overview> {
        if req.width == 0 || req.width > MAX_WIDTH {
            return Err(StoreError::InvalidArgument {
                what: format!("overview width {} (1 to {MAX_WIDTH})", req.width),
            });
        }
        let end = self.check_span(req.start, req.duration)?;
        let channels = self.resolve_channels(&req.channels)?;
        let width = req.width;
        super::window::check_window_size(channels.len() as u64 * width as u64 * 2, req.max_values)?;
        let tl = self.timeline();
        let geometry = self.pyramid();
        let signals = self.signals();
        let records = tl.num_records();
        let mut min = Array2::<f64>::from_elem((channels.len(), width), f64::NAN);
        let mut max = Array2::<f64>::from_elem((channels.len(), width), f64::NAN);
        let mut sources = vec![OverviewSource::Raw; channels.len()];

        // Pixel boundaries in sample indices, per distinct rate.
        let mut bounds_by_spr: Vec<(u32, Vec<u64>)> = Vec::new();
        for &c in &channels {
            let spr = signals[c].samples_per_record;
            if bounds_by_spr.iter().any(|(s, _)| *s == spr) {
                continue;
            }
            let mut b: Vec<u64> = (0..width)
                .map(|p| {
                    let t = req.start + req.duration * (p as f64) / (width as f64);
                    tl.first_sample_at_or_after(t, spr)
                })
                .collect();
            b.push(tl.first_sample_at_or_after(end, spr));
            bounds_by_spr.push((spr, b));
        }
        let bounds_of = |spr: u32| -> &Vec<u64> {
            &bounds_by_spr
                .iter()
                .find(|(s, _)| *s == spr)
                .expect("computed above")
                .1
        };

        // Choose a level per channel; collect raw channels for one window read.
        let mut raw_rows = Vec::new();
        let mut raw_budget = 0u64;
        let mut page_keys = Vec::new();
        let mut plan = Vec::with_capacity(channels.len());
        for (row, &c) in channels.iter().enumerate() {
            let spr = signals[c].samples_per_record;
            let b = bounds_of(spr);
            let span = b[width] - b[0];
            let total = records * u64::from(spr);
            let levels = geometry.levels(total);
            let spp = span as f64 / width as f64;
            let mut level = None;
            for k in 0..levels {
                if geometry.bucket(k) as f64 <= spp {
                    level = Some(k);
                }
            }
            if level.is_none() && span > 0 {
                if raw_budget + span <= RAW_SAMPLE_BUDGET {
                    raw_budget += span;
                    raw_rows.push(row);
                    plan.push(None);
                    continue;
                }
                level = Some(0);
            }
            let Some(k) = level else {
                plan.push(None);
                continue;
            };
            let bucket = geometry.bucket(k);
            sources[row] = OverviewSource::Pyramid {
                level: k,
                bucket_samples: bucket,
            };
            let first_bucket = b[0] / bucket;
            let last_bucket = b[width].div_ceil(bucket).saturating_sub(1);
            let first_page = first_bucket / geometry.page_buckets;
            let last_page = last_bucket / geometry.page_buckets;
            let start_key = page_keys.len();
            for p in first_page..=last_page {
                page_keys.push((k, c as u32, p));
            }
            plan.push(Some((
                bucket,
                first_page,
                start_key,
                page_keys.len() - start_key,
            )));
        }

        let pages = self.load_pages(&page_keys).await?;
        // Bucket range of every pixel, computed once per (rate, level) and shared by the
        // channels that use it; each channel's buckets are then laid end to end so a pixel is
        // one min/max over a contiguous slice (no division per bucket, no page lookups).
        let mut spans: Vec<(PixelKey, Vec<(u64, u64)>)> = Vec::new();
        let mut lo_buf: Vec<i32> = Vec::new();
        let mut hi_buf: Vec<i32> = Vec::new();
        for (row, &c) in channels.iter().enumerate() {
            let Some((bucket, first_page, start_key, n_pages)) = plan[row] else {
                continue;
            };
            let spr = signals[c].samples_per_record;
            let b = bounds_of(spr);
            let pb = geometry.page_buckets;
            let first_bucket = first_page * pb;
            let si = match spans.iter().position(|(k, _)| *k == (spr, bucket)) {
                Some(i) => i,
                None => {
                    let v = (0..width)
                        .map(|p| {
                            let (a, z) = (b[p], b[p + 1]);
                            if a >= z {
                                (0, 0)
                            } else {
                                // Relative to the first loaded page.
                                (a / bucket - first_bucket, z.div_ceil(bucket) - first_bucket)
                            }
                        })
                        .collect();
                    spans.push(((spr, bucket), v));
                    spans.len() - 1
                }
            };
            lo_buf.clear();
            hi_buf.clear();
            for page in &pages[start_key..start_key + n_pages] {
                lo_buf.extend_from_slice(&page.min);
                hi_buf.extend_from_slice(&page.max);
            }
            for (p, &(ka, kz)) in spans[si].1.iter().enumerate() {
                let (ka, kz) = (
                    usize::try_from(ka).unwrap_or(usize::MAX),
                    usize::try_from(kz).unwrap_or(usize::MAX),
                );
                if ka >= kz {
                    continue;
                }
                // Pages hold full page_buckets except the last of a level, and a pixel never
                // reaches past the level's last bucket.
                let kz = kz.min(lo_buf.len());
                let (Some(lo), Some(hi)) = (
                    lo_buf.get(ka..kz).and_then(|s| s.iter().copied().min()),
                    hi_buf.get(ka..kz).and_then(|s| s.iter().copied().max()),
                ) else {
                    continue;
                };
                min[[row, p]] = f64::from(lo);
                max[[row, p]] = f64::from(hi);
            }
        }

        if !raw_rows.is_empty() {
            let sel = ChannelSelection::indices(raw_rows.iter().map(|&r| channels[r]));
            let mut wreq = WindowRequest::new(req.start, req.duration).channels(sel);
            wreq.read_ahead = Some(false);
            let w = self.window(&wreq).await?;
            for &row in &raw_rows {
                let c = channels[row];
                let spr = signals[c].samples_per_record;
                let block = w
                    .blocks
                    .iter()
                    .find(|bl| bl.samples_per_record == spr)
                    .expect("a block per rate");
                let SampleData::Digital(data) = &block.data else {
                    unreachable!("requested digital")
                };
                let r = block
                    .channels
                    .iter()
                    .position(|&x| x == c)
                    .expect("channel in its block");
                let samples = data.row(r);
                let b = bounds_of(spr);
                for p in 0..width {
                    let (a, z) = ((b[p] - b[0]) as usize, (b[p + 1] - b[0]) as usize);
                    if a >= z {
                        continue;
                    }
                    let s = samples.slice_axis(ndarray::Axis(0), ndarray::Slice::from(a..z));
                    min[[row, p]] = f64::from(s.iter().copied().min().expect("non-empty"));
                    max[[row, p]] = f64::from(s.iter().copied().max().expect("non-empty"));
                }
            }
        }

        if req.units == Units::Physical {
            for (row, &c) in channels.iter().enumerate() {
                let (gain, offset) = signals[c].calibration();
                for p in 0..width {
                    let (lo, hi) = (
                        gain * (min[[row, p]] + offset),
                        gain * (max[[row, p]] + offset),
                    );
                    // A negative gain (physical_max < physical_min) swaps the envelope.
                    min[[row, p]] = lo.min(hi);
                    max[[row, p]] = lo.max(hi);
                }
            }
        }
        Ok(Overview {
            recording: self.id(),
            start: req.start,
            duration: req.duration,
            width,
            channels,
            min,
            max,
            sources,
        })
    }
}

/// Splits `samples` (global indices `start..start+len`) at level-0 bucket boundaries and
/// returns `(length, min, max)` of each piece.
pub(crate) fn bucket_pieces(samples: &[i32], start: u64, base: u64) -> Vec<(u32, i32, i32)> {
    let mut out = Vec::with_capacity(samples.len() / base as usize + 2);
    let mut i = 0usize;
    let mut idx = start;
    while i < samples.len() {
        let to_boundary = (base - idx % base) as usize;
        let n = to_boundary.min(samples.len() - i);
        let piece = &samples[i..i + n];
        let (mut lo, mut hi) = (i32::MAX, i32::MIN);
        for &v in piece {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        out.push((n as u32, lo, hi));
        i += n;
        idx += n as u64;
    }
    out
}

/// A finished page of one level of one channel, ready to seal.
#[derive(Debug)]
pub(crate) struct PageOut {
    pub(crate) level: u32,
    pub(crate) channel: u32,
    pub(crate) page: u64,
    pub(crate) min: Vec<i32>,
    pub(crate) max: Vec<i32>,
}

#[derive(Debug)]
struct LevelAcc {
    lo: i32,
    hi: i32,
    count: u64,
    min: Vec<i32>,
    max: Vec<i32>,
    next_page: u64,
}

impl LevelAcc {
    fn new() -> Self {
        Self {
            lo: i32::MAX,
            hi: i32::MIN,
            count: 0,
            min: Vec::new(),
            max: Vec::new(),
            next_page: 0,
        }
    }
}

/// Builds every level of every channel from level-0 pieces fed in sample order; only the
/// pages being filled are held in memory.
#[derive(Debug)]
pub(crate) struct PyramidBuilder {
    geometry: PyramidGeometry,
    channels: Vec<Vec<LevelAcc>>,
    samples: Vec<u64>,
}

impl PyramidBuilder {
    pub(crate) fn new(geometry: PyramidGeometry, channels: usize) -> Self {
        Self {
            geometry,
            channels: (0..channels).map(|_| vec![LevelAcc::new()]).collect(),
            samples: vec![0; channels],
        }
    }

    /// Feeds the pieces of one channel (consecutive samples), collecting finished pages.
    pub(crate) fn feed(
        &mut self,
        channel: usize,
        pieces: &[(u32, i32, i32)],
        out: &mut Vec<PageOut>,
    ) {
        let base = self.geometry.base_bucket;
        for &(n, lo, hi) in pieces {
            self.samples[channel] += u64::from(n);
            let acc = &mut self.channels[channel][0];
            acc.lo = acc.lo.min(lo);
            acc.hi = acc.hi.max(hi);
            acc.count += u64::from(n);
            if acc.count >= base {
                let (l, h) = (acc.lo, acc.hi);
                acc.lo = i32::MAX;
                acc.hi = i32::MIN;
                acc.count = 0;
                self.push_bucket(channel, 0, l, h, out);
            }
        }
    }

    fn push_bucket(
        &mut self,
        channel: usize,
        level: u32,
        lo: i32,
        hi: i32,
        out: &mut Vec<PageOut>,
    ) {
        let g = self.geometry;
        let levels = &mut self.channels[channel];
        let acc = &mut levels[level as usize];
        acc.min.push(lo);
        acc.max.push(hi);
        if acc.min.len() as u64 == g.page_buckets {
            out.push(PageOut {
                level,
                channel: channel as u32,
                page: acc.next_page,
                min: std::mem::take(&mut acc.min),
                max: std::mem::take(&mut acc.max),
            });
            acc.next_page += 1;
        }
        if level + 1 >= MAX_LEVELS {
            return;
        }
        if levels.len() <= level as usize + 1 {
            levels.push(LevelAcc::new());
        }
        let up = &mut levels[level as usize + 1];
        up.lo = up.lo.min(lo);
        up.hi = up.hi.max(hi);
        up.count += 1;
        if up.count == g.factor {
            let (l, h) = (up.lo, up.hi);
            up.lo = i32::MAX;
            up.hi = i32::MIN;
            up.count = 0;
            self.push_bucket(channel, level + 1, l, h, out);
        }
    }

    /// Flushes partial buckets and pages of the levels the channel's length calls for.
    pub(crate) fn finish(mut self) -> Vec<PageOut> {
        let mut out = Vec::new();
        for ch in 0..self.channels.len() {
            let levels = self.geometry.levels(self.samples[ch]);
            for k in 0..levels {
                if self.channels[ch].len() <= k as usize {
                    self.channels[ch].push(LevelAcc::new());
                }
                let acc = &mut self.channels[ch][k as usize];
                if acc.count > 0 {
                    let (l, h) = (acc.lo, acc.hi);
                    acc.count = 0;
                    acc.lo = i32::MAX;
                    acc.hi = i32::MIN;
                    self.push_bucket(ch, k, l, h, &mut out);
                }
                let acc = &mut self.channels[ch][k as usize];
                if !acc.min.is_empty() {
                    out.push(PageOut {
                        level: k,
                        channel: ch as u32,
                        page: acc.next_page,
                        min: std::mem::take(&mut acc.min),
                        max: std::mem::take(&mut acc.max),
                    });
                    acc.next_page += 1;
                }
            }
        }
        // Pages of levels beyond a channel's count cannot have been emitted: a full page at
        // level k implies page_buckets * bucket(k) samples, far above what adds level k.
        out.retain(|p| p.level < self.geometry.levels(self.samples[p.channel as usize]));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_matches_brute_force() {
        let g = PyramidGeometry {
            base_bucket: 4,
            factor: 2,
            page_buckets: 3,
        };
        for n in [1usize, 3, 4, 5, 17, 64, 100] {
            let samples: Vec<i32> = (0..n as i32).map(|i| (i * 7919) % 101 - 50).collect();
            let mut b = PyramidBuilder::new(g, 1);
            let mut pages = Vec::new();
            // feed in uneven slices
            let mut pos = 0;
            for step in [3usize, 1, 7, 2].iter().cycle() {
                if pos >= n {
                    break;
                }
                let e = (pos + step).min(n);
                let pieces = bucket_pieces(&samples[pos..e], pos as u64, g.base_bucket);
                b.feed(0, &pieces, &mut pages);
                pos = e;
            }
            pages.extend(b.finish());
            let levels = g.levels(n as u64);
            for k in 0..levels {
                let bucket = g.bucket(k) as usize;
                let mut got_min: Vec<i32> = Vec::new();
                let mut got_max: Vec<i32> = Vec::new();
                let mut lp: Vec<&PageOut> = pages.iter().filter(|p| p.level == k).collect();
                lp.sort_by_key(|p| p.page);
                for (i, p) in lp.iter().enumerate() {
                    assert_eq!(p.page, i as u64);
                    got_min.extend(&p.min);
                    got_max.extend(&p.max);
                }
                let want_min: Vec<i32> = samples
                    .chunks(bucket)
                    .map(|c| *c.iter().min().unwrap())
                    .collect();
                let want_max: Vec<i32> = samples
                    .chunks(bucket)
                    .map(|c| *c.iter().max().unwrap())
                    .collect();
                assert_eq!(got_min, want_min, "n={n} level={k}");
                assert_eq!(got_max, want_max, "n={n} level={k}");
                assert_eq!(got_min.len() as u64, g.buckets(k, n as u64));
            }
            assert!(pages.iter().all(|p| p.level < levels));
        }
    }
}
