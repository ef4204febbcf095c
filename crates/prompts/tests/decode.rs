//! Decoding real WAV and MP3 files of known tones, and resampling them to call rates.

mod common;

use common::*;
use huddle_prompts::decode_audio;

/// Output length must match the input duration within one 20 ms frame at the output rate.
fn assert_length(out: &[i16], seconds: f64, rate: u32) {
    let expected = seconds * f64::from(rate);
    let frame = f64::from(rate) / 50.0;
    assert!(
        (out.len() as f64 - expected).abs() <= frame,
        "{} samples, expected {expected} ± {frame}",
        out.len()
    );
}

/// 1000 Hz clearly there at about the written level, 600 Hz not.
fn assert_1k_tone(out: &[i16], rate: u32, amp: f64) {
    let on = tone_level(out, rate, 1000.0);
    let off = tone_level(out, rate, 600.0);
    eprintln!("1000 Hz: {on:.4}, 600 Hz: {off:.5}");
    assert!(
        on > amp * 0.8 && on < amp * 1.2,
        "1000 Hz level {on}, written {amp}"
    );
    assert!(off < on / 100.0, "600 Hz level {off} vs 1000 Hz {on}");
}

#[test]
fn wav_16k_mono_to_8k() {
    let bytes = wav_tone(1000.0, 1.0, 16000);
    let out = decode_audio(&bytes, Some("wav"), 8000).unwrap();
    assert_length(&out, 1.0, 8000);
    assert_1k_tone(&out, 8000, 0.4);
}

#[test]
fn wav_44k1_stereo_to_8k() {
    let bytes = wav(&tone(1000.0, 1.5, 44100, 0.4), 44100, 2, WavFormat::I16);
    let out = decode_audio(&bytes, None, 8000).unwrap();
    assert_length(&out, 1.5, 8000);
    assert_1k_tone(&out, 8000, 0.4);
}

#[test]
fn wav_8k_to_8k_16k_and_48k() {
    let bytes = wav_tone(1000.0, 1.0, 8000);
    for rate in [8000, 16000, 48000] {
        let out = decode_audio(&bytes, Some("wav"), rate).unwrap();
        assert_length(&out, 1.0, rate);
        assert_1k_tone(&out, rate, 0.4);
    }
}

#[test]
fn wav_sample_formats_and_odd_rates() {
    for (rate, channels, format) in [
        (22050, 1, WavFormat::I16),
        (11025, 2, WavFormat::I24),
        (48000, 2, WavFormat::F32),
        (16000, 1, WavFormat::F32),
        (44100, 1, WavFormat::I24),
        (32000, 1, WavFormat::I16),
    ] {
        let bytes = wav(&tone(1000.0, 0.7, rate, 0.3), rate, channels, format);
        for out_rate in [8000, 16000] {
            let out = decode_audio(&bytes, Some("wav"), out_rate)
                .unwrap_or_else(|e| panic!("{rate} {channels} {format:?}: {e}"));
            assert_length(&out, 0.7, out_rate);
            assert_1k_tone(&out, out_rate, 0.3);
        }
    }
}

#[test]
fn same_rate_i16_is_bit_exact() {
    let samples = tone(1000.0, 0.2, 8000, 0.4);
    let bytes = wav(&samples, 8000, 1, WavFormat::I16);
    let out = decode_audio(&bytes, Some("wav"), 8000).unwrap();
    let expected: Vec<i16> = samples.iter().map(|&s| (s * 32767.0) as i16).collect();
    assert_eq!(out, expected);
}

#[test]
fn mp3_8k_and_16k() {
    for rate in [8000, 16000] {
        let bytes = mp3_tone(1000.0, 2.0, rate);
        for out_rate in [8000, 16000, 48000] {
            let out = decode_audio(&bytes, Some("mp3"), out_rate).unwrap();
            // The LAME tag lets the decoder trim encoder delay and padding exactly.
            assert_length(&out, 2.0, out_rate);
            // Lossy: allow a wider level window, but the tone must dominate.
            let on = tone_level(&out, out_rate, 1000.0);
            let off = tone_level(&out, out_rate, 600.0);
            assert!(on > 0.25, "{rate}->{out_rate}: 1000 Hz level {on}");
            assert!(off < on / 30.0, "{rate}->{out_rate}: 600 Hz {off} vs {on}");
        }
    }
}

