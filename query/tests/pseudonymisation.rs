//! Pseudonymisation pieces working together, as the export uses them: a subject seeded with
//! identifying data everywhere, and the identity fields of the real recordings in the shared
//! data folder.

use chrono::NaiveDate;
use theta_query::export::mask::TextMasker;
use theta_query::export::pseudo::{
    EdfPatient, EdfRecordingField, ProjectSecret, Pseudonymizer, Sex, age_band,
    anonymised_patient_field, anonymised_recording_field, patient_key,
};

const PATIENT: &str = "MCH-0234567 F 02-MAY-1951 Dupont-Leclerc_Marie-Éloïse née_Martin";
const RECORDING: &str =
    "Startdate 02-MAR-2013 PSG-1234/2013 Sophie_Bernard Nihon_Kohden_EEG-1200 ward_Lefebvre";

/// Annotations a clinician might type, each with something identifying.
const ANNOTATIONS: &[&str] = &[
    "Patiente Marie-Éloïse DUPONT-LECLERC, née le 02/05/1951, vue le 2 mars 2013",
    "Appeler Mme Martin au 06 12 34 56 78 ou +33 (0)1 42 34 56 78",
    "résultats à sophie.bernard@chu-lyon.fr — NIR 2 51 05 69 123 456 17",
    "IPP 00234567, examen demandé par Dr Lefebvre le 2013-03-01T09:15",
    "crise à 14:32, spike-wave 3 Hz sur Fp1-F7, HV 3 min, photic 14 Hz",
    "MCH-0234567 revue en March 12, 2013 par Bernard",
];

/// Strings of the source that must not survive anywhere (compared case- and accent-folded).
const FORBIDDEN: &[&str] = &[
    "dupont",
    "leclerc",
    "marie",
    "eloise",
    "martin",
    "sophie",
    "bernard",
    "lefebvre",
    "0234567",
    "1951",
    "02/05",
    "2 mars",
    "06 12 34",
    "42 34 56",
    "chu-lyon",
    "123 456",
    "00234567",
    "2013-03-01",
    "march 12",
    "psg-1234",
];

fn fold(s: &str) -> String {
    s.to_lowercase()
        .replace(['é', 'è', 'ê'], "e")
        .replace('ï', "i")
}

fn subject_masker() -> TextMasker {
    let patient = EdfPatient::parse(PATIENT);
    let recording = EdfRecordingField::parse(RECORDING);
    let mut tokens = patient.name_tokens();
    tokens.extend(recording.identifying_tokens());
    TextMasker::new(&tokens)
}

#[test]
fn nothing_identifying_survives() {
    let masker = subject_masker();
    let secret = ProjectSecret::from_bytes([7; 32]);
    let p = Pseudonymizer::new(&secret);
    let patient = EdfPatient::parse(PATIENT);
    let recording = EdfRecordingField::parse(RECORDING);

    let key = patient_key(PATIENT, "rec-1");
    let subject = p.subject_id(&key);
    let shift = chrono::Duration::days(p.date_offset_days(&key));
    let start = recording.startdate.map(|d| d + shift);

    let mut output = vec![
        anonymised_patient_field(&subject, patient.sex),
        anonymised_recording_field(start),
        age_band(patient.birthdate.unwrap(), recording.startdate.unwrap()).unwrap(),
    ];
    output.extend(ANNOTATIONS.iter().map(|a| masker.mask(a)));
    let all = fold(&output.join("\n"));
    for f in FORBIDDEN {
        assert!(!all.contains(&fold(f)), "{f:?} survives in:\n{all}");
    }
    // Source dates are gone; only the shifted start remains.
    assert!(
        !all.contains("02-mar-2013") && !all.contains("02-may-1951"),
        "{all}"
    );
    // Clinical content stays.
    assert!(all.contains("crise à 14:32, spike-wave 3 hz sur fp1-f7, hv 3 min, photic 14 hz"));
    assert_eq!(output[0], format!("{subject} F X X"));
    assert_eq!(output[2], "60-64");
}

