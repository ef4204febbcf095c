//! The calls' media: a few threads, each owning many calls, send one 20 ms µ-law frame per
//! call on absolute deadlines and read (and decrypt) what the server sends.
//!
//! A thread's calls are spread over [`PHASES`] slots 2 ms apart, so the server sees a steady
//! stream rather than a burst every 20 ms, and a thread wakes 500 times a second whatever the
//! number of calls. A call sends each frame with one `send` on its connected socket (a port
//! per call is what the server latches on, so sends cannot be batched across calls), and reads
//! what arrived every fourth frame with one `recvmmsg`: what we receive is only counted, so
//! reading it 80 ms late changes nothing for the server and saves three system calls in four.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use huddle_media::g711::ulaw_from_linear;
use huddle_media::udp_batch::RecvBatch;
use huddle_sdp::CryptoSuite;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Slots per 20 ms frame; a call is ticked in one of them.
const PHASES: usize = 10;
const FRAME: Duration = Duration::from_millis(20);
/// Samples per frame at 8 kHz.
const SAMPLES: usize = 160;
const RTP_HEADER: usize = 12;
/// One second of tone: every frequency we use is a whole number of hertz, so it loops cleanly.
const TONE_LEN: usize = 8000;
/// Frames between reads of a call's RTP socket; the four packets waiting by then fit in one
/// `recvmmsg` batch.
const RECEIVE_EVERY: u32 = 4;
/// Frames between reads of a call's RTCP socket (the server reports every 5 s).
const RTCP_EVERY: u32 = 50;
/// Lateness from which a thread starts counting a slot as late.
const LATE: Duration = Duration::from_millis(2);
/// Lateness after which a thread stops catching up and starts its schedule again from now.
const GIVE_UP: Duration = Duration::from_millis(100);
/// Packets behind the newest one that may still arrive, as the server allows.
const REPLAY_WINDOW: usize = 128;

/// The dynamic payload type the caller offers Opus on.
pub const OPUS_PT: u8 = 111;

/// Sample rate of the audio in the Opus packets a call sends (and of what its offer asks
/// for: wideband, as a headset softphone would).
pub const OPUS_RATE: u32 = 16000;

/// Largest payload a call sends (a 20 ms Opus packet at the bitrate asked is far smaller).
const MAX_PAYLOAD: usize = 400;

/// Opus packets longer than this carry sound; an encoder given silence makes a few bytes.
const OPUS_SILENCE_MAX: usize = 20;

/// What a call sends: one second of ready payloads (50 frames), looped, with their payload
/// type and RTP timestamp step, and a frame of silence for when it is not its turn. Encoded
/// once at start-up and shared by the calls of a member slot, so the caller spends no CPU on
/// a codec while it runs.
pub struct Voice {
    /// RTP payload type.
    pub pt: u8,
    /// RTP timestamp units per 20 ms frame.
    pub step: u32,
    frames: Vec<Box<[u8]>>,
    silence: Box<[u8]>,
    talk: Talk,
}

/// When the calls of a member slot talk.
#[derive(Debug, Clone, Copy)]
pub enum Talk {
    /// All the time: every member of every room talks at once, the worst case for a mixer.
    Always,
    /// In turns, as people in a call do: the room's slots take turns of `turn`, slot `slot` of
    /// `slots` from `epoch + phase + slot × turn` on, and are silent (sending frames of
    /// silence, as a phone without DTX does) the rest of the time. One clock for the members
    /// of a room, so each room has one talker at a time; each room's round starts at a phase
    /// of its own, spread over the round, since talkers in independent calls do not change
    /// in step.
    Turns {
        /// The moment turn 0 starts.
        epoch: Instant,
        /// The length of one turn.
        turn: Duration,
        /// This slot's place in the round.
        slot: u32,
        /// Slots in the round.
        slots: u32,
    },
}

impl Talk {
    fn talking(&self, now: Instant, room: usize) -> bool {
        match *self {
            Talk::Always => true,
            Talk::Turns {
                epoch,
                turn,
                slot,
                slots,
            } => {
                let turn_ms = turn.as_millis().max(1);
                let round_ms = turn_ms * u128::from(slots.max(1));
                let since = now.saturating_duration_since(epoch).as_millis();
                let turns = (since + room_phase(room, round_ms)) / turn_ms;
                turns % u128::from(slots.max(1)) == u128::from(slot)
            }
        }
    }
}

