//! The mixer against a naive reference and against tones, and design.md's table cell by cell.

use huddle_mixer::{
    soft_limit, HearingTable, ListenerClass, Mixer, SpeakerClass, VadConfig, VoiceActivity,
    VoiceEvent, LISTENER_CLASSES, SPEAKER_CLASSES,
};

use ListenerClass as L;
use SpeakerClass as S;

#[test]
fn the_default_table_is_design_md() {
    // Rows: listener; columns: Customer, Agent, AiAgent, Supervisor (coach off), Coach.
    let expected = [
        (L::Customer, [true, true, true, true, false]),
        (L::Agent, [true, true, true, true, true]),
        (L::Supervisor, [true, true, true, true, true]),
        (L::AiAgent, [true, true, true, true, false]),
        (L::Recording, [true, true, true, true, false]),
        (L::RecordingWithCoach, [true, true, true, true, true]),
    ];
    let table = HearingTable::default();
    for (listener, row) in expected {
        for (speaker, heard) in SPEAKER_CLASSES.iter().zip(row) {
            assert_eq!(
                table.hears(listener, *speaker),
                heard,
                "{listener:?} hears {speaker:?}"
            );
        }
    }
}

/// xorshift: deterministic frames without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn frame(&mut self, n: usize, loud: bool) -> Vec<i16> {
        let span: u64 = if loud { 65_536 } else { 8_000 };
        (0..n)
            .map(|_| (self.next() % span) as i64 as i16)
            .map(|s| if loud { s } else { s - 4000 })
            .collect()
    }
}

fn reference(
    table: &HearingTable,
    speakers: &[(S, Vec<i16>)],
    listener: L,
    me: Option<usize>,
    n: usize,
) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let sum: i32 = speakers
                .iter()
                .enumerate()
                .filter(|(j, (class, _))| Some(*j) != me && table.hears(listener, *class))
                .map(|(_, (_, pcm))| i32::from(pcm[i]))
                .sum();
            soft_limit(sum)
        })
        .collect()
}

fn listener_of(speaker: S) -> L {
    match speaker {
        S::Customer => L::Customer,
        S::Agent => L::Agent,
        S::AiAgent => L::AiAgent,
        S::Supervisor | S::Coach => L::Supervisor,
    }
}

#[test]
fn mix_minus_equals_the_naive_sum_for_every_size_and_class_mix() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let table = HearingTable::default();
    for n_frame in [160usize, 320, 960] {
        let mut mixer = Mixer::new(n_frame, table);
        for participants in 1..=12 {
            for round in 0..20 {
                let speakers: Vec<(S, Vec<i16>)> = (0..participants)
                    .map(|_| {
                        let class = SPEAKER_CLASSES[(rng.next() % 5) as usize];
                        (class, rng.frame(n_frame, round % 4 == 0))
                    })
                    .collect();
                mixer.begin();
                for (class, pcm) in &speakers {
                    mixer.add(*class, pcm);
                }
                mixer.finish();
                let mut out = vec![0i16; n_frame];
                for (me, (class, pcm)) in speakers.iter().enumerate() {
                    let listener = listener_of(*class);
                    mixer.mix_for(listener, Some((*class, pcm)), &[], &mut out);
                    assert_eq!(
                        out,
                        reference(&table, &speakers, listener, Some(me), n_frame)
                    );
                }
                // Recordings and non-contributing listeners (muted, held) hear everyone allowed.
                for listener in LISTENER_CLASSES {
                    mixer.mix_for(listener, None, &[], &mut out);
                    assert_eq!(out, reference(&table, &speakers, listener, None, n_frame));
                }
            }
        }
    }
}

fn goertzel_share(pcm: &[i16], freq: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s0 = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - k * s1 * s2;
    let energy: f64 = pcm.iter().map(|&x| f64::from(x).powi(2)).sum();
    if energy == 0.0 {
        0.0
    } else {
        power / (energy * pcm.len() as f64 / 2.0)
    }
}

fn tone(freq: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI * freq / 8000.0).sin() * 3000.0) as i16)
        .collect()
}

