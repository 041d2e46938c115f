//! Masking of identifying substrings in free text (annotations of exported recordings).
//!
//! [`TextMasker::mask`] replaces, in this order: e-mail addresses (`[EMAIL]`), French social
//! security numbers (`[NIR]`), phone numbers (`[PHONE]`), dates (`[DATE]`), the words known to
//! identify the subject — names and codes from the EDF header and the like (`[NAME]`) — and
//! runs of six digits or more such as hospital record numbers (`[ID]`). Clinical text is left alone:
//! times of day (`14:32`), frequencies, durations, electrode names and decimals do not match.
//!
//! The masker works on pieces of text between placeholders, so a placeholder is never matched
//! again (a patient called "Name" does not turn `[NAME]` into `[[NAME]]`) and no pattern spans
//! one. Passes repeat until nothing changes, which makes masking idempotent:
//! `mask(mask(x)) == mask(x)`.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Replacement of a person's name or another identifying word.
pub const NAME: &str = "[NAME]";
/// Replacement of a date (with its time, when attached).
pub const DATE: &str = "[DATE]";
/// Replacement of a phone number.
pub const PHONE: &str = "[PHONE]";
/// Replacement of an e-mail address.
pub const EMAIL: &str = "[EMAIL]";
/// Replacement of a French social security number (NIR).
pub const NIR: &str = "[NIR]";
/// Replacement of a long number (record number, identifier).
pub const ID: &str = "[ID]";

const TAGS: [&str; 6] = [NAME, DATE, PHONE, EMAIL, NIR, ID];

/// Month names and abbreviations, French and English, for the date patterns (matched
/// case-insensitively and as whole words).
const MONTH: &str = "(?:janvier|f[ée]vrier|mars|avril|mai|juin|juillet|ao[uû]t|septembre|octobre|novembre|d[ée]cembre|janv|f[ée]vr?|avr|juil|sept|d[ée]c|january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|oct|nov)";

/// Full month names (folded): a day and one of these is a date even without a year, while an
/// abbreviation needs the year (`3 mar` is too ambiguous). "may" is left out: `3 may be`.
const FULL_MONTHS: &[&str] = &[
    "janvier",
    "fevrier",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "aout",
    "septembre",
    "octobre",
    "novembre",
    "decembre",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn re(pattern: &str) -> Regex {
    // The patterns are constants checked by the tests: failing here is a programming error.
    Regex::new(pattern).expect("constant masking pattern compiles")
}

static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| re(r"\[(?:NAME|DATE|PHONE|EMAIL|NIR|ID)\]"));

static EMAIL_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"[\p{L}\p{N}][\p{L}\p{N}._%+\-']*@[\p{L}\p{N}][\p{L}\p{N}\-]*(?:\.[\p{L}\p{N}\-]+)*")
});

/// NIR: sex (1, 2, or 3/4/7/8 for provisional numbers), year, month, department (two digits,
/// 2A/2B for Corsica, or three digits overseas with a two-digit commune), commune, order
/// number, optional two-digit key; groups optionally separated by a space, dot or dash.
static NIR_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"[1-478][ .\-]?[0-9]{2}[ .\-]?[0-9]{2}[ .\-]?(?:(?:[0-9]{2}|2[ABab])[ .\-]?[0-9]{3}|9[78][0-9][ .\-]?[0-9]{2})[ .\-]?[0-9]{3}(?:[ .\-]?[0-9]{2})?",
    )
});

/// French numbers: `0X XX XX XX XX` or `+33 X …` / `0033 X …` / `+33 (0)X …`.
static PHONE_FR_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?:(?:\+|00)[ .\-]?33[ .\-]?(?:\(0\)[ .\-]?)?|0)[1-9](?:[ .\-]?[0-9]{2}){4}")
});

/// International numbers: `+` or `00`, then digit groups; the digit count (8 to 15, E.164) is
/// checked in code. The length bound keeps a rejected candidate cheap to retry (a run of
/// zeros would otherwise cost quadratic time).
static PHONE_INTL_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:\+|00)[ ]?[1-9][0-9 .\-()/]{0,30}[0-9]"));

/// `2024-03-12`, `2024/03/12`, with an optional time and zone (`2024-03-12T14:32:05Z`).
static DATE_ISO_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?P<y>[0-9]{4})[\-/.](?P<a>[0-9]{1,2})[\-/.](?P<b>[0-9]{1,2})(?:[T ][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:Z|[+\-][0-9]{2}:?[0-9]{2})?)?",
    )
});

