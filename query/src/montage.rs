//! Montages: ordered lists of named derivations, each a linear combination of input channels
//! addressed by normalised 10-20 / 10-10 label.
//!
//! Built-ins ([`Montage::builtin`]): `referential` (every channel as recorded), `average` (each
//! scalp channel minus the mean of the scalp channels not marked bad), `double-banana` (the 18
//! longitudinal bipolar derivations, in the order left temporal, left parasagittal, midline, right
//! parasagittal, right temporal: Fp1-F7 … P8-O2, as the issue lists them), `transverse` (18
//! left-to-right bipolar derivations, front to back), `laplacian` (Hjorth: each 10-20 channel minus
//! the mean of its nearest 10-20 neighbours, see [`HJORTH_NEIGHBOURS`]).
//!
//! Custom montages come from JSON:
//!
//! ```json
//! { "name": "my bipolar",
//!   "derivations": [
//!     { "label": "Fp1-F7", "terms": { "Fp1": 1, "F7": -1 } },
//!     { "label": "C3-avg(A1,A2)", "terms": { "C3": 1, "A1": -0.5, "A2": -0.5 } } ] }
//! ```
//!
//! Channels are matched by normalised label (`EEG FP1-REF`, `Fp1`, `FP1` all mean `Fp1`; the old
//! names T3/T4/T5/T6 mean T7/T8/P7/P8). A derivation that needs a channel the recording lacks is
//! left out with a [`MontageWarning`] (also logged), so one missing electrode does not blank a page.
//!
//! Resolving a montage against a recording's channels gives a [`MontageMatrix`]: a sparse matrix
//! plus shared reference rows (the average is computed once per page, not once per derivation),
//! applied in one pass over the block.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Most derivations a custom montage may list: four times a 256-channel high-density cap. Each
/// is a page row that is filtered and sent, so a montage arriving in a request must not choose
/// the count freely.
pub const MAX_DERIVATIONS: usize = 1024;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Errors of montage parsing and resolution.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MontageError {
    /// Not a built-in name.
    #[error(
        "unknown montage {name:?}: built-ins are referential, average, double-banana, transverse, laplacian"
    )]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
    },
    /// The JSON does not follow the schema.
    #[error("invalid montage JSON at line {line}, column {column}: {reason}")]
    InvalidJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde reported.
        reason: String,
    },
    /// A custom montage's content is unusable.
    #[error("invalid montage: {reason} (derivation {index})")]
    Invalid {
        /// 0-based derivation index (or 0 for the montage itself).
        index: usize,
        /// Why.
        reason: String,
    },
    /// No derivation could be formed from the recording's channels.
    #[error("montage {montage:?} has no derivation this recording's channels can form")]
    Empty {
        /// The montage's name.
        montage: String,
    },
    /// A montage file could not be read.
    #[error("cannot read montage file {path}: {reason}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The block handed to [`MontageMatrix::apply`] does not match the montage.
    #[error("block has {got} {what}, montage expects {expected}")]
    Shape {
        /// `channels`, `derivations` or `samples`.
        what: &'static str,
        /// Expected count.
        expected: usize,
        /// Given count.
        got: usize,
    },
}

/// One input channel of a recording, as a montage sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputChannel {
    /// The label as recorded (`EEG FP1-REF`).
    pub label: String,
    /// Marked bad by the reader: excluded from average references and Laplacian means.
    #[serde(default)]
    pub bad: bool,
}

impl InputChannel {
    /// A good channel.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            bad: false,
        }
    }
}

/// One derivation of a custom montage: a label and `{channel: weight}` terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivationSpec {
    /// Row label shown to the reader.
    pub label: String,
    /// Weight per channel label (normalised when matched).
    pub terms: BTreeMap<String, f64>,
}

/// A custom montage as loaded from JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomMontage {
    /// Name.
    pub name: String,
    /// Derivations in display order.
    pub derivations: Vec<DerivationSpec>,
}

