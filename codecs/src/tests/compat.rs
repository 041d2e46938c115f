//! Golden files: one encoded block per corpus case and format version, under `testdata/`.
//!
//! A missing file for the current version is written (run the tests once and commit it); from
//! then on the file is frozen and every later version must decode it to the same samples, so
//! stored recordings stay readable after the encoder changes.

use super::{cases, eeg_like};
use crate::{
    CodecId, FORMAT_VERSION, SampleWidth, decode, decode_referenced_into, encode,
    encode_referenced, inspect,
};

/// The referenced pair: (reference, samples). Its golden block decodes only with the reference.
fn referenced_pair() -> (Vec<i32>, Vec<i32>) {
    let a = eeg_like(8192, SampleWidth::Bits16, 11, 400.0);
    let own = eeg_like(8192, SampleWidth::Bits16, 12, 40.0);
    let b = a
        .iter()
        .zip(&own)
        .map(|(&x, &y)| ((f64::from(x) * 0.8) as i32 + y).clamp(-32768, 32767))
        .collect();
    (a, b)
}

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

#[test]
fn golden_files_of_every_version_decode_to_the_corpus() {
    let dir = golden_dir();
    let corpus = cases();
    // Write what is missing for the current version.
    for (name, width, samples) in &corpus {
        let path = dir.join(format!("v{FORMAT_VERSION}_{name}.bin"));
        if !path.exists() {
            let mut bytes = Vec::new();
            encode(samples, *width, &mut bytes).unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            eprintln!("wrote golden file {}", path.display());
        }
    }
    let (reference, target) = referenced_pair();
    let path = dir.join(format!("v{FORMAT_VERSION}_referenced.bin"));
    if !path.exists() {
        let mut bytes = Vec::new();
        encode_referenced(&target, &reference, SampleWidth::Bits16, &mut bytes).unwrap();
        assert_eq!(inspect(&bytes).unwrap().codec, CodecId::Reference);
        std::fs::write(&path, &bytes).unwrap();
        eprintln!("wrote golden file {}", path.display());
    }
    // Decode every golden file of every version.
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(rest) = file.strip_prefix('v').and_then(|r| r.strip_suffix(".bin")) else {
            continue;
        };
        let (version, name) = rest.split_once('_').expect("v<version>_<case>.bin");
        let version: u8 = version.parse().expect("numeric version");
        if name == "referenced" {
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(inspect(&bytes).unwrap().version, version, "{file}");
            let mut out = vec![0; target.len()];
            decode_referenced_into(&bytes, &reference, &mut out).unwrap();
            assert_eq!(out, target, "{file}");
            continue;
        }
        let (_, width, samples) = corpus
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("{file}: no corpus case {name}"));
        let bytes = std::fs::read(&path).unwrap();
        let info = inspect(&bytes).unwrap();
        assert_eq!(info.version, version, "{file}");
        assert_eq!(info.width, *width, "{file}");
        assert_eq!(&decode(&bytes).unwrap(), samples, "{file}");
        checked += 1;
    }
    assert!(checked >= corpus.len(), "golden files for every case");
}
