//! The EDF/BDF header: the fixed 256-byte part and one 256-byte block per signal.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};

use super::error::{Diagnostics, EdfError, Result, Warning};
use super::labels::{ChannelType, channel_type, normalize_labels};

/// Bytes of the fixed header part, and of each signal's header block.
pub(crate) const BLOCK: u64 = 256;

/// Byte offsets and widths of the fixed header fields.
mod fixed {
    pub(super) const VERSION: (u64, usize) = (0, 8);
    pub(super) const PATIENT: (u64, usize) = (8, 80);
    pub(super) const RECORDING: (u64, usize) = (88, 80);
    pub(super) const START_DATE: (u64, usize) = (168, 8);
    pub(super) const START_TIME: (u64, usize) = (176, 8);
    pub(super) const HEADER_BYTES: (u64, usize) = (184, 8);
    pub(super) const RESERVED: (u64, usize) = (192, 44);
    pub(super) const N_RECORDS: (u64, usize) = (236, 8);
    pub(super) const RECORD_DURATION: (u64, usize) = (244, 8);
    pub(super) const N_SIGNALS: (u64, usize) = (252, 4);
}

/// Widths of the per-signal fields, in header order. Each field is stored for all signals in a
/// row: all labels, then all transducers, and so on.
pub(crate) const SIGNAL_FIELDS: [(&str, usize); 10] = [
    ("label", 16),
    ("transducer type", 80),
    ("physical dimension", 8),
    ("physical minimum", 8),
    ("physical maximum", 8),
    ("digital minimum", 8),
    ("digital maximum", 8),
    ("prefiltering", 80),
    ("samples per data record", 8),
    ("signal reserved field", 32),
];

/// The file format, from the version and reserved fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain EDF (16-bit samples, no annotations).
    Edf,
    /// EDF+ continuous.
    EdfPlusC,
    /// EDF+ discontinuous: records carry their own onsets.
    EdfPlusD,
    /// Plain BDF (24-bit samples).
    Bdf,
    /// BDF+ continuous.
    BdfPlusC,
    /// BDF+ discontinuous.
    BdfPlusD,
}

impl Format {
    /// The name used by `theta inspect`: `EDF`, `EDF+C`, `EDF+D`, `BDF`, `BDF+C`, `BDF+D`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Edf => "EDF",
            Format::EdfPlusC => "EDF+C",
            Format::EdfPlusD => "EDF+D",
            Format::Bdf => "BDF",
            Format::BdfPlusC => "BDF+C",
            Format::BdfPlusD => "BDF+D",
        }
    }

    /// True for BDF and BDF+ (24-bit samples).
    pub fn is_bdf(self) -> bool {
        matches!(self, Format::Bdf | Format::BdfPlusC | Format::BdfPlusD)
    }

    /// True for EDF+ and BDF+ (annotation signals, structured patient and recording fields).
    pub fn is_plus(self) -> bool {
        !matches!(self, Format::Edf | Format::Bdf)
    }

    /// True for EDF+D and BDF+D.
    pub fn is_discontinuous(self) -> bool {
        matches!(self, Format::EdfPlusD | Format::BdfPlusD)
    }

    /// Bytes per stored sample: 2 for EDF, 3 for BDF.
    pub fn bytes_per_sample(self) -> usize {
        if self.is_bdf() { 3 } else { 2 }
    }

    /// Smallest storable digital value.
    pub fn digital_limit_min(self) -> i32 {
        if self.is_bdf() {
            -(1 << 23)
        } else {
            i32::from(i16::MIN)
        }
    }

    /// Largest storable digital value.
    pub fn digital_limit_max(self) -> i32 {
        if self.is_bdf() {
            (1 << 23) - 1
        } else {
            i32::from(i16::MAX)
        }
    }

    /// The label of this family's annotation signals.
    pub fn annotation_label(self) -> &'static str {
        if self.is_bdf() {
            "BDF Annotations"
        } else {
            "EDF Annotations"
        }
    }

    /// The reserved-field text written for this format.
    pub(crate) fn reserved_text(self) -> &'static str {
        match self {
            Format::Edf => "",
            Format::Bdf => "24BIT",
            Format::EdfPlusC => "EDF+C",
            Format::EdfPlusD => "EDF+D",
            Format::BdfPlusC => "BDF+C",
            Format::BdfPlusD => "BDF+D",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sex in the EDF+ patient field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// `F`.
    Female,
    /// `M`.
    Male,
}

