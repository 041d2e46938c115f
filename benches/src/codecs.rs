//! `theta-bench codecs`: Theta's codec against zstd-19, FLAC-8 and pcodec-8 on the real
//! recordings, in one run.
//!
//! Every codec gets the same input: each non-annotation signal's digital samples as stored
//! (16-bit EDF, 24-bit BDF). Theta encodes blocks of `--block` samples, as the engine stores
//! them; the peers get each whole signal at once, their most favourable case. Speeds are million
//! samples per second of thread CPU time on one core (so other processes on a shared machine do
//! not count against anyone), decode speeds the best of `--reps` runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use serde::Serialize;
use theta_codecs::{Decoder, EncodeOptions, Encoder, SampleWidth};

use crate::edf_samples::{self, Recording};
use crate::peers;

/// Files in the shared folder that are synthetic, not recordings, and left out of the totals.
pub const SYNTHETIC_FILES: &[&str] = &["test_uneven_samp.edf"];

/// Block length the engine stores with (samples per channel block); see `--block-sizes`.
pub const DEFAULT_BLOCK: usize = theta_codecs::RECOMMENDED_BLOCK_SAMPLES;

/// Arguments of `theta-bench codecs`.
#[derive(Debug, Clone, clap::Args)]
pub struct CodecsArgs {
    /// Folder of EDF/BDF recordings (the shared `eeg` folder).
    pub dir: PathBuf,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Samples per Theta block.
    #[arg(long, default_value_t = DEFAULT_BLOCK)]
    pub block: usize,
    /// Also measure Theta alone at these block lengths (comma-separated) and print the table
    /// used to choose the block length.
    #[arg(long, value_delimiter = ',')]
    pub block_sizes: Vec<usize>,
    /// Decode repetitions per signal (the fastest counts).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Skip FLAC (when the `flac` command is not installed).
    #[arg(long)]
    pub no_flac: bool,
}

/// Thread CPU time in seconds.
fn cpu_now() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Runs `f` `reps` times and returns the fastest CPU time.
fn best_of(reps: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = cpu_now();
        f()?;
        best = best.min(cpu_now() - t);
    }
    Ok(best)
}

/// One file's (or the total's) measurements.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    /// File name, or `TOTAL`.
    pub file: String,
    /// Samples over all non-annotation signals.
    pub samples: usize,
    /// Stored size: 2 bytes per sample (EDF) or 3 (BDF).
    pub raw_bytes: usize,
    /// Theta's encoded size.
    pub theta_bytes: usize,
    /// Theta's size when each channel may be coded against an earlier channel of the file
    /// (`Encoder::encode_referenced`; the store does not do this yet).
    pub theta_ref_bytes: usize,
    /// zstd level 19 size.
    pub zstd19_bytes: usize,
    /// FLAC level 8 size (libFLAC through the `flac` command; 0 when skipped).
    pub flac8_bytes: usize,
    /// pcodec level 8 size.
    pub pcodec8_bytes: usize,
    /// raw / Theta.
    pub theta_ratio: f64,
    /// raw / Theta with reference channels.
    pub theta_ref_ratio: f64,
    /// raw / zstd-19.
    pub zstd19_ratio: f64,
    /// raw / FLAC-8.
    pub flac8_ratio: f64,
    /// raw / pcodec-8.
    pub pcodec8_ratio: f64,
    /// The peer with the best ratio.
    pub best_peer: String,
    /// That peer's ratio.
    pub best_peer_ratio: f64,
    /// Theta encode speed, M samples/s.
    pub theta_encode_msps: f64,
    /// Theta decode speed, M samples/s.
    pub theta_decode_msps: f64,
    /// Theta decode speed with reference channels (references decoded anyway), M samples/s.
    pub theta_ref_decode_msps: f64,
    /// zstd-19 encode speed.
    pub zstd_encode_msps: f64,
    /// zstd decode speed.
    pub zstd_decode_msps: f64,
    /// pcodec-8 encode speed.
    pub pcodec_encode_msps: f64,
    /// pcodec decode speed.
    pub pcodec_decode_msps: f64,
    #[serde(skip)]
    times: Times,
}

