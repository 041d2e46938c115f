//! Password policy and hashing.
//!
//! Policy (security plan §4.5, tightened by issue 6): at least 12 characters, the four classes
//! (lower case, upper case, digit, other), not on the shipped common-password list, not
//! containing the user's names, renewed at least yearly, none of the last five reused.
//!
//! Hashing: Argon2id with RFC 9106's second recommended option (m = 64 MiB, t = 3, p = 4),
//! PHC strings in the database. Hashing costs ~0.1–0.5 s and 64 MiB, so callers on the async
//! runtime use [`hash_async`] / [`verify_any_async`], which run on the blocking pool, a few at a
//! time (see `gate`).
//!
//! The common-password list is `server/data/common-passwords.txt.gz`: 19,646 passwords, the
//! list Django ships (`django/contrib/auth/common-passwords.txt.gz`, BSD licence), itself built by
//! Royce Williams from breach corpora (lower-cased, deduplicated). Comparison is case-insensitive.

use std::collections::HashSet;
use std::io::Read;
use std::sync::OnceLock;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::limits::Gate;

/// Minimum length in characters.
pub const MIN_LEN: usize = 12;
/// Maximum length in characters; longer inputs are refused before hashing (no hashing DoS).
pub const MAX_LEN: usize = 256;
/// How many previous passwords (the current one included) may not be reused.
pub const HISTORY: usize = 5;

/// Argon2id memory cost in KiB (RFC 9106 §4, second recommended option: 64 MiB).
pub const ARGON2_M_KIB: u32 = 64 * 1024;
/// Argon2id passes (RFC 9106: 3).
pub const ARGON2_T: u32 = 3;
/// Argon2id lanes (RFC 9106: 4).
pub const ARGON2_P: u32 = 4;

static COMMON_GZ: &[u8] = include_bytes!("../../data/common-passwords.txt.gz");

fn common_list() -> &'static HashSet<String> {
    static LIST: OnceLock<HashSet<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut text = String::new();
        // The file is part of the binary and checked by a unit test; a failure here would be a
        // build defect, and an empty list must not silently weaken the policy.
        flate2::read::GzDecoder::new(COMMON_GZ)
            .read_to_string(&mut text)
            .expect("embedded common-password list decompresses");
        text.lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Number of entries in the embedded common-password list.
pub fn common_list_len() -> usize {
    common_list().len()
}

/// A broken policy rule, with a stable code for API clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// Fewer than [`MIN_LEN`] characters.
    TooShort,
    /// More than [`MAX_LEN`] characters.
    TooLong,
    /// No lower-case letter.
    NoLower,
    /// No upper-case letter.
    NoUpper,
    /// No digit.
    NoDigit,
    /// No character other than letters and digits.
    NoSpecial,
    /// On the common-password list.
    Common,
    /// Contains the username, first or last name.
    ContainsName,
    /// Equal to one of the last [`HISTORY`] passwords.
    Reused,
}

impl Rule {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Rule::TooShort => "too_short",
            Rule::TooLong => "too_long",
            Rule::NoLower => "no_lowercase",
            Rule::NoUpper => "no_uppercase",
            Rule::NoDigit => "no_digit",
            Rule::NoSpecial => "no_special",
            Rule::Common => "common_password",
            Rule::ContainsName => "contains_name",
            Rule::Reused => "reused",
        }
    }
}

/// Checks the content rules (everything but reuse, which needs the stored hashes).
/// `names` are the username, first and last name; parts shorter than 3 characters are ignored.
pub fn check_policy(password: &str, names: &[&str]) -> Vec<Rule> {
    let mut broken = Vec::new();
    let len = password.chars().count();
    if len < MIN_LEN {
        broken.push(Rule::TooShort);
    }
    if len > MAX_LEN {
        broken.push(Rule::TooLong);
        return broken;
    }
    if !password.chars().any(char::is_lowercase) {
        broken.push(Rule::NoLower);
    }
    if !password.chars().any(char::is_uppercase) {
        broken.push(Rule::NoUpper);
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        broken.push(Rule::NoDigit);
    }
    if !password.chars().any(|c| !c.is_alphanumeric()) {
        broken.push(Rule::NoSpecial);
    }
    let lower = password.to_lowercase();
    if common_list().contains(&lower) {
        broken.push(Rule::Common);
    }
    let contains_name = names
        .iter()
        .flat_map(|n| n.split(|c: char| !c.is_alphanumeric()))
        .filter(|part| part.chars().count() >= 3)
        .any(|part| lower.contains(&part.to_lowercase()));
    if contains_name {
        broken.push(Rule::ContainsName);
    }
    broken
}

fn argon2() -> Argon2<'static> {
    // The constants are within Argon2's documented ranges; checked by a unit test.
    let params =
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).expect("RFC 9106 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password to an Argon2id PHC string (blocking: ~64 MiB and a fraction of a second).
///
/// # Errors
/// [`Error::Hash`] if the hasher fails (never with the password in it).
pub fn hash(password: &str) -> Result<String> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| Error::Hash)
}

/// Verifies a password against a PHC string (blocking). A malformed stored hash counts as a
/// mismatch and is logged.
pub fn verify(password: &str, phc: &str) -> bool {
    match argon2().verify_password(password.as_bytes(), phc) {
        Ok(()) => true,
        Err(argon2::password_hash::Error::PasswordInvalid) => false,
        Err(e) => {
            tracing::error!(error = %e, "stored password hash is unusable");
            false
        }
    }
}

