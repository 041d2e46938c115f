//! Arbitrary samples: the first byte picks the width, the rest are little-endian samples
//! (wrapped into the width). Encoding then decoding must give them back exactly, within the
//! published worst-case size, and every strict prefix of the encoding must be `Truncated`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use theta_codecs::{ErrorKind, SampleWidth, decode, encode, max_encoded_len};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let (width, bytes) = if head & 1 == 0 {
        (SampleWidth::Bits16, 2)
    } else {
        (SampleWidth::Bits24, 3)
    };
    let samples: Vec<i32> = rest
        .chunks_exact(bytes)
        .map(|c| {
            let mut b = [0u8; 4];
            b[4 - bytes..].copy_from_slice(c);
            i32::from_le_bytes(b) >> (32 - 8 * bytes)
        })
        .collect();
    let mut enc = Vec::new();
    encode(&samples, width, &mut enc).expect("samples are within the width");
    assert!(enc.len() <= max_encoded_len(samples.len(), width));
    assert_eq!(decode(&enc).expect("own encoding decodes"), samples);
    // Prefixes: a sample of cut points keeps each run fast.
    let step = (enc.len() / 64).max(1);
    for cut in (0..enc.len()).step_by(step) {
        assert_eq!(decode(&enc[..cut]).unwrap_err().kind, ErrorKind::Truncated);
    }
});
