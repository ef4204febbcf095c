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

criterion_group!(benches, encode, decode);
criterion_main!(benches);
