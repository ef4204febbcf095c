//! HTTP basic auth with the account's `http.auth_id` and `http.auth_token`.
//!
//! The credentials a request carries are compared with the account's without revealing,
//! through timing, how much of them was right, or how long the right ones are: both sides are
//! hashed with SHA-256 and the two fixed-length digests are compared with an XOR fold that
//! looks at every byte, with no early return.

use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use sha2::{Digest, Sha256};

/// The challenge sent with every 401.
pub const CHALLENGE: &str = "Basic realm=\"huddle\", charset=\"UTF-8\"";

/// The account's credentials, kept as the digest of `auth_id:auth_token`.
#[derive(Clone)]
pub struct Credentials {
    digest: [u8; 32],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Credentials {
    /// The credentials of `auth_id` with `auth_token`.
    pub fn new(auth_id: &str, auth_token: &str) -> Credentials {
        Credentials {
            digest: sha256(format!("{auth_id}:{auth_token}").as_bytes()),
        }
    }

    /// True when the request's `Authorization: Basic ...` header carries these credentials.
    pub fn check(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = basic_credentials(headers) else {
            return false;
        };
        digests_equal(&sha256(&presented), &self.digest)
    }
}

/// Adds the basic auth challenge to a 401's headers.
pub fn challenge(headers: &mut HeaderMap) {
    headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
}

/// The decoded `user:password` bytes of a basic `Authorization` header (scheme in any case).
fn basic_credentials(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Constant time over the fixed 32 bytes: every byte is looked at whatever differs.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(user_pass: &str) -> HeaderMap {
        with_auth(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        ))
    }

    #[test]
    fn only_the_exact_credentials_pass() {
        let c = Credentials::new("MAID", "s3cret");
        assert!(c.check(&basic("MAID:s3cret")));
        assert!(c.check(&with_auth(&format!(
            "basic  {}",
            base64::engine::general_purpose::STANDARD.encode("MAID:s3cret")
        ))));
        for wrong in [
            "MAID:s3cre",
            "MAID:s3cret ",
            "MAID:s3cret\0",
            "MAID:S3cret",
            "maid:s3cret",
            "MAID",
            ":",
            "",
            "MAID:s3cretMAID:s3cret",
        ] {
            assert!(!c.check(&basic(wrong)), "{wrong:?}");
        }
        assert!(!c.check(&HeaderMap::new()));
        assert!(!c.check(&with_auth("Bearer TUFJRDpzM2NyZXQ=")));
        assert!(!c.check(&with_auth("Basic !!!not-base64!!!")));
        assert!(!c.check(&with_auth("Basic")));
    }

    #[test]
    fn digests_compare_every_byte() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(digests_equal(&a, &b));
        b[31] ^= 1;
        assert!(!digests_equal(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!digests_equal(&a, &b));
    }

    #[test]
    fn the_challenge_is_basic() {
        let mut h = HeaderMap::new();
        challenge(&mut h);
        assert_eq!(h.get(WWW_AUTHENTICATE).unwrap(), CHALLENGE);
    }
}
