//! RFC 3261 §12 dialog state: identifiers, route set, CSeq counters, and in-dialog request building.

use bytes::Bytes;

use crate::headers::{name_addrs, CSeq, NameAddr, UriTarget};
use crate::message::{Headers, Method, Request, Response};
use crate::transaction::{Peer, TransportKind};

/// One dialog, from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The other side's tag (empty until known on the UAC side).
    pub remote_tag: String,
    /// Our From value for requests we send (includes our tag).
    pub local_header: String,
    /// Their address for our To header (includes their tag when known).
    pub remote_header: String,
    /// Where in-dialog requests go (their Contact).
    pub remote_target: String,
    /// Route set, in the order to put in Route headers.
    pub route_set: Vec<String>,
    /// Last CSeq we used.
    pub local_seq: u32,
    /// Highest CSeq seen from them.
    pub remote_seq: Option<u32>,
    /// The hop in-dialog requests are sent to.
    pub peer: Peer,
}

impl Dialog {
    /// The UAS side of a dialog created by an INVITE we answer.
    pub fn from_incoming_invite(invite: &Request, local_tag: &str, peer: Peer) -> Dialog {
        let h = &invite.headers;
        let from = h.get("From").unwrap_or_default();
        let to = h.get("To").unwrap_or_default();
        let remote_tag = crate::headers::tag_of(Some(from)).unwrap_or_default();
        let remote_target = name_addrs(h, "Contact")
            .into_iter()
            .next()
            .map(|c| c.uri)
            .unwrap_or_else(|| NameAddr::parse(from).map(|n| n.uri).unwrap_or_default());
        // UAS: the route set is the Record-Route list in order (§12.1.1).
        let route_set: Vec<String> = record_routes(h);
        let remote_seq = h
            .get("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map(|c| c.seq);
        let dialog_peer = next_hop(&route_set, &remote_target, peer);
        Dialog {
            call_id: h.get("Call-ID").unwrap_or_default().to_string(),
            local_tag: local_tag.to_string(),
            remote_tag,
            local_header: format!("{to};tag={local_tag}"),
            remote_header: from.to_string(),
            remote_target,
            route_set,
            local_seq: 0,
            remote_seq,
            peer: dialog_peer,
        }
    }

    /// The UAC side, once a 2xx (or a tagged 1xx) arrives for our INVITE.
    pub fn from_outgoing_invite(invite: &Request, resp: &Response, peer: Peer) -> Dialog {
        let ih = &invite.headers;
        let rh = &resp.headers;
        let from = ih.get("From").unwrap_or_default();
        let to = rh.get("To").unwrap_or_default();
        let remote_target = name_addrs(rh, "Contact")
            .into_iter()
            .next()
            .map(|c| c.uri)
            .unwrap_or_else(|| invite.uri.clone());
        // UAC: the route set is the Record-Route list of the response, reversed (§12.1.2).
        let mut route_set = record_routes(rh);
        route_set.reverse();
        let local_seq = ih
            .get("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map_or(1, |c| c.seq);
        let dialog_peer = next_hop(&route_set, &remote_target, peer);
        Dialog {
            call_id: ih.get("Call-ID").unwrap_or_default().to_string(),
            local_tag: crate::headers::tag_of(Some(from)).unwrap_or_default(),
            remote_tag: crate::headers::tag_of(Some(to)).unwrap_or_default(),
            local_header: from.to_string(),
            remote_header: to.to_string(),
            remote_target,
            route_set,
            local_seq,
            remote_seq: None,
            peer: dialog_peer,
        }
    }

    /// Checks an in-dialog request's CSeq (RFC 3261 §12.2.2): a lower one than before is refused
    /// with 500, an equal one is a retransmission the transaction layer already absorbed.
    pub fn accept_remote_seq(&mut self, seq: u32, method: &Method) -> bool {
        if matches!(method, Method::Ack | Method::Cancel) {
            return true;
        }
        if self.remote_seq.is_some_and(|last| seq <= last) {
            return false;
        }
        self.remote_seq = Some(seq);
        true
    }

    /// Builds an in-dialog request with a fresh CSeq (ACK reuses the INVITE's, passed as `seq`).
    pub fn request(
        &mut self,
        method: Method,
        via: String,
        contact: &str,
        seq: Option<u32>,
        body: Option<(&str, Bytes)>,
    ) -> Request {
        let seq = seq.unwrap_or_else(|| {
            self.local_seq += 1;
            self.local_seq
        });
        let mut headers = Headers::default();
        headers.push("Via", via);
        headers.push("Max-Forwards", "70");
        for route in &self.route_set {
            headers.push("Route", route.clone());
        }
        headers.push("From", self.local_header.clone());
        headers.push("To", self.remote_header.clone());
        headers.push("Call-ID", self.call_id.clone());
        headers.push("CSeq", format!("{seq} {method}"));
        if matches!(method, Method::Invite | Method::Update) {
            headers.push("Contact", contact.to_string());
        }
        let body = match body {
            Some((content_type, body)) => {
                headers.push("Content-Type", content_type);
                body
            }
            None => Bytes::new(),
        };
        Request {
            method,
            uri: self.remote_target.clone(),
            headers,
            body,
        }
    }
}

fn record_routes(h: &Headers) -> Vec<String> {
    name_addrs(h, "Record-Route")
        .into_iter()
        .map(|r| r.render())
        .collect()
}

/// The address in-dialog requests go to: the first route if it is an IP literal, else the remote
/// target if it is an IP literal; otherwise (names, or TCP without a route) back to where the
/// dialog's request came from. We never resolve DNS on the call path, and over TCP reusing the
/// connection is what RFC 3261 §18 recommends and what NATed trunks need.
fn next_hop(route_set: &[String], remote_target: &str, came_from: Peer) -> Peer {
    let target = route_set
        .first()
        .and_then(|r| NameAddr::parse(r).ok())
        .map(|r| r.uri)
        .unwrap_or_else(|| remote_target.to_string());
    if came_from.transport.is_reliable() && route_set.is_empty() {
        return came_from;
    }
    let parsed = UriTarget::parse(&target);
    let addr = parsed.as_ref().and_then(UriTarget::socket_addr);
    match (parsed, addr) {
        (Some(t), Some(addr)) => Peer {
            addr,
            transport: t
                .transport
                .as_deref()
                .and_then(TransportKind::from_uri_param)
                .unwrap_or(came_from.transport),
        },
        _ => came_from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, Framing, SipMessage};

    fn invite(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:echo@10.0.0.5 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKa\r\n\
From: \"A\" <sip:a@10.0.0.9>;tag=ft\r\nTo: <sip:echo@10.0.0.5>\r\nCall-ID: cid\r\nCSeq: 10 INVITE\r\n\
Contact: <sip:a@10.0.0.9:5999>\r\n{extra}\r\n"
        );
        match parse(text.as_bytes(), Framing::Datagram).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn udp(addr: &str) -> Peer {
        Peer {
            addr: addr.parse().unwrap(),
            transport: TransportKind::Udp,
        }
    }

    #[test]
    fn uas_dialog_builds_bye_to_contact() {
        let mut d = Dialog::from_incoming_invite(&invite(""), "lt", udp("10.0.0.9:5060"));
        assert_eq!(d.peer, udp("10.0.0.9:5999"));
        let bye = d.request(
            Method::Bye,
            "SIP/2.0/UDP me;branch=z9hG4bKx".into(),
            "<sip:me>",
            None,
            None,
        );
        assert_eq!(bye.uri, "sip:a@10.0.0.9:5999");
        assert_eq!(bye.headers.get("From"), Some("<sip:echo@10.0.0.5>;tag=lt"));
        assert_eq!(bye.headers.get("To"), Some("\"A\" <sip:a@10.0.0.9>;tag=ft"));
        assert_eq!(bye.headers.get("CSeq"), Some("1 BYE"));
    }

    #[test]
    fn record_route_goes_to_proxy() {
        let inv = invite("Record-Route: <sip:10.0.0.1:5080;lr>, <sip:10.0.0.2;lr>\r\n");
        let mut d = Dialog::from_incoming_invite(&inv, "lt", udp("10.0.0.1:5080"));
        assert_eq!(d.peer, udp("10.0.0.1:5080"));
        let bye = d.request(Method::Bye, "v".into(), "c", None, None);
        let routes: Vec<_> = bye.headers.get_all("Route").collect();
        assert_eq!(routes, vec!["<sip:10.0.0.1:5080;lr>", "<sip:10.0.0.2;lr>"]);
    }

    #[test]
    fn remote_cseq_must_grow() {
        let mut d = Dialog::from_incoming_invite(&invite(""), "lt", udp("10.0.0.9:5060"));
        assert!(!d.accept_remote_seq(10, &Method::Bye));
        assert!(d.accept_remote_seq(11, &Method::Bye));
        assert!(d.accept_remote_seq(1, &Method::Ack));
    }
}
