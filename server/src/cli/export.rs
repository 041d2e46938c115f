//! `theta export`: a cohort chosen with SQL, written as pseudonymised BIDS-EEG or Parquet.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use theta_query::export::{
    DatePolicy, ExportError, ExportFormat, ExportHooks, ExportSpec, TextPolicy, export,
};

use super::store::{CliError, EXIT_OK, StoreArgs, parse_tenants, run_async, write_stdout};

/// Output format of `theta export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// BIDS-EEG: EDF+/BDF+ with JSON and TSV sidecars.
    Bids,
    /// Parquet: recordings, channels, annotations tables and samples partitioned by recording.
    Parquet,
}

/// Dates in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatesArg {
    /// Shifted by a secret number of days per subject.
    Shift,
    /// Removed.
    Remove,
}

/// Annotation text in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnnotationsArg {
    /// Names, dates, phone numbers, e-mail addresses and social security numbers masked.
    Mask,
    /// Dropped (onsets and durations kept).
    Drop,
}

/// `theta export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Tenants whose recordings may be exported (comma-separated or repeated).
    #[arg(long, value_name = "T[,T...]", value_delimiter = ',', required = true)]
    pub tenant: Vec<String>,
    /// The cohort: a predicate over the `recordings` table (`duration_s > 3600`, `true`) or a
    /// query (`SELECT id FROM recordings ...`) whose `id` column lists recordings.
    #[arg(long)]
    pub cohort: String,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// Output folder (created; an interrupted export into it resumes).
    #[arg(long)]
    pub out: PathBuf,
    /// Project name: pseudonyms are stable within a project, unlinkable across projects.
    #[arg(long)]
    pub project: String,
    /// Dates: shifted per subject (default) or removed.
    #[arg(long, value_enum, default_value_t = DatesArg::Shift)]
    pub dates: DatesArg,
    /// Annotation text: masked (default) or dropped.
    #[arg(long, value_enum, default_value_t = AnnotationsArg::Mask)]
    pub annotations: AnnotationsArg,
    /// BIDS task label.
    #[arg(long, default_value = "clinical")]
    pub task: String,
    /// Mains frequency for the BIDS sidecars, Hz.
    #[arg(long, default_value_t = 50.0)]
    pub power_line: f64,
    /// An author of the dataset (BIDS `Authors`), e.g. `--author "Claire Dubois"`; repeat for
    /// each, in order.
    #[arg(long = "author", value_name = "NAME")]
    pub authors: Vec<String>,
}

fn export_error(e: ExportError) -> CliError {
    match e {
        ExportError::Store(s) => s.into(),
        e @ (ExportError::Invalid(_)
        | ExportError::Cohort(_)
        | ExportError::Sql(_)
        | ExportError::Mismatch { .. }) => CliError::bad_input(e.to_string()),
        other => CliError::failure(other.to_string()),
    }
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} export [{bar:40}] {bytes}/{total_bytes} {msg} {elapsed_precise} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// Runs the export and prints a JSON report on stdout.
pub fn run(args: ExportArgs) -> i32 {
    run_async(async move {
        let tenants = parse_tenants(&args.tenant)?;
        let format = match args.format {
            FormatArg::Bids => ExportFormat::Bids,
            FormatArg::Parquet => ExportFormat::Parquet,
        };
        let mut spec = ExportSpec::new(args.cohort, format, args.out, args.project);
        spec.dates = match args.dates {
            DatesArg::Shift => DatePolicy::Shift,
            DatesArg::Remove => DatePolicy::Remove,
        };
        spec.annotations = match args.annotations {
            AnnotationsArg::Mask => TextPolicy::Mask,
            AnnotationsArg::Drop => TextPolicy::Drop,
        };
        spec.task = args.task;
        spec.power_line_hz = args.power_line;
        spec.authors = args.authors;
        let store = args.store.open().await?;
        let bar = progress_bar();
        let mut hooks = ExportHooks::default();
        if let Some(bar) = bar.clone() {
            hooks.progress = Some(Arc::new(move |p| {
                bar.set_length(p.bytes_total);
                bar.set_position(p.bytes_done);
                bar.set_message(format!(
                    "{}/{} recordings",
                    p.recordings_done, p.recordings_total
                ));
            }));
        }
        let report = export(&store, tenants, &spec, &hooks).await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let report = report.map_err(export_error)?;
        if report.skipped > 0 {
            eprintln!(
                "theta: warning: {} annotation-only recording(s) left out (BIDS-EEG needs data signals)",
                report.skipped
            );
        }
        let secs = report.elapsed.as_secs_f64();
        let line = serde_json::json!({
            "out": report.out.display().to_string(),
            "format": report.format,
            "recordings": report.recordings,
            "resumed": report.resumed,
            "skipped": report.skipped,
            "subjects": report.subjects,
            "files": report.files,
            "raw_bytes": report.raw_bytes,
            "output_bytes": report.output_bytes,
            "seconds": secs,
            "raw_mb_per_s": if secs > 0.0 { report.raw_bytes as f64 / 1e6 / secs } else { 0.0 },
        });
        write_stdout(format!("{line}\n").as_bytes())?;
        Ok(EXIT_OK)
    })
}
