//! End-to-end tests of the store commands: the real `theta` binary on a temporary store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use crate::support::{ok, theta};
use serde_json::Value;
use theta_engine::crypto::LocalKeyring;
use theta_engine::store::{
    Annotation, IngestOptions, MemorySource, SignalInfo, SourceHeader, Store, StoreOptions,
};

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn sample(ch: usize, i: u64) -> i32 {
    ((i as i64 * 37 + ch as i64 * 1000) % 4001 - 2000) as i32
}

/// Ingests a 2-rate recording through the library into a store made by `theta init`.
fn ingest_fixture(store: &Path, keys: &Path) -> String {
    let sig = |label: &str, spr| SignalInfo {
        label: label.into(),
        transducer: String::new(),
        physical_dimension: "uV".into(),
        physical_min: -3276.8,
        physical_max: 3276.7,
        digital_min: -32768,
        digital_max: 32767,
        prefilter: String::new(),
        samples_per_record: spr,
        width: theta_engine::store::SampleWidth::Bits16,
    };
    let header = SourceHeader {
        patient: "X F 01-JAN-1970 Secret_Name".into(),
        ..Default::default()
    };
    let mut src = MemorySource::new(
        header,
        vec![sig("EEG A", 100), sig("EEG B", 100), sig("Resp", 10)],
        1.0,
    );
    for r in 0..20u64 {
        src.push_record(
            None,
            vec![
                (0..100).map(|j| sample(0, r * 100 + j)).collect(),
                (0..100).map(|j| sample(1, r * 100 + j)).collect(),
                (0..10).map(|j| sample(2, r * 10 + j)).collect(),
            ],
        );
    }
    src.push_annotation(Annotation {
        onset: 1.0,
        duration: None,
        text: "eyes closed".into(),
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ring = LocalKeyring::open_file(keys).unwrap();
        let store = Store::open_local(store, Arc::new(ring), StoreOptions::default())
            .await
            .unwrap();
        let r = store.ingest(src, IngestOptions::default()).await.unwrap();
        r.recording.to_string()
    })
}

fn parse_npy(bytes: &[u8]) -> (String, Vec<usize>, &[u8]) {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "header aligned to 64");
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    (descr.to_string(), shape, &bytes[10 + hlen..])
}

