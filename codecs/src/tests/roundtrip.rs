//! Exact round trips: the corpus, both instruction-set paths, the size guarantee, and property
//! tests over arbitrary samples.

use proptest::prelude::*;

use super::cases;
use crate::block::{self, CodecId, DecodeScratch};
use crate::dispatch::Isa;
use crate::{
    Decoder, EncodeOptions, ErrorKind, SampleWidth, decode, decode_into, decoded_len, encode,
    encode_with, inspect, max_encoded_len,
};

fn round_trip(samples: &[i32], width: SampleWidth) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode(samples, width, &mut bytes).unwrap();
    assert!(
        bytes.len() <= max_encoded_len(samples.len(), width),
        "{} bytes > bound {}",
        bytes.len(),
        max_encoded_len(samples.len(), width)
    );
    assert_eq!(decoded_len(&bytes).unwrap(), samples.len());
    assert_eq!(decode(&bytes).unwrap(), samples);
    // Every code path (AVX-512 where present, AVX2, portable), into a larger buffer.
    for isa in [
        Isa::detect(),
        Isa::detect().without_avx512(),
        Isa::baseline(),
    ] {
        let mut out = vec![i32::MIN; samples.len() + 3];
        let n = block::decode(&bytes, &mut out, &mut DecodeScratch::default(), isa).unwrap();
        assert_eq!(&out[..n], samples);
        assert_eq!(&out[n..], &[i32::MIN; 3], "nothing written past the block");
    }
    bytes
}

#[test]
fn corpus_round_trips_exactly() {
    let mut seen = std::collections::HashSet::new();
    for (name, width, samples) in cases() {
        let bytes = round_trip(&samples, width);
        let info = inspect(&bytes).unwrap();
        assert_eq!(info.width, width, "{name}");
        seen.insert(info.codec);
        eprintln!(
            "{name}: {} samples -> {} bytes ({:?})",
            samples.len(),
            bytes.len(),
            info.codec
        );
    }
    for codec in [
        CodecId::Verbatim,
        CodecId::Constant,
        CodecId::Predictive,
        CodecId::Runs,
        CodecId::Zstd,
    ] {
        assert!(seen.contains(&codec), "corpus never chose {codec:?}");
    }
}

#[test]
fn incompressible_input_grows_by_at_most_the_header() {
    for (name, width, samples) in cases() {
        if !name.starts_with("white_noise") {
            continue;
        }
        let mut bytes = Vec::new();
        encode(&samples, width, &mut bytes).unwrap();
        let raw = samples.len() * width.bytes();
        assert!(
            bytes.len() <= raw + 10,
            "{name}: {} > {raw} + 10",
            bytes.len()
        );
    }
}

#[test]
fn compressible_cases_actually_compress() {
    for (name, width, samples) in cases() {
        let mut bytes = Vec::new();
        encode(&samples, width, &mut bytes).unwrap();
        let raw = samples.len() * width.bytes();
        let limit = match name {
            "constant" | "constant_min24" | "status_steps" | "ramp" => raw / 100,
            "eeg16" | "lattice_40_96" | "sample_and_hold" | "multiples_of_4" => raw / 2,
            "eeg24" => raw * 2 / 3,
            _ => continue,
        };
        assert!(
            bytes.len() <= limit.max(8),
            "{name}: {} bytes of {raw}",
            bytes.len()
        );
    }
}

#[test]
fn every_option_set_round_trips() {
    let opts = [
        EncodeOptions::default(),
        EncodeOptions {
            max_lpc_order: 0,
            ..Default::default()
        },
        EncodeOptions {
            max_lpc_order: 32,
            segmented_lpc: false,
            zstd_fallback: false,
            zstd_level: 1,
        },
    ];
    for o in &opts {
        for (_, width, samples) in cases() {
            let mut bytes = Vec::new();
            encode_with(&samples, width, o, &mut bytes).unwrap();
            assert_eq!(decode(&bytes).unwrap(), samples);
        }
    }
}

