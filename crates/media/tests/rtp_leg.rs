//! The sans-IO leg in simulated time: latching and foreign sources, playout through the
//! jitter buffer, the RTP timeout, RTCP timing, digits both ways, re-INVITEs, and byte-exact
//! output for fixed stream identifiers. No sockets, no sleeps: time is an `Instant` advanced by
//! hand.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use huddle_media::codec::Codec;
use huddle_media::rtp_leg::{Channel, RtpLeg, StreamIds, REPORT_INTERVAL};
use huddle_media::rtp_rx::LatchPolicy;
use huddle_media::session::{Direction, MediaEvent, MediaParams};
use rtcp::sender_report::SenderReport;
use webrtc_util::marshal::Unmarshal;

const TICK: Duration = Duration::from_millis(20);
const IDS: StreamIds = StreamIds {
    ssrc: 0x1122_3344,
    sequence: 1000,
    timestamp: 50_000,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn params(latching: LatchPolicy) -> MediaParams {
    MediaParams {
        remote_rtp: addr("192.0.2.10:4000"),
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        remote_direction: Direction::SendRecv,
        jitter_min_ms: 20,
        jitter_max_ms: 200,
        rtp_timeout: Some(Duration::from_secs(3)),
        latching,
        srtp: None,
    }
}

/// An RTP packet with timestamp `seq × 160`.
fn rtp(seq: u16, pt: u8, payload: &[u8]) -> Vec<u8> {
    rtp_at(seq, u32::from(seq) * 160, pt, payload)
}

fn rtp_at(seq: u16, timestamp: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn voice(seq: u16) -> Vec<u8> {
    rtp(seq, 0, &[0x80; 160])
}

/// Everything the leg wants sent, as (channel, destination, bytes).
fn drain(leg: &mut RtpLeg) -> Vec<(Channel, SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(t) = leg.poll_transmit() {
        out.push((t.channel, t.destination, t.data.to_vec()));
    }
    out
}

fn events(leg: &mut RtpLeg) -> Vec<MediaEvent> {
    std::iter::from_fn(|| leg.poll_event()).collect()
}

#[test]
fn only_the_signalled_address_is_heard_and_answered() {
    let t0 = Instant::now();
    let mut leg = RtpLeg::new(params(LatchPolicy::Signalled), IDS, t0, Duration::ZERO).unwrap();
    assert_eq!(
        leg.peer(),
        Some(addr("192.0.2.10:4000")),
        "fixed from the SDP"
    );
    let mut frame = [0i16; 160];
    // A stranger sprays first; then the real peer sends.
    for seq in 0..50 {
        leg.handle_datagram(t0, addr("198.51.100.7:9999"), &voice(seq), false, None);
        leg.handle_datagram(t0, addr("192.0.2.10:4002"), &voice(seq), false, None);
    }
    assert_eq!(leg.stats().foreign_packets, 100);
    assert_eq!(
        leg.poll_frame(&mut frame),
        None,
        "nothing of theirs is played"
    );
    leg.handle_datagram(t0, addr("192.0.2.10:4000"), &voice(1), false, None);
    assert_eq!(leg.poll_frame(&mut frame), Some(160));
    assert!(frame.iter().all(|s| s.abs() > 8000));
    leg.send_frame(t0 + TICK, Some(&[100; 160]));
    let sent = drain(&mut leg);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, addr("192.0.2.10:4000"), "never to a stranger");
    assert!(
        events(&mut leg).is_empty(),
        "no latch event: nothing latched"
    );
}

#[test]
fn behind_nat_the_first_packet_from_the_signalling_ip_fixes_the_peer() {
    let t0 = Instant::now();
    let sip_ip = "203.0.113.9".parse().unwrap();
    let mut leg = RtpLeg::new(
        params(LatchPolicy::SignallingIp(sip_ip)),
        IDS,
        t0,
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(leg.peer(), None);
    leg.handle_datagram(t0, addr("198.51.100.7:9999"), &voice(1), false, None);
    assert_eq!(leg.peer(), None, "a stranger does not latch");
    leg.handle_datagram(t0, addr("203.0.113.9:61000"), &voice(2), false, None);
    assert_eq!(leg.peer(), Some(addr("203.0.113.9:61000")));
    assert_eq!(leg.rtcp_peer(), Some(addr("203.0.113.9:61001")));
    assert_eq!(
        events(&mut leg),
        vec![MediaEvent::Latched(addr("203.0.113.9:61000"))]
    );
    leg.send_frame(t0, Some(&[0; 160]));
    assert_eq!(drain(&mut leg)[0].1, addr("203.0.113.9:61000"));
}

#[test]
fn malformed_and_unknown_packets_are_counted_not_played() {
    let t0 = Instant::now();
    let mut leg = RtpLeg::new(params(LatchPolicy::Signalled), IDS, t0, Duration::ZERO).unwrap();
    let peer = addr("192.0.2.10:4000");
    leg.handle_datagram(t0, peer, &[0x80, 0, 1], false, None);
    leg.handle_datagram(t0, peer, &[0x40; 172], false, None);
    leg.handle_datagram(t0, peer, &[], true, None);
    leg.handle_datagram(t0, peer, &rtp(1, 96, &[1; 160]), false, None);
    assert_eq!(leg.stats().malformed_packets, 3);
    let mut frame = [0i16; 160];
    assert_eq!(
        leg.poll_frame(&mut frame),
        None,
        "an unknown payload type is not audio"
    );
}

#[test]
fn the_jitter_buffer_reorders_and_conceals_a_loss() {
    let t0 = Instant::now();
    let mut leg = RtpLeg::new(params(LatchPolicy::Signalled), IDS, t0, Duration::ZERO).unwrap();
    let peer = addr("192.0.2.10:4000");
    let mut frame = [0i16; 160];
    // 2 arrives before 1; 3 is lost; 4 follows.
    leg.handle_datagram(t0, peer, &rtp(2, 0, &[0x90; 160]), false, None);
    leg.handle_datagram(t0, peer, &rtp(1, 0, &[0x80; 160]), false, None);
    assert_eq!(leg.poll_frame(&mut frame), Some(160));
    let first = frame[0];
    assert_eq!(leg.poll_frame(&mut frame), Some(160));
    assert_ne!(frame[0], first, "frame 2 after frame 1");
    let second = frame[0];
    leg.handle_datagram(t0, peer, &rtp(4, 0, &[0x80; 160]), false, None);
    assert_eq!(leg.poll_frame(&mut frame), Some(160));
    assert_eq!(
        frame[0],
        second / 2,
        "the lost frame is the last one, fading"
    );
    assert_eq!(leg.stats().concealed_frames, 1);
    assert_eq!(leg.poll_frame(&mut frame), Some(160));
    assert_eq!(frame[0], first, "frame 4 played");
}

#[test]
fn the_rtp_timeout_fires_once_at_its_deadline_and_rearms_on_media() {
    let t0 = Instant::now();
    let mut leg = RtpLeg::new(params(LatchPolicy::Signalled), IDS, t0, Duration::ZERO).unwrap();
    let peer = addr("192.0.2.10:4000");
    let deadline = leg.next_deadline();
    assert_eq!(
        deadline,
        t0 + REPORT_INTERVAL / 2,
        "the first report comes first"
    );
    // Nothing arrives: the timeout is due just after 3 s.
    leg.handle_timeout(t0 + REPORT_INTERVAL / 2);
    let timeout_at = leg.next_deadline();
    assert!(timeout_at > t0 + Duration::from_secs(3));
    assert!(timeout_at < t0 + Duration::from_secs(3) + Duration::from_millis(1));
    leg.handle_timeout(timeout_at - Duration::from_micros(2));
    assert!(events(&mut leg).is_empty(), "not before its time");
    leg.handle_timeout(timeout_at);
    assert_eq!(events(&mut leg), vec![MediaEvent::RtpTimeout]);
    leg.handle_timeout(timeout_at + Duration::from_secs(10));
    assert!(events(&mut leg).is_empty(), "reported once");
    // Media again: the timer re-arms from the last packet.
    let later = t0 + Duration::from_secs(20);
    leg.handle_datagram(later, peer, &voice(1), false, None);
    leg.handle_timeout(later + Duration::from_secs(2));
    assert!(events(&mut leg).is_empty());
    leg.handle_timeout(later + Duration::from_secs(4));
    assert_eq!(events(&mut leg), vec![MediaEvent::RtpTimeout]);
}

#[test]
fn a_peer_that_only_receives_never_times_out() {
    let t0 = Instant::now();
    let mut p = params(LatchPolicy::Signalled);
    p.remote_direction = Direction::RecvOnly;
    let mut leg = RtpLeg::new(p, IDS, t0, Duration::ZERO).unwrap();
    leg.handle_timeout(t0 + Duration::from_secs(60));
    assert!(!events(&mut leg).contains(&MediaEvent::RtpTimeout));
    assert_eq!(
        leg.next_deadline(),
        t0 + Duration::from_secs(60) + REPORT_INTERVAL
    );
}

#[test]
fn sender_reports_go_out_at_2_5_s_then_every_5_s_with_the_streams_figures() {
    let t0 = Instant::now();
    let wall = Duration::from_secs(1_700_000_000);
    let mut leg = RtpLeg::new(params(LatchPolicy::Signalled), IDS, t0, wall).unwrap();
    let peer = addr("192.0.2.10:4000");
    let mut frame = [0i16; 160];
    let mut reports = Vec::new();
    let mut rtp_sent = 0u32;
    for tick in 0..(13_000 / 20) {
        let now = t0 + TICK * tick;
        if tick % 10 != 5 {
            leg.handle_datagram(now, peer, &voice(tick as u16), false, Some(now));
        }
        leg.poll_frame(&mut frame);
        leg.send_frame(now, Some(&[0; 160]));
        for (channel, to, data) in drain(&mut leg) {
            match channel {
                Channel::Rtp => rtp_sent += 1,
                Channel::Rtcp => {
                    assert_eq!(to, addr("192.0.2.10:4001"), "RTCP beside RTP");
                    reports.push((now - t0, rtp_sent, data));
                }
            }
        }
    }
    let times: Vec<Duration> = reports.iter().map(|r| r.0).collect();
    assert_eq!(
        times,
        vec![
            Duration::from_millis(2500),
            Duration::from_millis(7500),
            Duration::from_millis(12500)
        ]
    );
    let (at, sent_before, data) = &reports[1];
    let sr = SenderReport::unmarshal(&mut bytes::Bytes::copy_from_slice(data)).unwrap();
    assert_eq!(sr.ssrc, IDS.ssrc);
    assert_eq!(
        sr.packet_count, *sent_before,
        "counts what went out before it"
    );
    assert_eq!(sr.octet_count, sent_before * 160);
    assert_eq!(
        sr.rtp_time,
        IDS.timestamp.wrapping_add(sent_before * 160),
        "the media time of the next frame"
    );
    let ntp_secs = (sr.ntp_time >> 32) - 2_208_988_800;
    assert_eq!(
        ntp_secs,
        wall.as_secs() + at.as_secs(),
        "wall clock from `now`"
    );
    let block = &sr.reports[0];
    assert_eq!(block.ssrc, 7);
    // One packet in ten was never sent.
    assert!(
        block.total_lost >= 30 && block.total_lost <= 40,
        "{}",
        block.total_lost
    );
    assert_eq!(block.jitter, 0, "perfectly paced arrivals");
}

#[test]
fn digits_are_sent_as_rfc4733_and_received_as_events() {
    let t0 = Instant::now();
    let mut leg = RtpLeg::new(params(LatchPolicy::Signalled), IDS, t0, Duration::ZERO).unwrap();
    let peer = addr("192.0.2.10:4000");
    leg.send_digit('7', 100);
    let mut packets = Vec::new();
    for tick in 0..10 {
        leg.send_frame(t0 + TICK * tick, Some(&[0; 160]));
        packets.extend(drain(&mut leg).into_iter().map(|p| p.2));
    }
    let events_sent: Vec<&Vec<u8>> = packets.iter().filter(|p| p[1] & 0x7F == 101).collect();
    assert_eq!(
        events_sent.len(),
        5 + 2,
        "5 frames of 20 ms, the end sent three times"
    );
    assert!(events_sent[0][1] & 0x80 != 0, "marker on the first");
    assert!(events_sent.iter().all(|p| p[12] == 7));
    assert!(
        events_sent[4..].iter().all(|p| p[13] & 0x80 != 0),
        "end bit"
    );
    assert_eq!(packets.len(), 7 + 5, "voice resumes after the digit");
    // Receiving: an event ending is reported once, however many end packets carry it.
    for (seq, end) in [(1u16, false), (2, true), (3, true), (4, true)] {
        let flags = if end { 0x80 | 10 } else { 10 };
        let p = rtp_at(seq, 8000, 101, &[5, flags, 0x03, 0x20]);
        leg.handle_datagram(t0, peer, &p, false, None);
    }
    assert_eq!(
        events(&mut leg),
        vec![MediaEvent::Dtmf {
            digit: '5',
            duration_ms: 100
        }]
    );
}

#[test]
fn a_reinvite_moves_the_peer_and_hold_stops_sending() {
    let t0 = Instant::now();
    let mut leg = RtpLeg::new(params(LatchPolicy::Signalled), IDS, t0, Duration::ZERO).unwrap();
    let moved = addr("192.0.2.99:5000");
    leg.update_remote(t0, moved, Direction::SendRecv);
    assert_eq!(leg.peer(), Some(moved));
    leg.handle_datagram(t0, addr("192.0.2.10:4000"), &voice(1), false, None);
    assert_eq!(
        leg.stats().foreign_packets,
        1,
        "the old address is a stranger now"
    );
    leg.send_frame(t0, Some(&[0; 160]));
    assert_eq!(drain(&mut leg)[0].1, moved);
    leg.update_remote(t0, moved, Direction::SendOnly);
    leg.send_frame(t0 + TICK, Some(&[0; 160]));
    assert!(
        drain(&mut leg).is_empty(),
        "the remote put us on hold: we send nothing"
    );
}

#[test]
fn fixed_identifiers_give_byte_identical_output() {
    let run = || {
        let t0 = Instant::now();
        let mut leg = RtpLeg::new(params(LatchPolicy::Signalled), IDS, t0, Duration::ZERO).unwrap();
        let mut out = Vec::new();
        let tone: Vec<i16> = (0..160).map(|i| ((i * 400) % 8000) as i16).collect();
        for tick in 0..200u32 {
            if tick == 20 {
                leg.send_digit('#', 60);
            }
            leg.send_frame(t0 + TICK * tick, Some(&tone));
            out.extend(drain(&mut leg).into_iter().map(|p| (p.0, p.2)));
        }
        out
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 200);
    assert!(a == b, "same identifiers, same bytes");
    let first = &a[0].1;
    assert_eq!(&first[8..12], &IDS.ssrc.to_be_bytes());
    assert_eq!(&first[2..4], &IDS.sequence.to_be_bytes());
    assert_eq!(&first[4..8], &IDS.timestamp.to_be_bytes());
    assert!(
        first[1] & 0x80 != 0,
        "marker on the first packet of the stream"
    );
}

mod srtp {
    use super::*;
    use huddle_media::srtp::{SrtpKeying, SrtpSuite};

    fn keyed(latching: LatchPolicy, suite: SrtpSuite, ours: u8, theirs: u8) -> MediaParams {
        let len = match suite {
            SrtpSuite::AesCm128HmacSha1_80 => 30,
            SrtpSuite::AeadAes128Gcm => 28,
        };
        MediaParams {
            srtp: Some(SrtpKeying {
                suite,
                local: vec![ours; len],
                remote: vec![theirs; len],
            }),
            ..params(latching)
        }
    }

    /// Two legs keyed for each other: what one sends, the other plays; a tampered or replayed
    /// packet is refused and counted.
    #[test]
    fn protected_packets_round_trip_and_forgeries_are_refused() {
        for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm] {
            let t0 = Instant::now();
            let mut a = RtpLeg::new(
                keyed(LatchPolicy::Signalled, suite, 1, 2),
                IDS,
                t0,
                Duration::ZERO,
            )
            .unwrap();
            let mut p = keyed(LatchPolicy::Signalled, suite, 2, 1);
            p.remote_rtp = addr("192.0.2.20:5000");
            let mut b = RtpLeg::new(p, StreamIds { ssrc: 99, ..IDS }, t0, Duration::ZERO).unwrap();
            let tone: Vec<i16> = (0..160)
                .map(|i| if i % 2 == 0 { 8000 } else { -8000 })
                .collect();
            let mut wire = Vec::new();
            for tick in 0..3 {
                a.send_frame(t0 + TICK * tick, Some(&tone));
                wire.extend(drain(&mut a).into_iter().map(|t| t.2));
            }
            assert_eq!(wire.len(), 3);
            assert!(wire[0].len() > 172, "a tag is added");
            assert!(
                !wire[0][12..]
                    .windows(8)
                    .any(|w| w == [0x81, 0x01, 0x81, 0x01, 0x81, 0x01, 0x81, 0x01]),
                "the payload is not in the clear"
            );
            let from_a = addr("192.0.2.20:5000");
            let mut frame = [0i16; 160];
            let mut tampered = wire[1].clone();
            let last = tampered.len() - 1;
            tampered[last] ^= 1;
            b.handle_datagram(t0, from_a, &tampered, false, None);
            assert_eq!(b.stats().packets_received, 0, "a forged tag is refused");
            b.handle_datagram(t0, from_a, &wire[0], false, None);
            b.handle_datagram(t0, from_a, &wire[0], false, None);
            assert_eq!(b.stats().packets_received, 1, "a replay is refused");
            assert_eq!(b.stats().malformed_packets, 2);
            assert_eq!(b.poll_frame(&mut frame), Some(160));
            assert!(
                frame.iter().zip(&tone).all(|(x, y)| (x - y).abs() < 300),
                "{suite:?}"
            );
        }
    }

    #[test]
    fn behind_nat_only_an_authenticated_packet_fixes_the_peer() {
        let t0 = Instant::now();
        let sip_ip = "203.0.113.9".parse().unwrap();
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let mut leg = RtpLeg::new(
            keyed(LatchPolicy::SignallingIp(sip_ip), suite, 1, 2),
            IDS,
            t0,
            Duration::ZERO,
        )
        .unwrap();
        let mut p = keyed(LatchPolicy::Signalled, suite, 2, 1);
        p.remote_rtp = addr("192.0.2.20:5000");
        let mut phone = RtpLeg::new(p, StreamIds { ssrc: 99, ..IDS }, t0, Duration::ZERO).unwrap();
        phone.send_frame(t0, Some(&[500; 160]));
        let genuine = drain(&mut phone).remove(0).2;
        // Someone at the same NAT sends plain RTP first: it does not latch.
        leg.handle_datagram(t0, addr("203.0.113.9:40000"), &voice(1), false, None);
        assert_eq!(leg.peer(), None);
        leg.handle_datagram(t0, addr("203.0.113.9:61000"), &genuine, false, None);
        assert_eq!(leg.peer(), Some(addr("203.0.113.9:61000")));
    }

    #[test]
    fn keys_of_the_wrong_length_fail_the_leg_not_the_process() {
        let mut p = keyed(LatchPolicy::Signalled, SrtpSuite::AesCm128HmacSha1_80, 1, 2);
        if let Some(k) = p.srtp.as_mut() {
            k.local.truncate(5);
        }
        assert!(RtpLeg::new(p, IDS, Instant::now(), Duration::ZERO).is_err());
    }

    #[test]
    fn hostile_datagrams_never_panic_the_unprotect_path() {
        let t0 = Instant::now();
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let mut leg = RtpLeg::new(
            keyed(LatchPolicy::Signalled, suite, 1, 2),
            IDS,
            t0,
            Duration::ZERO,
        )
        .unwrap();
        let peer = addr("192.0.2.10:4000");
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..300usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect();
            leg.handle_datagram(t0, peer, &data, false, None);
            let mut rtpish = data.clone();
            if let Some(b) = rtpish.first_mut() {
                *b = 0x80 | (*b & 0x3F);
            }
            leg.handle_datagram(t0, peer, &rtpish, false, None);
        }
        assert_eq!(leg.stats().packets_received, 0);
    }
}