#[test]
fn mp3_without_lame_tag_keeps_delay_but_decodes() {
    let bytes = mp3_tone_untagged(1000.0, 2.0, 8000);
    let out = decode_audio(&bytes, Some("mp3"), 8000).unwrap();
    // Encoder delay and padding stay in: longer, never shorter, by a few 72 ms frames.
    assert!(out.len() >= 16000 - 160, "{}", out.len());
    assert!(out.len() <= 16000 + 8 * 576, "{}", out.len());
    assert!(tone_level(&out, 8000, 1000.0) > 0.25);
}

#[test]
fn mp3_is_found_without_a_hint_and_with_a_wrong_one() {
    let bytes = mp3_tone(1000.0, 1.0, 16000);
    for hint in [None, Some("wav"), Some("audio/wav"), Some("audio/mpeg")] {
        let out = decode_audio(&bytes, hint, 8000).unwrap_or_else(|e| panic!("{hint:?}: {e}"));
        assert!(tone_level(&out, 8000, 1000.0) > 0.25, "{hint:?}");
    }
    let wav_bytes = wav_tone(1000.0, 0.5, 16000);
    let out = decode_audio(&wav_bytes, Some("mp3"), 8000).unwrap();
    assert!(tone_level(&out, 8000, 1000.0) > 0.3);
}

#[test]
fn tone_near_nyquist_survives_downsampling() {
    let bytes = wav(&tone(3700.0, 1.0, 16000, 0.4), 16000, 1, WavFormat::I16);
    let out = decode_audio(&bytes, Some("wav"), 8000).unwrap();
    assert_length(&out, 1.0, 8000);
    let level = tone_level(&out, 8000, 3700.0);
    eprintln!("3.7 kHz after 16k->8k: {level:.4}");
    assert!(level > 0.4 * 0.7, "3.7 kHz level {level}");
}

#[test]
fn tone_above_nyquist_is_filtered_not_aliased() {
    // 6 kHz at 16 kHz would fold to 2 kHz at 8 kHz without an anti-aliasing filter.
    let bytes = wav(&tone(6000.0, 1.0, 16000, 0.4), 16000, 1, WavFormat::I16);
    let out = decode_audio(&bytes, Some("wav"), 8000).unwrap();
    assert_length(&out, 1.0, 8000);
    let alias = tone_level(&out, 8000, 2000.0);
    // The tone's abrupt start and end splatter a little energy into the band (as any filter
    // would pass); judge the steady middle.
    let total = rms(&out[400..out.len() - 400]);
    eprintln!("6 kHz after 16k->8k: 2 kHz alias {alias:.6}, rms {total:.6}");
    // At least 60 dB below the 0.4 input.
    assert!(alias < 0.4e-3, "alias level {alias}");
    assert!(total < 0.4e-3, "rms {total}");
}

#[test]
fn too_long_audio_is_rejected() {
    // 31 minutes of 8 kHz silence: a 30 MB WAV, decoded only far enough to notice.
    let silence = vec![0.0; 31 * 60 * 8000];
    let bytes = wav(&silence, 8000, 1, WavFormat::I16);
    let err = decode_audio(&bytes, Some("wav"), 8000).unwrap_err();
    assert!(
        matches!(err, huddle_prompts::PromptError::TooLong { .. }),
        "{err}"
    );
}

#[test]
fn odd_source_rate_uses_the_sinc_path_and_still_filters() {
    // 12345 Hz : 8000 Hz reduces to 2469 : 1600, too large for the FFT resampler.
    let bytes = wav(&tone(1000.0, 1.0, 12345, 0.4), 12345, 1, WavFormat::I16);
    let out = decode_audio(&bytes, Some("wav"), 8000).unwrap();
    assert_length(&out, 1.0, 8000);
    assert_1k_tone(&out, 8000, 0.4);

    // 5 kHz at 12345 Hz would fold to 3 kHz at 8 kHz.
    let bytes = wav(&tone(5000.0, 1.0, 12345, 0.4), 12345, 1, WavFormat::I16);
    let out = decode_audio(&bytes, Some("wav"), 8000).unwrap();
    let alias = tone_level(&out, 8000, 3000.0);
    let total = rms(&out[400..out.len() - 400]);
    assert!(
        alias < 0.4e-3 && total < 0.4e-3,
        "alias {alias}, rms {total}"
    );
}
