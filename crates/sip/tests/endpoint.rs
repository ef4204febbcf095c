//! Drives the sans-IO endpoint with simulated time: no sockets, no sleeps.

use std::time::{Duration, Instant};

use bytes::Bytes;
use huddle_sip::address::{self, Destination, OutboundCall};
use huddle_sip::endpoint::{
    EndReason, Endpoint, EndpointConfig, EndpointEvent, EndpointOutput, TrunkConfig,
};
use huddle_sip::transaction::{Peer, TimerConfig, TransportKind};

fn endpoint() -> Endpoint {
    Endpoint::new(EndpointConfig {
        advertised_host: "127.0.0.1".into(),
        udp_port: Some(5060),
        tcp_port: Some(5060),
        user_agent: "huddle-test".into(),
        trunk: Some(TrunkConfig {
            uri: "sip:127.0.0.1:5070".into(),
            username: "user".into(),
            password: "secret".into(),
            strip_plus: false,
        }),
        timers: TimerConfig::default(),
    })
}

fn caller() -> Peer {
    Peer {
        addr: "127.0.0.1:5099".parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

fn invite(branch: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch={branch};rport\r\n\
From: <sip:alice@127.0.0.1>;tag=alice1\r\nTo: <sip:echo@127.0.0.1>\r\nCall-ID: call-{branch}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5099>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
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

fn events(out: &[EndpointOutput]) -> Vec<EndpointEvent> {
    out.iter()
        .filter_map(|o| match o {
            EndpointOutput::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim())
}

#[test]
fn inbound_call_answer_ack_and_remote_bye() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let mut out = Vec::new();
    ep.handle_message(invite("z9hG4bKa1").as_bytes(), caller(), t0, &mut out);
    assert_eq!(status_lines(&out), vec!["SIP/2.0 100 Trying"]);
    let via = header(&sent(&out)[0], "Via").unwrap().to_string();
    assert!(
        via.contains("received=127.0.0.1") && via.contains("rport=5099"),
        "{via}"
    );
    let leg = match &events(&out)[..] {
        [EndpointEvent::IncomingCall { leg, .. }] => *leg,
        other => panic!("{other:?}"),
    };
    out.clear();
    ep.answer(leg, Bytes::from_static(b"v=0\r\n"), t0, &mut out);
    let ok = sent(&out).remove(0);
    assert!(ok.starts_with("SIP/2.0 200 OK"));
    let to = header(&ok, "To").unwrap().to_string();
    assert!(to.contains(";tag="), "{to}");
    assert!(header(&ok, "Contact")
        .unwrap()
        .contains("sip:huddle@127.0.0.1:5060"));

    // A retransmitted INVITE gets the same 200 and creates no second call.
    out.clear();
    ep.handle_message(invite("z9hG4bKa1").as_bytes(), caller(), t0, &mut out);
    assert!(events(&out).is_empty());
    assert_eq!(status_lines(&out), vec!["SIP/2.0 200 OK"]);
    assert_eq!(ep.leg_count(), 1);

    let ack = format!(
        "ACK sip:huddle@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKack\r\n\
From: <sip:alice@127.0.0.1>;tag=alice1\r\nTo: {to}\r\nCall-ID: call-z9hG4bKa1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    out.clear();
    ep.handle_message(
        ack.as_bytes(),
        caller(),
        t0 + Duration::from_millis(100),
        &mut out,
    );
    assert_eq!(events(&out), vec![EndpointEvent::Established { leg }]);

    // No 2xx retransmission after the ACK.
    out.clear();
    ep.handle_timeout(t0 + Duration::from_secs(10), &mut out);
    assert!(sent(&out).is_empty());

    let bye = ack
        .replace("ACK sip", "BYE sip")
        .replace("1 ACK", "2 BYE")
        .replace("z9hG4bKack", "z9hG4bKbye");
    out.clear();
    ep.handle_message(
        bye.as_bytes(),
        caller(),
        t0 + Duration::from_secs(11),
        &mut out,
    );
    assert_eq!(status_lines(&out), vec!["SIP/2.0 200 OK"]);
    assert_eq!(
        events(&out),
        vec![EndpointEvent::Ended {
            leg,
            reason: EndReason::RemoteBye
        }]
    );
    assert_eq!(ep.leg_count(), 0);

    // A BYE for the now unknown dialog gets 481.
    out.clear();
    ep.handle_message(
        bye.replace("z9hG4bKbye", "z9hG4bKbye2")
            .replace("2 BYE", "3 BYE")
            .as_bytes(),
        caller(),
        t0,
        &mut out,
    );
    assert_eq!(
        status_lines(&out),
        vec!["SIP/2.0 481 Call/Transaction Does Not Exist"]
    );
}

#[test]
fn cancel_before_answer_gives_487() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let inv = invite("z9hG4bKc1");
    ep.handle_message(inv.as_bytes(), caller(), t0, &mut out);
    out.clear();
    let cancel = inv
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL")
        .replace("Content-Type: application/sdp\r\n", "")
        .replace(
            &format!(
                "Content-Length: {}",
                inv.split("\r\n\r\n").nth(1).unwrap().len()
            ),
            "Content-Length: 0",
        )
        + "\r\n\r\n";
    ep.handle_message(cancel.as_bytes(), caller(), t0, &mut out);
    let lines = status_lines(&out);
    assert!(lines.contains(&"SIP/2.0 200 OK".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"SIP/2.0 487 Request Terminated".to_string()),
        "{lines:?}"
    );
    assert!(matches!(
        &events(&out)[..],
        [EndpointEvent::Ended {
            reason: EndReason::Cancelled,
            ..
        }]
    ));
    assert_eq!(ep.leg_count(), 0);
}

#[test]
fn unanswered_2xx_is_retransmitted_then_ends_with_bye() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let mut out = Vec::new();
    ep.handle_message(invite("z9hG4bKr1").as_bytes(), caller(), t0, &mut out);
    let EndpointEvent::IncomingCall { leg, .. } = events(&out)[0].clone() else {
        panic!()
    };
    ep.answer(leg, Bytes::from_static(b"v=0\r\n"), t0, &mut out);
    out.clear();
    let mut now = t0;
    while let Some(at) = ep
        .next_deadline()
        .filter(|d| *d <= t0 + Duration::from_secs(33))
    {
        now = at;
        ep.handle_timeout(now, &mut out);
    }
    let oks = status_lines(&out)
        .iter()
        .filter(|l| l.starts_with("SIP/2.0 200"))
        .count();
    assert!(oks >= 7, "2xx retransmitted until timer L, got {oks}");
    assert!(events(&out).contains(&EndpointEvent::Ended {
        leg,
        reason: EndReason::AckTimeout
    }));
    assert!(sent(&out)
        .iter()
        .any(|m| m.starts_with("BYE sip:alice@127.0.0.1:5099")));
    let _ = now;
}

#[test]
fn options_unknown_method_malformed_and_draining() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let options = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKo1\r\n\
From: <sip:k@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    ep.handle_message(options.as_bytes(), caller(), t0, &mut out);
    assert_eq!(status_lines(&out), vec!["SIP/2.0 200 OK"]);
    assert!(header(&sent(&out)[0], "Allow").unwrap().contains("INVITE"));

    out.clear();
    let foo = options
        .replace("OPTIONS sip", "FOO sip")
        .replace("1 OPTIONS", "1 FOO")
        .replace("z9hG4bKo1", "z9hG4bKf1");
    ep.handle_message(foo.as_bytes(), caller(), t0, &mut out);
    assert_eq!(status_lines(&out), vec!["SIP/2.0 405 Method Not Allowed"]);

    out.clear();
    let no_callid = options
        .replace("Call-ID: o1\r\n", "")
        .replace("z9hG4bKo1", "z9hG4bKn1");
    ep.handle_message(no_callid.as_bytes(), caller(), t0, &mut out);
    assert!(status_lines(&out)[0].starts_with("SIP/2.0 400 Bad Request (missing Call-ID"));

    out.clear();
    ep.handle_message(b"\x00\x01\x02 garbage", caller(), t0, &mut out);
    assert!(out.is_empty(), "garbage without Via cannot be answered");

    out.clear();
    ep.set_draining(true);
    ep.handle_message(invite("z9hG4bKd1").as_bytes(), caller(), t0, &mut out);
    assert_eq!(status_lines(&out), vec!["SIP/2.0 503 Service Unavailable"]);
    assert!(events(&out).is_empty());
    assert!(ep.stats().malformed >= 2);

    // A probe while draining learns that this server takes no new calls.
    out.clear();
    let probe = options.replace("z9hG4bKo1", "z9hG4bKo2");
    ep.handle_message(probe.as_bytes(), caller(), t0, &mut out);
    assert_eq!(status_lines(&out), vec!["SIP/2.0 503 Service Unavailable"]);
    assert_eq!(header(&sent(&out)[0], "Retry-After"), Some("30"));
}

#[test]
fn outbound_call_answers_digest_challenge() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let leg = ep
        .dial(
            "sip:+15551234@127.0.0.1:5070",
            "huddle",
            Bytes::from_static(b"v=0\r\n"),
            t0,
            &mut out,
        )
        .unwrap();
    let inv = sent(&out).remove(0);
    assert!(inv.starts_with("INVITE sip:+15551234@127.0.0.1:5070 SIP/2.0"));
    let respond = |inv: &str, status: &str, extra: &str| {
        let mut r = format!("SIP/2.0 {status}\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            let v = header(inv, name).unwrap();
            if name == "To" && !status.starts_with("100") {
                r.push_str(&format!("To: {v};tag=trunk1\r\n"));
            } else {
                r.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        r.push_str(extra);
        r.push_str("Content-Length: 0\r\n\r\n");
        r
    };
    out.clear();
    let challenge = respond(
        &inv,
        "407 Proxy Authentication Required",
        "Proxy-Authenticate: Digest realm=\"trunk\", nonce=\"n0nce\", qop=\"auth\"\r\n",
    );
    ep.handle_message(challenge.as_bytes(), caller(), t0, &mut out);
    let msgs = sent(&out);
    assert!(
        msgs.iter().any(|m| m.starts_with("ACK ")),
        "ACK for the 407"
    );
    let retry = msgs
        .iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("retried INVITE")
        .clone();
    assert!(header(&retry, "Proxy-Authorization")
        .unwrap()
        .contains("username=\"user\""));
    assert_eq!(header(&retry, "CSeq"), Some("2 INVITE"));

    out.clear();
    let ok = respond(&retry, "200 OK", "Contact: <sip:trunk@127.0.0.1:5070>\r\n");
    ep.handle_message(ok.as_bytes(), caller(), t0, &mut out);
    assert!(events(&out).contains(&EndpointEvent::OutboundAnswered {
        leg,
        sdp: Bytes::new()
    }));
    assert!(sent(&out)
        .iter()
        .any(|m| m.starts_with("ACK sip:trunk@127.0.0.1:5070")));

    out.clear();
    ep.hangup(leg, t0, &mut out);
    let bye = sent(&out).remove(0);
    assert!(bye.starts_with("BYE sip:trunk@127.0.0.1:5070"));
    assert_eq!(header(&bye, "CSeq"), Some("3 BYE"));
}

#[test]
fn unknown_sip_version_gets_505_other_parse_errors_400() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let future = invite("z9hG4bKv1").replacen("SIP/2.0\r\n", "SIP/7.0\r\n", 1);
    ep.handle_message(future.as_bytes(), caller(), t0, &mut out);
    assert_eq!(
        status_lines(&out),
        vec!["SIP/2.0 505 Version Not Supported"]
    );

    out.clear();
    let bad_line = invite("z9hG4bKv2").replacen("INVITE sip", "INVITE  sip", 1);
    ep.handle_message(bad_line.as_bytes(), caller(), t0, &mut out);
    let lines = status_lines(&out);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("SIP/2.0 400 Bad Request ("),
        "{lines:?}"
    );
    assert!(events(&out).is_empty());
}