#[test]
fn rejects_samples_outside_the_width_and_oversized_blocks() {
    let mut out = Vec::new();
    for (width, bad) in [
        (SampleWidth::Bits16, 32_768),
        (SampleWidth::Bits16, -32_769),
        (SampleWidth::Bits24, 1 << 23),
        (SampleWidth::Bits24, -(1 << 23) - 1),
    ] {
        let e = encode(&[0, bad], width, &mut out).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(
            !e.message.contains(&bad.to_string()),
            "no sample values in messages"
        );
    }
    let e = encode(
        &vec![0; crate::MAX_BLOCK_SAMPLES + 1],
        SampleWidth::Bits16,
        &mut out,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(out.is_empty(), "nothing written on error");
}

#[test]
fn decode_into_a_short_buffer_is_an_invalid_argument() {
    let mut bytes = Vec::new();
    encode(&[1, 2, 3, 4], SampleWidth::Bits16, &mut bytes).unwrap();
    let mut out = [0; 3];
    assert_eq!(
        decode_into(&bytes, &mut out).unwrap_err().kind,
        ErrorKind::InvalidArgument
    );
}

#[test]
fn reused_encoder_and_decoder_match_fresh_ones() {
    let mut enc = crate::Encoder::default();
    let mut dec = Decoder::new();
    for (_, width, samples) in cases() {
        let mut a = Vec::new();
        enc.encode(&samples, width, &mut a).unwrap();
        let mut b = Vec::new();
        encode(&samples, width, &mut b).unwrap();
        assert_eq!(
            a, b,
            "the encoder is deterministic and keeps no state between blocks"
        );
        let mut out = vec![0; samples.len()];
        dec.decode_into(&a, &mut out).unwrap();
        assert_eq!(out, samples);
    }
}

fn width_strategy() -> impl Strategy<Value = SampleWidth> {
    prop_oneof![Just(SampleWidth::Bits16), Just(SampleWidth::Bits24)]
}

/// Samples in the width, drawn in ways that reach different codecs: uniform, random walks,
/// small alphabets, runs.
fn samples_strategy() -> impl Strategy<Value = (SampleWidth, Vec<i32>)> {
    width_strategy().prop_flat_map(|w| {
        let (lo, hi) = (w.min(), w.max());
        let uniform = prop::collection::vec(lo..=hi, 0..600).boxed();
        let walk = (lo..=hi, prop::collection::vec(-300i32..=300, 0..3000))
            .prop_map(move |(start, steps)| {
                let mut x = start;
                steps
                    .into_iter()
                    .map(|s| {
                        x = (x + s).clamp(lo, hi);
                        x
                    })
                    .collect()
            })
            .boxed();
        let alphabet = (
            prop::collection::vec(lo..=hi, 1..6),
            prop::collection::vec(0usize..6, 0..2000),
        )
            .prop_map(|(values, idx)| idx.into_iter().map(|i| values[i % values.len()]).collect())
            .boxed();
        let runs = prop::collection::vec((lo..=hi, 1usize..50), 0..80)
            .prop_map(|r| {
                r.into_iter()
                    .flat_map(|(v, n)| std::iter::repeat_n(v, n))
                    .collect()
            })
            .boxed();
        prop_oneof![uniform, walk, alphabet, runs].prop_map(move |s| (w, s))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_samples_round_trip((width, samples) in samples_strategy()) {
        let mut bytes = Vec::new();
        encode(&samples, width, &mut bytes).unwrap();
        prop_assert!(bytes.len() <= max_encoded_len(samples.len(), width));
        prop_assert_eq!(decode(&bytes).unwrap(), samples.clone());
        let mut out = vec![0; samples.len()];
        let n = block::decode(&bytes, &mut out, &mut DecodeScratch::default(), Isa::baseline())
            .unwrap();
        prop_assert_eq!(&out[..n], &samples[..]);
    }
}

#[test]
fn format_md_examples_decode_as_documented() {
    assert_eq!(
        decode(&[0x01, 0x00, 0x03, 0x03, 0x03, 0x43, 0x01]).unwrap(),
        [1, -2, 3]
    );
    assert_eq!(decode(&[0x01, 0x01, 0x03, 0x0A]).unwrap(), [5, 5, 5]);
    // Non-zero padding after the verbatim values is corrupt.
    assert_eq!(
        decode(&[0x01, 0x00, 0x03, 0x03, 0x03, 0x43, 0x03])
            .unwrap_err()
            .kind,
        ErrorKind::Corrupt
    );
}

#[test]
fn referenced_blocks_round_trip_and_need_their_reference() {
    use crate::{decode_referenced_into, encode_referenced};
    let a = super::eeg_like(8192, SampleWidth::Bits16, 11, 400.0);
    let own = super::eeg_like(8192, SampleWidth::Bits16, 12, 40.0);
    // A channel sharing most of its signal with `a` (a common reference electrode).
    let b: Vec<i32> = a
        .iter()
        .zip(&own)
        .map(|(&x, &y)| ((f64::from(x) * 0.8) as i32 + y).clamp(-32768, 32767))
        .collect();
    let mut alone = Vec::new();
    encode(&b, SampleWidth::Bits16, &mut alone).unwrap();
    let mut with = Vec::new();
    encode_referenced(&b, &a, SampleWidth::Bits16, &mut with).unwrap();
    assert_eq!(inspect(&with).unwrap().codec, CodecId::Reference);
    assert!(
        with.len() * 10 < alone.len() * 9,
        "{} vs {}",
        with.len(),
        alone.len()
    );
    let mut out = vec![0; b.len()];
    decode_referenced_into(&with, &a, &mut out).unwrap();
    assert_eq!(out, b);
    assert_eq!(decode(&with).unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(
        decode_referenced_into(&with, &a[1..], &mut out)
            .unwrap_err()
            .kind,
        ErrorKind::InvalidArgument
    );
    // Unrelated reference: coded alone, decodable with or without it.
    let noise: Vec<i32> = (0..8192).map(|i| (i * 7919 % 201) - 100).collect();
    let mut c = Vec::new();
    encode_referenced(&own, &noise, SampleWidth::Bits16, &mut c).unwrap();
    assert_ne!(inspect(&c).unwrap().codec, CodecId::Reference);
    assert_eq!(decode(&c).unwrap(), own);
    // Every strict prefix is truncated.
    for cut in 0..with.len() {
        assert_eq!(
            decode_referenced_into(&with[..cut], &a, &mut out)
                .unwrap_err()
                .kind,
            ErrorKind::Truncated
        );
    }
}
