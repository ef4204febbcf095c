//! Lending a leg's audio to a room: the loan carries real RTP both ways, comes home when
//! dropped, and a second loan asked for while the first is out waits for it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use huddle_media::codec::Codec;
use huddle_media::leg_audio::TickAudio;
use huddle_media::ports::PortAllocator;
use huddle_media::session::{Direction, MediaParams, MediaSession};

fn rtp_packet(seq: u16, sample: u8) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend(std::iter::repeat_n(sample, 160));
    p
}

/// A started leg on its own port range (`slot` keeps the tests of this process apart).
async fn leg(slot: u16) -> (huddle_media::session::MediaHandle, UdpSocket, SocketAddr) {
    let base = 42_000 + (std::process::id() % 400) as u16 * 16 + slot * 8;
    let ports = PortAllocator::new(base, base + 8);
    let session = MediaSession::bind(&ports, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let ours = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), session.local_rtp_port());
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let handle = session.start(MediaParams {
        remote_rtp: peer.local_addr().unwrap(),
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        remote_direction: Direction::SendRecv,
        jitter_min_ms: 20,
        jitter_max_ms: 200,
        rtp_timeout: None,
    });
    (handle, peer, ours)
}

#[tokio::test]
async fn lent_audio_carries_rtp_both_ways_and_a_second_loan_waits_for_the_first() {
    let (handle, peer, ours) = leg(0).await;
    let mut lent = handle.lend().await.expect("the audio is home");

    // The borrower ticks it: what the peer sent is decoded, what the borrower sends arrives.
    peer.send_to(&rtp_packet(1, 0x80), ours).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut frame = [0i16; 160];
    let got = lent.receive(&mut frame).expect("a frame");
    assert_eq!(got, 160);
    assert!(
        frame.iter().all(|s| s.abs() > 8000),
        "0x80 is a loud µ-law sample"
    );
    lent.send(&[1000i16; 160]);
    let mut buf = [0u8; 2048];
    let (len, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(
        (len, from),
        (172, ours),
        "one 20 ms PCMU packet from our port"
    );

    // While it is out, another loan waits; dropping the first lets the second through.
    let second = tokio::spawn(async move {
        let loan = handle.lend().await;
        (handle, loan)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!second.is_finished(), "the audio is still on loan");
    drop(lent);
    let (handle, loan) = tokio::time::timeout(Duration::from_secs(2), second)
        .await
        .expect("the second loan follows the return")
        .unwrap();
    let mut lent = loan.expect("lent again");
    peer.send_to(&rtp_packet(2, 0x80), ours).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        lent.receive(&mut frame).is_some(),
        "the same stream goes on"
    );
    drop(lent);
    let stats = handle.stop().await;
    assert_eq!(stats.packets_received, 2);
    assert_eq!(stats.packets_sent, 1);
}

#[tokio::test]
async fn stopping_waits_for_audio_on_loan() {
    let (handle, _peer, _ours) = leg(1).await;
    let mut lent = handle.lend().await.expect("the audio is home");
    let returned = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        lent.send(&[0i16; 160]);
        drop(lent);
    });
    let stats = tokio::time::timeout(Duration::from_secs(2), handle.stop())
        .await
        .expect("stop returns");
    assert_eq!(
        stats.packets_sent, 1,
        "the figures are the returned audio's, sent while on loan"
    );
    returned.await.unwrap();
}
