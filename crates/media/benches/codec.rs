//! Per-frame cost of the codecs a leg runs: encoding and decoding one 20 ms frame with the
//! leg's own codec state ([`Coder`], built once at setup as a leg builds it). Opus at the
//! PCM rates a leg can run (8, 16, 48 kHz), G.722 (at its 16 kHz) and G.711 µ-law beside
//! them for scale. Throughput is one frame per iteration.
//!
//! `cargo bench -p huddle-media --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use huddle_media::codec::{Codec, Coder, OpusOptions};

/// Speech-like test signal: two partials whose level swings like syllables.
fn frame(rate: u32, index: usize) -> Vec<i16> {
    let n = rate as usize / 50;
    (0..n)
        .map(|i| {
            let t = (index * n + i) as f64 / f64::from(rate);
            let level = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let w = 2.0 * std::f64::consts::PI * 220.0 * t;
            ((w.sin() * 6000.0 + (3.3 * w).sin() * 2000.0) * level) as i16
        })
        .collect()
}

fn codecs() -> Vec<(String, Codec, u32)> {
    let mut list = vec![
        ("PCMU 8 kHz".to_string(), Codec::Pcmu, 8000),
        ("G722 16 kHz".to_string(), Codec::G722, 16000),
    ];
    for rate in [8000, 16000, 48000] {
        let codec = Codec::Opus(OpusOptions {
            dtx: false,
            pcm_rate: rate,
        });
        list.push((format!("Opus {} kHz", rate / 1000), codec, rate));
    }
    list
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode 20 ms");
    group.throughput(Throughput::Elements(1));
    for (name, codec, rate) in codecs() {
        let mut coder: Coder = codec.coder().expect("codec state");
        let frames: Vec<Vec<i16>> = (0..50).map(|i| frame(rate, i)).collect();
        let mut out = [0u8; 1500];
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i = (i + 1) % frames.len();
                black_box(coder.encode(black_box(&frames[i]), &mut out))
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode 20 ms");
    group.throughput(Throughput::Elements(1));
    for (name, codec, rate) in codecs() {
        let mut encoder = codec.coder().expect("codec state");
        let packets: Vec<Vec<u8>> = (0..50)
            .map(|i| {
                let mut out = [0u8; 1500];
                let len = encoder.encode(&frame(rate, i), &mut out);
                out[..len].to_vec()
            })
            .collect();
        let mut coder = codec.coder().expect("codec state");
        let mut pcm = vec![0i16; rate as usize / 50];
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i = (i + 1) % packets.len();
                black_box(coder.decode(black_box(&packets[i]), &mut pcm))
            })
        });
    }
    group.finish();
}

/// Opus at 16 kHz as a loaded server decodes it: a frame of silence (what a member who is not
/// talking sends without DTX) and speech, each for one leg and for 500 legs in turn (every
/// decoder's state out of cache by the time it is used again, as in a 100-room load run).
fn decode_opus_many(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode 20 ms Opus 16 kHz");
    group.throughput(Throughput::Elements(1));
    let codec = Codec::Opus(OpusOptions {
        dtx: false,
        pcm_rate: 16000,
    });
    let mut encoder = codec.coder().expect("codec state");
    let mut encode = |pcm: &[i16]| {
        let mut out = [0u8; 1500];
        let len = encoder.encode(pcm, &mut out);
        out[..len].to_vec()
    };
    let speech: Vec<Vec<u8>> = (0..50).map(|i| encode(&frame(16000, i))).collect();
    let silence: Vec<Vec<u8>> = (0..50).map(|_| encode(&[0; 320])).skip(10).collect();
    for (what, packets) in [("speech", &speech), ("silence", &silence)] {
        for legs in [1usize, 500] {
            let mut coders: Vec<Coder> = (0..legs)
                .map(|_| codec.coder().expect("codec state"))
                .collect();
            let mut pcm = vec![0i16; 320];
            let mut i = 0;
            group.bench_function(BenchmarkId::new(what, format!("{legs} legs")), |b| {
                b.iter(|| {
                    i += 1;
                    let coder = &mut coders[i % legs];
                    black_box(coder.decode(black_box(&packets[i % packets.len()]), &mut pcm))
                })
            });
        }
    }
    group.finish();
}

/// Opus encodes at 16 kHz as a loaded server runs them: speech and a steady tone (what the
/// load run's members send), for one encoder and for 200 in turn (each encoder's state out of
/// cache by the time it is used again, as the shared encoders of 100 rooms are).
fn encode_opus_many(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode 20 ms Opus 16 kHz");
    group.throughput(Throughput::Elements(1));
    let codec = Codec::Opus(OpusOptions {
        dtx: false,
        pcm_rate: 16000,
    });
    let speech: Vec<Vec<i16>> = (0..50).map(|i| frame(16000, i)).collect();
    let tone: Vec<Vec<i16>> = (0..50)
        .map(|f| {
            (0..320)
                .map(|i| {
                    let t = (f * 320 + i) as f64 / 16000.0;
                    ((2.0 * std::f64::consts::PI * 500.0 * t).sin() * 10000.0) as i16
                })
                .collect()
        })
        .collect();
    for (what, frames) in [("speech", &speech), ("tone", &tone)] {
        for encoders in [1usize, 200] {
            let mut coders: Vec<Coder> = (0..encoders)
                .map(|_| codec.coder().expect("codec state"))
                .collect();
            let mut out = [0u8; 1500];
            let mut i = 0;
            group.bench_function(
                BenchmarkId::new(what, format!("{encoders} encoders")),
                |b| {
                    b.iter(|| {
                        i += 1;
                        let coder = &mut coders[i % encoders];
                        black_box(
                            coder.encode(
                                black_box(&frames[(i / encoders) % frames.len()]),
                                &mut out,
                            ),
                        )
                    })
                },
            );
        }
    }
    group.finish();
}

/// What libopus's settings cost at 16 kHz on speech (the choice behind the leg encoder's
/// complexity, crates/media/src/opus.rs): complexity 0, 1 and 5, with and without in-band FEC,
/// VoIP application, 32 kbit/s, as a leg is set up.
fn opus_settings(c: &mut Criterion) {
    use audiopus::coder::Encoder;
    use audiopus::{Application, Bitrate, Channels, SampleRate};
    let mut group = c.benchmark_group("opus settings 16 kHz");
    group.throughput(Throughput::Elements(1));
    let frames: Vec<Vec<i16>> = (0..50).map(|i| frame(16000, i)).collect();
    for complexity in [0u8, 1, 5] {
        for fec in [false, true] {
            let mut encoder = Encoder::new(SampleRate::Hz16000, Channels::Mono, Application::Voip)
                .expect("encoder");
            encoder.set_inband_fec(fec).expect("fec");
            encoder
                .set_packet_loss_perc(if fec { 10 } else { 0 })
                .expect("loss");
            encoder
                .set_bitrate(Bitrate::BitsPerSecond(32_000))
                .expect("bitrate");
            encoder.set_complexity(complexity).expect("complexity");
            let mut out = [0u8; 1500];
            let mut i = 0;
            let name = format!(
                "complexity {complexity}, fec {}",
                if fec { "on" } else { "off" }
            );
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    i = (i + 1) % frames.len();
                    black_box(encoder.encode(black_box(&frames[i]), &mut out).ok())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    encode,
    decode,
    decode_opus_many,
    encode_opus_many,
    opus_settings
);
criterion_main!(benches);