mod inbound_auth {
    use std::collections::HashMap;
    use std::sync::Arc;

    use huddle_sip::auth::{Credentials, InboundAuth, RouteAuth};
    use huddle_sip::digest::Algorithm;

    use super::*;

    struct EchoNeedsAuth;

    impl RouteAuth for EchoNeedsAuth {
        fn requires_auth(&self, user: &str) -> bool {
            user == "echo"
        }
    }

    fn guarded(t0: Instant) -> Endpoint {
        let mut ep = endpoint();
        let mut users = HashMap::new();
        users.insert(
            "alice".to_string(),
            Credentials::from_password("alice", "huddle", "wonderland"),
        );
        let auth = InboundAuth::new("huddle", users, Arc::new(EchoNeedsAuth));
        ep.set_inbound_auth(Some(auth), t0);
        ep
    }

    /// The INVITE of `invite(branch)` for `user`, with CSeq `cseq` and an Authorization.
    fn invite_with(branch: &str, user: &str, cseq: u32, authorization: Option<&str>) -> String {
        let mut text = invite(branch)
            .replace("sip:echo@", &format!("sip:{user}@"))
            .replace("CSeq: 1 INVITE", &format!("CSeq: {cseq} INVITE"))
            .replace("call-", "call-auth-");
        if let Some(a) = authorization {
            text = text.replace(
                "Max-Forwards: 70\r\n",
                &format!("Max-Forwards: 70\r\nAuthorization: {a}\r\n"),
            );
        }
        text
    }

