//! The endpoint's call limits in simulated time: `max_calls` and the per-source INVITE limits
//! refuse with a stateless 503 before any leg exists, retransmissions of admitted INVITEs are
//! never refused, and a call stops counting as unconfirmed on every way out of that state.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use huddle_sip::endpoint::{
    Endpoint, EndpointConfig, EndpointEvent, EndpointOutput, LegId, TrunkConfig,
};
use huddle_sip::limits::{CallLimits, LimitRefusal};
use huddle_sip::transaction::{Peer, TimerConfig, TransportKind};

fn endpoint(limits: CallLimits) -> Endpoint {
    let mut ep = Endpoint::new(EndpointConfig {
        advertised_host: "127.0.0.1".into(),
        udp_port: Some(5060),
        tcp_port: Some(5060),
        user_agent: "huddle-test".into(),
        trunk: Some(TrunkConfig {
            uri: "sip:127.0.0.1:5070".into(),
            username: String::new(),
            password: String::new(),
            strip_plus: false,
        }),
        timers: TimerConfig::default(),
    });
    ep.set_call_limits(Some(limits));
    ep
}

fn limits(max_calls: usize, rate: u32, burst: u32, unconfirmed: u32) -> CallLimits {
    CallLimits {
        max_calls,
        invite_rate_per_source: rate,
        invite_burst_per_source: burst,
        max_unconfirmed_per_source: unconfirmed,
    }
}

