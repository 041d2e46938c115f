//! SQL over a store built here from generated recordings and real EDF files: the `.slt` files
//! under `tests/slt/` (a small sqllogictest runner below), the pushdown, `band_power` against
//! the DSP functions, and tenant scoping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use theta_engine::crypto::LocalKeyring;
use theta_engine::edf::ReadOptions;
use theta_engine::store::{
    ChannelSelection, EdfSource, IngestOptions, Store, StoreOptions, TenantId, Units, WindowRequest,
};
use theta_fixtures::{
    Gap, SynthAnnotation, SynthFormat, SynthSpec, shared_eeg_dir, write_synth_file,
};
use theta_query::dsp::{Welch, band_power};
use theta_query::sql::{Catalog, SqlError};

/// A store with four recordings; returns it and the `${NAME}` variables of the `.slt` files.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    vars: BTreeMap<String, String>,
}

async fn ingest(store: &Store, path: &Path, tenant: &str) -> String {
    let source = EdfSource::open(path, ReadOptions::default()).expect("open source");
    let report = store
        .ingest(
            source,
            IngestOptions {
                tenant: TenantId::new(tenant).unwrap(),
                source_name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                ..IngestOptions::default()
            },
        )
        .await
        .expect("ingest");
    report.recording.to_string()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Arc::new(LocalKeyring::generate("dev"));
    let store = Store::init_local(
        &dir.path().join("store"),
        "dev",
        keyring,
        StoreOptions::default(),
    )
    .await
    .unwrap();
    let mut vars = BTreeMap::new();
    // A: 19 channels, 256 Hz, 60 s, EDF+ with two annotations (tenant chu-a).
    let a = SynthSpec {
        seed: 7,
        duration: 60.0,
        annotations: vec![
            SynthAnnotation {
                onset: 5.0,
                duration: Some(2.5),
                text: "eyes closed".into(),
            },
            SynthAnnotation {
                onset: 30.25,
                duration: None,
                text: "photic 10 Hz".into(),
            },
        ],
        ..SynthSpec::default()
    };
    // B: 4 channels, BDF, 128 Hz, 20 s (tenant chu-a).
    let b = SynthSpec {
        seed: 8,
        format: SynthFormat::Bdf,
        n_channels: 4,
        sample_rate: 128.0,
        duration: 20.0,
        ..SynthSpec::default()
    };
    // C: another establishment's recording (tenant chu-b).
    let c = SynthSpec {
        seed: 9,
        n_channels: 2,
        duration: 10.0,
        annotations: vec![SynthAnnotation {
            onset: 1.0,
            duration: None,
            text: "tenant b only".into(),
        }],
        ..SynthSpec::default()
    };
    // D: EDF+D, 2 channels, 20 records of 1 s with a 5 s gap after record 9 (tenant chu-d).
    let d = SynthSpec {
        seed: 10,
        n_channels: 2,
        duration: 20.0,
        gaps: vec![Gap {
            after_record: 9,
            seconds: 5.0,
        }],
        ..SynthSpec::default()
    };
    for (name, spec, tenant, ext) in [
        ("A", a, "chu-a", "edf"),
        ("B", b, "chu-a", "bdf"),
        ("C", c, "chu-b", "edf"),
        ("D", d, "chu-d", "edf"),
    ] {
        let path = dir.path().join(format!("{name}.{ext}"));
        write_synth_file(&spec, &path).unwrap();
        vars.insert(name.to_string(), ingest(&store, &path, tenant).await);
    }
    // REAL: TUH clinical EEG, 27 signals (24 at 256 Hz, 3 at 1 Hz), 22 s (tenant chu-a).
    let real = shared_eeg_dir().join("00009578_s006_t001.edf");
    vars.insert("REAL".into(), ingest(&store, &real, "chu-a").await);
    Fixture {
        _dir: dir,
        store,
        vars,
    }
}

fn tenants(list: &str) -> Vec<TenantId> {
    list.split(',')
        .map(|t| TenantId::new(t.trim()).unwrap())
        .collect()
}

/// Formats a cell: NULL, `(empty)`, floats rounded to 6 decimals (trailing zeros trimmed).
fn cell(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    let s = match array.data_type() {
        DataType::Float64 => {
            let x = array.as_primitive::<Float64Type>().value(row);
            let s = format!("{x:.6}");
            let s = if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            };
            if s == "-0" { "0".into() } else { s }
        }
        _ => {
            let f = ArrayFormatter::try_new(array, &FormatOptions::default()).unwrap();
            f.value(row).to_string()
        }
    };
    if s.is_empty() { "(empty)".into() } else { s }
}

fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b.columns().iter().map(|c| cell(c.as_ref(), r)).collect();
            out.push(cells.join(" "));
        }
    }
    out
}

fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut s = text.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("${{{k}}}"), v);
    }
    s
}

/// Runs one `.slt` file. Records (separated by blank lines):
/// `tenants a,b` (scope of the following queries), `statement error <text>` + SQL,
/// `query error <text>` + SQL, and `query <types> [rowsort]` + SQL + `----` + expected rows
/// (cells separated by one space). `${A}` etc. are replaced by the fixture's recording ids in
/// the SQL and in the expected rows. With `THETA_SLT_COMPLETE=1` the expected rows are
/// rewritten from the results (review the diff before committing).
async fn run_slt(fx: &Fixture, path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let complete = std::env::var_os("THETA_SLT_COMPLETE").is_some();
    let mut failures = Vec::new();
    let mut out = String::new();
    let mut catalog: Option<Catalog> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            i += 1;
            continue;
        }
        let start_line = i + 1;
        let header = line.trim();
        out.push_str(line);
        out.push('\n');
        i += 1;
        if let Some(list) = header.strip_prefix("tenants ") {
            catalog = Some(Catalog::new(fx.store.clone(), tenants(list)).await.unwrap());
            continue;
        }
        let mut sql = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim() != "----" {
            sql.push(lines[i]);
            out.push_str(lines[i]);
            out.push('\n');
            i += 1;
        }
        let query = substitute(&sql.join("\n"), &fx.vars);
        let cat = catalog
            .as_ref()
            .unwrap_or_else(|| panic!("{}:{start_line}: no `tenants` line before", path.display()));
        let where_ = format!("{}:{start_line}", path.display());
        let words: Vec<&str> = header.split_whitespace().collect();
        match words.as_slice() {
            ["statement" | "query", "error", msg @ ..] => {
                let msg = msg.join(" ");
                match cat.sql(&query).await {
                    Ok(_) => failures.push(format!("{where_}: expected an error, got rows")),
                    Err(e) if e.to_string().contains(&msg) => {}
                    Err(e) => failures.push(format!("{where_}: error {e:?} lacks {msg:?}")),
                }
            }
            ["statement", "ok"] => {
                if let Err(e) = cat.sql(&query).await {
                    failures.push(format!("{where_}: {e}"));
                }
            }
            ["query", types, rest @ ..] => {
                let mut expected = Vec::new();
                if i < lines.len() && lines[i].trim() == "----" {
                    i += 1;
                    while i < lines.len() && !lines[i].trim().is_empty() {
                        expected.push(substitute(lines[i], &fx.vars));
                        i += 1;
                    }
                }
                let got = match cat.sql(&query).await {
                    Ok(b) => b,
                    Err(e) => {
                        failures.push(format!("{where_}: {e}"));
                        continue;
                    }
                };
                if let Some(b) = got.first()
                    && b.num_columns() != types.len()
                {
                    failures.push(format!(
                        "{where_}: {} columns, the header says {}",
                        b.num_columns(),
                        types.len()
                    ));
                }
                let mut got = rows(&got);
                if rest.contains(&"rowsort") {
                    got.sort();
                    expected.sort();
                }
                out.push_str("----\n");
                for r in &got {
                    // Put the variables back, so that completed files stay portable.
                    let mut r = r.clone();
                    for (k, v) in &fx.vars {
                        r = r.replace(v.as_str(), &format!("${{{k}}}"));
                    }
                    out.push_str(&r);
                    out.push('\n');
                }
                if got != expected {
                    failures.push(format!(
                        "{where_}: {query}\nexpected:\n{}\ngot:\n{}",
                        expected.join("\n"),
                        got.join("\n")
                    ));
                }
            }
            _ => failures.push(format!("{where_}: unknown record {header:?}")),
        }
    }
    if complete {
        std::fs::write(path, out).unwrap();
    }
    failures
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_pass() {
    let fx = fixture().await;
    let files = slt_files();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for f in &files {
        failures.extend(run_slt(&fx, f).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

async fn one_f64(cat: &Catalog, sql: &str) -> Option<f64> {
    let b = cat.sql(sql).await.unwrap();
    let b = b.iter().find(|b| b.num_rows() > 0)?;
    let c = b.column(0);
    (!c.is_null(0)).then(|| c.as_primitive::<Float64Type>().value(0))
}

async fn count(cat: &Catalog, sql: &str) -> i64 {
    let b = cat.sql(sql).await.unwrap();
    b[0].column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_time_predicate_reads_one_chunk() {
    let fx = fixture().await;
    let a = &fx.vars["A"];
    let cat = Catalog::new(fx.store.clone(), tenants("chu-a"))
        .await
        .unwrap();

    // The whole of one channel: every 10 s block of the 60 s recording.
    fx.store.clear_cache();
    let before = fx.store.cache_stats().misses;
    let n = count(
        &cat,
        &format!(
            "SELECT count(*) FROM samples WHERE recording_id = '{a}' AND channel = 'EEG O1-Ref'"
        ),
    )
    .await;
    assert_eq!(n, 60 * 256);
    let full_misses = fx.store.cache_stats().misses - before;
    let full = cat.scan_stats();
    assert_eq!(full.samples, 60 * 256);

    // One second of it: one window, one chunk, 256 samples.
    fx.store.clear_cache();
    let before = fx.store.cache_stats().misses;
    let n = count(
        &cat,
        &format!(
            "SELECT count(*) FROM samples WHERE recording_id = '{a}' AND channel = 'EEG O1-Ref' \
             AND time >= 30 AND time < 31"
        ),
    )
    .await;
    assert_eq!(n, 256);
    let narrow_misses = fx.store.cache_stats().misses - before;
    let narrow = cat.scan_stats();
    assert_eq!(narrow.windows - full.windows, 1);
    assert_eq!(narrow.samples - full.samples, 256);
    // Chunks hold one channel (group size 1) over 10 s (one block): the narrow read decodes
    // one chunk, the whole channel six.
    assert_eq!((narrow_misses, full_misses), (1, 6));

    // recording_id alone prunes the other recordings: one window of one recording is read.
    let real = &fx.vars["REAL"];
    let before = cat.scan_stats();
    let n = count(
        &cat,
        &format!("SELECT count(*) FROM samples WHERE recording_id = '{real}' AND time < 1"),
    )
    .await;
    assert_eq!(n, 24 * 256 + 3);
    let after = cat.scan_stats();
    assert_eq!(
        (
            after.windows - before.windows,
            after.samples - before.samples
        ),
        (1, 24 * 256 + 3)
    );

    // BETWEEN is inclusive at both ends (pushed down with the upper end included).
    let n = count(
        &cat,
        &format!(
            "SELECT count(*) FROM samples WHERE recording_id = '{a}' AND channel_index = 0 \
             AND time BETWEEN 1 AND 2"
        ),
    )
    .await;
    assert_eq!(n, 257);
    // A predicate the scan does not understand still gives the right answer.
    let n = count(
        &cat,
        &format!(
            "SELECT count(*) FROM samples WHERE recording_id = '{a}' AND channel = 'EEG Fp1-Ref' \
             AND (time < 1 OR time >= 59)"
        ),
    )
    .await;
    assert_eq!(n, 2 * 256);
}

/// The samples SQL sees are the window's, and `band_power` equals Welch + band_power of the
/// DSP module on them (synthetic and real recordings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn band_power_equals_the_dsp_functions() {
    let fx = fixture().await;
    let cat = Catalog::new(fx.store.clone(), tenants("chu-a"))
        .await
        .unwrap();
    for (var, channel, fs, start, dur) in [
        ("A", "EEG O1-Ref", 256.0, 10.0, 40.0),
        ("A", "EEG Fp1-Ref", 256.0, 0.0, 60.0),
        ("REAL", "EEG O1-REF", 256.0, 2.0, 18.0),
    ] {
        let id = &fx.vars[var];
        let rec = cat
            .recordings()
            .iter()
            .find(|r| r.id().to_string() == *id)
            .unwrap();
        let w = rec
            .window(
                &WindowRequest::new(start, dur)
                    .channels(ChannelSelection::parse(channel))
                    .units(Units::Physical),
            )
            .await
            .unwrap();
        let x: Vec<f64> = w.blocks[0].physical().unwrap().row(0).to_vec();
        assert_eq!(x.len(), (dur * fs) as usize);
        let psd = Welch::with_default_overlap(fs, 512)
            .unwrap()
            .psd(&x)
            .unwrap();
        for (band, lo, hi) in [
            ("alpha", 8.0, 13.0),
            ("delta", 0.5, 4.0),
            ("20-35.5", 20.0, 35.5),
        ] {
            let want = band_power(&psd, lo, hi);
            let got = one_f64(
                &cat,
                &format!(
                    "SELECT band_power(time, value, sample_rate, '{band}') FROM samples \
                     WHERE recording_id = '{id}' AND channel = '{channel}' \
                     AND time >= {start} AND time < {}",
                    start + dur
                ),
            )
            .await
            .unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1e-12),
                "{var} {channel} {band}: {got} vs {want}"
            );
        }
        // An explicit nperseg.
        let psd = Welch::with_default_overlap(fs, 256)
            .unwrap()
            .psd(&x)
            .unwrap();
        let want = band_power(&psd, 8.0, 13.0);
        let got = one_f64(
            &cat,
            &format!(
                "SELECT band_power(time, value, sample_rate, 'alpha', 256) FROM samples \
                 WHERE recording_id = '{id}' AND channel = '{channel}' \
                 AND time >= {start} AND time < {}",
                start + dur
            ),
        )
        .await
        .unwrap();
        assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");
    }
    // A group spanning channels is refused, not silently mixed.
    let a = &fx.vars["A"];
    let err = cat
        .sql(&format!(
            "SELECT band_power(time, value, sample_rate, 'alpha') FROM samples \
             WHERE recording_id = '{a}' AND channel IN ('EEG O1-Ref', 'EEG O2-Ref')"
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("group by recording_id and channel"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_tenants_are_never_visible() {
    let fx = fixture().await;
    let b_only = Catalog::new(fx.store.clone(), tenants("chu-b"))
        .await
        .unwrap();
    let a = &fx.vars["A"];
    let c = &fx.vars["C"];
    assert_eq!(b_only.recordings().len(), 1);
    for (sql, want) in [
        ("SELECT count(*) FROM recordings".to_string(), 1),
        (
            format!("SELECT count(*) FROM recordings WHERE id = '{a}'"),
            0,
        ),
        (
            format!("SELECT count(*) FROM channels WHERE recording_id = '{a}'"),
            0,
        ),
        (
            format!("SELECT count(*) FROM annotations WHERE recording_id = '{a}'"),
            0,
        ),
        (
            format!("SELECT count(*) FROM samples WHERE recording_id = '{a}'"),
            0,
        ),
        (
            format!("SELECT count(*) FROM samples WHERE recording_id <> '{c}'"),
            0,
        ),
        ("SELECT count(*) FROM channels".to_string(), 2),
        ("SELECT count(*) FROM annotations".to_string(), 1),
        ("SELECT count(*) FROM samples".to_string(), 2 * 10 * 256),
    ] {
        assert_eq!(count(&b_only, &sql).await, want, "{sql}");
    }
    let a_only = Catalog::new(fx.store.clone(), tenants("chu-a"))
        .await
        .unwrap();
    assert_eq!(
        count(
            &a_only,
            &format!("SELECT count(*) FROM samples WHERE recording_id = '{c}'")
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &a_only,
            "SELECT count(*) FROM recordings WHERE tenant = 'chu-b'"
        )
        .await,
        0
    );
    let both = Catalog::new(fx.store.clone(), tenants("chu-a,chu-b"))
        .await
        .unwrap();
    assert_eq!(count(&both, "SELECT count(*) FROM recordings").await, 4);
    // A caller who may see only some recordings of a tenant.
    let a_id: theta_engine::store::RecordingId = a.parse().unwrap();
    let only_a = Catalog::with_filter(fx.store.clone(), tenants("chu-a,chu-b"), |id| *id == a_id)
        .await
        .unwrap();
    for (sql, want) in [
        ("SELECT count(*) FROM recordings", 1),
        ("SELECT count(DISTINCT recording_id) FROM channels", 1),
        ("SELECT count(DISTINCT recording_id) FROM annotations", 1),
        (
            "SELECT count(DISTINCT recording_id) FROM samples WHERE time < 1",
            1,
        ),
    ] {
        assert_eq!(count(&only_a, sql).await, want, "{sql}");
    }
    let nobody = Catalog::new(fx.store.clone(), tenants("chu-z"))
        .await
        .unwrap();
    assert_eq!(count(&nobody, "SELECT count(*) FROM samples").await, 0);
    assert!(matches!(
        Catalog::new(fx.store.clone(), Vec::new()).await,
        Err(SqlError::NoTenant)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_queries_are_allowed() {
    let fx = fixture().await;
    let cat = Catalog::new(fx.store.clone(), tenants("chu-a"))
        .await
        .unwrap();
    for sql in [
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/theta-sql-copy.csv'",
        "CREATE TABLE t AS SELECT * FROM recordings",
        "INSERT INTO recordings SELECT * FROM recordings",
        "SET datafusion.execution.batch_size = 1",
    ] {
        assert!(cat.sql(sql).await.is_err(), "{sql}");
    }
}

/// A cohort query that would run for hours (a cross join with a huge generated table) is
/// stopped at its time limit with an error saying so, instead of holding the export slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_cohort_queries_are_stopped_at_their_time_limit() {
    let fx = fixture().await;
    let cat = Catalog::new(fx.store.clone(), tenants("chu-a"))
        .await
        .unwrap();
    // Returning at all is the check: the query alone would run for hours.
    let err = theta_query::export::select_cohort_within(
        &cat,
        "SELECT r.id FROM recordings r, range(3000000000) t ORDER BY t.value DESC LIMIT 1",
        std::time::Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("ran longer than 0.5 s"), "{err}");
    // A real cohort is untouched by the limit.
    let ids = theta_query::export::select_cohort(&cat, "true")
        .await
        .unwrap();
    assert!(!ids.is_empty());
}
