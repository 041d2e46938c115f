//! The page's JSON (issue 6): `render::view_json_bytes` on the standard page's shape (18
//! double-banana rows × 1920 pixel columns of min/max, 69,120 values of EEG-like amplitudes),
//! with values rounded to the recording's resolution (`auto`, the default) and as shortest
//! round-trip doubles (`full`), on rayon's pool and on one thread.
//!
//! Run: `CARGO_TARGET_DIR=... cargo bench -p theta-bench --bench render`.

use criterion::{BenchmarkId, Criterion, criterion_group};
use ndarray::Array2;
use std::hint::black_box;
use theta_engine::store::RecordingId;
use theta_query::view::{View, ViewData};
use theta_server::render::{Precision, view_json_bytes};

const ROWS: usize = 18;
const PX: usize = 1920;

/// A min/max page: a seeded random walk per row (tens of µV, a few hundred at most) and an
/// envelope a few µV wide, as a filtered 16-bit EDF page at 0.1 µV resolution looks.
fn page() -> View {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut level = [0.0f64; ROWS];
    let mut min = Array2::zeros((ROWS, PX));
    let mut max = Array2::zeros((ROWS, PX));
    for c in 0..PX {
        for r in 0..ROWS {
            level[r] = (level[r] + 8.0 * next()).clamp(-300.0, 300.0);
            let half = 2.0 + 6.0 * next().abs();
            min[(r, c)] = level[r] - half;
            max[(r, c)] = level[r] + half;
        }
    }
    View {
        recording: RecordingId::generate(),
        montage: "double-banana".into(),
        labels: (0..ROWS).map(|r| format!("R{r}")).collect(),
        channels: (0..32).collect(),
        unit: "uV".into(),
        resolution: 0.1,
        sample_rate: 256.0,
        first_sample: 1_000_000,
        samples: 5120,
        start: 3906.25,
        padding: (5453, 5453),
        data: ViewData::MinMax { min, max },
        warnings: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let v = page();
    for p in [Precision::Auto, Precision::Full] {
        let bytes = view_json_bytes(&v, p).unwrap().len();
        eprintln!("{p:?}: {bytes} bytes");
    }
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("page_json");
    for p in [Precision::Auto, Precision::Full] {
        g.bench_with_input(BenchmarkId::new("pool", format!("{p:?}")), &p, |b, &p| {
            b.iter(|| view_json_bytes(black_box(&v), p).unwrap())
        });
        g.bench_with_input(
            BenchmarkId::new("one_thread", format!("{p:?}")),
            &p,
            |b, &p| b.iter(|| one.install(|| view_json_bytes(black_box(&v), p).unwrap())),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
