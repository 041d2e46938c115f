//! Where samples live: the timeline (record onsets, gaps), chunk numbering and overview levels.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A run of contiguous records: record `first_record + k` starts at `onset + k *
/// record_duration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// First record of the run.
    pub first_record: u64,
    /// Onset of that record, seconds from the recording start.
    pub onset: f64,
}

/// The time axis of a recording: data records of equal duration, grouped in contiguous
/// segments separated by gaps (EDF+D).
///
/// Sample `j` of record `r` of a signal with `n` samples per record is at
/// `onset(r) + (j as f64 * record_duration) / n as f64` seconds — the one formula used by
/// ingest, windows and overviews alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    record_duration: f64,
    num_records: u64,
    segments: Vec<Segment>,
}

/// Largest gap between a record's onset and the end of the previous one that still counts as
/// contiguous, in seconds (below EDF+'s 100 ns TAL resolution).
pub(crate) const CONTIGUITY_TOLERANCE: f64 = 1e-7;

impl Timeline {
    pub(crate) fn new(record_duration: f64, num_records: u64, segments: Vec<Segment>) -> Self {
        Self {
            record_duration,
            num_records,
            segments,
        }
    }

    /// Checks the invariants of a timeline read from a manifest.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.record_duration.is_finite() && self.record_duration >= 0.0) {
            return Err("record duration is not a finite non-negative number".into());
        }
        if self.num_records == 0 {
            return if self.segments.is_empty() {
                Ok(())
            } else {
                Err("segments without records".into())
            };
        }
        let first = self.segments.first().ok_or("records without segments")?;
        if first.first_record != 0 {
            return Err("first segment does not start at record 0".into());
        }
        for w in self.segments.windows(2) {
            if w[1].first_record <= w[0].first_record || w[1].first_record >= self.num_records {
                return Err("segments out of order".into());
            }
            let prev_end =
                w[0].onset + (w[1].first_record - w[0].first_record) as f64 * self.record_duration;
            if !(w[1].onset.is_finite() && w[1].onset >= prev_end - CONTIGUITY_TOLERANCE) {
                return Err("segments overlap".into());
            }
        }
        if !first.onset.is_finite() {
            return Err("onset is not finite".into());
        }
        Ok(())
    }

    /// Duration of one data record in seconds.
    pub fn record_duration(&self) -> f64 {
        self.record_duration
    }

    /// Number of data records.
    pub fn num_records(&self) -> u64 {
        self.num_records
    }

    /// The contiguous runs of records.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    fn segment_of(&self, record: u64) -> &Segment {
        let i = self
            .segments
            .partition_point(|s| s.first_record <= record)
            .saturating_sub(1);
        &self.segments[i]
    }

    /// Onset of record `r` in seconds from the recording start.
    pub fn record_onset(&self, r: u64) -> f64 {
        let s = self.segment_of(r);
        s.onset + (r - s.first_record) as f64 * self.record_duration
    }

    /// Time of sample `j` of record `r` for a signal with `spr` samples per record.
    pub fn sample_time_in_record(&self, r: u64, j: u32, spr: u32) -> f64 {
        self.record_onset(r) + (f64::from(j) * self.record_duration) / f64::from(spr)
    }

    /// Time of the sample with global index `index` (counted from 0 over all records).
    pub fn sample_time(&self, index: u64, spr: u32) -> f64 {
        let spr64 = u64::from(spr);
        self.sample_time_in_record(index / spr64, (index % spr64) as u32, spr)
    }

    /// End of the recording: end of the last record, in seconds.
    pub fn end(&self) -> f64 {
        if self.num_records == 0 {
            0.0
        } else {
            self.record_onset(self.num_records - 1) + self.record_duration
        }
    }

    /// The last record whose onset is at or before `t`, if any.
    fn record_at_or_before(&self, t: f64) -> Option<u64> {
        if self.num_records == 0 || t < self.segments[0].onset {
            return None;
        }
        let si = self.segments.partition_point(|s| s.onset <= t) - 1;
        let s = &self.segments[si];
        let last = self
            .segments
            .get(si + 1)
            .map_or(self.num_records - 1, |n| n.first_record - 1);
        let mut r = if self.record_duration > 0.0 {
            let k = ((t - s.onset) / self.record_duration).floor();
            let k = if k.is_finite() && k > 0.0 {
                k as u64
            } else {
                0
            };
            (s.first_record + k).min(last)
        } else {
            last
        };
        // The division above can be off by one at exact boundaries; settle it with the
        // same onset formula everything else uses.
        while r > s.first_record && self.record_onset(r) > t {
            r -= 1;
        }
        while r < last && self.record_onset(r + 1) <= t {
            r += 1;
        }
        Some(r)
    }

    /// Global index of the first sample at or after time `t`, for a signal with `spr`
    /// samples per record (`num_records * spr` when there is none).
    pub fn first_sample_at_or_after(&self, t: f64, spr: u32) -> u64 {
        let spr64 = u64::from(spr);
        let Some(r) = self.record_at_or_before(t) else {
            return 0;
        };
        let onset = self.record_onset(r);
        let d = self.record_duration;
        let mut j: u32 = if d > 0.0 {
            let x = ((t - onset) * f64::from(spr) / d).ceil();
            if x.is_finite() && x > 0.0 {
                (x.min(f64::from(spr))) as u32
            } else {
                0
            }
        } else {
            spr
        };
        while j > 0 && self.sample_time_in_record(r, j - 1, spr) >= t {
            j -= 1;
        }
        while j < spr && self.sample_time_in_record(r, j, spr) < t {
            j += 1;
        }
        r * spr64 + u64::from(j)
    }

    /// Global sample indices `[first, end)` of the samples at times `start <= t < end`.
    pub fn sample_range(&self, start: f64, end: f64, spr: u32) -> Range<u64> {
        let a = self.first_sample_at_or_after(start, spr);
        let b = self.first_sample_at_or_after(end, spr).max(a);
        a..b
    }

    /// Where contiguity breaks inside the sample range: `(index, time)` of the first sample
    /// of the range and of the first sample after each gap.
    pub fn runs_in(&self, range: Range<u64>, spr: u32) -> Vec<(u64, f64)> {
        let mut out = Vec::new();
        if range.is_empty() {
            return out;
        }
        let spr64 = u64::from(spr);
        out.push((range.start, self.sample_time(range.start, spr)));
        let first_rec = range.start / spr64;
        let last_rec = (range.end - 1) / spr64;
        for s in &self.segments {
            if s.first_record > first_rec && s.first_record <= last_rec {
                let idx = s.first_record * spr64;
                out.push((idx, s.onset));
            }
        }
        out
    }
}

