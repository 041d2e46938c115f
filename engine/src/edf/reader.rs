//! The streaming EDF/EDF+/BDF/BDF+ reader.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use chrono::{NaiveDateTime, TimeDelta};

use super::error::{Diagnostics, EdfError, Result, Warning};
use super::header::{self, BLOCK, EdfHeader, Parsed, Slot};
use super::tal::{self, NS_PER_S, Tal, TalIssue};

/// How the reader treats real-world defects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// Refuse any leniency ([`EdfError::Refused`]) instead of reporting it as a [`Warning`].
    pub strict: bool,
}

impl ReadOptions {
    /// Lenient reading (the default): defects become warnings.
    pub fn lenient() -> Self {
        ReadOptions { strict: false }
    }

    /// Strict reading: the first defect is an error.
    pub fn strict() -> Self {
        ReadOptions { strict: true }
    }
}

/// One annotation: of an EDF+/BDF+ file as read, of any sample source at ingest, and the text of
/// a stored annotation (`store::Annotation` is this type).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Annotation {
    /// Seconds from [`EdfHeader::start`] (the sub-second start already removed); may be
    /// negative.
    pub onset: f64,
    /// Duration in seconds, when the file gives one.
    pub duration: Option<f64>,
    /// The text (UTF-8).
    pub text: String,
}

/// A run of data records that follow each other without a gap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// First record of the run.
    pub first_record: u64,
    /// Records in the run.
    pub n_records: u64,
    /// Onset of the first record, seconds from [`EdfHeader::start`].
    pub onset: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SegmentNs {
    first_record: u64,
    n_records: u64,
    onset_ns: i64,
}

/// Bytes read at once when records are read in order: large enough that system calls cost
/// little, small enough that memory stays flat.
const READ_AHEAD_BYTES: u64 = 1 << 20;

/// Samples converted per step by the physical-unit reads (a stack buffer, no allocation).
const PHYSICAL_STEP: usize = 1024;

/// A streaming reader over any `Read + Seek` source.
///
/// Opening parses the header and, for EDF+/BDF+, scans the annotation signals of every record
/// (only those bytes) for annotations and record onsets. Samples are read on demand by
/// seeking; memory does not grow with the file size.
pub struct EdfReader<R> {
    inner: R,
    parsed: Parsed,
    warnings: Vec<Warning>,
    annotations: Vec<Annotation>,
    segments: Vec<SegmentNs>,
    start_subsecond_ns: i64,
    /// Where `inner` is positioned, when known (saves a seek per sequential read).
    position: Option<u64>,
    scratch: Vec<u8>,
    batch: Vec<u8>,
    batch_first: u64,
    batch_records: u64,
    /// The record [`EdfReader::next_record`] reads next.
    cursor: u64,
}

impl<R> fmt::Debug for EdfReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No patient or recording text: Debug output may end up in logs.
        f.debug_struct("EdfReader")
            .field("format", &self.parsed.header.format)
            .field("n_signals", &self.parsed.header.signals.len())
            .field("n_records", &self.parsed.header.n_records)
            .field("warnings", &self.warnings.len())
            .finish_non_exhaustive()
    }
}

impl EdfReader<File> {
    /// Opens a file.
    ///
    /// # Errors
    /// I/O errors, [`EdfError::Malformed`] for invalid files, [`EdfError::Refused`] in strict
    /// mode.
    pub fn open(path: impl AsRef<Path>, options: ReadOptions) -> Result<Self> {
        EdfReader::new(File::open(path)?, options)
    }
}

impl<R: Read + Seek> EdfReader<R> {
    /// Reads the header (and the annotations of EDF+/BDF+) from `inner`.
    ///
    /// # Errors
    /// As [`EdfReader::open`].
    pub fn new(mut inner: R, options: ReadOptions) -> Result<Self> {
        let mut diag = Diagnostics::new(options.strict);
        let stream_len = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(0))?;
        if stream_len < BLOCK {
            return Err(EdfError::malformed(
                "header",
                stream_len,
                "the file is shorter than the 256-byte header",
            ));
        }
        let mut fixed = [0u8; BLOCK as usize];
        inner.read_exact(&mut fixed)?;
        let ns = header::signal_count(&fixed, stream_len, &mut diag)?;
        // Bounded: signal_count checked 256 × (ns + 1) against the stream length.
        let mut bytes = vec![0u8; (ns + 1) * BLOCK as usize];
        bytes[..BLOCK as usize].copy_from_slice(&fixed);
        inner.read_exact(&mut bytes[BLOCK as usize..])?;
        let parsed = header::parse(&bytes, stream_len, &mut diag)?;
        drop(bytes);