#[test]
fn store_commands_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let store: PathBuf = dir.path().join("eeg");
    let keys = dir.path().join("eeg.keys");
    let s = store.to_str().unwrap();

    ok(&theta(&["init", "--store", s]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file beside the store, owner-only");
    }
    let again = theta(&["init", "--store", s]);
    assert_eq!(code(&again), 2);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let id = ingest_fixture(&store, &keys);

    let ls: Value = serde_json::from_str(&ok(&theta(&["ls", "--store", s, "--json"]))).unwrap();
    assert_eq!(ls[0]["id"], id);
    assert_eq!(ls[0]["status"]["status"], "available");
    assert_eq!(ls[0]["status"]["signals"], 3);
    assert_eq!(ls[0]["status"]["duration"], 20.0);
    let table = ok(&theta(&["ls", "--store", s]));
    assert!(table.contains(&id) && !table.contains("Secret_Name"));

    // CSV: start <= t < start + duration, by label and by index.
    let csv = ok(&theta(&[
        "window",
        "--store",
        s,
        "--recording",
        &id,
        "--start",
        "1.5",
        "--duration",
        "0.05",
        "--channels",
        "EEG B,0",
        "--format",
        "csv",
    ]));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("# sample_rate=100"));
    assert_eq!(lines[1], "time,EEG B,EEG A");
    assert_eq!(lines.len(), 2 + 5);
    for (k, line) in lines[2..].iter().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let i = 150 + k as u64;
        assert_eq!(f[1].parse::<i32>().unwrap(), sample(1, i));
        assert_eq!(f[2].parse::<i32>().unwrap(), sample(0, i));
    }

    // JSON: one block per rate, physical units.
    let js: Value = serde_json::from_str(&ok(&theta(&[
        "window",
        "--store",
        s,
        "--recording",
        &id,
        "--start",
        "0",
        "--duration",
        "2",
        "--units",
        "physical",
        "--format",
        "json",
    ])))
    .unwrap();
    let blocks = js["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0]["samples"], 200);
    assert_eq!(blocks[1]["sample_rate"], 10.0);
    assert_eq!(blocks[1]["channels"][0]["index"], 2);
    let v = blocks[0]["data"][0][3].as_f64().unwrap();
    let want = 0.1 * (f64::from(sample(0, 3)) + 3276.7 / 0.1 - 32767.0);
    assert!((v - want).abs() < 1e-9, "{v} vs {want}");

    // NPY: channels x samples, little-endian int32.
    let out = theta(&[
        "window",
        "--store",
        s,
        "--recording",
        &id,
        "--start",
        "10",
        "--duration",
        "1",
        "--channels",
        "1",
        "--format",
        "npy",
    ]);
    assert!(out.status.success());
    let (descr, shape, data) = parse_npy(&out.stdout);
    assert_eq!(descr, "<i4");
    assert_eq!(shape, vec![1, 100]);
    let got: Vec<i32> = data
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, (1000..1100).map(|i| sample(1, i)).collect::<Vec<_>>());

    // Overview.
    let ov: Value = serde_json::from_str(&ok(&theta(&[
        "overview",
        "--store",
        s,
        "--recording",
        &id,
        "--start",
        "0",
        "--duration",
        "20",
        "--width",
        "40",
        "--json",
    ])))
    .unwrap();
    assert_eq!(ov["channels"].as_array().unwrap().len(), 3);
    assert_eq!(ov["channels"][0]["min"].as_array().unwrap().len(), 40);

    // Bad input: exit 2, a clear message, nothing changed.
    for (start, duration, channels, msg) in [
        ("1", "1", "Cz", "no channel"),
        ("1", "1", "7", "no channel"),
        ("25", "1", "", "outside"),
        ("-1", "1", "", "outside"),
        ("1", "0", "", "outside"),
    ] {
        let a = [
            "window",
            "--store",
            s,
            "--recording",
            &id,
            "--start",
            start,
            "--duration",
            duration,
            "--channels",
            channels,
        ];
        let out = theta(&a);
        assert_eq!(code(&out), 2, "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{a:?}: {err}");
    }
    let out = theta(&[
        "window",
        "--store",
        s,
        "--recording",
        "0123456789abcdef0123456789abcdef",
        "--start",
        "0",
        "--duration",
        "1",
    ]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown recording"));
    let out = theta(&[
        "window",
        "--store",
        s,
        "--recording",
        "nope",
        "--start",
        "0",
        "--duration",
        "1",
    ]);
    assert_eq!(code(&out), 2);
    let out = theta(&[
        "ls",
        "--store",
        dir.path().join("missing").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2);
    let wrong = Command::new(env!("CARGO_BIN_EXE_theta"))
        .args([
            "window",
            "--store",
            s,
            "--recording",
            &id,
            "--start",
            "0",
            "--duration",
            "1",
        ])
        .env("THETA_KEK", format!("other:{}", "ab".repeat(32)))
        .output()
        .unwrap();
    assert_eq!(code(&wrong), 2);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong key"));

    // Verify: clean, then one flipped byte is reported by place.
    let out = ok(&theta(&["verify", "--store", s]));
    assert!(out.contains("0 problems"), "{out}");
    let data = store.join(format!("rec/{id}/data/00000"));
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[48 + 30] ^= 0x80; // inside the first chunk's ciphertext
    std::fs::write(&data, &bytes).unwrap();
    let out = theta(&["verify", "--store", s]);
    assert_eq!(code(&out), 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("BAD") && text.contains("channel 0, block 0"),
        "{text}"
    );
    bytes[48 + 30] ^= 0x80;
    std::fs::write(&data, &bytes).unwrap();

    // Rotation keeps data readable; retiring old keys leaves one key.
    let before = std::fs::read(&data).unwrap();
    let out = ok(&theta(&["keys", "rotate", "--store", s, "--retire-old"]));
    assert!(out.contains("re-wrapped 1 data keys"), "{out}");
    assert_eq!(std::fs::read(&data).unwrap(), before, "data untouched");
    let ring: Value = serde_json::from_slice(&std::fs::read(&keys).unwrap()).unwrap();
    assert_eq!(ring["keys"].as_array().unwrap().len(), 1);
    ok(&theta(&[
        "window",
        "--store",
        s,
        "--recording",
        &id,
        "--start",
        "0",
        "--duration",
        "1",
    ]));

    // Shredding.
    ok(&theta(&["shred", "--store", s, "--recording", &id]));
    let ls: Value = serde_json::from_str(&ok(&theta(&["ls", "--store", s, "--json"]))).unwrap();
    assert_eq!(ls[0]["status"]["status"], "shredded");
    let out = theta(&[
        "window",
        "--store",
        s,
        "--recording",
        &id,
        "--start",
        "0",
        "--duration",
        "1",
    ]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("shredded"));
    ok(&theta(&["verify", "--store", s]));
}

#[test]
fn ingest_real_files_then_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("eeg");
    let s = store.to_str().unwrap();
    ok(&theta(&["init", "--store", s, "--env", "test"]));
    let eeg = theta_fixtures::shared_eeg_dir();
    let files = [
        eeg.join("test_utf8.edf"),
        eeg.join("Newtest17-256.bdf"),
        eeg.join("test_reduced.edf"),
    ];
    let mut args = vec!["ingest", "--store", s, "--tenant", "hospital-a"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = ok(&theta(&args));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (l, f) in lines.iter().zip(&names) {
        assert_eq!(l["file"], f.as_str());
        for key in [
            "recording_id",
            "signals",
            "duration",
            "raw_bytes",
            "stored_bytes",
        ] {
            assert!(!l[key].is_null(), "{key} in {l}");
        }
    }
    assert_eq!(lines[0]["signals"], 1);
    assert_eq!(lines[0]["duration"], 698.0);
    assert_eq!(lines[1]["signals"], 17);
    assert_eq!(lines[2]["signals"], 139);
    let raw = std::fs::metadata(&files[0]).unwrap().len();
    assert_eq!(lines[0]["raw_bytes"], raw);

    // The first samples of test_utf8.edf's Fp1, by label, against the golden file.
    let golden: Value =
        serde_json::from_slice(&std::fs::read(eeg.join("test_utf8.edf.golden.json")).unwrap())
            .unwrap();
    let first16: Vec<i64> = golden["signals"][0]["first_digital"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let id = lines[0]["recording_id"].as_str().unwrap();
    let js: Value = serde_json::from_str(&ok(&theta(&[
        "window",
        "--store",
        s,
        "--recording",
        id,
        "--start",
        "0",
        "--duration",
        "0.125",
        "--channels",
        "Fp1",
        "--format",
        "json",
    ])))
    .unwrap();
    let got: Vec<i64> = js["blocks"][0]["data"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(got, first16);

    // test_reduced.edf has 10 rates: one block per rate.
    let id = lines[2]["recording_id"].as_str().unwrap();
    let js: Value = serde_json::from_str(&ok(&theta(&[
        "window",
        "--store",
        s,
        "--recording",
        id,
        "--start",
        "1",
        "--duration",
        "2",
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(js["blocks"].as_array().unwrap().len(), 10);

    let ls: Value = serde_json::from_str(&ok(&theta(&["ls", "--store", s, "--json"]))).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 3);
    assert!(
        ls.as_array()
            .unwrap()
            .iter()
            .all(|r| r["tenant"] == "hospital-a")
    );
    ok(&theta(&["verify", "--store", s]));

    // A bad file among good ones: exit 2, and nothing is ingested.
    let bad = dir.path().join("bad.edf");
    std::fs::write(&bad, b"0       this is not an EDF header").unwrap();
    let out = theta(&["ingest", "--store", s, &names[0], bad.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.edf"));
    let ls: Value = serde_json::from_str(&ok(&theta(&["ls", "--store", s, "--json"]))).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 3, "nothing changed");
}
