//! Inbound digest authentication (RFC 3261 §22, RFC 7616, RFC 8760): callers of routes with
//! `auth = true` prove they know a `[[sip.user]]`'s password before a call exists. Sans-IO:
//! the endpoint asks [`DigestVerifier::check`] about each new INVITE whose route requires it,
//! with the time, and answers as the [`AuthDecision`] says.
//!
//! - Challenges (401) offer SHA-256 first and MD5 second, two `WWW-Authenticate` headers with
//!   the same nonce, `qop="auth"`.
//! - Nonces are stateless: issue time (ms since the verifier started), a serial number and an
//!   HMAC-SHA256 of both under a secret drawn when the process starts, so any nonce can be
//!   checked without remembering it, and none from another process (or a restart) passes.
//!   A nonce older than its lifetime is stale: right credentials on it get a fresh challenge
//!   with `stale=true`, so the phone retries without asking its user.
//! - Replays: for each nonce that has authenticated a request, the highest `nc` seen is kept
//!   until the nonce expires. A request whose `nc` is not above it is refused with 403 (the
//!   credentials were right once, so a replay is someone else's doing, never a phone's
//!   mistake). The table is bounded ([`MAX_TRACKED_NONCES`]): when full the oldest entry goes,
//!   and every nonce issued up to it becomes stale, so an evicted count can never be
//!   replayed.
//! - Wrong credentials on a nonce of ours, and unknown users, get 403, not another 401:
//!   a phone with a wrong password stops instead of looping. Malformed credentials (missing
//!   fields, bad hex, a `uri` that is not the Request-URI, no `qop=auth`) get 400.
//! - The response is compared in constant time.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::digest::{to_hex, Algorithm};
use crate::message::uri_user;

type HmacSha256 = hmac::Hmac<Sha256>;

/// How many nonces' counts are kept at most (see the module docs on eviction).
pub const MAX_TRACKED_NONCES: usize = 65_536;

/// An `Authorization` value longer than this is refused with 400 without being parsed.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;

/// Default nonce lifetime.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Which routes require authentication. Implemented by the call router, so that the SIP layer
/// and the router agree on which route a call matches.
pub trait RouteAuth: Send + Sync {
    /// True when the first route matching the Request-URI `user` has `auth = true`.
    fn requires_auth(&self, user: &str) -> bool;
}

/// One user's secrets: the HA1 for each algorithm it can authenticate with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    ha1_md5: Option<String>,
    ha1_sha256: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("algorithms", &self.algorithms())
            .finish()
    }
}

impl Credentials {
    /// From a clear-text password: both algorithms.
    pub fn from_password(username: &str, realm: &str, password: &str) -> Credentials {
        Credentials {
            ha1_md5: Some(Algorithm::Md5.ha1(username, realm, password)),
            ha1_sha256: Some(Algorithm::Sha256.ha1(username, realm, password)),
        }
    }

    /// From precomputed HA1 values in hex (validated by the configuration); only the
    /// algorithms given work.
    pub fn from_ha1(md5: Option<&str>, sha256: Option<&str>) -> Credentials {
        Credentials {
            ha1_md5: md5.map(str::to_ascii_lowercase),
            ha1_sha256: sha256.map(str::to_ascii_lowercase),
        }
    }

    fn ha1(&self, alg: Algorithm) -> Option<&str> {
        match alg {
            Algorithm::Md5 => self.ha1_md5.as_deref(),
            Algorithm::Sha256 => self.ha1_sha256.as_deref(),
        }
    }

    /// The algorithms this user can authenticate with, preferred first.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(|a| self.ha1(*a).is_some())
            .collect()
    }
}

/// The configuration of inbound authentication: realm, users, which routes need it.
#[derive(Clone)]
pub struct InboundAuth {
    realm: String,
    users: Arc<HashMap<String, Credentials>>,
    routes: Arc<dyn RouteAuth>,
    nonce_lifetime: Duration,
}

