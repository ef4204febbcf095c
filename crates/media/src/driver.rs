//! The I/O half of a leg: its two sockets, the clock, and the glue that feeds an [`RtpLeg`].
//!
//! This is the only place in the media crate that touches a socket on the media path or reads
//! the clock, whoever drives the leg: the leg's own task while the call plays prompts, or a
//! room's mixing thread while the call is in an MPC. Lending the leg to the room means a
//! participant costs the room one receive and one send system call per tick and nothing else:
//! no task wake-up per packet, no frame copied through a channel. Received packets simply wait
//! in the socket's kernel buffer until the tick drains them, which is when they would be played
//! out anyway.
//!
//! Once the leg knows its peer, the RTP and RTCP sockets are `connect()`ed to it, so the kernel
//! drops every datagram from anyone else before huddle sees it: a sprayer or a flood aimed at
//! the port costs the leg nothing and cannot push the peer's packets out of the socket buffer.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use crate::codec::{Codec, CodecError};
use crate::news::{self, Epoch, NewsBell, NewsWatch};
use crate::ports::PortPair;
use crate::resample::FrameResampler;
use crate::rtp_leg::{Channel, RtpLeg, StreamIds};
use crate::session::MediaError;
use crate::session::{AudioFrame, Direction, MediaEvent, MediaParams, MediaStats, HOME_RATE};
use crate::udp_batch::{self, RecvBatch};

/// Datagrams one tick reads at most from a connected leg's socket: the kernel already keeps
/// strangers out, so this only bounds a peer that bursts.
const MAX_DATAGRAMS_CONNECTED: usize = 2 * udp_batch::BATCH;

/// Datagrams one tick reads at most while the peer is not fixed yet (a phone behind NAT
/// before its first packet): strangers' packets still reach the socket then, so a tick reads
/// more of them rather than leave the peer's first packets behind a flood.
const MAX_DATAGRAMS_UNCONNECTED: usize = 16 * udp_batch::BATCH;

thread_local! {
    /// Receive buffers, shared by every leg a thread ticks (a mixing thread ticks hundreds).
    static RECV_BATCH: RefCell<RecvBatch> = RefCell::new(RecvBatch::default());
}

/// A participant's audio as a mixer drives it: one frame in and one frame out per 20 ms tick.
pub trait TickAudio: Send {
    /// The participant's frame for this tick, written into `out`; returns the number of
    /// samples, or None when there is nothing to play (not sending, or still buffering).
    /// Pass the same buffer every tick: a lost frame is concealed by fading what `out` still
    /// holds, the previous frame.
    fn receive(&mut self, out: &mut [i16]) -> Option<usize>;

    /// Sends this tick's frame to the participant.
    fn send(&mut self, pcm: &[i16]);

    /// Sample rate of the frames exchanged (8000 for G.711, 16000 for G.722 and wideband
    /// Opus, the stream's rate for an AI stream). Fixed for the participant's stay: a room
    /// sizes its buffers and builds the participant's resamplers from it when it joins.
    fn rate(&self) -> u32;

    /// The codec of an RTP leg, whose payloads [`TickAudio::send_encoded`] takes; None (the
    /// default) for a participant that only takes PCM (an AI stream).
    fn codec(&self) -> Option<Codec> {
        None
    }

    /// Sends this tick's frame as a payload already encoded with [`TickAudio::codec`] at
    /// [`TickAudio::rate`]: a room encodes once for every listener that hears the same mix
    /// and hands each the payload; the participant still does its own RTP header, sequence,
    /// timestamp and SRTP. Only called when `codec()` is Some; the default ignores it.
    fn send_encoded(&mut self, payload: &[u8]) {
        let _ = payload;
    }
}

/// Changes for the leg, applied by whoever drives it at the next tick.
#[derive(Debug)]
enum Control {
    /// New remote address or direction (re-INVITE).
    Update(SocketAddr, Direction),
    /// Send a digit as RFC 4733 events.
    Dtmf(char, u32),
}

/// Rung whenever any leg is sent a control message. Changes are rare, so a tick first
/// compares this one process-wide epoch (a cache line every core keeps) with the value it saw
/// last, and only then looks at its own leg's flag and queue, which live elsewhere in memory
/// and would otherwise cost a cache miss per leg per tick.
static CONTROL_NEWS: Epoch = Epoch::new();

/// The sending side of a leg's control queue.
pub(crate) struct ControlSender {
    tx: std_mpsc::Sender<Control>,
    bell: NewsBell,
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
        // The message first: whoever hears the bell finds it.
        if self.tx.send(control).is_ok() {
            self.bell.ring();
        }
    }
}

