//! The streaming EDF/EDF+/BDF/BDF+ writer.
//!
//! Records are written as they come; the header's record count is written as -1 first and set
//! by [`EdfWriter::finish`]. EDF+/BDF+ files get one annotation signal, placed last, holding
//! each record's time-keeping annotation and the annotations, in the order given, packed into
//! the earliest records with room (the standard lets any record carry any annotation: onsets
//! are relative to the file start).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use chrono::{Datelike, NaiveDateTime, Timelike};

use super::error::{EdfError, Result};
use super::header::{
    BLOCK, EdfHeader, Format, PatientInfo, RecordingInfo, SignalHeader, render_patient,
    render_recording,
};
use super::reader::Annotation;
use super::tal::{self, NS_PER_S};

/// Offset of the number-of-records field, patched by `finish`.
const N_RECORDS_OFFSET: u64 = 236;

/// The patient or recording field: raw text, or EDF+ sub-fields to render.
#[derive(Debug, Clone, PartialEq)]
enum Field<T> {
    Raw(String),
    Plus(T),
}

/// Configures an [`EdfWriter`].
#[derive(Debug, Clone)]
pub struct EdfWriterBuilder {
    format: Format,
    patient: Field<PatientInfo>,
    recording: Field<RecordingInfo>,
    start: NaiveDateTime,
    record_duration: f64,
    signals: Vec<SignalHeader>,
    annotations: Vec<Annotation>,
    annotation_bytes_per_record: Option<usize>,
    expected_records: Option<u64>,
}

impl EdfWriterBuilder {
    /// A writer of `format` starting at `start` (sub-second part kept in EDF+/BDF+) with records
    /// of `record_duration` seconds. Patient and recording are unknown (`X`) until set.
    pub fn new(format: Format, start: NaiveDateTime, record_duration: f64) -> Self {
        EdfWriterBuilder {
            format,
            patient: Field::Plus(PatientInfo::default()),
            recording: Field::Plus(RecordingInfo::default()),
            start,
            record_duration,
            signals: Vec::new(),
            annotations: Vec::new(),
            annotation_bytes_per_record: None,
            expected_records: None,
        }
    }

    /// Everything of a header read by [`super::EdfReader`]: format, raw patient and recording
    /// fields, start, record duration and data signals; `expected_records` set to its count.
    pub fn from_header(header: &EdfHeader) -> Self {
        EdfWriterBuilder {
            format: header.format,
            patient: Field::Raw(header.patient.clone()),
            recording: Field::Raw(header.recording.clone()),
            start: header.start,
            record_duration: header.record_duration,
            signals: header.signals.clone(),
            annotations: Vec::new(),
            annotation_bytes_per_record: None,
            expected_records: Some(header.n_records),
        }
    }

    /// Changes the format.
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// EDF+ patient sub-fields.
    pub fn with_patient(mut self, patient: PatientInfo) -> Self {
        self.patient = Field::Plus(patient);
        self
    }

    /// The patient field as raw text (at most 80 ASCII characters).
    pub fn with_patient_raw(mut self, patient: impl Into<String>) -> Self {
        self.patient = Field::Raw(patient.into());
        self
    }

    /// EDF+ recording sub-fields (the start date is filled from the start when unset).
    pub fn with_recording(mut self, recording: RecordingInfo) -> Self {
        self.recording = Field::Plus(recording);
        self
    }

    /// The recording field as raw text (at most 80 ASCII characters).
    pub fn with_recording_raw(mut self, recording: impl Into<String>) -> Self {
        self.recording = Field::Raw(recording.into());
        self
    }

    /// The data signals, in order.
    pub fn with_signals(mut self, signals: Vec<SignalHeader>) -> Self {
        self.signals = signals;
        self
    }

    /// Annotations to write (EDF+/BDF+ only), onsets relative to the start.
    pub fn with_annotations(mut self, annotations: Vec<Annotation>) -> Self {
        self.annotations = annotations;
        self
    }

    /// How many records will be written: sizes the annotation signal so the annotations fit.
    pub fn with_expected_records(mut self, records: u64) -> Self {
        self.expected_records = Some(records);
        self
    }

    /// Fixes the annotation signal's bytes per record instead of sizing it.
    pub fn with_annotation_bytes_per_record(mut self, bytes: usize) -> Self {
        self.annotation_bytes_per_record = Some(bytes);
        self
    }

