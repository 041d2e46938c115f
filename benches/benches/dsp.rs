//! DSP criterion benchmarks (issue 5): the standard page and its parts.
//!
//! The standard page: 20 s of 32 channels at 256 Hz from deep inside a 24 h recording (so both
//! sides carry real-data padding), double banana, Butterworth high-pass 0.5 Hz + low-pass 70 Hz
//! (order 4) + 50 Hz notch (Q 30), zero-phase, min/max to 1920 px. The block is already in memory
//! in physical units: this measures the DSP part only (the store read is measured by `theta-bench page`).
//!
//! Before criterion's groups, `main` prints p50/p99 over 1000 standard pages with the default
//! rayon pool and with one thread (criterion reports means and medians, not tails).
//!
//! Run: `CARGO_TARGET_DIR=... cargo bench -p theta-bench --bench dsp`; peer in the same run:
//! `benches/peers/.venv/bin/python benches/peers/dsp_page.py --padding 5453 --json`.
//!
//! Measured 2026-11-28 on the 2-core AMD EPYC (Zen 4) dev VM, default target (SSE2), while other
//! builds kept the load average at 11-15 (wall times are inflated and noisy; CPU time is not):
//! - CPU time per standard page, one thread: 1.46-1.62 ms (500 pages, `/usr/bin/time` user time);
//!   about 80 % filter, 14 % montage, 4 % min/max. `-C target-cpu=native` gave no gain (the
//!   per-section recurrence is latency-bound at 9 lanes).
//! - Wall, 1000 pages: p50 1.43 ms / p99 28 ms on rayon's 2 threads, p50 2.27 ms on one thread;
//!   the p99 is other processes' scheduling, not the page.
//! - SciPy peer, same block, same run: p50 59.9 ms, p99 107.7 ms (about 40x the p50 above).

use criterion::{BenchmarkId, Criterion, criterion_group};
use ndarray::Array2;
use std::hint::black_box;
use std::time::Instant;
use theta_query::dsp::{
    BandType, FiltFiltPad, FilterPlan, FilterSpec, PageEdges, PageInput, PagePlan, PageProcessor,
    Phase, Welch, butter, minmax_into, sosfiltfilt,
};
use theta_query::montage::{InputChannel, Montage};

const FS: f64 = 256.0;
const PAGE_S: usize = 20;
const PX: usize = 1920;

/// 32 channel labels: the 19 10-20 scalp sites, ears, and 11 more 10-10 sites/ECG.
const LABELS: [&str; 32] = [
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "Pz",
    "P4", "P8", "O1", "O2", "A1", "A2", "Fpz", "Oz", "FC1", "FC2", "CP1", "CP2", "FC5", "FC6",
    "CP5", "CP6", "ECG",
];

/// Seeded EEG-like block: per-channel DC offset, slow drift, alpha, mains, noise.
fn block(channels: usize, n: usize, seed: u64) -> Array2<f64> {
    let mut s = seed;
    Array2::from_shape_fn((channels, n), |(c, t)| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 20.0;
        let tt = t as f64 / FS;
        let w = 2.0 * std::f64::consts::PI;
        200.0 * c as f64
            + 80.0 * (w * 0.03 * tt + c as f64).sin()
            + 30.0 * (w * (9.0 + 0.1 * c as f64) * tt).sin()
            + 10.0 * (w * 50.0 * tt).sin()
            + noise
    })
}

struct Standard {
    plan: PagePlan,
    data: Array2<f64>,
    page: std::ops::Range<usize>,
}

fn standard() -> Standard {
    let chans: Vec<InputChannel> = LABELS.iter().map(|l| InputChannel::new(*l)).collect();
    let montage = Montage::DoubleBanana
        .resolve(&chans)
        .expect("double banana resolves");
    let spec = FilterSpec {
        highpass: Some(0.5),
        lowpass: Some(70.0),
        notch: vec![50.0],
        order: 4,
        ..Default::default()
    };
    let filter =
        FilterPlan::new(spec.build(FS).expect("valid spec"), Phase::ZeroPhase).expect("stable");
    let plan = PagePlan::try_new(montage, Some(filter), Some(PX)).expect("plan");
    // A page in the middle of a 24 h recording: the read range is the page plus padding both sides.
    let n_rec = 24 * 3600 * FS as usize;
    let start = n_rec / 2;
    let page = start..start + PAGE_S * FS as usize;
    let read = plan.read_range(page.clone(), n_rec);
    let data = block(LABELS.len(), read.len(), 7);
    Standard {
        page: page.start - read.start..page.end - read.start,
        plan,
        data,
    }
}

