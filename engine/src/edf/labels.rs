//! Channel labels: the normalised 10-20/10-10 electrode name used to resolve montages, and the
//! channel type.
//!
//! Canonical names follow the modified combinatorial nomenclature (ACNS 2006): `T7`, `T8`, `P7`,
//! `P8`. The older names `T3`, `T4`, `T5`, `T6` normalise to them; [`label_alias`] gives the
//! other name of either spelling, so a viewer can show the one its readers are used to.
//!
//! A label normalises only when it names one electrode against a common reference: `EEG
//! Fp1-REF`, `FP1`, `Fp1-Ref`, `EEG FP1-LE`, `Fc5.` (BCI2000 dot padding). An explicit
//! two-electrode derivation (`Fpz-Cz`, `C3-A2`) names no single electrode and gives `None`; so
//! does anything not in the 10-10 system. The raw label is always kept by the reader.

use std::fmt;

/// What a channel records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelType {
    /// Electroencephalogram.
    Eeg,
    /// Electro-oculogram.
    Eog,
    /// Electrocardiogram.
    Ecg,
    /// Electromyogram.
    Emg,
    /// Respiration, airflow, effort belts, oximetry.
    Resp,
    /// Trigger, status or event-marker channel.
    Trig,
    /// Anything else.
    Misc,
}

impl ChannelType {
    /// The upper-case name used in JSON and displays (`EEG`, `TRIG`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Eeg => "EEG",
            ChannelType::Eog => "EOG",
            ChannelType::Ecg => "ECG",
            ChannelType::Emg => "EMG",
            ChannelType::Resp => "RESP",
            ChannelType::Trig => "TRIG",
            ChannelType::Misc => "MISC",
        }
    }
}

impl fmt::Display for ChannelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every electrode name of the 10-10 system plus ear/mastoid and anterior-temporal electrodes,
/// in canonical spelling. Legacy `T3`–`T6` are handled as aliases.
const ELECTRODES: &[&str] = &[
    "Nz", "Fp1", "Fpz", "Fp2", "AF9", "AF7", "AF5", "AF3", "AF1", "AFz", "AF2", "AF4", "AF6",
    "AF8", "AF10", "F9", "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8", "F10", "FT9", "FT7",
    "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8", "FT10", "T9", "T7", "C5", "C3", "C1",
    "Cz", "C2", "C4", "C6", "T8", "T10", "TP9", "TP7", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4",
    "CP6", "TP8", "TP10", "P9", "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "P10", "PO9",
    "PO7", "PO5", "PO3", "PO1", "POz", "PO2", "PO4", "PO6", "PO8", "PO10", "O1", "Oz", "O2", "O9",
    "O10", "I1", "Iz", "I2", "A1", "A2", "M1", "M2", "T1", "T2",
];

/// Legacy 10-20 names and their modern equivalents.
const ALIASES: &[(&str, &str)] = &[("T3", "T7"), ("T4", "T8"), ("T5", "P7"), ("T6", "P8")];

/// Type prefixes that precede an electrode name in labels (`EEG Fp1`, `POL T1`).
const ELECTRODE_PREFIXES: &[&str] = &["EEG", "POL"];

/// Reference suffixes meaning "against the common reference": `Fp1-REF`, `Fp1-LE` (linked
/// ears), `Fp1-AVG` (average). A named electrode after the dash is a derivation instead.
const COMMON_REFERENCES: &[&str] = &[
    "REF",
    "LE",
    "RE",
    "AR",
    "AV",
    "AVG",
    "AVE",
    "CAR",
    "COM",
    "COMMON",
    "REFERENCE",
];

/// The canonical 10-10 name of a raw EDF label, or `None` when it names no single electrode.
///
/// ```
/// use theta_engine::edf::normalize_label;
/// assert_eq!(normalize_label("EEG FP1-REF").as_deref(), Some("Fp1"));
/// assert_eq!(normalize_label("Fc5.").as_deref(), Some("FC5"));
/// assert_eq!(normalize_label("EEG T3-LE").as_deref(), Some("T7"));
/// assert_eq!(normalize_label("EEG Fpz-Cz"), None);
/// ```
pub fn normalize_label(raw: &str) -> Option<String> {
    canonical(raw).map(str::to_owned)
}