/// A montage, built-in or custom.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Montage {
    /// Channels as recorded.
    Referential,
    /// Common average reference over the scalp channels not marked bad.
    Average,
    /// ACNS longitudinal bipolar, 18 derivations.
    DoubleBanana,
    /// Transverse bipolar, 18 derivations.
    Transverse,
    /// Hjorth Laplacian over the 10-20 neighbours.
    Laplacian,
    /// From JSON.
    Custom(CustomMontage),
}

/// The longitudinal bipolar "double banana" (ACNS): left temporal, left parasagittal, midline,
/// right parasagittal, right temporal chains.
pub const DOUBLE_BANANA: [(&str, &str); 18] = [
    ("Fp1", "F7"),
    ("F7", "T7"),
    ("T7", "P7"),
    ("P7", "O1"),
    ("Fp1", "F3"),
    ("F3", "C3"),
    ("C3", "P3"),
    ("P3", "O1"),
    ("Fz", "Cz"),
    ("Cz", "Pz"),
    ("Fp2", "F4"),
    ("F4", "C4"),
    ("C4", "P4"),
    ("P4", "O2"),
    ("Fp2", "F8"),
    ("F8", "T8"),
    ("T8", "P8"),
    ("P8", "O2"),
];

/// Transverse bipolar chains, front to back, each left to right (ear electrodes left out).
pub const TRANSVERSE: [(&str, &str); 18] = [
    ("F7", "Fp1"),
    ("Fp1", "Fp2"),
    ("Fp2", "F8"),
    ("F7", "F3"),
    ("F3", "Fz"),
    ("Fz", "F4"),
    ("F4", "F8"),
    ("T7", "C3"),
    ("C3", "Cz"),
    ("Cz", "C4"),
    ("C4", "T8"),
    ("P7", "P3"),
    ("P3", "Pz"),
    ("Pz", "P4"),
    ("P4", "P8"),
    ("P7", "O1"),
    ("O1", "O2"),
    ("O2", "P8"),
];

/// Nearest neighbours of each 10-20 electrode on the standard grid (rows Fp, F, T/C, P, O), used by
/// the Hjorth Laplacian: the electrodes directly in front, behind, left and right, where the 10-20
/// system has one (symmetric: A lists B iff B lists A).
pub const HJORTH_NEIGHBOURS: [(&str, &[&str]); 19] = [
    ("Fp1", &["Fp2", "F7", "F3"]),
    ("Fp2", &["Fp1", "F4", "F8"]),
    ("F7", &["Fp1", "F3", "T7"]),
    ("F3", &["Fp1", "F7", "Fz", "C3"]),
    ("Fz", &["F3", "F4", "Cz"]),
    ("F4", &["Fp2", "Fz", "F8", "C4"]),
    ("F8", &["Fp2", "F4", "T8"]),
    ("T7", &["F7", "C3", "P7"]),
    ("C3", &["F3", "T7", "Cz", "P3"]),
    ("Cz", &["Fz", "C3", "C4", "Pz"]),
    ("C4", &["F4", "Cz", "T8", "P4"]),
    ("T8", &["F8", "C4", "P8"]),
    ("P7", &["T7", "P3", "O1"]),
    ("P3", &["C3", "P7", "Pz", "O1"]),
    ("Pz", &["Cz", "P3", "P4"]),
    ("P4", &["C4", "Pz", "P8", "O2"]),
    ("P8", &["T8", "P4", "O2"]),
    ("O1", &["P7", "P3", "O2"]),
    ("O2", &["P8", "P4", "O1"]),
];

/// 10-10 electrode names in canonical spelling (plus ear and mastoid references).
const TEN_TEN: &[&str] = &[
    "Fp1", "Fpz", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8", "F9", "F7", "F5", "F3", "F1", "Fz",
    "F2", "F4", "F6", "F8", "F10", "FT9", "FT7", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6",
    "FT8", "FT10", "T9", "T7", "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "T8", "T10", "TP9", "TP7",
    "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "TP8", "TP10", "P9", "P7", "P5", "P3", "P1",
    "Pz", "P2", "P4", "P6", "P8", "P10", "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2", "Iz",
    "A1", "A2", "M1", "M2",
];

