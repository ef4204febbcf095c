//! The per-tick audio work of one leg: drain and validate RTP, de-jitter and decode one frame;
//! encode and send one frame, RFC 4733 digits, RTCP sender reports.
//!
//! It is plain synchronous code over non-blocking sockets, driven once per 20 ms tick by
//! whoever owns it: the leg's own task while the call plays prompts, or a room's mixing thread
//! while the call is in an MPC. Lending it to the room means a participant costs the room one
//! receive and one send system call per tick and nothing else: no task wake-up per packet, no
//! frame copied through a channel. Received packets simply wait in the socket's kernel buffer
//! until the tick drains them, which is when they would be played out anyway.

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use metrics::Counter;
use tokio::sync::mpsc;
use webrtc_util::marshal::Marshal;

use crate::dtmf::{DtmfReceiver, DtmfSender};
use crate::jitter::{JitterBuffer, Playout};
use crate::ports::PortPair;
use crate::rtp_rx::{self, Latch, LatchDecision, RtpError, RxStats};
use crate::session::{Direction, MediaEvent, MediaParams, MediaStats, MAX_FRAME_SAMPLES};
use crate::udp_batch::{self, Datagram, RecvBatch};

/// Datagrams one tick reads at most from a leg's socket: a flood waits in (and overflows) the
/// kernel's buffer instead of holding up the other legs of the mixing thread.
const MAX_DATAGRAMS_PER_TICK: usize = 2 * udp_batch::BATCH;

thread_local! {
    /// Receive buffers, shared by every leg a thread ticks (a mixing thread ticks hundreds).
    static RECV_BATCH: RefCell<RecvBatch> = RefCell::new(RecvBatch::default());
}

/// Interval between RTCP sender reports (RFC 3550 §6.2 minimum); the first goes out after
/// half of it, as §6.2 allows for a participant's initial report.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// A participant's audio as a mixer drives it: one frame in and one frame out per 20 ms tick.
pub trait TickAudio: Send {
    /// The participant's frame for this tick, written into `out`; returns the number of
    /// samples, or None when there is nothing to play (not sending, or still buffering).
    /// Pass the same buffer every tick: a lost frame is concealed by fading what `out` still
    /// holds, the previous frame.
    fn receive(&mut self, out: &mut [i16]) -> Option<usize>;

    /// Sends this tick's frame to the participant.
    fn send(&mut self, pcm: &[i16]);
}

/// Changes for the leg, applied by its owner at the next tick.
#[derive(Debug)]
enum Control {
    /// New remote address or direction (re-INVITE).
    Update(SocketAddr, Direction),
    /// Send a digit as RFC 4733 events.
    Dtmf(char, u32),
}

/// Bumped whenever any leg is sent a control message. Changes are rare, so a tick first
/// compares this one process-wide counter (a cache line every core keeps) with the value it
/// saw last, and only then looks at its own leg's flag and queue, which live elsewhere in
/// memory and would otherwise cost a cache miss per leg per tick.
static CONTROL_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The sending side of a leg's control queue.
pub(crate) struct ControlSender {
    tx: mpsc::UnboundedSender<Control>,
    pending: Arc<AtomicBool>,
}

impl ControlSender {
    /// New remote address or direction (re-INVITE).
    pub(crate) fn update(&self, remote: SocketAddr, direction: Direction) {
        self.send(Control::Update(remote, direction));
    }

    /// A digit to send as RFC 4733 events.
    pub(crate) fn dtmf(&self, digit: char, duration_ms: u32) {
        self.send(Control::Dtmf(digit, duration_ms));
    }

    fn send(&self, control: Control) {
        if self.tx.send(control).is_ok() {
            // In this order: whoever sees the new epoch sees the flag, and whoever sees the
            // flag finds the message.
            self.pending.store(true, Ordering::Release);
            CONTROL_EPOCH.fetch_add(1, Ordering::Release);
        }
    }
}

