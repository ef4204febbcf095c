//! What listens to a call beside its verbs: a `<Stream>`'s audio and a `<Record
//! recordSession="true">` recording. Outside a room the call's own heartbeat feeds them; while
//! the call is a member of a room its audio is lent to the room's mixing thread, and
//! [`TappedAudio`] (the loan, wrapped) feeds them from the room's tick instead: the frame the
//! caller said as the room receives it, the mix the caller hears as the room sends it.
//!
//! The taps run at the call flow's 8 kHz (the stream's queues and the session recording are
//! made at that rate when they start, before any room). A wideband leg (G.722, wideband
//! Opus) exchanges 16 kHz frames with its room, so its loan converts what it taps down to
//! 8 kHz, and a bidirectional stream's voice up to the leg's rate, with converters made once
//! when the loan is wrapped: the leg stays tapped in the room without a tick allocating.
//!
//! Both sides reach the taps through one mutex that only the call's task and, while the call
//! is a member, the room's tick touch. The tick only ever *tries* it: were the call's task
//! inside at that instant, the tick skips the taps for that frame rather than wait. Everything
//! a tap does per frame is a copy into preallocated room (the stream crate's bounded queues,
//! the recorder's frame pool): no allocation, no waiting.

use std::sync::{Arc, Mutex, MutexGuard};

use huddle_aistream::queue::{StreamAudio, Track};
use huddle_media::codec::CodecError;
use huddle_media::resample::FrameResampler;
use huddle_roomport::TickAudio;
use huddle_xml::AudioTrack;

use super::RATE;

/// Longest frame a tap handles: 20 ms at 48 kHz, the widest rate a leg could run at.
const MAX_TAP_FRAME: usize = 960;

/// A `<Stream>`'s audio side: the queues to its task, and which sides of the call it sends.
pub(super) struct StreamTap {
    audio: StreamAudio,
    track: AudioTrack,
    bidirectional: bool,
    scratch: [i16; MAX_TAP_FRAME],
}

impl StreamTap {
    /// The tap of a stream sending `track` (with `bidirectional`, the service is heard).
    pub(super) fn new(audio: StreamAudio, track: AudioTrack, bidirectional: bool) -> Self {
        StreamTap {
            audio,
            track,
            bidirectional,
            scratch: [0; MAX_TAP_FRAME],
        }
    }

    fn inbound(&mut self, pcm: &[i16]) {
        if self.track != AudioTrack::Outbound {
            self.audio.send_track(pcm, Track::Inbound);
        }
    }

    /// The service's frame of this tick, for the caller to hear: Some while the stream is
    /// bidirectional (empty when the service sent nothing in time), None otherwise.
    fn voice(&mut self) -> Option<&[i16]> {
        // Always drained, so that a one-way stream's playAudio cannot pile up.
        let n = self.audio.receive(&mut self.scratch).unwrap_or(0);
        self.bidirectional.then_some(&self.scratch[..n])
    }

    fn heard(&mut self, frame: &[i16]) {
        if self.track != AudioTrack::Inbound {
            self.audio.send_track(frame, Track::Outbound);
        }
    }
}

/// Adds `voice` into `frame`, clipping.
fn mix_into(frame: &mut [i16], voice: &[i16]) {
    for (out, s) in frame.iter_mut().zip(voice) {
        *out = out.saturating_add(*s);
    }
}

/// A background recording of the whole call (`recordSession`): what the caller says and what
/// it hears, summed into one mono file.
pub(super) struct SessionTap {
    recorder: huddle_record::Recorder,
    said: SaidQueue,
    /// The frame being written: what the caller hears plus what it said meanwhile.
    mixed: [i16; MAX_TAP_FRAME],
}

impl SessionTap {
    /// A tap writing into `recorder`.
    pub(super) fn new(recorder: huddle_record::Recorder) -> Self {
        SessionTap {
            recorder,
            said: SaidQueue::new(),
            mixed: [0; MAX_TAP_FRAME],
        }
    }

    fn inbound(&mut self, pcm: &[i16]) {
        self.said.push(pcm);
    }