/// Ear and mastoid electrodes: references, not scalp sites (left out of the average).
const REFERENCE_SITES: &[&str] = &["A1", "A2", "M1", "M2"];

/// The canonical 10-10 name of a channel label, if it names one electrode a montage can use.
///
/// Label normalisation is the engine's ([`theta_engine::edf::normalize_label`]: type prefix
/// `EEG `/`POL `, common-reference suffix `-REF`/`-LE`/`-AVG`…, padding dots, case, old names
/// T3/T4/T5/T6 → T7/T8/P7/P8), so the store, the viewer and montages agree on what a channel is;
/// a label that names a derivation (`Fpz-Cz`, `O1-A1`) is not an electrode. The result is limited
/// to the 10-10 electrodes (and A1/A2/M1/M2) montages know.
pub fn canonical_label(raw: &str) -> Option<&'static str> {
    let name = theta_engine::edf::normalize_label(raw)?;
    TEN_TEN
        .iter()
        .copied()
        .find(|c| c.eq_ignore_ascii_case(&name))
}

/// A derivation left out because a channel it needs is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MontageWarning {
    /// The derivation's label.
    pub derivation: String,
    /// The channels it needed and the recording lacks (canonical names).
    pub missing: Vec<String>,
}

impl std::fmt::Display for MontageWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "derivation {} left out: missing {}",
            self.derivation,
            self.missing.join(", ")
        )
    }
}

/// One output row: `sum(w * input[c]) + ref_weight * reference[r]`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    terms: Vec<(usize, f64)>,
    reference: Option<(usize, f64)>,
}

/// A montage resolved against a recording's channels: which inputs, which weights, which rows.
#[derive(Debug, Clone, PartialEq)]
pub struct MontageMatrix {
    name: String,
    n_inputs: usize,
    labels: Vec<String>,
    rows: Vec<Row>,
    references: Vec<Vec<(usize, f64)>>,
    warnings: Vec<MontageWarning>,
}