/// Where in a round of `round_ms` room `room` is at the epoch: rooms spread evenly over the
/// round whatever their number (golden-ratio steps), so as many rooms change talker at any
/// moment as at any other.
fn room_phase(room: usize, round_ms: u128) -> u128 {
    const GOLDEN_FRACTION: f64 = 0.618_033_988_749_895;
    let fraction = (room as f64 * GOLDEN_FRACTION).fract();
    (fraction * round_ms as f64) as u128
}

impl Voice {
    /// The payload of frame `pos` of the loop for a member of room `room`, or silence when it
    /// is not the slot's turn.
    fn payload(&self, pos: usize, now: Instant, room: usize) -> &[u8] {
        if self.talk.talking(now, room) {
            &self.frames[pos]
        } else {
            &self.silence
        }
    }
}

/// Which codec the calls speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    /// G.711 µ-law, payload type 0.
    Pcmu,
    /// Opus (RFC 7587), mono, on [`OPUS_PT`].
    Opus,
}

/// One second of a tone at `freq` Hz, at about a third of full scale, in `codec`, talked as
/// `talk` says.
pub fn tone(freq: u32, codec: CodecChoice, talk: Talk) -> io::Result<Arc<Voice>> {
    let pcm: Vec<i16> = (0..TONE_LEN)
        .map(|n| {
            let phase = 2.0 * std::f64::consts::PI * f64::from(freq) * n as f64 / TONE_LEN as f64;
            (phase.sin() * 10_000.0) as i16
        })
        .collect();
    let voice = match codec {
        CodecChoice::Pcmu => Voice {
            pt: 0,
            step: SAMPLES as u32,
            frames: pcm
                .chunks(SAMPLES)
                .map(|f| f.iter().map(|s| ulaw_from_linear(*s)).collect())
                .collect(),
            silence: vec![ulaw_from_linear(0); SAMPLES].into(),
            talk,
        },
        CodecChoice::Opus => {
            // The leg's own Opus settings (FEC, complexity 5) at the 16 kHz the offer asks
            // for, as a wideband phone would send: the same tone, one second at 16 kHz.
            let rate = OPUS_RATE as usize;
            let wide: Vec<i16> = (0..rate)
                .map(|n| {
                    let phase =
                        2.0 * std::f64::consts::PI * f64::from(freq) * n as f64 / rate as f64;
                    (phase.sin() * 10_000.0) as i16
                })
                .collect();
            let options = huddle_media::codec::OpusOptions {
                dtx: false,
                pcm_rate: OPUS_RATE,
            };
            let mut coder = huddle_media::codec::Codec::Opus(options)
                .coder()
                .map_err(io::Error::other)?;
            let mut encode = |f: &[i16]| -> Box<[u8]> {
                let mut out = [0u8; MAX_PAYLOAD];
                let len = coder.encode(f, &mut out);
                out[..len].into()
            };
            let frames = wide.chunks(rate / 50).map(&mut encode).collect();
            // Past the encoder's first frames, digital silence encodes to the few bytes a
            // quiet phone without DTX sends.
            let silence = (0..5).map(|_| encode(&[0; 320])).last().unwrap_or_default();
            Voice {
                pt: OPUS_PT,
                step: 960,
                frames,
                silence,
                talk,
            }
        }
    };
    Ok(Arc::new(voice))
}

/// Hands out RTP/RTCP port pairs (RTP even, RTCP next to it) from a base upwards.
pub struct PortPairs {
    ip: IpAddr,
    next: AtomicU32,
}

/// A call's bound media sockets, before the answer says where to send.
pub struct Sockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Sockets {
    /// The RTP port (the offer's m= port).
    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

impl PortPairs {
    /// Pairs from `base` (rounded up to even) on `ip`.
    pub fn new(ip: IpAddr, base: u16) -> PortPairs {
        PortPairs {
            ip,
            next: AtomicU32::new(u32::from(base + base % 2)),
        }
    }

    /// Binds the next free pair; ports taken by someone else are skipped.
    pub fn bind(&self) -> io::Result<Sockets> {
        loop {
            let port = self.next.fetch_add(2, Ordering::Relaxed);
            let (Ok(rtp_port), Ok(rtcp_port)) = (u16::try_from(port), u16::try_from(port + 1))
            else {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    "out of RTP ports",
                ));
            };
            let Ok(rtp) = UdpSocket::bind((self.ip, rtp_port)) else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind((self.ip, rtcp_port)) else {
                continue;
            };
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            return Ok(Sockets { rtp, rtcp });
        }
    }
}

