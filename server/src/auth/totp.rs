//! Time-based one-time passwords (RFC 6238) through `totp-rs`.
//!
//! Secrets are 160 random bits (RFC 4226 §4 recommendation), SHA-1, 6 digits, 30 s steps — what
//! every authenticator app understands — with one step of tolerated clock skew either side.
//! A code is accepted once only: the caller stores the step returned by [`verify`] and passes it
//! back as `last_step`, so a replayed (or older) step is refused.

use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::error::{Error, Result};

/// Issuer shown in authenticator apps.
pub const ISSUER: &str = "Theta";
/// Step length in seconds.
pub const STEP_SECS: u64 = 30;
/// Steps tolerated before and after the current one.
pub const SKEW: u16 = 1;

/// A fresh random secret, base32-encoded (for storage and manual entry).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::fill(&mut bytes);
    base32_encode(&bytes)
}

fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn totp(secret_b32: &str, account: &str) -> Result<Totp> {
    let secret = Secret::try_from_base32(secret_b32).map_err(|_| Error::Corrupt {
        what: "totp secret".into(),
    })?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(SKEW)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .map_err(|e| Error::invalid("totp", e.to_string()))
}

/// The `otpauth://totp/Theta:<account>?secret=…&issuer=Theta…` URI for enrolment.
///
/// # Errors
/// [`Error::Invalid`] if the account name is unusable in a URI label (contains `:`).
pub fn otpauth_uri(secret_b32: &str, account: &str) -> Result<String> {
    totp(secret_b32, account)?
        .to_url()
        .map_err(|e| Error::invalid("totp", e.to_string()))
}

/// The code for `unix_secs` (tests, the demo).
///
/// # Errors
/// [`Error::Corrupt`] when the secret is not base32.
pub fn code_at(secret_b32: &str, unix_secs: u64) -> Result<String> {
    Ok(totp(secret_b32, "x")?.generate(unix_secs).to_string())
}

/// Checks `code` at `unix_secs`. Returns the matched step when valid and strictly later than
/// `last_step` (so each step is usable once), `None` otherwise.
pub fn verify(secret_b32: &str, code: &str, unix_secs: u64, last_step: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret_b32, "x").ok()?;
    let step = i64::try_from(t.check(code, unix_secs)?).ok()?;
    match last_step {
        Some(last) if step <= last => None,
        _ => Some(step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: seeds are the ASCII strings below, 8 digits, 30 s steps.
    fn rfc(algorithm: Algorithm, seed: &[u8], time: u64) -> String {
        Builder::new()
            .with_algorithm(algorithm)
            .with_digits(8)
            .with_step_duration(30)
            .with_secret(Secret::new(seed.to_vec().into_boxed_slice()))
            .build()
            .unwrap()
            .generate(time)
            .to_string()
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890";
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        let table: &[(u64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for &(t, s1, s256, s512) in table {
            assert_eq!(rfc(Algorithm::SHA1, sha1, t), s1, "SHA1 at {t}");
            assert_eq!(rfc(Algorithm::SHA256, sha256, t), s256, "SHA256 at {t}");
            assert_eq!(rfc(Algorithm::SHA512, sha512, t), s512, "SHA512 at {t}");
        }
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32_encode(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(generate_secret().len(), 32);
    }

    #[test]
    fn codes_verify_once_within_skew() {
        let s = generate_secret();
        let now = 1_800_000_000;
        let code = code_at(&s, now).unwrap();
        let step = verify(&s, &code, now, None).unwrap();
        assert_eq!(step as u64, now / 30);
        // Replay of the same step, and any earlier one, is refused.
        assert_eq!(verify(&s, &code, now, Some(step)), None);
        // One step of skew either side is tolerated, two is not.
        assert!(verify(&s, &code, now + 30, None).is_some());
        assert!(verify(&s, &code, now - 30, None).is_some());
        assert!(verify(&s, &code, now + 61, None).is_none());
        assert!(verify(&s, "12345", now, None).is_none());
        assert!(verify(&s, "abcdef", now, None).is_none());
        let uri = otpauth_uri(&s, "jdupont").unwrap();
        assert!(uri.starts_with("otpauth://totp/Theta:jdupont?"), "{uri}");
        assert!(uri.contains(&format!("secret={s}")), "{uri}");
    }
}
