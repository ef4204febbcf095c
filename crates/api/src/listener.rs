//! The HTTP listener: an accept loop that applies the connection caps, and one task per
//! connection served by hyper-util's connection builder (HTTP/1.1) with the header-read
//! timeout, the idle timeout and the request timeout (tower-http's `TimeoutLayer`).
//!
//! `axum::serve` has none of these, and without them 20,000 half-sent requests held 20,000
//! file handles and locked `/health` out.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tower_http::timeout::TimeoutLayer;
use tower_service::Service;

use crate::activity::{LastActivity, Watched};
use crate::connections::{Admission, ConnectionTable, Slot};

/// The HTTP listener's connection caps and timeouts (the `[http]` keys of the same names).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections open at once; when full, the oldest one without a complete request makes
    /// room for a new one (`http.max_connections`).
    pub max_connections: usize,
    /// Connections open at once from one source IP (`http.max_connections_per_source`).
    pub max_connections_per_source: usize,
    /// A request's line and headers must arrive within this, from the connection's opening or
    /// the previous response (`http.header_read_timeout_secs`).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed
    /// (`http.idle_timeout_secs`).
    pub idle_timeout: Duration,
    /// From a request's head to its response's head; beyond it the answer is 408
    /// (`http.request_timeout_secs`).
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    /// The documented defaults of `config/huddle.toml`.
    fn default() -> Self {
        HttpLimits {
            max_connections: 2048,
            max_connections_per_source: 256,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The read buffer's cap, bytes, which bounds a request head (line and headers): one that
/// does not fit gets 431. hyper's
/// default (about 400 KB) times `max_connections` would let slow senders of huge heads hold
/// most of a gigabyte; the API's heads are well under 8 KB.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long an accept that failed for want of resources (no file handle left) waits before
/// trying again: long enough not to spin, short enough that a freed handle is used at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Serves `router` on `listener` under `limits` until `shutdown` completes; then accepts
/// nothing more, lets requests in progress finish and returns when every connection has
/// closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let builder = Arc::new(builder);
    let table = ConnectionTable::new(limits.max_connections, limits.max_connections_per_source);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone; when the last one is dropped, all have ended.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut accept_errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                accept_errors.note(&err);
                if !is_per_connection(&err) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        match table.admit(peer.ip()) {
            Admission::Refused(why) => {
                metrics::counter!("huddle_http_connections_refused_total", "reason" => why.reason())
                    .increment(1);
                refused_note(peer.ip(), why.reason());
                drop(stream);
            }
            Admission::Admitted {
                slot,
                shed,
                shed_other,
            } => {
                if shed_other {
                    metrics::counter!("huddle_http_connections_shed_total").increment(1);
                }
                tokio::spawn(connection(
                    stream,
                    Conn {
                        builder: builder.clone(),
                        router: router.clone(),
                        slot: Arc::new(slot),
                        shed,
                        stop: stop_rx.clone(),
                        idle: limits.idle_timeout,
                        _alive: alive_tx.clone(),
                    },
                ));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

/// What one connection's task needs besides its stream.
struct Conn {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    slot: Arc<Slot>,
    shed: oneshot::Receiver<()>,
    stop: watch::Receiver<bool>,
    idle: Duration,
    _alive: mpsc::Sender<()>,
}

/// Serves one connection until it ends, times out, is shed for a newer one, or the server
/// stops (then it finishes the request in progress and closes).
async fn connection(stream: TcpStream, conn: Conn) {
    let Conn {
        builder,
        router,
        slot,
        mut shed,
        mut stop,
        idle,
        _alive,
    } = conn;
    let activity = LastActivity::new();
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let requests = slot.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        // hyper calls the service only with a complete request head.
        requests.request_arrived();
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let mut stopping = false;
    loop {
        let idle_deadline = activity.at() + idle;
        tokio::select! {
            result = served.as_mut() => {
                if let Err(err) = result {
                    if is_header_timeout(&*err) {
                        metrics::counter!("huddle_http_connections_timed_out_total", "reason" => "header")
                            .increment(1);
                    }
                    tracing::debug!(error = %err, "HTTP connection ended with an error");
                }
                break;
            }
            _ = &mut shed => {
                // Its place went to a newer connection; it had no request in progress.
                break;
            }
            changed = stop.wait_for(|v| *v), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    served.as_mut().graceful_shutdown();
                }
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                if activity.at() + idle <= tokio::time::Instant::now() {
                    metrics::counter!("huddle_http_connections_timed_out_total", "reason" => "idle")
                        .increment(1);
                    tracing::debug!(idle_secs = idle.as_secs(), "HTTP connection idle: closed");
                    break;
                }
            }
        }
    }
}

fn is_header_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if let Some(hyper) = err.downcast_ref::<hyper::Error>() {
            return hyper.is_timeout();
        }
        source = err.source();
    }
    false
}

/// Errors that concern only the connection being accepted (it was reset before we took it);
/// the next accept may succeed at once. Others (no file handle left, no memory) wait a little.
fn is_per_connection(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    )
}

/// Failed accepts, counted and logged at most once per 10 s, so that running out of file
/// handles is visible without flooding the log.
#[derive(Default)]
struct AcceptErrors {
    last_log: Option<std::time::Instant>,
    since_log: u64,
}

impl AcceptErrors {
    fn note(&mut self, err: &std::io::Error) {
        metrics::counter!("huddle_http_accept_errors_total").increment(1);
        self.since_log += 1;
        let due = self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if due {
            tracing::warn!(error = %err, failed = self.since_log, "cannot accept HTTP connections");
            self.last_log = Some(std::time::Instant::now());
            self.since_log = 0;
        }
    }
}

