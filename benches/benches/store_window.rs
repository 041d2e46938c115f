//! Criterion benchmarks of store reads: a 30 s × 32 ch window warm (decoded chunks cached) and
//! cold (cache emptied first), and a whole-recording overview at 1920 px, on a seeded synthetic
//! 1 h × 32 ch × 256 Hz recording in a local store.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use theta_engine::crypto::LocalKeyring;
use theta_engine::store::{
    Annotation, IngestOptions, OverviewRequest, Recording, SampleSource, SampleWidth, SignalInfo,
    SourceError, SourceHeader, Store, StoreOptions, WindowRequest,
};

const CHANNELS: usize = 32;
const RATE: u32 = 256;
const SECONDS: u64 = 3600;

/// EEG-like integers: a few slow sines plus seeded noise, per channel.
struct Synthetic {
    header: SourceHeader,
    signals: Vec<SignalInfo>,
    record: u64,
    state: u64,
}

impl Synthetic {
    fn new() -> Self {
        let signals = (0..CHANNELS)
            .map(|i| SignalInfo {
                label: format!("E{i}"),
                transducer: String::new(),
                physical_dimension: "uV".into(),
                physical_min: -3276.8,
                physical_max: 3276.7,
                digital_min: -32768,
                digital_max: 32767,
                prefilter: String::new(),
                samples_per_record: RATE,
                width: SampleWidth::Bits16,
            })
            .collect();
        Self {
            header: SourceHeader::default(),
            signals,
            record: 0,
            state: 0x2545_F491_4F6C_DD1D,
        }
    }
}

impl SampleSource for Synthetic {
    fn header(&self) -> &SourceHeader {
        &self.header
    }
    fn signals(&self) -> &[SignalInfo] {
        &self.signals
    }
    fn record_duration(&self) -> f64 {
        1.0
    }
    fn record_count(&self) -> Option<u64> {
        Some(SECONDS)
    }
    fn next_record(&mut self, out: &mut [&mut [i32]]) -> Result<Option<f64>, SourceError> {
        if self.record == SECONDS {
            return Ok(None);
        }
        for (c, o) in out.iter_mut().enumerate() {
            for (j, v) in o.iter_mut().enumerate() {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                let t = (self.record * u64::from(RATE) + j as u64) as f64 / f64::from(RATE);
                let wave = 300.0 * (t * 10.0 + c as f64).sin() + 120.0 * (t * 1.3).sin();
                *v = wave as i32 + (self.state % 41) as i32 - 20;
            }
        }
        self.record += 1;
        Ok(Some((self.record - 1) as f64))
    }
    fn take_annotations(&mut self) -> Result<Vec<Annotation>, SourceError> {
        Ok(Vec::new())
    }
}

fn setup(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> (Store, Recording) {
    rt.block_on(async {
        let opts = StoreOptions {
            read_ahead: false,
            ..Default::default()
        };
        let store = Store::init_local(
            dir,
            "bench",
            Arc::new(LocalKeyring::generate("bench")),
            opts,
        )
        .await
        .expect("store");
        let r = store
            .ingest(Synthetic::new(), IngestOptions::default())
            .await
            .expect("ingest");
        let rec = store.recording(r.recording).await.expect("open");
        (store, rec)
    })
}

fn bench_reads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("theta-bench-criterion-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (store, rec) = setup(&rt, &dir);
    let mut start = 0.0f64;
    let mut next_start = || {
        // Walk through the recording with a stride that is not a multiple of a block.
        start = (start + 737.3) % (SECONDS as f64 - 30.0);
        start
    };
    let mut group = c.benchmark_group("store_window");
    group.bench_function("window_30s_32ch_warm", |b| {
        let req = WindowRequest::new(1234.5, 30.0);
        rt.block_on(rec.window(&req)).expect("warm-up");
        b.iter(|| rt.block_on(rec.window(&req)).expect("window"));
    });
    group.bench_function("window_30s_32ch_cold", |b| {
        b.iter(|| {
            store.clear_cache();
            let req = WindowRequest::new(next_start(), 30.0);
            rt.block_on(rec.window(&req)).expect("window")
        });
    });
    group.bench_function("overview_1h_1920px_warm", |b| {
        let req = OverviewRequest::new(0.0, SECONDS as f64, 1920);
        rt.block_on(rec.overview(&req)).expect("warm-up");
        b.iter(|| rt.block_on(rec.overview(&req)).expect("overview"));
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_reads);
criterion_main!(benches);