/// How a recording's samples are cut into chunks: `records_per_block` consecutive records of
/// `group_size` consecutive signals each. Chunks are numbered block-major:
/// `chunk = block * groups + group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLayout {
    /// Data records per time block.
    pub records_per_block: u64,
    /// Signals per channel group.
    pub group_size: u32,
    /// Number of signals.
    pub signals: u32,
    /// Number of data records.
    pub records: u64,
}

impl ChunkLayout {
    /// Number of time blocks.
    pub fn blocks(&self) -> u64 {
        if self.signals == 0 {
            0
        } else {
            self.records.div_ceil(self.records_per_block)
        }
    }
    /// Number of channel groups.
    pub fn groups(&self) -> u32 {
        self.signals.div_ceil(self.group_size)
    }
    /// Number of data chunks.
    pub fn chunks(&self) -> u64 {
        self.blocks() * u64::from(self.groups())
    }
    /// Chunk number of (group, block).
    pub fn chunk(&self, group: u32, block: u64) -> u64 {
        block * u64::from(self.groups()) + u64::from(group)
    }
    /// Records of a block.
    pub fn block_records(&self, block: u64) -> Range<u64> {
        let a = block * self.records_per_block;
        a..(a + self.records_per_block).min(self.records)
    }
    /// Signals of a group.
    pub fn group_signals(&self, group: u32) -> Range<u32> {
        let a = group * self.group_size;
        a..(a + self.group_size).min(self.signals)
    }
    /// Group of a signal.
    pub fn group_of(&self, signal: u32) -> u32 {
        signal / self.group_size
    }
}

