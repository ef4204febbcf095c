//! The stream task: one per ai-agent stream member, on the tokio runtime, never on a mixing
//! thread. It dials the service (signed upgrade), sends `start`, then every 20 ms turns the
//! frames the room handed over into `media` messages, and turns the service's `playAudio`
//! into frames for the room; it answers `checkpoint` and `clearAudio`, forwards relayed
//! digits, reconnects with backoff after transient failures and reports what happens to the
//! stream's status callback.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use huddle_events::HttpClient;
use huddle_mixer::MAX_FRAME;
use huddle_xml::{AudioTrack, HttpMethod};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use crate::audio::{Converter, MediaFormat};
use crate::protocol::{
    DtmfBody, Incoming, MediaBody, Outgoing, StartBody, WireFormat, MAX_SOCKET_MESSAGE,
};
use crate::queue::{ServicePort, Track};
use crate::settings::StreamSettings;

/// Seconds of service audio queued for playing at most (the protocol's ≈ 60 s); audio sent
/// beyond it is dropped and counted (`buffer_overflow`).
pub const MAX_PLAYBACK_SECS: usize = 60;
/// Messages waiting for the socket at most (one second of media); more are dropped and
/// counted, so a service that stops reading costs only its own frames.
const OUTBOX: usize = 50;
/// The kernel send buffer of a stream's socket. Left to itself Linux grows it to megabytes
/// (minutes of media on loopback), all held in kernel memory while a service stalls and
/// hiding the stall from the outbox's drop count; 64 KiB (which the kernel doubles) holds
/// a few seconds of the largest format, enough for any network hiccup.
const SOCKET_SEND_BUFFER: usize = 64 * 1024;
/// How long a connection attempt (TCP, TLS and upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnection: how many attempts in a row, and how they are spaced.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Attempts after a failure before the stream gives up (Plivo tries twice more).
    pub retries: u32,
    /// Wait before the first retry; doubled for each one after.
    pub first: Duration,
    /// Longest wait.
    pub max: Duration,
    /// A connection that lasted this long resets the count.
    pub healthy_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            retries: 2,
            first: Duration::from_millis(250),
            max: Duration::from_secs(4),
            healthy_after: Duration::from_secs(10),
        }
    }
}

/// What every stream shares: the signed HTTP client (status callbacks, and its signer for the
/// upgrade request), the account id, the TLS settings and the reconnection policy.
#[derive(Clone)]
pub struct StreamDeps {
    /// Signed requests.
    pub http: HttpClient,
    /// `http.auth_id`, the `start` event's `accountId`.
    pub account_id: String,
    /// For wss:// (system roots unless a test supplies its own).
    pub tls: Arc<rustls::ClientConfig>,
    /// Reconnection.
    pub backoff: Backoff,
}

impl StreamDeps {
    /// Deps with TLS checked against the system's CA certificates.
    pub fn new(http: HttpClient, account_id: String) -> StreamDeps {
        StreamDeps {
            http,
            account_id,
            tls: Arc::new(system_tls()),
            backoff: Backoff::default(),
        }
    }
}

/// A rustls client config on the system's CA store, with the aws-lc-rs provider reqwest uses.
pub fn system_tls() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth())
    .unwrap_or_else(|_| {
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    })
}

/// Who the stream is, for the service and the callbacks.
#[derive(Debug, Clone)]
pub struct StreamIdentity {
    /// The member's call uuid (`callId`, `CallUUID`).
    pub call_uuid: String,
    /// This stream's uuid.
    pub stream_id: String,
    /// The MPC's friendly name.
    pub mpc_name: String,
    /// The MPC's uuid (`MPCUUID`).
    pub mpc_uuid: String,
    /// The member's id.
    pub member_id: u64,
    /// Caller and callee of the member's call.
    pub from: String,
    /// Callee.
    pub to: String,
    /// The member's call's direction (`Direction`): `inbound` for a call that anchors the
    /// stream by XML, `outbound` for a member the API made (huddle dials the service).
    pub direction: &'static str,
}

/// Told to the stream by its member.
#[derive(Debug)]
pub enum Control {
    /// A digit relayed into the room.
    Dtmf(char),
    /// The member left: close the socket.
    Stop,
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// Stopped by the member or closed normally by the service.
    Stopped,
    /// Could not (re)connect, or lost for good; the reason as logged.
    Failed(String),
}

