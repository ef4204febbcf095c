//! RFC 3261 §17 transactions as a sans-IO state machine, with the RFC 6026 "Accepted" states.
//!
//! The layer never touches a socket or a clock: callers pass `now` in, collect [`TxOutput`]s
//! (bytes to send, events for the transaction user) and ask [`TransactionLayer::next_deadline`]
//! when to call [`TransactionLayer::handle_timeout`]. Timers are kept in one ordered set with lazy
//! deletion, so a timeout check costs O(log n) however many calls are up.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::headers::{top_via, CSeq};
use crate::message::{Headers, Method, Request, Response};

/// Transport of a hop, which decides whether the transaction retransmits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Unreliable: retransmit.
    Udp,
    /// Reliable: no retransmission, zero-length wait states.
    Tcp,
    /// TLS over TCP: reliable like TCP.
    Tls,
}

impl TransportKind {
    /// True for the stream transports (TCP and TLS).
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp | TransportKind::Tls)
    }

    /// The transport a `transport=` URI parameter (upper-cased) names, if one we speak.
    pub fn from_uri_param(param: &str) -> Option<TransportKind> {
        match param {
            "UDP" => Some(TransportKind::Udp),
            "TCP" => Some(TransportKind::Tcp),
            "TLS" => Some(TransportKind::Tls),
            _ => None,
        }
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }
}

/// The far end of a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Socket address.
    pub addr: SocketAddr,
    /// Transport.
    pub transport: TransportKind,
}

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy)]
pub struct TimerConfig {
    /// RTT estimate, 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Identifies a transaction inside the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// What the layer asks its caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutput {
    /// Send these bytes to the peer.
    Send {
        /// Destination.
        peer: Peer,
        /// Wire bytes.
        data: Bytes,
    },
    /// A response for a client transaction, to pass to the transaction user. For INVITE every 2xx
    /// (including retransmissions) is passed up, because the TU must acknowledge each one.
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        response: Response,
    },
    /// A client transaction got no final response in time (timer B or F), or its transport failed.
    ClientTimeout {
        /// The client transaction.
        tx: TxId,
    },
    /// A 2xx to an INVITE was never acknowledged (RFC 3261 §13.3.1.4): the TU should end the dialog.
    AckTimeout {
        /// The server transaction.
        tx: TxId,
    },
}

