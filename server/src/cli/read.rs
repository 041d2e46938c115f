//! Read commands: `theta window` and `theta overview`.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};

use theta_engine::store::{
    ChannelSelection, OverviewRequest, Recording, RecordingId, SampleData, Units, Window,
    WindowRequest,
};

use theta_engine::store::ErrorCategory;
use theta_query::dsp::{FilterSpec, Phase};
use theta_query::montage::Montage;
use theta_query::view::{View, ViewData, ViewError, ViewRequest, psd, read_view};

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
    /// Units of the samples (default digital; montages and filters work in physical units).
    #[arg(long, value_enum)]
    pub units: Option<UnitsArg>,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: WindowFormat,
    /// Montage: `referential`, `average`, `double-banana`, `transverse`, `laplacian`, or a JSON
    /// file of derivations. Rows follow the montage's order.
    #[arg(long, value_name = "NAME|FILE.json")]
    pub montage: Option<String>,
    /// Butterworth high-pass cut-off, Hz.
    #[arg(long, value_name = "HZ")]
    pub highpass: Option<f64>,
    /// Butterworth low-pass cut-off, Hz.
    #[arg(long, value_name = "HZ")]
    pub lowpass: Option<f64>,
    /// Notch (SciPy `iirnotch`, Q = 30) frequencies, Hz (repeatable or comma-separated).
    #[arg(long, value_name = "HZ", value_delimiter = ',')]
    pub notch: Vec<f64>,
    /// Butterworth order of the high- and low-pass (1 to 8).
    #[arg(long, default_value_t = 4)]
    pub order: usize,
    /// One causal pass (`sosfilt`) instead of zero-phase forward-backward.
    #[arg(long)]
    pub causal: bool,
    /// Min/max pairs per pixel column, N columns, instead of the samples.
    #[arg(long, value_name = "N")]
    pub px: Option<usize>,
    /// Channels marked bad (labels, comma-separated): left out of average and Laplacian means.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub bad: Vec<String>,
    /// How a processed page's JSON writes its values: `auto` rounds to a hundredth of the
    /// recording's quantisation step (as the service does), `full` writes every bit.
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: crate::render::Precision,
}

impl WindowArgs {
    /// Whether a montage, a filter or a pixel width was asked for (the processed-page path).
    pub fn is_processed(&self) -> bool {
        self.montage.is_some()
            || self.highpass.is_some()
            || self.lowpass.is_some()
            || !self.notch.is_empty()
            || self.causal
            || self.px.is_some()
            || !self.bad.is_empty()
    }

    /// The page request these arguments describe.
    ///
    /// # Errors
    /// A bad montage name or file.
    pub fn view_request(&self) -> Result<ViewRequest, CliError> {
        let montage = self
            .montage
            .as_deref()
            .map(Montage::from_arg)
            .transpose()
            .map_err(|e| CliError::bad_input(e.to_string()))?;
        Ok(ViewRequest {
            start: self.start,
            duration: self.duration,
            channels: ChannelSelection::parse(&self.channels),
            montage,
            filter: FilterSpec {
                highpass: self.highpass,
                lowpass: self.lowpass,
                notch: self.notch.clone(),
                order: self.order,
                ..FilterSpec::default()
            },
            phase: if self.causal {
                Phase::Causal
            } else {
                Phase::ZeroPhase
            },
            px: self.px,
            bad_channels: self.bad.clone(),
            // The command line reads what its user asks for, from their own store.
            max_values: None,
        })
    }
}

/// `theta psd`.
#[derive(Debug, Args)]
pub struct PsdArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Recording id.
    #[arg(long, value_name = "ID")]
    pub recording: String,
    /// Start in seconds from the recording start.
    #[arg(long, allow_negative_numbers = true)]
    pub start: f64,
    /// Duration in seconds.
    #[arg(long, allow_negative_numbers = true)]
    pub duration: f64,
    /// Channels (as for `theta window`); default all.
    #[arg(long, value_name = "A,B|0,3", default_value = "")]
    pub channels: String,
    /// Welch segment length in samples (default: the power of two at or above 2 s).
    #[arg(long, value_name = "N")]
    pub nperseg: Option<usize>,
    /// JSON output (otherwise a tab-separated table of band powers per channel).
    #[arg(long)]
    pub json: bool,
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

fn view_error(e: ViewError) -> CliError {
    match e.category() {
        ErrorCategory::Caller => CliError::bad_input(e.to_string()),
        _ => CliError::failure(e.to_string()),
    }
}