    /// Creates the file and writes the header.
    ///
    /// # Errors
    /// As [`EdfWriterBuilder::build`].
    pub fn create(self, path: impl AsRef<Path>) -> Result<EdfWriter<BufWriter<File>>> {
        let file = File::create(path)?;
        self.build(BufWriter::with_capacity(1 << 20, file))
    }

    /// Writes the header to `out` and returns the writer.
    ///
    /// # Errors
    /// [`EdfError::InvalidArgument`] when the header cannot be written as this format (text too
    /// long or not ASCII, a range the sample width cannot hold, annotations in plain EDF, a
    /// record duration that does not fit 8 characters exactly); I/O errors.
    pub fn build<W: Write + Seek>(self, mut out: W) -> Result<EdfWriter<W>> {
        let format = self.format;
        let invalid = |m: String| EdfError::InvalidArgument(m);
        if !format.is_plus() && !self.annotations.is_empty() {
            return Err(invalid(format!("{format} cannot hold annotations")));
        }
        let record_duration_ns = tal::seconds_to_ns(self.record_duration)
            .filter(|&d| d >= 0)
            .ok_or_else(|| invalid("record duration must be finite and non-negative".into()))?;
        let duration_text = tal::format_time_ns(record_duration_ns, false);
        if duration_text.len() > 8 {
            return Err(invalid(
                "record duration cannot be written exactly in 8 characters".into(),
            ));
        }
        if record_duration_ns == 0 && !self.signals.is_empty() {
            return Err(invalid(
                "record duration 0 is only for annotation-only files".into(),
            ));
        }
        let subsecond_ns = if format.is_plus() {
            i64::from(self.start.nanosecond().min(999_999_999))
        } else {
            0
        };
        let start = self.start.with_nanosecond(0).unwrap_or(self.start);

        // Annotations: validated and converted to onsets relative to the header's start time.
        let mut pending = VecDeque::with_capacity(self.annotations.len());
        for (i, a) in self.annotations.iter().enumerate() {
            if !tal::valid_text(&a.text) {
                return Err(invalid(format!(
                    "annotation {i} contains a NUL, 0x14 or 0x15 byte"
                )));
            }
            let onset = tal::seconds_to_ns(a.onset)
                .ok_or_else(|| invalid(format!("annotation {i} has an invalid onset")))?;
            let duration = match a.duration {
                Some(d) => {
                    Some(tal::seconds_to_ns(d).filter(|&d| d >= 0).ok_or_else(|| {
                        invalid(format!("annotation {i} has an invalid duration"))
                    })?)
                }
                None => None,
            };
            pending.push_back(PendingAnnotation {
                onset_ns: onset + subsecond_ns,
                duration_ns: duration,
                text: a.text.clone(),
            });
        }

        let bps = format.bytes_per_sample();
        let annotation_bytes = if format.is_plus() {
            let bytes = match self.annotation_bytes_per_record {
                Some(b) => b,
                None => size_annotation_signal(
                    &pending,
                    timekeeping_reserve(subsecond_ns, record_duration_ns, self.expected_records),
                    self.expected_records,
                ),
            };
            bytes.div_ceil(bps) * bps
        } else {
            0
        };
        let n_header_signals = self.signals.len() + usize::from(format.is_plus());
        if n_header_signals == 0 {
            return Err(invalid("a file needs at least one signal".into()));
        }
        if n_header_signals > 9999 {
            return Err(invalid("at most 9999 signals fit the header".into()));
        }

        // Header text.
        let patient = match &self.patient {
            Field::Raw(s) => s.clone(),
            Field::Plus(p) => render_patient(p),
        };
        let recording = match &self.recording {
            Field::Raw(s) => s.clone(),
            Field::Plus(r) => render_recording(r, start.date()),
        };
        let year = start.year();
        let date = if (1985..=2084).contains(&year) {
            format!("{:02}.{:02}.{:02}", start.day(), start.month(), year % 100)
        } else if format.is_plus() {
            // EDF+: years outside 1985–2084 live only in the recording field's start date.
            format!("{:02}.{:02}.yy", start.day(), start.month())
        } else {
            return Err(invalid(
                "plain EDF/BDF dates must fall within 1985–2084".into(),
            ));
        };
        let time = format!(
            "{:02}.{:02}.{:02}",
            start.hour(),
            start.minute(),
            start.second()
        );
        let header_bytes = BLOCK as usize * (n_header_signals + 1);
        let mut h = Vec::with_capacity(header_bytes);
        if format.is_bdf() {
            h.push(0xff);
            h.extend_from_slice(b"BIOSEMI");
        } else {
            put(&mut h, "version", "0", 8)?;
        }
        put(&mut h, "patient", &patient, 80)?;
        put(&mut h, "recording", &recording, 80)?;
        put(&mut h, "start date", &date, 8)?;
        put(&mut h, "start time", &time, 8)?;
        put(&mut h, "header bytes", &header_bytes.to_string(), 8)?;
        put(&mut h, "reserved", format.reserved_text(), 44)?;
        put(&mut h, "number of data records", "-1", 8)?;
        put(&mut h, "record duration", &duration_text, 8)?;
        put(
            &mut h,
            "number of signals",
            &n_header_signals.to_string(),
            4,
        )?;

        let (lo, hi) = (format.digital_limit_min(), format.digital_limit_max());
        for (i, s) in self.signals.iter().enumerate() {
            if s.samples_per_record == 0 {
                return Err(invalid(format!("signal {i} has no samples per record")));
            }
            if s.digital_min < lo || s.digital_max > hi || s.digital_min >= s.digital_max {
                return Err(invalid(format!(
                    "signal {i}: digital range must be increasing and within {lo}..={hi}"
                )));
            }
            if !(s.physical_min.is_finite() && s.physical_max.is_finite())
                || s.physical_min == s.physical_max
            {
                return Err(invalid(format!(
                    "signal {i}: physical minimum and maximum must be finite and differ"
                )));
            }
        }
        let annotation_spr = annotation_bytes / bps;
        // Column by column, as the format stores them.
        let column = |h: &mut Vec<u8>,
                      name: &str,
                      width: usize,
                      value: &dyn Fn(&SignalHeader) -> Result<String>,
                      annotation: &str|
         -> Result<()> {
            for s in &self.signals {
                put(h, name, &value(s)?, width)?;
            }
            if format.is_plus() {
                put(h, name, annotation, width)?;
            }
            Ok(())
        };
        column(
            &mut h,
            "label",
            16,
            &|s| Ok(s.label.clone()),
            format.annotation_label(),
        )?;
        column(&mut h, "transducer", 80, &|s| Ok(s.transducer.clone()), "")?;
        column(
            &mut h,
            "physical dimension",
            8,
            &|s| Ok(s.physical_dimension.clone()),
            "",
        )?;
        column(
            &mut h,
            "physical minimum",
            8,
            &|s| number(s.physical_min),
            "-1",
        )?;
        column(
            &mut h,
            "physical maximum",
            8,
            &|s| number(s.physical_max),
            "1",
        )?;
        column(
            &mut h,
            "digital minimum",
            8,
            &|s| Ok(s.digital_min.to_string()),
            &lo.to_string(),
        )?;
        column(
            &mut h,
            "digital maximum",
            8,
            &|s| Ok(s.digital_max.to_string()),
            &hi.to_string(),
        )?;
        column(&mut h, "prefiltering", 80, &|s| Ok(s.prefilter.clone()), "")?;
        column(
            &mut h,
            "samples per record",
            8,
            &|s| Ok(s.samples_per_record.to_string()),
            &annotation_spr.to_string(),
        )?;
        column(
            &mut h,
            "signal reserved",
            32,
            &|s| Ok(s.reserved.clone()),
            "",
        )?;
        debug_assert_eq!(h.len(), header_bytes);
        out.write_all(&h)?;

        let data_bytes: usize = self
            .signals
            .iter()
            .map(|s| s.samples_per_record * bps)
            .sum();
        Ok(EdfWriter {
            out,
            format,
            signals: self.signals,
            record_duration_ns,
            subsecond_ns,
            annotation_bytes,
            pending,
            records_written: 0,
            last_onset_ns: None,
            record: Vec::with_capacity(data_bytes + annotation_bytes),
        })
    }
}