impl Montage {
    /// A built-in montage by name (`referential`, `average`, `double-banana`, `transverse`,
    /// `laplacian`; case-insensitive, `_` and `-` alike).
    ///
    /// # Errors
    /// [`MontageError::UnknownBuiltin`].
    pub fn builtin(name: &str) -> Result<Self, MontageError> {
        let key = name.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match key.as_str() {
            "referential" | "as-recorded" => Montage::Referential,
            "average" | "avg" => Montage::Average,
            "double-banana" | "bipolar" | "longitudinal" => Montage::DoubleBanana,
            "transverse" => Montage::Transverse,
            "laplacian" | "hjorth" => Montage::Laplacian,
            _ => {
                return Err(MontageError::UnknownBuiltin {
                    name: name.to_string(),
                });
            }
        })
    }

    /// A custom montage from JSON (schema in the module docs).
    ///
    /// # Errors
    /// [`MontageError::InvalidJson`] with the position; [`MontageError::Invalid`] for an empty
    /// montage, more than [`MAX_DERIVATIONS`], a derivation without terms or a non-finite
    /// weight.
    pub fn from_json(json: &str) -> Result<Self, MontageError> {
        let m: CustomMontage =
            serde_json::from_str(json).map_err(|e| MontageError::InvalidJson {
                line: e.line(),
                column: e.column(),
                reason: e.to_string(),
            })?;
        if m.derivations.is_empty() {
            return Err(MontageError::Invalid {
                index: 0,
                reason: "no derivations".into(),
            });
        }
        if m.derivations.len() > MAX_DERIVATIONS {
            return Err(MontageError::Invalid {
                index: MAX_DERIVATIONS,
                reason: format!("more than {MAX_DERIVATIONS} derivations"),
            });
        }
        for (i, d) in m.derivations.iter().enumerate() {
            if d.terms.is_empty() {
                return Err(MontageError::Invalid {
                    index: i,
                    reason: format!("{} has no terms", d.label),
                });
            }
            if d.terms.values().any(|w| !w.is_finite()) {
                return Err(MontageError::Invalid {
                    index: i,
                    reason: format!("{} has a non-finite weight", d.label),
                });
            }
        }
        Ok(Montage::Custom(m))
    }

    /// What `--montage` takes: a built-in name, or a path to a JSON file (anything ending in
    /// `.json` or containing a path separator).
    ///
    /// # Errors
    /// [`MontageError::UnknownBuiltin`], [`MontageError::Io`], or the JSON errors of
    /// [`from_json`](Self::from_json).
    pub fn from_arg(arg: &str) -> Result<Self, MontageError> {
        let looks_like_file =
            arg.to_ascii_lowercase().ends_with(".json") || arg.contains(std::path::MAIN_SEPARATOR);
        if !looks_like_file {
            return Self::builtin(arg);
        }
        let path = std::path::PathBuf::from(arg);
        let text = std::fs::read_to_string(&path).map_err(|e| MontageError::Io {
            path,
            reason: e.to_string(),
        })?;
        Self::from_json(&text)
    }

    /// The montage's name.
    pub fn name(&self) -> &str {
        match self {
            Montage::Referential => "referential",
            Montage::Average => "average",
            Montage::DoubleBanana => "double-banana",
            Montage::Transverse => "transverse",
            Montage::Laplacian => "laplacian",
            Montage::Custom(m) => &m.name,
        }
    }

    /// Resolve against a recording's channels (in block row order).
    ///
    /// # Errors
    /// [`MontageError::Empty`] when no derivation can be formed.
    pub fn resolve(&self, channels: &[InputChannel]) -> Result<MontageMatrix, MontageError> {
        let canon: Vec<Option<&'static str>> =
            channels.iter().map(|c| canonical_label(&c.label)).collect();
        // First occurrence wins when a label repeats (`duplicate_channel_labels.edf`).
        let index_of = |name: &str| canon.iter().position(|c| *c == Some(name));
        let mut b = Builder::new(self.name(), channels.len());
        match self {
            Montage::Referential => {
                for (i, c) in channels.iter().enumerate() {
                    b.rows.push(Row {
                        terms: vec![(i, 1.0)],
                        reference: None,
                    });
                    b.labels
                        .push(canon[i].map_or_else(|| c.label.trim().to_string(), str::to_string));
                }
            }
            Montage::Average => {
                let scalp: Vec<usize> = (0..channels.len())
                    .filter(|&i| canon[i].is_some_and(|c| !REFERENCE_SITES.contains(&c)))
                    .collect();
                let good: Vec<usize> = scalp
                    .iter()
                    .copied()
                    .filter(|&i| !channels[i].bad)
                    .collect();
                if !good.is_empty() {
                    let w = 1.0 / good.len() as f64;
                    b.references.push(good.iter().map(|&i| (i, w)).collect());
                    for &i in &scalp {
                        b.rows.push(Row {
                            terms: vec![(i, 1.0)],
                            reference: Some((0, -1.0)),
                        });
                        b.labels.push(format!(
                            "{}-Avg",
                            canon[i].expect("scalp channels are named")
                        ));
                    }
                }
            }
            Montage::DoubleBanana | Montage::Transverse => {
                let pairs: &[(&str, &str)] = if *self == Montage::DoubleBanana {
                    &DOUBLE_BANANA
                } else {
                    &TRANSVERSE
                };
                for (a, c) in pairs {
                    let label = format!("{a}-{c}");
                    match (index_of(a), index_of(c)) {
                        (Some(i), Some(j)) => b.push(label, vec![(i, 1.0), (j, -1.0)]),
                        (ia, ic) => {
                            let missing: Vec<String> = [(ia, a), (ic, c)]
                                .iter()
                                .filter(|(i, _)| i.is_none())
                                .map(|(_, n)| n.to_string())
                                .collect();
                            b.warn(label, missing);
                        }
                    }
                }
            }
            Montage::Laplacian => {
                for (centre, neighbours) in HJORTH_NEIGHBOURS {
                    let label = format!("{centre}-Lap");
                    let Some(i) = index_of(centre) else {
                        b.warn(label, vec![centre.to_string()]);
                        continue;
                    };
                    let present: Vec<usize> = neighbours
                        .iter()
                        .filter_map(|n| index_of(n))
                        .filter(|&j| !channels[j].bad)
                        .collect();
                    if present.is_empty() {
                        b.warn(label, neighbours.iter().map(|n| n.to_string()).collect());
                        continue;
                    }
                    let w = -1.0 / present.len() as f64;
                    let mut terms = vec![(i, 1.0)];
                    terms.extend(present.iter().map(|&j| (j, w)));
                    b.push(label, terms);
                }
            }
            Montage::Custom(m) => {
                for d in &m.derivations {
                    let mut terms = Vec::with_capacity(d.terms.len());
                    let mut missing = Vec::new();
                    for (ch, &w) in &d.terms {
                        // Custom terms may name any label; try the canonical 10-10 name first,
                        // then the label exactly as recorded (ECG, EMG, PHOTIC…).
                        let idx = canonical_label(ch).and_then(index_of).or_else(|| {
                            channels
                                .iter()
                                .position(|c| c.label.trim().eq_ignore_ascii_case(ch.trim()))
                        });
                        match idx {
                            Some(i) => terms.push((i, w)),
                            None => missing.push(ch.clone()),
                        }
                    }
                    if missing.is_empty() {
                        b.push(d.label.clone(), terms);
                    } else {
                        b.warn(d.label.clone(), missing);
                    }
                }
            }
        }
        b.finish()
    }
}