/// Why one socket's session ended.
enum SessionEnd {
    /// The member stopped the stream.
    Stopped,
    /// The service closed normally (1000): it is done.
    ServiceClosed,
    /// The connection failed; maybe worth another try.
    Lost(String),
}

/// Playback: the service's audio at the room's rate, waiting to go into the room's queue.
struct Playback {
    room_rate: u32,
    frame: usize,
    pending: VecDeque<i16>,
    max: usize,
    converters: Vec<(u32, Converter)>,
    scratch: Vec<i16>,
    /// Checkpoints waiting, with the sequence number of the last frame before them.
    checkpoints: VecDeque<(String, u64)>,
    /// Overflowing now (logged and reported once per episode).
    overflowing: bool,
}

impl Playback {
    fn new(room_rate: u32) -> Playback {
        let max = MAX_PLAYBACK_SECS * room_rate as usize;
        Playback {
            room_rate,
            frame: room_rate as usize / 50,
            pending: VecDeque::with_capacity(room_rate as usize),
            max,
            converters: Vec::new(),
            scratch: Vec::with_capacity(MAX_FRAME),
            checkpoints: VecDeque::new(),
            overflowing: false,
        }
    }

    /// Queues decoded samples; returns the samples dropped for want of room.
    fn push(&mut self, format: MediaFormat, samples: &[i16]) -> usize {
        let rate = format.rate();
        let mut converted = std::mem::take(&mut self.scratch);
        converted.clear();
        if rate == self.room_rate {
            converted.extend_from_slice(samples);
        } else {
            let i = match self.converters.iter().position(|(r, _)| *r == rate) {
                Some(i) => i,
                None => match Converter::new(rate, self.room_rate) {
                    Ok(c) => {
                        self.converters.push((rate, c));
                        self.converters.len() - 1
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "playAudio dropped");
                        self.scratch = converted;
                        return samples.len();
                    }
                },
            };
            self.converters[i].1.push(samples, &mut converted);
        }
        let room = self.max.saturating_sub(self.pending.len());
        let taken = converted.len().min(room);
        self.pending.extend(&converted[..taken]);
        let dropped = converted.len() - taken;
        self.scratch = converted;
        dropped
    }

    /// Pads what is queued to whole frames (with the resamplers' partial input), so a
    /// checkpoint or the end of speech falls on a frame boundary.
    fn flush(&mut self) {
        let mut tail = std::mem::take(&mut self.scratch);
        tail.clear();
        for (_, c) in &mut self.converters {
            c.flush(&mut tail);
        }
        let room = self.max.saturating_sub(self.pending.len());
        self.pending.extend(tail.iter().take(room));
        self.scratch = tail;
        let partial = self.pending.len() % self.frame;
        if partial != 0 {
            self.pending
                .extend(std::iter::repeat_n(0, self.frame - partial));
        }
    }

    /// Moves whole frames into the room's queue while it has space.
    fn feed(&mut self, port: &mut ServicePort) {
        let mut frame = [0i16; MAX_FRAME];
        while self.pending.len() >= self.frame {
            for (slot, s) in frame[..self.frame].iter_mut().zip(self.pending.iter()) {
                *slot = *s;
            }
            if !port.play(&frame[..self.frame]) {
                return;
            }
            self.pending.drain(..self.frame);
        }
        // The tail of an utterance plays once the room has caught up with everything else.
        if !self.pending.is_empty() && port.last_played() == port.last_queued() {
            self.flush();
        }
    }

    fn clear(&mut self, port: &mut ServicePort) {
        self.pending.clear();
        for (_, c) in &mut self.converters {
            c.reset();
        }
        self.checkpoints.clear();
        self.overflowing = false;
        port.clear();
    }

    /// The sequence number the last frame queued so far will have.
    fn end_seq(&self, port: &ServicePort) -> u64 {
        port.last_queued() + (self.pending.len() / self.frame) as u64
    }
}

/// One socket's writer: messages go out in order; a slow socket only fills the outbox.
fn spawn_writer<S>(mut sink: S) -> mpsc::Sender<Message>
where
    S: futures_util::Sink<Message> + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Message>(OUTBOX);
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let closing = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || closing {
                break;
            }
        }
    });
    tx
}

fn epoch_ms() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .to_string()
}

/// The URL the upgrade is signed for: Plivo's receivers check `http(s)://host/path?query`.
fn signing_url(ws_url: &str) -> String {
    if let Some(rest) = ws_url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = ws_url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        ws_url.to_string()
    }
}

