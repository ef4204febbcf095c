//! SIP over TLS: calls on a `tls:` listener with a certificate generated for the test, the
//! listener's behaviour towards plain TCP and stalled handshakes, and check-config's view of
//! the key and certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use huddle_testkit::{detect, free_tcp_port, tone_share, RtpPeer, ServerProcess, SipUa, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROOM_ROUTE: &str = "[[route]]\nuser = \"^(?P<role>agent|customer)-(?P<mpc>[a-z0-9]+)$\"\n\
xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n";

/// A server listening on UDP, TCP and TLS (on its own port, returned) with a certificate from
/// `pki`; handshakes time out after `handshake_secs`.
fn tls_server(pki: &TestPki, handshake_secs: u64) -> (ServerProcess, SocketAddr) {
    let tls_port = free_tcp_port();
    let srv = ServerProcess::start_with(Path::new(env!("CARGO_BIN_EXE_huddle")), 100, |slots| {
        let files = pki.write(&slots.dir.join("pki"));
        let tls = format!(
            "[sip.tls]\ncertificate = {:?}\nprivate_key = {:?}\nhandshake_timeout_secs = {handshake_secs}\n",
            files.certificate.display().to_string(),
            files.private_key.display().to_string(),
        );
        let plain = format!(
            "listen = [\"udp:127.0.0.1:{p}\", \"tcp:127.0.0.1:{p}\"]",
            p = slots.sip_port
        );
        let text = slots.standard("", "", ROOM_ROUTE);
        assert!(text.contains(&plain));
        text.replacen(
            &plain,
            &format!(
                "listen = [\"udp:127.0.0.1:{p}\", \"tcp:127.0.0.1:{p}\", \"tls:127.0.0.1:{tls_port}\"]",
                p = slots.sip_port
            ),
            1,
        )
        // [sip.tls] goes after the [sip] keys, before [rtp].
        .replacen("[rtp]", &format!("{tls}[rtp]"), 1)
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], tls_port));
    (srv, addr)
}

#[tokio::test]
async fn a_call_over_tls_to_the_echo_route_returns_the_tone() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let pki = TestPki::new();
        let (srv, tls) = tls_server(&pki, 10);
        let mut ua = SipUa::tls(tls, &pki).await;
        let mut rtp = RtpPeer::bind().await;
        let ok = ua
            .invite("echo", &SipUa::sdp(rtp.port(), &[0, 101]))
            .await
            .unwrap_or_else(|| panic!("no final response\n{}", srv.log()));
        assert_eq!(ok.status(), 200, "{ok:?}\n{}", srv.log());
        let contact = ok.header("Contact").unwrap_or_default();
        assert!(
            contact.contains(&format!("127.0.0.1:{};transport=tls", tls.port())),
            "{contact}"
        );
        let via = ok.header("Via").unwrap_or_default();
        assert!(via.starts_with("SIP/2.0/TLS"), "{via}");
        ua.ack().await;
        let media = ok.sdp_audio().expect("SDP answer with audio");
        let heard = rtp.talk(media, 1000.0, Duration::from_millis(1500)).await;
        assert!(heard.len() > 8000 / 2, "got {} samples back", heard.len());
        let tail = &heard[heard.len() - 4000..];
        assert!(detect(tail, 1000.0), "the 1000 Hz tone comes back");
        assert!(!detect(tail, 1700.0), "a tone nobody sent is absent");
        let bye = ua.bye().await.expect("BYE answered over TLS");
        assert_eq!(bye.status(), 200);
        assert!(srv.metric("huddle_sip_messages_received_total{transport=\"TLS\"}") >= 3.0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_tls_customer_and_a_udp_agent_hear_each_other_in_a_room() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let pki = TestPki::new();
        let (srv, tls) = tls_server(&pki, 10);
        let mut customer = SipUa::tls(tls, &pki).await;
        let mut customer_rtp = RtpPeer::bind().await;
        let ok = customer
            .invite("customer-tlsroom", &SipUa::sdp(customer_rtp.port(), &[0]))
            .await
            .expect("customer answered");
        assert_eq!(ok.status(), 200, "{ok:?}\n{}", srv.log());
        customer.ack().await;
        let customer_media = ok.sdp_audio().unwrap();
        let mut agent = SipUa::udp(srv.sip).await;
        let mut agent_rtp = RtpPeer::bind().await;
        let ok = agent
            .invite("agent-tlsroom", &SipUa::sdp(agent_rtp.port(), &[0]))
            .await
            .expect("agent answered");
        assert_eq!(ok.status(), 200);
        agent.ack().await;
        let agent_media = ok.sdp_audio().unwrap();
        let talk = Duration::from_millis(2500);
        let (customer_heard, agent_heard) = tokio::join!(
            customer_rtp.talk(customer_media, 600.0, talk),
            agent_rtp.talk(agent_media, 1400.0, talk),
        );
        let tail = |pcm: &[i16]| pcm[pcm.len().saturating_sub(8000)..].to_vec();
        let (c, a) = (tail(&customer_heard), tail(&agent_heard));
        assert!(tone_share(&c, 1400.0) > 0.5, "the customer hears the agent");
        assert!(tone_share(&c, 600.0) < 0.1, "but not itself");
        assert!(tone_share(&a, 600.0) > 0.5, "the agent hears the customer");
        assert!(tone_share(&a, 1400.0) < 0.1, "but not itself");
        assert_eq!(customer.bye().await.map(|m| m.status()), Some(200));
        assert_eq!(agent.bye().await.map(|m| m.status()), Some(200));
    })
    .await
    .expect("timed out");
}

