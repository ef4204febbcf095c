//! One encode per tick for every listener who hears the same mix, as Asterisk's ConfBridge
//! shares one translation per format.
//!
//! Listeners who hear the same speakers hear bit-identical audio: those who do not contribute
//! this tick (silent, muted, on hold) and whose tables let them hear the same talking
//! classes, and a talker who is the only speaker of its class, who hears the others
//! ([`huddle_mixer::Mixer::shared_mix`] names the mix by the speaker classes in it); so do
//! listeners of the same music. Those of them whose legs run the same codec with the same
//! options at the same rate get one payload per tick, encoded once by an encoder the room
//! owns, and each leg writes its own RTP header, sequence number, timestamp and SRTP around
//! it ([`TickAudio::send_encoded`]). In a room where one person talks, that is two encodes:
//! the talker's (everyone else, usually silence) and everyone else's (the talker). A
//! listener whose own voice is taken out of a class others speak in too hears a mix of its
//! own, encoded by its leg's encoder as before.
//!
//! A listener moves between encoders when the set of talkers it hears changes, at the start
//! or end of a talk spurt, as in ConfBridge, where a listener leaves the shared translation
//! when it starts talking.
//!
//! Only Opus is shared: it is what costs (tens of microseconds per encode, against well under
//! one for G.711, where copying a shared payload would save nothing), and its decoder takes
//! a switch between two encoders' streams in its stride. G.722's ADPCM decoder tracks its
//! encoder's predictor sample by sample, so a listener moved between two encoders would hear
//! the mismatch; its encode costs a few microseconds, so it is not worth the risk.
//!
//! A group whose mix is digital silence (the talker of a room where one person talks, a room
//! where nobody does) is encoded until its encoder settles: libopus, fed digital silence,
//! soon cycles through a few payloads of a handful of bytes (one to four of them, by rate and
//! complexity), each decoding to silence. Once the last silent payloads repeat a whole cycle,
//! the cycle is played on each silent tick without encoding, the very payloads the encoder
//! would have made, until sound returns ([`SilenceCycle`]). An encode of silence costs as much
//! as one of speech; a settled silence costs a copy of a few bytes.
//!
//! An encoder is made when its group first appears (libopus allocates then) and reused for
//! the room's life: the groups of a room are few (one per set of talking classes heard or
//! music bed, times the codec variants present), and they are capped at [`MAX_GROUPS`]; a
//! listener beyond the cap is encoded by its own leg. Nothing else allocates per tick.

use huddle_media::codec::{Codec, Coder};
use huddle_media::resample::FrameResampler;
use huddle_roomport::TickAudio;
use metrics::Counter;

/// Shared encoders a room keeps at most.
pub const MAX_GROUPS: usize = 16;

/// Largest payload a shared encode produces (a 20 ms Opus frame is far smaller).
const MAX_PAYLOAD: usize = 1275;

/// Longest silence payload a cycle is kept for (libopus makes 6 to 8 bytes at our rates).
const SILENCE_PAYLOAD_MAX: usize = 16;

/// Longest cycle of silence payloads looked for.
const SILENCE_CYCLE_MAX: usize = 4;

/// Silence payloads remembered: two whole cycles of the longest.
const SILENCE_HISTORY: usize = 2 * SILENCE_CYCLE_MAX;

/// Ticks between publications of the counters (one second).
const PUBLISH_EVERY_TICKS: u32 = 50;

/// What a group hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixKey {
    /// The room's mix of these speaker classes (bit `s` for speaker class `s`).
    Room(u8),
    /// A bed of music (0 wait, 1 agent hold, 2 customer hold), with no sound over it.
    Music(u8),
}

/// Listeners who get the same payload: the same mix, codec (with its options) and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupKey {
    /// What they hear.
    pub mix: MixKey,
    /// Their legs' codec.
    pub codec: Codec,
    /// Their legs' PCM rate.
    pub rate: u32,
}

struct SharedEncoder {
    key: GroupKey,
    coder: Coder,
    /// Room rate to the group's rate, when they differ.
    convert: Option<FrameResampler>,
    /// The mix at the group's rate.
    leg_pcm: Box<[i16]>,
    payload: Box<[u8]>,
    len: usize,
    /// The tick it last produced a payload for.
    encoded_at: u64,
    /// The payloads of the silence the group is in, and their cycle once settled.
    silence: SilenceCycle,
}