/// The stream's state across reconnections.
pub struct Stream {
    settings: StreamSettings,
    identity: StreamIdentity,
    deps: StreamDeps,
    port: ServicePort,
    control: mpsc::Receiver<Control>,
    callbacks: Option<mpsc::Sender<Vec<(String, String)>>>,
    playback: Playback,
    /// Per track (inbound, outbound): the room's rate to the stream's.
    to_service: [Converter; 2],
    started: Instant,
    /// The kinds of refused message already reported on this connection: each kind is
    /// reported once per connection, so a service repeating a mistake cannot flood the
    /// status callback (the metric counts every one).
    refused_reported: Vec<&'static str>,
}

impl Stream {
    /// A stream for a member of a room mixing at `room_rate`.
    pub fn new(
        settings: StreamSettings,
        identity: StreamIdentity,
        deps: StreamDeps,
        port: ServicePort,
        room_rate: u32,
        control: mpsc::Receiver<Control>,
    ) -> Stream {
        let converter = || {
            Converter::new(room_rate, settings.format.rate())
                .or_else(|_| Converter::new(room_rate, room_rate))
                .unwrap_or_else(|_| unreachable_converter())
        };
        let to_service = [converter(), converter()];
        let callbacks = settings.status_callback.as_ref().map(|target| {
            let (tx, mut rx) = mpsc::channel::<Vec<(String, String)>>(32);
            let http = deps.http.clone();
            let url = target.url.clone();
            let method = target.method;
            // One task per stream keeps its callbacks in order.
            tokio::spawn(async move {
                while let Some(params) = rx.recv().await {
                    if let Err(e) = http.notify(&url, method, &params).await {
                        tracing::warn!(url = %url, error = %e, "stream status callback failed");
                    }
                }
            });
            tx
        });
        Stream {
            playback: Playback::new(room_rate),
            settings,
            identity,
            deps,
            port,
            control,
            callbacks,
            to_service,
            started: Instant::now(),
            refused_reported: Vec::new(),
        }
    }

    /// Runs the stream until the member stops it or it fails for good.
    pub async fn run(mut self) -> StreamEnd {
        let backoff = self.deps.backoff;
        let mut failures = 0u32;
        let end = loop {
            let attempt_at = Instant::now();
            let outcome = match connect(&self.settings, &self.deps).await {
                Ok(ws) => {
                    tracing::info!(stream_id = %self.identity.stream_id, url = %self.settings.url, "AI stream connected");
                    metrics::counter!("huddle_aistream_connects_total").increment(1);
                    self.status("StartStream", "", "");
                    self.session(ws).await
                }
                Err(e) => SessionEnd::Lost(e),
            };
            match outcome {
                SessionEnd::Stopped => {
                    self.status("StopStream", "", "stopped");
                    break StreamEnd::Stopped;
                }
                SessionEnd::ServiceClosed => {
                    tracing::info!(stream_id = %self.identity.stream_id, "AI service closed the stream");
                    self.status("StopStream", "", "completed");
                    break StreamEnd::Stopped;
                }
                SessionEnd::Lost(reason) => {
                    if attempt_at.elapsed() >= backoff.healthy_after {
                        failures = 0;
                    }
                    failures += 1;
                    metrics::counter!("huddle_aistream_failures_total").increment(1);
                    self.status("DroppedStream", &reason, "connection_failed");
                    if failures > backoff.retries {
                        tracing::warn!(stream_id = %self.identity.stream_id, url = %self.settings.url, reason = %reason, "AI stream failed for good");
                        break StreamEnd::Failed(reason);
                    }
                    let wait = backoff
                        .first
                        .saturating_mul(1 << (failures - 1).min(16))
                        .min(backoff.max);
                    tracing::warn!(stream_id = %self.identity.stream_id, url = %self.settings.url, reason = %reason, retry_in_ms = wait.as_millis() as u64, "AI stream lost; reconnecting");
                    if self.wait_or_stop(wait).await {
                        self.status("StopStream", "", "stopped");
                        break StreamEnd::Stopped;
                    }
                }
            }
        };
        // The room keeps no audio of a stream that ended.
        self.playback.clear(&mut self.port);
        end
    }

    /// Waits out a backoff while the room's frames are drained (and dropped); true when the
    /// member stopped the stream meanwhile.
    async fn wait_or_stop(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return false,
                _ = tick.tick() => {
                    while self.port.mix().is_some() {}
                    self.playback.feed(&mut self.port);
                }
                control = self.control.recv() => match control {
                    Some(Control::Dtmf(_)) => {}
                    Some(Control::Stop) | None => return true,
                },
            }
        }
    }
}