/// A hash of a random password, verified against when the username is unknown so that a
/// failed login costs the same time whether or not the account exists.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut b = [0u8; 16];
        rand::fill(&mut b);
        hash(&hex::encode(b)).unwrap_or_default()
    })
}

/// Bounds the Argon2 operations running at once. Each holds 64 MiB for its duration, and a
/// login with an unknown username still hashes (against [`dummy_hash`]), so without a bound
/// the requests the rate limits and the concurrency limit let through (hundreds, before any
/// authentication) could ask for tens of GiB at once. With it, memory stays at
/// `permits × 64 MiB` and the rest wait their turn (and time out like any slow request).
/// One permit per core (at least 2), as hashing is CPU-bound anyway.
fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Gate::new(cores.max(2))
    })
}

/// Runs `f` on the blocking pool once `gate` lets it in. The pass moves into the blocking task,
/// so a request dropped mid-hash (a client gone, a time-out) still holds its place until the
/// hash it started is done.
async fn gated<T: Send + 'static>(
    gate: &'static Gate,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let pass = gate.enter().await?;
    tokio::task::spawn_blocking(move || {
        let _pass = pass;
        f()
    })
    .await
    .map_err(|_| Error::Task)
}

/// [`hash`] on the blocking pool, at most one per core at a time.
///
/// # Errors
/// [`Error::Hash`] or [`Error::Task`].
pub async fn hash_async(password: Zeroizing<String>) -> Result<String> {
    gated(gate(), move || hash(&password)).await?
}

/// [`verify`] on the blocking pool (at most one per core at a time), against several hashes
/// in turn (reuse check); true when any matches.
///
/// # Errors
/// [`Error::Task`].
pub async fn verify_any_async(password: Zeroizing<String>, phcs: Vec<String>) -> Result<bool> {
    gated(gate(), move || phcs.iter().any(|h| verify(&password, h))).await
}

/// A random password that satisfies the policy (one-time passwords for new accounts).
pub fn generate_one_time() -> String {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SPECIAL: &[u8] = b"!#%+-=?@_";
    loop {
        let mut bytes = [0u8; 20];
        rand::fill(&mut bytes);
        let sets = [LOWER, UPPER, DIGIT, SPECIAL];
        let pw: String = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                // The first four positions cover each class; the rest draw from all of them.
                let set = if i < 4 {
                    sets[i]
                } else {
                    sets[usize::from(*b) % 4]
                };
                char::from(set[usize::from(*b / 4) % set.len()])
            })
            .collect();
        if check_policy(&pw, &[]).is_empty() {
            return pw;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many hashes asked for at once run at most `permits` at a time, and all complete; the
    /// service's own calls go through the process's gate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_hash_gate_bounds_concurrent_hashing() {
        let two: &'static Gate = Box::leak(Box::new(Gate::new(2)));
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                tokio::spawn(gated(two, move || {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    i
                }))
            })
            .collect();
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.unwrap().unwrap());
        }
        assert_eq!(done, (0..12).collect::<Vec<_>>());
        assert!(
            (1..=2).contains(&two.peak()),
            "{} hashes ran at once",
            two.peak()
        );
        assert_eq!(two.entries(), 12);
        let before = gate().entries();
        assert!(
            !verify_any_async(Zeroizing::new("x".repeat(12)), vec![dummy_hash().into()])
                .await
                .unwrap()
        );
        assert!(gate().entries() > before);
    }

    #[test]
    fn common_list_is_real_and_used() {
        assert!(common_list_len() > 19_000, "{}", common_list_len());
        // On the list (compared case-insensitively) although it passes every other rule.
        let rules = check_policy("Pe#5gz29ptzmse", &[]);
        assert_eq!(rules, vec![Rule::Common]);
        assert!(check_policy("password", &[]).contains(&Rule::Common));
    }

    #[test]
    fn each_rule_is_enforced() {
        assert!(check_policy("Vx7#kq2Lm!pZ", &[]).is_empty());
        assert_eq!(check_policy("Vx7#kq2Lm!p", &[]), vec![Rule::TooShort]);
        assert_eq!(check_policy("VX7#KQ2LM!PZ", &[]), vec![Rule::NoLower]);
        assert_eq!(check_policy("vx7#kq2lm!pz", &[]), vec![Rule::NoUpper]);
        assert_eq!(check_policy("Vxa#kqbLm!pZ", &[]), vec![Rule::NoDigit]);
        assert_eq!(check_policy("Vx7akq2Lmbpz", &[]), vec![Rule::NoSpecial]);
        assert_eq!(
            check_policy("Dupont#2024xyZ", &["jdupont", "Jeanne", "Dupont"]),
            vec![Rule::ContainsName]
        );
        assert_eq!(check_policy(&"aA1!".repeat(65), &[]), vec![Rule::TooLong]);
        // Non-ASCII letters count as letters, not specials.
        assert_eq!(check_policy("Éléonore2024é", &[]), vec![Rule::NoSpecial]);
    }

    #[test]
    fn generated_passwords_pass() {
        for _ in 0..50 {
            let p = generate_one_time();
            assert!(check_policy(&p, &[]).is_empty(), "{p}");
        }
    }

    #[test]
    fn argon2id_rfc9106_parameters_round_trip() {
        let h = hash("Vx7#kq2Lm!pZ").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{h}");
        assert!(verify("Vx7#kq2Lm!pZ", &h));
        assert!(!verify("Vx7#kq2Lm!pz", &h));
        assert!(!verify("x", "not a phc string"));
    }
}