/// CPU seconds, summed so totals are total samples over total time.
#[derive(Debug, Clone, Default)]
struct Times {
    theta_enc: f64,
    theta_dec: f64,
    theta_ref_dec: f64,
    zstd_enc: f64,
    zstd_dec: f64,
    pco_enc: f64,
    pco_dec: f64,
}

impl Row {
    fn add(&mut self, o: &Row) {
        self.samples += o.samples;
        self.raw_bytes += o.raw_bytes;
        self.theta_bytes += o.theta_bytes;
        self.theta_ref_bytes += o.theta_ref_bytes;
        self.zstd19_bytes += o.zstd19_bytes;
        self.flac8_bytes += o.flac8_bytes;
        self.pcodec8_bytes += o.pcodec8_bytes;
        let (t, u) = (&mut self.times, &o.times);
        t.theta_enc += u.theta_enc;
        t.theta_dec += u.theta_dec;
        t.theta_ref_dec += u.theta_ref_dec;
        t.zstd_enc += u.zstd_enc;
        t.zstd_dec += u.zstd_dec;
        t.pco_enc += u.pco_enc;
        t.pco_dec += u.pco_dec;
    }

    fn finish(&mut self) {
        let ratio = |b: usize| {
            if b == 0 {
                0.0
            } else {
                self.raw_bytes as f64 / b as f64
            }
        };
        self.theta_ratio = ratio(self.theta_bytes);
        self.theta_ref_ratio = ratio(self.theta_ref_bytes);
        self.zstd19_ratio = ratio(self.zstd19_bytes);
        self.flac8_ratio = ratio(self.flac8_bytes);
        self.pcodec8_ratio = ratio(self.pcodec8_bytes);
        let peers = [
            ("zstd-19", self.zstd19_ratio),
            ("flac-8", self.flac8_ratio),
            ("pcodec-8", self.pcodec8_ratio),
        ];
        let best = peers
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("three peers");
        // Files without signal samples (annotation-only) have no best peer.
        self.best_peer = if self.raw_bytes == 0 { "-" } else { best.0 }.to_string();
        self.best_peer_ratio = best.1;
        let msps = |s: f64| {
            if s > 0.0 {
                self.samples as f64 / s / 1e6
            } else {
                0.0
            }
        };
        let t = self.times.clone();
        self.theta_encode_msps = msps(t.theta_enc);
        self.theta_decode_msps = msps(t.theta_dec);
        self.theta_ref_decode_msps = msps(t.theta_ref_dec);
        self.zstd_encode_msps = msps(t.zstd_enc);
        self.zstd_decode_msps = msps(t.zstd_dec);
        self.pcodec_encode_msps = msps(t.pco_enc);
        self.pcodec_decode_msps = msps(t.pco_dec);
    }
}

fn width_of(rec: &Recording) -> SampleWidth {
    if rec.bdf {
        SampleWidth::Bits24
    } else {
        SampleWidth::Bits16
    }
}

/// Theta on one signal: encoded bytes, encode and decode CPU seconds. Checks the round trip.
fn theta_signal(
    samples: &[i32],
    width: SampleWidth,
    block: usize,
    reps: usize,
    enc: &mut Encoder,
    dec: &mut Decoder,
) -> anyhow::Result<(usize, f64, f64)> {
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(samples.len().div_ceil(block.max(1)));
    let t = cpu_now();
    for b in samples.chunks(block.max(1)) {
        let mut out = Vec::with_capacity(theta_codecs::max_encoded_len(b.len(), width));
        enc.encode(b, width, &mut out)?;
        blocks.push(out);
    }
    let enc_time = cpu_now() - t;
    let mut out = vec![0i32; samples.len()];
    let dec_time = best_of(reps, || {
        let mut pos = 0;
        for b in &blocks {
            pos += dec.decode_into(b, &mut out[pos..])?;
        }
        Ok(())
    })?;
    ensure!(out == samples, "Theta round trip differs");
    Ok((blocks.iter().map(Vec::len).sum(), enc_time, dec_time))
}

