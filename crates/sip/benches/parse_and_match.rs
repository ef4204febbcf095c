//! SIP message parse + validation + transaction lookup: the per-message cost of the SIP loop.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use huddle_sip::headers::validate_request;
use huddle_sip::message::{parse, Framing, SipMessage};
use huddle_sip::transaction::{Peer, TimerConfig, TransactionLayer, TransportKind};

/// The INVITE sipp's built-in `uac` scenario sends, with its SDP.
fn sipp_invite(branch: u32) -> String {
    let sdp = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:echo@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{branch}-1-0\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag={branch}SIPpTag001\r\nTo: echo <sip:echo@127.0.0.1:5060>\r\n\
Call-ID: {branch}-1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: sip:sipp@127.0.0.1:5061\r\nMax-Forwards: 70\r\n\
Subject: Performance Test\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn bench(c: &mut Criterion) {
    let peer = Peer {
        addr: "127.0.0.1:5061".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    let invite = sipp_invite(7);
    c.bench_function("sip_parse_validate_invite", |b| {
        b.iter(|| {
            let msg = parse(black_box(invite.as_bytes()), Framing::Datagram).unwrap();
            if let SipMessage::Request(req) = &msg {
                validate_request(req).unwrap();
            }
            msg
        })
    });

    // A layer holding 10,000 live INVITE transactions; look up a retransmission among them.
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let now = Instant::now();
    let mut out = Vec::new();
    for i in 0..10_000 {
        if let Ok(SipMessage::Request(req)) = parse(sipp_invite(i).as_bytes(), Framing::Datagram) {
            layer.on_request(&req, peer, now, &mut out);
        }
    }
    let retransmission = sipp_invite(4242);
    c.bench_function("sip_parse_and_match_retransmission_10k_tx", |b| {
        b.iter(|| {
            out.clear();
            let SipMessage::Request(req) =
                parse(black_box(retransmission.as_bytes()), Framing::Datagram).unwrap()
            else {
                unreachable!()
            };
            layer.on_request(&req, peer, now, &mut out)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
