//! The tokio shell around [`Endpoint`]: UDP, TCP and TLS sockets, the timer, and a command
//! channel.
//!
//! One task owns the endpoint, so the SIP state needs no locks. Socket readers (one per UDP
//! socket, one per TCP or TLS connection) frame messages and hand them over a channel; writers
//! are per-connection tasks so a slow TCP peer never stalls the SIP loop. A TLS connection is a
//! TCP one whose byte stream runs through rustls ([`SipTls`]); its handshake runs in the
//! connection's own task under a timeout, so a peer that never finishes it holds nothing else.
//!
//! Every received message first meets the source [`AccessPolicy`] (with the address the
//! socket reports): a refused one never reaches the endpoint, so nothing is created for it.
//! New INVITEs of routes that require digest authentication are then challenged by the
//! endpoint (`crate::auth`); its counters become `huddle_sip_auth_challenges_total` and
//! `huddle_sip_refused_total{reason="auth_failed"}`.
//!
//! Limits ([`SipLimits`], `crate::limits`): the endpoint refuses new INVITEs over
//! `server.max_calls` or their source's limits with a stateless 503 (counted in
//! `huddle_sip_refused_total` by reason). Inbound TCP and TLS connections are counted at accept,
//! in all and per source, and one over a cap is closed at once; a TLS connection from a source
//! that is neither trusted nor a live call's peer is closed before its handshake. Every
//! connection's reader closes it when a message takes longer than the message timeout from its
//! first byte, or when no message came for the idle timeout and no live call's dialog uses it
//! (the reader asks the endpoint's task).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::access::{forbidden, AccessPolicy, KnownCalls, Verdict};
use crate::address::OutboundCall;
use crate::endpoint::{Endpoint, EndpointConfig, EndpointEvent, EndpointOutput, LegId};
use crate::error::FramingError;
use crate::framing::StreamFramer;
use crate::limits::{
    ConnectionLimits, ConnectionRefusal, ConnectionTable, LimitRefusal, LogThrottle, SipLimits,
    StreamClock, StreamExpiry,
};
use crate::message::Framing;
use crate::tls::SipTls;
use crate::transaction::{Peer, TransportKind};

/// One socket to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// UDP, TCP or TLS.
    pub transport: TransportKind,
    /// Local address.
    pub addr: SocketAddr,
}

/// Settings of the SIP service.
#[derive(Debug, Clone)]
pub struct SipServiceConfig {
    /// Sockets to open.
    pub listen: Vec<ListenAddr>,
    /// Endpoint settings (ports in it are filled from the bound sockets).
    pub endpoint: EndpointConfig,
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
    /// Which sources may open calls and send requests outside dialogs.
    pub access: AccessPolicy,
    /// How many calls and connections, and how fast.
    pub limits: SipLimits,
}

/// How often Call-IDs of ended legs are forgotten.
const KNOWN_CALLS_SWEEP: Duration = Duration::from_secs(30);

enum Command {
    Answer(LegId, Bytes),
    Provisional(LegId, u16, Option<Bytes>),
    Reject(LegId, u16, String),
    Hangup(LegId),
    AnswerReinvite(LegId, u16, Bytes),
    Reinvite(LegId, Bytes),
    Dial {
        call: Box<OutboundCall>,
        sdp: Bytes,
        reply: oneshot::Sender<Option<LegId>>,
    },
    SetDraining(bool),
    LegCount(oneshot::Sender<usize>),
}

/// Cloneable handle to drive the SIP service from call tasks.
#[derive(Clone)]
pub struct SipHandle {
    cmd: mpsc::UnboundedSender<Command>,
    bound: Arc<Vec<ListenAddr>>,
}