    fn outbound(&mut self, frame: &[i16]) {
        let n = frame.len().min(MAX_TAP_FRAME);
        self.mixed[..n].copy_from_slice(&frame[..n]);
        self.said.mix_into(&mut self.mixed[..n]);
        self.recorder.push(&self.mixed[..n]);
    }
}

/// Most frames of the caller's voice [`SaidQueue`] holds: 100 ms at 20 ms per frame.
const SAID_BACKLOG_FRAMES: usize = 5;

/// What the caller said, waiting for the frames it hears. Outside a room the caller's frames
/// arrive as the network delivers them, while what it hears leaves on the call's 20 ms
/// heartbeat: with any jitter two arrive between one beat and the next and none before the
/// one after. Keeping only the latest frame would drop one and record a hole in its place;
/// this queue keeps every sample in order. It holds at most [`SAID_BACKLOG_FRAMES`] frames
/// (the oldest go beyond that), so the caller never lags what it hears by more in the file.
/// Its room is reserved when the tap starts: no frame allocates.
struct SaidQueue {
    samples: std::collections::VecDeque<i16>,
}

impl SaidQueue {
    fn new() -> Self {
        SaidQueue {
            samples: std::collections::VecDeque::with_capacity(SAID_BACKLOG_FRAMES * MAX_TAP_FRAME),
        }
    }

    /// Queues a frame the caller said (at most [`MAX_TAP_FRAME`] samples of it).
    fn push(&mut self, pcm: &[i16]) {
        let pcm = &pcm[..pcm.len().min(MAX_TAP_FRAME)];
        let limit = SAID_BACKLOG_FRAMES * pcm.len();
        let excess = (self.samples.len() + pcm.len()).saturating_sub(limit);
        self.samples.drain(..excess.min(self.samples.len()));
        self.samples.extend(pcm);
    }

    /// Adds the oldest `frame.len()` samples said into `frame`, clipping; silence where
    /// fewer wait.
    fn mix_into(&mut self, frame: &mut [i16]) {
        let n = frame.len().min(self.samples.len());
        for (out, said) in frame.iter_mut().zip(self.samples.drain(..n)) {
            *out = out.saturating_add(said);
        }
    }
}

/// Everything tapping one call.
#[derive(Default)]
pub(super) struct Taps {
    /// The running `<Stream>`, if any.
    pub(super) stream: Option<StreamTap>,
    /// The running `recordSession` recording, if any.
    pub(super) session: Option<SessionTap>,
}

impl Taps {
    /// True when something listens.
    pub(super) fn active(&self) -> bool {
        self.stream.is_some() || self.session.is_some()
    }

    /// A frame the caller said.
    pub(super) fn inbound(&mut self, pcm: &[i16]) {
        if let Some(stream) = self.stream.as_mut() {
            stream.inbound(pcm);
        }
        if let Some(session) = self.session.as_mut() {
            session.inbound(pcm);
        }
    }

    /// The frame about to go to the caller: a bidirectional stream's voice is mixed in, then
    /// the taps hear it.
    pub(super) fn outbound(&mut self, frame: &mut [i16]) {
        if let Some(voice) = self.voice() {
            mix_into(frame, voice);
        }
        self.heard(frame);
    }

    /// The service's voice for this tick, while a bidirectional stream runs (see
    /// [`StreamTap::voice`]); taking it drains it either way.
    fn voice(&mut self) -> Option<&[i16]> {
        self.stream.as_mut()?.voice()
    }

    /// The frame the caller hears (the service's voice already in it), for the taps.
    fn heard(&mut self, frame: &[i16]) {
        if let Some(stream) = self.stream.as_mut() {
            stream.heard(frame);
        }
        if let Some(session) = self.session.as_mut() {
            session.outbound(frame);
        }
    }
}

/// The taps, shared between the call's task and a room's tick.
pub(super) type SharedTaps = Arc<Mutex<Taps>>;

/// Locks the taps from the call's task (the room's tick holds them for one frame at most).
pub(super) fn lock(taps: &SharedTaps) -> MutexGuard<'_, Taps> {
    taps.lock().unwrap_or_else(|p| p.into_inner())
}

