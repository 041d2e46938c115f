//! Generated recordings (the fixtures crate's own, independent EDF writer) read back by the
//! engine: a cross-check of reader and generator.

use std::io::Cursor;

use theta_engine::edf::{EdfReader, Format, ReadOptions};
use theta_fixtures::{Gap, SynthAnnotation, SynthFormat, SynthSpec, write_synth};

use super::sums;

fn generate(spec: &SynthSpec) -> (theta_fixtures::SynthSummary, EdfReader<Cursor<Vec<u8>>>) {
    let mut bytes = Vec::new();
    let summary = write_synth(spec, &mut bytes).unwrap();
    // Generated files are standard: strict mode reads them without a single leniency.
    let reader = EdfReader::new(Cursor::new(bytes), ReadOptions::strict()).unwrap();
    (summary, reader)
}

fn check_samples(summary: &theta_fixtures::SynthSummary, reader: &mut EdfReader<Cursor<Vec<u8>>>) {
    let got = sums(reader);
    for (k, (sum, square)) in got.iter().enumerate() {
        assert_eq!(*sum, summary.digital_sums[k], "channel {k} sum");
        assert_eq!(
            *square, summary.digital_sums_of_squares[k],
            "channel {k} squares"
        );
        let mut first = vec![0; 16];
        reader.read_digital(k, 0, &mut first).unwrap();
        assert_eq!(first, summary.first_samples[k], "channel {k} first samples");
    }
}

#[test]
fn edf_plus_c_with_annotations() {
    let spec = SynthSpec {
        seed: 7,
        n_channels: 21,
        duration: 120.0,
        annotations: vec![
            SynthAnnotation {
                onset: 0.0,
                duration: None,
                text: "recording start".into(),
            },
            SynthAnnotation {
                onset: 30.25,
                duration: Some(10.0),
                text: "eyes closed".into(),
            },
            SynthAnnotation {
                onset: 30.5,
                duration: None,
                text: "photic 10 Hz é".into(),
            },
        ],
        ..SynthSpec::default()
    };
    let (summary, mut reader) = generate(&spec);
    let h = reader.header().clone();
    assert_eq!(h.format, Format::EdfPlusC);
    assert_eq!(h.n_records, 120);
    assert_eq!(h.signals.len(), 21);
    assert_eq!(h.start.to_string(), "2024-01-15 09:30:00");
    for (s, label) in h.signals.iter().zip(&summary.labels) {
        assert_eq!(&s.label, label);
        assert_eq!(s.channel_type.as_str(), "EEG");
    }
    let names: Vec<_> = h
        .signals
        .iter()
        .map(|s| s.normalized_label.clone().unwrap())
        .collect();
    assert_eq!(&names[..4], ["Fp1", "Fp2", "F3", "F4"]);
    assert_eq!(names[12], "T7");
    let ann = reader.annotations();
    assert_eq!(ann.len(), 3);
    assert_eq!(ann[1].onset, 30.25);
    assert_eq!(ann[1].duration, Some(10.0));
    assert_eq!(ann[2].text, "photic 10 Hz é");
    assert!(!reader.has_gaps());
    check_samples(&summary, &mut reader);
}

#[test]
fn bdf_plus_d_with_gaps() {
    let spec = SynthSpec {
        seed: 3,
        format: SynthFormat::Bdf,
        n_channels: 8,
        sample_rate: 512.0,
        record_duration: 0.5,
        duration: 30.0,
        gaps: vec![
            Gap {
                after_record: 9,
                seconds: 12.5,
            },
            Gap {
                after_record: 40,
                seconds: 0.25,
            },
        ],
        ..SynthSpec::default()
    };
    let (summary, mut reader) = generate(&spec);
    assert_eq!(reader.header().format, Format::BdfPlusD);
    let segments = reader.segments();
    assert_eq!(segments.len(), 3, "{segments:?}");
    assert_eq!((segments[1].first_record, segments[1].onset), (10, 17.5));
    assert_eq!((segments[2].first_record, segments[2].onset), (41, 33.25));
    assert_eq!(reader.record_onset(42), Some(33.75));
    // A sample in the second run is placed after the gap.
    assert_eq!(reader.sample_time(0, 10 * 256 + 128), Some(17.75));
    check_samples(&summary, &mut reader);
}

#[test]
fn plain_edf_with_non_integer_rate() {
    let spec = SynthSpec {
        plus: false,
        n_channels: 2,
        sample_rate: 12.8,
        record_duration: 10.0,
        duration: 100.0,
        ..SynthSpec::default()
    };
    let (summary, mut reader) = generate(&spec);
    assert_eq!(reader.header().format, Format::Edf);
    assert_eq!(reader.header().sample_rate(0), 12.8);
    assert_eq!(reader.header().n_samples(1), 1280);
    check_samples(&summary, &mut reader);
}

#[test]
fn flat_and_saturated_stretches_are_present() {
    let spec = SynthSpec {
        seed: 11,
        n_channels: 6,
        duration: 300.0,
        ..SynthSpec::default()
    };
    let (summary, mut reader) = generate(&spec);
    let (_, dmax) = summary.digital_range;
    let mut flat_run = 0usize;
    let mut saturated_run = 0usize;
    for k in 0..6 {
        let n = reader.header().n_samples(k) as usize;
        let mut all = vec![0; n];
        reader.read_digital(k, 0, &mut all).unwrap();
        let longest = |pred: &dyn Fn(i32) -> bool| {
            all.iter()
                .fold((0usize, 0usize), |(best, cur), &v| {
                    let cur = if pred(v) { cur + 1 } else { 0 };
                    (best.max(cur), cur)
                })
                .0
        };
        flat_run = flat_run.max(longest(&|v| v == 0));
        saturated_run = saturated_run.max(longest(&|v| v == dmax));
    }
    // Five seconds flat and three saturated, at 256 Hz.
    assert!(flat_run >= 5 * 256 - 1, "{flat_run}");
    assert!(saturated_run >= 3 * 256 - 1, "{saturated_run}");
}

/// The engine's writer re-writes a generated file sample for sample.
#[test]
fn engine_writer_round_trips_generated_files() {
    let spec = SynthSpec {
        seed: 5,
        format: SynthFormat::Bdf,
        n_channels: 4,
        duration: 20.0,
        gaps: vec![Gap {
            after_record: 4,
            seconds: 3.0,
        }],
        annotations: vec![SynthAnnotation {
            onset: 1.5,
            duration: Some(0.5),
            text: "spike".into(),
        }],
        ..SynthSpec::default()
    };
    let (summary, mut reader) = generate(&spec);
    let bytes = super::roundtrip::rewrite(&mut reader);
    let mut copy = EdfReader::new(Cursor::new(bytes), ReadOptions::strict()).unwrap();
    assert_eq!(copy.segments(), reader.segments());
    assert_eq!(copy.annotations(), reader.annotations());
    check_samples(&summary, &mut copy);
}
