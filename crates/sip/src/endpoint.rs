//! The UA core: a sans-IO SIP endpoint that turns datagrams and commands into call-leg events.
//!
//! It owns the transaction layer and every dialog. Incoming INVITEs become
//! [`EndpointEvent::IncomingCall`]; the application answers, rejects or hangs up through
//! methods here; outbound legs are dialled through the configured trunk with digest
//! authentication. OPTIONS, stray BYEs, unknown methods and malformed requests are answered
//! here without involving the application.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::dialog::Dialog;
use crate::digest::Challenge;
use crate::error::ParseErrorKind;
use crate::headers::{tag_of, validate_request, CSeq, UriTarget, BRANCH_COOKIE};
use crate::message::{
    parse, truncate, Framing, Headers, Method, RawIds, Request, Response, SipMessage,
};
use crate::transaction::{
    Peer, RequestDisposition, TimerConfig, TransactionLayer, TransportKind, TxId, TxOutput,
};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// Inbound, not answered yet.
    Incoming,
    /// Inbound, 2xx sent, waiting for ACK.
    Answered,
    /// Outbound, INVITE sent, no final answer yet.
    Dialing,
    /// Dialog confirmed.
    Confirmed,
    /// BYE sent or received; waiting for transactions to finish.
    Ending,
}

#[derive(Debug)]
struct Leg {
    state: LegState,
    invite: Request,
    invite_tx: Option<TxId>,
    peer: Peer,
    dialog: Option<Dialog>,
    local_tag: String,
    reinvite_tx: Option<TxId>,
    /// Hang up as soon as the ACK arrives (hangup requested while waiting for it).
    bye_after_ack: bool,
    /// Outbound: credentials already tried once.
    auth_tried: bool,
    /// Outbound: CANCEL sent.
    cancelled: bool,
}