struct Builder {
    name: String,
    n_inputs: usize,
    labels: Vec<String>,
    rows: Vec<Row>,
    references: Vec<Vec<(usize, f64)>>,
    warnings: Vec<MontageWarning>,
}

impl Builder {
    fn new(name: &str, n_inputs: usize) -> Self {
        Self {
            name: name.to_string(),
            n_inputs,
            labels: vec![],
            rows: vec![],
            references: vec![],
            warnings: vec![],
        }
    }

    fn push(&mut self, label: String, terms: Vec<(usize, f64)>) {
        self.labels.push(label);
        self.rows.push(Row {
            terms,
            reference: None,
        });
    }

    fn warn(&mut self, derivation: String, missing: Vec<String>) {
        let w = MontageWarning {
            derivation,
            missing,
        };
        // Channel labels are electrode names, not health data.
        tracing::warn!(montage = %self.name, "{w}");
        self.warnings.push(w);
    }

    fn finish(self) -> Result<MontageMatrix, MontageError> {
        if self.rows.is_empty() {
            return Err(MontageError::Empty { montage: self.name });
        }
        Ok(MontageMatrix {
            name: self.name,
            n_inputs: self.n_inputs,
            labels: self.labels,
            rows: self.rows,
            references: self.references,
            warnings: self.warnings,
        })
    }
}

impl MontageMatrix {
    /// The montage's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of input channels the block must have.
    pub fn n_inputs(&self) -> usize {
        self.n_inputs
    }

    /// Number of output rows.
    pub fn n_derivations(&self) -> usize {
        self.rows.len()
    }

    /// Output row labels, in display order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Derivations left out, with the channels they lacked.
    pub fn warnings(&self) -> &[MontageWarning] {
        &self.warnings
    }

