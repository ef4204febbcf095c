//! Our own offers (outbound calls) and reading the answers to them.

mod common;

use common::{assert_well_formed, local, m_lines};
use huddle_sdp::{
    build_offer, negotiate, parse_answer, parse_offer, AnswerError, Direction, NegotiationError,
    OPUS, PCMA, PCMU,
};

#[test]
fn g711_offer_with_dtmf() {
    let sdp = build_offer(&local(), &[PCMU, PCMA], true);
    assert_eq!(
        sdp,
        "v=0\r\n\
o=huddle 4242 1 IN IP4 10.0.0.5\r\n\
s=huddle\r\n\
c=IN IP4 10.0.0.5\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n"
    );
    assert_well_formed(&sdp, 1);
}

#[test]
fn offer_without_dtmf_and_with_opus() {
    assert_eq!(
        m_lines(&build_offer(&local(), &[PCMA], false)),
        ["m=audio 20000 RTP/AVP 8"]
    );
    let sdp = build_offer(&local(), &[OPUS, PCMU], true);
    // Opus gets the first dynamic type; one telephone-event per clock rate, in codec order,
    // with 101 kept for 8000 Hz.
    assert_eq!(m_lines(&sdp), ["m=audio 20000 RTP/AVP 96 0 97 101"]);
    assert!(sdp.contains("a=rtpmap:101 telephone-event/8000\r\n"));
    assert!(sdp.contains(&format!(
        "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 {}\r\n",
        huddle_sdp::OPUS_FMTP
    )));
    assert!(sdp.contains("a=rtpmap:97 telephone-event/48000\r\n"));
    assert_well_formed(&sdp, 1);
}

#[test]
fn duplicate_and_empty_lists() {
    assert_eq!(
        m_lines(&build_offer(&local(), &[PCMU, PCMU, PCMA], false)),
        ["m=audio 20000 RTP/AVP 0 8"]
    );
    let empty = build_offer(&local(), &[], true);
    assert_eq!(m_lines(&empty), ["m=audio 0 RTP/AVP 0"]);
    assert_well_formed(&empty, 1);
}

#[test]
fn hold_offer_and_ipv6() {
    let mut l = local();
    l.direction = Direction::SendOnly;
    l.ip = "2001:db8::5".parse().unwrap();
    let sdp = build_offer(&l, &[PCMU], false);
    assert!(sdp.contains("a=sendonly\r\n"));
    assert!(sdp.contains("c=IN IP6 2001:db8::5\r\n"));
    assert_well_formed(&sdp, 1);
}

#[test]
fn our_offer_negotiates_against_ourselves() {
    let offer = parse_offer(build_offer(&local(), &[PCMA, PCMU], true).as_bytes()).unwrap();
    let a = negotiate(&offer, &[PCMU, PCMA], &local()).unwrap();
    assert_eq!((a.media.codec, a.media.payload_type), (PCMA, 8));
    assert_eq!(a.media.telephone_event_pt, Some(101));
}

const ANSWER: &str = "v=0\r\no=carrier 99 100 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n\
m=audio 31000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n";

#[test]
fn reads_the_answer_to_our_offer() {
    let m = parse_answer(ANSWER.as_bytes(), &[PCMU, PCMA], &local()).unwrap();
    assert_eq!((m.codec, m.payload_type), (PCMA, 8));
    assert_eq!(m.telephone_event_pt, Some(101));
    assert_eq!(m.remote_rtp, "203.0.113.9:31000".parse().unwrap());
    assert_eq!(m.remote_direction, Direction::SendRecv);
    assert_eq!(m.local_direction, Direction::SendRecv);
    assert_eq!(m.ptime, 20);
}

#[test]
fn answer_direction_and_our_hold() {
    let recvonly = ANSWER.replace("a=ptime:20\r\n", "a=ptime:20\r\na=recvonly\r\n");
    let mut l = local();
    l.direction = Direction::SendOnly;
    let m = parse_answer(recvonly.as_bytes(), &[PCMU, PCMA], &l).unwrap();
    assert_eq!(m.remote_direction, Direction::RecvOnly);
    assert_eq!(m.local_direction, Direction::SendOnly);
}

#[test]
fn unusable_answers() {
    let rejected = ANSWER.replace("m=audio 31000", "m=audio 0");
    assert_eq!(
        parse_answer(rejected.as_bytes(), &[PCMU, PCMA], &local()),
        Err(AnswerError::Rejected)
    );
    assert_eq!(
        parse_answer(ANSWER.as_bytes(), &[PCMU], &local()),
        Err(AnswerError::Negotiation(NegotiationError::NoCommonCodec))
    );
    let video = ANSWER.replace("m=audio", "m=video");
    assert_eq!(
        parse_answer(video.as_bytes(), &[PCMA], &local()),
        Err(AnswerError::Negotiation(NegotiationError::NoAudio))
    );
    assert!(matches!(
        parse_answer(b"", &[PCMA], &local()),
        Err(AnswerError::Sdp(huddle_sdp::SdpError::Empty))
    ));
}
