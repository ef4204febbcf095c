//! Message building: responses to requests, our Via and Contact, CANCEL, and the few rewrites
//! received requests need (RFC 3581 stamping).

use std::net::SocketAddr;

use bytes::Bytes;

use super::{Endpoint, ALLOW};
use crate::headers::{tag_of, CSeq, BRANCH_COOKIE};
use crate::ids::IdSource;
use crate::message::{truncate, Headers, Method, Request, Response};
use crate::transaction::TransportKind;

impl Endpoint {
    /// A response to `req` with the mandatory headers copied (§8.2.6.2): Via lines verbatim
    /// (the top one already stamped with `received`/`rport`), From, Call-ID, CSeq, and To with
    /// our tag added when given and the request had none (never on 100, §8.2.6.2).
    pub(super) fn response_to(
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

    /// Adds what a dialog-creating response needs: the request's Record-Route (so the caller
    /// learns the route set, §12.1.1), our Contact and Allow.
    pub(super) fn add_dialog_headers(
        &self,
        resp: &mut Response,
        invite: &Request,
        transport: TransportKind,
    ) {
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
            TransportKind::Tls => self
                .tls_port
                .or(self.config.tcp_port)
                .or(self.config.udp_port),
        }
        .unwrap_or(5060)
    }

    pub(super) fn host_for_uri(&self) -> String {
        if self.config.advertised_host.contains(':') {
            format!("[{}]", self.config.advertised_host)
        } else {
            self.config.advertised_host.clone()
        }
    }

    /// Our Via for a new request, with a fresh branch and `rport` (RFC 3581).
    pub(super) fn via(&mut self, transport: TransportKind) -> String {
        let branch = self.ids.token(16);
        format!(
            "SIP/2.0/{} {}:{};branch={BRANCH_COOKIE}{branch};rport",
            transport.via_token(),
            self.host_for_uri(),
            self.port_for(transport),
        )
    }

    /// Our Contact for the transport a dialog runs on.
    pub(super) fn contact(&self, transport: TransportKind) -> String {
        let t = match transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
            TransportKind::Tls => ";transport=tls",
        };
        format!(
            "<sip:huddle@{}:{}{t}>",
            self.host_for_uri(),
            self.port_for(transport)
        )
    }
}

/// RFC 3581 / RFC 3261 §18.2.1: record where the request really came from in its top Via, so
/// responses copied from it tell NATed senders their public address.
pub(super) fn stamp_top_via(req: &mut Request, source: SocketAddr) {
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

/// Option tags of `Require` we do not support (we support none but `timer` refreshes).
pub(super) fn unsupported_requires(headers: &Headers) -> Option<String> {
    let tags: Vec<&str> = headers
        .elements("Require")
        .into_iter()
        .filter(|t| !t.eq_ignore_ascii_case("timer"))
        .collect();
    (!tags.is_empty()).then(|| tags.join(", "))
}

/// A reason phrase with detail, safe for a status line (no CR/LF, bounded length).
pub(super) fn reason_phrase(base: &str, detail: &str) -> String {
    let detail: String = truncate(detail, 100)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{base} ({detail})")
}

/// The CSeq number of a message, if it has a readable CSeq.
pub(super) fn cseq_number(headers: &Headers) -> Option<u32> {
    headers
        .get("CSeq")
        .and_then(|c| CSeq::parse(c).ok())
        .map(|c| c.seq)
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
    let seq = cseq_number(&invite.headers).unwrap_or(1);
    headers.push("CSeq", format!("{seq} CANCEL"));
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        headers,
        body: Bytes::new(),
    }
}

/// A random token for tags, branches and Call-IDs, from the operating system's randomness
/// (what [`crate::ids::OsIds`] draws).
pub fn new_token(len: usize) -> String {
    crate::ids::OsIds.token(len)
}
