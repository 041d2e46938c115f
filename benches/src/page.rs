//! `theta-bench page`: the standard viewer page from the encrypted store, against pyedflib + SciPy
//! and MNE + SciPy computing the same page from the same EDF in the same run.
//!
//! The standard page (issue 5): 20 s of a generated 24 h × 32 ch × 256 Hz recording (the fixtures
//! generator's file, shared with `theta-bench read` and `theta-bench store`, ingested into a
//! temporary store), double banana, Butterworth band-pass 0.5–70 Hz order 4 plus a 50 Hz notch,
//! zero-phase with real-data padding, min/max to 1920 pixel columns, computed by
//! [`theta_query::view::read_view`] — the function the service's window endpoint calls.
//!
//! Page starts are seeded random offsets. Warm: the same page read once untimed, then timed (the
//! store's decoded-chunk cache holds it). Cold: `store.clear_cache()` before each timed read (the
//! encrypted objects are still in the OS page cache, so this measures decrypt + decode + DSP).
//! The peers (`benches/peers/page_peers.py`, run with `benches/peers/.venv/bin/python`, created
//! and filled with pip on first use) read the
//! same starts with the same padding from the EDF file.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use theta_engine::store::IngestOptions;
use theta_query::dsp::{FilterSpec, PagePlan, Phase};
use theta_query::montage::{InputChannel, Montage};
use theta_query::view::{ViewRequest, read_view};

use crate::store::{Bench, Latency, bench_file, warm_page_cache};

/// Arguments of `theta-bench page`.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Hours of recording to generate.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Timed pages per latency figure.
    #[arg(long, default_value_t = 300)]
    pub reads: usize,
    /// Skip the Python peers.
    #[arg(long)]
    pub no_peers: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One peer's figures.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PeerLatency {
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Pages timed.
    pub n: usize,
}

/// The peers' report, as `page_peers.py --json` prints it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Peers {
    /// pyedflib + SciPy.
    pub pyedflib_scipy: PeerLatency,
    /// MNE + SciPy.
    pub mne_scipy: PeerLatency,
    /// Versions.
    pub scipy: String,
    /// MNE version.
    pub mne: String,
    /// pyedflib version.
    pub pyedflib: String,
}

/// The report.
#[derive(Debug, Serialize)]
pub struct PageReport {
    /// Warm p50, ms.
    pub p50_ms: f64,
    /// Warm p99, ms.
    pub p99_ms: f64,
    /// Cold p50, ms.
    pub cold_p50_ms: f64,
    /// Cold p99, ms.
    pub cold_p99_ms: f64,
    /// Pages timed per figure.
    pub n: usize,
    /// Rayon threads.
    pub threads: usize,
    /// Real-data padding each side, samples.
    pub padding: usize,
    /// The EDF file.
    pub file: String,
    /// The peers, when their script ran.
    pub peers: Option<Peers>,
    /// MNE + SciPy p50 over Theta's warm p50.
    pub speedup_vs_mne_p50: Option<f64>,
    /// Why the peers did not run.
    pub peers_error: Option<String>,
}

fn standard_filter() -> FilterSpec {
    FilterSpec {
        highpass: Some(0.5),
        lowpass: Some(70.0),
        notch: vec![50.0],
        order: 4,
        ..FilterSpec::default()
    }
}

fn starts(n: usize, duration: f64, page: f64, seed: u64) -> Vec<f64> {
    let mut rng = seed | 1;
    let span = (duration - page).max(0.0);
    (0..n)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Whole samples at 256 Hz, so the peers round to the same first sample.
            ((rng >> 11) as f64 / (1u64 << 53) as f64 * span * 256.0).floor() / 256.0
        })
        .collect()
}

