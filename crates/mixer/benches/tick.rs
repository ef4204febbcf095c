//! One 20 ms tick of a G.711 µ-law room at 8 kHz: decode every participant's 160-byte
//! payload, mix, encode every listener's mix; and the mix alone for larger rooms.
//!
//! Each benchmark's throughput is set to its participant count, so criterion's "elem/s"
//! gives the cost per participant (ns per participant = 1e9 / elem/s).
//!
//! With Opus: a 5-party room at 16 kHz (every leg Opus at 16 kHz: decode, mix at 320 samples,
//! encode), a 10-party room of five Opus and five PCMU legs at 8 kHz, and a 10-party wideband
//! room of every codec (three Opus and two G.722 legs at 16 kHz, three PCMU and two PCMA legs
//! converted between their 8 kHz and the room's 16 kHz once per tick each way, as the room
//! does). Each leg has its own codec state and every listener talks, so no encode is shared
//! (the worst case; `crates/room/benches/shared.rs` measures sharing).
//!
//! `cargo bench -p huddle-mixer --bench tick -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use huddle_media::codec::{Codec, Coder, OpusOptions};
use huddle_media::g711::{ulaw_decode, ulaw_encode};
use huddle_media::resample::FrameResampler;
use huddle_mixer::{HearingTable, ListenerClass, Mixer, SpeakerClass};

const FRAME: usize = 160;

/// A call-centre mix of roles: customers, agents, a coach, a barging supervisor, AI agents.
const ROLES: [(SpeakerClass, ListenerClass); 5] = [
    (SpeakerClass::Customer, ListenerClass::Customer),
    (SpeakerClass::Agent, ListenerClass::Agent),
    (SpeakerClass::Coach, ListenerClass::Supervisor),
    (SpeakerClass::Supervisor, ListenerClass::Supervisor),
    (SpeakerClass::AiAgent, ListenerClass::AiAgent),
];

/// One frame per participant, different for each. As in a real room, two people talk at
/// once (speech-level peaks around 9,000) while the others send line noise; with
/// `everyone_loud` all of them talk, so that most mixes cross the limiter's knee (the worst
/// case, which real rooms rarely reach).
fn pcm(n: usize, everyone_loud: bool) -> Vec<[i16; FRAME]> {
    (0..n)
        .map(|p| {
            let level = if everyone_loud || p < 2 { 1.0 } else { 0.02 };
            let f = 150.0 + 60.0 * p as f64;
            let mut frame = [0i16; FRAME];
            for (i, s) in frame.iter_mut().enumerate() {
                let w = 2.0 * std::f64::consts::PI * f * i as f64 / 8000.0;
                *s = ((w.sin() * 7000.0 + (3.3 * w).sin() * 2000.0) * level) as i16;
            }
            frame
        })
        .collect()
}

fn g711_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("g711 ulaw tick 8 kHz");
    for n in [5usize, 10] {
        let input: Vec<[u8; FRAME]> = pcm(n, false)
            .iter()
            .map(|frame| {
                let mut out = [0u8; FRAME];
                ulaw_encode(frame, &mut out);
                out
            })
            .collect();
        let mut decoded = vec![[0i16; FRAME]; n];
        let mut mix = [0i16; FRAME];
        let mut encoded = vec![[0u8; FRAME]; n];
        let mut mixer = Mixer::new(FRAME, HearingTable::default());
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                for (payload, out) in input.iter().zip(decoded.iter_mut()) {
                    ulaw_decode(black_box(payload), out);
                }
                mixer.begin();
                for (i, frame) in decoded.iter().enumerate() {
                    mixer.add(ROLES[i % 5].0, frame);
                }
                mixer.finish();
                for (i, (frame, payload)) in decoded.iter().zip(encoded.iter_mut()).enumerate() {
                    let (speaker, listener) = ROLES[i % 5];
                    mixer.mix_for(listener, Some((speaker, frame)), &[], &mut mix);
                    ulaw_encode(&mix, payload);
                }
                black_box(&encoded);
            })
        });
    }
    group.finish();
}

