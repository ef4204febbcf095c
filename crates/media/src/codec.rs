//! Audio codecs a leg can run. [`Codec`] is the negotiated choice (plain data, `Copy`);
//! [`Coder`] is one leg's running state for it, built once at leg setup so that no frame ever
//! allocates. An enum rather than a trait object, so the per-frame call is a static match and
//! the G.711 path stays as cheap as it was.

use thiserror::Error;

use crate::g711;
use crate::g722::{self, G722Decoder, G722Encoder};
use crate::opus::OpusCoder;

/// Opus options agreed in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusOptions {
    /// The peer asked for DTX (`usedtx=1`): our encoder stops sending during silence.
    pub dtx: bool,
    /// Sample rate of the PCM the leg exchanges with whoever drives it (8000, 16000 or
    /// 48000); Opus encodes and decodes at that rate natively, so no resampling is needed.
    pub pcm_rate: u32,
}

impl Default for OpusOptions {
    fn default() -> Self {
        OpusOptions {
            dtx: false,
            pcm_rate: 8000,
        }
    }
}

/// A negotiated codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// Opus (RFC 7587), mono.
    Opus(OpusOptions),
    /// G.722 at 64 kbit/s: 16 kHz audio, exchanged as 16 kHz frames (a room mixing at 8 kHz
    /// resamples the member, see the room crate).
    G722,
}

/// A codec state that could not be created.
#[derive(Debug, Error)]
pub enum CodecError {
    /// libopus refused to create an encoder or decoder.
    #[error("cannot set up Opus: {0}")]
    Opus(String),
    /// A PCM rate the codec cannot run at.
    #[error("unsupported PCM rate {0} Hz")]
    Rate(u32),
    /// The resampler could not be built.
    #[error("cannot set up the resampler: {0}")]
    Resampler(String),
}

impl Codec {
    /// From an SDP encoding name (Opus with default options).
    pub fn from_name(name: &str) -> Option<Codec> {
        match name.to_ascii_uppercase().as_str() {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            "OPUS" => Some(Codec::Opus(OpusOptions::default())),
            "G722" => Some(Codec::G722),
            _ => None,
        }
    }

    /// RTP clock rate: the unit of RTP timestamps (48000 for Opus whatever it samples at,
    /// RFC 7587 §4.1; 8000 for G.722 although it samples at 16 kHz, RFC 3551 §4.5.2).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
            Codec::Opus(_) => 48000,
        }
    }

    /// Sample rate of the PCM the leg decodes to and encodes from: the codec's natural rate
    /// (8 kHz for G.711, 16 kHz for G.722, what SDP agreed for Opus), so that a wideband leg
    /// is never squeezed through 8 kHz on its way into a room.
    pub fn pcm_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::G722 => 16000,
            Codec::Opus(o) => o.pcm_rate,
        }
    }

    /// The least jitter-buffer delay the codec wants: Opus holds one packet more than
    /// G.711 (40 ms), so that when a packet is lost the next one is already here and its
    /// in-band FEC can rebuild the lost frame before its playout.
    pub fn min_jitter_ms(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 0,
            Codec::Opus(_) => 40,
        }
    }

    /// The running state for one leg.
    pub fn coder(self) -> Result<Coder, CodecError> {
        Ok(match self {
            Codec::Pcmu => Coder::Pcmu,
            Codec::Pcma => Coder::Pcma,
            Codec::Opus(o) => Coder::Opus(Box::new(OpusCoder::new(o)?)),
            Codec::G722 => Coder::G722(Box::default()),
        })
    }
}

/// How a missing frame was filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concealment {
    /// The peer is in discontinuous transmission: the gap is silence, not loss.
    Silence,
    /// Recovered from the next packet's in-band forward error correction (Opus).
    Fec,
    /// Packet loss concealment: an estimate (Opus PLC, or G.711's fading repeat).
    Plc,
}

/// One leg's codec state; see the module documentation.
pub enum Coder {
    /// G.711 µ-law: stateless.
    Pcmu,
    /// G.711 A-law: stateless.
    Pcma,
    /// Opus: encoder, decoder and their buffers, boxed so G.711 legs stay small.
    Opus(Box<OpusCoder>),
    /// G.722: encoder and decoder at 16 kHz.
    G722(Box<G722Coder>),
}

/// One leg's G.722 state: the codec's two sub-band ADPCM states, at the leg's 16 kHz.
#[derive(Default)]
pub struct G722Coder {
    encoder: G722Encoder,
    decoder: G722Decoder,
}

impl G722Coder {
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let n = pcm.len().min(g722::FRAME_SAMPLES);
        self.encoder.encode(&pcm[..n], out)
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        // A packet longer than 20 ms is cut to 20 ms: the leg plays one frame per tick.
        let n = out.len().min(g722::FRAME_SAMPLES);
        self.decoder.decode(payload, &mut out[..n])
    }
}

impl Coder {
    /// Encodes one frame of PCM into `out`, returning the payload length; 0 means "send
    /// nothing this tick" (Opus in DTX, or a frame the encoder refused).
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        match self {
            Coder::Pcmu => {
                let n = pcm.len().min(out.len());
                g711::ulaw_encode(&pcm[..n], &mut out[..n]);
                n
            }
            Coder::Pcma => {
                let n = pcm.len().min(out.len());
                g711::alaw_encode(&pcm[..n], &mut out[..n]);
                n
            }
            Coder::Opus(o) => o.encode(pcm, out),
            Coder::G722(g) => g.encode(pcm, out),
        }
    }

    /// Decodes a payload into `out`, returning the sample count; None when the payload cannot
    /// be decoded (the caller conceals and counts it).
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Option<usize> {
        match self {
            Coder::Pcmu => {
                let n = payload.len().min(out.len());
                g711::ulaw_decode(&payload[..n], &mut out[..n]);
                Some(n)
            }
            Coder::Pcma => {
                let n = payload.len().min(out.len());
                g711::alaw_decode(&payload[..n], &mut out[..n]);
                Some(n)
            }
            Coder::Opus(o) => o.decode(payload, out),
            Coder::G722(g) => Some(g.decode(payload, out)),
        }
    }

    /// Fills `out[..frame_len]` for a frame that did not arrive. `next` is the following
    /// packet's payload when it is already here (Opus recovers the lost frame from its FEC).
    /// G.711 and G.722 repeat the previous frame (still in `out`) at half level, fading to
    /// silence.
    pub fn conceal(
        &mut self,
        next: Option<&[u8]>,
        frame_len: usize,
        out: &mut [i16],
    ) -> Concealment {
        let n = frame_len.min(out.len());
        match self {
            Coder::Pcmu | Coder::Pcma | Coder::G722(_) => {
                for s in &mut out[..n] {
                    *s /= 2;
                }
                Concealment::Plc
            }
            Coder::Opus(o) => o.conceal(next, &mut out[..n]),
        }
    }

    /// While the jitter buffer has nothing to play: a frame of silence when the peer is in
    /// discontinuous transmission (it stopped sending on purpose), else None (not sending).
    pub fn idle(&mut self, frame_len: usize, out: &mut [i16]) -> Option<usize> {
        match self {
            Coder::Pcmu | Coder::Pcma | Coder::G722(_) => None,
            Coder::Opus(o) => o.idle(frame_len, out),
        }
    }
}