/// Opens the socket: the upgrade request carries the signature headers.
async fn connect(
    settings: &StreamSettings,
    deps: &StreamDeps,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
> {
    let mut request = settings
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad service URL: {e}"))?;
    if let Some(signer) = deps.http.signer() {
        let url = signing_url(&settings.url);
        for (name, value) in signer.headers(HttpMethod::Get, &url, &[]) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                request.headers_mut().insert(name, value);
            }
        }
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_SOCKET_MESSAGE))
        .max_frame_size(Some(MAX_SOCKET_MESSAGE));
    let connector = Connector::Rustls(deps.tls.clone());
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((ws, _))) => {
            bound_send_buffer(&ws);
            Ok(ws)
        }
        Ok(Err(e)) => Err(format!("cannot connect to the AI service: {e}")),
        Err(_) => Err("cannot connect to the AI service: timed out".into()),
    }
}

/// Caps the socket's send buffer at [`SOCKET_SEND_BUFFER`]; a failure only costs the cap.
fn bound_send_buffer(
    ws: &tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) {
    let tcp = match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
        tokio_tungstenite::MaybeTlsStream::Rustls(tls) => tls.get_ref().0,
        _ => return,
    };
    if let Err(e) = socket2::SockRef::from(tcp).set_send_buffer_size(SOCKET_SEND_BUFFER) {
        tracing::debug!(error = %e, "cannot bound the stream socket's send buffer");
    }
}

