use std::time::{Duration, Instant};

use huddle_testkit::{RtpPeer, SipUa};
use tokio::io::AsyncReadExt;

use super::server;

/// An HTTP server that accepts and never answers within the test (a slow answer_url).
async fn slow_http() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                // The scenario: hold the request unanswered for longer than the test runs.
                tokio::time::sleep(Duration::from_secs(8)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn cancel_before_answer_gives_487_and_frees_the_port() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let http = slow_http().await;
        // Exactly one RTP port pair: if CANCEL leaked it, the echo call afterwards would fail.
        let srv = server(
            &format!("[[route]]\nuser = \"^slow$\"\nanswer_url = \"http://{http}/answer\"\n"),
            2,
        );
        let mut ua = SipUa::udp(srv.sip).await;
        let invite = ua.invite_text("slow", &SipUa::sdp(4000, &[0]));
        ua.send_raw(invite.as_bytes()).await;
        let trying = ua.recv(Duration::from_secs(2)).await.expect("100 Trying");
        assert_eq!(trying.status(), 100);
        ua.cancel_invite("slow").await;
        let mut got = Vec::new();
        while got.len() < 2 {
            let m = ua
                .recv(Duration::from_secs(3))
                .await
                .expect("responses to CANCEL and INVITE");
            got.push((m.status(), m.cseq_method().to_string()));
        }
        assert!(got.contains(&(200, "CANCEL".into())), "{got:?}");
        assert!(got.contains(&(487, "INVITE".into())), "{got:?}");

        let mut ua2 = SipUa::udp(srv.sip).await;
        let rtp = RtpPeer::bind().await;
        let ok = ua2
            .invite("echo", &SipUa::sdp(rtp.port(), &[0]))
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "the only port pair is free again");
        ua2.ack().await;
        ua2.bye().await.unwrap();
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn retransmitted_invite_makes_one_call() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server("", 100);
        let mut ua = SipUa::udp(srv.sip).await;
        let invite = ua.invite_text("echo", &SipUa::sdp(4002, &[0]));
        for _ in 0..3 {
            ua.send_raw(invite.as_bytes()).await;
        }
        ua.recv_until(Duration::from_secs(5), |m| m.status() == 200)
            .await
            .expect("the call is answered");
        // Every copy of the INVITE reached the server: any second call would have been
        // counted by now.
        let received = srv
            .metric_until(
                "huddle_sip_messages_received_total",
                Duration::from_secs(5),
                |v| v >= 3.0,
            )
            .await;
        assert_eq!(received, Some(3.0), "three copies of the INVITE");
        // Whatever the copies drew (100, the 200 again) is in; a second dialog's answer would
        // be among it.
        while ua.recv(Duration::from_millis(300)).await.is_some() {}
        let oks: Vec<_> = ua.received.iter().filter(|m| m.status() == 200).collect();
        assert!(!oks.is_empty());
        let tags: std::collections::HashSet<_> = oks
            .iter()
            .map(|m| m.header("To").unwrap().to_string())
            .collect();
        assert_eq!(tags.len(), 1, "one dialog: {tags:?}");
        let calls = srv.metric("huddle_calls_total{direction=\"inbound\"}");
        assert_eq!(calls, 1.0, "one call counted");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn two_xx_is_retransmitted_until_ack() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server("", 100);
        let mut ua = SipUa::udp(srv.sip).await;
        let invite = ua.invite_text("echo", &SipUa::sdp(4004, &[0]));
        ua.send_raw(invite.as_bytes()).await;
        let mut oks = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(4200) {
            if let Some(m) = ua.recv(Duration::from_millis(200)).await {
                if m.status() == 200 {
                    oks.push(start.elapsed());
                    ua.remote_tag = m
                        .header("To")
                        .and_then(|t| t.split(";tag=").nth(1))
                        .map(str::to_string);
                }
            }
        }
        assert!(oks.len() >= 3, "200 sent and retransmitted: {oks:?}");
        let gaps: Vec<_> = oks.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[1] > gaps[0], "intervals grow: {gaps:?}");
        ua.ack().await;
        // Once the server has taken the ACK in (its second message), a 200 that crossed it on
        // the wire is drained; none may come after.
        let received = srv
            .metric_until(
                "huddle_sip_messages_received_total",
                Duration::from_secs(5),
                |v| v >= 2.0,
            )
            .await;
        assert_eq!(received, Some(2.0), "the INVITE and the ACK");
        while ua.recv(Duration::from_millis(10)).await.is_some() {}
        let after = ua.recv(Duration::from_secs(5)).await;
        assert!(after.is_none(), "no 200 after the ACK: {after:?}");
        ua.bye().await.unwrap();
    })
    .await
    .expect("timed out");
}

async fn request(ua: &mut SipUa, method: &str) -> huddle_testkit::Msg {
    let text = format!(
        "{method} sip:{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK{b}\r\nMax-Forwards: 70\r\nFrom: <sip:t@{l}>;tag=1\r\n\
To: <sip:{srv}>\r\nCall-ID: {b}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n",
        srv = ua.local,
        l = ua.local,
        b = uuid::Uuid::new_v4().simple()
    );
    ua.send_raw(text.as_bytes()).await;
    ua.recv(Duration::from_secs(3)).await.expect("a response")
}

#[tokio::test]
async fn options_unknown_method_and_unsupported_codecs() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server("", 100);
        let mut ua = SipUa::udp(srv.sip).await;
        let options = request(&mut ua, "OPTIONS").await;
        assert_eq!(options.status(), 200);
        assert!(options.header("Allow").unwrap().contains("INVITE"));
        let foo = request(&mut ua, "FOO").await;
        assert_eq!(foo.status(), 405);
        assert!(foo.header("Allow").is_some());
        let g729 = ua.invite("echo", &SipUa::sdp(4006, &[18])).await.unwrap();
        assert_eq!(g729.status(), 488);
    })
    .await
    .expect("timed out");
}