/// The receiving end, held by the leg's driver.
pub(crate) struct ControlReceiver {
    rx: std_mpsc::Receiver<Control>,
    news: NewsWatch,
}

/// A leg's control queue: a plain standard-library channel, since both ends are synchronous
/// and the receiver only looks at it when its bell rang.
pub(crate) fn control_channel() -> (ControlSender, ControlReceiver) {
    let (tx, rx) = std_mpsc::channel();
    let (bell, news) = news::channel(&CONTROL_NEWS);
    (ControlSender { tx, bell }, ControlReceiver { rx, news })
}

/// The wall clock since the Unix epoch, which the kernel's arrival stamps use.
fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// One leg's sockets around its [`RtpLeg`]; see the module documentation.
pub struct LegDriver {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    _ports: PortPair,
    leg: RtpLeg,
    /// Where the sockets are connected to, if anywhere.
    connected: Option<SocketAddr>,
    events: mpsc::UnboundedSender<MediaEvent>,
    control: ControlReceiver,
}

impl LegDriver {
    /// `rtp` and `rtcp` must be non-blocking.
    pub(crate) fn new(
        rtp: UdpSocket,
        rtcp: UdpSocket,
        ports: PortPair,
        params: MediaParams,
        events: mpsc::UnboundedSender<MediaEvent>,
        control: ControlReceiver,
    ) -> Result<Self, MediaError> {
        let leg = RtpLeg::new(params, StreamIds::random(), Instant::now(), wall_clock())?;
        let mut driver = LegDriver {
            rtp,
            rtcp,
            _ports: ports,
            leg,
            connected: None,
            events,
            control,
        };
        driver.follow_peer();
        Ok(driver)
    }

    /// The leg's counters so far.
    pub fn stats(&self) -> MediaStats {
        self.leg.stats()
    }

    /// Samples per 20 ms frame.
    pub fn frame_len(&self) -> usize {
        self.leg.frame_len()
    }

    /// Sample rate of the PCM the leg decodes to and encodes from.
    pub fn rate(&self) -> u32 {
        self.leg.frame_len() as u32 * 50
    }

    /// A decoded frame nobody took (the leg's own task found its consumer's queue full).
    pub(crate) fn note_unconsumed_frame(&mut self) {
        self.leg.note_unconsumed_frame();
    }

    fn apply_control(&mut self, now: Instant) {
        if !self.control.news.take() {
            return;
        }
        while let Ok(control) = self.control.rx.try_recv() {
            match control {
                Control::Update(remote, direction) => {
                    self.leg.update_remote(now, remote, direction);
                    self.follow_peer();
                }
                Control::Dtmf(digit, duration_ms) => self.leg.send_digit(digit, duration_ms),
            }
        }
    }

    /// Connects the sockets to the leg's peer once it is known, or back to nobody when a
    /// re-INVITE made it unknown again.
    fn follow_peer(&mut self) {
        let peer = self.leg.peer();
        if peer == self.connected {
            return;
        }
        let done = match (peer, self.leg.rtcp_peer()) {
            (Some(rtp), Some(rtcp)) => self
                .rtp
                .connect(rtp)
                .and_then(|()| self.rtcp.connect(rtcp))
                .map(|()| Some(rtp)),
            _ => disconnect(&self.rtp)
                .and_then(|()| disconnect(&self.rtcp))
                .map(|()| None),
        };
        match done {
            Ok(now_connected) => self.connected = now_connected,
            // The leg still filters by source itself; the kernel's filter is a saving.
            Err(e) => tracing::warn!(error = %e, "cannot connect the RTP sockets to the peer"),
        }
    }

    /// Sends this tick's frame encoded already (see [`RtpLeg::send_encoded`]).
    pub fn send_encoded(&mut self, payload: &[u8]) {
        let now = Instant::now();
        self.leg.send_encoded(now, payload);
        self.flush();
    }

    /// Reads what arrived since the last tick into the leg.
    fn drain(&mut self, now: Instant) {
        let wall = wall_clock();
        let limit = if self.connected.is_some() {
            MAX_DATAGRAMS_CONNECTED
        } else {
            MAX_DATAGRAMS_UNCONNECTED
        };
        RECV_BATCH.with_borrow_mut(|batch| {
            for _ in 0..limit / udp_batch::BATCH {
                let received = match batch.recv(&self.rtp) {
                    Ok(n) => n,
                    // A connected socket reports the peer's ICMP errors (its port closed) on
                    // the next read; that read returns nothing else, so read again.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(_) => return,
                };
                for i in 0..received {
                    if let Some(d) = batch.get(i) {
                        // The kernel's stamp as an instant on our clock.
                        let arrival = d
                            .arrival
                            .and_then(|at| now.checked_sub(wall.saturating_sub(at)));
                        self.leg
                            .handle_datagram(now, d.source, d.data, d.truncated, arrival);
                    }
                }
                if received < udp_batch::BATCH {
                    return;
                }
            }
        });
        self.follow_peer();
    }