/// `12/03/2024`, `12-03-24`, `12.03.2024` (day and month in either order).
static DATE_NUM_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?P<a>[0-9]{1,2})[/.\-](?P<b>[0-9]{1,2})[/.\-](?P<y>[0-9]{4}|[0-9]{2})"));

/// `12 mars 2024`, `12-MAR-2024`, `1er janvier`, `12 Mar 24`.
static DATE_DMY_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)\b(?P<d>[0-9]{{1,2}})(?:er|st|nd|rd|th)?[ \-./]{{0,3}}(?P<m>{MONTH})\b\.?(?:[ \-./,]{{1,3}}(?P<y>[0-9]{{4}}|[0-9]{{2}})\b)?"
    ))
});

/// `March 12, 2024`, `mars 12`.
static DATE_MDY_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)\b(?P<m>{MONTH})\b\.?[ ]{{0,3}}(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?\b(?:,?[ ]{{0,3}}(?P<y>[0-9]{{4}})\b)?"
    ))
});

/// `mars 2024`, `MAR-2024`.
static DATE_MY_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)\b(?P<m>{MONTH})\b\.?[ \-./,]{{0,3}}(?P<y>[0-9]{{4}})\b"
    ))
});

/// `03/2024`: month and year with a slash (a dash would catch ranges such as `1-2000 Hz`).
static DATE_MY_NUM_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?P<m>[0-9]{1,2})/(?P<y>[0-9]{4})"));

static LONG_NUMBER_RE: LazyLock<Regex> = LazyLock::new(|| re(r"[0-9]{6,}"));

/// Decides whether a candidate match is kept, and which part of it is masked.
type Check = fn(&str, &Captures<'_>) -> Option<Range<usize>>;

struct Pass {
    regex: &'static LazyLock<Regex>,
    check: Check,
    tag: &'static str,
}

/// The pattern passes, before the names. Long numbers come after the names so that a known
/// code (`MCH-0234567`) is masked whole.
const PASSES: [Pass; 10] = [
    Pass {
        regex: &EMAIL_RE,
        check: whole,
        tag: EMAIL,
    },
    Pass {
        regex: &NIR_RE,
        check: check_isolated,
        tag: NIR,
    },
    Pass {
        regex: &PHONE_FR_RE,
        check: check_isolated,
        tag: PHONE,
    },
    Pass {
        regex: &PHONE_INTL_RE,
        check: check_intl_phone,
        tag: PHONE,
    },
    Pass {
        regex: &DATE_ISO_RE,
        check: check_iso_date,
        tag: DATE,
    },
    Pass {
        regex: &DATE_NUM_RE,
        check: check_numeric_date,
        tag: DATE,
    },
    Pass {
        regex: &DATE_DMY_RE,
        check: check_text_date,
        tag: DATE,
    },
    Pass {
        regex: &DATE_MDY_RE,
        check: check_text_date,
        tag: DATE,
    },
    Pass {
        regex: &DATE_MY_RE,
        check: check_month_year,
        tag: DATE,
    },
    Pass {
        regex: &DATE_MY_NUM_RE,
        check: check_numeric_month_year,
        tag: DATE,
    },
];

const LONG_NUMBERS: Pass = Pass {
    regex: &LONG_NUMBER_RE,
    check: whole,
    tag: ID,
};

fn whole(_: &str, c: &Captures<'_>) -> Option<Range<usize>> {
    c.get(0).map(|m| m.range())
}

fn char_before(s: &str, at: usize) -> Option<char> {
    s[..at].chars().next_back()
}

fn char_after(s: &str, at: usize) -> Option<char> {
    s[at..].chars().next()
}

fn num(c: &Captures<'_>, name: &str) -> Option<u32> {
    c.name(name)?.as_str().parse().ok()
}

/// A number not glued to letters or digits on either side.
fn check_isolated(s: &str, c: &Captures<'_>) -> Option<Range<usize>> {
    let m = c.get(0)?;
    let free = |ch: Option<char>| !ch.is_some_and(char::is_alphanumeric);
    (free(char_before(s, m.start())) && free(char_after(s, m.end()))).then(|| m.range())
}

/// Keeps the longest prefix ending at a digit group with at most 15 digits (E.164), if it has
/// at least 8: a number followed by other figures (`+44 20 7946 0958 12 s`) is still masked.
fn check_intl_phone(s: &str, c: &Captures<'_>) -> Option<Range<usize>> {
    let m = c.get(0)?;
    if char_before(s, m.start()).is_some_and(char::is_alphanumeric) {
        return None;
    }
    let text = m.as_str();
    let bytes = text.as_bytes();
    let mut digits = 0;
    let mut best = None;
    for (i, b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            digits += 1;
            let group_ends = bytes.get(i + 1).is_none_or(|n| !n.is_ascii_digit());
            if group_ends {
                if digits > 15 {
                    break;
                }
                if digits >= 8 {
                    best = Some(m.start()..m.start() + i + 1);
                }
            }
        }
    }
    best
}

