//! Time-stamped annotation lists (TALs) of EDF+/BDF+: parsing and writing.
//!
//! A TAL is `+onset[\x15duration]\x14text\x14text\x14...\x14\x00`. Times are kept exactly as
//! integer nanoseconds (`i64`, ±292 years) so record onsets and sub-second start times survive a
//! read-write round trip bit for bit; conversion to `f64` seconds happens once, at the API.

use std::ops::Range;

/// Nanoseconds per second.
pub(crate) const NS_PER_S: i64 = 1_000_000_000;

const TAL_DURATION: u8 = 0x15;
const TAL_TEXT: u8 = 0x14;

/// Parses an EDF+ time (`+12.5`, `-0.25`, `30`) into nanoseconds. Digits past the ninth decimal
/// are rounded. Returns the value and whether a sign was present, or `None` when the text is
/// not a number or does not fit.
pub(crate) fn parse_time_ns(text: &[u8]) -> Option<(i64, bool)> {
    let (negative, signed, rest) = match text.first() {
        Some(b'+') => (false, true, &text[1..]),
        Some(b'-') => (true, true, &text[1..]),
        _ => (false, false, text),
    };
    let (int_part, frac_part) = match rest.iter().position(|&b| b == b'.' || b == b',') {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.iter().chain(frac_part).all(u8::is_ascii_digit) {
        return None;
    }
    let mut seconds: i64 = 0;
    for &d in int_part {
        seconds = seconds.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    let mut frac: i64 = 0;
    for i in 0..9 {
        frac = frac * 10 + frac_part.get(i).map_or(0, |d| i64::from(d - b'0'));
    }
    if frac_part.get(9).is_some_and(|&d| d >= b'5') {
        frac += 1;
    }
    let ns = seconds.checked_mul(NS_PER_S)?.checked_add(frac)?;
    Some((if negative { -ns } else { ns }, signed))
}

/// Formats nanoseconds as an EDF+ time: sign, seconds, and only the decimals needed.
pub(crate) fn format_time_ns(ns: i64, with_sign: bool) -> String {
    let sign = if ns < 0 {
        "-"
    } else if with_sign {
        "+"
    } else {
        ""
    };
    let abs = ns.unsigned_abs();
    let secs = abs / NS_PER_S as u64;
    let frac = abs % NS_PER_S as u64;
    if frac == 0 {
        format!("{sign}{secs}")
    } else {
        let digits = format!("{frac:09}");
        format!("{sign}{secs}.{}", digits.trim_end_matches('0'))
    }
}

/// Converts seconds to nanoseconds, rounding to the nearest; `None` when not finite or out of
/// range.
pub(crate) fn seconds_to_ns(seconds: f64) -> Option<i64> {
    let ns = (seconds * NS_PER_S as f64).round();
    if ns.is_finite() && ns.abs() < 9.2e18 {
        Some(ns as i64)
    } else {
        None
    }
}

/// Nanoseconds to seconds.
pub(crate) fn ns_to_seconds(ns: i64) -> f64 {
    ns as f64 / NS_PER_S as f64
}

/// One parsed TAL; texts are byte ranges into the annotation signal's bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tal {
    pub(crate) onset_ns: i64,
    pub(crate) duration_ns: Option<i64>,
    /// True when the first text is empty: the time-keeping TAL of a record.
    pub(crate) first_text_empty: bool,
    pub(crate) texts: Vec<Range<usize>>,
}

/// A problem met while parsing one annotation signal of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TalIssue {
    /// A time stamp followed an empty text without a NUL in between; a new TAL was started.
    NotNulSeparated,
    /// Something could not be parsed at this offset within the signal's bytes; skipped.
    Malformed(usize),
}