fn from(ip: &str) -> Peer {
    Peer {
        addr: format!("{ip}:5099").parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn invite(call: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{call};rport\r\n\
From: <sip:alice@127.0.0.1>;tag=a-{call}\r\nTo: <sip:echo@127.0.0.1>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5099>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn cancel(call: &str) -> String {
    format!(
        "CANCEL sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{call};rport\r\n\
From: <sip:alice@127.0.0.1>;tag=a-{call}\r\nTo: <sip:echo@127.0.0.1>\r\nCall-ID: {call}\r\nCSeq: 1 CANCEL\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn ack(call: &str, to: &str) -> String {
    format!(
        "ACK sip:huddle@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKack{call}\r\n\
From: <sip:alice@127.0.0.1>;tag=a-{call}\r\nTo: {to}\r\nCall-ID: {call}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )
}

fn sent(out: &[EndpointOutput]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            EndpointOutput::Send { data, .. } => Some(String::from_utf8_lossy(data).to_string()),
            _ => None,
        })
        .collect()
}

fn status_lines(out: &[EndpointOutput]) -> Vec<String> {
    sent(out)
        .iter()
        .map(|m| m.lines().next().unwrap_or_default().to_string())
        .collect()
}

fn header(msg: &str, name: &str) -> Option<String> {
    msg.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim().to_string())
}

fn new_leg(out: &[EndpointOutput]) -> Option<LegId> {
    out.iter().find_map(|o| match o {
        EndpointOutput::Event(EndpointEvent::IncomingCall { leg, .. }) => Some(*leg),
        _ => None,
    })
}

/// Feeds an INVITE for `call` from `peer`; the new leg, or None with what was sent.
fn offer(ep: &mut Endpoint, call: &str, peer: Peer, now: Instant) -> Result<LegId, Vec<String>> {
    let mut out = Vec::new();
    ep.handle_message(invite(call).as_bytes(), peer, now, &mut out);
    new_leg(&out).ok_or_else(|| sent(&out))
}

/// Asserts `replies` is exactly one 503 with a To tag and `Retry-After: retry_after`.
fn assert_503(replies: &[String], retry_after: u32) {
    assert_eq!(replies.len(), 1, "{replies:?}");
    let reply = &replies[0];
    assert!(
        reply.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
        "{reply}"
    );
    assert_eq!(
        header(reply, "Retry-After").as_deref(),
        Some(retry_after.to_string().as_str()),
        "{reply}"
    );
    assert!(header(reply, "To").unwrap().contains(";tag="), "{reply}");
}

fn refusals(ep: &Endpoint, reason: LimitRefusal) -> u64 {
    ep.stats().limit_refusals[reason.index()]
}

#[test]
fn max_calls_refuses_the_next_invite_statelessly_until_a_call_ends() {
    let mut ep = endpoint(limits(2, 1000, 1000, 1000));
    let t0 = Instant::now();
    let first = offer(&mut ep, "c1", from("10.0.0.1"), t0).unwrap();
    offer(&mut ep, "c2", from("10.0.0.2"), t0).unwrap();
    let refused = offer(&mut ep, "c3", from("10.0.0.3"), t0).unwrap_err();
    assert_503(&refused, 5);
    assert_eq!(ep.leg_count(), 2);
    assert_eq!(refusals(&ep, LimitRefusal::MaxCalls), 1);
    // No transaction was kept: a retransmission is decided again, not absorbed.
    let again = offer(&mut ep, "c3", from("10.0.0.3"), t0).unwrap_err();
    assert_503(&again, 5);
    assert_eq!(refusals(&ep, LimitRefusal::MaxCalls), 2);
    // One call ends: the next INVITE becomes a call.
    let mut out = Vec::new();
    ep.reject(first, 486, "Busy Here", t0, &mut out);
    assert_eq!(ep.leg_count(), 1);
    offer(&mut ep, "c4", from("10.0.0.3"), t0).unwrap();
    // Dialled legs count too, and a dial beyond the limit fails.
    let mut out = Vec::new();
    assert!(ep
        .dial("sip:1@127.0.0.1", "huddle", Bytes::new(), t0, &mut out)
        .is_none());
    assert!(out.is_empty(), "nothing is sent for a refused dial");
}

#[test]
fn the_source_rate_refuses_beyond_the_burst_and_recovers_with_time() {
    let mut ep = endpoint(limits(1000, 2, 3, 1000));
    let t0 = Instant::now();
    let src = from("10.0.0.1");
    for i in 0..3 {
        let leg = offer(&mut ep, &format!("r{i}"), src, t0).unwrap();
        let mut out = Vec::new();
        ep.reject(leg, 603, "Decline", t0, &mut out);
    }
    let refused = offer(&mut ep, "r3", src, t0).unwrap_err();
    assert_503(&refused, 1);
    assert_eq!(refusals(&ep, LimitRefusal::SourceRate), 1);
    // Another source is not held back by this one.
    offer(&mut ep, "other", from("10.0.0.2"), t0).unwrap();
    // Two a second: a token is back after 500 ms.
    offer(&mut ep, "r4", src, t0 + Duration::from_millis(500)).unwrap();
}

#[test]
fn unconfirmed_calls_count_until_the_ack_and_retransmissions_are_not_refused() {
    let mut ep = endpoint(limits(1000, 1000, 1000, 1));
    let t0 = Instant::now();
    let src = from("10.0.0.1");
    let leg = offer(&mut ep, "u1", src, t0).unwrap();
    assert_eq!(ep.limiter().unwrap().unconfirmed(ip("10.0.0.1")), 1);
    // A retransmission of the admitted INVITE is absorbed by its transaction (100 again),
    // not refused, although the source is at its cap.
    let mut out = Vec::new();
    ep.handle_message(invite("u1").as_bytes(), src, t0, &mut out);
    assert_eq!(status_lines(&out), ["SIP/2.0 100 Trying"]);
    // A new call is refused while the first rings...
    assert_503(&offer(&mut ep, "u2", src, t0).unwrap_err(), 5);
    // ...and while it is answered but not acknowledged.
    let mut out = Vec::new();
    ep.answer(leg, Bytes::from_static(b"v=0\r\n"), t0, &mut out);
    let ok = sent(&out).remove(0);
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert_503(&offer(&mut ep, "u3", src, t0).unwrap_err(), 5);
    assert_eq!(refusals(&ep, LimitRefusal::SourceUnconfirmed), 2);
    // The ACK confirms it: the source may call again, and the call itself goes on.
    let to = header(&ok, "To").unwrap();
    let mut out = Vec::new();
    ep.handle_message(ack("u1", &to).as_bytes(), src, t0, &mut out);
    assert!(matches!(
        out.as_slice(),
        [EndpointOutput::Event(EndpointEvent::Established { .. })]
    ));
    assert_eq!(ep.limiter().unwrap().unconfirmed(ip("10.0.0.1")), 0);
    offer(&mut ep, "u4", src, t0).unwrap();
    assert_eq!(ep.leg_count(), 2);
}

#[test]
fn every_way_out_of_the_unconfirmed_state_gives_the_place_back() {
    let mut ep = endpoint(limits(1000, 1000, 1000, 1000));
    let t0 = Instant::now();
    let src = from("10.0.0.1");
    let unconfirmed = |ep: &Endpoint| ep.limiter().unwrap().unconfirmed(ip("10.0.0.1"));

    // Rejected by the application.
    let leg = offer(&mut ep, "w1", src, t0).unwrap();
    let mut out = Vec::new();
    ep.reject(leg, 404, "Not Found", t0, &mut out);
    assert_eq!(unconfirmed(&ep), 0, "rejected");

    // Cancelled by the caller.
    offer(&mut ep, "w2", src, t0).unwrap();
    assert_eq!(unconfirmed(&ep), 1);
    let mut out = Vec::new();
    ep.handle_message(cancel("w2").as_bytes(), src, t0, &mut out);
    assert!(status_lines(&out).contains(&"SIP/2.0 487 Request Terminated".to_string()));
    assert_eq!(unconfirmed(&ep), 0, "cancelled");

    // Hung up by us while ringing (480).
    let leg = offer(&mut ep, "w3", src, t0).unwrap();
    let mut out = Vec::new();
    ep.hangup(leg, t0, &mut out);
    assert_eq!(unconfirmed(&ep), 0, "hung up while ringing");

    // Answered and never acknowledged: timer L ends it with a BYE.
    let leg = offer(&mut ep, "w4", src, t0).unwrap();
    let mut out = Vec::new();
    ep.answer(leg, Bytes::from_static(b"v=0\r\n"), t0, &mut out);
    assert_eq!(unconfirmed(&ep), 1);
    let mut out = Vec::new();
    ep.handle_timeout(t0 + Duration::from_secs(33), &mut out);
    assert!(
        sent(&out).iter().any(|m| m.starts_with("BYE ")),
        "{:?}",
        status_lines(&out)
    );
    assert_eq!(unconfirmed(&ep), 0, "2xx never acknowledged");

    // Answered, hung up by us before the ACK: the BYE waits for the ACK, which confirms.
    let t1 = t0 + Duration::from_secs(40);
    let leg = offer(&mut ep, "w5", src, t1).unwrap();
    let mut out = Vec::new();
    ep.answer(leg, Bytes::from_static(b"v=0\r\n"), t1, &mut out);
    let to = header(&sent(&out)[0], "To").unwrap();
    ep.hangup(leg, t1, &mut Vec::new());
    assert_eq!(unconfirmed(&ep), 1, "still the caller's to acknowledge");
    let mut out = Vec::new();
    ep.handle_message(ack("w5", &to).as_bytes(), src, t1, &mut out);
    assert!(sent(&out).iter().any(|m| m.starts_with("BYE ")));
    assert_eq!(unconfirmed(&ep), 0, "acknowledged, then hung up");
    assert_eq!(ep.limiter().unwrap().sources_with_unconfirmed(), 0);
}

#[test]
fn without_limits_nothing_is_refused() {
    let mut ep = endpoint(limits(1, 1, 1, 1));
    ep.set_call_limits(None);
    let t0 = Instant::now();
    for i in 0..50 {
        offer(&mut ep, &format!("n{i}"), from("10.0.0.1"), t0).unwrap();
    }
    assert_eq!(ep.leg_count(), 50);
}
