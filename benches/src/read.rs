//! `theta-bench read`: read throughput and peak memory of the EDF reader on a generated
//! 24 h × 32 ch × 256 Hz EDF+ (about 1.4 GB), against pyedflib in the same run.
//!
//! The file is generated once with the fixtures generator and cached in the temp folder. One
//! untimed pass warms the page cache, so both readers are measured from memory, not disk. Each
//! reader then runs `--runs` times on one core; medians are reported.
//!
//! Two ways of reading all samples are timed: record by record (`next_record`, the ingest path)
//! and signal by signal (`read_digital` over each whole signal, what pyedflib's `readSignal`
//! does). Peak memory is the process's VmHWM, reset after generation.

use crate::stats::median;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use theta_engine::edf::{EdfReader, ReadOptions};
use theta_fixtures::{SynthAnnotation, SynthSpec, write_synth_file};

/// Arguments of `theta-bench read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Hours of recording to generate.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Channels.
    #[arg(long, default_value_t = 32)]
    pub channels: usize,
    /// Sample rate in Hz.
    #[arg(long, default_value_t = 256.0)]
    pub rate: f64,
    /// Timed runs per reader (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Skip the pyedflib peer.
    #[arg(long)]
    pub no_peer: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One reader's result.
#[derive(Debug, Serialize)]
pub struct ReaderResult {
    /// What was measured.
    pub reader: String,
    /// Seconds of each run.
    pub seconds: Vec<f64>,
    /// Median seconds.
    pub median_seconds: f64,
    /// Sample bytes per second (MB = 10^6 bytes), from the median.
    pub mb_per_s: f64,
    /// Peak resident memory of the process, bytes.
    pub peak_rss_bytes: u64,
}

/// The whole benchmark's result.
#[derive(Debug, Serialize)]
pub struct ReadReport {
    /// The file read.
    pub file: String,
    /// Its size in bytes.
    pub file_bytes: u64,
    /// Bytes of digital samples in it (annotation signal excluded).
    pub sample_bytes: u64,
    /// Results, Theta first.
    pub results: Vec<ReaderResult>,
    /// Theta record-by-record throughput over pyedflib's, when the peer ran.
    pub speedup_vs_pyedflib: Option<f64>,
}

/// Peak resident set size of this process (VmHWM), bytes.
pub(crate) fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resets VmHWM to the current RSS (Linux: write 5 to clear_refs), so generation does not count.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn bench_file(args: &ReadArgs) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("theta-bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!(
        "read-{}h-{}ch-{}hz-v1.edf",
        args.hours, args.channels, args.rate
    ));
    if path.exists() {
        return Ok(path);
    }
    let seconds = args.hours * 3600.0;
    let spec = SynthSpec {
        seed: 42,
        n_channels: args.channels,
        sample_rate: args.rate,
        duration: seconds,
        annotations: (0..24)
            .map(|h| SynthAnnotation {
                onset: seconds * f64::from(h) / 24.0,
                duration: Some(60.0),
                text: format!("hourly marker {h}"),
            })
            .collect(),
        ..SynthSpec::default()
    };
    let partial = path.with_extension("partial");
    eprintln!("generating {} …", path.display());
    let t0 = Instant::now();
    let summary = write_synth_file(&spec, &partial)?;
    std::fs::rename(&partial, &path)?;
    eprintln!(
        "generated {:.2} GB in {:.1} s ({:.0} MB/s)",
        summary.bytes as f64 / 1e9,
        t0.elapsed().as_secs_f64(),
        summary.bytes as f64 / 1e6 / t0.elapsed().as_secs_f64()
    );
    Ok(path)
}

/// Reads every record; returns per-signal digital sums (so nothing is optimised away).
fn read_records(path: &Path) -> Result<Vec<i64>> {
    let mut reader = EdfReader::open(path, ReadOptions::default())?;
    let mut buf = reader.record_buf();
    let mut sums = vec![0i64; reader.header().signals.len()];
    while reader.next_record(&mut buf)? {
        for (k, s) in sums.iter_mut().enumerate() {
            *s += buf.signal(k).iter().map(|&v| i64::from(v)).sum::<i64>();
        }
    }
    Ok(sums)
}

/// Reads each signal whole with `read_digital`, 1 Mi samples at a time.
fn read_signals(path: &Path) -> Result<Vec<i64>> {
    let mut reader = EdfReader::open(path, ReadOptions::default())?;
    let mut chunk = vec![0i32; 1 << 20];
    let n = reader.header().signals.len();
    let mut sums = vec![0i64; n];
    for (k, s) in sums.iter_mut().enumerate() {
        let mut at = 0u64;
        loop {
            let got = reader.read_digital(k, at, &mut chunk)?;
            if got == 0 {
                break;
            }
            *s += chunk[..got].iter().map(|&v| i64::from(v)).sum::<i64>();
            at += got as u64;
        }
    }
    Ok(sums)
}

