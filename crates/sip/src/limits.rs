//! Limits on what callers may take, so that a flood costs its sender and not everyone else.
//! Sans-IO: time is passed in, nothing here touches a socket or a clock.
//!
//! - [`SourceLimiter`] decides on each new INVITE before the endpoint creates anything for it:
//!   the calls live in all (`server.max_calls`), the calls of its source not confirmed yet
//!   (`sip.max_unconfirmed_per_source`) and its source's INVITE rate (a token bucket:
//!   `sip.invite_rate_per_source`, `sip.invite_burst_per_source`). The table of buckets is
//!   bounded: at [`DEFAULT_SOURCE_TABLE`] sources the least recently seen one is forgotten,
//!   which only ever gives that source a full bucket again, never a stricter limit. Unconfirmed
//!   counts exist only for sources with live calls, so `max_calls` bounds them.
//! - [`ConnectionTable`] counts inbound TCP and TLS connections, in all and per source.
//! - [`StreamClock`] says when a connection has taken too long over a message, or has been
//!   idle too long.
//! - [`LogThrottle`] keeps refusals from writing one log line each.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hashlink::LruCache;

/// Sources whose token buckets are remembered at most (about 6 MiB when full).
pub const DEFAULT_SOURCE_TABLE: usize = 65_536;

/// Retry-After (seconds) of a 503 for `server.max_calls`: calls end all the time, so soon.
pub const MAX_CALLS_RETRY_AFTER: u32 = 5;

/// Retry-After (seconds) of a 503 for too many unconfirmed calls of one source: they are
/// confirmed (or time out) within seconds.
pub const UNCONFIRMED_RETRY_AFTER: u32 = 5;

/// The limits a new INVITE must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Legs live at once, inbound and dialled together.
    pub max_calls: usize,
    /// New INVITEs per second one source may send, on average.
    pub invite_rate_per_source: u32,
    /// New INVITEs one source may send at once.
    pub invite_burst_per_source: u32,
    /// Calls of one source not confirmed yet (no final response, or a 2xx not acknowledged).
    pub max_unconfirmed_per_source: u32,
}

impl Default for CallLimits {
    /// The shipped defaults.
    fn default() -> Self {
        CallLimits {
            max_calls: huddle_config::DEFAULT_MAX_CALLS,
            invite_rate_per_source: huddle_config::DEFAULT_INVITE_RATE_PER_SOURCE,
            invite_burst_per_source: huddle_config::DEFAULT_INVITE_BURST_PER_SOURCE,
            max_unconfirmed_per_source: huddle_config::DEFAULT_MAX_UNCONFIRMED_PER_SOURCE,
        }
    }
}

/// The limits on inbound TCP and TLS connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Inbound connections open at once, all sources together.
    pub max_connections: usize,
    /// Inbound connections open at once from one source IP.
    pub max_per_source: usize,
    /// How long a message may take from its first byte to its last.
    pub message_timeout: Duration,
    /// How long a connection may go without a complete message, when it carries no live
    /// call's dialog.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// The shipped defaults.
    fn default() -> Self {
        ConnectionLimits {
            max_connections: huddle_config::DEFAULT_TCP_MAX_CONNECTIONS,
            max_per_source: huddle_config::DEFAULT_TCP_MAX_CONNECTIONS_PER_SOURCE,
            message_timeout: Duration::from_secs(huddle_config::DEFAULT_TCP_MESSAGE_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(huddle_config::DEFAULT_TCP_IDLE_TIMEOUT_SECS),
        }
    }
}

/// Every limit of the SIP service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SipLimits {
    /// On new INVITEs.
    pub calls: CallLimits,
    /// On TCP and TLS connections.
    pub connections: ConnectionLimits,
}

/// Why a new INVITE was refused with 503; the `reason` label of `huddle_sip_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitRefusal {
    /// `server.max_calls` legs are live.
    MaxCalls,
    /// The source has `sip.max_unconfirmed_per_source` calls not confirmed yet.
    SourceUnconfirmed,
    /// The source's token bucket is empty.
    SourceRate,
}

