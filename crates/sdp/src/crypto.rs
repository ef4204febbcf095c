//! SDES key exchange for SRTP (RFC 4568): `a=crypto` lines in RTP/SAVP offers and answers.
//!
//! The keys travel in the SDP itself, so they are only as secret as the signalling: SIP over
//! TLS is what keeps them from an eavesdropper. Parsed by hand (the `sdp` crate keeps
//! attributes as strings); only the suites the media layer implements are accepted, and a
//! line with a master key identifier (MKI) or a wrong key length is skipped, not trusted.

use std::fmt::Write as _;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;

/// An SRTP crypto suite huddle speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoSuite {
    /// `AES_CM_128_HMAC_SHA1_80` (RFC 4568 §6.2.1), the one every SDES phone has.
    AesCm128HmacSha1_80,
    /// `AEAD_AES_128_GCM` (RFC 7714 §14.2).
    AeadAes128Gcm,
}

impl CryptoSuite {
    /// The suite's name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            CryptoSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The suite named `name` (case-insensitive), if we speak it.
    pub fn from_name(name: &str) -> Option<CryptoSuite> {
        [CryptoSuite::AesCm128HmacSha1_80, CryptoSuite::AeadAes128Gcm]
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Master key plus master salt, in bytes (16 + 14, or 16 + 12 for GCM).
    pub fn key_salt_len(self) -> usize {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => 30,
            CryptoSuite::AeadAes128Gcm => 28,
        }
    }
}

/// Whether a route's calls use SRTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SrtpPolicy {
    /// Plain RTP only; SRTP offers are refused.
    Off,
    /// SRTP when the caller offers it, plain RTP otherwise.
    #[default]
    Optional,
    /// SRTP only; a plain offer gets 488.
    Required,
}

/// The keys agreed for one stream: each side's master key and salt, concatenated.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The suite.
    pub suite: CryptoSuite,
    /// What the remote protects its packets with (we unprotect with it).
    pub remote: Vec<u8>,
    /// What we protect ours with (from our `a=crypto`).
    pub local: Vec<u8>,
    /// The tag of the accepted `a=crypto` line.
    pub tag: u32,
}

impl std::fmt::Debug for SrtpKeys {
    // Keys never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// One usable `a=crypto` line.
#[derive(Clone, PartialEq, Eq)]
pub struct CryptoOffer {
    /// Its tag.
    pub tag: u32,
    /// Its suite.
    pub suite: CryptoSuite,
    /// The offerer's master key and salt.
    pub key_salt: Vec<u8>,
}

/// Parses an `a=crypto` value (`<tag> <suite> inline:<key||salt>[|lifetime][|MKI:len] ...`);
/// None for a suite we do not speak, more than one key, an MKI, or a key of the wrong length.
pub fn parse_crypto(value: &str) -> Option<CryptoOffer> {
    let mut parts = value.split_ascii_whitespace();
    let tag: u32 = parts.next()?.parse().ok().filter(|t| *t < 1_000_000_000)?;
    let suite = CryptoSuite::from_name(parts.next()?)?;
    let key_params = parts.next()?;
    // Several keys are joined by ';' (RFC 4568 §6.1): we take a single key only.
    if key_params.contains(';') {
        return None;
    }
    let inline = key_params.strip_prefix("inline:")?;
    let mut fields = inline.split('|');
    let encoded = fields.next()?;
    for field in fields {
        // A lifetime is fine; an MKI is not something we can carry.
        if field.contains(':') {
            return None;
        }
    }
    if encoded.len() > 64 {
        return None;
    }
    let key_salt = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    (key_salt.len() == suite.key_salt_len()).then_some(CryptoOffer {
        tag,
        suite,
        key_salt,
    })
}

/// Writes our `a=crypto` line answering `tag` with `key_salt`.
pub(crate) fn write_crypto(out: &mut String, tag: u32, suite: CryptoSuite, key_salt: &[u8]) {
    let _ = write!(
        out,
        "a=crypto:{tag} {} inline:{}\r\n",
        suite.name(),
        STANDARD.encode(key_salt)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_4568_example_parses() {
        // RFC 4568 §9.1, with the lifetime and without the MKI.
        let c = parse_crypto(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20",
        )
        .unwrap();
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, CryptoSuite::AesCm128HmacSha1_80);
        assert_eq!(c.key_salt.len(), 30);
        let gcm = parse_crypto(&format!(
            "2 AEAD_AES_128_GCM inline:{}",
            STANDARD.encode([7u8; 28])
        ))
        .unwrap();
        assert_eq!(gcm.suite, CryptoSuite::AeadAes128Gcm);
    }

    #[test]
    fn unusable_lines_are_skipped_not_trusted() {
        for bad in [
            "",
            "1",
            "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 F8_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
            "1 AES_CM_128_HMAC_SHA1_80 inline:short",
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!notbase64!!!",
            "1 AES_CM_128_HMAC_SHA1_80 key:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR;inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "99999999999 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
        ] {
            assert!(parse_crypto(bad).is_none(), "{bad:?}");
        }
        let huge = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{}", "A".repeat(100_000));
        assert!(parse_crypto(&huge).is_none());
    }

    #[test]
    fn what_we_write_parses_back() {
        let mut out = String::new();
        write_crypto(&mut out, 3, CryptoSuite::AesCm128HmacSha1_80, &[9; 30]);
        let value = out.trim_end().strip_prefix("a=crypto:").unwrap();
        let back = parse_crypto(value).unwrap();
        assert_eq!((back.tag, back.key_salt), (3, vec![9; 30]));
    }
}
