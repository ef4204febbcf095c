//! `Prompts::audio_url` against a real HTTP server on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use huddle_prompts::{PromptConfig, PromptError, Prompts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A minimal HTTP/1.1 server: one request per connection, canned answers by path, and a log
/// of every request target it saw.
#[derive(Clone, Default)]
struct Server {
    seen: Arc<Mutex<Vec<String>>>,
    /// Body bytes written for `/endless.wav`.
    streamed: Arc<AtomicUsize>,
    addr: Arc<Mutex<Option<SocketAddr>>>,
}

impl Server {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::default();
        *server.addr.lock().unwrap() = Some(listener.local_addr().unwrap());
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(s.clone().serve(stream));
            }
        });
        server
    }

    fn url(&self, target: &str) -> String {
        format!("http://{}{target}", self.addr.lock().unwrap().unwrap())
    }

    /// How many requests had exactly this request target.
    fn count(&self, target: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|t| *t == target)
            .count()
    }

    async fn serve(self, mut stream: TcpStream) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let target = head.split(' ').nth(1).unwrap_or("").to_owned();
        let repeat = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(target.clone());
            seen.iter().filter(|t| **t == target).count()
        };
        let path = target.split('?').next().unwrap_or("");
        let (status, content_type, body): (&str, &str, Vec<u8>) = match path {
            "/tone.wav" | "/frag.wav" => ("200 OK", "audio/wav", wav_tone(1000.0, 1.0, 16000)),
            "/tone.mp3" => ("200 OK", "audio/mpeg", mp3_tone(1000.0, 1.0, 16000)),
            "/stereo.wav" => (
                "200 OK",
                "application/octet-stream",
                wav(&tone(1000.0, 1.0, 44100, 0.4), 44100, 2, WavFormat::I16),
            ),
            // No extension: only the Content-Type and the bytes say what it is.
            "/play" => ("200 OK", "audio/mpeg", mp3_tone(1000.0, 1.0, 8000)),
            "/slow.wav" => {
                // Long enough for every concurrent caller to arrive while it is in flight.
                tokio::time::sleep(Duration::from_millis(300)).await;
                ("200 OK", "audio/wav", wav_tone(1000.0, 1.0, 8000))
            }
            "/flaky.wav" if repeat == 1 => {
                ("503 Service Unavailable", "text/plain", b"busy".to_vec())
            }
            "/flaky.wav" => ("200 OK", "audio/wav", wav_tone(1000.0, 0.5, 8000)),
            "/page.mp3" => (
                "200 OK",
                "text/html",
                b"<!DOCTYPE html><html><body><h1>Welcome</h1><p>Not audio.</p></body></html>"
                    .to_vec(),
            ),
            "/redirect" => {
                let reply = "HTTP/1.1 302 Found\r\nLocation: /tone.wav\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = stream.write_all(reply.as_bytes()).await;
                return;
            }
            "/declared-huge.wav" => {
                // Claims 50 MB up front: refused without reading a byte of body.
                let reply = "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: 52428800\r\nConnection: close\r\n\r\n";
                let _ = stream.write_all(reply.as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
                return;
            }
            "/endless.wav" => {
                // No length at all, and far more than the limit: the client must stop reading.
                let reply =
                    "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nConnection: close\r\n\r\n";
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![0x55u8; 16 * 1024];
                for _ in 0..(256 * 1024 * 1024 / chunk.len()) {
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                    self.streamed.fetch_add(chunk.len(), Ordering::SeqCst);
                }
                return;
            }
            "/hang.wav" => {
                let reply = "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: 1000\r\nConnection: close\r\n\r\nRIFF";
                let _ = stream.write_all(reply.as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&body).await;
        let _ = stream.shutdown().await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap()
}

fn prompts(config: PromptConfig) -> Prompts {
    Prompts::new(client(), config)
}

fn assert_tone(samples: &[i16], rate: u32, seconds: f64) {
    let expected = seconds * f64::from(rate);
    assert!(
        (samples.len() as f64 - expected).abs() <= f64::from(rate) / 50.0,
        "{} samples, expected {expected}",
        samples.len()
    );
    let on = tone_level(samples, rate, 1000.0);
    let off = tone_level(samples, rate, 600.0);
    assert!(on > 0.25 && off < on / 30.0, "1000 Hz {on}, 600 Hz {off}");
}

#[tokio::test]
async fn wav_and_mp3_are_fetched_decoded_and_cached() {
    let server = Server::start().await;
    let p = prompts(PromptConfig::default());

    let pcm = p.audio_url(&server.url("/tone.wav"), 8000).await.unwrap();
    assert_eq!(pcm.rate, 8000);
    assert_tone(&pcm.samples, 8000, 1.0);
    assert_eq!(server.count("/tone.wav"), 1);

    let again = p.audio_url(&server.url("/tone.wav"), 8000).await.unwrap();
    assert!(
        Arc::ptr_eq(&pcm.samples, &again.samples),
        "second call is served from the cache"
    );
    assert_eq!(server.count("/tone.wav"), 1);

    // Another rate is another entry.
    let wide = p.audio_url(&server.url("/tone.wav"), 16000).await.unwrap();
    assert_tone(&wide.samples, 16000, 1.0);
    assert_eq!(server.count("/tone.wav"), 2);

    let mp3 = p.audio_url(&server.url("/tone.mp3"), 8000).await.unwrap();
    assert_tone(&mp3.samples, 8000, 1.0);
    let mp3 = p.audio_url(&server.url("/tone.mp3"), 48000).await.unwrap();
    assert_tone(&mp3.samples, 48000, 1.0);

    let stereo = p
        .audio_url(&server.url("/stereo.wav"), 16000)
        .await
        .unwrap();
    assert_tone(&stereo.samples, 16000, 1.0);

    let by_type = p.audio_url(&server.url("/play"), 8000).await.unwrap();
    assert_tone(&by_type.samples, 8000, 1.0);

    // Clones share the cache.
    let clone = p.clone();
    clone
        .audio_url(&server.url("/tone.mp3"), 8000)
        .await
        .unwrap();
    assert_eq!(server.count("/tone.mp3"), 2);
}

#[tokio::test]
async fn fragment_is_never_sent() {
    let server = Server::start().await;
    let p = prompts(PromptConfig::default());
    let pcm = p
        .audio_url(&server.url("/frag.wav?voice=1#ct=2000&rt=3000"), 8000)
        .await
        .unwrap();
    assert_tone(&pcm.samples, 8000, 1.0);
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen, vec!["/frag.wav?voice=1".to_owned()]);
    // Same resource with another fragment: same cache entry.
    p.audio_url(&server.url("/frag.wav?voice=1#ct=500"), 8000)
        .await
        .unwrap();
    assert_eq!(server.count("/frag.wav?voice=1"), 1);
}

#[tokio::test]
async fn redirects_are_followed() {
    let server = Server::start().await;
    let p = prompts(PromptConfig::default());
    let pcm = p.audio_url(&server.url("/redirect"), 8000).await.unwrap();
    assert_tone(&pcm.samples, 8000, 1.0);
}

#[tokio::test]
async fn concurrent_requests_share_one_fetch() {
    let server = Server::start().await;
    let p = prompts(PromptConfig::default());
    let url = server.url("/slow.wav");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (p, url) = (p.clone(), url.clone());
        tasks.spawn(async move { p.audio_url(&url, 8000).await });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        results.push(r.unwrap().unwrap());
    }
    assert_eq!(results.len(), 10);
    for pcm in &results {
        assert!(Arc::ptr_eq(&pcm.samples, &results[0].samples));
    }
    assert_eq!(server.count("/slow.wav"), 1);
}