        let mut reader = EdfReader {
            inner,
            parsed,
            warnings: Vec::new(),
            annotations: Vec::new(),
            segments: Vec::new(),
            start_subsecond_ns: 0,
            position: None,
            scratch: Vec::new(),
            batch: Vec::new(),
            batch_first: 0,
            batch_records: 0,
            cursor: 0,
        };
        if reader.parsed.annotation_slots.is_empty() {
            if reader.parsed.header.n_records > 0 {
                reader.segments.push(SegmentNs {
                    first_record: 0,
                    n_records: reader.parsed.header.n_records,
                    onset_ns: 0,
                });
            }
        } else {
            reader.scan_annotations(&mut diag)?;
        }
        let start = reader.parsed.header.start;
        reader.parsed.header.start = start
            .checked_add_signed(TimeDelta::nanoseconds(reader.start_subsecond_ns))
            .unwrap_or(start);
        reader.warnings = diag.into_warnings();
        Ok(reader)
    }

    /// Reads the annotation signals of every record: annotations, the sub-second start and the
    /// record onsets.
    fn scan_annotations(&mut self, diag: &mut Diagnostics) -> Result<()> {
        let slots = self.parsed.annotation_slots.clone();
        let span_start = slots.iter().map(|(_, s)| s.offset).min().unwrap_or(0);
        let bps = self.parsed.header.format.bytes_per_sample();
        let span_end = slots
            .iter()
            .map(|(_, s)| s.offset + s.samples * bps)
            .max()
            .unwrap_or(0);
        let mut span = vec![0u8; span_end - span_start];
        let (mut tals, mut issues): (Vec<Tal>, Vec<TalIssue>) = (Vec::new(), Vec::new());
        let duration_ns = self.parsed.record_duration_ns;
        // Records whose onsets differ from the predicted one by less than half the shortest
        // sample period are on the same sample grid: that is not a gap.
        let max_spr = self
            .parsed
            .data_slots
            .iter()
            .map(|s| s.samples as i64)
            .max()
            .unwrap_or(0);
        let tolerance_ns = if max_spr > 0 {
            (duration_ns / (2 * max_spr)).max(1)
        } else {
            1_000
        };
        let discontinuous = self.parsed.header.format.is_discontinuous();
        let mut saw_gap = false;
        for record in 0..self.parsed.header.n_records {
            let record_pos = self.record_position(record);
            self.read_at(record_pos + span_start as u64, SpanTarget::Span(&mut span))?;
            let mut timekeeping: Option<i64> = None;
            for (k, &(signal, slot)) in slots.iter().enumerate() {
                let local = &span[slot.offset - span_start..][..slot.samples * bps];
                tal::parse_tals(local, &mut tals, &mut issues);
                let signal_pos = record_pos + slot.offset as u64;
                for issue in &issues {
                    match *issue {
                        TalIssue::NotNulSeparated => {
                            diag.warn(Warning::TalNotNulSeparated { record, signal })?;
                        }
                        TalIssue::Malformed(at) => diag.warn(Warning::MalformedTal {
                            record,
                            signal,
                            offset: signal_pos + at as u64,
                        })?,
                    }
                }
                for (t, parsed_tal) in tals.iter().enumerate() {
                    if k == 0 && t == 0 && parsed_tal.first_text_empty {
                        timekeeping = Some(parsed_tal.onset_ns);
                        if record == 0 {
                            // The fraction of the first onset is the sub-second start.
                            self.start_subsecond_ns = parsed_tal.onset_ns.rem_euclid(NS_PER_S);
                        }
                    }
                    for text in &parsed_tal.texts {
                        let bytes = &local[text.clone()];
                        let text = match std::str::from_utf8(bytes) {
                            Ok(s) => s.to_owned(),
                            Err(_) => {
                                diag.warn(Warning::NonUtf8Annotation { record, signal })?;
                                String::from_utf8_lossy(bytes).into_owned()
                            }
                        };
                        self.annotations.push(Annotation {
                            onset: tal::ns_to_seconds(
                                parsed_tal.onset_ns.saturating_sub(self.start_subsecond_ns),
                            ),
                            duration: parsed_tal.duration_ns.map(tal::ns_to_seconds),
                            text,
                        });
                    }
                }
            }
            let predicted = self.segments.last().map(|s| {
                s.onset_ns
                    .saturating_add((s.n_records as i64).saturating_mul(duration_ns))
            });
            let onset = match timekeeping {
                Some(t) => t.saturating_sub(self.start_subsecond_ns),
                None => {
                    diag.warn(Warning::MissingTimekeeping { record })?;
                    predicted.unwrap_or(0)
                }
            };
            match (self.segments.last_mut(), predicted) {
                (Some(segment), Some(p)) if onset.abs_diff(p) <= tolerance_ns as u64 => {
                    segment.n_records += 1;
                }
                (_, p) => {
                    if let Some(p) = p {
                        saw_gap = true;
                        if onset < p {
                            diag.warn(Warning::RecordsOverlap { record })?;
                        } else if !discontinuous {
                            diag.warn(Warning::ContinuousWithGap { record })?;
                        }
                    }
                    self.segments.push(SegmentNs {
                        first_record: record,
                        n_records: 1,
                        onset_ns: onset,
                    });
                }
            }
        }
        if discontinuous && !saw_gap && self.parsed.header.n_records > 1 {
            diag.warn(Warning::DiscontinuousButContiguous)?;
        }
        Ok(())
    }

    fn record_position(&self, record: u64) -> u64 {
        self.parsed.header.header_bytes + record * self.parsed.header.record_bytes
    }

    /// Reads exactly the target's length at `pos`, seeking only when needed.
    fn read_at(&mut self, pos: u64, target: SpanTarget<'_>) -> Result<()> {
        let buf: &mut [u8] = match target {
            SpanTarget::Span(b) => b,
            SpanTarget::Scratch(n) => {
                if self.scratch.len() < n {
                    self.scratch.resize(n, 0);
                }
                &mut self.scratch[..n]
            }
            SpanTarget::Batch(n) => {
                if self.batch.len() < n {
                    self.batch.resize(n, 0);
                }
                &mut self.batch[..n]
            }
        };
        if self.position != Some(pos) {
            self.inner.seek(SeekFrom::Start(pos))?;
        }
        self.position = None;
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                EdfError::malformed("data record", pos, "the file ended early")
            } else {
                EdfError::Io(e)
            }
        })?;
        self.position = Some(pos + buf.len() as u64);
        Ok(())
    }

    fn data_slot(&self, signal: usize) -> Result<Slot> {
        self.parsed.data_slots.get(signal).copied().ok_or_else(|| {
            EdfError::InvalidArgument(format!(
                "signal {signal} does not exist (the file has {} data signals)",
                self.parsed.data_slots.len()
            ))
        })
    }

    /// Reads digital samples of one data signal, from `start` (sample index within the signal),
    /// into `out`; returns how many were read (fewer than `out.len()` at the end of the signal).
    ///
    /// # Errors
    /// [`EdfError::InvalidArgument`] for an unknown signal or `start` past the end; I/O errors.
    pub fn read_digital(&mut self, signal: usize, start: u64, out: &mut [i32]) -> Result<usize> {
        let slot = self.data_slot(signal)?;
        let spr = slot.samples as u64;
        let total = spr * self.parsed.header.n_records;
        if start > total {
            return Err(EdfError::InvalidArgument(format!(
                "start sample {start} is past the end of signal {signal} ({total} samples)"
            )));
        }
        let n = (out.len() as u64).min(total - start) as usize;
        let bps = self.parsed.header.format.bytes_per_sample();
        let mut done = 0usize;
        while done < n {
            let s = start + done as u64;
            let (record, within) = (s / spr, (s % spr) as usize);
            let take = (slot.samples - within).min(n - done);
            let pos = self.record_position(record) + (slot.offset + within * bps) as u64;
            if self.batch_contains(record) {
                let at = ((record - self.batch_first) * self.parsed.header.record_bytes) as usize
                    + slot.offset
                    + within * bps;
                decode(
                    &self.batch[at..at + take * bps],
                    bps,
                    &mut out[done..done + take],
                );
            } else {
                self.read_at(pos, SpanTarget::Scratch(take * bps))?;
                decode(
                    &self.scratch[..take * bps],
                    bps,
                    &mut out[done..done + take],
                );
            }
            done += take;
        }
        Ok(n)
    }

    /// Reads physical samples (the EDF scaling of [`super::SignalHeader::scaling`]) of one data
    /// signal; otherwise as [`EdfReader::read_digital`].
    ///
    /// # Errors
    /// As [`EdfReader::read_digital`].
    pub fn read_physical(&mut self, signal: usize, start: u64, out: &mut [f64]) -> Result<usize> {
        let mut digital = [0i32; PHYSICAL_STEP];
        let mut done = 0;
        while done < out.len() {
            let want = (out.len() - done).min(PHYSICAL_STEP);
            let got = self.read_digital(signal, start + done as u64, &mut digital[..want])?;
            self.parsed.header.signals[signal]
                .to_physical_into(&digital[..got], &mut out[done..done + got]);
            done += got;
            if got < want {
                break;
            }
        }
        Ok(done)
    }

    fn batch_contains(&self, record: u64) -> bool {
        record >= self.batch_first && record < self.batch_first + self.batch_records
    }

    /// Reads all data signals of one record into `buf` (digital units).
    ///
    /// Reading records in increasing order reads ahead about 1 MiB at a time, so a sequential
    /// pass costs one system call per megabyte and no allocation per record.
    ///
    /// # Errors
    /// [`EdfError::InvalidArgument`] for a record past the end or a buffer made for another
    /// header; I/O errors.
    pub fn read_record(&mut self, record: u64, buf: &mut RecordBuf) -> Result<()> {
        let n_records = self.parsed.header.n_records;
        if record >= n_records {
            return Err(EdfError::InvalidArgument(format!(
                "record {record} does not exist (the file has {n_records})"
            )));
        }
        if buf.offsets.len() != self.parsed.data_slots.len() + 1
            || self
                .parsed
                .data_slots
                .iter()
                .enumerate()
                .any(|(i, s)| buf.offsets[i + 1] - buf.offsets[i] != s.samples)
        {
            return Err(EdfError::InvalidArgument(
                "record buffer was made for another header".into(),
            ));
        }
        let record_bytes = self.parsed.header.record_bytes;
        if !self.batch_contains(record) {
            let sequential = record == self.batch_first + self.batch_records;
            let count = if sequential {
                (READ_AHEAD_BYTES / record_bytes).clamp(1, n_records - record)
            } else {
                1
            };
            self.read_at(
                self.record_position(record),
                SpanTarget::Batch((count * record_bytes) as usize),
            )?;
            self.batch_first = record;
            self.batch_records = count;
        }
        let base = ((record - self.batch_first) * record_bytes) as usize;
        let bps = self.parsed.header.format.bytes_per_sample();
        for (i, slot) in self.parsed.data_slots.iter().enumerate() {
            let at = base + slot.offset;
            decode(
                &self.batch[at..at + slot.samples * bps],
                bps,
                &mut buf.samples[buf.offsets[i]..buf.offsets[i + 1]],
            );
        }
        buf.record = record;
        buf.onset = self.record_onset(record).unwrap_or(0.0);
        self.cursor = record + 1;
        Ok(())
    }

    /// Reads the record after the last one read (the first, initially); `Ok(false)` at the end.
    ///
    /// # Errors
    /// As [`EdfReader::read_record`].
    pub fn next_record(&mut self, buf: &mut RecordBuf) -> Result<bool> {
        if self.cursor >= self.parsed.header.n_records {
            return Ok(false);
        }
        self.read_record(self.cursor, buf)?;
        Ok(true)
    }

    /// Makes [`EdfReader::next_record`] start again at `record`.
    pub fn seek_record(&mut self, record: u64) {
        self.cursor = record;
    }
}

