//! Feeds the endpoint hundreds of thousands of mutated messages: it must never panic, and every
//! reply it sends must itself parse.

use std::time::Instant;

use huddle_sip::endpoint::{Endpoint, EndpointConfig, EndpointOutput};
use huddle_sip::message::{parse, Framing};
use huddle_sip::transaction::{Peer, TimerConfig, TransportKind};

const SEED_MESSAGES: &[&str] = &[
    "INVITE sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKm1;rport\r\n\
From: \"A\" <sip:a@127.0.0.1>;tag=x\r\nt: <sip:echo@127.0.0.1>\r\ni: m1\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:a@127.0.0.1:5099>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nl: 31\r\n\r\n\
v=0\r\nm=audio 7000 RTP/AVP 0\r\n",
    "BYE sip:huddle@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP [::1]:5099;branch=z9hG4bKm2\r\n\
From: <sip:a@h>;tag=x\r\nTo: <sip:b@h>;tag=y\r\nCall-ID: m2\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKm3\r\nFrom: <sip:a@h>;tag=x\r\n\
To: <sip:b@h>;tag=y\r\nCall-ID: m3\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
];

/// xorshift: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let pos = rng.below(m.len());
        match rng.below(6) {
            0 => m[pos] = rng.next() as u8,
            1 => {
                m.truncate(pos);
            }
            2 => {
                let specials = b":;<>\",\r\n \t%\0";
                m.insert(pos, specials[rng.below(specials.len())]);
            }
            3 => {
                let end = (pos + rng.below(20)).min(m.len());
                m.drain(pos..end);
            }
            4 => {
                let end = (pos + rng.below(40)).min(m.len());
                let chunk = m[pos..end].to_vec();
                let at = rng.below(m.len());
                m.splice(at..at, chunk);
            }
            _ => m.extend(std::iter::repeat_n(b'9', rng.below(30))),
        }
        if m.is_empty() {
            break;
        }
    }
    m
}

#[test]
fn mutated_messages_never_panic_and_replies_parse() {
    let mut ep = Endpoint::new(EndpointConfig {
        advertised_host: "127.0.0.1".into(),
        udp_port: Some(5060),
        tcp_port: Some(5060),
        user_agent: "huddle-test".into(),
        trunk: None,
        timers: TimerConfig::default(),
    });
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let now = Instant::now();
    let mut out = Vec::new();
    let mut replies = 0;
    for i in 0..200_000 {
        let seed = SEED_MESSAGES[i % SEED_MESSAGES.len()].as_bytes();
        let msg = mutate(&mut rng, seed);
        let transport = if i % 2 == 0 {
            TransportKind::Udp
        } else {
            TransportKind::Tcp
        };
        let peer = Peer {
            addr: "127.0.0.1:5099".parse().unwrap(),
            transport,
        };
        ep.handle_message(&msg, peer, now, &mut out);
        for o in out.drain(..) {
            if let EndpointOutput::Send { data, .. } = o {
                replies += 1;
                assert!(
                    parse(&data, Framing::Datagram).is_ok(),
                    "reply does not parse:\n{}\nfor input:\n{}",
                    String::from_utf8_lossy(&data),
                    String::from_utf8_lossy(&msg)
                );
            }
        }
        // Keep the endpoint from accumulating calls across iterations.
        for leg in ep.legs() {
            ep.reject(leg, 486, "Busy Here", now, &mut out);
        }
        out.clear();
    }
    assert!(
        replies > 10_000,
        "mutations still produce answerable messages: {replies}"
    );
}
