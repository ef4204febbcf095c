//! Pure decoding: mp3/wav bytes to mono `i16` at the call's rate.

use std::io::Cursor;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::resample::StreamResampler;
use crate::PromptError;

/// Source sample rates accepted from a file header. Real files are 8–48 kHz (MP3 can only be
/// 8–48 kHz); anything far outside is a corrupt or hostile header, and absurd ratios would
/// make the resampler allocate huge filters.
const SOURCE_RATES: std::ops::RangeInclusive<u32> = 1000..=384_000;

/// Decodes a whole mp3 or wav file into mono 16-bit PCM at `rate` Hz.
///
/// The format is probed from the content; `hint` (a file extension such as `"mp3"`/`"wav"`,
/// or a MIME type such as `"audio/mpeg"`) only speeds the probe up. Channels are averaged
/// to mono and the result is resampled with rubato, anti-aliased when downsampling. A file
/// cut short yields the audio it holds; packets that fail to decode are skipped. Fails with
/// [`PromptError::Decode`] when nothing decodable is found and [`PromptError::TooLong`] past
/// [`crate::MAX_DURATION`]. Hostile bytes give an error, never a panic.
///
/// CPU-bound: call it from a blocking context (`tokio::task::spawn_blocking`).
pub fn decode_audio(bytes: &[u8], hint: Option<&str>, rate: u32) -> Result<Vec<i16>, PromptError> {
    crate::check_rate(rate)?;
    if bytes.is_empty() {
        return Err(fail("empty file"));
    }
    check_wav_header(bytes)?;
    // Last line of defence: symphonia has no unsafe code, so a panic on some input we did not
    // foresee unwinds cleanly and nothing of the decoder's state survives it.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(bytes, hint, rate)))
        .unwrap_or_else(|_| Err(fail("the decoder crashed on malformed data")))
}

/// Most channels a WAV may declare. symphonia supports no more than this many positioned
/// channels anyway, and checking first avoids an arithmetic overflow in its header parser
/// (`channels * bytes_per_sample` in `u16`, a panic in debug builds).
const MAX_WAV_CHANNELS: u16 = 32;

/// Rejects RIFF/WAVE files whose `fmt ` chunk declares an absurd channel count.
fn check_wav_header(bytes: &[u8]) -> Result<(), PromptError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Ok(());
    }
    let mut at = 12usize;
    // Bounded walk: a hostile file could chain many tiny chunks.
    for _ in 0..64 {
        let Some(header) = bytes.get(at..at + 8) else {
            break;
        };
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let data = at + 8;
        if &header[0..4] == b"fmt " {
            if let Some(channels) = bytes.get(data + 2..data + 4) {
                let channels = u16::from_le_bytes([channels[0], channels[1]]);
                if channels == 0 || channels > MAX_WAV_CHANNELS {
                    return Err(fail(format!("unsupported WAV channel count {channels}")));
                }
            }
            break;
        }
        // Chunks are padded to an even length.
        at = match data
            .checked_add(len)
            .and_then(|end| end.checked_add(len & 1))
        {
            Some(next) => next,
            None => break,
        };
    }
    Ok(())
}

fn decode(bytes: &[u8], hint: Option<&str>, rate: u32) -> Result<Vec<i16>, PromptError> {
    let mut probe_hint = Hint::new();
    match hint.map(str::trim) {
        Some(h) if h.contains('/') => {
            probe_hint.mime_type(&h.to_ascii_lowercase());
        }
        Some(h) if !h.is_empty() => {
            probe_hint.with_extension(&h.trim_start_matches('.').to_ascii_lowercase());
        }
        _ => {}
    }
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &probe_hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| fail(format!("not mp3 or wav audio ({e})")))?;

    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| fail("no audio track"))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| fail("no audio codec parameters"))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| fail(format!("unsupported codec ({e})")))?;

    let max_out =
        usize::try_from(crate::MAX_DURATION.as_secs() * u64::from(rate)).unwrap_or(usize::MAX);
    // Built on the first decoded buffer: MP3 headers only tell the rate once a frame decodes.
    let mut resampler: Option<(u32, StreamResampler)> = None;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut last_error: Option<String> = None;

    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A file cut short (or a WAV whose header overstates its size, as streaming
            // writers produce) ends at the last whole packet.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => {
                if resampler.is_some() {
                    // Garbage after good audio: keep the audio.
                    break;
                }
                return Err(fail(format!("unreadable container ({e})")));
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            // One corrupt frame should not lose the prompt; skip it like players do.
            Err(SymphoniaError::DecodeError(e)) => {
                last_error = Some(e.to_string());
                continue;
            }
            Err(SymphoniaError::IoError(e)) => {
                last_error = Some(e.to_string());
                continue;
            }
            Err(e) => return Err(fail(format!("decoder failed ({e})"))),
        };
        let frames = buffer.frames();
        let channels = buffer.spec().channels().count();
        let source_rate = buffer.spec().rate();
        if frames == 0 {
            continue;
        }
        if channels == 0 {
            return Err(fail("audio with zero channels"));
        }
        if !SOURCE_RATES.contains(&source_rate) {
            return Err(fail(format!("unsupported sample rate {source_rate} Hz")));
        }
        let (expected_rate, stream) = match &mut resampler {
            Some(r) => (r.0, &mut r.1),
            None => {
                let r = StreamResampler::new(source_rate, rate, max_out)?;
                let r = resampler.insert((source_rate, r));
                (r.0, &mut r.1)
            }
        };
        if source_rate != expected_rate {
            // A frame claiming another rate is corruption in a file that must have one rate.
            last_error = Some(format!(
                "frame at {source_rate} Hz in a {expected_rate} Hz stream"
            ));
            continue;
        }
        buffer.copy_to_vec_interleaved(&mut interleaved);
        downmix(&interleaved, channels, &mut mono);
        stream.push(&mono)?;
    }

    match resampler {
        Some((_, stream)) => stream.finish(),
        None => Err(fail(match last_error {
            Some(e) => format!("no decodable audio ({e})"),
            None => "no audio in the file".to_owned(),
        })),
    }
}

/// Averages interleaved frames of `channels` samples into `mono`. Float WAVs can hold any
/// value: non-finite samples count as silence and the rest are clipped to full scale, since
/// NaN or huge values would break the resampler's FFT (and would clip at the output anyway).
fn downmix(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) {
    mono.clear();
    let scale = 1.0 / channels as f32;
    mono.extend(interleaved.chunks_exact(channels).map(|frame| {
        frame
            .iter()
            .map(|&s| {
                if s.is_finite() {
                    s.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            })
            .sum::<f32>()
            * scale
    }));
}

fn fail(detail: impl Into<String>) -> PromptError {
    PromptError::Decode {
        what: "audio bytes".into(),
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages_and_drops_non_finite() {
        let mut mono = Vec::new();
        downmix(
            &[1.0, 0.0, 0.5, 0.5, f32::NAN, 1.0, 1e30, -1e30],
            2,
            &mut mono,
        );
        assert_eq!(mono, vec![0.5, 0.5, 0.5, 0.0]);
    }

    #[test]
    fn rejects_empty_and_bad_rate() {
        assert!(matches!(
            decode_audio(&[], None, 8000),
            Err(PromptError::Decode { .. })
        ));
        assert!(matches!(
            decode_audio(b"RIFF", None, 7),
            Err(PromptError::UnsupportedRate { rate: 7 })
        ));
    }
}