fn percentiles(label: &str, mut run: impl FnMut()) {
    for _ in 0..50 {
        run();
    }
    let mut t: Vec<f64> = (0..1000)
        .map(|_| {
            let t0 = Instant::now();
            run();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!(
        "{label}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (1000 pages)",
        t[500], t[989], t[999]
    );
}

fn report_tails() {
    let s = standard();
    println!(
        "standard page: {} derivations, block {} samples ({} page + {} padding each side), {} sections",
        s.plan.montage().n_derivations(),
        s.data.ncols(),
        s.page.len(),
        s.plan.padding_before(),
        s.plan.filter().map_or(0, |f| f.sos().n_sections())
    );
    let mut proc = PageProcessor::new(s.plan.clone());
    let edges = PageEdges::default();
    percentiles(
        &format!(
            "standard page, rayon {} threads",
            rayon::current_num_threads()
        ),
        || {
            black_box(
                proc.process(PageInput {
                    data: s.data.view(),
                    page: s.page.clone(),
                    edges,
                })
                .expect("page"),
            );
        },
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    pool.install(|| {
        percentiles("standard page, 1 thread", || {
            black_box(
                proc.process(PageInput {
                    data: s.data.view(),
                    page: s.page.clone(),
                    edges,
                })
                .expect("page"),
            );
        });
    });
}

fn bench_page(c: &mut Criterion) {
    let s = standard();
    let mut g = c.benchmark_group("dsp/page");
    let mut proc = PageProcessor::new(s.plan.clone());
    g.bench_function("standard_20s_32ch_double_banana_bp_notch_1920px", |b| {
        b.iter(|| {
            let page = proc
                .process(PageInput {
                    data: s.data.view(),
                    page: s.page.clone(),
                    edges: PageEdges::default(),
                })
                .expect("page");
            black_box(page.width());
        })
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    g.bench_function("standard_one_thread", |b| {
        pool.install(|| {
            b.iter(|| {
                let page = proc
                    .process(PageInput {
                        data: s.data.view(),
                        page: s.page.clone(),
                        edges: PageEdges::default(),
                    })
                    .expect("page");
                black_box(page.width());
            })
        })
    });
    // Same page without the filter (montage + min/max only) and without decimation.
    let unfiltered = PagePlan::try_new(s.plan.montage().clone(), None, Some(PX)).expect("plan");
    let mut proc = PageProcessor::new(unfiltered);
    g.bench_function("montage_minmax_only", |b| {
        b.iter(|| {
            black_box(
                proc.process(PageInput {
                    data: s.data.view(),
                    page: s.page.clone(),
                    edges: PageEdges::default(),
                })
                .expect("page")
                .width(),
            )
        })
    });
    let samples =
        PagePlan::try_new(s.plan.montage().clone(), s.plan.filter().cloned(), None).expect("plan");
    let mut proc = PageProcessor::new(samples);
    g.bench_function("standard_samples_no_px", |b| {
        b.iter(|| {
            black_box(
                proc.process(PageInput {
                    data: s.data.view(),
                    page: s.page.clone(),
                    edges: PageEdges::default(),
                })
                .expect("page")
                .width(),
            )
        })
    });
    g.finish();
}

fn bench_parts(c: &mut Criterion) {
    let mut g = c.benchmark_group("dsp/parts");
    let x: Vec<f64> = block(1, 5120, 3).row(0).to_vec();
    let sos = FilterSpec {
        highpass: Some(0.5),
        lowpass: Some(70.0),
        notch: vec![50.0],
        ..Default::default()
    }
    .build(FS)
    .expect("spec");
    g.bench_function("sosfiltfilt_1ch_20s_5sections", |b| {
        b.iter(|| black_box(sosfiltfilt(&sos, black_box(&x), FiltFiltPad::Odd).expect("filter")))
    });
    for order in [2usize, 4, 8] {
        g.bench_with_input(
            BenchmarkId::new("butter_bandpass_design", order),
            &order,
            |b, &o| {
                b.iter(|| {
                    black_box(butter(o, &[0.5, 70.0], BandType::Bandpass, FS).expect("design"))
                })
            },
        );
    }
    g.bench_function("filter_plan_padding_standard", |b| {
        b.iter(|| {
            black_box(
                FilterPlan::new(sos.clone(), Phase::ZeroPhase)
                    .expect("plan")
                    .padding_before(),
            )
        })
    });
    let (mut lo, mut hi) = (vec![0.0; PX], vec![0.0; PX]);
    g.bench_function("minmax_1ch_5120_to_1920", |b| {
        b.iter(|| minmax_into(black_box(&x), PX, &mut lo, &mut hi))
    });
    let data = block(32, 5120, 5);
    let mut welch = Welch::try_new(FS, 512, 256).expect("welch");
    let mut density = vec![0.0; welch.n_bins()];
    g.bench_function("welch_32ch_20s_nperseg512", |b| {
        b.iter(|| {
            for row in data.rows() {
                welch
                    .psd_into(row.as_slice().expect("contiguous"), &mut density)
                    .expect("psd");
            }
            black_box(density[10])
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(60).measurement_time(std::time::Duration::from_secs(4));
    targets = bench_page, bench_parts
}

fn main() {
    report_tails();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
