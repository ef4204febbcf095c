//! Test support for black-box tests: start `huddle serve`, speak SIP and RTP to it, detect tones.
//!
//! Deliberately independent of huddle's own crates (its own SIP text handling, µ-law and
//! Goertzel): the test oracle must not share the bugs of the code under test.

pub mod audio_files;
pub mod files;
pub mod http_stub;
pub mod tls;

pub use audio_files::{mp3_tone, wav_tone};
pub use files::{open_files, raise_open_file_limit};
pub use http_stub::{HttpStub, StubRequest};
pub use tls::TestPki;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// A running `huddle serve` on free ports, killed on drop.
pub struct ServerProcess {
    child: Option<Child>,
    /// SIP address (UDP and TCP on the same port).
    pub sip: SocketAddr,
    /// HTTP address.
    pub http: SocketAddr,
    /// First RTP port of the range.
    pub rtp_low: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// Environment variables the process is started with, besides the test's own.
    env: Vec<(String, String)>,
}

/// Ports for the listeners of test servers, below the kernel's ephemeral range (32768 and
/// up) and the RTP ranges (20000 and up): a port the kernel handed out with bind(0) and that
/// was released could be given again at once to any outgoing connection of a parallel test,
/// before the server binds it; a port outside that range is only ever taken by this counter.
const LISTENER_PORTS: std::ops::Range<u32> = 12_000..20_000;

/// A port free right now for UDP and TCP on 127.0.0.1, from [`LISTENER_PORTS`]. The counter
/// starts at a point drawn from the process id, so that test processes running side by side
/// walk different parts of the range; a port some process holds is skipped.
fn fresh_listener_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = LISTENER_PORTS.end - LISTENER_PORTS.start;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = (LISTENER_PORTS.start + NEXT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
}

fn free_port_pair() -> u16 {
    fresh_listener_port()
}

/// A TCP port on 127.0.0.1 free right now (for a listener a test configures, such as TLS),
/// from a range the kernel never hands out on its own (see [`LISTENER_PORTS`]).
pub fn free_tcp_port() -> u16 {
    fresh_listener_port()
}

/// The ports and directory a test server gets, for writing its configuration.
#[derive(Debug, Clone)]
pub struct Slots {
    /// SIP port (UDP and TCP) on 127.0.0.1.
    pub sip_port: u16,
    /// HTTP port on 127.0.0.1.
    pub http_port: u16,
    /// First RTP port.
    pub rtp_low: u16,
    /// Last RTP port.
    pub rtp_high: u16,
    /// The server's own directory (configuration, log, database, recordings).
    pub dir: PathBuf,
}

impl Slots {
    /// The standard test configuration: SIP and HTTP on loopback, the shipped credentials,
    /// the echo routes; `sip_extra` and `http_extra` are more keys of `[sip]` and `[http]`,
    /// `extra_toml` more tables (routes) at the end.
    pub fn standard(&self, sip_extra: &str, http_extra: &str, extra_toml: &str) -> String {
        format!(
            r#"
[sip]
listen = ["udp:127.0.0.1:{sip_port}", "tcp:127.0.0.1:{sip_port}"]
advertised_address = "127.0.0.1"
{sip_extra}
[rtp]
port_range = "{rtp_low}-{rtp_high}"
rtp_timeout_secs = 20
[http]
listen = "127.0.0.1:{http_port}"
auth_id = "MAHUDDLEDEFAULT00000"
auth_token = "change-me"
public_url = "http://127.0.0.1:{http_port}"
{http_extra}
[storage]
database = "sqlite://{dir}/huddle.db"
recordings = "{dir}/recordings"
[server]
shutdown_grace_secs = 2
[[route]]
user = "^echo$"
echo = true
[[route]]
user = "^echo-short$"
echo = true
max_duration_secs = 2
{extra_toml}
"#,
            sip_port = self.sip_port,
            http_port = self.http_port,
            rtp_low = self.rtp_low,
            rtp_high = self.rtp_high,
            dir = self.dir.display()
        )
    }
}

impl ServerProcess {
    /// Starts the server with the standard test routes plus `extra_toml` (more routes) and
    /// `rtp_ports` RTP ports. Panics with the log if it does not become healthy.
    pub fn start(bin: &Path, extra_toml: &str, rtp_ports: u16) -> ServerProcess {
        Self::start_with(bin, rtp_ports, |slots| slots.standard("", "", extra_toml))
    }

