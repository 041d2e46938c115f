//! `theta export` end to end through the binary on real recordings: BIDS then Parquet, the JSON
//! report, resume by re-running, refusal of other settings in the same folder, bad cohorts.

use serde_json::Value;

use crate::support::{cli_store, ok, theta};

#[test]
fn export_real_recordings_resume_and_refuse() {
    let dir = tempfile::tempdir().unwrap();
    // A TUH EDF, a BioSemi BDF and an annotation-only hypnogram (Sleep-EDF).
    let (s, _) = cli_store(
        dir.path(),
        &[
            ("00009578_s006_t001.edf", "hospital-a"),
            ("Newtest17-256.bdf", "hospital-a"),
            ("SC4001EC-Hypnogram.edf", "hospital-a"),
        ],
    );
    let out = dir.path().join("bids");
    let o = out.to_str().unwrap().to_string();
    let export = |o: &str, project: &str, format: &str, cohort: &str| {
        theta(&[
            "export",
            "--store",
            &s,
            "--tenant",
            "hospital-a",
            "--cohort",
            cohort,
            "--format",
            format,
            "--out",
            o,
            "--project",
            project,
            "--author",
            "Claire Dubois",
            "--author",
            "Yann Le Gall",
        ])
    };
    let report: Value = serde_json::from_str(&ok(&export(&o, "study-1", "bids", "true"))).unwrap();
    assert_eq!(report["recordings"], 2, "{report}");
    assert_eq!(
        report["skipped"], 1,
        "the hypnogram has no EEG to put in BIDS: {report}"
    );
    assert_eq!(report["resumed"], 0);
    assert!(report["raw_mb_per_s"].as_f64().unwrap() > 0.0);
    let description: Value =
        serde_json::from_slice(&std::fs::read(out.join("dataset_description.json")).unwrap())
            .unwrap();
    assert_eq!(
        description["Authors"],
        serde_json::json!(["Claire Dubois", "Yann Le Gall"])
    );
    let bdf = theta_fixtures::files_under(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("_eeg.bdf"))
        .count();
    assert_eq!(bdf, 1, "the 24-bit source is exported as BDF");

    // The same command again resumes: nothing rewritten.
    let again: Value = serde_json::from_str(&ok(&export(&o, "study-1", "bids", "true"))).unwrap();
    assert_eq!(again["resumed"], 2, "{again}");

    // Other settings into the same folder, and bad cohorts, are bad input (exit 2).
    for (project, format, cohort, want) in [
        ("study-2", "bids", "true", "project differs"),
        ("study-1", "bids", "nonsense_column = 1", "nonsense_column"),
    ] {
        let r = export(&o, project, format, cohort);
        assert_eq!(
            r.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains(want), "{err}");
    }

    // Parquet with a query as cohort.
    let pq = dir.path().join("pq");
    let report: Value = serde_json::from_str(&ok(&export(
        pq.to_str().unwrap(),
        "study-1",
        "parquet",
        "SELECT id FROM recordings WHERE format LIKE 'BDF%'",
    )))
    .unwrap();
    assert_eq!(report["recordings"], 1, "{report}");
    assert!(pq.join("recordings.parquet").is_file());
    assert_eq!(theta_fixtures::files_under(&pq.join("samples")).len(), 1);
}