/// The converters of a loan whose rate is not the taps': what the caller says and what it
/// hears go down to the taps' rate, a bidirectional stream's voice up to the leg's.
struct Narrowing {
    said: FrameResampler,
    heard: FrameResampler,
    voice: FrameResampler,
    said_frame: [i16; MAX_TAP_FRAME],
    heard_frame: [i16; MAX_TAP_FRAME],
    voice_frame: [i16; MAX_TAP_FRAME],
}

impl Narrowing {
    /// Converters between a leg at `rate` and the taps; None when the leg runs at the taps'
    /// rate.
    fn between(rate: u32) -> Result<Option<Box<Narrowing>>, CodecError> {
        if rate == RATE {
            return Ok(None);
        }
        Ok(Some(Box::new(Narrowing {
            said: FrameResampler::new(rate, RATE)?,
            heard: FrameResampler::new(rate, RATE)?,
            voice: FrameResampler::new(RATE, rate)?,
            said_frame: [0; MAX_TAP_FRAME],
            heard_frame: [0; MAX_TAP_FRAME],
            voice_frame: [0; MAX_TAP_FRAME],
        })))
    }
}

/// A call's audio on loan to a room, with the call's taps listening on the room's tick.
pub(super) struct TappedAudio<A: TickAudio> {
    inner: A,
    taps: SharedTaps,
    frame: [i16; MAX_TAP_FRAME],
    /// Set when the leg runs at another rate than the taps (a wideband leg).
    narrowing: Option<Box<Narrowing>>,
}

impl<A: TickAudio> TappedAudio<A> {
    /// Wraps the loan `inner`, with converters to the taps' rate when it runs at another; when
    /// those cannot be made, the loan comes back unwrapped with the reason.
    pub(super) fn new(inner: A, taps: SharedTaps) -> Result<Self, (A, CodecError)> {
        match Narrowing::between(inner.rate()) {
            Ok(narrowing) => Ok(TappedAudio {
                inner,
                taps,
                frame: [0; MAX_TAP_FRAME],
                narrowing,
            }),
            Err(error) => Err((inner, error)),
        }
    }
}

impl<A: TickAudio> TickAudio for TappedAudio<A> {
    fn rate(&self) -> u32 {
        self.inner.rate()
    }

    fn receive(&mut self, out: &mut [i16]) -> Option<usize> {
        let n = self.inner.receive(out)?;
        if let Ok(mut taps) = self.taps.try_lock() {
            match self.narrowing.as_deref_mut() {
                None => taps.inbound(&out[..n]),
                Some(narrowing) => {
                    let m = narrowing.said.process(&out[..n], &mut narrowing.said_frame);
                    taps.inbound(&narrowing.said_frame[..m]);
                }
            }
        }
        Some(n)
    }

