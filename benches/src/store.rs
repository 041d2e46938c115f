//! `theta-bench store`: ingest throughput, storage ratio, peak memory, window and overview
//! latency of the encrypted store on a generated 24 h × 32 ch × 256 Hz EDF+ recording.
//!
//! The EDF file is generated once with the fixtures generator and cached in the temp folder
//! (the same file as `theta-bench read`). An untimed pass warms the page cache, so ingest is
//! measured from memory; the store is a local folder in the temp folder, removed afterwards.
//! Window reads are 30 s × every channel at seeded random offsets: cold (decoded-chunk cache
//! emptied before each read, objects still in the OS page cache) and warm (the same window read
//! a second time); page turns read consecutive pages with read-ahead on and a 20 ms pause
//! between pages, as a viewer would. `--sweep` instead measures chunk shapes on a 1-hour file.

use crate::read::{peak_rss, reset_peak_rss};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use theta_engine::crypto::LocalKeyring;
use theta_engine::edf::ReadOptions;
use theta_engine::store::{
    ChannelSelection, EdfSource, IngestOptions, OverviewRequest, Recording, Store, StoreOptions,
    WindowRequest,
};
use theta_fixtures::{SynthAnnotation, SynthSpec, write_synth_file};

/// Arguments of `theta-bench store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Hours of recording to generate.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Channels.
    #[arg(long, default_value_t = 32)]
    pub channels: usize,
    /// Sample rate in Hz.
    #[arg(long, default_value_t = 256.0)]
    pub rate: f64,
    /// Timed reads per latency figure.
    #[arg(long, default_value_t = 300)]
    pub reads: usize,
    /// Measure chunk shapes (time block × channel group) on a 1-hour file instead.
    #[arg(long)]
    pub sweep: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Samples.
    pub n: usize,
}

impl Latency {
    pub(crate) fn of(mut v: Vec<Duration>) -> Self {
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let pick = |q: f64| ms(v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]);
        Self {
            p50_ms: pick(0.5),
            p99_ms: pick(0.99),
            n: v.len(),
        }
    }
}

/// The report of the main run.
#[derive(Debug, Serialize)]
pub struct StoreReport {
    /// EDF file ingested.
    pub file: String,
    /// Its size in bytes.
    pub file_bytes: u64,
    /// Rayon threads (cores used).
    pub threads: usize,
    /// Ingest wall time.
    pub ingest_seconds: f64,
    /// EDF bytes per second (MB = 10^6 bytes).
    pub ingest_mb_per_s: f64,
    /// The same per core.
    pub ingest_mb_per_s_per_core: f64,
    /// CPU time of the whole process during ingest (every thread), seconds.
    pub ingest_cpu_seconds: f64,
    /// EDF bytes per CPU second: per-core throughput whatever else the machine runs.
    pub ingest_mb_per_cpu_second: f64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Stored over EDF bytes.
    pub stored_over_raw: f64,
    /// Peak resident memory during ingest (VmHWM), bytes.
    pub ingest_peak_rss_bytes: u64,
    /// 30 s × all channels, cold cache.
    pub window_cold: Latency,
    /// 30 s × all channels, warm cache.
    pub window_warm: Latency,
    /// Consecutive pages with read-ahead.
    pub page_turn_read_ahead: Latency,
    /// Whole recording at 1920 px, pages cached.
    pub overview_warm: Latency,
    /// Whole recording at 1920 px, cache emptied first.
    pub overview_cold: Latency,
}

/// One chunk shape of the sweep.
#[derive(Debug, Serialize)]
pub struct ShapeResult {
    /// Seconds per time block.
    pub block_seconds: f64,
    /// Signals per chunk.
    pub group_size: u32,
    /// Data chunks.
    pub chunks: u64,
    /// Stored over EDF bytes.
    pub stored_over_raw: f64,
    /// Ingest EDF MB/s.
    pub ingest_mb_per_s: f64,
    /// 30 s × 32 ch, cold.
    pub cold_32: Latency,
    /// 30 s × 20 ch, cold.
    pub cold_20: Latency,
    /// 30 s × 32 ch, warm.
    pub warm_32: Latency,
}