/// The EDF+ patient sub-fields (`code sex birthdate name additional`). `X` (unknown) reads as
/// `None`; underscores, which stand for spaces inside a sub-field, read as spaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PatientInfo {
    /// Hospital patient code.
    pub code: Option<String>,
    /// Sex.
    pub sex: Option<Sex>,
    /// Birth date.
    pub birthdate: Option<NaiveDate>,
    /// Patient name.
    pub name: Option<String>,
    /// Everything after the name, as written.
    pub additional: String,
}

/// The EDF+ recording sub-fields (`Startdate dd-MMM-yyyy admincode technician equipment
/// additional`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordingInfo {
    /// Start date with a four-digit year.
    pub start_date: Option<NaiveDate>,
    /// Hospital administration code of the investigation.
    pub admin_code: Option<String>,
    /// Technician or investigator.
    pub technician: Option<String>,
    /// Equipment.
    pub equipment: Option<String>,
    /// Everything after the equipment, as written.
    pub additional: String,
}

/// One data signal's header. Annotation signals are not data signals and have no
/// `SignalHeader`; their layout is internal to the reader.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalHeader {
    /// Label as written (trimmed), e.g. `EEG Fp1-REF`.
    pub label: String,
    /// Transducer type.
    pub transducer: String,
    /// Physical dimension (unit), e.g. `uV`.
    pub physical_dimension: String,
    /// Physical value of `digital_min`.
    pub physical_min: f64,
    /// Physical value of `digital_max`.
    pub physical_max: f64,
    /// Smallest digital value.
    pub digital_min: i32,
    /// Largest digital value.
    pub digital_max: i32,
    /// Prefiltering text, e.g. `HP:0.1Hz LP:75Hz`.
    pub prefilter: String,
    /// Samples of this signal in each data record.
    pub samples_per_record: usize,
    /// The signal's reserved field (BioSemi writes `MON`, `BIP`, ...).
    pub reserved: String,
    /// Normalised 10-20 name (reader only; ignored by the writer).
    pub normalized_label: Option<String>,
    /// Channel type (reader only; ignored by the writer).
    pub channel_type: ChannelType,
}

impl SignalHeader {
    /// A signal header with the given label, samples per record, digital and physical ranges and
    /// unit; the other text fields empty. Normalised label and type are derived from the label.
    pub fn new(
        label: impl Into<String>,
        samples_per_record: usize,
        digital: (i32, i32),
        physical: (f64, f64),
        physical_dimension: impl Into<String>,
    ) -> Self {
        let label = label.into();
        let physical_dimension = physical_dimension.into();
        let normalized_label = super::labels::normalize_label(&label);
        let channel_type = channel_type(&label, "", &physical_dimension);
        SignalHeader {
            label,
            transducer: String::new(),
            physical_dimension,
            physical_min: physical.0,
            physical_max: physical.1,
            digital_min: digital.0,
            digital_max: digital.1,
            prefilter: String::new(),
            samples_per_record,
            reserved: String::new(),
            normalized_label,
            channel_type,
        }
    }

    /// Gain and offset of the physical scaling, `physical = gain * (digital + offset)`, the
    /// formula EDFlib uses (so values agree with pyedflib to the last bit). A degenerate range
    /// gives gain 1, offset 0.
    pub fn scaling(&self) -> (f64, f64) {
        scaling(
            (self.physical_min, self.physical_max),
            (self.digital_min, self.digital_max),
        )
    }

    /// Converts digital samples to physical values.
    ///
    /// # Panics
    /// When `physical` is shorter than `digital`.
    pub fn to_physical_into(&self, digital: &[i32], physical: &mut [f64]) {
        let (gain, offset) = self.scaling();
        for (p, &d) in physical[..digital.len()].iter_mut().zip(digital) {
            *p = gain * (offset + f64::from(d));
        }
    }
}

