//! EDF, EDF+ and BDF/BDF+ reading and writing.
//!
//! ```text
//! file ──► EdfReader::open ──► header() / annotations() / segments() / warnings()
//!                         ├──► read_digital / read_physical   (any range of one signal, by seeking)
//!                         └──► next_record / read_record      (all signals of a record, for ingest)
//! EdfWriterBuilder ──► EdfWriter::write_record[_at] … finish  (EDF/EDF+C/EDF+D, BDF likewise)
//! ```
//!
//! ```
//! use theta_engine::edf::{EdfReader, ReadOptions};
//! # let path = theta_fixtures::shared_eeg_dir().join("test_utf8.edf");
//! # if !path.exists() { return Ok(()); }
//! let mut reader = EdfReader::open(&path, ReadOptions::default())?;
//! let mut first = vec![0i32; 16];
//! let n = reader.read_digital(0, 0, &mut first)?;
//! assert_eq!(n, 16);
//! let mut record = reader.record_buf();
//! while reader.next_record(&mut record)? {
//!     let _fp1: &[i32] = record.signal(0);
//! }
//! # Ok::<(), theta_engine::edf::EdfError>(())
//! ```
//!
//! # Signals and time
//!
//! Data signals are numbered from 0 in header order with annotation signals left out (those
//! are read into [`Annotation`]s). Every signal has its own rate, `samples_per_record /
//! record_duration`, which may be non-integer (12.8 Hz). Times are seconds from
//! [`EdfHeader::start`]; EDF+D/BDF+D records carry their own onsets, so a gap stays a gap:
//! [`EdfReader::segments`] lists the runs of contiguous records and
//! [`EdfReader::record_onset`] / [`EdfReader::sample_time`] place any sample. Internally every
//! time is exact integer nanoseconds.
//!
//! # Memory
//!
//! The header is checked against the file size before anything is allocated per signal or per
//! record; no buffer is ever sized by an unchecked header value. Opening an EDF+ file keeps the
//! annotations (bounded by the file) and one segment per gap; reading keeps at most one data
//! record or 1 MiB of read-ahead. Memory does not grow with the length of a recording.
//!
//! # Leniency and strict mode
//!
//! By default the reader accepts what real files get wrong and reports each defect as a
//! [`Warning`]: record count -1, with leading spaces or disagreeing with the file size; a
//! trailing partial record; EDF+D whose records are all contiguous; TALs not separated by NUL;
//! non-ASCII header text; physical minimum equal to maximum (physical = digital); duplicate
//! labels; non-standard date separators or EDF+ sub-fields. [`ReadOptions::strict`] refuses the
//! first one with [`EdfError::Refused`]. Malformed input (bad numbers, impossible sizes,
//! truncated headers) is always [`EdfError::Malformed`] naming the field and byte offset.
//!
//! # Where reference readers disagree (decisions)
//!
//! The golden values in `shared/eeg/*.golden.json` come from pyedflib/EDFlib or a raw parser;
//! MANIFEST.md lists where those readers disagree. This reader decides:
//!
//! * **`MB0400FU.EDF`** (Nihon Kohden, EDF+D): its TALs are not NUL-separated
//!   (`+1.000000\x14\x14+1.140000\x14A1+A2 OFF\x14`). A spec-literal parse (the golden file and
//!   MNE) reads the text `+1.140000` at 1.0 s. We read a time stamp that follows the empty text
//!   of a time-keeping TAL as the start of a new TAL, so `A1+A2 OFF` is at **1.14 s** and no
//!   annotation has a time stamp as its text. An empty text occurs only at the end of a
//!   time-keeping TAL in a standard file, so standard files are unaffected (e.g.
//!   `chtypes_edf.edf`'s NUL-separated TAL whose text is `+0.000000` stays a text). The file
//!   also says EDF+D while all records are contiguous: pyedflib refuses it; we read it with a
//!   warning (strict mode refuses it).
//! * **`mnepy_test.bdf`**: the record count is `"  1     "`. pyedflib refuses it; we read it as 1
//!   with a warning (strict mode refuses it), as MNE does.
//! * **`test_utf8.edf`**: the first record's time-keeping TAL is `+0.3945312`. The start is
//!   **04:05:56.3945312** (EDFlib's 100 ns value; pyedflib 0.1.42 reports .039453 through a
//!   unit slip, MNE drops the fraction). Annotation onsets and segment onsets are relative to
//!   that sub-second start, as in pyedflib and MNE.
//! * **Annotation-only files** (`SC4001EC-Hypnogram.edf`, record duration 0): all 154
//!   annotations are read (as pyedflib and `mne.read_annotations`), not cropped to a data span.
//! * **Start time zone**: EDF stores wall-clock time without a zone; [`EdfHeader::start`] is a
//!   `NaiveDateTime`. `theta inspect` prints it with `Z`, the convention of MNE's `meas_date`.
//! * **Physical values** use EDFlib's formula, `gain × (digital + offset)`, so they agree with
//!   pyedflib to the last bit.

mod error;
mod header;
mod labels;
mod reader;
pub(crate) mod tal;
mod writer;

pub use error::{EdfError, Result, Warning};
pub use header::{EdfHeader, Format, PatientInfo, RecordingInfo, Sex, SignalHeader, scaling};
pub use labels::{ChannelType, channel_type, label_alias, normalize_label, normalize_labels};
pub use reader::{Annotation, EdfReader, ReadOptions, RecordBuf, Segment};
pub use writer::{EdfWriter, EdfWriterBuilder};