impl fmt::Debug for InboundAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundAuth")
            .field("realm", &self.realm)
            .field("users", &self.users.len())
            .field("nonce_lifetime", &self.nonce_lifetime)
            .finish()
    }
}

impl InboundAuth {
    /// Users (name → credentials) of `realm`, asked for on the routes `routes` says; nonces
    /// live [`DEFAULT_NONCE_LIFETIME`].
    pub fn new(
        realm: impl Into<String>,
        users: HashMap<String, Credentials>,
        routes: Arc<dyn RouteAuth>,
    ) -> InboundAuth {
        InboundAuth {
            realm: realm.into(),
            users: Arc::new(users),
            routes,
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
        }
    }

    /// Sets how long a nonce stays valid (at least 1 ms).
    pub fn with_nonce_lifetime(mut self, lifetime: Duration) -> InboundAuth {
        self.nonce_lifetime = lifetime.max(Duration::from_millis(1));
        self
    }

    /// True when a new INVITE for the Request-URI `user` must authenticate.
    pub fn requires_auth(&self, user: &str) -> bool {
        self.routes.requires_auth(user)
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }
}

/// What to answer a request that needs authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// The credentials are right: go on with the request.
    Authorized {
        /// The digest user name.
        username: String,
    },
    /// 401 with a fresh challenge ([`DigestVerifier::challenge`]).
    Challenge {
        /// Mark the challenge `stale=true`: the credentials were right on an old nonce.
        stale: bool,
        /// The algorithms to offer, preferred first.
        algorithms: Vec<Algorithm>,
        /// Why, for logs.
        why: &'static str,
    },
    /// 403 Forbidden: wrong credentials, unknown user or a replayed nonce count.
    Forbidden {
        /// Why, for logs (not sent: a caller learns nothing about which part was wrong).
        why: &'static str,
    },
    /// 400: the credentials are malformed.
    BadRequest {
        /// Why, sent in the reason phrase.
        why: &'static str,
    },
}

/// The state of inbound authentication: the nonce secret and the nonce counts seen.
pub struct DigestVerifier {
    config: InboundAuth,
    secret: Vec<u8>,
    epoch: Instant,
    next_serial: u64,
    /// Nonce serial → (issued at, ms since `epoch`; highest nc accepted).
    counts: BTreeMap<u64, (u64, u32)>,
    /// Nonces with a serial below this are stale (their counts may have been evicted).
    floor: u64,
    capacity: usize,
}

impl fmt::Debug for DigestVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestVerifier")
            .field("config", &self.config)
            .field("issued", &self.next_serial)
            .field("tracked", &self.counts.len())
            .finish()
    }
}

/// Credentials as sent in one `Authorization: Digest ...` value.
#[derive(Debug, Default)]
struct Presented {
    username: Option<String>,
    realm: Option<String>,
    nonce: Option<String>,
    uri: Option<String>,
    response: Option<String>,
    algorithm: Option<String>,
    qop: Option<String>,
    nc: Option<String>,
    cnonce: Option<String>,
}

impl DigestVerifier {
    /// A verifier for `config` whose nonces are signed with `secret` (draw it at random when
    /// the process starts); nonce ages count from `now`.
    pub fn new(config: InboundAuth, secret: impl Into<Vec<u8>>, now: Instant) -> DigestVerifier {
        DigestVerifier {
            config,
            secret: secret.into(),
            epoch: now,
            next_serial: 1,
            counts: BTreeMap::new(),
            floor: 0,
            capacity: MAX_TRACKED_NONCES,
        }
    }

