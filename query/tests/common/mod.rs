//! Test-only helpers: a tiny EDF/BDF reader (physical values per signal) until the engine's reader
//! lands on `main`. It trusts its input: only the shared real recordings go through it.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

/// One recording's signals in physical units.
pub struct Recording {
    pub labels: Vec<String>,
    pub fs: Vec<f64>,
    pub signals: Vec<Vec<f64>>,
}

fn field(bytes: &[u8], at: &mut usize, len: usize) -> String {
    let s = String::from_utf8_lossy(&bytes[*at..*at + len])
        .trim()
        .to_string();
    *at += len;
    s
}

/// Read every non-annotation signal of an EDF/BDF file.
pub fn read(path: &Path) -> Recording {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let bdf = bytes[0] == 0xFF;
    let width = if bdf { 3 } else { 2 };
    let mut at = 236;
    let n_records: usize = field(&bytes, &mut at, 8).parse().expect("record count");
    let duration: f64 = field(&bytes, &mut at, 8).parse().expect("record duration");
    let ns: usize = field(&bytes, &mut at, 4).parse().expect("signal count");
    let mut per =
        |len: usize| -> Vec<String> { (0..ns).map(|_| field(&bytes, &mut at, len)).collect() };
    let labels = per(16);
    let _transducer = per(80);
    let _unit = per(8);
    let num =
        |v: Vec<String>| -> Vec<f64> { v.iter().map(|s| s.parse().expect("number")).collect() };
    let pmin = num(per(8));
    let pmax = num(per(8));
    let dmin = num(per(8));
    let dmax = num(per(8));
    let _prefilter = per(80);
    let spr: Vec<usize> = per(8)
        .iter()
        .map(|s| s.parse().expect("samples per record"))
        .collect();
    let header = 256 * (ns + 1);
    let record_len: usize = spr.iter().sum::<usize>() * width;
    let mut signals: Vec<Vec<f64>> = spr
        .iter()
        .map(|n| Vec::with_capacity(n * n_records))
        .collect();
    for r in 0..n_records {
        let mut off = header + r * record_len;
        for s in 0..ns {
            let scale = (pmax[s] - pmin[s]) / (dmax[s] - dmin[s]);
            for _ in 0..spr[s] {
                let b = &bytes[off..off + width];
                let d = if bdf {
                    ((i32::from(b[0]) | i32::from(b[1]) << 8 | i32::from(b[2]) << 16) << 8) >> 8
                } else {
                    i32::from(i16::from_le_bytes([b[0], b[1]]))
                };
                signals[s].push((f64::from(d) - dmin[s]) * scale + pmin[s]);
                off += width;
            }
        }
    }
    let keep: Vec<usize> = (0..ns)
        .filter(|&s| !labels[s].ends_with("Annotations"))
        .collect();
    Recording {
        labels: keep.iter().map(|&s| labels[s].clone()).collect(),
        fs: keep.iter().map(|&s| spr[s] as f64 / duration).collect(),
        signals: keep
            .into_iter()
            .map(|s| std::mem::take(&mut signals[s]))
            .collect(),
    }
}

/// A shared real recording by file name.
pub fn recording(name: &str) -> Recording {
    read(&theta_fixtures::shared_eeg_dir().join(name))
}