#[test]
fn tones_reach_exactly_the_listeners_the_table_allows() {
    let n = 1600; // 200 ms frames give the detector a sharp bin; the mixer does not care.
    let parts = [
        (S::Customer, 400.0),
        (S::Agent, 700.0),
        (S::Coach, 1100.0),
        (S::Supervisor, 1500.0),
        (S::AiAgent, 1900.0),
    ];
    let mut mixer = Mixer::new(n.min(huddle_mixer::MAX_FRAME), HearingTable::default());
    let n = mixer.frame_len();
    let frames: Vec<Vec<i16>> = parts.iter().map(|(_, f)| tone(*f, n)).collect();
    mixer.begin();
    for ((class, _), pcm) in parts.iter().zip(&frames) {
        mixer.add(*class, pcm);
    }
    mixer.finish();
    let mut out = vec![0i16; n];
    let heard = |out: &[i16], f: f64| goertzel_share(out, f) > 0.05;
    // The customer: not itself, not the coach.
    mixer.mix_for(L::Customer, Some((S::Customer, &frames[0])), &[], &mut out);
    assert!(!heard(&out, 400.0) && !heard(&out, 1100.0));
    assert!(heard(&out, 700.0) && heard(&out, 1500.0) && heard(&out, 1900.0));
    // The agent: everyone else, coach included.
    mixer.mix_for(L::Agent, Some((S::Agent, &frames[1])), &[], &mut out);
    assert!(!heard(&out, 700.0));
    for f in [400.0, 1100.0, 1500.0, 1900.0] {
        assert!(heard(&out, f), "agent hears {f}");
    }
    // The AI agent: not the coach.
    mixer.mix_for(L::AiAgent, Some((S::AiAgent, &frames[4])), &[], &mut out);
    assert!(!heard(&out, 1100.0) && !heard(&out, 1900.0) && heard(&out, 400.0));
    // Recordings.
    mixer.mix_for(L::Recording, None, &[], &mut out);
    assert!(!heard(&out, 1100.0) && heard(&out, 400.0));
    mixer.mix_for(L::RecordingWithCoach, None, &[], &mut out);
    assert!(heard(&out, 1100.0));
}

#[test]
fn a_table_row_changes_behaviour_without_code() {
    let mut table = HearingTable::default();
    table.set(L::Customer, S::Coach, true); // barge-in for everyone
    let mut mixer = Mixer::new(160, table);
    let coach = vec![1000i16; 160];
    mixer.begin();
    mixer.add(S::Coach, &coach);
    mixer.finish();
    let mut out = vec![0i16; 160];
    mixer.mix_for(L::Customer, None, &[], &mut out);
    assert_eq!(out, coach);
    mixer.set_table(HearingTable::silent());
    mixer.finish();
    mixer.mix_for(L::Customer, None, &[], &mut out);
    assert!(out.iter().all(|s| *s == 0));
}

#[test]
fn extras_are_added_and_loud_sums_never_wrap() {
    let mut mixer = Mixer::new(160, HearingTable::default());
    let full = vec![i16::MAX; 160];
    mixer.begin();
    for _ in 0..10 {
        mixer.add(S::Customer, &full);
    }
    mixer.finish();
    let mut out = vec![0i16; 160];
    mixer.mix_for(L::Agent, None, &[], &mut out);
    assert!(out.iter().all(|s| *s > 32_000), "positive stays positive");
    let beep = vec![500i16; 160];
    mixer.begin();
    mixer.finish();
    mixer.mix_for(L::Agent, None, &[&beep], &mut out);
    assert_eq!(out, beep);
}

#[test]
fn odd_lengths_never_panic() {
    let mut mixer = Mixer::new(5000, HearingTable::default());
    assert_eq!(mixer.frame_len(), huddle_mixer::MAX_FRAME);
    mixer.begin();
    mixer.add(S::Agent, &[1, 2, 3]);
    mixer.add(S::Agent, &vec![7i16; 4000]);
    mixer.finish();
    let mut short = [0i16; 10];
    mixer.mix_for(
        L::Customer,
        Some((S::Customer, &[1])),
        &[&[1, 2]],
        &mut short,
    );
    let mut long = vec![0i16; 2000];
    mixer.mix_for(L::Customer, Some((S::Customer, &[])), &[], &mut long);
    assert_eq!(long[0], 8);
    let mut empty: [i16; 0] = [];
    mixer.mix_for(L::Agent, None, &[], &mut empty);
}

#[test]
fn voice_activity_starts_quickly_and_stops_after_the_hangover() {
    let mut vad = VoiceActivity::new(VadConfig::default());
    let silence = vec![0i16; 160];
    let speech = tone(300.0, 160).iter().map(|s| s * 3).collect::<Vec<i16>>();
    for _ in 0..50 {
        assert_eq!(vad.push(&silence), None);
    }
    assert_eq!(vad.push(&speech), None);
    assert_eq!(vad.push(&speech), Some(VoiceEvent::Started));
    assert!(vad.is_active());
    // Word gaps of 100 ms do not stop it.
    for _ in 0..5 {
        for _ in 0..5 {
            assert_eq!(vad.push(&silence), None);
        }
        assert_eq!(vad.push(&speech), None);
    }
    let stopped_after = (1..=100).find(|_| vad.push(&silence) == Some(VoiceEvent::Stopped));
    assert_eq!(stopped_after, Some(VadConfig::default().hangover_frames));
    vad.push(&speech);
    vad.reset();
    assert!(!vad.is_active());
    assert_eq!(
        vad.push(&speech),
        None,
        "reset forgets the half-started run"
    );
}