impl Leg {
    fn new(
        state: LegState,
        invite: Request,
        invite_tx: TxId,
        peer: Peer,
        local_tag: String,
    ) -> Leg {
        Leg {
            state,
            invite,
            invite_tx: Some(invite_tx),
            peer,
            dialog: None,
            local_tag,
            reinvite_tx: None,
            bye_after_ack: false,
            auth_tried: false,
            cancelled: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientPurpose {
    Invite(LegId),
    Bye(LegId),
    Cancel,
    ReInvite(LegId),
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
}

/// The sans-IO SIP endpoint.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    tx: TransactionLayer,
    legs: HashMap<LegId, Leg>,
    /// (Call-ID, our tag) → leg.
    dialogs: HashMap<(String, String), LegId>,
    invite_server_txs: HashMap<TxId, LegId>,
    client_txs: HashMap<TxId, ClientPurpose>,
    next_leg: u64,
    draining: bool,
    stats: EndpointStats,
    scratch: Vec<TxOutput>,
}

impl Endpoint {
    /// A new endpoint.
    pub fn new(config: EndpointConfig) -> Self {
        Endpoint {
            tx: TransactionLayer::new(config.timers),
            config,
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            invite_server_txs: HashMap::new(),
            client_txs: HashMap::new(),
            next_leg: 0,
            draining: false,
            stats: EndpointStats::default(),
            scratch: Vec::new(),
        }
    }

    /// Refuse new calls with 503 (shutdown drain).
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
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
            TransportKind::Tcp => Framing::Stream,
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
                if ids.can_reply() && !is_ack_line(data) {
                    let resp = if err.kind == ParseErrorKind::VersionNotSupported {
                        ids.response(505, "Version Not Supported")
                    } else {
                        ids.response(400, &reason_phrase("Bad Request", &err.reason))
                    };
                    out.push(EndpointOutput::Send {
                        peer,
                        data: Bytes::from(resp.to_bytes()),
                    });
                }
            }
        }
    }

    /// Answers a message that exceeds the size cap with 513 when it can be addressed.
    pub fn reject_oversized(&mut self, data: &[u8], peer: Peer, out: &mut Vec<EndpointOutput>) {
        self.stats.malformed += 1;
        let ids = RawIds::extract(data);
        if ids.can_reply() {
            let resp = ids.response(513, "Message Too Large");
            out.push(EndpointOutput::Send {
                peer,
                data: Bytes::from(resp.to_bytes()),
            });
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<EndpointOutput>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.tx.handle_timeout(now, &mut scratch);
        self.drain_tx_outputs(&mut scratch, now, out);
        self.scratch = scratch;
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
        let mut scratch = std::mem::take(&mut self.scratch);
        let disposition = self.tx.on_request(&req, peer, now, &mut scratch);
        self.drain_tx_outputs(&mut scratch, now, out);
        self.scratch = scratch;
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

    fn on_out_of_dialog_request(
        &mut self,
        req: Request,
        id: TxId,
        peer: Peer,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        match req.method {
            Method::Invite => {
                if self.draining {
                    let mut resp = self.response_to(&req, 503, "Service Unavailable", None);
                    resp.headers.push("Retry-After", "30");
                    self.stats.rejected_requests += 1;
                    return self.respond(id, &resp, now, out);
                }
                if let Some(unsupported) = unsupported_requires(&req.headers) {
                    let mut resp = self.response_to(&req, 420, "Bad Extension", None);
                    resp.headers.push("Unsupported", unsupported);
                    self.stats.rejected_requests += 1;
                    return self.respond(id, &resp, now, out);
                }
                let trying = self.response_to(&req, 100, "Trying", None);
                self.respond(id, &trying, now, out);
                self.next_leg += 1;
                let leg_id = LegId(self.next_leg);
                let local_tag = new_token(10);
                self.invite_server_txs.insert(id, leg_id);
                self.legs.insert(
                    leg_id,
                    Leg::new(LegState::Incoming, req.clone(), id, peer, local_tag),
                );
                out.push(EndpointOutput::Event(EndpointEvent::IncomingCall {
                    leg: leg_id,
                    invite: Box::new(req),
                    peer,
                }));
            }
            Method::Options => {
                let mut resp = self.response_to(&req, 200, "OK", None);
                resp.headers.push("Allow", ALLOW);
                resp.headers.push("Accept", "application/sdp");
                self.respond(id, &resp, now, out);
            }
            Method::Bye | Method::Info | Method::Update | Method::Prack => {
                self.stats.rejected_requests += 1;
                let resp = self.response_to(&req, 481, "Call/Transaction Does Not Exist", None);
                self.respond(id, &resp, now, out);
            }
            _ => {
                self.stats.rejected_requests += 1;
                let mut resp = self.response_to(&req, 405, "Method Not Allowed", None);
                resp.headers.push("Allow", ALLOW);
                self.respond(id, &resp, now, out);
            }
        }
    }

    fn on_in_dialog_request(
        &mut self,
        req: Request,
        id: TxId,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
        let to_tag = tag_of(req.headers.get("To")).unwrap_or_default();
        let from_tag = tag_of(req.headers.get("From")).unwrap_or_default();
        let leg_id = self.dialogs.get(&(call_id, to_tag)).copied();
        let seq = req
            .headers
            .get("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map_or(0, |c| c.seq);
        let Some(leg_id) = leg_id.filter(|l| {
            self.legs
                .get(l)
                .and_then(|leg| leg.dialog.as_ref())
                .is_some_and(|d| d.remote_tag == from_tag)
        }) else {
            self.stats.rejected_requests += 1;
            let resp = self.response_to(&req, 481, "Call/Transaction Does Not Exist", None);
            return self.respond(id, &resp, now, out);
        };
        let seq_ok = self
            .legs
            .get_mut(&leg_id)
            .and_then(|leg| leg.dialog.as_mut())
            .is_some_and(|d| d.accept_remote_seq(seq, &req.method));
        if !seq_ok {
            let resp = self.response_to(&req, 500, "Server Internal Error", None);
            return self.respond(id, &resp, now, out);
        }
        match req.method {
            Method::Bye => {
                let resp = self.response_to(&req, 200, "OK", None);
                self.respond(id, &resp, now, out);
                let pending_invite = self.legs.get(&leg_id).and_then(|l| l.invite_tx);
                if let Some(inv) = pending_invite.filter(|t| self.tx.server_pending(*t)) {
                    // BYE on an early dialog: the INVITE still needs a final answer (§15.1.2).
                    if let Some(leg) = self.legs.get(&leg_id) {
                        let resp =
                            self.response_to(&leg.invite.clone(), 487, "Request Terminated", None);
                        self.respond(inv, &resp, now, out);
                    }
                }
                self.finish_leg(leg_id, Some(EndReason::RemoteBye), out);
            }
            Method::Invite => {
                let busy = self
                    .legs
                    .get(&leg_id)
                    .is_some_and(|l| l.reinvite_tx.is_some());
                if busy {
                    let resp = self.response_to(&req, 491, "Request Pending", None);
                    return self.respond(id, &resp, now, out);
                }
                let trying = self.response_to(&req, 100, "Trying", None);
                self.respond(id, &trying, now, out);
                if let Some(leg) = self.legs.get_mut(&leg_id) {
                    leg.reinvite_tx = Some(id);
                    leg.invite = req.clone();
                    // A target refresh (§12.2.2): a new Contact replaces the remote target.
                    if let (Some(d), Some(c)) = (
                        leg.dialog.as_mut(),
                        crate::headers::name_addrs(&req.headers, "Contact").first(),
                    ) {
                        d.remote_target = c.uri.clone();
                    }
                }
                out.push(EndpointOutput::Event(EndpointEvent::ReInvite {
                    leg: leg_id,
                    offer: req.body.clone(),
                }));
            }
            Method::Options | Method::Info => {
                let resp = self.response_to(&req, 200, "OK", None);
                self.respond(id, &resp, now, out);
            }
            Method::Update if req.body.is_empty() => {
                // Session refresh without a new offer (RFC 4028 style).
                let resp = self.response_to(&req, 200, "OK", None);
                self.respond(id, &resp, now, out);
            }
            Method::Update => {
                let resp = self.response_to(&req, 488, "Not Acceptable Here", None);
                self.respond(id, &resp, now, out);
            }
            _ => {
                let mut resp = self.response_to(&req, 405, "Method Not Allowed", None);
                resp.headers.push("Allow", ALLOW);
                self.respond(id, &resp, now, out);
            }
        }
    }

    fn on_dialog_ack(&mut self, req: &Request, now: Instant, out: &mut Vec<EndpointOutput>) {
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
        let to_tag = tag_of(req.headers.get("To")).unwrap_or_default();
        let Some(&leg_id) = self.dialogs.get(&(call_id, to_tag)) else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        if leg.state == LegState::Answered {
            leg.state = LegState::Confirmed;
            out.push(EndpointOutput::Event(EndpointEvent::Established {
                leg: leg_id,
            }));
            if leg.bye_after_ack {
                self.hangup(leg_id, now, out);
            }
        }
    }

    fn on_cancel(
        &mut self,
        req: &Request,
        cancel_tx: TxId,
        invite_tx: Option<TxId>,
        invite_pending: bool,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let Some(invite_tx) = invite_tx else {
            let resp = self.response_to(req, 481, "Call/Transaction Does Not Exist", None);
            return self.respond(cancel_tx, &resp, now, out);
        };
        let ok = self.response_to(req, 200, "OK", None);
        self.respond(cancel_tx, &ok, now, out);
        if !invite_pending {
            return; // already answered: the CANCEL has no effect (§9.2)
        }
        let Some(&leg_id) = self.invite_server_txs.get(&invite_tx) else {
            return;
        };
        if let Some(leg) = self.legs.get(&leg_id) {
            let invite = leg.invite.clone();
            let tag = leg.local_tag.clone();
            let resp = self.response_to(&invite, 487, "Request Terminated", Some(&tag));
            self.respond(invite_tx, &resp, now, out);
        }
        self.finish_leg(leg_id, Some(EndReason::Cancelled), out);
    }

    /// An inbound leg still waiting for its final response: (INVITE transaction, INVITE, our tag, peer).
    fn unanswered(&self, leg_id: LegId) -> Option<(TxId, Request, String, Peer)> {
        let leg = self.legs.get(&leg_id)?;
        match (leg.invite_tx, leg.state) {
            (Some(tx), LegState::Incoming) => {
                Some((tx, leg.invite.clone(), leg.local_tag.clone(), leg.peer))
            }
            _ => None,
        }
    }

    /// Sends 180 Ringing (or 183 with SDP for early media) on an inbound leg.
    pub fn provisional(
        &mut self,
        leg_id: LegId,
        status: u16,
        sdp: Option<Bytes>,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let Some((tx, invite, tag, peer)) = self.unanswered(leg_id) else {
            return;
        };
        let reason = if status == 180 {
            "Ringing"
        } else {
            "Session Progress"
        };
        let mut resp = self.response_to(&invite, status, reason, Some(&tag));
        self.add_dialog_headers(&mut resp, &invite, peer.transport);
        if let Some(sdp) = sdp {
            resp.headers.push("Content-Type", "application/sdp");
            resp.body = sdp;
        }
        self.respond(tx, &resp, now, out);
    }

    /// Answers an inbound leg with 200 OK and our SDP.
    pub fn answer(
        &mut self,
        leg_id: LegId,
        sdp: Bytes,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let Some((tx, invite, tag, peer)) = self.unanswered(leg_id) else {
            return;
        };
        if !self.tx.server_pending(tx) {
            return;
        }
        let mut resp = self.response_to(&invite, 200, "OK", Some(&tag));
        self.add_dialog_headers(&mut resp, &invite, peer.transport);
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = sdp;
        self.respond(tx, &resp, now, out);
        let dialog = Dialog::from_incoming_invite(&invite, &tag, peer);
        self.dialogs.insert((dialog.call_id.clone(), tag), leg_id);
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.dialog = Some(dialog);
            leg.state = LegState::Answered;
        }
    }

    /// Refuses an inbound leg that has not been answered.
    pub fn reject(
        &mut self,
        leg_id: LegId,
        status: u16,
        reason: &str,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let Some((tx, invite, tag, _)) = self.unanswered(leg_id) else {
            return;
        };
        let resp = self.response_to(&invite, status.clamp(300, 699), reason, Some(&tag));
        self.respond(tx, &resp, now, out);
        self.finish_leg(leg_id, None, out);
    }

    /// Answers a pending re-INVITE with our SDP (2xx) or refuses it (status >= 300).
    pub fn answer_reinvite(
        &mut self,
        leg_id: LegId,
        status: u16,
        sdp: Bytes,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(tx) = leg.reinvite_tx.take() else {
            return;
        };
        let (invite, tag, transport) = (
            leg.invite.clone(),
            leg.local_tag.clone(),
            leg.peer.transport,
        );
        let reason = if status < 300 {
            "OK"
        } else {
            "Not Acceptable Here"
        };
        let mut resp = self.response_to(&invite, status, reason, Some(&tag));
        if status < 300 {
            self.add_dialog_headers(&mut resp, &invite, transport);
            resp.headers.push("Content-Type", "application/sdp");
            resp.body = sdp;
        }
        self.respond(tx, &resp, now, out);
    }

    /// Ends a leg from our side: BYE when established, CANCEL when dialling, 480 when unanswered.
    pub fn hangup(&mut self, leg_id: LegId, now: Instant, out: &mut Vec<EndpointOutput>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        match leg.state {
            LegState::Incoming => {
                self.reject(leg_id, 480, "Temporarily Unavailable", now, out);
            }
            LegState::Answered => leg.bye_after_ack = true,
            LegState::Dialing => {
                if leg.cancelled {
                    return;
                }
                leg.cancelled = true;
                let cancel = cancel_for(&leg.invite);
                let peer = leg.peer;
                let mut scratch = std::mem::take(&mut self.scratch);
                let id = self.tx.send_request(cancel, peer, now, &mut scratch);
                self.client_txs.insert(id, ClientPurpose::Cancel);
                self.drain_tx_outputs(&mut scratch, now, out);
                self.scratch = scratch;
            }
            LegState::Confirmed => {
                let mut scratch = std::mem::take(&mut self.scratch);
                self.hangup_into(leg_id, now, &mut scratch);
                self.drain_tx_outputs(&mut scratch, now, out);
                self.scratch = scratch;
            }
            LegState::Ending => {}
        }
    }

    /// Sends an in-dialog re-INVITE with a new offer (hold, unhold, address change).
    pub fn reinvite(
        &mut self,
        leg_id: LegId,
        sdp: Bytes,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let via = match self.legs.get(&leg_id) {
            Some(leg) if leg.state == LegState::Confirmed => self.via(leg.peer.transport),
            _ => return,
        };
        let transport = self
            .legs
            .get(&leg_id)
            .map_or(TransportKind::Udp, |l| l.peer.transport);
        let contact = self.contact(transport);
        let Some(dialog) = self.legs.get_mut(&leg_id).and_then(|l| l.dialog.as_mut()) else {
            return;
        };
        let req = dialog.request(
            Method::Invite,
            via,
            &contact,
            None,
            Some(("application/sdp", sdp)),
        );
        let peer = dialog.peer;
        let mut scratch = std::mem::take(&mut self.scratch);
        let id = self.tx.send_request(req, peer, now, &mut scratch);
        self.client_txs.insert(id, ClientPurpose::ReInvite(leg_id));
        self.drain_tx_outputs(&mut scratch, now, out);
        self.scratch = scratch;
    }

    /// Dials `to_uri` through the trunk with an SDP offer. Returns None without a usable trunk.
    pub fn dial(
        &mut self,
        to_uri: &str,
        from_user: &str,
        sdp: Bytes,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) -> Option<LegId> {
        let trunk = self.config.trunk.clone()?;
        let target = UriTarget::parse(&trunk.uri)?;
        let transport = match target.transport.as_deref() {
            Some("TCP") => TransportKind::Tcp,
            _ => TransportKind::Udp,
        };
        let addr = target.socket_addr()?;
        let peer = Peer { addr, transport };
        let local_tag = new_token(10);
        let call_id = format!("{}@{}", new_token(20), self.config.advertised_host);
        let mut headers = Headers::default();
        headers.push("Via", self.via(transport));
        headers.push("Max-Forwards", "70");
        headers.push(
            "From",
            format!(
                "<sip:{from_user}@{}>;tag={local_tag}",
                self.config.advertised_host
            ),
        );
        headers.push("To", format!("<{to_uri}>"));
        headers.push("Call-ID", call_id);
        headers.push("CSeq", "1 INVITE");
        headers.push("Contact", self.contact(transport));
        headers.push("Allow", ALLOW);
        headers.push("User-Agent", self.config.user_agent.clone());
        headers.push("Content-Type", "application/sdp");
        let invite = Request {
            method: Method::Invite,
            uri: to_uri.to_string(),
            headers,
            body: sdp,
        };
        self.next_leg += 1;
        let leg_id = LegId(self.next_leg);
        let mut scratch = std::mem::take(&mut self.scratch);
        let id = self
            .tx
            .send_request(invite.clone(), peer, now, &mut scratch);
        self.client_txs.insert(id, ClientPurpose::Invite(leg_id));
        self.legs.insert(
            leg_id,
            Leg::new(LegState::Dialing, invite, id, peer, local_tag),
        );
        self.drain_tx_outputs(&mut scratch, now, out);
        self.scratch = scratch;
        Some(leg_id)
    }

    fn handle_response(&mut self, resp: Response, now: Instant, out: &mut Vec<EndpointOutput>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if !self.tx.on_response(resp, now, &mut scratch) {
            self.stats.stray_responses += 1;
        }
        self.drain_tx_outputs(&mut scratch, now, out);
        self.scratch = scratch;
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
                    TxOutput::AckTimeout { tx } => {
                        if let Some(leg_id) = self.invite_server_txs.get(&tx).copied() {
                            if self
                                .legs
                                .get(&leg_id)
                                .is_some_and(|l| l.state == LegState::Answered)
                            {
                                // §13.3.1.4: no ACK — end the session with a BYE.
                                if let Some(leg) = self.legs.get_mut(&leg_id) {
                                    leg.state = LegState::Confirmed;
                                }
                                out.push(EndpointOutput::Event(EndpointEvent::Ended {
                                    leg: leg_id,
                                    reason: EndReason::AckTimeout,
                                }));
                                self.hangup_into(leg_id, now, scratch);
                            }
                        }
                        self.invite_server_txs.remove(&tx);
                    }
                }
            }
        }
    }

    /// BYE without re-entering drain (used from inside it).
    fn hangup_into(&mut self, leg_id: LegId, now: Instant, scratch: &mut Vec<TxOutput>) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let transport = leg.peer.transport;
        let via = self.via(transport);
        let contact = self.contact(transport);
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.state = LegState::Ending;
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let bye = dialog.request(Method::Bye, via, &contact, None, None);
        let peer = dialog.peer;
        let id = self.tx.send_request(bye, peer, now, scratch);
        self.client_txs.insert(id, ClientPurpose::Bye(leg_id));
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
            ClientPurpose::Cancel => {
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
                if resp.status >= 200 {
                    if (200..300).contains(&resp.status) {
                        self.send_ack(leg_id, &resp, now, scratch);
                    }
                    self.client_txs.remove(&tx);
                }
            }
            ClientPurpose::Invite(leg_id) => {
                self.on_invite_response(tx, leg_id, resp, now, scratch, out)
            }
        }
    }

    fn on_invite_response(
        &mut self,
        tx: TxId,
        leg_id: LegId,
        resp: Response,
        now: Instant,
        scratch: &mut Vec<TxOutput>,
        out: &mut Vec<EndpointOutput>,
    ) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        match resp.status {
            100 => {}
            101..=199 => out.push(EndpointOutput::Event(EndpointEvent::OutboundProgress {
                leg: leg_id,
                status: resp.status,
                sdp: resp.body.clone(),
            })),
            200..=299 => {
                if leg.dialog.is_some() {
                    // A retransmitted 2xx: our ACK was lost.
                    self.send_ack(leg_id, &resp, now, scratch);
                    return;
                }
                let dialog = Dialog::from_outgoing_invite(&leg.invite, &resp, leg.peer);
                self.dialogs
                    .insert((dialog.call_id.clone(), dialog.local_tag.clone()), leg_id);
                leg.dialog = Some(dialog);
                leg.state = LegState::Confirmed;
                let cancelled = leg.cancelled;
                self.send_ack(leg_id, &resp, now, scratch);
                if cancelled {
                    // The 2xx crossed our CANCEL: the call is up, so end it properly.
                    self.hangup_into(leg_id, now, scratch);
                } else {
                    out.push(EndpointOutput::Event(EndpointEvent::OutboundAnswered {
                        leg: leg_id,
                        sdp: resp.body.clone(),
                    }));
                }
            }
            401 | 407 if !leg.auth_tried && !leg.cancelled => {
                leg.auth_tried = true;
                if let Some(retry) = self.authorized_retry(leg_id, &resp) {
                    let peer = leg_peer(&self.legs, leg_id);
                    self.client_txs.remove(&tx);
                    let id = self.tx.send_request(retry.clone(), peer, now, scratch);
                    self.client_txs.insert(id, ClientPurpose::Invite(leg_id));
                    if let Some(leg) = self.legs.get_mut(&leg_id) {
                        leg.invite = retry;
                        leg.invite_tx = Some(id);
                    }
                } else {
                    self.fail_outbound(tx, leg_id, resp.status, &resp.reason, out);
                }
            }
            status => self.fail_outbound(tx, leg_id, status, &resp.reason.clone(), out),
        }
    }

    fn fail_outbound(
        &mut self,
        tx: TxId,
        leg_id: LegId,
        status: u16,
        reason: &str,
        out: &mut Vec<EndpointOutput>,
    ) {
        self.client_txs.remove(&tx);
        let cancelled = self.legs.get(&leg_id).is_some_and(|l| l.cancelled);
        self.finish_leg(leg_id, None, out);
        if !cancelled {
            out.push(EndpointOutput::Event(EndpointEvent::OutboundFailed {
                leg: leg_id,
                status,
                reason: reason.to_string(),
            }));
        }
    }

    fn authorized_retry(&self, leg_id: LegId, resp: &Response) -> Option<Request> {
        let trunk = self
            .config
            .trunk
            .as_ref()
            .filter(|t| !t.username.is_empty())?;
        let leg = self.legs.get(&leg_id)?;
        let (challenge_header, answer_header) = if resp.status == 407 {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let challenge = Challenge::parse(resp.headers.get(challenge_header)?).ok()?;
        let mut retry = leg.invite.clone();
        let seq = retry
            .headers
            .get("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map_or(1, |c| c.seq)
            + 1;
        retry.headers.set("CSeq", format!("{seq} INVITE"));
        let via = self.via(leg.peer.transport);
        let mut headers = Headers::default();
        headers.push("Via", via);
        for h in retry
            .headers
            .0
            .iter()
            .filter(|h| !h.name.eq_ignore_ascii_case("Via"))
        {
            headers.push(h.name.clone(), h.value.clone());
        }
        let auth = challenge.authorize(
            "INVITE",
            &retry.uri,
            &trunk.username,
            &trunk.password,
            &new_token(16),
        );
        headers.push(answer_header, auth);
        retry.headers = headers;
        Some(retry)
    }

    fn on_client_timeout(&mut self, tx: TxId, out: &mut Vec<EndpointOutput>) {
        match self.client_txs.remove(&tx) {
            Some(ClientPurpose::Invite(leg_id)) => {
                let cancelled = self.legs.get(&leg_id).is_some_and(|l| l.cancelled);
                self.finish_leg(leg_id, None, out);
                if !cancelled {
                    out.push(EndpointOutput::Event(EndpointEvent::OutboundFailed {
                        leg: leg_id,
                        status: 408,
                        reason: "Request Timeout".into(),
                    }));
                }
            }
            Some(ClientPurpose::Bye(leg_id)) => self.finish_leg(leg_id, None, out),
            Some(ClientPurpose::ReInvite(leg_id)) => {
                // §14.1: a timed-out re-INVITE means the far end is gone.
                out.push(EndpointOutput::Event(EndpointEvent::Ended {
                    leg: leg_id,
                    reason: EndReason::Timeout,
                }));
                self.finish_leg(leg_id, None, out);
            }
            Some(ClientPurpose::Cancel) | None => {}
        }
    }

    fn send_ack(
        &mut self,
        leg_id: LegId,
        resp: &Response,
        now: Instant,
        scratch: &mut Vec<TxOutput>,
    ) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let transport = leg.peer.transport;
        let via = self.via(transport);
        let contact = self.contact(transport);
        let seq = resp
            .headers
            .get("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map(|c| c.seq);
        let Some(dialog) = self.legs.get_mut(&leg_id).and_then(|l| l.dialog.as_mut()) else {
            return;
        };
        let ack = dialog.request(Method::Ack, via, &contact, seq, None);
        let peer = dialog.peer;
        self.tx.send_request(ack, peer, now, scratch);
    }

    /// Removes a leg; emits `Ended` when a reason is given.
    fn finish_leg(
        &mut self,
        leg_id: LegId,
        reason: Option<EndReason>,
        out: &mut Vec<EndpointOutput>,
    ) {
        if let Some(leg) = self.legs.remove(&leg_id) {
            if let Some(d) = &leg.dialog {
                self.dialogs
                    .remove(&(d.call_id.clone(), d.local_tag.clone()));
            }
            if let Some(tx) = leg.invite_tx {
                self.invite_server_txs.remove(&tx);
            }
            if let Some(reason) = reason {
                out.push(EndpointOutput::Event(EndpointEvent::Ended {
                    leg: leg_id,
                    reason,
                }));
            }
        }
    }

    fn respond(&mut self, tx: TxId, resp: &Response, now: Instant, out: &mut Vec<EndpointOutput>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.tx.respond(tx, resp, now, &mut scratch);
        self.drain_tx_outputs(&mut scratch, now, out);
        self.scratch = scratch;
    }

    /// A response to `req` with the mandatory headers copied (§8.2.6.2); Via lines verbatim,
    /// plus `received`/`rport` on the top one when asked (RFC 3581) — filled in by the shell,
    /// which knows the source address.
    fn response_to(
        &self,
        req: &Request,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Response {
        let mut headers = Headers::default();
        for via in req.headers.get_all("Via") {
            headers.push("Via", via);
        }
        for name in ["From", "Call-ID", "CSeq"] {
            if let Some(v) = req.headers.get(name) {
                headers.push(name, v);
            }
        }
        let to = req.headers.get("To").unwrap_or_default();
        let to = match to_tag {
            Some(tag) if status > 100 && tag_of(Some(to)).is_none() => format!("{to};tag={tag}"),
            _ => to.to_string(),
        };
        headers.push("To", to);
        headers.push("Server", self.config.user_agent.clone());
        Response {
            status,
            reason: reason.to_string(),
            headers,
            body: Bytes::new(),
        }
    }

    fn add_dialog_headers(&self, resp: &mut Response, invite: &Request, transport: TransportKind) {
        for rr in invite.headers.get_all("Record-Route") {
            resp.headers.push("Record-Route", rr);
        }
        resp.headers.push("Contact", self.contact(transport));
        resp.headers.push("Allow", ALLOW);
    }

    fn port_for(&self, transport: TransportKind) -> u16 {
        match transport {
            TransportKind::Udp => self.config.udp_port.or(self.config.tcp_port),
            TransportKind::Tcp => self.config.tcp_port.or(self.config.udp_port),
        }
        .unwrap_or(5060)
    }

    fn host_for_uri(&self) -> String {
        if self.config.advertised_host.contains(':') {
            format!("[{}]", self.config.advertised_host)
        } else {
            self.config.advertised_host.clone()
        }
    }

    fn via(&self, transport: TransportKind) -> String {
        format!(
            "SIP/2.0/{} {}:{};branch={BRANCH_COOKIE}{};rport",
            transport.via_token(),
            self.host_for_uri(),
            self.port_for(transport),
            new_token(16)
        )
    }

    fn contact(&self, transport: TransportKind) -> String {
        let t = match transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:huddle@{}:{}{t}>",
            self.host_for_uri(),
            self.port_for(transport)
        )
    }

    /// The leg's original INVITE (inbound: as received; outbound: as sent).
    pub fn invite_of(&self, leg: LegId) -> Option<&Request> {
        self.legs.get(&leg).map(|l| &l.invite)
    }
}

fn leg_peer(legs: &HashMap<LegId, Leg>, leg: LegId) -> Peer {
    legs.get(&leg).map_or(
        Peer {
            addr: SocketAddr::from(([127, 0, 0, 1], 5060)),
            transport: TransportKind::Udp,
        },
        |l| l.peer,
    )
}

/// RFC 3581 / RFC 3261 §18.2.1: record where the request really came from in its top Via, so
/// responses copied from it tell NATed senders their public address.
fn stamp_top_via(req: &mut Request, source: SocketAddr) {
    let Some(first) = req
        .headers
        .0
        .iter_mut()
        .find(|h| h.name.eq_ignore_ascii_case("Via"))
    else {
        return;
    };
    let value = first.value.clone();
    let element = crate::message::split_header_list(&value)
        .next()
        .unwrap_or("")
        .to_string();
    let Ok(via) = crate::headers::Via::parse(&element) else {
        return;
    };
    let mut stamped = String::with_capacity(element.len() + 40);
    for (i, part) in element.split(';').enumerate() {
        let key = part.split('=').next().unwrap_or("").trim();
        if i > 0 && (key.eq_ignore_ascii_case("rport") || key.eq_ignore_ascii_case("received")) {
            continue;
        }
        if i > 0 {
            stamped.push(';');
        }
        stamped.push_str(part);
    }
    if via.host != source.ip().to_string() || via.rport.is_some() {
        stamped.push_str(&format!(";received={}", source.ip()));
    }
    if via.rport.is_some() {
        stamped.push_str(&format!(";rport={}", source.port()));
    }
    first.value = value.replacen(&element, &stamped, 1);
}

fn send(peer: Peer, resp: &Response) -> EndpointOutput {
    EndpointOutput::Send {
        peer,
        data: Bytes::from(resp.to_bytes()),
    }
}

fn is_ack_line(data: &[u8]) -> bool {
    data.starts_with(b"ACK ")
}

/// Option tags of `Require` we do not support (we support none but `timer` refreshes).
fn unsupported_requires(headers: &Headers) -> Option<String> {
    let tags: Vec<&str> = headers
        .elements("Require")
        .into_iter()
        .filter(|t| !t.eq_ignore_ascii_case("timer"))
        .collect();
    (!tags.is_empty()).then(|| tags.join(", "))
}

/// A reason phrase with detail, safe for a status line (no CR/LF, bounded length).
fn reason_phrase(base: &str, detail: &str) -> String {
    let detail: String = truncate(detail, 100)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{base} ({detail})")
}

/// Builds the CANCEL for a pending INVITE (§9.1): same Request-URI, top Via, From, To, Call-ID,
/// Route, and CSeq number.
pub fn cancel_for(invite: &Request) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.elements("Via").first() {
        headers.push("Via", *via);
    }
    for route in invite.headers.get_all("Route") {
        headers.push("Route", route);
    }
    headers.push("Max-Forwards", "70");
    for name in ["From", "To", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            headers.push(name, v);
        }
    }
    let seq = invite
        .headers
        .get("CSeq")
        .and_then(|c| CSeq::parse(c).ok())
        .map_or(1, |c| c.seq);
    headers.push("CSeq", format!("{seq} CANCEL"));
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        headers,
        body: Bytes::new(),
    }
}

/// A random token for tags, branches and Call-IDs.
pub fn new_token(len: usize) -> String {
    let mut s = uuid::Uuid::new_v4().simple().to_string();
    s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    s.truncate(len.min(64));
    s
}