impl SipHandle {
    /// Answers an inbound leg with an SDP answer.
    pub fn answer(&self, leg: LegId, sdp: Bytes) {
        let _ = self.cmd.send(Command::Answer(leg, sdp));
    }
    /// Sends 180/183.
    pub fn provisional(&self, leg: LegId, status: u16, sdp: Option<Bytes>) {
        let _ = self.cmd.send(Command::Provisional(leg, status, sdp));
    }
    /// Rejects an unanswered inbound leg.
    pub fn reject(&self, leg: LegId, status: u16, reason: &str) {
        let _ = self
            .cmd
            .send(Command::Reject(leg, status, reason.to_string()));
    }
    /// Ends a leg from our side.
    pub fn hangup(&self, leg: LegId) {
        let _ = self.cmd.send(Command::Hangup(leg));
    }
    /// Answers (2xx with SDP) or refuses (>= 300) a pending re-INVITE.
    pub fn answer_reinvite(&self, leg: LegId, status: u16, sdp: Bytes) {
        let _ = self.cmd.send(Command::AnswerReinvite(leg, status, sdp));
    }
    /// Sends a re-INVITE with a new offer.
    pub fn reinvite(&self, leg: LegId, sdp: Bytes) {
        let _ = self.cmd.send(Command::Reinvite(leg, sdp));
    }
    /// Dials `call` out through the trunk; None when no trunk is usable.
    pub async fn dial(&self, call: &OutboundCall, sdp: Bytes) -> Option<LegId> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Dial {
                call: Box::new(call.clone()),
                sdp,
                reply,
            })
            .ok()?;
        rx.await.ok().flatten()
    }
    /// Refuse new INVITEs with 503 (or accept again).
    pub fn set_draining(&self, draining: bool) {
        let _ = self.cmd.send(Command::SetDraining(draining));
    }
    /// Number of live legs.
    pub async fn leg_count(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::LegCount(tx)).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
    /// The sockets actually bound.
    pub fn bound(&self) -> &[ListenAddr] {
        &self.bound
    }
}

enum Inbound {
    Message(Bytes, Peer),
    Oversized(Bytes, Peer),
    /// A TCP or TLS connection is up (the peer's transport says which).
    StreamOpened(Peer, mpsc::Sender<Bytes>),
    StreamClosed(Peer),
    /// A connection's reader asks, at its idle deadline, whether a live leg uses it.
    CarriesDialog(Peer, oneshot::Sender<bool>),
    /// A TLS acceptor asks whether an untrusted address is a live leg's peer (which may open a
    /// connection to send requests in its dialog).
    DialogSource(IpAddr, oneshot::Sender<bool>),
}

/// What every connection's reader needs to know.
#[derive(Debug, Clone, Copy)]
struct StreamSettings {
    max_message_size: usize,
    limits: ConnectionLimits,
}

/// The inbound connection caps, shared by the acceptors. Each admitted connection holds a
/// [`ConnectionSlot`] that gives its place back when the connection ends.
#[derive(Clone)]
struct ConnectionGate {
    table: Arc<Mutex<ConnectionTable>>,
    logs: Arc<Mutex<[LogThrottle; 3]>>,
}

/// How often a connection refusal of one kind is logged at most.
const CONNECTION_LOG_PERIOD: Duration = Duration::from_secs(10);