fn mix_only(c: &mut Criterion) {
    let mut group = c.benchmark_group("mix only 8 kHz");
    let cases = [
        (5usize, false),
        (10, false),
        (50, false),
        (10, true),
        (50, true),
    ];
    for (n, everyone_loud) in cases {
        let frames = pcm(n, everyone_loud);
        let mut outs = vec![[0i16; FRAME]; n];
        let mut mixer = Mixer::new(FRAME, HearingTable::default());
        let id = if everyone_loud {
            format!("{n} all talking")
        } else {
            n.to_string()
        };
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| {
                mixer.begin();
                for (i, f) in frames.iter().enumerate() {
                    mixer.add(ROLES[i % 5].0, black_box(f));
                }
                mixer.finish();
                for (i, (f, out)) in frames.iter().zip(outs.iter_mut()).enumerate() {
                    let (speaker, listener) = ROLES[i % 5];
                    mixer.mix_for(listener, Some((speaker, f)), &[], out);
                }
                black_box(&outs);
            })
        });
    }
    group.finish();
}

/// Speech-like frames at `rate` for participant `p`, tick `index`.
fn voice(rate: u32, p: usize, index: usize) -> Vec<i16> {
    let n = rate as usize / 50;
    let level = if p < 2 { 1.0 } else { 0.02 };
    let f = 150.0 + 60.0 * p as f64;
    (0..n)
        .map(|i| {
            let t = (index * n + i) as f64 / f64::from(rate);
            let w = 2.0 * std::f64::consts::PI * f * t;
            ((w.sin() * 7000.0 + (3.3 * w).sin() * 2000.0) * level) as i16
        })
        .collect()
}

/// One leg of a coded tick: its codec state (decoder side and encoder side, as the server's
/// leg has both), its incoming packets and its buffers.
struct CodedLeg {
    coder: Coder,
    packets: Vec<Vec<u8>>,
    decoded: Vec<i16>,
    payload: [u8; 1500],
    /// For a leg slower than the room: its frame converted to the room's rate and back.
    convert: Option<(FrameResampler, FrameResampler, Vec<i16>, Vec<i16>)>,
}

fn coded_legs(codecs: &[(Codec, u32)]) -> Vec<CodedLeg> {
    codecs
        .iter()
        .enumerate()
        .map(|(p, (codec, rate))| {
            let mut sender = codec.coder().expect("codec state");
            let packets = (0..25)
                .map(|i| {
                    let mut out = [0u8; 1500];
                    let len = sender.encode(&voice(*rate, p, i), &mut out);
                    out[..len].to_vec()
                })
                .collect();
            CodedLeg {
                coder: codec.coder().expect("codec state"),
                packets,
                decoded: vec![0; *rate as usize / 50],
                payload: [0; 1500],
                convert: None,
            }
        })
        .collect()
}

fn coded_tick(c: &mut Criterion, group: &str, id: &str, frame: usize, codecs: &[(Codec, u32)]) {
    let mut group = c.benchmark_group(group);
    let mut legs = coded_legs(codecs);
    let mut mixer = Mixer::new(frame, HearingTable::default());
    let mut mix = vec![0i16; frame];
    let mut tick = 0usize;
    group.throughput(Throughput::Elements(legs.len() as u64));
    group.bench_function(BenchmarkId::from_parameter(id), |b| {
        b.iter(|| {
            tick = (tick + 1) % 25;
            for leg in legs.iter_mut() {
                let CodedLeg {
                    coder,
                    packets,
                    decoded,
                    ..
                } = leg;
                black_box(coder.decode(black_box(&packets[tick]), decoded));
            }
            mixer.begin();
            for (i, leg) in legs.iter().enumerate() {
                mixer.add(ROLES[i % 5].0, &leg.decoded);
            }
            mixer.finish();
            for (i, leg) in legs.iter_mut().enumerate() {
                let (speaker, listener) = ROLES[i % 5];
                mixer.mix_for(listener, Some((speaker, &leg.decoded)), &[], &mut mix);
                black_box(leg.coder.encode(&mix, &mut leg.payload));
            }
        })
    });
    group.finish();
}

