//! End-to-end tests of processed pages and spectra through the `theta` binary on real recordings
//! ingested into a temporary encrypted store: `theta window --montage/--highpass/--lowpass/
//! --notch/--causal/--px` and `theta psd`.
//!
//! References are computed here, in Rust, from the raw channels the same binary reads back
//! (`theta window --units physical`): the montage by hand, the filter with the SciPy-validated
//! `sosfiltfilt` / `sosfilt` over the whole channel, cropped to the page.

use std::path::Path;
use std::process::Output;

use crate::support::{cli_store, ok, theta};
use serde_json::Value;
use theta_query::dsp::{
    FiltFiltPad, FilterSpec, Welch, minmax_columns, sosfilt, sosfilt_zi, sosfiltfilt,
};
use theta_query::montage::DOUBLE_BANANA;

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON on stdout")
}

/// A store in `dir` holding one real file from the shared folder; returns (store, recording id).
fn ingest(dir: &Path, file: &str) -> (String, String) {
    let (s, mut ids) = cli_store(dir, &[(file, "hospital-a")]);
    (s, ids.remove(0))
}

/// Raw physical channels `labels` over `[start, start + duration)`, by label, from the binary.
fn raw(store: &str, id: &str, start: f64, duration: f64, labels: &[&str]) -> Vec<Vec<f64>> {
    let v = json(&theta(&[
        "window",
        "--store",
        store,
        "--recording",
        id,
        "--start",
        &start.to_string(),
        "--duration",
        &duration.to_string(),
        "--channels",
        &labels.join(","),
        "--units",
        "physical",
        "--format",
        "json",
    ]));
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "one rate");
    blocks[0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn rows(v: &Value, key: &str) -> Vec<(String, Vec<f64>)> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["label"].as_str().unwrap().to_string(),
                r[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `theta window` arguments for a page with every bit of its values (`--precision full`): the
/// references here are exact to the last bits of f64 arithmetic.
fn window_args<'a>(store: &'a str, id: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    precision_args(store, id, "full", extra)
}

/// `theta window` arguments with the JSON precision given.
fn precision_args<'a>(
    store: &'a str,
    id: &'a str,
    precision: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        "window",
        "--store",
        store,
        "--recording",
        id,
        "--precision",
        precision,
    ];
    a.extend_from_slice(extra);
    a
}

/// TUH clinical EEG (`EEG FP1-REF` … at 256 Hz, plus 1 Hz IBI/BURSTS/SUPPR): the double banana
/// equals the hand-computed differences of the raw referential channels, exactly, in ACNS order.
#[test]
fn double_banana_exact_on_real_tuh_file() {
    let dir = tempfile::tempdir().unwrap();
    let (s, id) = ingest(dir.path(), "00009578_s006_t001.edf");
    let page = [
        "--start",
        "5",
        "--duration",
        "10",
        "--montage",
        "double-banana",
        "--format",
        "json",
    ];
    let out = theta(&window_args(&s, &id, &page));
    let v = json(&out);
    assert_eq!(v["montage"], "double-banana");
    assert_eq!(v["sample_rate"], 256.0);
    assert_eq!(v["samples"], 2560);
    // The 1 Hz channels cannot form a bipolar derivation: nothing to warn about.
    assert_eq!(
        v["warnings"].as_array().unwrap().len(),
        0,
        "{}",
        v["warnings"]
    );
    let got = rows(&v, "data");
    let tuh = |e: &str| {
        let e = match e {
            "T7" => "T3",
            "T8" => "T4",
            "P7" => "T5",
            "P8" => "T6",
            e => e,
        };
        format!("EEG {}-REF", e.to_uppercase())
    };
    assert_eq!(got.len(), 18);
    for ((label, data), (a, b)) in got.iter().zip(DOUBLE_BANANA) {
        assert_eq!(label, &format!("{a}-{b}"));
        let (la, lb) = (tuh(a), tuh(b));
        let r = raw(&s, &id, 5.0, 10.0, &[&la, &lb]);
        assert_eq!(data.len(), r[0].len());
        // Exact up to the last bit of f64 rounding (the montage accumulates weighted terms).
        for (k, (g, (x, y))) in data.iter().zip(r[0].iter().zip(&r[1])).enumerate() {
            let tol = 4.0 * f64::EPSILON * (x.abs() + y.abs());
            assert!(
                (g - (x - y)).abs() <= tol,
                "{label} sample {k}: {g} vs {}",
                x - y
            );
        }
    }

    // The default precision: every value within 1/200 of the quantisation step of the full
    // one, in about a third of the bytes.
    let auto_out = theta(&precision_args(&s, &id, "auto", &page));
    let auto = json(&auto_out);
    let step = auto["resolution"].as_f64().unwrap();
    assert!(step > 0.0 && step < 1.0, "{step} µV");
    assert_eq!(
        auto["decimals"],
        (-(step / 100.0).log10() - 1e-9).ceil() as u64
    );
    assert!(v["decimals"].is_null());
    for ((label, data), (_, rounded)) in got.iter().zip(rows(&auto, "data")) {
        for (k, (x, r)) in data.iter().zip(&rounded).enumerate() {
            assert!(
                (x - r).abs() <= step / 200.0,
                "{label} sample {k}: {x} → {r}"
            );
        }
    }
    assert!(auto_out.stdout.len() * 2 < out.stdout.len());

    // CSV: rows named in montage order in the header.
    let csv = ok(&theta(&window_args(
        &s,
        &id,
        &[
            "--start",
            "5",
            "--duration",
            "1",
            "--montage",
            "double-banana",
        ],
    )));
    let header = csv.lines().nth(1).unwrap();
    let expected: Vec<String> = std::iter::once("time".to_string())
        .chain(DOUBLE_BANANA.iter().map(|(a, b)| format!("{a}-{b}")))
        .collect();
    assert_eq!(header, expected.join(","));
    assert_eq!(csv.lines().count(), 2 + 256);
}

