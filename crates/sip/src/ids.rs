//! Where the endpoint draws its identifiers: tags, branches, Call-IDs and digest cnonces.
//!
//! Production draws them from the operating system's randomness ([`OsIds`]); tests inject
//! [`SeededIds`] so that one scenario always produces the same bytes on the wire and two runs
//! can be compared byte for byte.

use std::fmt;

/// A source of random tokens. Tokens are lower-case hexadecimal, which is legal in every place
/// SIP puts them (tags, branches, Call-IDs, cnonces).
pub trait IdSource: fmt::Debug + Send {
    /// A token of `len` hex characters (at most 64).
    fn token(&mut self, len: usize) -> String;
}

/// Tokens from version 4 UUIDs, i.e. the operating system's randomness.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsIds;

impl IdSource for OsIds {
    fn token(&mut self, len: usize) -> String {
        // Two UUIDs give 64 hex digits, enough for any token we draw.
        let mut s = uuid::Uuid::new_v4().simple().to_string();
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
        s.truncate(len.min(64));
        s
    }
}

/// Deterministic tokens from a seed (SplitMix64): the same seed gives the same sequence.
/// For tests and reproductions only; the values are predictable.
#[derive(Debug, Clone)]
pub struct SeededIds {
    state: u64,
}

impl SeededIds {
    /// A source that starts from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededIds { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl IdSource for SeededIds {
    fn token(&mut self, len: usize) -> String {
        let len = len.min(64);
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(len);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_tokens_repeat_per_seed_and_differ_across_seeds() {
        let draw = |seed| {
            let mut ids = SeededIds::new(seed);
            (ids.token(10), ids.token(16), ids.token(64))
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let (a, b, c) = draw(7);
        assert_eq!((a.len(), b.len(), c.len()), (10, 16, 64));
        assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b[..10], "consecutive tokens differ");
    }

    #[test]
    fn os_tokens_are_hex_and_fresh() {
        let mut ids = OsIds;
        let (a, b) = (ids.token(20), ids.token(20));
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
