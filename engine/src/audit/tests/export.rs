//! Export filters and formats.

use chrono::{TimeDelta, TimeZone, Utc};

use super::*;

const BASE_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// 60 events, one a minute: actors acc-0..2, tenants chu-0..1, recordings rec-0..4.
fn fixture() -> Fixture {
    let fx = Fixture::new("test");
    let mut log = fx.open(AuditLogOptions::default());
    let mut events: Vec<_> = (0..60u64)
        .map(|i| {
            AuditEvent::builder(AuditAction::RecordingReadWindow)
                .at_ms(BASE_MS + i as i64 * 60_000)
                .actor_account(&format!("acc-{}", i % 3))
                .tenant(&format!("chu-{}", i % 2))
                .recording(&format!("rec-{}", i % 5))
                .client_addr(if i % 2 == 0 {
                    "2001:db8::7".parse().unwrap()
                } else {
                    "198.51.100.4".parse().unwrap()
                })
                .user_agent(if i == 7 {
                    "=HYPERLINK(\"http://x\")"
                } else {
                    "curl/8.5"
                })
                .build()
                .unwrap()
        })
        .collect();
    events.push(
        AuditEvent::builder(AuditAction::LoginFailure)
            .at_ms(BASE_MS + 30 * 60_000 + 1)
            .actor_attempted_username("j.dupont@chu-a.fr")
            .reason(Reason::BadPassword)
            .build()
            .unwrap(),
    );
    log.append(&events).unwrap();
    fx
}

fn export(fx: &Fixture, filter: &ExportFilter, format: ExportFormat) -> (ExportSummary, Vec<u8>) {
    let mut out = Vec::new();
    let s = AuditReader::open(&fx.path)
        .unwrap()
        .export(filter, format, &mut out)
        .unwrap();
    (s, out)
}

fn jsonl(fx: &Fixture, filter: &ExportFilter) -> Vec<serde_json::Value> {
    let (s, out) = export(fx, filter, ExportFormat::Jsonl);
    let lines: Vec<serde_json::Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, s.events);
    lines
}

#[test]
fn everything_in_time_order() {
    let fx = fixture();
    let all = jsonl(&fx, &ExportFilter::default());
    assert_eq!(all.len(), 61);
    let ts: Vec<i64> = all.iter().map(|v| v["ts_ms"].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]));
    // The login failure (seq 61) sorts by its time, between minutes 30 and 31.
    assert_eq!(all[31]["seq"], 61);
    assert_eq!(all[31]["actor_kind"], "username");
    assert_eq!(all[31]["actor"], "j.dupont@chu-a.fr");
    assert_eq!(all[31]["outcome"], "failure");
    assert_eq!(all[31]["reason"], "bad_password");
    assert_eq!(all[0]["time"], "2026-01-01T00:00:00.000Z");
    assert_eq!(all[0]["client_addr"], "2001:db8::7");
    assert_eq!(all[1]["client_addr"], "198.51.100.4");
    assert_eq!(all[0]["hash"].as_str().unwrap().len(), 64);
    assert!(all[0]["session"].is_null());
}

#[test]
fn filters_combine() {
    let fx = fixture();
    let from = Utc.timestamp_millis_opt(BASE_MS).unwrap() + TimeDelta::minutes(10);
    let to = from + TimeDelta::minutes(20);
    let window = jsonl(
        &fx,
        &ExportFilter {
            from: Some(from),
            to: Some(to),
            ..Default::default()
        },
    );
    assert_eq!(window.len(), 20, "[from, to) is half-open");
    assert_eq!(window[0]["seq"], 11);
    assert_eq!(window[19]["seq"], 30);

    let by_actor = jsonl(
        &fx,
        &ExportFilter {
            actor: Some("acc-1".into()),
            ..Default::default()
        },
    );
    assert_eq!(by_actor.len(), 20);
    assert!(by_actor.iter().all(|v| v["actor"] == "acc-1"));

    let combined = jsonl(
        &fx,
        &ExportFilter {
            recording: Some("rec-2".into()),
            tenant: Some("chu-0".into()),
            from: Some(from),
            ..Default::default()
        },
    );
    // i % 5 == 2 and i % 2 == 0 and i >= 10: i in {12, 22, 32, 42, 52}.
    let seqs: Vec<i64> = combined
        .iter()
        .map(|v| v["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![13, 23, 33, 43, 53]);

    let none = jsonl(
        &fx,
        &ExportFilter {
            tenant: Some("chu-9".into()),
            ..Default::default()
        },
    );
    assert!(none.is_empty());
}

#[test]
fn csv_has_a_header_and_defuses_formulas() {
    let fx = fixture();
    let (s, out) = export(
        &fx,
        &ExportFilter {
            recording: Some("rec-2".into()),
            ..Default::default()
        },
        ExportFormat::Csv,
    );
    assert_eq!(s.events, 12);
    let mut r = csv::Reader::from_reader(out.as_slice());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, EXPORT_COLUMNS);
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 12);
    assert_eq!(&rows[0][3], "recording.read_window");
    assert_eq!(&rows[0][11], "rec-2");

    let (_, out) = export(
        &fx,
        &ExportFilter {
            from: Some(Utc.timestamp_millis_opt(BASE_MS + 7 * 60_000).unwrap()),
            to: Some(Utc.timestamp_millis_opt(BASE_MS + 8 * 60_000).unwrap()),
            ..Default::default()
        },
        ExportFormat::Csv,
    );
    let mut r = csv::Reader::from_reader(out.as_slice());
    let row = r.records().next().unwrap().unwrap();
    assert_eq!(&row[9], "'=HYPERLINK(\"http://x\")");
    assert_eq!(ExportFormat::try_from_name("csv"), Some(ExportFormat::Csv));
    assert_eq!(ExportFormat::try_from_name("xml"), None);
}
