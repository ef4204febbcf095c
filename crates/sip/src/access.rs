//! Source access control, decided before the endpoint sees a message: who may open calls (and
//! ask anything else outside a dialog) and who may not. Sans-IO: the transport shell asks
//! [`AccessPolicy::check`] about each received message with the address it came from (the
//! socket's, never a header's) and acts on the [`Verdict`].
//!
//! The rules:
//!
//! - Responses and keepalives pass: a response only ever completes a transaction of ours (the
//!   trunk answering a call we dialled, a phone answering our BYE), and the endpoint drops
//!   the rest.
//! - A request inside a dialog (its To has a tag) or a CANCEL passes from any source when its
//!   Call-ID belongs to a live leg (or one that ended less than [`KnownCalls`]' linger ago, so
//!   that retransmissions are still answered): the trunk's BYE for a call we placed, a
//!   re-INVITE from a phone whose media moved.
//! - Every other request from a source outside `sip.trusted` is refused: new INVITEs, OPTIONS,
//!   REGISTER, and in-dialog requests for dialogs that do not exist. `untrusted = "reject"`
//!   answers 403 Forbidden (never to an ACK); `"drop"` sends nothing at all, so a scanner
//!   learns nothing. A message that does not parse counts as such a request.
//! - A new INVITE from a trusted source whose Request-URI user matches a route with
//!   `from_networks` that does not include the source gets 403 (always answered: the source
//!   is trusted).
//!
//! A refused request never reaches the endpoint, so no transaction, leg, RTP port or
//! answer_url request is ever made for it.
//!
//! The policy also carries the configuration of inbound digest authentication
//! ([`AccessPolicy::with_inbound_auth`]): routes with `auth = true` are challenged by the
//! endpoint itself, after this check, because a challenge is answered within an INVITE
//! transaction (its 401 retransmitted and acknowledged) and needs the nonce state the endpoint's
//! task owns. See [`crate::auth`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use huddle_config::{Cidr, Untrusted};

use crate::auth::InboundAuth;
use crate::endpoint::{new_token, LegId};
use crate::headers::tag_of;
use crate::message::{parse, Framing, Method, RawIds, SipMessage};

/// The per-route source restriction: the networks the route a Request-URI user selects takes
/// calls from. Implemented by the call router, so that the SIP layer and the router agree on
/// which route a call matches.
pub trait RouteNetworks: Send + Sync {
    /// The `from_networks` of the first route matching `user`; None when that route (or no
    /// route) restricts sources.
    fn route_networks(&self, user: &str) -> Option<&[Cidr]>;
}

/// Why a request was refused; the `reason` label of `huddle_sip_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source is not in `sip.trusted`.
    UntrustedSource,
    /// The route the call matches does not take calls from the source's network.
    RouteNetwork,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::UntrustedSource => "untrusted_source",
            Refusal::RouteNetwork => "route_network",
        }
    }
}

/// What to do with one received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the endpoint.
    Admit,
    /// Keep it from the endpoint.
    Refuse {
        /// Why.
        reason: Refusal,
        /// Answer 403 Forbidden (see [`forbidden`]); false: send nothing.
        answer: bool,
    },
}

/// The configured source policy.
#[derive(Clone)]
pub struct AccessPolicy {
    trusted: Vec<Cidr>,
    untrusted: Untrusted,
    routes: Option<Arc<dyn RouteNetworks>>,
    auth: Option<InboundAuth>,
}

impl std::fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessPolicy")
            .field("trusted", &self.trusted)
            .field("untrusted", &self.untrusted)
            .field("route_networks", &self.routes.is_some())
            .field("inbound_auth", &self.auth)
            .finish()
    }
}

impl AccessPolicy {
    /// A policy that trusts `trusted` and refuses everyone else as `untrusted` says.
    pub fn new(trusted: Vec<Cidr>, untrusted: Untrusted) -> AccessPolicy {
        AccessPolicy {
            trusted,
            untrusted,
            routes: None,
            auth: None,
        }
    }

