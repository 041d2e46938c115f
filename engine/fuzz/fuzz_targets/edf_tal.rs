//! Arbitrary bytes as the annotation signal of a valid EDF+C header: exercises the TAL parser,
//! record onsets and the sub-second start far more often than random headers would.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use theta_engine::edf::{EdfReader, ReadOptions};

/// Bytes of annotation signal per record (32 samples of 2 bytes).
const RECORD: usize = 64;

fn header() -> Vec<u8> {
    let mut h = Vec::new();
    let mut put = |s: &str, w: usize| {
        h.extend_from_slice(s.as_bytes());
        h.resize(h.len() + w - s.len(), b' ');
    };
    put("0", 8);
    put("X X X X", 80);
    put("Startdate 01-JAN-2020 X X X", 80);
    put("01.01.20", 8);
    put("00.00.00", 8);
    put("512", 8);
    put("EDF+D", 44);
    put("-1", 8);
    put("1", 8);
    put("1", 4);
    put("EDF Annotations", 16);
    put("", 80);
    put("", 8);
    put("-1", 8);
    put("1", 8);
    put("-32768", 8);
    put("32767", 8);
    put("", 80);
    put(&(RECORD / 2).to_string(), 8);
    put("", 32);
    h
}

fuzz_target!(|data: &[u8]| {
    let mut file = header();
    file.extend_from_slice(data);
    for options in [ReadOptions::lenient(), ReadOptions::strict()] {
        match EdfReader::new(Cursor::new(file.as_slice()), options) {
            Ok(reader) => {
                let _ = reader.segments();
                let n = reader.header().n_records;
                let _ = reader.record_onset(n.saturating_sub(1));
                for a in reader.annotations() {
                    assert!(a.onset.is_finite());
                }
            }
            Err(e) => assert!(e.is_input_error(), "not an input error: {e:?}"),
        }
    }
});
