//! huddle's configuration: typed, validated TOML with the documented defaults embedded.

mod cidr;
mod tls;

pub use cidr::{Cidr, CidrError};
pub use tls::{load_certificates, load_private_key, SipTlsConfig, DEFAULT_TLS_HANDSHAKE_SECS};

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;

use regex::Regex;
use serde::Deserialize;
use thiserror::Error;

/// The documented default configuration, embedded so `huddle serve` works with no file.
pub const DEFAULT_TOML: &str = include_str!("../../../config/huddle.toml");

/// The `http.auth_token` huddle ships with. It signs every request huddle sends and guards the
/// REST API, so huddle refuses to start with it on an HTTP address other than loopback.
pub const DEFAULT_AUTH_TOKEN: &str = "change-me";

/// `sip.trusted` when the key is left out: this host only (as in the embedded default).
pub const DEFAULT_TRUSTED: [&str; 2] = ["127.0.0.1/32", "::1/128"];

/// A configuration that cannot be used; the message names the key, the value and what is allowed.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax, unknown keys or wrong types.
    #[error("{0}")]
    Toml(String),
    /// A value outside what is allowed.
    #[error("{key}: {value:?} is invalid: {allowed}")]
    Invalid {
        /// Key path, e.g. `rtp.port_range`.
        key: String,
        /// Offending value.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

fn invalid(key: &str, value: impl ToString, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[sip]`
    pub sip: SipConfig,
    /// `[rtp]`
    #[serde(default)]
    pub rtp: RtpConfig,
    /// `[http]`
    pub http: HttpConfig,
    /// `[storage]`
    pub storage: StorageConfig,
    /// `[server]`
    #[serde(default)]
    pub server: ServerConfig,
    /// `[audio]`
    #[serde(default)]
    pub audio: AudioConfig,
    /// `[[route]]`
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
}

/// `[sip]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// "udp:IP:PORT" / "tcp:IP:PORT" / "tls:IP:PORT" entries.
    pub listen: Vec<String>,
    /// "auto" or an IP.
    #[serde(default = "auto")]
    pub advertised_address: String,
    /// Server / User-Agent header.
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// Message size cap in bytes.
    #[serde(default = "default_max_message")]
    pub max_message_size: usize,
    /// Networks (CIDR) whose out-of-dialog requests (new calls, OPTIONS, ...) are served.
    #[serde(default = "default_trusted")]
    pub trusted: Vec<String>,
    /// What an untrusted source gets: 403 Forbidden, or nothing at all.
    #[serde(default)]
    pub untrusted: Untrusted,
    /// `[sip.tls]`: certificate and key of the `tls:` listeners.
    #[serde(default)]
    pub tls: Option<SipTlsConfig>,
    /// `[sip.trunk]`
    #[serde(default)]
    pub trunk: Option<TrunkConfig>,
    /// Realm of the digest challenges sent to callers of routes with `auth = true`. Each
    /// user's HA1 is computed over it, so changing it invalidates configured `ha1` values.
    #[serde(default = "default_auth_realm")]
    pub auth_realm: String,
    /// How long a digest nonce huddle issued stays valid, in seconds (1..=3600); an older one
    /// is answered with a fresh challenge marked `stale=true`.
    #[serde(default = "default_nonce_lifetime")]
    pub auth_nonce_lifetime_secs: u64,
    /// `[[sip.user]]`: the digest credentials callers of `auth = true` routes may present.
    #[serde(default, rename = "user")]
    pub users: Vec<SipUser>,

    // Flood limits (see `validate_limits` and README "Limits").
    /// New INVITEs one source IP may send per second, on average (token bucket rate).
    #[serde(default = "default_invite_rate")]
    pub invite_rate_per_source: u32,
    /// New INVITEs one source IP may send at once (token bucket size).
    #[serde(default = "default_invite_burst")]
    pub invite_burst_per_source: u32,
    /// Calls from one source IP that are not confirmed yet (no final answer, or a 2xx without
    /// its ACK); a new INVITE beyond them gets 503.
    #[serde(default = "default_max_unconfirmed")]
    pub max_unconfirmed_per_source: u32,
    /// Inbound SIP/TCP and SIP/TLS connections open at once, all sources together.
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: usize,
    /// Inbound SIP/TCP and SIP/TLS connections open at once from one source IP.
    #[serde(default = "default_tcp_max_connections_per_source")]
    pub tcp_max_connections_per_source: usize,
    /// Seconds a SIP message on a TCP or TLS connection may take from its first byte to its
    /// last; a connection that trickles one slower is closed.
    #[serde(default = "default_tcp_message_timeout")]
    pub tcp_message_timeout_secs: u64,
    /// Seconds a TCP or TLS connection may go without a complete message (keepalives do not
    /// count) before it is closed, unless it carries a live call's dialog.
    #[serde(default = "default_tcp_idle_timeout")]
    pub tcp_idle_timeout_secs: u64,
}

/// One `[[sip.user]]`: a caller's digest credentials. Exactly one of `password`, or one or
/// both of `ha1` (MD5) and `ha1_sha256`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipUser {
    /// The digest user name.
    pub username: String,
    /// Clear-text password (both algorithms are then available).
    #[serde(default)]
    pub password: Option<String>,
    /// MD5 HA1, `md5(username:realm:password)` as 32 hex digits.
    #[serde(default)]
    pub ha1: Option<String>,
    /// SHA-256 HA1, `sha256(username:realm:password)` as 64 hex digits.
    #[serde(default)]
    pub ha1_sha256: Option<String>,
}

impl std::fmt::Debug for SipUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of logs and error messages.
        f.debug_struct("SipUser")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ha1", &self.ha1.as_ref().map(|_| "***"))
            .field("ha1_sha256", &self.ha1_sha256.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `sip.untrusted`: how requests from sources outside `sip.trusted` are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Untrusted {
    /// Answer 403 Forbidden.
    #[default]
    Reject,
    /// Send nothing at all (not even 100 Trying), so that a scanner learns nothing.
    Drop,
}

/// `[sip.trunk]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Trunk URI.
    pub uri: String,
    /// Digest user.
    #[serde(default)]
    pub username: String,
    /// Digest password.
    #[serde(default)]
    pub password: String,
    /// PEM file of CA certificates trusted for a `;transport=tls` trunk, besides the system's.
    #[serde(default)]
    pub tls_ca: Option<String>,
    /// Name the trunk's TLS certificate is checked against, when it is not the URI's IP.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Drop the `+` of E.164 numbers dialled through the trunk (default: keep it).
    #[serde(default)]
    pub strip_plus: bool,
}

