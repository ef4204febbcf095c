//! HTTP digest authentication for requests we send (RFC 2617 / RFC 3261 §22), used when a
//! trunk challenges an outbound INVITE with 401 or 407.

use md5::{Digest, Md5};

use crate::error::{ParseError, ParseErrorKind};
use crate::message::split_header_list;

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// realm
    pub realm: String,
    /// nonce
    pub nonce: String,
    /// opaque, echoed back
    pub opaque: Option<String>,
    /// algorithm (MD5 or MD5-sess)
    pub algorithm: String,
    /// whether qop=auth was offered
    pub qop_auth: bool,
}

impl Challenge {
    /// Parses a challenge header value; only the Digest scheme with MD5 or MD5-sess is accepted.
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
        if !algorithm.eq_ignore_ascii_case("MD5") && !algorithm.eq_ignore_ascii_case("MD5-sess") {
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
        let mut ha1 = md5_hex(&format!("{user}:{}:{password}", self.realm));
        if self.algorithm.eq_ignore_ascii_case("MD5-sess") {
            ha1 = md5_hex(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let nc = "00000001";
        let response = if self.qop_auth {
            md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce))
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

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Challenge::parse("").is_err());
    }
}
