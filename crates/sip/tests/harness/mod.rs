//! A simulated SIP network for endpoint tests: endpoints and an optional record-routing,
//! forking proxy exchange datagrams through an in-memory link, time is an `Instant` advanced
//! by hand (timers fire at each endpoint's `next_deadline()`), and a loss rule can drop any
//! datagram. No sockets, no sleeps: a scenario of minutes runs in microseconds.
//!
//! Delivery is instant and in order of sending; a dropped datagram is logged but never
//! delivered. Every endpoint draws its identifiers from a seeded source, so a scenario's
//! wire log is the same bytes on every run.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use huddle_sip::endpoint::{
    Endpoint, EndpointConfig, EndpointEvent, EndpointOutput, LegId, TrunkConfig,
};
use huddle_sip::headers::{tag_of, NameAddr, UriTarget, Via};
use huddle_sip::ids::SeededIds;
use huddle_sip::message::{parse, Framing, Method, SipMessage};
use huddle_sip::transaction::{Peer, TimerConfig, TransportKind};

/// One datagram put on the simulated wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sender.
    pub from: SocketAddr,
    /// Destination.
    pub to: SocketAddr,
    /// Wire bytes.
    pub data: Bytes,
    /// The loss rule dropped it.
    pub dropped: bool,
}

impl Packet {
    /// The message as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The start line.
    pub fn first_line(&self) -> String {
        self.text().lines().next().unwrap_or_default().to_string()
    }

    /// True for a request of this method (`"INVITE"`, `"ACK"`, ...).
    pub fn is_request(&self, method: &str) -> bool {
        self.data.starts_with(format!("{method} ").as_bytes())
    }

    /// The status of a response (None for requests).
    pub fn status(&self) -> Option<u16> {
        let line = self.first_line();
        line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }

    /// The first value of a header (full name, case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.text()
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    }

    /// Every value of a header.
    pub fn headers(&self, name: &str) -> Vec<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.text()
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
            .collect()
    }

    /// The tag of the To header.
    pub fn to_tag(&self) -> Option<String> {
        tag_of(self.header("To").as_deref())
    }

    /// The method named in CSeq (`"INVITE"` for a 200 to an INVITE).
    pub fn cseq_method(&self) -> Option<String> {
        self.header("CSeq")?
            .split_whitespace()
            .nth(1)
            .map(str::to_string)
    }
}

/// An endpoint on the simulated network and what it told its application.
#[derive(Debug)]
pub struct Node {
    /// Its address (advertised host and UDP port).
    pub addr: SocketAddr,
    /// The endpoint.
    pub ep: Endpoint,
    /// Every event it emitted, in order.
    pub events: Vec<EndpointEvent>,
}

/// A stateless proxy: it forwards requests along Route or the Request-URI, sends a new INVITE
/// to each of its targets (forking) with a Record-Route of its own when asked, pushes its Via
/// on requests and pops it off responses.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Its address.
    pub addr: SocketAddr,
    /// Where requests without a To tag (new INVITEs and their CANCEL) go: one target is a
    /// plain proxy, several fork the call.
    pub targets: Vec<SocketAddr>,
    /// Add `Record-Route: <sip:proxy;lr>` to new INVITEs.
    pub record_route: bool,
}

type LossRule = Box<dyn FnMut(&Packet) -> bool>;

/// The simulated network.
pub struct Net {
    /// Simulated time.
    pub now: Instant,
    /// When the scenario started.
    pub start: Instant,
    /// The endpoints, in the order they were added.
    pub nodes: Vec<Node>,
    proxy: Option<Proxy>,
    in_flight: VecDeque<Packet>,
    /// Every datagram sent, delivered or dropped, in order.
    pub log: Vec<Packet>,
    loss: Option<LossRule>,
}

/// The address of the `n`-th node (127.0.0.1, .2, ...), port 5060.
pub fn node_addr(n: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1 + n as u8], 5060))
}

/// The proxy's address.
pub const PROXY: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 100)),
    5060,
);