    fn send(&mut self, pcm: &[i16]) {
        let n = pcm.len().min(MAX_TAP_FRAME);
        if n < pcm.len() {
            // Wider than any rate a call runs at: sent untapped.
            self.inner.send(pcm);
            return;
        }
        self.frame[..n].copy_from_slice(pcm);
        if let Ok(mut taps) = self.taps.try_lock() {
            match self.narrowing.as_deref_mut() {
                None => taps.outbound(&mut self.frame[..n]),
                Some(narrowing) => {
                    // The service speaks at the taps' rate: converted up before the caller
                    // hears it, and the taps then hear the frame with it, converted down.
                    if let Some(voice) = taps.voice() {
                        let m = narrowing.voice.process(voice, &mut narrowing.voice_frame);
                        mix_into(&mut self.frame[..n], &narrowing.voice_frame[..m]);
                    }
                    let m = narrowing
                        .heard
                        .process(&self.frame[..n], &mut narrowing.heard_frame);
                    taps.heard(&narrowing.heard_frame[..m]);
                }
            }
        }
        self.inner.send(&self.frame[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use huddle_aistream::queue::frame_queues;

    /// A loan that hears a constant and records what it is sent.
    struct Fake {
        said: i16,
        sent: Vec<i16>,
    }

    impl TickAudio for Fake {
        fn rate(&self) -> u32 {
            8000
        }

        fn receive(&mut self, out: &mut [i16]) -> Option<usize> {
            out[..160].fill(self.said);
            Some(160)
        }

        fn send(&mut self, pcm: &[i16]) {
            self.sent.extend_from_slice(pcm);
        }
    }

    fn wrap<A: TickAudio>(inner: A, taps: SharedTaps) -> TappedAudio<A> {
        TappedAudio::new(inner, taps).unwrap_or_else(|(_, e)| panic!("converters: {e}"))
    }

    /// A wideband leg: it says a tone at 16 kHz and records what it is sent.
    struct Wide {
        tick: usize,
        sent: Vec<i16>,
    }

    const WIDE_SAID: f64 = 1230.0;
    const SERVICE: f64 = 770.0;
    const ROOM: f64 = 2110.0;

    fn sine(freq: f64, rate: u32, from: usize, len: usize) -> Vec<i16> {
        (from..from + len)
            .map(|i| {
                (6000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    impl TickAudio for Wide {
        fn rate(&self) -> u32 {
            16000
        }

        fn receive(&mut self, out: &mut [i16]) -> Option<usize> {
            out[..320].copy_from_slice(&sine(WIDE_SAID, 16000, self.tick * 320, 320));
            self.tick += 1;
            Some(320)
        }

        fn send(&mut self, pcm: &[i16]) {
            self.sent.extend_from_slice(pcm);
        }
    }

    /// A G.722 or wideband Opus leg in a room stays tapped: the taps get 8 kHz frames of what
    /// it says and hears, and a bidirectional stream's 8 kHz voice reaches it at its rate.
    #[test]
    fn a_wideband_leg_is_tapped_at_the_taps_rate_and_hears_the_service() {
        let (audio, mut port) = frame_queues(RATE);
        let taps: SharedTaps = Arc::new(Mutex::new(Taps {
            stream: Some(StreamTap::new(audio, AudioTrack::Both, true)),
            session: None,
        }));
        let mut tapped = wrap(
            Wide {
                tick: 0,
                sent: Vec::new(),
            },
            taps.clone(),
        );
        assert_eq!(tapped.rate(), 16000, "the room still sees the leg's rate");
        let (mut inbound, mut outbound) = (Vec::new(), Vec::new());
        let mut out = [0i16; 320];
        for tick in 0..50 {
            assert!(port.play(&sine(SERVICE, RATE, tick * 160, 160)));
            assert_eq!(tapped.receive(&mut out), Some(320));
            tapped.send(&sine(ROOM, 16000, tick * 320, 320));
            while let Some(frame) = port.mix() {
                assert_eq!(frame.pcm().len(), 160, "20 ms at the taps' rate");
                match frame.track() {
                    Track::Inbound => inbound.extend_from_slice(frame.pcm()),
                    Track::Outbound => outbound.extend_from_slice(frame.pcm()),
                }
            }
        }
        assert_eq!(inbound.len(), 50 * 160);
        assert_eq!(outbound.len(), 50 * 160);
        let tail = |pcm: &[i16], keep: usize| pcm[pcm.len() - keep..].to_vec();
        let (inbound, outbound) = (tail(&inbound, 4000), tail(&outbound, 4000));
        let share = |pcm: &[i16], f: f64, rate: u32| huddle_testkit::tone_share_at(pcm, f, rate);
        assert!(
            share(&inbound, WIDE_SAID, RATE) > 0.9,
            "inbound: what it says"
        );
        assert!(
            share(&inbound, WIDE_SAID / 2.0, RATE) < 0.01,
            "at its pitch"
        );
        assert!(share(&outbound, ROOM, RATE) > 0.4, "outbound: the room");
        assert!(share(&outbound, SERVICE, RATE) > 0.2, "and the service");
        let sent = tail(&tapped.inner.sent, 8000);
        assert_eq!(tapped.inner.sent.len(), 50 * 320, "sent at the leg's rate");
        assert!(share(&sent, ROOM, 16000) > 0.4, "the caller hears the room");
        assert!(
            share(&sent, SERVICE, 16000) > 0.2,
            "and the service, at its pitch"
        );
    }

    #[test]
    fn the_room_tick_feeds_each_track_and_the_service_is_heard() {
        for (track, expect) in [
            (AudioTrack::Inbound, vec![(Track::Inbound, 5)]),
            (AudioTrack::Outbound, vec![(Track::Outbound, 9)]),
            (
                AudioTrack::Both,
                vec![(Track::Inbound, 5), (Track::Outbound, 9)],
            ),
        ] {
            let (audio, mut port) = frame_queues(8000);
            let taps: SharedTaps = Arc::new(Mutex::new(Taps {
                stream: Some(StreamTap::new(audio, track, false)),
                session: None,
            }));
            let mut tapped = wrap(
                Fake {
                    said: 5,
                    sent: Vec::new(),
                },
                taps.clone(),
            );
            let mut out = [0i16; 160];
            assert_eq!(tapped.receive(&mut out), Some(160));
            tapped.send(&[9; 160]);
            let mut got = Vec::new();
            while let Some(frame) = port.mix() {
                got.push((frame.track(), frame.pcm()[0]));
            }
            assert_eq!(got, expect, "{track:?}");
            assert_eq!(tapped.inner.sent, vec![9; 160], "the caller hears the mix");
        }
    }

    /// Frames that bunch up between heartbeats are all recorded, in order; a backlog beyond
    /// 100 ms loses its oldest frames instead of growing.
    #[test]
    fn the_session_keeps_every_frame_said_between_heartbeats() {
        let mut said = SaidQueue::new();
        let capacity = said.samples.capacity();
        let mut recorded = Vec::new();
        let heartbeat = |said: &mut SaidQueue, recorded: &mut Vec<i16>| {
            let mut frame = [1000i16; 160];
            said.mix_into(&mut frame);
            recorded.push(frame[0]);
            assert!(frame.iter().all(|&s| s == frame[0]));
        };
        // Two frames arrive before one beat, none before the next, then one per beat.
        said.push(&[1; 160]);
        said.push(&[2; 160]);
        heartbeat(&mut said, &mut recorded);
        heartbeat(&mut said, &mut recorded);
        heartbeat(&mut said, &mut recorded);
        said.push(&[3; 160]);
        heartbeat(&mut said, &mut recorded);
        assert_eq!(recorded, vec![1001, 1002, 1000, 1003]);
        // Eight bunched frames: the oldest three go, five remain in order.
        recorded.clear();
        for value in 10..18 {
            said.push(&[value; 160]);
        }
        for _ in 0..6 {
            heartbeat(&mut said, &mut recorded);
        }
        assert_eq!(recorded, vec![1013, 1014, 1015, 1016, 1017, 1000]);
        // The largest frames stay within the room reserved at the start.
        for _ in 0..20 {
            said.push(&[7; MAX_TAP_FRAME + 10]);
        }
        assert_eq!(said.samples.len(), SAID_BACKLOG_FRAMES * MAX_TAP_FRAME);
        assert_eq!(said.samples.capacity(), capacity, "no frame allocates");
        // Clipping, not wrapping.
        let mut frame = [i16::MAX; 160];
        said.mix_into(&mut frame);
        assert!(frame.iter().all(|&s| s == i16::MAX));
    }

    #[test]
    fn a_tick_never_waits_for_the_taps() {
        let (audio, mut port) = frame_queues(8000);
        let taps: SharedTaps = Arc::new(Mutex::new(Taps {
            stream: Some(StreamTap::new(audio, AudioTrack::Both, false)),
            session: None,
        }));
        let mut tapped = wrap(
            Fake {
                said: 5,
                sent: Vec::new(),
            },
            taps.clone(),
        );
        let held = lock(&taps);
        let mut out = [0i16; 160];
        assert_eq!(tapped.receive(&mut out), Some(160));
        tapped.send(&[9; 160]);
        drop(held);
        assert!(port.mix().is_none(), "skipped while the call held the taps");
        assert_eq!(tapped.inner.sent, vec![9; 160], "the caller still hears");
    }
}
