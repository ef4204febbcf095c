//! Test helpers: tone files made in memory and a tiny tone detector.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Cursor;

/// A sine tone as f64 samples in -1..1 (amplitude `amp`), `channels` identical channels.
pub fn tone(freq: f64, seconds: f64, rate: u32, amp: f64) -> Vec<f64> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
        .collect()
}

/// WAV sample formats the tests write.
#[derive(Clone, Copy, Debug)]
pub enum WavFormat {
    I16,
    I24,
    F32,
}

/// A WAV file holding `samples` on each of `channels` channels (the right channel, if any, is
/// the same tone: downmixing must keep it).
pub fn wav(samples: &[f64], rate: u32, channels: u16, format: WavFormat) -> Vec<u8> {
    let (bits, sample_format) = match format {
        WavFormat::I16 => (16, hound::SampleFormat::Int),
        WavFormat::I24 => (24, hound::SampleFormat::Int),
        WavFormat::F32 => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format,
    };
    let mut out = Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for &s in samples {
            for _ in 0..channels {
                match format {
                    WavFormat::I16 => w.write_sample((s * 32767.0) as i16).unwrap(),
                    WavFormat::I24 => w.write_sample((s * 8_388_607.0) as i32).unwrap(),
                    WavFormat::F32 => w.write_sample(s as f32).unwrap(),
                }
            }
        }
        w.finalize().unwrap();
    }
    out.into_inner()
}

/// A 16-bit mono WAV of a tone.
pub fn wav_tone(freq: f64, seconds: f64, rate: u32) -> Vec<u8> {
    wav(&tone(freq, seconds, rate, 0.4), rate, 1, WavFormat::I16)
}

/// A mono MP3 of a tone, encoded with LAME at `rate` (8 kHz caps at 64 kb/s), with the LAME
/// tag written into its first frame as file encoders do, so decoders can trim the encoder delay
/// and padding (gapless).
pub fn mp3_tone(freq: f64, seconds: f64, rate: u32) -> Vec<u8> {
    encode_mp3(freq, seconds, rate, true)
}

/// Like [`mp3_tone`] but with the first frame left as LAME's blank placeholder, as streaming
/// encoders leave it: the decoder cannot know the delay, so the audio comes out longer.
pub fn mp3_tone_untagged(freq: f64, seconds: f64, rate: u32) -> Vec<u8> {
    encode_mp3(freq, seconds, rate, false)
}

fn encode_mp3(freq: f64, seconds: f64, rate: u32, tag: bool) -> Vec<u8> {
    use mp3lame_encoder::{Bitrate, Builder, FlushGap, MonoPcm, Quality};
    let mut builder = Builder::new().unwrap();
    builder.set_num_channels(1).unwrap();
    builder.set_sample_rate(rate).unwrap();
    // Without an explicit output rate LAME resamples low rates (crates.md pitfall 7).
    builder
        .set_output_sample_rate(std::num::NonZeroU32::new(rate))
        .unwrap();
    builder.set_brate(Bitrate::Kbps64).unwrap();
    builder.set_quality(Quality::Good).unwrap();
    let mut encoder = builder.build().unwrap();
    let pcm: Vec<i16> = tone(freq, seconds, rate, 0.4)
        .iter()
        .map(|&s| (s * 32767.0) as i16)
        .collect();
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(pcm.len()));
    encoder.encode_to_vec(MonoPcm(&pcm), &mut out).unwrap();
    out.reserve(7200);
    encoder.flush_to_vec::<FlushGap>(&mut out).unwrap();
    if tag && encoder.is_lame_tag_written() {
        let mut frame = Vec::with_capacity(encoder.lame_tag_size());
        encoder.lame_tag_encode_to_vec(&mut frame).unwrap();
        out[..frame.len()].copy_from_slice(&frame);
    }
    out
}

/// Root mean square of `samples`, full scale 1.0.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples
        .iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum();
    (sum / samples.len() as f64).sqrt()
}

/// Goertzel detector: amplitude of `freq` in `samples` (Hann-windowed), full scale 1.0. A pure
/// sine of amplitude A measures ≈ A at its own frequency and ≈ 0 far from it.
pub fn tone_level(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let n = samples.len();
    if n < 2 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut window_sum = 0.0;
    for (i, &x) in samples.iter().enumerate() {
        let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos();
        window_sum += hann;
        let s0 = f64::from(x) / 32768.0 * hann + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / window_sum
}