impl Net {
    /// A network of `count` endpoints; node 0 has a trunk to `trunk` (node 1 when None), and
    /// endpoint `n` draws its identifiers from `seed + n`.
    pub fn new(count: usize, trunk: Option<SocketAddr>, seed: u64) -> Net {
        let trunk = trunk.unwrap_or_else(|| node_addr(1));
        let now = Instant::now();
        let nodes = (0..count)
            .map(|n| {
                let addr = node_addr(n);
                let config = EndpointConfig {
                    advertised_host: addr.ip().to_string(),
                    udp_port: Some(addr.port()),
                    tcp_port: None,
                    user_agent: format!("node{n}"),
                    trunk: (n == 0).then(|| TrunkConfig {
                        uri: format!("sip:{trunk}"),
                        username: "user".into(),
                        password: "secret".into(),
                        strip_plus: false,
                    }),
                    timers: TimerConfig::default(),
                };
                Node {
                    addr,
                    ep: Endpoint::with_ids(config, Box::new(SeededIds::new(seed + n as u64))),
                    events: Vec::new(),
                }
            })
            .collect();
        Net {
            now,
            start: now,
            nodes,
            proxy: None,
            in_flight: VecDeque::new(),
            log: Vec::new(),
            loss: None,
        }
    }

    /// Puts a proxy on the network (at [`PROXY`]).
    pub fn with_proxy(mut self, targets: Vec<SocketAddr>, record_route: bool) -> Net {
        self.proxy = Some(Proxy {
            addr: PROXY,
            targets,
            record_route,
        });
        self
    }

    /// Drops every datagram for which `rule` says true.
    pub fn set_loss(&mut self, rule: impl FnMut(&Packet) -> bool + 'static) {
        self.loss = Some(Box::new(rule));
    }

