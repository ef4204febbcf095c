//! The mixer against design.md's table cell by cell, against a naive O(n²) reference, and
//! against tones.

use huddle_mixer::{
    soft_limit, HearingTable, ListenerClass, Mixer, SpeakerClass, LISTENER_CLASSES, MAX_FRAME,
    SPEAKER_CLASSES,
};

use ListenerClass as L;
use SpeakerClass as S;

#[test]
fn the_default_table_is_design_md() {
    // design.md "Who hears whom", transposed: one row per listener.
    //                        Customer Agent AiAgent Supervisor Coach
    let expected = [
        (L::Customer, [true, true, true, true, false]),
        (L::Agent, [true, true, true, true, true]),
        (L::Supervisor, [true, true, true, true, true]),
        (L::AiAgent, [true, true, true, true, false]),
        (L::Recording, [true, true, true, true, false]),
        (L::RecordingWithCoach, [true, true, true, true, true]),
    ];
    let columns = [S::Customer, S::Agent, S::AiAgent, S::Supervisor, S::Coach];
    let table = HearingTable::default();
    for (listener, row) in expected {
        for (speaker, heard) in columns.into_iter().zip(row) {
            assert_eq!(
                table.hears(listener, speaker),
                heard,
                "{listener:?} hears {speaker:?}"
            );
        }
    }
    // Every cell was checked: 6 listener classes × 5 speaker classes.
    assert_eq!(expected.len(), LISTENER_CLASSES.len());
    assert_eq!(columns.len(), SPEAKER_CLASSES.len());
}

#[test]
fn set_and_hears_round_trip_every_cell() {
    for listener in LISTENER_CLASSES {
        for speaker in SPEAKER_CLASSES {
            let mut table = HearingTable::silent();
            table.set(listener, speaker, true);
            for l in LISTENER_CLASSES {
                for s in SPEAKER_CLASSES {
                    assert_eq!(table.hears(l, s), l == listener && s == speaker);
                }
            }
            let mut table = HearingTable::default();
            let before = table;
            table.set(listener, speaker, !before.hears(listener, speaker));
            assert_ne!(table, before);
            table.set(listener, speaker, before.hears(listener, speaker));
            assert_eq!(table, before);
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
    /// Full-scale noise when `loud` (sums then hit the limiter), speech-level otherwise.
    fn frame(&mut self, n: usize, loud: bool) -> Vec<i16> {
        (0..n)
            .map(|_| {
                if loud {
                    self.next() as u16 as i16
                } else {
                    (self.next() % 8_000) as i16 - 4_000
                }
            })
            .collect()
    }
    fn table(&mut self) -> HearingTable {
        let mut table = HearingTable::silent();
        for l in LISTENER_CLASSES {
            for s in SPEAKER_CLASSES {
                table.set(l, s, self.next() & 1 == 0);
            }
        }
        table
    }
}

/// The definition: every other contributor the listener's class hears, summed, then limited.
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

/// The listener class a contributor of this speaker class has.
fn listener_of(speaker: S) -> L {
    match speaker {
        S::Customer => L::Customer,
        S::Agent => L::Agent,
        S::AiAgent => L::AiAgent,
        S::Supervisor | S::Coach => L::Supervisor,
    }
}

/// One tick: every contributor hears the room minus itself, and every listener class hears
/// the room as a non-contributor (muted or held participant, or a recording).
fn check_tick(mixer: &mut Mixer, table: &HearingTable, speakers: &[(S, Vec<i16>)]) {
    let n = mixer.frame_len();
    mixer.set_table(*table);
    mixer.begin();
    for (class, pcm) in speakers {
        mixer.add(*class, pcm);
    }
    mixer.finish();
    let mut out = vec![0i16; n];
    for (me, (class, pcm)) in speakers.iter().enumerate() {
        let listener = listener_of(*class);
        mixer.mix_for(listener, Some((*class, pcm)), &[], &mut out);
        assert_eq!(
            out,
            reference(table, speakers, listener, Some(me), n),
            "{class:?} #{me} of {speakers_classes:?}",
            speakers_classes = speakers.iter().map(|s| s.0).collect::<Vec<_>>()
        );
    }
    for listener in LISTENER_CLASSES {
        mixer.mix_for(listener, None, &[], &mut out);
        assert_eq!(out, reference(table, speakers, listener, None, n));
    }
}

#[test]
fn mix_minus_equals_the_naive_sum_for_every_class_combination_up_to_five() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let table = HearingTable::default();
    let mut mixer = Mixer::new(160, table);
    // Every assignment of the 5 speaker classes to 1..=5 participants: 3,905 rooms.
    for participants in 1..=5u32 {
        for code in 0..5usize.pow(participants) {
            let mut rest = code;
            let speakers: Vec<(S, Vec<i16>)> = (0..participants)
                .map(|_| {
                    let class = SPEAKER_CLASSES[rest % 5];
                    rest /= 5;
                    (class, rng.frame(160, code % 7 == 0))
                })
                .collect();
            check_tick(&mut mixer, &table, &speakers);
        }
    }
}

#[test]
fn mix_minus_equals_the_naive_sum_for_up_to_twelve_at_every_rate() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let table = HearingTable::default();
    for frame_len in [160usize, 320, 960] {
        let mut mixer = Mixer::new(frame_len, table);
        assert_eq!(mixer.frame_len(), frame_len);
        for participants in 1..=12 {
            for round in 0..10 {
                let speakers: Vec<(S, Vec<i16>)> = (0..participants)
                    .map(|_| {
                        let class = SPEAKER_CLASSES[(rng.next() % 5) as usize];
                        (class, rng.frame(frame_len, round % 4 == 0))
                    })
                    .collect();
                check_tick(&mut mixer, &table, &speakers);
            }
        }
    }
}

