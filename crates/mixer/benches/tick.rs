//! One tick of a G.711 room: decode every participant's payload, mix, encode every listener's
//! mix; and the mix alone for larger rooms.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use huddle_media::g711::{ulaw_decode, ulaw_encode};
use huddle_mixer::{HearingTable, ListenerClass, Mixer, SpeakerClass};

const CLASSES: [(SpeakerClass, ListenerClass); 5] = [
    (SpeakerClass::Customer, ListenerClass::Customer),
    (SpeakerClass::Agent, ListenerClass::Agent),
    (SpeakerClass::Coach, ListenerClass::Supervisor),
    (SpeakerClass::Customer, ListenerClass::Customer),
    (SpeakerClass::AiAgent, ListenerClass::AiAgent),
];

fn payloads(n: usize) -> Vec<[u8; 160]> {
    (0..n)
        .map(|p| {
            let mut out = [0u8; 160];
            let pcm: Vec<i16> = (0..160)
                .map(|i| (((i * (p + 3)) as f64 * 0.07).sin() * 6000.0) as i16)
                .collect();
            ulaw_encode(&pcm, &mut out);
            out
        })
        .collect()
}

fn g711_tick(c: &mut Criterion) {
    for n in [5usize, 10] {
        let input = payloads(n);
        let mut pcm = vec![[0i16; 160]; n];
        let mut mixes = vec![[0i16; 160]; n];
        let mut encoded = vec![[0u8; 160]; n];
        let mut mixer = Mixer::new(160, HearingTable::default());
        c.bench_function(&format!("g711 tick {n} participants"), |b| {
            b.iter(|| {
                for (payload, out) in input.iter().zip(pcm.iter_mut()) {
                    ulaw_decode(black_box(payload), out);
                }
                mixer.begin();
                for (i, frame) in pcm.iter().enumerate() {
                    mixer.add(CLASSES[i % 5].0, frame);
                }
                mixer.finish();
                for (i, frame) in pcm.iter().enumerate() {
                    let (speaker, listener) = CLASSES[i % 5];
                    mixer.mix_for(listener, Some((speaker, frame)), &[], &mut mixes[i]);
                    ulaw_encode(&mixes[i], &mut encoded[i]);
                }
                black_box(&encoded);
            })
        });
    }
}

fn mix_only(c: &mut Criterion) {
    for n in [5usize, 10, 50] {
        let frames = vec![[1000i16; 160]; n];
        let mut out = [0i16; 160];
        let mut mixer = Mixer::new(160, HearingTable::default());
        c.bench_function(&format!("mix only {n} participants"), |b| {
            b.iter(|| {
                mixer.begin();
                for (i, f) in frames.iter().enumerate() {
                    mixer.add(CLASSES[i % 5].0, f);
                }
                mixer.finish();
                for (i, f) in frames.iter().enumerate() {
                    let (speaker, listener) = CLASSES[i % 5];
                    mixer.mix_for(listener, Some((speaker, f)), &[], &mut out);
                    black_box(&out);
                }
            })
        });
    }
}

criterion_group!(benches, g711_tick, mix_only);
criterion_main!(benches);