    /// Drops only the `n`-th datagram (1-based) matching `matches`.
    pub fn drop_nth(&mut self, n: usize, mut matches: impl FnMut(&Packet) -> bool + 'static) {
        let mut seen = 0;
        self.set_loss(move |p| {
            if matches(p) {
                seen += 1;
                seen == n
            } else {
                false
            }
        });
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Runs a command on node `n` (answer, dial, hangup...) and puts what it sends on the
    /// wire; nothing is delivered until [`Self::run`].
    pub fn with<R>(
        &mut self,
        n: usize,
        f: impl FnOnce(&mut Endpoint, Instant, &mut Vec<EndpointOutput>) -> R,
    ) -> R {
        let mut out = Vec::new();
        let result = f(&mut self.nodes[n].ep, self.now, &mut out);
        self.collect(n, out);
        result
    }

    /// Delivers everything in flight, and whatever that causes, without advancing time.
    pub fn run(&mut self) {
        while let Some(packet) = self.in_flight.pop_front() {
            self.deliver(packet);
        }
    }

    /// Delivers, then advances time to `now + d`, firing every timer due on the way at its
    /// own deadline.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.run();
        loop {
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.ep.next_deadline())
                .min()
                .filter(|at| *at <= until);
            let Some(at) = next else {
                break;
            };
            self.now = self.now.max(at);
            for n in 0..self.nodes.len() {
                if self.nodes[n]
                    .ep
                    .next_deadline()
                    .is_some_and(|d| d <= self.now)
                {
                    let mut out = Vec::new();
                    self.nodes[n].ep.handle_timeout(self.now, &mut out);
                    self.collect(n, out);
                }
            }
            self.run();
        }
        self.now = until;
    }

    /// The events node `n` emitted since the last call.
    pub fn take_events(&mut self, n: usize) -> Vec<EndpointEvent> {
        std::mem::take(&mut self.nodes[n].events)
    }

    /// The leg of the last `IncomingCall` node `n` saw.
    pub fn incoming_leg(&self, n: usize) -> Option<LegId> {
        self.nodes[n].events.iter().rev().find_map(|e| match e {
            EndpointEvent::IncomingCall { leg, .. } => Some(*leg),
            _ => None,
        })
    }

    /// Datagrams sent so far matching `f` (delivered or not).
    pub fn sent(&self, f: impl Fn(&Packet) -> bool) -> Vec<&Packet> {
        self.log.iter().filter(|p| f(p)).collect()
    }

    /// Every byte put on the wire, in order, for comparing runs.
    pub fn wire_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for p in &self.log {
            all.extend_from_slice(format!("{} -> {} {}\n", p.from, p.to, p.dropped).as_bytes());
            all.extend_from_slice(&p.data);
        }
        all
    }

    fn collect(&mut self, n: usize, out: Vec<EndpointOutput>) {
        let from = self.nodes[n].addr;
        for o in out {
            match o {
                EndpointOutput::Send { peer, data } => {
                    assert_eq!(peer.transport, TransportKind::Udp);
                    self.put_on_wire(from, peer.addr, data);
                }
                EndpointOutput::Event(e) => self.nodes[n].events.push(e),
            }
        }
    }

    fn put_on_wire(&mut self, from: SocketAddr, to: SocketAddr, data: Bytes) {
        let mut packet = Packet {
            from,
            to,
            data,
            dropped: false,
        };
        if let Some(rule) = self.loss.as_mut() {
            packet.dropped = rule(&packet);
        }
        self.log.push(packet.clone());
        if !packet.dropped {
            self.in_flight.push_back(packet);
        }
    }

    fn deliver(&mut self, packet: Packet) {
        if self.proxy.as_ref().is_some_and(|p| p.addr == packet.to) {
            return self.proxy_forward(&packet);
        }
        let Some(n) = self.nodes.iter().position(|n| n.addr == packet.to) else {
            return; // nobody there
        };
        let peer = Peer {
            addr: packet.from,
            transport: TransportKind::Udp,
        };
        let mut out = Vec::new();
        self.nodes[n]
            .ep
            .handle_message(&packet.data, peer, self.now, &mut out);
        self.collect(n, out);
    }

    fn proxy_forward(&mut self, packet: &Packet) {
        let Some(proxy) = self.proxy.clone() else {
            return;
        };
        match parse(&packet.data, Framing::Datagram) {
            Ok(SipMessage::Request(mut req)) => {
                let branch = req
                    .headers
                    .get("Via")
                    .and_then(|v| Via::parse(v).ok())
                    .and_then(|v| v.branch)
                    .unwrap_or_default();
                // Our own Route entry (loose routing, RFC 3261 §16.4) is consumed here.
                if let Some(i) = req.headers.0.iter().position(|h| {
                    h.name.eq_ignore_ascii_case("Route")
                        && h.value.contains(&proxy.addr.to_string())
                }) {
                    req.headers.0.remove(i);
                }
                let new_call = tag_of(req.headers.get("To")).is_none()
                    && matches!(req.method, Method::Invite | Method::Cancel);
                if new_call && req.method == Method::Invite && proxy.record_route {
                    req.headers.0.insert(
                        0,
                        huddle_sip::message::Header {
                            name: "Record-Route".into(),
                            value: format!("<sip:{};lr>", proxy.addr),
                        },
                    );
                }
                let hops: Vec<SocketAddr> = if new_call {
                    proxy.targets.clone()
                } else {
                    let next = req
                        .headers
                        .get("Route")
                        .and_then(|r| NameAddr::parse(r).ok())
                        .map(|r| r.uri)
                        .unwrap_or_else(|| req.uri.clone());
                    UriTarget::parse(&next)
                        .and_then(|t| t.socket_addr())
                        .into_iter()
                        .collect()
                };
                for (i, hop) in hops.into_iter().enumerate() {
                    let mut fwd = req.clone();
                    fwd.headers.0.insert(
                        0,
                        huddle_sip::message::Header {
                            name: "Via".into(),
                            value: format!(
                                "SIP/2.0/UDP {};branch=z9hG4bKp{i}x{branch}",
                                proxy.addr
                            ),
                        },
                    );
                    self.put_on_wire(proxy.addr, hop, Bytes::from(fwd.to_bytes()));
                }
            }
            Ok(SipMessage::Response(mut resp)) => {
                let Some(i) = resp
                    .headers
                    .0
                    .iter()
                    .position(|h| h.name.eq_ignore_ascii_case("Via"))
                else {
                    return;
                };
                resp.headers.0.remove(i);
                let Some(via) = resp.headers.get("Via").and_then(|v| Via::parse(v).ok()) else {
                    return;
                };
                let host = via.received.clone().unwrap_or(via.host.clone());
                let port = via.rport.flatten().or(via.port).unwrap_or(5060);
                let Ok(ip) = host.parse() else {
                    return;
                };
                self.put_on_wire(
                    proxy.addr,
                    SocketAddr::new(ip, port),
                    Bytes::from(resp.to_bytes()),
                );
            }
            Err(_) => {}
        }
    }
}

/// A minimal SDP body (the endpoint does not read SDP; it only carries it).
pub fn sdp(port: u16) -> Bytes {
    Bytes::from(format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
    ))
}