fn plausible_day_month(a: u32, b: u32) -> bool {
    (1..=31).contains(&a) && (1..=31).contains(&b) && (a <= 12 || b <= 12)
}

fn check_iso_date(s: &str, c: &Captures<'_>) -> Option<Range<usize>> {
    let m = c.get(0)?;
    let digit = |ch: Option<char>| ch.is_some_and(|ch| ch.is_ascii_digit());
    let ok = !digit(char_before(s, m.start()))
        && !digit(char_after(s, m.end()))
        && (1..=12).contains(&num(c, "a")?)
        && (1..=31).contains(&num(c, "b")?);
    ok.then(|| m.range())
}

fn check_numeric_date(s: &str, c: &Captures<'_>) -> Option<Range<usize>> {
    let m = c.get(0)?;
    let before = char_before(s, m.start());
    let after = char_after(s, m.end());
    let digit = |ch: Option<char>| ch.is_some_and(|ch| ch.is_ascii_digit());
    // `1.2.3.45` or `12.03.2024.1`: part of a longer dotted number, not a date.
    let dotted = |ch: Option<char>| matches!(ch, Some('.' | '/' | '-'));
    let glued_after = dotted(after) && digit(char_after(s, m.end() + 1));
    let glued_before = dotted(before) && digit(char_before(s, m.start() - 1));
    let ok = !digit(before)
        && !digit(after)
        && !glued_after
        && !glued_before
        && plausible_day_month(num(c, "a")?, num(c, "b")?);
    ok.then(|| m.range())
}

fn month_is_full(c: &Captures<'_>) -> bool {
    c.name("m")
        .is_some_and(|m| FULL_MONTHS.contains(&fold(m.as_str()).as_str()))
}

fn check_text_date(s: &str, c: &Captures<'_>) -> Option<Range<usize>> {
    let m = c.get(0)?;
    let month = c.name("m")?;
    if !(1..=31).contains(&num(c, "d")?) {
        return None;
    }
    match c.name("y") {
        // `3 mars 14:32`: the "year" is an hour; mask the day and month only.
        Some(y) if y.as_str().len() == 2 && char_after(s, y.end()) == Some(':') => {
            if !month_is_full(c) {
                return None;
            }
            let mut end = month.end();
            if s[end..].starts_with('.') {
                end += 1;
            }
            Some(m.start()..end.max(c.name("d")?.end()))
        }
        Some(_) => Some(m.range()),
        None => month_is_full(c).then(|| m.range()),
    }
}

fn check_month_year(_: &str, c: &Captures<'_>) -> Option<Range<usize>> {
    (1800..=2199)
        .contains(&num(c, "y")?)
        .then(|| c.get(0).map(|m| m.range()))?
}

fn check_numeric_month_year(s: &str, c: &Captures<'_>) -> Option<Range<usize>> {
    let m = c.get(0)?;
    let month_ok = (1..=12).contains(&num(c, "m")?);
    let year_ok = (1800..=2199).contains(&num(c, "y")?);
    let free = |ch: Option<char>| !ch.is_some_and(|ch| ch.is_ascii_digit() || ch == '/');
    (month_ok && year_ok && free(char_before(s, m.start())) && free(char_after(s, m.end())))
        .then(|| m.range())
}

/// Lower case without accents, for comparing names: `Éloïse` and `eloise` are one word.
/// Common Latin letters only (French, Western and Central European names); other scripts
/// are only lower-cased.
pub(crate) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_combining(c) {
            continue;
        }
        for l in c.to_lowercase() {
            match strip_accent(l) {
                Some(base) => out.push_str(base),
                None => out.push(l),
            }
        }
    }
    out
}

