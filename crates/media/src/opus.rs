//! One leg's Opus (RFC 7587) encoder and decoder, over the system libopus through audiopus.
//!
//! Everything is created at leg setup: the encoder, the decoder and a decode buffer for the
//! longest packet Opus allows (120 ms), so a frame never allocates. Loss is handled the way
//! libopus intends: a single lost packet is rebuilt from the in-band FEC the next packet
//! carries (when it is already in the jitter buffer), longer loss is concealed by the
//! decoder's PLC. Discontinuous transmission (DTX) is not loss: a peer that signalled silence
//! (a packet of at most two bytes, libopus's DTX frame) and then stops sending is silent, and
//! its gap is played as silence for up to [`DTX_HOLD_TICKS`] before the leg counts as not
//! sending.

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Bandwidth, Bitrate, Channels, SampleRate};

use crate::codec::{CodecError, Concealment, OpusOptions};

/// A packet this short is a DTX frame: the encoder says "silence, nothing more to send"
/// (libopus documents that packets of two bytes or less need not be transmitted).
const DTX_PACKET_MAX: usize = 2;

/// Ticks of silence played for a peer in DTX without any packet (libopus sends a refresh
/// every 400 ms during DTX, so a second without one means the peer really stopped).
pub const DTX_HOLD_TICKS: u32 = 50;

/// Largest payload we produce: 20 ms at 160 kbit/s; far above the bitrates we ask for.
const MAX_PAYLOAD: usize = 400;

/// Expected packet loss told to the encoder: FEC is only put in packets when it is above 0.
const EXPECTED_LOSS_PERCENT: u8 = 10;

/// Encoder complexity (0..=10; libopus defaults to 9).
///
/// The encode is what an Opus room costs (one per listener group and tick), and it is SILK's
/// analysis that complexity buys: at 16 kHz with in-band FEC, complexity 1 costs about 73 µs
/// a frame against 193 µs at 5 (`cargo bench -p huddle-media --bench codec -- "opus
/// settings"`), for a loss hard to hear in speech at 24-32 kbit/s (simpler noise shaping and
/// pitch search). FEC stays on: it is what protects a listener across the internet.
const COMPLEXITY: u8 = 1;

/// `OPUS_SET_DTX_REQUEST` (opus_defines.h): audiopus has no setter for it.
const OPUS_SET_DTX_REQUEST: i32 = 4016;

/// See the module documentation.
pub struct OpusCoder {
    encoder: Encoder,
    decoder: Decoder,
    /// Decode target big enough for a 120 ms packet at the PCM rate.
    scratch: Box<[i16]>,
    /// The last packet was a DTX frame: gaps are silence.
    in_dtx: bool,
    /// Ticks played as DTX silence since the last packet.
    dtx_ticks: u32,
}

impl OpusCoder {
    /// Encoder and decoder for mono PCM at `options.pcm_rate`.
    pub fn new(options: OpusOptions) -> Result<Self, CodecError> {
        let rate = <SampleRate as audiopus::TryFrom<i32>>::try_from(options.pcm_rate as i32)
            .map_err(|_| CodecError::Rate(options.pcm_rate))?;
        let err = |e: audiopus::Error| CodecError::Opus(e.to_string());
        let mut encoder = Encoder::new(rate, Channels::Mono, Application::Voip).map_err(err)?;
        encoder.set_inband_fec(true).map_err(err)?;
        encoder
            .set_packet_loss_perc(EXPECTED_LOSS_PERCENT)
            .map_err(err)?;
        // Enough for FEC to fit beside the primary frame at every rate (libopus drops FEC
        // when the bitrate is too low for it).
        let bitrate = match options.pcm_rate {
            0..=8000 => 24_000,
            8001..=16000 => 32_000,
            _ => 48_000,
        };
        encoder
            .set_bitrate(Bitrate::BitsPerSecond(bitrate))
            .map_err(err)?;
        if options.pcm_rate > 16000 {
            // Left to itself, libopus's VoIP mode keeps speech-like input wideband at these
            // bitrates; a fullband leg was asked for because the peer wants all of it.
            encoder.set_bandwidth(Bandwidth::Fullband).map_err(err)?;
        }
        encoder
            .set_encoder_ctl_request(OPUS_SET_DTX_REQUEST, i32::from(options.dtx))
            .map_err(err)?;
        // The encoder's cost is the room's cost: see COMPLEXITY.
        encoder.set_complexity(COMPLEXITY).map_err(err)?;
        let decoder = Decoder::new(rate, Channels::Mono).map_err(err)?;
        Ok(OpusCoder {
            encoder,
            decoder,
            scratch: vec![0; options.pcm_rate as usize * 120 / 1000].into(),
            in_dtx: false,
            dtx_ticks: 0,
        })
    }

