//! Requests inside a dialog, both ways: the far end's BYE, re-INVITE, OPTIONS, INFO and
//! UPDATE, and our re-INVITE, BYE and ACK.

use std::time::Instant;

use bytes::Bytes;

use super::build::cseq_number;
use super::leg::{LegState, RemoteReinvite};
use super::{ClientPurpose, EndReason, Endpoint, EndpointEvent, EndpointOutput, LegId, ALLOW};
use crate::headers::{name_addrs, tag_of};
use crate::message::{Method, Request, Response};
use crate::transaction::{TxId, TxOutput};

impl Endpoint {
    /// A request with a To tag: it must match one of our dialogs (else 481) and carry a CSeq
    /// above the last one (else 500, §12.2.2).
    pub(super) fn on_in_dialog_request(
        &mut self,
        req: Request,
        id: TxId,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
        let to_tag = tag_of(req.headers.get("To")).unwrap_or_default();
        let from_tag = tag_of(req.headers.get("From")).unwrap_or_default();
        let seq = cseq_number(&req.headers).unwrap_or(0);
        let leg_id = self.dialogs.get(&(call_id, to_tag)).copied().filter(|l| {
            self.legs
                .get(l)
                .and_then(|leg| leg.dialog())
                .is_some_and(|d| d.remote_tag == from_tag)
        });
        let Some(leg_id) = leg_id else {
            self.stats.rejected_requests += 1;
            let resp = self.response_to(&req, 481, "Call/Transaction Does Not Exist", None);
            return self.respond(id, &resp, now, out);
        };
        let seq_ok = self
            .legs
            .get_mut(&leg_id)
            .and_then(|leg| leg.session_mut())
            .is_some_and(|s| s.dialog.accept_remote_seq(seq, &req.method));
        if !seq_ok {
            let resp = self.response_to(&req, 500, "Server Internal Error", None);
            return self.respond(id, &resp, now, out);
        }
        match req.method {
            Method::Bye => {
                // A dialog exists only once a 2xx went out, so no INVITE of ours is left
                // waiting for a final response here.
                let resp = self.response_to(&req, 200, "OK", None);
                self.respond(id, &resp, now, out);
                self.finish_leg(leg_id, Some(EndReason::RemoteBye), out);
            }
            Method::Invite => self.on_remote_reinvite(leg_id, req, id, now, out),
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

    /// A re-INVITE from the far end. While another offer/answer exchange runs in the dialog,
    /// in either direction, it gets 491 Request Pending (RFC 3261 §14.2), and the side that
    /// sent it may try again later (§14.1); otherwise the application gets the offer.
    fn on_remote_reinvite(
        &mut self,
        leg_id: LegId,
        req: Request,
        id: TxId,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let busy = self
            .legs
            .get(&leg_id)
            .and_then(|l| l.session())
            .is_some_and(|s| s.remote_reinvite.is_some() || s.local_reinvite.is_some());
        if busy {
            let resp = self.response_to(&req, 491, "Request Pending", None);
            return self.respond(id, &resp, now, out);
        }
        let trying = self.response_to(&req, 100, "Trying", None);
        self.respond(id, &trying, now, out);
        let offer = req.body.clone();
        if let Some(session) = self.legs.get_mut(&leg_id).and_then(|l| l.session_mut()) {
            // A target refresh (§12.2.2): a new Contact replaces the remote target.
            if let Some(contact) = name_addrs(&req.headers, "Contact").first() {
                session.dialog.remote_target = contact.uri.clone();
            }
            session.remote_reinvite = Some(RemoteReinvite {
                tx: id,
                request: req,
            });
        }
        out.push(EndpointOutput::Event(EndpointEvent::ReInvite {
            leg: leg_id,
            offer,
        }));
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
        let transport = leg.peer.transport;
        let tag = leg.local_tag.clone();
        let Some(RemoteReinvite { tx, request }) =
            leg.session_mut().and_then(|s| s.remote_reinvite.take())
        else {
            return;
        };
        let reason = if status < 300 {
            "OK"
        } else {
            "Not Acceptable Here"
        };
        let mut resp = self.response_to(&request, status, reason, Some(&tag));
        if status < 300 {
            self.add_dialog_headers(&mut resp, &request, transport);
            resp.headers.push("Content-Type", "application/sdp");
            resp.body = sdp;
        }
        self.respond(tx, &resp, now, out);
    }

    /// Sends an in-dialog re-INVITE with a new offer (hold, unhold, address change).
    pub fn reinvite(
        &mut self,
        leg_id: LegId,
        sdp: Bytes,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) {
        let transport = match self.legs.get(&leg_id) {
            Some(leg) if matches!(leg.state, LegState::Confirmed(_)) => leg.peer.transport,
            _ => return,
        };
        let via = self.via(transport);
        let contact = self.contact(transport);
        let Some(session) = self.legs.get_mut(&leg_id).and_then(|l| l.session_mut()) else {
            return;
        };
        let req = session.dialog.request(
            Method::Invite,
            via,
            &contact,
            None,
            Some(("application/sdp", sdp)),
        );
        let peer = session.dialog.peer;
        let id = self.with_tx(now, out, |ep, scratch| {
            ep.tx.send_request(req, peer, now, scratch)
        });
        self.client_txs.insert(id, ClientPurpose::ReInvite(leg_id));
        if let Some(session) = self.legs.get_mut(&leg_id).and_then(|l| l.session_mut()) {
            session.local_reinvite = Some(id);
        }
    }

    /// A response to our re-INVITE: a 2xx gets its ACK; any final response ends the exchange,
    /// so the far end may send its own re-INVITE again.
    pub(super) fn on_reinvite_response(
        &mut self,
        tx: TxId,
        leg_id: LegId,
        resp: &Response,
        now: Instant,
        scratch: &mut Vec<TxOutput>,
    ) {
        if resp.status < 200 {
            return;
        }
        if (200..300).contains(&resp.status) {
            self.send_ack(leg_id, resp, now, scratch);
        }
        self.client_txs.remove(&tx);
        if let Some(session) = self.legs.get_mut(&leg_id).and_then(|l| l.session_mut()) {
            if session.local_reinvite == Some(tx) {
                session.local_reinvite = None;
            }
        }
    }

    /// Sends BYE in the leg's dialog and moves it to `Terminating` (nothing when it has no
    /// dialog or already sent one). Works on the transaction scratch so it can run while
    /// transaction outputs are being drained.
    pub(super) fn send_bye(&mut self, leg_id: LegId, now: Instant, scratch: &mut Vec<TxOutput>) {
        let Some(transport) = self.legs.get(&leg_id).map(|l| l.peer.transport) else {
            return;
        };
        let via = self.via(transport);
        let contact = self.contact(transport);
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        if !leg.start_terminating() {
            return;
        }
        // A leg we hang up before its ACK (timer L, or asked to) is no longer the caller's to
        // confirm.
        let source = leg.unconfirmed_from.take();
        if let (Some(source), Some(limiter)) = (source, &mut self.limiter) {
            limiter.call_settled(source);
        }
        let Some(session) = leg.session_mut() else {
            return;
        };
        let bye = session
            .dialog
            .request(Method::Bye, via, &contact, None, None);
        let peer = session.dialog.peer;
        let id = self.tx.send_request(bye, peer, now, scratch);
        self.client_txs.insert(id, ClientPurpose::Bye(leg_id));
    }

    /// Acknowledges a 2xx to one of our INVITEs in the leg's dialog (§13.2.2.4: the ACK
    /// carries the INVITE's CSeq number and goes end to end, so it is built by the dialog, not
    /// the transaction).
    pub(super) fn send_ack(
        &mut self,
        leg_id: LegId,
        resp: &Response,
        now: Instant,
        scratch: &mut Vec<TxOutput>,
    ) {
        let Some(transport) = self.legs.get(&leg_id).map(|l| l.peer.transport) else {
            return;
        };
        let via = self.via(transport);
        let contact = self.contact(transport);
        let seq = cseq_number(&resp.headers);
        let Some(session) = self.legs.get_mut(&leg_id).and_then(|l| l.session_mut()) else {
            return;
        };
        let ack = session
            .dialog
            .request(Method::Ack, via, &contact, seq, None);
        let peer = session.dialog.peer;
        self.tx.send_request(ack, peer, now, scratch);
    }
}
