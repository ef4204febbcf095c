//! Answering offers as trunks, PBXs and test tools send them.

mod common;

use common::{assert_well_formed, local, m_lines, offer_with, FREESWITCH, SIPP, TWILIO};
use huddle_sdp::{
    negotiate, parse_offer, Direction, LocalMedia, NegotiationError, G722, OPUS, OPUS_FMTP, PCMA,
    PCMU,
};

fn answer(offer: &str, supported: &[huddle_sdp::CodecSpec]) -> huddle_sdp::Answer {
    let parsed = parse_offer(offer.as_bytes()).unwrap_or_else(|e| panic!("{e}: {offer:?}"));
    let a = negotiate(&parsed, supported, &local()).unwrap_or_else(|e| panic!("{e}: {offer:?}"));
    assert_well_formed(&a.sdp, parsed.media.len());
    a
}

#[test]
fn sipp_default_offer_gets_the_exact_answer() {
    let a = answer(SIPP, &[PCMU, PCMA]);
    assert_eq!(
        a.sdp,
        "v=0\r\n\
o=huddle 4242 1 IN IP4 10.0.0.5\r\n\
s=huddle\r\n\
c=IN IP4 10.0.0.5\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n"
    );
    let m = &a.media;
    assert_eq!((m.codec, m.payload_type), (PCMU, 0));
    assert_eq!(m.telephone_event_pt, None);
    assert_eq!(m.remote_rtp, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(m.remote_rtcp, Some("127.0.0.1:6001".parse().unwrap()));
    assert_eq!(m.remote_direction, Direction::SendRecv);
    assert_eq!(m.local_direction, Direction::SendRecv);
    assert_eq!(m.ptime, 20);
    assert_eq!(m.media_index, 0);
}

#[test]
fn twilio_like_offer() {
    let a = answer(TWILIO, &[PCMU, PCMA]);
    assert_eq!((a.media.codec, a.media.payload_type), (PCMU, 0));
    assert_eq!(a.media.telephone_event_pt, Some(101));
    assert_eq!(a.media.remote_rtp, "54.172.60.1:16372".parse().unwrap());
    assert_eq!(m_lines(&a.sdp), ["m=audio 20000 RTP/AVP 0 101"]);
    assert!(a
        .sdp
        .contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
    assert!(a.sdp.contains("a=ptime:20\r\n"));
}

#[test]
fn freeswitch_like_offer_in_the_offerers_order() {
    // Opus and G.722 come first but we do not run them: PCMU is the offerer's next choice,
    // even though our own list prefers PCMA.
    let a = answer(FREESWITCH, &[PCMA, PCMU]);
    assert_eq!((a.media.codec, a.media.payload_type), (PCMU, 0));
    assert_eq!(a.media.telephone_event_pt, Some(101));
    assert_eq!(a.media.remote_rtp, "10.0.0.10:16384".parse().unwrap());
    assert_eq!(
        a.media.remote_rtcp,
        Some("10.0.0.10:16385".parse().unwrap())
    );
    assert_eq!(m_lines(&a.sdp), ["m=audio 20000 RTP/AVP 0 101"]);
    assert!(!a.sdp.contains("CN/8000"));
}

#[test]
fn opus_and_g722_slot_in_as_list_entries() {
    let a = answer(FREESWITCH, &[OPUS, PCMU]);
    assert_eq!((a.media.codec, a.media.payload_type), (OPUS, 102));
    // telephone-event is offered at 8000 Hz only, which does not match Opus's 48000.
    assert_eq!(a.media.telephone_event_pt, None);
    assert_eq!(m_lines(&a.sdp), ["m=audio 20000 RTP/AVP 102"]);
    assert!(a.sdp.contains("a=rtpmap:102 opus/48000/2\r\n"));
    assert!(a.sdp.contains(&format!("a=fmtp:102 {OPUS_FMTP}\r\n")));

    // The peer's parameters come back for the media layer (DTX and FEC wishes).
    assert_eq!(
        a.media
            .remote_fmtp
            .as_deref()
            .map(|f| huddle_sdp::fmtp_param(f, "useinbandfec")),
        Some(Some("1"))
    );
    let a = answer(FREESWITCH, &[PCMU]);
    assert_eq!(a.media.remote_fmtp, None, "PCMU had no fmtp in the offer");

    let a = answer(FREESWITCH, &[G722, PCMU]);
    assert_eq!((a.media.codec, a.media.payload_type), (G722, 9));
    assert_eq!(a.media.telephone_event_pt, Some(101));
}

#[test]
fn pcma_only_without_rtpmap() {
    let a = answer(&offer_with("m=audio 4000 RTP/AVP 8\r\n"), &[PCMU, PCMA]);
    assert_eq!((a.media.codec, a.media.payload_type), (PCMA, 8));
    assert!(a
        .sdp
        .contains("m=audio 20000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"));
}

#[test]
fn static_payload_types_without_rtpmap() {
    // Only the dynamic type has an rtpmap; G.729 (18) is skipped, PCMU (0) is chosen.
    let a = answer(
        &offer_with("m=audio 4000 RTP/AVP 18 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"),
        &[PCMU, PCMA],
    );
    assert_eq!((a.media.codec, a.media.payload_type), (PCMU, 0));
    assert_eq!(a.media.telephone_event_pt, Some(101));
    // No fmtp offered: RFC 4733's default events are answered explicitly.
    assert!(a.sdp.contains("a=fmtp:101 0-15\r\n"));
}

#[test]
fn g729_only_has_no_common_codec() {
    for offer in [
        offer_with("m=audio 4000 RTP/AVP 18\r\n"),
        offer_with("m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n"),
        SIPP.replace("RTP/AVP 0", "RTP/AVP 18")
            .replace("a=rtpmap:0 PCMU/8000\r\n", ""),
    ] {
        let parsed = parse_offer(offer.as_bytes()).unwrap();
        assert_eq!(
            negotiate(&parsed, &[PCMU, PCMA], &local()),
            Err(NegotiationError::NoCommonCodec)
        );
    }
}

#[test]
fn no_usable_audio_is_not_a_codec_problem() {
    for offer in [
        offer_with("m=video 4000 RTP/AVP 31\r\n"),
        offer_with("m=audio 0 RTP/AVP 0\r\n"),
        offer_with("m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"),
    ] {
        let parsed = parse_offer(offer.as_bytes()).unwrap();
        assert_eq!(
            negotiate(&parsed, &[PCMU, PCMA], &local()),
            Err(NegotiationError::NoAudio),
            "{offer:?}"
        );
    }
}

#[test]
fn audio_and_video_keeps_every_line_in_order() {
    let offer = offer_with(
        "m=video 5000 RTP/AVP 96 97\r\na=rtpmap:96 H264/90000\r\na=rtpmap:97 VP8/90000\r\n\
m=audio 4000 RTP/AVP 0 8\r\n\
m=audio 4002 RTP/AVP 0\r\n",
    );
    let a = answer(&offer, &[PCMU, PCMA]);
    assert_eq!(a.media.media_index, 1);
    assert_eq!(a.media.remote_rtp.port(), 4000);
    assert_eq!(
        m_lines(&a.sdp),
        [
            "m=video 0 RTP/AVP 96 97",
            "m=audio 20000 RTP/AVP 0",
            "m=audio 0 RTP/AVP 0"
        ]
    );
}

#[test]
fn t38_image_line_is_rejected_not_dropped() {
    let offer = offer_with(
        "m=audio 4000 RTP/AVP 0\r\n\
m=image 4002 udptl t38\r\na=T38FaxVersion:0\r\na=T38FaxRateManagement:transferredTCF\r\n",
    );
    let a = answer(&offer, &[PCMU]);
    assert_eq!(
        m_lines(&a.sdp),
        ["m=audio 20000 RTP/AVP 0", "m=image 0 udptl t38"]
    );
}

#[test]
fn lines_the_sdp_crate_does_not_know_are_mirrored() {
    let offer = offer_with(
        "m=audio 4000 RTP/AVP 0\r\nm=application 5000 TCP/BFCP *\r\nm=image 6000 UDPTL t38\r\n",
    );
    let a = answer(&offer, &[PCMU]);
    assert_eq!(
        m_lines(&a.sdp),
        [
            "m=audio 20000 RTP/AVP 0",
            "m=application 0 TCP/BFCP *",
            "m=image 0 UDPTL t38"
        ]
    );
}

#[test]
fn ipv6_offer_and_ipv6_answer() {
    let offer = SIPP.replace("IN IP4 127.0.0.1", "IN IP6 2001:db8::1");
    let parsed = parse_offer(offer.as_bytes()).unwrap();
    let mut l = local();
    l.ip = "2001:db8::5".parse().unwrap();
    let a = negotiate(&parsed, &[PCMU], &l).unwrap();
    assert_eq!(a.media.remote_rtp, "[2001:db8::1]:6000".parse().unwrap());
    assert!(a.sdp.contains("o=huddle 4242 1 IN IP6 2001:db8::5\r\n"));
    assert!(a.sdp.contains("c=IN IP6 2001:db8::5\r\n"));
    assert_well_formed(&a.sdp, 1);
}

#[test]
fn directions_are_answered_per_rfc3264() {
    for (offered, remote, answered) in [
        ("sendrecv", Direction::SendRecv, "sendrecv"),
        ("sendonly", Direction::SendOnly, "recvonly"),
        ("recvonly", Direction::RecvOnly, "sendonly"),
        ("inactive", Direction::Inactive, "inactive"),
    ] {
        let offer = offer_with(&format!("m=audio 4000 RTP/AVP 0\r\na={offered}\r\n"));
        let a = answer(&offer, &[PCMU]);
        assert_eq!(a.media.remote_direction, remote);
        assert!(a.sdp.contains(&format!("a={answered}\r\n")), "{offered}");
    }
}

#[test]
fn session_level_direction_applies_unless_the_media_line_says_otherwise() {
    let offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n";
    let a = answer(offer, &[PCMU]);
    assert_eq!(a.media.remote_direction, Direction::SendOnly);
    assert!(a.sdp.contains("a=recvonly\r\n"));

    let overridden = offer.replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=sendrecv\r\n");
    let a = answer(&overridden, &[PCMU]);
    assert_eq!(a.media.remote_direction, Direction::SendRecv);
}

#[test]
fn rfc2543_hold_with_zero_address() {
    let a = answer(
        &SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"),
        &[PCMU],
    );
    assert_eq!(a.media.remote_direction, Direction::SendOnly);
    assert_eq!(a.media.local_direction, Direction::RecvOnly);
    assert!(!a.media.local_direction.sends());
    assert!(a.sdp.contains("a=recvonly\r\n"));
}

#[test]
fn our_own_hold_narrows_the_answer() {
    let parsed = parse_offer(SIPP.as_bytes()).unwrap();
    let mut l = local();
    l.direction = Direction::SendOnly;
    let a = negotiate(&parsed, &[PCMU], &l).unwrap();
    assert_eq!(a.media.local_direction, Direction::SendOnly);
    assert!(a.sdp.contains("a=sendonly\r\n"));
}

#[test]
fn ptime_is_echoed_when_we_can_do_it() {
    for (attrs, want) in [
        ("a=ptime:30\r\n", 30),
        ("a=ptime:20\r\n", 20),
        ("", 20),
        ("a=ptime:25\r\n", 20),
        ("a=ptime:500\r\n", 20),
        ("a=ptime:40\r\na=maxptime:30\r\n", 30),
        ("a=maxptime:15\r\n", 10),
    ] {
        let a = answer(
            &offer_with(&format!("m=audio 4000 RTP/AVP 0\r\n{attrs}")),
            &[PCMU],
        );
        assert_eq!(a.media.ptime, want, "{attrs:?}");
        assert!(a.sdp.contains(&format!("a=ptime:{want}\r\n")));
    }
}

#[test]
fn telephone_event_must_match_the_codec_clock() {
    let a = answer(
        &offer_with(
            "m=audio 4000 RTP/AVP 0 100 101\r\na=rtpmap:100 telephone-event/16000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11\r\n",
        ),
        &[PCMU],
    );
    assert_eq!(a.media.telephone_event_pt, Some(101));
    assert_eq!(m_lines(&a.sdp), ["m=audio 20000 RTP/AVP 0 101"]);
    assert!(a.sdp.contains("a=fmtp:101 0-11\r\n"));

    let a = answer(
        &offer_with("m=audio 4000 RTP/AVP 0 100\r\na=rtpmap:100 telephone-event/16000\r\n"),
        &[PCMU],
    );
    assert_eq!(a.media.telephone_event_pt, None);
}

#[test]
fn dynamic_payload_type_for_a_static_codec_is_kept() {
    let a = answer(
        &offer_with("m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 pcma/8000\r\n"),
        &[PCMU, PCMA],
    );
    assert_eq!((a.media.codec, a.media.payload_type), (PCMA, 96));
    assert!(a.sdp.contains("a=rtpmap:96 PCMA/8000\r\n"));
}

#[test]
fn media_level_address_and_rtcp_attribute() {
    let a = answer(
        &offer_with(
            "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 198.51.100.7\r\na=rtcp:4005 IN IP4 198.51.100.8\r\n",
        ),
        &[PCMU],
    );
    assert_eq!(a.media.remote_rtp, "198.51.100.7:4000".parse().unwrap());
    assert_eq!(
        a.media.remote_rtcp,
        Some("198.51.100.8:4005".parse().unwrap())
    );
}

#[test]
fn answer_version_follows_the_caller() {
    let parsed = parse_offer(SIPP.as_bytes()).unwrap();
    let mut l = LocalMedia::new("10.0.0.5".parse().unwrap(), 20000, 7, 1);
    let first = negotiate(&parsed, &[PCMU], &l).unwrap();
    l.session_version += 1;
    let second = negotiate(&parsed, &[PCMU], &l).unwrap();
    assert!(first.sdp.contains("o=huddle 7 1 IN IP4"));
    assert!(second.sdp.contains("o=huddle 7 2 IN IP4"));
    l.username = "bad name".into();
    assert!(negotiate(&parsed, &[PCMU], &l)
        .unwrap()
        .sdp
        .contains("o=- 7 2 IN IP4"));
}

#[test]
fn lf_only_offer_is_answered_with_crlf() {
    let a = answer(&SIPP.replace("\r\n", "\n"), &[PCMU]);
    assert_eq!(a.media.codec, PCMU);
}
