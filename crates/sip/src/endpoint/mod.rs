//! The UA core: a sans-IO SIP endpoint that turns datagrams and commands into call-leg events.
//!
//! It owns the transaction layer and every dialog. Incoming INVITEs become
//! [`EndpointEvent::IncomingCall`]; the application answers, rejects or hangs up through
//! methods here; outbound legs are dialled through the configured trunk with digest
//! authentication. OPTIONS, stray BYEs, unknown methods and malformed requests are answered
//! here without involving the application.
//!
//! This file holds the public types and routes input to the modules that do the work:
//!
//! - `leg`: a leg's states, each with its own data;
//! - `uas`: requests outside a dialog, above all new INVITEs (answer, reject, provisional,
//!   CANCEL, the ACK of our 2xx);
//! - `uac`: outbound calls (dial, digest challenges, CANCEL, forked and late 2xx);
//! - `in_dialog`: requests inside a dialog, both ways (BYE, re-INVITE, OPTIONS, INFO, UPDATE);
//! - `build`: message building (responses, Via, Contact, CANCEL).
//!
//! Tags, branches, Call-IDs and cnonces come from an [`IdSource`], so that tests can make the
//! output reproducible byte for byte ([`Endpoint::with_ids`]).

mod build;
mod in_dialog;
mod leg;
mod uac;
mod uas;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::auth::{DigestVerifier, InboundAuth};
use crate::error::ParseErrorKind;
use crate::headers::{tag_of, validate_request};
use crate::ids::{IdSource, OsIds};
use crate::limits::{Admission, CallLimits, LimitRefusal, LogThrottle, SourceLimiter};
use crate::message::{parse, Framing, Method, RawIds, Request, Response, SipMessage};
use crate::transaction::{
    Peer, RequestDisposition, TimerConfig, TransactionLayer, TransportKind, TxId, TxOutput,
};

pub use build::{cancel_for, new_token};
use build::{reason_phrase, stamp_top_via};
use leg::{Leg, LegState};

/// Methods we serve, for Allow headers.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";

/// Identifies one call leg (one dialog) inside the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

/// Static settings of the endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Address written into Via, Contact (host part).
    pub advertised_host: String,
    /// Our UDP port, if listening on UDP.
    pub udp_port: Option<u16>,
    /// Our TCP port, if listening on TCP.
    pub tcp_port: Option<u16>,
    /// Server / User-Agent header value.
    pub user_agent: String,
    /// Trunk for outbound legs.
    pub trunk: Option<TrunkConfig>,
    /// Transaction timers.
    pub timers: TimerConfig,
}

/// Where outbound legs go and how to authenticate.
#[derive(Debug, Clone)]
pub struct TrunkConfig {
    /// Trunk URI, e.g. `sip:127.0.0.1:5070;transport=tcp` (host must be an IP literal).
    pub uri: String,
    /// Digest user (empty: never answer challenges).
    pub username: String,
    /// Digest password.
    pub password: String,
    /// Drop the `+` of E.164 numbers in the Request-URI, To and From of dialled legs (for
    /// trunks that want national or bare international digits).
    pub strip_plus: bool,
}

/// Why a leg ended without us asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The remote sent BYE.
    RemoteBye,
    /// The caller cancelled before we answered.
    Cancelled,
    /// Our 2xx was never acknowledged.
    AckTimeout,
    /// An in-dialog request of ours timed out (the far end is gone).
    Timeout,
}

/// Something the application must know or decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A new inbound INVITE; answer with [`Endpoint::answer`] or [`Endpoint::reject`].
    IncomingCall {
        /// The new leg.
        leg: LegId,
        /// The INVITE as received.
        invite: Box<Request>,
        /// Where it came from.
        peer: Peer,
    },
    /// Our 2xx was acknowledged: media may flow both ways.
    Established {
        /// The leg.
        leg: LegId,
    },
    /// The remote offers a new session description (re-INVITE); reply with
    /// [`Endpoint::answer_reinvite`]. `offer` is empty for an offerless re-INVITE.
    ReInvite {
        /// The leg.
        leg: LegId,
        /// SDP offer.
        offer: Bytes,
    },
    /// The leg is over (remote BYE, cancel, timeout).
    Ended {
        /// The leg.
        leg: LegId,
        /// Why.
        reason: EndReason,
    },
    /// A provisional response to one of our outbound INVITEs.
    OutboundProgress {
        /// The leg.
        leg: LegId,
        /// Status (180, 183, ...).
        status: u16,
        /// Early-media SDP, if any.
        sdp: Bytes,
    },
    /// Our outbound INVITE was answered; the ACK is already sent.
    OutboundAnswered {
        /// The leg.
        leg: LegId,
        /// The SDP answer.
        sdp: Bytes,
    },
    /// Our outbound INVITE failed.
    OutboundFailed {
        /// The leg.
        leg: LegId,
        /// Final status (408 for timeouts).
        status: u16,
        /// Reason phrase.
        reason: String,
    },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointOutput {
    /// Send bytes.
    Send {
        /// Destination.
        peer: Peer,
        /// Wire bytes.
        data: Bytes,
    },
    /// Tell the application.
    Event(EndpointEvent),
}