impl LimitRefusal {
    /// Every reason, in the order of [`LimitRefusal::index`].
    pub const ALL: [LimitRefusal; 3] = [
        LimitRefusal::MaxCalls,
        LimitRefusal::SourceUnconfirmed,
        LimitRefusal::SourceRate,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            LimitRefusal::MaxCalls => "max_calls",
            LimitRefusal::SourceUnconfirmed => "source_unconfirmed",
            LimitRefusal::SourceRate => "source_rate",
        }
    }

    /// A dense index, for per-reason counters.
    pub fn index(self) -> usize {
        match self {
            LimitRefusal::MaxCalls => 0,
            LimitRefusal::SourceUnconfirmed => 1,
            LimitRefusal::SourceRate => 2,
        }
    }
}

/// The decision on a new INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It may become a call.
    Admit,
    /// 503 with `Retry-After: retry_after`.
    Refuse {
        /// Why.
        reason: LimitRefusal,
        /// Seconds for the Retry-After header.
        retry_after: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant, rate: f64, burst: f64) -> Bucket {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        Bucket {
            tokens: (self.tokens + elapsed * rate).min(burst),
            at: now.max(self.at),
        }
    }
}

/// Per-source INVITE limits and the `max_calls` check; see the module documentation.
#[derive(Debug)]
pub struct SourceLimiter {
    limits: CallLimits,
    /// Least recently seen first. SipHash (RandomState), since the keys come from the network.
    buckets: LruCache<IpAddr, Bucket, RandomState>,
    /// Sources with calls not confirmed yet; an entry goes when its count reaches zero.
    unconfirmed: HashMap<IpAddr, u32>,
}

/// The key a source is counted under: an IPv4 address seen as `::ffff:a.b.c.d` on a dual-stack
/// socket is the same source as `a.b.c.d`.
fn key(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl SourceLimiter {
    /// A limiter remembering up to [`DEFAULT_SOURCE_TABLE`] sources' buckets.
    pub fn new(limits: CallLimits) -> SourceLimiter {
        SourceLimiter::with_capacity(limits, DEFAULT_SOURCE_TABLE)
    }

    /// A limiter remembering up to `capacity` sources' buckets (at least one).
    pub fn with_capacity(limits: CallLimits, capacity: usize) -> SourceLimiter {
        SourceLimiter {
            limits,
            buckets: LruCache::with_hasher(capacity.max(1), RandomState::new()),
            unconfirmed: HashMap::new(),
        }
    }

    /// The limits applied.
    pub fn limits(&self) -> CallLimits {
        self.limits
    }

    /// Decides on a new INVITE from `source` while `live_calls` legs exist. The checks that
    /// cost nothing come first, so that an INVITE refused for them does not spend a token:
    /// a trunk held back by its unconfirmed calls can call again the moment they confirm.
    pub fn admit(&mut self, source: IpAddr, live_calls: usize, now: Instant) -> Admission {
        if live_calls >= self.limits.max_calls {
            return Admission::Refuse {
                reason: LimitRefusal::MaxCalls,
                retry_after: MAX_CALLS_RETRY_AFTER,
            };
        }
        let source = key(source);
        if self.unconfirmed(source) >= self.limits.max_unconfirmed_per_source {
            return Admission::Refuse {
                reason: LimitRefusal::SourceUnconfirmed,
                retry_after: UNCONFIRMED_RETRY_AFTER,
            };
        }
        let rate = f64::from(self.limits.invite_rate_per_source.max(1));
        let burst = f64::from(self.limits.invite_burst_per_source.max(1));
        let bucket = match self.buckets.get_mut(&source) {
            Some(bucket) => {
                *bucket = bucket.refilled(now, rate, burst);
                bucket
            }
            None => {
                // A full cache drops its least recently seen source here.
                self.buckets.insert(
                    source,
                    Bucket {
                        tokens: burst,
                        at: now,
                    },
                );
                match self.buckets.get_mut(&source) {
                    Some(bucket) => bucket,
                    None => return Admission::Admit,
                }
            }
        };
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Admission::Admit;
        }
        // The rate is at least one a second, so the next token is at most a second away.
        let wait = ((1.0 - bucket.tokens) / rate).ceil().max(1.0);
        Admission::Refuse {
            reason: LimitRefusal::SourceRate,
            retry_after: wait as u32,
        }
    }

    /// A call from `source` now exists and is not confirmed yet.
    pub fn call_started(&mut self, source: IpAddr) {
        *self.unconfirmed.entry(key(source)).or_insert(0) += 1;
    }

    /// A call from `source` was confirmed (ACK of our 2xx) or ended before that.
    pub fn call_settled(&mut self, source: IpAddr) {
        let source = key(source);
        if let Some(count) = self.unconfirmed.get_mut(&source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.unconfirmed.remove(&source);
            }
        }
    }

    /// Calls of `source` not confirmed yet.
    pub fn unconfirmed(&self, source: IpAddr) -> u32 {
        self.unconfirmed.get(&key(source)).copied().unwrap_or(0)
    }

    /// Sources with unconfirmed calls.
    pub fn sources_with_unconfirmed(&self) -> usize {
        self.unconfirmed.len()
    }

    /// Sources whose buckets are remembered.
    pub fn tracked_sources(&self) -> usize {
        self.buckets.len()
    }

    /// Forgets the buckets that have refilled completely: remembering them changes nothing,
    /// since a source seen for the first time starts with a full bucket too.
    pub fn sweep(&mut self, now: Instant) {
        let rate = f64::from(self.limits.invite_rate_per_source.max(1));
        let burst = f64::from(self.limits.invite_burst_per_source.max(1));
        self.buckets
            .retain(|_, bucket| bucket.refilled(now, rate, burst).tokens < burst);
    }
}

