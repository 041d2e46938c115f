//! Research export end to end on the library API: recordings seeded with identifying data in
//! every header field and in annotations are ingested from EDF/BDF files, exported as BIDS and
//! Parquet, and the outputs are checked byte by byte for leaks, sample by sample against the
//! store, by the official BIDS validator (when `npx` or `THETA_BIDS_VALIDATOR` is available;
//! required when `THETA_REQUIRE_BIDS_VALIDATOR=1`) and by DataFusion reading the Parquet back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use theta_engine::crypto::LocalKeyring;
use theta_engine::edf::{EdfReader, ReadOptions};
use theta_engine::store::{
    Annotation, EdfSource, IngestOptions, Recording, RecordingId, Store, StoreOptions, TenantId,
};
use theta_fixtures::{Gap, SynthAnnotation, SynthFormat, SynthSpec, SynthStart, write_synth_file};
use theta_query::export::pseudo::{ProjectSecret, Pseudonymizer};
use theta_query::export::{
    DatePolicy, ExportError, ExportFormat, ExportHooks, ExportSpec, TextPolicy, export,
};

const TENANT: &str = "chu-a";

/// Every string of the sources that must not reach any output byte (matched case-insensitively).
const IDENTIFYING: &[&str] = &[
    "Dupont",
    "Moreau",
    "Jean-Pierre",
    "Jean_Pierre",
    "PAT-884213",
    "884213",
    "Lefebvre",
    "Martine",
    "ADM-778899",
    "778899",
    "Nihon",
    "Kohden",
    "Chambre",
    "14-MAR-1961",
    "1961",
    "12-MAR-2024",
    "2024-03-12",
    "12.03.24",
    "12/03/2024",
    "02-SEP-2024",
    "2024-09-02",
    "06 12 34 56 78",
    "0612345678",
    "jp.dupont",
    "example.fr",
    "1 61 03 75 123 456 78",
    "161037512345678",
    "Alice",
    "Martin",
    "55667788",
    "02/01/1990",
    "+33 6 98 76 54 32",
    "hopital.fr",
    "dr.house",
    "Bernard",
];

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Store,
    /// Store ids of A (EDF+C), B (same patient, BDF+D with a gap), C (plain EDF, other patient).
    ids: Vec<RecordingId>,
}