    /// Everything that arrived since the last tick goes into the leg; the frame due now is
    /// decoded into `out`.
    pub fn receive(&mut self, out: &mut [i16]) -> Option<usize> {
        let now = Instant::now();
        self.apply_control(now);
        self.drain(now);
        self.forward_events();
        self.leg.poll_frame(out)
    }

    /// Sends this tick's frame (or a pending digit instead), and whatever the leg's timers
    /// produced (the RTCP report). Non-blocking: a full socket buffer drops a packet (counted)
    /// rather than stalling the tick.
    pub fn send(&mut self, pcm: Option<&[i16]>) {
        let now = Instant::now();
        self.leg.send_frame(now, pcm);
        self.flush();
    }

    /// Sends what the leg queued this tick; a full socket buffer drops (and counts) a packet.
    fn flush(&mut self) {
        let mut failed = 0;
        while let Some(t) = self.leg.poll_transmit() {
            let socket = match t.channel {
                Channel::Rtp => &self.rtp,
                Channel::Rtcp => &self.rtcp,
            };
            let sent = socket.send_to(t.data, t.destination).or_else(|e| {
                // A pending ICMP error from the peer comes back once; the packet was not sent.
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    socket.send_to(t.data, t.destination)
                } else {
                    Err(e)
                }
            });
            if sent.is_err() && t.channel == Channel::Rtp {
                failed += 1;
            }
        }
        for _ in 0..failed {
            self.leg.note_send_failed();
        }
        self.forward_events();
    }

    fn forward_events(&mut self) {
        while let Some(event) = self.leg.poll_event() {
            let _ = self.events.send(event);
        }
    }
}

/// Dissolves a UDP socket's association (connect with AF_UNSPEC, as connect(2) documents),
/// which the standard library does not offer.
fn disconnect(socket: &UdpSocket) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: an all-zero sockaddr with family AF_UNSPEC and its size, on a valid socket.
        let rc = unsafe {
            let mut addr: libc::sockaddr = std::mem::zeroed();
            addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
            libc::connect(
                socket.as_raw_fd(),
                &addr,
                std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(unix))]
    {
        let _ = socket;
        Ok(())
    }
}

/// A leg's audio on loan to a room. However the loan ends (the member leaves, the room ends,
/// or a bug unwinds the mixing thread), dropping it sends the audio back to the leg's task.
pub struct LentAudio {
    // Held inline: the room reaches it through one pointer (its boxed member audio), not two.
    audio: Option<LegDriver>,
    home: mpsc::UnboundedSender<Box<LegDriver>>,
}