fn is_combining(c: char) -> bool {
    ('\u{300}'..='\u{36f}').contains(&c)
}

fn strip_accent(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' => "s",
        'ţ' | 'ť' | 'ŧ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'æ' => "ae",
        'œ' => "oe",
        'ß' => "ss",
        'þ' => "th",
        _ => return None,
    })
}

/// Letters, digits and combining accents: the characters of a word.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining(c)
}

/// The words of `s` with their byte ranges.
fn words(s: &str) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (is_word_char(c), start) {
            (true, None) => start = Some(i),
            (false, Some(st)) => {
                out.push((st..i, fold(&s[st..i])));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((st..s.len(), fold(&s[st..])));
    }
    out
}

/// Words that identify nobody on their own (name particles, function words, EEG vocabulary
/// that plain EDF headers carry): masked only inside a longer identifying phrase, so that a
/// patient "Le Gall" or a header "Routine EEG Dr Martin" does not erase `le` or `EEG` from
/// every annotation.
const STOP_WORDS: &[&str] = &[
    "le",
    "la",
    "les",
    "de",
    "du",
    "des",
    "da",
    "di",
    "del",
    "van",
    "von",
    "der",
    "den",
    "ten",
    "el",
    "al",
    "ben",
    "bin",
    "mc",
    "st",
    "et",
    "and",
    "the",
    "of",
    "from",
    "for",
    "with",
    "by",
    "to",
    "in",
    "on",
    "at",
    "an",
    "no",
    "not",
    "dr",
    "pr",
    "mr",
    "mrs",
    "ms",
    "mme",
    "mlle",
    "m",
    "left",
    "right",
    "gauche",
    "droite",
    "handed",
    "eeg",
    "ecg",
    "ekg",
    "emg",
    "eog",
    "psg",
    "hz",
    "uv",
    "mv",
    "routine",
    "recording",
    "enregistrement",
    "sleep",
    "sommeil",
    "seconds",
    "sec",
    "min",
    "hr",
    "test",
    "patient",
    "years",
    "yrs",
    "ans",
    "age",
    "male",
    "female",
    "homme",
    "femme",
    "tech",
    "technician",
    "x",
];

/// Longest gap (in bytes) between the words of an identifying phrase: `Dupont, Jean`,
/// `Dupont - Jean`.
const MAX_PHRASE_GAP: usize = 3;

/// Masks identifying substrings of free text. Built once per subject (its identifying words),
/// used for every annotation of the subject's recordings.
#[derive(Clone, Default)]
pub struct TextMasker {
    /// Single folded words masked wherever they stand alone.
    singles: HashSet<String>,
    /// Folded multi-word phrases by their first word, longest first.
    phrases: HashMap<String, Vec<Vec<String>>>,
}

impl std::fmt::Debug for TextMasker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextMasker")
            .field("words", &self.singles.len())
            .field(
                "phrases",
                &self.phrases.values().map(Vec::len).sum::<usize>(),
            )
            .finish()
    }
}

impl TextMasker {
    /// A masker for one subject. `identifying` holds names and other known identifying strings
    /// (typically [`super::pseudo::EdfPatient::name_tokens`] and
    /// [`super::pseudo::EdfRecordingField::identifying_tokens`]).
    ///
    /// Each string is matched whole (its words in order, with up to three separator
    /// characters between them) and, word by word, each of its words of two characters or more
    /// — except words in a short stop list (`le`, `de`, `van`, `EEG`, …) and numbers of fewer
    /// than four digits, which appear in any clinical text. Matching is case- and
    /// accent-insensitive and on whole words only.
    pub fn new(identifying: &[String]) -> Self {
        let mut singles = HashSet::new();
        let mut phrases: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for token in identifying {
            let ws: Vec<String> = words(token).into_iter().map(|(_, w)| w).collect();
            for w in &ws {
                let chars = w.chars().count();
                let short_number = w.chars().all(|c| c.is_ascii_digit()) && chars < 4;
                if chars >= 2 && !short_number && !STOP_WORDS.contains(&w.as_str()) {
                    singles.insert(w.clone());
                }
            }
            if ws.len() >= 2 {
                let entry = phrases.entry(ws[0].clone()).or_default();
                if !entry.contains(&ws) {
                    entry.push(ws);
                }
            }
        }
        for list in phrases.values_mut() {
            list.sort_by_key(|p| std::cmp::Reverse(p.len()));
        }
        Self { singles, phrases }
    }

