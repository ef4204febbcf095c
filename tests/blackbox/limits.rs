//! Flood limits over real sockets: an INVITE flood that never ACKs holds no more than its
//! source's unconfirmed calls while other callers are answered, `server.max_calls`, the
//! per-source INVITE rate, and the SIP/TCP and SIP/TLS connection limits (caps, the partial
//! message and idle timeouts, untrusted TLS closed before its handshake). Other loopback
//! addresses (127.0.0.2, ...) play the other sources: on Linux all of 127.0.0.0/8 reaches the
//! loopback interface.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huddle_testkit::{
    detect, free_tcp_port, poll_until, HttpStub, Msg, RtpPeer, ServerProcess, SipUa, TestPki,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

use super::answered;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const SOURCE_2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const SOURCE_3: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const SOURCE_4: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
const ACCOUNT: &str = "MAHUDDLEDEFAULT00000";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_huddle"))
}

/// A server on the standard test configuration with more `[sip]` keys and routes.
fn server_with(sip_extra: &str, routes: &str, rtp_ports: u16) -> ServerProcess {
    ServerProcess::start_with(bin(), rtp_ports, |slots| {
        slots.standard(sip_extra, "", routes)
    })
}

fn refused(srv: &ServerProcess, reason: &str) -> f64 {
    srv.metric(&format!("huddle_sip_refused_total{{reason=\"{reason}\"}}"))
}

fn connections_refused(srv: &ServerProcess, reason: &str) -> f64 {
    srv.metric(&format!(
        "huddle_sip_connections_refused_total{{reason=\"{reason}\"}}"
    ))
}

fn timed_out(srv: &ServerProcess, reason: &str) -> f64 {
    srv.metric(&format!(
        "huddle_sip_connections_timed_out_total{{reason=\"{reason}\"}}"
    ))
}