/// Gain and offset of a signal's physical scaling from its physical and digital ranges,
/// `physical = gain * (digital + offset)`: EDFlib's formula, shared by the reader and the
/// store's signal records so both give the same values to the last bit. A degenerate range
/// gives gain 1, offset 0.
pub fn scaling(physical: (f64, f64), digital: (i32, i32)) -> (f64, f64) {
    let span = f64::from(digital.1) - f64::from(digital.0);
    let gain = (physical.1 - physical.0) / span;
    if !gain.is_finite() || gain == 0.0 || span <= 0.0 {
        return (1.0, 0.0);
    }
    (gain, physical.1 / gain - f64::from(digital.1))
}

/// Everything in the header, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfHeader {
    /// The format.
    pub format: Format,
    /// The patient field as written (trimmed).
    pub patient: String,
    /// The recording field as written (trimmed).
    pub recording: String,
    /// EDF+ patient sub-fields, when the file is EDF+/BDF+ and the field follows the standard.
    pub patient_info: Option<PatientInfo>,
    /// EDF+ recording sub-fields, likewise.
    pub recording_info: Option<RecordingInfo>,
    /// Start of the recording: header date and time plus, for EDF+/BDF+, the sub-second
    /// fraction of the first record's time-keeping annotation. EDF stores local wall-clock time
    /// without a zone.
    pub start: NaiveDateTime,
    /// Data records readable in the file (after leniencies).
    pub n_records: u64,
    /// Duration of one data record in seconds (0 for annotation-only files).
    pub record_duration: f64,
    /// The data signals, annotation signals left out.
    pub signals: Vec<SignalHeader>,
    /// Header positions of the annotation signals.
    pub annotation_signals: Vec<usize>,
    /// Bytes in the header.
    pub header_bytes: u64,
    /// Bytes in one data record.
    pub record_bytes: u64,
    /// The reserved field as written (trimmed).
    pub reserved: String,
}

impl EdfHeader {
    /// Sample rate of a data signal in Hz (samples per record over record duration); may be
    /// non-integer, e.g. 12.8.
    pub fn sample_rate(&self, signal: usize) -> f64 {
        match self.signals.get(signal) {
            Some(s) if self.record_duration > 0.0 => {
                s.samples_per_record as f64 / self.record_duration
            }
            _ => 0.0,
        }
    }

    /// Samples of a data signal in the file.
    pub fn n_samples(&self, signal: usize) -> u64 {
        self.signals
            .get(signal)
            .map_or(0, |s| s.samples_per_record as u64 * self.n_records)
    }

    /// Recorded duration in seconds: records × record duration (gaps of EDF+D not counted).
    pub fn duration(&self) -> f64 {
        self.n_records as f64 * self.record_duration
    }
}

/// Where each signal's samples sit inside a data record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Byte offset of the signal's first sample within a record.
    pub(crate) offset: usize,
    /// Samples per record.
    pub(crate) samples: usize,
}

/// The parsed header plus the record layout the reader needs.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) header: EdfHeader,
    pub(crate) data_slots: Vec<Slot>,
    pub(crate) annotation_slots: Vec<(usize, Slot)>,
    pub(crate) record_duration_ns: i64,
}

/// A view over header bytes that parses fields and names them in errors.
struct Fields<'a> {
    bytes: &'a [u8],
}

