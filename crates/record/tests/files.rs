//! Recorders write files a player reads back: the tone that went in comes out, the length is
//! the PCM that was pushed, a pause leaves a gap out, and a bad path is a clear failure.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use huddle_record::{Finished, Format, RecordError, Recorder};

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("huddle-record-{}", std::process::id()))
        .join(name)
}

fn tone(n: usize, freq: f64, start: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = (start + i) as f64 / 8000.0;
            (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// Records `frames` 20 ms frames of a 440 Hz tone, pausing for `paused` frames in between.
fn record(path: PathBuf, format: Format, frames: usize, paused: usize) -> Finished {
    let (tx, rx) = mpsc::channel();
    let mut recorder = Recorder::start(path, format, 8000, 160, move |r| {
        let _ = tx.send(r);
    })
    .expect("starts");
    for f in 0..frames {
        recorder.set_paused(f >= frames / 2 && f < frames / 2 + paused);
        recorder.push(&tone(160, 440.0, f * 160));
        // The writer keeps up with real time and then some; pace a little so the pool of
        // buffers is not what is being tested.
        if f % 50 == 49 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    drop(recorder);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("finished")
        .expect("no error")
}

fn goertzel_share(pcm: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let energy: f64 = pcm.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    power / (energy * pcm.len() as f64 / 2.0).max(1.0)
}

#[test]
fn a_wav_recording_holds_what_was_pushed_minus_the_pause() {
    let path = temp("a.wav");
    let done = record(path.clone(), Format::Wav, 200, 50);
    assert_eq!(done.samples, 150 * 160, "a paused frame is not written");
    assert_eq!(done.seconds(), 3);
    assert_eq!(done.dropped_frames, 0);
    let mut reader = hound::WavReader::open(&path).expect("a valid WAV");
    assert_eq!(reader.spec().sample_rate, 8000);
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
    assert_eq!(samples.len(), 150 * 160);
    assert!(goertzel_share(&samples[..8000], 440.0) > 0.5);
}

#[test]
fn an_mp3_recording_is_a_stream_of_mp3_frames() {
    let path = temp("b.mp3");
    let done = record(path.clone(), Format::Mp3, 150, 0);
    assert_eq!(done.samples, 150 * 160);
    let bytes = std::fs::read(&path).unwrap();
    // 3 s at 64 kb/s is about 24 kB; every MP3 frame starts with an 11-bit sync word.
    assert!(bytes.len() > 15_000, "{} bytes", bytes.len());
    let sync = bytes
        .windows(2)
        .position(|w| w[0] == 0xFF && w[1] & 0xE0 == 0xE0);
    assert!(
        sync.is_some_and(|i| i < 1024),
        "an MPEG audio frame near the start"
    );
}

#[test]
fn a_wav_is_readable_while_it_is_still_being_written() {
    let path = temp("live.wav");
    let (tx, _rx) = mpsc::channel();
    let mut recorder = Recorder::start(path.clone(), Format::Wav, 8000, 160, move |r| {
        let _ = tx.send(r);
    })
    .unwrap();
    for f in 0..120 {
        recorder.push(&tone(160, 440.0, f * 160));
    }
    // The header is rewritten every second: a crash now would leave at least a second.
    std::thread::sleep(Duration::from_millis(500));
    let reader = hound::WavReader::open(&path).expect("valid before the end");
    assert!(reader.len() >= 8000, "{} samples readable", reader.len());
    drop(recorder);
}

#[test]
fn an_unwritable_path_is_reported_as_a_failure() {
    let blocker = temp("not-a-dir");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"file").unwrap();
    let (tx, rx) = mpsc::channel();
    let mut recorder = Recorder::start(blocker.join("x.wav"), Format::Wav, 8000, 160, move |r| {
        let _ = tx.send(r);
    })
    .unwrap();
    recorder.push(&[0; 160]);
    drop(recorder);
    match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
        Err(RecordError::Io { path, .. }) => assert!(path.ends_with("x.wav")),
        other => panic!("expected an I/O failure, got {other:?}"),
    }
}
