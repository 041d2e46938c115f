//! `theta sql` end to end: a temporary encrypted store with real recordings of two tenants,
//! queried through the binary in the three output formats; scoping by `--tenant`.

use crate::support::{cli_store, ok, theta};
use serde_json::Value;

#[test]
fn sql_formats_and_tenant_scope() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = cli_store(
        dir.path(),
        &[
            ("00009578_s006_t001.edf", "hospital-a"),
            ("Newtest17-256.bdf", "hospital-b"),
        ],
    );
    let sql = |tenants: &str, format: &str, q: &str| {
        theta(&[
            "sql", "--store", &s, "--tenant", tenants, "--format", format, q,
        ])
    };

    // Table: Arrow's pretty printer.
    let table = ok(&sql(
        "hospital-a",
        "table",
        "SELECT format, signals FROM recordings",
    ));
    assert!(table.contains("| format | signals |"), "{table}");
    assert!(table.contains("| EDF    | 27      |"), "{table}");

    // JSON: one object per row; only the given tenants are visible.
    let out = ok(&sql(
        "hospital-a,hospital-b",
        "json",
        "SELECT tenant, signals, duration_s FROM recordings ORDER BY tenant",
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"tenant": "hospital-a", "signals": 27, "duration_s": 22.0},
            {"tenant": "hospital-b", "signals": 17, "duration_s": 60.0},
        ])
    );
    let out = ok(&sql(
        "hospital-b",
        "json",
        "SELECT count(*) AS n FROM samples s JOIN recordings r ON s.recording_id = r.id \
         WHERE r.tenant = 'hospital-a'",
    ));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!([{"n": 0}])
    );

    // CSV: header and rows; a pushed-down time range and band_power.
    let csv = ok(&sql(
        "hospital-a",
        "csv",
        "SELECT channel, count(*) AS n, band_power(time, value, sample_rate, 'alpha') > 0 AS a \
         FROM samples WHERE channel IN ('EEG O1-REF', 'EEG O2-REF') AND time >= 2 AND time < 12 \
         GROUP BY channel ORDER BY channel",
    ));
    assert_eq!(
        csv,
        "channel,n,a\nEEG O1-REF,2560,true\nEEG O2-REF,2560,true\n"
    );

    // An empty result keeps its header.
    let csv = ok(&sql(
        "hospital-a",
        "csv",
        "SELECT label FROM channels WHERE false",
    ));
    assert_eq!(csv, "label\n");

    // Bad SQL and writes are bad input (exit 2); --tenant is required.
    for q in [
        "SELEC 1",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
    ] {
        let out = sql("hospital-a", "table", q);
        assert_eq!(out.status.code(), Some(2), "{q}");
    }
    let out = theta(&["sql", "--store", &s, "SELECT 1"]);
    assert!(!out.status.success());
}