#[tokio::test]
async fn http_errors_are_reported_and_not_cached() {
    let server = Server::start().await;
    let p = prompts(PromptConfig::default());

    let url = server.url("/missing.wav");
    match p.audio_url(&url, 8000).await {
        Err(PromptError::Status {
            url: u,
            status: 404,
        }) => assert_eq!(u, url),
        other => panic!("expected 404, got {other:?}"),
    }
    let err = p.audio_url(&url, 8000).await.unwrap_err();
    assert!(err.to_string().contains("/missing.wav"), "{err}");
    assert_eq!(server.count("/missing.wav"), 2, "failures are not cached");

    // A failure is retried on the next request, and the success is then cached.
    let flaky = server.url("/flaky.wav");
    assert!(matches!(
        p.audio_url(&flaky, 8000).await,
        Err(PromptError::Status { status: 503, .. })
    ));
    p.audio_url(&flaky, 8000).await.unwrap();
    p.audio_url(&flaky, 8000).await.unwrap();
    assert_eq!(server.count("/flaky.wav"), 2);
}

#[tokio::test]
async fn connection_refused_is_a_fetch_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = prompts(PromptConfig::default());
    let url = format!("http://127.0.0.1:{port}/tone.wav");
    match p.audio_url(&url, 8000).await {
        Err(e @ PromptError::Fetch { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&url), "{text}");
            eprintln!("{text}");
        }
        other => panic!("expected a fetch error, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = Server::start().await;
    let limit = 64 * 1024;
    let p = prompts(PromptConfig {
        max_file_bytes: limit,
        ..Default::default()
    });
    // The 1 s 16 kHz tone is 32 KB: under the limit.
    p.audio_url(&server.url("/tone.wav"), 8000).await.unwrap();

    let started = Instant::now();
    match p.audio_url(&server.url("/declared-huge.wav"), 8000).await {
        Err(PromptError::TooLarge { limit: l, .. }) => assert_eq!(l, limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    match p.audio_url(&server.url("/endless.wav"), 8000).await {
        Err(e @ PromptError::TooLarge { .. }) => {
            assert!(e.to_string().contains("/endless.wav"), "{e}")
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Reading stopped at the limit: the server got only as far as socket buffers allow,
    // nowhere near the 256 MB it would send.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let streamed = server.streamed.load(Ordering::SeqCst);
    assert!(streamed < 32 * 1024 * 1024, "server wrote {streamed} bytes");
}

#[tokio::test]
async fn html_is_a_decode_error_naming_the_url() {
    let server = Server::start().await;
    let p = prompts(PromptConfig::default());
    let url = server.url("/page.mp3");
    match p.audio_url(&url, 8000).await {
        Err(e @ PromptError::Decode { .. }) => assert!(e.to_string().contains(&url), "{e}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[tokio::test]
async fn slow_bodies_time_out() {
    let server = Server::start().await;
    let p = prompts(PromptConfig {
        fetch_timeout: Duration::from_millis(500),
        ..Default::default()
    });
    let started = Instant::now();
    match p.audio_url(&server.url("/hang.wav"), 8000).await {
        Err(e @ PromptError::Fetch { .. }) => assert!(e.to_string().contains("timed out"), "{e}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn bad_urls_and_rates_are_rejected_without_a_request() {
    let server = Server::start().await;
    let p = prompts(PromptConfig::default());
    for url in [
        "",
        "tone.wav",
        "ftp://127.0.0.1/tone.wav",
        "file:///etc/passwd",
    ] {
        assert!(
            matches!(
                p.audio_url(url, 8000).await,
                Err(PromptError::InvalidUrl { .. })
            ),
            "{url}"
        );
    }
    assert!(matches!(
        p.audio_url(&server.url("/tone.wav"), 44).await,
        Err(PromptError::UnsupportedRate { rate: 44 })
    ));
    assert!(server.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn small_cache_evicts_and_refetches() {
    let server = Server::start().await;
    // One 1 s prompt at 8 kHz is 16 000 bytes: room for one only.
    let p = prompts(PromptConfig {
        cache_bytes: 20_000,
        ..Default::default()
    });
    p.audio_url(&server.url("/tone.wav"), 8000).await.unwrap();
    p.audio_url(&server.url("/tone.mp3"), 8000).await.unwrap();
    p.audio_url(&server.url("/tone.mp3"), 8000).await.unwrap();
    assert_eq!(server.count("/tone.mp3"), 1);
    p.audio_url(&server.url("/tone.wav"), 8000).await.unwrap();
    assert_eq!(
        server.count("/tone.wav"),
        2,
        "evicted by the mp3, fetched again"
    );
}
