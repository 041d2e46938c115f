//! BIDS-EEG output: per recording `sub-<s>/ses-<e>/eeg/` with the EDF+/BDF+ file (written by the
//! engine's EDF writer), `_eeg.json`, `_channels.tsv`, `_events.tsv`; at the top
//! `dataset_description.json`, `participants.tsv` and `.json`, `README`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;
use theta_engine::edf::{ChannelType, EdfWriterBuilder, Format, SignalHeader, channel_type};
use theta_engine::store::{Annotation, SampleWidth};
use tokio::runtime::Handle;

use super::io::{fresh_partial_dir, io_err, write_atomic};
use super::plan::Planned;
use super::pseudo::{anonymised_patient_field, anonymised_recording_field};
use super::{ExportError, ExportSpec};

/// BIDS version the sidecars follow.
const BIDS_VERSION: &str = "1.8.0";

fn stem(p: &Planned, spec: &ExportSpec) -> String {
    format!("sub-{}_ses-{}_task-{}", p.subject, p.session, spec.task)
}

/// The folder of a recording's files.
pub(crate) fn recording_dir(out: &Path, p: &Planned) -> PathBuf {
    out.join(format!("sub-{}", p.subject))
        .join(format!("ses-{}", p.session))
        .join("eeg")
}

/// Whether a recording is already complete (its folder is renamed into place last).
pub(crate) fn is_done(out: &Path, p: &Planned) -> bool {
    recording_dir(out, p).is_dir()
}

/// Whether the recording needs BDF (24-bit samples).
fn is_bdf(p: &Planned) -> bool {
    p.rec
        .signals()
        .iter()
        .any(|s| s.width == SampleWidth::Bits24)
}

/// Writes one recording's folder. Runs on a blocking thread; `handle` drives the store reads.
pub(crate) fn write_recording(
    out: &Path,
    p: &Planned,
    spec: &ExportSpec,
    handle: &Handle,
    on_bytes: &dyn Fn(u64),
) -> Result<(), ExportError> {
    let final_dir = recording_dir(out, p);
    let tmp = fresh_partial_dir(&final_dir)?;

    let stem = stem(p, spec);
    let bdf = is_bdf(p);
    let data_name = format!("{stem}_eeg.{}", if bdf { "bdf" } else { "edf" });
    write_edf(&tmp.join(&data_name), p, bdf, handle, on_bytes)?;
    write_atomic(&tmp.join(format!("{stem}_eeg.json")), &eeg_json(p, spec))?;
    write_atomic(&tmp.join(format!("{stem}_channels.tsv")), &channels_tsv(p))?;
    write_atomic(
        &tmp.join(format!("{stem}_events.tsv")),
        &events_tsv(&p.annotations),
    )?;
    fs::rename(&tmp, &final_dir).map_err(io_err(&final_dir))?;
    Ok(())
}

fn write_edf(
    path: &Path,
    p: &Planned,
    bdf: bool,
    handle: &Handle,
    on_bytes: &dyn Fn(u64),
) -> Result<(), ExportError> {
    let rec = &p.rec;
    let tl = rec.timeline();
    let discontinuous = tl.segments().len() > 1;
    let format = match (bdf, discontinuous) {
        (false, false) => Format::EdfPlusC,
        (false, true) => Format::EdfPlusD,
        (true, false) => Format::BdfPlusC,
        (true, true) => Format::BdfPlusD,
    };
    let signals: Vec<SignalHeader> = rec
        .signals()
        .iter()
        .map(|s| {
            let mut h = SignalHeader::new(
                ascii(&p.masker.mask(&s.label)),
                s.samples_per_record as usize,
                (s.digital_min, s.digital_max),
                (s.physical_min, s.physical_max),
                ascii(&s.physical_dimension),
            );
            h.transducer = ascii(&p.masker.mask(&s.transducer));
            h.prefilter = ascii(&p.masker.mask(&s.prefilter));
            h
        })
        .collect();
    let start = p.edf_start();
    let annotations: Vec<theta_engine::edf::Annotation> = p
        .annotations
        .iter()
        .map(|a| theta_engine::edf::Annotation {
            onset: a.onset,
            duration: a.duration,
            text: if a.text.is_empty() {
                "n/a".into()
            } else {
                a.text.clone()
            },
        })
        .collect();
    let encode_err = |e: theta_engine::edf::EdfError| ExportError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut writer = EdfWriterBuilder::new(format, start, tl.record_duration())
        // EDF+ anonymised identification: the pseudonym as patient code, everything else X.
        .with_patient_raw(anonymised_patient_field(
            &format!("sub-{}", p.subject),
            p.sex,
        ))
        .with_recording_raw(anonymised_recording_field(p.start.map(|s| s.date())))
        .with_signals(signals)
        .with_annotations(annotations)
        .with_expected_records(tl.num_records())
        .create(path)
        .map_err(encode_err)?;
    let spr: Vec<u32> = rec.signals().iter().map(|s| s.samples_per_record).collect();
    let width = if bdf { 3 } else { 2 };
    for b in 0..rec.blocks() {
        let block = handle.block_on(rec.read_block(b))?;
        let mut samples = 0u64;
        for r in block.records.clone() {
            let record: Vec<&[i32]> = (0..spr.len()).map(|s| block.record(s, r, spr[s])).collect();
            samples += record.iter().map(|x| x.len() as u64).sum::<u64>();
            if discontinuous {
                writer
                    .write_record_at(tl.record_onset(r), &record)
                    .map_err(encode_err)?;
            } else {
                writer.write_record(&record).map_err(encode_err)?;
            }
        }
        on_bytes(samples * width);
    }
    let file = writer.finish().map_err(encode_err)?;
    file.into_inner()
        .map_err(|e| io_err(path)(e.into_error()))?
        .sync_all()
        .map_err(io_err(path))?;
    Ok(())
}