fn run_peers(file: &str, padding: usize, starts: &[f64]) -> Result<Peers> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers");
    let python = crate::peers::peer_python(&[
        ("numpy", "numpy"),
        ("scipy", "scipy"),
        ("pyedflib", "pyedflib"),
        ("mne", "mne"),
    ])?;
    let list: Vec<String> = starts.iter().map(|s| format!("{s}")).collect();
    let out = Command::new(&python)
        .arg(dir.join("page_peers.py"))
        .args(["--edf", file, "--padding", &padding.to_string()])
        .args(["--starts", &list.join(","), "--json"])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "page_peers.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn run_main(args: &PageArgs) -> Result<PageReport> {
    let path = bench_file(args.hours, 32, 256.0)?;
    warm_page_cache(&path)?;
    let bench = Bench::new("page")?;
    eprintln!("ingesting {} …", path.display());
    let (_, _, _, id) = bench.ingest(&path, IngestOptions::default())?;
    let store = bench.store(false)?;
    let rec = bench.rt.block_on(store.recording(id))?;
    let fs = 256.0;
    let inputs: Vec<InputChannel> = rec
        .signals()
        .iter()
        .map(|s| InputChannel::new(s.label.trim()))
        .collect();
    let padding = PagePlan::build(
        &Montage::DoubleBanana,
        &inputs,
        &standard_filter(),
        Phase::ZeroPhase,
        fs,
        Some(1920),
    )?
    .padding_before();
    let request = |start: f64| ViewRequest {
        montage: Some(Montage::DoubleBanana),
        filter: standard_filter(),
        px: Some(1920),
        ..ViewRequest::new(start, 20.0)
    };

    let warm_starts = starts(args.reads, rec.duration(), 20.0, 11);
    let cold_starts = starts(args.reads, rec.duration(), 20.0, 7);
    // First page: builds the plan and warms the allocator.
    let first = bench
        .rt
        .block_on(read_view(&rec, &request(warm_starts[0])))?;
    anyhow::ensure!(
        first.labels.len() == 18,
        "double banana on the generated recording has {} rows",
        first.labels.len()
    );
    let mut warm = Vec::with_capacity(args.reads);
    for &s in &warm_starts {
        let req = request(s);
        std::hint::black_box(bench.rt.block_on(read_view(&rec, &req))?);
        let t = Instant::now();
        let v = bench.rt.block_on(read_view(&rec, &req))?;
        warm.push(t.elapsed());
        std::hint::black_box(v);
    }
    let mut cold = Vec::with_capacity(args.reads);
    for &s in &cold_starts {
        let req = request(s);
        store.clear_cache();
        let t = Instant::now();
        let v = bench.rt.block_on(read_view(&rec, &req))?;
        cold.push(t.elapsed());
        std::hint::black_box(v);
    }
    let warm = Latency::of(warm);
    let cold = Latency::of(cold);

    let file = path.display().to_string();
    let (peers, peers_error) = if args.no_peers {
        (None, Some("--no-peers".to_string()))
    } else {
        eprintln!("running the Python peers …");
        match run_peers(&file, padding, &warm_starts) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        }
    };
    Ok(PageReport {
        p50_ms: warm.p50_ms,
        p99_ms: warm.p99_ms,
        cold_p50_ms: cold.p50_ms,
        cold_p99_ms: cold.p99_ms,
        n: warm.n,
        threads: rayon::current_num_threads(),
        padding,
        file,
        speedup_vs_mne_p50: peers.as_ref().map(|p| p.mne_scipy.p50_ms / warm.p50_ms),
        peers,
        peers_error,
    })
}

/// Runs `theta-bench page`.
///
/// # Errors
/// Generation, ingest or read failures (a failing peer is reported, not an error).
pub fn run(args: &PageArgs) -> Result<()> {
    let r = run_main(args).context("page benchmark")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "page: 20 s × double banana (18 rows), 0.5–70 Hz order 4 + 50 Hz notch, zero-phase, 1920 px; padding {} samples each side; {} threads",
        r.padding, r.threads
    );
    println!("| measure | p50 (ms) | p99 (ms) | target |");
    println!("|---|---|---|---|");
    println!(
        "| Theta warm | {:.3} | {:.3} | p99 <= 3 ms: {} |",
        r.p50_ms,
        r.p99_ms,
        mark(r.p99_ms <= 3.0)
    );
    println!(
        "| Theta cold | {:.3} | {:.3} | p99 <= 10 ms: {} |",
        r.cold_p50_ms,
        r.cold_p99_ms,
        mark(r.cold_p99_ms <= 10.0)
    );
    match &r.peers {
        Some(p) => {
            println!(
                "| pyedflib + SciPy | {:.3} | {:.3} | |",
                p.pyedflib_scipy.p50_ms, p.pyedflib_scipy.p99_ms
            );
            let x = p.mne_scipy.p50_ms / r.p50_ms;
            println!(
                "| MNE + SciPy | {:.3} | {:.3} | Theta >= 5x faster: {:.1}x {} |",
                p.mne_scipy.p50_ms,
                p.mne_scipy.p99_ms,
                x,
                mark(x >= 5.0)
            );
        }
        None => println!(
            "| peers | not run | | {} |",
            r.peers_error.as_deref().unwrap_or("")
        ),
    }
    Ok(())
}