/// A server whose trunk is `sip:127.0.0.1:PORT;transport=tls` on the returned listener; with
/// `trust` its `tls_ca` is the test CA, without it only the system's CAs are trusted.
async fn server_with_tls_trunk(pki: &TestPki, trust: bool) -> (ServerProcess, TcpListener) {
    let trunk = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = trunk.local_addr().unwrap().port();
    let srv = ServerProcess::start_with(Path::new(env!("CARGO_BIN_EXE_huddle")), 100, |slots| {
        let files = pki.write(&slots.dir.join("pki"));
        let ca = if trust {
            format!("tls_ca = {:?}\n", files.ca.display().to_string())
        } else {
            String::new()
        };
        let extra =
            format!("{ROOM_ROUTE}[sip.trunk]\nuri = \"sip:127.0.0.1:{port};transport=tls\"\n{ca}");
        slots.standard("", "", &extra)
    });
    (srv, trunk)
}

async fn add_customer(srv: &ServerProcess, mpc: &str) -> u16 {
    let url = format!(
        "http://{}/v1/Account/MAHUDDLEDEFAULT00000/MultiPartyCall/name_{mpc}/Participant/",
        srv.http
    );
    reqwest::Client::new()
        .post(url)
        .basic_auth("MAHUDDLEDEFAULT00000", Some("change-me"))
        .json(&serde_json::json!({"role": "customer", "from": "+14155550100", "to": "5551234", "enter_sound": "none"}))
        .send()
        .await
        .expect("the API answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_participant_dialled_out_through_a_tls_trunk_hears_and_is_heard() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let pki = TestPki::new();
        let (srv, listener) = server_with_tls_trunk(&pki, true).await;
        let mut agent = SipUa::udp(srv.sip).await;
        let mut agent_rtp = RtpPeer::bind().await;
        let ok = agent
            .invite("agent-tlsout", &SipUa::sdp(agent_rtp.port(), &[0]))
            .await
            .expect("agent answered");
        assert_eq!(ok.status(), 200);
        agent.ack().await;
        let agent_media = ok.sdp_audio().unwrap();
        assert_eq!(add_customer(&srv, "tlsout").await, 201);

        let mut trunk = SipUa::tls_accept(&listener, &pki, srv.sip, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("huddle connects to the trunk over TLS\n{}", srv.log()));
        let invite = trunk
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("INVITE "))
            .await
            .expect("the INVITE over TLS");
        let via = invite.header("Via").unwrap_or_default();
        assert!(via.starts_with("SIP/2.0/TLS"), "{via}");
        let contact = invite.header("Contact").unwrap_or_default();
        assert!(contact.contains(";transport=tls"), "{contact}");
        let mut callee_rtp = RtpPeer::bind().await;
        trunk
            .answer_invite(&invite, 200, "OK", &SipUa::sdp(callee_rtp.port(), &[0]))
            .await;
        trunk
            .recv_until(Duration::from_secs(3), |m| m.start.starts_with("ACK "))
            .await
            .expect("the 200 is acknowledged on the TLS connection");
        let offer_port: u16 = invite
            .body
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
            .expect("our RTP port in the offer");
        let callee_media = SocketAddr::from(([127, 0, 0, 1], offer_port));

        let talk = Duration::from_millis(2500);
        let (agent_heard, callee_heard) = tokio::join!(
            agent_rtp.talk(agent_media, 1400.0, talk),
            callee_rtp.talk(callee_media, 600.0, talk),
        );
        let tail = |pcm: &[i16]| pcm[pcm.len().saturating_sub(8000)..].to_vec();
        assert!(
            tone_share(&tail(&agent_heard), 600.0) > 0.5,
            "the agent hears the callee"
        );
        assert!(
            tone_share(&tail(&callee_heard), 1400.0) > 0.5,
            "the callee hears the agent"
        );

        // The agent leaves; huddle hangs up the dialled leg on the same TLS connection.
        agent.bye().await;
        let bye = trunk
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("BYE "))
            .await
            .expect("BYE over TLS");
        trunk.reply_ok(&bye).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_tls_trunk_with_an_untrusted_certificate_gets_nothing() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let pki = TestPki::new();
        let (srv, listener) = server_with_tls_trunk(&pki, false).await;
        let (_agent, _rtp, _media) = super::answered(srv.sip, "agent-tlsbad").await;
        assert_eq!(add_customer(&srv, "tlsbad").await, 201);
        // huddle connects, refuses the certificate in the handshake, and sends no SIP.
        let trunk = SipUa::tls_accept(&listener, &pki, srv.sip, Duration::from_secs(5)).await;
        assert!(trunk.is_none(), "the handshake must fail");
        let failures = srv
            .metric_until(
                "huddle_sip_tls_handshake_failures_total{side=\"client\"}",
                Duration::from_secs(3),
                |n| n >= 1.0,
            )
            .await;
        assert!(failures.is_some(), "the failed handshake is counted");
    })
    .await
    .expect("timed out");
}

