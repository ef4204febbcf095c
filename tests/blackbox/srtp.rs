//! SRTP with SDES keys over real SIP and UDP: the test is the SRTP phone, keyed from the
//! SDP like any SDES phone, and hears its own tone come back protected (echo route); a plain
//! offer to a route that requires SRTP gets 488.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use huddle_testkit::{tone_share, ulaw_decode, RtpPeer, SipUa};
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

use super::server;

const ROUTES: &str = "[[route]]\nuser = \"^secure-echo$\"\necho = true\nsrtp = \"required\"\n\
    [[route]]\nuser = \"^plain-echo$\"\necho = true\nsrtp = \"off\"\n";

fn savp_offer(port: u16, suite: &str, key: &[u8]) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:7 {suite} inline:{}\r\na=sendrecv\r\n",
        STANDARD.encode(key)
    )
}

/// The key and suite of the answer's `a=crypto` line.
fn answer_key(body: &str) -> (u32, String, Vec<u8>) {
    let line = body
        .lines()
        .find_map(|l| l.strip_prefix("a=crypto:"))
        .unwrap_or_else(|| panic!("no a=crypto in the answer: {body}"));
    let mut parts = line.split_whitespace();
    let tag = parts.next().unwrap().parse().unwrap();
    let suite = parts.next().unwrap().to_string();
    let inline = parts.next().unwrap().strip_prefix("inline:").unwrap();
    (
        tag,
        suite,
        STANDARD.decode(inline.split('|').next().unwrap()).unwrap(),
    )
}

fn context(profile: ProtectionProfile, key_salt: &[u8]) -> Context {
    let (key, salt) = key_salt.split_at(profile.key_len());
    Context::new(key, salt, profile, None, None).unwrap()
}

async fn secure_echo_round_trip(suite: &str, profile: ProtectionProfile, key_len: usize) {
    let srv = server(ROUTES, 20);
    let mut ua = SipUa::udp(srv.sip).await;
    let mut rtp = RtpPeer::bind().await;
    let our_key: Vec<u8> = (0..key_len as u8)
        .map(|i| i.wrapping_mul(37) ^ 0x5A)
        .collect();
    let ok = ua
        .invite("secure-echo", &savp_offer(rtp.port(), suite, &our_key))
        .await
        .expect("answer");
    assert_eq!(ok.status(), 200, "{}", srv.log());
    ua.ack().await;
    assert!(ok.body.contains("RTP/SAVP"), "{}", ok.body);
    let (tag, answered_suite, their_key) = answer_key(&ok.body);
    assert_eq!((tag, answered_suite.as_str()), (7, suite));
    assert_ne!(their_key, our_key, "the server has its own key");
    let media = ok.sdp_audio().unwrap();
    let mut tx = context(profile, &our_key);
    let mut rx = context(profile, &their_key);

    let mut heard = Vec::new();
    let mut buf = [0u8; 2048];
    let start = tokio::time::Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_millis(1500) {
        let plain = rtp.tone_packet(1000.0);
        let protected = tx.encrypt_rtp(&plain).unwrap();
        rtp.socket.send_to(&protected, media).await.unwrap();
        n += 1;
        let next = start + Duration::from_millis(20) * n;
        while let Ok(Ok((len, _))) =
            tokio::time::timeout_at(next, rtp.socket.recv_from(&mut buf)).await
        {
            let packet = rx
                .decrypt_rtp(&buf[..len])
                .expect("what the server sends authenticates with its key");
            if packet.len() > 12 && packet[1] & 0x7F == 0 {
                heard.extend(packet[12..].iter().map(|b| ulaw_decode(*b)));
            }
        }
    }
    let tail = &heard[heard.len().saturating_sub(4000)..];
    let share = tone_share(tail, 1000.0);
    assert!(share > 0.3, "the tone comes back through SRTP: {share:.3}");
    ua.bye().await;
}

#[tokio::test]
async fn an_srtp_call_carries_a_tone_both_ways() {
    tokio::time::timeout(
        Duration::from_secs(60),
        secure_echo_round_trip(
            "AES_CM_128_HMAC_SHA1_80",
            ProtectionProfile::Aes128CmHmacSha1_80,
            30,
        ),
    )
    .await
    .expect("timed out");
}

#[tokio::test]
async fn an_aes_gcm_srtp_call_carries_a_tone_both_ways() {
    tokio::time::timeout(
        Duration::from_secs(60),
        secure_echo_round_trip("AEAD_AES_128_GCM", ProtectionProfile::AeadAes128Gcm, 28),
    )
    .await
    .expect("timed out");
}

#[tokio::test]
async fn plain_rtp_to_an_srtp_required_route_gets_488_and_srtp_to_an_off_route_too() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(ROUTES, 20);
        let mut ua = SipUa::udp(srv.sip).await;
        let rtp = RtpPeer::bind().await;
        let refused = ua
            .invite("secure-echo", &SipUa::sdp(rtp.port(), &[0]))
            .await
            .expect("a final response");
        assert_eq!(refused.status(), 488, "{refused:?}");
        let mut ua = SipUa::udp(srv.sip).await;
        let refused = ua
            .invite(
                "plain-echo",
                &savp_offer(rtp.port(), "AES_CM_128_HMAC_SHA1_80", &[1; 30]),
            )
            .await
            .expect("a final response");
        assert_eq!(refused.status(), 488, "{refused:?}");
        // The default route answers an SRTP offer with SRTP.
        let mut ua = SipUa::udp(srv.sip).await;
        let ok = ua
            .invite(
                "echo",
                &savp_offer(rtp.port(), "AES_CM_128_HMAC_SHA1_80", &[1; 30]),
            )
            .await
            .expect("answer");
        assert_eq!(ok.status(), 200);
        ua.ack().await;
        assert!(ok.body.contains("m=audio") && ok.body.contains("RTP/SAVP"));
        ua.bye().await;
    })
    .await
    .expect("timed out");
}