    /// Trusts every source (in-process tests and embedders that filter elsewhere).
    pub fn open() -> AccessPolicy {
        let all = ["0.0.0.0/0", "::/0"]
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        AccessPolicy::new(all, Untrusted::Reject)
    }

    /// Adds per-route source restrictions.
    pub fn with_routes(mut self, routes: Arc<dyn RouteNetworks>) -> AccessPolicy {
        self.routes = Some(routes);
        self
    }

    /// Requires digest authentication on the routes `auth` names; the endpoint challenges
    /// their new INVITEs.
    pub fn with_inbound_auth(mut self, auth: InboundAuth) -> AccessPolicy {
        self.auth = Some(auth);
        self
    }

    /// The inbound digest authentication configured, if any.
    pub fn inbound_auth(&self) -> Option<&InboundAuth> {
        self.auth.as_ref()
    }

    /// True when `ip` is in a trusted network.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// True when a connection from `ip` may be accepted on its address alone: the source is
    /// trusted. A route's `from_networks` only narrows the trusted networks, so no route
    /// admits an address outside them. A connection from anywhere else can carry nothing but
    /// requests in a live call's dialog, so the shell accepts it only from a live leg's peer
    /// (asked of the endpoint), and a TLS one is closed before its handshake otherwise.
    pub fn may_connect(&self, ip: IpAddr) -> bool {
        self.is_trusted(ip)
    }

    /// The verdict on a message that arrived too large to parse: refused when the source is
    /// untrusted (its in-dialog status cannot be known), otherwise admitted to be answered 513.
    pub fn check_oversized(&self, source: IpAddr, data: &[u8]) -> Verdict {
        if self.is_trusted(source) {
            Verdict::Admit
        } else {
            self.refuse_untrusted(!is_ack(data))
        }
    }

    /// Decides on one received message from `source`. `known_call` tells whether a Call-ID
    /// belongs to a live leg (see [`KnownCalls`]).
    pub fn check(
        &self,
        source: IpAddr,
        data: &[u8],
        framing: Framing,
        mut known_call: impl FnMut(&str) -> bool,
    ) -> Verdict {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return Verdict::Admit; // keepalive
        }
        let trusted = self.is_trusted(source);
        if trusted && self.routes.is_none() {
            return Verdict::Admit;
        }
        // The same parse as the endpoint's, so both see the same method, To tag and URI.
        let req = match parse(data, framing) {
            Ok(SipMessage::Response(_)) => return Verdict::Admit,
            Ok(SipMessage::Request(req)) => req,
            Err(_) if trusted => return Verdict::Admit, // the endpoint answers 400
            Err(_) => return self.refuse_untrusted(!is_ack(data)),
        };
        let in_dialog = tag_of(req.headers.get("To")).is_some();
        if (in_dialog || req.method == Method::Cancel)
            && req.headers.get("Call-ID").is_some_and(&mut known_call)
        {
            return Verdict::Admit;
        }
        if !trusted {
            return self.refuse_untrusted(req.method != Method::Ack);
        }
        if req.method == Method::Invite && !in_dialog {
            let user = req.uri_user().unwrap_or_default();
            let allowed = self
                .routes
                .as_ref()
                .and_then(|r| r.route_networks(&user))
                .is_none_or(|nets| nets.iter().any(|n| n.contains(source)));
            if !allowed {
                return Verdict::Refuse {
                    reason: Refusal::RouteNetwork,
                    answer: true,
                };
            }
        }
        Verdict::Admit
    }

    fn refuse_untrusted(&self, answerable: bool) -> Verdict {
        Verdict::Refuse {
            reason: Refusal::UntrustedSource,
            answer: answerable && self.untrusted == Untrusted::Reject,
        }
    }
}

fn is_ack(data: &[u8]) -> bool {
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    data[start..].starts_with(b"ACK ")
}

