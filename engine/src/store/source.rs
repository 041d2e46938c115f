//! What the store ingests: any [`SampleSource`] (an EDF/BDF reader, a live stream, a generator).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use theta_codecs::SampleWidth;

use super::error::SourceError;

/// One signal (channel) of a recording, as in an EDF/BDF signal header. Annotation signals
/// are not signals here: their content arrives as [`Annotation`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalInfo {
    /// Label as recorded (for example `EEG Fp1-REF`).
    pub label: String,
    /// Transducer type.
    pub transducer: String,
    /// Physical dimension (unit), for example `uV`.
    pub physical_dimension: String,
    /// Physical value of `digital_min`.
    pub physical_min: f64,
    /// Physical value of `digital_max`.
    pub physical_max: f64,
    /// Smallest digital value of the calibration.
    pub digital_min: i32,
    /// Largest digital value of the calibration.
    pub digital_max: i32,
    /// Prefiltering text.
    pub prefilter: String,
    /// Samples of this signal in each data record (the rate is this over the record duration).
    pub samples_per_record: u32,
    /// Stored sample width: 16-bit (EDF) or 24-bit (BDF).
    #[serde(with = "width_bits")]
    pub width: SampleWidth,
}

impl SignalInfo {
    /// Sample rate in Hz for a given record duration (0 when the duration is 0).
    pub fn sample_rate(&self, record_duration: f64) -> f64 {
        if record_duration > 0.0 {
            f64::from(self.samples_per_record) / record_duration
        } else {
            0.0
        }
    }

    /// `(gain, offset)` so that `physical = gain * (digital + offset)`: EDFlib's formula
    /// (and the EDF reader's), so physical values agree with pyedflib to the last bit. A
    /// degenerate range maps with gain 1 and offset 0.
    pub fn calibration(&self) -> (f64, f64) {
        crate::edf::scaling(
            (self.physical_min, self.physical_max),
            (self.digital_min, self.digital_max),
        )
    }

    /// Converts one digital value to physical units.
    pub fn to_physical(&self, digital: i32) -> f64 {
        let (gain, offset) = self.calibration();
        gain * (f64::from(digital) + offset)
    }
}

mod width_bits {
    use serde::{Deserialize, Deserializer, Serializer};
    use theta_codecs::SampleWidth;

    pub(super) fn serialize<S: Serializer>(w: &SampleWidth, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match w {
            SampleWidth::Bits16 => 16,
            SampleWidth::Bits24 => 24,
        })
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SampleWidth, D::Error> {
        match u8::deserialize(d)? {
            16 => Ok(SampleWidth::Bits16),
            24 => Ok(SampleWidth::Bits24),
            other => Err(serde::de::Error::custom(format!(
                "sample width {other} bits (16 or 24)"
            ))),
        }
    }
}

/// Recording-level header fields. All of them may identify the patient, so the store keeps
/// them only inside the encrypted manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceHeader {
    /// Input format, for example `EDF+C`, `EDF+D`, `BDF`.
    pub format: String,
    /// Local patient identification field as recorded.
    pub patient: String,
    /// Local recording identification field as recorded.
    pub recording: String,
    /// Start date and time (ISO 8601, with the sub-second part if known); empty if unknown.
    pub start: String,
    /// Any other header field (for example the parsed EDF+ sub-fields).
    pub fields: BTreeMap<String, String>,
}

/// An annotation: onset in seconds from the recording start, optional duration, text. One type
/// with the EDF reader's, so a file's annotations reach the store as they were read.
pub use crate::edf::Annotation;

/// A recording to ingest, read record by record so that it never has to fit in memory.
///
/// A data record holds `samples_per_record` consecutive samples of every signal and lasts
/// `record_duration` seconds; records may have gaps between them (EDF+D), given by their
/// onsets, but never overlap.
pub trait SampleSource: Send {
    /// Recording-level fields (stored encrypted).
    fn header(&self) -> &SourceHeader;

    /// The signals, in order (annotation signals excluded).
    fn signals(&self) -> &[SignalInfo];

