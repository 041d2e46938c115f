//! `theta inspect FILE [--json] [--strict]`: what the EDF/BDF reader sees in a file.
//!
//! Exit codes: 0 success; 2 malformed input, or input refused by `--strict` (reason on
//! stderr); 1 any other error (file missing, I/O).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use theta_engine::edf::{EdfError, EdfReader, ReadOptions};

/// Arguments of `theta inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// EDF, EDF+, BDF or BDF+ file.
    pub file: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Refuse every leniency instead of warning about it.
    #[arg(long)]
    pub strict: bool,
}

/// The JSON document `--json` prints.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// EDF, EDF+C, EDF+D, BDF, BDF+C or BDF+D.
    pub format: String,
    /// Patient field as written.
    pub patient: String,
    /// Recording field as written.
    pub recording: String,
    /// RFC 3339 start with the sub-second part.
    pub start: String,
    /// Data records.
    pub n_records: u64,
    /// Seconds per record.
    pub record_duration: f64,
    /// Records × record duration, seconds.
    pub duration: f64,
    /// Data signals (annotation signals left out).
    pub signals: Vec<SignalInspection>,
    /// Annotations.
    pub annotations: Vec<AnnotationInspection>,
    /// Leniencies, as text.
    pub warnings: Vec<String>,
}

/// One data signal in [`Inspection`].
#[derive(Debug, Serialize)]
pub struct SignalInspection {
    /// 0-based position among data signals.
    pub index: usize,
    /// Raw label.
    pub label: String,
    /// Normalised 10-20 name, or null.
    pub normalized_label: Option<String>,
    /// EEG, EOG, ECG, EMG, RESP, TRIG or MISC.
    #[serde(rename = "type")]
    pub kind: String,
    /// Transducer type.
    pub transducer: String,
    /// Unit.
    pub physical_dimension: String,
    /// Physical minimum.
    pub physical_min: f64,
    /// Physical maximum.
    pub physical_max: f64,
    /// Digital minimum.
    pub digital_min: i32,
    /// Digital maximum.
    pub digital_max: i32,
    /// Prefiltering.
    pub prefilter: String,
    /// Hz (may be non-integer).
    pub sample_rate: f64,
    /// Samples in the file.
    pub n_samples: u64,
    /// Exact sum of all digital samples.
    pub digital_sum: i128,
    /// Exact sum of squares of all digital samples.
    pub digital_sum_of_squares: i128,
}

/// One annotation in [`Inspection`].
#[derive(Debug, Serialize)]
pub struct AnnotationInspection {
    /// Seconds from the start.
    pub onset: f64,
    /// Seconds, or null.
    pub duration: Option<f64>,
    /// Text.
    pub text: String,
}

/// Reads the whole file (sums need every sample) and describes it.
///
/// # Errors
/// The reader's errors.
pub fn inspect(path: &Path, strict: bool) -> Result<Inspection, EdfError> {
    let options = if strict {
        ReadOptions::strict()
    } else {
        ReadOptions::lenient()
    };
    let mut reader = EdfReader::open(path, options)?;
    let mut sums = vec![(0i128, 0i128); reader.header().signals.len()];
    let mut record = reader.record_buf();
    while reader.next_record(&mut record)? {
        for (k, (sum, squares)) in sums.iter_mut().enumerate() {
            // i64 per record cannot overflow: at most 2^23 squared times a record's samples.
            let (mut s, mut q) = (0i64, 0i128);
            for &v in record.signal(k) {
                s += i64::from(v);
                q += i128::from(i64::from(v) * i64::from(v));
            }
            *sum += i128::from(s);
            *squares += q;
        }
    }
    let h = reader.header();
    let start = h.start.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = reader.start_subsecond_ns();
    let start = if nanos == 0 {
        format!("{start}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{start}.{}Z", frac.trim_end_matches('0'))
    };
    Ok(Inspection {
        format: h.format.to_string(),
        patient: h.patient.clone(),
        recording: h.recording.clone(),
        start,
        n_records: h.n_records,
        record_duration: h.record_duration,
        duration: h.duration(),
        signals: h
            .signals
            .iter()
            .enumerate()
            .map(|(index, s)| SignalInspection {
                index,
                label: s.label.clone(),
                normalized_label: s.normalized_label.clone(),
                kind: s.channel_type.to_string(),
                transducer: s.transducer.clone(),
                physical_dimension: s.physical_dimension.clone(),
                physical_min: s.physical_min,
                physical_max: s.physical_max,
                digital_min: s.digital_min,
                digital_max: s.digital_max,
                prefilter: s.prefilter.clone(),
                sample_rate: h.sample_rate(index),
                n_samples: h.n_samples(index),
                digital_sum: sums[index].0,
                digital_sum_of_squares: sums[index].1,
            })
            .collect(),
        annotations: reader
            .annotations()
            .iter()
            .map(|a| AnnotationInspection {
                onset: a.onset,
                duration: a.duration,
                text: a.text.clone(),
            })
            .collect(),
        warnings: reader.warnings().iter().map(ToString::to_string).collect(),
    })
}

/// A human-readable summary.
pub fn render_text(i: &Inspection, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "format          {}", i.format)?;
    writeln!(out, "start           {}", i.start)?;
    writeln!(
        out,
        "records         {} × {} s = {} s",
        i.n_records, i.record_duration, i.duration
    )?;
    writeln!(out, "patient         {}", i.patient)?;
    writeln!(out, "recording       {}", i.recording)?;
    writeln!(out, "signals         {}", i.signals.len())?;
    writeln!(
        out,
        "  {:>3}  {:<16} {:<6} {:<5} {:>9} {:>10} {:>12}  unit",
        "#", "label", "10-20", "type", "rate Hz", "samples", "mean (dig.)"
    )?;
    for s in &i.signals {
        let mean = if s.n_samples > 0 {
            s.digital_sum as f64 / s.n_samples as f64
        } else {
            0.0
        };
        writeln!(
            out,
            "  {:>3}  {:<16} {:<6} {:<5} {:>9} {:>10} {:>12.2}  {}",
            s.index,
            s.label,
            s.normalized_label.as_deref().unwrap_or("-"),
            s.kind,
            s.sample_rate,
            s.n_samples,
            mean,
            s.physical_dimension
        )?;
    }
    writeln!(out, "annotations     {}", i.annotations.len())?;
    for a in i.annotations.iter().take(20) {
        let d = a.duration.map_or_else(String::new, |d| format!(" ({d} s)"));
        writeln!(out, "  {:>10.3} s{d}  {}", a.onset, a.text)?;
    }
    if i.annotations.len() > 20 {
        writeln!(out, "  … {} more", i.annotations.len() - 20)?;
    }
    writeln!(out, "warnings        {}", i.warnings.len())?;
    for w in &i.warnings {
        writeln!(out, "  {w}")?;
    }
    Ok(())
}

/// Runs `theta inspect` and returns the exit code.
pub fn run(args: &InspectArgs) -> i32 {
    match inspect(&args.file, args.strict) {
        Ok(i) => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let written = if args.json {
                serde_json::to_writer_pretty(&mut out, &i)
                    .map_err(std::io::Error::other)
                    .and_then(|()| writeln!(out))
            } else {
                render_text(&i, &mut out)
            };
            match written {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("theta inspect: cannot write output: {e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("theta inspect: {}: {e}", args.file.display());
            if e.is_input_error() { 2 } else { 1 }
        }
    }
}