/// The last payloads an encoder made for a run of digital silence, and their cycle once it
/// repeats (see the module documentation). Fixed-size: nothing allocates per tick.
struct SilenceCycle {
    payloads: [[u8; SILENCE_PAYLOAD_MAX]; SILENCE_HISTORY],
    lens: [usize; SILENCE_HISTORY],
    /// Payloads of this run of silence so far (encoded or played).
    count: usize,
    /// The cycle's length once the last payloads repeat one; 0 while not settled.
    period: usize,
}

impl SilenceCycle {
    fn new() -> Self {
        SilenceCycle {
            payloads: [[0; SILENCE_PAYLOAD_MAX]; SILENCE_HISTORY],
            lens: [0; SILENCE_HISTORY],
            count: 0,
            period: 0,
        }
    }

    /// Sound, or a silence payload too long to keep: the run is over.
    fn break_off(&mut self) {
        self.count = 0;
        self.period = 0;
    }

    /// Keeps a payload the encoder made for digital silence and looks for a cycle in the run.
    fn encoded(&mut self, payload: &[u8]) {
        if payload.len() > SILENCE_PAYLOAD_MAX {
            self.break_off();
            return;
        }
        let slot = self.count % SILENCE_HISTORY;
        self.payloads[slot][..payload.len()].copy_from_slice(payload);
        self.lens[slot] = payload.len();
        self.count += 1;
        self.period = (1..=SILENCE_CYCLE_MAX)
            .find(|&p| self.count >= 2 * p && (0..p).all(|back| self.repeats(back, p)))
            .unwrap_or(0);
    }

    /// Whether the payload `back` places before the newest equals the one `period` before it.
    fn repeats(&self, back: usize, period: usize) -> bool {
        let a = (self.count - 1 - back) % SILENCE_HISTORY;
        let b = (self.count - 1 - back - period) % SILENCE_HISTORY;
        self.payloads[a][..self.lens[a]] == self.payloads[b][..self.lens[b]]
    }

    /// The next payload of the settled cycle, written to `out`; its length. Only when settled.
    fn play(&mut self, out: &mut [u8]) -> usize {
        let from = (self.count - self.period) % SILENCE_HISTORY;
        let slot = self.count % SILENCE_HISTORY;
        let len = self.lens[from];
        self.payloads[slot] = self.payloads[from];
        self.lens[slot] = len;
        self.count += 1;
        out[..len].copy_from_slice(&self.payloads[slot][..len]);
        len
    }
}

/// A room's shared encoders; see the module documentation.
pub struct SharedEncoders {
    encoders: Vec<SharedEncoder>,
    /// The group's mix at the room's rate, filled once per group and tick.
    frame: Box<[i16]>,
    room_rate: u32,
    tick: u64,
    encodes: u64,
    sent: u64,
    /// Payloads sent without an encode of their own, not yet published.
    saved_pending: u64,
    ticks_since_publish: u32,
    saved: Counter,
}

impl SharedEncoders {
    /// No groups yet, for a room mixing at `room_rate`.
    pub fn new(room_rate: u32) -> Self {
        SharedEncoders {
            encoders: Vec::with_capacity(MAX_GROUPS),
            frame: vec![0; room_rate as usize / 50].into(),
            room_rate,
            tick: 0,
            encodes: 0,
            sent: 0,
            saved_pending: 0,
            ticks_since_publish: 0,
            saved: metrics::counter!("huddle_mixer_encodes_saved_total"),
        }
    }

    /// Whether listeners of `codec` share encodes (see the module documentation).
    pub fn shares(codec: Codec) -> bool {
        matches!(codec, Codec::Opus(_))
    }

    /// The room now mixes at `rate`: every encoder is dropped (its converter was for the old
    /// rate) and made again when its group next appears. Called at the switch, not per tick.
    pub fn set_room_rate(&mut self, rate: u32) {
        self.encoders.clear();
        self.room_rate = rate;
        self.frame = vec![0; rate as usize / 50].into();
    }