    /// `text` with identifying substrings replaced by `[EMAIL]`, `[NIR]`, `[PHONE]`, `[DATE]`,
    /// `[ID]` and `[NAME]`. Never fails; `mask(mask(x)) == mask(x)`.
    pub fn mask(&self, text: &str) -> String {
        let mut pieces = split_placeholders(text);
        // Each round only turns text into placeholders, so the loop ends; the last round
        // changed nothing, which is what makes a second `mask` a no-op.
        loop {
            let mut changed = false;
            for pass in &PASSES {
                pieces = apply(pieces, pass.tag, &mut changed, |s| {
                    find_checked(pass.regex, s, pass.check)
                });
            }
            pieces = apply(pieces, NAME, &mut changed, |s| self.find_names(s));
            pieces = apply(pieces, ID, &mut changed, |s| {
                find_checked(LONG_NUMBERS.regex, s, LONG_NUMBERS.check)
            });
            if !changed {
                break;
            }
        }
        let mut out = String::with_capacity(text.len());
        for p in &pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Tag(t) => out.push_str(t),
            }
        }
        out
    }

    fn find_names(&self, s: &str) -> Vec<Range<usize>> {
        if self.singles.is_empty() && self.phrases.is_empty() {
            return Vec::new();
        }
        let ws = words(s);
        let mut out = Vec::new();
        let mut i = 0;
        while i < ws.len() {
            let phrase_len = self
                .phrases
                .get(&ws[i].1)
                .and_then(|list| list.iter().find(|p| phrase_at(s, &ws, i, p)).map(Vec::len));
            if let Some(n) = phrase_len {
                out.push(ws[i].0.start..ws[i + n - 1].0.end);
                i += n;
            } else {
                if self.singles.contains(&ws[i].1) {
                    out.push(ws[i].0.clone());
                }
                i += 1;
            }
        }
        out
    }
}

/// Whether `phrase` starts at word `i` of `s`, with short separators between its words.
fn phrase_at(s: &str, ws: &[(Range<usize>, String)], i: usize, phrase: &[String]) -> bool {
    if i + phrase.len() > ws.len() {
        return false;
    }
    phrase.iter().enumerate().all(|(k, w)| {
        let here = &ws[i + k];
        if &here.1 != w {
            return false;
        }
        if k == 0 {
            return true;
        }
        let gap = &s[ws[i + k - 1].0.end..here.0.start];
        gap.len() <= MAX_PHRASE_GAP && !gap.contains('\n')
    })
}