#[derive(Debug, Clone)]
struct PendingAnnotation {
    /// Relative to the header's start time (sub-second included).
    onset_ns: i64,
    duration_ns: Option<i64>,
    text: String,
}

impl PendingAnnotation {
    fn len(&self) -> usize {
        tal::annotation_len(self.onset_ns, self.duration_ns, &self.text)
    }
}

/// Annotation bytes per record when the number of records is unknown: two or three typical
/// annotations (`+12345.5\x15 1\x14Eyes closed\x14\0` is about 30 bytes).
const STREAMING_ROOM: usize = 128;

/// Bytes to keep for the time-keeping annotation: enough for onsets up to the expected end (at
/// least 10^7 s, 115 days, for files of unknown length), with the decimals the sub-second start
/// and the record duration need.
fn timekeeping_reserve(subsecond_ns: i64, duration_ns: i64, expected: Option<u64>) -> usize {
    let end_s = expected
        .map_or(0, |n| (n as i64).saturating_mul(duration_ns) / NS_PER_S)
        .max(10_000_000);
    let int_digits = end_s.to_string().len();
    let frac_digits = [subsecond_ns, duration_ns]
        .iter()
        .map(|&ns| {
            let f = ns.rem_euclid(NS_PER_S);
            if f == 0 {
                0
            } else {
                format!("{f:09}").trim_end_matches('0').len()
            }
        })
        .max()
        .unwrap_or(0);
    // "+" digits ["." decimals] "\x14\x14\x00"
    1 + int_digits + if frac_digits > 0 { 1 + frac_digits } else { 0 } + 3
}

