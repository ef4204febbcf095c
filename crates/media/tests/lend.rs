//! Lending a leg's audio to a room: the loan carries real RTP both ways, comes home when
//! dropped, and a second loan asked for while the first is out waits for it.

mod common;

use std::time::Duration;

use common::{leg, rtp_packet};
use huddle_media::TickAudio;

#[tokio::test]
async fn lent_audio_carries_rtp_both_ways_and_a_second_loan_waits_for_the_first() {
    let (handle, peer, ours) = leg(0).await;
    let peer = peer.rtp;
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