    /// Like [`ServerProcess::start`], with these environment variables set for the process
    /// only (for example `SSL_CERT_FILE`, so that it trusts a test CA as a system root).
    pub fn start_env(
        bin: &Path,
        extra_toml: &str,
        rtp_ports: u16,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        Self::start_inner(
            bin,
            rtp_ports,
            |slots| slots.standard("", "", extra_toml),
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// Starts the server on the configuration `render` writes for the free ports and the
    /// directory it is given (see [`Slots::standard`]). Panics with the log if it does not
    /// become healthy.
    pub fn start_with(
        bin: &Path,
        rtp_ports: u16,
        render: impl FnOnce(&Slots) -> String,
    ) -> ServerProcess {
        Self::start_inner(bin, rtp_ports, render, Vec::new())
    }

    fn start_inner(
        bin: &Path,
        rtp_ports: u16,
        render: impl FnOnce(&Slots) -> String,
        env: Vec<(String, String)>,
    ) -> ServerProcess {
        let sip_port = free_port_pair();
        let http_port = free_tcp_port();
        // RTP ranges: random even base, far from the ephemeral range used by free_port().
        let rtp_low = next_rtp_range(rtp_ports);
        let dir =
            std::env::temp_dir().join(format!("huddle-test-{}-{}", std::process::id(), rand_u16()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let slots = Slots {
            sip_port,
            http_port,
            rtp_low,
            rtp_high: rtp_low + rtp_ports,
            dir: dir.clone(),
        };
        std::fs::write(dir.join("huddle.toml"), render(&slots)).expect("write config");
        let mut server = ServerProcess {
            child: None,
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            rtp_low,
            dir,
            bin: bin.to_path_buf(),
            env,
        };
        server.spawn_and_wait_healthy();
        server
    }

    /// The directory the standard configuration keeps recordings in.
    pub fn recordings_dir(&self) -> PathBuf {
        self.dir.join("recordings")
    }

    /// Starts the server again, after it exited, on the same configuration, ports and data
    /// (the database and recordings survive, as they would on a real restart).
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn_and_wait_healthy();
    }

    fn spawn_and_wait_healthy(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .expect("log file");
        let child = Command::new(&self.bin)
            .args(["serve", "--config"])
            .arg(self.dir.join("huddle.toml"))
            .env("RUST_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn huddle");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self
                .http_get("/health")
                .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("huddle exited early ({status}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("huddle did not become healthy:\n{}", self.log());
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// A blocking HTTP GET; returns the whole response.
    pub fn http_get(&self, path: &str) -> Option<String> {
        self.http_get_with(path, "")
    }

    /// A blocking HTTP GET with extra header lines (each ending in `\r\n`), e.g. an
    /// `Authorization` from [`basic_auth`]; returns the whole response.
    pub fn http_get_with(&self, path: &str, headers: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s =
            std::net::TcpStream::connect_timeout(&self.http, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// Sum of every sample of a Prometheus metric whose line starts with `prefix`.
    pub fn metric(&self, prefix: &str) -> f64 {
        self.http_get("/metrics")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until the summed metric reaches `at_least` (counters that are published
    /// periodically, such as the per-leg RTP counters once a second) and returns its value;
    /// after `within` it returns whatever it is. It blocks the calling thread between polls:
    /// in a test whose runtime also serves an [`HttpStub`], use
    /// [`ServerProcess::metric_until`].
    pub fn metric_reaching(&self, prefix: &str, at_least: f64, within: Duration) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let value = self.metric(prefix);
            if value >= at_least || Instant::now() >= deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The summed metric like [`ServerProcess::metric`], or None when `/metrics` cannot be
    /// read or has no sample starting with `prefix` (so that "fell to 0" is not mistaken for
    /// "not there").
    pub fn metric_sample(&self, prefix: &str) -> Option<f64> {
        let text = self.http_get("/metrics")?;
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Waits, without blocking the test's runtime (an [`HttpStub`] on it keeps answering),
    /// until the summed metric is present and satisfies `holds`; polls `/metrics` every 50 ms
    /// and gives up after `within`. Returns the last value seen either way (None when the
    /// metric never appeared), for the caller to assert on.
    pub async fn metric_until(
        &self,
        prefix: &str,
        within: Duration,
        holds: impl Fn(f64) -> bool,
    ) -> Option<f64> {
        let deadline = Instant::now() + within;
        loop {
            let value = self.metric_sample(prefix);
            if value.is_some_and(&holds) || Instant::now() >= deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the process with SIGKILL (`kill -9`: no drain, no flush, nothing finalized) and
    /// waits for it to be gone; [`ServerProcess::restart`] starts it again on the same data.
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            // std's kill is SIGKILL on Unix.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
    }

    /// Waits for exit; the exit code, or None on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Polls `probe` every 50 ms until it gives `Some`, for at most `within`: the way to wait for
/// an externally observable condition (a REST resource's state, a file, ...) with a deadline
/// instead of sleeping a fixed time. None when the deadline passed first; `probe` runs at
/// least once.
pub async fn poll_until<T, F, Fut>(within: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An `Authorization: Basic ...` header line (with its `\r\n`) for `user` and `password`.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// RTP ranges of the servers one test process starts are handed out one after another, so two
/// servers running at once never compete for a port (a test with a single port pair relies on
/// it). They stay within 20000..32768, below the ephemeral ports that test sockets get.
fn next_rtp_range(ports: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(ports) + 2 + u32::from(ports) % 2;
    let offset = NEXT.fetch_add(span, Ordering::Relaxed) % 12_000;
    (20_000 + offset - offset % 2) as u16
}

fn rand_u16() -> u16 {
    let b = uuid::Uuid::new_v4();
    u16::from_be_bytes([b.as_bytes()[0], b.as_bytes()[1]])
}

/// A parsed SIP message (just enough for tests).
#[derive(Debug, Clone)]
pub struct Msg {
    /// First line.
    pub start: String,
    /// Header lines (name, value).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Msg {
    /// Parses text.
    pub fn parse(text: &str) -> Option<Msg> {
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?.to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (expand(n.trim()), v.trim().to_string()))
            .collect();
        Some(Msg {
            start,
            headers,
            body: body.to_string(),
        })
    }

    /// First header value by name (case-insensitive, compact forms expanded).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Status code of a response (0 for requests).
    pub fn status(&self) -> u16 {
        self.start
            .strip_prefix("SIP/2.0 ")
            .and_then(|s| s.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// CSeq method.
    pub fn cseq_method(&self) -> &str {
        self.header("CSeq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or("")
    }

    /// The `m=audio` port and `c=` address of the SDP body.
    pub fn sdp_audio(&self) -> Option<SocketAddr> {
        let ip = self
            .body
            .lines()
            .find_map(|l| l.strip_prefix("c=IN IP4 "))?
            .trim();
        let port = self
            .body
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))?
            .split(' ')
            .next()?;
        format!("{ip}:{port}").parse().ok()
    }
}

fn expand(name: &str) -> String {
    match name {
        "v" => "Via",
        "f" => "From",
        "t" => "To",
        "i" => "Call-ID",
        "m" => "Contact",
        "l" => "Content-Length",
        "c" => "Content-Type",
        other => other,
    }
    .to_string()
}

enum Link {
    Udp(UdpSocket),
    Tcp(TcpStream, Vec<u8>),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>, Vec<u8>),
}

/// A minimal SIP user agent over UDP, TCP or TLS.
pub struct SipUa {
    link: Link,
    server: SocketAddr,
    /// Local address.
    pub local: SocketAddr,
    /// Every message received.
    pub received: Vec<Msg>,
    /// Call-ID of the current call.
    pub call_id: String,
    /// Our From tag.
    pub tag: String,
    /// The remote tag, once known.
    pub remote_tag: Option<String>,
    /// The INVITE's branch.
    pub branch: String,
    cseq: u32,
    /// CSeq number of the current INVITE (2 after a digest challenge was answered, ...).
    invite_cseq: u32,
    /// The `Authorization` value of the last INVITE sent with credentials.
    pub last_authorization: Option<String>,
}

impl SipUa {
    /// A UA over UDP.
    pub async fn udp(server: SocketAddr) -> SipUa {
        let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let local = s.local_addr().expect("addr");
        Self::new(Link::Udp(s), server, local)
    }

    /// A UA over UDP from another local address, e.g. `127.0.0.2` (on Linux all of
    /// 127.0.0.0/8 reaches the loopback interface): a source the server may not trust.
    pub async fn udp_from(ip: std::net::IpAddr, server: SocketAddr) -> SipUa {
        Self::udp_at(SocketAddr::new(ip, 0), server).await
    }

    /// A UA over UDP on a chosen local address and port (port 0: any).
    pub async fn udp_at(local: SocketAddr, server: SocketAddr) -> SipUa {
        let s = UdpSocket::bind(local).await.expect("bind");
        let local = s.local_addr().expect("addr");
        Self::new(Link::Udp(s), server, local)
    }

    /// A UA over UDP on a chosen local port: a test trunk the server dials out to.
    pub async fn udp_on(port: u16, server: SocketAddr) -> SipUa {
        let s = UdpSocket::bind(("127.0.0.1", port)).await.expect("bind");
        let local = s.local_addr().expect("addr");
        Self::new(Link::Udp(s), server, local)
    }

    /// A UA over TCP.
    pub async fn tcp(server: SocketAddr) -> SipUa {
        let s = TcpStream::connect(server).await.expect("connect");
        let local = s.local_addr().expect("addr");
        Self::new(Link::Tcp(s, Vec::new()), server, local)
    }

    fn new(link: Link, server: SocketAddr, local: SocketAddr) -> SipUa {
        SipUa {
            link,
            server,
            local,
            received: Vec::new(),
            call_id: format!("{}@test", uuid::Uuid::new_v4()),
            tag: format!("t{}", rand_u16()),
            remote_tag: None,
            branch: format!("z9hG4bK{}", uuid::Uuid::new_v4().simple()),
            cseq: 1,
            invite_cseq: 1,
            last_authorization: None,
        }
    }

    /// Starts a new call on this UA: a new Call-ID, tag and branch.
    pub fn new_call(&mut self) {
        self.call_id = format!("{}@test", uuid::Uuid::new_v4());
        self.tag = format!("t{}", rand_u16());
        self.branch = format!("z9hG4bK{}", uuid::Uuid::new_v4().simple());
        self.remote_tag = None;
        self.cseq = 1;
        self.invite_cseq = 1;
    }

    fn transport(&self) -> &'static str {
        match self.link {
            Link::Udp(_) => "UDP",
            Link::Tcp(..) => "TCP",
            Link::Tls(..) => "TLS",
        }
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, data: &[u8]) {
        match &mut self.link {
            Link::Udp(s) => {
                s.send_to(data, self.server).await.expect("send");
            }
            Link::Tcp(s, _) => {
                let _ = s.write_all(data).await;
            }
            Link::Tls(s, _) => {
                let _ = s.write_all(data).await;
                let _ = s.flush().await;
            }
        }
    }

    /// Receives one message (or None on timeout / closed connection).
    pub async fn recv(&mut self, timeout: Duration) -> Option<Msg> {
        let msg = tokio::time::timeout(timeout, async {
            match &mut self.link {
                Link::Udp(s) => {
                    let mut buf = vec![0u8; 65536];
                    let (n, _) = s.recv_from(&mut buf).await.ok()?;
                    Msg::parse(&String::from_utf8_lossy(&buf[..n]))
                }
                Link::Tcp(s, pending) => read_framed(s, pending).await,
                Link::Tls(s, pending) => read_framed(s.as_mut(), pending).await,
            }
        })
        .await
        .ok()
        .flatten();
        if let Some(m) = &msg {
            self.received.push(m.clone());
        }
        msg
    }

    /// Receives until a message matching `pred`, answering any BYE with 200 on the way.
    pub async fn recv_until(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Msg) -> bool,
    ) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let m = self.recv(left).await?;
            if pred(&m) {
                return Some(m);
            }
        }
        None
    }

    /// An SDP offer of Opus alone (`opus/48000/2` on payload type `pt`, with the fmtp a
    /// WebRTC gateway sends) for an RTP port.
    pub fn sdp_opus(rtp_port: u16, pt: u8) -> String {
        format!(
            "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP {pt}\r\na=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} minptime=10;useinbandfec=1\r\n"
        )
    }

    /// An SDP offer of Opus alone on payload type `pt` with the given fmtp parameters (for
    /// instance `maxplaybackrate=8000` from a narrowband phone).
    pub fn sdp_opus_fmtp(rtp_port: u16, pt: u8, fmtp: &str) -> String {
        format!(
            "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP {pt}\r\na=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} {fmtp}\r\n"
        )
    }

    /// An SDP offer for an RTP port with these payload types (0 PCMU, 8 PCMA, 18 G729, 101 DTMF).
    pub fn sdp(rtp_port: u16, pts: &[u8]) -> String {
        let list: Vec<String> = pts.iter().map(u8::to_string).collect();
        let mut s = format!(
            "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP {}\r\n",
            list.join(" ")
        );
        if pts.contains(&101) {
            s.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n");
        }
        s
    }

    /// The INVITE text for `user` with `sdp`.
    pub fn invite_text(&self, user: &str, sdp: &str) -> String {
        self.invite_text_with(user, sdp, "")
    }

    /// The Request-URI of an INVITE for `user`.
    pub fn request_uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.server)
    }

    /// The INVITE text for `user` with `sdp` and more header lines (each ending in CRLF).
    pub fn invite_text_with(&self, user: &str, sdp: &str, extra_headers: &str) -> String {
        format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch={b};rport\r\nMax-Forwards: 70\r\n\
From: <sip:tester@{local}>;tag={tag}\r\nTo: <sip:{user}@{srv}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\n\
Contact: <sip:tester@{local};transport={tl}>\r\n{extra_headers}Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            ruri = self.request_uri(user),
            srv = self.server,
            t = self.transport(),
            tl = self.transport().to_lowercase(),
            local = self.local,
            b = self.branch,
            tag = self.tag,
            cid = self.call_id,
            cseq = self.invite_cseq,
            len = sdp.len()
        )
    }

    /// Sends an INVITE with `extra_headers` and waits for its final response; a non-2xx one is
    /// acknowledged (as RFC 3261 §17.1.1.3 has the transaction do), a 2xx is not.
    pub async fn invite_with(&mut self, user: &str, sdp: &str, extra_headers: &str) -> Option<Msg> {
        let text = self.invite_text_with(user, sdp, extra_headers);
        self.send_raw(text.as_bytes()).await;
        let resp = self
            .recv_until(Duration::from_secs(10), |m| {
                m.status() >= 200 && m.cseq_method() == "INVITE"
            })
            .await?;
        self.remote_tag = resp
            .header("To")
            .and_then(|t| t.split(";tag=").nth(1))
            .map(|t| t.split(';').next().unwrap_or(t).to_string());
        if resp.status() >= 300 {
            self.ack_failure(&resp).await;
        }
        Some(resp)
    }

    /// Moves to the next INVITE transaction of the same call: the next CSeq and a new branch
    /// (for an INVITE that answers a challenge).
    pub fn next_invite(&mut self) {
        self.invite_cseq += 1;
        self.cseq = self.cseq.max(self.invite_cseq);
        self.branch = format!("z9hG4bK{}", uuid::Uuid::new_v4().simple());
    }

    /// Acknowledges a non-2xx final response to the current INVITE: same branch and CSeq
    /// number, the response's To (with its tag).
    pub async fn ack_failure(&mut self, resp: &Msg) {
        let text = format!(
            "ACK {ruri} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch={b};rport\r\nMax-Forwards: 70\r\n\
From: <sip:tester@{local}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            ruri = resp
                .header("To")
                .and_then(|t| t.split('<').nth(1))
                .and_then(|t| t.split('>').next())
                .unwrap_or("sip:x@127.0.0.1"),
            t = self.transport(),
            local = self.local,
            b = self.branch,
            tag = self.tag,
            to = resp.header("To").unwrap_or_default(),
            cid = self.call_id,
            cseq = self.invite_cseq,
        );
        self.send_raw(text.as_bytes()).await;
    }

    /// Calls `user` as `username` with `password`: the INVITE, and when it is challenged
    /// (401, up to three times, e.g. after a stale nonce) the INVITE again in a new
    /// transaction with the next CSeq and an `Authorization` answering the challenge whose
    /// algorithm is `algorithm` ("SHA-256" or "MD5"; the first challenge when None). Returns
    /// the last final response (the 2xx is not acknowledged yet) and every challenge seen.
    pub async fn invite_authenticated(
        &mut self,
        user: &str,
        sdp: &str,
        username: &str,
        password: &str,
        algorithm: Option<&str>,
    ) -> Option<(Msg, Vec<Msg>)> {
        let mut challenges = Vec::new();
        let mut resp = self.invite_with(user, sdp, "").await?;
        while resp.status() == 401 && challenges.len() < 3 {
            let offered: Vec<&str> = resp
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("WWW-Authenticate"))
                .map(|(_, v)| v.as_str())
                .collect();
            let challenge = match algorithm {
                Some(alg) => offered.iter().find(|c| {
                    digest_param(c, "algorithm").is_some_and(|a| a.eq_ignore_ascii_case(alg))
                }),
                None => offered.first(),
            }?
            .to_string();
            let uri = self.request_uri(user);
            let cnonce = uuid::Uuid::new_v4().simple().to_string();
            let authorization =
                digest_authorization(&challenge, "INVITE", &uri, username, password, 1, &cnonce)?;
            challenges.push(resp);
            self.next_invite();
            self.last_authorization = Some(authorization.clone());
            resp = self
                .invite_with(user, sdp, &format!("Authorization: {authorization}\r\n"))
                .await?;
        }
        Some((resp, challenges))
    }

    /// Sends an INVITE and waits for a final response (answering nothing else).
    pub async fn invite(&mut self, user: &str, sdp: &str) -> Option<Msg> {
        let text = self.invite_text(user, sdp);
        self.send_raw(text.as_bytes()).await;
        let resp = self
            .recv_until(Duration::from_secs(10), |m| {
                m.status() >= 200 && m.cseq_method() == "INVITE"
            })
            .await?;
        self.remote_tag = resp
            .header("To")
            .and_then(|t| t.split(";tag=").nth(1))
            .map(|t| t.split(';').next().unwrap_or(t).to_string());
        Some(resp)
    }

    fn in_dialog(&mut self, method: &str, cseq: u32) -> String {
        let branch = format!("z9hG4bK{}", uuid::Uuid::new_v4().simple());
        format!(
            "{method} sip:huddle@{srv} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch={branch};rport\r\nMax-Forwards: 70\r\n\
From: <sip:tester@{local}>;tag={tag}\r\nTo: <sip:x@{srv}>;tag={rt}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            srv = self.server,
            t = self.transport(),
            local = self.local,
            tag = self.tag,
            rt = self.remote_tag.clone().unwrap_or_default(),
            cid = self.call_id
        )
    }

    /// Sends a re-INVITE with `sdp` and waits for its final response (which it ACKs when 2xx).
    pub async fn reinvite(&mut self, sdp: &str) -> Option<Msg> {
        self.cseq += 1;
        let cseq = self.cseq;
        let text = self.in_dialog("INVITE", cseq).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            ),
        );
        self.send_raw(text.as_bytes()).await;
        let resp = self
            .recv_until(Duration::from_secs(5), |m| {
                m.status() >= 200 && m.cseq_method() == "INVITE"
            })
            .await?;
        if resp.status() < 300 {
            let ack = self.in_dialog("ACK", cseq);
            self.send_raw(ack.as_bytes()).await;
        }
        Some(resp)
    }

    /// ACKs the 2xx.
    pub async fn ack(&mut self) {
        let text = self.in_dialog("ACK", self.invite_cseq);
        self.send_raw(text.as_bytes()).await;
    }

    /// Sends BYE and waits for its 200.
    pub async fn bye(&mut self) -> Option<Msg> {
        self.cseq += 1;
        let text = self.in_dialog("BYE", self.cseq);
        self.send_raw(text.as_bytes()).await;
        self.recv_until(Duration::from_secs(5), |m| {
            m.status() >= 200 && m.cseq_method() == "BYE"
        })
        .await
    }

    /// Sends a CANCEL for the INVITE sent by [`SipUa::invite_text`] with `user` (same branch).
    pub async fn cancel_invite(&mut self, user: &str) {
        let invite = self.invite_text(user, "");
        let cancel = invite
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .replacen("INVITE sip", "CANCEL sip", 1)
            .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
            .replace("Content-Type: application/sdp\r\n", "")
            .lines()
            .filter(|l| !l.starts_with("Content-Length"))
            .collect::<Vec<_>>()
            .join("\r\n")
            + "\r\nContent-Length: 0\r\n\r\n";
        self.send_raw(cancel.as_bytes()).await;
    }

    /// Answers an INVITE received from the server with `status` (a To tag added); a 2xx
    /// carries `sdp` and our Contact, and so does an 18x given an `sdp` (early media).
    pub async fn answer_invite(&mut self, req: &Msg, status: u16, reason: &str, sdp: &str) {
        let mut text = format!("SIP/2.0 {status} {reason}\r\n");
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            for (n, v) in &req.headers {
                if n.eq_ignore_ascii_case(name) {
                    text.push_str(&format!("{name}: {v}\r\n"));
                }
            }
        }
        let to = req.header("To").unwrap_or_default();
        text.push_str(&format!("To: {to};tag={}\r\n", self.tag));
        let early = (180..200).contains(&status) && !sdp.is_empty();
        if (200..300).contains(&status) || early {
            text.push_str(&format!(
                "Contact: <sip:trunk@{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                self.local,
                sdp.len()
            ));
        } else {
            text.push_str("Content-Length: 0\r\n\r\n");
        }
        self.send_raw(text.as_bytes()).await;
    }

    /// Answers a request received from the server with 200 OK.
    pub async fn reply_ok(&mut self, req: &Msg) {
        let mut text = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for (n, v) in &req.headers {
                if n.eq_ignore_ascii_case(name) {
                    text.push_str(&format!("{name}: {v}\r\n"));
                }
            }
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        self.send_raw(text.as_bytes()).await;
    }
}

/// A parameter of a digest challenge or credentials (quoted or not), e.g. `nonce`.
pub fn digest_param(value: &str, name: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(&format!("{name}=")) {
        let at = from + pos;
        let before = lower[..at].trim_end();
        if at == 0 || before.ends_with(',') || before.eq_ignore_ascii_case("digest") {
            let rest = &value[at + name.len() + 1..];
            return Some(match rest.strip_prefix('"') {
                Some(q) => q.split('"').next().unwrap_or("").to_string(),
                None => rest.split(',').next().unwrap_or("").trim().to_string(),
            });
        }
        from = at + 1;
    }
    None
}

/// Lower-case hex digest of `data` with a digest `algorithm` ("MD5" or "SHA-256").
pub fn digest_hex(algorithm: &str, data: &str) -> Option<String> {
    use md5::Digest;
    let bytes: Vec<u8> = if algorithm.eq_ignore_ascii_case("MD5") {
        md5::Md5::digest(data.as_bytes()).to_vec()
    } else if algorithm.eq_ignore_ascii_case("SHA-256") {
        sha2::Sha256::digest(data.as_bytes()).to_vec()
    } else {
        return None;
    };
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `Authorization` value answering a `WWW-Authenticate` digest `challenge` (RFC 7616,
/// qop=auth when offered) with nonce count `nc`; None for an algorithm other than MD5 and
/// SHA-256 or a challenge without realm or nonce.
pub fn digest_authorization(
    challenge: &str,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    nc: u32,
    cnonce: &str,
) -> Option<String> {
    let realm = digest_param(challenge, "realm")?;
    let nonce = digest_param(challenge, "nonce")?;
    let algorithm = digest_param(challenge, "algorithm").unwrap_or_else(|| "MD5".into());
    let qop =
        digest_param(challenge, "qop").is_some_and(|q| q.split(',').any(|q| q.trim() == "auth"));
    let ha1 = digest_hex(&algorithm, &format!("{username}:{realm}:{password}"))?;
    let ha2 = digest_hex(&algorithm, &format!("{method}:{uri}"))?;
    let nc = format!("{nc:08x}");
    Some(if qop {
        let response = digest_hex(
            &algorithm,
            &format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"),
        )?;
        format!(
            "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={algorithm}, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
        )
    } else {
        let response = digest_hex(&algorithm, &format!("{ha1}:{nonce}:{ha2}"))?;
        format!(
            "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={algorithm}"
        )
    })
}

/// Reads the next Content-Length-framed message from a stream, keeping what follows it.
async fn read_framed<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    pending: &mut Vec<u8>,
) -> Option<Msg> {
    loop {
        if let Some(end) = find(pending, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    (n.eq_ignore_ascii_case("content-length") || n == "l")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if pending.len() >= end + 4 + len {
                let bytes: Vec<u8> = pending.drain(..end + 4 + len).collect();
                return Msg::parse(&String::from_utf8_lossy(&bytes));
            }
        }
        let mut buf = [0u8; 8192];
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Encodes a sample to µ-law (ITU-T G.711).
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(32635) + 0x84;
    let mut exp = 7;
    while exp > 0 && s & (0x4000 >> (7 - exp)) == 0 {
        exp -= 1;
    }
    let mant = (s >> (exp + 3)) & 0x0F;
    !(sign as u8 | ((exp as u8) << 4) | mant as u8)
}

/// Decodes a µ-law byte.
pub fn ulaw_decode(b: u8) -> i16 {
    let b = !b;
    let exp = i32::from((b >> 4) & 7);
    let mag = ((i32::from(b & 0x0F) << 3) + 0x84) << exp;
    let v = mag - 0x84;
    (if b & 0x80 != 0 { -v } else { v }) as i16
}

/// Goertzel power of `freq` in `pcm` sampled at 8 kHz.
pub fn tone_power(pcm: &[i16], freq: f64) -> f64 {
    tone_power_at(pcm, freq, 8000)
}

/// [`tone_power`] for audio sampled at `rate` Hz.
pub fn tone_power_at(pcm: &[i16], freq: f64, rate: u32) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in pcm {
        let s0 = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - k * s1 * s2
}

/// Root mean square level of `pcm`.
pub fn rms(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    (pcm.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
}

/// The share of `pcm`'s energy at `freq` (0..=1): about 1/n for each of n equal tones.
pub fn tone_share(pcm: &[i16], freq: f64) -> f64 {
    tone_share_at(pcm, freq, 8000)
}

/// [`tone_share`] for audio sampled at `rate` Hz.
pub fn tone_share_at(pcm: &[i16], freq: f64, rate: u32) -> f64 {
    let energy: f64 = pcm.iter().map(|&x| f64::from(x).powi(2)).sum();
    if energy <= 0.0 {
        return 0.0;
    }
    tone_power_at(pcm, freq, rate) / (energy * pcm.len() as f64 / 2.0)
}

/// Whether `freq` holds a clear share of the energy of `pcm`.
pub fn detect(pcm: &[i16], freq: f64) -> bool {
    let energy: f64 = pcm.iter().map(|&x| f64::from(x).powi(2)).sum();
    !pcm.is_empty()
        && energy / pcm.len() as f64 > 1e4
        && tone_power(pcm, freq) > 0.25 * energy * pcm.len() as f64 / 2.0
}

/// An Opus (RFC 7587) phone's codec state, for [`RtpPeer::opus`].
pub struct OpusPeer {
    /// The payload type it sends and expects.
    pub pt: u8,
    /// Sample rate of its audio (8000, 16000 or 48000); RTP always counts 48 kHz.
    pub rate: u32,
    encoder: audiopus::coder::Encoder,
    decoder: audiopus::coder::Decoder,
}

/// Packets an [`RtpPeer`] drops on purpose instead of sending: a seeded random loss, so a
/// test's loss pattern is the same on every run.
#[derive(Debug, Clone, Copy)]
pub struct SendLoss {
    /// Probability of dropping each packet (0.0..=1.0).
    pub probability: f64,
    state: u64,
    /// Packets dropped so far.
    pub dropped: u64,
}

impl SendLoss {
    /// `probability` of loss per packet, drawn from a generator seeded with `seed`.
    pub fn new(probability: f64, seed: u64) -> Self {
        SendLoss {
            probability,
            state: seed | 1,
            dropped: 0,
        }
    }

    /// Whether the next packet is lost (xorshift64*).
    fn lose(&mut self) -> bool {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let draw =
            (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        let lost = draw < self.probability;
        self.dropped += u64::from(lost);
        lost
    }
}

/// An RTP endpoint for tests.
pub struct RtpPeer {
    /// The socket.
    pub socket: UdpSocket,
    seq: u16,
    ts: u32,
    phase: f64,
    /// Peak amplitude of the tones sent (default 10,000).
    pub amplitude: f64,
    /// RFC 4733 events received (event code, once per event, on its end packet).
    pub dtmf_received: Vec<u8>,
    last_dtmf_ts: Option<u32>,
    /// Set: the peer speaks Opus instead of PCMU (see [`RtpPeer::bind_opus`]).
    pub opus: Option<OpusPeer>,
    /// Set: the peer speaks G.722 on payload type 9 (see [`RtpPeer::bind_g722`]).
    pub g722: Option<(
        huddle_media::g722::G722Encoder,
        huddle_media::g722::G722Decoder,
    )>,
    /// Set: the peer speaks G.711 A-law (payload type 8) instead of µ-law.
    pub pcma: bool,
    /// Set: packets are dropped at random before sending.
    pub loss: Option<SendLoss>,
    /// Set: the tone's level swings between 20 % and 100 % at this rate (Hz), like syllables.
    /// Opus's SILK layer takes a steady tone for background noise and sends no in-band FEC
    /// for it; a tone that comes and goes like speech gets FEC.
    pub syllable_hz: Option<f64>,
    sample: u64,
}

impl RtpPeer {
    /// Binds on 127.0.0.1.
    pub async fn bind() -> RtpPeer {
        RtpPeer {
            socket: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
            seq: 1,
            ts: 0,
            phase: 0.0,
            amplitude: 10_000.0,
            dtmf_received: Vec::new(),
            last_dtmf_ts: None,
            opus: None,
            g722: None,
            pcma: false,
            loss: None,
            syllable_hz: None,
            sample: 0,
        }
    }

    /// Binds on 127.0.0.1 as an Opus phone on payload type `pt` whose audio runs at `rate`
    /// (8000, 16000 or 48000 Hz), sending with in-band FEC.
    pub async fn bind_opus(pt: u8, rate: u32) -> RtpPeer {
        use audiopus::{Application, Channels, SampleRate};
        let sample_rate = <SampleRate as audiopus::TryFrom<i32>>::try_from(rate as i32)
            .expect("an Opus sample rate");
        let mut encoder =
            audiopus::coder::Encoder::new(sample_rate, Channels::Mono, Application::Voip)
                .expect("Opus encoder");
        encoder.set_inband_fec(true).expect("FEC");
        encoder.set_packet_loss_perc(10).expect("loss");
        encoder
            .set_bitrate(audiopus::Bitrate::BitsPerSecond(if rate > 16000 {
                48_000
            } else {
                32_000
            }))
            .expect("bitrate");
        if rate > 16000 {
            // A fullband phone sends all of its band (libopus's VoIP mode would keep a tone
            // wideband at this bitrate).
            encoder
                .set_bandwidth(audiopus::Bandwidth::Fullband)
                .expect("bandwidth");
        }
        let decoder = audiopus::coder::Decoder::new(sample_rate, Channels::Mono).expect("decoder");
        let mut peer = RtpPeer::bind().await;
        peer.opus = Some(OpusPeer {
            pt,
            rate,
            encoder,
            decoder,
        });
        peer
    }

    /// Binds on 127.0.0.1 as a G.722 desk phone (payload type 9, 16 kHz audio, RTP
    /// timestamps counting 8000 per second as RFC 3551 has it).
    pub async fn bind_g722() -> RtpPeer {
        let mut peer = RtpPeer::bind().await;
        peer.g722 = Some(Default::default());
        peer
    }

    /// Sample rate of the audio this peer sends and returns from [`RtpPeer::talk`].
    pub fn rate(&self) -> u32 {
        if self.g722.is_some() {
            return 16000;
        }
        self.opus.as_ref().map_or(8000, |o| o.rate)
    }

    /// Local port.
    pub fn port(&self) -> u16 {
        self.socket.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// One 20 ms packet of a `freq` tone: PCMU (PCMA when [`RtpPeer::pcma`] is set), Opus for
    /// a peer made by [`RtpPeer::bind_opus`], G.722 for one made by [`RtpPeer::bind_g722`].
    pub fn tone_packet(&mut self, freq: f64) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
        p[2..4].copy_from_slice(&self.seq.to_be_bytes());
        p[4..8].copy_from_slice(&self.ts.to_be_bytes());
        let rate = self.rate();
        let pcm: Vec<i16> = (0..rate / 50)
            .map(|_| {
                let level = self.syllable_hz.map_or(1.0, |hz| {
                    let t = self.sample as f64 / f64::from(rate);
                    0.6 + 0.4 * (2.0 * std::f64::consts::PI * hz * t).sin()
                });
                let s = (self.phase.sin() * self.amplitude * level) as i16;
                self.phase += 2.0 * std::f64::consts::PI * freq / f64::from(rate);
                self.sample += 1;
                s
            })
            .collect();
        self.seq = self.seq.wrapping_add(1);
        if let Some((encoder, _)) = self.g722.as_mut() {
            p[1] = 9;
            let mut payload = [0u8; 160];
            let len = encoder.encode(&pcm, &mut payload);
            p.extend_from_slice(&payload[..len]);
            // 8000 per second in RTP although the audio is 16 kHz (RFC 3551 §4.5.2).
            self.ts = self.ts.wrapping_add(160);
            return p;
        }
        match self.opus.as_mut() {
            Some(opus) => {
                p[1] = opus.pt;
                let mut payload = [0u8; 1000];
                let len = opus
                    .encoder
                    .encode(&pcm, &mut payload)
                    .expect("Opus encode");
                p.extend_from_slice(&payload[..len]);
                self.ts = self.ts.wrapping_add(960);
            }
            None if self.pcma => {
                p[1] = 8;
                let mut payload = vec![0u8; pcm.len()];
                huddle_media::g711::alaw_encode(&pcm, &mut payload);
                p.extend_from_slice(&payload);
                self.ts = self.ts.wrapping_add(160);
            }
            None => {
                p.extend(pcm.iter().map(|s| ulaw_encode(*s)));
                self.ts = self.ts.wrapping_add(160);
            }
        }
        p
    }

    /// Sends a tone to `to` for `duration` (paced on absolute 20 ms deadlines) while collecting
    /// what comes back; returns the decoded PCM received.
    pub async fn talk(&mut self, to: SocketAddr, freq: f64, duration: Duration) -> Vec<i16> {
        self.talk_timed(to, freq, duration)
            .await
            .into_iter()
            .flat_map(|(_, pcm)| pcm)
            .collect()
    }

    /// Like [`RtpPeer::talk`], with the arrival time of every received packet.
    pub async fn talk_timed(
        &mut self,
        to: SocketAddr,
        freq: f64,
        duration: Duration,
    ) -> Vec<(Instant, Vec<i16>)> {
        let mut received = Vec::new();
        let start = tokio::time::Instant::now();
        let mut n = 0u32;
        let mut buf = [0u8; 2048];
        while start.elapsed() < duration {
            let pkt = self.tone_packet(freq);
            if !self.loss.as_mut().is_some_and(SendLoss::lose) {
                let _ = self.socket.send_to(&pkt, to).await;
            }
            n += 1;
            let next = start + Duration::from_millis(20) * n;
            while let Ok(Ok((len, _))) =
                tokio::time::timeout_at(next, self.socket.recv_from(&mut buf)).await
            {
                if len <= 12 {
                    continue;
                }
                let pt = buf[1] & 0x7F;
                if let Some((_, decoder)) = self.g722.as_mut().filter(|_| pt == 9) {
                    let mut pcm = vec![0i16; 2 * (len - 12)];
                    let n = decoder.decode(&buf[12..len], &mut pcm);
                    pcm.truncate(n);
                    received.push((Instant::now(), pcm));
                    continue;
                }
                if let Some(opus) = self.opus.as_mut().filter(|o| o.pt == pt) {
                    let mut pcm = vec![0i16; opus.rate as usize * 120 / 1000];
                    if let Ok(n) = opus
                        .decoder
                        .decode(Some(&buf[12..len]), &mut pcm[..], false)
                    {
                        pcm.truncate(n);
                        received.push((Instant::now(), pcm));
                    }
                    continue;
                }
                match pt {
                    0 => received.push((
                        Instant::now(),
                        buf[12..len].iter().map(|b| ulaw_decode(*b)).collect(),
                    )),
                    8 => {
                        let mut pcm = vec![0i16; len - 12];
                        huddle_media::g711::alaw_decode(&buf[12..len], &mut pcm);
                        received.push((Instant::now(), pcm));
                    }
                    101 if len >= 16 => {
                        let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                        let end = buf[13] & 0x80 != 0;
                        if end && self.last_dtmf_ts != Some(ts) {
                            self.last_dtmf_ts = Some(ts);
                            self.dtmf_received.push(buf[12]);
                        }
                    }
                    _ => {}
                }
            }
        }
        received
    }

    /// Sends one RFC 4733 digit (event code 0-15) of 100 ms on payload type 101, keeping the
    /// audio clock running: 5 updates, then the end packet three times.
    pub async fn send_dtmf(&mut self, to: SocketAddr, event: u8) {
        let ts = self.ts;
        for i in 0..8u16 {
            let end = i >= 5;
            let duration = (i.min(5) + 1) * 160;
            let mut p = vec![0x80, 101, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
            if i == 0 {
                p[1] |= 0x80;
            }
            p[2..4].copy_from_slice(&self.seq.to_be_bytes());
            p[4..8].copy_from_slice(&ts.to_be_bytes());
            p.push(event);
            p.push(if end { 0x80 | 10 } else { 10 });
            p.extend_from_slice(&duration.to_be_bytes());
            self.seq = self.seq.wrapping_add(1);
            let _ = self.socket.send_to(&p, to).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.ts = self.ts.wrapping_add(6 * 160);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1, computed by the testkit's own code (the oracle of the server's).
    #[test]
    fn digest_answers_match_rfc7616() {
        let challenge = |alg: &str| {
            format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
                 nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            )
        };
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, expected) in [
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let auth = digest_authorization(
                &challenge(alg),
                "GET",
                "/dir/index.html",
                "Mufasa",
                "Circle of Life",
                1,
                cnonce,
            )
            .unwrap();
            assert_eq!(
                digest_param(&auth, "response").as_deref(),
                Some(expected),
                "{auth}"
            );
        }
        assert_eq!(
            digest_param("Digest realm=\"a\", nonce=\"n\"", "nonce").as_deref(),
            Some("n")
        );
        assert_eq!(
            digest_param("Digest cnonce=\"c\", nonce=\"n\"", "nonce").as_deref(),
            Some("n")
        );
    }

    #[test]
    fn ulaw_and_goertzel() {
        for s in [-20000i16, -100, 0, 100, 20000] {
            assert!((i32::from(ulaw_decode(ulaw_encode(s))) - i32::from(s)).abs() < 700);
        }
        let pcm: Vec<i16> = (0..1600)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 8000.0).sin() * 8000.0) as i16
            })
            .collect();
        assert!(detect(&pcm, 1000.0));
        assert!(!detect(&pcm, 1700.0));
    }
}