/// The smallest annotation-signal size (bytes per record) with which greedy packing, in order,
/// fits every annotation into the expected records.
fn size_annotation_signal(
    pending: &VecDeque<PendingAnnotation>,
    reserve: usize,
    expected: Option<u64>,
) -> usize {
    let lens: Vec<usize> = pending.iter().map(PendingAnnotation::len).collect();
    let largest = lens.iter().copied().max().unwrap_or(0);
    let total: usize = lens.iter().sum();
    let Some(records) = expected.filter(|&n| n > 0) else {
        // Unknown length (streaming): room for the largest annotation given, and for a few
        // short ones added on the way, in every record.
        return reserve + largest.max(total.min(512)).max(STREAMING_ROOM);
    };
    let fits = |room: usize| {
        let mut used = 0usize;
        let mut record = 1u64;
        for &l in &lens {
            if used + l > room {
                record += 1;
                used = 0;
                if record > records {
                    return false;
                }
            }
            used += l;
        }
        true
    };
    let mut room = largest.max(total.div_ceil(records as usize));
    while !fits(room) {
        room += room / 8 + 1;
    }
    reserve + room
}

/// Writes `text` left-aligned and space-padded to `width` bytes.
fn put(h: &mut Vec<u8>, field: &str, text: &str, width: usize) -> Result<()> {
    if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(EdfError::InvalidArgument(format!(
            "{field} must be printable ASCII"
        )));
    }
    if text.len() > width {
        return Err(EdfError::InvalidArgument(format!(
            "{field} is longer than {width} characters"
        )));
    }
    h.extend_from_slice(text.as_bytes());
    h.resize(h.len() + width - text.len(), b' ');
    Ok(())
}

/// The shortest text of at most 8 characters for a number: exact when possible (always for
/// values read from an EDF header), else rounded to the decimals that fit.
fn number(v: f64) -> Result<String> {
    let exact = format!("{v}");
    if exact.len() <= 8 {
        return Ok(exact);
    }
    let exp = format!("{v:e}");
    if exp.len() <= 8 && exp.parse::<f64>().ok() == Some(v) {
        return Ok(exp);
    }
    for decimals in (0..8).rev() {
        let s = format!("{v:.decimals$}");
        if s.len() <= 8 {
            return Ok(s);
        }
    }
    Err(EdfError::InvalidArgument(
        "a physical minimum or maximum does not fit 8 characters".into(),
    ))
}

/// A streaming writer; see the module docs.
#[derive(Debug)]
pub struct EdfWriter<W: Write + Seek> {
    out: W,
    format: Format,
    signals: Vec<SignalHeader>,
    record_duration_ns: i64,
    subsecond_ns: i64,
    annotation_bytes: usize,
    pending: VecDeque<PendingAnnotation>,
    records_written: u64,
    last_onset_ns: Option<i64>,
    record: Vec<u8>,
}

impl<W: Write + Seek> EdfWriter<W> {
    /// Writes the next record, contiguous with the previous one.
    ///
    /// # Errors
    /// As [`EdfWriter::write_record_at`].
    pub fn write_record(&mut self, signals: &[&[i32]]) -> Result<()> {
        let onset = self
            .last_onset_ns
            .map_or(0, |o| o + self.record_duration_ns);
        self.write_record_ns(onset, signals)
    }