    fn answer(challenge: &str, alg: Algorithm, password: &str, nc: u32) -> String {
        let param = |name: &str| {
            challenge
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap()
                .to_string()
        };
        let (realm, nonce) = (param("realm"), param("nonce"));
        let uri = "sip:echo@127.0.0.1";
        let nc = format!("{nc:08x}");
        let ha1 = alg.hex(&format!("alice:{realm}:{password}"));
        let ha2 = alg.hex(&format!("INVITE:{uri}"));
        let response = alg.hex(&format!("{ha1}:{nonce}:{nc}:abc:auth:{ha2}"));
        format!(
            "Digest username=\"alice\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"abc\"",
            alg.token()
        )
    }

    #[test]
    fn a_challenged_invite_is_answered_401_in_its_transaction_then_authorized() {
        let t0 = Instant::now();
        let mut ep = guarded(t0);
        let mut out = Vec::new();
        let first = invite_with("z9hG4bKa1", "echo", 1, None);
        ep.handle_message(first.as_bytes(), caller(), t0, &mut out);
        assert_eq!(
            status_lines(&out),
            ["SIP/2.0 401 Unauthorized"],
            "no 100 Trying first"
        );
        assert!(
            events(&out).is_empty(),
            "no call for an unauthenticated INVITE"
        );
        assert_eq!(ep.leg_count(), 0);
        let resp = sent(&out).remove(0);
        let challenges: Vec<&str> = resp
            .lines()
            .filter(|l| l.starts_with("WWW-Authenticate:"))
            .collect();
        assert_eq!(challenges.len(), 2, "{resp}");
        assert!(
            challenges[0].contains("algorithm=SHA-256") && challenges[1].contains("algorithm=MD5")
        );
        let to = header(&resp, "To").unwrap().to_string();
        assert!(to.contains(";tag="), "{to}");
        // A retransmitted INVITE gets the same 401 from the transaction; its ACK is absorbed.
        out.clear();
        ep.handle_message(
            first.as_bytes(),
            caller(),
            t0 + Duration::from_millis(500),
            &mut out,
        );
        assert_eq!(sent(&out), std::slice::from_ref(&resp));
        out.clear();
        let ack = first
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .replacen("INVITE sip", "ACK sip", 1)
            .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
            .replace("To: <sip:echo@127.0.0.1>", &format!("To: {to}"))
            .replace("Content-Type: application/sdp\r\n", "")
            .lines()
            .filter(|l| !l.starts_with("Content-Length"))
            .collect::<Vec<_>>()
            .join("\r\n")
            + "\r\nContent-Length: 0\r\n\r\n";
        ep.handle_message(
            ack.as_bytes(),
            caller(),
            t0 + Duration::from_millis(600),
            &mut out,
        );
        assert!(out.is_empty(), "{:?}", sent(&out));

        // The INVITE again with credentials: a call.
        let credentials = answer(challenges[0], Algorithm::Sha256, "wonderland", 1);
        let second = invite_with("z9hG4bKa2", "echo", 2, Some(&credentials));
        ep.handle_message(
            second.as_bytes(),
            caller(),
            t0 + Duration::from_secs(1),
            &mut out,
        );
        assert_eq!(status_lines(&out), ["SIP/2.0 100 Trying"]);
        assert!(matches!(
            events(&out)[..],
            [EndpointEvent::IncomingCall { .. }]
        ));

        // The same credentials in another transaction: a replayed nonce count, 403.
        out.clear();
        let replay = invite_with("z9hG4bKa3", "echo", 3, Some(&credentials))
            .replace("call-auth-", "call-replay-");
        ep.handle_message(
            replay.as_bytes(),
            caller(),
            t0 + Duration::from_secs(2),
            &mut out,
        );
        assert_eq!(status_lines(&out), ["SIP/2.0 403 Forbidden"]);
        assert!(events(&out).is_empty());

        // A wrong password: 403, not another challenge.
        out.clear();
        let wrong = answer(challenges[1], Algorithm::Md5, "guess", 1);
        let third =
            invite_with("z9hG4bKa4", "echo", 2, Some(&wrong)).replace("call-auth-", "call-wrong-");
        ep.handle_message(
            third.as_bytes(),
            caller(),
            t0 + Duration::from_secs(3),
            &mut out,
        );
        assert_eq!(status_lines(&out), ["SIP/2.0 403 Forbidden"]);

        // Garbage credentials: 400.
        out.clear();
        let junk = invite_with(
            "z9hG4bKa5",
            "echo",
            2,
            Some("Digest realm=\"huddle\", nc=zz"),
        )
        .replace("call-auth-", "call-junk-");
        ep.handle_message(
            junk.as_bytes(),
            caller(),
            t0 + Duration::from_secs(3),
            &mut out,
        );
        assert_eq!(status_lines(&out).len(), 1);
        assert!(
            status_lines(&out)[0].starts_with("SIP/2.0 400 Bad Request ("),
            "{:?}",
            status_lines(&out)
        );

        let stats = ep.stats();
        assert_eq!((stats.auth_challenges, stats.auth_refusals), (1, 3));
        assert_eq!(ep.leg_count(), 1);
    }

