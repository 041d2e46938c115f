//! `theta-bench audit`: what the audit trail sustains and how fast `verify` runs.
//!
//! Measured in one run, each beside a peer that shows the floor:
//! * appender: events/s sustained by [`AuditAppender`] (durable commits, `synchronous = FULL`) with
//!   several producer threads, and the enqueue latency the service's hot path pays;
//! * direct `AuditLog::append` by batch size, beside plain SQLite inserts of the same rows into the
//!   same schema without hashing or signing;
//! * `verify` over a log of `--events` events (default 10 million, built by the bulk path with
//!   `synchronous = OFF`), beside a plain `SELECT` of every column of every row.

use crate::stats::{median, percentile};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use theta_engine::audit::bench::{bulk_load, synthetic_event};
use theta_engine::audit::{
    AppenderOptions, AuditAppender, AuditLog, AuditLogOptions, AuditReader, AuditSigningKey,
    AuditVerifyKeys, Environment,
};

/// Options of `theta-bench audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Events in the log that `verify` checks.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Events pushed through the appender per repetition.
    #[arg(long, default_value_t = 200_000)]
    pub append_events: u64,
    /// Producer threads feeding the appender.
    #[arg(long, default_value_t = 4)]
    pub threads: u64,
    /// Repetitions of the appender and batch measurements (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Directory for the temporary logs (default: the system temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// All figures of one run.
#[derive(Debug, Default, Serialize)]
pub struct AuditResults {
    /// Appender: events/s from first enqueue to durable flush (median of reps).
    pub appender_events_per_s: f64,
    /// Appender: enqueue latency p50, ns (all reps pooled).
    pub enqueue_p50_ns: u64,
    /// Appender: enqueue latency p99, ns.
    pub enqueue_p99_ns: u64,
    /// Appender: enqueue latency max, ns.
    pub enqueue_max_ns: u64,
    /// `AuditLog::append`, events/s by batch size (durable commits).
    pub append_batch_events_per_s: Vec<(usize, f64)>,
    /// Peer: plain SQLite inserts (same schema and batch sizes, no hash or signature), events/s.
    pub sqlite_insert_events_per_s: Vec<(usize, f64)>,
    /// Events in the verified log.
    pub verify_events: u64,
    /// Bulk generation speed (events/s, no fsync).
    pub bulk_events_per_s: f64,
    /// Log file size, bytes.
    pub log_bytes: u64,
    /// `verify` speed, events/s (each run).
    pub verify_events_per_s: Vec<f64>,
    /// Peer: `SELECT` of every column of every row, events/s.
    pub scan_events_per_s: f64,
    /// Whether the verified log verified.
    pub verify_ok: bool,
}

struct Scratch {
    _dir: tempfile::TempDir,
    _key_dir: tempfile::TempDir,
    path: PathBuf,
    key_path: PathBuf,
}

fn scratch(base: Option<&Path>) -> anyhow::Result<Scratch> {
    let mk = || match base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    };
    let dir = mk()?;
    let key_dir = mk()?;
    let key_path = key_dir.path().join("audit.key");
    AuditSigningKey::generate(Environment::try_new("bench")?)?.write_new(&key_path)?;
    Ok(Scratch {
        path: dir.path().join("audit.db"),
        _dir: dir,
        _key_dir: key_dir,
        key_path,
    })
}

fn open(s: &Scratch) -> anyhow::Result<AuditLog> {
    Ok(AuditLog::open_with_key(
        &s.path,
        AuditSigningKey::load(&s.key_path)?,
        AuditLogOptions::default(),
    )?)
}