/// An INVITE for `user` with its own Call-ID `call_id`, sent from `local`.
fn invite_text(local: SocketAddr, server: SocketAddr, user: &str, call_id: &str) -> String {
    let sdp = SipUa::sdp(4000, &[0]);
    format!(
        "INVITE sip:{user}@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:flood@{local}>;tag=f{call_id}\r\nTo: <sip:{user}@{server}>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\nContact: <sip:flood@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// An OPTIONS over a stream from `local`.
fn options_text(local: SocketAddr, transport: &str) -> String {
    format!(
        "OPTIONS sip:huddle@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK{b}\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p1\r\nTo: <sip:huddle@127.0.0.1>\r\nCall-ID: {b}@probe\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        b = uuid::Uuid::new_v4().simple()
    )
}

/// A TCP connection to `to` from the address `ip`.
async fn tcp_from(ip: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(ip, 0)).expect("bind");
    socket.connect(to).await.expect("connect")
}

/// The head of the next message on a stream (up to its blank line), or None when the stream
/// closes or nothing complete comes within `within`.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                return Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// True when the server closes the stream (EOF or reset) within `within`; whatever it sends
/// before is read and dropped.
async fn closed_within<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> bool {
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

/// Sends `message` one byte a second until the server closes the connection; how long after
/// the first byte it did, or None when it never did.
async fn trickle<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, message: &str) -> Option<Duration> {
    let started = Instant::now();
    for byte in message.bytes() {
        if s.write_all(&[byte]).await.is_err() || s.flush().await.is_err() {
            return Some(started.elapsed());
        }
        if closed_within(s, Duration::from_secs(1)).await {
            return Some(started.elapsed());
        }
    }
    None
}

/// An echo call from `ip`: answered, its audio comes back, hung up.
async fn echo_call_from(srv: &ServerProcess, ip: IpAddr) {
    let mut ua = SipUa::udp_from(ip, srv.sip).await;
    let mut rtp = RtpPeer::bind().await;
    let ok = ua
        .invite("echo", &SipUa::sdp(rtp.port(), &[0]))
        .await
        .expect("a final response");
    assert_eq!(ok.status(), 200, "{ok:?}");
    ua.ack().await;
    let media = ok.sdp_audio().expect("SDP answer with audio");
    let heard = rtp.talk(media, 1000.0, Duration::from_millis(800)).await;
    assert!(heard.len() >= 2000, "got {} samples back", heard.len());
    assert!(
        detect(&heard[heard.len() - 1600..], 1000.0),
        "the caller hears itself"
    );
    assert_eq!(ua.bye().await.map(|m| m.status()), Some(200));
}

/// The first final response (status, Retry-After) to each flood INVITE, by Call-ID.
type Finals = Arc<Mutex<HashMap<String, (u16, Option<String>)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_ack_invite_flood_holds_only_its_sources_share_and_others_are_answered() {
    const CAP: usize = 10;
    const FLOOD: usize = 1000;
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = HttpStub::start().await;
        stub.serve_xml("/flood", "<Response><Wait length=\"60\"/></Response>");
        let routes = format!(
            "[[route]]\nuser = \"^flood-\"\nanswer_url = \"{}\"\n",
            stub.url("/flood")
        );
        // 14 RTP port pairs: the flooder's 10 unconfirmed calls and the other caller's one
        // fit; the flood's 1,000 INVITEs would have taken every pair in its first 0.14 s.
        let srv = server_with(
            &format!("trusted = [\"127.0.0.0/8\"]\nmax_unconfirmed_per_source = {CAP}"),
            &routes,
            28,
        );
        let flood = Arc::new(UdpSocket::bind((SOURCE_2, 0)).await.unwrap());
        let local = flood.local_addr().unwrap();
        let finals: Finals = Arc::default();
        let receiver = {
            let (flood, finals) = (flood.clone(), finals.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, _)) = flood.recv_from(&mut buf).await {
                    let Some(msg) = Msg::parse(&String::from_utf8_lossy(&buf[..n])) else {
                        continue;
                    };
                    if msg.status() < 200 {
                        continue;
                    }
                    let call_id = msg.header("Call-ID").unwrap_or_default().to_string();
                    let retry = msg.header("Retry-After").map(str::to_string);
                    finals
                        .lock()
                        .unwrap()
                        .entry(call_id)
                        .or_insert((msg.status(), retry));
                }
            })
        };
        // 100 INVITEs a second for 10 s, never acknowledging anything.
        let sender = {
            let (flood, sip) = (flood.clone(), srv.sip);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                for i in 0..FLOOD {
                    tick.tick().await;
                    let text =
                        invite_text(local, sip, &format!("flood-{i}"), &format!("flood-{i}"));
                    flood.send_to(text.as_bytes(), sip).await.unwrap();
                }
            })
        };

        // Throughout the flood, another source's calls are answered and their audio flows.
        let mut answered_calls = 0;
        let mut most_active: f64 = 0.0;
        while !sender.is_finished() {
            echo_call_from(&srv, SOURCE_3).await;
            answered_calls += 1;
            most_active = most_active.max(srv.metric("huddle_calls_active"));
        }
        assert!(
            answered_calls >= 5,
            "{answered_calls} calls during the flood"
        );
        assert!(
            most_active <= (CAP + 2) as f64,
            "calls live during the flood: {most_active}"
        );

        // Every flood INVITE got its final response: the first CAP became calls (answered, and
        // never acknowledged), every later one 503 with Retry-After.
        let all = poll_until(Duration::from_secs(10), || async {
            let finals = finals.lock().unwrap();
            (finals.len() == FLOOD).then(|| finals.clone())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "finals for {} of {FLOOD} INVITEs",
                finals.lock().unwrap().len()
            )
        });
        receiver.abort();
        for i in 0..FLOOD {
            let (status, retry) = &all[&format!("flood-{i}")];
            if i < CAP {
                assert_eq!(*status, 200, "flood-{i} is within the cap");
            } else {
                assert_eq!(*status, 503, "flood-{i} is over the cap");
                let retry: u32 = retry
                    .as_deref()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or_else(|| panic!("flood-{i}: 503 without Retry-After"));
                assert!(retry >= 1, "flood-{i}: Retry-After {retry}");
            }
        }
        // Nothing was done for the refused ones: no answer_url request, no call.
        assert_eq!(stub.requests_to("/flood").len(), CAP);
        assert_eq!(refused(&srv, "source_unconfirmed"), (FLOOD - CAP) as f64);
        assert_eq!(refused(&srv, "source_rate"), 0.0);
        assert_eq!(
            srv.metric("huddle_calls_total{direction=\"inbound\"}"),
            (CAP + answered_calls) as f64
        );
        // And after it, the other source still gets through.
        echo_call_from(&srv, SOURCE_3).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn max_calls_answers_503_with_retry_after_until_a_call_ends() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let srv = ServerProcess::start_with(bin(), 20, |slots| {
            let text = slots.standard("", "", "");
            assert!(text.contains("shutdown_grace_secs = 2\n"));
            text.replacen(
                "shutdown_grace_secs = 2\n",
                "shutdown_grace_secs = 2\nmax_calls = 2\n",
                1,
            )
        });
        let (mut first, _rtp1, _) = answered(srv.sip, "echo").await;
        let (_second, _rtp2, _) = answered(srv.sip, "echo").await;
        let mut third = SipUa::udp(srv.sip).await;
        let text = third.invite_text("echo", &SipUa::sdp(4000, &[0]));
        third.send_raw(text.as_bytes()).await;
        let reply = third
            .recv(Duration::from_secs(3))
            .await
            .expect("an answer to the third call");
        assert_eq!(reply.status(), 503, "no 100 Trying first: {}", reply.start);
        assert_eq!(reply.header("Retry-After"), Some("5"), "{reply:?}");
        assert!(reply.header("To").unwrap().contains(";tag="));
        third.ack_failure(&reply).await;
        assert_eq!(refused(&srv, "max_calls"), 1.0);
        assert_eq!(srv.metric("huddle_calls_total"), 2.0, "no call for it");

        // A call ends, and the next one is answered.
        assert_eq!(first.bye().await.map(|m| m.status()), Some(200));
        third.new_call();
        let ok = third
            .invite("echo", &SipUa::sdp(4002, &[0]))
            .await
            .expect("a final response");
        assert_eq!(ok.status(), 200, "{ok:?}");
        third.ack().await;
        assert_eq!(refused(&srv, "max_calls"), 1.0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_source_over_its_invite_rate_gets_503_and_others_do_not() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server_with(
            "trusted = [\"127.0.0.0/8\"]\ninvite_rate_per_source = 1\ninvite_burst_per_source = 4",
            "[[route]]\nuser = \"^decline\"\nxml = '<Response><Hangup reason=\"rejected\"/></Response>'\n",
            10,
        );
        let mut ua = SipUa::udp_from(SOURCE_2, srv.sip).await;
        let mut sent = Vec::new();
        for _ in 0..6 {
            ua.new_call();
            sent.push(ua.call_id.clone());
            let text = ua.invite_text("decline", &SipUa::sdp(4000, &[0]));
            ua.send_raw(text.as_bytes()).await;
        }
        let mut finals: HashMap<String, Msg> = HashMap::new();
        while finals.len() < sent.len() {
            let msg = ua
                .recv(Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("finals for {} of 6 INVITEs", finals.len()));
            if msg.status() >= 200 {
                let call_id = msg.header("Call-ID").unwrap_or_default().to_string();
                finals.entry(call_id).or_insert(msg);
            }
        }
        // The burst of 4 became calls (each declined by its XML); the rest came faster than
        // one a second.
        for (i, call_id) in sent.iter().enumerate() {
            let msg = &finals[call_id];
            if i < 4 {
                assert_eq!(msg.status(), 603, "{i}: {}", msg.start);
            } else {
                assert_eq!(msg.status(), 503, "{i}: {}", msg.start);
                assert_eq!(msg.header("Retry-After"), Some("1"));
            }
        }
        assert_eq!(refused(&srv, "source_rate"), 2.0);
        assert_eq!(srv.metric("huddle_calls_total"), 4.0);
        // Another source has a bucket of its own.
        let mut other = SipUa::udp_from(SOURCE_3, srv.sip).await;
        let reply = other
            .invite("decline", &SipUa::sdp(4000, &[0]))
            .await
            .expect("a final response");
        assert_eq!(reply.status(), 603);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_trickled_message_is_cut_off_after_the_message_timeout() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server_with(
            "tcp_message_timeout_secs = 2\ntcp_idle_timeout_secs = 60",
            "",
            10,
        );
        let mut s = TcpStream::connect(srv.sip).await.unwrap();
        let local = s.local_addr().unwrap();
        let took = trickle(&mut s, &options_text(local, "TCP"))
            .await
            .expect("the connection is closed");
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
            "closed {took:?} after the first byte"
        );
        assert_eq!(timed_out(&srv, "message"), 1.0);
        // A message sent whole on a new connection is answered as usual.
        let mut s = TcpStream::connect(srv.sip).await.unwrap();
        let local = s.local_addr().unwrap();
        s.write_all(options_text(local, "TCP").as_bytes())
            .await
            .unwrap();
        let head = read_head(&mut s, Duration::from_secs(3))
            .await
            .expect("an answer");
        assert!(head.starts_with("SIP/2.0 200"), "{head}");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn an_idle_connection_is_closed_unless_it_carries_a_live_call() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let srv = server_with(
            "tcp_idle_timeout_secs = 2\ntcp_message_timeout_secs = 2",
            "",
            10,
        );
        // A call over TCP: answered, acknowledged, then nothing on its connection.
        let mut caller = SipUa::tcp(srv.sip).await;
        let rtp = RtpPeer::bind().await;
        let ok = caller
            .invite("echo", &SipUa::sdp(rtp.port(), &[0]))
            .await
            .expect("a final response");
        assert_eq!(ok.status(), 200, "{ok:?}");
        caller.ack().await;

        // A connection that only asked OPTIONS is closed 2 s after the answer.
        let mut asked = TcpStream::connect(srv.sip).await.unwrap();
        let local = asked.local_addr().unwrap();
        asked
            .write_all(options_text(local, "TCP").as_bytes())
            .await
            .unwrap();
        let head = read_head(&mut asked, Duration::from_secs(3)).await.unwrap();
        assert!(head.starts_with("SIP/2.0 200"), "{head}");
        let answered_at = Instant::now();
        // One that sends nothing but keepalives is closed too: they are not messages.
        let mut keepalive = TcpStream::connect(srv.sip).await.unwrap();
        let opened_at = Instant::now();
        let keepalive_closed = async {
            loop {
                if keepalive.write_all(b"\r\n\r\n").await.is_err() {
                    return opened_at.elapsed();
                }
                if closed_within(&mut keepalive, Duration::from_millis(500)).await {
                    return opened_at.elapsed();
                }
            }
        };
        let (asked_closed, keepalive_took) = tokio::join!(
            async {
                assert!(closed_within(&mut asked, Duration::from_secs(6)).await);
                answered_at.elapsed()
            },
            keepalive_closed
        );
        for took in [asked_closed, keepalive_took] {
            assert!(
                took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
                "{took:?}"
            );
        }

        // The call's connection passed two idle deadlines and was kept both times.
        let caller_addr = format!("from={}", caller.local);
        let kept = poll_until(Duration::from_secs(10), || async {
            let log = srv.log();
            let count = log
                .lines()
                .filter(|l| l.contains("idle connection kept") && l.contains(&caller_addr))
                .count();
            (count >= 2).then_some(count)
        })
        .await;
        assert!(
            kept.is_some(),
            "the live call's connection was kept\n{}",
            srv.log()
        );
        assert_eq!(timed_out(&srv, "idle"), 2.0);
        // It is still open: the BYE goes over it and is answered.
        assert_eq!(caller.bye().await.map(|m| m.status()), Some(200));
        // With the call over, it goes idle like any other.
        let closed = srv
            .metric_until(
                "huddle_sip_connections_timed_out_total{reason=\"idle\"}",
                Duration::from_secs(6),
                |n| n >= 3.0,
            )
            .await;
        assert_eq!(closed, Some(3.0));
        assert!(caller.recv(Duration::from_secs(1)).await.is_none());
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn connections_over_the_caps_are_closed_at_once() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let srv = server_with(
            "trusted = [\"127.0.0.0/8\"]\ntcp_max_connections = 3\ntcp_max_connections_per_source = 2",
            "",
            10,
        );
        /// Opens a connection from `ip` and asks OPTIONS: Some(stream) when answered, None
        /// when the server closed it without a word.
        async fn open(srv: &ServerProcess, ip: IpAddr) -> Option<TcpStream> {
            let mut s = tcp_from(ip, srv.sip).await;
            let local = s.local_addr().unwrap();
            let _ = s.write_all(options_text(local, "TCP").as_bytes()).await;
            let head = read_head(&mut s, Duration::from_secs(3)).await?;
            assert!(head.starts_with("SIP/2.0 200"), "{head}");
            Some(s)
        }
        let first = open(&srv, SOURCE_2).await.expect("first from 127.0.0.2");
        let _second = open(&srv, SOURCE_2).await.expect("second from 127.0.0.2");
        assert!(
            open(&srv, SOURCE_2).await.is_none(),
            "a third from one source is over the per-source cap"
        );
        assert_eq!(connections_refused(&srv, "max_connections_per_source"), 1.0);
        let _third = open(&srv, SOURCE_3).await.expect("another source");
        assert!(
            open(&srv, SOURCE_4).await.is_none(),
            "a fourth in all is over the total cap"
        );
        assert_eq!(connections_refused(&srv, "max_connections"), 1.0);
        assert_eq!(srv.metric("huddle_sip_connections_open"), 3.0);

        // A connection that closes gives its place back.
        drop(first);
        let open_now = srv
            .metric_until(
                "huddle_sip_connections_open",
                Duration::from_secs(3),
                |n| n == 2.0,
            )
            .await;
        assert_eq!(open_now, Some(2.0));
        let _fourth = open(&srv, SOURCE_4).await.expect("a place is free again");
        // UDP is not affected by any of it.
        echo_call_from(&srv, SOURCE_2).await;
    })
    .await
    .expect("timed out");
}

