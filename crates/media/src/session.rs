//! One media leg over UDP: receive, validate, latch, de-jitter and decode RTP; encode and send
//! on a 20 ms tick scheduled on absolute deadlines; RFC 4733 DTMF both ways; RTCP reports.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use webrtc_util::marshal::Marshal;

use crate::codec::Codec;
use crate::dtmf::{DtmfReceiver, DtmfSender};
use crate::jitter::{JitterBuffer, Playout};
use crate::ports::{PortAllocator, PortPair};
use crate::rtp_rx::{self, Latch, LatchDecision, RtpError, RxStats};

/// Largest frame carried (120 ms at 8 kHz).
pub const MAX_FRAME_SAMPLES: usize = 960;

/// Errors setting a leg up.
#[derive(Debug, Error)]
pub enum MediaError {
    /// The port range is exhausted.
    #[error("no free RTP port pair in the configured range")]
    NoPorts,
    /// Socket failure.
    #[error("cannot bind RTP sockets: {0}")]
    Io(#[from] std::io::Error),
}

/// A block of decoded audio; fixed-size storage so frames move through channels without heap work.
#[derive(Clone)]
pub struct AudioFrame {
    /// Samples; only `len` are valid.
    pub samples: [i16; MAX_FRAME_SAMPLES],
    /// Valid samples.
    pub len: usize,
    /// Sample rate.
    pub rate: u32,
}

impl AudioFrame {
    /// A silent frame of `len` samples.
    pub fn silence(len: usize, rate: u32) -> Self {
        AudioFrame {
            samples: [0; MAX_FRAME_SAMPLES],
            len: len.min(MAX_FRAME_SAMPLES),
            rate,
        }
    }

    /// The valid samples.
    pub fn pcm(&self) -> &[i16] {
        &self.samples[..self.len]
    }
}

impl std::fmt::Debug for AudioFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AudioFrame({} samples @ {} Hz)", self.len, self.rate)
    }
}

/// The remote side's declared direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// They only send (they put us on hold): we do not send.
    SendOnly,
    /// They only receive.
    RecvOnly,
    /// Nothing flows.
    Inactive,
}

impl Direction {
    fn remote_receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
    fn remote_sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

/// Negotiated parameters of a leg.
#[derive(Debug, Clone)]
pub struct MediaParams {
    /// Where the SDP says to send.
    pub remote_rtp: SocketAddr,
    /// Codec.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// telephone-event payload type.
    pub telephone_event_pt: Option<u8>,
    /// Remote direction.
    pub remote_direction: Direction,
    /// Jitter buffer bounds.
    pub jitter_min_ms: u32,
    /// Jitter buffer bounds.
    pub jitter_max_ms: u32,
    /// Report [`MediaEvent::RtpTimeout`] after this long without RTP.
    pub rtp_timeout: Option<Duration>,
}

/// Something the leg noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit (RFC 4733) ended.
    Dtmf {
        /// 0-9 * # A-D
        digit: char,
        /// Duration in ms.
        duration_ms: u32,
    },
    /// No RTP for the configured time.
    RtpTimeout,
    /// The first packet fixed the remote address.
    Latched(SocketAddr),
}

/// A frame or an event from a running leg.
// Frames travel by value on purpose: boxing them would allocate on every 20 ms tick.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum MediaItem {
    /// A decoded 20 ms frame.
    Frame(AudioFrame),
    /// An event.
    Event(MediaEvent),
}

/// Counters of one leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Valid packets accepted.
    pub packets_received: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets from a source other than the latched one.
    pub foreign_packets: u64,
    /// Packets that failed validation.
    pub malformed_packets: u64,
    /// Playout ticks with a missing frame.
    pub concealed_frames: u64,
    /// Decoded frames dropped because the consumer was slow.
    pub dropped_frames: u64,
}

/// Sockets bound, not yet running.
pub struct MediaSession {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    ports: PortPair,
}

enum Command {
    Update(SocketAddr, Direction),
    Route(Option<mpsc::Sender<AudioFrame>>),
    Dtmf(char, u32),
    Stop(oneshot::Sender<MediaStats>),
}

/// Control of a running leg.
pub struct MediaHandle {
    frames_in: mpsc::Receiver<AudioFrame>,
    frames_out: mpsc::Sender<AudioFrame>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    commands: mpsc::UnboundedSender<Command>,
}