    /// Writes the next record with its onset in seconds from the start. Only EDF+D/BDF+D may
    /// leave a gap; no format may overlap the previous record.
    ///
    /// # Errors
    /// [`EdfError::InvalidArgument`] for a wrong number of signals or samples, a sample outside
    /// the sample width, or an onset that is not allowed; I/O errors.
    pub fn write_record_at(&mut self, onset: f64, signals: &[&[i32]]) -> Result<()> {
        let onset_ns = tal::seconds_to_ns(onset)
            .ok_or_else(|| EdfError::InvalidArgument("record onset is not finite".into()))?;
        self.write_record_ns(onset_ns, signals)
    }

    fn write_record_ns(&mut self, onset_ns: i64, signals: &[&[i32]]) -> Result<()> {
        let invalid = |m: String| Err(EdfError::InvalidArgument(m));
        if signals.len() != self.signals.len() {
            return invalid(format!(
                "expected {} signals, got {}",
                self.signals.len(),
                signals.len()
            ));
        }
        let expected = self
            .last_onset_ns
            .map_or(0, |o| o + self.record_duration_ns);
        if onset_ns != expected {
            if self.last_onset_ns.is_some() && onset_ns < expected {
                return invalid(format!(
                    "record {} would overlap its predecessor",
                    self.records_written
                ));
            }
            if !self.format.is_discontinuous() && (self.last_onset_ns.is_some() || onset_ns != 0) {
                return invalid(format!(
                    "{} cannot hold a gap before record {}; use a +D format",
                    self.format, self.records_written
                ));
            }
        }
        let (lo, hi) = (
            self.format.digital_limit_min(),
            self.format.digital_limit_max(),
        );
        self.record.clear();
        for (i, (samples, header)) in signals.iter().zip(&self.signals).enumerate() {
            if samples.len() != header.samples_per_record {
                return invalid(format!(
                    "signal {i} has {} samples, the header says {}",
                    samples.len(),
                    header.samples_per_record
                ));
            }
            if samples.iter().any(|&v| v < lo || v > hi) {
                return invalid(format!(
                    "signal {i} has a sample outside the {}-bit range",
                    self.format.bytes_per_sample() * 8
                ));
            }
            if self.format.is_bdf() {
                for &v in *samples {
                    self.record.extend_from_slice(&v.to_le_bytes()[..3]);
                }
            } else {
                for &v in *samples {
                    self.record.extend_from_slice(&(v as i16).to_le_bytes());
                }
            }
        }
        if self.format.is_plus() {
            let start = self.record.len();
            tal::write_timekeeping(&mut self.record, self.subsecond_ns + onset_ns);
            if self.record.len() - start > self.annotation_bytes {
                return invalid(format!(
                    "the time-keeping annotation of record {} does not fit the annotation signal",
                    self.records_written
                ));
            }
            while let Some(next) = self.pending.front() {
                if self.record.len() - start + next.len() > self.annotation_bytes {
                    break;
                }
                let a = self.pending.pop_front().unwrap_or_else(|| unreachable!());
                tal::write_annotation(&mut self.record, a.onset_ns, a.duration_ns, &a.text);
            }
            self.record.resize(start + self.annotation_bytes, 0);
        }
        self.out.write_all(&self.record)?;
        self.records_written += 1;
        self.last_onset_ns = Some(onset_ns);
        Ok(())
    }

    /// Queues an annotation (EDF+/BDF+), written into the next records with room.
    ///
    /// # Errors
    /// [`EdfError::InvalidArgument`] for plain EDF/BDF or a text with TAL delimiters.
    pub fn add_annotation(&mut self, annotation: &Annotation) -> Result<()> {
        if !self.format.is_plus() {
            return Err(EdfError::InvalidArgument(format!(
                "{} cannot hold annotations",
                self.format
            )));
        }
        if !tal::valid_text(&annotation.text) {
            return Err(EdfError::InvalidArgument(
                "annotation text contains a NUL, 0x14 or 0x15 byte".into(),
            ));
        }
        let onset = tal::seconds_to_ns(annotation.onset)
            .ok_or_else(|| EdfError::InvalidArgument("annotation onset is not finite".into()))?;
        self.pending.push_back(PendingAnnotation {
            onset_ns: onset + self.subsecond_ns,
            duration_ns: annotation.duration.and_then(tal::seconds_to_ns),
            text: annotation.text.clone(),
        });
        Ok(())
    }

    /// Records written so far.
    pub fn records_written(&self) -> u64 {
        self.records_written
    }