    /// Keeps at most `capacity` nonce counts (tests of eviction).
    pub fn with_capacity(mut self, capacity: usize) -> DigestVerifier {
        self.capacity = capacity.max(1);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &InboundAuth {
        &self.config
    }

    /// Number of nonces whose counts are kept.
    pub fn tracked_nonces(&self) -> usize {
        self.counts.len()
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn mac(&self, issued: u64, serial: u64) -> [u8; 16] {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(self.config.realm.as_bytes());
        mac.update(&[0]);
        mac.update(&issued.to_be_bytes());
        mac.update(&serial.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// A fresh nonce: 16 hex digits of issue time, 16 of serial, 32 of MAC.
    fn new_nonce(&mut self, now: Instant) -> String {
        let issued = self.millis(now);
        let serial = self.next_serial;
        self.next_serial += 1;
        format!(
            "{issued:016x}{serial:016x}{}",
            to_hex(&self.mac(issued, serial))
        )
    }

    /// (issued at, serial) of a nonce this verifier issued; None for anything else.
    fn open_nonce(&self, nonce: &str) -> Option<(u64, u64)> {
        if nonce.len() != 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let issued = u64::from_str_radix(&nonce[..16], 16).ok()?;
        let serial = u64::from_str_radix(&nonce[16..32], 16).ok()?;
        let expected = to_hex(&self.mac(issued, serial));
        constant_time_eq(
            expected.as_bytes(),
            nonce[32..].to_ascii_lowercase().as_bytes(),
        )
        .then_some((issued, serial))
    }

    /// The `WWW-Authenticate` values of a 401 offering `algorithms` (one header each, in that
    /// order) with one fresh nonce.
    pub fn challenge(
        &mut self,
        stale: bool,
        algorithms: &[Algorithm],
        now: Instant,
    ) -> Vec<String> {
        let nonce = self.new_nonce(now);
        algorithms
            .iter()
            .map(|alg| {
                let mut value = format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    self.config.realm,
                    alg.token()
                );
                if stale {
                    value.push_str(", stale=true");
                }
                value
            })
            .collect()
    }

    /// Forgets counts of nonces that expired.
    fn expire(&mut self, now_ms: u64) {
        let lifetime = lifetime_ms(self.config.nonce_lifetime);
        while let Some((_, &(issued, _))) = self.counts.first_key_value() {
            if now_ms.saturating_sub(issued) <= lifetime {
                break;
            }
            self.counts.pop_first();
        }
    }

    /// Decides on a request with these `Authorization` header values (all of them; the one for
    /// our realm counts), its method and Request-URI.
    pub fn check<'a>(
        &mut self,
        method: &str,
        request_uri: &str,
        authorizations: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) -> AuthDecision {
        let now_ms = self.millis(now);
        self.expire(now_ms);
        let mut ours = None;
        let mut other_realm = false;
        for value in authorizations {
            if value.len() > MAX_AUTHORIZATION_LEN {
                return AuthDecision::BadRequest {
                    why: "Authorization header too long",
                };
            }
            let presented = match parse_digest(value) {
                None => continue, // another scheme
                Some(Err(why)) => return AuthDecision::BadRequest { why },
                Some(Ok(p)) if p.realm.is_none() => {
                    return AuthDecision::BadRequest {
                        why: "Authorization lacks realm",
                    }
                }
                Some(Ok(p)) => p,
            };
            if presented.realm.as_deref() == Some(self.config.realm.as_str()) {
                ours = Some(presented);
                break;
            }
            other_realm = true;
        }
        let Some(p) = ours else {
            return AuthDecision::Challenge {
                stale: false,
                algorithms: Algorithm::ALL.to_vec(),
                why: if other_realm {
                    "credentials for another realm"
                } else {
                    "no credentials"
                },
            };
        };
        self.verify(p, method, request_uri, now_ms)
    }

    fn verify(
        &mut self,
        p: Presented,
        method: &str,
        request_uri: &str,
        now_ms: u64,
    ) -> AuthDecision {
        use AuthDecision::{BadRequest, Challenge, Forbidden};
        let (Some(username), Some(nonce), Some(uri), Some(response)) =
            (p.username, p.nonce, p.uri, p.response)
        else {
            return BadRequest {
                why: "Authorization lacks username, nonce, uri or response",
            };
        };
        if !p.qop.is_some_and(|q| q.eq_ignore_ascii_case("auth")) {
            return BadRequest {
                why: "qop=auth required",
            };
        }
        let (Some(nc_text), Some(cnonce)) = (p.nc, p.cnonce) else {
            return BadRequest {
                why: "qop=auth without nc or cnonce",
            };
        };
        let nc = match parse_nc(&nc_text) {
            Some(nc) => nc,
            None => {
                return BadRequest {
                    why: "nc is not 1 to 8 hex digits above zero",
                }
            }
        };
        let Some(alg) = Algorithm::from_token(p.algorithm.as_deref().unwrap_or("MD5")) else {
            return Challenge {
                stale: false,
                algorithms: Algorithm::ALL.to_vec(),
                why: "unsupported algorithm",
            };
        };
        if response.len() != alg.hex_len() || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
            return BadRequest {
                why: "response is not a hex digest",
            };
        }
        if uri != request_uri && uri_user(&uri) != uri_user(request_uri) {
            return BadRequest {
                why: "digest uri does not match the Request-URI",
            };
        }
        let Some(credentials) = self.config.users.get(&username) else {
            // Spend the same work as for a known user, so timing does not tell names apart.
            let _ = alg.response(&alg.hex(""), &nonce, &nc_text, &cnonce, method, &uri);
            return Forbidden {
                why: "unknown user",
            };
        };
        let Some(ha1) = credentials.ha1(alg) else {
            return Challenge {
                stale: false,
                algorithms: credentials.algorithms(),
                why: "no credential of the user for that algorithm",
            };
        };
        let expected = alg.response(ha1, &nonce, &nc_text, &cnonce, method, &uri);
        let right = constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        );
        let Some((issued, serial)) = self.open_nonce(&nonce) else {
            // Not our nonce (another process, a restart): a fresh challenge either way; a
            // wrong password is refused on that one.
            return Challenge {
                stale: right,
                algorithms: Algorithm::ALL.to_vec(),
                why: "nonce not issued here",
            };
        };
        let expired = now_ms.saturating_sub(issued) > lifetime_ms(self.config.nonce_lifetime)
            || serial < self.floor;
        if !right {
            return Forbidden {
                why: "wrong credentials",
            };
        }
        if expired {
            return Challenge {
                stale: true,
                algorithms: Algorithm::ALL.to_vec(),
                why: "nonce expired",
            };
        }
        if let Some(&(_, highest)) = self.counts.get(&serial) {
            if nc <= highest {
                return Forbidden {
                    why: "nonce count replayed",
                };
            }
        } else if self.counts.len() >= self.capacity {
            if let Some((oldest, _)) = self.counts.pop_first() {
                self.floor = self.floor.max(oldest + 1);
            }
            if serial < self.floor {
                return Challenge {
                    stale: true,
                    algorithms: Algorithm::ALL.to_vec(),
                    why: "nonce expired",
                };
            }
        }
        self.counts.insert(serial, (issued, nc));
        AuthDecision::Authorized { username }
    }
}