#[test]
fn mix_minus_equals_the_naive_sum_under_arbitrary_tables() {
    // Whatever the rows say (including a class that does not hear its own kind, where
    // nothing may be subtracted), the mixer agrees with the definition.
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let mut mixer = Mixer::new(160, HearingTable::default());
    for round in 0..2_000 {
        let table = rng.table();
        let participants = 1 + (rng.next() % 12) as usize;
        let speakers: Vec<(S, Vec<i16>)> = (0..participants)
            .map(|_| {
                let class = SPEAKER_CLASSES[(rng.next() % 5) as usize];
                (class, rng.frame(160, round % 5 == 0))
            })
            .collect();
        check_tick(&mut mixer, &table, &speakers);
    }
}

// ---- tones -------------------------------------------------------------------------------

const RATE: f64 = 8_000.0;
const CUSTOMER_HZ: f64 = 400.0;
const AGENT_HZ: f64 = 700.0;
const COACH_HZ: f64 = 1_100.0;
const SUPERVISOR_HZ: f64 = 1_500.0;
const AI_AGENT_HZ: f64 = 1_900.0;
const TONES: [f64; 5] = [CUSTOMER_HZ, AGENT_HZ, COACH_HZ, SUPERVISOR_HZ, AI_AGENT_HZ];

/// Goertzel: the share of the signal's energy at `freq` (≈ 1/k for k equal tones, ≈ 0 when
/// the tone is absent).
fn tone_share(pcm: &[i16], freq: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / RATE).cos();
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

fn heard_tones(pcm: &[i16]) -> Vec<f64> {
    TONES
        .into_iter()
        .filter(|f| tone_share(pcm, *f) > 0.05)
        .collect()
}

fn tone(freq: f64, start: usize, n: usize) -> Vec<i16> {
    (start..start + n)
        .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI * freq / RATE).sin() * 3000.0) as i16)
        .collect()
}

/// Who listens in the tone room: its class and, when it contributes, its speaker class and tone.
type Listener = (L, Option<(S, f64)>);

/// 200 ms of 20 ms ticks at 8 kHz with the five tone speakers; each listener's output,
/// concatenated.
fn tone_room(table: HearingTable, listeners: &[Listener]) -> Vec<Vec<i16>> {
    let speakers = [
        (S::Customer, CUSTOMER_HZ),
        (S::Agent, AGENT_HZ),
        (S::Coach, COACH_HZ),
        (S::Supervisor, SUPERVISOR_HZ),
        (S::AiAgent, AI_AGENT_HZ),
    ];
    let n = 160;
    let mut mixer = Mixer::new(n, table);
    let mut heard = vec![Vec::new(); listeners.len()];
    let mut out = vec![0i16; n];
    for tick in 0..10 {
        let frames: Vec<(S, f64, Vec<i16>)> = speakers
            .iter()
            .map(|(class, f)| (*class, *f, tone(*f, tick * n, n)))
            .collect();
        mixer.begin();
        for (class, _, pcm) in &frames {
            mixer.add(*class, pcm);
        }
        mixer.finish();
        for ((listener, own), acc) in listeners.iter().zip(&mut heard) {
            let own = own.map(|(class, f)| {
                let pcm = &frames.iter().find(|x| x.1 == f).expect("a speaker").2;
                (class, pcm.as_slice())
            });
            mixer.mix_for(*listener, own, &[], &mut out);
            acc.extend_from_slice(&out);
        }
    }
    heard
}

