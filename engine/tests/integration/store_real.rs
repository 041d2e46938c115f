//! Every real recording of the shared folder: ingested, then read back exactly (windows at
//! record boundaries, first and last samples, random offsets and lengths, every channel and
//! rate), annotations identical, and no plaintext at rest.

use theta_engine::edf::{EdfReader, ReadOptions};
use theta_engine::store::{EdfSource, IngestOptions, Recording, WindowRequest};

use crate::common::{Rng, local_store};
use crate::store_crypto::assert_no_plaintext;

/// Every digital sample of every signal, from the EDF reader (the source of truth).
fn source_samples(reader: &mut EdfReader<std::fs::File>) -> Vec<Vec<i32>> {
    let n = reader.header().signals.len();
    (0..n)
        .map(|s| {
            let total = reader.header().n_samples(s) as usize;
            let mut v = vec![0i32; total];
            let got = reader.read_digital(s, 0, &mut v).unwrap();
            assert_eq!(got, total);
            v
        })
        .collect()
}

async fn check_window(rec: &Recording, truth: &[Vec<i32>], start: f64, duration: f64, what: &str) {
    let w = rec
        .window(&WindowRequest::new(start, duration))
        .await
        .unwrap_or_else(|e| panic!("{what}: window {start}+{duration}: {e}"));
    let tl = rec.timeline();
    let end = start + duration;
    let mut seen = 0;
    for block in &w.blocks {
        let data = block.digital().unwrap();
        let spr = block.samples_per_record;
        for (row, &ch) in block.channels.iter().enumerate() {
            // Sample times increase with the index: bisect on the timeline's formula.
            let n = truth[ch].len() as u64;
            let first_at_or_after = |t: f64| {
                let (mut lo, mut hi) = (0u64, n);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if tl.sample_time(mid, spr) < t {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            };
            let (a, z) = (first_at_or_after(start), first_at_or_after(end));
            let want: Vec<i32> = truth[ch][a as usize..z.max(a) as usize].to_vec();
            if a < z {
                assert_eq!(block.first_sample, a, "{what}: channel {ch} first sample");
            }
            assert_eq!(
                data.row(row).to_vec(),
                want,
                "{what}: channel {ch}, window {start}+{duration}"
            );
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        truth.len(),
        "{what}: every channel in one of the blocks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_file_reads_back_exactly() {
    let files = theta_fixtures::real_recordings();
    assert_eq!(files.len(), 16, "the shared folder holds 16 recordings");
    let ls = local_store().await;
    for (i, path) in files.iter().enumerate() {
        let what = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut reader = EdfReader::open(path, ReadOptions::default()).unwrap();
        let truth = source_samples(&mut reader);
        // Alternate chunk shapes so that small files still span several blocks and groups.
        let opts = if i % 2 == 0 {
            IngestOptions::default()
        } else {
            IngestOptions {
                block_seconds: 2.0,
                group_size: 3,
                data_object_bytes: 64 << 10,
                ..Default::default()
            }
        };
        let src = EdfSource::open(path, ReadOptions::default()).unwrap();
        let report = ls.store.ingest(src, opts).await.unwrap();
        let rec = ls.store.recording(report.recording).await.unwrap();
        let h = reader.header().clone();
        assert_eq!(rec.signals().len(), h.signals.len(), "{what}");
        assert_eq!(rec.timeline().num_records(), h.n_records, "{what}");
        for r in 0..h.n_records {
            let want = reader.record_onset(r).unwrap();
            let got = rec.timeline().record_onset(r);
            assert!(
                (got - want).abs() < 1e-9,
                "{what}: onset of record {r}: {got} vs {want}"
            );
        }

        // Annotations identical.
        let got: Vec<_> = rec
            .annotations()
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.annotation.onset, a.annotation.duration, a.annotation.text))
            .collect();
        let want: Vec<_> = reader
            .annotations()
            .iter()
            .map(|a| (a.onset, a.duration, a.text.clone()))
            .collect();
        assert_eq!(got, want, "{what}: annotations");

        if !h.signals.is_empty() {
            let end = rec.duration();
            let d = h.record_duration;
            let last = h.n_records - 1;
            let tl = rec.timeline().clone();
            let mut spans = vec![
                (0.0, end),
                (0.0, 1e-6),
                (tl.record_onset(last), d),
                (end - 1e-6, 1.0),
            ];
            for r in [0, 1, h.n_records / 2, last] {
                let o = tl.record_onset(r);
                spans.push((o, d));
                spans.push((o + d * 0.5, d));
                if o > 0.0 {
                    spans.push((o - d * 0.25, d * 0.5));
                }
            }
            // The last sample of every rate.
            for s in rec.signals() {
                let spr = s.samples_per_record;
                let t = tl.sample_time(h.n_records * u64::from(spr) - 1, spr);
                spans.push((t, 1e-9));
            }
            let mut rng = Rng(0x5EED ^ i as u64);
            for _ in 0..12 {
                let s = rng.unit() * end;
                let len = rng.unit() * (end - s).max(1e-3) + 1e-4;
                spans.push((s, len));
            }
            for (s, len) in spans {
                if s >= 0.0 && s < end {
                    check_window(&rec, &truth, s, len, &what).await;
                }
            }
        }

        // No plaintext at rest: header strings and runs of source bytes.
        let mut strings = Vec::new();
        for field in [&h.patient, &h.recording] {
            for token in field.split([' ', '_']) {
                if token.len() >= 6 && token != "Startdate" {
                    strings.push(token.to_string());
                }
            }
        }
        let bytes = std::fs::read(path).unwrap();
        let data = bytes[h.header_bytes as usize..].to_vec();
        let dir = ls.root().join(format!("rec/{}", rec.id()));
        assert_no_plaintext(&dir, &strings, &[data]);
    }
    let report = ls.store.verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.recordings, 16);
}