/// Why an inbound connection was closed at once; the `reason` label of
/// `huddle_sip_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// `sip.tcp_max_connections` are open.
    MaxConnections,
    /// `sip.tcp_max_connections_per_source` are open from the source.
    MaxPerSource,
    /// A TLS connection from outside `sip.trusted` with no live call: closed before its
    /// handshake.
    UntrustedSource,
}

impl ConnectionRefusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionRefusal::MaxConnections => "max_connections",
            ConnectionRefusal::MaxPerSource => "max_connections_per_source",
            ConnectionRefusal::UntrustedSource => "untrusted_source",
        }
    }

    /// A dense index, for per-reason state.
    pub fn index(self) -> usize {
        match self {
            ConnectionRefusal::MaxConnections => 0,
            ConnectionRefusal::MaxPerSource => 1,
            ConnectionRefusal::UntrustedSource => 2,
        }
    }
}

/// Open inbound connections, in all and per source. Entries exist only for sources with open
/// connections, so the table is bounded by the total cap.
#[derive(Debug)]
pub struct ConnectionTable {
    max_total: usize,
    max_per_source: usize,
    open: usize,
    per_source: HashMap<IpAddr, usize>,
}

impl ConnectionTable {
    /// An empty table with these caps.
    pub fn new(limits: &ConnectionLimits) -> ConnectionTable {
        ConnectionTable {
            max_total: limits.max_connections,
            max_per_source: limits.max_per_source,
            open: 0,
            per_source: HashMap::new(),
        }
    }

    /// Counts a new connection from `source`, or says which cap it would break (and counts
    /// nothing).
    pub fn try_open(&mut self, source: IpAddr) -> Result<(), ConnectionRefusal> {
        if self.open >= self.max_total {
            return Err(ConnectionRefusal::MaxConnections);
        }
        let count = self.per_source.entry(key(source)).or_insert(0);
        if *count >= self.max_per_source {
            return Err(ConnectionRefusal::MaxPerSource);
        }
        *count += 1;
        self.open += 1;
        Ok(())
    }

    /// A connection from `source` counted by [`ConnectionTable::try_open`] closed.
    pub fn close(&mut self, source: IpAddr) {
        let source = key(source);
        if let Some(count) = self.per_source.get_mut(&source) {
            *count -= 1;
            self.open = self.open.saturating_sub(1);
            if *count == 0 {
                self.per_source.remove(&source);
            }
        }
    }