/// Where [`EdfReader::read_at`] puts bytes.
enum SpanTarget<'a> {
    Span(&'a mut [u8]),
    Scratch(usize),
    Batch(usize),
}

impl<R> EdfReader<R> {
    /// The parsed header.
    pub fn header(&self) -> &EdfHeader {
        &self.parsed.header
    }

    /// Every leniency met while opening (empty in strict mode).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Every annotation, in file order (record, then annotation signal, then list).
    pub fn annotations(&self) -> &[Annotation] {
        &self.annotations
    }

    /// Runs of contiguous records. One segment for continuous files; EDF+D/BDF+D files with
    /// gaps have one per run.
    pub fn segments(&self) -> Vec<Segment> {
        self.segments
            .iter()
            .map(|s| Segment {
                first_record: s.first_record,
                n_records: s.n_records,
                onset: tal::ns_to_seconds(s.onset_ns),
            })
            .collect()
    }

    /// True when some record does not follow its predecessor.
    pub fn has_gaps(&self) -> bool {
        self.segments.len() > 1
    }

    /// Onset of a record in seconds from [`EdfHeader::start`], or `None` past the end.
    pub fn record_onset(&self, record: u64) -> Option<f64> {
        self.record_onset_ns(record).map(tal::ns_to_seconds)
    }