/// The receiving end, held by the leg's audio.
pub(crate) struct ControlReceiver {
    rx: mpsc::UnboundedReceiver<Control>,
    pending: Arc<AtomicBool>,
    seen_epoch: u64,
}

/// A leg's control queue.
pub(crate) fn control_channel() -> (ControlSender, ControlReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Arc::new(AtomicBool::new(false));
    (
        ControlSender {
            tx,
            pending: pending.clone(),
        },
        ControlReceiver {
            rx,
            pending,
            seen_epoch: 0,
        },
    )
}

/// A counter counted locally and published now and then: every packet touching one shared
/// atomic would bounce its cache line between the mixing threads' cores.
struct Tally {
    counter: Counter,
    pending: u64,
}

impl Tally {
    fn new(counter: Counter) -> Self {
        Tally {
            counter,
            pending: 0,
        }
    }

    fn increment(&mut self, n: u64) {
        self.pending += n;
    }

    fn publish(&mut self) {
        if self.pending > 0 {
            self.counter.increment(self.pending);
            self.pending = 0;
        }
    }
}

/// Ticks between publications of a leg's counters (one second).
const PUBLISH_EVERY_TICKS: u32 = 50;

/// The leg's metrics, handles looked up once per leg rather than once per packet.
struct Counters {
    received: Tally,
    sent: Tally,
    send_failed: Tally,
    too_short: Tally,
    bad_version: Tally,
    malformed: Tally,
    foreign: Tally,
    unknown_pt: Tally,
    late: Tally,
    overflow: Tally,
    concealed: Tally,
    ticks: u32,
}

impl Counters {
    fn new() -> Self {
        let dropped = |reason: &'static str| {
            Tally::new(metrics::counter!("huddle_rtp_dropped_total", "reason" => reason))
        };
        Counters {
            received: Tally::new(metrics::counter!("huddle_rtp_packets_received_total")),
            sent: Tally::new(metrics::counter!("huddle_rtp_packets_sent_total")),
            send_failed: dropped("send_failed"),
            too_short: dropped("too_short"),
            bad_version: dropped("bad_version"),
            malformed: dropped("malformed"),
            foreign: dropped("foreign_source"),
            unknown_pt: dropped("unknown_payload_type"),
            late: dropped("late_or_duplicate"),
            overflow: dropped("jitter_overflow"),
            concealed: Tally::new(metrics::counter!("huddle_rtp_concealed_frames_total")),
            ticks: 0,
        }
    }

    /// Counts a tick; publishes once a second.
    fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks >= PUBLISH_EVERY_TICKS {
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.ticks = 0;
        for tally in [
            &mut self.received,
            &mut self.sent,
            &mut self.send_failed,
            &mut self.too_short,
            &mut self.bad_version,
            &mut self.malformed,
            &mut self.foreign,
            &mut self.unknown_pt,
            &mut self.late,
            &mut self.overflow,
            &mut self.concealed,
        ] {
            tally.publish();
        }
    }
}

/// RTP header size without CSRCs or extension.
const RTP_HEADER: usize = 12;

/// Our outgoing RTP stream.
struct Sender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    first: bool,
    /// The packet being built: the header, then the payload encoded in place.
    buf: Vec<u8>,
    octets: u64,
}

impl Sender {
    fn new() -> Self {
        Sender {
            ssrc: rand_u32(),
            sequence: rand_u32() as u16,
            timestamp: rand_u32(),
            first: true,
            buf: vec![0; RTP_HEADER + MAX_FRAME_SAMPLES],
            octets: 0,
        }
    }