impl Fields<'_> {
    fn raw(&self, (offset, width): (u64, usize)) -> &[u8] {
        &self.bytes[offset as usize..offset as usize + width]
    }

    /// Decodes a text field: ASCII as is; other bytes as UTF-8 when valid, else Latin-1, with a
    /// warning.
    fn text(&self, diag: &mut Diagnostics, field: &str, at: (u64, usize)) -> Result<String> {
        let raw = self.raw(at);
        let trimmed = trim_field(raw);
        if trimmed.iter().all(|&b| (0x20..0x7f).contains(&b)) {
            return Ok(String::from_utf8_lossy(trimmed).into_owned());
        }
        diag.warn(Warning::NonAsciiText {
            field: field.to_owned(),
            offset: at.0,
        })?;
        Ok(match std::str::from_utf8(trimmed) {
            Ok(s) => s.chars().filter(|c| !c.is_control()).collect(),
            Err(_) => trimmed
                .iter()
                .map(|&b| char::from(b))
                .filter(|c| !c.is_control())
                .collect(),
        })
    }

    /// The trimmed ASCII text of a numeric field, warning on leading spaces and decimal commas.
    fn number_text(&self, diag: &mut Diagnostics, field: &str, at: (u64, usize)) -> Result<String> {
        let raw = self.raw(at);
        if !raw.is_ascii() {
            return Err(EdfError::malformed(
                field,
                at.0,
                "non-ASCII bytes in a number",
            ));
        }
        let text = std::str::from_utf8(raw).unwrap_or_default();
        let text = text.trim_end_matches([' ', '\0']);
        if text.is_empty() {
            return Err(EdfError::malformed(field, at.0, "empty"));
        }
        if text.starts_with(' ') {
            diag.warn(Warning::NumberWithLeadingSpaces {
                field: field.to_owned(),
                offset: at.0,
            })?;
        }
        let mut text = text.trim().to_owned();
        if text.contains(',') && !text.contains('.') {
            diag.warn(Warning::DecimalComma {
                field: field.to_owned(),
                offset: at.0,
            })?;
            text = text.replace(',', ".");
        }
        Ok(text)
    }

    fn int(&self, diag: &mut Diagnostics, field: &str, at: (u64, usize)) -> Result<i64> {
        let text = self.number_text(diag, field, at)?;
        text.parse::<i64>()
            .map_err(|_| EdfError::malformed(field, at.0, "not an integer"))
    }

    fn float(&self, diag: &mut Diagnostics, field: &str, at: (u64, usize)) -> Result<f64> {
        let text = self.number_text(diag, field, at)?;
        // Rust also parses "inf" and "NaN": only plain decimal numbers are EDF numbers.
        if !text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        {
            return Err(EdfError::malformed(field, at.0, "not a number"));
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(EdfError::malformed(field, at.0, "not a finite number")),
        }
    }
}

fn trim_field(raw: &[u8]) -> &[u8] {
    let end = raw
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |p| p + 1);
    let start = raw[..end].iter().position(|&b| b != b' ').unwrap_or(end);
    &raw[start..end]
}

/// Parses the fixed 256-byte header part; returns the number of signals announced.
pub(crate) fn signal_count(
    fixed: &[u8; BLOCK as usize],
    stream_len: u64,
    diag: &mut Diagnostics,
) -> Result<usize> {
    let f = Fields { bytes: fixed };
    let n = f.int(diag, "number of signals", fixed::N_SIGNALS)?;
    if n < 1 {
        return Err(EdfError::malformed(
            "number of signals",
            fixed::N_SIGNALS.0,
            "must be at least 1",
        ));
    }
    // Check against the stream before anything is allocated per signal.
    let needed = (n as u64).checked_add(1).and_then(|k| k.checked_mul(BLOCK));
    if needed.is_none_or(|b| b > stream_len) {
        return Err(EdfError::malformed(
            "number of signals",
            fixed::N_SIGNALS.0,
            "the signal headers would extend past the end of the file",
        ));
    }
    Ok(n as usize)
}

