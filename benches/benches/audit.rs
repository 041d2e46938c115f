//! Criterion: cost of `AuditLog::append` per call (durable commit) for batches of 1 and 100
//! events, and of building an event.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use theta_engine::audit::bench::synthetic_event;
use theta_engine::audit::{AuditLog, AuditLogOptions, AuditSigningKey, Environment};

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = AuditSigningKey::generate(Environment::try_new("bench").expect("tag")).expect("key");
    let mut log = AuditLog::open_with_key(
        &dir.path().join("audit.db"),
        key,
        AuditLogOptions::default(),
    )
    .expect("open");
    let mut i = 0u64;
    let mut g = c.benchmark_group("audit/append");
    for batch in [1u64, 100] {
        g.throughput(Throughput::Elements(batch));
        g.bench_function(format!("batch_{batch}"), |b| {
            b.iter_batched(
                || {
                    let v: Vec<_> = (0..batch)
                        .map(|k| synthetic_event(i + k, 1_767_225_600_000))
                        .collect();
                    i += batch;
                    v
                },
                |events| log.append(&events).expect("append"),
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
    c.bench_function("audit/build_event", |b| {
        let mut k = 0u64;
        b.iter(|| {
            k += 1;
            synthetic_event(k, 1_767_225_600_000)
        });
    });
}

criterion_group!(benches, append);
criterion_main!(benches);