impl MediaSession {
    /// Binds an RTP/RTCP pair from the pool on `local_ip`; ports the OS refuses are skipped.
    pub async fn bind(ports: &PortAllocator, local_ip: IpAddr) -> Result<MediaSession, MediaError> {
        for _ in 0..16 {
            let pair = ports.allocate().ok_or(MediaError::NoPorts)?;
            let rtp = UdpSocket::bind(SocketAddr::new(local_ip, pair.rtp())).await;
            let rtcp = UdpSocket::bind(SocketAddr::new(local_ip, pair.rtcp())).await;
            if let (Ok(rtp), Ok(rtcp)) = (rtp, rtcp) {
                return Ok(MediaSession {
                    rtp,
                    rtcp,
                    ports: pair,
                });
            }
        }
        Err(MediaError::NoPorts)
    }

    /// Our RTP port, for the SDP answer.
    pub fn local_rtp_port(&self) -> u16 {
        self.ports.rtp()
    }

    /// Starts the leg task.
    pub fn start(self, params: MediaParams) -> MediaHandle {
        let (in_tx, in_rx) = mpsc::channel(8);
        let (out_tx, out_rx) = mpsc::channel(8);
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(self, params, in_tx, out_rx, ev_tx, cmd_rx));
        MediaHandle {
            frames_in: in_rx,
            frames_out: out_tx,
            events: ev_rx,
            commands: cmd_tx,
        }
    }
}

impl MediaHandle {
    /// The next decoded frame (one per 20 ms tick while the remote sends).
    pub async fn recv_frame(&mut self) -> Option<AudioFrame> {
        self.frames_in.recv().await
    }

    /// Queues a frame to send; dropped when the queue is full (never blocks).
    pub fn send_frame(&self, frame: AudioFrame) {
        if self.frames_out.try_send(frame).is_err() {
            metrics::counter!("huddle_rtp_dropped_total", "reason" => "send_queue_full")
                .increment(1);
        }
    }

    /// The next event.
    pub async fn next_event(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }

    /// Whichever comes first: a decoded frame or an event. None when the leg task is gone.
    pub async fn next(&mut self) -> Option<MediaItem> {
        tokio::select! {
            f = self.frames_in.recv() => f.map(MediaItem::Frame),
            e = self.events.recv() => e.map(MediaItem::Event),
        }
    }

    /// Sends decoded frames straight to `to` (a room's inbox) instead of [`MediaHandle::next`];
    /// `None` takes them back. Saves a task hop per frame while a call sits in a room.
    pub fn route_decoded(&self, to: Option<mpsc::Sender<AudioFrame>>) {
        let _ = self.commands.send(Command::Route(to));
    }

    /// A sender into this leg's outgoing queue, for a room to write mixes into directly
    /// (`try_send`: a full queue drops the frame, never waits).
    pub fn frame_sender(&self) -> mpsc::Sender<AudioFrame> {
        self.frames_out.clone()
    }

    /// Sends a DTMF digit as RFC 4733 events.
    pub fn send_dtmf(&self, digit: char, duration_ms: u32) {
        let _ = self.commands.send(Command::Dtmf(digit, duration_ms));
    }

    /// New remote address or direction (re-INVITE).
    pub fn update(&self, remote_rtp: SocketAddr, direction: Direction) {
        let _ = self.commands.send(Command::Update(remote_rtp, direction));
    }

    /// Stops the leg and releases its ports.
    pub async fn stop(self) -> MediaStats {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).is_err() {
            return MediaStats::default();
        }
        rx.await.unwrap_or_default()
    }
}

struct Sender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    first: bool,
    buf: BytesMut,
    octets: u64,
}

impl Sender {
    /// Writes one RTP packet (RFC 3550 §5.1: no CSRC, no extension) into the reused buffer
    /// and returns it. By hand rather than through `rtp::packet::Packet::marshal`, which needs
    /// the payload as `Bytes`: this is sent 50 times a second per leg and must not allocate.
    fn packet(&mut self, pt: u8, marker: bool, timestamp: u32, payload: &[u8]) -> &[u8] {
        let marker = marker || self.first;
        self.first = false;
        self.buf.clear();
        self.buf
            .extend_from_slice(&[0x80, (u8::from(marker) << 7) | (pt & 0x7F)]);
        self.buf.extend_from_slice(&self.sequence.to_be_bytes());
        self.buf.extend_from_slice(&timestamp.to_be_bytes());
        self.buf.extend_from_slice(&self.ssrc.to_be_bytes());
        self.buf.extend_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.octets += payload.len() as u64;
        &self.buf
    }
}