impl ConnectionGate {
    fn new(limits: &ConnectionLimits) -> ConnectionGate {
        ConnectionGate {
            table: Arc::new(Mutex::new(ConnectionTable::new(limits))),
            logs: Arc::new(Mutex::new(std::array::from_fn(|_| {
                LogThrottle::new(CONNECTION_LOG_PERIOD)
            }))),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, ConnectionTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new connection from `addr`, or None (counted and logged) when a cap is
    /// reached: the caller closes the connection at once.
    fn enter(&self, addr: SocketAddr) -> Option<ConnectionSlot> {
        let result = {
            let mut table = self.table();
            let result = table.try_open(addr.ip());
            metrics::gauge!("huddle_sip_connections_open").set(table.open() as f64);
            result
        };
        match result {
            Ok(()) => Some(ConnectionSlot {
                table: self.table.clone(),
                ip: addr.ip(),
            }),
            Err(reason) => {
                self.refused(addr, reason);
                None
            }
        }
    }

    /// Counts and (now and then) logs a connection closed at once.
    fn refused(&self, addr: SocketAddr, reason: ConnectionRefusal) {
        metrics::counter!("huddle_sip_connections_refused_total", "reason" => reason.label())
            .increment(1);
        let allowed = self.logs.lock().unwrap_or_else(|e| e.into_inner())[reason.index()]
            .allow(Instant::now());
        if let Some(held_back) = allowed {
            let (open, from_source) = {
                let table = self.table();
                (table.open(), table.open_from(addr.ip()))
            };
            tracing::warn!(from = %addr, reason = reason.label(), open, from_source, held_back, "SIP connection closed at once");
        }
    }
}

/// One admitted inbound connection's place under the caps.
struct ConnectionSlot {
    table: Arc<Mutex<ConnectionTable>>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.close(self.ip);
        metrics::gauge!("huddle_sip_connections_open").set(table.open() as f64);
    }
}

/// Binds every listen address and spawns the service, without TLS. Events for the application
/// arrive on the returned receiver.
pub async fn start(
    config: SipServiceConfig,
) -> io::Result<(SipHandle, mpsc::UnboundedReceiver<EndpointEvent>)> {
    start_with(config, None).await
}

/// Binds every listen address and spawns the service; `tls` serves the TLS listeners (it must
/// have a certificate when there is one) and connections to `;transport=tls` peers.
pub async fn start_with(
    mut config: SipServiceConfig,
    tls: Option<SipTls>,
) -> io::Result<(SipHandle, mpsc::UnboundedReceiver<EndpointEvent>)> {
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(4096);
    let settings = StreamSettings {
        max_message_size: config.max_message_size,
        limits: config.limits.connections,
    };
    let gate = ConnectionGate::new(&config.limits.connections);
    let mut tls_port = None;
    let mut udp_sockets = Vec::new();
    let mut bound = Vec::new();
    for listen in &config.listen {
        match listen.transport {
            TransportKind::Udp => {
                let socket = Arc::new(UdpSocket::bind(listen.addr).await?);
                let addr = socket.local_addr()?;
                bound.push(ListenAddr {
                    transport: TransportKind::Udp,
                    addr,
                });
                config.endpoint.udp_port.get_or_insert(addr.port());
                tokio::spawn(udp_reader(
                    socket.clone(),
                    in_tx.clone(),
                    config.max_message_size,
                ));
                udp_sockets.push(socket);
            }
            TransportKind::Tcp => {
                let listener = TcpListener::bind(listen.addr).await?;
                let addr = listener.local_addr()?;
                bound.push(ListenAddr {
                    transport: TransportKind::Tcp,
                    addr,
                });
                config.endpoint.tcp_port.get_or_insert(addr.port());
                tokio::spawn(tcp_acceptor(
                    listener,
                    in_tx.clone(),
                    settings,
                    gate.clone(),
                ));
            }
            TransportKind::Tls => {
                let Some(tls) = tls.clone().filter(SipTls::can_listen) else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("TLS listener {} without a certificate", listen.addr),
                    ));
                };
                let listener = TcpListener::bind(listen.addr).await?;
                let addr = listener.local_addr()?;
                bound.push(ListenAddr {
                    transport: TransportKind::Tls,
                    addr,
                });
                tls_port.get_or_insert(addr.port());
                tokio::spawn(tls_acceptor(
                    listener,
                    tls,
                    in_tx.clone(),
                    settings,
                    gate.clone(),
                    config.access.clone(),
                ));
            }
        }
    }
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let mut endpoint = Endpoint::new(config.endpoint.clone());
    endpoint.set_inbound_auth(config.access.inbound_auth().cloned(), Instant::now());
    endpoint.set_tls_port(tls_port);
    endpoint.set_call_limits(Some(config.limits.calls));
    let service = Service {
        endpoint,
        udp_sockets,
        stream_writers: HashMap::new(),
        tls,
        in_tx,
        events: event_tx,
        max_message_size: config.max_message_size,
        stream_settings: settings,
        access: config.access.clone(),
        known: KnownCalls::default(),
    };
    tokio::spawn(service.run(in_rx, cmd_rx));
    Ok((
        SipHandle {
            cmd: cmd_tx,
            bound: Arc::new(bound),
        },
        event_rx,
    ))
}