    /// Starts a tick: every group encodes again at its first listener.
    pub fn next_tick(&mut self) {
        self.tick += 1;
        self.ticks_since_publish += 1;
        if self.ticks_since_publish >= PUBLISH_EVERY_TICKS {
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.ticks_since_publish = 0;
        if self.saved_pending > 0 {
            self.saved.increment(self.saved_pending);
            self.saved_pending = 0;
        }
    }

    /// Sends `audio` this tick's payload of the group `key`, encoding it first when it is the
    /// group's first listener this tick (`mix` then fills the room-rate frame with the group's
    /// mix). False when the group has no encoder and none can be made: the caller sends PCM
    /// for the leg to encode itself.
    pub fn send(
        &mut self,
        key: GroupKey,
        audio: &mut dyn TickAudio,
        mix: impl FnOnce(&mut [i16]),
    ) -> bool {
        let Some(i) = self.group(key) else {
            return false;
        };
        let encoder = &mut self.encoders[i];
        if encoder.encoded_at != self.tick {
            encoder.encoded_at = self.tick;
            mix(&mut self.frame);
            let silent = self.frame.iter().all(|s| *s == 0);
            if silent && encoder.silence.period > 0 {
                // Silence again: the cycle's next payload, without the encode.
                encoder.len = encoder.silence.play(&mut encoder.payload);
                self.saved_pending += 1;
            } else {
                let pcm = match encoder.convert.as_mut() {
                    Some(convert) => {
                        let n = convert.process(&self.frame, &mut encoder.leg_pcm);
                        &encoder.leg_pcm[..n]
                    }
                    None => &self.frame[..],
                };
                encoder.len = encoder.coder.encode(pcm, &mut encoder.payload);
                if silent {
                    encoder.silence.encoded(&encoder.payload[..encoder.len]);
                } else {
                    encoder.silence.break_off();
                }
                self.encodes += 1;
            }
        } else {
            self.saved_pending += 1;
        }
        audio.send_encoded(&encoder.payload[..encoder.len]);
        self.sent += 1;
        true
    }

    /// The index of `key`'s encoder, made if it is new and the cap allows.
    fn group(&mut self, key: GroupKey) -> Option<usize> {
        if let Some(i) = self.encoders.iter().position(|e| e.key == key) {
            return Some(i);
        }
        if self.encoders.len() >= MAX_GROUPS {
            return None;
        }
        let convert = if key.rate == self.room_rate {
            None
        } else {
            Some(FrameResampler::new(self.room_rate, key.rate).ok()?)
        };
        let coder = key.codec.coder().ok()?;
        self.encoders.push(SharedEncoder {
            key,
            coder,
            convert,
            leg_pcm: vec![0; key.rate as usize / 50].into(),
            payload: vec![0; MAX_PAYLOAD].into(),
            len: 0,
            encoded_at: 0,
            silence: SilenceCycle::new(),
        });
        Some(self.encoders.len() - 1)
    }

    /// Encodes done so far.
    pub fn encodes(&self) -> u64 {
        self.encodes
    }

    /// Payloads handed to listeners so far (encodes plus the ones shared).
    pub fn payloads_sent(&self) -> u64 {
        self.sent
    }

    /// Groups that have an encoder.
    pub fn groups(&self) -> usize {
        self.encoders.len()
    }
}

impl Drop for SharedEncoders {
    fn drop(&mut self) {
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use huddle_media::codec::OpusOptions;

    /// A listener that keeps what it was sent.
    struct Sink {
        codec: Codec,
        rate: u32,
        payloads: Vec<Vec<u8>>,
    }

    impl TickAudio for Sink {
        fn receive(&mut self, _: &mut [i16]) -> Option<usize> {
            None
        }
        fn send(&mut self, _: &[i16]) {
            panic!("a shared listener is sent payloads, not PCM");
        }
        fn rate(&self) -> u32 {
            self.rate
        }
        fn codec(&self) -> Option<Codec> {
            Some(self.codec)
        }
        fn send_encoded(&mut self, payload: &[u8]) {
            self.payloads.push(payload.to_vec());
        }
    }

    fn opus(rate: u32) -> Codec {
        Codec::Opus(OpusOptions {
            dtx: false,
            pcm_rate: rate,
        })
    }

    fn sink(codec: Codec) -> Sink {
        Sink {
            codec,
            rate: codec.pcm_rate(),
            payloads: Vec::new(),
        }
    }

    fn tone(freq: f64, tick: usize, out: &mut [i16]) {
        let n = out.len();
        for (i, s) in out.iter_mut().enumerate() {
            let t = (tick * n + i) as f64 / (n * 50) as f64;
            *s = ((2.0 * std::f64::consts::PI * freq * t).sin() * 5000.0) as i16;
        }
    }

    #[test]
    fn listeners_of_one_group_share_one_encode_and_other_groups_get_their_own() {
        let mut shared = SharedEncoders::new(16000);
        let key = |mix, codec: Codec| GroupKey {
            mix,
            codec,
            rate: codec.pcm_rate(),
        };
        let (a, b) = (MixKey::Room(0b1111), MixKey::Room(0b11111));
        let mut same = [sink(opus(16000)), sink(opus(16000)), sink(opus(16000))];
        let mut other_mix = sink(opus(16000));
        let mut narrow = sink(opus(8000));
        for tick in 0..10 {
            shared.next_tick();
            let mut mixes = 0;
            for listener in &mut same {
                let k = key(a, listener.codec);
                assert!(shared.send(k, listener, |out| {
                    mixes += 1;
                    tone(440.0, tick, out)
                }));
            }
            assert_eq!(mixes, 1, "one mix and encode for the three");
            assert!(
                shared.send(key(b, other_mix.codec), &mut other_mix, |out| tone(
                    1500.0, tick, out
                ))
            );
            assert!(shared.send(key(a, narrow.codec), &mut narrow, |out| tone(
                440.0, tick, out
            )));
        }
        assert_eq!(shared.groups(), 3);
        assert_eq!(shared.encodes(), 30);
        assert_eq!(shared.payloads_sent(), 50);
        for listener in &same[1..] {
            assert_eq!(
                listener.payloads, same[0].payloads,
                "bit-identical payloads"
            );
        }
        assert_ne!(
            other_mix.payloads, same[0].payloads,
            "another mix, another stream"
        );
        assert_ne!(
            narrow.payloads, same[0].payloads,
            "another rate, another stream"
        );
        // The narrowband group's payloads decode to 8 kHz frames: converted before encoding.
        let mut decoder = opus(8000).coder().unwrap();
        let mut pcm = [0i16; 960];
        for p in &narrow.payloads {
            assert_eq!(decoder.decode(p, &mut pcm), Some(160));
        }
    }

    /// A listener who starts and stops talking moves between the group's shared encoder and
    /// its leg's own, which meanwhile sat idle: its peer's single decoder gets one stream
    /// made by two encoders. It must decode without errors and without a click: around every
    /// switch the decoded tone's level and its steepest step stay close to the steady ones.
    #[test]
    fn switching_between_the_shared_and_an_own_opus_encoder_does_not_click() {
        let codec = opus(16000);
        let mut shared = SharedEncoders::new(16000);
        let mut own = codec.coder().unwrap();
        let mut decoder = codec.coder().unwrap();
        let mut listener = sink(codec);
        let key = GroupKey {
            mix: MixKey::Room(1),
            codec,
            rate: 16000,
        };
        let mut decoded: Vec<Vec<i16>> = Vec::new();
        let mut frame = [0i16; 320];
        let mut pcm = [0i16; 960];
        // Another listener keeps the group's encoder busy throughout, as in a room.
        let mut other = sink(codec);
        for tick in 0..300 {
            shared.next_tick();
            tone(440.0, tick, &mut frame);
            assert!(shared.send(key, &mut other, |out| out.copy_from_slice(&frame)));
            // 50 ticks own, 50 shared, and so on: five switches each way.
            let payload = if (tick / 50) % 2 == 0 {
                let mut out = [0u8; 1500];
                let len = own.encode(&frame, &mut out);
                out[..len].to_vec()
            } else {
                assert!(shared.send(key, &mut listener, |_| unreachable!("encoded already")));
                listener.payloads.last().unwrap().clone()
            };
            let n = decoder.decode(&payload, &mut pcm).expect("decodes");
            assert_eq!(n, 320);
            decoded.push(pcm[..n].to_vec());
        }
        let steepest = |f: &[i16]| {
            f.windows(2)
                .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
                .max()
                .unwrap_or(0)
        };
        let peak = |f: &[i16]| f.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0);
        // Steady state: frames far from any switch.
        let steady: Vec<&Vec<i16>> = (0..300)
            .filter(|t| t % 50 >= 10 && t % 50 < 45)
            .map(|t| &decoded[t])
            .collect();
        let hf = |f: &[i16]| -> f64 {
            // Energy of the second difference: a click is broadband, a 440 Hz tone is not.
            f.windows(3)
                .map(|w| (f64::from(w[2]) - 2.0 * f64::from(w[1]) + f64::from(w[0])).powi(2))
                .sum()
        };
        let steady_step = steady.iter().map(|f| steepest(f)).max().unwrap();
        let steady_peak = steady.iter().map(|f| peak(f)).max().unwrap();
        let steady_hf = steady.iter().map(|f| hf(f)).fold(0.0, f64::max);
        // Within a fifth of the steady figures. (A switch to a stream in opposite phase, a
        // real click, measures about 1.45 times the steady step and peak and 1.55 times its
        // high-frequency energy; the switches here stay within a few per cent.)
        for switch in (50..300).step_by(50) {
            for (t, f) in decoded.iter().enumerate().take(switch + 3).skip(switch - 1) {
                assert!(
                    steepest(f) * 5 <= steady_step * 6,
                    "tick {t}: a step of {} against {steady_step} steady",
                    steepest(f)
                );
                assert!(
                    peak(f) * 5 <= steady_peak * 6,
                    "tick {t}: a peak of {} against {steady_peak} steady",
                    peak(f)
                );
                assert!(
                    hf(f) <= steady_hf * 1.2,
                    "tick {t}: high-frequency energy {:.0} against {steady_hf:.0} steady",
                    hf(f)
                );
            }
        }
    }