/// A custom montage naming an electrode the recording lacks keeps the other derivations and
/// warns (stderr and JSON); a selection without O1 loses the derivations that need it.
#[test]
fn missing_derivation_warns_and_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let (s, id) = ingest(dir.path(), "00009578_s006_t001.edf");
    let montage = dir.path().join("custom.json");
    std::fs::write(
        &montage,
        r#"{"name": "mixed", "derivations": [
            {"label": "Cz-Oz", "terms": {"Cz": 1, "Oz": -1}},
            {"label": "C3-avgC", "terms": {"C3": 1, "Cz": -0.5, "C4": -0.5}}
        ]}"#,
    )
    .unwrap();
    let out = theta(&window_args(
        &s,
        &id,
        &[
            "--start",
            "0",
            "--duration",
            "2",
            "--montage",
            montage.to_str().unwrap(),
            "--format",
            "json",
        ],
    ));
    let v = json(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("derivation Cz-Oz left out: missing Oz"),
        "{stderr}"
    );
    assert_eq!(v["warnings"][0], "derivation Cz-Oz left out: missing Oz");
    let got = rows(&v, "data");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "C3-avgC");
    let r = raw(
        &s,
        &id,
        0.0,
        2.0,
        &["EEG C3-REF", "EEG CZ-REF", "EEG C4-REF"],
    );
    for (k, g) in got[0].1.iter().enumerate() {
        let want = r[0][k] - 0.5 * r[1][k] - 0.5 * r[2][k];
        assert!((g - want).abs() <= 1e-12 * want.abs().max(1.0), "{k}");
    }

    // A selection without O1 and O2: four derivations of the double banana go.
    let chans =
        "EEG FP1-REF,EEG F7-REF,EEG T3-REF,EEG T5-REF,EEG FP2-REF,EEG F8-REF,EEG T4-REF,EEG T6-REF";
    let out = theta(&window_args(
        &s,
        &id,
        &[
            "--start",
            "0",
            "--duration",
            "2",
            "--montage",
            "double-banana",
            "--channels",
            chans,
            "--format",
            "json",
        ],
    ));
    let v = json(&out);
    let labels: Vec<String> = rows(&v, "data").into_iter().map(|r| r.0).collect();
    assert_eq!(
        labels,
        ["Fp1-F7", "F7-T7", "T7-P7", "Fp2-F8", "F8-T8", "T8-P8"]
    );
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings.contains(&"derivation P7-O1 left out: missing O1"),
        "{warnings:?}"
    );
    assert!(
        warnings.contains(&"derivation P8-O2 left out: missing O2"),
        "{warnings:?}"
    );
    assert_eq!(warnings.len(), 18 - 6);

    // As recorded with a filter over every channel: the page keeps the 256 Hz channels and says
    // which 1 Hz channels it left out.
    let out = theta(&window_args(
        &s,
        &id,
        &[
            "--start",
            "0",
            "--duration",
            "4",
            "--highpass",
            "1",
            "--format",
            "json",
        ],
    ));
    let v = json(&out);
    assert_eq!(v["sample_rate"], 256.0);
    assert_eq!(v["rows"].as_array().unwrap().len(), 24);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "channels at 1 Hz left out (a page holds one sample rate): IBI, BURSTS, SUPPR"
        ),
        "{stderr}"
    );

    // No derivation at all: a clear error, exit 2.
    let out = theta(&window_args(
        &s,
        &id,
        &[
            "--start",
            "0",
            "--duration",
            "2",
            "--montage",
            "double-banana",
            "--channels",
            "IBI",
        ],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no derivation"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// eegmmidb run (64 ch, 128 Hz, 124 s): a filtered page equals `sosfiltfilt` of the cascade over
/// the whole channel, cropped to the page, within 1e-6 of the page's RMS: inside the recording
/// (real-data padding) and at both ends (odd reflection as SciPy).
#[test]
fn filtered_pages_equal_whole_recording_filter() {
    let dir = tempfile::tempdir().unwrap();
    let (s, id) = ingest(dir.path(), "test_edf_overlapping_annotations.edf");
    let fs = 128.0;
    let labels = ["Cz..", "Fp1.", "O1..", "T7.."];
    let whole = raw(&s, &id, 0.0, 124.0, &labels);
    assert_eq!(whole[0].len(), 124 * 128);
    let spec = FilterSpec {
        highpass: Some(0.5),
        lowpass: Some(40.0),
        notch: vec![50.0],
        ..FilterSpec::default()
    };
    let sos = spec.build(fs).unwrap();
    let reference: Vec<Vec<f64>> = whole
        .iter()
        .map(|x| sosfiltfilt(&sos, x, FiltFiltPad::Odd).unwrap())
        .collect();

    for (start, duration) in [(50.0, 20.0), (0.0, 10.0), (114.0, 10.0), (30.5, 7.25)] {
        let (st, du) = (format!("{start}"), format!("{duration}"));
        let v = json(&theta(&window_args(
            &s,
            &id,
            &[
                "--start",
                &st,
                "--duration",
                &du,
                "--channels",
                &labels.join(","),
                "--highpass",
                "0.5",
                "--lowpass",
                "40",
                "--notch",
                "50",
                "--format",
                "json",
            ],
        )));
        let got = rows(&v, "data");
        let a = (start * fs) as usize;
        let b = a + (duration * fs) as usize;
        assert_eq!(v["first_sample"], a);
        for (row, (label, data)) in got.iter().enumerate() {
            assert_eq!(label, ["Cz", "Fp1", "O1", "T7"][row]);
            let want = &reference[row][a..b];
            let err = max_abs_diff(data, want);
            assert!(
                err <= 1e-6 * rms(want),
                "page {start}+{duration} {label}: {err} vs rms {}",
                rms(want)
            );
        }
        if start == 50.0 {
            // Interior page: the padding came from the recording, not from reflection.
            assert!(v["padding"][0].as_u64().unwrap() > 1000, "{}", v["padding"]);
            assert!(v["padding"][1].as_u64().unwrap() > 1000, "{}", v["padding"]);
        }
    }

    // Montage + filter + min/max per pixel: the derivation of the filtered channels, decimated.
    let full = json(&theta(&window_args(
        &s,
        &id,
        &[
            "--start",
            "50",
            "--duration",
            "20",
            "--montage",
            "double-banana",
            "--highpass",
            "0.5",
            "--lowpass",
            "40",
            "--notch",
            "50",
            "--px",
            "300",
            "--format",
            "json",
        ],
    )));
    let mins = rows(&full, "min");
    let maxs = rows(&full, "max");
    assert_eq!(mins.len(), 18);
    for (i, (a_l, b_l)) in DOUBLE_BANANA.iter().enumerate().take(4) {
        let la = format!("{a_l}..").chars().take(4).collect::<String>();
        let lb = format!("{b_l}..").chars().take(4).collect::<String>();
        let r = raw(&s, &id, 0.0, 124.0, &[&la, &lb]);
        let d: Vec<f64> = r[0].iter().zip(&r[1]).map(|(x, y)| x - y).collect();
        let f = sosfiltfilt(&sos, &d, FiltFiltPad::Odd).unwrap();
        let page = &f[50 * 128..70 * 128];
        let mm = minmax_columns(page, 300);
        let tol = 1e-6 * rms(page);
        assert!(max_abs_diff(&mins[i].1, &mm.min) <= tol, "{}", mins[i].0);
        assert!(max_abs_diff(&maxs[i].1, &mm.max) <= tol, "{}", maxs[i].0);
    }

    // Causal: sosfilt from the steady state of the first sample, over the whole channel.
    let v = json(&theta(&window_args(
        &s,
        &id,
        &[
            "--start",
            "60",
            "--duration",
            "5",
            "--channels",
            "Cz..",
            "--highpass",
            "0.5",
            "--lowpass",
            "40",
            "--notch",
            "50",
            "--causal",
            "--format",
            "json",
        ],
    )));
    let zi: Vec<[f64; 2]> = sosfilt_zi(&sos)
        .iter()
        .map(|z| [z[0] * whole[0][0], z[1] * whole[0][0]])
        .collect();
    let (y, _) = sosfilt(&sos, &whole[0], Some(&zi)).unwrap();
    let want = &y[60 * 128..65 * 128];
    let got = &rows(&v, "data")[0].1;
    assert!(max_abs_diff(got, want) <= 1e-6 * rms(want));

    // Invalid filter: a clear error naming the parameter, exit 2.
    let out = theta(&window_args(
        &s,
        &id,
        &["--start", "0", "--duration", "5", "--lowpass", "64"],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lowpass"));
}

/// `theta psd --json`: SciPy-semantics Welch of the raw channel, and band powers.
#[test]
fn psd_matches_welch_of_the_raw_channel() {
    let dir = tempfile::tempdir().unwrap();
    let (s, id) = ingest(dir.path(), "test_edf_overlapping_annotations.edf");
    let v = json(&theta(&[
        "psd",
        "--store",
        &s,
        "--recording",
        &id,
        "--start",
        "10",
        "--duration",
        "30",
        "--channels",
        "O1..,Cz..",
        "--nperseg",
        "256",
        "--json",
    ]));
    let chans = v["channels"].as_array().unwrap();
    assert_eq!(chans.len(), 2);
    assert_eq!(chans[0]["label"], "O1..");
    assert_eq!(chans[1]["label"], "Cz..");
    let x = raw(&s, &id, 10.0, 30.0, &["O1..", "Cz.."]);
    for (c, x) in chans.iter().zip(&x) {
        let want = Welch::with_default_overlap(128.0, 256)
            .unwrap()
            .psd(x)
            .unwrap();
        let got: Vec<f64> = c["density"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), 129);
        let peak = want.density.iter().copied().fold(0.0, f64::max);
        assert!(max_abs_diff(&got, &want.density) <= 1e-12 * peak);
        let rel: f64 = ["delta", "theta", "alpha", "beta", "gamma"]
            .iter()
            .map(|b| c["bands"][b]["relative"].as_f64().unwrap())
            .sum();
        assert!((rel - 1.0).abs() < 1e-9, "{rel}");
    }
    // Default segment: 2 s at 128 Hz = 256 samples.
    let v = json(&theta(&[
        "psd",
        "--store",
        &s,
        "--recording",
        &id,
        "--start",
        "0",
        "--duration",
        "10",
        "--channels",
        "Cz..",
        "--json",
    ]));
    assert_eq!(v["channels"][0]["nperseg"], 256);
    // Too long a segment: exit 2.
    let out = theta(&[
        "psd",
        "--store",
        &s,
        "--recording",
        &id,
        "--start",
        "0",
        "--duration",
        "1",
        "--nperseg",
        "4096",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
