//! The peers Theta's codec is measured against, each fed one channel's digital samples exactly as
//! stored (16-bit EDF, 24-bit BDF): zstd level 19 on the stored little-endian bytes, pcodec level 8
//! through the `pco` crate, and FLAC level 8 through the real libFLAC `flac` command.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, bail, ensure};

/// zstd compression level used for the peer (the usual "max before ultra" setting).
pub const ZSTD_LEVEL: i32 = 19;
/// pcodec compression level used for the peer (its documented default is 8).
pub const PCO_LEVEL: usize = 8;

/// Samples as the stored little-endian bytes: 2 bytes each for EDF, 3 for BDF.
pub fn stored_bytes(samples: &[i32], bytes_per_sample: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * bytes_per_sample);
    for &s in samples {
        out.extend_from_slice(&s.to_le_bytes()[..bytes_per_sample]);
    }
    out
}

/// Compresses stored bytes with zstd level 19.
pub fn zstd_encode(stored: &[u8]) -> anyhow::Result<Vec<u8>> {
    zstd::bulk::compress(stored, ZSTD_LEVEL).context("zstd compress")
}

/// Decompresses a zstd frame back into stored bytes (capacity known from the raw size).
pub fn zstd_decode(encoded: &[u8], raw_len: usize, out: &mut Vec<u8>) -> anyhow::Result<()> {
    out.clear();
    let mut d = zstd::bulk::Decompressor::new()?;
    out.reserve(raw_len);
    d.decompress_to_buffer(encoded, out)
        .context("zstd decompress")?;
    ensure!(out.len() == raw_len, "zstd round trip length");
    Ok(())
}

/// Compresses samples with pcodec level 8 (standalone format, one chunk).
pub fn pco_encode(samples: &[i32]) -> anyhow::Result<Vec<u8>> {
    let config = pco::ChunkConfig::default().with_compression_level(PCO_LEVEL);
    pco::standalone::simple_compress(samples, &config).context("pco compress")
}

/// Decompresses pcodec bytes into the caller's buffer.
pub fn pco_decode(encoded: &[u8], out: &mut [i32]) -> anyhow::Result<()> {
    let progress =
        pco::standalone::simple_decompress_into(encoded, out).context("pco decompress")?;
    ensure!(progress.n_processed == out.len(), "pco round trip length");
    Ok(())
}

/// Whether the `flac` command (libFLAC's reference encoder) is installed.
pub fn flac_available() -> bool {
    Command::new("flac")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// FLAC level 8 size of one channel, through libFLAC's `flac` command.
///
/// The stream is fed as raw mono PCM at the channel's own rate (FLAC stores the rate but does not
/// use it to compress). The size counts the whole `.flac` stream minus padding and seek table,
/// which `flac` adds by default for editing and seeking, not compression: the `fLaC` marker,
/// STREAMINFO and the VORBIS_COMMENT block (vendor string) stay in.
pub fn flac_size(samples: &[i32], bytes_per_sample: usize, rate_hz: f64) -> anyhow::Result<usize> {
    if samples.is_empty() {
        return Ok(0);
    }
    // FLAC needs an integer rate of at least 1 Hz; the rate does not influence compression.
    let rate = (rate_hz.round() as u64).clamp(1, 655_350);
    let bps = 8 * bytes_per_sample;
    let mut child = Command::new("flac")
        .args([
            "-8",
            "--silent",
            "--force-raw-format",
            "--endian=little",
            "--sign=signed",
            "--channels=1",
            "--no-padding",
            "--no-seektable",
        ])
        .arg(format!("--bps={bps}"))
        .arg(format!("--sample-rate={rate}"))
        .args(["--stdout", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running flac (apt-get install -y flac)")?;
    let input = stored_bytes(samples, bytes_per_sample);
    let mut stdin = child.stdin.take().context("flac stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().context("flac output")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("flac writer thread panicked"))?
        .context("writing to flac")?;
    if !output.status.success() {
        bail!(
            "flac failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout.len())
}

/// The Python peers' interpreter, `benches/peers/.venv/bin/python`: the venv is created with
/// `python3 -m venv` on first use, and every `(module, pip package)` it cannot import yet is
/// installed with pip, so a fresh checkout runs the peers with nothing set up by hand.
///
/// # Errors
/// `python3` or pip failing (no network to PyPI, no `python3-venv`).
pub fn peer_python(modules: &[(&str, &str)]) -> anyhow::Result<std::path::PathBuf> {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/.venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        // A link left to a venv that is gone (a removed worktree) is replaced; a folder without
        // an interpreter is not ours to delete.
        if venv
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            std::fs::remove_file(&venv).context("removing the dangling venv link")?;
        }
        ensure!(
            !venv.exists(),
            "{} exists but has no bin/python: delete it to let the bench recreate it",
            venv.display()
        );
        eprintln!("creating {} …", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("python3 -m venv (Debian: apt-get install python3-venv)")?
            .success();
        ensure!(ok, "python3 -m venv {} failed", venv.display());
    }
    let missing: Vec<&str> = modules
        .iter()
        .filter(|(module, _)| {
            !Command::new(&python)
                .args(["-c", &format!("import {module}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        eprintln!("installing the Python peers: {} …", missing.join(" "));
        let ok = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(&missing)
            .status()
            .context("pip install")?
            .success();
        ensure!(ok, "pip install {} failed", missing.join(" "));
    }
    Ok(python)
}