#[test]
fn tones_reach_exactly_the_listeners_the_table_allows() {
    let cases: [(Listener, &[f64]); 8] = [
        // The customer: not itself, not the coach.
        (
            (L::Customer, Some((S::Customer, CUSTOMER_HZ))),
            &[AGENT_HZ, SUPERVISOR_HZ, AI_AGENT_HZ],
        ),
        // The agent: everyone else, the coach included.
        (
            (L::Agent, Some((S::Agent, AGENT_HZ))),
            &[CUSTOMER_HZ, COACH_HZ, SUPERVISOR_HZ, AI_AGENT_HZ],
        ),
        // The coaching supervisor hears the barging one and everyone else but itself.
        (
            (L::Supervisor, Some((S::Coach, COACH_HZ))),
            &[CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ, AI_AGENT_HZ],
        ),
        (
            (L::Supervisor, Some((S::Supervisor, SUPERVISOR_HZ))),
            &[CUSTOMER_HZ, AGENT_HZ, COACH_HZ, AI_AGENT_HZ],
        ),
        // The AI agent: not itself, not the coach.
        (
            (L::AiAgent, Some((S::AiAgent, AI_AGENT_HZ))),
            &[CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ],
        ),
        // A second, muted customer hears the first one too.
        (
            (L::Customer, None),
            &[CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ, AI_AGENT_HZ],
        ),
        (
            (L::Recording, None),
            &[CUSTOMER_HZ, AGENT_HZ, SUPERVISOR_HZ, AI_AGENT_HZ],
        ),
        ((L::RecordingWithCoach, None), &TONES),
    ];
    let listeners: Vec<Listener> = cases.iter().map(|c| c.0).collect();
    let heard = tone_room(HearingTable::default(), &listeners);
    for ((listener, expected), pcm) in cases.iter().zip(&heard) {
        assert_eq!(heard_tones(pcm), *expected, "{listener:?}");
    }
}

#[test]
fn a_table_row_changes_behaviour_without_code() {
    let customer: Listener = (L::Customer, Some((S::Customer, CUSTOMER_HZ)));
    let supervisor: Listener = (L::Supervisor, Some((S::Supervisor, SUPERVISOR_HZ)));

    // Barge: the customer hears the coach too.
    let mut barge = HearingTable::default();
    barge.set(L::Customer, S::Coach, true);
    let heard = tone_room(barge, &[customer]);
    assert_eq!(
        heard_tones(&heard[0]),
        [AGENT_HZ, COACH_HZ, SUPERVISOR_HZ, AI_AGENT_HZ]
    );

    // Whisper only to the agent: supervisors no longer hear the coach.
    let mut whisper = HearingTable::default();
    whisper.set(L::Supervisor, S::Coach, false);
    let heard = tone_room(whisper, &[supervisor]);
    assert_eq!(heard_tones(&heard[0]), [CUSTOMER_HZ, AGENT_HZ, AI_AGENT_HZ]);

    // Nobody hears anybody.
    let heard = tone_room(HearingTable::silent(), &[customer]);
    assert!(heard[0].iter().all(|s| *s == 0));
}

// ---- extras, loudness, lengths -----------------------------------------------------------

#[test]
fn extras_are_added_for_the_listener_only() {
    let mut mixer = Mixer::new(160, HearingTable::default());
    let customer = vec![1_000i16; 160];
    let agent = vec![300i16; 160];
    let beep = vec![500i16; 160];
    let announcement = vec![-50i16; 160];
    mixer.begin();
    mixer.add(S::Customer, &customer);
    mixer.add(S::Agent, &agent);
    mixer.finish();
    let mut out = vec![0i16; 160];
    mixer.mix_for(
        L::Agent,
        Some((S::Agent, &agent)),
        &[&beep, &announcement],
        &mut out,
    );
    assert_eq!(out, vec![1_450i16; 160]);
    mixer.mix_for(L::Agent, Some((S::Agent, &agent)), &[], &mut out);
    assert_eq!(out, customer, "the beep was for one mix only");
    // No contributors at all: the beep alone.
    mixer.begin();
    mixer.finish();
    mixer.mix_for(L::Customer, None, &[&beep], &mut out);
    assert_eq!(out, beep);
}

