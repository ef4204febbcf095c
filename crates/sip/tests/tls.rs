//! SIP over TLS: the endpoint's Via, Contact and hop choice for TLS legs (sans-IO), and the
//! service's TLS listener and TLS dial-out over real sockets with certificates generated here
//! (test-only, never written outside a temporary directory).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use huddle_config::{Cidr, Untrusted};
use huddle_sip::access::AccessPolicy;
use huddle_sip::endpoint::{Endpoint, EndpointConfig, EndpointEvent, EndpointOutput, TrunkConfig};
use huddle_sip::service::{start_with, ListenAddr, SipServiceConfig};
use huddle_sip::tls::{SipTls, TlsServerName};
use huddle_sip::transaction::{Peer, TimerConfig, TransportKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::RootCertStore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn endpoint_config(trunk: Option<&str>) -> EndpointConfig {
    EndpointConfig {
        advertised_host: "127.0.0.1".into(),
        udp_port: Some(5060),
        tcp_port: Some(5060),
        user_agent: "huddle-test".into(),
        trunk: trunk.map(|uri| TrunkConfig {
            uri: uri.into(),
            username: String::new(),
            password: String::new(),
            strip_plus: false,
        }),
        timers: TimerConfig::default(),
    }
}

fn tls_peer() -> Peer {
    Peer {
        addr: "127.0.0.1:40123".parse().unwrap(),
        transport: TransportKind::Tls,
    }
}

fn invite() -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:40123;branch=z9hG4bKtls1;rport\r\n\
From: <sip:alice@127.0.0.1>;tag=alice1\r\nTo: <sip:echo@127.0.0.1>\r\nCall-ID: tls-call\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:40123;transport=tls>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn sends(out: &[EndpointOutput]) -> Vec<(Peer, String)> {
    out.iter()
        .filter_map(|o| match o {
            EndpointOutput::Send { peer, data } => {
                Some((*peer, String::from_utf8_lossy(data).to_string()))
            }
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
fn tls_leg_advertises_tls_and_stays_on_its_connection() {
    let mut ep = Endpoint::new(endpoint_config(None));
    ep.set_tls_port(Some(5061));
    let t0 = Instant::now();
    let mut out = Vec::new();
    ep.handle_message(invite().as_bytes(), tls_peer(), t0, &mut out);
    let leg = out
        .iter()
        .find_map(|o| match o {
            EndpointOutput::Event(EndpointEvent::IncomingCall { leg, .. }) => Some(*leg),
            _ => None,
        })
        .expect("incoming call");
    out.clear();
    ep.answer(leg, Bytes::from_static(b"v=0\r\n"), t0, &mut out);
    let (peer, ok) = sends(&out).remove(0);
    assert_eq!(peer, tls_peer(), "the 200 goes back on the connection");
    assert!(ok.starts_with("SIP/2.0 200 OK"));
    assert_eq!(
        header(&ok, "Contact"),
        Some("<sip:huddle@127.0.0.1:5061;transport=tls>")
    );
    // Until the ACK the 2xx is passed on again end to end (RFC 3261 §13.3.1.4), as over TCP:
    // on the same connection.
    out.clear();
    ep.handle_timeout(t0 + Duration::from_secs(3), &mut out);
    assert!(sends(&out).iter().all(|(p, _)| *p == tls_peer()));

    let to = header(&ok, "To").unwrap().to_string();
    let ack = format!(
        "ACK sip:huddle@127.0.0.1:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:40123;branch=z9hG4bKack\r\n\
From: <sip:alice@127.0.0.1>;tag=alice1\r\nTo: {to}\r\nCall-ID: tls-call\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    out.clear();
    ep.handle_message(ack.as_bytes(), tls_peer(), t0, &mut out);
    out.clear();
    ep.hangup(leg, t0, &mut out);
    let (peer, bye) = sends(&out).remove(0);
    assert!(bye.starts_with("BYE sip:alice@127.0.0.1:40123;transport=tls"));
    assert_eq!(peer, tls_peer(), "the BYE reuses the caller's connection");
    let via = header(&bye, "Via").unwrap();
    assert!(via.starts_with("SIP/2.0/TLS 127.0.0.1:5061;"), "{via}");
}

#[test]
fn dialling_a_tls_trunk_uses_tls() {
    for (uri, port) in [
        ("sip:127.0.0.1:5071;transport=tls", 5071),
        ("sip:127.0.0.1;transport=TLS", 5061),
        ("sips:127.0.0.1:5072", 5072),
    ] {
        let mut ep = Endpoint::new(endpoint_config(Some(uri)));
        let mut out = Vec::new();
        ep.dial(
            "sip:+15551234@127.0.0.1",
            "huddle",
            Bytes::from_static(b"v=0\r\n"),
            Instant::now(),
            &mut out,
        )
        .expect("dialled");
        let (peer, inv) = sends(&out).remove(0);
        assert_eq!(peer.transport, TransportKind::Tls, "{uri}");
        assert_eq!(peer.addr.port(), port, "{uri}");
        // Without a TLS listener the Via and Contact carry the TCP port.
        assert!(
            header(&inv, "Via")
                .unwrap()
                .starts_with("SIP/2.0/TLS 127.0.0.1:5060;"),
            "{inv}"
        );
        assert_eq!(
            header(&inv, "Contact"),
            Some("<sip:huddle@127.0.0.1:5060;transport=tls>")
        );
    }
}

// ---- over real sockets ----

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it.
struct TestPki {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl TestPki {
    fn new() -> TestPki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "huddle test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        TestPki {
            ca: ca_cert.der().clone(),
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
        }
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        roots
    }

    fn client_connector(&self) -> tokio_rustls::TlsConnector {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(self.roots())
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(self.chain.clone(), self.key())
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

fn service_config(listen: Vec<ListenAddr>, trusted: &str, trunk: Option<&str>) -> SipServiceConfig {
    SipServiceConfig {
        listen,
        endpoint: endpoint_config(trunk),
        max_message_size: 65_535,
        access: AccessPolicy::new(vec![trusted.parse::<Cidr>().unwrap()], Untrusted::Reject),
        limits: Default::default(),
    }
}

fn tls_listener() -> Vec<ListenAddr> {
    vec![ListenAddr {
        transport: TransportKind::Tls,
        addr: "127.0.0.1:0".parse().unwrap(),
    }]
}

fn options(local: SocketAddr) -> String {
    format!(
        "OPTIONS sip:huddle@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKopt1\r\n\
From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:huddle@127.0.0.1>\r\nCall-ID: opt-1\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Reads one Content-Length-framed message (with no body) or None at EOF/timeout.
async fn read_message<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> Option<String> {
    let mut buf = Vec::new();
    tokio::time::timeout(within, async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Some(String::from_utf8_lossy(&buf[..end + 4]).to_string());
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .ok()
    .flatten()
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, text: &str) {
    s.write_all(text.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
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

async fn tls_service(pki: &TestPki, trusted: &str, handshake: Duration) -> SocketAddr {
    let tls = SipTls::client(RootCertStore::empty())
        .unwrap()
        .with_certificate(pki.chain.clone(), pki.key())
        .unwrap()
        .with_handshake_timeout(handshake);
    let (handle, _events) = start_with(service_config(tls_listener(), trusted, None), Some(tls))
        .await
        .unwrap();
    let bound = handle.bound()[0];
    assert_eq!(bound.transport, TransportKind::Tls);
    // The handle owns the command channel: keep the service alive for the test's duration.
    std::mem::forget(handle);
    bound.addr
}

#[tokio::test]
async fn tls_listener_answers_and_refuses_plain_tcp_and_stalled_handshakes() {
    let pki = TestPki::new();
    let addr = tls_service(&pki, "127.0.0.0/8", Duration::from_secs(1)).await;

    // A TLS client gets its answer on the same connection, with a Via of TLS.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = pki
        .client_connector()
        .connect(TlsServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("handshake with the test CA");
    send(&mut tls, &options(local)).await;
    let resp = read_message(&mut tls, Duration::from_secs(5))
        .await
        .expect("an answer over TLS");
    assert!(resp.starts_with("SIP/2.0 200 OK"), "{resp}");
    assert!(
        header(&resp, "Via").unwrap().starts_with("SIP/2.0/TLS"),
        "{resp}"
    );

    // Plain SIP to the TLS port: the handshake fails and the connection is closed.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    let plain_local = plain.local_addr().unwrap();
    send(&mut plain, &options(plain_local)).await;
    assert!(closed_within(&mut plain, Duration::from_secs(3)).await);

    // A connection that never says anything is closed after the handshake timeout.
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");

    // The listener still serves after all that.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = pki
        .client_connector()
        .connect(TlsServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    send(&mut tls, &options(local)).await;
    assert!(read_message(&mut tls, Duration::from_secs(5))
        .await
        .is_some());
}

#[tokio::test]
async fn an_untrusted_tls_source_is_closed_before_its_handshake() {
    let pki = TestPki::new();
    let addr = tls_service(&pki, "10.0.0.0/8", Duration::from_secs(5)).await;
    // 127.0.0.1 is outside 10.0.0.0/8 and no call of its is live: the server closes the
    // connection without answering the ClientHello, so nothing of the handshake is spent on it.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let handshake = tokio::time::timeout(
        Duration::from_secs(5),
        pki.client_connector()
            .connect(TlsServerName::try_from("127.0.0.1").unwrap(), tcp),
    )
    .await
    .expect("the server closes at once instead of stalling");
    assert!(handshake.is_err(), "the handshake must not complete");
}

/// A TLS "trunk" that accepts one connection and returns the first message's start line.
async fn tls_trunk(pki: &TestPki) -> (SocketAddr, tokio::task::JoinHandle<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = pki.acceptor();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.ok()?;
        let mut tls = acceptor.accept(tcp).await.ok()?;
        read_message(&mut tls, Duration::from_secs(5)).await
    });
    (addr, task)
}

async fn dial_through(roots: RootCertStore, name: Option<&str>, pki: &TestPki) -> Option<String> {
    let (trunk, received) = tls_trunk(pki).await;
    let uri = format!("sip:{trunk};transport=tls");
    let mut tls = SipTls::client(roots).unwrap();
    if let Some(name) = name {
        tls = tls.with_server_name(trunk, TlsServerName::try_from(name.to_string()).unwrap());
    }
    let listen = vec![ListenAddr {
        transport: TransportKind::Udp,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let (handle, _events) =
        start_with(service_config(listen, "127.0.0.0/8", Some(&uri)), Some(tls))
            .await
            .unwrap();
    let call = huddle_sip::address::OutboundCall::new("sip:+15551234@127.0.0.1", "huddle").unwrap();
    handle
        .dial(&call, Bytes::from_static(b"v=0\r\n"))
        .await
        .expect("a leg");
    tokio::time::timeout(Duration::from_secs(8), received)
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten()
}

#[tokio::test]
async fn dial_out_over_tls_checks_the_trunk_certificate() {
    let pki = TestPki::new();
    let inv = dial_through(pki.roots(), None, &pki)
        .await
        .expect("the INVITE over TLS");
    assert!(
        inv.starts_with("INVITE sip:+15551234@127.0.0.1 SIP/2.0"),
        "{inv}"
    );
    assert!(
        header(&inv, "Via").unwrap().starts_with("SIP/2.0/TLS"),
        "{inv}"
    );
    // Checked against a configured name instead of the IP.
    assert!(dial_through(pki.roots(), Some("localhost"), &pki)
        .await
        .is_some());
    // A certificate from a CA we do not trust, or for another name: nothing is sent.
    assert!(dial_through(RootCertStore::empty(), None, &pki)
        .await
        .is_none());
    assert!(dial_through(pki.roots(), Some("trunk.example.com"), &pki)
        .await
        .is_none());
}