    /// Writes the record count into the header, flushes, and returns the output.
    ///
    /// # Errors
    /// [`EdfError::InvalidArgument`] when annotations are left that found no room (the file is
    /// complete but lacks them: size the annotation signal with
    /// [`EdfWriterBuilder::with_expected_records`]); I/O errors.
    pub fn finish(mut self) -> Result<W> {
        let count = self.records_written.to_string();
        if count.len() > 8 {
            return Err(EdfError::InvalidArgument(
                "more records than the header can count".into(),
            ));
        }
        self.out.seek(SeekFrom::Start(N_RECORDS_OFFSET))?;
        let mut field = Vec::with_capacity(8);
        put(&mut field, "number of data records", &count, 8)?;
        self.out.write_all(&field)?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        if !self.pending.is_empty() {
            return Err(EdfError::InvalidArgument(format!(
                "{} annotations found no room in the annotation signal",
                self.pending.len()
            )));
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_fit_eight_characters() {
        assert_eq!(number(-5482.28).unwrap(), "-5482.28");
        assert_eq!(number(175921.0).unwrap(), "175921");
        assert_eq!(number(1e-7).unwrap(), "1e-7");
        assert_eq!(number(1.0 / 3.0).unwrap(), "0.333333");
        assert!(number(1e12).is_ok());
        assert_eq!(number(-1.5e15).unwrap(), "-1.5e15");
        assert!(number(1.234_567_891_2e20).is_err());
    }

    fn writer(format: Format) -> EdfWriter<std::io::Cursor<Vec<u8>>> {
        let start = chrono::NaiveDate::from_ymd_opt(2024, 5, 1)
            .unwrap()
            .and_hms_opt(8, 0, 0)
            .unwrap();
        EdfWriterBuilder::new(format, start, 1.0)
            .with_signals(vec![SignalHeader::new(
                "EEG Cz-Ref",
                4,
                (-32768, 32767),
                (-3276.8, 3276.7),
                "uV",
            )])
            .build(std::io::Cursor::new(Vec::new()))
            .unwrap()
    }

    #[test]
    fn refuses_what_the_format_cannot_hold() {
        let mut w = writer(Format::EdfPlusC);
        w.write_record(&[&[1, 2, 3, 4]]).unwrap();
        // Gap in a continuous file, wrong sample count, sample out of range, extra signal.
        assert!(w.write_record_at(5.0, &[&[0; 4]]).is_err());
        assert!(w.write_record(&[&[0; 3]]).is_err());
        assert!(w.write_record(&[&[40_000, 0, 0, 0]]).is_err());
        assert!(w.write_record(&[&[0; 4], &[0; 4]]).is_err());
        assert_eq!(w.records_written(), 1);
        let mut w = writer(Format::EdfPlusD);
        w.write_record_at(0.0, &[&[0; 4]]).unwrap();
        w.write_record_at(10.0, &[&[0; 4]]).unwrap();
        // Overlap is refused even in +D.
        assert!(w.write_record_at(10.5, &[&[0; 4]]).is_err());
        assert!(
            writer(Format::Edf)
                .add_annotation(&Annotation {
                    onset: 0.0,
                    duration: None,
                    text: "x".into(),
                })
                .is_err()
        );
    }

    #[test]
    fn finish_patches_the_record_count() {
        // 24-bit extremes survive BDF (the sample width is checked, not the declared range).
        let mut w = writer(Format::Bdf);
        w.write_record(&[&[-8_388_608, 0, 1, 8_388_607]]).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let mut r =
            crate::edf::EdfReader::new(std::io::Cursor::new(bytes), Default::default()).unwrap();
        let mut out = [0; 4];
        r.read_digital(0, 0, &mut out).unwrap();
        assert_eq!(out, [-8_388_608, 0, 1, 8_388_607]);
        let mut w = writer(Format::EdfPlusC);
        w.add_annotation(&Annotation {
            onset: 0.5,
            duration: Some(1.0),
            text: "late".into(),
        })
        .unwrap();
        for _ in 0..3 {
            w.write_record(&[&[0, 1, 2, 3]]).unwrap();
        }
        let bytes = w.finish().unwrap().into_inner();
        assert_eq!(&bytes[236..244], b"3       ");
    }

    #[test]
    fn timekeeping_reserve_covers_decimals() {
        assert_eq!(timekeeping_reserve(0, NS_PER_S, None), 1 + 8 + 3);
        assert_eq!(
            timekeeping_reserve(394_531_200, NS_PER_S, Some(698)),
            1 + 8 + 1 + 7 + 3
        );
    }
}
