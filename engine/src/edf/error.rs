//! Errors and warnings of the EDF/BDF reader and writer.
//!
//! Neither ever carries health data: no patient or recording field, no annotation text and no
//! sample value appears in a message. Locations (field name, byte offset, record, signal) are
//! fields, so callers can branch on them.

use std::fmt;

/// Result alias of the `edf` module.
pub type Result<T, E = EdfError> = std::result::Result<T, E>;

/// What went wrong while reading or writing EDF/BDF.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdfError {
    /// The underlying reader or writer failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a valid EDF/BDF file: `field` names what is wrong and `offset` where
    /// (a byte offset from the start of the file).
    #[error("malformed {field} at byte {offset}: {reason}")]
    Malformed {
        /// The header field or structure, e.g. "number of data records".
        field: String,
        /// Byte offset from the start of the file.
        offset: u64,
        /// What is wrong, without quoting the field's content.
        reason: String,
    },
    /// Strict mode refused something the lenient mode would have accepted with this warning.
    #[error("refused in strict mode: {0}")]
    Refused(Warning),
    /// The caller asked for something that does not exist or passed an invalid value (signal
    /// index out of range, a record of the wrong length, a header the format cannot hold).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl EdfError {
    pub(crate) fn malformed(
        field: impl Into<String>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        EdfError::Malformed {
            field: field.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True when the input file is at fault (malformed or refused), as opposed to I/O failures
    /// or caller mistakes. `theta inspect` exits with 2 for these.
    pub fn is_input_error(&self) -> bool {
        matches!(self, EdfError::Malformed { .. } | EdfError::Refused(_))
    }
}

/// A leniency: something a real-world file gets wrong that the lenient reader accepts.
///
/// In strict mode ([`crate::edf::ReadOptions::strict`]) the first one becomes
/// [`EdfError::Refused`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Warning {
    /// A numeric header field has leading spaces (the standard asks for left-aligned text).
    NumberWithLeadingSpaces {
        /// The field.
        field: String,
        /// Its byte offset.
        offset: u64,
    },
    /// A numeric header field uses a decimal comma.
    DecimalComma {
        /// The field.
        field: String,
        /// Its byte offset.
        offset: u64,
    },
    /// The number of data records is -1 (unknown); it was computed from the file size.
    RecordCountUnknown {
        /// Records found in the file.
        in_file: u64,
    },
    /// The number of data records disagrees with the file size; the smaller one is used.
    RecordCountMismatch {
        /// What the header says.
        declared: i64,
        /// Whole records present in the file.
        in_file: u64,
    },
    /// Bytes after the last whole data record (a partial record) are ignored.
    TrailingBytes {
        /// How many bytes.
        bytes: u64,
        /// Their offset.
        offset: u64,
    },
    /// A header text field holds bytes outside printable ASCII.
    NonAsciiText {
        /// The field.
        field: String,
        /// Its byte offset.
        offset: u64,
    },
    /// A date or time field is not in the `dd.mm.yy` / `hh.mm.ss` form.
    NonStandardDateTime {
        /// The field.
        field: String,
        /// Its byte offset.
        offset: u64,
    },
    /// Physical minimum equals physical maximum, or digital minimum is not below digital
    /// maximum: the signal's physical values are its digital values (gain 1, offset 0).
    DegenerateRange {
        /// Data-signal index (annotation signals not counted).
        signal: usize,
    },
    /// Two data signals have the same label.
    DuplicateLabel {
        /// The label (a channel name, not health data).
        label: String,
        /// Data-signal index of the first one.
        first: usize,
        /// Data-signal index of the repeat.
        second: usize,
    },
    /// An EDF+/BDF+ patient or recording field does not follow the standard's sub-field layout;
    /// the raw text is kept and the sub-fields are not parsed.
    NonStandardPlusField {
        /// "patient" or "recording".
        field: String,
    },
    /// The EDF+ start date in the recording field disagrees with the header's start date; the
    /// header's date is used.
    StartDateMismatch,
    /// The file says EDF+D/BDF+D but all its data records are contiguous.
    DiscontinuousButContiguous,
    /// The file says EDF+C/BDF+C but the time-keeping annotations show a gap or an overlap; the
    /// time-keeping annotations are honoured.
    ContinuousWithGap {
        /// The record that does not follow its predecessor.
        record: u64,
    },
    /// A data record starts before the end of its predecessor.
    RecordsOverlap {
        /// The record.
        record: u64,
    },
    /// A data record has no time-keeping annotation; it is assumed to follow its predecessor.
    MissingTimekeeping {
        /// The record.
        record: u64,
    },
    /// Time-stamped annotation lists are not separated by NUL bytes (Nihon Kohden): a text that
    /// is a time stamp right after an empty text was read as the start of a new list.
    TalNotNulSeparated {
        /// The record.
        record: u64,
        /// Header position of the annotation signal.
        signal: usize,
    },
    /// A time-stamped annotation list could not be parsed and was skipped (in part).
    MalformedTal {
        /// The record.
        record: u64,
        /// Header position of the annotation signal.
        signal: usize,
        /// Byte offset in the file.
        offset: u64,
    },
    /// An annotation text is not valid UTF-8; invalid bytes were replaced.
    NonUtf8Annotation {
        /// The record.
        record: u64,
        /// Header position of the annotation signal.
        signal: usize,
    },
    /// The reserved field names another family (`EDF+C` in a BDF file, ...); read as the
    /// file's own family with the named continuity.
    ReservedFieldMismatch,
    /// An EDF+/BDF+ file has no annotation signal; records are taken as contiguous.
    NoAnnotationSignal,
    /// A plain EDF/BDF file has a signal labelled `EDF Annotations`; it is read as annotations.
    AnnotationSignalInPlainFile {
        /// Header position of the signal.
        signal: usize,
    },
    /// The version field of a BDF file is not `\xffBIOSEMI`.
    NonStandardVersion,
    /// Further warnings of one kind were counted but not listed.
    More {
        /// The kind, as in [`Warning::kind`].
        kind: &'static str,
        /// How many were left out.
        count: u64,
    },
}