fn lifetime_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `nc`: 1 to 8 hex digits (RFC 7616 says exactly 8), not zero.
fn parse_nc(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok().filter(|n| *n > 0)
}

/// Compares two byte strings without an early exit on the first difference. The lengths are
/// public (fixed by the algorithm), so a length mismatch may return at once.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses an `Authorization` value: None when its scheme is not Digest, an error when its
/// parameters cannot be read.
fn parse_digest(value: &str) -> Option<Result<Presented, &'static str>> {
    let v = value.trim_start();
    let scheme_end = v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len());
    if !v[..scheme_end].eq_ignore_ascii_case("digest") {
        return None;
    }
    Some(parse_params(&v[scheme_end..]))
}

fn parse_params(mut rest: &str) -> Result<Presented, &'static str> {
    const BAD: &str = "unreadable Authorization parameters";
    let mut p = Presented::default();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
        if rest.is_empty() {
            return Ok(p);
        }
        let eq = rest.find('=').ok_or(BAD)?;
        let name = rest[..eq].trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(BAD);
        }
        rest = rest[eq + 1..].trim_start();
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => out.push(e),
                        None => return Err(BAD),
                    },
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => out.push(c),
                }
            }
            let end = end.ok_or(BAD)?;
            rest = &quoted[end + 1..];
            let after = rest.trim_start();
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(BAD);
            }
            out
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let token = rest[..end].trim();
            if token.is_empty() || token.contains(|c: char| c.is_ascii_whitespace() || c == '"') {
                return Err(BAD);
            }
            rest = &rest[end..];
            token.to_string()
        };
        let slot = match name.to_ascii_lowercase().as_str() {
            "username" => &mut p.username,
            "realm" => &mut p.realm,
            "nonce" => &mut p.nonce,
            "uri" => &mut p.uri,
            "response" => &mut p.response,
            "algorithm" => &mut p.algorithm,
            "qop" => &mut p.qop,
            "nc" => &mut p.nc,
            "cnonce" => &mut p.cnonce,
            _ => continue, // opaque, userhash and extensions: not used
        };
        if slot.replace(value).is_some() {
            return Err("a parameter repeated in Authorization");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Routes;

    impl RouteAuth for Routes {
        fn requires_auth(&self, user: &str) -> bool {
            user.starts_with("agent-")
        }
    }

    const URI: &str = "sip:agent-sales@192.0.2.1";
    const REALM: &str = "huddle";

    fn config() -> InboundAuth {
        let mut users = HashMap::new();
        users.insert(
            "alice".to_string(),
            Credentials::from_password("alice", REALM, "wonderland"),
        );
        users.insert(
            "md5only".to_string(),
            Credentials::from_ha1(Some(&Algorithm::Md5.ha1("md5only", REALM, "pw")), None),
        );
        InboundAuth::new(REALM, users, Arc::new(Routes))
    }

    fn verifier(t0: Instant) -> DigestVerifier {
        DigestVerifier::new(config(), b"test secret".to_vec(), t0)
    }

    /// The nonce of a challenge value.
    fn nonce_of(challenge: &str) -> String {
        challenge
            .split("nonce=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string()
    }

    /// An Authorization value computed independently of the verifier's code path.
    fn authorization(alg: Algorithm, user: &str, password: &str, nonce: &str, nc: u32) -> String {
        let nc = format!("{nc:08x}");
        let ha1 = alg.hex(&format!("{user}:{REALM}:{password}"));
        let ha2 = alg.hex(&format!("INVITE:{URI}"));
        let response = alg.hex(&format!("{ha1}:{nonce}:{nc}:c0ffee:auth:{ha2}"));
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{URI}\", \
             response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"c0ffee\"",
            alg.token()
        )
    }

    fn check(v: &mut DigestVerifier, auth: &str, now: Instant) -> AuthDecision {
        v.check("INVITE", URI, [auth], now)
    }

    fn authorized(d: &AuthDecision) -> bool {
        matches!(d, AuthDecision::Authorized { .. })
    }

    #[test]
    fn no_credentials_get_a_challenge_offering_sha256_then_md5() {
        let t0 = Instant::now();
        let mut v = verifier(t0);
        let d = v.check("INVITE", URI, [], t0);
        assert_eq!(
            d,
            AuthDecision::Challenge {
                stale: false,
                algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
                why: "no credentials"
            }
        );
        let c = v.challenge(false, &Algorithm::ALL, t0);
        assert_eq!(c.len(), 2);
        assert!(
            c[0].starts_with("Digest realm=\"huddle\", nonce=\""),
            "{}",
            c[0]
        );
        assert!(c[0].contains("algorithm=SHA-256") && c[0].contains("qop=\"auth\""));
        assert!(c[1].contains("algorithm=MD5") && !c[1].contains("stale"));
        assert_eq!(nonce_of(&c[0]), nonce_of(&c[1]));
        // Every challenge has a nonce of its own, even at the same instant.
        let again = v.challenge(false, &Algorithm::ALL, t0);
        assert_ne!(nonce_of(&c[0]), nonce_of(&again[0]));
        // Basic and other schemes count as no credentials.
        assert!(matches!(
            v.check("INVITE", URI, ["Basic YWxpY2U6d29uZGVybGFuZA=="], t0),
            AuthDecision::Challenge { stale: false, .. }
        ));
    }

    #[test]
    fn right_credentials_pass_with_both_algorithms_and_wrong_ones_get_403() {
        let t0 = Instant::now();
        let mut v = verifier(t0);
        for alg in Algorithm::ALL {
            let nonce = nonce_of(&v.challenge(false, &Algorithm::ALL, t0)[0]);
            let ok = check(
                &mut v,
                &authorization(alg, "alice", "wonderland", &nonce, 1),
                t0,
            );
            assert_eq!(
                ok,
                AuthDecision::Authorized {
                    username: "alice".into()
                },
                "{alg:?}"
            );
            let nonce = nonce_of(&v.challenge(false, &Algorithm::ALL, t0)[0]);
            let wrong = check(&mut v, &authorization(alg, "alice", "guess", &nonce, 1), t0);
            assert_eq!(
                wrong,
                AuthDecision::Forbidden {
                    why: "wrong credentials"
                }
            );
            let unknown = check(&mut v, &authorization(alg, "mallory", "x", &nonce, 1), t0);
            assert_eq!(
                unknown,
                AuthDecision::Forbidden {
                    why: "unknown user"
                }
            );
        }
        // Upper-case hex in the response is the same digest.
        let nonce = nonce_of(&v.challenge(false, &Algorithm::ALL, t0)[0]);
        let auth = authorization(Algorithm::Md5, "alice", "wonderland", &nonce, 1);
        let response = auth.split("response=\"").nth(1).unwrap()[..32].to_string();
        let upper = auth.replace(&response, &response.to_ascii_uppercase());
        assert!(authorized(&check(&mut v, &upper, t0)));
    }

    #[test]
    fn a_replayed_or_lower_nonce_count_is_refused_and_a_higher_one_passes() {
        let t0 = Instant::now();
        let mut v = verifier(t0);
        let nonce = nonce_of(&v.challenge(false, &Algorithm::ALL, t0)[0]);
        let first = authorization(Algorithm::Sha256, "alice", "wonderland", &nonce, 1);
        assert!(authorized(&check(&mut v, &first, t0)));
        assert_eq!(
            check(&mut v, &first, t0),
            AuthDecision::Forbidden {
                why: "nonce count replayed"
            }
        );
        let third = authorization(Algorithm::Sha256, "alice", "wonderland", &nonce, 3);
        assert!(authorized(&check(&mut v, &third, t0)));
        let second = authorization(Algorithm::Md5, "alice", "wonderland", &nonce, 2);
        assert_eq!(
            check(&mut v, &second, t0),
            AuthDecision::Forbidden {
                why: "nonce count replayed"
            }
        );
        assert_eq!(v.tracked_nonces(), 1);
        // Wrong credentials do not advance the count.
        let wrong = authorization(Algorithm::Md5, "alice", "guess", &nonce, 9);
        assert!(matches!(
            check(&mut v, &wrong, t0),
            AuthDecision::Forbidden { .. }
        ));
        let fourth = authorization(Algorithm::Md5, "alice", "wonderland", &nonce, 4);
        assert!(authorized(&check(&mut v, &fourth, t0)));
    }

    #[test]
    fn an_expired_nonce_is_stale_when_the_credentials_are_right() {
        let t0 = Instant::now();
        let mut v = DigestVerifier::new(
            config().with_nonce_lifetime(Duration::from_secs(300)),
            b"s".to_vec(),
            t0,
        );
        let nonce = nonce_of(&v.challenge(false, &Algorithm::ALL, t0)[0]);
        let later = t0 + Duration::from_secs(301);
        let right = authorization(Algorithm::Sha256, "alice", "wonderland", &nonce, 1);
        assert_eq!(
            check(&mut v, &right, later),
            AuthDecision::Challenge {
                stale: true,
                algorithms: Algorithm::ALL.to_vec(),
                why: "nonce expired"
            }
        );
        let wrong = authorization(Algorithm::Sha256, "alice", "guess", &nonce, 1);
        assert!(matches!(
            check(&mut v, &wrong, later),
            AuthDecision::Forbidden { .. }
        ));
        assert!(authorized(&check(
            &mut v,
            &right,
            t0 + Duration::from_secs(300)
        )));
        let stale = v.challenge(true, &Algorithm::ALL, later);
        assert!(
            stale.iter().all(|c| c.ends_with(", stale=true")),
            "{stale:?}"
        );
        // Counts of expired nonces are forgotten.
        v.check("INVITE", URI, [], t0 + Duration::from_secs(700));
        assert_eq!(v.tracked_nonces(), 0);
    }

    #[test]
    fn foreign_and_forged_nonces_are_challenged_again() {
        let t0 = Instant::now();
        let mut v = verifier(t0);
        let mut other = DigestVerifier::new(config(), b"another secret".to_vec(), t0);
        let foreign = nonce_of(&other.challenge(false, &Algorithm::ALL, t0)[0]);
        let right = authorization(Algorithm::Md5, "alice", "wonderland", &foreign, 1);
        assert!(matches!(
            check(&mut v, &right, t0),
            AuthDecision::Challenge { stale: true, .. }
        ));
        let wrong = authorization(Algorithm::Md5, "alice", "guess", &foreign, 1);
        assert!(matches!(
            check(&mut v, &wrong, t0),
            AuthDecision::Challenge { stale: false, .. }
        ));
        // A nonce of ours with its time pushed back (MAC no longer matches).
        let t1 = t0 + Duration::from_secs(10);
        let ours = nonce_of(&v.challenge(false, &Algorithm::ALL, t1)[0]);
        let forged = format!("{:016x}{}", 0u64, &ours[16..]);
        assert_ne!(forged, ours);
        let auth = authorization(Algorithm::Md5, "alice", "wonderland", &forged, 1);
        assert!(matches!(
            check(&mut v, &auth, t1),
            AuthDecision::Challenge { .. }
        ));
        let auth = authorization(Algorithm::Md5, "alice", "wonderland", &ours, 1);
        assert!(authorized(&check(&mut v, &auth, t1)));
        for junk in ["", "abc", &"z".repeat(64)] {
            let auth = authorization(Algorithm::Md5, "alice", "wonderland", junk, 1);
            assert!(
                matches!(check(&mut v, &auth, t0), AuthDecision::Challenge { .. }),
                "{junk}"
            );
        }
    }

    #[test]
    fn a_user_with_only_an_md5_ha1_is_offered_md5() {
        let t0 = Instant::now();
        let mut v = verifier(t0);
        let nonce = nonce_of(&v.challenge(false, &Algorithm::ALL, t0)[0]);
        assert_eq!(
            check(
                &mut v,
                &authorization(Algorithm::Sha256, "md5only", "pw", &nonce, 1),
                t0
            ),
            AuthDecision::Challenge {
                stale: false,
                algorithms: vec![Algorithm::Md5],
                why: "no credential of the user for that algorithm"
            }
        );
        assert!(authorized(&check(
            &mut v,
            &authorization(Algorithm::Md5, "md5only", "pw", &nonce, 1),
            t0
        )));
    }

    #[test]
    fn the_oldest_counts_are_evicted_and_their_nonces_become_stale() {
        let t0 = Instant::now();
        let mut v = verifier(t0).with_capacity(2);
        let nonces: Vec<String> = (0..3)
            .map(|_| nonce_of(&v.challenge(false, &Algorithm::ALL, t0)[0]))
            .collect();
        for n in &nonces {
            let auth = authorization(Algorithm::Md5, "alice", "wonderland", n, 1);
            assert!(authorized(&check(&mut v, &auth, t0)));
        }
        assert_eq!(v.tracked_nonces(), 2);
        // The first nonce's count was evicted: its replay is not accepted but stale.
        let replay = authorization(Algorithm::Md5, "alice", "wonderland", &nonces[0], 1);
        assert!(matches!(
            check(&mut v, &replay, t0),
            AuthDecision::Challenge { stale: true, .. }
        ));
        let replay = authorization(Algorithm::Md5, "alice", "wonderland", &nonces[2], 1);
        assert!(matches!(
            check(&mut v, &replay, t0),
            AuthDecision::Forbidden { .. }
        ));
    }

    #[test]
    fn hostile_authorization_values_get_400_or_a_challenge_never_a_panic() {
        let t0 = Instant::now();
        let mut v = verifier(t0);
        let nonce = nonce_of(&v.challenge(false, &Algorithm::ALL, t0)[0]);
        let good = authorization(Algorithm::Md5, "alice", "wonderland", &nonce, 1);
        let bad_request = |d: &AuthDecision| matches!(d, AuthDecision::BadRequest { .. });
        let cases: Vec<String> = vec![
            "Digest".into(),
            "Digest ".into(),
            "Digest =".into(),
            "Digest username".into(),
            "Digest username=\"alice".into(),
            "Digest username=\"a\\".into(),
            "Digest username=\"a\"x, realm=\"huddle\"".into(),
            "Digest username=a b, realm=\"huddle\"".into(),
            "Digest realm=\"huddle\"".into(),
            "Digest realm=\"huddle\", realm=\"huddle\"".into(),
            good.replace("qop=auth, ", ""),
            good.replace("qop=auth", "qop=auth-int"),
            good.replace("nc=00000001", "nc=0000000g"),
            good.replace("nc=00000001", "nc=00000000"),
            good.replace("nc=00000001", "nc=123456789"),
            good.replace(", cnonce=\"c0ffee\"", ""),
            good.replace("response=\"", "response=\"zz"),
            good.replace("response=\"", "response=\"00"),
            good.replace(URI, "sip:supervisor-sales@192.0.2.1"),
            format!("Digest realm=\"huddle\", username=\"{}\"", "a".repeat(5000)),
            format!("{good}, nonce=\"x\""),
            "Digest \u{0}\u{1}=\u{2}".into(),
            "Digest realm=\"huddle\", ünïcode=\"✓\"".into(),
        ];
        for auth in &cases {
            let d = check(&mut v, auth, t0);
            assert!(bad_request(&d), "{auth:?}: {d:?}");
        }
        // Other schemes, other realms, unsupported algorithms: a fresh challenge.
        for auth in [
            "".to_string(),
            "Bearer x".to_string(),
            good.replace("realm=\"huddle\"", "realm=\"elsewhere\""),
            good.replace("algorithm=MD5", "algorithm=SHA-512-256"),
            good.replace("algorithm=MD5", "algorithm=MD5-sess"),
        ] {
            let d = check(&mut v, &auth, t0);
            assert!(
                matches!(d, AuthDecision::Challenge { .. }),
                "{auth:?}: {d:?}"
            );
        }
        // Without an algorithm MD5 is meant (RFC 7616 §3.3), and the good value still works.
        assert!(authorized(&check(
            &mut v,
            &good.replace(", algorithm=MD5", ""),
            t0
        )));
        // Any byte soup: never a panic.
        let mut x: u32 = 7;
        for _ in 0..2000 {
            let len = (x % 200) as usize;
            let s: String = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    char::from(b" ,=\"\\adeginrstuDG0f\t"[(x >> 16) as usize % 20])
                })
                .collect();
            let _ = check(&mut v, &format!("Digest {s}"), t0);
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
