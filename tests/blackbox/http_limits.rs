//! The HTTP listener under hostile connections: 20,000 half-sent requests do not lock out
//! `/health` or calls, a request trickled byte by byte is cut off after
//! `http.header_read_timeout_secs`, and one source cannot hold more than
//! `http.max_connections_per_source` while another is served. (SIP/TCP and SIP/TLS trickles
//! are covered in `limits.rs`.) Other loopback addresses (127.0.0.2, 127.0.1.x, ...) play the
//! other sources: on Linux all of 127.0.0.0/8 reaches the loopback interface.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use huddle_testkit::{detect, open_files, raise_open_file_limit, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::answered;

/// The start of a request that never ends: no blank line ever comes.
const HALF_REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_huddle"))
}

/// A server on the standard test configuration with more `[http]` keys.
fn server_with_http(http_extra: &str, rtp_ports: u16) -> ServerProcess {
    ServerProcess::start_with(bin(), rtp_ports, |slots| slots.standard("", http_extra, ""))
}

/// A TCP connection to `to` from the address `ip`.
async fn tcp_from(ip: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(to).await
}

/// GET `/health` from `ip` without blocking the runtime: the status, None when no answer
/// comes within 3 s.
async fn health_from(ip: IpAddr, http: SocketAddr) -> Option<u16> {
    let mut s = tcp_from(ip, http).await.ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&out).get(9..12)?.parse().ok()
}

/// True when the server closes the stream (EOF or reset) within `within`; whatever it sends
/// before is read and dropped.
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

/// An echo call: answered, a 1 kHz tone comes back.
async fn echo_call(srv: &ServerProcess) {
    let (mut ua, mut rtp, media) = answered(srv.sip, "echo").await;
    let heard = rtp.talk(media, 1000.0, Duration::from_millis(800)).await;
    assert!(heard.len() >= 2000, "got {} samples back", heard.len());
    assert!(
        detect(&heard[heard.len() - 1600..], 1000.0),
        "the caller hears itself"
    );
    assert_eq!(ua.bye().await.map(|m| m.status()), Some(200));
}

/// `count` half-sent requests from 100 addresses (127.0.1.1 ... 127.0.1.100, so that no single
/// one passes the per-source cap), at most 256 connecting at once; the streams that connected.
async fn open_half_requests(http: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    let mut batch = tokio::task::JoinSet::new();
    for i in 0..count {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 1, (i % 100) as u8 + 1));
        batch.spawn(async move {
            let mut s = tokio::time::timeout(Duration::from_secs(5), tcp_from(ip, http))
                .await
                .ok()?
                .ok()?;
            // The server may already have closed it to make room: that is what it should do.
            let _ = s.write_all(HALF_REQUEST).await;
            Some(s)
        });
        if batch.len() >= 256 {
            if let Some(Ok(Some(s))) = batch.join_next().await {
                held.push(s);
            }
        }
    }
    while let Some(done) = batch.join_next().await {
        if let Ok(Some(s)) = done {
            held.push(s);
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_half_sent_requests_lock_out_neither_health_nor_calls() {
    const WANTED: u64 = 20_000;
    // Room for this test's connections and for the tests running beside it in this process.
    const MARGIN: u64 = 1_000;
    let limit = raise_open_file_limit(WANTED + 2 * MARGIN);
    let count = WANTED.min(limit.saturating_sub(open_files() + MARGIN)) as usize;
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = server_with_http("", 20);
        let started = Instant::now();
        let held = open_half_requests(srv.http, count).await;
        let opened = held.len();
        let note = format!(
            "{opened} of {count} half-sent requests connected in {:?} (wanted {WANTED}; this \
             process may open {limit} files)",
            started.elapsed()
        );
        eprintln!("{note}");
        assert!(opened >= count * 9 / 10, "{note}");

        // While they are all open: /health answers at once, several times, and a call works.
        for _ in 0..5 {
            let asked = Instant::now();
            let status = health_from(IpAddr::V4(Ipv4Addr::LOCALHOST), srv.http).await;
            assert_eq!(status, Some(200), "{note}");
            assert!(
                asked.elapsed() < Duration::from_secs(2),
                "/health took {:?}; {note}",
                asked.elapsed()
            );
        }
        echo_call(&srv).await;
        // The server holds no more than its cap and made room by closing the oldest.
        let open = srv
            .metric_sample("huddle_http_connections_open")
            .expect("the open-connections gauge");
        assert!(open <= 2048.0, "{open} connections open; {note}");
        let shed = srv.metric("huddle_http_connections_shed_total");
        assert!(
            shed >= (opened - 2048) as f64,
            "{shed} shed for {opened} half-sent; {note}"
        );
        eprintln!("{open} open at the server, {shed} closed to make room");
        drop(held);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_request_trickled_byte_by_byte_is_cut_off_after_the_header_read_timeout() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server_with_http("header_read_timeout_secs = 2", 10);
        let mut s = TcpStream::connect(srv.http).await.unwrap();
        let started = Instant::now();
        let mut closed_after = None;
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" {
            if s.write_all(&[*byte]).await.is_err() {
                closed_after = Some(started.elapsed());
                break;
            }
            // One byte a second, each well inside any per-read timeout.
            if closed_within(&mut s, Duration::from_secs(1)).await {
                closed_after = Some(started.elapsed());
                break;
            }
        }
        let took = closed_after.expect("the connection is closed before the request completes");
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
            "closed {took:?} after the first byte"
        );
        let timed_out = srv
            .metric_until(
                "huddle_http_connections_timed_out_total{reason=\"header\"}",
                Duration::from_secs(2),
                |n| n >= 1.0,
            )
            .await;
        assert_eq!(timed_out, Some(1.0));
        // A request sent whole is answered as usual.
        assert_eq!(
            health_from(IpAddr::V4(Ipv4Addr::LOCALHOST), srv.http).await,
            Some(200)
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_source_over_its_connection_cap_is_closed_while_another_is_served() {
    const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server_with_http("max_connections_per_source = 4", 10);
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut s = tcp_from(SOURCE, srv.http).await.unwrap();
            s.write_all(HALF_REQUEST).await.unwrap();
            held.push(s);
        }
        // The server has them when a complete request on the first one is answered.
        held[0].write_all(b"\r\n").await.unwrap();
        let mut answer = [0u8; 12];
        held[0].read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer[..], b"HTTP/1.1 200");

        // A fifth from the same address is closed at once, unanswered.
        let mut fifth = tcp_from(SOURCE, srv.http).await.unwrap();
        let _ = fifth
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut got = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(2), fifth.read_to_end(&mut got))
            .await
            .is_ok();
        assert!(closed, "the fifth connection is still open");
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
        // Another address is served meanwhile.
        assert_eq!(health_from(OTHER, srv.http).await, Some(200));
        let refused = srv
            .metric("huddle_http_connections_refused_total{reason=\"max_connections_per_source\"}");
        assert_eq!(refused, 1.0);
        // Once one of its connections is gone, the address is served again.
        drop(held.pop());
        let served = huddle_testkit::poll_until(Duration::from_secs(3), || async {
            (health_from(SOURCE, srv.http).await == Some(200)).then_some(())
        })
        .await;
        assert!(served.is_some(), "the source is not served again");
    })
    .await
    .expect("timed out");
}