/// Parses the whole header (`bytes` holds 256 × (n + 1) bytes).
pub(crate) fn parse(bytes: &[u8], stream_len: u64, diag: &mut Diagnostics) -> Result<Parsed> {
    let f = Fields { bytes };
    let ns = (bytes.len() as u64 / BLOCK - 1) as usize;

    // Version: "0" for EDF, 0xFF "BIOSEMI" for BDF.
    let version = f.raw(fixed::VERSION);
    let bdf = version[0] == 0xff;
    if bdf {
        if &version[1..] != b"BIOSEMI" {
            diag.warn(Warning::NonStandardVersion)?;
        }
    } else if trim_field(version) != b"0" {
        return Err(EdfError::malformed(
            "version",
            0,
            "not an EDF (\"0\") or BDF (\\xffBIOSEMI) file",
        ));
    }

    let reserved = f.text(diag, "reserved", fixed::RESERVED)?;
    let family_plus = |r: &str| -> Option<(bool, bool)> {
        // (is_bdf_named, discontinuous)
        let r = r.trim();
        match r.get(..5) {
            Some("EDF+C") => Some((false, false)),
            Some("EDF+D") => Some((false, true)),
            Some("BDF+C") => Some((true, false)),
            Some("BDF+D") => Some((true, true)),
            _ => None,
        }
    };
    let format = match family_plus(&reserved) {
        Some((named_bdf, discontinuous)) => {
            if named_bdf != bdf {
                diag.warn(Warning::ReservedFieldMismatch)?;
            }
            match (bdf, discontinuous) {
                (false, false) => Format::EdfPlusC,
                (false, true) => Format::EdfPlusD,
                (true, false) => Format::BdfPlusC,
                (true, true) => Format::BdfPlusD,
            }
        }
        None if bdf => Format::Bdf,
        None => Format::Edf,
    };

    let patient = f.text(diag, "patient", fixed::PATIENT)?;
    let recording = f.text(diag, "recording", fixed::RECORDING)?;

    let header_bytes = f.int(diag, "number of header bytes", fixed::HEADER_BYTES)?;
    if header_bytes != (ns as i64 + 1) * BLOCK as i64 {
        return Err(EdfError::malformed(
            "number of header bytes",
            fixed::HEADER_BYTES.0,
            "does not equal 256 × (number of signals + 1)",
        ));
    }
    let header_bytes = header_bytes as u64;
    let declared_records = f.int(diag, "number of data records", fixed::N_RECORDS)?;
    if declared_records < -1 {
        return Err(EdfError::malformed(
            "number of data records",
            fixed::N_RECORDS.0,
            "negative",
        ));
    }
    let record_duration = f.float(diag, "duration of a data record", fixed::RECORD_DURATION)?;
    if record_duration < 0.0 {
        return Err(EdfError::malformed(
            "duration of a data record",
            fixed::RECORD_DURATION.0,
            "negative",
        ));
    }
    let record_duration_ns = super::tal::seconds_to_ns(record_duration).ok_or_else(|| {
        EdfError::malformed(
            "duration of a data record",
            fixed::RECORD_DURATION.0,
            "out of range",
        )
    })?;

    // Per-signal fields: each field is stored for all signals in a row.
    let mut column_start = [0u64; SIGNAL_FIELDS.len()];
    let mut at = BLOCK;
    for (start, (_, width)) in column_start.iter_mut().zip(SIGNAL_FIELDS) {
        *start = at;
        at += (ns * width) as u64;
    }
    let cell = |field: usize, signal: usize| -> (u64, usize) {
        let width = SIGNAL_FIELDS[field].1;
        (column_start[field] + (signal * width) as u64, width)
    };
    let bps = if bdf { 3 } else { 2 };
    let mut signals = Vec::with_capacity(ns);
    let mut annotation_signals = Vec::new();
    let mut data_slots = Vec::with_capacity(ns);
    let mut annotation_slots = Vec::new();
    let mut record_bytes: u64 = 0;
    let data_bytes_available = stream_len.saturating_sub(header_bytes);
    for i in 0..ns {
        let name = |field: &str| format!("{field} of signal {i}");
        let label = f.text(diag, &name("label"), cell(0, i))?;
        let spr = f.int(diag, &name("samples per data record"), cell(8, i))?;
        if spr < 1 {
            return Err(EdfError::malformed(
                name("samples per data record"),
                cell(8, i).0,
                "must be at least 1",
            ));
        }
        let slot_bytes = (spr as u64).checked_mul(bps).filter(|&b| b < 1 << 40);
        let Some(slot_bytes) = slot_bytes else {
            return Err(EdfError::malformed(
                name("samples per data record"),
                cell(8, i).0,
                "too large",
            ));
        };
        let slot = Slot {
            offset: record_bytes as usize,
            samples: spr as usize,
        };
        record_bytes += slot_bytes;
        let is_annotation = label == "EDF Annotations" || label == "BDF Annotations";
        if is_annotation {
            if !format.is_plus() {
                diag.warn(Warning::AnnotationSignalInPlainFile { signal: i })?;
            }
            annotation_signals.push(i);
            annotation_slots.push((i, slot));
            continue;
        }
        let physical_min = f.float(diag, &name("physical minimum"), cell(3, i))?;
        let physical_max = f.float(diag, &name("physical maximum"), cell(4, i))?;
        let digital_min = f.int(diag, &name("digital minimum"), cell(5, i))?;
        let digital_max = f.int(diag, &name("digital maximum"), cell(6, i))?;
        let limit = if bdf { 1i64 << 23 } else { 1 << 15 };
        for (v, col, field) in [
            (digital_min, 5, "digital minimum"),
            (digital_max, 6, "digital maximum"),
        ] {
            if v < -limit || v >= limit {
                return Err(EdfError::malformed(
                    name(field),
                    cell(col, i).0,
                    "outside the range of the sample width",
                ));
            }
        }
        let data_index = signals.len();
        if physical_min == physical_max || digital_min >= digital_max {
            diag.warn(Warning::DegenerateRange { signal: data_index })?;
        }
        signals.push(SignalHeader {
            label,
            transducer: f.text(diag, &name("transducer type"), cell(1, i))?,
            physical_dimension: f.text(diag, &name("physical dimension"), cell(2, i))?,
            physical_min,
            physical_max,
            digital_min: digital_min as i32,
            digital_max: digital_max as i32,
            prefilter: f.text(diag, &name("prefiltering"), cell(7, i))?,
            samples_per_record: spr as usize,
            reserved: f.text(diag, &name("signal reserved field"), cell(9, i))?,
            normalized_label: None,
            channel_type: ChannelType::Misc,
        });
        data_slots.push(slot);
    }
    // A record larger than the whole file can only be legitimate in an empty recording; cap it
    // so no buffer is ever sized by a lying header.
    const MAX_RECORD_BYTES_WITHOUT_DATA: u64 = 1 << 20;
    if record_bytes > data_bytes_available && record_bytes > MAX_RECORD_BYTES_WITHOUT_DATA {
        return Err(EdfError::malformed(
            "samples per data record",
            BLOCK + (ns * (16 + 80 + 8 * 5 + 80)) as u64,
            "one data record would be larger than the file",
        ));
    }
    if format.is_plus() && annotation_signals.is_empty() {
        diag.warn(Warning::NoAnnotationSignal)?;
    }
    if record_duration_ns == 0 && !signals.is_empty() {
        return Err(EdfError::malformed(
            "duration of a data record",
            fixed::RECORD_DURATION.0,
            "zero, but the file has data signals",
        ));
    }

    // Labels: normalised with the whole file as context; duplicates are a leniency.
    let labels: Vec<&str> = signals.iter().map(|s| s.label.as_str()).collect();
    let normalized = normalize_labels(&labels);
    for (s, n) in signals.iter_mut().zip(normalized) {
        s.normalized_label = n;
        s.channel_type = channel_type(&s.label, &s.transducer, &s.physical_dimension);
    }
    for second in 1..signals.len() {
        if let Some(first) = (0..second).find(|&j| signals[j].label == signals[second].label) {
            diag.warn(Warning::DuplicateLabel {
                label: signals[second].label.clone(),
                first,
                second,
            })?;
        }
    }

    // Record count against the file size.
    let whole = data_bytes_available.checked_div(record_bytes).unwrap_or(0);
    let n_records = match declared_records {
        -1 => {
            diag.warn(Warning::RecordCountUnknown { in_file: whole })?;
            whole
        }
        d if d as u64 == whole => whole,
        d => {
            diag.warn(Warning::RecordCountMismatch {
                declared: d,
                in_file: whole,
            })?;
            (d as u64).min(whole)
        }
    };
    // Times are kept in i64 nanoseconds (±292 years): a file whose records would run past that
    // cannot be placed on a timeline, whatever its data.
    if i64::try_from(n_records)
        .ok()
        .and_then(|n| n.checked_mul(record_duration_ns))
        .is_none()
    {
        return Err(EdfError::malformed(
            "duration of a data record",
            fixed::RECORD_DURATION.0,
            "times the number of data records is more than 292 years",
        ));
    }
    let used = header_bytes + n_records * record_bytes;
    if stream_len > used && (declared_records == -1 || declared_records as u64 == whole) {
        diag.warn(Warning::TrailingBytes {
            bytes: stream_len - used,
            offset: used,
        })?;
    }

    let date_text = f.text(diag, "start date", fixed::START_DATE)?;
    let time_text = f.text(diag, "start time", fixed::START_TIME)?;
    let mut start_date = parse_dotted(&date_text, diag, "start date", fixed::START_DATE.0)?
        .and_then(|(d, m, y)| {
            // EDF's two-digit year: 85–99 is 19xx, 00–84 is 20xx.
            let year = if y >= 85 { 1900 + y } else { 2000 + y };
            NaiveDate::from_ymd_opt(year as i32, m, d)
        });
    let start_time = parse_dotted(&time_text, diag, "start time", fixed::START_TIME.0)?
        .and_then(|(h, m, s)| NaiveTime::from_hms_opt(h, m, s))
        .ok_or_else(|| {
            EdfError::malformed("start time", fixed::START_TIME.0, "not a time hh.mm.ss")
        })?;

    let (patient_info, recording_info) = if format.is_plus() {
        let p = parse_patient(&patient);
        if p.is_none() {
            diag.warn(Warning::NonStandardPlusField {
                field: "patient".into(),
            })?;
        }
        let r = parse_recording(&recording);
        if r.is_none() {
            diag.warn(Warning::NonStandardPlusField {
                field: "recording".into(),
            })?;
        }
        (p, r)
    } else {
        (None, None)
    };
    // EDF+ keeps the four-digit year in the recording field: it settles years past 2084.
    if let Some(full) = recording_info.as_ref().and_then(|r| r.start_date) {
        match start_date {
            Some(d) if d == full => {}
            Some(d)
                if (d.day(), d.month()) == (full.day(), full.month())
                    && d.year() % 100 == full.year() % 100 =>
            {
                start_date = Some(full);
            }
            Some(_) => diag.warn(Warning::StartDateMismatch)?,
            None => start_date = Some(full),
        }
    }
    let start_date = start_date.ok_or_else(|| {
        EdfError::malformed("start date", fixed::START_DATE.0, "not a date dd.mm.yy")
    })?;

    Ok(Parsed {
        header: EdfHeader {
            format,
            patient,
            recording,
            patient_info,
            recording_info,
            start: NaiveDateTime::new(start_date, start_time),
            n_records,
            record_duration,
            signals,
            annotation_signals,
            header_bytes,
            record_bytes,
            reserved,
        },
        data_slots,
        annotation_slots,
        record_duration_ns,
    })
}