/// EDF header text must be printable ASCII: anything else becomes `_`.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A TSV cell: no tabs or line breaks, `n/a` when empty.
fn cell(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if matches!(c, '\t' | '\n' | '\r') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let t = t.trim();
    if t.is_empty() {
        "n/a".into()
    } else {
        t.to_string()
    }
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "n/a".into()
    }
}

/// BIDS unit text: SI symbols with the micro sign.
fn bids_unit(u: &str) -> String {
    match u.trim() {
        "" => "n/a".into(),
        "uV" | "uv" | "µV" | "μV" => "µV".into(),
        "mv" => "mV".into(),
        other => cell(other),
    }
}

/// Cut-offs from an EDF prefilter text such as `HP:0.1Hz LP:70Hz N:50Hz`.
fn cutoffs(prefilter: &str) -> (Option<f64>, Option<f64>, Option<f64>) {
    let mut hp = None;
    let mut lp = None;
    let mut notch = None;
    for tok in prefilter.split_whitespace() {
        let upper = tok.to_ascii_uppercase();
        let Some((k, v)) = upper.split_once(':') else {
            continue;
        };
        let v = v.trim_end_matches("HZ");
        let value = if v == "DC" {
            Some(0.0)
        } else {
            v.parse::<f64>().ok()
        };
        let value = value.filter(|x| x.is_finite() && *x >= 0.0);
        match k {
            "HP" => hp = value,
            "LP" => lp = value,
            "N" | "NOTCH" => notch = value,
            _ => {}
        }
    }
    (hp, lp, notch)
}

fn channels_tsv(p: &Planned) -> Vec<u8> {
    let rd = p.rec.timeline().record_duration();
    let mut out = String::from(
        "name\ttype\tunits\tsampling_frequency\tlow_cutoff\thigh_cutoff\tnotch\tstatus\n",
    );
    for s in p.rec.signals() {
        let (hp, lp, notch) = cutoffs(&s.prefilter);
        let opt = |x: Option<f64>| x.map_or_else(|| "n/a".to_string(), num);
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\tgood\n",
            cell(&ascii(&p.masker.mask(&s.label))),
            channel_type(&s.label, &s.transducer, &s.physical_dimension).as_str(),
            bids_unit(&s.physical_dimension),
            num(s.sample_rate(rd)),
            opt(hp),
            opt(lp),
            opt(notch),
        ));
    }
    out.into_bytes()
}

fn events_tsv(annotations: &[Annotation]) -> Vec<u8> {
    let mut out = String::from("onset\tduration\ttrial_type\n");
    for a in annotations {
        out.push_str(&format!(
            "{}\t{}\t{}\n",
            num(a.onset),
            a.duration.map_or_else(|| "n/a".to_string(), num),
            cell(&a.text),
        ));
    }
    out.into_bytes()
}