    /// Connections open.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Connections open from `source`.
    pub fn open_from(&self, source: IpAddr) -> usize {
        self.per_source.get(&key(source)).copied().unwrap_or(0)
    }

    /// Sources with open connections.
    pub fn sources(&self) -> usize {
        self.per_source.len()
    }
}

/// What a connection's deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamExpiry {
    /// A message started and did not complete within the message timeout: close.
    PartialMessage,
    /// No complete message within the idle timeout: close unless a live call uses the
    /// connection.
    Idle,
}

/// The timers of one TCP or TLS connection.
#[derive(Debug, Clone)]
pub struct StreamClock {
    message_timeout: Duration,
    idle_timeout: Duration,
    /// When the first byte of the message being framed arrived.
    partial_since: Option<Instant>,
    /// When the last complete message arrived (or the connection opened, or was last found
    /// carrying a live call).
    idle_since: Instant,
}

impl StreamClock {
    /// The clock of a connection opened at `now`.
    pub fn new(limits: &ConnectionLimits, now: Instant) -> StreamClock {
        StreamClock {
            message_timeout: limits.message_timeout,
            idle_timeout: limits.idle_timeout,
            partial_since: None,
            idle_since: now,
        }
    }

    /// After a read: `messages` complete messages were framed out of it, and `pending` bytes
    /// of the next one are buffered (keepalive line breaks are never pending, the framer skips
    /// them).
    pub fn on_read(&mut self, now: Instant, messages: usize, pending: usize) {
        if messages > 0 {
            self.idle_since = now;
            self.partial_since = None;
        }
        if pending > 0 {
            self.partial_since.get_or_insert(now);
        } else {
            self.partial_since = None;
        }
    }

    /// The connection carries a live call: the idle time starts again.
    pub fn carries_call(&mut self, now: Instant) {
        self.idle_since = now;
    }

    /// The next deadline and what it is for. While a message is being received only its own
    /// deadline counts: a connection in the middle of a message is not idle.
    pub fn deadline(&self) -> (Instant, StreamExpiry) {
        match self.partial_since {
            Some(since) => (since + self.message_timeout, StreamExpiry::PartialMessage),
            None => (self.idle_since + self.idle_timeout, StreamExpiry::Idle),
        }
    }
}