/// Parses every TAL in one annotation signal's bytes of one data record.
///
/// Lenient on one real-world defect: Nihon Kohden writes `+1\x14\x14+1.14\x14text\x14`, with no
/// NUL closing the time-keeping TAL. A text that is itself a time stamp (optionally with a
/// duration) right after an empty text starts a new TAL; in a standard file an empty text only
/// ever ends the time-keeping TAL, so this never changes a well-formed file's meaning.
pub(crate) fn parse_tals(bytes: &[u8], tals: &mut Vec<Tal>, issues: &mut Vec<TalIssue>) {
    tals.clear();
    issues.clear();
    let len = bytes.len();
    let mut pos = 0;
    while pos < len {
        if bytes[pos] == 0 {
            pos += 1;
            continue;
        }
        let start = pos;
        // The time stamp runs to the first \x14 (or \x15 for a duration).
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == TAL_TEXT || b == 0)
            .map_or(len, |p| pos + p);
        if end >= len || bytes[end] != TAL_TEXT {
            issues.push(TalIssue::Malformed(start));
            pos = end + 1;
            continue;
        }
        let Some((onset_ns, duration_ns)) = parse_stamp(&bytes[start..end]) else {
            issues.push(TalIssue::Malformed(start));
            pos = skip_to_nul(bytes, end);
            continue;
        };
        let mut tal = Tal {
            onset_ns,
            duration_ns,
            first_text_empty: false,
            texts: Vec::new(),
        };
        pos = end + 1;
        let mut previous_empty = false;
        let mut first = true;
        loop {
            if pos >= len {
                // The signal ended inside the TAL: keep what was complete.
                issues.push(TalIssue::Malformed(start));
                break;
            }
            if bytes[pos] == 0 {
                pos += 1;
                break;
            }
            let text_end = bytes[pos..]
                .iter()
                .position(|&b| b == TAL_TEXT || b == 0)
                .map_or(len, |p| pos + p);
            if text_end >= len || bytes[text_end] == 0 {
                // A text not closed by \x14: drop it.
                issues.push(TalIssue::Malformed(pos));
                pos = text_end;
                continue;
            }
            let text = pos..text_end;
            pos = text_end + 1;
            if previous_empty && let Some((onset, duration)) = parse_stamp(&bytes[text.clone()]) {
                issues.push(TalIssue::NotNulSeparated);
                tals.push(std::mem::replace(
                    &mut tal,
                    Tal {
                        onset_ns: onset,
                        duration_ns: duration,
                        first_text_empty: false,
                        texts: Vec::new(),
                    },
                ));
                previous_empty = false;
                first = true;
                continue;
            }
            if text.is_empty() {
                if first {
                    tal.first_text_empty = true;
                }
                previous_empty = true;
            } else {
                previous_empty = false;
                tal.texts.push(text);
            }
            first = false;
        }
        tals.push(tal);
    }
}

fn skip_to_nul(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes.len(), |p| from + p + 1)
}

/// Parses `onset[\x15duration]`. The onset must carry a sign (as the standard says) unless it
/// is followed by a duration; the duration is unsigned. An empty duration means none.
fn parse_stamp(stamp: &[u8]) -> Option<(i64, Option<i64>)> {
    let (onset, duration) = match stamp.iter().position(|&b| b == TAL_DURATION) {
        Some(p) => (&stamp[..p], Some(&stamp[p + 1..])),
        None => (stamp, None),
    };
    let (onset_ns, signed) = parse_time_ns(onset)?;
    if !signed {
        return None;
    }
    let duration_ns = match duration {
        None | Some([]) => None,
        Some(d) => {
            let (ns, signed) = parse_time_ns(d)?;
            if signed || ns < 0 {
                return None;
            }
            Some(ns)
        }
    };
    Some((onset_ns, duration_ns))
}

/// Appends the time-keeping TAL `+onset\x14\x14\x00`.
pub(crate) fn write_timekeeping(out: &mut Vec<u8>, onset_ns: i64) {
    out.extend_from_slice(format_time_ns(onset_ns, true).as_bytes());
    out.extend_from_slice(&[TAL_TEXT, TAL_TEXT, 0]);
}

/// Appends one annotation as its own TAL.
pub(crate) fn write_annotation(
    out: &mut Vec<u8>,
    onset_ns: i64,
    duration_ns: Option<i64>,
    text: &str,
) {
    out.extend_from_slice(format_time_ns(onset_ns, true).as_bytes());
    if let Some(d) = duration_ns {
        out.push(TAL_DURATION);
        out.extend_from_slice(format_time_ns(d, false).as_bytes());
    }
    out.push(TAL_TEXT);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&[TAL_TEXT, 0]);
}

/// Bytes [`write_annotation`] appends.
pub(crate) fn annotation_len(onset_ns: i64, duration_ns: Option<i64>, text: &str) -> usize {
    let mut n = format_time_ns(onset_ns, true).len() + 1 + text.len() + 2;
    if let Some(d) = duration_ns {
        n += 1 + format_time_ns(d, false).len();
    }
    n
}

