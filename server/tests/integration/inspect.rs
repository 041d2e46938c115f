//! `theta inspect`, run as the real binary on real files.

use crate::support::theta;
use serde_json::Value;

fn eeg(name: &str) -> String {
    theta_fixtures::shared_eeg_dir()
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn golden(name: &str) -> Value {
    let text = std::fs::read_to_string(
        theta_fixtures::shared_eeg_dir().join(format!("{name}.golden.json")),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn inspect_json(path: &str) -> Value {
    let out = theta(&["inspect", path, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect prints one JSON object")
}

const FIELDS: [&str; 10] = [
    "format",
    "patient",
    "recording",
    "start",
    "n_records",
    "record_duration",
    "duration",
    "signals",
    "annotations",
    "warnings",
];

const SIGNAL_FIELDS: [&str; 15] = [
    "index",
    "label",
    "normalized_label",
    "type",
    "transducer",
    "physical_dimension",
    "physical_min",
    "physical_max",
    "digital_min",
    "digital_max",
    "prefilter",
    "sample_rate",
    "n_samples",
    "digital_sum",
    "digital_sum_of_squares",
];

#[test]
fn json_has_exactly_the_documented_fields_and_golden_values() {
    for path in theta_fixtures::real_recordings() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let j = inspect_json(&path.to_string_lossy());
        let mut keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "{name}");
        let g = golden(&name);
        assert_eq!(
            j["n_records"].as_u64(),
            g["header"]["n_datarecords"].as_u64(),
            "{name}"
        );
        assert_eq!(
            j["duration"].as_f64(),
            g["header"]["file_duration"].as_f64()
        );
        let signals = j["signals"].as_array().unwrap();
        let gs = g["signals"].as_array().unwrap();
        assert_eq!(signals.len(), gs.len(), "{name}");
        for (s, gsig) in signals.iter().zip(gs) {
            let mut keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            let mut want = SIGNAL_FIELDS.to_vec();
            want.sort_unstable();
            assert_eq!(keys, want);
            assert_eq!(s["label"], gsig["label"]);
            assert_eq!(s["digital_sum"], gsig["digital_sum"], "{name}");
            assert_eq!(
                s["digital_sum_of_squares"], gsig["digital_sum_of_squares"],
                "{name}"
            );
            assert_eq!(s["n_samples"], gsig["n_samples"]);
            assert_eq!(s["sample_rate"].as_f64(), gsig["sample_frequency"].as_f64());
        }
        assert!(j["warnings"].is_array());
    }
}

#[test]
fn json_values_of_a_sub_second_edf_plus() {
    let j = inspect_json(&eeg("test_utf8.edf"));
    assert_eq!(j["format"], "EDF+C");
    assert_eq!(j["start"], "2020-01-24T04:05:56.3945312Z");
    assert_eq!(j["signals"][0]["normalized_label"], "Fp1");
    assert_eq!(j["signals"][0]["type"], "EEG");
    let texts: Vec<&str> = j["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["text"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"中文测试八个字"));
    assert_eq!(j["annotations"][0]["duration"], Value::Null);
    assert_eq!(j["warnings"].as_array().unwrap().len(), 0);

    let j = inspect_json(&eeg("SC4001EC-Hypnogram.edf"));
    assert_eq!(j["signals"].as_array().unwrap().len(), 0);
    assert_eq!(j["annotations"].as_array().unwrap().len(), 154);
    assert_eq!(j["annotations"][0]["duration"], 30630.0);
}

#[test]
fn lenient_files_warn_and_strict_refuses_them_with_exit_2() {
    let j = inspect_json(&eeg("mnepy_test.bdf"));
    assert_eq!(j["format"], "BDF");
    assert_eq!(j["warnings"].as_array().unwrap().len(), 1);
    let out = theta(&["inspect", &eeg("mnepy_test.bdf"), "--json", "--strict"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("strict") && err.contains("leading spaces"),
        "{err}"
    );
}

#[test]
fn malformed_input_exits_2_and_missing_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(eeg("short_psg.edf")).unwrap();
    let truncated = dir.path().join("truncated.edf");
    std::fs::write(&truncated, &bytes[..700]).unwrap();
    let out = theta(&["inspect", &truncated.to_string_lossy(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("byte"), "{err}");

    let garbage = dir.path().join("garbage.edf");
    std::fs::write(&garbage, vec![b'x'; 4096]).unwrap();
    assert_eq!(
        theta(&["inspect", &garbage.to_string_lossy()])
            .status
            .code(),
        Some(2)
    );

    let missing = dir.path().join("missing.edf");
    assert_eq!(
        theta(&["inspect", &missing.to_string_lossy()])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn text_output_summarises() {
    let out = theta(&["inspect", &eeg("nedc_example.edf")]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("EEG FP1-REF") && text.contains("Fp1"),
        "{text}"
    );
    assert!(text.contains("format          EDF"));
}