/// Lets one log line through per period and counts the ones held back, so that a flood of
/// refusals does not become a flood of log lines.
#[derive(Debug, Clone)]
pub struct LogThrottle {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl LogThrottle {
    /// At most one line every `every`.
    pub fn new(every: Duration) -> LogThrottle {
        LogThrottle {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// Some(number of lines held back since the last one) when a line may be written at
    /// `now`; None when it must be held back (and is counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32, unconfirmed: u32, max_calls: usize) -> CallLimits {
        CallLimits {
            max_calls,
            invite_rate_per_source: rate,
            invite_burst_per_source: burst,
            max_unconfirmed_per_source: unconfirmed,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn refused(reason: LimitRefusal, retry_after: u32) -> Admission {
        Admission::Refuse {
            reason,
            retry_after,
        }
    }

    #[test]
    fn the_bucket_lets_a_burst_through_then_the_rate() {
        let mut l = SourceLimiter::new(limits(10, 5, 1000, 1000));
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        for i in 0..5 {
            assert_eq!(l.admit(a, 0, t0), Admission::Admit, "burst {i}");
        }
        assert_eq!(
            l.admit(a, 0, t0),
            refused(LimitRefusal::SourceRate, 1),
            "the sixth at once is over the burst"
        );
        // 10 a second: a token every 100 ms, never more than the burst.
        assert_eq!(
            l.admit(a, 0, t0 + Duration::from_millis(99)),
            refused(LimitRefusal::SourceRate, 1)
        );
        assert_eq!(
            l.admit(a, 0, t0 + Duration::from_millis(100)),
            Admission::Admit
        );
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(l.admit(a, 0, later), Admission::Admit);
        }
        assert!(matches!(
            l.admit(a, 0, later),
            Admission::Refuse {
                reason: LimitRefusal::SourceRate,
                ..
            }
        ));
        // Other sources have buckets of their own.
        assert_eq!(l.admit(ip("10.0.0.2"), 0, later), Admission::Admit);
    }

    #[test]
    fn a_sustained_flood_gets_exactly_the_rate() {
        // 100 INVITEs a second for 10 s against 20/s with a burst of 10.
        let mut l = SourceLimiter::new(limits(20, 10, 100_000, 100_000));
        let t0 = Instant::now();
        let flood = ip("192.0.2.9");
        let admitted = (0..1000)
            .filter(|i| l.admit(flood, 0, t0 + Duration::from_millis(10 * i)) == Admission::Admit)
            .count();
        // The burst, then 20 a second for 9.99 s.
        assert!((205..=210).contains(&admitted), "{admitted}");
    }

    #[test]
    fn retry_after_is_the_time_to_the_next_token_at_least_a_second() {
        let mut l = SourceLimiter::new(limits(1, 1, 1000, 1000));
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        assert_eq!(l.admit(a, 0, t0), Admission::Admit);
        assert_eq!(l.admit(a, 0, t0), refused(LimitRefusal::SourceRate, 1));
        assert_eq!(
            l.admit(a, 0, t0 + Duration::from_millis(500)),
            refused(LimitRefusal::SourceRate, 1)
        );
        assert_eq!(l.admit(a, 0, t0 + Duration::from_secs(1)), Admission::Admit);
    }

    #[test]
    fn unconfirmed_calls_are_counted_per_source_and_refusals_spend_no_token() {
        let mut l = SourceLimiter::new(limits(1000, 3, 2, 1000));
        let t0 = Instant::now();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        for _ in 0..2 {
            assert_eq!(l.admit(a, 0, t0), Admission::Admit);
            l.call_started(a);
        }
        assert_eq!(l.unconfirmed(a), 2);
        for _ in 0..10 {
            assert_eq!(
                l.admit(a, 0, t0),
                refused(LimitRefusal::SourceUnconfirmed, UNCONFIRMED_RETRY_AFTER)
            );
        }
        assert_eq!(l.admit(b, 0, t0), Admission::Admit, "another source");
        l.call_settled(a);
        assert_eq!(l.unconfirmed(a), 1);
        // The refusals above spent nothing: the third token of the burst is still there.
        assert_eq!(l.admit(a, 0, t0), Admission::Admit);
        l.call_started(a);
        l.call_settled(a);
        l.call_settled(a);
        assert_eq!(l.unconfirmed(a), 0);
        assert_eq!(l.sources_with_unconfirmed(), 0, "no entry is left at zero");
        // Settling more than was started never goes below zero.
        l.call_settled(a);
        assert_eq!(l.unconfirmed(a), 0);
        // A v4-mapped IPv6 source is the same source.
        l.call_started(ip("::ffff:10.0.0.1"));
        assert_eq!(l.unconfirmed(a), 1);
    }

    #[test]
    fn max_calls_refuses_before_anything_else() {
        let mut l = SourceLimiter::new(limits(1000, 1, 1000, 3));
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        assert_eq!(
            l.admit(a, 3, t0),
            refused(LimitRefusal::MaxCalls, MAX_CALLS_RETRY_AFTER)
        );
        assert_eq!(
            l.tracked_sources(),
            0,
            "a refusal for max_calls records nothing"
        );
        assert_eq!(
            l.admit(a, 2, t0),
            Admission::Admit,
            "the token is still there"
        );
    }

    #[test]
    fn the_bucket_table_is_bounded_and_forgets_the_least_recently_seen() {
        let mut l = SourceLimiter::with_capacity(limits(1, 1, 1000, 1000), 100);
        let t0 = Instant::now();
        let trunk = ip("203.0.113.5");
        assert_eq!(l.admit(trunk, 0, t0), Admission::Admit);
        // 100,000 spoofed sources, one INVITE each; the trunk calls again now and then.
        for i in 0..100_000u32 {
            let spoofed = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.admit(spoofed, 0, t0);
            if i % 50 == 0 {
                assert_eq!(
                    l.admit(trunk, 0, t0),
                    refused(LimitRefusal::SourceRate, 1),
                    "the trunk's empty bucket is remembered while it keeps calling ({i})"
                );
            }
            assert!(l.tracked_sources() <= 100);
        }
        assert_eq!(l.tracked_sources(), 100);
        // A source not seen for a while is forgotten, which gives it a full bucket: never a
        // stricter limit than it had.
        let first_spoofed = ip("10.0.0.0");
        assert_eq!(l.admit(first_spoofed, 0, t0), Admission::Admit);
    }

    #[test]
    fn sweeping_forgets_refilled_buckets_only() {
        let mut l = SourceLimiter::new(limits(10, 10, 1000, 1000));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        // a spends one token (full again after 100 ms), b all ten (full after a second).
        l.admit(a, 0, t0);
        for _ in 0..10 {
            l.admit(b, 0, t0);
        }
        l.sweep(ms(50));
        assert_eq!(l.tracked_sources(), 2, "neither has refilled yet");
        l.sweep(ms(100));
        assert_eq!(l.tracked_sources(), 1, "a has refilled");
        // b's bucket survived the sweep: one token after 100 ms, not ten.
        assert_eq!(l.admit(b, 0, ms(100)), Admission::Admit);
        assert_eq!(l.admit(b, 0, ms(100)), refused(LimitRefusal::SourceRate, 1));
        l.sweep(ms(3000));
        assert_eq!(l.tracked_sources(), 0);
    }

    #[test]
    fn connection_caps_count_in_all_and_per_source() {
        let mut t = ConnectionTable::new(&ConnectionLimits {
            max_connections: 3,
            max_per_source: 2,
            ..ConnectionLimits::default()
        });
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        assert_eq!(t.try_open(a), Ok(()));
        assert_eq!(t.try_open(a), Ok(()));
        assert_eq!(t.try_open(a), Err(ConnectionRefusal::MaxPerSource));
        assert_eq!(t.try_open(b), Ok(()));
        assert_eq!(t.try_open(c), Err(ConnectionRefusal::MaxConnections));
        assert_eq!((t.open(), t.open_from(a), t.open_from(c)), (3, 2, 0));
        t.close(a);
        assert_eq!(t.try_open(c), Ok(()));
        t.close(a);
        t.close(b);
        t.close(c);
        assert_eq!((t.open(), t.sources()), (0, 0));
        // Closing what was never opened changes nothing.
        t.close(a);
        assert_eq!(t.open(), 0);
    }

    #[test]
    fn a_trickled_message_expires_and_a_quiet_connection_goes_idle() {
        let limits = ConnectionLimits {
            message_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            ..ConnectionLimits::default()
        };
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut clock = StreamClock::new(&limits, t0);
        assert_eq!(clock.deadline(), (s(60), StreamExpiry::Idle));
        // One byte a second: the deadline stays 5 s after the first.
        for i in 1..=4 {
            clock.on_read(s(i), 0, i as usize);
            assert_eq!(clock.deadline(), (s(6), StreamExpiry::PartialMessage));
        }
        // The message completes and the next one starts in the same read.
        clock.on_read(s(10), 1, 3);
        assert_eq!(clock.deadline(), (s(15), StreamExpiry::PartialMessage));
        clock.on_read(s(11), 1, 0);
        assert_eq!(clock.deadline(), (s(71), StreamExpiry::Idle));
        // Keepalives leave nothing pending and are not messages: the idle time runs on.
        clock.on_read(s(30), 0, 0);
        assert_eq!(clock.deadline(), (s(71), StreamExpiry::Idle));
        // A live call on the connection starts the idle time again.
        clock.carries_call(s(71));
        assert_eq!(clock.deadline(), (s(131), StreamExpiry::Idle));
    }

    #[test]
    fn the_log_throttle_lets_one_line_through_per_period() {
        let mut log = LogThrottle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.allow(t0), Some(0));
        for i in 1..=99 {
            assert_eq!(log.allow(t0 + Duration::from_millis(100 * i)), None);
        }
        assert_eq!(log.allow(t0 + Duration::from_secs(10)), Some(99));
        assert_eq!(log.allow(t0 + Duration::from_secs(11)), None);
    }
}