/// Masked text in the making: runs of text and the placeholders that replaced matches.
enum Piece {
    Text(String),
    Tag(&'static str),
}

fn split_placeholders(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut last = 0;
    for m in PLACEHOLDER.find_iter(text) {
        if m.start() > last {
            out.push(Piece::Text(text[last..m.start()].to_owned()));
        }
        let tag = TAGS
            .iter()
            .find(|t| **t == m.as_str())
            .copied()
            .unwrap_or(ID);
        out.push(Piece::Tag(tag));
        last = m.end();
    }
    if last < text.len() {
        out.push(Piece::Text(text[last..].to_owned()));
    }
    out
}

/// Replaces, in every text piece, the ranges `find` returns (sorted, disjoint) by `tag`.
fn apply(
    pieces: Vec<Piece>,
    tag: &'static str,
    changed: &mut bool,
    find: impl Fn(&str) -> Vec<Range<usize>>,
) -> Vec<Piece> {
    let mut out = Vec::with_capacity(pieces.len());
    for p in pieces {
        let Piece::Text(t) = p else {
            out.push(p);
            continue;
        };
        let found = find(&t);
        if found.is_empty() {
            out.push(Piece::Text(t));
            continue;
        }
        *changed = true;
        let mut last = 0;
        for r in found {
            if r.start > last {
                out.push(Piece::Text(t[last..r.start].to_owned()));
            }
            out.push(Piece::Tag(tag));
            last = r.end;
        }
        if last < t.len() {
            out.push(Piece::Text(t[last..].to_owned()));
        }
    }
    out
}

/// Non-overlapping matches of `regex` in `s` that `check` accepts. A rejected candidate is
/// retried one character further, so a valid match overlapping it is not missed.
fn find_checked(regex: &Regex, s: &str, check: Check) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < s.len() {
        let Some(caps) = regex.captures_at(s, pos) else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        let step = m.start() + char_after(s, m.start()).map_or(1, char::len_utf8);
        match check(s, &caps).filter(|r| !r.is_empty() && r.start >= pos && r.end <= s.len()) {
            Some(r) => {
                pos = r.end.max(step);
                out.push(r);
            }
            None => pos = step,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain() -> TextMasker {
        TextMasker::new(&[])
    }

    fn masker() -> TextMasker {
        TextMasker::new(&[
            "Jean-Pierre Dupont".into(),
            "Dupont".into(),
            "Éloïse".into(),
            "Le Gall".into(),
            "MCH-0234567".into(),
            "P-12".into(),
        ])
    }

    #[track_caller]
    fn masks(input: &str, expected: &str) {
        assert_eq!(masker().mask(input), expected, "input: {input}");
    }

    #[track_caller]
    fn keeps(input: &str) {
        assert_eq!(masker().mask(input), input);
    }

    #[test]
    fn all_patterns_compile() {
        for p in &PASSES {
            let _ = p.regex.as_str();
        }
        let _ = LONG_NUMBERS.regex.as_str();
        let _ = PLACEHOLDER.as_str();
    }

    #[test]
    fn emails() {
        masks(
            "écrire à jean.dupont@chu-lyon.fr svp",
            "écrire à [EMAIL] svp",
        );
        masks("<j_d+eeg@hopital.ap-hp.fr>", "<[EMAIL]>");
        masks("mail: éloïse.martin@hôpital.fr.", "mail: [EMAIL].");
        keeps("@ alone and a@ or @b");
    }

    #[test]
    fn social_security_numbers() {
        masks("NIR 1 84 12 75 123 456 78 ok", "NIR [NIR] ok");
        masks("NIR 184127512345678", "NIR [NIR]");
        masks("secu 1841275123456", "secu [NIR]");
        masks("n° 2.84.12.2A.123.456.78", "n° [NIR]");
        masks("n° 2-84-12-2B-123-456", "n° [NIR]");
        masks("outre-mer 1 84 12 971 23 456 78", "outre-mer [NIR]");
        // A number right after a key-less NIR reads as its key; a comma keeps them apart.
        masks("NIR 1 84 12 75 123 456, 50 Hz", "NIR [NIR], 50 Hz");
        // Glued to letters or other digits: left to the long-number pass.
        masks("x1841275123456789", "x[ID]");
    }

    #[test]
    fn french_phones() {
        for p in [
            "06 12 34 56 78",
            "06.12.34.56.78",
            "06-12-34-56-78",
            "0612345678",
            "+33 6 12 34 56 78",
            "+33612345678",
            "+33 (0)6 12 34 56 78",
            "+33 (0) 6 12 34 56 78",
            "0033 6 12 34 56 78",
            "01 42 34 56 78",
        ] {
            masks(&format!("tél {p}, rappeler"), "tél [PHONE], rappeler");
        }
    }

    #[test]
    fn international_phones() {
        masks("call +44 20 7946 0958 today", "call [PHONE] today");
        masks("call +1 (555) 123-4567.", "call [PHONE].");
        masks("+49 30 1234567", "[PHONE]");
        masks("0044 20 7946 0958", "[PHONE]");
        // Fewer than 8 digits: not a phone.
        keeps("gain +12 dB, +50 µV");
        keeps("offset +3.5 s");
    }

    #[test]
    fn numeric_dates() {
        for d in [
            "12/03/2024",
            "12-03-24",
            "12.03.2024",
            "3/12/2024",
            "03/31/2024",
        ] {
            masks(
                &format!("vu le {d} en consultation"),
                "vu le [DATE] en consultation",
            );
        }
        masks("2024-03-12", "[DATE]");
        masks("at 2024-03-12T14:32:05Z end", "at [DATE] end");
        masks("at 2024-03-12 14:32 end", "at [DATE] end");
        masks("at 2024-03-12T14:32:05.123+01:00", "at [DATE]");
        masks("2024/03/12", "[DATE]");
        masks("03/2024", "[DATE]");
        // Not dates.
        keeps("ratio 40/50/60");
        keeps("version 1.2.3.45");
        keeps("13/13/2024");
    }

    #[test]
    fn text_dates() {
        for d in [
            "12 mars 2024",
            "1er janvier 2020",
            "12 février 2024",
            "12 fevrier 2024",
            "March 12, 2024",
            "March 12 2024",
            "12-MAR-2024",
            "12 Mar 2024",
            "12 mar. 2024",
            "12 déc. 24",
            "3rd August 2021",
            "mars 2024",
            "Sept. 2019",
            "DEC-2019",
            "12 mars",
            "August 3",
            "15 août",
            "15 aout 1990",
        ] {
            masks(&format!("né le {d} à Lyon"), "né le [DATE] à Lyon");
        }
        masks("le 3 mars 14:32 crise", "le [DATE] 14:32 crise");
    }

    #[test]
    fn times_and_clinical_text_are_kept() {
        for t in [
            "14:32",
            "crise à 14:32:05",
            "spike-wave 3 Hz",
            "Fp1-F7 T3-T5 C3-P3",
            "eyes closed",
            "HV 3 min",
            "PLED",
            "50 Hz notch",
            "seizure onset 12.5 s",
            "photic 14 Hz",
            "3 mar",
            "3 may be artefact",
            "bandpass 1-2000 Hz",
            "amplitude 150 µV, 0.5-70 Hz",
            "sleep stage N2 at 02:15",
            "1 spike every 2-3 s",
            "SpO2 95 %",
            "March towards the left",
        ] {
            keeps(t);
        }
    }

    #[test]
    fn long_numbers() {
        masks("IPP 12345678", "IPP [ID]");
        masks("dossier n°123456.", "dossier n°[ID].");
        masks("IPP12345678", "IPP[ID]");
        keeps("12345 samples");
    }

    #[test]
    fn names() {
        masks("Patient Jean-Pierre Dupont vu", "Patient [NAME] vu");
        masks("DUPONT agité", "[NAME] agité");
        masks("dupont, jean-pierre", "[NAME], [NAME]-[NAME]");
        masks(
            "Mme Eloise et ÉLOÏSE et Élo\u{0308}ise",
            "Mme [NAME] et [NAME] et [NAME]",
        );
        masks("Le Gall", "[NAME]");
        masks("famille Le  Gall", "famille [NAME]");
        masks("le patient Gall", "le patient [NAME]");
        masks("code MCH-0234567 et P-12", "code [NAME] et [NAME]");
        masks("0234567", "[NAME]");
        masks("IPP 12345678 MCH-0234567", "IPP [ID] [NAME]");
        // Whole words only; short numbers from a code are not masked alone.
        keeps("Dupontel Jeanne 12 Hz");
        keeps("Pierrette");
    }

    #[test]
    fn placeholder_names_do_not_recurse() {
        let m = TextMasker::new(&["Name".into(), "Date".into(), "ID".into()]);
        assert_eq!(
            m.mask("Name Date id [NAME] [ID]"),
            "[NAME] [NAME] [NAME] [NAME] [ID]"
        );
    }

    #[test]
    fn combined_annotation() {
        let m = masker();
        let text = "Dr Dupont (jean.dupont@chu.fr, 06 12 34 56 78) le 12/03/2024: \
                    crise 14:32, spike-wave 3 Hz, NIR 1 84 12 75 123 456 78, IPP 12345678";
        assert_eq!(
            m.mask(text),
            "Dr [NAME] ([EMAIL], [PHONE]) le [DATE]: crise 14:32, spike-wave 3 Hz, NIR [NIR], IPP [ID]"
        );
    }

    #[test]
    fn empty_and_odd_inputs() {
        let m = masker();
        for s in [
            "",
            " ",
            "[",
            "]",
            "[NAME",
            "[[NAME]]",
            "\u{0}",
            "é\u{301}",
            "🧠 06 12 34 56 78",
        ] {
            let once = m.mask(s);
            assert_eq!(m.mask(&once), once);
        }
        assert_eq!(m.mask("🧠 06 12 34 56 78"), "🧠 [PHONE]");
        assert!(!format!("{m:?}").contains("Dupont"));
    }

    #[test]
    fn hostile_inputs_finish() {
        // Each would cost quadratic time if a rejected candidate were rescanned to the end.
        let m = masker();
        for s in [
            "0".repeat(20_000),
            "+1 ".repeat(7_000),
            format!("{}@-", ".".repeat(20_000)),
            "1 84 12 ".repeat(5_000),
            "Jean ".repeat(5_000),
            "12/".repeat(7_000),
        ] {
            let once = m.mask(&s);
            assert_eq!(m.mask(&once), once);
        }
    }

    #[test]
    fn fold_strips_accents() {
        assert_eq!(
            fold("ÉLOÏSE Œuvre Straße Łódź"),
            "eloise oeuvre strasse lodz"
        );
        assert_eq!(fold("e\u{301}"), "e");
    }

    const CLINICAL: &[&str] = &[
        "spike-wave 3 Hz",
        "Fp1-F7",
        "eyes closed",
        "HV 3 min",
        "PLED",
        "50 Hz",
        "seizure onset 12.5 s",
        "photic 14 Hz",
        "crise à 14:32",
        "artefact",
        "T3-T5 sharp wave",
        "sleep stage N2",
        "0.5-70 Hz",
        "amplitude 150 µV",
    ];

    fn clinical() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(CLINICAL), 0..6)
            .prop_map(|v| v.join(", "))
    }