/// Two Opus legs: timestamps count 48 kHz (960 per 20 ms frame of 160 samples at 8 kHz), the
/// tone gets through, a single lost packet is concealed at its tick (with the next packet
/// already buffered, which is what lets FEC rebuild it: `opus::tests` compares FEC with PLC),
/// and an undecodable payload is counted and concealed.
#[test]
fn opus_legs_count_48_khz_rebuild_a_loss_and_count_garbage() {
    use huddle_media::codec::OpusOptions;
    let opus = |remote: &str| MediaParams {
        remote_rtp: addr(remote),
        codec: Codec::Opus(OpusOptions::default()),
        payload_type: 111,
        telephone_event_pt: None,
        ..params(LatchPolicy::Signalled)
    };
    let t0 = Instant::now();
    let mut a = RtpLeg::new(opus("192.0.2.10:4000"), IDS, t0, Duration::ZERO).unwrap();
    let mut b = RtpLeg::new(
        opus("192.0.2.20:5000"),
        StreamIds { ssrc: 99, ..IDS },
        t0,
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(a.frame_len(), 160, "8 kHz frames for a narrowband Opus leg");
    let mut wire = Vec::new();
    for tick in 0..40u32 {
        let tone: Vec<i16> = (0..160)
            .map(|i| {
                let t = f64::from(tick * 160 + i) / 8000.0;
                let level = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
                ((2.0 * std::f64::consts::PI * 500.0 * t).sin() * 6000.0 * level) as i16
            })
            .collect();
        a.send_frame(t0 + TICK * tick, Some(&tone));
        wire.extend(
            drain(&mut a)
                .into_iter()
                .filter(|t| t.0 == Channel::Rtp)
                .map(|t| t.2),
        );
    }
    assert_eq!(wire.len(), 40);
    let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    assert_eq!(ts(&wire[1]).wrapping_sub(ts(&wire[0])), 960);
    assert_eq!(wire[0][1] & 0x7F, 111);

    let from_a = addr("192.0.2.20:5000");
    let mut frame = [0i16; 160];
    let mut played = 0;
    let mut energy = 0.0;
    for (i, packet) in wire.iter().enumerate() {
        if i == 30 {
            continue; // lost on the way
        }
        let mut packet = packet.clone();
        if i == 35 {
            packet.truncate(12);
            packet.extend_from_slice(&[0x03, 0xFF]); // a code-3 packet with 63 frames: refused
        }
        b.handle_datagram(t0 + TICK * i as u32, from_a, &packet, false, None);
        if let Some(n) = b.poll_frame(&mut frame) {
            played += 1;
            if i > 20 {
                energy += frame[..n]
                    .iter()
                    .map(|s| f64::from(*s).powi(2))
                    .sum::<f64>();
            }
        }
    }
    assert!(played >= 35, "frames played: {played}");
    assert!(
        energy / (18.0 * 160.0) > 1_000_000.0,
        "the tone came through"
    );
    assert_eq!(
        b.stats().concealed_frames,
        2,
        "the lost frame and the refused one"
    );
    assert_eq!(b.stats().malformed_packets, 1, "the refused payload");
}

/// A payload encoded once by the room for several listeners: each leg wraps it in its own
/// header (its SSRC, sequence and timestamp), an empty payload (DTX) sends nothing and makes
/// the next packet start a talk spurt, and a digit being sent takes the frame's place.
#[test]
fn an_encoded_payload_goes_out_in_the_legs_own_stream() {
    use huddle_media::codec::OpusOptions;
    let opus = MediaParams {
        codec: Codec::Opus(OpusOptions {
            dtx: false,
            pcm_rate: 16000,
        }),
        payload_type: 111,
        ..params(LatchPolicy::Signalled)
    };
    let t0 = Instant::now();
    let mut leg = RtpLeg::new(opus, IDS, t0, Duration::ZERO).unwrap();
    assert_eq!(
        leg.frame_len(),
        320,
        "16 kHz frames for a wideband Opus leg"
    );
    let payload = [0x78u8, 1, 2, 3, 4, 5, 6, 7];
    let rtp_only = |leg: &mut RtpLeg| -> Vec<Vec<u8>> {
        drain(leg)
            .into_iter()
            .filter(|t| t.0 == Channel::Rtp)
            .map(|t| t.2)
            .collect()
    };
    leg.send_encoded(t0, &payload);
    leg.send_encoded(t0 + TICK, &payload);
    leg.send_encoded(t0 + TICK * 2, &[]);
    leg.send_encoded(t0 + TICK * 3, &payload);
    let sent = rtp_only(&mut leg);
    assert_eq!(sent.len(), 3, "the DTX frame sends nothing");
    let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
    assert_eq!(ts(&sent[0]), IDS.timestamp);
    assert_eq!(ts(&sent[1]), IDS.timestamp + 960);
    assert_eq!(
        ts(&sent[2]),
        IDS.timestamp + 3 * 960,
        "the DTX frame's time passed"
    );
    assert_eq!(
        (seq(&sent[0]), seq(&sent[1]), seq(&sent[2])),
        (1000, 1001, 1002)
    );
    assert_eq!(&sent[1][8..12], &IDS.ssrc.to_be_bytes());
    assert_eq!(&sent[1][12..], &payload);
    assert_eq!(sent[1][1], 111, "no marker in a talk spurt");
    assert_eq!(
        sent[2][1],
        0x80 | 111,
        "the packet after DTX starts a talk spurt"
    );
    // A payload larger than any frame is dropped, not cut.
    leg.send_encoded(t0 + TICK * 4, &[0x78; 2000]);
    assert!(rtp_only(&mut leg).is_empty());
    // A digit takes the frame's place.
    leg.send_digit('5', 100);
    leg.send_encoded(t0 + TICK * 5, &payload);
    let sent = rtp_only(&mut leg);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0][1] & 0x7F, 101, "telephone-event, not the payload");
}