/// Why we started a client transaction, which decides what its response means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientPurpose {
    /// The INVITE of an outbound leg.
    Invite(LegId),
    /// Our BYE: its final response (or timeout) ends the leg.
    Bye(LegId),
    /// Our CANCEL: the INVITE's final response decides, not this one.
    Cancel,
    /// Our re-INVITE.
    ReInvite(LegId),
    /// The BYE that ends an extra dialog a forked 2xx created; the leg is not affected.
    ForkBye,
}

/// Counters of what the endpoint refused or dropped, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Messages that did not parse.
    pub malformed: u64,
    /// Responses that matched no transaction.
    pub stray_responses: u64,
    /// Requests answered with 4xx/5xx by the endpoint itself.
    pub rejected_requests: u64,
    /// 401 challenges sent to new INVITEs of routes that require authentication.
    pub auth_challenges: u64,
    /// New INVITEs refused for their credentials (403 wrong, unknown or replayed; 400
    /// malformed).
    pub auth_refusals: u64,
    /// New INVITEs refused with 503 for a limit, by [`LimitRefusal::index`].
    pub limit_refusals: [u64; 3],
}

/// The sans-IO SIP endpoint.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    /// Our TLS port, if listening on TLS (see [`Endpoint::set_tls_port`]).
    tls_port: Option<u16>,
    tx: TransactionLayer,
    legs: HashMap<LegId, Leg>,
    /// (Call-ID, our tag) → leg.
    dialogs: HashMap<(String, String), LegId>,
    /// INVITE server transaction → inbound leg, for CANCEL and the 2xx's ACK timeout.
    invite_server_txs: HashMap<TxId, LegId>,
    client_txs: HashMap<TxId, ClientPurpose>,
    next_leg: u64,
    draining: bool,
    stats: EndpointStats,
    scratch: Vec<TxOutput>,
    ids: Box<dyn IdSource>,
    /// Inbound digest authentication, when some route requires it.
    auth: Option<DigestVerifier>,
    /// `max_calls` and the per-source INVITE limits, when set.
    limiter: Option<SourceLimiter>,
    /// One log line per refusal reason and period.
    limit_logs: [LogThrottle; 3],
}

/// How often a refusal for one limit is logged at most.
const LIMIT_LOG_PERIOD: Duration = Duration::from_secs(10);

impl Endpoint {
    /// A new endpoint drawing its identifiers from the operating system's randomness.
    pub fn new(config: EndpointConfig) -> Self {
        Self::with_ids(config, Box::new(OsIds))
    }

    /// A new endpoint drawing tags, branches, Call-IDs and cnonces from `ids`; with a
    /// [`crate::ids::SeededIds`] the same inputs give the same bytes on the wire.
    pub fn with_ids(config: EndpointConfig, ids: Box<dyn IdSource>) -> Self {
        Endpoint {
            tx: TransactionLayer::new(config.timers),
            config,
            tls_port: None,
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            invite_server_txs: HashMap::new(),
            client_txs: HashMap::new(),
            next_leg: 0,
            draining: false,
            stats: EndpointStats::default(),
            scratch: Vec::new(),
            ids,
            auth: None,
            limiter: None,
            limit_logs: std::array::from_fn(|_| LogThrottle::new(LIMIT_LOG_PERIOD)),
        }
    }

    /// Applies `server.max_calls` and the per-source INVITE limits (None: no limits, the
    /// default for an endpoint built in-process). See [`crate::limits`].
    pub fn set_call_limits(&mut self, limits: Option<CallLimits>) {
        self.limiter = limits.map(SourceLimiter::new);
    }

    /// The per-source limiter, for inspection.
    pub fn limiter(&self) -> Option<&SourceLimiter> {
        self.limiter.as_ref()
    }