impl Stream {
    async fn session(
        &mut self,
        ws: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> SessionEnd {
        let (sink, mut source) = ws.split();
        let outbox = spawn_writer(sink);
        self.refused_reported.clear();
        let mut seq = 0u64;
        let stream_id = self.identity.stream_id.clone();
        let extra = self.settings.extra_headers.clone();
        let format = self.settings.format;
        let next = |seq: &mut u64| {
            *seq += 1;
            *seq
        };
        let start = Outgoing::Start {
            sequence_number: next(&mut seq),
            start: StartBody {
                call_id: self.identity.call_uuid.clone(),
                stream_id: stream_id.clone(),
                account_id: self.deps.account_id.clone(),
                tracks: match self.settings.track {
                    AudioTrack::Inbound => vec!["inbound".into()],
                    AudioTrack::Outbound => vec!["outbound".into()],
                    AudioTrack::Both => vec!["inbound".into(), "outbound".into()],
                },
                media_format: WireFormat {
                    encoding: format.mime().into(),
                    sample_rate: format.rate(),
                },
            },
            extra_headers: extra.clone(),
        };
        if outbox
            .try_send(Message::Text(start.to_text().into()))
            .is_err()
        {
            return SessionEnd::Lost("the connection closed at once".into());
        }
        // Frames of the mix that queued while connecting are stale.
        while self.port.mix().is_some() {}
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Per track (inbound, outbound): samples not yet sent, and the chunk counter.
        let mut samples: [Vec<i16>; 2] = [
            Vec::with_capacity(4 * MAX_FRAME),
            Vec::with_capacity(4 * MAX_FRAME),
        ];
        let mut chunks = [0u64; 2];
        let mut bytes: Vec<u8> = Vec::with_capacity(4 * MAX_FRAME);
        let stream_frame = format.frame_samples();
        let send = |outbox: &mpsc::Sender<Message>, msg: Outgoing, what: &'static str| -> bool {
            match outbox.try_send(Message::Text(msg.to_text().into())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("huddle_aistream_frames_dropped_total", "direction" => "to_service", "what" => what).increment(1);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        };
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let lost = self.port.take_mix_dropped();
                    if lost > 0 {
                        metrics::counter!("huddle_aistream_frames_dropped_total", "direction" => "to_service", "what" => "mix").increment(lost);
                    }
                    while let Some(frame) = self.port.mix() {
                        let t = frame.track().index();
                        self.to_service[t].push(frame.pcm(), &mut samples[t]);
                    }
                    let mut alive = true;
                    for track in [Track::Inbound, Track::Outbound] {
                        let t = track.index();
                        let whole = samples[t].len() - samples[t].len() % stream_frame;
                        for piece in samples[t][..whole].chunks_exact(stream_frame) {
                            format.encode(piece, &mut bytes);
                            chunks[t] += 1;
                            let msg = Outgoing::Media {
                                sequence_number: next(&mut seq),
                                stream_id: stream_id.clone(),
                                media: MediaBody {
                                    track: track.as_str().into(),
                                    timestamp: epoch_ms(),
                                    chunk: chunks[t],
                                    payload: base64::engine::general_purpose::STANDARD.encode(&bytes),
                                },
                                extra_headers: extra.clone(),
                            };
                            alive &= send(&outbox, msg, "media");
                        }
                        samples[t].drain(..whole);
                    }
                    self.playback.feed(&mut self.port);
                    let played = self.port.last_played();
                    while self.playback.checkpoints.front().is_some_and(|(_, at)| *at <= played) {
                        if let Some((name, _)) = self.playback.checkpoints.pop_front() {
                            let msg = Outgoing::PlayedStream {
                                sequence_number: next(&mut seq),
                                stream_id: stream_id.clone(),
                                name,
                            };
                            alive &= send(&outbox, msg, "playedStream");
                        }
                    }
                    if !alive {
                        return SessionEnd::Lost("the connection closed".into());
                    }
                }
                control = self.control.recv() => match control {
                    Some(Control::Dtmf(digit)) => {
                        let msg = Outgoing::Dtmf {
                            sequence_number: next(&mut seq),
                            stream_id: stream_id.clone(),
                            dtmf: DtmfBody {
                                track: "inbound".into(),
                                digit: digit.to_string(),
                                timestamp: epoch_ms(),
                            },
                            extra_headers: extra.clone(),
                        };
                        send(&outbox, msg, "dtmf");
                    }
                    Some(Control::Stop) | None => {
                        let _ = outbox.try_send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Normal,
                            reason: "participant left".into(),
                        })));
                        return SessionEnd::Stopped;
                    }
                },
                message = source.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let reply = self.take(text.as_str());
                        if let Some(reply) = reply {
                            let msg = match reply {
                                Reply::Cleared => Outgoing::ClearedAudio {
                                    sequence_number: next(&mut seq),
                                    stream_id: stream_id.clone(),
                                },
                                Reply::Played(name) => Outgoing::PlayedStream {
                                    sequence_number: next(&mut seq),
                                    stream_id: stream_id.clone(),
                                    name,
                                },
                            };
                            send(&outbox, msg, "reply");
                        }
                    }
                    Some(Ok(Message::Binary(b))) => {
                        self.refuse("binary", &format!("binary message of {} bytes ignored: the protocol is JSON text", b.len()));
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let normal = frame.as_ref().is_none_or(|f| f.code == CloseCode::Normal);
                        return if normal {
                            SessionEnd::ServiceClosed
                        } else {
                            SessionEnd::Lost(format!("the service closed the connection: {frame:?}"))
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return SessionEnd::Lost(format!("connection lost: {e}")),
                    None => return SessionEnd::Lost("connection lost".into()),
                },
            }
        }
    }

    /// Applies a message from the service; what to answer, if anything.
    fn take(&mut self, text: &str) -> Option<Reply> {
        match Incoming::parse(text) {
            Ok(Incoming::PlayAudio { format, samples }) => {
                let dropped = self.playback.push(format, &samples);
                if dropped > 0 {
                    metrics::counter!("huddle_aistream_play_dropped_samples_total")
                        .increment(dropped as u64);
                    if !self.playback.overflowing {
                        self.playback.overflowing = true;
                        tracing::warn!(stream_id = %self.identity.stream_id, "AI service sends audio faster than real time: over 60 s queued, the excess is dropped (buffer_overflow)");
                        self.status("DegradedStream", "buffer_overflow", "buffer_overflow");
                    }
                } else {
                    self.playback.overflowing = false;
                }
                self.playback.feed(&mut self.port);
                None
            }
            Ok(Incoming::Checkpoint { name }) => {
                self.playback.flush();
                self.playback.feed(&mut self.port);
                let at = self.playback.end_seq(&self.port);
                if at <= self.port.last_played() {
                    return Some(Reply::Played(name));
                }
                // Bounded like the queue itself: one checkpoint per 20 ms of audio at most.
                if self.playback.checkpoints.len() < MAX_PLAYBACK_SECS * 50 {
                    self.playback.checkpoints.push_back((name, at));
                }
                None
            }
            Ok(Incoming::ClearAudio) => {
                self.playback.clear(&mut self.port);
                Some(Reply::Cleared)
            }
            Err(e) => {
                self.refuse(e.kind(), &e.to_string());
                None
            }
        }
    }

    /// Counts and logs a message from the service that is ignored; the first of each kind on
    /// a connection is also reported as `DegradedStream` with the kind as `StatusReason`.
    fn refuse(&mut self, kind: &'static str, detail: &str) {
        metrics::counter!("huddle_aistream_refused_messages_total", "kind" => kind).increment(1);
        let detail = clip(detail, MAX_REASON);
        tracing::warn!(stream_id = %self.identity.stream_id, kind, detail, "message from the AI service ignored");
        if !self.refused_reported.contains(&kind) {
            self.refused_reported.push(kind);
            self.status(
                "DegradedStream",
                &format!("message ignored ({kind}): {detail}"),
                kind,
            );
        }
    }

    /// Queues a stream status callback (when a URL is set).
    fn status(&self, event: &str, error: &str, reason: &str) {
        let Some(tx) = &self.callbacks else {
            return;
        };
        let params = vec![
            ("Event".to_string(), event.to_string()),
            ("CallUUID".to_string(), self.identity.call_uuid.clone()),
            ("StreamID".to_string(), self.identity.stream_id.clone()),
            ("ServiceURL".to_string(), self.settings.url.clone()),
            ("Error".to_string(), error.to_string()),
            ("StatusReason".to_string(), reason.to_string()),
            (
                "Timestamp".to_string(),
                huddle_events::clock::plivo_timestamp(SystemTime::now()),
            ),
            (
                "Duration".to_string(),
                self.started.elapsed().as_secs().to_string(),
            ),
            ("From".to_string(), self.identity.from.clone()),
            ("To".to_string(), self.identity.to.clone()),
            ("Direction".to_string(), self.identity.direction.to_string()),
            ("MPCUUID".to_string(), self.identity.mpc_uuid.clone()),
            ("MPCName".to_string(), self.identity.mpc_name.clone()),
            ("MemberID".to_string(), self.identity.member_id.to_string()),
            (
                "ContentType".to_string(),
                self.settings.format.content_type(),
            ),
        ];
        if tx.try_send(params).is_err() {
            metrics::counter!("huddle_aistream_callbacks_dropped_total").increment(1);
        }
    }
}

