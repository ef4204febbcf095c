//! One leg's RTP as a sans-IO state machine: it is fed `(now, datagram)`, gives decoded
//! frames and datagrams to send when polled, and names its next deadline.
//!
//! Nothing here touches a socket or reads a clock: time comes in as `now`, packets come in as
//! byte slices and go out through [`RtpLeg::poll_transmit`]. That makes latching, jitter, RTP
//! timeout and RTCP timing testable in microseconds with simulated time, the way quinn-proto's
//! `Connection` and str0m's `Rtc` are tested. The driver (`crate::driver`) owns the sockets and
//! the clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics::Counter;
use webrtc_util::marshal::Marshal;

use crate::codec::{Coder, Concealment};
use crate::dtmf::{DtmfReceiver, DtmfSender};
use crate::jitter::{JitterBuffer, Playout};
use crate::rtp_rx::{self, Latch, LatchDecision, RtpError, RxStats};
use crate::session::{MediaError, MediaEvent, MediaParams, MediaStats, MAX_FRAME_SAMPLES};
use crate::srtp::{SrtpSession, MAX_TAG};

/// Interval between RTCP sender reports (RFC 3550 §6.2 minimum); the first goes out after
/// half of it, as §6.2 allows for a participant's initial report.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// RTP header size without CSRCs or extension.
const RTP_HEADER: usize = 12;

/// RTP packets one tick can queue: a frame, or a digit's three end packets.
const OUTBOX_SLOTS: usize = 4;

/// Events held between two polls; more than a tick ever produces.
const EVENT_CAPACITY: usize = 16;

/// Ticks between publications of a leg's counters (one second).
const PUBLISH_EVERY_TICKS: u32 = 50;

/// The first values of our outgoing stream (RFC 3550 §5.1 wants them random); given from
/// outside so that a test can fix them and compare output byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamIds {
    /// Our SSRC.
    pub ssrc: u32,
    /// The first sequence number.
    pub sequence: u16,
    /// The first RTP timestamp.
    pub timestamp: u32,
}

impl StreamIds {
    /// Random values from the operating system's generator (through uuid v4).
    pub fn random() -> Self {
        let b = *uuid::Uuid::new_v4().as_bytes();
        StreamIds {
            ssrc: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            sequence: u16::from_be_bytes([b[4], b[5]]),
            timestamp: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// Which of the leg's two ports a datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The RTP port.
    Rtp,
    /// The RTCP port (RTP + 1).
    Rtcp,
}

/// A datagram the leg wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// From which of our ports.
    pub channel: Channel,
    /// To whom.
    pub destination: SocketAddr,
    /// Its bytes.
    pub data: &'a [u8],
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

/// The leg's metrics, handles looked up once per leg rather than once per packet.
struct Counters {
    received: Tally,
    sent: Tally,
    too_short: Tally,
    bad_version: Tally,
    malformed: Tally,
    foreign: Tally,
    unknown_pt: Tally,
    late: Tally,
    overflow: Tally,
    concealed: Tally,
    fec: Tally,
    undecodable: Tally,
    unauthenticated: Tally,
    unprotectable: Tally,
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
            too_short: dropped("too_short"),
            bad_version: dropped("bad_version"),
            malformed: dropped("malformed"),
            foreign: dropped("foreign_source"),
            unknown_pt: dropped("unknown_payload_type"),
            late: dropped("late_or_duplicate"),
            overflow: dropped("jitter_overflow"),
            concealed: Tally::new(metrics::counter!("huddle_rtp_concealed_frames_total")),
            fec: Tally::new(metrics::counter!("huddle_rtp_fec_recovered_frames_total")),
            undecodable: dropped("undecodable"),
            unauthenticated: dropped("srtp_unauthenticated"),
            unprotectable: dropped("srtp_protect_failed"),
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
            &mut self.too_short,
            &mut self.bad_version,
            &mut self.malformed,
            &mut self.foreign,
            &mut self.unknown_pt,
            &mut self.late,
            &mut self.overflow,
            &mut self.concealed,
            &mut self.fec,
            &mut self.undecodable,
            &mut self.unauthenticated,
            &mut self.unprotectable,
        ] {
            tally.publish();
        }
    }
}