/// Parses `dd.mm.yy` / `hh.mm.ss`; other separators are accepted with a warning. `None` when
/// the parts are not numbers.
fn parse_dotted(
    text: &str,
    diag: &mut Diagnostics,
    field: &str,
    offset: u64,
) -> Result<Option<(u32, u32, u32)>> {
    let parts: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() != 3 || parts.iter().any(|p| p.len() > 2) {
        return Ok(None);
    }
    let standard = text.len() == 8 && text.as_bytes()[2] == b'.' && text.as_bytes()[5] == b'.';
    if !standard {
        diag.warn(Warning::NonStandardDateTime {
            field: field.to_owned(),
            offset,
        })?;
    }
    let n = |s: &str| s.parse::<u32>().ok();
    Ok(match (n(parts[0]), n(parts[1]), n(parts[2])) {
        (Some(a), Some(b), Some(c)) => Some((a, b, c)),
        _ => None,
    })
}

/// `dd-MMM-yyyy`, as EDF+ writes dates (`02-MAR-2013`).
fn parse_plus_date(s: &str) -> Option<NaiveDate> {
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let mut it = s.split('-');
    let (d, m, y) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || d.len() != 2 || y.len() != 4 {
        return None;
    }
    let month = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(m))? as u32 + 1;
    NaiveDate::from_ymd_opt(y.parse().ok()?, month, d.parse().ok()?)
}

