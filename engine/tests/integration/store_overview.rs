//! Overview envelopes: pyramid levels bound the exact envelope, raw when zoomed in, and a
//! zoomed-out overview never touches raw samples.

use object_store::ObjectStoreExt;
use object_store::path::Path;
use theta_engine::store::{
    IngestOptions, OverviewRequest, OverviewSource, PyramidGeometry, Units, WindowRequest,
};

use crate::common::{ingest, local_store};
use crate::synth::Spec;

/// Exact min/max of channel `ch` over sample indices [a, z).
fn exact(spec: &Spec, ch: usize, a: u64, z: u64) -> (i32, i32) {
    let it = (a..z).map(|i| spec.sample(ch, i));
    (it.clone().min().unwrap(), it.max().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_bound_the_exact_envelope() {
    let ls = local_store().await;
    let mut spec = Spec::new(21, &[256, 32], 1.0, 600);
    spec.gaps = vec![(300, 50.0)];
    let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
    let tl = rec.timeline().clone();
    let g = rec.pyramid();
    for (start, duration, width) in [
        (0.0, rec.duration(), 100usize),
        (100.0, 400.0, 37),
        (10.0, 5.0, 640),
    ] {
        let ov = rec
            .overview(&OverviewRequest::new(start, duration, width))
            .await
            .unwrap();
        assert_eq!(ov.min.shape(), &[2, width]);
        for (row, &ch) in ov.channels.iter().enumerate() {
            let spr = spec.samples_per_record[ch];
            let bucket = match ov.sources[row] {
                OverviewSource::Pyramid {
                    bucket_samples,
                    level,
                } => {
                    assert_eq!(bucket_samples, g.bucket(level));
                    bucket_samples
                }
                OverviewSource::Raw => 1,
            };
            let total = spec.records * u64::from(spr);
            for p in 0..width {
                let t0 = start + duration * p as f64 / width as f64;
                let t1 = start + duration * (p + 1) as f64 / width as f64;
                let a = tl.first_sample_at_or_after(t0, spr);
                let z = tl.first_sample_at_or_after(t1.min(start + duration), spr);
                let (lo, hi) = (ov.min[[row, p]], ov.max[[row, p]]);
                if a >= z {
                    assert!(lo.is_nan() && hi.is_nan(), "empty pixel {p}");
                    continue;
                }
                let (elo, ehi) = exact(&spec, ch, a, z);
                assert!(
                    lo <= f64::from(elo) && hi >= f64::from(ehi),
                    "pixel {p} contains the exact envelope"
                );
                // ... and reaches at most one bucket beyond the pixel on either side.
                let wa = (a / bucket) * bucket;
                let wz = (z.div_ceil(bucket) * bucket).min(total);
                let (wlo, whi) = exact(&spec, ch, wa, wz);
                assert!(
                    lo >= f64::from(wlo) && hi <= f64::from(whi),
                    "pixel {p} within its buckets"
                );
                if bucket == 1 {
                    assert_eq!((lo, hi), (f64::from(elo), f64::from(ehi)), "raw is exact");
                }
            }
        }
    }
    // Zoomed out uses the pyramid; zoomed in reads raw samples.
    let full = rec
        .overview(&OverviewRequest::new(0.0, rec.duration(), 100))
        .await
        .unwrap();
    assert!(matches!(full.sources[0], OverviewSource::Pyramid { .. }));
    let zoom = rec
        .overview(&OverviewRequest::new(10.0, 5.0, 640))
        .await
        .unwrap();
    assert_eq!(zoom.sources[0], OverviewSource::Raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoomed_out_overview_never_reads_raw_samples() {
    let ls = local_store().await;
    let spec = Spec::new(22, &[256, 256], 1.0, 400);
    let rec = ingest(&ls.store, &spec, IngestOptions::default()).await;
    let id = rec.id();
    // Remove every data object: only the pyramid is left.
    let os = ls.store.object_store();
    let data = os
        .list_with_delimiter(Some(&Path::from(format!("rec/{id}/data"))))
        .await
        .unwrap();
    assert!(!data.objects.is_empty());
    for o in data.objects {
        os.delete(&o.location).await.unwrap();
    }
    ls.store.clear_cache();
    let ov = rec
        .overview(&OverviewRequest::new(0.0, rec.duration(), 300))
        .await
        .unwrap();
    assert!(ov.min.iter().all(|v| v.is_finite()));
    assert!(
        rec.window(&WindowRequest::new(0.0, 10.0)).await.is_err(),
        "raw data is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn physical_envelope_with_negative_gain() {
    let ls = local_store().await;
    let spec = Spec::new(23, &[64], 1.0, 100);
    let mut signals = spec.signals();
    // physical_max < physical_min, as in test_utf8.edf
    signals[0].physical_min = 8711.0;
    signals[0].physical_max = -8711.0;
    let mut src = theta_engine::store::MemorySource::new(spec.header(), signals.clone(), 1.0);
    for r in 0..100u64 {
        src.push_record(
            None,
            vec![(0..64).map(|j| spec.sample(0, r * 64 + j)).collect()],
        );
    }
    let report = ls
        .store
        .ingest(
            src,
            IngestOptions {
                overview: PyramidGeometry {
                    base_bucket: 16,
                    factor: 4,
                    page_buckets: 64,
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let rec = ls.store.recording(report.recording).await.unwrap();
    let mut req = OverviewRequest::new(0.0, 100.0, 50);
    req.units = Units::Physical;
    let ov = rec.overview(&req).await.unwrap();
    let mut dreq = OverviewRequest::new(0.0, 100.0, 50);
    dreq.units = Units::Digital;
    let dv = rec.overview(&dreq).await.unwrap();
    for p in 0..50 {
        assert!(ov.min[[0, p]] <= ov.max[[0, p]]);
        assert_eq!(
            ov.min[[0, p]],
            signals[0].to_physical(dv.max[[0, p]] as i32)
        );
        assert_eq!(
            ov.max[[0, p]],
            signals[0].to_physical(dv.min[[0, p]] as i32)
        );
    }
    assert!(
        rec.overview(&OverviewRequest::new(0.0, 1.0, 0))
            .await
            .is_err()
    );
}