/// Geometry of the overview pyramid: level `k` holds one `(min, max)` per bucket of
/// `base_bucket * factor^k` consecutive samples of a channel, cut in pages of
/// `page_buckets` buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PyramidGeometry {
    /// Samples per bucket at level 0.
    pub base_bucket: u64,
    /// Bucket growth from one level to the next.
    pub factor: u64,
    /// Buckets per stored page.
    pub page_buckets: u64,
}

impl Default for PyramidGeometry {
    fn default() -> Self {
        Self {
            base_bucket: 256,
            factor: 4,
            page_buckets: 4096,
        }
    }
}

/// At most this many levels (256 * 4^15 samples per bucket is beyond any recording).
pub(crate) const MAX_LEVELS: u32 = 16;

impl PyramidGeometry {
    /// Samples per bucket at `level`.
    pub fn bucket(&self, level: u32) -> u64 {
        self.base_bucket
            .saturating_mul(self.factor.saturating_pow(level))
    }
    /// Number of levels for a channel of `samples` samples: levels continue while a
    /// bucket is smaller than the channel, so the coarsest level has at most a few buckets.
    pub fn levels(&self, samples: u64) -> u32 {
        if samples == 0 {
            return 0;
        }
        let mut n = 1;
        while n < MAX_LEVELS && self.bucket(n - 1) < samples / 2 {
            n += 1;
        }
        n
    }
    /// Buckets at `level` for a channel of `samples` samples.
    pub fn buckets(&self, level: u32, samples: u64) -> u64 {
        samples.div_ceil(self.bucket(level))
    }
    /// Pages at `level`.
    pub fn pages(&self, level: u32, samples: u64) -> u64 {
        self.buckets(level, samples).div_ceil(self.page_buckets)
    }
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.base_bucket == 0 || self.factor < 2 || self.page_buckets == 0 {
            return Err("overview geometry has a zero size".into());
        }
        if self.page_buckets > 1 << 20 || self.base_bucket > 1 << 24 || self.factor > 1024 {
            return Err("overview geometry out of range".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gapped() -> Timeline {
        // 10 records of 1 s: 0..4 contiguous from 0, 4..10 from 10.5 s.
        Timeline::new(
            1.0,
            10,
            vec![
                Segment {
                    first_record: 0,
                    onset: 0.0,
                },
                Segment {
                    first_record: 4,
                    onset: 10.5,
                },
            ],
        )
    }

    #[test]
    fn sample_lookup_matches_brute_force() {
        let tl = gapped();
        assert!(tl.validate().is_ok());
        assert_eq!(tl.end(), 16.5);
        for spr in [1u32, 3, 4, 7, 256] {
            let times: Vec<f64> = (0..10 * u64::from(spr))
                .map(|i| tl.sample_time(i, spr))
                .collect();
            for k in -20..400 {
                let t = f64::from(k) * 0.05;
                let want = times.iter().position(|&x| x >= t).unwrap_or(times.len()) as u64;
                assert_eq!(tl.first_sample_at_or_after(t, spr), want, "t={t} spr={spr}");
            }
            // exact sample times
            for (i, &t) in times.iter().enumerate() {
                assert_eq!(tl.first_sample_at_or_after(t, spr), i as u64);
            }
        }
        let runs = tl.runs_in(0..40, 4);
        assert_eq!(runs, vec![(0, 0.0), (16, 10.5)]);
    }

    #[test]
    fn layout_numbers() {
        let l = ChunkLayout {
            records_per_block: 10,
            group_size: 4,
            signals: 10,
            records: 95,
        };
        assert_eq!(l.blocks(), 10);
        assert_eq!(l.groups(), 3);
        assert_eq!(l.block_records(9), 90..95);
        assert_eq!(l.group_signals(2), 8..10);
        assert_eq!(l.chunk(2, 1), 5);
    }

    #[test]
    fn pyramid_levels() {
        let g = PyramidGeometry::default();
        assert_eq!(g.levels(0), 0);
        assert_eq!(g.levels(100), 1);
        let day = 86_400 * 256;
        let n = g.levels(day);
        assert!((1..=2).contains(&g.buckets(n - 1, day)));
        assert!(g.buckets(n - 2, day) > 2);
    }
}