/// `[rtp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtpConfig {
    /// "LOW-HIGH".
    #[serde(default = "default_port_range")]
    pub port_range: String,
    /// Jitter buffer lower bound, ms.
    #[serde(default = "default_jitter_min")]
    pub jitter_min_ms: u32,
    /// Jitter buffer upper bound, ms.
    #[serde(default = "default_jitter_max")]
    pub jitter_max_ms: u32,
    /// No-RTP hang-up, seconds (0 = never).
    #[serde(default = "default_rtp_timeout")]
    pub rtp_timeout_secs: u64,
    /// Codecs a call may use (`"PCMU"`, `"PCMA"`, `"opus"`, `"G722"`); the offer's order
    /// picks among them, as trunks expect.
    #[serde(default = "default_codecs")]
    pub codecs: Vec<String>,
    /// The highest rate an Opus leg runs at: 16000 (wideband, the default: all of speech) or
    /// 48000 (fullband, for peers that send music or wider than speech; a room with such a
    /// member mixes at 48 kHz, about three times the work per member).
    #[serde(default = "default_opus_max_rate")]
    pub opus_max_rate: u32,
}

/// Codec names `rtp.codecs` accepts.
pub const KNOWN_CODECS: &[&str] = &["PCMU", "PCMA", "opus", "G722"];

/// `rtp.codecs` when the file does not say: every codec huddle runs. Rooms mix at 16 kHz once
/// a wideband member is in, so a desk phone that offers G.722 first gets wideband audio.
const DEFAULT_CODECS: &[&str] = &["PCMU", "PCMA", "opus", "G722"];

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            port_range: default_port_range(),
            jitter_min_ms: default_jitter_min(),
            jitter_max_ms: default_jitter_max(),
            rtp_timeout_secs: default_rtp_timeout(),
            codecs: default_codecs(),
            opus_max_rate: default_opus_max_rate(),
        }
    }
}

impl RtpConfig {
    /// The validated (low, high) port bounds.
    pub fn port_range(&self) -> (u16, u16) {
        parse_port_range(&self.port_range).unwrap_or((20000, 30000))
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// API user.
    pub auth_id: String,
    /// API password.
    pub auth_token: String,
    /// Public base URL.
    pub public_url: String,
    /// `/metrics` needs the API's basic auth too.
    #[serde(default)]
    pub metrics_auth: bool,

    // Connection limits and timeouts of the HTTP listener (see `validate_http_limits`).
    /// HTTP connections open at once, all sources together; beyond it the oldest connection
    /// that has not sent a complete request yet is closed to make room, or, when every
    /// connection has, the new one is refused.
    #[serde(default = "default_http_max_connections")]
    pub max_connections: usize,
    /// HTTP connections open at once from one source IP; one more is closed at once.
    #[serde(default = "default_http_max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// Seconds a request's line and headers may take to arrive, counted from the connection's
    /// opening or the end of the previous response on it; a slower connection is closed.
    #[serde(default = "default_http_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may go without a byte moving either way while a request or
    /// response is under way (a body that stops coming, a download nobody reads) before it is
    /// closed.
    #[serde(default = "default_http_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds a request may take from its headers to its response's headers; a slower one
    /// gets 408 Request Timeout.
    #[serde(default = "default_http_request_timeout")]
    pub request_timeout_secs: u64,

    // Callback delivery through receiver outages (see `validate_callback_retry`).
    /// How long after it was queued a status or recording callback that keeps failing (no
    /// connection, timeout, 429, 5xx) is still tried again, seconds; 0 leaves only the URL's
    /// own immediate retries.
    #[serde(default = "default_callback_retry_horizon")]
    pub callback_retry_horizon_secs: u64,
    /// Ceiling of the jittered wait after a callback's first failed round, milliseconds; it
    /// doubles with each further failed round.
    #[serde(default = "default_callback_retry_initial")]
    pub callback_retry_initial_ms: u64,
    /// Longest wait between two rounds of one callback, seconds (a longer Retry-After is cut
    /// to it).
    #[serde(default = "default_callback_retry_max")]
    pub callback_retry_max_secs: u64,
    /// Callbacks that may wait at once for one receiver (the scheme, host and port of the
    /// URL), out of the 100,000 that may wait in all, so that one application that is down
    /// cannot crowd out the others' callbacks.
    #[serde(default = "default_callback_queue_per_receiver")]
    pub callback_queue_per_receiver: usize,
}

/// Callbacks that may wait for delivery at once, all receivers together.
pub const CALLBACK_QUEUE_CAPACITY: usize = 100_000;

fn default_callback_retry_horizon() -> u64 {
    3600
}
fn default_callback_retry_initial() -> u64 {
    1000
}
fn default_callback_retry_max() -> u64 {
    300
}
fn default_callback_queue_per_receiver() -> usize {
    50_000
}

/// `http.max_connections` when left out.
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 2048;
/// `http.max_connections_per_source` when left out.
pub const DEFAULT_HTTP_MAX_CONNECTIONS_PER_SOURCE: usize = 256;
/// `http.header_read_timeout_secs` when left out.
pub const DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// `http.idle_timeout_secs` when left out.
pub const DEFAULT_HTTP_IDLE_TIMEOUT_SECS: u64 = 60;
/// `http.request_timeout_secs` when left out.
pub const DEFAULT_HTTP_REQUEST_TIMEOUT_SECS: u64 = 30;

fn default_http_max_connections() -> usize {
    DEFAULT_HTTP_MAX_CONNECTIONS
}
fn default_http_max_connections_per_source() -> usize {
    DEFAULT_HTTP_MAX_CONNECTIONS_PER_SOURCE
}
fn default_http_header_read_timeout() -> u64 {
    DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECS
}
fn default_http_idle_timeout() -> u64 {
    DEFAULT_HTTP_IDLE_TIMEOUT_SECS
}
fn default_http_request_timeout() -> u64 {
    DEFAULT_HTTP_REQUEST_TIMEOUT_SECS
}

/// Checks the HTTP listener's connection caps and timeouts.
fn validate_http_limits(http: &HttpConfig) -> Result<(), ConfigError> {
    if !(1..=1_000_000).contains(&http.max_connections) {
        return Err(invalid(
            "http.max_connections",
            http.max_connections,
            "1..=1000000",
        ));
    }
    if !(1..=http.max_connections).contains(&http.max_connections_per_source) {
        return Err(invalid(
            "http.max_connections_per_source",
            http.max_connections_per_source,
            "1..=http.max_connections",
        ));
    }
    let timeouts = [
        (
            "http.header_read_timeout_secs",
            http.header_read_timeout_secs,
            300,
        ),
        ("http.idle_timeout_secs", http.idle_timeout_secs, 86_400),
        (
            "http.request_timeout_secs",
            http.request_timeout_secs,
            3_600,
        ),
    ];
    for (key, value, max) in timeouts {
        if !(1..=max).contains(&value) {
            return Err(invalid(key, value, &format!("1..={max} seconds")));
        }
    }
    Ok(())
}

fn validate_callback_retry(http: &HttpConfig) -> Result<(), ConfigError> {
    if http.callback_retry_horizon_secs > 7 * 24 * 3600 {
        return Err(invalid(
            "http.callback_retry_horizon_secs",
            http.callback_retry_horizon_secs,
            "0..=604800 seconds (a week)",
        ));
    }
    if !(10..=3_600_000).contains(&http.callback_retry_initial_ms) {
        return Err(invalid(
            "http.callback_retry_initial_ms",
            http.callback_retry_initial_ms,
            "10..=3600000 milliseconds",
        ));
    }
    let max = http.callback_retry_max_secs;
    if !(1..=3600).contains(&max) || max * 1000 < http.callback_retry_initial_ms {
        return Err(invalid(
            "http.callback_retry_max_secs",
            max,
            "1..=3600 seconds, and at least callback_retry_initial_ms",
        ));
    }
    if !(1..=CALLBACK_QUEUE_CAPACITY).contains(&http.callback_queue_per_receiver) {
        return Err(invalid(
            "http.callback_queue_per_receiver",
            http.callback_queue_per_receiver,
            "1..=100000",
        ));
    }
    Ok(())
}

impl HttpConfig {
    /// True when the API token is still the shipped default.
    pub fn uses_default_token(&self) -> bool {
        self.auth_token == DEFAULT_AUTH_TOKEN
    }
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Database URL.
    pub database: String,
    /// Recordings directory.
    pub recordings: String,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Drain grace period, seconds.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// How the mixing threads are scheduled.
    #[serde(default)]
    pub mixer_priority: MixerPriority,
    /// Calls live at once, inbound and dialled legs together; a new INVITE beyond them gets
    /// 503 with Retry-After, and a dial fails.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            shutdown_grace_secs: default_grace(),
            mixer_priority: MixerPriority::default(),
            max_calls: default_max_calls(),
        }
    }
}