/// The generated EDF, cached under the same name and spec as `theta-bench read` uses.
pub(crate) fn bench_file(hours: f64, channels: usize, rate: f64) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("theta-bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("read-{hours}h-{channels}ch-{rate}hz-v1.edf"));
    if path.exists() {
        return Ok(path);
    }
    let seconds = hours * 3600.0;
    let spec = SynthSpec {
        seed: 42,
        n_channels: channels,
        sample_rate: rate,
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
    write_synth_file(&spec, &partial)?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// CPU time used so far by every thread of this process, in seconds.
fn process_cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

pub(crate) fn warm_page_cache(path: &Path) -> Result<()> {
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut std::io::sink())?;
    Ok(())
}

pub(crate) struct Bench {
    pub(crate) rt: tokio::runtime::Runtime,
    dir: PathBuf,
    keyring: Arc<LocalKeyring>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bench {
    pub(crate) fn new(tag: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let dir = std::env::temp_dir()
            .join("theta-bench")
            .join(format!("store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(Self {
            rt,
            dir,
            keyring: Arc::new(LocalKeyring::generate("bench")),
        })
    }

    pub(crate) fn store(&self, read_ahead: bool) -> Result<Store> {
        let opts = StoreOptions {
            read_ahead,
            ..StoreOptions::default()
        };
        let ring = Arc::clone(&self.keyring) as Arc<dyn theta_engine::crypto::Keyring>;
        let store = if self.dir.join("theta.store").exists() {
            self.rt.block_on(Store::open_local(&self.dir, ring, opts))?
        } else {
            self.rt
                .block_on(Store::init_local(&self.dir, "bench", ring, opts))?
        };
        Ok(store)
    }

    /// Ingests; returns (seconds, stored bytes, chunks, recording id).
    pub(crate) fn ingest(
        &self,
        path: &Path,
        opts: IngestOptions,
    ) -> Result<(f64, u64, u64, theta_engine::store::RecordingId)> {
        let store = self.store(false)?;
        let src = EdfSource::open(path, ReadOptions::default())?;
        let t0 = Instant::now();
        let r = self.rt.block_on(store.ingest(src, opts))?;
        Ok((
            t0.elapsed().as_secs_f64(),
            r.stored_bytes,
            r.chunks,
            r.recording,
        ))
    }

    fn time_windows(
        &self,
        rec: &Recording,
        store: &Store,
        n: usize,
        channels: usize,
        warm: bool,
        seed: u64,
    ) -> Result<Latency> {
        let mut rng = seed | 1;
        let span = (rec.duration() - 30.0).max(0.0);
        let sel = ChannelSelection::indices(0..channels);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let start = (rng >> 11) as f64 / (1u64 << 53) as f64 * span;
            let req = WindowRequest::new(start, 30.0).channels(sel.clone());
            if warm {
                self.rt.block_on(rec.window(&req))?;
            } else {
                store.clear_cache();
            }
            let t = Instant::now();
            let w = self.rt.block_on(rec.window(&req))?;
            times.push(t.elapsed());
            std::hint::black_box(w);
        }
        Ok(Latency::of(times))
    }
}

fn run_main(args: &StoreArgs) -> Result<StoreReport> {
    let path = bench_file(args.hours, args.channels, args.rate)?;
    let file_bytes = std::fs::metadata(&path)?.len();
    warm_page_cache(&path)?;
    let bench = Bench::new("main")?;
    let threads = rayon::current_num_threads();
    reset_peak_rss();
    let cpu0 = process_cpu_seconds();
    let (secs, stored, _, id) = bench.ingest(&path, IngestOptions::default())?;
    let cpu = process_cpu_seconds() - cpu0;
    let peak = peak_rss();
    let mb_s = file_bytes as f64 / 1e6 / secs;
    eprintln!(
        "ingest: {secs:.1} s, {mb_s:.0} MB/s, {cpu:.1} CPU s ({:.2} cores busy)",
        cpu / secs
    );

    let store = bench.store(false)?;
    let rec = bench.rt.block_on(store.recording(id))?;
    let cold = bench.time_windows(&rec, &store, args.reads, args.channels, false, 7)?;
    let warm = bench.time_windows(&rec, &store, args.reads, args.channels, true, 11)?;

    // Page turns with read-ahead, as a viewer paging forward.
    let ra_store = bench.store(true)?;
    let ra_rec = bench.rt.block_on(ra_store.recording(id))?;
    let mut turns = Vec::new();
    let sessions = (args.reads / 20).max(1);
    for s in 0..sessions {
        ra_store.clear_cache();
        let start0 = (s as f64 * 3571.0) % (rec.duration() - 30.0 * 21.0).max(1.0);
        for k in 0..21 {
            let req = WindowRequest::new(start0 + 30.0 * f64::from(k), 30.0);
            let t = Instant::now();
            let w = bench.rt.block_on(ra_rec.window(&req))?;
            if k > 0 {
                turns.push(t.elapsed());
            }
            std::hint::black_box(w);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    let ov_req = OverviewRequest::new(0.0, rec.duration(), 1920);
    let mut ov_cold = Vec::new();
    let mut ov_warm = Vec::new();
    for _ in 0..(args.reads / 3).max(5) {
        store.clear_cache();
        let t = Instant::now();
        std::hint::black_box(bench.rt.block_on(rec.overview(&ov_req))?);
        ov_cold.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(bench.rt.block_on(rec.overview(&ov_req))?);
        ov_warm.push(t.elapsed());
    }

    Ok(StoreReport {
        file: path.display().to_string(),
        file_bytes,
        threads,
        ingest_seconds: secs,
        ingest_mb_per_s: mb_s,
        ingest_mb_per_s_per_core: mb_s / threads as f64,
        ingest_cpu_seconds: cpu,
        ingest_mb_per_cpu_second: file_bytes as f64 / 1e6 / cpu,
        stored_bytes: stored,
        stored_over_raw: stored as f64 / file_bytes as f64,
        ingest_peak_rss_bytes: peak,
        window_cold: cold,
        window_warm: warm,
        page_turn_read_ahead: Latency::of(turns),
        overview_warm: Latency::of(ov_warm),
        overview_cold: Latency::of(ov_cold),
    })
}

fn run_sweep(args: &StoreArgs) -> Result<Vec<ShapeResult>> {
    let path = bench_file(1.0, args.channels, args.rate)?;
    let file_bytes = std::fs::metadata(&path)?.len();
    warm_page_cache(&path)?;
    let n = (args.reads / 4).max(20);
    let mut out = Vec::new();
    for &block_seconds in &[1.0, 2.0, 5.0, 10.0, 30.0, 60.0] {
        for &group_size in &[1u32, 4, 32] {
            let bench = Bench::new(&format!("sweep-{block_seconds}-{group_size}"))?;
            let opts = IngestOptions {
                block_seconds,
                group_size,
                ..Default::default()
            };
            let (secs, stored, chunks, id) = bench.ingest(&path, opts)?;
            let store = bench.store(false)?;
            let rec = bench.rt.block_on(store.recording(id))?;
            let r = ShapeResult {
                block_seconds,
                group_size,
                chunks,
                stored_over_raw: stored as f64 / file_bytes as f64,
                ingest_mb_per_s: file_bytes as f64 / 1e6 / secs,
                cold_32: bench.time_windows(&rec, &store, n, args.channels.min(32), false, 3)?,
                cold_20: bench.time_windows(&rec, &store, n, args.channels.min(20), false, 5)?,
                warm_32: bench.time_windows(&rec, &store, n, args.channels.min(32), true, 9)?,
            };
            eprintln!(
                "block {block_seconds:>4} s × group {group_size:>2}: cold32 p50 {:.2} ms",
                r.cold_32.p50_ms
            );
            out.push(r);
        }
    }
    Ok(out)
}

/// Runs `theta-bench store`.
///
/// # Errors
/// Generation, ingest or read failures.
pub fn run(args: &StoreArgs) -> Result<()> {
    if args.sweep {
        let rows = run_sweep(args).context("chunk-shape sweep")?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(());
        }
        println!(
            "| block (s) | group | chunks | stored/raw | ingest MB/s | cold 30 s×32 ch p50 / p99 (ms) | cold 30 s×20 ch p50 / p99 (ms) | warm 30 s×32 ch p50 / p99 (ms) |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for r in rows {
            println!(
                "| {} | {} | {} | {:.3} | {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {:.3} / {:.3} |",
                r.block_seconds,
                r.group_size,
                r.chunks,
                r.stored_over_raw,
                r.ingest_mb_per_s,
                r.cold_32.p50_ms,
                r.cold_32.p99_ms,
                r.cold_20.p50_ms,
                r.cold_20.p99_ms,
                r.warm_32.p50_ms,
                r.warm_32.p99_ms
            );
        }
        return Ok(());
    }
    let r = run_main(args).context("store benchmark")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "store: {} ({:.2} GB EDF), {} threads",
        r.file,
        r.file_bytes as f64 / 1e9,
        r.threads
    );
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| ingest | {:.0} MB/s ({:.0} MB/s per core, {:.1} s) | >= 100 MB/s per core: {} |",
        r.ingest_mb_per_s,
        r.ingest_mb_per_s_per_core,
        r.ingest_seconds,
        mark(r.ingest_mb_per_s_per_core >= 100.0)
    );
    println!(
        "| ingest CPU | {:.1} CPU s ({:.2} cores busy), {:.0} MB per CPU second | >= 100: {} |",
        r.ingest_cpu_seconds,
        r.ingest_cpu_seconds / r.ingest_seconds,
        r.ingest_mb_per_cpu_second,
        mark(r.ingest_mb_per_cpu_second >= 100.0)
    );
    println!(
        "| stored / raw | {:.3} ({} bytes) | |",
        r.stored_over_raw, r.stored_bytes
    );
    println!(
        "| peak memory during ingest (VmHWM) | {:.0} MiB | |",
        r.ingest_peak_rss_bytes as f64 / (1 << 20) as f64
    );
    let lat = |name: &str, l: Latency, target: Option<f64>| {
        let t = target.map_or(String::new(), |t| {
            format!("p99 <= {t} ms: {}", mark(l.p99_ms <= t))
        });
        println!(
            "| {name} | p50 {:.3} ms, p99 {:.3} ms (n={}) | {t} |",
            l.p50_ms, l.p99_ms, l.n
        );
    };
    lat("window 30 s × all ch, warm", r.window_warm, Some(1.0));
    lat("window 30 s × all ch, cold", r.window_cold, Some(5.0));
    lat("page turn with read-ahead", r.page_turn_read_ahead, None);
    lat("overview 24 h @ 1920 px, warm", r.overview_warm, Some(2.0));
    lat("overview 24 h @ 1920 px, cold", r.overview_cold, None);
    Ok(())
}