fn canonical(raw: &str) -> Option<&'static str> {
    let mut s = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    // Type prefix: "EEG Fp1-REF", "POL T1".
    if let Some((prefix, rest)) = s.split_once(' ')
        && ELECTRODE_PREFIXES
            .iter()
            .any(|p| p.eq_ignore_ascii_case(prefix))
    {
        s = rest.trim();
    }
    // BCI2000 pads four-character labels with dots: "Fc5.", "Cz..".
    s = s.trim_end_matches('.');
    if let Some((name, reference)) = s.split_once('-') {
        let reference = reference.trim();
        if !COMMON_REFERENCES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(reference))
        {
            return None;
        }
        s = name.trim();
    }
    if let Some((_, modern)) = ALIASES.iter().find(|(old, _)| old.eq_ignore_ascii_case(s)) {
        return Some(modern);
    }
    ELECTRODES
        .iter()
        .find(|e| e.eq_ignore_ascii_case(s))
        .copied()
}

/// The other name of an electrode with a legacy alias: `T7` ↔ `T3`, `T8` ↔ `T4`, `P7` ↔ `T5`,
/// `P8` ↔ `T6` (either spelling, any case). `None` for electrodes without an alias.
pub fn label_alias(name: &str) -> Option<&'static str> {
    ALIASES.iter().find_map(|(old, modern)| {
        if old.eq_ignore_ascii_case(name) {
            Some(*modern)
        } else if modern.eq_ignore_ascii_case(name) {
            Some(*old)
        } else {
            None
        }
    })
}

/// BioSemi ABC caps label electrodes `A1`…`A32`, `B1`…, up to `H32`. In such a file `A1` or
/// `C3` is a cap position, not the 10-20 electrode of that name.
fn is_biosemi_grid(label: &str) -> bool {
    let l = label.trim();
    let mut chars = l.chars();
    let Some(letter) = chars.next() else {
        return false;
    };
    let digits = chars.as_str();
    ('A'..='H').contains(&letter)
        && !digits.is_empty()
        && digits.len() <= 2
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u8>().is_ok_and(|n| (1..=32).contains(&n))
}

/// Normalises every label of one file, using the file as context: when the labels follow the
/// BioSemi ABC grid (a label such as `A3` or `B1` that is no 10-20 name), grid labels
/// (`A1`, `C3`, ...) name cap positions and give `None`.
pub fn normalize_labels<S: AsRef<str>>(labels: &[S]) -> Vec<Option<String>> {
    let grid = labels
        .iter()
        .any(|l| is_biosemi_grid(l.as_ref()) && canonical(l.as_ref()).is_none());
    labels
        .iter()
        .map(|l| {
            let l = l.as_ref();
            if grid && is_biosemi_grid(l) {
                None
            } else {
                normalize_label(l)
            }
        })
        .collect()
}

/// Upper-case alphanumeric tokens of a label: `EEG EKG1-REF` → `EEG`, `EKG1`, `REF`.
fn tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_uppercase)
}