/// Formats a date the EDF+ way: `02-MAR-2013`.
pub(crate) fn format_plus_date(d: NaiveDate) -> String {
    d.format("%d-%b-%Y").to_string().to_ascii_uppercase()
}

impl PatientInfo {
    /// Parses an EDF+ patient field (`code sex birthdate name [additional]`); `None` when it
    /// does not follow EDF+ (plain EDF free text).
    pub fn parse(field: &str) -> Option<Self> {
        parse_patient(field)
    }

    /// Renders the EDF+ field (unknown sub-fields as `X`, spaces as `_`).
    pub fn render(&self) -> String {
        render_patient(self)
    }
}

impl RecordingInfo {
    /// Parses an EDF+ recording field (`Startdate dd-MMM-yyyy admincode technician equipment
    /// [additional]`); `None` when it does not follow EDF+.
    pub fn parse(field: &str) -> Option<Self> {
        parse_recording(field)
    }
}

fn subfield(s: &str) -> Option<String> {
    if s == "X" {
        None
    } else {
        Some(s.replace('_', " "))
    }
}

fn parse_patient(field: &str) -> Option<PatientInfo> {
    let mut it = field.split(' ').filter(|s| !s.is_empty());
    let code = it.next()?;
    let sex = match it.next()? {
        "F" => Some(Sex::Female),
        "M" => Some(Sex::Male),
        "X" => None,
        _ => return None,
    };
    let birth = it.next()?;
    let birthdate = if birth == "X" {
        None
    } else {
        Some(parse_plus_date(birth)?)
    };
    let name = it.next()?;
    Some(PatientInfo {
        code: subfield(code),
        sex,
        birthdate,
        name: subfield(name),
        additional: it.collect::<Vec<_>>().join(" "),
    })
}

