//! The calling side: outbound legs through the trunk, digest challenges, CANCEL, and the 2xx
//! that come back (first, retransmitted, forked, or crossing our CANCEL).

use std::time::Instant;

use bytes::Bytes;

use super::build::{cancel_for, cseq_number};
use super::leg::{Dialling, Leg, LegState, Session};
use super::{ClientPurpose, Endpoint, EndpointEvent, EndpointOutput, LegId, ALLOW};
use crate::address::OutboundCall;
use crate::dialog::Dialog;
use crate::digest::Challenge;
use crate::headers::{tag_of, UriTarget};
use crate::message::{Headers, Method, Request, Response};
use crate::transaction::{Peer, TxId, TxOutput};

impl Endpoint {
    /// Dials `to_uri` through the trunk with an SDP offer, from `from_user` (see
    /// [`Endpoint::dial_call`]). Returns None when either address is unusable.
    pub fn dial(
        &mut self,
        to_uri: &str,
        from_user: &str,
        sdp: Bytes,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) -> Option<LegId> {
        let call = OutboundCall::new(to_uri, from_user).ok()?;
        self.dial_call(&call, sdp, now, out)
    }

    /// Dials `call` through the trunk with an SDP offer: a number goes on the trunk's host,
    /// a URI as it is; the INVITE goes to the trunk either way. Returns None without a usable
    /// trunk, or when `server.max_calls` legs are live.
    pub fn dial_call(
        &mut self,
        call: &OutboundCall,
        sdp: Bytes,
        now: Instant,
        out: &mut Vec<EndpointOutput>,
    ) -> Option<LegId> {
        let trunk = self.config.trunk.clone()?;
        if let Some(limits) = self.limiter.as_ref().map(|l| l.limits()) {
            if self.legs.len() >= limits.max_calls {
                tracing::warn!(
                    calls = self.legs.len(),
                    max_calls = limits.max_calls,
                    "not dialling: server.max_calls calls are live"
                );
                return None;
            }
        }
        let target = UriTarget::parse(&trunk.uri)?;
        let transport = target.transport_kind();
        let addr = target.socket_addr()?;
        let peer = Peer { addr, transport };
        let to_uri = call.to.request_uri(&trunk.uri, trunk.strip_plus)?;
        let from_uri = call.from.from_uri(&self.host_for_uri(), trunk.strip_plus);
        let local_tag = self.ids.token(10);
        let call_id = format!("{}@{}", self.ids.token(20), self.config.advertised_host);
        let mut headers = Headers::default();
        headers.push("Via", self.via(transport));
        headers.push("Max-Forwards", "70");
        let display = call
            .display_name
            .as_ref()
            .map(|name| format!("{name} "))
            .unwrap_or_default();
        headers.push("From", format!("{display}<{from_uri}>;tag={local_tag}"));
        headers.push("To", format!("<{to_uri}>"));
        headers.push("Call-ID", call_id);
        headers.push("CSeq", "1 INVITE");
        headers.push("Contact", self.contact(transport));
        headers.push("Allow", ALLOW);
        headers.push("User-Agent", self.config.user_agent.clone());
        for (name, value) in &call.headers {
            headers.push(name.clone(), value.clone());
        }
        headers.push("Content-Type", "application/sdp");
        let invite = Request {
            method: Method::Invite,
            uri: to_uri,
            headers,
            body: sdp,
        };
        let leg_id = self.next_leg_id();
        let mut scratch = std::mem::take(&mut self.scratch);
        let id = self
            .tx
            .send_request(invite.clone(), peer, now, &mut scratch);
        self.client_txs.insert(id, ClientPurpose::Invite(leg_id));
        self.legs.insert(
            leg_id,
            Leg {
                invite,
                invite_tx: id,
                peer,
                local_tag,
                state: LegState::Dialling(Dialling::default()),
                unconfirmed_from: None,
            },
        );
        self.drain_tx_outputs(&mut scratch, now, out);
        self.scratch = scratch;
        Some(leg_id)
    }

