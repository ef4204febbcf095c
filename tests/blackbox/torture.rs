//! Torture messages in the spirit of RFC 4475 §3.1: unusual but valid messages must be answered,
//! invalid ones must get 400 or be dropped, and nothing may crash the server.

use std::time::Duration;

use huddle_testkit::SipUa;

use super::server;

fn base(method: &str, n: u32) -> String {
    format!(
        "{method} sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKtort{n}\r\nMax-Forwards: 70\r\n\
From: <sip:t@127.0.0.1>;tag=tt\r\nTo: <sip:echo@127.0.0.1>\r\nCall-ID: torture{n}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn torture_messages() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut srv = server("", 100);
        let mut ua = SipUa::udp(srv.sip).await;
        // (message, expected status; 0 = no answer)
        let valid = vec![
            // Compact header forms and odd whitespace around colons (RFC 4475 "wsinv" spirit).
            (base("OPTIONS", 1).replace("Via:", "v  :").replace("Call-ID:", "i:").replace("From:", "f:"), 200),
            // Header folding.
            (base("OPTIONS", 2).replace("Max-Forwards: 70", "Max-Forwards:\r\n  70"), 200),
            // Extension method ("intmeth"): a well-formed unknown method gets 405, not 400.
            (base("NEWMETHOD", 3), 405),
            // Unknown headers and an unknown URI parameter are ignored.
            (base("OPTIONS", 4).replace("Max-Forwards", "X-Unknown: ;;,,\r\nMax-Forwards"), 200),
            // A response with no reason phrase ("noreason") is not a request: never answered.
            ("SIP/2.0 100 \r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".into(), 0),
        ];
        let invalid = vec![
            // CSeq method mismatch ("mismatch01").
            (base("OPTIONS", 10).replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"), 400),
            // CSeq number too large ("scalar02").
            (base("OPTIONS", 11).replace("CSeq: 1 ", "CSeq: 36893488147419103232 "), 400),
            // Non-numeric Max-Forwards ("scalarlg" style).
            (base("OPTIONS", 12).replace("Max-Forwards: 70", "Max-Forwards: 300"), 400),
            // Request-URI with spaces ("lwsruri").
            (base("OPTIONS", 13).replace("sip:echo@127.0.0.1 SIP", "sip:echo @127.0.0.1 SIP"), 400),
            // Unknown protocol version ("badvers"): 505.
            (base("OPTIONS", 14).replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia"), 505),
            // Two Call-IDs.
            (base("OPTIONS", 15).replace("Call-ID: torture15", "Call-ID: a\r\nCall-ID: b"), 400),
        ];
        for (msg, expect) in valid.into_iter().chain(invalid) {
            ua.send_raw(msg.as_bytes()).await;
            let resp = ua.recv_until(Duration::from_millis(700), |m| m.status() >= 200).await;
            match expect {
                0 => assert!(resp.is_none(), "{msg:?} -> {resp:?}"),
                code => assert_eq!(resp.as_ref().map(|r| r.status()), Some(code), "{msg:?}"),
            }
        }
        assert!(srv.is_running());
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn every_rfc4475_fixture_over_udp_and_tcp_leaves_the_server_serving() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut srv = server("", 100);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");
        let mut sent = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "dat") {
                let bytes = std::fs::read(&path).unwrap();
                let mut udp = SipUa::udp(srv.sip).await;
                udp.send_raw(&bytes).await;
                let mut tcp = SipUa::tcp(srv.sip).await;
                tcp.send_raw(&bytes).await;
                sent += 1;
            }
        }
        assert!(sent >= 30, "fixtures found: {sent}");
        // One UDP socket read in order: the answer to an OPTIONS sent after the fixtures means
        // the server has taken in every UDP fixture before it. The TCP fixtures, each on its
        // own connection, were written before either OPTIONS; the one over TCP shows that
        // side still serving too.
        let mut ua = SipUa::udp(srv.sip).await;
        ua.send_raw(base("OPTIONS", 99).as_bytes()).await;
        let resp = ua
            .recv_until(Duration::from_secs(2), |m| m.status() >= 200)
            .await;
        assert_eq!(resp.map(|r| r.status()), Some(200), "{}", srv.log());
        let mut tcp = SipUa::tcp(srv.sip).await;
        let options = base("OPTIONS", 98).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
        tcp.send_raw(options.as_bytes()).await;
        let resp = tcp
            .recv_until(Duration::from_secs(2), |m| m.status() >= 200)
            .await;
        assert_eq!(resp.map(|r| r.status()), Some(200), "{}", srv.log());
        assert!(srv.is_running(), "{}", srv.log());
    })
    .await
    .expect("timed out");
}
