//! Audio codecs a leg can run. An enum, not a trait object, so the per-frame call is static;
//! Opus and G.722 become new variants.

use crate::g711;

/// A negotiated codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl Codec {
    /// From an SDP encoding name.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name.to_ascii_uppercase().as_str() {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        8000
    }

    /// Encodes PCM into `out`, returning the payload length.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> usize {
        let n = pcm.len().min(out.len());
        match self {
            Codec::Pcmu => g711::ulaw_encode(&pcm[..n], &mut out[..n]),
            Codec::Pcma => g711::alaw_encode(&pcm[..n], &mut out[..n]),
        }
        n
    }

    /// Decodes a payload into `out`, returning the sample count.
    pub fn decode(self, payload: &[u8], out: &mut [i16]) -> usize {
        let n = payload.len().min(out.len());
        match self {
            Codec::Pcmu => g711::ulaw_decode(&payload[..n], &mut out[..n]),
            Codec::Pcma => g711::alaw_decode(&payload[..n], &mut out[..n]),
        }
        n
    }
}
