//! Voice activity: quick start, a hangover before stop, no flapping between words.

use huddle_mixer::{VadConfig, VoiceActivity, VoiceEvent};

const FRAME: usize = 160; // 20 ms at 8 kHz

fn tone(freq: f64, amplitude: f64, start: usize) -> Vec<i16> {
    (start..start + FRAME)
        .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI * freq / 8000.0).sin() * amplitude) as i16)
        .collect()
}

/// Low-level noise, like a quiet line or comfort noise (≈ 60 RMS).
fn noise(seed: &mut u64) -> Vec<i16> {
    (0..FRAME)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed % 201) as i16 - 100
        })
        .collect()
}

#[test]
fn silence_and_line_noise_give_no_events() {
    let mut vad = VoiceActivity::new(VadConfig::default());
    let mut seed = 7;
    for _ in 0..500 {
        assert_eq!(vad.push(&[0; FRAME]), None);
        assert_eq!(vad.push(&noise(&mut seed)), None);
    }
    assert_eq!(vad.push(&[]), None);
    assert!(!vad.is_active());
}

#[test]
fn a_one_second_burst_starts_within_two_frames_and_stops_after_the_hangover() {
    let config = VadConfig::default();
    let mut vad = VoiceActivity::new(config);
    let mut seed = 11;
    for _ in 0..25 {
        assert_eq!(vad.push(&noise(&mut seed)), None);
    }
    let mut events = Vec::new();
    for frame in 0..50 {
        if let Some(e) = vad.push(&tone(440.0, 3000.0, frame * FRAME)) {
            events.push((frame, e));
        }
    }
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, VoiceEvent::Started);
    assert!(events[0].0 < 2, "started at frame {}", events[0].0);
    assert!(vad.is_active());
    let mut stopped = None;
    for frame in 1..=100u32 {
        match vad.push(&noise(&mut seed)) {
            Some(VoiceEvent::Stopped) => {
                stopped = Some(frame);
                break;
            }
            None => assert!(vad.is_active()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stopped, Some(config.hangover_frames));
    assert!(
        (300..=500).contains(&(config.hangover_frames * 20)),
        "hangover of 300–500 ms"
    );
    assert!(!vad.is_active());
}

#[test]
fn speech_like_bursts_with_100_ms_gaps_do_not_flap() {
    let mut vad = VoiceActivity::new(VadConfig::default());
    let mut seed = 3;
    let mut events = Vec::new();
    let mut t = 0usize;
    // Three seconds of syllables (120–300 ms, loudness rising and falling within each, pitch
    // wandering) separated by 100 ms pauses.
    for syllable in 0..10usize {
        let frames = 6 + (syllable * 7) % 10;
        for f in 0..frames {
            let envelope = (std::f64::consts::PI * (f as f64 + 0.5) / frames as f64).sin();
            let pitch = 120.0 + 40.0 * ((syllable + f) % 5) as f64;
            let pcm: Vec<i16> = tone(pitch, 2500.0 * envelope + 600.0, t * FRAME)
                .iter()
                .zip(tone(pitch * 3.1, 800.0, t * FRAME))
                .map(|(a, b)| a.saturating_add(b))
                .collect();
            events.extend(vad.push(&pcm));
            t += 1;
        }
        for _ in 0..5 {
            events.extend(vad.push(&noise(&mut seed)));
            t += 1;
        }
    }
    assert_eq!(events, [VoiceEvent::Started]);
    for _ in 0..50 {
        events.extend(vad.push(&noise(&mut seed)));
    }
    assert_eq!(events, [VoiceEvent::Started, VoiceEvent::Stopped]);
}

#[test]
fn reset_forgets_everything_without_an_event() {
    let mut vad = VoiceActivity::new(VadConfig::default());
    let speech = tone(300.0, 3000.0, 0);
    vad.push(&speech);
    assert_eq!(vad.push(&speech), Some(VoiceEvent::Started));
    vad.reset();
    assert!(!vad.is_active());
    // A half-started run is forgotten too: it takes the full start again.
    assert_eq!(vad.push(&speech), None);
    vad.reset();
    assert_eq!(vad.push(&speech), None);
    assert_eq!(vad.push(&speech), Some(VoiceEvent::Started));
}

#[test]
fn a_custom_config_is_honoured() {
    let mut vad = VoiceActivity::new(VadConfig {
        start_rms: 100.0,
        stop_rms: 50.0,
        start_frames: 1,
        hangover_frames: 1,
    });
    assert_eq!(vad.push(&[200; FRAME]), Some(VoiceEvent::Started));
    assert_eq!(
        vad.push(&[60; FRAME]),
        None,
        "between the thresholds: still speaking"
    );
    assert_eq!(vad.push(&[0; FRAME]), Some(VoiceEvent::Stopped));
}
