//! The stream's audio formats (spec/ai-stream.md §2) and the conversions between them and the
//! room's 16-bit samples: µ-law, 16-bit linear PCM and rubato resampling where rates differ.
//!
//! L16 byte order is little-endian. Plivo does not say; RFC 3551's L16 is big-endian, but the
//! adapters written against Plivo's streams treat its L16 as little-endian PCM, and so does
//! huddle, in both directions ([`L16_LITTLE_ENDIAN`]).

use huddle_media::g711;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// The byte order of `audio/x-l16` payloads, both ways.
pub const L16_LITTLE_ENDIAN: bool = true;

/// How samples are written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `audio/x-l16`: 16-bit signed linear PCM, little-endian.
    L16,
    /// `audio/x-mulaw`: G.711 µ-law.
    Mulaw,
}

/// A payload whose bytes are not whole samples.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("has {0} bytes, not a whole number of 16-bit samples")]
pub struct OddLength(pub usize);

/// A supported encoding at a supported rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFormat {
    encoding: Encoding,
    rate: u32,
}

impl MediaFormat {
    /// `audio/x-l16` at 8 or 16 kHz, or `audio/x-mulaw` at 8 kHz; anything else is None.
    pub fn new(encoding: Encoding, rate: u32) -> Option<MediaFormat> {
        match (encoding, rate) {
            (Encoding::L16, 8000 | 16000) | (Encoding::Mulaw, 8000) => {
                Some(MediaFormat { encoding, rate })
            }
            _ => None,
        }
    }

    /// The stream's format from `aiAgentStreamContentType` (`audio/x-l16;rate=8000`, …, as
    /// the XML parser canonicalised it) and `aiAgentStreamSamplingRate`, which must agree
    /// with the type's rate when given.
    pub fn from_content_type(content_type: &str, sampling_rate: Option<u32>) -> Option<Self> {
        let (kind, params) = content_type.split_once(';').unwrap_or((content_type, ""));
        let rate = params
            .trim()
            .strip_prefix("rate=")
            .and_then(|r| r.trim().parse::<u32>().ok())
            .or(sampling_rate)
            .unwrap_or(8000);
        if sampling_rate.is_some_and(|s| s != rate) {
            return None;
        }
        MediaFormat::new(encoding_of(kind.trim())?, rate)
    }

    /// A `playAudio` payload's format from its `contentType` (without or with a `;rate=`
    /// suffix that must then agree) and `sampleRate`.
    pub fn from_play(content_type: &str, rate: u32) -> Option<Self> {
        MediaFormat::from_content_type(content_type, Some(rate))
    }

    /// The encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Samples per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples in 20 ms.
    pub fn frame_samples(&self) -> usize {
        self.rate as usize / 50
    }

    /// The encoding's name as `start.mediaFormat.encoding` carries it.
    pub fn mime(&self) -> &'static str {
        match self.encoding {
            Encoding::L16 => "audio/x-l16",
            Encoding::Mulaw => "audio/x-mulaw",
        }
    }

    /// The full content type, `audio/x-l16;rate=8000` style.
    pub fn content_type(&self) -> String {
        format!("{};rate={}", self.mime(), self.rate)
    }

    /// Writes `pcm` in this format, replacing `out`'s contents.
    pub fn encode(&self, pcm: &[i16], out: &mut Vec<u8>) {
        out.clear();
        match self.encoding {
            Encoding::L16 => {
                for s in pcm {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            Encoding::Mulaw => out.extend(pcm.iter().map(|&s| g711::ulaw_from_linear(s))),
        }
    }

    /// Reads a payload in this format.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<i16>, OddLength> {
        match self.encoding {
            Encoding::L16 => {
                if !bytes.len().is_multiple_of(2) {
                    return Err(OddLength(bytes.len()));
                }
                Ok(bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect())
            }
            Encoding::Mulaw => Ok(bytes.iter().map(|&b| g711::ulaw_to_linear(b)).collect()),
        }
    }
}

fn encoding_of(kind: &str) -> Option<Encoding> {
    if kind.eq_ignore_ascii_case("audio/x-l16") {
        Some(Encoding::L16)
    } else if kind.eq_ignore_ascii_case("audio/x-mulaw") {
        Some(Encoding::Mulaw)
    } else {
        None
    }
}

/// Could not build a resampler.
#[derive(Debug, thiserror::Error)]
#[error("cannot resample {from} Hz to {to} Hz: {detail}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    detail: String,
}