fn time_runs(runs: usize, mut f: impl FnMut() -> Result<Vec<i64>>) -> Result<(Vec<f64>, Vec<i64>)> {
    let mut seconds = Vec::with_capacity(runs);
    let mut sums = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        sums = f()?;
        seconds.push(t0.elapsed().as_secs_f64());
    }
    Ok((seconds, sums))
}

#[derive(serde::Deserialize)]
struct PeerOutput {
    reader: String,
    seconds: Vec<f64>,
    samples: u64,
    digital_sums: Vec<i64>,
    peak_rss_bytes: u64,
}

/// Runs the benchmark and prints the report.
///
/// # Errors
/// Generation, reading, or the peer failing; a peer whose sums differ from ours.
pub fn run(args: &ReadArgs) -> Result<()> {
    let path = bench_file(args)?;
    let file_bytes = std::fs::metadata(&path)?.len();
    let header = EdfReader::open(&path, ReadOptions::default())?
        .header()
        .clone();
    let sample_bytes: u64 = (0..header.signals.len())
        .map(|k| header.n_samples(k) * header.format.bytes_per_sample() as u64)
        .sum();
    // Warm the page cache (untimed), then measure from memory.
    let expected = read_records(&path)?;
    reset_peak_rss();
    let runs = args.runs.max(1);
    let mut results = Vec::new();
    let (seconds, sums) = time_runs(runs, || read_records(&path))?;
    if sums != expected {
        bail!("record-by-record sums changed between runs");
    }
    let mb = sample_bytes as f64 / 1e6;
    let rss_records = peak_rss();
    let m = median(&seconds);
    results.push(ReaderResult {
        reader: "theta next_record (all signals per record)".into(),
        mb_per_s: mb / m,
        median_seconds: m,
        seconds,
        peak_rss_bytes: rss_records,
    });
    let (seconds, sums) = time_runs(runs, || read_signals(&path))?;
    if sums != expected {
        bail!("signal-by-signal sums differ from record-by-record sums");
    }
    let m = median(&seconds);
    results.push(ReaderResult {
        reader: "theta read_digital (signal by signal)".into(),
        mb_per_s: mb / m,
        median_seconds: m,
        seconds,
        peak_rss_bytes: peak_rss(),
    });
    let mut speedup = None;
    if !args.no_peer {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = crate::peers::peer_python(&[("pyedflib", "pyedflib"), ("numpy", "numpy")])?;
        let out = Command::new(python)
            .arg(root.join("benches/peers/read_pyedflib.py"))
            .arg(&path)
            .arg(runs.to_string())
            .output()
            .context("running read_pyedflib.py")?;
        if !out.status.success() {
            bail!(
                "read_pyedflib.py failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let peer: PeerOutput = serde_json::from_slice(&out.stdout)?;
        if peer.digital_sums != expected {
            bail!("pyedflib's digital sums differ from Theta's");
        }
        if peer.samples * header.format.bytes_per_sample() as u64 != sample_bytes {
            bail!("pyedflib read a different number of samples");
        }
        let m = median(&peer.seconds);
        speedup = Some(m / results[0].median_seconds);
        results.push(ReaderResult {
            reader: format!("{} readSignal (signal by signal)", peer.reader),
            mb_per_s: mb / m,
            median_seconds: m,
            seconds: peer.seconds,
            peak_rss_bytes: peer.peak_rss_bytes,
        });
    }
    let report = ReadReport {
        file: path.display().to_string(),
        file_bytes,
        sample_bytes,
        results,
        speedup_vs_pyedflib: speedup,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "read: {} ({:.2} GB, {} signals × {} records), {} runs, page cache warm, one core",
            report.file,
            file_bytes as f64 / 1e9,
            header.signals.len(),
            header.n_records,
            runs
        );
        println!(
            "{:<52} {:>10} {:>10} {:>14}",
            "reader", "median s", "MB/s", "peak RSS MB"
        );
        for r in &report.results {
            println!(
                "{:<52} {:>10.3} {:>10.0} {:>14.1}",
                r.reader,
                r.median_seconds,
                r.mb_per_s,
                r.peak_rss_bytes as f64 / 1e6
            );
        }
        if let Some(s) = speedup {
            println!("theta next_record vs pyedflib: {s:.1}× faster (median over median)");
        }
    }
    Ok(())
}