/// A server listening on UDP, TCP and TLS (on its own port, returned) with `pki`'s
/// certificate, trusting 127.0.0.1 only, messages timing out after 2 s, and `extra` tables.
fn tls_server(pki: &TestPki, extra: &str) -> (ServerProcess, SocketAddr) {
    let tls_port = free_tcp_port();
    let srv = ServerProcess::start_with(bin(), 40, |slots| {
        let files = pki.write(&slots.dir.join("pki"));
        let plain = format!(
            "listen = [\"udp:127.0.0.1:{p}\", \"tcp:127.0.0.1:{p}\"]",
            p = slots.sip_port
        );
        let extra = extra.replace("CA_FILE", &files.ca.display().to_string());
        let text = slots.standard(
            "trusted = [\"127.0.0.1/32\"]\ntcp_message_timeout_secs = 2",
            "",
            &extra,
        );
        assert!(text.contains(&plain));
        let tls = format!(
            "[sip.tls]\ncertificate = {:?}\nprivate_key = {:?}\n",
            files.certificate.display().to_string(),
            files.private_key.display().to_string(),
        );
        text.replacen(
            &plain,
            &format!(
                "listen = [\"udp:127.0.0.1:{p}\", \"tcp:127.0.0.1:{p}\", \"tls:127.0.0.1:{tls_port}\"]",
                p = slots.sip_port
            ),
            1,
        )
        .replacen("[rtp]", &format!("{tls}[rtp]"), 1)
    });
    (srv, SocketAddr::from(([127, 0, 0, 1], tls_port)))
}

