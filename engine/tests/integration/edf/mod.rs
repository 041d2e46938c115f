//! EDF/BDF reading and writing against the real recordings in `shared/eeg` and generated ones.

mod golden;
mod robustness;
mod roundtrip;
mod synth;

use std::path::PathBuf;

use theta_engine::edf::{EdfReader, ReadOptions};

/// The real recordings; fails loudly when the shared folder is missing, so a broken checkout
/// cannot pass by testing nothing.
pub(crate) fn real_files() -> Vec<PathBuf> {
    let files = theta_fixtures::real_recordings();
    assert_eq!(
        files.len(),
        16,
        "expected the 16 real recordings in {}",
        theta_fixtures::shared_eeg_dir().display()
    );
    files
}

pub(crate) fn file_name(path: &std::path::Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Digital sum and sum of squares of every data signal, read record by record.
pub(crate) fn sums<R: std::io::Read + std::io::Seek>(
    reader: &mut EdfReader<R>,
) -> Vec<(i128, i128)> {
    let mut out = vec![(0i128, 0i128); reader.header().signals.len()];
    let mut buf = reader.record_buf();
    reader.seek_record(0);
    while reader.next_record(&mut buf).unwrap() {
        for (i, o) in out.iter_mut().enumerate() {
            for &v in buf.signal(i) {
                o.0 += i128::from(v);
                o.1 += i128::from(v) * i128::from(v);
            }
        }
    }
    out
}

pub(crate) fn open(path: &std::path::Path) -> EdfReader<std::fs::File> {
    EdfReader::open(path, ReadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