impl Warning {
    /// A short stable name of the warning's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Warning::NumberWithLeadingSpaces { .. } => "number_with_leading_spaces",
            Warning::DecimalComma { .. } => "decimal_comma",
            Warning::RecordCountUnknown { .. } => "record_count_unknown",
            Warning::RecordCountMismatch { .. } => "record_count_mismatch",
            Warning::TrailingBytes { .. } => "trailing_bytes",
            Warning::NonAsciiText { .. } => "non_ascii_text",
            Warning::NonStandardDateTime { .. } => "non_standard_date_time",
            Warning::DegenerateRange { .. } => "degenerate_range",
            Warning::DuplicateLabel { .. } => "duplicate_label",
            Warning::NonStandardPlusField { .. } => "non_standard_plus_field",
            Warning::StartDateMismatch => "start_date_mismatch",
            Warning::DiscontinuousButContiguous => "discontinuous_but_contiguous",
            Warning::ContinuousWithGap { .. } => "continuous_with_gap",
            Warning::RecordsOverlap { .. } => "records_overlap",
            Warning::MissingTimekeeping { .. } => "missing_timekeeping",
            Warning::TalNotNulSeparated { .. } => "tal_not_nul_separated",
            Warning::MalformedTal { .. } => "malformed_tal",
            Warning::NonUtf8Annotation { .. } => "non_utf8_annotation",
            Warning::ReservedFieldMismatch => "reserved_field_mismatch",
            Warning::NoAnnotationSignal => "no_annotation_signal",
            Warning::AnnotationSignalInPlainFile { .. } => "annotation_signal_in_plain_file",
            Warning::NonStandardVersion => "non_standard_version",
            Warning::More { .. } => "more",
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NumberWithLeadingSpaces { field, offset } => {
                write!(f, "{field} at byte {offset} has leading spaces")
            }
            Warning::DecimalComma { field, offset } => {
                write!(f, "{field} at byte {offset} uses a decimal comma")
            }
            Warning::RecordCountUnknown { in_file } => write!(
                f,
                "number of data records is -1; {in_file} records found in the file"
            ),
            Warning::RecordCountMismatch { declared, in_file } => write!(
                f,
                "header declares {declared} data records but the file holds {in_file}; reading {}",
                (*declared).max(0).min(*in_file as i64)
            ),
            Warning::TrailingBytes { bytes, offset } => write!(
                f,
                "{bytes} bytes at byte {offset} after the last whole data record are ignored"
            ),
            Warning::NonAsciiText { field, offset } => {
                write!(f, "{field} at byte {offset} holds non-ASCII bytes")
            }
            Warning::NonStandardDateTime { field, offset } => {
                write!(f, "{field} at byte {offset} is not in the standard form")
            }
            Warning::DegenerateRange { signal } => write!(
                f,
                "signal {signal} has an empty physical or digital range; physical values equal digital values"
            ),
            Warning::DuplicateLabel {
                label,
                first,
                second,
            } => write!(f, "signals {first} and {second} share the label {label:?}"),
            Warning::NonStandardPlusField { field } => write!(
                f,
                "the EDF+ {field} field does not follow the standard sub-fields; kept as raw text"
            ),
            Warning::StartDateMismatch => write!(
                f,
                "the EDF+ start date in the recording field disagrees with the header start date"
            ),
            Warning::DiscontinuousButContiguous => write!(
                f,
                "marked discontinuous (+D) but every data record follows its predecessor"
            ),
            Warning::ContinuousWithGap { record } => write!(
                f,
                "marked continuous (+C) but data record {record} does not follow its predecessor"
            ),
            Warning::RecordsOverlap { record } => {
                write!(f, "data record {record} starts before its predecessor ends")
            }
            Warning::MissingTimekeeping { record } => write!(
                f,
                "data record {record} has no time-keeping annotation; assumed contiguous"
            ),
            Warning::TalNotNulSeparated { record, signal } => write!(
                f,
                "annotation lists in record {record}, signal {signal} are not NUL-separated"
            ),
            Warning::MalformedTal {
                record,
                signal,
                offset,
            } => write!(
                f,
                "malformed annotation list in record {record}, signal {signal} at byte {offset}; skipped"
            ),
            Warning::NonUtf8Annotation { record, signal } => write!(
                f,
                "annotation text in record {record}, signal {signal} is not UTF-8"
            ),
            Warning::ReservedFieldMismatch => {
                write!(f, "reserved field names the other file family (EDF+/BDF+)")
            }
            Warning::NoAnnotationSignal => write!(
                f,
                "EDF+/BDF+ file without an annotation signal; records taken as contiguous"
            ),
            Warning::AnnotationSignalInPlainFile { signal } => write!(
                f,
                "plain EDF/BDF file has an annotation signal at position {signal}; read as annotations"
            ),
            Warning::NonStandardVersion => write!(f, "BDF version field is not \\xffBIOSEMI"),
            Warning::More { kind, count } => write!(f, "{count} more warnings of kind {kind}"),
        }
    }
}

