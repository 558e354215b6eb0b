//! API tokens: `pv_<token id>_<secret>`.
//!
//! The id lets a lookup use the primary key instead of scanning hashes; the
//! secret is 32 random bytes as lowercase hex. Only SHA-256 of the secret is
//! stored, so a database leak yields no usable tokens. A fast hash is enough
//! (no bcrypt) because the secret has 256 bits of entropy: there is nothing
//! to brute-force.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Every token starts with this, so secret scanners can recognise leaks.
pub const TOKEN_PREFIX: &str = "pv_";
/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Hex characters in a secret.
const SECRET_HEX_LEN: usize = SECRET_BYTES * 2;

/// A freshly created token. `token` is the only copy of the plaintext: it
/// cannot be shown again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    /// The token's id (also embedded in `token`).
    pub id: i64,
    /// The bearer token to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A new random secret, hex-encoded.
///
/// Fails only if the operating system's random source does.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// The stored form of a secret: SHA-256 as lowercase hex.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// The full token text for a stored id and its secret.
pub fn format_token(id: i64, secret: &str) -> String {
    format!("{TOKEN_PREFIX}{id}_{secret}")
}

/// Splits a token into its id and secret; `None` when it is not shaped like
/// one of ours (so no database lookup is spent on garbage).
pub fn parse_token(token: &str) -> Option<(i64, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
    let well_formed = secret.len() == SECRET_HEX_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some((id, secret))
}

/// Whether `secret` matches the stored hash, in time independent of where
/// they differ (so response timing leaks nothing about the stored hash).
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_secret(secret).as_bytes(), stored_hash.as_bytes())
}

/// Byte equality whose running time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_and_match_their_hash() {
        let secret = generate_secret().unwrap();
        assert_eq!(secret.len(), 64);
        assert_ne!(secret, generate_secret().unwrap());
        let token = format_token(42, &secret);
        assert!(token.starts_with("pv_42_"));
        assert_eq!(parse_token(&token), Some((42, secret.as_str())));
        let stored = hash_secret(&secret);
        assert_eq!(stored.len(), 64);
        assert_ne!(stored, secret);
        assert!(secret_matches(&secret, &stored));
        let other = generate_secret().unwrap();
        assert!(!secret_matches(&other, &stored));
    }

    #[test]
    fn sha256_is_the_standard_one() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let s = "a".repeat(64);
        assert!(parse_token(&format!("pv_1_{s}")).is_some());
        for bad in [
            String::new(),
            "pv_".into(),
            format!("pv__{s}"),
            format!("pv_0_{s}"),
            format!("pv_-1_{s}"),
            format!("pv_+1_{s}"),
            format!("pv_x_{s}"),
            format!("px_1_{s}"),
            format!("pv_1_{}", "a".repeat(63)),
            format!("pv_1_{}", "A".repeat(64)),
            format!("pv_1_{s}a"),
            format!("pv_99999999999999999999_{s}"),
            format!("Bearer pv_1_{s}"),
        ] {
            assert_eq!(parse_token(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
