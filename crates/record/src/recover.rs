//! Finalizing a recording whose writer died with the process (`kill -9`, a power cut).
//!
//! The writer leaves a WAV whose header counts only what it had when it was last rewritten (up
//! to a second behind), possibly with half a sample at the end, and an MP3 whose last frame
//! may be cut. Both are repaired in place from what is actually on disk: the WAV's RIFF and
//! data sizes are set to the data present (a trailing partial sample cut off), an MP3 is cut
//! back to its last whole frame. The duration reported is the one of the data kept.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::{io_error, Finished, Format, RecordError};

/// Chunks walked before the data chunk at most: a WAV of ours has two, a damaged file could
/// chain many tiny ones.
const MAX_CHUNKS: usize = 64;

/// Repairs the recording at `path`, written in `format` by a writer that did not finish, and
/// reports what it holds. Idempotent: a file that is already whole is left as it is.
pub fn recover(path: &Path, format: Format) -> Result<Finished, RecordError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let (samples, rate) = match format {
        Format::Wav => recover_wav(&mut file),
        Format::Mp3 => recover_mp3(&mut file),
    }
    .map_err(|detail| io_error(path, detail))?;
    file.sync_all().map_err(|e| io_error(path, e))?;
    Ok(Finished {
        path: path.to_path_buf(),
        samples,
        rate,
        dropped_frames: 0,
    })
}

fn read_at(file: &mut File, at: u64, buf: &mut [u8]) -> Result<usize, String> {
    file.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).map_err(|e| e.to_string())? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn write_u32_at(file: &mut File, at: u64, value: u32) -> Result<(), String> {
    file.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
    file.write_all(&value.to_le_bytes())
        .map_err(|e| e.to_string())
}

/// Sets the RIFF and data sizes of a WAV to the data on disk; (samples, rate).
fn recover_wav(file: &mut File) -> Result<(u64, u32), String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut riff = [0u8; 12];
    if read_at(file, 0, &mut riff)? < 12 || &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err("not a WAV file (no RIFF/WAVE header)".into());
    }
    let mut at = 12u64;
    let mut format: Option<(u32, u16)> = None;
    for _ in 0..MAX_CHUNKS {
        let mut header = [0u8; 8];
        if read_at(file, at, &mut header)? < 8 {
            break;
        }
        let size = u64::from(u32::from_le_bytes([
            header[4], header[5], header[6], header[7],
        ]));
        let body = at + 8;
        match &header[0..4] {
            b"fmt " => {
                let mut fmt = [0u8; 16];
                if size < 16 || read_at(file, body, &mut fmt)? < 16 {
                    return Err("truncated fmt chunk".into());
                }
                let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
                let block_align = u16::from_le_bytes([fmt[12], fmt[13]]);
                if rate == 0 || block_align == 0 {
                    return Err(format!(
                        "unusable fmt chunk (rate {rate}, block align {block_align})"
                    ));
                }
                format = Some((rate, block_align));
            }
            b"data" => {
                let (rate, block_align) = format.ok_or("data chunk before the fmt chunk")?;
                // Everything after the data chunk's header is data (the writer appends nothing
                // else); the declared size is whatever the last header rewrite saw.
                let on_disk = len.saturating_sub(body);
                let max = u64::from(u32::MAX) - (body - 8);
                let kept = on_disk.min(max);
                let kept = kept - kept % u64::from(block_align);
                if body + kept < len {
                    file.set_len(body + kept).map_err(|e| e.to_string())?;
                }
                // Both fit in u32: `kept` is capped above.
                write_u32_at(file, at + 4, kept as u32)?;
                write_u32_at(file, 4, (body - 8 + kept) as u32)?;
                return Ok((kept / u64::from(block_align), rate));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body + size + (size & 1);
    }
    Err("no data chunk".into())
}

/// One MPEG audio layer III frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mp3Frame {
    /// Bytes, header included.
    len: u64,
    /// Samples per channel it decodes to.
    samples: u64,
    rate: u32,
    /// Where a Xing/Info tag would start, from the frame's first byte.
    tag_offset: u64,
}