/// A stateless 403 Forbidden for a refused request, built from its raw headers (it need not
/// parse); None when it cannot be addressed (no Via, or not a request). A To without a tag
/// gets one, as a final response needs.
pub fn forbidden(data: &[u8]) -> Option<Bytes> {
    let ids = RawIds::extract(data);
    if !ids.can_reply() {
        return None;
    }
    let mut resp = ids.response(403, "Forbidden");
    for h in resp.headers.0.iter_mut() {
        if h.name.eq_ignore_ascii_case("To") && tag_of(Some(&h.value)).is_none() {
            h.value = format!("{};tag={}", h.value, new_token(10));
        }
    }
    Some(Bytes::from(resp.to_bytes()))
}

/// The Call-IDs of live legs, so that requests in their dialogs pass from any source. A leg
/// that is gone stays known for `linger` after it was first found gone (64 × T1 covers every
/// retransmission of a final request).
#[derive(Debug)]
pub struct KnownCalls {
    calls: HashMap<String, (LegId, Option<Instant>)>,
    linger: Duration,
}

impl Default for KnownCalls {
    fn default() -> Self {
        KnownCalls::new(Duration::from_secs(32))
    }
}

impl KnownCalls {
    /// Empty, keeping ended legs for `linger`.
    pub fn new(linger: Duration) -> KnownCalls {
        KnownCalls {
            calls: HashMap::new(),
            linger,
        }
    }

    /// Remembers the Call-ID of a new leg.
    pub fn insert(&mut self, call_id: &str, leg: LegId) {
        self.calls.insert(call_id.to_string(), (leg, None));
    }

    /// True when `call_id` is a leg that `live` says exists, or one that ended less than the
    /// linger ago.
    pub fn contains(&mut self, call_id: &str, now: Instant, live: impl Fn(LegId) -> bool) -> bool {
        let Some((leg, gone)) = self.calls.get_mut(call_id) else {
            return false;
        };
        if live(*leg) {
            return true;
        }
        let since = *gone.get_or_insert(now);
        now.saturating_duration_since(since) <= self.linger
    }

    /// Forgets legs that have been gone for longer than the linger.
    pub fn sweep(&mut self, now: Instant, live: impl Fn(LegId) -> bool) {
        let linger = self.linger;
        self.calls.retain(|_, (leg, gone)| {
            if live(*leg) {
                return true;
            }
            let since = *gone.get_or_insert(now);
            now.saturating_duration_since(since) <= linger
        });
    }

    /// Number of Call-IDs remembered.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when none is remembered.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn request(method: &str, user: &str, to_tag: Option<&str>, call_id: &str) -> Vec<u8> {
        let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "{method} sip:{user}@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKa1\r\n\
             From: <sip:a@192.0.2.9>;tag=f1\r\nTo: <sip:{user}@192.0.2.1>{tag}\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    const RESPONSE: &[u8] = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n\
From: <sip:huddle@192.0.2.1>;tag=a\r\nTo: <sip:b@192.0.2.9>;tag=b\r\nCall-ID: out-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    struct Routes(Vec<(&'static str, Option<Vec<Cidr>>)>);

    impl RouteNetworks for Routes {
        fn route_networks(&self, user: &str) -> Option<&[Cidr]> {
            self.0
                .iter()
                .find(|(prefix, _)| user.starts_with(prefix))
                .and_then(|(_, n)| n.as_deref())
        }
    }

    fn refused(answer: bool) -> Verdict {
        Verdict::Refuse {
            reason: Refusal::UntrustedSource,
            answer,
        }
    }