#[test]
fn loud_sums_never_wrap() {
    let mut mixer = Mixer::new(160, HearingTable::default());
    for (value, positive) in [(i16::MAX, true), (i16::MIN, false)] {
        let full = vec![value; 160];
        mixer.begin();
        for _ in 0..10 {
            mixer.add(S::Customer, &full);
        }
        mixer.finish();
        let mut out = vec![0i16; 160];
        mixer.mix_for(L::Agent, None, &[&full, &full], &mut out);
        if positive {
            assert!(out.iter().all(|s| *s > 32_000), "{out:?}");
        } else {
            assert!(out.iter().all(|s| *s < -32_000), "{out:?}");
        }
    }
}

#[test]
fn odd_lengths_never_panic_and_are_clamped() {
    let mut mixer = Mixer::new(5000, HearingTable::default());
    assert_eq!(mixer.frame_len(), MAX_FRAME);
    mixer.begin();
    mixer.add(S::Agent, &[1, 2, 3]); // short: padded with silence
    mixer.add(S::Agent, &vec![7i16; 4000]); // long: cut at frame_len
    mixer.add(S::Customer, &[]);
    mixer.finish();

    let mut long = vec![-1i16; 2000];
    mixer.mix_for(L::Customer, Some((S::Customer, &[])), &[], &mut long);
    assert_eq!(&long[..4], &[8, 9, 10, 7]);
    assert!(long[3..MAX_FRAME].iter().all(|s| *s == 7));
    assert!(
        long[MAX_FRAME..].iter().all(|s| *s == -1),
        "past frame_len untouched"
    );

    // A short own frame subtracts what it has.
    let mut short = [0i16; 10];
    mixer.mix_for(L::Agent, Some((S::Agent, &[1, 2])), &[], &mut short);
    assert_eq!(short, [7, 7, 10, 7, 7, 7, 7, 7, 7, 7]);
    // Short and long extras, a long own frame.
    mixer.mix_for(
        L::Agent,
        Some((S::Agent, &vec![7i16; 3000])),
        &[&[100], &vec![1i16; 3000], &[]],
        &mut short,
    );
    assert_eq!(short, [102, 3, 4, 1, 1, 1, 1, 1, 1, 1]);
    let mut empty: [i16; 0] = [];
    mixer.mix_for(L::Agent, None, &[&[1, 2]], &mut empty);

    let mut tiny = Mixer::new(0, HearingTable::default());
    tiny.begin();
    tiny.add(S::Agent, &[1, 2, 3]);
    tiny.finish();
    let mut out = [9i16; 4];
    tiny.mix_for(L::Customer, None, &[], &mut out);
    assert_eq!(out, [9; 4]);
}

#[test]
fn mixing_before_any_tick_is_silence() {
    let mixer = Mixer::new(160, HearingTable::default());
    let mut out = [5i16; 160];
    mixer.mix_for(L::RecordingWithCoach, None, &[], &mut out);
    assert_eq!(out, [0; 160]);
}

#[test]
fn the_limiter_is_monotonic_over_the_whole_i32_range() {
    // Exhaustive over every sum 16 full-scale inputs can reach (and the unit tests check
    // continuity there); sampled over the rest of i32.
    let mut last = soft_limit(i32::MIN);
    assert!(
        last > i16::MIN,
        "never reaches -32768, so negation stays symmetric"
    );
    let mut s = i64::from(i32::MIN);
    while s <= i64::from(i32::MAX) {
        let y = soft_limit(s as i32);
        assert!(y >= last, "not monotonic at {s}");
        last = y;
        s += if s.abs() <= 16 * 32_768 { 1 } else { 9_973 };
    }
    assert!(soft_limit(i32::MAX) >= last);
    assert_eq!(soft_limit(i32::MAX), 32_766);
    for s in [1, 100, 24_576, 30_000, 100_000, 1 << 20, i32::MAX] {
        assert_eq!(soft_limit(-s), -soft_limit(s), "symmetric at {s}");
    }
    assert!(
        soft_limit(10 * 32_767) > 32_000,
        "10 full-scale frames stay positive"
    );
}