struct Service {
    endpoint: Endpoint,
    udp_sockets: Vec<Arc<UdpSocket>>,
    /// Writers of the open TCP and TLS connections, by peer address and transport.
    stream_writers: HashMap<Peer, mpsc::Sender<Bytes>>,
    /// Client settings for connections to TLS peers (and the listeners' certificate).
    tls: Option<SipTls>,
    in_tx: mpsc::Sender<Inbound>,
    events: mpsc::UnboundedSender<EndpointEvent>,
    max_message_size: usize,
    stream_settings: StreamSettings,
    access: AccessPolicy,
    /// Call-IDs of live legs: requests in their dialogs pass from any source.
    known: KnownCalls,
}

impl Service {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut out = Vec::new();
        let mut sweep = tokio::time::interval(KNOWN_CALLS_SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self
                .endpoint
                .next_deadline()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                msg = inbound.recv() => {
                    let Some(msg) = msg else { break };
                    self.on_inbound(msg, &mut out);
                }
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.on_command(cmd, &mut out);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.endpoint.handle_timeout(Instant::now(), &mut out);
                }
                _ = sweep.tick() => {
                    let endpoint = &self.endpoint;
                    self.known.sweep(Instant::now(), |leg| endpoint.invite_of(leg).is_some());
                    self.endpoint.sweep_limits(Instant::now());
                }
            }
            self.flush(&mut out).await;
        }
    }

    fn on_inbound(&mut self, msg: Inbound, out: &mut Vec<EndpointOutput>) {
        let now = Instant::now();
        match msg {
            Inbound::Message(data, peer) => {
                metrics::counter!("huddle_sip_messages_received_total", "transport" => peer.transport.via_token()).increment(1);
                let framing = match peer.transport {
                    TransportKind::Udp => Framing::Datagram,
                    TransportKind::Tcp | TransportKind::Tls => Framing::Stream,
                };
                let endpoint = &self.endpoint;
                let known = &mut self.known;
                let verdict = self
                    .access
                    .check(peer.addr.ip(), &data, framing, |call_id| {
                        known.contains(call_id, now, |leg| endpoint.invite_of(leg).is_some())
                    });
                if !admitted(verdict, &data, peer, out) {
                    return;
                }
                let before = self.endpoint.stats();
                self.endpoint.handle_message(&data, peer, now, out);
                let after = self.endpoint.stats();
                if after.malformed > before.malformed {
                    metrics::counter!("huddle_sip_malformed_total").increment(1);
                }
                if after.auth_challenges > before.auth_challenges {
                    metrics::counter!("huddle_sip_auth_challenges_total").increment(1);
                }
                if after.auth_refusals > before.auth_refusals {
                    metrics::counter!("huddle_sip_refused_total", "reason" => "auth_failed")
                        .increment(1);
                }
                for reason in LimitRefusal::ALL {
                    let i = reason.index();
                    let refused = after.limit_refusals[i] - before.limit_refusals[i];
                    if refused > 0 {
                        metrics::counter!("huddle_sip_refused_total", "reason" => reason.label())
                            .increment(refused);
                    }
                }
            }
            Inbound::Oversized(head, peer) => {
                metrics::counter!("huddle_sip_oversized_total").increment(1);
                let verdict = self.access.check_oversized(peer.addr.ip(), &head);
                if !admitted(verdict, &head, peer, out) {
                    return;
                }
                tracing::info!(from = %peer.addr, limit = self.max_message_size, "SIP message over the size cap");
                self.endpoint.reject_oversized(&head, peer, out);
            }
            Inbound::StreamOpened(peer, writer) => {
                self.stream_writers.insert(peer, writer);
            }
            Inbound::StreamClosed(peer) => {
                self.stream_writers.remove(&peer);
            }
            Inbound::CarriesDialog(peer, reply) => {
                let _ = reply.send(self.endpoint.carries_dialog(peer));
            }
            Inbound::DialogSource(ip, reply) => {
                let _ = reply.send(self.endpoint.has_leg_with(ip));
            }
        }
    }

    fn on_command(&mut self, cmd: Command, out: &mut Vec<EndpointOutput>) {
        let now = Instant::now();
        let ep = &mut self.endpoint;
        match cmd {
            Command::Answer(leg, sdp) => ep.answer(leg, sdp, now, out),
            Command::Provisional(leg, status, sdp) => ep.provisional(leg, status, sdp, now, out),
            Command::Reject(leg, status, reason) => ep.reject(leg, status, &reason, now, out),
            Command::Hangup(leg) => ep.hangup(leg, now, out),
            Command::AnswerReinvite(leg, status, sdp) => {
                ep.answer_reinvite(leg, status, sdp, now, out)
            }
            Command::Reinvite(leg, sdp) => ep.reinvite(leg, sdp, now, out),
            Command::Dial { call, sdp, reply } => {
                let leg = ep.dial_call(&call, sdp, now, out);
                let call_id = leg
                    .and_then(|l| ep.invite_of(l))
                    .and_then(|i| i.headers.get("Call-ID"));
                if let (Some(leg), Some(call_id)) = (leg, call_id) {
                    self.known.insert(call_id, leg);
                }
                let _ = reply.send(leg);
            }
            Command::SetDraining(d) => ep.set_draining(d),
            Command::LegCount(reply) => {
                let _ = reply.send(ep.leg_count());
            }
        }
    }

    async fn flush(&mut self, out: &mut Vec<EndpointOutput>) {
        for o in out.drain(..) {
            match o {
                EndpointOutput::Event(ev) => {
                    if let EndpointEvent::IncomingCall { leg, invite, .. } = &ev {
                        if let Some(call_id) = invite.headers.get("Call-ID") {
                            self.known.insert(call_id, *leg);
                        }
                    }
                    let _ = self.events.send(ev);
                }
                EndpointOutput::Send { peer, data } => match peer.transport {
                    TransportKind::Udp => {
                        let socket = self
                            .udp_sockets
                            .iter()
                            .find(|s| {
                                s.local_addr()
                                    .is_ok_and(|a| a.is_ipv4() == peer.addr.is_ipv4())
                            })
                            .or_else(|| self.udp_sockets.first());
                        if let Some(socket) = socket {
                            if let Err(e) = socket.try_send_to(&data, peer.addr) {
                                tracing::debug!(to = %peer.addr, error = %e, "UDP send failed");
                            }
                        }
                    }
                    TransportKind::Tcp | TransportKind::Tls => self.send_stream(peer, data),
                },
            }
        }
    }

    /// Sends over an open TCP or TLS connection to `peer`, or opens one (RFC 3261 §18: reuse
    /// first). A new TLS connection checks the server's certificate.
    fn send_stream(&mut self, peer: Peer, data: Bytes) {
        if let Some(writer) = self.stream_writers.get(&peer) {
            if writer.try_send(data.clone()).is_ok() {
                return;
            }
            self.stream_writers.remove(&peer);
        }
        let tls = match peer.transport {
            TransportKind::Tls => match &self.tls {
                Some(tls) => Some(tls.clone()),
                None => {
                    tracing::warn!(to = %peer.addr, "no TLS settings to connect with");
                    return;
                }
            },
            _ => None,
        };
        let (writer_tx, writer_rx) = mpsc::channel::<Bytes>(256);
        let _ = writer_tx.try_send(data);
        self.stream_writers.insert(peer, writer_tx.clone());
        let in_tx = self.in_tx.clone();
        let settings = self.stream_settings;
        let writer = Some((writer_tx, writer_rx));
        let addr = peer.addr;
        tokio::spawn(async move {
            if let Some(tls) = tls {
                match tls.connect(addr).await {
                    Ok(stream) => {
                        stream_connection(stream, peer, in_tx, settings, writer, None).await
                    }
                    Err(error) => {
                        metrics::counter!("huddle_sip_tls_handshake_failures_total", "side" => "client").increment(1);
                        tracing::warn!(to = %addr, %error, "TLS connection failed");
                        let _ = in_tx.send(Inbound::StreamClosed(peer)).await;
                    }
                }
                return;
            }
            match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    stream_connection(stream, peer, in_tx, settings, writer, None).await
                }
                _ => {
                    tracing::debug!(to = %addr, "TCP connect failed");
                    let _ = in_tx.send(Inbound::StreamClosed(peer)).await;
                }
            }
        });
    }
}

