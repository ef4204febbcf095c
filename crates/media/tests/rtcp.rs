//! RTCP sender reports (RFC 3550 §6.4.1) as the remote end sees them: our SSRC and counts
//! agree with the RTP we sent, the RTP timestamp matches the stream's media clock, and the
//! report block describes the loss in what the remote sent.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{leg, rtp_packet, PEER_SSRC};
use huddle_media::TickAudio;
use rtcp::sender_report::SenderReport;
use webrtc_util::marshal::Unmarshal;

/// What the peer saw of our RTP up to the report.
#[derive(Default)]
struct Seen {
    ssrc: Option<u32>,
    packets: u32,
    last_timestamp: u32,
}

impl Seen {
    fn note(&mut self, packet: &[u8]) {
        self.ssrc = Some(u32::from_be_bytes(packet[8..12].try_into().unwrap()));
        self.last_timestamp = u32::from_be_bytes(packet[4..8].try_into().unwrap());
        self.packets += 1;
    }
}

#[tokio::test]
async fn the_first_sender_report_matches_the_streams_both_ways() {
    let (handle, peer, ours) = leg(0).await;
    let mut lent = handle.lend().await.expect("the audio is home");
    peer.rtp.set_nonblocking(true).unwrap();
    peer.rtcp.set_nonblocking(true).unwrap();

    let (report, seen, last_seq, skipped) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut seen = Seen::default();
        let (mut seq, mut skipped) = (0u16, 0u32);
        let mut frame = [0i16; 160];
        let mut buf = [0u8; 1500];
        while started.elapsed() < Duration::from_secs(4) {
            seq += 1;
            // Every tenth packet is lost on the way.
            if seq % 10 == 5 {
                skipped += 1;
            } else {
                peer.rtp.send_to(&rtp_packet(seq, 0x80), ours).unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
            lent.receive(&mut frame);
            lent.send(&[500i16; 160]);
            while let Ok(len) = peer.rtp.recv(&mut buf) {
                seen.note(&buf[..len]);
            }
            if let Ok(len) = peer.rtcp.recv(&mut buf) {
                let report = SenderReport::unmarshal(&mut Bytes::copy_from_slice(&buf[..len]))
                    .expect("a sender report");
                return (Some(report), seen, seq, skipped);
            }
        }
        (None, seen, seq, skipped)
    })
    .await
    .unwrap();

    let report = report.expect("a sender report within 4 s (the first is due after 2.5 s)");
    assert_eq!(Some(report.ssrc), seen.ssrc, "the SSRC of our RTP");
    assert!(
        report.packet_count.abs_diff(seen.packets) <= 1,
        "packet count {} against {} packets seen",
        report.packet_count,
        seen.packets
    );
    assert_eq!(report.octet_count, report.packet_count * 160);
    let ahead = report.rtp_time.wrapping_sub(seen.last_timestamp);
    assert!(
        ahead <= 2 * 160,
        "RTP time {} should be on our media clock, last sent {}",
        report.rtp_time,
        seen.last_timestamp
    );
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ntp_secs = report.ntp_time >> 32;
    assert!(
        (ntp_secs.saturating_sub(2_208_988_800)).abs_diff(unix_now) <= 2,
        "NTP time is now"
    );

    assert_eq!(
        report.reports.len(),
        1,
        "one block, about the peer's stream"
    );
    let block = &report.reports[0];
    assert_eq!(block.ssrc, PEER_SSRC);
    assert!(
        u32::from(block.last_sequence_number as u16).abs_diff(u32::from(last_seq)) <= 1,
        "highest sequence {} against {} sent",
        block.last_sequence_number,
        last_seq
    );
    assert!(
        block.total_lost.abs_diff(skipped) <= 1,
        "{} lost against {} skipped",
        block.total_lost,
        skipped
    );
    // 10 % is 25.6 in 1/256 units.
    assert!(
        (20..=32).contains(&block.fraction_lost),
        "fraction lost {} for 10 %",
        block.fraction_lost
    );
    handle.stop().await;
}