    /// Cancels a dialling leg (once). The INVITE's final response then ends it.
    pub(super) fn cancel(&mut self, leg_id: LegId, now: Instant, out: &mut Vec<EndpointOutput>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let LegState::Dialling(dialling) = &mut leg.state else {
            return;
        };
        if dialling.cancelled {
            return;
        }
        dialling.cancelled = true;
        let cancel = cancel_for(&leg.invite);
        let peer = leg.peer;
        let id = self.with_tx(now, out, |ep, scratch| {
            ep.tx.send_request(cancel, peer, now, scratch)
        });
        self.client_txs.insert(id, ClientPurpose::Cancel);
    }

    /// A response to the INVITE of an outbound leg.
    pub(super) fn on_invite_response(
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
        let peer = leg.peer;
        let dialling = match leg.state {
            LegState::Dialling(d) => Some(d),
            _ => None,
        };
        match resp.status {
            100 => {}
            101..=199 => out.push(EndpointOutput::Event(EndpointEvent::OutboundProgress {
                leg: leg_id,
                status: resp.status,
                sdp: resp.body.clone(),
            })),
            200..=299 => self.on_invite_2xx(leg_id, &resp, now, scratch, out),
            401 | 407 if dialling.is_some_and(|d| !d.auth_tried && !d.cancelled) => {
                if let LegState::Dialling(d) = &mut leg.state {
                    d.auth_tried = true;
                }
                match self.authorized_retry(leg_id, &resp) {
                    Some(retry) => {
                        self.client_txs.remove(&tx);
                        let id = self.tx.send_request(retry.clone(), peer, now, scratch);
                        self.client_txs.insert(id, ClientPurpose::Invite(leg_id));
                        if let Some(leg) = self.legs.get_mut(&leg_id) {
                            leg.invite = retry;
                            leg.invite_tx = id;
                        }
                    }
                    None => self.fail_outbound(tx, leg_id, resp.status, &resp.reason, out),
                }
            }
            status => self.fail_outbound(tx, leg_id, status, &resp.reason, out),
        }
    }