/// The channel type from a label, its transducer and its physical dimension.
///
/// Specific kinds win over the `EEG` prefix (`EEG EKG1-REF` is ECG, `EEG ROC-REF` is EOG); a
/// label that normalises to an electrode, or a BioSemi grid label, is EEG.
pub fn channel_type(label: &str, transducer: &str, physical_dimension: &str) -> ChannelType {
    let toks: Vec<String> = tokens(label).collect();
    let has = |needles: &[&str]| toks.iter().any(|t| needles.iter().any(|n| t.contains(n)));
    let is = |words: &[&str]| toks.iter().any(|t| words.contains(&t.as_str()));
    let transducer_l = transducer.to_ascii_lowercase();
    let dimension_l = physical_dimension.trim().to_ascii_lowercase();
    if has(&["TRIG", "STATUS", "STIM", "MARKER", "EVENT"])
        || transducer_l.contains("trigger")
        || transducer_l.contains("marker")
        || dimension_l == "boolean"
    {
        return ChannelType::Trig;
    }
    if has(&["ECG", "EKG"]) {
        return ChannelType::Ecg;
    }
    if has(&["EOG"]) || is(&["LOC", "ROC"]) {
        return ChannelType::Eog;
    }
    if has(&["EMG"]) || is(&["CHIN", "LAT", "RAT", "LEG", "TIB"]) {
        return ChannelType::Emg;
    }
    if has(&[
        "RESP", "THOR", "ABDO", "SAO2", "SPO2", "PLETH", "SNORE", "FLOW",
    ]) || is(&["ABD", "CHEST", "NASAL", "EFFORT"])
        || transducer_l.contains("belt")
        || transducer_l.contains("thermistor") && !transducer_l.contains("rectal")
    {
        return ChannelType::Resp;
    }
    if canonical(label).is_some() || toks.first().is_some_and(|t| t == "EEG") || is(&["EEG"]) {
        return ChannelType::Eeg;
    }
    if is_biosemi_grid(label) {
        return ChannelType::Eeg;
    }
    ChannelType::Misc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_spellings_normalise() {
        for (raw, want) in [
            ("EEG Fp1-REF", "Fp1"),
            ("EEG FP1-REF", "Fp1"),
            ("FP1", "Fp1"),
            ("Fp1", "Fp1"),
            ("Fp1-Ref", "Fp1"),
            ("EEG FP1-LE", "Fp1"),
            ("Fc5.", "FC5"),
            ("Cz..", "Cz"),
            ("T10.", "T10"),
            ("EEG CZ-REF", "Cz"),
            ("EEG T3-REF", "T7"),
            ("T4", "T8"),
            ("EEG T5", "P7"),
            ("t6", "P8"),
            ("POL T1", "T1"),
            ("EEG A1-Ref", "A1"),
            ("POz", "POz"),
            ("Af7.", "AF7"),
        ] {
            assert_eq!(normalize_label(raw).as_deref(), Some(want), "{raw}");
        }
    }

    #[test]
    fn non_electrodes_do_not_normalise() {
        for raw in [
            "EEG Fpz-Cz",
            "C3-A2",
            "EEG EKG1-REF",
            "ECG",
            "Status",
            "POL $A1",
            "EXG1",
            "A33",
            "IBI",
            "",
            "EEG",
            "PHOTIC-REF",
        ] {
            assert_eq!(normalize_label(raw), None, "{raw}");
        }
    }

    #[test]
    fn aliases_go_both_ways() {
        assert_eq!(label_alias("T7"), Some("T3"));
        assert_eq!(label_alias("t3"), Some("T7"));
        assert_eq!(label_alias("P8"), Some("T6"));
        assert_eq!(label_alias("Cz"), None);
    }

    #[test]
    fn biosemi_grid_is_not_10_20() {
        let labels = ["A1", "A2", "A3", "B1", "C3", "Status"];
        let n = normalize_labels(&labels);
        assert!(n.iter().all(Option::is_none), "{n:?}");
        // Without grid context, A1/A2 are the ear electrodes.
        let n = normalize_labels(&["A1", "A2", "C3", "Fz"]);
        assert_eq!(
            n,
            [Some("A1"), Some("A2"), Some("C3"), Some("Fz")].map(|s| s.map(String::from))
        );
    }

    #[test]
    fn types_from_label_and_transducer() {
        for (label, transducer, dim, want) in [
            ("EEG Fp1-REF", "", "uV", ChannelType::Eeg),
            ("EEG EKG1-REF", "", "uV", ChannelType::Ecg),
            ("EEG ROC-REF", "", "uV", ChannelType::Eog),
            ("EOG E2-Cz", "", "uV", ChannelType::Eog),
            ("REOG", "", "uV", ChannelType::Eog),
            ("EMG chin R-ref", "", "uV", ChannelType::Emg),
            ("EMG RAT", "", "uV", ChannelType::Emg),
            ("Resp nasal", "Nasal pressure", "", ChannelType::Resp),
            ("SaO2", "PulseOxiMeter", "%", ChannelType::Resp),
            (
                "Status",
                "Triggers and Status",
                "Boolean",
                ChannelType::Trig,
            ),
            ("DIG DTRIG", "?", "uV", ChannelType::Trig),
            ("Event marker", "Marker button", "", ChannelType::Trig),
            ("Trigger", "none", "uV", ChannelType::Trig),
            ("A7", "Active Electrode", "uV", ChannelType::Eeg),
            ("Fc5.", "BCI2000", "uV", ChannelType::Eeg),
            ("REF_EEG REF_EEG", "?", "uV", ChannelType::Eeg),
            (
                "Temp rectal",
                "Rectal thermistor",
                "DegC",
                ChannelType::Misc,
            ),
            ("acc1", "none", "G", ChannelType::Misc),
            ("IBI", "", "sec", ChannelType::Misc),
        ] {
            assert_eq!(channel_type(label, transducer, dim), want, "{label}");
        }
    }
}