    pub(crate) fn record_onset_ns(&self, record: u64) -> Option<i64> {
        if record >= self.parsed.header.n_records {
            return None;
        }
        let i = self
            .segments
            .partition_point(|s| s.first_record <= record)
            .checked_sub(1)?;
        let s = self.segments[i];
        // Saturating like the scan that built the segments: a TAL onset near the end of the
        // i64 range must not overflow (the header check bounds records × duration alone).
        let offset = i64::try_from(record - s.first_record)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.parsed.record_duration_ns);
        Some(s.onset_ns.saturating_add(offset))
    }

    /// Time of a sample of a data signal in seconds from [`EdfHeader::start`] (gaps included),
    /// or `None` past the end.
    pub fn sample_time(&self, signal: usize, sample: u64) -> Option<f64> {
        let spr = self.parsed.data_slots.get(signal)?.samples as u64;
        let onset = self.record_onset(sample / spr)?;
        Some(onset + (sample % spr) as f64 * self.parsed.header.record_duration / spr as f64)
    }

    /// Start of the recording (sub-second precise), as [`EdfHeader::start`].
    pub fn start(&self) -> NaiveDateTime {
        self.parsed.header.start
    }

    /// The sub-second part of the start in nanoseconds (EDF+: the fraction of the first
    /// record's time-keeping annotation).
    pub fn start_subsecond_ns(&self) -> i64 {
        self.start_subsecond_ns
    }

    /// A buffer for [`EdfReader::read_record`] sized for this file.
    pub fn record_buf(&self) -> RecordBuf {
        RecordBuf::new(&self.parsed.header)
    }

    /// Gives the source back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// All data signals of one record, in digital units: the unit of sequential reading.