    /// Duration of one data record in seconds.
    fn record_duration(&self) -> f64;

    /// Number of records if known in advance (for progress reporting).
    fn record_count(&self) -> Option<u64>;

    /// Size of the input in bytes if known (for example the file size), reported as the
    /// recording's raw size; by default the samples at their stored width.
    fn raw_bytes(&self) -> Option<u64> {
        None
    }

    /// Reads the next record into `out` (`out[s]` has exactly `samples_per_record` of signal
    /// `s` elements) and returns its onset in seconds from the recording start, or `None`
    /// after the last record.
    ///
    /// # Errors
    /// Whatever the source fails with (malformed input, I/O).
    fn next_record(&mut self, out: &mut [&mut [i32]]) -> Result<Option<f64>, SourceError>;

    /// Every annotation of the recording; called once after the last record.
    ///
    /// # Errors
    /// Whatever the source fails with.
    fn take_annotations(&mut self) -> Result<Vec<Annotation>, SourceError>;
}

impl<S: SampleSource + ?Sized> SampleSource for Box<S> {
    fn header(&self) -> &SourceHeader {
        (**self).header()
    }
    fn signals(&self) -> &[SignalInfo] {
        (**self).signals()
    }
    fn record_duration(&self) -> f64 {
        (**self).record_duration()
    }
    fn record_count(&self) -> Option<u64> {
        (**self).record_count()
    }
    fn raw_bytes(&self) -> Option<u64> {
        (**self).raw_bytes()
    }
    fn next_record(&mut self, out: &mut [&mut [i32]]) -> Result<Option<f64>, SourceError> {
        (**self).next_record(out)
    }
    fn take_annotations(&mut self) -> Result<Vec<Annotation>, SourceError> {
        (**self).take_annotations()
    }
}

/// A source held in memory: records pushed one by one (tests, small imports, live buffers).
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    header: SourceHeader,
    signals: Vec<SignalInfo>,
    record_duration: f64,
    records: VecDeque<(f64, Vec<Vec<i32>>)>,
    next_onset: f64,
    annotations: Vec<Annotation>,
}

impl MemorySource {
    /// An empty source with these signals.
    pub fn new(header: SourceHeader, signals: Vec<SignalInfo>, record_duration: f64) -> Self {
        Self {
            header,
            signals,
            record_duration,
            ..Default::default()
        }
    }

    /// Appends a record; `onset` `None` places it right after the previous one.
    ///
    /// # Panics
    /// When `samples` does not have one vector of `samples_per_record` values per signal.
    pub fn push_record(&mut self, onset: Option<f64>, samples: Vec<Vec<i32>>) {
        assert_eq!(samples.len(), self.signals.len(), "one vector per signal");
        for (s, v) in self.signals.iter().zip(&samples) {
            assert_eq!(v.len(), s.samples_per_record as usize, "samples per record");
        }
        let onset = onset.unwrap_or(self.next_onset);
        self.next_onset = onset + self.record_duration;
        self.records.push_back((onset, samples));
    }

    /// Adds an annotation.
    pub fn push_annotation(&mut self, annotation: Annotation) {
        self.annotations.push(annotation);
    }
}

impl SampleSource for MemorySource {
    fn header(&self) -> &SourceHeader {
        &self.header
    }
    fn signals(&self) -> &[SignalInfo] {
        &self.signals
    }
    fn record_duration(&self) -> f64 {
        self.record_duration
    }
    fn record_count(&self) -> Option<u64> {
        Some(self.records.len() as u64)
    }
    fn next_record(&mut self, out: &mut [&mut [i32]]) -> Result<Option<f64>, SourceError> {
        let Some((onset, samples)) = self.records.pop_front() else {
            return Ok(None);
        };
        for (o, s) in out.iter_mut().zip(&samples) {
            o.copy_from_slice(s);
        }
        Ok(Some(onset))
    }
    fn take_annotations(&mut self) -> Result<Vec<Annotation>, SourceError> {
        Ok(std::mem::take(&mut self.annotations))
    }
}
