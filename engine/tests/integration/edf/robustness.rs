//! Hostile input: truncated, spliced and mutated real files. Every outcome is a value or a
//! clean error, never a panic; no allocation follows a lying header.

use std::io::Cursor;

use proptest::prelude::*;
use theta_engine::edf::{EdfError, EdfReader, ReadOptions};

use super::real_files;

/// Real files small enough to mutate quickly (all but the largest few).
fn corpus() -> Vec<Vec<u8>> {
    real_files()
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .filter(|b| b.len() <= 1 << 20)
        .collect()
}

/// Opens and reads everything a caller could read; returns the error if any.
fn exercise(bytes: Vec<u8>, strict: bool) -> Result<(), EdfError> {
    let options = if strict {
        ReadOptions::strict()
    } else {
        ReadOptions::default()
    };
    let mut reader = EdfReader::new(Cursor::new(bytes), options)?;
    let h = reader.header().clone();
    // Bounded by what the file can hold: nothing was invented.
    assert!(reader.annotations().len() as u64 <= h.header_bytes + h.n_records * h.record_bytes);
    let mut buf = reader.record_buf();
    while reader.next_record(&mut buf)? {}
    let mut out = vec![0i32; 700];
    let mut phys = vec![0f64; 700];
    for k in 0..h.signals.len() {
        let n = h.n_samples(k);
        reader.read_digital(k, 0, &mut out)?;
        reader.read_digital(k, n / 2, &mut out)?;
        reader.read_physical(k, n.saturating_sub(10), &mut phys)?;
        let _ = reader.sample_time(k, n.saturating_sub(1));
    }
    let _ = reader.segments();
    Ok(())
}

fn check(bytes: Vec<u8>) {
    for strict in [false, true] {
        if let Err(e) = exercise(bytes.clone(), strict) {
            // Input errors only: I/O over an in-memory cursor cannot fail, and the reader
            // never blames the caller for a bad file.
            assert!(e.is_input_error(), "unexpected error kind: {e:?}");
            let msg = e.to_string();
            assert!(!msg.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn truncated_files_are_clean(file in any::<prop::sample::Index>(), cut in 0.0f64..1.0) {
        let files = corpus();
        let bytes = &files[file.index(files.len())];
        let at = (cut * bytes.len() as f64) as usize;
        check(bytes[..at].to_vec());
    }

    #[test]
    fn mutated_headers_are_clean(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..8),
    ) {
        let files = corpus();
        let mut bytes = files[file.index(files.len())].clone();
        let header = bytes.len().min(256 * 8);
        for (pos, value) in edits {
            bytes[(pos * header as f64) as usize] = value;
        }
        check(bytes);
    }

    #[test]
    fn header_fields_replaced_with_text(
        file in any::<prop::sample::Index>(),
        field in prop::sample::select(vec![(184usize, 8usize), (236, 8), (244, 8), (252, 4), (168, 8), (176, 8), (192, 44)]),
        text in "[ 0-9+.eE,-]{0,8}|-1|99999999|0|  1",
    ) {
        let files = corpus();
        let mut bytes = files[file.index(files.len())].clone();
        let mut value = text.into_bytes();
        value.resize(field.1, b' ');
        bytes[field.0..field.0 + field.1].copy_from_slice(&value[..field.1]);
        check(bytes);
    }

    #[test]
    fn signal_headers_mutated(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec((0.0f64..1.0, "[ 0-9a-zA-Z+.-]{1,8}"), 1..6),
    ) {
        let files = corpus();
        let mut bytes = files[file.index(files.len())].clone();
        let header_end = std::str::from_utf8(&bytes[184..192]).unwrap().trim().parse::<usize>().unwrap();
        for (pos, text) in edits {
            let at = 256 + (pos * (header_end - 256) as f64) as usize;
            let end = (at + text.len()).min(header_end);
            bytes[at..end].copy_from_slice(&text.as_bytes()[..end - at]);
        }
        check(bytes);
    }

    #[test]
    fn records_mutated(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..64),
    ) {
        let files = corpus();
        let mut bytes = files[file.index(files.len())].clone();
        let len = bytes.len();
        for (pos, value) in edits {
            bytes[((pos * len as f64) as usize).min(len - 1)] = value;
        }
        check(bytes);
    }

    #[test]
    fn files_spliced(
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        cut_a in 0.0f64..1.0,
        cut_b in 0.0f64..1.0,
    ) {
        let files = corpus();
        let (x, y) = (&files[a.index(files.len())], &files[b.index(files.len())]);
        let mut bytes = x[..(cut_a * x.len() as f64) as usize].to_vec();
        bytes.extend_from_slice(&y[(cut_b * y.len() as f64) as usize..]);
        check(bytes);
    }
}

/// A header announcing absurd counts in a small file fails fast, before allocating for them.
#[test]
fn absurd_counts_fail_before_allocating() {
    let files = corpus();
    let mut bytes = files[0].clone();
    bytes[252..256].copy_from_slice(b"9999");
    let err = EdfReader::new(Cursor::new(bytes), ReadOptions::default()).unwrap_err();
    assert!(
        matches!(err, EdfError::Malformed { ref field, offset: 252, .. } if field == "number of signals"),
        "{err}"
    );

    let mut bytes = files[0].clone();
    let ns: usize = std::str::from_utf8(&bytes[252..256])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let spr_at = 256 + ns * (16 + 80 + 8 * 5 + 80);
    bytes[spr_at..spr_at + 8].copy_from_slice(b"99999999");
    let err = EdfReader::new(Cursor::new(bytes), ReadOptions::default()).unwrap_err();
    assert!(err.is_input_error(), "{err}");
    let mut bytes = files[0].clone();
    bytes[236..244].copy_from_slice(b"99999999");
    // A record count larger than the file is a leniency: the records present are read.
    let reader = EdfReader::new(Cursor::new(bytes.clone()), ReadOptions::default()).unwrap();
    assert!(
        reader
            .warnings()
            .iter()
            .any(|w| w.kind() == "record_count_mismatch")
    );
    assert!(EdfReader::new(Cursor::new(bytes), ReadOptions::strict()).is_err());
}

/// Errors name the field and the byte offset, and never quote header text.
#[test]
fn errors_name_field_and_offset() {
    let files = corpus();
    let mut bytes = files[0].clone();
    bytes[244..252].copy_from_slice(b"abc     ");
    let err = EdfReader::new(Cursor::new(bytes), ReadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("duration of a data record") && msg.contains("244"),
        "{msg}"
    );
    assert!(!msg.contains("abc"), "{msg}");
}

/// Found by `header_fields_replaced_with_text`: a record duration of 2.31e9 s passed the field's
/// own check, and the onset of a later record (records × duration in nanoseconds) overflowed.
/// Such a file is refused at open, naming the field.
#[test]
fn record_times_beyond_the_timeline_are_refused() {
    for file in corpus() {
        let mut bytes = file.clone();
        bytes[244..252].copy_from_slice(b"231E7   ");
        let n_records: u64 = std::str::from_utf8(&bytes[236..244])
            .unwrap()
            .trim()
            .parse()
            .unwrap_or(0);
        match EdfReader::new(Cursor::new(bytes), ReadOptions::default()) {
            Ok(r) => {
                assert!(
                    n_records <= 3,
                    "{n_records} records of 2.31e9 s were accepted"
                );
                for k in 0..r.header().n_records {
                    let _ = r.record_onset(k);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("duration of a data record"), "{msg}");
            }
        }
    }
}