/// Logs refused connections at most once per 10 s (a flood must not become a log flood).
fn refused_note(source: IpAddr, reason: &'static str) {
    use std::sync::Mutex;
    static LAST: Mutex<Option<(std::time::Instant, u64)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    match &mut *last {
        Some((at, held_back)) if at.elapsed() < Duration::from_secs(10) => *held_back += 1,
        _ => {
            let held_back = last.map_or(0, |(_, n)| n);
            tracing::warn!(%source, reason, held_back, "HTTP connection refused");
            *last = Some((std::time::Instant::now(), 0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use std::net::SocketAddr;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn test_router() -> Router {
        Router::new()
            .route("/fast", get(|| async { "fast" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "slow"
                }),
            )
            .route(
                "/upload",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            )
    }

    async fn start(limits: HttpLimits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            test_router(),
            limits,
            std::future::pending(),
        ));
        addr
    }

    /// Reads until the server closes the connection (or `within` passes): what it sent, and
    /// whether it closed.
    async fn until_closed(s: &mut TcpStream, within: Duration) -> (String, bool) {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = tokio::time::timeout(within, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .is_ok();
        (String::from_utf8_lossy(&out).into_owned(), closed)
    }

    async fn get_fast(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        until_closed(&mut s, Duration::from_secs(3)).await.0
    }

    #[tokio::test]
    async fn a_slow_handler_gets_408_after_the_request_timeout() {
        let addr = start(HttpLimits {
            request_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        })
        .await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (answer, closed) = until_closed(&mut s, Duration::from_secs(3)).await;
        assert!(closed && answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(get_fast(addr).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_head_larger_than_the_cap_gets_431() {
        let addr = start(HttpLimits::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let big = format!(
            "GET /fast HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            // hyper checks the cap when a read leaves the head incomplete, so the cut is near
            // the cap rather than at its byte: twice the cap is well over.
            "a".repeat(2 * MAX_HEAD_BYTES)
        );
        // The server may close before it has read everything: the write may fail.
        let _ = s.write_all(big.as_bytes()).await;
        let (answer, closed) = until_closed(&mut s, Duration::from_secs(3)).await;
        assert!(closed && answer.starts_with("HTTP/1.1 431"), "{answer}");
        assert!(get_fast(addr).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_request_head_not_complete_in_time_closes_the_connection() {
        let addr = start(HttpLimits {
            header_read_timeout: Duration::from_millis(500),
            ..HttpLimits::default()
        })
        .await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        s.write_all(b"GET /fast HTTP/1.1\r\nHost:").await.unwrap();
        let (_, closed) = until_closed(&mut s, Duration::from_secs(3)).await;
        assert!(closed, "still open after 3 s");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
            "{took:?}"
        );
        assert!(get_fast(addr).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_body_that_stops_coming_is_closed_after_the_idle_timeout() {
        let addr = start(HttpLimits {
            idle_timeout: Duration::from_millis(500),
            ..HttpLimits::default()
        })
        .await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let started = Instant::now();
        let (_, closed) = until_closed(&mut s, Duration::from_secs(3)).await;
        assert!(closed, "still open after 3 s");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(1500),
            "{took:?}"
        );
        // A body that keeps coming is not cut off by the same timeout.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 4\r\n\r\n",
        )
        .await
        .unwrap();
        for byte in b"abcd" {
            tokio::time::sleep(Duration::from_millis(300)).await;
            s.write_all(&[*byte]).await.unwrap();
        }
        let (answer, _) = until_closed(&mut s, Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n4"), "{answer}");
    }

    #[tokio::test]
    async fn half_sent_requests_cannot_lock_out_a_complete_one() {
        let addr = start(HttpLimits {
            max_connections: 8,
            max_connections_per_source: 1000,
            ..HttpLimits::default()
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..50 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /fast HTTP/1.1\r\n").await.unwrap();
            held.push(s);
        }
        for _ in 0..3 {
            let answer = get_fast(addr).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
        // The oldest half-sent connections made room: they are closed.
        let (_, closed) = until_closed(&mut held[0], Duration::from_secs(2)).await;
        assert!(closed);
    }

    #[tokio::test]
    async fn a_source_over_its_cap_is_closed_while_another_is_served() {
        let addr = start(HttpLimits {
            max_connections_per_source: 2,
            ..HttpLimits::default()
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /fast HTTP/1.1\r\n").await.unwrap();
            held.push(s);
        }
        // Let the server take both before the third comes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(addr).await.unwrap();
        let (answer, closed) = until_closed(&mut third, Duration::from_secs(2)).await;
        assert!(closed && answer.is_empty(), "{answer:?}");
        let other = tokio::net::TcpSocket::new_v4().unwrap();
        other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut other = other.connect(addr).await.unwrap();
        other
            .write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (answer, _) = until_closed(&mut other, Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn shutdown_lets_a_request_in_progress_finish() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let limits = HttpLimits {
            request_timeout: Duration::from_secs(10),
            ..HttpLimits::default()
        };
        let server = tokio::spawn(serve(listener, test_router(), limits, async move {
            let _ = stop_rx.await;
        }));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = stop_tx.send(());
        let (answer, closed) = until_closed(&mut s, Duration::from_secs(8)).await;
        assert!(closed && answer.starts_with("HTTP/1.1 200"), "{answer}");
        let done = tokio::time::timeout(Duration::from_secs(2), server).await;
        assert!(
            matches!(done, Ok(Ok(Ok(())))),
            "serve returned once the connection closed"
        );
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }
}