impl LentAudio {
    fn new(audio: Box<LegDriver>, home: mpsc::UnboundedSender<Box<LegDriver>>) -> Self {
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

    fn rate(&self) -> u32 {
        self.audio.as_ref().map_or(HOME_RATE, LegDriver::rate)
    }

    fn codec(&self) -> Option<Codec> {
        self.audio.as_ref().map(|a| a.leg.codec())
    }

    fn send_encoded(&mut self, payload: &[u8]) {
        if let Some(audio) = self.audio.as_mut() {
            audio.send_encoded(payload);
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

/// What the leg's handle asks of its task.
pub(crate) enum Command {
    /// Lend the audio to a room.
    Lend(oneshot::Sender<LentAudio>),
    /// Stop, answering with the final counters.
    Stop(oneshot::Sender<MediaStats>),
}

/// How long stopping waits for audio on loan to a room to come back.
const RETURN_WAIT: Duration = Duration::from_millis(500);

/// The leg's own task: ticks the driver every 20 ms while the audio is home, lends it out on
/// request, reads RTCP.
pub(crate) async fn run(
    audio: Box<LegDriver>,
    rtcp: Option<tokio::net::UdpSocket>,
    frames_in: mpsc::Sender<AudioFrame>,
    mut frames_out: mpsc::Receiver<AudioFrame>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let (home_tx, mut home) = mpsc::unbounded_channel::<Box<LegDriver>>();
    let leg_rate = audio.rate();
    // The call's frames are 8 kHz; a wideband leg converts them here, once per tick.
    let mut bridge = match RateBridge::new(leg_rate) {
        Ok(bridge) => bridge,
        Err(e) => {
            tracing::warn!(error = %e, rate = leg_rate, "the call's audio cannot be converted to the leg's rate");
            None
        }
    };
    let mut audio = Some(audio);
    let mut waiting_lend: Option<oneshot::Sender<LentAudio>> = None;
    let frame_len = (HOME_RATE / 50) as usize;
    let mut decoded = AudioFrame::silence(frame_len, HOME_RATE);
    let mut rtcp_buf = vec![0u8; 1500];
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_millis(20),
        Duration::from_millis(20),
    );
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick(), if audio.is_some() => {
                let Some(leg) = audio.as_mut() else { continue };
                let received = match bridge.as_mut() {
                    Some(b) => b.receive(leg, &mut decoded.samples),
                    None => leg.receive(&mut decoded.samples),
                };
                if let Some(n) = received {
                    decoded.len = n;
                    if frames_in.try_send(decoded.clone()).is_err() {
                        leg.note_unconsumed_frame();
                    }
                }
                let outgoing = frames_out.try_recv().ok();
                match (bridge.as_mut(), outgoing.as_ref()) {
                    (Some(b), Some(frame)) if frame.rate != leg_rate => b.send(leg, frame.pcm()),
                    (_, frame) => leg.send(frame.map(AudioFrame::pcm)),
                }
            }
            received = recv_rtcp(rtcp.as_ref(), &mut rtcp_buf) => {
                let Ok(len) = received else { continue };
                let mut data = Bytes::copy_from_slice(&rtcp_buf[..len]);
                if rtcp::packet::unmarshal(&mut data).is_err() {
                    metrics::counter!("huddle_rtcp_malformed_total").increment(1);
                }
            }
            Some(back) = home.recv() => match waiting_lend.take() {
                // A new loan asked for while the last one was on its way home.
                Some(reply) => lend(back, reply, &home_tx),
                None => audio = Some(back),
            },
            cmd = commands.recv() => match cmd {
                Some(Command::Lend(reply)) => match audio.take() {
                    Some(leg) => lend(leg, reply, &home_tx),
                    // On loan still (the room that let the call go has not dropped it yet):
                    // lend it on as soon as it is back.
                    None => waiting_lend = Some(reply),
                },
                Some(Command::Stop(reply)) => {
                    if audio.is_none() {
                        audio = tokio::time::timeout(RETURN_WAIT, home.recv()).await.ok().flatten();
                    }
                    let _ = reply.send(audio.map(|a| a.stats()).unwrap_or_default());
                    return;
                }
                None => return,
            }
        }
    }
}

/// Converts between a wideband leg's frames and the call's 8 kHz frames while the leg's own
/// task drives it (prompts, IVR input, recordings and streams outside a room run at 8 kHz);
/// in a room the room takes the leg's own rate instead. Everything is made at leg setup.
struct RateBridge {
    /// Leg rate to 8 kHz.
    down: FrameResampler,
    /// 8 kHz to the leg rate.
    up: FrameResampler,
    /// The leg's decoded frame; kept between ticks, since a lost frame is concealed by
    /// fading the previous one.
    leg_in: Box<[i16]>,
    leg_out: Box<[i16]>,
}

impl RateBridge {
    /// None for a leg already at 8 kHz.
    fn new(leg_rate: u32) -> Result<Option<RateBridge>, CodecError> {
        if leg_rate == HOME_RATE {
            return Ok(None);
        }
        let len = (leg_rate / 50) as usize;
        Ok(Some(RateBridge {
            down: FrameResampler::new(leg_rate, HOME_RATE)?,
            up: FrameResampler::new(HOME_RATE, leg_rate)?,
            leg_in: vec![0; len].into(),
            leg_out: vec![0; len].into(),
        }))
    }

    fn receive(&mut self, leg: &mut LegDriver, out: &mut [i16]) -> Option<usize> {
        let n = leg.receive(&mut self.leg_in)?;
        let len = self.leg_in.len();
        self.leg_in[n.min(len)..].fill(0);
        Some(self.down.process(&self.leg_in, out))
    }

    fn send(&mut self, leg: &mut LegDriver, pcm: &[i16]) {
        let n = self.up.process(pcm, &mut self.leg_out);
        leg.send(Some(&self.leg_out[..n]));
    }
}

fn lend(
    audio: Box<LegDriver>,
    reply: oneshot::Sender<LentAudio>,
    home: &mpsc::UnboundedSender<Box<LegDriver>>,
) {
    // A loan nobody took comes straight home through its drop.
    let _ = reply.send(LentAudio::new(audio, home.clone()));
}

async fn recv_rtcp(
    socket: Option<&tokio::net::UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match socket {
        Some(socket) => socket.recv_from(buf).await.map(|(len, _)| len),
        None => std::future::pending().await,
    }
}