/// At most this many warnings of one kind are listed; the rest are counted in
/// [`Warning::More`]. A hostile file could otherwise produce one warning per record.
const MAX_WARNINGS_PER_KIND: usize = 20;

/// Collects warnings, or turns the first one into an error in strict mode.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    strict: bool,
    warnings: Vec<Warning>,
    overflow: Vec<(&'static str, u64)>,
}

impl Diagnostics {
    pub(crate) fn new(strict: bool) -> Self {
        Diagnostics {
            strict,
            warnings: Vec::new(),
            overflow: Vec::new(),
        }
    }

    /// Records a leniency; in strict mode refuses it.
    pub(crate) fn warn(&mut self, warning: Warning) -> Result<()> {
        if self.strict {
            return Err(EdfError::Refused(warning));
        }
        let kind = warning.kind();
        let listed = self.warnings.iter().filter(|w| w.kind() == kind).count();
        if listed < MAX_WARNINGS_PER_KIND {
            self.warnings.push(warning);
        } else if let Some(entry) = self.overflow.iter_mut().find(|(k, _)| *k == kind) {
            entry.1 += 1;
        } else {
            self.overflow.push((kind, 1));
        }
        Ok(())
    }

    pub(crate) fn into_warnings(mut self) -> Vec<Warning> {
        for (kind, count) in self.overflow {
            self.warnings.push(Warning::More { kind, count });
        }
        self.warnings
    }
}
