//! Hostile input: decoding must fail cleanly, never panic.
//!
//! `decode_audio` catches panics from the decoder as a last line of defence, so these tests
//! count panics with a hook instead: any panic inside the decoder, caught or not, fails them.

mod common;

use std::cell::Cell;
use std::sync::Once;

use common::*;
use huddle_prompts::{decode_audio, PromptError};

thread_local! {
    /// Panics seen on this test's thread (each test runs on its own thread).
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Installs (once) a hook that counts panics per thread and still prints them.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            default(info);
        }));
    });
}

fn panics() -> usize {
    PANICS.with(Cell::get)
}

/// Deterministic xorshift64* so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn assert_decode_error(bytes: &[u8], hint: Option<&str>, what: &str) {
    match decode_audio(bytes, hint, 8000) {
        Err(PromptError::Decode { .. }) => {}
        other => panic!("{what}: expected a decode error, got {other:?}"),
    }
}

#[test]
fn empty_and_tiny_inputs_fail() {
    assert_decode_error(&[], None, "empty");
    assert_decode_error(&[], Some("mp3"), "empty mp3");
    assert_decode_error(b"RIFF", Some("wav"), "RIFF only");
    assert_decode_error(&[0xFF, 0xFB], Some("mp3"), "mp3 sync only");
    assert_decode_error(b"ID3", Some("mp3"), "ID3 only");
}

#[test]
fn html_and_text_fail() {
    let html = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head>\
                 <body><h1>Not Found</h1><p>The requested URL was not found.</p></body></html>";
    assert_decode_error(html, Some("mp3"), "html as mp3");
    assert_decode_error(html, Some("text/html"), "html");
    assert_decode_error(b"{\"error\": \"no such file\"}", None, "json");
}

#[test]
fn random_bytes_fail() {
    count_panics();
    let mut rng = Rng(0x1234_5678_9ABC_DEF0);
    for i in 0..300 {
        let n = 1 + rng.below(8192);
        let bytes = rng.bytes(n);
        for hint in [None, Some("mp3"), Some("wav")] {
            match decode_audio(&bytes, hint, 8000) {
                Err(_) => {}
                // A random buffer can hold a valid MP3 frame header by chance; what it decodes
                // to is noise, but it must at least be bounded.
                Ok(out) => assert!(out.len() < 8000 * 10, "random buffer {i}: {}", out.len()),
            }
        }
        assert_eq!(panics(), 0, "random buffer {i} panicked inside the decoder");
    }
}

#[test]
fn truncated_wav_header_fails() {
    let wav = wav_tone(1000.0, 0.5, 16000);
    for cut in [1, 4, 8, 12, 16, 20, 24, 30, 36, 40, 43] {
        assert_decode_error(&wav[..cut], Some("wav"), &format!("wav cut at {cut}"));
    }
}

#[test]
fn truncated_mp3_fails() {
    let mp3 = mp3_tone(1000.0, 0.5, 8000);
    for cut in [1, 2, 3, 4, 10, 100, 200, 300] {
        assert_decode_error(&mp3[..cut], Some("mp3"), &format!("mp3 cut at {cut}"));
    }
}

#[test]
fn file_cut_mid_stream_keeps_what_it_holds() {
    let wav = wav_tone(1000.0, 1.0, 8000);
    let out = decode_audio(&wav[..44 + 8000], Some("wav"), 8000).unwrap();
    assert_eq!(out.len(), 4000);
    let mp3 = mp3_tone(1000.0, 2.0, 8000);
    let out = decode_audio(&mp3[..mp3.len() / 2], Some("mp3"), 8000).unwrap();
    assert!(out.len() > 4000 && out.len() < 12000, "{}", out.len());
}

/// Overwrites the little-endian field at `offset` with `value`.
fn patch(bytes: &[u8], offset: usize, value: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[offset..offset + value.len()].copy_from_slice(value);
    out
}

