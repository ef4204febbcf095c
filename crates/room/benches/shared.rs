//! Shared against unshared Opus encoding for a room of ten Opus listeners at 16 kHz, one of
//! whom talks (the usual state of a call: one talker at a time). Unshared, every listener's
//! mix is encoded by its own leg: ten encodes per tick. Shared, the talker (whose own voice is
//! taken out of its mix) keeps its own encode and the nine others get one shared encode
//! through [`SharedEncoders`]: two encodes per tick. When the others send digital silence,
//! the talker's mix is silence, which stops costing an encode once the encoder has settled:
//! one encode per tick. Mixing is left out: it is the same either way.
//!
//! Throughput is set to the listener count, so criterion's "elem/s" is listeners served per
//! second of one core; divided by 50 ticks per second it is listeners per core.
//!
//! `cargo bench -p huddle-room --bench shared -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use huddle_media::codec::{Codec, Coder, OpusOptions};
use huddle_media::TickAudio;
use huddle_room::shared::{GroupKey, MixKey, SharedEncoders};

const LISTENERS: usize = 10;
const FRAME: usize = 320;

/// A leg that takes the payload as the real one does before its RTP header: one copy.
struct Leg {
    coder: Coder,
    payload: [u8; 1500],
    len: usize,
}

impl TickAudio for Leg {
    fn receive(&mut self, _: &mut [i16]) -> Option<usize> {
        None
    }
    fn send(&mut self, pcm: &[i16]) {
        self.len = self.coder.encode(pcm, &mut self.payload);
    }
    fn rate(&self) -> u32 {
        16000
    }
    fn codec(&self) -> Option<Codec> {
        Some(opus())
    }
    fn send_encoded(&mut self, payload: &[u8]) {
        self.payload[..payload.len()].copy_from_slice(payload);
        self.len = payload.len();
    }
}

fn opus() -> Codec {
    Codec::Opus(OpusOptions {
        dtx: false,
        pcm_rate: 16000,
    })
}

/// The mixes of tick `t`: what the talker hears (the others, quiet) and what everyone else
/// hears (the talker's speech-like voice).
fn mixes(t: usize) -> ([i16; FRAME], [i16; FRAME]) {
    let (mut own, mut room) = ([0i16; FRAME], [0i16; FRAME]);
    for i in 0..FRAME {
        let s = (t * FRAME + i) as f64 / 16000.0;
        let level = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * s).sin();
        let w = 2.0 * std::f64::consts::PI * 180.0 * s;
        room[i] = ((w.sin() * 6000.0 + (3.3 * w).sin() * 2000.0) * level) as i16;
        own[i] = ((5.1 * w).sin() * 80.0) as i16;
    }
    (own, room)
}

fn legs() -> Vec<Leg> {
    (0..LISTENERS)
        .map(|_| Leg {
            coder: opus().coder().expect("Opus"),
            payload: [0; 1500],
            len: 0,
        })
        .collect()
}

fn shared_vs_unshared(c: &mut Criterion) {
    let frames: Vec<_> = (0..50).map(mixes).collect();
    let mut group = c.benchmark_group("opus encode, 10 listeners at 16 kHz, one talking");
    group.throughput(Throughput::Elements(LISTENERS as u64));

    let mut unshared = legs();
    let mut t = 0;
    group.bench_function(BenchmarkId::from_parameter("unshared"), |b| {
        b.iter(|| {
            t = (t + 1) % frames.len();
            let (own, room) = &frames[t];
            unshared[0].send(black_box(own));
            for leg in &mut unshared[1..] {
                leg.send(black_box(room));
            }
            black_box(unshared[LISTENERS - 1].len)
        })
    });

    let mut listeners = legs();
    let mut shared = SharedEncoders::new(16000);
    let key = GroupKey {
        mix: MixKey::Room(0b1111),
        codec: opus(),
        rate: 16000,
    };
    let mut t = 0;
    group.bench_function(BenchmarkId::from_parameter("shared"), |b| {
        b.iter(|| {
            t = (t + 1) % frames.len();
            let (own, room) = &frames[t];
            shared.next_tick();
            listeners[0].send(black_box(own));
            for leg in &mut listeners[1..] {
                shared.send(key, leg, |out| out.copy_from_slice(black_box(room)));
            }
            black_box(listeners[LISTENERS - 1].len)
        })
    });

    // The others send digital silence (a quiet line, a muted phone): the talker's mix is
    // silence, shared too, and sent again without encoding once its encoder has settled.
    let mut listeners = legs();
    let mut shared = SharedEncoders::new(16000);
    let silence = GroupKey {
        mix: MixKey::Room(0),
        ..key
    };
    let quiet = [0i16; FRAME];
    let mut t = 0;
    group.bench_function(
        BenchmarkId::from_parameter("shared, the others silent"),
        |b| {
            b.iter(|| {
                t = (t + 1) % frames.len();
                let (_, room) = &frames[t];
                shared.next_tick();
                shared.send(silence, &mut listeners[0], |out| {
                    out.copy_from_slice(black_box(&quiet))
                });
                for leg in &mut listeners[1..] {
                    shared.send(key, leg, |out| out.copy_from_slice(black_box(room)));
                }
                black_box(listeners[LISTENERS - 1].len)
            })
        },
    );
    group.finish();
}

criterion_group!(benches, shared_vs_unshared);
criterion_main!(benches);