/// `server.mixer_priority`: the scheduling the mixing threads ask the kernel for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MixerPriority {
    /// Like every other thread.
    Normal,
    /// nice -10: preferred over ordinary work, never starving it.
    #[default]
    High,
    /// SCHED_FIFO: ahead of every ordinary thread (for dedicated media hosts).
    Realtime,
}

/// `[audio]`: the audio that `<Play>` and `<Speak>` produce.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    /// Decoded Play files and synthesized speech kept in memory, MiB (1..=4096).
    #[serde(default = "default_cache_mb")]
    pub cache_mb: usize,
    /// Text-to-speech command line program (espeak-ng compatible).
    #[serde(default = "default_tts_command")]
    pub tts_command: String,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            cache_mb: default_cache_mb(),
            tts_command: default_tts_command(),
        }
    }
}

fn default_cache_mb() -> usize {
    64
}

fn default_tts_command() -> String {
    "espeak-ng".to_string()
}

/// One `[[route]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Regex on the Request-URI user.
    #[serde(with = "serde_regex")]
    pub user: Regex,
    /// Echo test route.
    #[serde(default)]
    pub echo: bool,
    /// XML template.
    #[serde(default)]
    pub xml: Option<String>,
    /// answer_url.
    #[serde(default)]
    pub answer_url: Option<String>,
    /// GET or POST.
    #[serde(default = "post")]
    pub answer_method: String,
    /// Hang up after this many seconds (0 = unlimited).
    #[serde(default)]
    pub max_duration_secs: u64,
    /// Networks (CIDR) this route takes calls from; absent: every trusted source. A call from
    /// elsewhere that matches this route gets 403.
    #[serde(default)]
    pub from_networks: Option<Vec<String>>,
    /// Whom the route's calls take media from.
    #[serde(default)]
    pub latching: Latching,
    /// Whether the route's calls use SRTP.
    #[serde(default)]
    pub srtp: SrtpMode,
    /// Require digest authentication (one of the `[[sip.user]]` credentials) for new INVITEs
    /// matching this route.
    #[serde(default)]
    pub auth: bool,
}

/// `[[route]] srtp`: whether a route's calls use SRTP (SDES keys, RFC 4568).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SrtpMode {
    /// Plain RTP only; RTP/SAVP offers are refused.
    Off,
    /// SRTP when the caller offers it (RTP/SAVP with a=crypto), plain RTP otherwise.
    #[default]
    Optional,
    /// SRTP only: a plain offer gets 488 Not Acceptable Here.
    Required,
}

/// `[[route]] latching`: whom a call takes RTP from (design.md, "Media trust").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Latching {
    /// Only the address the caller's SDP signalled (the default).
    #[default]
    Sdp,
    /// For phones behind NAT: the first packet from the IP the call's SIP came from, on any
    /// port, fixes the peer.
    SignallingIp,
}

impl Route {
    /// The parsed `from_networks` (validated at load), None when the route takes every source.
    pub fn source_networks(&self) -> Option<Vec<Cidr>> {
        self.from_networks
            .as_ref()
            .map(|list| list.iter().filter_map(|c| c.parse().ok()).collect())
    }
}

mod serde_regex {
    use regex::Regex;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Regex, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s).map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

fn default_auth_realm() -> String {
    "huddle".into()
}
fn default_nonce_lifetime() -> u64 {
    300
}
fn default_trusted() -> Vec<String> {
    DEFAULT_TRUSTED.iter().map(|s| s.to_string()).collect()
}
fn auto() -> String {
    "auto".into()
}
fn default_user_agent() -> String {
    "huddle".into()
}
fn default_max_message() -> usize {
    65535
}
fn default_port_range() -> String {
    "20000-30000".into()
}
fn default_jitter_min() -> u32 {
    20
}
fn default_jitter_max() -> u32 {
    200
}
fn default_rtp_timeout() -> u64 {
    60
}
fn default_opus_max_rate() -> u32 {
    16000
}
fn default_codecs() -> Vec<String> {
    DEFAULT_CODECS.iter().map(|c| c.to_string()).collect()
}
fn default_grace() -> u64 {
    10
}
fn post() -> String {
    "POST".into()
}

// Flood limits: defaults and their validation. README "Limits" explains each default.

/// `server.max_calls` when left out.
pub const DEFAULT_MAX_CALLS: usize = 4_000;
/// `sip.invite_rate_per_source` when left out (INVITEs per second).
pub const DEFAULT_INVITE_RATE_PER_SOURCE: u32 = 300;
/// `sip.invite_burst_per_source` when left out.
pub const DEFAULT_INVITE_BURST_PER_SOURCE: u32 = 600;
/// `sip.max_unconfirmed_per_source` when left out.
pub const DEFAULT_MAX_UNCONFIRMED_PER_SOURCE: u32 = 500;
/// `sip.tcp_max_connections` when left out.
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 4_000;
/// `sip.tcp_max_connections_per_source` when left out.
pub const DEFAULT_TCP_MAX_CONNECTIONS_PER_SOURCE: usize = 400;
/// `sip.tcp_message_timeout_secs` when left out.
pub const DEFAULT_TCP_MESSAGE_TIMEOUT_SECS: u64 = 10;
/// `sip.tcp_idle_timeout_secs` when left out.
pub const DEFAULT_TCP_IDLE_TIMEOUT_SECS: u64 = 120;

