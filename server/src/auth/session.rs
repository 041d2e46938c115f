//! Session tokens and cookies.
//!
//! A token is 256 random bits, base64url without padding. The database keeps only its SHA-256,
//! so a leaked database does not hand out sessions. Browsers carry it in a `__Host-` cookie
//! (Secure, HttpOnly, SameSite=Strict, Path=/, no Domain); API clients send
//! `Authorization: Bearer <token>`.
//!
//! CSRF: a second random value, the CSRF token, is bound to the session (its hash is stored with
//! it) and given to the browser in a readable `__Host-theta_csrf` cookie. Every state-changing
//! request authenticated by cookie must echo it in `X-CSRF-Token` and, when the browser sends an
//! `Origin`, come from the configured public origin. Bearer requests are exempt: a browser never
//! attaches that header by itself.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle_eq::ct_eq;

/// Session cookie name.
pub const SESSION_COOKIE: &str = "__Host-theta_session";
/// CSRF cookie name (readable by the page's script).
pub const CSRF_COOKIE: &str = "__Host-theta_csrf";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Cookie binding an OpenID Connect login to the browser that started it.
pub const OIDC_COOKIE: &str = "__Host-theta_oidc";

/// A fresh 256-bit random token, base64url.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Hex SHA-256 of a token: what the database stores and looks up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of a presented token with a stored hash.
pub fn matches(token: &str, stored_hash: &str) -> bool {
    ct_eq(token_hash(token).as_bytes(), stored_hash.as_bytes())
}

/// `Set-Cookie` value for the session.
pub fn session_cookie(token: &str, max_age_secs: u64) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
    )
}

/// `Set-Cookie` value for the CSRF token (not HttpOnly: the page copies it into the header).
pub fn csrf_cookie(token: &str, max_age_secs: u64) -> String {
    format!("{CSRF_COOKIE}={token}; Path=/; Secure; SameSite=Strict; Max-Age={max_age_secs}")
}

/// `Set-Cookie` values clearing both cookies.
pub fn clearing_cookies() -> [String; 2] {
    [
        format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
        format!("{CSRF_COOKIE}=; Path=/; Secure; SameSite=Strict; Max-Age=0"),
    ]
}

/// `Set-Cookie` for the OIDC browser binding. SameSite=Lax because the provider's redirect back
/// is a cross-site top-level navigation, which Strict cookies do not survive.
pub fn oidc_cookie(value: &str, max_age_secs: u64) -> String {
    format!("{OIDC_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}")
}

/// Finds a cookie's value in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

mod subtle_eq {
    /// Compares without early exit so timing does not reveal the matching prefix.
    pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_hashed() {
        let t = new_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap().len(), 32);
        assert_ne!(t, new_token());
        let h = token_hash(&t);
        assert_eq!(h.len(), 64);
        assert!(matches(&t, &h));
        assert!(!matches(&new_token(), &h));
    }

    #[test]
    fn cookies_carry_the_security_attributes() {
        let c = session_cookie("abc", 60);
        for attr in ["__Host-", "Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
        assert!(!csrf_cookie("x", 1).contains("HttpOnly"));
        assert_eq!(
            cookie_value("a=1; __Host-theta_session=tok; b=2", SESSION_COOKIE),
            Some("tok")
        );
        assert_eq!(cookie_value("a=1", SESSION_COOKIE), None);
    }
}