    /// Input channels any row reads (so a store read can skip the others), sorted.
    pub fn used_inputs(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .rows
            .iter()
            .flat_map(|r| r.terms.iter().map(|t| t.0))
            .chain(self.references.iter().flatten().map(|t| t.0))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Dense `n_derivations x n_inputs` weights (for inspection and tests).
    pub fn dense(&self) -> Vec<Vec<f64>> {
        self.rows
            .iter()
            .map(|r| {
                let mut w = vec![0.0; self.n_inputs];
                for &(i, x) in &r.terms {
                    w[i] += x;
                }
                if let Some((k, rw)) = r.reference {
                    for &(i, x) in &self.references[k] {
                        w[i] += rw * x;
                    }
                }
                w
            })
            .collect()
    }

    /// Number of shared reference rows (scratch rows [`apply`](Self::apply) needs).
    pub(crate) fn n_references(&self) -> usize {
        self.references.len()
    }

    /// Compute the shared reference rows for samples `range` of `input` into `scratch`
    /// (`n_references() x range.len()`).
    pub(crate) fn compute_references(
        &self,
        input: ArrayView2<'_, f64>,
        range: std::ops::Range<usize>,
        scratch: &mut [Vec<f64>],
    ) {
        for (refs, out) in self.references.iter().zip(scratch.iter_mut()) {
            out.clear();
            out.resize(range.len(), 0.0);
            for &(i, w) in refs {
                let row = input.row(i);
                let src = &row.as_slice().expect("standard layout")[range.clone()];
                for (o, x) in out.iter_mut().zip(src) {
                    *o += w * x;
                }
            }
        }
    }

    /// Write derivations `first..first + lanes` for samples `range` of `input` into lanes
    /// `0..lanes` of `out` (`out.len() == range.len()`); lanes `lanes..L` get zeros.
    pub(crate) fn derive_group<const L: usize>(
        &self,
        first: usize,
        lanes: usize,
        input: ArrayView2<'_, f64>,
        range: std::ops::Range<usize>,
        references: &[Vec<f64>],
        out: &mut [[f64; L]],
    ) {
        let n = range.len();
        let rows = &self.rows[first..first + lanes];
        let src = |i: usize| &input.row(i).to_slice().expect("standard layout")[range.clone()];
        if rows
            .iter()
            .all(|r| r.reference.is_none() && (1..=2).contains(&r.terms.len()))
        {
            // Bipolar and referential rows: every lane is `wa * a[t] + wb * b[t]`, computed for
            // all lanes of a sample at once so each destination sample is one contiguous store.
            let first_src = src(rows[0].terms[0].0);
            let mut a: [&[f64]; L] = [first_src; L];
            let mut b: [&[f64]; L] = [first_src; L];
            let (mut wa, mut wb) = ([0.0; L], [0.0; L]);
            for l in 0..L {
                match rows.get(l) {
                    Some(r) => {
                        (a[l], wa[l]) = (src(r.terms[0].0), r.terms[0].1);
                        (b[l], wb[l]) = match r.terms.get(1) {
                            Some(&(i, w)) => (src(i), w),
                            None => (a[l], 0.0),
                        };
                    }
                    // Spare lanes read a real row with weight 0: finite zeros.
                    None => (a[l], b[l]) = (first_src, first_src),
                }
            }
            for (t, o) in out[..n].iter_mut().enumerate() {
                let mut v = [0.0; L];
                for l in 0..L {
                    v[l] = wa[l] * a[l][t] + wb[l] * b[l][t];
                }
                *o = v;
            }
            return;
        }
        // General rows (averages, Laplacians, custom sums): lane by lane, in chunks that keep the
        // interleaved destination in L1.
        const CHUNK: usize = 1024;
        for (c, chunk) in out[..n].chunks_mut(CHUNK).enumerate() {
            let off = c * CHUNK;
            let cols = range.start + off..range.start + off + chunk.len();
            let csrc = |i: usize| &input.row(i).to_slice().expect("standard layout")[cols.clone()];
            for l in 0..L {
                chunk.iter_mut().for_each(|v| v[l] = 0.0);
                let Some(row) = rows.get(l) else { continue };
                // One pass per term over contiguous source rows.
                for &(i, w) in &row.terms {
                    for (o, x) in chunk.iter_mut().zip(csrc(i)) {
                        o[l] += w * x;
                    }
                }
                if let Some((k, w)) = row.reference {
                    for (o, x) in chunk.iter_mut().zip(&references[k][off..]) {
                        o[l] += w * x;
                    }
                }
            }
        }
    }

    /// Write derivation `d` for samples `range` of `input` into `out` (`out.len() == range.len()`).
    #[inline]
    fn derive_into(
        &self,
        d: usize,
        input: ArrayView2<'_, f64>,
        range: std::ops::Range<usize>,
        references: &[Vec<f64>],
        out: &mut [f64],
    ) {
        let row = &self.rows[d];
        let src = |i: usize| &input.row(i).to_slice().expect("standard layout")[range.clone()];
        out.fill(0.0);
        for &(i, w) in &row.terms {
            for (o, x) in out.iter_mut().zip(src(i)) {
                *o += w * x;
            }
        }
        if let Some((k, w)) = row.reference {
            for (o, x) in out.iter_mut().zip(&references[k]) {
                *o += w * x;
            }
        }
    }

    /// Apply to a `channels x samples` block, writing `derivations x samples` into `out`; the
    /// shared reference rows go through `scratch` (reused across calls, grown once).
    ///
    /// # Errors
    /// [`MontageError::Shape`] when the block or `out` does not match.
    pub fn apply_into(
        &self,
        input: ArrayView2<'_, f64>,
        mut out: ArrayViewMut2<'_, f64>,
        scratch: &mut Vec<Vec<f64>>,
    ) -> Result<(), MontageError> {
        let input = if input.is_standard_layout() {
            input
        } else {
            return Err(MontageError::Shape {
                what: "non-contiguous channels",
                expected: 0,
                got: 1,
            });
        };
        if input.nrows() != self.n_inputs {
            return Err(MontageError::Shape {
                what: "channels",
                expected: self.n_inputs,
                got: input.nrows(),
            });
        }
        if out.nrows() != self.rows.len() {
            return Err(MontageError::Shape {
                what: "derivations",
                expected: self.rows.len(),
                got: out.nrows(),
            });
        }
        if out.ncols() != input.ncols() {
            return Err(MontageError::Shape {
                what: "samples",
                expected: input.ncols(),
                got: out.ncols(),
            });
        }
        scratch.resize_with(self.references.len(), Vec::new);
        let n = input.ncols();
        self.compute_references(input, 0..n, scratch);
        for d in 0..self.rows.len() {
            let mut row = out.row_mut(d);
            match row.as_slice_mut() {
                Some(dst) => self.derive_into(d, input, 0..n, scratch, dst),
                None => {
                    let mut tmp = vec![0.0; n];
                    self.derive_into(d, input, 0..n, scratch, &mut tmp);
                    row.iter_mut().zip(tmp).for_each(|(o, v)| *o = v);
                }
            }
        }
        Ok(())
    }

    /// Apply to a `channels x samples` block (allocating twin of [`apply_into`](Self::apply_into)).
    ///
    /// # Errors
    /// As [`apply_into`](Self::apply_into).
    pub fn apply(&self, input: ArrayView2<'_, f64>) -> Result<ndarray::Array2<f64>, MontageError> {
        let mut out = ndarray::Array2::zeros((self.rows.len(), input.ncols()));
        let input = input.as_standard_layout();
        self.apply_into(input.view(), out.view_mut(), &mut Vec::new())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn chans(labels: &[&str]) -> Vec<InputChannel> {
        labels.iter().map(|l| InputChannel::new(*l)).collect()
    }

    #[test]
    fn labels_normalise() {
        assert_eq!(canonical_label("EEG FP1-REF"), Some("Fp1"));
        assert_eq!(canonical_label("EEG T3-REF"), Some("T7"));
        assert_eq!(canonical_label("T6"), Some("P8"));
        assert_eq!(canonical_label("Cz.."), Some("Cz"));
        assert_eq!(canonical_label("Fc5."), Some("FC5"));
        assert_eq!(canonical_label("EEG Fp1"), Some("Fp1"));
        assert_eq!(canonical_label("ECG"), None);
        assert_eq!(canonical_label("EEG EKG1-REF"), None);
    }

    #[test]
    fn bipolar_and_missing_channels() {
        let m = Montage::DoubleBanana
            .resolve(&chans(&["FP1", "F7", "T3", "Cz", "Pz"]))
            .unwrap();
        assert_eq!(m.labels(), ["Fp1-F7", "F7-T7", "Cz-Pz"]);
        assert_eq!(m.warnings().len(), 15);
        let x = array![[10.0, 11.0], [3.0, 1.0], [2.0, 2.0], [5.0, 6.0], [1.0, 0.0]];
        let y = m.apply(x.view()).unwrap();
        assert_eq!(y, array![[7.0, 10.0], [1.0, -1.0], [4.0, 6.0]]);
    }

    #[test]
    fn average_excludes_bad_and_non_eeg() {
        let mut c = chans(&["Fp1", "Fp2", "Cz", "ECG", "A1"]);
        c[1].bad = true;
        let m = Montage::Average.resolve(&c).unwrap();
        assert_eq!(m.labels(), ["Fp1-Avg", "Fp2-Avg", "Cz-Avg"]);
        let x = array![[4.0], [100.0], [2.0], [1000.0], [7.0]];
        let y = m.apply(x.view()).unwrap();
        assert_eq!(y, array![[1.0], [97.0], [-1.0]]);
    }

    #[test]
    fn laplacian_uses_present_neighbours() {
        let m = Montage::Laplacian
            .resolve(&chans(&["Cz", "C3", "C4", "Fz", "ECG"]))
            .unwrap();
        let cz = m.labels().iter().position(|l| l == "Cz-Lap").unwrap();
        let dense = m.dense();
        assert_eq!(
            dense[cz],
            vec![1.0, -1.0 / 3.0, -1.0 / 3.0, -1.0 / 3.0, 0.0]
        );
        // Neighbour table is symmetric.
        for (a, ns) in HJORTH_NEIGHBOURS {
            for n in ns {
                let back = HJORTH_NEIGHBOURS.iter().find(|(c, _)| c == n).unwrap().1;
                assert!(back.contains(&a), "{a} -> {n}");
            }
        }
    }

    #[test]
    fn custom_json() {
        let m = Montage::from_json(
            r#"{"name": "x", "derivations": [
                {"label": "C3-A1A2", "terms": {"C3": 1, "A1": -0.5, "A2": -0.5}},
                {"label": "ecg", "terms": {"ECG": 1}},
                {"label": "gone", "terms": {"O9": 1}}]}"#,
        )
        .unwrap();
        let r = m
            .resolve(&chans(&["EEG C3-REF", "A1", "A2", "ECG"]))
            .unwrap();
        assert_eq!(r.labels(), ["C3-A1A2", "ecg"]);
        assert_eq!(r.warnings()[0].missing, ["O9"]);
        let e =
            Montage::from_json(r#"{"name": "x", "derivations": [{"label": "a", "terms": {}}]}"#)
                .unwrap_err();
        assert!(matches!(e, MontageError::Invalid { index: 0, .. }));
        let many = |n: usize| {
            let d = vec![r#"{"label": "a", "terms": {"C3": 1}}"#; n].join(",");
            Montage::from_json(&format!(r#"{{"name": "x", "derivations": [{d}]}}"#))
        };
        assert!(many(MAX_DERIVATIONS).is_ok());
        assert!(matches!(
            many(MAX_DERIVATIONS + 1),
            Err(MontageError::Invalid {
                index: MAX_DERIVATIONS,
                ..
            })
        ));
        assert!(matches!(
            Montage::from_json("{"),
            Err(MontageError::InvalidJson { .. })
        ));
        assert!(matches!(
            Montage::builtin("nope"),
            Err(MontageError::UnknownBuiltin { .. })
        ));
        assert_eq!(
            Montage::builtin("Double_Banana").unwrap(),
            Montage::DoubleBanana
        );
    }
}