/// One tick of a room mixing at `room_rate` whose legs run at their own rates: decode, convert
/// up, mix at the room's rate, convert each mix down, encode.
fn wide_room_tick(c: &mut Criterion, group: &str, id: &str, codecs: &[(Codec, u32)]) {
    let room_rate = 16000;
    let frame = room_rate as usize / 50;
    let mut group = c.benchmark_group(group);
    let mut legs = coded_legs(codecs);
    for (leg, (_, rate)) in legs.iter_mut().zip(codecs) {
        if *rate != room_rate {
            leg.convert = Some((
                FrameResampler::new(*rate, room_rate).expect("resampler"),
                FrameResampler::new(room_rate, *rate).expect("resampler"),
                vec![0; frame],
                vec![0; *rate as usize / 50],
            ));
        }
    }
    let mut mixer = Mixer::new(frame, HearingTable::default());
    let mut mix = vec![0i16; frame];
    let mut tick = 0usize;
    group.throughput(Throughput::Elements(legs.len() as u64));
    group.bench_function(BenchmarkId::from_parameter(id), |b| {
        b.iter(|| {
            tick = (tick + 1) % 25;
            for leg in legs.iter_mut() {
                let CodedLeg {
                    coder,
                    packets,
                    decoded,
                    convert,
                    ..
                } = leg;
                black_box(coder.decode(black_box(&packets[tick]), decoded));
                if let Some((up, _, wide, _)) = convert.as_mut() {
                    up.process(decoded, wide);
                }
            }
            mixer.begin();
            for (i, leg) in legs.iter().enumerate() {
                let voice = leg.convert.as_ref().map_or(&leg.decoded, |c| &c.2);
                mixer.add(ROLES[i % 5].0, voice);
            }
            mixer.finish();
            for (i, leg) in legs.iter_mut().enumerate() {
                let (speaker, listener) = ROLES[i % 5];
                let CodedLeg {
                    coder,
                    decoded,
                    payload,
                    convert,
                    ..
                } = leg;
                match convert.as_mut() {
                    Some((_, down, wide, narrow)) => {
                        mixer.mix_for(listener, Some((speaker, &wide[..])), &[], &mut mix);
                        down.process(&mix, narrow);
                        black_box(coder.encode(narrow, payload));
                    }
                    None => {
                        mixer.mix_for(listener, Some((speaker, &decoded[..])), &[], &mut mix);
                        black_box(coder.encode(&mix, payload));
                    }
                }
            }
        })
    });
    group.finish();
}

fn opus_ticks(c: &mut Criterion) {
    let opus = |rate| {
        (
            Codec::Opus(OpusOptions {
                dtx: false,
                pcm_rate: rate,
            }),
            rate,
        )
    };
    coded_tick(c, "opus tick 16 kHz", "5", 320, &[opus(16000); 5]);
    let mut mixed = vec![opus(8000); 5];
    mixed.extend([(Codec::Pcmu, 8000); 5]);
    coded_tick(c, "mixed-codec tick 8 kHz", "5 opus + 5 pcmu", 160, &mixed);
    let mut every = vec![opus(16000); 3];
    every.extend([(Codec::G722, 16000); 2]);
    every.extend([(Codec::Pcmu, 8000); 3]);
    every.extend([(Codec::Pcma, 8000); 2]);
    wide_room_tick(
        c,
        "mixed-codec tick 16 kHz",
        "3 opus + 2 g722 + 3 pcmu + 2 pcma",
        &every,
    );
}

criterion_group!(benches, g711_tick, mix_only, opus_ticks);
criterion_main!(benches);