    #[test]
    fn routes_without_auth_are_not_challenged() {
        let t0 = Instant::now();
        let mut ep = guarded(t0);
        let mut out = Vec::new();
        let free = invite_with("z9hG4bKb1", "customer-sales", 1, None);
        ep.handle_message(free.as_bytes(), caller(), t0, &mut out);
        assert_eq!(status_lines(&out), ["SIP/2.0 100 Trying"]);
        assert!(matches!(
            events(&out)[..],
            [EndpointEvent::IncomingCall { .. }]
        ));
        assert_eq!(ep.stats().auth_challenges, 0);
    }
}

#[test]
fn a_dialled_number_goes_on_the_trunks_host_with_caller_name_and_headers() {
    let mut ep = endpoint();
    let mut out = Vec::new();
    let call = OutboundCall {
        to: Destination::parse("15557654321", "to").unwrap(),
        from: Destination::parse("+14155550100", "from").unwrap(),
        display_name: Some(address::display_name("Help \"Desk\"").unwrap()),
        headers: address::custom_headers("Account=42").unwrap(),
    };
    ep.dial_call(
        &call,
        Bytes::from_static(b"v=0\r\n"),
        Instant::now(),
        &mut out,
    )
    .expect("dialled");
    let inv = sent(&out).remove(0);
    assert!(
        inv.starts_with("INVITE sip:15557654321@127.0.0.1:5070 SIP/2.0\r\n"),
        "{inv}"
    );
    assert_eq!(header(&inv, "To"), Some("<sip:15557654321@127.0.0.1:5070>"));
    let from = header(&inv, "From").unwrap();
    assert!(
        from.starts_with("\"Help \\\"Desk\\\"\" <sip:+14155550100@127.0.0.1>;tag="),
        "{from}"
    );
    assert_eq!(header(&inv, "X-Account"), Some("42"));
}
