//! Read commands: `theta window` and `theta overview`.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use serde_json::json;
use theta_engine::store::{
    ChannelSelection, OverviewRequest, OverviewSource, Recording, RecordingId, SampleData, Units,
    Window, WindowRequest,
};

use super::store::{CliError, EXIT_OK, StoreArgs, run_async, write_stdout};

/// Units on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnitsArg {
    /// Stored integers.
    Digital,
    /// Physical units (µV for EEG).
    Physical,
}

impl From<UnitsArg> for Units {
    fn from(u: UnitsArg) -> Self {
        match u {
            UnitsArg::Digital => Units::Digital,
            UnitsArg::Physical => Units::Physical,
        }
    }
}

/// Output format of `theta window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WindowFormat {
    /// One CSV table per sample rate: a `#` comment line, a header, then `time,ch...` rows.
    Csv,
    /// One JSON object with one block per sample rate.
    Json,
    /// NumPy `.npy` (channels x samples) per sample rate, back to back on stdout.
    Npy,
}

/// `theta window`.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Recording id.
    #[arg(long, value_name = "ID")]
    pub recording: String,
    /// Start in seconds from the recording start.
    #[arg(long, allow_negative_numbers = true)]
    pub start: f64,
    /// Duration in seconds: samples with start <= t < start + duration.
    #[arg(long, allow_negative_numbers = true)]
    pub duration: f64,
    /// Channels by label or by 0-based index as `theta inspect` shows them (annotation
    /// signals not counted), comma-separated; default all.
    #[arg(long, value_name = "A,B|0,3", default_value = "")]
    pub channels: String,
    /// Units of the samples.
    #[arg(long, value_enum, default_value = "digital")]
    pub units: UnitsArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: WindowFormat,
}

/// `theta overview`.
#[derive(Debug, Args)]
pub struct OverviewArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Recording id.
    #[arg(long, value_name = "ID")]
    pub recording: String,
    /// Start in seconds.
    #[arg(long, allow_negative_numbers = true)]
    pub start: f64,
    /// Duration in seconds.
    #[arg(long, allow_negative_numbers = true)]
    pub duration: f64,
    /// Width in pixels.
    #[arg(long)]
    pub width: usize,
    /// Channels (as for `theta window`); default all.
    #[arg(long, value_name = "A,B|0,3", default_value = "")]
    pub channels: String,
    /// Units of the envelope.
    #[arg(long, value_enum, default_value = "physical")]
    pub units: UnitsArg,
    /// JSON output (otherwise a tab-separated table: pixel, then min and max per channel).
    #[arg(long)]
    pub json: bool,
}

async fn open_recording(store: &StoreArgs, id: &str) -> Result<Recording, CliError> {
    let id: RecordingId = id.parse()?;
    let store = store.open().await?;
    Ok(store.recording(id).await?)
}

/// Reads a window and writes it to stdout.
pub fn window(args: WindowArgs) -> i32 {
    run_async(async move {
        let rec = open_recording(&args.store, &args.recording).await?;
        let mut req = WindowRequest::new(args.start, args.duration)
            .channels(ChannelSelection::parse(&args.channels))
            .units(args.units.into());
        req.read_ahead = Some(false);
        let w = rec.window(&req).await?;
        let bytes = match args.format {
            WindowFormat::Csv => window_csv(&rec, &w).into_bytes(),
            WindowFormat::Json => {
                let mut s = serde_json::to_string(&window_json(&rec, &w, args.units))
                    .map_err(|e| CliError::failure(e.to_string()))?;
                s.push('\n');
                s.into_bytes()
            }
            WindowFormat::Npy => {
                if w.blocks.len() > 1 {
                    eprintln!(
                        "theta: {} sample rates: {} .npy arrays follow each other on stdout (read them with repeated numpy.load on one file object)",
                        w.blocks.len(),
                        w.blocks.len()
                    );
                }
                let mut out = Vec::new();
                for b in &w.blocks {
                    write_npy(&mut out, &b.data);
                }
                out
            }
        };
        write_stdout(&bytes)?;
        Ok(EXIT_OK)
    })
}

fn label(rec: &Recording, c: usize) -> String {
    rec.signals()[c].label.trim().to_string()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn window_csv(rec: &Recording, w: &Window) -> String {
    let tl = rec.timeline();
    let mut out = String::new();
    for (i, b) in w.blocks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "# sample_rate={} channels={} samples={}",
            b.sample_rate,
            b.channels.len(),
            b.len()
        );
        out.push_str("time");
        for &c in &b.channels {
            out.push(',');
            out.push_str(&csv_field(&label(rec, c)));
        }
        out.push('\n');
        for k in 0..b.len() {
            let t = tl.sample_time(b.first_sample + k as u64, b.samples_per_record);
            let _ = write!(out, "{t}");
            match &b.data {
                SampleData::Digital(a) => {
                    for v in a.column(k) {
                        let _ = write!(out, ",{v}");
                    }
                }
                SampleData::Physical(a) => {
                    for v in a.column(k) {
                        let _ = write!(out, ",{v}");
                    }
                }
            }
            out.push('\n');
        }
    }
    out
}

