//! One-time recovery codes: the second factor when the authenticator is lost.
//!
//! Ten codes of 10 characters from a 32-symbol alphabet (50 random bits each), shown once at
//! enrolment, stored as SHA-256 hashes. A fast hash is enough here because the codes are random
//! and long, unlike passwords; each is marked used when accepted.

use sha2::{Digest, Sha256};

/// Codes issued per enrolment.
pub const COUNT: usize = 10;
const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789_";

/// Fresh codes, formatted `xxxxx-xxxxx`.
pub fn generate() -> Vec<String> {
    (0..COUNT)
        .map(|_| {
            let mut b = [0u8; 10];
            rand::fill(&mut b);
            let s: String = b
                .iter()
                .map(|x| char::from(ALPHABET[usize::from(x & 31)]))
                .collect();
            format!("{}-{}", &s[..5], &s[5..])
        })
        .collect()
}

/// The stored form of a code: hex SHA-256 of its normalised text (lower case, no dash/space).
pub fn hash(code: &str) -> String {
    let norm: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    hex::encode(Sha256::digest(norm.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_normalised() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let set: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(set.len(), COUNT);
        let c = &codes[0];
        assert_eq!(c.len(), 11);
        assert_eq!(hash(c), hash(&c.replace('-', "").to_uppercase()));
        assert_ne!(hash(c), hash(&codes[1]));
    }
}
