//! `theta-bench export`: research export throughput (MB/s of raw samples) for a cohort of
//! generated recordings, BIDS-EEG and Parquet.
//!
//! The cohort (default 20 recordings × 10 min × 32 channels × 256 Hz EDF+, two recordings per
//! subject, with annotations) is generated with the fixtures generator and ingested into an
//! encrypted local store in the temp folder (not timed). Each format is then exported
//! `--runs` times into fresh folders with the full pseudonymisation on (keyed ids, shifted
//! dates, masked annotations); the median wall time gives MB/s of raw samples (2 bytes per
//! EDF sample) and the output/raw size ratio.

use crate::stats::median;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use theta_engine::crypto::LocalKeyring;
use theta_engine::edf::ReadOptions;
use theta_engine::store::{EdfSource, IngestOptions, Store, StoreOptions, TenantId};
use theta_fixtures::{SynthAnnotation, SynthSpec, SynthStart, write_synth_file};
use theta_query::export::{ExportFormat, ExportHooks, ExportSpec, export};

/// Arguments of `theta-bench export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Recordings in the cohort.
    #[arg(long, default_value_t = 20)]
    pub recordings: usize,
    /// Minutes per recording.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Channels per recording.
    #[arg(long, default_value_t = 32)]
    pub channels: usize,
    /// Sample rate in Hz.
    #[arg(long, default_value_t = 256.0)]
    pub rate: f64,
    /// Timed exports per format.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One format's figures.
#[derive(Debug, Serialize)]
pub struct FormatResult {
    /// `bids` or `parquet`.
    pub format: String,
    /// Median wall time of an export, seconds.
    pub median_s: f64,
    /// Every run's wall time, seconds.
    pub runs_s: Vec<f64>,
    /// Raw sample MB per second (median run).
    pub raw_mb_per_s: f64,
    /// Output bytes / raw sample bytes.
    pub output_ratio: f64,
    /// Files written.
    pub files: usize,
}

/// The report.
#[derive(Debug, Serialize)]
pub struct ExportReport {
    /// Recordings in the cohort.
    pub recordings: usize,
    /// Distinct subjects.
    pub subjects: usize,
    /// Raw sample bytes of the cohort.
    pub raw_bytes: u64,
    /// Cores available.
    pub cores: usize,
    /// Per format.
    pub formats: Vec<FormatResult>,
}

/// Runs the benchmark.
pub fn run(args: &ExportArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run_async(args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "export of {} recordings ({} subjects), {:.1} MB raw samples, {} cores",
        report.recordings,
        report.subjects,
        report.raw_bytes as f64 / 1e6,
        report.cores
    );
    println!("| format | median s | raw MB/s | output/raw | files | runs (s) |");
    println!("|---|---|---|---|---|---|");
    for f in &report.formats {
        println!(
            "| {} | {:.2} | {:.1} | {:.3} | {} | {:?} |",
            f.format,
            f.median_s,
            f.raw_mb_per_s,
            f.output_ratio,
            f.files,
            f.runs_s
                .iter()
                .map(|s| (s * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

async fn run_async(args: &ExportArgs) -> Result<ExportReport> {
    anyhow::ensure!(args.recordings > 0 && args.runs > 0, "nothing to measure");
    let dir = tempfile::Builder::new()
        .prefix("theta-bench-export")
        .tempdir()?;
    let store = Store::init_local(
        &dir.path().join("store"),
        "dev",
        Arc::new(LocalKeyring::generate("dev")),
        StoreOptions::default(),
    )
    .await?;
    let tenant = TenantId::new("bench")?;
    let subjects = args.recordings.div_ceil(2);
    eprintln!(
        "generating and ingesting {} recordings of {} min...",
        args.recordings, args.minutes
    );
    for i in 0..args.recordings {
        let subject = i / 2;
        let spec = SynthSpec {
            seed: 1000 + i as u64,
            n_channels: args.channels,
            sample_rate: args.rate,
            duration: args.minutes * 60.0,
            patient: format!(
                "MRN-{:06} F 02-JAN-1970 Patient_{subject}",
                100_000 + subject
            ),
            recording: format!("ADM-{i:04} Tech_Name EEG-32"),
            start: SynthStart {
                year: 2024,
                month: 1 + (i % 12) as u8,
                day: 1 + (i % 28) as u8,
                hour: 8,
                minute: 0,
                second: 0,
            },
            annotations: (0..20)
                .map(|k| SynthAnnotation {
                    onset: 10.0 + 25.0 * f64::from(k),
                    duration: Some(2.0),
                    text: format!("event {k} noted by Patient_{subject} tel 06 12 34 56 78"),
                })
                .collect(),
            ..SynthSpec::default()
        };
        let path = dir.path().join(format!("r{i}.edf"));
        write_synth_file(&spec, &path)?;
        let source = EdfSource::open(&path, ReadOptions::default())?;
        store
            .ingest(
                source,
                IngestOptions {
                    tenant: tenant.clone(),
                    ..IngestOptions::default()
                },
            )
            .await?;
        std::fs::remove_file(&path)?;
    }
    let mut raw_bytes = 0;
    for id in store.recording_ids().await? {
        raw_bytes += store.recording(id).await?.raw_bytes();
    }
    let mut formats = Vec::new();
    for (format, name) in [
        (ExportFormat::Bids, "bids"),
        (ExportFormat::Parquet, "parquet"),
    ] {
        let mut times = Vec::new();
        let mut last = None;
        for run in 0..args.runs {
            let out: PathBuf = dir.path().join(format!("out-{name}-{run}"));
            let spec = ExportSpec::new("true", format, &out, "bench-project");
            let report = export(&store, vec![tenant.clone()], &spec, &ExportHooks::default())
                .await
                .with_context(|| format!("{name} export"))?;
            times.push(report.elapsed);
            std::fs::remove_dir_all(&out)?;
            last = Some(report);
        }
        let last = last.expect("at least one run");
        let runs_s: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
        let m = median(&runs_s);
        formats.push(FormatResult {
            format: name.into(),
            median_s: m,
            runs_s,
            raw_mb_per_s: raw_bytes as f64 / 1e6 / m,
            output_ratio: last.output_bytes as f64 / raw_bytes as f64,
            files: last.files,
        });
    }
    Ok(ExportReport {
        recordings: args.recordings,
        subjects,
        raw_bytes,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        formats,
    })
}
