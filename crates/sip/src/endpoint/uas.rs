//! The answering side: requests outside a dialog (new INVITEs above all), the application's
//! provisional, answer and reject, CANCEL, and the ACK (or its absence) for our 2xx.

use std::time::Instant;

use bytes::Bytes;

use super::build::{reason_phrase, unsupported_requires};
use super::leg::{Leg, LegState, Session};
use super::{EndReason, Endpoint, EndpointEvent, EndpointOutput, LegId, ALLOW};
use crate::auth::AuthDecision;
use crate::dialog::Dialog;
use crate::headers::tag_of;
use crate::message::{Method, Request, Response};
use crate::transaction::{Peer, TxId, TxOutput};

impl Endpoint {
    /// A request without a To tag: a new call, OPTIONS, or something we refuse.
    pub(super) fn on_out_of_dialog_request(
        &mut self,
        req: Request,
        id: TxId,
        peer: Peer,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        match req.method {
            Method::Invite => self.on_new_invite(req, id, peer, now, out),
            // While draining, OPTIONS (a balancer's or trunk's probe) gets 503 like a new
            // INVITE, so that the prober sends new calls elsewhere.
            Method::Options if self.draining => {
                let mut resp = self.response_to(&req, 503, "Service Unavailable", None);
                resp.headers.push("Retry-After", "30");
                self.respond(id, &resp, now, out);
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

    /// A new INVITE: refused while draining or when it requires an extension we lack,
    /// otherwise a new ringing leg the application decides about.
    fn on_new_invite(
        &mut self,
        req: Request,
        id: TxId,
        peer: Peer,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
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
        if let Some(resp) = self.authenticate(&req, peer, now) {
            self.stats.rejected_requests += 1;
            return self.respond(id, &resp, now, out);
        }
        let trying = self.response_to(&req, 100, "Trying", None);
        self.respond(id, &trying, now, out);
        let leg_id = self.next_leg_id();
        let local_tag = self.ids.token(10);
        self.invite_server_txs.insert(id, leg_id);
        let unconfirmed_from = self.limiter.as_mut().map(|limiter| {
            limiter.call_started(peer.addr.ip());
            peer.addr.ip()
        });
        self.legs.insert(
            leg_id,
            Leg {
                invite: req.clone(),
                invite_tx: id,
                peer,
                local_tag,
                state: LegState::Ringing,
                unconfirmed_from,
            },
        );
        out.push(EndpointOutput::Event(EndpointEvent::IncomingCall {
            leg: leg_id,
            invite: Box::new(req),
            peer,
        }));
    }

    /// Digest authentication of a new INVITE whose route requires it (see [`crate::auth`]):
    /// the response refusing it (401 challenge, 403, 400), or None when it may go on. Nothing
    /// has been created for the call yet, so a refused INVITE costs no leg, port or fetch.
    fn authenticate(&mut self, req: &Request, peer: Peer, now: Instant) -> Option<Response> {
        let verifier = self.auth.as_mut()?;
        let user = req.uri_user().unwrap_or_default();
        if !verifier.config().requires_auth(&user) {
            return None;
        }
        let decision = verifier.check(
            req.method.as_str(),
            &req.uri,
            req.headers.get_all("Authorization"),
            now,
        );
        let tag = self.ids.token(10);
        match decision {
            AuthDecision::Authorized { username } => {
                tracing::debug!(from = %peer.addr, %username, %user, "caller authenticated");
                None
            }
            AuthDecision::Challenge {
                stale,
                algorithms,
                why,
            } => {
                tracing::debug!(from = %peer.addr, %user, why, stale, "digest challenge");
                self.stats.auth_challenges += 1;
                let values = self.auth.as_mut()?.challenge(stale, &algorithms, now);
                let mut resp = self.response_to(req, 401, "Unauthorized", Some(&tag));
                for value in values {
                    resp.headers.push("WWW-Authenticate", value);
                }
                Some(resp)
            }
            AuthDecision::Forbidden { why } => {
                tracing::info!(from = %peer.addr, %user, why, "INVITE refused: authentication failed");
                self.stats.auth_refusals += 1;
                Some(self.response_to(req, 403, "Forbidden", Some(&tag)))
            }
            AuthDecision::BadRequest { why } => {
                tracing::info!(from = %peer.addr, %user, why, "INVITE refused: malformed credentials");
                self.stats.auth_refusals += 1;
                let reason = reason_phrase("Bad Request", why);
                Some(self.response_to(req, 400, &reason, Some(&tag)))
            }
        }
    }

    /// An ACK for a 2xx: the first one for our answer confirms the dialog; those for
    /// re-INVITE answers need nothing.
    pub(super) fn on_dialog_ack(
        &mut self,
        req: &Request,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
        let to_tag = tag_of(req.headers.get("To")).unwrap_or_default();
        let Some(&leg_id) = self.dialogs.get(&(call_id, to_tag)) else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let state = std::mem::replace(&mut leg.state, LegState::Ringing);
        let (state, confirmed, bye) = match state {
            LegState::Accepted {
                session,
                bye_after_ack,
            } => (LegState::Confirmed(session), true, bye_after_ack),
            other => (other, false, false),
        };
        leg.state = state;
        if confirmed {
            self.settle(leg_id);
            out.push(EndpointOutput::Event(EndpointEvent::Established {
                leg: leg_id,
            }));
            if bye {
                self.hangup(leg_id, now, out);
            }
        }
    }

    /// Timer L fired on an INVITE server transaction whose 2xx was never acknowledged.
    pub(super) fn on_ack_timeout(
        &mut self,
        tx: TxId,
        now: Instant,
        scratch: &mut Vec<TxOutput>,
        out: &mut Vec<EndpointOutput>,
    ) {
        let accepted = self.invite_server_txs.get(&tx).copied().filter(|leg_id| {
            self.legs
                .get(leg_id)
                .is_some_and(|l| matches!(l.state, LegState::Accepted { .. }))
        });
        if let Some(leg_id) = accepted {
            // §13.3.1.4: no ACK — end the session with a BYE.
            out.push(EndpointOutput::Event(EndpointEvent::Ended {
                leg: leg_id,
                reason: EndReason::AckTimeout,
            }));
            self.send_bye(leg_id, now, scratch);
        }
        self.invite_server_txs.remove(&tx);
    }

    /// A CANCEL: 200 for it, then 487 for the INVITE if that is still unanswered (§9.2).
    pub(super) fn on_cancel(
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
            let resp =
                self.response_to(&leg.invite, 487, "Request Terminated", Some(&leg.local_tag));
            self.respond(invite_tx, &resp, now, out);
        }
        self.finish_leg(leg_id, Some(EndReason::Cancelled), out);
    }

    /// An inbound leg still waiting for its final response: (INVITE transaction, INVITE, our
    /// tag, peer).
    fn unanswered(&self, leg_id: LegId) -> Option<(TxId, Request, String, Peer)> {
        let leg = self.legs.get(&leg_id)?;
        match leg.state {
            LegState::Ringing => Some((
                leg.invite_tx,
                leg.invite.clone(),
                leg.local_tag.clone(),
                leg.peer,
            )),
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
            leg.state = LegState::Accepted {
                session: Session::new(dialog),
                bye_after_ack: false,
            };
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
}