/// Both directions' SRTP contexts of a call.
pub struct Srtp {
    tx: Context,
    rx: Context,
}

impl Srtp {
    /// Contexts for our key (what we send) and the server's (what we receive, with replay
    /// protection as the server has).
    pub fn new(suite: CryptoSuite, ours: &[u8], theirs: &[u8]) -> Result<Srtp, String> {
        let profile = match suite {
            CryptoSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            CryptoSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        };
        let context = |key_salt: &[u8], replay: bool| {
            if key_salt.len() != profile.key_len() + profile.salt_len() {
                return Err(format!("{} bytes of key and salt", key_salt.len()));
            }
            let (key, salt) = key_salt.split_at(profile.key_len());
            let (rtp, rtcp) = if replay {
                (
                    Some(srtp_replay_protection(REPLAY_WINDOW)),
                    Some(srtcp_replay_protection(REPLAY_WINDOW)),
                )
            } else {
                (None, None)
            };
            Context::new(key, salt, profile, rtp, rtcp).map_err(|e| e.to_string())
        };
        Ok(Srtp {
            tx: context(ours, false)?,
            rx: context(theirs, true)?,
        })
    }
}

/// What one call's media did.
#[derive(Debug, Clone, Default)]
pub struct MediaStats {
    /// The call's number (0-based, in placing order).
    pub index: usize,
    /// RTP packets sent.
    pub sent: u64,
    /// Sends the kernel refused (full buffer, ICMP error).
    pub send_errors: u64,
    /// RTP packets received that authenticated (SRTP) or are well-formed RTP (plain).
    pub received: u64,
    /// Of those, PCMU packets carrying sound rather than silence: the member hears the room.
    pub audible: u64,
    /// SRTP packets that failed authentication or replay checks.
    pub auth_failures: u64,
    /// Truncated datagrams, or plain ones that are not RTP.
    pub malformed: u64,
    /// RTCP (or SRTCP that authenticated) packets received.
    pub rtcp: u64,
    /// SRTCP packets that failed authentication.
    pub rtcp_auth_failures: u64,
    /// How long the call's media ran.
    pub duration: Duration,
}

impl MediaStats {
    /// Received packets per second over the call's media time.
    pub fn received_rate(&self) -> f64 {
        self.received as f64 / self.duration.as_secs_f64().max(1e-3)
    }
}

/// One answered call, handed to a media thread.
pub struct MediaCall {
    sockets: Sockets,
    srtp: Option<Box<Srtp>>,
    tone: Arc<Voice>,
    tone_pos: usize,
    /// The room its member is in (when it talks, in turns).
    room: usize,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    frames: u32,
    /// The thread's skipped frames when this call last sent (see [`Timing::restarts`]).
    skipped: u32,
    stop: Arc<AtomicBool>,
    started: Instant,
    stats: MediaStats,
}

impl MediaCall {
    /// The media of call `index`, a member of room `room`, sending `tone` to `peer` (the
    /// answer's RTP address; RTCP is next to it). The returned flag stops it.
    pub fn new(
        index: usize,
        room: usize,
        sockets: Sockets,
        peer: SocketAddr,
        srtp: Option<Srtp>,
        tone: Arc<Voice>,
    ) -> io::Result<(MediaCall, Arc<AtomicBool>)> {
        // Connected, the kernel drops anything not from the server before we read it.
        sockets.rtp.connect(peer)?;
        sockets
            .rtcp
            .connect(SocketAddr::new(peer.ip(), peer.port().wrapping_add(1)))?;
        let mut random = [0u8; 10];
        getrandom::fill(&mut random).map_err(io::Error::other)?;
        let stop = Arc::new(AtomicBool::new(false));
        Ok((
            MediaCall {
                sockets,
                srtp: srtp.map(Box::new),
                tone,
                tone_pos: 0,
                room,
                seq: u16::from_be_bytes([random[0], random[1]]),
                timestamp: u32::from_be_bytes([random[2], random[3], random[4], random[5]]),
                ssrc: u32::from_be_bytes([random[6], random[7], random[8], random[9]]),
                frames: 0,
                skipped: 0,
                stop: stop.clone(),
                started: Instant::now(),
                stats: MediaStats {
                    index,
                    ..MediaStats::default()
                },
            },
            stop,
        ))
    }