    #[test]
    fn trusted_sources_are_admitted_and_others_refused() {
        let p = AccessPolicy::new(nets(&["10.0.0.0/8", "2001:db8::/32"]), Untrusted::Reject);
        let invite = request("INVITE", "echo", None, "c1");
        let none = |_: &str| false;
        for good in ["10.1.2.3", "2001:db8::5", "::ffff:10.9.9.9"] {
            assert_eq!(
                p.check(ip(good), &invite, Framing::Datagram, none),
                Verdict::Admit,
                "{good}"
            );
        }
        for bad in ["11.0.0.1", "127.0.0.1", "::1", "2001:db9::1"] {
            assert_eq!(
                p.check(ip(bad), &invite, Framing::Datagram, none),
                refused(true),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_out_of_dialog_request_is_filtered_and_ack_is_never_answered() {
        let p = AccessPolicy::new(nets(&["127.0.0.1/32"]), Untrusted::Reject);
        let src = ip("192.0.2.66");
        let none = |_: &str| false;
        for method in [
            "OPTIONS",
            "REGISTER",
            "MESSAGE",
            "SUBSCRIBE",
            "BYE",
            "CANCEL",
            "FOO",
        ] {
            assert_eq!(
                p.check(
                    src,
                    &request(method, "x", None, "c"),
                    Framing::Datagram,
                    none
                ),
                refused(true),
                "{method}"
            );
        }
        assert_eq!(
            p.check(
                src,
                &request("ACK", "x", Some("t"), "c"),
                Framing::Datagram,
                none
            ),
            refused(false)
        );
        // In-dialog requests for dialogs that do not exist are refused too (no 481 to probe).
        assert_eq!(
            p.check(
                src,
                &request("BYE", "x", Some("t"), "c"),
                Framing::Datagram,
                none
            ),
            refused(true)
        );
        // Garbage is refused, answered only when it can be addressed.
        assert_eq!(
            p.check(src, b"hello there", Framing::Datagram, none),
            refused(true)
        );
        assert_eq!(
            p.check(src, b"ACK garbage\r\n\r\n", Framing::Datagram, none),
            refused(false)
        );
        // Keepalives and responses pass.
        assert_eq!(
            p.check(src, b"\r\n\r\n", Framing::Datagram, none),
            Verdict::Admit
        );
        assert_eq!(
            p.check(src, RESPONSE, Framing::Datagram, none),
            Verdict::Admit
        );
        assert_eq!(p.check_oversized(src, b"INVITE x"), refused(true));
        assert_eq!(
            p.check_oversized(ip("127.0.0.1"), b"INVITE x"),
            Verdict::Admit
        );
    }

    #[test]
    fn drop_answers_nothing() {
        let p = AccessPolicy::new(nets(&["127.0.0.1/32"]), Untrusted::Drop);
        let src = ip("127.0.0.2");
        assert_eq!(
            p.check(
                src,
                &request("INVITE", "echo", None, "c"),
                Framing::Datagram,
                |_| false
            ),
            refused(false)
        );
        assert_eq!(
            p.check(
                src,
                &request("OPTIONS", "", None, "c"),
                Framing::Stream,
                |_| false
            ),
            refused(false)
        );
        assert_eq!(p.check_oversized(src, b"INVITE x"), refused(false));
    }

    #[test]
    fn requests_in_known_dialogs_pass_from_any_source() {
        let p = AccessPolicy::new(nets(&["127.0.0.1/32"]), Untrusted::Drop);
        let trunk = ip("198.51.100.7");
        let known = |c: &str| c == "live-call";
        for (method, tag) in [
            ("BYE", Some("t")),
            ("INVITE", Some("t")),
            ("ACK", Some("t")),
            ("CANCEL", None),
        ] {
            assert_eq!(
                p.check(
                    trunk,
                    &request(method, "x", tag, "live-call"),
                    Framing::Datagram,
                    known
                ),
                Verdict::Admit,
                "{method}"
            );
        }
        // A new INVITE reusing a live Call-ID is still a new call: refused.
        assert_eq!(
            p.check(
                trunk,
                &request("INVITE", "x", None, "live-call"),
                Framing::Datagram,
                known
            ),
            refused(false)
        );
    }

    #[test]
    fn route_networks_restrict_new_invites_from_trusted_sources() {
        let routes = Routes(vec![
            ("supervisor-", Some(nets(&["10.1.0.0/16"]))),
            ("", None),
        ]);
        let p =
            AccessPolicy::new(nets(&["10.0.0.0/8"]), Untrusted::Drop).with_routes(Arc::new(routes));
        let none = |_: &str| false;
        let sup = request("INVITE", "supervisor-sales", None, "c");
        assert_eq!(
            p.check(ip("10.1.2.3"), &sup, Framing::Datagram, none),
            Verdict::Admit
        );
        assert_eq!(
            p.check(ip("10.2.0.1"), &sup, Framing::Datagram, none),
            Verdict::Refuse {
                reason: Refusal::RouteNetwork,
                answer: true
            }
        );
        // Untrusted stays untrusted whatever the route says.
        assert_eq!(
            p.check(ip("11.1.0.1"), &sup, Framing::Datagram, none),
            refused(false)
        );
        let other = request("INVITE", "customer-sales", None, "c");
        assert_eq!(
            p.check(ip("10.2.0.1"), &other, Framing::Datagram, none),
            Verdict::Admit
        );
        // Only new INVITEs: OPTIONS and requests in dialogs are not routed.
        let options = request("OPTIONS", "supervisor-sales", None, "c");
        assert_eq!(
            p.check(ip("10.2.0.1"), &options, Framing::Datagram, none),
            Verdict::Admit
        );
        let reinvite = request("INVITE", "supervisor-sales", Some("t"), "c");
        assert_eq!(
            p.check(ip("10.2.0.1"), &reinvite, Framing::Datagram, none),
            Verdict::Admit
        );
    }

    #[test]
    fn the_open_policy_admits_everyone() {
        let p = AccessPolicy::open();
        for src in ["203.0.113.1", "::1", "2001:db8::1"] {
            assert_eq!(
                p.check(
                    ip(src),
                    &request("INVITE", "x", None, "c"),
                    Framing::Datagram,
                    |_| false
                ),
                Verdict::Admit
            );
        }
    }

    #[test]
    fn forbidden_is_addressed_and_tagged() {
        let resp = forbidden(&request("INVITE", "echo", None, "c9")).unwrap();
        let text = String::from_utf8(resp.to_vec()).unwrap();
        assert!(text.starts_with("SIP/2.0 403 Forbidden\r\n"), "{text}");
        assert!(text.contains("Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKa1"));
        assert!(text.contains("Call-ID: c9"));
        let to = text.lines().find(|l| l.starts_with("To:")).unwrap();
        assert!(to.contains(";tag="), "{to}");
        let tagged = forbidden(&request("BYE", "echo", Some("abc"), "c9")).unwrap();
        let text = String::from_utf8(tagged.to_vec()).unwrap();
        assert!(
            text.contains("To: <sip:echo@192.0.2.1>;tag=abc\r\n"),
            "{text}"
        );
        assert!(forbidden(b"garbage").is_none());
        assert!(forbidden(RESPONSE).is_none());
    }

    #[test]
    fn known_calls_linger_then_are_forgotten() {
        let mut known = KnownCalls::new(Duration::from_secs(32));
        let t0 = Instant::now();
        known.insert("a", LegId(1));
        known.insert("b", LegId(2));
        let only_1 = |l: LegId| l == LegId(1);
        assert!(known.contains("a", t0, only_1));
        assert!(!known.contains("zz", t0, only_1));
        // Leg 2 is gone: still known within the linger, counted from when it was found gone.
        assert!(known.contains("b", t0, only_1));
        assert!(known.contains("b", t0 + Duration::from_secs(32), only_1));
        assert!(!known.contains("b", t0 + Duration::from_secs(33), only_1));
        known.sweep(t0 + Duration::from_secs(40), only_1);
        assert_eq!(known.len(), 1);
        known.sweep(t0 + Duration::from_secs(100), |_| false);
        assert_eq!(known.len(), 1, "found gone at the sweep, it lingers");
        known.sweep(t0 + Duration::from_secs(200), |_| false);
        assert!(known.is_empty());
    }
}
