//! One media leg over UDP: binding its ports, starting it, and the handle the call uses. The
//! leg's task (`crate::driver`) ticks it every 20 ms while the call plays prompts, and lends it
//! to a room's mixing thread while the call is in an MPC.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::codec::Codec;
use crate::driver::{self, control_channel, Command, ControlSender, LegDriver, LentAudio};
use crate::ports::{PortAllocator, PortPair};
pub use crate::rtp_rx::LatchPolicy;
pub use crate::srtp::{SrtpKeying, SrtpSuite};

/// Largest frame carried (120 ms at 8 kHz, 20 ms at 48 kHz).
pub const MAX_FRAME_SAMPLES: usize = 960;

/// Sample rate of the frames a leg's [`MediaHandle`] exchanges with its call (prompts, IVR
/// input, single-call recordings and streams run at 8 kHz). A leg whose codec runs at another
/// rate (G.722, wideband Opus) converts them in its own task; lent to a room, it exchanges
/// frames at its own rate and the room converts what it must.
pub const HOME_RATE: u32 = 8000;

/// Errors setting a leg up.
#[derive(Debug, Error)]
pub enum MediaError {
    /// The port range is exhausted.
    #[error("no free RTP port pair in the configured range")]
    NoPorts,
    /// Socket failure.
    #[error("cannot bind RTP sockets: {0}")]
    Io(#[from] std::io::Error),
    /// The negotiated SRTP keys cannot be used.
    #[error(transparent)]
    Srtp(#[from] crate::srtp::SrtpError),
    /// The negotiated codec cannot be set up.
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
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
    /// The remote takes our media.
    pub fn remote_receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
    /// The remote sends media.
    pub fn remote_sends(self) -> bool {
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
    /// Whom media is taken from.
    pub latching: LatchPolicy,
    /// SRTP keys, when the leg is RTP/SAVP.
    pub srtp: Option<SrtpKeying>,
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
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
    ports: PortPair,
}

/// Control of a running leg.
pub struct MediaHandle {
    frames_in: mpsc::Receiver<AudioFrame>,
    frames_out: mpsc::Sender<AudioFrame>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    commands: mpsc::UnboundedSender<Command>,
    control: ControlSender,
}

/// True for a bind that failed because another socket holds the port: the next pair may do.
fn port_taken(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable
    )
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

impl MediaSession {
    /// Binds an RTP/RTCP pair from the pool on `local_ip`; ports another program holds are
    /// skipped. Any other failure (no file handle left, EMFILE) is returned as it is, not as
    /// "no free port pair", so that the log names the real cause.
    pub async fn bind(ports: &PortAllocator, local_ip: IpAddr) -> Result<MediaSession, MediaError> {
        let mut last_taken = None;
        for _ in 0..16 {
            let pair = ports.allocate().ok_or(MediaError::NoPorts)?;
            let rtp = bind_udp(SocketAddr::new(local_ip, pair.rtp())).inspect(|socket| {
                // Without kernel stamps the jitter figures use read times instead.
                let _ = crate::udp_batch::enable_arrival_timestamps(socket);
            });
            let rtcp = bind_udp(SocketAddr::new(local_ip, pair.rtcp()));
            match (rtp, rtcp) {
                (Ok(rtp), Ok(rtcp)) => {
                    return Ok(MediaSession {
                        rtp,
                        rtcp,
                        ports: pair,
                    })
                }
                (Err(err), _) | (_, Err(err)) if port_taken(&err) => last_taken = Some(err),
                (Err(err), _) | (_, Err(err)) => return Err(MediaError::Io(err)),
            }
        }
        Err(last_taken.map_or(MediaError::NoPorts, MediaError::Io))
    }

    /// Our RTP port, for the SDP answer.
    pub fn local_rtp_port(&self) -> u16 {
        self.ports.rtp()
    }

    /// Starts the leg task; fails only on SRTP keys or a codec that cannot be set up.
    pub fn start(self, params: MediaParams) -> Result<MediaHandle, MediaError> {
        let (in_tx, in_rx) = mpsc::channel(8);
        let (out_tx, out_rx) = mpsc::channel(8);
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (control_tx, control_rx) = control_channel();
        let MediaSession { rtp, rtcp, ports } = self;
        // The task reads RTCP; the leg's audio sends reports through its own handle on it.
        let rtcp_in = rtcp
            .try_clone()
            .and_then(UdpSocket::from_std)
            .map_err(|e| tracing::warn!(error = %e, "RTCP from the remote will not be read"))
            .ok();
        let audio = LegDriver::new(rtp, rtcp, ports, params, ev_tx, control_rx)?;
        tokio::spawn(driver::run(Box::new(audio), rtcp_in, in_tx, out_rx, cmd_rx));
        Ok(MediaHandle {
            frames_in: in_rx,
            frames_out: out_tx,
            events: ev_rx,
            commands: cmd_tx,
            control: control_tx,
        })
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

    /// Lends the leg's audio to a room, which then receives and sends it on its own tick;
    /// meanwhile [`MediaHandle::next`] yields events only. Dropping the loan gives it back;
    /// a loan asked for while the last one is still out waits for it to come back. None when
    /// the leg is stopped.
    pub async fn lend(&self) -> Option<LentAudio> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Lend(tx)).ok()?;
        rx.await.ok()
    }

    /// Sends a DTMF digit as RFC 4733 events (from the next tick on, whoever ticks the leg).
    pub fn send_dtmf(&self, digit: char, duration_ms: u32) {
        self.control.dtmf(digit, duration_ms);
    }

    /// New remote address or direction (re-INVITE).
    pub fn update(&self, remote_rtp: SocketAddr, direction: Direction) {
        self.control.update(remote_rtp, direction);
    }

    /// Stops the leg and releases its ports (once audio on loan is back).
    pub async fn stop(self) -> MediaStats {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).is_err() {
            return MediaStats::default();
        }
        rx.await.unwrap_or_default()
    }
}