    fn tick(
        &mut self,
        skipped: u32,
        batch: &mut RecvBatch,
        packet: &mut [u8; RTP_HEADER + MAX_PAYLOAD],
    ) {
        // Frames the thread skipped are time that passed: the timestamp says so, and the
        // marker tells the receiver's jitter buffer that a new talk spurt starts.
        let gap = skipped.wrapping_sub(self.skipped);
        self.skipped = skipped;
        self.timestamp = self
            .timestamp
            .wrapping_add(gap.wrapping_mul(self.tone.step));
        packet[0] = 0x80;
        packet[1] = self.tone.pt
            | if self.frames == 0 || gap != 0 {
                0x80
            } else {
                0
            };
        packet[2..4].copy_from_slice(&self.seq.to_be_bytes());
        packet[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        packet[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let payload = self.tone.payload(self.tone_pos, Instant::now(), self.room);
        packet[RTP_HEADER..RTP_HEADER + payload.len()].copy_from_slice(payload);
        let packet = &packet[..RTP_HEADER + payload.len()];
        let sent = match &mut self.srtp {
            Some(srtp) => match srtp.tx.encrypt_rtp(packet) {
                Ok(protected) => self.sockets.rtp.send(&protected),
                Err(e) => Err(io::Error::other(e)),
            },
            None => self.sockets.rtp.send(packet),
        };
        match sent {
            Ok(_) => self.stats.sent += 1,
            Err(_) => self.stats.send_errors += 1,
        }
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.tone.step);
        self.tone_pos = (self.tone_pos + 1) % self.tone.frames.len();
        self.frames = self.frames.wrapping_add(1);

        if self.frames.is_multiple_of(RECEIVE_EVERY) {
            self.receive_rtp(batch);
        }
        if self.frames.is_multiple_of(RTCP_EVERY) {
            self.receive_rtcp(batch);
        }
    }

    fn receive_rtp(&mut self, batch: &mut RecvBatch) {
        // More than one batch waiting means we fell behind; read until the socket is empty.
        loop {
            let n = match batch.recv(&self.sockets.rtp) {
                Ok(n) => n,
                // An ICMP error from before the server's port opened, or a closed one: not a
                // packet, so nothing to count.
                Err(_) => return,
            };
            for datagram in (0..n).filter_map(|i| batch.get(i)) {
                if datagram.truncated {
                    self.stats.malformed += 1;
                    continue;
                }
                let audible = match &mut self.srtp {
                    Some(srtp) => match srtp.rx.decrypt_rtp(datagram.data) {
                        Ok(plain) => audible(&plain),
                        Err(_) => {
                            self.stats.auth_failures += 1;
                            continue;
                        }
                    },
                    None if datagram.data.len() >= RTP_HEADER && datagram.data[0] >> 6 == 2 => {
                        audible(datagram.data)
                    }
                    None => {
                        self.stats.malformed += 1;
                        continue;
                    }
                };
                self.stats.received += 1;
                self.stats.audible += u64::from(audible);
            }
            if n < huddle_media::udp_batch::BATCH {
                return;
            }
        }
    }

    fn receive_rtcp(&mut self, batch: &mut RecvBatch) {
        let Ok(n) = batch.recv(&self.sockets.rtcp) else {
            return;
        };
        for datagram in (0..n).filter_map(|i| batch.get(i)) {
            match &mut self.srtp {
                Some(srtp) => match srtp.rx.decrypt_rtcp(datagram.data) {
                    Ok(_) => self.stats.rtcp += 1,
                    Err(_) => self.stats.rtcp_auth_failures += 1,
                },
                None => self.stats.rtcp += 1,
            }
        }
    }

    fn finish(mut self, batch: &mut RecvBatch) -> MediaStats {
        self.receive_rtp(batch);
        self.receive_rtcp(batch);
        self.stats.duration = self.started.elapsed();
        self.stats
    }
}

/// Whether an RTP packet carries sound: PCMU with a sample above about −40 dBFS (µ-law
/// segment 3 or up), or an Opus packet longer than silence makes it.
fn audible(packet: &[u8]) -> bool {
    let Some(&[first, second]) = packet.get(..2) else {
        return false;
    };
    let csrcs = usize::from(first & 0x0F) * 4;
    let mut start = RTP_HEADER + csrcs;
    if first & 0x10 != 0 {
        let Some(&[_, _, high, low]) = packet.get(start..start + 4) else {
            return false;
        };
        start += 4 + usize::from(u16::from_be_bytes([high, low])) * 4;
    }
    let Some(payload) = packet.get(start..) else {
        return false;
    };
    match second & 0x7F {
        0 => payload.iter().any(|b| !b & 0x70 >= 0x30),
        OPUS_PT => payload.len() > OPUS_SILENCE_MAX,
        _ => false,
    }
}

/// How a media thread kept its schedule.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// Slots run.
    pub slots: u64,
    /// Slots started more than 2 ms after their deadline.
    pub late: u64,
    /// The latest start.
    pub max_late: Duration,
    /// Times the thread fell more than 100 ms behind and restarted its schedule from then,
    /// skipping the frames it missed rather than sending them in a burst.
    pub restarts: u64,
    /// Frames skipped by those restarts.
    pub skipped_frames: u32,
}

