//! Hostile input: every strict prefix is `Truncated`; trailing, flipped, random and mutated bytes
//! give errors (or, for some mutations, other valid samples), never a panic or a sample outside
//! the width.

use proptest::prelude::*;

use super::{Rng, cases};
use crate::{Decoder, ErrorKind, SampleWidth, decode, encode, inspect};

fn encoded_corpus() -> Vec<(&'static str, SampleWidth, Vec<u8>)> {
    cases()
        .into_iter()
        .map(|(name, width, samples)| {
            let mut b = Vec::new();
            encode(&samples, width, &mut b).unwrap();
            (name, width, b)
        })
        .collect()
}

/// Decodes and, on success, checks every sample lies in the block's width.
fn decode_checked(bytes: &[u8], dec: &mut Decoder, out: &mut Vec<i32>) -> Result<(), ErrorKind> {
    let n = match crate::decoded_len(bytes) {
        Ok(n) => n,
        Err(e) => return Err(e.kind),
    };
    out.resize(n, 0);
    match dec.decode_into(bytes, out) {
        Ok(got) => {
            let w = inspect(bytes).unwrap().width;
            assert!(out[..got].iter().all(|&v| v >= w.min() && v <= w.max()));
            Ok(())
        }
        Err(e) => Err(e.kind),
    }
}

#[test]
fn every_strict_prefix_is_truncated() {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for (name, _, bytes) in encoded_corpus() {
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_checked(&bytes[..cut], &mut dec, &mut out),
                Err(ErrorKind::Truncated),
                "{name}: prefix of {cut} of {} bytes",
                bytes.len()
            );
        }
    }
}

#[test]
fn trailing_bytes_are_corrupt() {
    for (name, _, mut bytes) in encoded_corpus() {
        bytes.push(0);
        assert_eq!(
            decode(&bytes).unwrap_err().kind,
            ErrorKind::Corrupt,
            "{name}"
        );
    }
}

#[test]
fn unknown_versions_and_tags_are_refused() {
    let mut bytes = Vec::new();
    encode(&[1, 2, 3], SampleWidth::Bits16, &mut bytes).unwrap();
    for v in [0u8, 2, 255] {
        let mut b = bytes.clone();
        b[0] = v;
        assert_eq!(decode(&b).unwrap_err().kind, ErrorKind::UnsupportedVersion);
    }
    for tag in [0x06u8, 0x0F, 0x20, 0x80] {
        let mut b = bytes.clone();
        b[1] = tag;
        assert_eq!(
            decode(&b).unwrap_err().kind,
            ErrorKind::Corrupt,
            "tag {tag:#x}"
        );
    }
    // A reference block cannot be decoded without its reference: a caller error.
    let mut b = bytes.clone();
    b[1] = 0x05;
    assert_eq!(decode(&b).unwrap_err().kind, ErrorKind::InvalidArgument);
}

#[test]
fn huge_declared_lengths_are_refused_before_allocating() {
    // Version 1, constant codec, n = 2^20 + 1 as a varint.
    let b = [1u8, 0x01, 0x81, 0x80, 0x40, 0x00];
    assert_eq!(decode(&b).unwrap_err().kind, ErrorKind::Corrupt);
    // n = 2^20 is allowed and decodes a constant block.
    let b = [1u8, 0x01, 0x80, 0x80, 0x40, 0x02];
    assert_eq!(decode(&b).unwrap().len(), 1 << 20);
}

#[test]
fn every_single_byte_change_is_handled() {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for (_, _, bytes) in encoded_corpus() {
        let step = (bytes.len() / 300).max(1);
        for i in (0..bytes.len()).step_by(step) {
            for delta in [1u8, 0x80, 0xFF] {
                let mut b = bytes.clone();
                b[i] = b[i].wrapping_add(delta);
                let _ = decode_checked(&b, &mut dec, &mut out);
            }
        }
    }
}

#[test]
fn random_bytes_are_handled() {
    let mut rng = Rng::new(99);
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for len in 0..2000 {
        let mut b: Vec<u8> = (0..len % 300).map(|_| rng.next_u64() as u8).collect();
        // Half the time, a valid header so the body parsers are reached.
        if len % 2 == 0 && b.len() > 3 {
            b[0] = 1;
            b[1] &= 0x14;
            b[2] &= 0x7F;
        }
        let _ = decode_checked(&b, &mut dec, &mut out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut out = Vec::new();
        let _ = decode_checked(&bytes, &mut Decoder::new(), &mut out);
    }

    #[test]
    fn mutated_encodings_never_panic(
        case in 0usize..64,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let corpus = encoded_corpus();
        let (_, _, mut bytes) = corpus[case % corpus.len()].clone();
        if !bytes.is_empty() {
            for (at, v) in edits {
                let i = at.index(bytes.len());
                bytes[i] = v;
            }
        }
        let mut out = Vec::new();
        let _ = decode_checked(&bytes, &mut Decoder::new(), &mut out);
    }
}
