//! A minimal EDF/EDF+/BDF/BDF+ record de-interleaver for the codec benchmark.
//!
//! The benchmark must measure codecs on exactly the digital samples the engine stores, without
//! depending on the engine's reader (written separately). This reads only what de-interleaving
//! needs from the header (sample width, record count, samples per record, which signals are
//! annotations) and returns each non-annotation signal's digital samples in record order. It is
//! deliberately strict about sizes and lenient about cosmetic header fields, and it is not a
//! general EDF reader: no physical scaling, no annotations, no time keeping.

use std::path::Path;

use anyhow::{Context, bail, ensure};

/// Bytes per header block (the fixed part, and each signal's share of the variable part).
const HEADER_FIXED_BYTES: usize = 256;

/// One non-annotation signal's digital samples.
#[derive(Debug, Clone)]
pub struct Signal {
    /// The label as written in the header (trimmed). Labels describe electrodes, not patients.
    pub label: String,
    /// Samples per second (samples per record / record duration; 0 when the duration is 0).
    pub rate_hz: f64,
    /// Digital samples in file order.
    pub samples: Vec<i32>,
}

/// The signals of one recording and their stored width.
#[derive(Debug, Clone)]
pub struct Recording {
    /// `true` for BDF (24-bit samples), `false` for EDF (16-bit samples).
    pub bdf: bool,
    /// Non-annotation signals in header order.
    pub signals: Vec<Signal>,
}

impl Recording {
    /// Bytes per stored sample: 2 (EDF) or 3 (BDF).
    pub fn bytes_per_sample(&self) -> usize {
        if self.bdf { 3 } else { 2 }
    }

    /// Total samples over all non-annotation signals.
    pub fn n_samples(&self) -> usize {
        self.signals.iter().map(|s| s.samples.len()).sum()
    }
}

fn field(bytes: &[u8], at: usize, len: usize, what: &str) -> anyhow::Result<String> {
    let raw = bytes
        .get(at..at + len)
        .with_context(|| format!("header cut inside field {what} at byte {at}"))?;
    Ok(String::from_utf8_lossy(raw).trim().to_string())
}

fn int_field(bytes: &[u8], at: usize, len: usize, what: &str) -> anyhow::Result<i64> {
    let s = field(bytes, at, len, what)?;
    s.parse::<i64>()
        .with_context(|| format!("field {what} at byte {at} is not an integer"))
}

/// Reads a recording from disk.
pub fn read_recording(path: &Path) -> anyhow::Result<Recording> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_recording(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Parses a whole EDF/BDF file held in memory.
pub fn parse_recording(bytes: &[u8]) -> anyhow::Result<Recording> {
    ensure!(
        bytes.len() >= HEADER_FIXED_BYTES,
        "file shorter than the fixed header"
    );
    let bdf = bytes[0] == 0xFF;
    let width = if bdf { 3 } else { 2 };
    let header_bytes = usize::try_from(int_field(bytes, 184, 8, "header bytes")?)?;
    let ns = usize::try_from(int_field(bytes, 252, 4, "number of signals")?)?;
    ensure!(
        header_bytes == HEADER_FIXED_BYTES * (ns + 1),
        "header size {header_bytes} does not match {ns} signals"
    );
    ensure!(bytes.len() >= header_bytes, "file shorter than its header");
    let duration: f64 = field(bytes, 244, 8, "record duration")?
        .parse()
        .context("record duration is not a number")?;

    // The variable header stores each field for all signals before the next field.
    let at = |offset_per_signal_before: usize, width_of_field: usize, i: usize| {
        HEADER_FIXED_BYTES + ns * offset_per_signal_before + i * width_of_field
    };
    let mut labels = Vec::with_capacity(ns);
    let mut per_record = Vec::with_capacity(ns);
    for i in 0..ns {
        labels.push(field(bytes, at(0, 16, i), 16, "label")?);
        // label 16, transducer 80, dimension 8, phys min 8, phys max 8, dig min 8, dig max 8,
        // prefilter 80 = 216 bytes before "samples per record".
        let n = int_field(bytes, at(216, 8, i), 8, "samples per record")?;
        per_record.push(usize::try_from(n).context("negative samples per record")?);
    }
    let record_bytes: usize = per_record.iter().sum::<usize>() * width;
    ensure!(record_bytes > 0, "records hold no samples");
    let body = bytes.len() - header_bytes;
    let declared = int_field(bytes, 236, 8, "number of records")?;
    let n_records = if declared < 0 {
        body / record_bytes
    } else {
        let n = usize::try_from(declared)?;
        ensure!(
            n.checked_mul(record_bytes).is_some_and(|b| b <= body),
            "{n} records of {record_bytes} bytes do not fit in the file"
        );
        n
    };

    let annotation = |label: &str| label == "EDF Annotations" || label == "BDF Annotations";
    let mut signals: Vec<(usize, Signal)> = labels
        .iter()
        .enumerate()
        .filter(|(_, l)| !annotation(l))
        .map(|(i, l)| {
            let rate_hz = if duration > 0.0 {
                per_record[i] as f64 / duration
            } else {
                0.0
            };
            (
                i,
                Signal {
                    label: l.clone(),
                    rate_hz,
                    samples: Vec::with_capacity(per_record[i] * n_records),
                },
            )
        })
        .collect();
    if signals.is_empty() {
        return Ok(Recording {
            bdf,
            signals: Vec::new(),
        });
    }
    let mut offsets = Vec::with_capacity(ns);
    let mut acc = 0;
    for n in &per_record {
        offsets.push(acc);
        acc += n * width;
    }
    for r in 0..n_records {
        let record = &bytes[header_bytes + r * record_bytes..][..record_bytes];
        for (i, sig) in &mut signals {
            let raw = &record[offsets[*i]..offsets[*i] + per_record[*i] * width];
            if bdf {
                sig.samples.extend(raw.chunks_exact(3).map(|c| {
                    // Sign-extend 24-bit little-endian by placing it in the top bytes.
                    i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8
                }));
            } else {
                sig.samples.extend(
                    raw.chunks_exact(2)
                        .map(|c| i32::from(i16::from_le_bytes([c[0], c[1]]))),
                );
            }
        }
    }
    if n_records == 0 && declared != 0 {
        bail!("no complete data record");
    }
    Ok(Recording {
        bdf,
        signals: signals.into_iter().map(|(_, s)| s).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_shared_recording_with_golden_sample_counts() {
        let files = theta_fixtures::real_recordings();
        if files.is_empty() {
            eprintln!("shared recordings not present; skipping");
            return;
        }
        for path in files {
            let rec = read_recording(&path).unwrap();
            let golden_path = path.with_file_name(format!(
                "{}.golden.json",
                path.file_name().unwrap().to_string_lossy()
            ));
            let golden: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&golden_path).unwrap()).unwrap();
            let signals = golden["signals"].as_array().unwrap();
            assert_eq!(signals.len(), rec.signals.len(), "{}", path.display());
            for (g, s) in signals.iter().zip(&rec.signals) {
                let n = g["n_samples"].as_u64().unwrap() as usize;
                assert_eq!(n, s.samples.len(), "{} {}", path.display(), s.label);
                if let Some(sum) = g["digital_sum"].as_i64() {
                    let ours: i64 = s.samples.iter().map(|&v| i64::from(v)).sum();
                    assert_eq!(sum, ours, "{} {}", path.display(), s.label);
                }
            }
        }
    }
}