    /// Forgets per-source state that no longer limits anyone (refilled buckets).
    pub fn sweep_limits(&mut self, now: Instant) {
        if let Some(limiter) = &mut self.limiter {
            limiter.sweep(now);
        }
    }

    /// True when a live leg's SIP goes over the connection to `peer` (the one its INVITE came
    /// on or went out on, or its dialog's), so that the connection must stay open.
    pub fn carries_dialog(&self, peer: Peer) -> bool {
        self.legs
            .values()
            .any(|l| l.peer == peer || l.dialog().is_some_and(|d| d.peer == peer))
    }

    /// True when a live leg's peer (or its dialog's) has the address `ip`: that party may
    /// send requests in the dialog, over a new connection too.
    pub fn has_leg_with(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.legs.values().any(|l| {
            l.peer.addr.ip().to_canonical() == ip
                || l.dialog()
                    .is_some_and(|d| d.peer.addr.ip().to_canonical() == ip)
        })
    }

    /// Requires digest authentication of new INVITEs on the routes `auth` names (None: of
    /// none). The nonce secret is drawn from the endpoint's id source; nonce ages count from
    /// `now`.
    pub fn set_inbound_auth(&mut self, auth: Option<InboundAuth>, now: Instant) {
        self.auth = auth.map(|config| {
            let secret = self.ids.token(64);
            DigestVerifier::new(config, secret.into_bytes(), now)
        });
    }

    /// Refuse new calls with 503 (shutdown drain).
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// The port of our TLS listener, written into Via and Contact of requests and dialogs on
    /// TLS (without one they carry the TCP port).
    pub fn set_tls_port(&mut self, port: Option<u16>) {
        self.tls_port = port;
    }

    /// Number of live legs.
    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// Live leg ids.
    pub fn legs(&self) -> Vec<LegId> {
        self.legs.keys().copied().collect()
    }

    /// Counters.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// When to call [`Self::handle_timeout`].
    pub fn next_deadline(&self) -> Option<Instant> {
        self.tx.next_deadline()
    }

    /// The leg's original INVITE (inbound: as received; outbound: as sent).
    pub fn invite_of(&self, leg: LegId) -> Option<&Request> {
        self.legs.get(&leg).map(|l| &l.invite)
    }

