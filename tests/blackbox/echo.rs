use std::time::Duration;

use huddle_testkit::{detect, RtpPeer, SipUa};

use super::server;

async fn echo_call(tcp: bool) {
    let srv = server("", 100);
    let mut ua = if tcp {
        SipUa::tcp(srv.sip).await
    } else {
        SipUa::udp(srv.sip).await
    };
    let mut rtp = RtpPeer::bind().await;
    let ok = ua
        .invite("echo", &SipUa::sdp(rtp.port(), &[0, 101]))
        .await
        .expect("final response");
    assert_eq!(ok.status(), 200, "{:?}\n{}", ok, srv.log());
    let media = ok.sdp_audio().expect("SDP answer with audio");
    ua.ack().await;
    let heard = rtp.talk(media, 1000.0, Duration::from_millis(1500)).await;
    assert!(heard.len() > 8000 / 2, "got {} samples back", heard.len());
    let tail = &heard[heard.len() - 4000..];
    assert!(detect(tail, 1000.0), "the 1000 Hz tone comes back");
    assert!(!detect(tail, 1700.0), "a tone nobody sent is absent");
    let bye = ua.bye().await.expect("BYE answered");
    assert_eq!(bye.status(), 200);
}

#[tokio::test]
async fn echo_over_udp_returns_the_tone() {
    tokio::time::timeout(Duration::from_secs(30), echo_call(false))
        .await
        .expect("timed out");
}

#[tokio::test]
async fn echo_over_tcp_returns_the_tone() {
    tokio::time::timeout(Duration::from_secs(30), echo_call(true))
        .await
        .expect("timed out");
}

#[tokio::test]
async fn server_hangs_up_first_when_the_route_limit_expires() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server("", 100);
        let mut ua = SipUa::udp(srv.sip).await;
        let mut rtp = RtpPeer::bind().await;
        let ok = ua
            .invite("echo-short", &SipUa::sdp(rtp.port(), &[0]))
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        ua.ack().await;
        let media = ok.sdp_audio().unwrap();
        let started = std::time::Instant::now();
        rtp.talk(media, 800.0, Duration::from_millis(1500)).await;
        let bye = ua
            .recv_until(Duration::from_secs(4), |m| m.start.starts_with("BYE "))
            .await
            .expect("the server sends BYE");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
        ua.reply_ok(&bye).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn reinvite_hold_stops_our_audio_and_unhold_resumes_it() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server("", 100);
        let mut ua = SipUa::udp(srv.sip).await;
        let mut rtp = RtpPeer::bind().await;
        let offer = SipUa::sdp(rtp.port(), &[0]);
        let ok = ua.invite("echo", &offer).await.unwrap();
        assert_eq!(ok.status(), 200);
        ua.ack().await;
        let media = ok.sdp_audio().unwrap();
        let heard = rtp.talk(media, 1000.0, Duration::from_millis(800)).await;
        assert!(detect(&heard[heard.len().saturating_sub(2400)..], 1000.0));

        // The trunk puts us on hold: it only sends, so we must not send.
        let hold = ua
            .reinvite(&format!("{offer}a=sendonly\r\n"))
            .await
            .expect("answer to hold");
        assert_eq!(hold.status(), 200);
        assert!(hold.body.contains("a=recvonly"), "{}", hold.body);
        rtp.talk(media, 1000.0, Duration::from_millis(300)).await; // drain frames in flight
        let during_hold = rtp.talk(media, 1000.0, Duration::from_millis(800)).await;
        assert!(
            during_hold.is_empty(),
            "no audio sent while held: {} samples",
            during_hold.len()
        );

        let unhold = ua
            .reinvite(&format!("{offer}a=sendrecv\r\n"))
            .await
            .expect("answer to unhold");
        assert_eq!(unhold.status(), 200);
        assert!(unhold.body.contains("a=sendrecv"));
        let after = rtp.talk(media, 1000.0, Duration::from_millis(1000)).await;
        assert!(
            detect(&after[after.len().saturating_sub(2400)..], 1000.0),
            "echo resumes"
        );
        ua.bye().await.unwrap();
    })
    .await
    .expect("timed out");
}