/// Acts on a refusal (counted, logged, answered with 403 when the verdict says so); true when
/// the message goes on to the endpoint.
fn admitted(verdict: Verdict, data: &[u8], peer: Peer, out: &mut Vec<EndpointOutput>) -> bool {
    let Verdict::Refuse { reason, answer } = verdict else {
        return true;
    };
    metrics::counter!("huddle_sip_refused_total", "reason" => reason.label()).increment(1);
    tracing::debug!(from = %peer.addr, reason = reason.label(), answer, "SIP request refused");
    if answer {
        if let Some(data) = forbidden(data) {
            out.push(EndpointOutput::Send { peer, data });
        }
    }
    false
}

async fn udp_reader(socket: Arc<UdpSocket>, in_tx: mpsc::Sender<Inbound>, max: usize) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, from)) => {
                let peer = Peer {
                    addr: from,
                    transport: TransportKind::Udp,
                };
                let data = Bytes::copy_from_slice(&buf[..len]);
                let msg = if len > max {
                    Inbound::Oversized(data, peer)
                } else {
                    Inbound::Message(data, peer)
                };
                if in_tx.send(msg).await.is_err() {
                    return;
                }
            }
            // ICMP port unreachable and the like surface as errors on some systems: keep reading.
            Err(e) => tracing::trace!(error = %e, "UDP receive error"),
        }
    }
}

