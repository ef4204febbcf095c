//! Per-packet cost of a leg's media path with and without SRTP: one 20 ms PCMU frame built,
//! (protected,) sent through the sans-IO leg, and received by its peer leg (unprotected,
//! de-jittered, decoded). Throughput is one packet per iteration.
//!
//! `cargo bench -p huddle-media --bench leg -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use huddle_media::codec::Codec;
use huddle_media::rtp_leg::{RtpLeg, StreamIds};
use huddle_media::rtp_rx::LatchPolicy;
use huddle_media::session::{Direction, MediaParams};
use huddle_media::srtp::{SrtpKeying, SrtpSession, SrtpSuite};

fn params(remote: &str, srtp: Option<(SrtpSuite, u8, u8)>) -> MediaParams {
    MediaParams {
        remote_rtp: remote.parse().unwrap(),
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event_pt: None,
        remote_direction: Direction::SendRecv,
        jitter_min_ms: 20,
        jitter_max_ms: 200,
        rtp_timeout: None,
        latching: LatchPolicy::Signalled,
        srtp: srtp.map(|(suite, ours, theirs)| {
            let len = if suite == SrtpSuite::AeadAes128Gcm {
                28
            } else {
                30
            };
            SrtpKeying {
                suite,
                local: vec![ours; len],
                remote: vec![theirs; len],
            }
        }),
    }
}

const IDS: StreamIds = StreamIds {
    ssrc: 1,
    sequence: 0,
    timestamp: 0,
};

/// One frame from `a` to `b` through both legs, as a mixing thread drives them.
fn leg_pair(c: &mut Criterion, name: &str, srtp: Option<SrtpSuite>) {
    let t0 = Instant::now();
    let mut a = RtpLeg::new(
        params("192.0.2.2:4000", srtp.map(|s| (s, 1, 2))),
        IDS,
        t0,
        Duration::ZERO,
    )
    .unwrap();
    let mut b = RtpLeg::new(
        params("192.0.2.1:4000", srtp.map(|s| (s, 2, 1))),
        StreamIds { ssrc: 2, ..IDS },
        t0,
        Duration::ZERO,
    )
    .unwrap();
    let from_a: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let pcm: Vec<i16> = (0..160).map(|i| (i * 97 % 4000) as i16).collect();
    let mut out = [0i16; 160];
    let mut packet = Vec::with_capacity(2048);
    let mut group = c.benchmark_group("leg");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |bench| {
        bench.iter(|| {
            a.send_frame(t0, Some(&pcm));
            while let Some(t) = a.poll_transmit() {
                packet.clear();
                packet.extend_from_slice(t.data);
            }
            b.handle_datagram(t0, from_a, &packet, false, None);
            black_box(b.poll_frame(&mut out));
        })
    });
    group.finish();
}

fn legs(c: &mut Criterion) {
    leg_pair(c, "plain_send_receive", None);
    leg_pair(
        c,
        "srtp_aes_cm_send_receive",
        Some(SrtpSuite::AesCm128HmacSha1_80),
    );
    leg_pair(
        c,
        "srtp_aes_gcm_send_receive",
        Some(SrtpSuite::AeadAes128Gcm),
    );
}

/// Protect and unprotect alone, per 172-byte RTP packet.
fn protect_unprotect(c: &mut Criterion) {
    for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm] {
        let len = if suite == SrtpSuite::AeadAes128Gcm {
            28
        } else {
            30
        };
        let keys = |a: u8, b: u8| SrtpKeying {
            suite,
            local: vec![a; len],
            remote: vec![b; len],
        };
        let mut tx = SrtpSession::new(&keys(1, 2)).unwrap();
        let mut rx = SrtpSession::new(&keys(2, 1)).unwrap();
        let mut buf = vec![0u8; 200];
        let mut seq = 0u16;
        let mut group = c.benchmark_group("srtp");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{suite:?}_protect_unprotect"), |bench| {
            bench.iter(|| {
                seq = seq.wrapping_add(1);
                buf[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                let n = tx.protect_rtp(&mut buf, 172).unwrap();
                black_box(rx.unprotect_rtp(&buf[..n]))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, legs, protect_unprotect);
criterion_main!(benches);
