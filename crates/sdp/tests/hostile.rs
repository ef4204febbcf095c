//! Hostile bodies: typed errors, never a panic.

mod common;

use common::{assert_well_formed, local, FREESWITCH, SIPP, TWILIO};
use huddle_sdp::{negotiate, parse_answer, parse_offer, SdpError, MAX_SDP_BYTES, PCMA, PCMU};

#[test]
fn malformed_bodies_name_the_problem() {
    let cases: Vec<(Vec<u8>, SdpError)> = vec![
        (b"".to_vec(), SdpError::Empty),
        (b"\r\n\r\n".to_vec(), SdpError::Empty),
        (
            b"garbage".to_vec(),
            SdpError::BadLine {
                line: 1,
                reason: "not a <letter>=<value> line",
            },
        ),
        (b"\xff\xfe\xfd".to_vec(), SdpError::NotUtf8 { offset: 0 }),
        (b"v=0\r\n".to_vec(), SdpError::Missing("o=")),
        (
            SIPP.replace("v=0\r\n", "").into_bytes(),
            SdpError::BadLine {
                line: 1,
                reason: "SDP must start with v=",
            },
        ),
        (
            SIPP.replace("o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n", "")
                .into_bytes(),
            SdpError::Missing("o="),
        ),
        (
            SIPP.replace("m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", "")
                .into_bytes(),
            SdpError::Missing("m="),
        ),
        (
            SIPP.replace("6000", "99999").into_bytes(),
            SdpError::BadPort {
                media: 1,
                value: "99999".into(),
            },
        ),
        (
            SIPP.replace("6000", "http").into_bytes(),
            SdpError::BadPort {
                media: 1,
                value: "http".into(),
            },
        ),
        (
            SIPP.replace("RTP/AVP 0", "RTP/AVP PCMU").into_bytes(),
            SdpError::BadPayloadType {
                media: 1,
                value: "PCMU".into(),
            },
        ),
        (
            SIPP.replace("c=IN IP4 127.0.0.1\r\n", "").into_bytes(),
            SdpError::MissingConnection { media: 1 },
        ),
        (
            SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 999.1.1.1")
                .into_bytes(),
            SdpError::BadAddress {
                value: "999.1.1.1".into(),
                reason: "not an IP address (host names are not resolved)",
            },
        ),
        (
            SIPP.replace("a=rtpmap", "a=rtp\0map").into_bytes(),
            SdpError::BadLine {
                line: 7,
                reason: "contains a control character",
            },
        ),
    ];
    for (body, want) in cases {
        assert_eq!(
            parse_offer(&body),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(&body)
        );
    }
    let huge = format!("{SIPP}{}", "a=x\r\n".repeat(MAX_SDP_BYTES / 4));
    assert_eq!(
        parse_offer(huge.as_bytes()),
        Err(SdpError::TooLarge {
            len: huge.len(),
            max: MAX_SDP_BYTES
        })
    );
    let out_of_order = SIPP.replace("s=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n", "t=0 0\r\ns=-\r\n");
    assert!(matches!(
        parse_offer(out_of_order.as_bytes()),
        Err(SdpError::Syntax(_))
    ));
}

#[test]
fn error_messages_stay_short() {
    let long_port = SIPP.replace("6000", &"9".repeat(5000));
    let e = parse_offer(long_port.as_bytes()).unwrap_err().to_string();
    assert!(e.len() < 200, "{e}");
    let long_origin = SIPP.replace("user1 53655765", &format!("user1 {}", "1".repeat(5000)));
    let e = parse_offer(long_origin.as_bytes()).unwrap_err().to_string();
    assert!(e.len() < 200, "{e}");
}

/// A small deterministic generator, so a failure reproduces.
struct XorShift(u64);

impl XorShift {
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

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"=",
    b" ",
    b"/",
    b":",
    b"0",
    b"65536",
    b"-1",
    b"m=audio 1 RTP/AVP 0\r\n",
    b"c=IN IP4 0.0.0.0\r\n",
    b"c=IN IP6 ::\r\n",
    b"a=rtpmap:0 PCMU/0\r\n",
    b"a=ptime:0\r\n",
    b"a=rtcp:70000\r\n",
    b"a=fmtp:\r\n",
    b"a=sendonly\r\n",
    b"m=image 0 udptl t38\r\n",
    b"\xc3\xa9",
    b"\xff",
    b"\0",
    b"99999999999999999999999",
];

fn mutate(rng: &mut XorShift, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                let n = rng.below(16).min(b.len() - i);
                b.drain(i..i + n);
            }
            2 => {
                let i = rng.below(b.len() + 1);
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                b.splice(i..i, piece.iter().copied());
            }
            3 => b.truncate(rng.below(b.len() + 1)),
            4 if !b.is_empty() => {
                let i = rng.below(b.len());
                let j = rng.below(b.len());
                let (lo, hi) = (i.min(j), i.max(j));
                let copy = b[lo..hi].to_vec();
                b.splice(hi..hi, copy);
            }
            _ => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.next() as u8 & 0x7f);
            }
        }
    }
    b
}

#[test]
fn mutated_offers_never_panic_and_answers_always_parse() {
    let bases = [SIPP, TWILIO, FREESWITCH];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut parsed, mut answered) = (0, 0);
    for round in 0..30_000 {
        let body = mutate(&mut rng, bases[round % bases.len()].as_bytes());
        let _ = parse_answer(&body, &[PCMU, PCMA], &local());
        let Ok(offer) = parse_offer(&body) else {
            continue;
        };
        parsed += 1;
        if let Ok(a) = negotiate(&offer, &[PCMU, PCMA], &local()) {
            answered += 1;
            assert_well_formed(&a.sdp, offer.media.len());
        }
    }
    // The mutations must leave enough valid offers for the answer check to mean something.
    assert!(
        parsed > 3_000 && answered > 1_000,
        "{parsed} parsed, {answered} answered"
    );
}