/// Streaming conversion of mono samples from one rate to another, 20 ms at a time: rubato's
/// FFT resampler with one frame per call (160 ↔ 320 samples between 8 and 16 kHz). Buffers
/// are made once, at stream setup.
pub struct Converter {
    engine: Option<Fft<f32>>,
    chunk_in: usize,
    pending: Vec<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl Converter {
    /// A converter from `from` Hz to `to` Hz (a pass-through when they are equal).
    pub fn new(from: u32, to: u32) -> Result<Converter, ResampleError> {
        let chunk_in = from as usize / 50;
        let engine = if from == to {
            None
        } else {
            Some(
                Fft::<f32>::new(from as usize, to as usize, chunk_in, 1, FixedSync::Both).map_err(
                    |e| ResampleError {
                        from,
                        to,
                        detail: e.to_string(),
                    },
                )?,
            )
        };
        let out_max = engine.as_ref().map_or(0, |e| e.output_frames_max());
        Ok(Converter {
            engine,
            chunk_in,
            pending: Vec::with_capacity(4 * chunk_in),
            input: vec![0.0; chunk_in],
            output: vec![0.0; out_max],
        })
    }

    /// Converts `pcm`, appending every complete output frame to `out`; a partial input frame
    /// waits for the next call (or [`Converter::flush`]).
    pub fn push(&mut self, pcm: &[i16], out: &mut Vec<i16>) {
        if self.engine.is_none() {
            out.extend_from_slice(pcm);
            return;
        }
        self.pending
            .extend(pcm.iter().map(|&s| f32::from(s) / 32768.0));
        let mut offset = 0;
        while self.pending.len() - offset >= self.chunk_in {
            self.input
                .copy_from_slice(&self.pending[offset..offset + self.chunk_in]);
            self.run(out);
            offset += self.chunk_in;
        }
        self.pending.drain(..offset);
    }

    /// Pads a partial input frame with silence and converts it.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        if self.pending.is_empty() || self.engine.is_none() {
            return;
        }
        let n = self.pending.len();
        self.input[..n].copy_from_slice(&self.pending);
        self.input[n..].fill(0.0);
        self.pending.clear();
        self.run(out);
    }

    /// Forgets buffered input (after a clear).
    pub fn reset(&mut self) {
        self.pending.clear();
        if let Some(engine) = self.engine.as_mut() {
            engine.reset();
        }
    }

    fn run(&mut self, out: &mut Vec<i16>) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let frames_out = self.output.len();
        let (Ok(input), Ok(mut output)) = (
            InterleavedSlice::new(&self.input[..], 1, self.chunk_in),
            InterleavedSlice::new_mut(&mut self.output[..], 1, frames_out),
        ) else {
            return;
        };
        if let Ok((_, made)) = engine.process_into_buffer(&input, &mut output, None) {
            // `as` saturates: a resampler overshoot clips instead of wrapping.
            out.extend(
                self.output[..made]
                    .iter()
                    .map(|&s| (s * 32768.0).round() as i16),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (8000.0 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()) as i16
            })
            .collect()
    }

    /// Goertzel power of `freq` relative to the signal's energy.
    fn share(pcm: &[i16], freq: f32, rate: u32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * freq / rate as f32;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2, mut energy) = (0.0f32, 0.0f32, 0.0f32);
        for &x in pcm {
            let x = f32::from(x);
            let s0 = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
            energy += x * x;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        if energy == 0.0 {
            0.0
        } else {
            2.0 * power / (pcm.len() as f32 * energy)
        }
    }

    #[test]
    fn content_types_and_rates() {
        let f = MediaFormat::from_content_type("audio/x-l16;rate=16000", None).unwrap();
        assert_eq!(
            (f.encoding(), f.rate(), f.frame_samples()),
            (Encoding::L16, 16000, 320)
        );
        assert_eq!(f.content_type(), "audio/x-l16;rate=16000");
        let f = MediaFormat::from_content_type("audio/x-mulaw;rate=8000", Some(8000)).unwrap();
        assert_eq!(f.mime(), "audio/x-mulaw");
        assert!(MediaFormat::from_content_type("audio/x-l16;rate=8000", Some(16000)).is_none());
        assert!(MediaFormat::from_content_type("audio/x-mulaw;rate=16000", None).is_none());
        assert!(MediaFormat::from_content_type("audio/ogg", None).is_none());
        assert_eq!(
            MediaFormat::from_play("audio/x-l16", 16000),
            MediaFormat::new(Encoding::L16, 16000)
        );
    }

    #[test]
    fn l16_is_little_endian_and_round_trips() {
        let f = MediaFormat::new(Encoding::L16, 8000).unwrap();
        let mut bytes = Vec::new();
        f.encode(&[0x0102, -2], &mut bytes);
        assert_eq!(bytes, [0x02, 0x01, 0xfe, 0xff]);
        assert_eq!(f.decode(&bytes).unwrap(), [0x0102, -2]);
        assert_eq!(f.decode(&[1, 2, 3]), Err(OddLength(3)));
    }

    #[test]
    fn mulaw_round_trips_within_its_quantisation() {
        let f = MediaFormat::new(Encoding::Mulaw, 8000).unwrap();
        let pcm = tone(440.0, 8000, 160);
        let mut bytes = Vec::new();
        f.encode(&pcm, &mut bytes);
        assert_eq!(bytes.len(), 160);
        let back = f.decode(&bytes).unwrap();
        for (a, b) in pcm.iter().zip(&back) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 256, "{a} vs {b}");
        }
    }

    #[test]
    fn resampling_keeps_the_tone_and_the_length() {
        for (from, to) in [(8000, 16000), (16000, 8000)] {
            let mut c = Converter::new(from, to).unwrap();
            let input = tone(700.0, from, from as usize); // one second
            let mut out = Vec::new();
            // Uneven pieces, as playAudio payloads come.
            for piece in input.chunks(97) {
                c.push(piece, &mut out);
            }
            assert_eq!(out.len(), to as usize, "{from} -> {to}");
            let steady = &out[out.len() / 2..];
            assert!(share(steady, 700.0, to) > 0.9, "{from} -> {to}");
        }
        let mut same = Converter::new(8000, 8000).unwrap();
        let mut out = Vec::new();
        same.push(&[1, 2, 3], &mut out);
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn flush_pads_a_partial_frame() {
        let mut c = Converter::new(16000, 8000).unwrap();
        let mut out = Vec::new();
        c.push(&tone(500.0, 16000, 100), &mut out);
        assert!(out.is_empty());
        c.flush(&mut out);
        assert_eq!(out.len(), 160);
    }
}