fn default_max_calls() -> usize {
    DEFAULT_MAX_CALLS
}
fn default_invite_rate() -> u32 {
    DEFAULT_INVITE_RATE_PER_SOURCE
}
fn default_invite_burst() -> u32 {
    DEFAULT_INVITE_BURST_PER_SOURCE
}
fn default_max_unconfirmed() -> u32 {
    DEFAULT_MAX_UNCONFIRMED_PER_SOURCE
}
fn default_tcp_max_connections() -> usize {
    DEFAULT_TCP_MAX_CONNECTIONS
}
fn default_tcp_max_connections_per_source() -> usize {
    DEFAULT_TCP_MAX_CONNECTIONS_PER_SOURCE
}
fn default_tcp_message_timeout() -> u64 {
    DEFAULT_TCP_MESSAGE_TIMEOUT_SECS
}
fn default_tcp_idle_timeout() -> u64 {
    DEFAULT_TCP_IDLE_TIMEOUT_SECS
}

/// Checks `server.max_calls` and the `sip` flood limits.
fn validate_limits(config: &Config) -> Result<(), ConfigError> {
    let sip = &config.sip;
    let counts: [(&str, u64, u64); 5] = [
        ("server.max_calls", config.server.max_calls as u64, 100_000),
        (
            "sip.invite_rate_per_source",
            u64::from(sip.invite_rate_per_source),
            100_000,
        ),
        (
            "sip.invite_burst_per_source",
            u64::from(sip.invite_burst_per_source),
            100_000,
        ),
        (
            "sip.max_unconfirmed_per_source",
            u64::from(sip.max_unconfirmed_per_source),
            100_000,
        ),
        (
            "sip.tcp_max_connections",
            sip.tcp_max_connections as u64,
            1_000_000,
        ),
    ];
    for (key, value, max) in counts {
        if !(1..=max).contains(&value) {
            return Err(invalid(key, value, &format!("1..={max}")));
        }
    }
    if !(1..=sip.tcp_max_connections).contains(&sip.tcp_max_connections_per_source) {
        return Err(invalid(
            "sip.tcp_max_connections_per_source",
            sip.tcp_max_connections_per_source,
            "1..=sip.tcp_max_connections",
        ));
    }
    if !(1..=300).contains(&sip.tcp_message_timeout_secs) {
        return Err(invalid(
            "sip.tcp_message_timeout_secs",
            sip.tcp_message_timeout_secs,
            "1..=300 seconds",
        ));
    }
    if !(1..=86_400).contains(&sip.tcp_idle_timeout_secs) {
        return Err(invalid(
            "sip.tcp_idle_timeout_secs",
            sip.tcp_idle_timeout_secs,
            "1..=86400 seconds",
        ));
    }
    Ok(())
}

/// Loads and validates a file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })?;
    from_toml_str(&text)
}

/// Parses and validates TOML text.
pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
    config.validate()?;
    Ok(config)
}

/// The embedded default configuration.
pub fn default_config() -> Config {
    from_toml_str(DEFAULT_TOML).expect("the embedded default configuration is valid")
}

fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a >= 1024 && a < b && b - a >= 2).then_some((a, b))
}

/// The transport of a `sip.listen` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenTransport {
    /// `udp:`
    Udp,
    /// `tcp:`
    Tcp,
    /// `tls:` (SIP over TLS on TCP, with `[sip.tls]`'s certificate).
    Tls,
}

/// Parses one `sip.listen` entry into (transport, address).
pub fn parse_listen(entry: &str) -> Option<(ListenTransport, SocketAddr)> {
    let (proto, addr) = entry.split_once(':')?;
    let transport = match proto.to_ascii_lowercase().as_str() {
        "udp" => ListenTransport::Udp,
        "tcp" => ListenTransport::Tcp,
        "tls" => ListenTransport::Tls,
        _ => return None,
    };
    Some((transport, addr.parse().ok()?))
}

impl SipConfig {
    /// Every listen entry as (transport, address); entries were validated at load.
    pub fn listen_addrs(&self) -> Vec<(ListenTransport, SocketAddr)> {
        self.listen.iter().filter_map(|l| parse_listen(l)).collect()
    }

    /// True when some `sip.listen` entry is `tls:`.
    pub fn has_tls_listener(&self) -> bool {
        self.listen_addrs()
            .iter()
            .any(|(t, _)| *t == ListenTransport::Tls)
    }

    /// The parsed `sip.trusted` networks (validated at load).
    pub fn trusted_networks(&self) -> Vec<Cidr> {
        self.trusted.iter().filter_map(|c| c.parse().ok()).collect()
    }
}

fn is_hex_of(value: &str, len: usize) -> bool {
    value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A name or realm that goes into a quoted string of a digest header: printable ASCII or
/// UTF-8, without `"`, `\` or control characters, at most 128 bytes.
fn is_digest_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && !value
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
}