async fn ingest(store: &Store, path: &Path, name: &str) -> RecordingId {
    let source = EdfSource::open(path, ReadOptions::default()).expect("open source");
    store
        .ingest(
            source,
            IngestOptions {
                tenant: TenantId::new(TENANT).unwrap(),
                source_name: Some(name.into()),
                ..IngestOptions::default()
            },
        )
        .await
        .expect("ingest")
        .recording
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let store = Store::init_local(
        &root.join("store"),
        "dev",
        Arc::new(LocalKeyring::generate("dev")),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    let a = SynthSpec {
        seed: 11,
        duration: 40.0,
        patient: "PAT-884213 M 14-MAR-1961 Jean-Pierre_Dupont-Moreau".into(),
        recording: "ADM-778899 Martine_Lefebvre Nihon_Kohden Chambre_12".into(),
        start: SynthStart {
            year: 2024,
            month: 3,
            day: 12,
            hour: 9,
            minute: 30,
            second: 15,
        },
        annotations: vec![
            SynthAnnotation {
                onset: 2.0,
                duration: Some(1.5),
                text: "Patient Jean-Pierre DUPONT-MOREAU, né le 14/03/1961, tel 06 12 34 56 78"
                    .into(),
            },
            SynthAnnotation {
                onset: 5.5,
                duration: None,
                text: "mail jp.dupont@example.fr NIR 1 61 03 75 123 456 78".into(),
            },
            SynthAnnotation {
                onset: 9.0,
                duration: Some(3.0),
                text: "spike-wave 3 Hz Fp1-F7, vu par Dr Lefebvre le 12/03/2024".into(),
            },
        ],
        ..SynthSpec::default()
    };
    let b = SynthSpec {
        seed: 12,
        format: SynthFormat::Bdf,
        n_channels: 8,
        sample_rate: 512.0,
        duration: 20.0,
        patient: "PAT-884213 M 14-MAR-1961 Jean-Pierre_Dupont-Moreau".into(),
        recording: "ADM-778899 Martine_Lefebvre Nihon_Kohden Chambre_12".into(),
        start: SynthStart {
            year: 2024,
            month: 9,
            day: 2,
            hour: 14,
            minute: 5,
            second: 0,
        },
        gaps: vec![Gap {
            after_record: 9,
            seconds: 4.0,
        }],
        annotations: vec![SynthAnnotation {
            onset: 1.0,
            duration: None,
            text: "eyes closed".into(),
        }],
        ..SynthSpec::default()
    };
    let c = SynthSpec {
        seed: 13,
        plus: false,
        n_channels: 4,
        sample_rate: 128.0,
        duration: 16.0,
        patient: "MARTIN Alice 02/01/1990 IPP 55667788".into(),
        recording: "Hopital Bernard".into(),
        start: SynthStart {
            year: 2023,
            month: 11,
            day: 5,
            hour: 22,
            minute: 0,
            second: 0,
        },
        annotations: Vec::new(),
        line_noise: false,
        ..SynthSpec::default()
    };
    let mut ids = Vec::new();
    for (i, spec) in [a, b, c].iter().enumerate() {
        let path = root.join(format!("src{i}.edf"));
        write_synth_file(spec, &path).unwrap();
        ids.push(ingest(&store, &path, "DUPONT_Jean-Pierre_2024-03-12.edf").await);
    }
    // An annotation added by a reader, with identifying text of the other patient.
    let rec = store.recording(ids[2]).await.unwrap();
    rec.add_annotation(
        "dr.house",
        Annotation {
            onset: 3.0,
            duration: None,
            text: "Tel. mere de Alice Martin: +33 6 98 76 54 32, alice.martin@hopital.fr".into(),
        },
    )
    .await
    .unwrap();
    Fixture {
        _dir: dir,
        root,
        store,
        ids,
    }
}

fn tenants() -> Vec<TenantId> {
    vec![TenantId::new(TENANT).unwrap()]
}

async fn run(f: &Fixture, format: ExportFormat, out: &str, project: &str) -> PathBuf {
    run_by(f, format, out, project, &[]).await
}

async fn run_by(
    f: &Fixture,
    format: ExportFormat,
    out: &str,
    project: &str,
    authors: &[&str],
) -> PathBuf {
    let out = f.root.join(out);
    let mut spec = ExportSpec::new("true", format, &out, project);
    spec.authors = authors.iter().map(|a| (*a).to_owned()).collect();
    let report = export(&f.store, tenants(), &spec, &ExportHooks::default())
        .await
        .expect("export");
    assert_eq!(report.recordings, 3);
    assert_eq!(report.subjects, 2, "A and B are the same patient");
    assert!(report.files > 3 && report.output_bytes > 0);
    out
}

use theta_fixtures::files_under;

/// No identifying string, store id or source date in any byte of any output file (names too).
fn assert_no_leak(f: &Fixture, out: &Path) {
    let mut needles: Vec<String> = IDENTIFYING.iter().map(|s| s.to_ascii_lowercase()).collect();
    needles.extend(f.ids.iter().map(|id| id.to_string()));
    for file in files_under(out) {
        let rel = file
            .strip_prefix(out)
            .unwrap()
            .to_string_lossy()
            .to_ascii_lowercase();
        let bytes = std::fs::read(&file).unwrap().to_ascii_lowercase();
        for n in &needles {
            assert!(!rel.contains(n.as_str()), "{n:?} in the file name {rel}");
            let found = bytes.windows(n.len()).position(|w| w == n.as_bytes());
            assert!(found.is_none(), "{n:?} found in {rel} at byte {found:?}");
        }
    }
}

fn subjects(out: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(out.join("participants.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

async fn pseudonymizer(f: &Fixture, project: &str) -> Pseudonymizer {
    let secret = f.store.project_secret(project).await.unwrap();
    Pseudonymizer::new(&ProjectSecret::from_bytes(*secret))
}

/// All digital samples of a stored recording, per signal.
async fn stored_samples(rec: &Recording) -> Vec<Vec<i32>> {
    let mut out = vec![Vec::new(); rec.signals().len()];
    for b in 0..rec.blocks() {
        let block = rec.read_block(b).await.unwrap();
        for (o, s) in out.iter_mut().zip(block.signals) {
            o.extend(s);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_export_is_pseudonymised_exact_and_valid() {
    let f = fixture().await;
    let out = run_by(
        &f,
        ExportFormat::Bids,
        "bids-p1",
        "epilepsy-2026",
        &["Claire Dubois", "Yann Le Gall"],
    )
    .await;
    let description: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("dataset_description.json")).unwrap())
            .unwrap();
    assert_eq!(
        description["Authors"],
        serde_json::json!(["Claire Dubois", "Yann Le Gall"])
    );
    assert_no_leak(&f, &out);

    // Stable within a project (a second export to another folder), unlinkable across projects.
    let again = run(&f, ExportFormat::Bids, "bids-p1-again", "epilepsy-2026").await;
    assert_eq!(subjects(&out), subjects(&again));
    let names = |d: &Path| -> Vec<String> {
        files_under(d)
            .iter()
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .map(|p| p.strip_prefix(d).unwrap().display().to_string())
            .collect()
    };
    assert_eq!(names(&out), names(&again));
    let other = run(&f, ExportFormat::Bids, "bids-p2", "sleep-cohort").await;
    assert!(subjects(&out).is_disjoint(&subjects(&other)));

    // The mapping stays in the store, sealed.
    let mapping = f
        .store
        .project_mapping("epilepsy-2026")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mapping.subjects.len(), 2);
    assert_eq!(mapping.recordings.len(), 3);

    // Every sample of every exported file equals the stored one; identity fields are EDF+'s
    // anonymised form; the start is shifted into the past by whole days.
    let pseudo = pseudonymizer(&f, "epilepsy-2026").await;
    let source_starts = [
        "2024-03-12T09:30:15",
        "2024-09-02T14:05:00",
        "2023-11-05T22:00:00",
    ];
    let mut offsets = Vec::new();
    for (i, id) in f.ids.iter().enumerate() {
        let rec = f.store.recording(*id).await.unwrap();
        let session = pseudo.session_id(&id.to_string());
        let eeg = files_under(&out)
            .into_iter()
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.contains(&format!("_ses-{session}_"))
                    && (n.ends_with("_eeg.edf") || n.ends_with("_eeg.bdf"))
            })
            .expect("the recording's data file");
        assert_eq!(
            eeg.extension().unwrap() == "bdf",
            i == 1,
            "BDF for the 24-bit source"
        );
        let mut reader = EdfReader::open(&eeg, ReadOptions::strict()).expect("our EDF reads back");
        let h = reader.header().clone();
        let subject = h.patient.split(' ').next().unwrap().to_string();
        assert!(
            subject.starts_with("sub-"),
            "patient code is the pseudonym: {}",
            h.patient
        );
        assert!(
            h.patient.ends_with(" X X"),
            "birthdate and name are X: {}",
            h.patient
        );
        assert!(h.recording.starts_with("Startdate ") && h.recording.ends_with(" X X X"));
        assert_eq!(h.format.is_discontinuous(), i == 1);
        let src =
            chrono::NaiveDateTime::parse_from_str(source_starts[i], "%Y-%m-%dT%H:%M:%S").unwrap();
        let shift = h.start - src;
        assert_eq!(shift.num_seconds() % 86_400, 0, "whole days");
        assert!(
            (-3650..=-365).contains(&shift.num_days()),
            "{} days",
            shift.num_days()
        );
        offsets.push((subject, shift.num_days()));

        let want = stored_samples(&rec).await;
        let mut got = vec![Vec::new(); want.len()];
        let mut buf = reader.record_buf();
        while reader.next_record(&mut buf).unwrap() {
            for (s, g) in got.iter_mut().enumerate() {
                g.extend_from_slice(buf.signal(s));
            }
        }
        assert_eq!(
            got, want,
            "recording {i}: exported samples differ from the store"
        );
        if i == 1 {
            let segs = reader.segments();
            assert_eq!(segs.len(), 2, "the gap is kept");
        }
    }
    // One offset per subject: A and B (same patient) share it, so their interval is kept.
    assert_eq!(offsets[0], offsets[1]);

    // Annotations: masked text, clinical words kept.
    let events: String = files_under(&out)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with("_events.tsv"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(events.contains("spike-wave 3 Hz Fp1-F7"), "{events}");
    assert!(events.contains("[PHONE]") && events.contains("[EMAIL]") && events.contains("[NIR]"));
    assert!(events.contains("eyes closed"));

    let warnings = bids_validate(&out);
    assert!(
        !warnings.iter().any(|w| w == "NO_AUTHORS"),
        "authors were given: {warnings:?}"
    );
}

/// Runs the official validator when it can be found; returns its warnings' keys.
fn bids_validate(dir: &Path) -> Vec<String> {
    let required = std::env::var("THETA_REQUIRE_BIDS_VALIDATOR").is_ok_and(|v| v == "1");
    let (program, args): (String, Vec<String>) = match std::env::var("THETA_BIDS_VALIDATOR") {
        Ok(cmd) => (cmd, vec![]),
        Err(_) => (
            "npx".into(),
            vec!["--yes".into(), "bids-validator@1.15.0".into()],
        ),
    };
    let result = std::process::Command::new(&program)
        .args(&args)
        .arg(dir)
        .arg("--json")
        .output();
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            assert!(
                !required,
                "bids-validator required but {program} failed to start: {e}"
            );
            eprintln!("skipping BIDS validation: {program}: {e}");
            return Vec::new();
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(start) = stdout.find('{') else {
        assert!(
            !required,
            "bids-validator produced no report: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("skipping BIDS validation: no report from {program}");
        return Vec::new();
    };
    let report: serde_json::Value = serde_json::from_str(&stdout[start..]).expect("JSON report");
    let errors = &report["issues"]["errors"];
    assert_eq!(
        errors.as_array().map_or(0, Vec::len),
        0,
        "BIDS validation errors: {errors:#}"
    );
    let warnings: Vec<String> = report["issues"]["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["key"].as_str().map(str::to_owned))
        .collect();
    eprintln!("BIDS validation passed; warnings: {warnings:?}");
    warnings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_export_reads_back_in_datafusion() {
    let f = fixture().await;
    let out = run(&f, ExportFormat::Parquet, "pq", "epilepsy-2026").await;
    assert_no_leak(&f, &out);

    let ctx = SessionContext::new();
    let listing = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(
            "recording_id".to_string(),
            arrow::datatypes::DataType::Utf8,
        )]);
    ctx.register_listing_table(
        "samples",
        out.join("samples").to_str().unwrap(),
        listing,
        None,
        None,
    )
    .await
    .unwrap();
    for t in ["recordings", "channels", "annotations"] {
        ctx.register_parquet(
            t,
            out.join(format!("{t}.parquet")).to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    let batches = ctx
        .sql(
            "SELECT s.recording_id, SUM(CAST(s.digital AS BIGINT)) AS d, SUM(s.value) AS v, \
             COUNT(*) AS n, MIN(r.subject_id) AS subject \
             FROM samples s JOIN recordings r ON s.recording_id = r.recording_id \
             GROUP BY s.recording_id",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut got: BTreeMap<String, (i64, f64, i64)> = BTreeMap::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            got.insert(
                b.column(0).as_string::<i32>().value(i).to_string(),
                (
                    b.column(1).as_primitive::<Int64Type>().value(i),
                    b.column(2).as_primitive::<Float64Type>().value(i),
                    b.column(3).as_primitive::<Int64Type>().value(i),
                ),
            );
        }
    }
    let pseudo = pseudonymizer(&f, "epilepsy-2026").await;
    assert_eq!(got.len(), 3);
    for id in &f.ids {
        let rec = f.store.recording(*id).await.unwrap();
        let samples = stored_samples(&rec).await;
        let digital: i64 = samples.iter().flatten().map(|&d| i64::from(d)).sum();
        let count: i64 = samples.iter().map(|s| s.len() as i64).sum();
        let value: f64 = samples
            .iter()
            .zip(rec.signals())
            .map(|(s, info)| s.iter().map(|&d| info.to_physical(d)).sum::<f64>())
            .sum();
        let (d, v, n) = got[&pseudo.recording_id(&id.to_string())];
        assert_eq!((d, n), (digital, count));
        assert!(
            (v - value).abs() <= 1e-9 * value.abs().max(1.0),
            "{v} vs {value}"
        );
    }

    // Time is a column readers can prune on: one row group per time block, times ascending.
    let t = ctx
        .sql("SELECT MIN(time), MAX(time) FROM samples")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(t[0].column(0).as_primitive::<Float64Type>().value(0) >= 0.0);
    let ann = ctx
        .sql("SELECT text FROM annotations WHERE text LIKE '%spike-wave%'")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(ann.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let tmp: Vec<_> = files_under(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial"))
        .collect();
    assert!(tmp.is_empty(), "no partial file left: {tmp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_export_resumes_and_settings_are_pinned() {
    let f = fixture().await;
    let out = f.root.join("resume");
    let spec = ExportSpec::new("true", ExportFormat::Parquet, &out, "epilepsy-2026");
    // Cancel as soon as one recording is complete.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let hooks = ExportHooks {
        progress: Some(Arc::new(move |p| {
            if p.recordings_done >= 1 {
                flag.store(true, Ordering::SeqCst);
            }
        })),
        cancel: Some(Arc::clone(&cancel)),
    };
    let first = export(&f.store, tenants(), &spec, &hooks).await;
    assert!(matches!(first, Err(ExportError::Cancelled)), "{first:?}");
    assert!(!out.join("recordings.parquet").exists());
    let report = export(&f.store, tenants(), &spec, &ExportHooks::default())
        .await
        .unwrap();
    assert!(report.resumed >= 1, "{report:?}");
    assert_eq!(report.recordings, 3);
    let fresh = run(&f, ExportFormat::Parquet, "fresh", "epilepsy-2026").await;
    let parts = |d: &Path| -> Vec<Vec<u8>> {
        files_under(&d.join("samples"))
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    assert_eq!(
        parts(&out),
        parts(&fresh),
        "the resumed export equals a fresh one"
    );

    // Another project, format or option in the same folder is refused.
    let mut other = spec.clone();
    other.project = "another".into();
    let e = export(&f.store, tenants(), &other, &ExportHooks::default()).await;
    assert!(matches!(e, Err(ExportError::Mismatch { .. })), "{e:?}");
    let mut other = spec.clone();
    other.dates = DatePolicy::Remove;
    let e = export(&f.store, tenants(), &other, &ExportHooks::default()).await;
    assert!(matches!(e, Err(ExportError::Mismatch { .. })), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_removed_text_dropped_and_cohorts() {
    let f = fixture().await;
    let out = f.root.join("nodates");
    let mut spec = ExportSpec::new(
        // A literal that identifies someone in the cohort's text must not travel with the export
        // (the settings file keeps the cohort by digest).
        "SELECT id FROM recordings WHERE signals >= 8 AND 'Dupont' = 'Dupont'",
        ExportFormat::Bids,
        &out,
        "epilepsy-2026",
    );
    spec.dates = DatePolicy::Remove;
    spec.annotations = TextPolicy::Drop;
    let report = export(&f.store, tenants(), &spec, &ExportHooks::default())
        .await
        .unwrap();
    assert_eq!(report.recordings, 2, "A (19 channels) and B (8 channels)");
    assert_no_leak(&f, &out);
    for p in files_under(&out) {
        let name = p.to_string_lossy().into_owned();
        if name.ends_with(".edf") || name.ends_with(".bdf") {
            let r = EdfReader::open(&p, ReadOptions::default()).unwrap();
            assert_eq!(
                r.header().start.date(),
                chrono::NaiveDate::from_ymd_opt(1985, 1, 1).unwrap()
            );
            assert!(r.header().recording.starts_with("Startdate X"));
        }
        if name.ends_with("_events.tsv") {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(!text.contains("spike") && !text.contains("eyes"), "{text}");
        }
    }
    // Errors say what is wrong.
    let bad =
        |cohort: &str| ExportSpec::new(cohort, ExportFormat::Parquet, f.root.join("bad"), "p");
    for (cohort, want) in [
        ("duration_s > 1e9", "no recording"),
        ("no_such_column > 1", "no_such_column"),
        ("SELECT 42", "not text"),
    ] {
        let e = export(&f.store, tenants(), &bad(cohort), &ExportHooks::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{cohort}: {e}");
    }
    // Another tenant's recordings are not visible.
    let e = export(
        &f.store,
        vec![TenantId::new("chu-b").unwrap()],
        &ExportSpec::new("true", ExportFormat::Parquet, f.root.join("b"), "p"),
        &ExportHooks::default(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no recording"), "{e}");
}