/// Parses a layer III frame header; None for anything else (free format included, which LAME
/// never writes).
fn mp3_frame(h: [u8; 4]) -> Option<Mp3Frame> {
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: MPEG 2.5, 1: reserved, 2: MPEG 2, 3: MPEG 1
    let layer = (h[1] >> 1) & 3; // 1: layer III
    if version == 1 || layer != 1 {
        return None;
    }
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 3);
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let padding = u64::from((h[2] >> 1) & 1);
    let mono = h[3] >> 6 == 3;
    const MPEG1_KBPS: [u64; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const MPEG2_KBPS: [u64; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let (kbps, rate, samples, side_info) = match version {
        3 => (
            MPEG1_KBPS[bitrate_index],
            [44_100, 48_000, 32_000][rate_index],
            1152u64,
            if mono { 17 } else { 32 },
        ),
        2 => (
            MPEG2_KBPS[bitrate_index],
            [22_050, 24_000, 16_000][rate_index],
            576,
            if mono { 9 } else { 17 },
        ),
        _ => (
            MPEG2_KBPS[bitrate_index],
            [11_025, 12_000, 8_000][rate_index],
            576,
            if mono { 9 } else { 17 },
        ),
    };
    // bytes = samples / 8 × bitrate / rate (+ one padding byte).
    let len = samples / 8 * kbps * 1000 / u64::from(rate) + padding;
    Some(Mp3Frame {
        len,
        samples,
        rate,
        tag_offset: 4 + side_info,
    })
}

/// Cuts an MP3 back to its last whole frame; (samples, rate).
fn recover_mp3(file: &mut File) -> Result<(u64, u32), String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut at = 0u64;
    // An ID3v2 tag in front (LAME does not write one, another tool might have).
    let mut id3 = [0u8; 10];
    if read_at(file, 0, &mut id3)? == 10 && &id3[0..3] == b"ID3" {
        let size = id3[6..10]
            .iter()
            .fold(0u64, |acc, b| (acc << 7) | u64::from(b & 0x7F));
        at = 10 + size;
    }
    let mut samples = 0u64;
    let mut stream_rate: Option<u32> = None;
    let mut first = true;
    loop {
        let mut header = [0u8; 4];
        if read_at(file, at, &mut header)? < 4 {
            break;
        }
        let Some(frame) = mp3_frame(header) else {
            break;
        };
        // One rate per file: a "frame" at another is garbage that happens to look like one.
        if stream_rate.is_some_and(|r| r != frame.rate) || at + frame.len > len {
            break;
        }
        stream_rate = Some(frame.rate);
        // The encoder's Xing/Info frame carries no audio for players.
        let mut tag = [0u8; 4];
        let is_tag = first
            && read_at(file, at + frame.tag_offset, &mut tag)? == 4
            && (&tag == b"Xing" || &tag == b"Info");
        if !is_tag {
            samples += frame.samples;
        }
        first = false;
        at += frame.len;
    }
    let rate = stream_rate.ok_or("no MP3 frame")?;
    if at < len {
        file.set_len(at).map_err(|e| e.to_string())?;
    }
    Ok((samples, rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Recorder;
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::Duration;

    const RATE: u32 = 8000;
    const FRAME: usize = 160;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "huddle-record-recover-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// A 440 Hz tone of `frames` 20 ms frames recorded through the real writer.
    fn record(path: &Path, format: Format, frames: usize) -> Finished {
        let (done, finished) = mpsc::channel();
        let mut recorder = Recorder::start(path.to_path_buf(), format, RATE, FRAME, move |r| {
            let _ = done.send(r);
        })
        .unwrap();
        let mut n = 0u64;
        for _ in 0..frames {
            let pcm: Vec<i16> = (0..FRAME)
                .map(|_| {
                    n += 1;
                    let t = n as f64 / f64::from(RATE);
                    (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
                })
                .collect();
            recorder.push(&pcm);
            // The pool holds two seconds: let the writer keep up.
            std::thread::sleep(Duration::from_micros(200));
        }
        drop(recorder);
        finished
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap()
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn wav_samples(path: &Path) -> Vec<i16> {
        hound::WavReader::open(path)
            .expect("a readable WAV")
            .samples::<i16>()
            .collect::<Result<_, _>>()
            .expect("every sample readable")
    }

    #[test]
    fn a_wav_whose_header_lags_its_data_gets_the_sizes_of_the_data_on_disk() {
        let path = temp("lagging.wav");
        let finished = record(&path, Format::Wav, 100);
        let whole = wav_samples(&path);
        assert_eq!(whole.len() as u64, finished.samples);
        // What a writer killed a moment after a header rewrite leaves: the header counts one
        // second less than the data, and half a sample dangles at the end.
        let mut bytes = std::fs::read(&path).unwrap();
        let data_len = u32_at(&bytes, 40);
        bytes[40..44].copy_from_slice(&(data_len - 16_000).to_le_bytes());
        let riff_len = u32_at(&bytes, 4);
        bytes[4..8].copy_from_slice(&(riff_len - 16_000).to_le_bytes());
        bytes.push(0x7F);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(wav_samples(&path).len(), whole.len() - 8000, "the lag");

        let recovered = recover(&path, Format::Wav).unwrap();
        assert_eq!(recovered.samples, finished.samples);
        assert_eq!(recovered.rate, RATE);
        assert_eq!(recovered.seconds(), 2);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() % 2, 0, "the half sample is cut");
        assert_eq!(u32_at(&bytes, 4) as usize, bytes.len() - 8, "RIFF size");
        assert_eq!(u32_at(&bytes, 40) as usize, bytes.len() - 44, "data size");
        assert_eq!(wav_samples(&path), whole, "every sample back, in order");
        // Once more changes nothing.
        assert_eq!(recover(&path, Format::Wav).unwrap(), recovered);
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn a_wav_whose_header_claims_more_than_was_written_is_cut_to_its_data() {
        let path = temp("short.wav");
        let finished = record(&path, Format::Wav, 50);
        let bytes = std::fs::read(&path).unwrap();
        // The process died mid-write: the header (rewritten earlier) is fine, the tail never
        // reached the disk.
        std::fs::write(&path, &bytes[..bytes.len() - 1001]).unwrap();
        let recovered = recover(&path, Format::Wav).unwrap();
        assert_eq!(recovered.samples, finished.samples - 501);
        assert_eq!(wav_samples(&path).len() as u64, recovered.samples);
    }

    #[test]
    fn a_four_channel_wav_counts_frames_and_is_cut_back_to_whole_frames() {
        let path = temp("roles.wav");
        let (done, finished) = mpsc::channel();
        let mut recorder =
            Recorder::start_channels(path.clone(), Format::Wav, RATE, 4, FRAME, move |r| {
                let _ = done.send(r);
            })
            .unwrap();
        // Channel c holds the value c + 1 throughout: 50 frames, one second.
        let frame: Vec<i16> = (0..FRAME * 4).map(|i| (i % 4) as i16 + 1).collect();
        for _ in 0..50 {
            recorder.push(&frame);
            std::thread::sleep(Duration::from_micros(200));
        }
        drop(recorder);
        let finished = finished
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(finished.samples, 8000, "samples per channel");
        assert_eq!(finished.seconds(), 1);
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().channels, 4);
        // Killed in the middle of a frame: 3 of its 4 samples reached the disk.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let recovered = recover(&path, Format::Wav).unwrap();
        assert_eq!(recovered.samples, 7999);
        let samples = wav_samples(&path);
        assert_eq!(samples.len(), 7999 * 4);
        assert!(
            samples.chunks(4).all(|f| f == [1, 2, 3, 4]),
            "channels stay in place"
        );
    }

    #[test]
    fn a_two_channel_mp3_is_stereo_and_counts_samples_per_channel() {
        let path = temp("around.mp3");
        let (done, finished) = mpsc::channel();
        let mut recorder =
            Recorder::start_channels(path.clone(), Format::Mp3, RATE, 2, FRAME, move |r| {
                let _ = done.send(r);
            })
            .unwrap();
        let mut n = 0u64;
        for _ in 0..100 {
            // A tone on the left, silence on the right.
            let frame: Vec<i16> = (0..FRAME * 2)
                .map(|i| {
                    if i % 2 == 1 {
                        return 0;
                    }
                    n += 1;
                    let t = n as f64 / f64::from(RATE);
                    (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
                })
                .collect();
            recorder.push(&frame);
            std::thread::sleep(Duration::from_micros(200));
        }
        drop(recorder);
        let finished = finished
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(finished.samples, 16_000, "samples per channel");
        let bytes = std::fs::read(&path).unwrap();
        assert_ne!(bytes[3] >> 6, 3, "not a mono frame");
        let recovered = recover(&path, Format::Mp3).unwrap();
        let seconds = recovered.samples as f64 / f64::from(RATE);
        assert!((1.8..=2.3).contains(&seconds), "{seconds} s");
        let (decoded, failed) = decode_mp3(&path);
        assert_eq!(failed, 0);
        assert!(decoded.abs_diff(recovered.samples) <= 576);
    }

    #[test]
    fn channel_counts_a_format_cannot_hold_are_refused() {
        for (format, channels) in [(Format::Mp3, 4), (Format::Wav, 0), (Format::Wav, 9)] {
            let started =
                Recorder::start_channels(temp("refused"), format, RATE, channels, FRAME, |_| {});
            assert!(
                matches!(started, Err(crate::RecordError::Channels { .. })),
                "{format:?} {channels}"
            );
        }
    }

    #[test]
    fn a_wav_with_a_header_and_no_data_is_an_empty_recording() {
        let path = temp("empty.wav");
        record(&path, Format::Wav, 0);
        let recovered = recover(&path, Format::Wav).unwrap();
        assert_eq!(recovered.samples, 0);
        assert!(wav_samples(&path).is_empty());
    }

    #[test]
    fn files_that_are_not_recordings_are_refused_untouched() {
        let path = temp("garbage.wav");
        let cases: [&[u8]; 4] = [
            b"",
            b"RIFF",
            b"RIFF\0\0\0\0WAVEdata\0\0\0\0abcd",
            &[0xFF; 700],
        ];
        for bytes in cases {
            std::fs::write(&path, bytes).unwrap();
            assert!(recover(&path, Format::Wav).is_err(), "{bytes:?}");
            assert!(recover(&path, Format::Mp3).is_err(), "{bytes:?}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
        }
        assert!(recover(&temp("missing.wav"), Format::Wav).is_err());
    }

    /// Decodes an MP3 with symphonia (not our parser): (samples, packets that failed).
    fn decode_mp3(path: &Path) -> (u64, usize) {
        use symphonia::core::codecs::audio::AudioDecoderOptions;
        use symphonia::core::formats::probe::Hint;
        use symphonia::core::formats::{FormatOptions, TrackType};
        use symphonia::core::io::MediaSourceStream;
        use symphonia::core::meta::MetadataOptions;
        let bytes = std::fs::read(path).unwrap();
        let source =
            MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
        let mut hint = Hint::new();
        hint.with_extension("mp3");
        let mut format = symphonia::default::get_probe()
            .probe(
                &hint,
                source,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .expect("an MP3 stream");
        let track = format.default_track(TrackType::Audio).expect("audio");
        let params = track.codec_params.as_ref().and_then(|p| p.audio()).unwrap();
        let mut decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .unwrap();
        let (mut samples, mut failed) = (0u64, 0usize);
        while let Ok(Some(packet)) = format.next_packet() {
            match decoder.decode(&packet) {
                Ok(buffer) => samples += buffer.frames() as u64,
                Err(_) => failed += 1,
            }
        }
        (samples, failed)
    }

    #[test]
    fn an_mp3_cut_inside_its_last_frame_loses_that_frame_only() {
        let path = temp("cut.mp3");
        record(&path, Format::Mp3, 100);
        let whole = std::fs::read(&path).unwrap();
        let frame = mp3_frame(whole[0..4].try_into().unwrap()).expect("LAME's first frame");
        assert_eq!((frame.rate, frame.samples), (RATE, 576));
        let cut_at = whole.len() - frame.len as usize / 2;
        std::fs::write(&path, &whole[..cut_at]).unwrap();

        let recovered = recover(&path, Format::Mp3).unwrap();
        let kept = std::fs::read(&path).unwrap();
        assert!(kept.len() < cut_at, "the cut frame is gone");
        assert_eq!(kept[..], whole[..kept.len()], "nothing else changed");
        assert!(cut_at - kept.len() <= frame.len as usize + 1);
        assert_eq!(recovered.rate, RATE);
        // Two seconds of tone, give or take the encoder's delay and the lost frame.
        let seconds = recovered.samples as f64 / f64::from(RATE);
        assert!((1.8..=2.3).contains(&seconds), "{seconds} s");
        let (decoded, failed) = decode_mp3(&path);
        assert_eq!(failed, 0, "every frame left decodes");
        assert!(
            decoded.abs_diff(recovered.samples) <= 576,
            "decoded {decoded}, counted {}",
            recovered.samples
        );
        // An intact file is left as it is.
        let again = recover(&path, Format::Mp3).unwrap();
        assert_eq!(again, recovered);
        assert_eq!(std::fs::read(&path).unwrap(), kept);
    }

    #[test]
    fn frame_headers_are_read_by_the_standard_tables() {
        // MPEG 1 layer III, 128 kb/s, 44.1 kHz, no padding: 417 bytes of 1152 samples.
        let f = mp3_frame([0xFF, 0xFB, 0x90, 0x00]).unwrap();
        assert_eq!((f.len, f.samples, f.rate), (417, 1152, 44_100));
        // With the padding bit: one more byte.
        assert_eq!(mp3_frame([0xFF, 0xFB, 0x92, 0x00]).unwrap().len, 418);
        // MPEG 2.5, 64 kb/s, 8 kHz, mono: 576 bytes of 576 samples.
        let f = mp3_frame([0xFF, 0xE3, 0x88, 0xC0]).unwrap();
        assert_eq!(
            (f.len, f.samples, f.rate, f.tag_offset),
            (576, 576, 8000, 13)
        );
        // Free format, a bad bitrate, a reserved rate, layer I, no sync: not frames.
        for h in [
            [0xFF, 0xFB, 0x00, 0x00],
            [0xFF, 0xFB, 0xF0, 0x00],
            [0xFF, 0xFB, 0x9C, 0x00],
            [0xFF, 0xFF, 0x90, 0x00],
            [0x00, 0xFB, 0x90, 0x00],
        ] {
            assert_eq!(mp3_frame(h), None, "{h:02X?}");
        }
    }
}