#[tokio::test]
async fn tls_untrusted_sources_are_closed_before_the_handshake_and_trickles_are_cut_off() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let pki = TestPki::new();
        // The trunk is at 127.0.0.2, which is not trusted.
        let trunk_listener = TcpListener::bind((SOURCE_2, 0)).await.unwrap();
        let trunk_port = trunk_listener.local_addr().unwrap().port();
        let routes = format!(
            "[[route]]\nuser = \"^(?P<role>agent|customer)-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n\
             [sip.trunk]\nuri = \"sip:127.0.0.2:{trunk_port};transport=tls\"\ntls_ca = \"CA_FILE\"\ntls_server_name = \"localhost\"\n"
        );
        let (srv, tls) = tls_server(&pki, &routes);

        // An untrusted source with no call is closed before any handshake work.
        let refused_handshake = pki.connect_from(SOURCE_3, tls).await;
        assert!(refused_handshake.is_err(), "the handshake must not complete");
        assert_eq!(connections_refused(&srv, "untrusted_source"), 1.0);
        assert_eq!(
            srv.metric("huddle_sip_tls_handshake_failures_total"),
            0.0,
            "no handshake was started for it"
        );

        // A trusted source's trickled message is cut off after the message timeout.
        let (mut slow, local) = pki.connect_from(LOCAL, tls).await.expect("trusted handshake");
        let took = trickle(&mut slow, &options_text(local, "TLS"))
            .await
            .expect("the connection is closed");
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
            "closed {took:?} after the first byte"
        );
        assert_eq!(timed_out(&srv, "message"), 1.0);

        // The untrusted trunk of a call we placed may still connect, for requests in the
        // call's dialog.
        let (_agent, _agent_rtp, _) = answered(srv.sip, "agent-tlslimits").await;
        let status = reqwest::Client::new()
            .post(format!(
                "http://{}/v1/Account/{ACCOUNT}/MultiPartyCall/name_tlslimits/Participant/",
                srv.http
            ))
            .basic_auth(ACCOUNT, Some("change-me"))
            .json(&serde_json::json!({"role": "customer", "from": "100", "to": "sip:200@127.0.0.2"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
        let mut trunk =
            SipUa::tls_accept(&trunk_listener, &pki, srv.sip, Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("huddle connects to the trunk\n{}", srv.log()));
        let invite = trunk
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("INVITE "))
            .await
            .expect("the INVITE over TLS");
        let callee_rtp = RtpPeer::bind().await;
        trunk
            .answer_invite(&invite, 200, "OK", &SipUa::sdp(callee_rtp.port(), &[0]))
            .await;
        trunk
            .recv_until(Duration::from_secs(3), |m| m.start.starts_with("ACK "))
            .await
            .expect("the 200 is acknowledged");
        // The trunk hangs up over a new connection of its own to our TLS port.
        let (mut fresh, local) = pki
            .connect_from(SOURCE_2, tls)
            .await
            .expect("the trunk's connection is accepted: its address has a live call");
        let contact = invite
            .header("Contact")
            .and_then(|c| c.split('<').nth(1))
            .and_then(|c| c.split('>').next())
            .expect("our Contact")
            .to_string();
        let bye = format!(
            "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK{b}\r\nMax-Forwards: 70\r\n\
From: {to};tag={tag}\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
            b = uuid::Uuid::new_v4().simple(),
            to = invite.header("To").unwrap(),
            tag = trunk.tag,
            from = invite.header("From").unwrap(),
            cid = invite.header("Call-ID").unwrap(),
        );
        fresh.write_all(bye.as_bytes()).await.unwrap();
        fresh.flush().await.unwrap();
        let head = read_head(&mut fresh, Duration::from_secs(5))
            .await
            .expect("the BYE is answered");
        assert!(head.starts_with("SIP/2.0 200"), "{head}\n{bye}");
        assert_eq!(connections_refused(&srv, "untrusted_source"), 1.0);
        // With that call over, the trunk's address is a stranger again.
        let refused_again = poll_until(Duration::from_secs(5), || async {
            pki.connect_from(SOURCE_2, tls).await.is_err().then_some(())
        })
        .await;
        assert!(refused_again.is_some(), "the trunk's address is refused again");
        assert!(!srv.log().contains("panicked"), "{}", srv.log());
    })
    .await
    .expect("timed out");
}
