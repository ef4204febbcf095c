//! RFC 4475 §3.1.1 valid messages (fixtures under tests/fixtures/rfc4475/): each must parse,
//! pass validation, and be answered by the endpoint with something other than 400.

use std::time::Instant;

use huddle_sip::endpoint::{Endpoint, EndpointConfig, EndpointOutput};
use huddle_sip::headers::validate_request;
use huddle_sip::message::{parse, Framing, SipMessage};
use huddle_sip::transaction::{Peer, TimerConfig, TransportKind};

const VALID: &[(&str, &[u8])] = &[
    (
        "wsinv",
        include_bytes!("../../../tests/fixtures/rfc4475/wsinv.dat"),
    ),
    (
        "intmeth",
        include_bytes!("../../../tests/fixtures/rfc4475/intmeth.dat"),
    ),
    (
        "esc01",
        include_bytes!("../../../tests/fixtures/rfc4475/esc01.dat"),
    ),
    (
        "escnull",
        include_bytes!("../../../tests/fixtures/rfc4475/escnull.dat"),
    ),
    (
        "esc02",
        include_bytes!("../../../tests/fixtures/rfc4475/esc02.dat"),
    ),
    (
        "lwsdisp",
        include_bytes!("../../../tests/fixtures/rfc4475/lwsdisp.dat"),
    ),
    (
        "semiuri",
        include_bytes!("../../../tests/fixtures/rfc4475/semiuri.dat"),
    ),
    (
        "transports",
        include_bytes!("../../../tests/fixtures/rfc4475/transports.dat"),
    ),
    // Two requests in one datagram: the first (Content-Length 0) is the message.
    (
        "dblreq",
        include_bytes!("../../../tests/fixtures/rfc4475/dblreq.dat"),
    ),
];

#[test]
fn unusual_reason_phrase_response_parses() {
    let bytes = include_bytes!("../../../tests/fixtures/rfc4475/unreason.dat");
    match parse(bytes, Framing::Datagram) {
        Ok(SipMessage::Response(r)) => {
            assert_eq!(r.status, 200);
            assert_eq!(r.body.len(), 154);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn valid_torture_messages_parse_validate_and_are_answered() {
    let mut ep = Endpoint::new(EndpointConfig {
        advertised_host: "127.0.0.1".into(),
        udp_port: Some(5060),
        tcp_port: Some(5060),
        user_agent: "huddle-test".into(),
        trunk: None,
        timers: TimerConfig::default(),
    });
    for (name, bytes) in VALID {
        let msg = parse(bytes, Framing::Datagram).unwrap_or_else(|e| panic!("{name}: {e}"));
        let SipMessage::Request(req) = &msg else {
            panic!("{name}: not a request")
        };
        validate_request(req).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = Vec::new();
        let peer = Peer {
            addr: "192.0.2.2:5060".parse().unwrap(),
            transport: TransportKind::Udp,
        };
        ep.handle_message(bytes, peer, Instant::now(), &mut out);
        let first = out.iter().find_map(|o| match o {
            EndpointOutput::Send { data, .. } => Some(String::from_utf8_lossy(data).to_string()),
            _ => None,
        });
        let line = first.unwrap_or_default();
        let line = line.lines().next().unwrap_or_default();
        assert!(
            line.starts_with("SIP/2.0 ") && !line.starts_with("SIP/2.0 400"),
            "{name}: {line}"
        );
    }
}

#[derive(serde::Deserialize)]
struct Manifest {
    message: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    name: String,
    section: String,
    expect: String,
    #[serde(default)]
    also_acceptable: Vec<String>,
}

/// What the endpoint did with one message: the first final status it sent, or whether it raised
/// a new call (an INVITE that call routing would answer).
fn outcome(ep: &mut Endpoint, bytes: &[u8]) -> String {
    let mut out = Vec::new();
    let peer = Peer {
        addr: "192.0.2.9:5060".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    ep.handle_message(bytes, peer, Instant::now(), &mut out);
    let mut raised_call = false;
    for o in &out {
        match o {
            EndpointOutput::Send { data, .. } => {
                let text = String::from_utf8_lossy(data);
                let code = text.get(8..11).unwrap_or("");
                if code != "100" {
                    return code.to_string();
                }
            }
            EndpointOutput::Event(_) => raised_call = true,
        }
    }
    if raised_call {
        "answer".into()
    } else if out.is_empty() {
        "none".into()
    } else {
        "100".into()
    }
}

#[test]
fn every_rfc4475_section_3_1_message_gets_the_manifest_outcome() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/rfc4475");
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(format!("{dir}/manifest.toml")).unwrap()).unwrap();
    assert!(manifest.message.len() >= 30, "the whole §3.1 set is listed");
    let mut failures = Vec::new();
    for entry in &manifest.message {
        let bytes = std::fs::read(format!("{dir}/{}.dat", entry.name)).unwrap();
        let mut ep = Endpoint::new(EndpointConfig {
            advertised_host: "127.0.0.1".into(),
            udp_port: Some(5060),
            tcp_port: Some(5060),
            user_agent: "huddle-test".into(),
            trunk: None,
            timers: TimerConfig::default(),
        });
        let got = outcome(&mut ep, &bytes);
        let accepted = |e: &str| match e {
            "ignore" | "drop" => got == "none",
            other => got == other,
        };
        if !accepted(&entry.expect) && !entry.also_acceptable.iter().any(|a| accepted(a)) {
            failures.push(format!(
                "{} ({}): expected {} (or {:?}), got {got}",
                entry.name, entry.section, entry.expect, entry.also_acceptable
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