/// Packets queued for sending: fixed slots allocated with the leg, so a tick that sends a
/// frame (or a digit's end packets) allocates nothing.
struct Outbox {
    slots: [Vec<u8>; OUTBOX_SLOTS],
    lens: [usize; OUTBOX_SLOTS],
    queued: usize,
    taken: usize,
    destination: SocketAddr,
    /// The last sender report (built once per five seconds, so a `Bytes` is fine).
    report: Option<(SocketAddr, Bytes)>,
    /// The report is still to be sent.
    report_due: bool,
}

impl Outbox {
    fn new(destination: SocketAddr) -> Self {
        Outbox {
            slots: std::array::from_fn(|_| vec![0; RTP_HEADER + MAX_FRAME_SAMPLES + MAX_TAG]),
            lens: [0; OUTBOX_SLOTS],
            queued: 0,
            taken: 0,
            destination,
            report: None,
            report_due: false,
        }
    }

    /// The next free slot, or None when a tick queued more than the outbox holds.
    fn slot(&mut self) -> Option<&mut [u8]> {
        if self.taken > 0 && self.taken == self.queued {
            // Everything queued went out: start over at the first slot.
            self.queued = 0;
            self.taken = 0;
        }
        self.slots.get_mut(self.queued).map(Vec::as_mut_slice)
    }

    fn commit(&mut self, len: usize) {
        self.lens[self.queued] = len;
        self.queued += 1;
    }
}

/// Our outgoing RTP stream's header state.
struct StreamState {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    first: bool,
    octets: u64,
    /// The next packet starts a talk spurt (after DTX sent nothing): RTP's marker bit.
    talkspurt: bool,
}