async fn run(
    session: MediaSession,
    mut params: MediaParams,
    frames_in: mpsc::Sender<AudioFrame>,
    mut frames_out: mpsc::Receiver<AudioFrame>,
    events: mpsc::UnboundedSender<MediaEvent>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let MediaSession {
        rtp,
        rtcp,
        ports: _ports,
    } = session;
    let mut latch = Latch::new(params.remote_rtp);
    let mut jitter = JitterBuffer::new(params.jitter_min_ms, params.jitter_max_ms);
    let mut dtmf_rx = DtmfReceiver::default();
    let mut dtmf_tx: Option<DtmfSender> = None;
    let mut route: Option<mpsc::Sender<AudioFrame>> = None;
    let mut stats = MediaStats::default();
    let mut rx_stats = RxStats::default();
    let mut sender = Sender {
        ssrc: rand_u32(),
        sequence: rand_u32() as u16,
        timestamp: rand_u32(),
        first: true,
        buf: BytesMut::with_capacity(1500),
        octets: 0,
    };
    let rate = params.codec.clock_rate();
    let frame_len = (rate / 50) as usize;
    let mut rtp_buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 1500];
    let mut decoded = AudioFrame::silence(frame_len, rate);
    let mut encoded = [0u8; MAX_FRAME_SAMPLES];
    let start = Instant::now();
    let mut ticker =
        tokio::time::interval_at(start + Duration::from_millis(20), Duration::from_millis(20));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut rtcp_timer =
        tokio::time::interval_at(start + Duration::from_secs(5), Duration::from_secs(5));
    let mut last_rx = Instant::now();
    let mut timeout_reported = false;
    loop {
        tokio::select! {
            received = rtp.recv_from(&mut rtp_buf) => {
                let Ok((len, source)) = received else { continue };
                let packet = match rtp_rx::parse_slice(&rtp_buf[..len]) {
                    Ok(p) => p,
                    Err(e) => {
                        stats.malformed_packets += 1;
                        let reason = match e {
                            RtpError::TooShort => "too_short",
                            RtpError::BadVersion => "bad_version",
                            RtpError::Malformed => "malformed",
                        };
                        metrics::counter!("huddle_rtp_dropped_total", "reason" => reason).increment(1);
                        continue;
                    }
                };
                match latch.check(source) {
                    LatchDecision::Foreign => {
                        stats.foreign_packets += 1;
                        metrics::counter!("huddle_rtp_dropped_total", "reason" => "foreign_source").increment(1);
                        continue;
                    }
                    LatchDecision::Latched => {
                        let _ = events.send(MediaEvent::Latched(source));
                    }
                    LatchDecision::Accept => {}
                }
                stats.packets_received += 1;
                let arrival = (start.elapsed().as_millis() as u64 * u64::from(rate) / 1000) as u32;
                rx_stats.on_packet(packet.ssrc, packet.sequence, packet.timestamp, arrival);
                metrics::counter!("huddle_rtp_packets_received_total").increment(1);
                last_rx = Instant::now();
                timeout_reported = false;
                if Some(packet.payload_type) == params.telephone_event_pt {
                    if let Some((digit, duration)) = dtmf_rx.on_packet(packet.timestamp, packet.payload) {
                        let _ = events.send(MediaEvent::Dtmf { digit, duration_ms: duration * 1000 / rate.max(1) });
                    }
                } else if packet.payload_type == params.payload_type {
                    jitter.push(packet.sequence, packet.payload);
                } else {
                    metrics::counter!("huddle_rtp_dropped_total", "reason" => "unknown_payload_type").increment(1);
                }
            }
            received = rtcp.recv_from(&mut rtcp_buf) => {
                let Ok((len, _)) = received else { continue };
                let mut data = Bytes::copy_from_slice(&rtcp_buf[..len]);
                if rtcp::packet::unmarshal(&mut data).is_err() {
                    metrics::counter!("huddle_rtcp_malformed_total").increment(1);
                }
            }
            _ = ticker.tick() => {
                match jitter.pop() {
                    Playout::Frame(payload) => {
                        let n = params.codec.decode(&payload, &mut decoded.samples);
                        decoded.len = n;
                        decoded.rate = rate;
                        let consumer = route.as_ref().unwrap_or(&frames_in);
                        if consumer.try_send(decoded.clone()).is_err() {
                            stats.dropped_frames += 1;
                        }
                    }
                    Playout::Lost => {
                        stats.concealed_frames += 1;
                        // Concealment: fade the last frame once, then silence.
                        for s in decoded.samples[..decoded.len].iter_mut() {
                            *s /= 2;
                        }
                        let _ = route.as_ref().unwrap_or(&frames_in).try_send(decoded.clone());
                    }
                    Playout::Buffering => {}
                }
                let outgoing = frames_out.try_recv().ok();
                if params.remote_direction.remote_receives() {
                    if let (Some(tx), Some(te_pt)) = (dtmf_tx.as_mut(), params.telephone_event_pt) {
                        let (marker, ts) = (tx.is_start(), tx.timestamp());
                        for payload in tx.next_payloads(frame_len as u32) {
                            let p = sender.packet(te_pt, marker, ts, &payload);
                            if rtp.send_to(p, latch.send_to()).await.is_ok() {
                                stats.packets_sent += 1;
                            }
                        }
                        if tx.done() {
                            dtmf_tx = None;
                        }
                        sender.timestamp = sender.timestamp.wrapping_add(frame_len as u32);
                    } else if let Some(frame) = outgoing {
                        let n = params.codec.encode(frame.pcm(), &mut encoded);
                        let ts = sender.timestamp;
                        sender.timestamp = sender.timestamp.wrapping_add(frame.len as u32);
                        let p = sender.packet(params.payload_type, false, ts, &encoded[..n]);
                        if rtp.send_to(p, latch.send_to()).await.is_ok() {
                            stats.packets_sent += 1;
                            metrics::counter!("huddle_rtp_packets_sent_total").increment(1);
                        }
                    }
                }
                if let Some(limit) = params.rtp_timeout {
                    if params.remote_direction.remote_sends() && !timeout_reported && last_rx.elapsed() > limit {
                        timeout_reported = true;
                        let _ = events.send(MediaEvent::RtpTimeout);
                    }
                }
            }
            _ = rtcp_timer.tick() => {
                let report = sender_report(sender.ssrc, &stats, sender.octets, rx_stats.report());
                let mut rtcp_to = latch.send_to();
                rtcp_to.set_port(rtcp_to.port().wrapping_add(1));
                let _ = rtcp.send_to(&report, rtcp_to).await;
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Update(remote, direction)) => {
                    if remote != latch.send_to() {
                        latch.reset(remote);
                    }
                    params.remote_direction = direction;
                    last_rx = Instant::now();
                }
                Some(Command::Route(to)) => route = to,
                Some(Command::Dtmf(digit, duration_ms)) => {
                    if params.telephone_event_pt.is_some() {
                        dtmf_tx = DtmfSender::new(digit, duration_ms * rate / 1000, sender.timestamp);
                    }
                }
                Some(Command::Stop(reply)) => {
                    let _ = reply.send(stats);
                    return;
                }
                None => return,
            }
        }
    }
}

/// An RTCP sender report (we always send, so SR rather than RR) with our counters and, once the
/// remote has sent, a report block with its loss and jitter (RFC 3550 §6.4).
fn sender_report(
    ssrc: u32,
    stats: &MediaStats,
    octets: u64,
    figures: Option<rtp_rx::ReportFigures>,
) -> Bytes {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ntp_secs = now.as_secs() + 2_208_988_800;
    let ntp_frac = (u64::from(now.subsec_nanos()) << 32) / 1_000_000_000;
    let sr = rtcp::sender_report::SenderReport {
        ssrc,
        ntp_time: (ntp_secs << 32) | ntp_frac,
        rtp_time: 0,
        packet_count: stats.packets_sent as u32,
        octet_count: octets as u32,
        reports: figures
            .map(|f| rtcp::reception_report::ReceptionReport {
                ssrc: f.ssrc,
                fraction_lost: f.fraction_lost,
                total_lost: f.total_lost,
                last_sequence_number: f.highest_seq,
                jitter: f.jitter,
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..Default::default()
    };
    sr.marshal().unwrap_or_default()
}

fn rand_u32() -> u32 {
    let u = uuid::Uuid::new_v4();
    let b = u.as_bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
