//! Hostile bytes: decoding must return `Ok` (with samples inside the declared width) or one of
//! the documented error kinds, and never panic, read out of bounds or allocate beyond the
//! checked sample count. Inputs that start like a valid block reach the body parsers, so the
//! corpus grows from encodings of real-looking blocks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use theta_codecs::{CodecId, Decoder, ErrorKind, decoded_len, inspect};

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new();
    let n = match decoded_len(data) {
        Ok(n) => n,
        Err(e) => {
            assert!(matches!(
                e.kind,
                ErrorKind::Truncated | ErrorKind::Corrupt | ErrorKind::UnsupportedVersion
            ));
            return;
        }
    };
    let mut out = vec![0i32; n];
    let referenced = inspect(data).expect("header parsed above").codec == CodecId::Reference;
    // Reference blocks decode against another channel; any in-range samples will do here.
    let reference: Vec<i32> = (0..n as i32).map(|i| (i % 2001) - 1000).collect();
    let result = if referenced {
        decoder.decode_referenced_into(data, &reference, &mut out)
    } else {
        decoder.decode_into(data, &mut out)
    };
    match result {
        Ok(got) => {
            assert_eq!(got, n);
            let w = inspect(data).expect("header parsed above").width;
            assert!(out.iter().all(|&v| v >= w.min() && v <= w.max()));
        }
        Err(e) => assert!(
            matches!(e.kind, ErrorKind::Truncated | ErrorKind::Corrupt),
            "unexpected {e}"
        ),
    }
    // A buffer one sample short is always refused as a caller error (or the input as bad).
    if n > 0 && !referenced {
        let mut short = vec![0i32; n - 1];
        let e = decoder.decode_into(data, &mut short).unwrap_err();
        assert!(matches!(
            e.kind,
            ErrorKind::InvalidArgument | ErrorKind::Truncated | ErrorKind::Corrupt
        ));
    }
});