#[test]
fn absurd_wav_header_fields_fail_or_stay_bounded() {
    count_panics();
    let wav = wav_tone(1000.0, 0.2, 8000);
    let max32 = u32::MAX.to_le_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("riff size max", patch(&wav, 4, &max32)),
        ("fmt size max", patch(&wav, 16, &max32)),
        ("fmt size 0", patch(&wav, 16, &0u32.to_le_bytes())),
        ("channels 0", patch(&wav, 22, &0u16.to_le_bytes())),
        ("channels max", patch(&wav, 22, &u16::MAX.to_le_bytes())),
        ("rate 0", patch(&wav, 24, &0u32.to_le_bytes())),
        ("rate 1", patch(&wav, 24, &1u32.to_le_bytes())),
        ("rate max", patch(&wav, 24, &max32)),
        ("byte rate max", patch(&wav, 28, &max32)),
        ("block align 0", patch(&wav, 32, &0u16.to_le_bytes())),
        ("block align max", patch(&wav, 32, &u16::MAX.to_le_bytes())),
        ("bits 0", patch(&wav, 34, &0u16.to_le_bytes())),
        ("bits 7", patch(&wav, 34, &7u16.to_le_bytes())),
        ("bits 64", patch(&wav, 34, &64u16.to_le_bytes())),
        ("bits max", patch(&wav, 34, &u16::MAX.to_le_bytes())),
        ("format tag 0", patch(&wav, 20, &0u16.to_le_bytes())),
        (
            "format tag extensible",
            patch(&wav, 20, &0xFFFEu16.to_le_bytes()),
        ),
        ("data size max", patch(&wav, 40, &max32)),
        ("data size 0", patch(&wav, 40, &0u32.to_le_bytes())),
    ];
    for (what, bytes) in cases {
        match decode_audio(&bytes, Some("wav"), 8000) {
            Err(e) => eprintln!("{what}: {e}"),
            // Some fields are redundant (sizes overstated, byte rate): the audio still plays,
            // and is never longer than what the file holds.
            Ok(out) => {
                eprintln!("{what}: ok, {} samples", out.len());
                assert!(out.len() <= 1600 * 2, "{what}: {} samples", out.len());
            }
        }
        assert_eq!(panics(), 0, "{what} panicked inside the decoder");
    }
}

/// Applies one random mutation.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if out.is_empty() {
            out.push(rng.next() as u8);
        }
        let at = rng.below(out.len());
        match rng.below(8) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = rng.next() as u8,
            2 => {
                // Extreme 16/32-bit values, where header fields live in the first bytes.
                let at = rng.below(out.len().min(64));
                let value: [u8; 4] = match rng.below(4) {
                    0 => [0; 4],
                    1 => [0xFF; 4],
                    2 => [0xFF, 0xFF, 0xFF, 0x7F],
                    _ => [0, 0, 0, 0x80],
                };
                let end = (at + 4).min(out.len());
                out[at..end].copy_from_slice(&value[..end - at]);
            }
            3 => out.truncate(at),
            4 => {
                let len = rng.below(64).min(out.len() - at);
                out.drain(at..at + len);
            }
            5 => {
                let n = rng.below(64);
                let junk = rng.bytes(n);
                out.splice(at..at, junk);
            }
            6 => {
                // Duplicate a span: repeated headers and frames.
                let len = rng.below(256).min(out.len() - at);
                let span = out[at..at + len].to_vec();
                let to = rng.below(out.len());
                out.splice(to..to, span);
            }
            _ => {
                let len = rng.below(32).min(out.len() - at);
                for b in &mut out[at..at + len] {
                    *b = 0xFF;
                }
            }
        }
    }
    out
}

/// Runs `iterations` mutations (times `HUDDLE_FUZZ_SCALE` when set, for longer local runs).
fn fuzz(seed: u64, original: &[u8], hint: &str, iterations: usize) -> (usize, usize) {
    count_panics();
    let scale: usize = std::env::var("HUDDLE_FUZZ_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let iterations = iterations * scale;
    let mut rng = Rng(seed);
    let (mut ok, mut err) = (0, 0);
    for i in 0..iterations {
        let bytes = mutate(&mut rng, original);
        let rate = [8000, 16000, 48000][i % 3];
        let hint = if i % 5 == 0 { None } else { Some(hint) };
        match decode_audio(&bytes, hint, rate) {
            Ok(out) => {
                // Bounded: mutations cannot make a 0.3 s file decode to minutes.
                assert!(
                    out.len() <= rate as usize * 60,
                    "iteration {i}: {}",
                    out.len()
                );
                ok += 1;
            }
            Err(_) => err += 1,
        }
        assert_eq!(panics(), 0, "iteration {i} panicked inside the decoder");
    }
    (ok, err)
}

#[test]
fn mutated_wav_never_panics() {
    let wav = wav(&tone(1000.0, 0.1, 16000, 0.4), 16000, 2, WavFormat::I16);
    let (ok, err) = fuzz(0xDEAD_BEEF, &wav, "wav", 3000);
    eprintln!("wav mutations: {ok} decoded, {err} rejected");
    let float = wav_float();
    let (ok, err) = fuzz(0xFEED_F00D, &float, "wav", 1000);
    eprintln!("float wav mutations: {ok} decoded, {err} rejected");
}

fn wav_float() -> Vec<u8> {
    wav(&tone(1000.0, 0.05, 44100, 0.4), 44100, 1, WavFormat::F32)
}

#[test]
fn mutated_mp3_never_panics() {
    let mp3 = mp3_tone(1000.0, 0.3, 8000);
    let (ok, err) = fuzz(0xC0FF_EE00, &mp3, "mp3", 3000);
    eprintln!("mp3 mutations: {ok} decoded, {err} rejected");
    let mp3 = mp3_tone_untagged(1000.0, 0.2, 16000);
    let (ok, err) = fuzz(0xBADC_0DE5, &mp3, "mp3", 1000);
    eprintln!("untagged mp3 mutations: {ok} decoded, {err} rejected");
}