fn window_json(rec: &Recording, w: &Window, units: UnitsArg) -> serde_json::Value {
    let blocks: Vec<_> = w
        .blocks
        .iter()
        .map(|b| {
            let channels: Vec<_> = b
                .channels
                .iter()
                .map(|&c| {
                    let s = &rec.signals()[c];
                    json!({
                        "index": c,
                        "label": label(rec, c),
                        "unit": if units == UnitsArg::Physical { s.physical_dimension.trim() } else { "digital" },
                    })
                })
                .collect();
            let runs: Vec<_> = b
                .runs
                .iter()
                .map(|r| json!({"column": r.column, "time": r.time}))
                .collect();
            let data: Vec<serde_json::Value> = match &b.data {
                SampleData::Digital(a) => a.rows().into_iter().map(|r| json!(r.to_vec())).collect(),
                SampleData::Physical(a) => a.rows().into_iter().map(|r| json!(r.to_vec())).collect(),
            };
            json!({
                "sample_rate": b.sample_rate,
                "samples_per_record": b.samples_per_record,
                "first_sample": b.first_sample,
                "samples": b.len(),
                "channels": channels,
                "runs": runs,
                "data": data,
            })
        })
        .collect();
    json!({
        "recording": w.recording.to_string(),
        "start": w.start,
        "duration": w.duration,
        "units": if units == UnitsArg::Physical { "physical" } else { "digital" },
        "blocks": blocks,
    })
}

/// Appends a NumPy `.npy` (format 1.0, C order) of a channels x samples block.
pub fn write_npy(out: &mut Vec<u8>, data: &SampleData) {
    let (descr, shape) = match data {
        SampleData::Digital(a) => ("<i4", a.dim()),
        SampleData::Physical(a) => ("<f8", a.dim()),
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape.0, shape.1
    );
    // Magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match data {
        SampleData::Digital(a) => {
            for v in a.iter() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        SampleData::Physical(a) => {
            for v in a.iter() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
}

fn finite_or_null(v: f64) -> serde_json::Value {
    if v.is_finite() {
        json!(v)
    } else {
        serde_json::Value::Null
    }
}

/// Computes a min/max envelope and writes it to stdout.
pub fn overview(args: OverviewArgs) -> i32 {
    run_async(async move {
        let rec = open_recording(&args.store, &args.recording).await?;
        let mut req = OverviewRequest::new(args.start, args.duration, args.width);
        req.channels = ChannelSelection::parse(&args.channels);
        req.units = args.units.into();
        let ov = rec.overview(&req).await?;
        let out = if args.json {
            let channels: Vec<_> = ov
                .channels
                .iter()
                .enumerate()
                .map(|(row, &c)| {
                    let source = match ov.sources[row] {
                        OverviewSource::Pyramid {
                            level,
                            bucket_samples,
                        } => json!({"pyramid_level": level, "bucket_samples": bucket_samples}),
                        OverviewSource::Raw => json!("raw"),
                    };
                    json!({
                        "index": c,
                        "label": label(&rec, c),
                        "source": source,
                        "min": ov.min.row(row).iter().map(|&v| finite_or_null(v)).collect::<Vec<_>>(),
                        "max": ov.max.row(row).iter().map(|&v| finite_or_null(v)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let v = json!({
                "recording": ov.recording.to_string(),
                "start": ov.start,
                "duration": ov.duration,
                "width": ov.width,
                "units": if args.units == UnitsArg::Physical { "physical" } else { "digital" },
                "channels": channels,
            });
            let mut s = serde_json::to_string(&v).map_err(|e| CliError::failure(e.to_string()))?;
            s.push('\n');
            s
        } else {
            let mut s = String::from("pixel");
            for &c in &ov.channels {
                let l = label(&rec, c);
                let _ = write!(s, "\t{l} min\t{l} max");
            }
            s.push('\n');
            for p in 0..ov.width {
                let _ = write!(s, "{p}");
                for row in 0..ov.channels.len() {
                    let _ = write!(s, "\t{}\t{}", ov.min[[row, p]], ov.max[[row, p]]);
                }
                s.push('\n');
            }
            s
        };
        write_stdout(out.as_bytes())?;
        Ok(EXIT_OK)
    })
}