/// Now, in ms since the epoch (event timestamps).
fn base_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Appender throughput with `threads` producers; returns (events/s, enqueue latencies in ns).
fn appender_once(args: &AuditArgs) -> anyhow::Result<(f64, Vec<u64>)> {
    let s = scratch(args.dir.as_deref())?;
    let appender = AuditAppender::spawn(open(&s)?, AppenderOptions::default())?;
    let per = args.append_events / args.threads.max(1);
    let base = base_ms();
    // Build events first so the producers measure enqueueing, not event construction.
    let batches: Vec<Vec<_>> = (0..args.threads)
        .map(|t| {
            (0..per)
                .map(|i| synthetic_event(t * per + i, base))
                .collect()
        })
        .collect();
    let start = Instant::now();
    let lat: Vec<Vec<u64>> = std::thread::scope(|sc| {
        let hs: Vec<_> = batches
            .into_iter()
            .map(|events| {
                let a = appender.clone();
                sc.spawn(move || {
                    let mut lat = Vec::with_capacity(events.len());
                    for e in events {
                        let t = Instant::now();
                        a.append(e).expect("enqueue");
                        lat.push(t.elapsed().as_nanos() as u64);
                    }
                    lat
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("producer"))
            .collect()
    });
    appender.flush()?;
    let secs = start.elapsed().as_secs_f64();
    appender.shutdown()?;
    Ok(((per * args.threads) as f64 / secs, lat.concat()))
}

/// `AuditLog::append` with durable commits, `batch` events per call.
fn append_batches(args: &AuditArgs, batch: usize) -> anyhow::Result<f64> {
    let s = scratch(args.dir.as_deref())?;
    let mut log = open(&s)?;
    let total = (batch * 200).clamp(500, 100_000) as u64;
    let base = base_ms();
    let events: Vec<_> = (0..total).map(|i| synthetic_event(i, base)).collect();
    let start = Instant::now();
    for b in events.chunks(batch) {
        log.append(b)?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Peer: the same rows (with dummy 32-byte hashes) inserted into the same schema by plain
/// SQLite statements, WAL + `synchronous = FULL`, `batch` rows per transaction.
fn sqlite_batches(args: &AuditArgs, batch: usize) -> anyhow::Result<f64> {
    let s = scratch(args.dir.as_deref())?;
    // Create the schema through the real log, then write around it.
    drop(open(&s)?);
    let mut c = rusqlite::Connection::open(&s.path)?;
    c.pragma_update(None, "synchronous", "FULL")?;
    let total = (batch * 200).clamp(500, 100_000);
    let start = Instant::now();
    let mut seq = 0i64;
    for _ in 0..total.div_ceil(batch) {
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO events VALUES (?1, 1, ?2, 'recording.read_window', 'success', 'account', \
                 'acc-1', 's-1', ?3, 'Mozilla/5.0 (X11; Linux x86_64) theta-viewer/1.0', 'chu-1', \
                 'rec-000001', NULL, NULL, NULL, ?4, ?5)",
            )?;
            for _ in 0..batch {
                seq += 1;
                st.execute(rusqlite::params![
                    seq,
                    seq,
                    &[10u8, 0, 0, 1][..],
                    &[0u8; 32][..],
                    &[1u8; 32][..]
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(seq as f64 / start.elapsed().as_secs_f64())
}

/// Builds the big log, then times `verify` (twice) and a plain scan.
fn verify_big(args: &AuditArgs, r: &mut AuditResults) -> anyhow::Result<()> {
    let s = scratch(args.dir.as_deref())?;
    let mut log = open(&s)?;
    let start = Instant::now();
    bulk_load(&mut log, args.events, 10_000, base_ms())?;
    r.bulk_events_per_s = args.events as f64 / start.elapsed().as_secs_f64();
    drop(log);
    r.verify_events = args.events;
    r.log_bytes = std::fs::metadata(&s.path)?.len();
    let trusted = AuditVerifyKeys::single(AuditSigningKey::load(&s.key_path)?.verify_key());

    // Peer first, so both verify runs see the same (warm) page cache as the scan.
    let c = rusqlite::Connection::open(&s.path)?;
    let start = Instant::now();
    let mut st = c.prepare(
        "SELECT seq, v, ts_ms, action, outcome, actor_kind, actor, session, client_addr, user_agent, \
         tenant, recording, resource_kind, resource_id, reason, prev_hash, hash FROM events ORDER BY seq",
    )?;
    let mut rows = st.query([])?;
    let mut n = 0u64;
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        for i in 0..17 {
            if let rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) =
                row.get_ref(i)?
            {
                bytes += b.len();
            }
        }
        n += 1;
    }
    std::hint::black_box(bytes);
    r.scan_events_per_s = n as f64 / start.elapsed().as_secs_f64();

    for _ in 0..2 {
        let mut reader = AuditReader::open(&s.path)?;
        let start = Instant::now();
        let report = reader.verify(&trusted)?;
        let secs = start.elapsed().as_secs_f64();
        r.verify_ok = report.is_ok() && report.events_checked == args.events;
        anyhow::ensure!(r.verify_ok, "the benchmark log did not verify: {report}");
        r.verify_events_per_s.push(args.events as f64 / secs);
    }
    Ok(())
}

/// Runs the audit benchmark and prints its table (or JSON).
///
/// # Errors
/// Any failure to create, write or verify the temporary logs.
pub fn run(args: &AuditArgs) -> anyhow::Result<()> {
    let mut r = AuditResults::default();
    let mut rates = Vec::new();
    let mut lat = Vec::new();
    for _ in 0..args.reps.max(1) {
        let (rate, l) = appender_once(args).context("appender")?;
        rates.push(rate);
        lat.extend(l);
    }
    lat.sort_unstable();
    r.appender_events_per_s = median(&rates);
    r.enqueue_p50_ns = percentile(&lat, 0.50);
    r.enqueue_p99_ns = percentile(&lat, 0.99);
    r.enqueue_max_ns = lat.last().copied().unwrap_or(0);

    for batch in [1usize, 64, 1024] {
        let ours: Vec<f64> = (0..args.reps.max(1))
            .map(|_| append_batches(args, batch))
            .collect::<anyhow::Result<_>>()?;
        let peer: Vec<f64> = (0..args.reps.max(1))
            .map(|_| sqlite_batches(args, batch))
            .collect::<anyhow::Result<_>>()?;
        r.append_batch_events_per_s.push((batch, median(&ours)));
        r.sqlite_insert_events_per_s.push((batch, median(&peer)));
    }

    verify_big(args, &mut r).context("verify")?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let k = |x: f64| format!("{:.0}", x);
    println!(
        "theta-bench audit ({} producer threads, median of {} reps)",
        args.threads, args.reps
    );
    println!("{:<72} {:>12}", "measure", "value");
    println!(
        "{:<72} {:>12}",
        "appender sustained, durable (events/s)",
        k(r.appender_events_per_s)
    );
    println!(
        "{:<72} {:>12}",
        "appender enqueue p50 (ns)", r.enqueue_p50_ns
    );
    println!(
        "{:<72} {:>12}",
        "appender enqueue p99 (ns)", r.enqueue_p99_ns
    );
    println!(
        "{:<72} {:>12}",
        "appender enqueue max (ns)", r.enqueue_max_ns
    );
    for ((b, ours), (_, peer)) in r
        .append_batch_events_per_s
        .iter()
        .zip(&r.sqlite_insert_events_per_s)
    {
        println!(
            "{:<72} {:>12}",
            format!(
                "AuditLog::append batch {b} (events/s; plain SQLite {}; ratio {:.2})",
                k(*peer),
                ours / peer
            ),
            k(*ours)
        );
    }
    println!(
        "{:<72} {:>12}",
        format!(
            "bulk build of {} events (events/s, no fsync)",
            r.verify_events
        ),
        k(r.bulk_events_per_s)
    );
    println!(
        "{:<72} {:>12}",
        "log size (MB)",
        format!("{:.0}", r.log_bytes as f64 / 1e6)
    );
    println!(
        "{:<72} {:>12}",
        "peer: SELECT every row (events/s)",
        k(r.scan_events_per_s)
    );
    for (i, v) in r.verify_events_per_s.iter().enumerate() {
        println!(
            "{:<72} {:>12}",
            format!(
                "verify run {} (events/s; {:.1} s; {:.2}x scan)",
                i + 1,
                r.verify_events as f64 / v,
                v / r.scan_events_per_s
            ),
            k(*v)
        );
    }
    Ok(())
}