/// For each signal, the earlier signal of the same length whose steps correlate best with its
/// own (|r| ≥ 0.3), as a simple stand-in for a montage-aware choice.
fn pick_references(signals: &[&[i32]]) -> Vec<Option<usize>> {
    let steps: Vec<Vec<f64>> = signals
        .iter()
        .map(|s| {
            s.windows(2)
                .map(|w| f64::from(w[1]) - f64::from(w[0]))
                .collect()
        })
        .collect();
    let energy: Vec<f64> = steps
        .iter()
        .map(|d| d.iter().map(|v| v * v).sum())
        .collect();
    (0..signals.len())
        .map(|b| {
            (0..b)
                .filter(|&a| {
                    signals[a].len() == signals[b].len() && energy[a] > 0.0 && energy[b] > 0.0
                })
                .map(|a| {
                    let dot: f64 = steps[a].iter().zip(&steps[b]).map(|(x, y)| x * y).sum();
                    (a, (dot / (energy[a] * energy[b]).sqrt()).abs())
                })
                .filter(|&(_, r)| r >= 0.3)
                .max_by(|x, y| x.1.total_cmp(&y.1))
                .map(|(a, _)| a)
        })
        .collect()
}

/// Theta with reference channels over one recording: bytes and decode CPU seconds.
fn theta_referenced(rec: &Recording, block: usize, reps: usize) -> anyhow::Result<(usize, f64)> {
    let width = width_of(rec);
    let signals: Vec<&[i32]> = rec.signals.iter().map(|s| s.samples.as_slice()).collect();
    let refs = pick_references(&signals);
    let mut enc = Encoder::new(EncodeOptions::default());
    let mut dec = Decoder::new();
    let mut encoded: Vec<Vec<Vec<u8>>> = Vec::with_capacity(signals.len());
    for (b, s) in signals.iter().enumerate() {
        let mut blocks = Vec::new();
        for (i, chunk) in s.chunks(block).enumerate() {
            let mut out = Vec::new();
            match refs[b] {
                Some(a) => enc.encode_referenced(
                    chunk,
                    &signals[a][i * block..][..chunk.len()],
                    width,
                    &mut out,
                )?,
                None => enc.encode(chunk, width, &mut out)?,
            }
            blocks.push(out);
        }
        encoded.push(blocks);
    }
    let bytes = encoded.iter().flatten().map(Vec::len).sum();
    let mut outs: Vec<Vec<i32>> = signals.iter().map(|s| vec![0; s.len()]).collect();
    let time = best_of(reps, || {
        for b in 0..signals.len() {
            let (done, rest) = outs.split_at_mut(b);
            let out = &mut rest[0];
            for (i, blk) in encoded[b].iter().enumerate() {
                let at = i * block;
                let n = (signals[b].len() - at).min(block);
                match refs[b] {
                    Some(a) => {
                        dec.decode_referenced_into(blk, &done[a][at..at + n], &mut out[at..at + n])?
                    }
                    None => dec.decode_into(blk, &mut out[at..at + n])?,
                };
            }
        }
        Ok(())
    })?;
    for (o, s) in outs.iter().zip(&signals) {
        ensure!(o.as_slice() == *s, "Theta (referenced) round trip differs");
    }
    Ok((bytes, time))
}

/// Every recording in `dir` except the synthetic ones, sorted by name.
pub fn recordings(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("edf") || e.eq_ignore_ascii_case("bdf"))
        })
        .filter(|p| {
            !SYNTHETIC_FILES.contains(&p.file_name().and_then(|n| n.to_str()).unwrap_or(""))
        })
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no EDF/BDF files in {}", dir.display());
    Ok(files)
}