/// What a media thread hands back when it ends.
pub struct ThreadReport {
    /// Every call it carried.
    pub calls: Vec<MediaStats>,
    /// Its schedule.
    pub timing: Timing,
}

/// The media threads.
pub struct Pool {
    senders: Vec<Sender<MediaCall>>,
    threads: Vec<JoinHandle<ThreadReport>>,
    shutdown: Arc<AtomicBool>,
}

impl Pool {
    /// Starts `threads` media threads.
    pub fn start(threads: usize) -> io::Result<Pool> {
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = mpsc::channel();
            senders.push(tx);
            let shutdown = shutdown.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("media-{i}"))
                    .spawn(move || run(rx, &shutdown))?,
            );
        }
        Ok(Pool {
            senders,
            threads: handles,
            shutdown,
        })
    }

    /// A handle that places calls on the threads in turn.
    pub fn handle(&self) -> PoolHandle {
        PoolHandle {
            senders: self.senders.clone(),
            next: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Stops whatever media still runs (every call's own task has stopped its media by the
    /// time this is called; this is the safety net) and collects the threads' reports.
    pub fn join(self) -> Vec<ThreadReport> {
        drop(self.senders);
        self.shutdown.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .collect()
    }
}

/// Places answered calls on the media threads.
#[derive(Clone)]
pub struct PoolHandle {
    senders: Vec<Sender<MediaCall>>,
    next: Arc<AtomicU32>,
}

impl PoolHandle {
    /// Gives `call` to the next thread.
    pub fn add(&self, call: MediaCall) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.senders.len();
        // A thread only ends once every sender is gone, so this cannot fail while we hold one.
        let _ = self.senders[i].send(call);
    }
}

fn run(calls: Receiver<MediaCall>, shutdown: &AtomicBool) -> ThreadReport {
    let slot = FRAME / PHASES as u32;
    let mut phases: Vec<Vec<MediaCall>> = (0..PHASES).map(|_| Vec::new()).collect();
    let mut done = Vec::new();
    let mut timing = Timing::default();
    let mut batch = RecvBatch::default();
    let mut packet = [0u8; RTP_HEADER + MAX_PAYLOAD];
    let mut open = true;
    let mut phase = 0;
    let mut next = Instant::now();
    loop {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let now = Instant::now();
        let late = now.saturating_duration_since(next);
        timing.slots += 1;
        if late > LATE {
            timing.late += 1;
        }
        timing.max_late = timing.max_late.max(late);

        while open {
            match calls.try_recv() {
                Ok(mut call) => {
                    call.skipped = timing.skipped_frames;
                    // The emptiest slot keeps the slots even as calls come and go.
                    let emptiest = phases
                        .iter_mut()
                        .min_by_key(|p| p.len())
                        .expect("PHASES > 0");
                    emptiest.push(call);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }

        let due = &mut phases[phase];
        for call in due.iter_mut() {
            call.tick(timing.skipped_frames, &mut batch, &mut packet);
        }
        let stopping = !open && shutdown.load(Ordering::Relaxed);
        let mut i = 0;
        while i < due.len() {
            if stopping || due[i].stop.load(Ordering::Relaxed) {
                done.push(due.swap_remove(i).finish(&mut batch));
            } else {
                i += 1;
            }
        }
        if !open && phases.iter().all(Vec::is_empty) {
            return ThreadReport {
                calls: done,
                timing,
            };
        }

        phase = (phase + 1) % PHASES;
        next += slot;
        if now > next + GIVE_UP {
            timing.restarts += 1;
            let behind = now - next;
            timing.skipped_frames = timing
                .skipped_frames
                .wrapping_add((behind.as_micros() / FRAME.as_micros()) as u32);
            next = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tone_loops_without_a_seam() {
        let t = tone(310, CodecChoice::Pcmu, Talk::Always).unwrap();
        assert_eq!(t.frames.len(), 50);
        assert_eq!(TONE_LEN % SAMPLES, 0, "frames never straddle the loop");
        assert_eq!(t.frames[0][0], ulaw_from_linear(0));
        let o = tone(310, CodecChoice::Opus, Talk::Always).unwrap();
        assert_eq!((o.pt, o.step, o.frames.len()), (OPUS_PT, 960, 50));
        assert!(o.frames.iter().skip(1).all(|f| f.len() > OPUS_SILENCE_MAX));
        // Wideband frames: 20 ms of 16 kHz audio each.
        let mut decoder = huddle_media::codec::Codec::Opus(huddle_media::codec::OpusOptions {
            dtx: false,
            pcm_rate: OPUS_RATE,
        })
        .coder()
        .unwrap();
        let mut pcm = [0i16; 960];
        assert_eq!(decoder.decode(&o.frames[1], &mut pcm), Some(320));
    }

    #[test]
    fn slots_talk_one_at_a_time_in_turns() {
        let epoch = Instant::now();
        let turn = Duration::from_secs(2);
        let voices: Vec<_> = (0..5)
            .map(|slot| {
                let talk = Talk::Turns {
                    epoch,
                    turn,
                    slot,
                    slots: 5,
                };
                tone(310 + slot * 270, CodecChoice::Opus, talk).unwrap()
            })
            .collect();
        let mut first_talkers = Vec::new();
        for room in 0..40 {
            let mut talkers = Vec::new();
            for step in 0..200u32 {
                let now = epoch + Duration::from_millis(100) * step;
                let talking: Vec<usize> = (0..5)
                    .filter(|s| voices[*s].talk.talking(now, room))
                    .collect();
                assert_eq!(talking.len(), 1, "room {room}, at {step} × 100 ms");
                for (slot, voice) in voices.iter().enumerate() {
                    let payload = voice.payload(3, now, room);
                    assert_eq!(payload.len() > OPUS_SILENCE_MAX, talking == [slot]);
                }
                if talkers.last() != Some(&talking[0]) {
                    talkers.push(talking[0]);
                }
            }
            // 20 s: the whole round twice, each slot in order, for a whole turn each.
            assert!(talkers.len() >= 10, "room {room}: {talkers:?}");
            for pair in talkers.windows(2) {
                assert_eq!(pair[1], (pair[0] + 1) % 5, "room {room}: {talkers:?}");
            }
            first_talkers.push(talkers[0]);
        }
        // Rooms are out of step: every slot opens some room's round.
        for slot in 0..5 {
            assert!(first_talkers.contains(&slot), "{first_talkers:?}");
        }
        assert!(Talk::Always.talking(epoch, 0));
    }

    #[test]
    fn sound_is_told_from_silence() {
        let mut packet = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 1];
        packet.extend_from_slice(&[0xFF; 160]);
        assert!(!audible(&packet), "µ-law silence");
        packet[RTP_HEADER + 80] = tone(1000, CodecChoice::Pcmu, Talk::Always).unwrap().frames[0][2];
        assert!(audible(&packet));
        packet[1] = 101;
        assert!(!audible(&packet), "neither PCMU nor Opus");
        packet[1] = OPUS_PT;
        assert!(audible(&packet), "a long Opus packet");
        packet.truncate(RTP_HEADER + 3);
        assert!(!audible(&packet), "an Opus packet of silence");
        for short in [
            &packet[..0],
            &packet[..1],
            &[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            assert!(!audible(short));
        }
    }

    #[test]
    fn srtp_keys_of_the_wrong_length_are_refused() {
        assert!(Srtp::new(CryptoSuite::AesCm128HmacSha1_80, &[1; 30], &[2; 30]).is_ok());
        assert!(Srtp::new(CryptoSuite::AeadAes128Gcm, &[1; 28], &[2; 28]).is_ok());
        assert!(Srtp::new(CryptoSuite::AesCm128HmacSha1_80, &[1; 30], &[2; 28]).is_err());
    }
}