impl StreamState {
    /// Writes one RTP header (RFC 3550 §5.1: no CSRC, no extension) and lets `payload` write
    /// the payload after it; returns the packet's length. By hand rather than through
    /// `rtp::packet::Packet::marshal`, which needs the payload as `Bytes`: this runs 50 times
    /// a second per leg and must neither allocate nor copy the payload.
    fn write(
        &mut self,
        buf: &mut [u8],
        pt: u8,
        marker: bool,
        timestamp: u32,
        payload: impl FnOnce(&mut [u8]) -> usize,
    ) -> usize {
        let marker = marker || self.first || self.talkspurt;
        self.first = false;
        self.talkspurt = false;
        let header = &mut buf[..RTP_HEADER];
        header[0] = 0x80;
        header[1] = (u8::from(marker) << 7) | (pt & 0x7F);
        header[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        header[4..8].copy_from_slice(&timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let len = payload(&mut buf[RTP_HEADER..]);
        self.sequence = self.sequence.wrapping_add(1);
        self.octets += len as u64;
        RTP_HEADER + len
    }
}

/// What a tick sends: PCM the leg encodes itself, or a payload encoded already (one encode
/// shared by the room's listeners who hear the same mix).
#[derive(Clone, Copy)]
enum Outgoing<'a> {
    Pcm(&'a [i16]),
    Encoded(&'a [u8]),
}

/// One leg's RTP and RTCP; see the module documentation.
pub struct RtpLeg {
    params: MediaParams,
    latch: Latch,
    jitter: JitterBuffer,
    dtmf_rx: DtmfReceiver,
    dtmf_tx: Option<DtmfSender>,
    stream: StreamState,
    outbox: Outbox,
    events: VecDeque<MediaEvent>,
    stats: MediaStats,
    rx_stats: RxStats,
    /// The codec's running state, made here at setup (never per frame).
    coder: Coder,
    /// RTP clock rate (timestamp units per second).
    rate: u32,
    /// PCM samples per 20 ms frame, at the codec's PCM rate.
    frame_len: usize,
    /// RTP timestamp units per 20 ms frame (differs from `frame_len` for Opus: 960 at 48 kHz
    /// whatever rate it samples at).
    rtp_frame: u32,
    start: Instant,
    /// `start` on the wall clock (since the Unix epoch), for RTCP's NTP timestamps.
    start_wall: Duration,
    last_rx: Instant,
    timeout_reported: bool,
    discards_counted: u64,
    next_report: Instant,
    counters: Counters,
    /// Set when the leg runs SRTP. Boxed: the two contexts are a few hundred bytes, and
    /// inline they would push the fields every tick reads onto more cache lines for the plain
    /// legs that never use them.
    srtp: Option<Box<SrtpSession>>,
}

impl RtpLeg {
    /// A leg starting at `now`, which is `wall` on the wall clock (since the Unix epoch).
    /// Fails only when the parameters carry SRTP keys that cannot be used, or a codec that
    /// cannot be set up.
    pub fn new(
        params: MediaParams,
        ids: StreamIds,
        now: Instant,
        wall: Duration,
    ) -> Result<Self, MediaError> {
        let rate = params.codec.clock_rate();
        let coder = params.codec.coder()?;
        let frame_len = (params.codec.pcm_rate() / 50) as usize;
        let srtp = params
            .srtp
            .as_ref()
            .map(|keys| SrtpSession::new(keys).map(Box::new))
            .transpose()?;
        Ok(RtpLeg {
            latch: Latch::new(params.remote_rtp, params.latching),
            jitter: JitterBuffer::new(
                params.jitter_min_ms.max(params.codec.min_jitter_ms()),
                params.jitter_max_ms,
            ),
            outbox: Outbox::new(params.remote_rtp),
            params,
            dtmf_rx: DtmfReceiver::default(),
            dtmf_tx: None,
            stream: StreamState {
                ssrc: ids.ssrc,
                sequence: ids.sequence,
                timestamp: ids.timestamp,
                first: true,
                octets: 0,
                talkspurt: false,
            },
            events: VecDeque::with_capacity(EVENT_CAPACITY),
            stats: MediaStats::default(),
            rx_stats: RxStats::default(),
            coder,
            rate,
            frame_len,
            rtp_frame: rate / 50,
            start: now,
            start_wall: wall,
            last_rx: now,
            timeout_reported: false,
            discards_counted: 0,
            next_report: now + REPORT_INTERVAL / 2,
            counters: Counters::new(),
            srtp,
        })
    }

    /// The leg's counters so far.
    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    /// Samples per 20 ms frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// The address media is taken from, once it is fixed: a driver connects its sockets to it
    /// so that the kernel drops every other datagram before they cost anything.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.latch.peer()
    }

    /// Where RTCP from the peer is expected: the RTCP port beside its RTP (RFC 3550 §11).
    pub fn rtcp_peer(&self) -> Option<SocketAddr> {
        self.peer().map(rtcp_of)
    }

    /// A decoded frame nobody took (the leg's consumer was slow).
    pub fn note_unconsumed_frame(&mut self) {
        self.stats.dropped_frames += 1;
    }

    /// A packet the driver could not send (full socket buffer).
    pub fn note_send_failed(&mut self) {
        self.stats.packets_sent = self.stats.packets_sent.saturating_sub(1);
        self.counters.sent.pending = self.counters.sent.pending.saturating_sub(1);
        metrics::counter!("huddle_rtp_dropped_total", "reason" => "send_failed").increment(1);
    }

    /// A re-INVITE moved the remote or changed its direction.
    pub fn update_remote(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        direction: crate::session::Direction,
    ) {
        if remote != self.latch.send_to() || self.latch.peer().is_none() {
            self.latch.reset(remote);
        }
        self.params.remote_direction = direction;
        self.last_rx = now;
        self.timeout_reported = false;
    }

    /// Sends `digit` as RFC 4733 events from the next frame on (ignored without
    /// telephone-event).
    pub fn send_digit(&mut self, digit: char, duration_ms: u32) {
        if self.params.telephone_event_pt.is_some() {
            self.dtmf_tx =
                DtmfSender::new(digit, duration_ms * self.rate / 1000, self.stream.timestamp);
        }
    }

    /// An RTP datagram from `source`, which arrived at `arrival` (the kernel's stamp) or, when
    /// unknown, `now`. `truncated` says it did not fit the receive buffer.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        data: &[u8],
        truncated: bool,
        arrival: Option<Instant>,
    ) {
        // The source first: a stranger's packet costs a comparison, not a parse.
        let decision = self.latch.peek(source);
        if decision == LatchDecision::Foreign {
            self.stats.foreign_packets += 1;
            self.counters.foreign.increment(1);
            return;
        }
        if truncated {
            self.malformed(RtpError::Malformed);
            return;
        }
        // With SRTP only a packet that authenticates counts, and only it may fix the peer.
        let plain;
        let data = match self.srtp.as_mut() {
            Some(srtp) => match srtp.unprotect_rtp(data) {
                Some(p) => {
                    plain = p;
                    &plain[..]
                }
                None => {
                    self.stats.malformed_packets += 1;
                    self.counters.unauthenticated.increment(1);
                    return;
                }
            },
            None => data,
        };
        let packet = match rtp_rx::parse_slice(data) {
            Ok(p) => p,
            Err(e) => {
                self.malformed(e);
                return;
            }
        };
        if decision == LatchDecision::Latched {
            self.latch.commit(source);
            self.push_event(MediaEvent::Latched(source));
        }
        self.stats.packets_received += 1;
        self.counters.received.increment(1);
        let since_start = arrival.unwrap_or(now).saturating_duration_since(self.start);
        let arrival_units =
            (since_start.as_micros() as u64 * u64::from(self.rate) / 1_000_000) as u32;
        self.rx_stats.on_packet(
            packet.ssrc,
            packet.sequence,
            packet.timestamp,
            arrival_units,
        );
        self.last_rx = now;
        self.timeout_reported = false;
        if Some(packet.payload_type) == self.params.telephone_event_pt {
            if let Some((digit, duration)) =
                self.dtmf_rx.on_packet(packet.timestamp, packet.payload)
            {
                self.push_event(MediaEvent::Dtmf {
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

    fn malformed(&mut self, e: RtpError) {
        self.stats.malformed_packets += 1;
        match e {
            RtpError::TooShort => self.counters.too_short.increment(1),
            RtpError::BadVersion => self.counters.bad_version.increment(1),
            RtpError::Malformed => self.counters.malformed.increment(1),
        }
    }

    /// The frame due now, decoded into `out`; None while the jitter buffer fills. Pass the
    /// same buffer every tick: a lost frame is concealed by fading what `out` still holds.
    pub fn poll_frame(&mut self, out: &mut [i16]) -> Option<usize> {
        // Frames the jitter buffer threw away (on the last pop or the pushes since).
        let discarded = self.jitter.discarded();
        self.counters
            .overflow
            .increment(discarded - self.discards_counted);
        self.discards_counted = discarded;
        let n = self.frame_len.min(out.len());
        match self.jitter.pop() {
            Playout::Frame(payload) => match self.coder.decode(payload, out) {
                Some(got) => Some(got),
                None => {
                    // A payload the codec refuses is lost audio: counted, then concealed.
                    self.stats.malformed_packets += 1;
                    self.counters.undecodable.increment(1);
                    self.conceal(None, out);
                    Some(n)
                }
            },
            Playout::Lost => {
                let next = self.jitter.peek_next();
                match self.coder.conceal(next, self.frame_len, out) {
                    Concealment::Silence => {}
                    how => {
                        self.stats.concealed_frames += 1;
                        self.counters.concealed.increment(1);
                        if how == Concealment::Fec {
                            self.counters.fec.increment(1);
                        }
                    }
                }
                Some(n)
            }
            // Nothing to play: a peer in DTX is silent on purpose, anyone else not sending.
            Playout::Buffering => self.coder.idle(self.frame_len, out),
        }
    }

    fn conceal(&mut self, next: Option<&[u8]>, out: &mut [i16]) {
        if self.coder.conceal(next, self.frame_len, out) != Concealment::Silence {
            self.stats.concealed_frames += 1;
            self.counters.concealed.increment(1);
        }
    }

    /// The codec the leg runs: what a payload given to [`RtpLeg::send_encoded`] must be.
    pub fn codec(&self) -> crate::codec::Codec {
        self.params.codec
    }

    /// Queues this tick's frame (or the pending digit's packets instead) for sending, then
    /// runs the timers due at `now`.
    pub fn send_frame(&mut self, now: Instant, pcm: Option<&[i16]>) {
        self.send_outgoing(now, pcm.map(Outgoing::Pcm));
    }

    /// Like [`RtpLeg::send_frame`], for one 20 ms frame encoded already with the leg's codec
    /// at its PCM rate (the room encoded it once for every listener hearing the same mix).
    /// The leg still writes its own RTP header, sequence number and timestamp, and protects
    /// the packet with its own SRTP keys. An empty payload is a DTX frame: nothing is sent and
    /// the next packet starts a talk spurt.
    pub fn send_encoded(&mut self, now: Instant, payload: &[u8]) {
        self.send_outgoing(now, Some(Outgoing::Encoded(payload)));
    }

    fn send_outgoing(&mut self, now: Instant, outgoing: Option<Outgoing<'_>>) {
        let destination = self.latch.send_to();
        if self.params.remote_direction.remote_receives() {
            if let (Some(tx), Some(te_pt)) = (self.dtmf_tx.as_mut(), self.params.telephone_event_pt)
            {
                let (marker, ts) = (tx.is_start(), tx.timestamp());
                let (payload, count) = tx.next_payloads(self.rtp_frame);
                if tx.done() {
                    self.dtmf_tx = None;
                }
                for _ in 0..count {
                    let Some(buf) = self.outbox.slot() else { break };
                    let len = self.stream.write(buf, te_pt, marker, ts, |b| {
                        b[..payload.len()].copy_from_slice(&payload);
                        payload.len()
                    });
                    self.queue(len);
                }
                self.stream.timestamp = self.stream.timestamp.wrapping_add(self.rtp_frame);
            } else if let Some(outgoing) = outgoing {
                let ts = self.stream.timestamp;
                // In RTP clock units: the same as samples for G.711, six per sample for
                // Opus at 8 kHz.
                let units = match outgoing {
                    Outgoing::Pcm(pcm) if self.frame_len as u32 == self.rtp_frame => {
                        pcm.len() as u32
                    }
                    Outgoing::Pcm(pcm) => {
                        (pcm.len() as u64 * u64::from(self.rtp_frame)
                            / self.frame_len.max(1) as u64) as u32
                    }
                    Outgoing::Encoded(_) => self.rtp_frame,
                };
                self.stream.timestamp = self.stream.timestamp.wrapping_add(units);
                let pt = self.params.payload_type;
                if let Some(buf) = self.outbox.slot() {
                    // Encode first: a codec in DTX sends nothing, and the next packet it
                    // sends starts a talk spurt.
                    let body = &mut buf[RTP_HEADER..];
                    let room = body.len().saturating_sub(MAX_TAG);
                    let len = match outgoing {
                        Outgoing::Pcm(pcm) => self.coder.encode(pcm, &mut body[..room]),
                        Outgoing::Encoded(payload) if payload.len() <= room => {
                            body[..payload.len()].copy_from_slice(payload);
                            payload.len()
                        }
                        // Larger than any 20 ms frame we encode: dropped, not cut.
                        Outgoing::Encoded(_) => 0,
                    };
                    if len > 0 {
                        let len = self.stream.write(buf, pt, false, ts, |_| len);
                        self.queue(len);
                    } else {
                        self.stream.talkspurt = true;
                    }
                }
            }
        }
        self.outbox.destination = destination;
        self.counters.tick();
        self.handle_timeout(now);
    }

    /// Queues the packet just written into the outbox's next slot, protected first when the
    /// leg runs SRTP.
    fn queue(&mut self, len: usize) {
        let len = match self.srtp.as_mut() {
            Some(srtp) => {
                let Some(buf) = self.outbox.slot() else {
                    return;
                };
                match srtp.protect_rtp(buf, len) {
                    Some(protected) => protected,
                    None => {
                        self.counters.unprotectable.increment(1);
                        return;
                    }
                }
            }
            None => len,
        };
        self.outbox.commit(len);
        self.stats.packets_sent += 1;
        self.counters.sent.increment(1);
    }

    /// Runs what is due at `now`: the RTP timeout and the RTCP sender report.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(limit) = self.params.rtp_timeout {
            if self.params.remote_direction.remote_sends()
                && !self.timeout_reported
                && now.saturating_duration_since(self.last_rx) > limit
            {
                self.timeout_reported = true;
                self.push_event(MediaEvent::RtpTimeout);
            }
        }
        if now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            let wall = self.start_wall + now.saturating_duration_since(self.start);
            let report = sender_report(
                self.stream.ssrc,
                // The timestamp the next frame will carry: the media time of "now".
                self.stream.timestamp,
                wall,
                &self.stats,
                self.stream.octets,
                self.rx_stats.report(),
            );
            let report = match self.srtp.as_mut() {
                Some(srtp) => srtp.protect_rtcp(&report),
                None => Some(report),
            };
            if let Some(report) = report {
                self.outbox.report = Some((rtcp_of(self.latch.send_to()), report));
                self.outbox.report_due = true;
            }
        }
    }

    /// When [`RtpLeg::handle_timeout`] next has work: the next report, or the RTP timeout.
    pub fn next_deadline(&self) -> Instant {
        let timeout = self
            .params
            .rtp_timeout
            .filter(|_| self.params.remote_direction.remote_sends() && !self.timeout_reported)
            .map(|limit| self.last_rx + limit + Duration::from_micros(1));
        timeout.map_or(self.next_report, |t| t.min(self.next_report))
    }

    /// The next datagram to send, if any. Call until None after each tick.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let outbox = &mut self.outbox;
        if outbox.taken < outbox.queued {
            let i = outbox.taken;
            outbox.taken += 1;
            return Some(Transmit {
                channel: Channel::Rtp,
                destination: outbox.destination,
                data: &outbox.slots[i][..outbox.lens[i]],
            });
        }
        if std::mem::take(&mut outbox.report_due) {
            let (destination, report) = outbox.report.as_ref()?;
            return Some(Transmit {
                channel: Channel::Rtcp,
                destination: *destination,
                data: report,
            });
        }
        None
    }

    /// The next thing the leg noticed (digits, latching, RTP timeout).
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    fn push_event(&mut self, event: MediaEvent) {
        if self.events.len() == EVENT_CAPACITY {
            // Nobody polled for a long time; the oldest news is the least useful.
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Publishes the counters not yet published (the driver calls it when the leg ends).
    pub fn publish_counters(&mut self) {
        self.counters.publish();
    }
}

impl Drop for RtpLeg {
    fn drop(&mut self) {
        self.counters.publish();
    }
}

/// The RTCP address beside an RTP address.
fn rtcp_of(mut rtp: SocketAddr) -> SocketAddr {
    rtp.set_port(rtp.port().wrapping_add(1));
    rtp
}

/// An RTCP sender report (we always send, so SR rather than RR) with our counters and, once the
/// remote has sent, a report block with its loss and jitter (RFC 3550 §6.4).
fn sender_report(
    ssrc: u32,
    rtp_time: u32,
    wall: Duration,
    stats: &MediaStats,
    octets: u64,
    figures: Option<rtp_rx::ReportFigures>,
) -> Bytes {
    let ntp_secs = wall.as_secs() + 2_208_988_800;
    let ntp_frac = (u64::from(wall.subsec_nanos()) << 32) / 1_000_000_000;
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