/// Measures one recording against every peer.
pub fn measure_file(path: &Path, args: &CodecsArgs) -> anyhow::Result<Row> {
    let rec = edf_samples::read_recording(path)?;
    let width = width_of(&rec);
    let bps = rec.bytes_per_sample();
    let mut row = Row {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Row::default()
    };
    let mut enc = Encoder::new(EncodeOptions::default());
    let mut dec = Decoder::new();
    for s in &rec.signals {
        let n = s.samples.len();
        row.samples += n;
        row.raw_bytes += n * bps;
        let (bytes, te, td) =
            theta_signal(&s.samples, width, args.block, args.reps, &mut enc, &mut dec)
                .with_context(|| format!("{}: signal {}", row.file, s.label))?;
        row.theta_bytes += bytes;
        row.times.theta_enc += te;
        row.times.theta_dec += td;

        let stored = peers::stored_bytes(&s.samples, bps);
        let t = cpu_now();
        let z = peers::zstd_encode(&stored)?;
        row.times.zstd_enc += cpu_now() - t;
        row.zstd19_bytes += z.len();
        let mut back = Vec::new();
        row.times.zstd_dec += best_of(args.reps, || {
            peers::zstd_decode(&z, stored.len(), &mut back)
        })?;
        ensure!(back == stored, "zstd round trip differs");

        let t = cpu_now();
        let p = peers::pco_encode(&s.samples)?;
        row.times.pco_enc += cpu_now() - t;
        row.pcodec8_bytes += p.len();
        let mut out = vec![0i32; n];
        row.times.pco_dec += best_of(args.reps, || peers::pco_decode(&p, &mut out))?;
        ensure!(out == s.samples, "pcodec round trip differs");

        if !args.no_flac {
            row.flac8_bytes += peers::flac_size(&s.samples, bps, s.rate_hz)?;
        }
    }
    let (ref_bytes, ref_time) = theta_referenced(&rec, args.block, args.reps)?;
    row.theta_ref_bytes = ref_bytes;
    row.times.theta_ref_dec = ref_time;
    row.finish();
    Ok(row)
}

/// One line of the block-length table.
#[derive(Debug, Clone, Serialize)]
pub struct BlockRow {
    /// Samples per block.
    pub block: usize,
    /// Total raw / Theta bytes over all files.
    pub theta_ratio: f64,
    /// Encode M samples/s.
    pub theta_encode_msps: f64,
    /// Decode M samples/s.
    pub theta_decode_msps: f64,
    /// Modelled CPU milliseconds to decode one viewer page: 64 channels × 30 s at 256 Hz,
    /// at a random offset, so each channel decodes on average `page + block` samples.
    pub page_64ch_256hz_30s_ms: f64,
}