#[derive(Debug, Clone)]
pub struct RecordBuf {
    samples: Vec<i32>,
    offsets: Vec<usize>,
    record: u64,
    onset: f64,
}

impl RecordBuf {
    /// A buffer for records of files with this header.
    pub fn new(header: &EdfHeader) -> Self {
        let mut offsets = Vec::with_capacity(header.signals.len() + 1);
        offsets.push(0);
        for s in &header.signals {
            offsets.push(offsets.last().copied().unwrap_or(0) + s.samples_per_record);
        }
        RecordBuf {
            samples: vec![0; offsets.last().copied().unwrap_or(0)],
            offsets,
            record: 0,
            onset: 0.0,
        }
    }

    /// Digital samples of one data signal.
    ///
    /// # Panics
    /// When `signal` is not a data-signal index of the header.
    pub fn signal(&self, signal: usize) -> &[i32] {
        &self.samples[self.offsets[signal]..self.offsets[signal + 1]]
    }

    /// Number of data signals.
    pub fn n_signals(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Index of the record held.
    pub fn record(&self) -> u64 {
        self.record
    }

    /// Onset of the record held, seconds from the start.
    pub fn onset(&self) -> f64 {
        self.onset
    }
}

/// Decodes little-endian 16- or 24-bit two's-complement samples. Plain loops over exact chunks:
/// the compiler vectorises them.
fn decode(bytes: &[u8], bytes_per_sample: usize, out: &mut [i32]) {
    if bytes_per_sample == 2 {
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *o = i32::from(i16::from_le_bytes([c[0], c[1]]));
        }
    } else {
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(3)) {
            *o = i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_widths() {
        let mut out = [0; 3];
        decode(&[0xff, 0x7f, 0x00, 0x80, 0xff, 0xff], 2, &mut out);
        assert_eq!(out, [32767, -32768, -1]);
        decode(
            &[0xff, 0xff, 0x7f, 0x00, 0x00, 0x80, 0x01, 0x00, 0x00],
            3,
            &mut out,
        );
        assert_eq!(out, [8_388_607, -8_388_608, 1]);
    }

    #[test]
    fn tiny_inputs_are_clean_errors() {
        for bytes in [&b""[..], b"0       ", &[0u8; 300]] {
            let err = EdfReader::new(std::io::Cursor::new(bytes.to_vec()), ReadOptions::default())
                .unwrap_err();
            assert!(err.is_input_error(), "{err}");
        }
    }
}
