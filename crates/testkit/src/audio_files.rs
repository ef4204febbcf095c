//! Audio files for `<Play>` tests, made in memory: WAV (hound) and MP3 (LAME) tones.

use std::io::Cursor;

/// Samples of a sine tone.
pub fn tone_samples(freq: f64, seconds: f64, rate: u32, amplitude: f64) -> Vec<i16> {
    let n = (seconds * f64::from(rate)) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            ((2.0 * std::f64::consts::PI * freq * t).sin() * amplitude) as i16
        })
        .collect()
}

/// A mono 16-bit WAV file of a tone.
pub fn wav_tone(freq: f64, seconds: f64, rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::new());
    {
        let mut writer = hound::WavWriter::new(&mut out, spec).expect("wav writer");
        for s in tone_samples(freq, seconds, rate, 12_000.0) {
            writer.write_sample(s).expect("wav sample");
        }
        writer.finalize().expect("wav finalize");
    }
    out.into_inner()
}

/// A mono MP3 file of a tone.
pub fn mp3_tone(freq: f64, seconds: f64, rate: u32) -> Vec<u8> {
    use mp3lame_encoder::{Bitrate, Builder, FlushGap, MonoPcm, Quality};
    let mut builder = Builder::new().expect("lame");
    builder.set_num_channels(1).expect("channels");
    builder.set_sample_rate(rate).expect("rate");
    builder
        .set_output_sample_rate(std::num::NonZeroU32::new(rate))
        .expect("output rate");
    builder.set_brate(Bitrate::Kbps64).expect("bitrate");
    builder.set_quality(Quality::Good).expect("quality");
    let mut encoder = builder.build().expect("encoder");
    let pcm = tone_samples(freq, seconds, rate, 12_000.0);
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(pcm.len()));
    encoder
        .encode_to_vec(MonoPcm(&pcm), &mut out)
        .expect("encode");
    out.reserve(7200);
    encoder.flush_to_vec::<FlushGap>(&mut out).expect("flush");
    out
}