    fn sep() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(&[" ", ".", "-", ""][..])
    }

    fn email() -> impl Strategy<Value = String> {
        (
            "[a-z][a-z0-9._]{0,10}[a-z0-9]",
            "[a-z][a-z0-9-]{1,10}",
            "(fr|com|org|eu)",
        )
            .prop_map(|(l, d, t)| format!("{l}@{d}.{t}"))
    }

    fn phone() -> impl Strategy<Value = String> {
        (
            proptest::sample::select(&["0", "+33 ", "+33", "0033 ", "+33 (0)"][..]),
            1u32..=9,
            proptest::collection::vec(0u32..100, 4),
            sep(),
        )
            .prop_map(|(prefix, first, groups, s)| {
                let rest: Vec<String> = groups.iter().map(|g| format!("{g:02}")).collect();
                format!("{prefix}{first}{s}{}", rest.join(s))
            })
    }

    fn nir() -> impl Strategy<Value = String> {
        (
            proptest::sample::select(&["1", "2"][..]),
            0u32..100,
            1u32..=12,
            proptest::sample::select(&["75", "13", "2A", "2B", "69"][..]),
            0u32..1000,
            0u32..1000,
            proptest::option::of(1u32..=97),
            sep(),
        )
            .prop_map(|(sex, y, m, dep, com, ord, key, s)| {
                let mut n = format!("{sex}{s}{y:02}{s}{m:02}{s}{dep}{s}{com:03}{s}{ord:03}");
                if let Some(k) = key {
                    n.push_str(&format!("{s}{k:02}"));
                }
                n
            })
    }

    fn digits_of(s: &str) -> String {
        s.chars().filter(char::is_ascii_digit).collect()
    }

    proptest! {
        #[test]
        fn never_panics_and_is_idempotent(s in "\\PC{0,200}") {
            let m = masker();
            let once = m.mask(&s);
            prop_assert_eq!(m.mask(&once), once);
        }

        #[test]
        fn idempotent_on_digit_soup(s in "[0-9 .+/()\\-:A-Za-z@]{0,80}") {
            let m = masker();
            let once = m.mask(&s);
            prop_assert_eq!(m.mask(&once), once);
        }

        #[test]
        fn clinical_text_is_untouched(c in clinical()) {
            prop_assert_eq!(masker().mask(&c), c);
        }

        #[test]
        fn inserted_identifiers_are_masked(
            before in clinical(), after in clinical(),
            e in email(), p in phone(), n in nir(),
            which in 0usize..3
        ) {
            let secret = [e.as_str(), p.as_str(), n.as_str()][which];
            // A comma after the number: `… 456 50 Hz` could be a NIR key followed by `Hz`.
            let text = format!("{before} {secret}, {after}");
            let out = plain().mask(&text);
            prop_assert!(!out.contains(secret), "{} -> {}", text, out);
            if which > 0 {
                // None of the number's digits survive as a run either.
                let d = digits_of(secret);
                prop_assert!(!digits_of(&out).contains(&d), "{} -> {}", text, out);
            }
            let tag = [EMAIL, PHONE, NIR][which];
            prop_assert!(out.contains(tag), "{} -> {}", text, out);
            prop_assert!(out.starts_with(&before) && out.ends_with(&after), "{} -> {}", text, out);
        }
    }
}