    /// Encodes one frame; 0 when nothing should be sent (a DTX frame, or an error).
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let limit = out.len().min(MAX_PAYLOAD);
        match self.encoder.encode(pcm, &mut out[..limit]) {
            // RFC 7587 §3.1.3: DTX frames need not be sent; the timestamp jump tells the
            // receiver the gap was silence.
            Ok(len) if len <= DTX_PACKET_MAX => 0,
            Ok(len) => len,
            Err(_) => 0,
        }
    }

    /// Decodes one packet into `out`; None when libopus rejects it.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Option<usize> {
        if payload.is_empty() {
            // audiopus refuses an empty packet; it is no audio at all.
            return None;
        }
        let n = self
            .decoder
            .decode(Some(payload), &mut self.scratch[..], false)
            .ok()?;
        self.in_dtx = payload.len() <= DTX_PACKET_MAX;
        self.dtx_ticks = 0;
        let n = n.min(out.len());
        out[..n].copy_from_slice(&self.scratch[..n]);
        Some(n)
    }

    /// Fills `out` (exactly one lost frame) from the next packet's FEC, or by PLC.
    pub fn conceal(&mut self, next: Option<&[u8]>, out: &mut [i16]) -> Concealment {
        if self.in_dtx {
            out.fill(0);
            return Concealment::Silence;
        }
        if out.is_empty() {
            return Concealment::Plc;
        }
        // libopus decodes FEC (and PLC) for exactly the length of the output buffer, which
        // is the lost frame's duration here.
        if let Some(next) = next.filter(|p| p.len() > DTX_PACKET_MAX) {
            if self.decoder.decode(Some(next), &mut *out, true).is_ok() {
                return Concealment::Fec;
            }
        }
        if self
            .decoder
            .decode(None::<&[u8]>, &mut *out, false)
            .is_err()
        {
            out.fill(0);
        }
        Concealment::Plc
    }

    /// A silent frame while the peer is in DTX (bounded by [`DTX_HOLD_TICKS`]).
    pub fn idle(&mut self, frame_len: usize, out: &mut [i16]) -> Option<usize> {
        if !self.in_dtx || self.dtx_ticks >= DTX_HOLD_TICKS {
            return None;
        }
        self.dtx_ticks += 1;
        let n = frame_len.min(out.len());
        out[..n].fill(0);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, start: usize, out: &mut [i16]) {
        for (i, s) in out.iter_mut().enumerate() {
            let t = (start + i) as f64 / f64::from(rate);
            *s = ((2.0 * std::f64::consts::PI * freq * t).sin() * 8000.0) as i16;
        }
    }

    fn options(dtx: bool) -> OpusOptions {
        OpusOptions {
            dtx,
            pcm_rate: 8000,
        }
    }

    fn energy(pcm: &[i16]) -> f64 {
        pcm.iter().map(|s| f64::from(*s).powi(2)).sum()
    }

    #[test]
    fn a_tone_survives_a_round_trip() {
        let mut tx = OpusCoder::new(options(false)).unwrap();
        let mut rx = OpusCoder::new(options(false)).unwrap();
        let (mut pcm, mut payload, mut out) = ([0i16; 160], [0u8; 1500], [0i16; 160]);
        let mut total = (0.0, 0.0);
        for frame in 0..50 {
            tone(600.0, 8000, frame * 160, &mut pcm);
            let len = tx.encode(&pcm, &mut payload);
            assert!(len > DTX_PACKET_MAX && len <= MAX_PAYLOAD, "{len}");
            assert_eq!(rx.decode(&payload[..len], &mut out), Some(160));
            if frame >= 10 {
                total.0 += energy(&pcm);
                total.1 += energy(&out);
            }
        }
        let ratio = total.1 / total.0;
        assert!((0.7..1.3).contains(&ratio), "energy ratio {ratio}");
    }

    /// Two partials (220 and 726 Hz) whose level swings at 3 Hz like syllables: SILK's voice
    /// activity detector takes a steady tone for background noise and puts no FEC in its
    /// packets, and a single steady partial is one PLC extrapolates almost exactly, so it
    /// could not tell FEC from PLC.
    fn syllables(start: usize, out: &mut [i16]) {
        for (i, s) in out.iter_mut().enumerate() {
            let t = (start + i) as f64 / 8000.0;
            let level = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let w = 2.0 * std::f64::consts::PI * 220.0 * t;
            *s = ((w.sin() * 6000.0 + (3.3 * w).sin() * 2000.0) * level) as i16;
        }
    }

    fn distance(a: &[i16], b: &[i16]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum()
    }

    #[test]
    fn a_single_loss_is_rebuilt_from_the_next_packets_fec() {
        let mut tx = OpusCoder::new(options(false)).unwrap();
        let mut packets = Vec::new();
        let mut pcm = [0i16; 160];
        for frame in 0..60 {
            syllables(frame * 160, &mut pcm);
            let mut payload = [0u8; 1500];
            let len = tx.encode(&pcm, &mut payload);
            packets.push(payload[..len].to_vec());
        }
        // Frame 40 as a receiver without loss decodes it, then with 40 lost and 41 here
        // (FEC), then with 40 and 41 both lost (PLC).
        let mut rebuilt = Vec::new();
        for case in 0..3 {
            let mut rx = OpusCoder::new(options(false)).unwrap();
            let mut out = [0i16; 160];
            for p in &packets[..40] {
                rx.decode(p, &mut out).unwrap();
            }
            let how = match case {
                0 => rx
                    .decode(&packets[40], &mut out)
                    .map(|_| Concealment::Silence),
                1 => Some(rx.conceal(Some(&packets[41]), &mut out)),
                _ => Some(rx.conceal(None, &mut out)),
            };
            assert_eq!(
                how,
                Some([Concealment::Silence, Concealment::Fec, Concealment::Plc][case])
            );
            rebuilt.push(out);
        }
        let (fec, plc) = (
            distance(&rebuilt[1], &rebuilt[0]),
            distance(&rebuilt[2], &rebuilt[0]),
        );
        let signal: f64 = rebuilt[0].iter().map(|s| f64::from(*s).powi(2)).sum();
        assert!(
            fec < 0.1 * signal,
            "FEC is close to the frame: {fec} vs {signal}"
        );
        assert!(fec < plc / 4.0, "FEC beats PLC: {fec} vs {plc}");
    }

    #[test]
    fn hostile_payloads_are_refused_not_panicked_on() {
        let mut rx = OpusCoder::new(options(false)).unwrap();
        let mut out = [0i16; 160];
        assert_eq!(rx.decode(&[], &mut out), None);
        // A TOC byte announcing a code-3 packet with an impossible frame count.
        assert_eq!(rx.decode(&[0x03, 0xFF], &mut out), None);
        // Garbage of every length decodes or is refused, never more than the buffer.
        for len in 1..300 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            if let Some(n) = rx.decode(&junk, &mut out) {
                assert!(n <= out.len());
            }
        }
        // A short output buffer is never overrun.
        let mut tiny = [0i16; 3];
        let _ = rx.decode(&[0x78, 0x01, 0x02], &mut tiny);
    }

    #[test]
    fn dtx_gaps_are_silence_then_not_sending() {
        let mut tx = OpusCoder::new(options(true)).unwrap();
        let mut rx = OpusCoder::new(options(false)).unwrap();
        let silence = [0i16; 160];
        let mut payload = [0u8; 1500];
        let mut out = [0i16; 160];
        // The encoder goes quiet after a while of silence.
        let mut quiet = false;
        for _ in 0..100 {
            let len = tx.encode(&silence, &mut payload);
            if len == 0 {
                quiet = true;
                break;
            }
            rx.decode(&payload[..len], &mut out);
        }
        assert!(quiet, "DTX stopped sending");
        // What the receiver sees of DTX: a one-byte frame, then nothing.
        let toc = [payload[0]];
        rx.decode(&toc, &mut out).unwrap();
        assert_eq!(rx.conceal(None, &mut out), Concealment::Silence);
        assert_eq!(out, [0; 160]);
        for _ in 0..DTX_HOLD_TICKS {
            assert_eq!(rx.idle(160, &mut out), Some(160));
        }
        assert_eq!(rx.idle(160, &mut out), None, "a second without packets");
    }

    #[test]
    fn unsupported_rates_are_refused() {
        let e = OpusCoder::new(OpusOptions {
            dtx: false,
            pcm_rate: 11025,
        });
        assert!(matches!(e, Err(CodecError::Rate(11025))));
    }
}