    /// A tone, a long silence, the tone again, at both Opus rates: during the silence the
    /// group stops encoding once its encoder's silence payloads cycle, and plays the cycle:
    /// the listener gets the very payloads an encoder fed the same frames makes, and its
    /// decoder plays silence, then the tone again.
    #[test]
    fn settled_silence_is_sent_again_without_encoding() {
        for rate in [8000, 16000] {
            let codec = opus(rate);
            let mut shared = SharedEncoders::new(rate);
            let mut listener = sink(codec);
            let mut reference = codec.coder().unwrap();
            let mut expected = Vec::new();
            let key = GroupKey {
                mix: MixKey::Room(0),
                codec,
                rate,
            };
            let mut frame = vec![0i16; rate as usize / 50];
            let sound = |tick: usize| !(50..250).contains(&tick);
            let mut encodes_in_silence = 0;
            for tick in 0..300 {
                shared.next_tick();
                if sound(tick) {
                    tone(440.0, tick, &mut frame);
                } else {
                    frame.fill(0);
                }
                let before = shared.encodes();
                assert!(shared.send(key, &mut listener, |out| out.copy_from_slice(&frame)));
                if !sound(tick) {
                    encodes_in_silence += shared.encodes() - before;
                }
                let mut out = [0u8; MAX_PAYLOAD];
                let len = reference.encode(&frame, &mut out);
                expected.push(out[..len].to_vec());
            }
            // A few ticks of transition into silence, then two whole cycles.
            assert!(
                encodes_in_silence <= SILENCE_HISTORY as u64 + 4,
                "{rate} Hz: {encodes_in_silence} encodes in 200 silent ticks"
            );
            assert_eq!(shared.encodes(), 100 + encodes_in_silence);
            // Through the silence, the payloads an encoder of its own would have sent.
            for (tick, (sent, encoded)) in listener.payloads.iter().zip(&expected).enumerate() {
                if tick >= 250 {
                    break;
                }
                assert_eq!(sent, encoded, "{rate} Hz, tick {tick}");
            }
            let mut decoder = codec.coder().unwrap();
            let mut pcm = [0i16; 960];
            let level: Vec<i32> = listener
                .payloads
                .iter()
                .map(|p| {
                    let n = decoder.decode(p, &mut pcm).expect("decodes");
                    pcm[..n]
                        .iter()
                        .map(|s| i32::from(*s).abs())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            assert!(
                level[20..50].iter().all(|l| *l > 3000),
                "{rate} Hz: the tone"
            );
            assert!(level[60..250].iter().all(|l| *l < 30), "{rate} Hz: silence");
            assert!(
                level[260..].iter().all(|l| *l > 3000),
                "{rate} Hz: the tone again"
            );
        }
    }

    #[test]
    fn the_cap_leaves_further_groups_to_their_own_encoders() {
        let mut shared = SharedEncoders::new(8000);
        shared.next_tick();
        let mut listener = sink(opus(8000));
        for row in 0..MAX_GROUPS as u8 {
            let k = GroupKey {
                mix: MixKey::Room(row),
                codec: listener.codec,
                rate: 8000,
            };
            assert!(shared.send(k, &mut listener, |out| out.fill(0)));
        }
        let k = GroupKey {
            mix: MixKey::Music(0),
            codec: listener.codec,
            rate: 8000,
        };
        assert!(!shared.send(k, &mut listener, |out| out.fill(0)));
        assert_eq!(shared.groups(), MAX_GROUPS);
        shared.set_room_rate(16000);
        assert_eq!(shared.groups(), 0, "a rate switch makes the encoders again");
    }
}