    /// Feeds one complete message received from `peer`.
    pub fn handle_message(
        &mut self,
        data: &[u8],
        peer: Peer,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let framing = match peer.transport {
            TransportKind::Udp => Framing::Datagram,
            TransportKind::Tcp | TransportKind::Tls => Framing::Stream,
        };
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keepalive
        }
        match parse(data, framing) {
            Ok(SipMessage::Request(req)) => self.handle_request(req, peer, now, out),
            Ok(SipMessage::Response(resp)) => self.handle_response(resp, now, out),
            Err(err) => {
                self.stats.malformed += 1;
                let ids = RawIds::extract(data);
                tracing::debug!(from = %peer.addr, error = %err, "malformed SIP message");
                if ids.can_reply() && !data.starts_with(b"ACK ") {
                    let resp = if err.kind == ParseErrorKind::VersionNotSupported {
                        ids.response(505, "Version Not Supported")
                    } else {
                        ids.response(400, &reason_phrase("Bad Request", &err.reason))
                    };
                    out.push(send(peer, &resp));
                }
            }
        }
    }

    /// Answers a message that exceeds the size cap with 513 when it can be addressed.
    pub fn reject_oversized(&mut self, data: &[u8], peer: Peer, out: &mut Vec<EndpointOutput>) {
        self.stats.malformed += 1;
        let ids = RawIds::extract(data);
        if ids.can_reply() {
            out.push(send(peer, &ids.response(513, "Message Too Large")));
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<EndpointOutput>) {
        self.with_tx(now, out, |ep, scratch| ep.tx.handle_timeout(now, scratch));
    }

    /// Ends a leg from our side: BYE when established, CANCEL when dialling, 480 when
    /// unanswered; before the ACK of our 2xx, BYE as soon as it comes.
    pub fn hangup(&mut self, leg_id: LegId, now: Instant, out: &mut Vec<EndpointOutput>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        match &mut leg.state {
            LegState::Ringing => self.reject(leg_id, 480, "Temporarily Unavailable", now, out),
            LegState::Accepted { bye_after_ack, .. } => *bye_after_ack = true,
            LegState::Dialling(_) => self.cancel(leg_id, now, out),
            LegState::Confirmed(_) => {
                self.with_tx(now, out, |ep, scratch| ep.send_bye(leg_id, now, scratch))
            }
            LegState::Terminating(_) => {}
        }
    }

    fn handle_request(
        &mut self,
        mut req: Request,
        peer: Peer,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        stamp_top_via(&mut req, peer.addr);
        if let Err(err) = validate_request(&req) {
            self.stats.malformed += 1;
            if req.method != Method::Ack && req.headers.get("Via").is_some() {
                let resp =
                    self.response_to(&req, 400, &reason_phrase("Bad Request", &err.reason), None);
                out.push(send(peer, &resp));
            }
            return;
        }
        if req.method == Method::Invite
            && tag_of(req.headers.get("To")).is_none()
            && !self.tx.is_retransmission(&req)
        {
            if let Some(refusal) = self.check_limits(&req, peer, now) {
                out.push(send(peer, &refusal));
                return;
            }
        }
        let disposition = self.with_tx(now, out, |ep, scratch| {
            ep.tx.on_request(&req, peer, now, scratch)
        });
        match disposition {
            RequestDisposition::Absorbed | RequestDisposition::AckAbsorbed => {}
            RequestDisposition::AckForDialog { .. } => self.on_dialog_ack(&req, now, out),
            RequestDisposition::Cancel {
                cancel_tx,
                invite_tx,
                invite_pending,
            } => self.on_cancel(&req, cancel_tx, invite_tx, invite_pending, now, out),
            RequestDisposition::New(id) => {
                if tag_of(req.headers.get("To")).is_some() {
                    self.on_in_dialog_request(req, id, now, out);
                } else {
                    self.on_out_of_dialog_request(req, id, peer, now, out);
                }
            }
        }
    }

    fn handle_response(&mut self, resp: Response, now: Instant, out: &mut Vec<EndpointOutput>) {
        let matched = self.with_tx(now, out, |ep, scratch| {
            ep.tx.on_response(resp, now, scratch)
        });
        if !matched {
            self.stats.stray_responses += 1;
        }
    }

    /// Runs `f` with a scratch buffer for transaction outputs, then turns those outputs into
    /// endpoint outputs (reacting to responses and timeouts on the way).
    fn with_tx<R>(
        &mut self,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
        f: impl FnOnce(&mut Self, &mut Vec<TxOutput>) -> R,
    ) -> R {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = f(self, &mut scratch);
        self.drain_tx_outputs(&mut scratch, now, out);
        self.scratch = scratch;
        result
    }

    /// Turns transaction outputs into endpoint outputs, reacting to responses and timeouts.
    fn drain_tx_outputs(
        &mut self,
        scratch: &mut Vec<TxOutput>,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        // Reactions may create new transaction outputs; loop until none are left.
        while !scratch.is_empty() {
            let batch: Vec<TxOutput> = std::mem::take(scratch);
            for o in batch {
                match o {
                    TxOutput::Send { peer, data } => out.push(EndpointOutput::Send { peer, data }),
                    TxOutput::Response { tx, response } => {
                        self.on_client_response(tx, response, now, scratch, out)
                    }
                    TxOutput::ClientTimeout { tx } => self.on_client_timeout(tx, out),
                    TxOutput::AckTimeout { tx } => self.on_ack_timeout(tx, now, scratch, out),
                }
            }
        }
    }

    fn on_client_response(
        &mut self,
        tx: TxId,
        resp: Response,
        now: Instant,
        scratch: &mut Vec<TxOutput>,
        out: &mut Vec<EndpointOutput>,
    ) {
        let Some(&purpose) = self.client_txs.get(&tx) else {
            return;
        };
        match purpose {
            ClientPurpose::Cancel | ClientPurpose::ForkBye => {
                if resp.status >= 200 {
                    self.client_txs.remove(&tx);
                }
            }
            ClientPurpose::Bye(leg_id) => {
                if resp.status >= 200 {
                    self.client_txs.remove(&tx);
                    self.finish_leg(leg_id, None, out);
                }
            }
            ClientPurpose::ReInvite(leg_id) => {
                self.on_reinvite_response(tx, leg_id, &resp, now, scratch)
            }
            ClientPurpose::Invite(leg_id) => {
                self.on_invite_response(tx, leg_id, resp, now, scratch, out)
            }
        }
    }

    fn on_client_timeout(&mut self, tx: TxId, out: &mut Vec<EndpointOutput>) {
        match self.client_txs.remove(&tx) {
            Some(ClientPurpose::Invite(leg_id)) => self.on_invite_timeout(leg_id, out),
            Some(ClientPurpose::Bye(leg_id)) => self.finish_leg(leg_id, None, out),
            Some(ClientPurpose::ReInvite(leg_id)) => {
                // §14.1: a timed-out re-INVITE means the far end is gone.
                out.push(EndpointOutput::Event(EndpointEvent::Ended {
                    leg: leg_id,
                    reason: EndReason::Timeout,
                }));
                self.finish_leg(leg_id, None, out);
            }
            Some(ClientPurpose::Cancel | ClientPurpose::ForkBye) | None => {}
        }
    }

    /// A fresh leg id.
    fn next_leg_id(&mut self) -> LegId {
        self.next_leg += 1;
        LegId(self.next_leg)
    }

    /// Removes a leg and its index entries; emits `Ended` when a reason is given.
    fn finish_leg(
        &mut self,
        leg_id: LegId,
        reason: Option<EndReason>,
        out: &mut Vec<EndpointOutput>,
    ) {
        let Some(mut leg) = self.legs.remove(&leg_id) else {
            return;
        };
        if let (Some(source), Some(limiter)) = (leg.unconfirmed_from.take(), &mut self.limiter) {
            limiter.call_settled(source);
        }
        if let Some(d) = leg.dialog() {
            self.dialogs
                .remove(&(d.call_id.clone(), d.local_tag.clone()));
        }
        // Transaction ids are unique across server and client transactions, so the INVITE's
        // id can be removed from both indexes whichever direction the leg had.
        self.invite_server_txs.remove(&leg.invite_tx);
        if self.client_txs.get(&leg.invite_tx) == Some(&ClientPurpose::Invite(leg_id)) {
            self.client_txs.remove(&leg.invite_tx);
        }
        if let Some(reason) = reason {
            out.push(EndpointOutput::Event(EndpointEvent::Ended {
                leg: leg_id,
                reason,
            }));
        }
    }

    /// The stateless 503 refusing a new INVITE that breaks a limit, or None when it may go on.
    /// No transaction is kept for a refusal (RFC 3261 §8.2.7): a flood of them costs no state,
    /// and a retransmission of a refused INVITE is simply decided again.
    fn check_limits(&mut self, req: &Request, peer: Peer, now: Instant) -> Option<Response> {
        let limiter = self.limiter.as_mut()?;
        let Admission::Refuse {
            reason,
            retry_after,
        } = limiter.admit(peer.addr.ip(), self.legs.len(), now)
        else {
            return None;
        };
        self.stats.limit_refusals[reason.index()] += 1;
        self.stats.rejected_requests += 1;
        if let Some(held_back) = self.limit_logs[reason.index()].allow(now) {
            let limits = limiter.limits();
            let unconfirmed = limiter.unconfirmed(peer.addr.ip());
            let calls = self.legs.len();
            match reason {
                LimitRefusal::MaxCalls => tracing::warn!(
                    from = %peer.addr, calls, max_calls = limits.max_calls, held_back,
                    "INVITE refused with 503: server.max_calls calls are live"
                ),
                LimitRefusal::SourceUnconfirmed => tracing::warn!(
                    from = %peer.addr, unconfirmed, max = limits.max_unconfirmed_per_source, held_back,
                    "INVITE refused with 503: the source has sip.max_unconfirmed_per_source calls not confirmed yet"
                ),
                LimitRefusal::SourceRate => tracing::warn!(
                    from = %peer.addr, rate = limits.invite_rate_per_source, burst = limits.invite_burst_per_source, held_back,
                    "INVITE refused with 503: the source is over sip.invite_rate_per_source"
                ),
            }
        }
        let tag = self.ids.token(10);
        let mut resp = self.response_to(req, 503, "Service Unavailable", Some(&tag));
        resp.headers.push("Retry-After", retry_after.to_string());
        Some(resp)
    }

    /// The leg's caller no longer has it unconfirmed (ACK of our 2xx, or on its way out).
    fn settle(&mut self, leg_id: LegId) {
        let source = self
            .legs
            .get_mut(&leg_id)
            .and_then(|l| l.unconfirmed_from.take());
        if let (Some(source), Some(limiter)) = (source, &mut self.limiter) {
            limiter.call_settled(source);
        }
    }

    /// Sends a response on a server transaction.
    fn respond(&mut self, tx: TxId, resp: &Response, now: Instant, out: &mut Vec<EndpointOutput>) {
        self.with_tx(now, out, |ep, scratch| {
            ep.tx.respond(tx, resp, now, scratch)
        });
    }
}

fn send(peer: Peer, resp: &Response) -> EndpointOutput {
    EndpointOutput::Send {
        peer,
        data: Bytes::from(resp.to_bytes()),
    }
}