    /// Writes one RTP packet (RFC 3550 §5.1: no CSRC, no extension) into the reused buffer,
    /// letting `payload` write the payload after the header and return its length; returns the
    /// packet's length. By hand rather than through `rtp::packet::Packet::marshal`, which needs
    /// the payload as `Bytes`: this runs 50 times a second per leg and must neither allocate
    /// nor copy the payload.
    fn packet(
        &mut self,
        pt: u8,
        marker: bool,
        timestamp: u32,
        payload: impl FnOnce(&mut [u8]) -> usize,
    ) -> usize {
        let marker = marker || self.first;
        self.first = false;
        let header = &mut self.buf[..RTP_HEADER];
        header[0] = 0x80;
        header[1] = (u8::from(marker) << 7) | (pt & 0x7F);
        header[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        header[4..8].copy_from_slice(&timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let len = payload(&mut self.buf[RTP_HEADER..]);
        self.sequence = self.sequence.wrapping_add(1);
        self.octets += len as u64;
        RTP_HEADER + len
    }
}

/// One leg's media state and sockets; see the module documentation.
pub struct LegAudio {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    _ports: PortPair,
    params: MediaParams,
    latch: Latch,
    jitter: JitterBuffer,
    dtmf_rx: DtmfReceiver,
    dtmf_tx: Option<DtmfSender>,
    sender: Sender,
    stats: MediaStats,
    rx_stats: RxStats,
    rate: u32,
    frame_len: usize,
    start: Instant,
    /// `start` on the wall clock, which the kernel's arrival stamps use.
    start_wall: Duration,
    last_rx: Instant,
    timeout_reported: bool,
    discards_counted: u64,
    next_report: Instant,
    events: mpsc::UnboundedSender<MediaEvent>,
    control: ControlReceiver,
    counters: Counters,
}

impl LegAudio {
    /// `rtp` and `rtcp` must be non-blocking.
    pub(crate) fn new(
        rtp: UdpSocket,
        rtcp: UdpSocket,
        ports: PortPair,
        params: MediaParams,
        events: mpsc::UnboundedSender<MediaEvent>,
        control: ControlReceiver,
    ) -> Self {
        let rate = params.codec.clock_rate();
        let frame_len = (rate / 50) as usize;
        let now = Instant::now();
        LegAudio {
            rtp,
            rtcp,
            _ports: ports,
            latch: Latch::new(params.remote_rtp),
            jitter: JitterBuffer::new(params.jitter_min_ms, params.jitter_max_ms),
            params,
            dtmf_rx: DtmfReceiver::default(),
            dtmf_tx: None,
            sender: Sender::new(),
            stats: MediaStats::default(),
            rx_stats: RxStats::default(),
            rate,
            frame_len,
            start: now,
            start_wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            last_rx: now,
            timeout_reported: false,
            discards_counted: 0,
            next_report: now + REPORT_INTERVAL / 2,
            events,
            control,
            counters: Counters::new(),
        }
    }

    /// The leg's counters so far.
    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    /// A decoded frame nobody took (the leg's own task found its consumer's queue full).
    pub(crate) fn note_unconsumed_frame(&mut self) {
        self.stats.dropped_frames += 1;
    }

    /// Samples per 20 ms frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    fn apply_control(&mut self) {
        let epoch = CONTROL_EPOCH.load(Ordering::Acquire);
        if epoch == self.control.seen_epoch {
            return;
        }
        self.control.seen_epoch = epoch;
        if !self.control.pending.swap(false, Ordering::Acquire) {
            return;
        }
        while let Ok(control) = self.control.rx.try_recv() {
            match control {
                Control::Update(remote, direction) => {
                    if remote != self.latch.send_to() {
                        self.latch.reset(remote);
                    }
                    self.params.remote_direction = direction;
                    self.last_rx = Instant::now();
                    self.timeout_reported = false;
                }
                Control::Dtmf(digit, duration_ms) => {
                    if self.params.telephone_event_pt.is_some() {
                        self.dtmf_tx = DtmfSender::new(
                            digit,
                            duration_ms * self.rate / 1000,
                            self.sender.timestamp,
                        );
                    }
                }
            }
        }
    }

    /// Reads what arrived since the last tick.
    fn drain(&mut self, now: Instant) {
        RECV_BATCH.with_borrow_mut(|batch| {
            for _ in 0..MAX_DATAGRAMS_PER_TICK / udp_batch::BATCH {
                // An error (say an ICMP error queued on the socket) just ends this tick's read.
                let received = batch.recv(&self.rtp).unwrap_or(0);
                for i in 0..received {
                    if let Some(datagram) = batch.get(i) {
                        self.on_datagram(datagram, now);
                    }
                }
                if received < udp_batch::BATCH {
                    return;
                }
            }
        });
    }

    /// When a datagram arrived, in RTP clock units since the leg started: the kernel's stamp
    /// when there is one, else the time the tick read it.
    fn arrival_units(&self, datagram: &Datagram<'_>, now: Instant) -> u32 {
        let since_start = match datagram.arrival {
            Some(at) => at.saturating_sub(self.start_wall),
            None => now.saturating_duration_since(self.start),
        };
        (since_start.as_micros() as u64 * u64::from(self.rate) / 1_000_000) as u32
    }

    fn on_datagram(&mut self, datagram: Datagram<'_>, now: Instant) {
        let parsed = if datagram.truncated {
            Err(RtpError::Malformed)
        } else {
            rtp_rx::parse_slice(datagram.data)
        };
        let packet = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed_packets += 1;
                match e {
                    RtpError::TooShort => self.counters.too_short.increment(1),
                    RtpError::BadVersion => self.counters.bad_version.increment(1),
                    RtpError::Malformed => self.counters.malformed.increment(1),
                }
                return;
            }
        };
        let source = datagram.source;
        match self.latch.check(source) {
            LatchDecision::Foreign => {
                self.stats.foreign_packets += 1;
                self.counters.foreign.increment(1);
                return;
            }
            LatchDecision::Latched => {
                let _ = self.events.send(MediaEvent::Latched(source));
            }
            LatchDecision::Accept => {}
        }
        self.stats.packets_received += 1;
        self.counters.received.increment(1);
        let arrival = self.arrival_units(&datagram, now);
        self.rx_stats
            .on_packet(packet.ssrc, packet.sequence, packet.timestamp, arrival);
        self.last_rx = now;
        self.timeout_reported = false;
        if Some(packet.payload_type) == self.params.telephone_event_pt {
            if let Some((digit, duration)) =
                self.dtmf_rx.on_packet(packet.timestamp, packet.payload)
            {
                let _ = self.events.send(MediaEvent::Dtmf {
                    digit,
                    duration_ms: duration * 1000 / self.rate.max(1),
                });
            }
        } else if packet.payload_type == self.params.payload_type {
            if !self.jitter.push(packet.sequence, packet.payload) {
                self.counters.late.increment(1);
            }
        } else {
            self.counters.unknown_pt.increment(1);
        }
    }

    /// Everything that arrived since the last tick goes into the jitter buffer; the frame due
    /// now is decoded into `out`.
    pub fn receive(&mut self, out: &mut [i16]) -> Option<usize> {
        self.apply_control();
        let now = Instant::now();
        self.drain(now);
        // Frames the jitter buffer threw away (on the last pop or the pushes since).
        let discarded = self.jitter.discarded();
        self.counters
            .overflow
            .increment(discarded - self.discards_counted);
        self.discards_counted = discarded;
        match self.jitter.pop() {
            Playout::Frame(payload) => Some(self.params.codec.decode(payload, out)),
            Playout::Lost => {
                self.stats.concealed_frames += 1;
                self.counters.concealed.increment(1);
                // Concealment: the previous frame (still in `out`) again, fading to silence.
                let n = self.frame_len.min(out.len());
                for s in &mut out[..n] {
                    *s /= 2;
                }
                Some(n)
            }
            Playout::Buffering => None,
        }
    }

    /// Sends the packet the sender just built. Non-blocking: a full socket buffer drops this
    /// packet (counted) rather than stalling the tick.
    fn transmit(&mut self, len: usize, to: SocketAddr) {
        if self.rtp.send_to(&self.sender.buf[..len], to).is_ok() {
            self.stats.packets_sent += 1;
            self.counters.sent.increment(1);
        } else {
            self.counters.send_failed.increment(1);
        }
    }

    /// Sends this tick's frame (or a pending digit instead), checks for RTP timeout and sends
    /// the RTCP report when one is due.
    pub fn send(&mut self, pcm: Option<&[i16]>) {
        let destination = self.latch.send_to();
        if self.params.remote_direction.remote_receives() {
            if let (Some(tx), Some(te_pt)) = (self.dtmf_tx.as_mut(), self.params.telephone_event_pt)
            {
                let (marker, ts) = (tx.is_start(), tx.timestamp());
                let payloads = tx.next_payloads(self.frame_len as u32);
                if tx.done() {
                    self.dtmf_tx = None;
                }
                for payload in payloads {
                    let len = self.sender.packet(te_pt, marker, ts, |buf| {
                        buf[..payload.len()].copy_from_slice(&payload);
                        payload.len()
                    });
                    self.transmit(len, destination);
                }
                self.sender.timestamp = self.sender.timestamp.wrapping_add(self.frame_len as u32);
            } else if let Some(pcm) = pcm {
                let ts = self.sender.timestamp;
                self.sender.timestamp = self.sender.timestamp.wrapping_add(pcm.len() as u32);
                let codec = self.params.codec;
                let len = self
                    .sender
                    .packet(self.params.payload_type, false, ts, |buf| {
                        codec.encode(pcm, buf)
                    });
                self.transmit(len, destination);
            }
        }
        self.counters.tick();
        let now = Instant::now();
        if let Some(limit) = self.params.rtp_timeout {
            if self.params.remote_direction.remote_sends()
                && !self.timeout_reported
                && now.saturating_duration_since(self.last_rx) > limit
            {
                self.timeout_reported = true;
                let _ = self.events.send(MediaEvent::RtpTimeout);
            }
        }
        if now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            let report = sender_report(
                self.sender.ssrc,
                // The timestamp the next frame will carry: the media time of "now".
                self.sender.timestamp,
                &self.stats,
                self.sender.octets,
                self.rx_stats.report(),
            );
            let mut rtcp_to = destination;
            rtcp_to.set_port(rtcp_to.port().wrapping_add(1));
            let _ = self.rtcp.send_to(&report, rtcp_to);
        }
    }
}