/// Longest piece of a service's message quoted in a log line or a callback's `Error`.
const MAX_REASON: usize = 200;

/// `text` cut to at most `max` bytes on a character boundary.
fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

enum Reply {
    Cleared,
    Played(String),
}

/// Converting a rate to itself cannot fail; this only satisfies the types.
fn unreachable_converter() -> Converter {
    match Converter::new(8000, 8000) {
        Ok(c) => c,
        Err(_) => unreachable!("an identity converter has no engine to fail"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_text_is_clipped_on_a_character_boundary() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        assert_eq!(clip("aé", 2), "a");
    }

    #[test]
    fn the_upgrade_is_signed_for_the_http_form_of_the_url() {
        assert_eq!(signing_url("ws://h:1/a?b=c"), "http://h:1/a?b=c");
        assert_eq!(signing_url("wss://h/a"), "https://h/a");
    }

    #[test]
    fn playback_is_bounded_and_checkpoints_fall_on_frames() {
        let (_room, mut port) = crate::queue::frame_queues(8000);
        let mut p = Playback::new(8000);
        let format = MediaFormat::new(crate::audio::Encoding::L16, 8000).unwrap();
        let second = vec![100i16; 8000];
        let mut dropped = 0;
        for _ in 0..MAX_PLAYBACK_SECS + 2 {
            dropped += p.push(format, &second);
        }
        assert_eq!(dropped, 2 * 8000);
        assert_eq!(p.pending.len(), MAX_PLAYBACK_SECS * 8000);
        p.feed(&mut port);
        assert_eq!(port.last_queued(), crate::queue::TO_ROOM_FRAMES as u64);
        p.push(format, &[1; 10]);
        p.flush();
        assert_eq!(p.pending.len() % 160, 0);
        assert_eq!(
            p.end_seq(&port),
            crate::queue::TO_ROOM_FRAMES as u64 + (p.pending.len() / 160) as u64
        );
        p.clear(&mut port);
        assert!(p.pending.is_empty());
    }

    #[test]
    fn sixteen_khz_play_audio_is_converted_to_the_rooms_rate() {
        let mut p = Playback::new(8000);
        let format = MediaFormat::new(crate::audio::Encoding::L16, 16000).unwrap();
        p.push(format, &vec![0i16; 3200]);
        assert_eq!(p.pending.len(), 1600);
    }
}
