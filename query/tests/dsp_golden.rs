//! DSP against SciPy 1.17 golden vectors computed on real EEG (`../shared/golden/dsp_scipy.json`).
//!
//! Tolerances (from issue 5): designs within 1e-10 per coefficient, sections compared in order;
//! `sosfilt`, `sosfiltfilt` (odd padding and none) and Welch within 1e-9 of the reference's peak
//! magnitude. Also `resample_poly` against a small SciPy vector generated in `tests/data/`.

use serde_json::Value;
use theta_query::dsp::{BandType, FiltFiltPad, Sos, Welch, butter, iirnotch, sosfilt, sosfiltfilt};

fn golden() -> Value {
    let path = theta_fixtures::scipy_golden_path();
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden JSON parses")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn rows(v: &Value) -> Vec<[f64; 6]> {
    v.as_array()
        .expect("sos rows")
        .iter()
        .map(|r| floats(r).try_into().expect("6 coefficients"))
        .collect()
}

fn btype(s: &str) -> BandType {
    match s {
        "lowpass" => BandType::Lowpass,
        "highpass" => BandType::Highpass,
        "bandpass" => BandType::Bandpass,
        "bandstop" => BandType::Bandstop,
        other => panic!("unknown btype {other}"),
    }
}

fn assert_sections(got: &Sos, want: &[[f64; 6]], what: &str) {
    assert_eq!(got.n_sections(), want.len(), "{what}: section count");
    for (i, (g, w)) in got.sections().iter().zip(want).enumerate() {
        for j in 0..6 {
            assert!(
                (g[j] - w[j]).abs() <= 1e-10,
                "{what}: section {i} coefficient {j}: got {} want {} (got {g:?} want {w:?})",
                g[j],
                w[j]
            );
        }
    }
}

fn max_err(got: &[f64], want: &[f64]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let peak = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    (err, peak)
}

#[test]
fn every_design_matches_scipy() {
    let g = golden();
    let designs = g["designs"].as_array().unwrap();
    let mut n = 0;
    for d in designs {
        let fs = d["fs"].as_f64().unwrap();
        if let Some(notch) = d.get("notch") {
            let (f0, q) = (notch.as_f64().unwrap(), d["q"].as_f64().unwrap());
            let sos = iirnotch(f0, q, fs).unwrap();
            let (b, a) = (floats(&d["b"]), floats(&d["a"]));
            let mut row = [0.0; 6];
            row[..3].copy_from_slice(&b);
            row[3..].copy_from_slice(&a);
            assert_sections(&sos, &[row], &format!("iirnotch({f0}, Q={q}, fs={fs})"));
        } else {
            let order = d["order"].as_u64().unwrap() as usize;
            let wn = match &d["wn"] {
                Value::Array(_) => floats(&d["wn"]),
                v => vec![v.as_f64().unwrap()],
            };
            let bt = d["btype"].as_str().unwrap();
            let sos = butter(order, &wn, btype(bt), fs).unwrap();
            assert_sections(
                &sos,
                &rows(&d["sos"]),
                &format!("butter({order}, {wn:?}, {bt}, fs={fs})"),
            );
        }
        n += 1;
    }
    assert_eq!(n, designs.len());
    assert!(n >= 300, "expected the full design table, got {n}");
}

/// Rebuild a filter case's design from its SciPy call text.
fn design_from_text(text: &str, fs: f64) -> Sos {
    let args = &text[text.find('(').unwrap() + 1..text.rfind(')').unwrap()];
    if text.contains("iirnotch") {
        let (f0, q) = args.split_once(',').unwrap();
        let q = q.trim().trim_start_matches("Q=");
        return iirnotch(f0.trim().parse().unwrap(), q.parse().unwrap(), fs).unwrap();
    }
    let (order, rest) = args.split_once(',').unwrap();
    let (wn, bt) = rest.rsplit_once(',').unwrap();
    let wn: Vec<f64> = wn
        .trim()
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect();
    butter(
        order.trim().parse().unwrap(),
        &wn,
        btype(bt.trim().trim_matches('\'')),
        fs,
    )
    .unwrap()
}

#[test]
fn every_filter_case_matches_scipy() {
    let g = golden();
    let cases = g["filters"].as_array().unwrap();
    for c in cases {
        let what = format!(
            "{} / {}",
            c["source"].as_str().unwrap(),
            c["design"].as_str().unwrap()
        );
        let fs = c["fs"].as_f64().unwrap();
        let want_sos = rows(&c["sos"]);
        assert_sections(
            &design_from_text(c["design"].as_str().unwrap(), fs),
            &want_sos,
            &what,
        );
        let sos = Sos::try_new(want_sos).unwrap();
        let x = floats(&c["x"]);

        let (y, _) = sosfilt(&sos, &x, None).unwrap();
        let (err, peak) = max_err(&y, &floats(&c["sosfilt"]));
        assert!(err <= 1e-9 * peak, "{what}: sosfilt err {err} peak {peak}");

        let y = sosfiltfilt(&sos, &x, FiltFiltPad::Odd).unwrap();
        let (err, peak) = max_err(&y, &floats(&c["sosfiltfilt_odd"]));
        assert!(
            err <= 1e-9 * peak,
            "{what}: sosfiltfilt odd err {err} peak {peak}"
        );

        let y = sosfiltfilt(&sos, &x, FiltFiltPad::None).unwrap();
        let (err, peak) = max_err(&y, &floats(&c["sosfiltfilt_nopad"]));
        assert!(
            err <= 1e-9 * peak,
            "{what}: sosfiltfilt nopad err {err} peak {peak}"
        );
    }
    assert!(cases.len() >= 30);
}

#[test]
fn every_welch_case_matches_scipy() {
    let g = golden();
    let cases = g["welch"].as_array().unwrap();
    for c in cases {
        let call = c["call"].as_str().unwrap();
        let arg = |name: &str| -> usize {
            let at = call.find(&format!("{name}=")).unwrap() + name.len() + 1;
            call[at..]
                .split(|ch: char| !ch.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let fs = c["fs"].as_f64().unwrap();
        let x = floats(&c["x"]);
        let mut welch = Welch::try_new(fs, arg("nperseg"), arg("noverlap")).unwrap();
        let psd = welch.psd(&x).unwrap();
        let (err, peak) = max_err(&psd.freqs, &floats(&c["f"]));
        assert!(err <= 1e-12 * peak, "{call}: frequencies");
        let (err, peak) = max_err(&psd.density, &floats(&c["pxx"]));
        assert!(err <= 1e-9 * peak, "{call}: pxx err {err} peak {peak}");
    }
    assert_eq!(cases.len(), 8);
}

#[test]
fn resample_matches_scipy_resample_poly() {
    // Generated by query/tests/data/gen_resample_poly.py (SciPy 1.17).
    let g: Value = serde_json::from_str(include_str!("data/resample_poly_scipy.json")).unwrap();
    let x: Vec<f64> = (0..300)
        .map(|i| {
            let f = i as f64;
            (0.05 * f).sin() * 40.0 + (0.31 * f).cos() * 15.0 + (i % 7) as f64 - 3.0 + 100.0
        })
        .collect();
    for c in g["cases"].as_array().unwrap() {
        let (up, down) = (
            c["up"].as_u64().unwrap() as usize,
            c["down"].as_u64().unwrap() as usize,
        );
        let y = theta_query::dsp::Resampler::try_new(up, down)
            .unwrap()
            .process(&x);
        let (err, peak) = max_err(&y, &floats(&c["y"]));
        assert!(
            err <= 1e-9 * peak,
            "resample {up}/{down}: err {err} peak {peak}"
        );
    }
}
