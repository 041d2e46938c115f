//! Every real recording written back with `EdfWriter` and read again: identical digital
//! samples, signal headers, annotations, start and record onsets.

use std::io::Cursor;

use theta_engine::edf::{EdfReader, EdfWriterBuilder, ReadOptions};

use super::{file_name, open, real_files};

/// Reads `reader` completely into an in-memory EDF written by `EdfWriter`.
pub(crate) fn rewrite<R: std::io::Read + std::io::Seek>(reader: &mut EdfReader<R>) -> Vec<u8> {
    let mut writer = EdfWriterBuilder::from_header(reader.header())
        .with_annotations(reader.annotations().to_vec())
        .build(Cursor::new(Vec::new()))
        .unwrap();
    let mut buf = reader.record_buf();
    reader.seek_record(0);
    while reader.next_record(&mut buf).unwrap() {
        let signals: Vec<&[i32]> = (0..buf.n_signals()).map(|k| buf.signal(k)).collect();
        writer.write_record_at(buf.onset(), &signals).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn all_samples<R: std::io::Read + std::io::Seek>(reader: &mut EdfReader<R>) -> Vec<Vec<i32>> {
    let mut out = vec![Vec::new(); reader.header().signals.len()];
    let mut buf = reader.record_buf();
    reader.seek_record(0);
    while reader.next_record(&mut buf).unwrap() {
        for (k, o) in out.iter_mut().enumerate() {
            o.extend_from_slice(buf.signal(k));
        }
    }
    out
}

#[test]
fn real_files_round_trip() {
    for path in real_files() {
        let name = file_name(&path);
        let mut original = open(&path);
        let bytes = rewrite(&mut original);
        let mut copy = EdfReader::new(Cursor::new(bytes), ReadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: re-read: {e}"));
        let (a, b) = (original.header(), copy.header());
        assert_eq!(a.format, b.format, "{name}");
        assert_eq!(a.patient, b.patient, "{name}");
        assert_eq!(a.recording, b.recording, "{name}");
        assert_eq!(a.patient_info, b.patient_info, "{name}");
        assert_eq!(a.recording_info, b.recording_info, "{name}");
        assert_eq!(a.start, b.start, "{name}: start");
        assert_eq!(a.n_records, b.n_records, "{name}");
        assert_eq!(a.record_duration, b.record_duration, "{name}");
        assert_eq!(a.signals, b.signals, "{name}: signal headers");
        assert_eq!(
            original.annotations(),
            copy.annotations(),
            "{name}: annotations"
        );
        assert_eq!(original.segments(), copy.segments(), "{name}: segments");
        assert_eq!(
            all_samples(&mut original),
            all_samples(&mut copy),
            "{name}: samples"
        );
        // The copy is clean: whatever leniency the original needed is not carried over,
        // except labels that really are duplicated.
        for w in copy.warnings() {
            assert!(
                w.kind() == "duplicate_label" || w.kind() == "discontinuous_but_contiguous",
                "{name}: {w}"
            );
        }
    }
}