/// How an incoming request relates to existing transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestDisposition {
    /// A new server transaction was created; the TU must answer it with [`TransactionLayer::respond`].
    New(TxId),
    /// A retransmission, absorbed (any response to resend has been queued as output).
    Absorbed,
    /// An ACK that matched a non-2xx INVITE transaction: absorbed by the layer.
    AckAbsorbed,
    /// An ACK for a 2xx: belongs to the dialog. `invite_tx` is the Accepted INVITE transaction it
    /// acknowledges, if the layer still has it (its 2xx retransmissions have been stopped).
    AckForDialog {
        /// The INVITE transaction, when still known.
        invite_tx: Option<TxId>,
    },
    /// A CANCEL; the layer created its own transaction `cancel_tx`. `invite_tx` is the INVITE
    /// server transaction it targets (None: the TU should answer 481).
    Cancel {
        /// The CANCEL's own server transaction.
        cancel_tx: TxId,
        /// The INVITE transaction being cancelled.
        invite_tx: Option<TxId>,
        /// Whether that INVITE is still waiting for a final response.
        invite_pending: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerKey {
    /// RFC 3261 branch: (branch, sent-by, method class).
    Branch(String, String, String),
    /// RFC 2543 peers without the magic cookie: a digest of the identifying headers.
    Legacy(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
struct ServerTx {
    key: ServerKey,
    is_invite: bool,
    peer: Peer,
    state: ServerState,
    last_response: Option<Bytes>,
    /// Call-ID and CSeq number, used to match the end-to-end ACK for a 2xx.
    call_id: String,
    cseq: u32,
    retransmit_interval: Duration,
    next_retransmit: Option<Instant>,
    /// End of the current state (timers H, I, J, L).
    state_deadline: Option<Instant>,
    acked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
struct ClientTx {
    key: (String, String),
    is_invite: bool,
    peer: Peer,
    request: Request,
    wire: Bytes,
    state: ClientState,
    retransmit_interval: Duration,
    next_retransmit: Option<Instant>,
    state_deadline: Option<Instant>,
}

/// All transactions of one SIP endpoint.
#[derive(Debug, Default)]
pub struct TransactionLayer {
    timers: TimerConfig,
    next_id: u64,
    servers: HashMap<TxId, ServerTx>,
    server_index: HashMap<ServerKey, TxId>,
    /// (Call-ID, CSeq) of INVITE server transactions, for 2xx ACK matching.
    invite_index: HashMap<(String, u32), TxId>,
    clients: HashMap<TxId, ClientTx>,
    client_index: HashMap<(String, String), TxId>,
    deadlines: BTreeSet<(Instant, TxId)>,
}

impl TransactionLayer {
    /// A layer with the given timer values.
    pub fn new(timers: TimerConfig) -> Self {
        TransactionLayer {
            timers,
            ..Default::default()
        }
    }

    /// Number of live transactions (server, client).
    pub fn len(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }

    /// True when no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.clients.is_empty()
    }

    fn alloc_id(&mut self) -> TxId {
        self.next_id += 1;
        TxId(self.next_id)
    }

    /// Classifies an incoming request that already passed validation.
    pub fn on_request(
        &mut self,
        req: &Request,
        peer: Peer,
        now: Instant,
        out: &mut Vec<TxOutput>,
    ) -> RequestDisposition {
        let key = server_key(req);
        if req.method == Method::Ack {
            return self.on_ack(req, &key, now);
        }
        if let Some(&id) = self.server_index.get(&key) {
            if let Some(tx) = self.servers.get(&id) {
                // A retransmission: resend the last response, if any (RFC 3261 §17.2.1, §17.2.2).
                if let Some(resp) = &tx.last_response {
                    out.push(TxOutput::Send {
                        peer: tx.peer,
                        data: resp.clone(),
                    });
                }
                return RequestDisposition::Absorbed;
            }
        }
        let id = self.alloc_id();
        let cseq = req
            .headers
            .get("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map_or(0, |c| c.seq);
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
        let is_invite = req.method == Method::Invite;
        let tx = ServerTx {
            key: key.clone(),
            is_invite,
            peer,
            state: if is_invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            last_response: None,
            call_id: call_id.clone(),
            cseq,
            retransmit_interval: self.timers.t1,
            next_retransmit: None,
            state_deadline: None,
            acked: false,
        };
        self.servers.insert(id, tx);
        self.server_index.insert(key, id);
        if is_invite {
            self.invite_index.insert((call_id, cseq), id);
        }
        if req.method == Method::Cancel {
            let invite_key = match server_key_with_method(req, "INVITE") {
                k @ ServerKey::Branch(..) => k,
                ServerKey::Legacy(_) => legacy_key(req, "INVITE"),
            };
            let invite_tx = self.server_index.get(&invite_key).copied();
            let invite_pending = invite_tx
                .and_then(|t| self.servers.get(&t))
                .is_some_and(|t| t.state == ServerState::Proceeding);
            return RequestDisposition::Cancel {
                cancel_tx: id,
                invite_tx,
                invite_pending,
            };
        }
        RequestDisposition::New(id)
    }

    fn on_ack(&mut self, req: &Request, key: &ServerKey, now: Instant) -> RequestDisposition {
        // ACK for a non-2xx final response carries the INVITE's branch (RFC 3261 §17.1.1.3).
        if let Some(&id) = self.server_index.get(key) {
            if let Some(tx) = self.servers.get_mut(&id) {
                if tx.state == ServerState::Completed {
                    tx.state = ServerState::Confirmed;
                    tx.next_retransmit = None;
                    let wait = if tx.peer.transport.is_reliable() {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    };
                    tx.state_deadline = Some(now + wait);
                    self.schedule(id);
                    return RequestDisposition::AckAbsorbed;
                }
                if tx.state == ServerState::Confirmed {
                    return RequestDisposition::AckAbsorbed;
                }
            }
        }
        // ACK for a 2xx is a new transaction that belongs to the dialog; stop 2xx retransmission.
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_string();
        let cseq = req
            .headers
            .get("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map_or(0, |c| c.seq);
        let invite_tx = self.invite_index.get(&(call_id, cseq)).copied();
        if let Some(tx) = invite_tx.and_then(|id| self.servers.get_mut(&id)) {
            if tx.state == ServerState::Accepted {
                tx.acked = true;
                tx.next_retransmit = None;
            }
        }
        RequestDisposition::AckForDialog { invite_tx }
    }

    /// Sends a response on a server transaction and advances its state.
    pub fn respond(
        &mut self,
        id: TxId,
        response: &Response,
        now: Instant,
        out: &mut Vec<TxOutput>,
    ) {
        let timers = self.timers;
        let Some(tx) = self.servers.get_mut(&id) else {
            return;
        };
        if matches!(
            tx.state,
            ServerState::Completed
                | ServerState::Confirmed
                | ServerState::Accepted
                | ServerState::Terminated
        ) {
            return; // a final response was already sent; the TU must not send another
        }
        let data = Bytes::from(response.to_bytes());
        out.push(TxOutput::Send {
            peer: tx.peer,
            data: data.clone(),
        });
        tx.last_response = Some(data);
        let reliable = tx.peer.transport.is_reliable();
        match (tx.is_invite, response.status) {
            (_, 100..=199) => {
                if !tx.is_invite {
                    tx.state = ServerState::Proceeding;
                }
            }
            (true, 200..=299) => {
                // RFC 6026 Accepted: the 2xx is retransmitted until the dialog's ACK (§13.3.1.4),
                // whatever the transport, because the ACK is end to end through proxies.
                tx.state = ServerState::Accepted;
                tx.retransmit_interval = timers.t1;
                tx.next_retransmit = Some(now + timers.t1);
                tx.state_deadline = Some(now + 64 * timers.t1);
            }
            (true, _) => {
                tx.state = ServerState::Completed;
                tx.retransmit_interval = timers.t1;
                tx.next_retransmit = (!reliable).then(|| now + timers.t1);
                tx.state_deadline = Some(now + 64 * timers.t1); // timer H
            }
            (false, _) => {
                tx.state = ServerState::Completed;
                let wait = if reliable {
                    Duration::ZERO
                } else {
                    64 * timers.t1
                };
                tx.state_deadline = Some(now + wait); // timer J
            }
        }
        self.schedule(id);
    }

    /// True when `req` belongs to a server transaction that exists (a retransmission), so
    /// that [`TransactionLayer::on_request`] would absorb it instead of starting a new one.
    pub fn is_retransmission(&self, req: &Request) -> bool {
        self.server_index
            .get(&server_key(req))
            .is_some_and(|id| self.servers.contains_key(id))
    }

    /// Whether the INVITE server transaction has not sent a final response yet.
    pub fn server_pending(&self, id: TxId) -> bool {
        self.servers
            .get(&id)
            .is_some_and(|t| matches!(t.state, ServerState::Proceeding | ServerState::Trying))
    }

    /// Starts a client transaction. The request must carry its own top Via with a fresh branch.
    pub fn send_request(
        &mut self,
        request: Request,
        peer: Peer,
        now: Instant,
        out: &mut Vec<TxOutput>,
    ) -> TxId {
        let id = self.alloc_id();
        let wire = Bytes::from(request.to_bytes());
        out.push(TxOutput::Send {
            peer,
            data: wire.clone(),
        });
        if request.method == Method::Ack {
            // ACK for a 2xx has no transaction: fire and forget.
            return id;
        }
        let is_invite = request.method == Method::Invite;
        let key = client_key_of(&request.headers, request.method.as_str());
        let reliable = peer.transport.is_reliable();
        let tx = ClientTx {
            key: key.clone(),
            is_invite,
            peer,
            request,
            wire,
            state: ClientState::Calling,
            retransmit_interval: self.timers.t1,
            next_retransmit: (!reliable).then(|| now + self.timers.t1), // timer A / E
            state_deadline: Some(now + 64 * self.timers.t1),            // timer B / F
        };
        self.clients.insert(id, tx);
        self.client_index.insert(key, id);
        self.schedule(id);
        id
    }

    /// The request a client transaction was started with.
    pub fn client_request(&self, id: TxId) -> Option<&Request> {
        self.clients.get(&id).map(|t| &t.request)
    }

    /// Feeds a response received from the network. Unmatched responses are dropped (returns false).
    pub fn on_response(&mut self, resp: Response, now: Instant, out: &mut Vec<TxOutput>) -> bool {
        let method = resp
            .headers
            .get("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map(|c| c.method.as_str().to_string())
            .unwrap_or_default();
        let key = client_key_of(&resp.headers, &method);
        let Some(&id) = self.client_index.get(&key) else {
            return false;
        };
        let timers = self.timers;
        let Some(tx) = self.clients.get_mut(&id) else {
            return false;
        };
        let reliable = tx.peer.transport.is_reliable();
        match (tx.is_invite, tx.state, resp.status) {
            (_, ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                tx.state = ClientState::Proceeding;
                if tx.is_invite {
                    tx.next_retransmit = None; // timer A stops on a provisional response
                } else if !reliable {
                    tx.retransmit_interval = timers.t2;
                }
                out.push(TxOutput::Response {
                    tx: id,
                    response: resp,
                });
            }
            (true, ClientState::Calling | ClientState::Proceeding, 200..=299) => {
                tx.state = ClientState::Accepted;
                tx.next_retransmit = None;
                tx.state_deadline = Some(now + 64 * timers.t1); // timer M
                out.push(TxOutput::Response {
                    tx: id,
                    response: resp,
                });
            }
            (true, ClientState::Accepted, 200..=299) => {
                out.push(TxOutput::Response {
                    tx: id,
                    response: resp,
                });
            }
            (true, ClientState::Calling | ClientState::Proceeding, _) => {
                let ack = Bytes::from(ack_for_non_2xx(&tx.request, &resp).to_bytes());
                out.push(TxOutput::Send {
                    peer: tx.peer,
                    data: ack.clone(),
                });
                tx.wire = ack;
                tx.state = ClientState::Completed;
                tx.next_retransmit = None;
                let wait = if reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32) // timer D
                };
                tx.state_deadline = Some(now + wait);
                out.push(TxOutput::Response {
                    tx: id,
                    response: resp,
                });
            }
            (true, ClientState::Completed, 300..=699) => {
                // The final response was retransmitted: our ACK was lost, send it again.
                out.push(TxOutput::Send {
                    peer: tx.peer,
                    data: tx.wire.clone(),
                });
            }
            (false, ClientState::Calling | ClientState::Proceeding, 200..=699) => {
                tx.state = ClientState::Completed;
                tx.next_retransmit = None;
                let wait = if reliable { Duration::ZERO } else { timers.t4 }; // timer K
                tx.state_deadline = Some(now + wait);
                out.push(TxOutput::Response {
                    tx: id,
                    response: resp,
                });
            }
            _ => {} // late retransmissions are absorbed
        }
        self.schedule(id);
        true
    }

    /// Aborts a client transaction after a transport failure, reporting a timeout.
    pub fn client_transport_error(&mut self, id: TxId, out: &mut Vec<TxOutput>) {
        if let Some(tx) = self.clients.get_mut(&id) {
            if matches!(tx.state, ClientState::Calling | ClientState::Proceeding) {
                out.push(TxOutput::ClientTimeout { tx: id });
            }
            tx.state = ClientState::Terminated;
            self.remove_client(id);
        }
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<TxOutput>) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if self.servers.contains_key(&id) {
                self.fire_server(id, now, out);
            } else if self.clients.contains_key(&id) {
                self.fire_client(id, now, out);
            }
        }
    }

    fn fire_server(&mut self, id: TxId, now: Instant, out: &mut Vec<TxOutput>) {
        let timers = self.timers;
        let Some(tx) = self.servers.get_mut(&id) else {
            return;
        };
        if tx.state_deadline.is_some_and(|d| d <= now) {
            if tx.state == ServerState::Accepted && !tx.acked {
                out.push(TxOutput::AckTimeout { tx: id });
            }
            tx.state = ServerState::Terminated;
            self.remove_server(id);
            return;
        }
        if let Some(at) = tx.next_retransmit.filter(|at| *at <= now) {
            if let Some(resp) = &tx.last_response {
                out.push(TxOutput::Send {
                    peer: tx.peer,
                    data: resp.clone(),
                });
            }
            // Timer G and the 2xx schedule double up to T2.
            tx.retransmit_interval = (tx.retransmit_interval * 2).min(timers.t2);
            tx.next_retransmit = Some(at + tx.retransmit_interval);
        }
        self.schedule(id);
    }

    fn fire_client(&mut self, id: TxId, now: Instant, out: &mut Vec<TxOutput>) {
        let timers = self.timers;
        let Some(tx) = self.clients.get_mut(&id) else {
            return;
        };
        if tx.state_deadline.is_some_and(|d| d <= now) {
            if matches!(tx.state, ClientState::Calling | ClientState::Proceeding) {
                out.push(TxOutput::ClientTimeout { tx: id });
            }
            tx.state = ClientState::Terminated;
            self.remove_client(id);
            return;
        }
        if let Some(at) = tx.next_retransmit.filter(|at| *at <= now) {
            out.push(TxOutput::Send {
                peer: tx.peer,
                data: tx.wire.clone(),
            });
            tx.retransmit_interval = if tx.is_invite {
                tx.retransmit_interval * 2 // timer A doubles without cap
            } else {
                (tx.retransmit_interval * 2).min(timers.t2)
            };
            tx.next_retransmit = Some(at + tx.retransmit_interval);
        }
        self.schedule(id);
    }

    fn schedule(&mut self, id: TxId) {
        let next = if let Some(tx) = self.servers.get(&id) {
            min_opt(tx.next_retransmit, tx.state_deadline)
        } else if let Some(tx) = self.clients.get(&id) {
            min_opt(tx.next_retransmit, tx.state_deadline)
        } else {
            None
        };
        // Lazy deletion: stale entries fire harmlessly because every fire re-checks the state.
        if let Some(at) = next {
            self.deadlines.insert((at, id));
        }
    }

    fn remove_server(&mut self, id: TxId) {
        if let Some(tx) = self.servers.remove(&id) {
            if self.server_index.get(&tx.key) == Some(&id) {
                self.server_index.remove(&tx.key);
            }
            if tx.is_invite && self.invite_index.get(&(tx.call_id.clone(), tx.cseq)) == Some(&id) {
                self.invite_index.remove(&(tx.call_id, tx.cseq));
            }
        }
    }

    fn remove_client(&mut self, id: TxId) {
        if let Some(tx) = self.clients.remove(&id) {
            if self.client_index.get(&tx.key) == Some(&id) {
                self.client_index.remove(&tx.key);
            }
        }
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn server_key(req: &Request) -> ServerKey {
    let method = match req.method {
        Method::Ack => "INVITE",
        ref m => m.as_str(),
    };
    server_key_with_method(req, method)
}

fn server_key_with_method(req: &Request, method: &str) -> ServerKey {
    match top_via(&req.headers) {
        Some(via) if via.is_rfc3261_branch() => {
            let sent_by = format!(
                "{}:{}",
                via.host.to_ascii_lowercase(),
                via.port.unwrap_or(0)
            );
            ServerKey::Branch(via.branch.unwrap_or_default(), sent_by, method.to_string())
        }
        _ => legacy_key(req, method),
    }
}

/// RFC 3261 §17.2.3 matching for RFC 2543 peers.
fn legacy_key(req: &Request, method: &str) -> ServerKey {
    let h = &req.headers;
    let to_tag = if req.method == Method::Ack {
        String::new() // the ACK's To tag is the one we added; the INVITE had none
    } else {
        crate::headers::tag_of(h.get("To")).unwrap_or_default()
    };
    let cseq = h
        .get("CSeq")
        .and_then(|c| CSeq::parse(c).ok())
        .map_or(0, |c| c.seq);
    ServerKey::Legacy(format!(
        "{}|{}|{}|{}|{}|{}|{}",
        req.uri,
        crate::headers::tag_of(h.get("From")).unwrap_or_default(),
        to_tag,
        h.get("Call-ID").unwrap_or_default(),
        cseq,
        h.elements("Via").first().copied().unwrap_or_default(),
        method
    ))
}

fn client_key_of(headers: &Headers, method: &str) -> (String, String) {
    let branch = top_via(headers).and_then(|v| v.branch).unwrap_or_default();
    let method = if method == "ACK" { "INVITE" } else { method };
    (branch, method.to_string())
}

/// RFC 3261 §17.1.1.3: the ACK for a non-2xx final response, in the INVITE's transaction.
pub fn ack_for_non_2xx(invite: &Request, resp: &Response) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.elements("Via").first() {
        headers.push("Via", *via);
    }
    for route in invite.headers.get_all("Route") {
        headers.push("Route", route);
    }
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            headers.push(name, v);
        }
    }
    if let Some(to) = resp.headers.get("To").or_else(|| invite.headers.get("To")) {
        headers.push("To", to);
    }
    let seq = invite
        .headers
        .get("CSeq")
        .and_then(|c| CSeq::parse(c).ok())
        .map_or(1, |c| c.seq);
    headers.push("CSeq", format!("{seq} ACK"));
    headers.push("Max-Forwards", "70");
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers,
        body: Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, Framing, SipMessage};

    fn peer(transport: TransportKind) -> Peer {
        Peer {
            addr: "127.0.0.1:5070".parse().unwrap(),
            transport,
        }
    }

    fn request(method: &str, branch: &str, cseq: u32) -> Request {
        let text = format!(
            "{method} sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
From: <sip:a@h>;tag=f\r\nTo: <sip:echo@h>\r\nCall-ID: c1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\r\n"
        );
        match parse(text.as_bytes(), Framing::Datagram).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn response(req: &Request, status: u16) -> Response {
        let mut headers = Headers::default();
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            headers.push(name, req.headers.get(name).unwrap());
        }
        Response {
            status,
            reason: "X".into(),
            headers,
            body: Bytes::new(),
        }
    }

    fn sends(out: &[TxOutput]) -> usize {
        out.iter()
            .filter(|o| matches!(o, TxOutput::Send { .. }))
            .count()
    }

    /// Drives timers until `until`, returning the instants at which something was sent.
    fn run_timers(
        layer: &mut TransactionLayer,
        until: Instant,
        out: &mut Vec<TxOutput>,
    ) -> Vec<Instant> {
        let mut sent_at = Vec::new();
        while let Some(at) = layer.next_deadline().filter(|d| *d <= until) {
            let before = sends(out);
            layer.handle_timeout(at, out);
            for _ in before..sends(out) {
                sent_at.push(at);
            }
        }
        sent_at
    }

    #[test]
    fn invite_retransmission_is_absorbed_and_gets_last_response() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let now = Instant::now();
        let mut out = Vec::new();
        let inv = request("INVITE", "z9hG4bK1", 1);
        let RequestDisposition::New(id) =
            layer.on_request(&inv, peer(TransportKind::Udp), now, &mut out)
        else {
            panic!()
        };
        layer.respond(id, &response(&inv, 100), now, &mut out);
        out.clear();
        assert_eq!(
            layer.on_request(&inv, peer(TransportKind::Udp), now, &mut out),
            RequestDisposition::Absorbed
        );
        assert_eq!(sends(&out), 1, "the 100 Trying is resent");
    }

    #[test]
    fn two_xx_retransmits_until_ack_with_doubling_intervals() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let t0 = Instant::now();
        let mut out = Vec::new();
        let inv = request("INVITE", "z9hG4bK2", 1);
        let RequestDisposition::New(id) =
            layer.on_request(&inv, peer(TransportKind::Udp), t0, &mut out)
        else {
            panic!()
        };
        layer.respond(id, &response(&inv, 200), t0, &mut out);
        out.clear();
        let sent = run_timers(&mut layer, t0 + Duration::from_millis(7600), &mut out);
        let offsets: Vec<u128> = sent.iter().map(|t| (*t - t0).as_millis()).collect();
        assert_eq!(offsets, vec![500, 1500, 3500, 7500]);
        let ack = request("ACK", "z9hG4bKother", 1);
        assert_eq!(
            layer.on_request(
                &ack,
                peer(TransportKind::Udp),
                t0 + Duration::from_secs(8),
                &mut out
            ),
            RequestDisposition::AckForDialog {
                invite_tx: Some(id)
            }
        );
        out.clear();
        run_timers(&mut layer, t0 + Duration::from_secs(40), &mut out);
        assert_eq!(sends(&out), 0, "no retransmission after the ACK");
        assert!(!out.iter().any(|o| matches!(o, TxOutput::AckTimeout { .. })));
        assert!(layer.is_empty(), "timer L cleaned up");
    }

    #[test]
    fn unacknowledged_2xx_reports_ack_timeout_after_64_t1() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let t0 = Instant::now();
        let mut out = Vec::new();
        let inv = request("INVITE", "z9hG4bK3", 1);
        let RequestDisposition::New(id) =
            layer.on_request(&inv, peer(TransportKind::Tcp), t0, &mut out)
        else {
            panic!()
        };
        layer.respond(id, &response(&inv, 200), t0, &mut out);
        out.clear();
        run_timers(&mut layer, t0 + Duration::from_millis(31_999), &mut out);
        assert!(!out.iter().any(|o| matches!(o, TxOutput::AckTimeout { .. })));
        run_timers(&mut layer, t0 + Duration::from_secs(32), &mut out);
        assert!(out.contains(&TxOutput::AckTimeout { tx: id }));
    }

    #[test]
    fn non_2xx_final_retransmits_until_ack_then_confirmed() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let t0 = Instant::now();
        let mut out = Vec::new();
        let inv = request("INVITE", "z9hG4bK4", 1);
        let RequestDisposition::New(id) =
            layer.on_request(&inv, peer(TransportKind::Udp), t0, &mut out)
        else {
            panic!()
        };
        layer.respond(id, &response(&inv, 486), t0, &mut out);
        out.clear();
        let sent = run_timers(&mut layer, t0 + Duration::from_millis(1600), &mut out);
        assert_eq!(sent.len(), 2, "timer G at 0.5 s and 1.5 s");
        let ack = request("ACK", "z9hG4bK4", 1);
        assert_eq!(
            layer.on_request(
                &ack,
                peer(TransportKind::Udp),
                t0 + Duration::from_secs(2),
                &mut out
            ),
            RequestDisposition::AckAbsorbed
        );
        out.clear();
        run_timers(&mut layer, t0 + Duration::from_secs(6), &mut out);
        assert_eq!(sends(&out), 0);
        run_timers(&mut layer, t0 + Duration::from_secs(8), &mut out);
        assert!(layer.is_empty(), "timer I ended the transaction");
    }

    #[test]
    fn cancel_finds_pending_invite() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let t0 = Instant::now();
        let mut out = Vec::new();
        let inv = request("INVITE", "z9hG4bK5", 1);
        let RequestDisposition::New(inv_id) =
            layer.on_request(&inv, peer(TransportKind::Udp), t0, &mut out)
        else {
            panic!()
        };
        let cancel = request("CANCEL", "z9hG4bK5", 1);
        match layer.on_request(&cancel, peer(TransportKind::Udp), t0, &mut out) {
            RequestDisposition::Cancel {
                invite_tx,
                invite_pending,
                ..
            } => {
                assert_eq!(invite_tx, Some(inv_id));
                assert!(invite_pending);
            }
            other => panic!("{other:?}"),
        }
        let stray = request("CANCEL", "z9hG4bKnone", 1);
        assert!(matches!(
            layer.on_request(&stray, peer(TransportKind::Udp), t0, &mut out),
            RequestDisposition::Cancel {
                invite_tx: None,
                ..
            }
        ));
    }

    #[test]
    fn client_invite_timer_a_b_and_ack_for_error() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let t0 = Instant::now();
        let mut out = Vec::new();
        let inv = request("INVITE", "z9hG4bKc1", 1);
        let id = layer.send_request(inv.clone(), peer(TransportKind::Udp), t0, &mut out);
        out.clear();
        let sent = run_timers(&mut layer, t0 + Duration::from_millis(3600), &mut out);
        let offsets: Vec<u128> = sent.iter().map(|t| (*t - t0).as_millis()).collect();
        assert_eq!(offsets, vec![500, 1500, 3500], "timer A doubles");
        out.clear();
        assert!(layer.on_response(response(&inv, 503), t0 + Duration::from_secs(4), &mut out));
        let ack = out.iter().find_map(|o| match o {
            TxOutput::Send { data, .. } => Some(String::from_utf8_lossy(data).to_string()),
            _ => None,
        });
        assert!(ack.unwrap().starts_with("ACK sip:echo@127.0.0.1 SIP/2.0"));
        assert!(out
            .iter()
            .any(|o| matches!(o, TxOutput::Response { tx, .. } if *tx == id)));

        let inv2 = request("INVITE", "z9hG4bKc2", 2);
        let id2 = layer.send_request(inv2, peer(TransportKind::Udp), t0, &mut out);
        out.clear();
        run_timers(&mut layer, t0 + Duration::from_secs(33), &mut out);
        assert!(
            out.contains(&TxOutput::ClientTimeout { tx: id2 }),
            "timer B"
        );
    }

    #[test]
    fn client_non_invite_timer_e_caps_at_t2_and_f_fires() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let t0 = Instant::now();
        let mut out = Vec::new();
        let bye = request("BYE", "z9hG4bKb1", 2);
        let id = layer.send_request(bye.clone(), peer(TransportKind::Udp), t0, &mut out);
        out.clear();
        let sent = run_timers(&mut layer, t0 + Duration::from_millis(15_600), &mut out);
        let offsets: Vec<u128> = sent.iter().map(|t| (*t - t0).as_millis()).collect();
        assert_eq!(offsets, vec![500, 1500, 3500, 7500, 11_500, 15_500]);
        run_timers(&mut layer, t0 + Duration::from_secs(32), &mut out);
        assert!(out.contains(&TxOutput::ClientTimeout { tx: id }), "timer F");
        assert!(layer.is_empty());
    }

    #[test]
    fn client_2xx_retransmissions_reach_the_tu() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let t0 = Instant::now();
        let mut out = Vec::new();
        let inv = request("INVITE", "z9hG4bKc3", 1);
        layer.send_request(inv.clone(), peer(TransportKind::Tcp), t0, &mut out);
        out.clear();
        layer.on_response(response(&inv, 200), t0, &mut out);
        layer.on_response(response(&inv, 200), t0, &mut out);
        let passed = out
            .iter()
            .filter(|o| matches!(o, TxOutput::Response { .. }))
            .count();
        assert_eq!(passed, 2);
    }

    #[test]
    fn unmatched_response_is_dropped() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let mut out = Vec::new();
        let inv = request("INVITE", "z9hG4bKnobody", 1);
        assert!(!layer.on_response(response(&inv, 200), Instant::now(), &mut out));
        assert!(out.is_empty());
    }
}