/// True when the server closes the connection (EOF or reset) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn plain_sip_and_stalled_handshakes_on_the_tls_port_are_closed() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let pki = TestPki::new();
        let (mut srv, tls) = tls_server(&pki, 1);

        // Plain SIP over TCP to the TLS port: no answer, the connection is closed.
        let mut plain = TcpStream::connect(tls).await.unwrap();
        let local = plain.local_addr().unwrap();
        let options = format!(
            "OPTIONS sip:huddle@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKplain\r\n\
From: <sip:p@127.0.0.1>;tag=p\r\nTo: <sip:huddle@127.0.0.1>\r\nCall-ID: plain-1\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        plain.write_all(options.as_bytes()).await.unwrap();
        assert!(closed_within(&mut plain, Duration::from_secs(3)).await);

        // Connections that never handshake are closed after handshake_timeout_secs (1 s).
        let started = Instant::now();
        let mut silent = Vec::new();
        for _ in 0..5 {
            silent.push(TcpStream::connect(tls).await.unwrap());
        }
        for s in &mut silent {
            assert!(closed_within(s, Duration::from_secs(5)).await);
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "{took:?}"
        );
        // The count follows the close by a moment (the handshake's future is dropped, the
        // socket with it, before the failure is counted).
        assert!(
            srv.metric_reaching(
                "huddle_sip_tls_handshake_failures_total",
                6.0,
                Duration::from_secs(2)
            ) >= 6.0
        );

        // The server is unharmed and still takes calls over TLS.
        assert!(srv.is_running());
        let mut ua = SipUa::tls(tls, &pki).await;
        let rtp = RtpPeer::bind().await;
        let ok = ua
            .invite("echo", &SipUa::sdp(rtp.port(), &[0]))
            .await
            .expect("final response");
        assert_eq!(ok.status(), 200);
        ua.ack().await;
        assert_eq!(ua.bye().await.map(|m| m.status()), Some(200));
        assert!(!srv.log().contains("panicked"), "{}", srv.log());
    })
    .await
    .expect("timed out");
}

#[test]
fn check_config_refuses_a_key_that_is_not_the_certificates() {
    let dir = std::env::temp_dir().join(format!("huddle-tls-check-{}", std::process::id()));
    let ours = TestPki::new().write(&dir.join("a"));
    let other = TestPki::new().write(&dir.join("b"));
    let config = |key: &Path| huddle_config_text(&ours.certificate, key);
    let run = |text: String| {
        let path = dir.join("huddle.toml");
        std::fs::write(&path, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_huddle"))
            .arg("check-config")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap()
    };
    let good = run(config(&ours.private_key));
    assert!(good.status.success(), "{good:?}");
    let bad = run(config(&other.private_key));
    assert!(!bad.status.success(), "{bad:?}");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("sip.tls"), "{err}");
    let missing = run(config(&dir.join("nowhere.pem")));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("sip.tls.private_key"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shipped configuration with a TLS listener and `[sip.tls]` naming these files.
fn huddle_config_text(certificate: &Path, key: &Path) -> String {
    let shipped = include_str!("../../config/huddle.toml");
    let listen = "listen = [\"udp:0.0.0.0:5060\", \"tcp:0.0.0.0:5060\"]";
    assert!(shipped.contains(listen));
    shipped
        .replacen(
            listen,
            "listen = [\"udp:0.0.0.0:5060\", \"tls:0.0.0.0:5061\"]",
            1,
        )
        .replacen(
            "[sip.trunk]",
            &format!(
                "[sip.tls]\ncertificate = {:?}\nprivate_key = {:?}\n\n[sip.trunk]",
                certificate.display().to_string(),
                key.display().to_string()
            ),
            1,
        )
}