fn parse_recording(field: &str) -> Option<RecordingInfo> {
    let mut it = field.split(' ').filter(|s| !s.is_empty());
    if it.next()? != "Startdate" {
        return None;
    }
    let date = it.next()?;
    let start_date = if date == "X" {
        None
    } else {
        Some(parse_plus_date(date)?)
    };
    Some(RecordingInfo {
        start_date,
        admin_code: subfield(it.next()?),
        technician: subfield(it.next()?),
        equipment: subfield(it.next()?),
        additional: it.collect::<Vec<_>>().join(" "),
    })
}

/// Renders EDF+ patient sub-fields into the 80-character field (spaces inside a sub-field become
/// underscores, unknowns `X`).
pub(crate) fn render_patient(p: &PatientInfo) -> String {
    let sub = |s: &Option<String>| {
        s.as_deref()
            .map_or_else(|| "X".to_owned(), |s| s.replace(' ', "_"))
    };
    let sex = match p.sex {
        Some(Sex::Female) => "F",
        Some(Sex::Male) => "M",
        None => "X",
    };
    let birth = p.birthdate.map_or_else(|| "X".to_owned(), format_plus_date);
    let mut s = format!("{} {sex} {birth} {}", sub(&p.code), sub(&p.name));
    if !p.additional.is_empty() {
        s.push(' ');
        s.push_str(&p.additional);
    }
    s
}

/// Renders EDF+ recording sub-fields.
pub(crate) fn render_recording(r: &RecordingInfo, start: NaiveDate) -> String {
    let sub = |s: &Option<String>| {
        s.as_deref()
            .map_or_else(|| "X".to_owned(), |s| s.replace(' ', "_"))
    };
    let mut s = format!(
        "Startdate {} {} {} {}",
        format_plus_date(r.start_date.unwrap_or(start)),
        sub(&r.admin_code),
        sub(&r.technician),
        sub(&r.equipment)
    );
    if !r.additional.is_empty() {
        s.push(' ');
        s.push_str(&r.additional);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_fields_parse_and_render() {
        let p = parse_patient("X F 20-JAN-1998 X,X").unwrap();
        assert_eq!(p.sex, Some(Sex::Female));
        assert_eq!(p.name.as_deref(), Some("X,X"));
        assert_eq!(p.birthdate, NaiveDate::from_ymd_opt(1998, 1, 20));
        assert_eq!(render_patient(&p), "X F 20-JAN-1998 X,X");
        let r = parse_recording("Startdate 07-MAR-2009 X Tech:X Somnoscreen_Plus_1500").unwrap();
        assert_eq!(r.equipment.as_deref(), Some("Somnoscreen Plus 1500"));
        assert_eq!(r.admin_code, None);
        assert_eq!(
            render_recording(&r, NaiveDate::from_ymd_opt(2009, 3, 7).unwrap()),
            "Startdate 07-MAR-2009 X Tech:X Somnoscreen_Plus_1500"
        );
        assert!(parse_patient("00008836 M 01-JAN-1952 00008836 Age:60").is_some());
        assert!(parse_recording("110 seconds from 13-JUL-2000").is_none());
        assert!(parse_patient("A 3Hz sinewave").is_none());
    }

    #[test]
    fn trims_fields() {
        assert_eq!(trim_field(b"  1     "), b"1");
        assert_eq!(trim_field(b"abc\0\0"), b"abc");
        assert_eq!(trim_field(b"    "), b"");
    }
}
