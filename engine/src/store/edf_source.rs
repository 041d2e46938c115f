//! EDF, EDF+, BDF and BDF+ files as a [`SampleSource`], read record by record.

use std::fs::File;
use std::path::Path;

use super::error::SourceError;
use super::source::{Annotation, SampleSource, SignalInfo, SourceHeader};
use crate::edf::{EdfError, EdfReader, ReadOptions, RecordBuf, Warning};
use theta_codecs::SampleWidth;

/// An EDF/EDF+/BDF/BDF+ file being ingested: header fields, data signals (annotation signals
/// left out, so channel indices match `theta inspect`), records with their onsets (gaps of
/// EDF+D kept) and annotations.
pub struct EdfSource {
    reader: EdfReader<File>,
    header: SourceHeader,
    signals: Vec<SignalInfo>,
    buf: RecordBuf,
    file_bytes: u64,
}

impl std::fmt::Debug for EdfSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No header text: Debug output may reach logs.
        f.debug_struct("EdfSource")
            .field("signals", &self.signals.len())
            .field("file_bytes", &self.file_bytes)
            .finish_non_exhaustive()
    }
}

impl EdfSource {
    /// Opens a file (lenient by default: real-world defects become warnings).
    ///
    /// # Errors
    /// What [`EdfReader::open`] refuses: I/O errors, malformed headers (naming the field and
    /// byte offset), strict-mode refusals; a signal with more samples per record than a `u32`.
    pub fn open(path: &Path, options: ReadOptions) -> Result<Self, EdfError> {
        let file_bytes = std::fs::metadata(path)?.len();
        let reader = EdfReader::open(path, options)?;
        Self::from_reader(reader, file_bytes)
    }

    /// Wraps an open reader; `file_bytes` is reported as the raw size.
    ///
    /// # Errors
    /// [`EdfError::InvalidArgument`] for a signal with more samples per record than a `u32`.
    pub fn from_reader(reader: EdfReader<File>, file_bytes: u64) -> Result<Self, EdfError> {
        let h = reader.header();
        let width = if h.format.is_bdf() {
            SampleWidth::Bits24
        } else {
            SampleWidth::Bits16
        };
        let signals = h
            .signals
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(SignalInfo {
                    label: s.label.clone(),
                    transducer: s.transducer.clone(),
                    physical_dimension: s.physical_dimension.clone(),
                    physical_min: s.physical_min,
                    physical_max: s.physical_max,
                    digital_min: s.digital_min,
                    digital_max: s.digital_max,
                    prefilter: s.prefilter.clone(),
                    samples_per_record: u32::try_from(s.samples_per_record).map_err(|_| {
                        EdfError::InvalidArgument(format!(
                            "signal {i}: too many samples per record"
                        ))
                    })?,
                    width,
                })
            })
            .collect::<Result<Vec<_>, EdfError>>()?;
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("reserved".to_string(), h.reserved.clone());
        if let Some(p) = &h.patient_info {
            let mut put = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    fields.insert(k.to_string(), v);
                }
            };
            put("patient_code", p.code.clone());
            put("patient_sex", p.sex.map(|s| format!("{s:?}")));
            put("patient_birthdate", p.birthdate.map(|d| d.to_string()));
            put("patient_name", p.name.clone());
            put("patient_additional", Some(p.additional.clone()));
        }
        if let Some(r) = &h.recording_info {
            let mut put = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    fields.insert(k.to_string(), v);
                }
            };
            put("recording_start_date", r.start_date.map(|d| d.to_string()));
            put("recording_admin_code", r.admin_code.clone());
            put("recording_technician", r.technician.clone());
            put("recording_equipment", r.equipment.clone());
            put("recording_additional", Some(r.additional.clone()));
        }
        let header = SourceHeader {
            format: h.format.as_str().to_string(),
            patient: h.patient.clone(),
            recording: h.recording.clone(),
            start: h.start.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            fields,
        };
        let buf = reader.record_buf();
        Ok(Self {
            reader,
            header,
            signals,
            buf,
            file_bytes,
        })
    }

    /// Leniencies met while opening the file.
    pub fn warnings(&self) -> &[Warning] {
        self.reader.warnings()
    }
}

impl SampleSource for EdfSource {
    fn header(&self) -> &SourceHeader {
        &self.header
    }
    fn signals(&self) -> &[SignalInfo] {
        &self.signals
    }
    fn record_duration(&self) -> f64 {
        self.reader.header().record_duration
    }
    fn record_count(&self) -> Option<u64> {
        Some(self.reader.header().n_records)
    }
    fn raw_bytes(&self) -> Option<u64> {
        Some(self.file_bytes)
    }
    fn next_record(&mut self, out: &mut [&mut [i32]]) -> Result<Option<f64>, SourceError> {
        if !self.reader.next_record(&mut self.buf)? {
            return Ok(None);
        }
        for (s, o) in out.iter_mut().enumerate() {
            o.copy_from_slice(self.buf.signal(s));
        }
        Ok(Some(self.buf.onset()))
    }
    fn take_annotations(&mut self) -> Result<Vec<Annotation>, SourceError> {
        Ok(self.reader.annotations().to_vec())
    }
}