/// True when `text` can be an annotation text (no TAL delimiters).
pub(crate) fn valid_text(text: &str) -> bool {
    !text
        .bytes()
        .any(|b| b == 0 || b == TAL_TEXT || b == TAL_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(bytes: &'a [u8], tal: &Tal) -> Vec<&'a str> {
        tal.texts
            .iter()
            .map(|r| std::str::from_utf8(&bytes[r.clone()]).unwrap())
            .collect()
    }

    #[test]
    fn times_parse_exactly() {
        assert_eq!(parse_time_ns(b"+0.3945312"), Some((394_531_200, true)));
        assert_eq!(parse_time_ns(b"-1.5"), Some((-1_500_000_000, true)));
        assert_eq!(parse_time_ns(b"30"), Some((30 * NS_PER_S, false)));
        assert_eq!(parse_time_ns(b"+.5"), Some((500_000_000, true)));
        assert_eq!(parse_time_ns(b"+1.0000000005"), Some((1_000_000_001, true)));
        assert_eq!(parse_time_ns(b"+"), None);
        assert_eq!(parse_time_ns(b"+1e3"), None);
        assert_eq!(parse_time_ns(b"+99999999999999999999"), None);
    }

    #[test]
    fn times_format_minimally() {
        assert_eq!(format_time_ns(394_531_200, true), "+0.3945312");
        assert_eq!(format_time_ns(30 * NS_PER_S, false), "30");
        assert_eq!(format_time_ns(-1_500_000_000, true), "-1.5");
        assert_eq!(format_time_ns(0, true), "+0");
    }

    #[test]
    fn standard_tals() {
        let b = b"+0\x14\x14\x00+0.1344\x150.2560\x14type A\x14\x00\x00\x00";
        let (mut tals, mut issues) = (Vec::new(), Vec::new());
        parse_tals(b, &mut tals, &mut issues);
        assert!(issues.is_empty());
        assert_eq!(tals.len(), 2);
        assert!(tals[0].first_text_empty);
        assert_eq!(tals[1].onset_ns, 134_400_000);
        assert_eq!(tals[1].duration_ns, Some(256_000_000));
        assert_eq!(texts(b, &tals[1]), ["type A"]);
    }

    #[test]
    fn nihon_kohden_tals_without_nul() {
        let b = b"+1.000000\x14\x14+1.140000\x14A1+A2 OFF\x14\x00\x00";
        let (mut tals, mut issues) = (Vec::new(), Vec::new());
        parse_tals(b, &mut tals, &mut issues);
        assert_eq!(issues, [TalIssue::NotNulSeparated]);
        assert_eq!(tals.len(), 2);
        assert_eq!(tals[0].onset_ns, NS_PER_S);
        assert!(tals[0].first_text_empty && tals[0].texts.is_empty());
        assert_eq!(tals[1].onset_ns, 1_140_000_000);
        assert_eq!(texts(b, &tals[1]), ["A1+A2 OFF"]);
    }

    #[test]
    fn numeric_text_after_nul_stays_text() {
        // chtypes_edf.edf: a TAL whose text is a number, properly NUL-separated.
        let b = b"+0\x14\x14\x00+0\x14+0.000000\x14\x00";
        let (mut tals, mut issues) = (Vec::new(), Vec::new());
        parse_tals(b, &mut tals, &mut issues);
        assert!(issues.is_empty());
        assert_eq!(texts(b, &tals[1]), ["+0.000000"]);
    }

    #[test]
    fn garbage_is_reported_not_panicked() {
        for b in [
            &b"\x14\x14\x14"[..],
            b"+1",
            b"+1\x14abc",
            b"abc\x14def\x14\x00",
            b"+1\x15\x14x\x14",
            b"\x15\x15\x00",
        ] {
            let (mut tals, mut issues) = (Vec::new(), Vec::new());
            parse_tals(b, &mut tals, &mut issues);
        }
    }

    #[test]
    fn written_tals_parse_back() {
        let mut out = Vec::new();
        write_timekeeping(&mut out, 394_531_200);
        let timekeeping = out.len();
        write_annotation(&mut out, 1_500_000_000, Some(250_000_000), "中文");
        assert_eq!(
            out.len(),
            timekeeping + annotation_len(1_500_000_000, Some(250_000_000), "中文")
        );
        let (mut tals, mut issues) = (Vec::new(), Vec::new());
        parse_tals(&out, &mut tals, &mut issues);
        assert!(issues.is_empty());
        assert_eq!(tals[0].onset_ns, 394_531_200);
        assert_eq!(tals[1].duration_ns, Some(250_000_000));
        assert_eq!(texts(&out, &tals[1]), ["中文"]);
    }
}