    /// A 2xx to our INVITE. Every 2xx is acknowledged (§13.2.2.4); the first one confirms the
    /// leg (or, when it crossed our CANCEL, is ended with a BYE at once), a retransmission of
    /// it is only acknowledged again, and one with another To tag comes from another branch
    /// of a forking proxy: that extra dialog is acknowledged and ended with a BYE, since the
    /// leg carries one call.
    fn on_invite_2xx(
        &mut self,
        leg_id: LegId,
        resp: &Response,
        now: Instant,
        scratch: &mut Vec<TxOutput>,
        out: &mut Vec<EndpointOutput>,
    ) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        match &leg.state {
            LegState::Dialling(dialling) => {
                let cancelled = dialling.cancelled;
                let dialog = Dialog::from_outgoing_invite(&leg.invite, resp, leg.peer);
                self.dialogs
                    .insert((dialog.call_id.clone(), dialog.local_tag.clone()), leg_id);
                leg.state = LegState::Confirmed(Session::new(dialog));
                self.send_ack(leg_id, resp, now, scratch);
                if cancelled {
                    // The 2xx crossed our CANCEL: the call is up, so end it properly.
                    self.send_bye(leg_id, now, scratch);
                } else {
                    out.push(EndpointOutput::Event(EndpointEvent::OutboundAnswered {
                        leg: leg_id,
                        sdp: resp.body.clone(),
                    }));
                }
            }
            LegState::Confirmed(session) | LegState::Terminating(session) => {
                let to_tag = tag_of(resp.headers.get("To")).unwrap_or_default();
                if to_tag == session.dialog.remote_tag {
                    // A retransmitted 2xx: our ACK was lost.
                    self.send_ack(leg_id, resp, now, scratch);
                } else {
                    self.end_forked_dialog(leg_id, resp, now, scratch);
                }
            }
            LegState::Ringing | LegState::Accepted { .. } => {}
        }
    }

    /// Acknowledges a 2xx from another fork and sends BYE in the dialog it created.
    fn end_forked_dialog(
        &mut self,
        leg_id: LegId,
        resp: &Response,
        now: Instant,
        scratch: &mut Vec<TxOutput>,
    ) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let mut dialog = Dialog::from_outgoing_invite(&leg.invite, resp, leg.peer);
        let transport = leg.peer.transport;
        let contact = self.contact(transport);
        let ack_via = self.via(transport);
        let ack = dialog.request(
            Method::Ack,
            ack_via,
            &contact,
            cseq_number(&resp.headers),
            None,
        );
        self.tx.send_request(ack, dialog.peer, now, scratch);
        let bye_via = self.via(transport);
        let bye = dialog.request(Method::Bye, bye_via, &contact, None, None);
        let id = self.tx.send_request(bye, dialog.peer, now, scratch);
        self.client_txs.insert(id, ClientPurpose::ForkBye);
    }

    /// The INVITE got a final error: the leg ends, and the application hears of it unless it
    /// cancelled the call itself.
    fn fail_outbound(
        &mut self,
        tx: TxId,
        leg_id: LegId,
        status: u16,
        reason: &str,
        out: &mut Vec<EndpointOutput>,
    ) {
        self.client_txs.remove(&tx);
        let cancelled = self.is_cancelled(leg_id);
        self.finish_leg(leg_id, None, out);
        if !cancelled {
            out.push(EndpointOutput::Event(EndpointEvent::OutboundFailed {
                leg: leg_id,
                status,
                reason: reason.to_string(),
            }));
        }
    }

    /// Timer B: the INVITE got no final response at all.
    pub(super) fn on_invite_timeout(&mut self, leg_id: LegId, out: &mut Vec<EndpointOutput>) {
        let cancelled = self.is_cancelled(leg_id);
        self.finish_leg(leg_id, None, out);
        if !cancelled {
            out.push(EndpointOutput::Event(EndpointEvent::OutboundFailed {
                leg: leg_id,
                status: 408,
                reason: "Request Timeout".into(),
            }));
        }
    }

    fn is_cancelled(&self, leg_id: LegId) -> bool {
        self.legs
            .get(&leg_id)
            .is_some_and(|l| matches!(l.state, LegState::Dialling(d) if d.cancelled))
    }

    /// The INVITE again with the next CSeq, a new branch and digest credentials answering
    /// the challenge in `resp` (RFC 3261 §22.2); None when we have no credentials or cannot
    /// read the challenge.
    fn authorized_retry(&mut self, leg_id: LegId, resp: &Response) -> Option<Request> {
        let trunk = self
            .config
            .trunk
            .as_ref()
            .filter(|t| !t.username.is_empty())?
            .clone();
        let leg = self.legs.get(&leg_id)?;
        let (challenge_header, answer_header) = if resp.status == 407 {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        // RFC 8760 §2.4: several challenges may come, the preferred first; answer the first
        // one we can (SHA-256 or MD5).
        let challenge = resp
            .headers
            .get_all(challenge_header)
            .find_map(|c| Challenge::parse(c).ok())?;
        let mut retry = leg.invite.clone();
        let transport = leg.peer.transport;
        let seq = cseq_number(&retry.headers).unwrap_or(1) + 1;
        retry.headers.set("CSeq", format!("{seq} INVITE"));
        let via = self.via(transport);
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
        let cnonce = self.ids.token(16);
        let auth = challenge.authorize(
            "INVITE",
            &retry.uri,
            &trunk.username,
            &trunk.password,
            &cnonce,
        );
        headers.push(answer_header, auth);
        retry.headers = headers;
        Some(retry)
    }
}