/// Accepts TCP connections; one over a connection cap is closed at once.
async fn tcp_acceptor(
    listener: TcpListener,
    in_tx: mpsc::Sender<Inbound>,
    settings: StreamSettings,
    gate: ConnectionGate,
) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let Some(slot) = gate.enter(addr) else {
                    continue; // dropping the stream closes it
                };
                let peer = Peer {
                    addr,
                    transport: TransportKind::Tcp,
                };
                tokio::spawn(stream_connection(
                    stream,
                    peer,
                    in_tx.clone(),
                    settings,
                    None,
                    Some(slot),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accepts connections on a TLS listener; each runs its handshake (bounded by the timeout) in
/// a task of its own, then becomes a connection like a TCP one. A peer that fails or stalls the
/// handshake (plain SIP sent to the TLS port, a scanner) is closed without a word. Before the
/// handshake, a connection from outside `sip.trusted` is closed unless its address is a live
/// leg's peer (a trunk we dialled may open a connection for a BYE), and one over a connection
/// cap is closed: neither costs a handshake.
async fn tls_acceptor(
    listener: TcpListener,
    tls: SipTls,
    in_tx: mpsc::Sender<Inbound>,
    settings: StreamSettings,
    gate: ConnectionGate,
    access: AccessPolicy,
) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let tls = tls.clone();
                let in_tx = in_tx.clone();
                let gate = gate.clone();
                let trusted = access.may_connect(addr.ip());
                tokio::spawn(async move {
                    if !trusted && !is_dialog_source(&in_tx, addr.ip()).await {
                        gate.refused(addr, ConnectionRefusal::UntrustedSource);
                        return;
                    }
                    let Some(slot) = gate.enter(addr) else {
                        return;
                    };
                    match tls.accept(stream).await {
                        Ok(stream) => {
                            let peer = Peer {
                                addr,
                                transport: TransportKind::Tls,
                            };
                            stream_connection(stream, peer, in_tx, settings, None, Some(slot))
                                .await;
                        }
                        Err(error) => {
                            metrics::counter!("huddle_sip_tls_handshake_failures_total", "side" => "server").increment(1);
                            tracing::debug!(from = %addr, %error, "TLS handshake failed; closing");
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Asks the endpoint's task whether `ip` is a live leg's peer.
async fn is_dialog_source(in_tx: &mpsc::Sender<Inbound>, ip: IpAddr) -> bool {
    let (reply, answer) = oneshot::channel();
    if in_tx.send(Inbound::DialogSource(ip, reply)).await.is_err() {
        return false;
    }
    answer.await.unwrap_or(false)
}

/// Why a connection's reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    /// The peer closed it, or reading failed.
    ByPeer,
    /// A message took longer than the message timeout.
    MessageTimeout,
    /// Idle, carrying no live call.
    Idle,
    /// The service is gone.
    Shutdown,
}

/// Reads and writes one TCP or TLS connection until either side closes, framing breaks, a
/// message takes too long, or it is idle without a live call. `slot` is its place under the
/// inbound connection caps (None for connections we opened), given back when it ends.
async fn stream_connection<S>(
    stream: S,
    peer: Peer,
    in_tx: mpsc::Sender<Inbound>,
    settings: StreamSettings,
    writer: Option<(mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)>,
    slot: Option<ConnectionSlot>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let _slot = slot;
    let addr = peer.addr;
    let (mut reader, mut write_half) = tokio::io::split(stream);
    let (writer_tx, mut writer_rx) = writer.unwrap_or_else(|| mpsc::channel(256));
    if in_tx
        .send(Inbound::StreamOpened(peer, writer_tx))
        .await
        .is_err()
    {
        return;
    }
    let write_task = tokio::spawn(async move {
        while let Some(data) = writer_rx.recv().await {
            if write_half.write_all(&data).await.is_err() {
                break;
            }
            // TLS buffers records until flushed; for TCP this is a no-op.
            if write_half.flush().await.is_err() {
                break;
            }
        }
    });
    let mut framer = StreamFramer::new(settings.max_message_size);
    let mut clock = StreamClock::new(&settings.limits, Instant::now());
    let mut buf = vec![0u8; 16 * 1024];
    let closed = loop {
        let (deadline, expiry) = clock.deadline();
        let read = tokio::select! {
            read = reader.read(&mut buf) => read,
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                if expiry == StreamExpiry::PartialMessage {
                    break Closed::MessageTimeout;
                }
                let (reply, answer) = oneshot::channel();
                if in_tx.send(Inbound::CarriesDialog(peer, reply)).await.is_err() {
                    break Closed::Shutdown;
                }
                if answer.await.unwrap_or(false) {
                    tracing::debug!(from = %addr, "idle connection kept: a live call's dialog uses it");
                    clock.carries_call(Instant::now());
                    continue;
                }
                break Closed::Idle;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break Closed::ByPeer,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        let mut messages = 0;
        loop {
            match framer.next_message() {
                Ok(Some(msg)) => {
                    messages += 1;
                    if in_tx.send(Inbound::Message(msg, peer)).await.is_err() {
                        write_task.abort();
                        return;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::info!(from = %addr, error = %err, "closing a stream connection with broken framing");
                    let pending = framer.buffered();
                    let head = Bytes::copy_from_slice(&pending[..pending.len().min(16 * 1024)]);
                    let msg = match err {
                        FramingError::TooLarge { .. } => Inbound::Oversized(head, peer),
                        FramingError::BadContentLength(_) => Inbound::Message(head, peer),
                    };
                    let _ = in_tx.send(msg).await;
                    // Give the writer a moment to send the error response before closing.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    write_task.abort();
                    let _ = in_tx.send(Inbound::StreamClosed(peer)).await;
                    return;
                }
            }
        }
        clock.on_read(Instant::now(), messages, framer.pending());
    };
    match closed {
        Closed::MessageTimeout => {
            metrics::counter!("huddle_sip_connections_timed_out_total", "reason" => "message")
                .increment(1);
            tracing::debug!(from = %addr, pending = framer.pending(), timeout = ?settings.limits.message_timeout, "closing a connection whose message did not complete in time");
        }
        Closed::Idle => {
            metrics::counter!("huddle_sip_connections_timed_out_total", "reason" => "idle")
                .increment(1);
            tracing::debug!(from = %addr, timeout = ?settings.limits.idle_timeout, "closing an idle connection");
        }
        Closed::ByPeer | Closed::Shutdown => {}
    }
    write_task.abort();
    let _ = in_tx.send(Inbound::StreamClosed(peer)).await;
}