/// Reads a window and writes it to stdout.
pub fn window(args: WindowArgs) -> i32 {
    if args.is_processed() {
        return processed_window(args);
    }
    run_async(async move {
        let rec = open_recording(&args.store, &args.recording).await?;
        let units = args.units.unwrap_or(UnitsArg::Digital);
        let mut req = WindowRequest::new(args.start, args.duration)
            .channels(ChannelSelection::parse(&args.channels))
            .units(units.into());
        req.read_ahead = Some(false);
        let w = rec.window(&req).await?;
        let bytes = match args.format {
            WindowFormat::Csv => window_csv(&rec, &w).into_bytes(),
            WindowFormat::Json => {
                let mut s =
                    serde_json::to_string(&crate::render::window_json(&rec, &w, units.into()))
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

use crate::render::label;

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

/// Computes a min/max envelope and writes it to stdout.
pub fn overview(args: OverviewArgs) -> i32 {
    run_async(async move {
        let rec = open_recording(&args.store, &args.recording).await?;
        let mut req = OverviewRequest::new(args.start, args.duration, args.width);
        req.channels = ChannelSelection::parse(&args.channels);
        req.units = args.units.into();
        let ov = rec.overview(&req).await?;
        let out = if args.json {
            let v = crate::render::overview_json(&rec, &ov, req.units);
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

/// A montaged, filtered page (`theta window` with `--montage`, `--highpass`, `--lowpass`,
/// `--notch`, `--causal` or `--px`).
fn processed_window(args: WindowArgs) -> i32 {
    run_async(async move {
        if args.units == Some(UnitsArg::Digital) {
            return Err(CliError::bad_input(
                "--units digital cannot be combined with --montage, filters or --px: pages are computed in physical units",
            ));
        }
        let req = args.view_request()?;
        let rec = open_recording(&args.store, &args.recording).await?;
        let view = read_view(&rec, &req).await.map_err(view_error)?;
        for w in &view.warnings {
            eprintln!("theta: warning: {w}");
        }
        let bytes = match args.format {
            WindowFormat::Csv => view_csv(&rec, &view).into_bytes(),
            WindowFormat::Json => {
                let mut b = crate::render::view_json_bytes(&view, args.precision)
                    .map_err(|e| CliError::failure(e.to_string()))?;
                b.push(b'\n');
                b
            }
            WindowFormat::Npy => {
                let mut out = Vec::new();
                match &view.data {
                    ViewData::Samples(a) => write_npy(&mut out, &SampleData::Physical(a.clone())),
                    ViewData::MinMax { min, max } => {
                        eprintln!(
                            "theta: min/max page: two .npy arrays (minima, then maxima) follow each other on stdout"
                        );
                        write_npy(&mut out, &SampleData::Physical(min.clone()));
                        write_npy(&mut out, &SampleData::Physical(max.clone()));
                    }
                }
                out
            }
        };
        write_stdout(&bytes)?;
        Ok(EXIT_OK)
    })
}

fn view_csv(rec: &Recording, v: &View) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# sample_rate={} montage={} rows={} samples={} unit={}",
        v.sample_rate,
        v.montage,
        v.labels.len(),
        v.samples,
        v.unit
    );
    match &v.data {
        ViewData::Samples(a) => {
            out.push_str("time");
            for l in &v.labels {
                out.push(',');
                out.push_str(&csv_field(l));
            }
            out.push('\n');
            let spr = v
                .channels
                .first()
                .map_or(1, |&c| rec.signals()[c].samples_per_record);
            let tl = rec.timeline();
            for k in 0..a.ncols() {
                let _ = write!(out, "{}", tl.sample_time(v.first_sample + k as u64, spr));
                for x in a.column(k) {
                    let _ = write!(out, ",{x}");
                }
                out.push('\n');
            }
        }
        ViewData::MinMax { min, max } => {
            out.push_str("pixel");
            for l in &v.labels {
                let _ = write!(
                    out,
                    ",{},{}",
                    csv_field(&format!("{l} min")),
                    csv_field(&format!("{l} max"))
                );
            }
            out.push('\n');
            for p in 0..min.ncols() {
                let _ = write!(out, "{p}");
                for r in 0..min.nrows() {
                    let _ = write!(out, ",{},{}", min[[r, p]], max[[r, p]]);
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Welch spectra and band powers of a span, on stdout.
pub fn psd_cmd(args: PsdArgs) -> i32 {
    run_async(async move {
        let rec = open_recording(&args.store, &args.recording).await?;
        let p = psd(
            &rec,
            args.start,
            args.duration,
            &ChannelSelection::parse(&args.channels),
            args.nperseg,
            None,
        )
        .await
        .map_err(view_error)?;
        let out = if args.json {
            let mut s = serde_json::to_string(&crate::render::psd_json(&p))
                .map_err(|e| CliError::failure(e.to_string()))?;
            s.push('\n');
            s
        } else {
            let mut s = String::from("channel");
            if let Some(c) = p.channels.first() {
                for n in &c.bands.names {
                    let _ = write!(s, "\t{n}\t{n} rel");
                }
            }
            s.push('\n');
            for c in &p.channels {
                s.push_str(&c.label);
                for (a, r) in c.bands.absolute.iter().zip(&c.bands.relative) {
                    let _ = write!(s, "\t{a}\t{r}");
                }
                s.push('\n');
            }
            s
        };
        write_stdout(out.as_bytes())?;
        Ok(EXIT_OK)
    })
}