/// Theta alone at several block lengths, over all files.
pub fn block_table(
    files: &[PathBuf],
    sizes: &[usize],
    reps: usize,
) -> anyhow::Result<Vec<BlockRow>> {
    let recs = files
        .iter()
        .map(|p| edf_samples::read_recording(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for &block in sizes {
        let (mut raw, mut bytes, mut n, mut te, mut td) = (0usize, 0usize, 0usize, 0.0, 0.0);
        let mut enc = Encoder::new(EncodeOptions::default());
        let mut dec = Decoder::new();
        for rec in &recs {
            for s in &rec.signals {
                let (b, e, d) =
                    theta_signal(&s.samples, width_of(rec), block, reps, &mut enc, &mut dec)?;
                raw += s.samples.len() * rec.bytes_per_sample();
                bytes += b;
                n += s.samples.len();
                te += e;
                td += d;
            }
        }
        let dec_sps = n as f64 / td;
        let page = 30.0 * 256.0;
        rows.push(BlockRow {
            block,
            theta_ratio: raw as f64 / bytes as f64,
            theta_encode_msps: n as f64 / te / 1e6,
            theta_decode_msps: dec_sps / 1e6,
            page_64ch_256hz_30s_ms: 64.0 * (page + block as f64) / dec_sps * 1e3,
        });
    }
    Ok(rows)
}

/// Runs the subcommand.
pub fn run(args: &CodecsArgs) -> anyhow::Result<()> {
    ensure!(args.block >= 1, "--block must be at least 1");
    let mut args = args.clone();
    if !args.no_flac && !peers::flac_available() {
        eprintln!("flac command not found (apt-get install -y flac): FLAC column skipped");
        args.no_flac = true;
    }
    let files = recordings(&args.dir)?;
    let mut total = Row {
        file: "TOTAL".into(),
        ..Row::default()
    };
    let mut rows = Vec::new();
    for path in &files {
        let row = measure_file(path, &args)?;
        total.add(&row);
        rows.push(row);
    }
    total.finish();
    rows.push(total);
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        print_table(&rows, &args);
    }
    if !args.block_sizes.is_empty() {
        let table = block_table(&files, &args.block_sizes, args.reps)?;
        if args.json {
            for r in &table {
                println!("{}", serde_json::to_string(r)?);
            }
        } else {
            println!();
            println!("Theta block length (all files): ratio, speeds, and a modelled viewer page");
            println!(
                "{:>8} {:>7} {:>9} {:>9} {:>16}",
                "block", "ratio", "enc Msps", "dec Msps", "page ms (64ch)"
            );
            for r in &table {
                println!(
                    "{:>8} {:>7.3} {:>9.1} {:>9.1} {:>16.2}",
                    r.block,
                    r.theta_ratio,
                    r.theta_encode_msps,
                    r.theta_decode_msps,
                    r.page_64ch_256hz_30s_ms
                );
            }
        }
    }
    Ok(())
}

fn print_table(rows: &[Row], args: &CodecsArgs) {
    println!(
        "Codec comparison: ratio = stored bytes / encoded bytes (th+ref: each channel may be coded \
         against an earlier one); speeds in M samples/s of CPU time \
         (one core, best of {}); Theta blocks of {} samples, peers whole signals; {} left out",
        args.reps,
        args.block,
        SYNTHETIC_FILES.join(", ")
    );
    println!(
        "{:<42} {:>10} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} | {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "file",
        "raw bytes",
        "theta",
        "th+ref",
        "zstd19",
        "flac8",
        "pco8",
        "best",
        "th enc",
        "th dec",
        "zs enc",
        "zs dec",
        "pco enc",
        "pco dec"
    );
    for r in rows {
        let mark = if r.theta_ratio >= r.best_peer_ratio {
            ""
        } else {
            " !"
        };
        println!(
            "{:<42} {:>10} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>9} | {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1}{mark}",
            r.file,
            r.raw_bytes,
            r.theta_ratio,
            r.theta_ref_ratio,
            r.zstd19_ratio,
            r.flac8_ratio,
            r.pcodec8_ratio,
            r.best_peer,
            r.theta_encode_msps,
            r.theta_decode_msps,
            r.zstd_encode_msps,
            r.zstd_decode_msps,
            r.pcodec_encode_msps,
            r.pcodec_decode_msps
        );
    }
    if let Some(t) = rows.last() {
        println!(
            "targets: ratio >= best peer on every file ({}), total ratio {:.3} vs pcodec {:.3}; \
             decode {:.1}x pcodec (target 5x); encode {:.2}x pcodec (target 1x)",
            if rows.iter().all(|r| r.theta_ratio >= r.best_peer_ratio) {
                "met"
            } else {
                "NOT met, see !"
            },
            t.theta_ratio,
            t.pcodec8_ratio,
            t.theta_decode_msps / t.pcodec_decode_msps,
            t.theta_encode_msps / t.pcodec_encode_msps
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_real_recording_round_trips_through_theta() {
        let dir = theta_fixtures::shared_eeg_dir();
        let Ok(files) = recordings(&dir) else {
            eprintln!("shared recordings not present; skipping");
            return;
        };
        let mut enc = Encoder::new(EncodeOptions::default());
        let mut dec = Decoder::new();
        for path in files {
            let rec = edf_samples::read_recording(&path).unwrap();
            for s in &rec.signals {
                // theta_signal checks the decoded samples equal the input.
                let (bytes, _, _) = theta_signal(
                    &s.samples,
                    width_of(&rec),
                    DEFAULT_BLOCK,
                    1,
                    &mut enc,
                    &mut dec,
                )
                .unwrap();
                let raw = s.samples.len() * rec.bytes_per_sample();
                assert!(bytes <= raw + 10 * s.samples.len().div_ceil(DEFAULT_BLOCK));
            }
        }
    }
}
