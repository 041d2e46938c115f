//! Arbitrary bytes as an EDF/BDF file: the reader returns a value or an input error, never
//! panics. Seed with the real recordings: `cargo fuzz run -s none edf_reader fuzz/corpus
//! ../../shared/eeg`.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use theta_engine::edf::{EdfReader, ReadOptions};

fuzz_target!(|data: &[u8]| {
    for options in [ReadOptions::lenient(), ReadOptions::strict()] {
        match EdfReader::new(Cursor::new(data), options) {
            Ok(mut reader) => {
                let mut buf = reader.record_buf();
                while let Ok(true) = reader.next_record(&mut buf) {}
                let mut out = [0f64; 64];
                for k in 0..reader.header().signals.len() {
                    let n = reader.header().n_samples(k);
                    let _ = reader.read_physical(k, n / 2, &mut out);
                }
            }
            Err(e) => assert!(e.is_input_error(), "not an input error: {e:?}"),
        }
    }
});
