//! Validated value types for audit fields.
//!
//! Each type accepts only the shape its field needs, so that free text (a patient's name typed into
//! the wrong box, an annotation, a password pasted into the user-name field) cannot ride along in an
//! event. Errors name the field and the offending position, never the value.

use std::fmt;

use super::error::{AuditError, Result};

/// Longest opaque identifier accepted, in bytes. Long enough for a UUID with a prefix, a SHA-256
/// in hex or a composite `tenant:recording` key; short enough to refuse pasted paragraphs.
pub const MAX_ID_LEN: usize = 128;

/// Longest attempted user name kept, in characters (RFC 5321 caps an address at 254 octets; our
/// account names are shorter).
pub const MAX_USERNAME_CHARS: usize = 128;

/// Longest user agent kept, in bytes, after sanitising. Longer values are cut.
pub const MAX_USER_AGENT_LEN: usize = 256;

/// An opaque identifier: 1–128 bytes from `[A-Za-z0-9._:-]`, starting with a letter or digit.
///
/// Account, session, tenant, recording and resource ids are all `OpaqueId`s: no spaces, `@`, `/`,
/// quotes or non-ASCII, so prose and e-mail addresses are refused.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpaqueId(String);

impl OpaqueId {
    /// Validates `s` as the field `field` (the name is used in the error only).
    ///
    /// # Errors
    /// [`AuditError::InvalidField`] if `s` is empty, longer than [`MAX_ID_LEN`], or holds a
    /// character outside `[A-Za-z0-9._:-]` (or starts with `.`, `_`, `:` or `-`).
    pub fn try_new(field: &'static str, s: &str) -> Result<Self> {
        validate_id(field, s)?;
        Ok(OpaqueId(s.to_owned()))
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub(crate) fn validate_id(field: &'static str, s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(AuditError::invalid(field, "empty identifier"));
    }
    if s.len() > MAX_ID_LEN {
        return Err(AuditError::invalid(
            field,
            format!("identifier longer than {MAX_ID_LEN} bytes"),
        ));
    }
    for (i, b) in s.bytes().enumerate() {
        let ok = b.is_ascii_alphanumeric() || (i > 0 && matches!(b, b'.' | b'_' | b':' | b'-'));
        if !ok {
            return Err(AuditError::invalid(
                field,
                format!(
                    "character at byte {i} is not allowed in an opaque identifier \
                     ([A-Za-z0-9] first, then [A-Za-z0-9._:-])"
                ),
            ));
        }
    }
    Ok(())
}

impl fmt::Debug for OpaqueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpaqueId({})", self.0)
    }
}

impl fmt::Display for OpaqueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user name typed at a failed login: 1–128 characters, no control characters and no white
/// space. Anything else is recorded as an invalid attempt without its text (it is most often a
/// password typed into the wrong field).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Validates an attempted user name.
    ///
    /// # Errors
    /// [`AuditError::InvalidField`] (field `actor`) if it is empty, too long, or contains white
    /// space or a control character.
    pub fn try_new(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(AuditError::invalid("actor", "empty user name"));
        }
        if s.chars().count() > MAX_USERNAME_CHARS {
            return Err(AuditError::invalid(
                "actor",
                format!("user name longer than {MAX_USERNAME_CHARS} characters"),
            ));
        }
        if let Some((i, _)) = s
            .char_indices()
            .find(|(_, c)| c.is_control() || c.is_whitespace())
        {
            return Err(AuditError::invalid(
                "actor",
                format!("user name has white space or a control character at byte {i}"),
            ));
        }
        Ok(Username(s.to_owned()))
    }

    /// The user name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

/// A client's `User-Agent`, sanitised: printable ASCII only (others become `?`), at most
/// [`MAX_USER_AGENT_LEN`] bytes. It is attacker-controlled text, kept because the plan asks for the
/// origin of each connection; the sanitising keeps it on one line and bounded.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct UserAgent(String);

impl UserAgent {
    /// Sanitises a raw header value; `None` when nothing printable remains.
    pub fn sanitize(raw: &str) -> Option<Self> {
        let mut out = String::with_capacity(raw.len().min(MAX_USER_AGENT_LEN));
        for c in raw.trim().chars() {
            if out.len() >= MAX_USER_AGENT_LEN {
                break;
            }
            out.push(if (' '..='~').contains(&c) { c } else { '?' });
        }
        (!out.is_empty()).then_some(UserAgent(out))
    }

    /// The sanitised value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The environment a log and its signing key belong to (`dev`, `test`, `prod`, …): 1–32 bytes of
/// `[a-z0-9_-]`, starting with a letter or digit. A key of one environment is refused by a log of
/// another, so a development key can never sign production records.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Environment(String);

impl Environment {
    /// Longest tag, in bytes (the checkpoint encoding stores its length in one byte).
    pub const MAX_LEN: usize = 32;

    /// Validates an environment tag.
    ///
    /// # Errors
    /// [`AuditError::InvalidField`] (field `environment`) for an empty, long or ill-formed tag.
    pub fn try_new(s: &str) -> Result<Self> {
        let ok_len = !s.is_empty() && s.len() <= Self::MAX_LEN;
        let ok_chars = s.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && matches!(b, b'-' | b'_'))
        });
        if ok_len && ok_chars {
            Ok(Environment(s.to_owned()))
        } else {
            Err(AuditError::invalid(
                "environment",
                "expected 1-32 bytes of [a-z0-9_-] starting with a letter or digit",
            ))
        }
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a production environment (`prod` or `production`), which refuses keys of
    /// any other environment.
    pub fn is_production(&self) -> bool {
        matches!(self.0.as_str(), "prod" | "production")
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_ids_accept_uuids_and_refuse_prose() {
        assert!(OpaqueId::try_new("recording", "5f0c9a1e-1b7e-4c69-9d1a-2d3f1a3b4c5d").is_ok());
        assert!(OpaqueId::try_new("recording", "tenant-1:rec.0007_b").is_ok());
        for bad in [
            "",
            "Jean Dupont",
            "jean@hospital.fr",
            "-leading",
            "a/b",
            "é",
            "x\n",
            &"a".repeat(129),
        ] {
            let err = OpaqueId::try_new("recording", bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("recording"), "{msg}");
            if bad.len() > 3 {
                assert!(!msg.contains(bad), "error echoes the value: {msg}");
            }
        }
    }

    #[test]
    fn usernames_refuse_whitespace_and_controls() {
        assert!(Username::try_new("j.dupont@chu-exemple.fr").is_ok());
        assert!(Username::try_new("correct horse").is_err());
        assert!(Username::try_new("a\u{7}b").is_err());
        assert!(Username::try_new(&"x".repeat(129)).is_err());
    }

    #[test]
    fn user_agents_are_sanitised_and_bounded() {
        let ua = UserAgent::sanitize("Mozilla/5.0 (X11)\r\nInjected: é").unwrap();
        assert_eq!(ua.as_str(), "Mozilla/5.0 (X11)??Injected: ?");
        assert_eq!(
            UserAgent::sanitize(&"a".repeat(1000))
                .unwrap()
                .as_str()
                .len(),
            MAX_USER_AGENT_LEN
        );
        assert!(UserAgent::sanitize("   ").is_none());
    }

    #[test]
    fn environment_tags() {
        assert!(Environment::try_new("prod").unwrap().is_production());
        assert!(!Environment::try_new("dev").unwrap().is_production());
        assert!(Environment::try_new("Prod").is_err());
        assert!(Environment::try_new("").is_err());
        assert!(Environment::try_new(&"a".repeat(33)).is_err());
    }
}
