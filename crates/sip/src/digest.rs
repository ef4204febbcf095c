//! HTTP digest authentication for requests we send (RFC 2617 / RFC 3261 §22, RFC 7616 and
//! RFC 8760 for SHA-256), used when a trunk challenges an outbound INVITE with 401 or 407, and
//! the hashing both directions share ([`Algorithm`]; the verifying side is [`crate::auth`]).

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::error::{ParseError, ParseErrorKind};
use crate::message::split_header_list;

/// A digest hash algorithm (RFC 7616 §3.2; RFC 8760 brings SHA-256 to SIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5, the RFC 2617 default.
    Md5,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// Both, in the order a challenge offers them: the stronger first (RFC 8760 §2.4).
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

    /// The `algorithm` parameter's token, without a `-sess` suffix (case-insensitive); None
    /// for anything else.
    pub fn from_token(token: &str) -> Option<Algorithm> {
        let t = token.trim();
        if t.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if t.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// The token written into headers.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// The length of this algorithm's hashes in lower-case hex.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }

    /// The hash of `data` in lower-case hex, the form every digest computation feeds on.
    pub fn hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => to_hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => to_hex(&Sha256::digest(data.as_bytes())),
        }
    }

    /// HA1 = H(username:realm:password).
    pub fn ha1(self, username: &str, realm: &str, password: &str) -> String {
        self.hex(&format!("{username}:{realm}:{password}"))
    }

    /// The `response` for qop=auth (RFC 7616 §3.4.1): KD(HA1, nonce:nc:cnonce:auth:HA2) with
    /// HA2 = H(method:uri).
    pub fn response(
        self,
        ha1: &str,
        nonce: &str,
        nc: &str,
        cnonce: &str,
        method: &str,
        uri: &str,
    ) -> String {
        let ha2 = self.hex(&format!("{method}:{uri}"));
        self.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
    }
}

/// Lower-case hex of bytes.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// realm
    pub realm: String,
    /// nonce
    pub nonce: String,
    /// opaque, echoed back
    pub opaque: Option<String>,
    /// algorithm as offered (MD5, MD5-sess, SHA-256 or SHA-256-sess)
    pub algorithm: String,
    /// whether qop=auth was offered
    pub qop_auth: bool,
}

impl Challenge {
    /// Parses a challenge header value; only the Digest scheme with MD5, SHA-256 or their
    /// `-sess` variants is accepted.
    pub fn parse(value: &str) -> Result<Challenge, ParseError> {
        let v = value.trim();
        let rest = v
            .get(..6)
            .filter(|s| s.eq_ignore_ascii_case("digest"))
            .map(|_| &v[6..])
            .ok_or_else(|| {
                ParseError::new(ParseErrorKind::Challenge, "challenge scheme is not Digest")
            })?;
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = "MD5".to_string();
        let mut qop_auth = false;
        for param in split_header_list(rest) {
            let Some((k, val)) = param.split_once('=') else {
                continue;
            };
            let val = val.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "realm" => realm = Some(val),
                "nonce" => nonce = Some(val),
                "opaque" => opaque = Some(val),
                "algorithm" => algorithm = val,
                "qop" => {
                    qop_auth = val
                        .split(',')
                        .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                }
                _ => {}
            }
        }
        if split_sess(&algorithm).is_none() {
            return Err(ParseError::new(
                ParseErrorKind::Challenge,
                format!("unsupported digest algorithm {algorithm}"),
            ));
        }
        Ok(Challenge {
            realm: realm.ok_or_else(|| {
                ParseError::new(ParseErrorKind::Challenge, "challenge without realm")
            })?,
            nonce: nonce.ok_or_else(|| {
                ParseError::new(ParseErrorKind::Challenge, "challenge without nonce")
            })?,
            opaque,
            algorithm,
            qop_auth,
        })
    }

    /// The `Authorization` / `Proxy-Authorization` value answering this challenge.
    pub fn authorize(
        &self,
        method: &str,
        uri: &str,
        user: &str,
        password: &str,
        cnonce: &str,
    ) -> String {
        let (alg, sess) = split_sess(&self.algorithm).unwrap_or((Algorithm::Md5, false));
        let mut ha1 = alg.ha1(user, &self.realm, password);
        if sess {
            ha1 = alg.hex(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let nc = "00000001";
        let response = if self.qop_auth {
            alg.response(&ha1, &self.nonce, nc, cnonce, method, uri)
        } else {
            let ha2 = alg.hex(&format!("{method}:{uri}"));
            alg.hex(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut out = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            self.realm, self.nonce, self.algorithm
        );
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(opaque) = &self.opaque {
            out.push_str(&format!(", opaque=\"{opaque}\""));
        }
        out
    }
}

/// The algorithm of an `algorithm` token and whether it is a `-sess` variant.
fn split_sess(token: &str) -> Option<(Algorithm, bool)> {
    let t = token.trim();
    let (base, sess) = match t.len().checked_sub(5).and_then(|i| t.get(i..)) {
        Some(suffix) if suffix.eq_ignore_ascii_case("-sess") => (&t[..t.len() - 5], true),
        _ => (t, false),
    };
    Algorithm::from_token(base).map(|a| (a, sess))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1: the same request answered with SHA-256 and with MD5.
    #[test]
    fn rfc7616_sha256_and_md5_vectors() {
        let challenge = |alg: &str| {
            Challenge::parse(&format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
                 nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            ))
            .unwrap()
        };
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, expected) in [
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let auth = challenge(alg).authorize(
                "GET",
                "/dir/index.html",
                "Mufasa",
                "Circle of Life",
                cnonce,
            );
            assert!(
                auth.contains(&format!("response=\"{expected}\"")),
                "{alg}: {auth}"
            );
            assert!(auth.contains(&format!("algorithm={alg}")), "{auth}");
        }
        assert_eq!(Algorithm::Sha256.hex("").len(), 64);
        assert_eq!(
            Algorithm::Md5.hex("abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(split_sess("sha-256-SESS"), Some((Algorithm::Sha256, true)));
        assert_eq!(split_sess("SHA-512"), None);
    }

    #[test]
    fn rfc2617_example_vector() {
        // RFC 2617 §3.5 (HTTP, but the arithmetic is the same).
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let auth = c.authorize(
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
        );
        assert!(
            auth.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{auth}"
        );
        assert!(auth.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn without_qop_and_bad_challenges() {
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        assert!(!c.qop_auth);
        assert!(c
            .authorize("INVITE", "sip:a@b", "u", "p", "x")
            .contains("response=\""));
        assert!(Challenge::parse("Basic realm=\"r\"").is_err());
        assert!(Challenge::parse("Digest nonce=\"n\"").is_err());
        assert!(Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512").is_err());
        assert!(Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=-sess").is_err());
        assert!(Challenge::parse("").is_err());
    }
}
