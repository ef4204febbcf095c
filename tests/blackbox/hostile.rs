use std::time::Duration;

use huddle_testkit::{detect, RtpPeer, SipUa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{answered, server};

const INVITE_HEAD: &str = "INVITE sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKhostile{n}\r\n\
From: <sip:x@127.0.0.1>;tag=h\r\nTo: <sip:echo@127.0.0.1>\r\nCall-ID: hostile{n}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n";

async fn normal_call_works(srv: &huddle_testkit::ServerProcess) {
    let mut ua = SipUa::udp(srv.sip).await;
    let mut rtp = RtpPeer::bind().await;
    let ok = ua
        .invite("echo", &SipUa::sdp(rtp.port(), &[0]))
        .await
        .expect("answer");
    assert_eq!(ok.status(), 200, "{}", srv.log());
    ua.ack().await;
    let heard = rtp
        .talk(ok.sdp_audio().unwrap(), 1000.0, Duration::from_millis(800))
        .await;
    assert!(detect(&heard[heard.len().saturating_sub(2400)..], 1000.0));
    ua.bye().await.unwrap();
}

#[tokio::test]
async fn malformed_sip_gets_4xx_or_is_dropped_and_the_server_survives() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut srv = server("", 100);
        let mut ua = SipUa::udp(srv.sip).await;
        // Garbage, empty and keepalive datagrams: no answer.
        for junk in [
            &b"\x00\x01\x02\xff garbage"[..],
            b"",
            b"\r\n",
            b"INVITE",
            &[0xffu8; 3000][..],
        ] {
            ua.send_raw(junk).await;
        }
        assert!(
            ua.recv(Duration::from_millis(500)).await.is_none(),
            "garbage is not answered"
        );

        let cases: Vec<(String, u16)> = vec![
            // Truncated INVITE: cut in the middle of the headers; its Via survived, so 400.
            (INVITE_HEAD.replace("{n}", "1")[..120].to_string(), 400),
            // Truncated before any Via: nothing to answer to.
            (INVITE_HEAD.replace("{n}", "1")[..30].to_string(), 0),
            // Missing Call-ID.
            (
                INVITE_HEAD
                    .replace("{n}", "2")
                    .replace("Call-ID: hostile2\r\n", "")
                    + "Content-Length: 0\r\n\r\n",
                400,
            ),
            // Missing CSeq.
            (
                INVITE_HEAD
                    .replace("{n}", "3")
                    .replace("CSeq: 1 INVITE\r\n", "")
                    + "Content-Length: 0\r\n\r\n",
                400,
            ),
            // Content-Length larger than the body.
            (
                INVITE_HEAD.replace("{n}", "4") + "Content-Length: 500\r\n\r\nv=0\r\n",
                400,
            ),
            // Malformed SDP.
            (
                INVITE_HEAD.replace("{n}", "5")
                    + "Content-Type: application/sdp\r\nContent-Length: 12\r\n\r\nnot an sdp!!",
                400,
            ),
        ];
        for (msg, expect) in cases {
            ua.send_raw(msg.as_bytes()).await;
            let resp = ua
                .recv_until(Duration::from_millis(800), |m| m.status() >= 200)
                .await;
            match expect {
                0 => assert!(resp.is_none(), "truncated message not answered: {resp:?}"),
                code => assert_eq!(resp.map(|r| r.status()), Some(code), "for {msg:?}"),
            }
        }
        assert!(srv.metric("huddle_sip_malformed_total") >= 4.0);

        // A 64 KiB header over TCP: refused (513) or the connection is closed, never a hang.
        let mut tcp = tokio::net::TcpStream::connect(srv.sip).await.unwrap();
        let big = INVITE_HEAD.replace("{n}", "6")
            + "X-Big: "
            + &"a".repeat(64 * 1024)
            + "\r\nContent-Length: 0\r\n\r\n";
        let _ = tcp.write_all(big.as_bytes()).await;
        let mut buf = vec![0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("no hang");
        if let Ok(n) = read {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(
                n == 0 || text.starts_with("SIP/2.0 513") || text.starts_with("SIP/2.0 400"),
                "{text}"
            );
        }
        assert!(srv.is_running());
        normal_call_works(&srv).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn foreign_and_malformed_rtp_is_ignored_and_counted() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut srv = server("", 100);
        let (mut ua, mut rtp, media) = answered(srv.sip, "echo").await;
        rtp.talk(media, 1000.0, Duration::from_millis(400)).await; // latch on our peer

        let mut intruder = RtpPeer::bind().await;
        for _ in 0..20 {
            let p = intruder.tone_packet(1700.0);
            intruder.socket.send_to(&p, media).await.unwrap();
        }
        let mut bad_version = rtp.tone_packet(1000.0);
        bad_version[0] = 0x40;
        rtp.socket.send_to(&bad_version, media).await.unwrap();
        rtp.socket.send_to(&[0x80, 0, 1], media).await.unwrap();

        let heard = rtp.talk(media, 1000.0, Duration::from_millis(1200)).await;
        let tail = &heard[heard.len().saturating_sub(4000)..];
        assert!(detect(tail, 1000.0), "the legitimate stream keeps working");
        assert!(!detect(tail, 1700.0), "the intruder is not mixed in");
        let mut buf = [0u8; 2048];
        let leaked = tokio::time::timeout(
            Duration::from_millis(300),
            intruder.socket.recv_from(&mut buf),
        )
        .await;
        assert!(leaked.is_err(), "nothing is sent to the intruder");
        // Per-leg RTP counters are published once a second. The intruder's packets are not
        // among them: the leg's socket is connected to its peer, so the kernel drops them
        // before huddle reads anything (media_trust.rs measures that under a spray).
        for (reason, at_least) in [("bad_version", 1.0), ("too_short", 1.0)] {
            let name = format!("huddle_rtp_dropped_total{{reason=\"{reason}\"}}");
            let counted = srv.metric_reaching(&name, at_least, Duration::from_secs(3));
            assert!(counted >= at_least, "{reason}: {counted}");
        }
        ua.bye().await.unwrap();
        assert!(srv.is_running());
    })
    .await
    .expect("timed out");
}