/// Checks `sip.auth_realm`, `sip.auth_nonce_lifetime_secs` and every `[[sip.user]]`.
fn validate_users(sip: &SipConfig) -> Result<(), ConfigError> {
    if !is_digest_token(&sip.auth_realm) {
        return Err(invalid(
            "sip.auth_realm",
            &sip.auth_realm,
            "1 to 128 characters without '\"', '\\' or control characters",
        ));
    }
    if !(1..=3600).contains(&sip.auth_nonce_lifetime_secs) {
        return Err(invalid(
            "sip.auth_nonce_lifetime_secs",
            sip.auth_nonce_lifetime_secs,
            "1..=3600 seconds",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, user) in sip.users.iter().enumerate() {
        let key = format!("sip.user[{i}]");
        if !is_digest_token(&user.username) {
            return Err(invalid(
                &format!("{key}.username"),
                &user.username,
                "1 to 128 characters without '\"', '\\' or control characters",
            ));
        }
        if !seen.insert(user.username.as_str()) {
            return Err(invalid(
                &format!("{key}.username"),
                &user.username,
                "each username once",
            ));
        }
        let hashes = user.ha1.is_some() || user.ha1_sha256.is_some();
        match (&user.password, hashes) {
            (Some(_), true) => {
                return Err(invalid(
                    &key,
                    &user.username,
                    "either password, or ha1 and/or ha1_sha256, not both",
                ))
            }
            (None, false) => {
                return Err(invalid(
                    &key,
                    &user.username,
                    "a password, or ha1 (MD5) and/or ha1_sha256 (SHA-256)",
                ))
            }
            (Some(p), false) if p.is_empty() => {
                return Err(invalid(
                    &format!("{key}.password"),
                    "\"\"",
                    "a non-empty password",
                ))
            }
            _ => {}
        }
        if let Some(ha1) = &user.ha1 {
            if !is_hex_of(ha1, 32) {
                return Err(invalid(
                    &format!("{key}.ha1"),
                    "(hidden)",
                    "32 hex digits: md5(\"username:realm:password\")",
                ));
            }
        }
        if let Some(ha1) = &user.ha1_sha256 {
            if !is_hex_of(ha1, 64) {
                return Err(invalid(
                    &format!("{key}.ha1_sha256"),
                    "(hidden)",
                    "64 hex digits: sha256(\"username:realm:password\")",
                ));
            }
        }
    }
    Ok(())
}

/// Checks every entry of a CIDR list; the error names `key` and the offending entry.
fn validate_networks(key: &str, list: &[String]) -> Result<(), ConfigError> {
    for entry in list {
        if let Err(e) = entry.parse::<Cidr>() {
            return Err(invalid(
                key,
                entry,
                &format!("{e}; expected CIDR networks such as \"10.0.0.0/8\" or \"2001:db8::/32\""),
            ));
        }
    }
    Ok(())
}

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.sip.listen.is_empty() {
            return Err(invalid(
                "sip.listen",
                "[]",
                "at least one \"udp:IP:PORT\", \"tcp:IP:PORT\" or \"tls:IP:PORT\"",
            ));
        }
        for l in &self.sip.listen {
            if parse_listen(l).is_none() {
                return Err(invalid(
                    "sip.listen",
                    l,
                    "expected \"udp:IP:PORT\", \"tcp:IP:PORT\" or \"tls:IP:PORT\" (IPv6 as [::1])",
                ));
            }
        }
        if self.sip.advertised_address != "auto"
            && self.sip.advertised_address.parse::<IpAddr>().is_err()
        {
            return Err(invalid(
                "sip.advertised_address",
                &self.sip.advertised_address,
                "\"auto\" or an IP address",
            ));
        }
        if !(1024..=65535).contains(&self.sip.max_message_size) {
            return Err(invalid(
                "sip.max_message_size",
                self.sip.max_message_size,
                "1024..=65535 bytes",
            ));
        }
        validate_networks("sip.trusted", &self.sip.trusted)?;
        validate_users(&self.sip)?;
        validate_limits(self)?;
        validate_http_limits(&self.http)?;
        tls::validate(&self.sip)?;
        if let Some(trunk) = &self.sip.trunk {
            let lower = trunk.uri.to_ascii_lowercase();
            if !(lower.starts_with("sip:") || lower.starts_with("sips:")) || trunk.uri.len() < 5 {
                return Err(invalid(
                    "sip.trunk.uri",
                    &trunk.uri,
                    "a sip: URI such as \"sip:10.0.0.1:5060\"",
                ));
            }
        }
        if !(1..=4096).contains(&self.audio.cache_mb) {
            return Err(invalid(
                "audio.cache_mb",
                self.audio.cache_mb,
                "1..=4096 MiB",
            ));
        }
        if self.audio.tts_command.trim().is_empty() {
            return Err(invalid(
                "audio.tts_command",
                "\"\"",
                "a program name or path such as \"espeak-ng\"",
            ));
        }
        if parse_port_range(&self.rtp.port_range).is_none() {
            return Err(invalid(
                "rtp.port_range",
                &self.rtp.port_range,
                "expected \"LOW-HIGH\" with 1024 <= LOW < HIGH <= 65535 and at least 2 ports",
            ));
        }
        let (jmin, jmax) = (self.rtp.jitter_min_ms, self.rtp.jitter_max_ms);
        if !(20..=1000).contains(&jmin) {
            return Err(invalid("rtp.jitter_min_ms", jmin, "20..=1000"));
        }
        if !(jmin..=1000).contains(&jmax) {
            return Err(invalid("rtp.jitter_max_ms", jmax, "jitter_min_ms..=1000"));
        }
        let unknown = self
            .rtp
            .codecs
            .iter()
            .find(|c| !KNOWN_CODECS.iter().any(|k| k.eq_ignore_ascii_case(c)));
        if let Some(codec) = unknown {
            return Err(invalid(
                "rtp.codecs",
                codec,
                "\"PCMU\", \"PCMA\", \"opus\" or \"G722\"",
            ));
        }
        if !matches!(self.rtp.opus_max_rate, 16000 | 48000) {
            return Err(invalid(
                "rtp.opus_max_rate",
                self.rtp.opus_max_rate,
                "16000 or 48000",
            ));
        }
        if self.rtp.codecs.is_empty() {
            return Err(invalid(
                "rtp.codecs",
                "[]",
                "at least one of \"PCMU\", \"PCMA\", \"opus\", \"G722\"",
            ));
        }
        if !self.http.public_url.starts_with("http://")
            && !self.http.public_url.starts_with("https://")
        {
            return Err(invalid(
                "http.public_url",
                &self.http.public_url,
                "an http:// or https:// URL",
            ));
        }
        validate_callback_retry(&self.http)?;
        if !self.http.listen.ip().is_loopback() && self.http.uses_default_token() {
            return Err(invalid(
                "http.auth_token",
                DEFAULT_AUTH_TOKEN,
                &format!(
                    "the shipped default token must be changed when http.listen ({}) is not a loopback address: it guards the REST API and recordings and signs every callback",
                    self.http.listen
                ),
            ));
        }
        for (i, r) in self.routes.iter().enumerate() {
            let key = format!("route[{i}]");
            if let Some(list) = &r.from_networks {
                if list.is_empty() {
                    return Err(invalid(
                        &format!("{key}.from_networks"),
                        "[]",
                        "at least one CIDR network; leave the key out to take calls from every trusted source",
                    ));
                }
                validate_networks(&format!("{key}.from_networks"), list)?;
            }
            if r.auth && self.sip.users.is_empty() {
                return Err(invalid(
                    &format!("{key}.auth"),
                    "true",
                    "auth = true needs at least one [[sip.user]] (username and password or ha1)",
                ));
            }
            let actions = usize::from(r.echo)
                + usize::from(r.xml.is_some())
                + usize::from(r.answer_url.is_some());
            if actions != 1 {
                return Err(invalid(
                    &key,
                    format!("user = {:?}", r.user.as_str()),
                    "exactly one of echo = true, xml = \"...\", answer_url = \"...\"",
                ));
            }
            if !r.answer_method.eq_ignore_ascii_case("GET")
                && !r.answer_method.eq_ignore_ascii_case("POST")
            {
                return Err(invalid(
                    &format!("{key}.answer_method"),
                    &r.answer_method,
                    "GET or POST",
                ));
            }
            if let Some(url) = &r.answer_url {
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    return Err(invalid(
                        &format!("{key}.answer_url"),
                        url,
                        "an http:// or https:// URL",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The IP written into Contact and SDP.
    pub fn resolve_advertised_ip(&self) -> IpAddr {
        if let Ok(ip) = self.sip.advertised_address.parse::<IpAddr>() {
            return ip;
        }
        if let Some(ip) = self
            .sip
            .listen_addrs()
            .into_iter()
            .map(|(_, a)| a.ip())
            .find(|ip| !ip.is_unspecified())
        {
            return ip;
        }
        // connect() on UDP sends nothing; it only asks the kernel which interface routes there.
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|s| s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).map(|_| s))
            .and_then(|s| s.local_addr())
            .map(|a| a.ip())
            .ok()
            .filter(|ip| !ip.is_unspecified())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = default_config();
        assert_eq!(c.routes.len(), 4);
        assert!(c.sip.users.is_empty());
        assert!(
            c.routes.iter().all(|r| !r.auth),
            "no route needs auth while no user is shipped"
        );
        assert_eq!(c.sip.auth_realm, "huddle");
        assert_eq!(c.sip.auth_nonce_lifetime_secs, 300);
        assert_eq!(c.rtp.port_range(), (20000, 30000));
        assert_eq!(c.rtp.codecs, ["PCMU", "PCMA", "opus", "G722"]);
        assert_eq!(c.rtp.opus_max_rate, 16000);
        assert_eq!(c.sip.listen_addrs().len(), 2);
        assert_eq!(c.http.auth_id.len(), 20);
    }

    fn with(from: &str, to: &str) -> Result<Config, ConfigError> {
        assert!(DEFAULT_TOML.contains(from), "{from}");
        from_toml_str(&DEFAULT_TOML.replacen(from, to, 1))
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            (
                "port_range = \"20000-30000\"",
                "port_range = \"30000-20000\"",
                "rtp.port_range",
            ),
            (
                "\"udp:0.0.0.0:5060\",",
                "\"sctp:0.0.0.0:5060\",",
                "sip.listen",
            ),
            (
                "advertised_address = \"auto\"",
                "advertised_address = \"nowhere\"",
                "sip.advertised_address",
            ),
            (
                "jitter_max_ms = 200",
                "jitter_max_ms = 10",
                "rtp.jitter_max_ms",
            ),
            (
                "codecs = [\"PCMU\", \"PCMA\", \"opus\", \"G722\"]",
                "codecs = [\"PCMU\", \"G729\"]",
                "rtp.codecs",
            ),
            (
                "codecs = [\"PCMU\", \"PCMA\", \"opus\", \"G722\"]",
                "codecs = []",
                "rtp.codecs",
            ),
            (
                "opus_max_rate = 16000",
                "opus_max_rate = 44100",
                "rtp.opus_max_rate",
            ),
            (
                "max_message_size = 65535",
                "max_message_size = 10",
                "sip.max_message_size",
            ),
            (
                "answer_method = \"POST\"",
                "answer_method = \"PUT\"",
                "route[3].answer_method",
            ),
            (
                "user = \"^echo$\"\necho = true",
                "user = \"^echo$\"\necho = true\nxml = \"<Response/>\"",
                "route[0]",
            ),
            (
                "uri = \"sip:127.0.0.1:5070\"",
                "uri = \"http://x\"",
                "sip.trunk.uri",
            ),
            ("cache_mb = 64", "cache_mb = 0", "audio.cache_mb"),
            (
                "tts_command = \"espeak-ng\"",
                "tts_command = \" \"",
                "audio.tts_command",
            ),
        ];
        for (from, to, key) in cases {
            let err = with(from, to).unwrap_err().to_string();
            assert!(err.starts_with(key), "{key}: {err}");
        }
    }

    #[test]
    fn embedded_default_trusts_this_host_only() {
        let c = default_config();
        assert_eq!(c.sip.trusted, DEFAULT_TRUSTED);
        assert_eq!(c.sip.untrusted, Untrusted::Reject);
        let trusted = c.sip.trusted_networks();
        let trusts = |ip: &str| trusted.iter().any(|n| n.contains(ip.parse().unwrap()));
        assert!(trusts("127.0.0.1") && trusts("::1"));
        assert!(!trusts("127.0.0.2") && !trusts("10.0.0.1") && !trusts("::2"));
        // Left out, the key means the same.
        let without = with("trusted = [\"127.0.0.1/32\", \"::1/128\"]\n", "").unwrap();
        assert_eq!(without.sip.trusted, DEFAULT_TRUSTED);
        assert!(!c.http.metrics_auth);
        assert!(c.routes.iter().all(|r| r.source_networks().is_none()));
    }

    #[test]
    fn trusted_networks_and_untrusted_policy_parse() {
        let c = from_toml_str(
            &DEFAULT_TOML
                .replacen(
                    "trusted = [\"127.0.0.1/32\", \"::1/128\"]",
                    "trusted = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\"]",
                    1,
                )
                .replacen("untrusted = \"reject\"", "untrusted = \"drop\"", 1),
        )
        .unwrap();
        assert_eq!(c.sip.untrusted, Untrusted::Drop);
        let nets: Vec<String> = c
            .sip
            .trusted_networks()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]);
        let err = with("untrusted = \"reject\"", "untrusted = \"ignore\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("untrusted") && err.contains("drop"), "{err}");
    }

    #[test]
    fn hostile_networks_are_config_errors_naming_the_key() {
        for bad in [
            "10.0.0.0/33",
            "::1/129",
            "garbage",
            "",
            "10.0.0.1/8",
            "10.0.0.0/99999999999999999999999",
        ] {
            let err = with(
                "trusted = [\"127.0.0.1/32\", \"::1/128\"]",
                &format!("trusted = [\"127.0.0.1/32\", {bad:?}]"),
            )
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("sip.trusted:"), "{bad}: {err}");
            let err = with(
                "user = \"^echo$\"\necho = true",
                &format!("user = \"^echo$\"\necho = true\nfrom_networks = [{bad:?}]"),
            )
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("route[0].from_networks:"), "{bad}: {err}");
        }
        let err = with(
            "user = \"^echo$\"\necho = true",
            "user = \"^echo$\"\necho = true\nfrom_networks = []",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("route[0].from_networks:"), "{err}");
        let c = with(
            "user = \"^echo$\"\necho = true",
            "user = \"^echo$\"\necho = true\nfrom_networks = [\"10.1.0.0/16\"]",
        )
        .unwrap();
        assert_eq!(
            c.routes[0].source_networks().unwrap()[0].to_string(),
            "10.1.0.0/16"
        );
    }

    const ECHO: &str = "user = \"^echo$\"\necho = true";

    fn with_users(users: &str, realm_extra: &str) -> Result<Config, ConfigError> {
        from_toml_str(&DEFAULT_TOML.replacen(
            "[sip.trunk]",
            &format!("{realm_extra}\n{users}\n[sip.trunk]"),
            1,
        ))
    }

    #[test]
    fn sip_users_and_route_auth_parse() {
        let users = "[[sip.user]]\nusername = \"alice\"\npassword = \"s3cret\"\n\
                     [[sip.user]]\nusername = \"bob\"\nha1 = \"0123456789abcdef0123456789ABCDEF\"\n\
                     [[sip.user]]\nusername = \"carol\"\nha1 = \"0123456789abcdef0123456789abcdef\"\n\
                     ha1_sha256 = \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n";
        let c = with_users(users, "").unwrap();
        assert_eq!(c.sip.users.len(), 3);
        assert_eq!(c.sip.users[0].password.as_deref(), Some("s3cret"));
        assert!(
            !format!("{:?}", c.sip.users[0]).contains("s3cret"),
            "secrets stay out of Debug"
        );
        let on = from_toml_str(
            &DEFAULT_TOML
                .replacen("[sip.trunk]", &format!("{users}\n[sip.trunk]"), 1)
                .replacen(ECHO, &format!("{ECHO}\nauth = true"), 1),
        )
        .unwrap();
        assert!(on.routes[0].auth && !on.routes[1].auth);
        let realm = with_users(users, "").unwrap();
        assert_eq!(realm.sip.auth_realm, "huddle");
    }

    #[test]
    fn bad_users_and_auth_settings_name_the_key() {
        let cases = [
            ("[[sip.user]]\nusername = \"a\"\n", "", "sip.user[0]:"),
            (
                "[[sip.user]]\nusername = \"a\"\npassword = \"p\"\nha1 = \"0123456789abcdef0123456789abcdef\"\n",
                "",
                "sip.user[0]:",
            ),
            ("[[sip.user]]\nusername = \"a\"\npassword = \"\"\n", "", "sip.user[0].password:"),
            ("[[sip.user]]\nusername = \"\"\npassword = \"p\"\n", "", "sip.user[0].username:"),
            ("[[sip.user]]\nusername = \"a\\\"b\"\npassword = \"p\"\n", "", "sip.user[0].username:"),
            (
                "[[sip.user]]\nusername = \"a\"\npassword = \"p\"\n[[sip.user]]\nusername = \"a\"\npassword = \"q\"\n",
                "",
                "sip.user[1].username:",
            ),
            ("[[sip.user]]\nusername = \"a\"\nha1 = \"xyz\"\n", "", "sip.user[0].ha1:"),
            (
                "[[sip.user]]\nusername = \"a\"\nha1 = \"0123456789abcdef0123456789abcdeg\"\n",
                "",
                "sip.user[0].ha1:",
            ),
            (
                "[[sip.user]]\nusername = \"a\"\nha1_sha256 = \"0123456789abcdef0123456789abcdef\"\n",
                "",
                "sip.user[0].ha1_sha256:",
            ),
            ("", "auth_nonce_lifetime_secs = 0", "sip.auth_nonce_lifetime_secs:"),
            ("", "auth_nonce_lifetime_secs = 3601", "sip.auth_nonce_lifetime_secs:"),
        ];
        for (users, extra, key) in cases {
            let text = DEFAULT_TOML
                .replacen(
                    "auth_nonce_lifetime_secs = 300\n",
                    "",
                    usize::from(!extra.is_empty()),
                )
                .replacen("[sip.trunk]", &format!("{extra}\n{users}\n[sip.trunk]"), 1);
            let err = from_toml_str(&text).unwrap_err().to_string();
            assert!(err.starts_with(key), "{key}: {err}");
            assert!(
                !err.contains("0123456789abcdef"),
                "HA1 values are not echoed: {err}"
            );
        }
        let err = with("auth_realm = \"huddle\"", "auth_realm = \"\"")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sip.auth_realm:"), "{err}");
        let err = with(ECHO, &format!("{ECHO}\nauth = true"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("route[0].auth:"), "{err}");
        let err = with_users("[[sip.user]]\nusername = \"a\"\npasswd = \"p\"\n", "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("passwd"), "{err}");
    }

    #[test]
    fn the_default_token_is_refused_off_loopback() {
        for listen in ["0.0.0.0:8088", "192.0.2.1:8088", "[::]:8088"] {
            let err = with(
                "listen = \"127.0.0.1:8088\"",
                &format!("listen = \"{listen}\""),
            )
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("http.auth_token:"), "{listen}: {err}");
            assert!(err.contains(listen), "{err}");
        }
        let changed = DEFAULT_TOML
            .replacen(
                "listen = \"127.0.0.1:8088\"",
                "listen = \"0.0.0.0:8088\"",
                1,
            )
            .replacen(
                "auth_token = \"change-me\"",
                "auth_token = \"s3cret-t0ken\"",
                1,
            );
        assert!(!from_toml_str(&changed).unwrap().http.uses_default_token());
        let loopback6 = with("listen = \"127.0.0.1:8088\"", "listen = \"[::1]:8088\"").unwrap();
        assert!(loopback6.http.uses_default_token());
        let metrics = with("metrics_auth = false", "metrics_auth = true").unwrap();
        assert!(metrics.http.metrics_auth);
    }

    #[test]
    fn callback_retry_keys_have_defaults_and_bounds() {
        let c = default_config();
        assert_eq!(c.http.callback_retry_horizon_secs, 3600);
        assert_eq!(c.http.callback_retry_initial_ms, 1000);
        assert_eq!(c.http.callback_retry_max_secs, 300);
        assert_eq!(c.http.callback_queue_per_receiver, 50_000);
        // Left out of a file, the keys take the same defaults.
        let bare = DEFAULT_TOML
            .lines()
            .filter(|l| !l.starts_with("callback_"))
            .collect::<Vec<_>>()
            .join("\n");
        let b = from_toml_str(&bare).unwrap().http;
        assert_eq!(
            (
                b.callback_retry_horizon_secs,
                b.callback_retry_initial_ms,
                b.callback_retry_max_secs,
                b.callback_queue_per_receiver
            ),
            (3600, 1000, 300, 50_000)
        );
        let off = with(
            "callback_retry_horizon_secs = 3600",
            "callback_retry_horizon_secs = 0",
        )
        .unwrap();
        assert_eq!(off.http.callback_retry_horizon_secs, 0);
        for (from, to, key) in [
            (
                "callback_retry_horizon_secs = 3600",
                "callback_retry_horizon_secs = 604801",
                "http.callback_retry_horizon_secs",
            ),
            (
                "callback_retry_initial_ms = 1000",
                "callback_retry_initial_ms = 5",
                "http.callback_retry_initial_ms",
            ),
            (
                "callback_retry_max_secs = 300",
                "callback_retry_max_secs = 0",
                "http.callback_retry_max_secs",
            ),
            (
                "callback_retry_initial_ms = 1000",
                "callback_retry_initial_ms = 400000",
                "http.callback_retry_max_secs",
            ),
            (
                "callback_queue_per_receiver = 50000",
                "callback_queue_per_receiver = 0",
                "http.callback_queue_per_receiver",
            ),
            (
                "callback_queue_per_receiver = 50000",
                "callback_queue_per_receiver = 100001",
                "http.callback_queue_per_receiver",
            ),
        ] {
            let err = with(from, to).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key}:")), "{to}: {err}");
        }
    }

    #[test]
    fn mixer_priority_takes_the_three_documented_values() {
        assert_eq!(default_config().server.mixer_priority, MixerPriority::High);
        for (value, expected) in [
            ("normal", MixerPriority::Normal),
            ("high", MixerPriority::High),
            ("realtime", MixerPriority::Realtime),
        ] {
            let c = with(
                "mixer_priority = \"high\"",
                &format!("mixer_priority = \"{value}\""),
            )
            .unwrap();
            assert_eq!(c.server.mixer_priority, expected);
        }
        let err = with("mixer_priority = \"high\"", "mixer_priority = \"urgent\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mixer_priority") && err.contains("realtime"),
            "{err}"
        );
        let without = with("mixer_priority = \"high\"\n", "").unwrap();
        assert_eq!(without.server.mixer_priority, MixerPriority::High);
    }

    #[test]
    fn unknown_keys_and_bad_regex_are_rejected() {
        assert!(with("[rtp]", "[rtp]\nport_rnage = \"1-2\"")
            .unwrap_err()
            .to_string()
            .contains("port_rnage"));
        assert!(with("user = \"^echo$\"", "user = \"^(echo$\"")
            .unwrap_err()
            .to_string()
            .contains("regex"));
    }

    #[test]
    fn flood_limits_have_defaults_and_name_the_key_when_wrong() {
        let c = default_config();
        assert_eq!(c.server.max_calls, DEFAULT_MAX_CALLS);
        assert_eq!(c.sip.invite_rate_per_source, DEFAULT_INVITE_RATE_PER_SOURCE);
        assert_eq!(
            c.sip.invite_burst_per_source,
            DEFAULT_INVITE_BURST_PER_SOURCE
        );
        assert_eq!(
            c.sip.max_unconfirmed_per_source,
            DEFAULT_MAX_UNCONFIRMED_PER_SOURCE
        );
        assert_eq!(c.sip.tcp_max_connections, DEFAULT_TCP_MAX_CONNECTIONS);
        assert_eq!(
            c.sip.tcp_max_connections_per_source,
            DEFAULT_TCP_MAX_CONNECTIONS_PER_SOURCE
        );
        assert_eq!(
            c.sip.tcp_message_timeout_secs,
            DEFAULT_TCP_MESSAGE_TIMEOUT_SECS
        );
        assert_eq!(c.sip.tcp_idle_timeout_secs, DEFAULT_TCP_IDLE_TIMEOUT_SECS);
        // The shipped file and the defaults of left-out keys agree.
        let mut bare = DEFAULT_TOML.to_string();
        for key in [
            "max_calls = 4000\n",
            "invite_rate_per_source = 300\n",
            "invite_burst_per_source = 600\n",
            "max_unconfirmed_per_source = 500\n",
            "tcp_max_connections = 4000\n",
            "tcp_max_connections_per_source = 400\n",
            "tcp_message_timeout_secs = 10\n",
            "tcp_idle_timeout_secs = 120\n",
        ] {
            assert!(bare.contains(key), "{key}");
            bare = bare.replacen(key, "", 1);
        }
        let bare = from_toml_str(&bare).unwrap();
        assert_eq!(bare.server.max_calls, c.server.max_calls);
        assert_eq!(bare.sip.tcp_idle_timeout_secs, c.sip.tcp_idle_timeout_secs);
        let cases = [
            ("max_calls = 4000", "max_calls = 0", "server.max_calls"),
            (
                "invite_rate_per_source = 300",
                "invite_rate_per_source = 0",
                "sip.invite_rate_per_source",
            ),
            (
                "invite_burst_per_source = 600",
                "invite_burst_per_source = 0",
                "sip.invite_burst_per_source",
            ),
            (
                "max_unconfirmed_per_source = 500",
                "max_unconfirmed_per_source = 0",
                "sip.max_unconfirmed_per_source",
            ),
            (
                "tcp_max_connections = 4000",
                "tcp_max_connections = 0",
                "sip.tcp_max_connections",
            ),
            (
                "tcp_max_connections_per_source = 400",
                "tcp_max_connections_per_source = 4001",
                "sip.tcp_max_connections_per_source",
            ),
            (
                "tcp_message_timeout_secs = 10",
                "tcp_message_timeout_secs = 0",
                "sip.tcp_message_timeout_secs",
            ),
            (
                "tcp_idle_timeout_secs = 120",
                "tcp_idle_timeout_secs = 0",
                "sip.tcp_idle_timeout_secs",
            ),
        ];
        for (from, to, key) in cases {
            let err = with(from, to).unwrap_err().to_string();
            assert!(err.starts_with(key), "{key}: {err}");
        }
        let err = with("max_calls = 4000", "max_calls = -1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_calls"), "{err}");
    }

    #[test]
    fn http_limits_have_defaults_and_name_the_key_when_wrong() {
        let c = default_config();
        assert_eq!(c.http.max_connections, DEFAULT_HTTP_MAX_CONNECTIONS);
        assert_eq!(
            c.http.max_connections_per_source,
            DEFAULT_HTTP_MAX_CONNECTIONS_PER_SOURCE
        );
        assert_eq!(
            c.http.header_read_timeout_secs,
            DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECS
        );
        assert_eq!(c.http.idle_timeout_secs, DEFAULT_HTTP_IDLE_TIMEOUT_SECS);
        assert_eq!(
            c.http.request_timeout_secs,
            DEFAULT_HTTP_REQUEST_TIMEOUT_SECS
        );
        // The shipped file and the defaults of left-out keys agree.
        let mut bare = DEFAULT_TOML.to_string();
        for key in [
            "max_connections = 2048\n",
            "max_connections_per_source = 256\n",
            "header_read_timeout_secs = 10\n",
            "idle_timeout_secs = 60\n",
            "request_timeout_secs = 30\n",
        ] {
            assert!(bare.contains(key), "{key}");
            bare = bare.replacen(key, "", 1);
        }
        let bare = from_toml_str(&bare).unwrap();
        assert_eq!(bare.http.max_connections, c.http.max_connections);
        assert_eq!(bare.http.request_timeout_secs, c.http.request_timeout_secs);
        let cases = [
            (
                "max_connections = 2048",
                "max_connections = 0",
                "http.max_connections",
            ),
            (
                "max_connections_per_source = 256",
                "max_connections_per_source = 0",
                "http.max_connections_per_source",
            ),
            (
                "max_connections_per_source = 256",
                "max_connections_per_source = 2049",
                "http.max_connections_per_source",
            ),
            (
                "header_read_timeout_secs = 10",
                "header_read_timeout_secs = 0",
                "http.header_read_timeout_secs",
            ),
            (
                "idle_timeout_secs = 60",
                "idle_timeout_secs = 0",
                "http.idle_timeout_secs",
            ),
            (
                "request_timeout_secs = 30",
                "request_timeout_secs = 0",
                "http.request_timeout_secs",
            ),
            (
                "request_timeout_secs = 30",
                "request_timeout_secs = 3601",
                "http.request_timeout_secs",
            ),
        ];
        for (from, to, key) in cases {
            let err = with(from, to).unwrap_err().to_string();
            assert!(err.starts_with(key), "{key}: {err}");
        }
    }

    #[test]
    fn ipv6_listen_and_advertised() {
        let c = with("\"tcp:0.0.0.0:5060\"", "\"tcp:[::1]:5070\"").unwrap();
        assert_eq!(
            c.sip.listen_addrs()[1],
            (ListenTransport::Tcp, "[::1]:5070".parse().unwrap())
        );
        assert_eq!(c.resolve_advertised_ip(), "::1".parse::<IpAddr>().unwrap());
    }
}