fn eeg_json(p: &Planned, spec: &ExportSpec) -> Vec<u8> {
    let rd = p.rec.timeline().record_duration();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut eeg_rates: Vec<f64> = Vec::new();
    for s in p.rec.signals() {
        let t = channel_type(&s.label, &s.transducer, &s.physical_dimension);
        let key = match t {
            ChannelType::Eeg => {
                eeg_rates.push(s.sample_rate(rd));
                "EEGChannelCount"
            }
            ChannelType::Eog => "EOGChannelCount",
            ChannelType::Ecg => "ECGChannelCount",
            ChannelType::Emg => "EMGChannelCount",
            ChannelType::Trig => "TriggerChannelCount",
            _ => "MiscChannelCount",
        };
        *counts.entry(key).or_default() += 1;
    }
    // The EEG channels' rate (the highest when they differ; channels.tsv has each one), or
    // the highest of all when no channel is EEG.
    let highest = |rates: &mut dyn Iterator<Item = f64>| rates.fold(0.0_f64, f64::max);
    let rate = if eeg_rates.is_empty() {
        highest(&mut p.rec.signals().iter().map(|s| s.sample_rate(rd)))
    } else {
        highest(&mut eeg_rates.into_iter())
    };
    let mut v = json!({
        "TaskName": spec.task,
        "EEGReference": "n/a",
        "SamplingFrequency": rate,
        "PowerLineFrequency": spec.power_line_hz,
        "SoftwareFilters": "n/a",
        "RecordingDuration": p.rec.duration(),
        "RecordingType": if p.rec.timeline().segments().len() > 1 { "discontinuous" } else { "continuous" },
    });
    for key in [
        "EEGChannelCount",
        "EOGChannelCount",
        "ECGChannelCount",
        "EMGChannelCount",
        "MiscChannelCount",
        "TriggerChannelCount",
    ] {
        v[key] = json!(counts.get(key).copied().unwrap_or(0));
    }
    serde_json::to_vec_pretty(&v).expect("JSON values serialise")
}

/// Writes the dataset-level files from every planned recording of the cohort.
pub(crate) fn write_dataset(
    out: &Path,
    planned: &[Planned],
    spec: &ExportSpec,
) -> Result<(), ExportError> {
    let mut description = json!({
        "Name": spec.project,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "GeneratedBy": [{
            "Name": "Theta",
            "Version": env!("CARGO_PKG_VERSION"),
            "Description": "Pseudonymised export: keyed subject ids, shifted or removed dates, masked annotations",
        }],
    });
    if !spec.authors.is_empty() {
        description["Authors"] = json!(spec.authors.iter().map(|a| a.trim()).collect::<Vec<_>>());
    }
    write_atomic(
        &out.join("dataset_description.json"),
        &serde_json::to_vec_pretty(&description).expect("JSON values serialise"),
    )?;

    // One row per subject: sex, and the age band at the subject's earliest recording.
    let mut subjects: BTreeMap<&str, &Planned> = BTreeMap::new();
    for p in planned {
        let keep = subjects
            .get(p.subject.as_str())
            .is_none_or(|q| (p.start, &p.session) < (q.start, &q.session));
        if keep {
            subjects.insert(&p.subject, p);
        }
    }
    let mut tsv = String::from("participant_id\tsex\tage_band\n");
    for (s, p) in &subjects {
        tsv.push_str(&format!(
            "sub-{s}\t{}\t{}\n",
            p.sex.map_or("n/a", |x| x.bids()),
            p.age_band.as_deref().unwrap_or("n/a"),
        ));
    }
    write_atomic(&out.join("participants.tsv"), tsv.as_bytes())?;
    let participants = json!({
        "participant_id": {"Description": "Keyed pseudonym of the subject (HMAC-SHA-256 with the project's secret); stable within the project, unlinkable across projects"},
        "sex": {"Description": "Sex as recorded in the source EDF+ header", "Levels": {"M": "male", "F": "female"}},
        "age_band": {"Description": "Age at the subject's earliest recording in the export, in 5-year bands (90+ top-coded)", "Units": "year"},
    });
    write_atomic(
        &out.join("participants.json"),
        &serde_json::to_vec_pretty(&participants).expect("JSON values serialise"),
    )?;
    let readme = format!(
        "# {}\n\nPseudonymised EEG exported by Theta {}.\n\n\
         Subject and session labels are keyed pseudonyms of the project; recording dates are {}; \
         identifying text in annotations is masked; EDF header identification fields follow the \
         EDF+ anonymised form. The mapping back to source identities is kept sealed in the \
         source store and is not part of this dataset.\n",
        spec.project.replace(['\n', '\r'], " "),
        env!("CARGO_PKG_VERSION"),
        match spec.dates {
            super::DatePolicy::Shift => "shifted by a secret number of days per subject",
            super::DatePolicy::Remove => "removed (EDF+ start date 01.01.85, time of day kept)",
        },
    );
    write_atomic(&out.join("README"), readme.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefilter_cutoffs() {
        assert_eq!(
            cutoffs("HP:0.1Hz LP:70Hz N:50Hz"),
            (Some(0.1), Some(70.0), Some(50.0))
        );
        assert_eq!(cutoffs("HP:DC LP:100Hz"), (Some(0.0), Some(100.0), None));
        assert_eq!(cutoffs("none"), (None, None, None));
        assert_eq!(cutoffs("HP:-1Hz LP:abc"), (None, None, None));
    }

    #[test]
    fn tsv_cells_are_single_line() {
        assert_eq!(cell("a\tb\nc"), "a b c");
        assert_eq!(cell("  "), "n/a");
        assert_eq!(bids_unit("uV"), "µV");
        assert_eq!(ascii("µV é"), "_V _");
    }
}