#[test]
fn pseudonyms_are_stable_within_and_unlinkable_across_projects() {
    let a = Pseudonymizer::new(&ProjectSecret::from_bytes([1; 32]));
    let b = Pseudonymizer::new(&ProjectSecret::from_bytes([2; 32]));
    // Two recordings of one patient (sex written differently) are one subject.
    let k1 = patient_key(PATIENT, "rec-1");
    let k2 = patient_key("mch-0234567 X X X", "rec-2");
    assert_eq!(a.subject_id(&k1), a.subject_id(&k2));
    assert_eq!(a.date_offset_days(&k1), a.date_offset_days(&k2));
    assert_ne!(a.subject_id(&k1), b.subject_id(&k1));
    // Unknown patients are subjects of their own.
    let u1 = patient_key("X X X X", "rec-3");
    let u2 = patient_key("X X X X", "rec-4");
    assert_ne!(a.subject_id(&u1), a.subject_id(&u2));
    assert_ne!(a.session_id("rec-3"), a.session_id("rec-4"));
}

/// Words of the masker's stop list that the shared headers contain ("110 seconds from",
/// "Tech:X", "triggers_test", "Female_33yr"): identifying nobody, they are kept in annotations.
const COMMON: &[&str] = &["female", "from", "seconds", "tech", "test"];

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The identity fields of every real EDF/BDF file parse without panicking, and what they
/// name no longer appears once the fields are anonymised and the fields' own text is masked.
#[test]
fn real_headers() {
    let dir = theta_fixtures::shared_eeg_dir();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("shared EEG folder") {
        let path = entry.unwrap().path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ext != "edf" && ext != "bdf" {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        if bytes.len() < 168 {
            continue;
        }
        seen += 1;
        let patient_text = latin1(&bytes[8..88]);
        let recording_text = latin1(&bytes[88..168]);
        let patient = EdfPatient::parse(&patient_text);
        let recording = EdfRecordingField::parse(&recording_text);
        let mut tokens = patient.name_tokens();
        tokens.extend(recording.identifying_tokens());
        let masker = TextMasker::new(&tokens);

        let key = patient_key(&patient_text, path.file_name().unwrap().to_str().unwrap());
        let p = Pseudonymizer::new(&ProjectSecret::from_bytes([3; 32]));
        let anon_patient = anonymised_patient_field(&p.subject_id(&key), patient.sex);
        let anon_recording = anonymised_recording_field(recording.startdate);
        assert!(anon_patient.len() <= 80 && anon_patient.is_ascii());
        assert!(anon_recording.len() <= 80 && anon_recording.is_ascii());
        if let Some(name) = &patient.name {
            assert!(!anon_patient.contains(name.as_str()), "{}", path.display());
        }
        if let Some(bd) = patient.birthdate {
            assert!(!anon_patient.contains(&bd.format("%Y").to_string()));
        }
        // The name as it would be typed in an annotation is masked.
        for token in &tokens {
            let masked = masker.mask(&format!("note: {token}."));
            let words = token.split(|c: char| !c.is_alphanumeric());
            let kept_on_purpose = |w: &str| COMMON.contains(&w.to_lowercase().as_str());
            for w in words.filter(|w| {
                w.chars().filter(|c| c.is_alphabetic()).count() >= 4 && !kept_on_purpose(w)
            }) {
                assert!(
                    !masked.to_lowercase().contains(&w.to_lowercase()),
                    "{}: a header word survives masking",
                    path.display()
                );
            }
        }
        let _ = masker.mask(&patient_text);
        let _ = masker.mask(&recording_text);
    }
    assert!(seen >= 10, "only {seen} EDF/BDF files in {}", dir.display());
}

#[test]
fn real_header_forms() {
    // Forms found in the shared recordings.
    let p = EdfPatient::parse("00009578 M 01-JAN-1987 00009578 Age:26");
    assert_eq!(p.sex, Some(Sex::Male));
    assert_eq!(p.birthdate, NaiveDate::from_ymd_opt(1987, 1, 1));
    assert_eq!(p.additional, vec!["Age:26"]);
    let r = EdfRecordingField::parse("Startdate 02-MAR-2013 00009578_s006 00 #####");
    assert_eq!(r.admin_code.as_deref(), Some("00009578_s006"));
    let r = EdfRecordingField::parse("110 seconds from 13-JUL-2000 12.05.48hr.");
    assert_eq!(r.startdate, None);
    let masker = TextMasker::new(&r.identifying_tokens());
    assert_eq!(
        masker.mask("recorded 13-JUL-2000 from 12:05"),
        "recorded [DATE] from 12:05"
    );
}