impl Drop for LegAudio {
    fn drop(&mut self) {
        self.counters.publish();
    }
}

/// A leg's audio on loan to a room. However the loan ends (the member leaves, the room ends,
/// or a bug unwinds the mixing thread), dropping it sends the audio back to the leg's task.
pub struct LentAudio {
    // Held inline: the room reaches it through one pointer (its boxed member audio), not two.
    audio: Option<LegAudio>,
    home: mpsc::UnboundedSender<Box<LegAudio>>,
}

impl LentAudio {
    pub(crate) fn new(audio: Box<LegAudio>, home: mpsc::UnboundedSender<Box<LegAudio>>) -> Self {
        LentAudio {
            audio: Some(*audio),
            home,
        }
    }
}

impl TickAudio for LentAudio {
    fn receive(&mut self, out: &mut [i16]) -> Option<usize> {
        self.audio.as_mut()?.receive(out)
    }

    fn send(&mut self, pcm: &[i16]) {
        if let Some(audio) = self.audio.as_mut() {
            audio.send(Some(pcm));
        }
    }
}

impl Drop for LentAudio {
    fn drop(&mut self) {
        if let Some(audio) = self.audio.take() {
            // If the leg's task is gone too, the audio (and its sockets) are dropped here.
            let _ = self.home.send(Box::new(audio));
        }
    }
}

/// An RTCP sender report (we always send, so SR rather than RR) with our counters and, once the
/// remote has sent, a report block with its loss and jitter (RFC 3550 §6.4).
fn sender_report(
    ssrc: u32,
    rtp_time: u32,
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
        rtp_time,
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
