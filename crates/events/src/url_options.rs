//! Plivo's per-URL delivery options, written in the URL fragment (`#ct=2000&rt=3000&rc=2`):
//! timeouts, retry count and retry policy (callbacks.md §1). The fragment is never sent.

use std::time::Duration;

/// When a failed request is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Connection failures (`ct`).
    pub connect: bool,
    /// Read timeouts (`rt`).
    pub read_timeout: bool,
    /// 4xx answers (`4xx`).
    pub client_errors: bool,
    /// 5xx answers (`5xx`).
    pub server_errors: bool,
}

impl Default for RetryPolicy {
    /// Plivo's default policy `ct,rt`.
    fn default() -> Self {
        RetryPolicy {
            connect: true,
            read_timeout: true,
            client_errors: false,
            server_errors: false,
        }
    }
}

/// Delivery options of one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlOptions {
    /// `ct`: connect timeout (100–10000 ms, default 2000).
    pub connect_timeout: Duration,
    /// `rt`: read timeout (100–40000 ms, default 40000).
    pub read_timeout: Duration,
    /// `tt`: total time including retries (100–55000 ms, default 55000).
    pub total_timeout: Duration,
    /// `rc`: retries after the first attempt (0–5, default 1).
    pub retries: u32,
    /// `rp`: what is retried (default `ct,rt`).
    pub policy: RetryPolicy,
}

impl Default for UrlOptions {
    fn default() -> Self {
        UrlOptions {
            connect_timeout: Duration::from_millis(2000),
            read_timeout: Duration::from_millis(40000),
            total_timeout: Duration::from_millis(55000),
            retries: 1,
            policy: RetryPolicy::default(),
        }
    }
}

/// Splits a configured URL into the URL to request (fragment removed) and its options.
/// Unknown keys (such as `er`, the edge region) and out-of-range values are ignored, keeping the
/// default, because a typo in a URL option must not break the call.
pub fn split(url: &str) -> (&str, UrlOptions) {
    let mut options = UrlOptions::default();
    let Some((base, fragment)) = url.split_once('#') else {
        return (url, options);
    };
    for pair in fragment.split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let millis = |lo: u64, hi: u64| {
            value
                .parse::<u64>()
                .ok()
                .filter(|v| (lo..=hi).contains(v))
                .map(Duration::from_millis)
        };
        match key {
            "ct" => {
                options.connect_timeout = millis(100, 10_000).unwrap_or(options.connect_timeout)
            }
            "rt" => options.read_timeout = millis(100, 40_000).unwrap_or(options.read_timeout),
            "tt" => options.total_timeout = millis(100, 55_000).unwrap_or(options.total_timeout),
            "rc" => {
                if let Some(n) = value.parse::<u32>().ok().filter(|n| *n <= 5) {
                    options.retries = n;
                }
            }
            "rp" => options.policy = parse_policy(value).unwrap_or(options.policy),
            _ => {}
        }
    }
    (base, options)
}

fn parse_policy(value: &str) -> Option<RetryPolicy> {
    let mut policy = RetryPolicy {
        connect: false,
        read_timeout: false,
        client_errors: false,
        server_errors: false,
    };
    for item in value.split(',') {
        match item.trim() {
            "ct" => policy.connect = true,
            "rt" => policy.read_timeout = true,
            "4xx" => policy.client_errors = true,
            "5xx" => policy.server_errors = true,
            "all" => {
                policy = RetryPolicy {
                    connect: true,
                    read_timeout: true,
                    client_errors: true,
                    server_errors: true,
                }
            }
            _ => return None,
        }
    }
    Some(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_url_has_defaults() {
        let (url, o) = split("http://a/b?x=1");
        assert_eq!(url, "http://a/b?x=1");
        assert_eq!(o, UrlOptions::default());
    }

    #[test]
    fn fragment_options_are_read_and_stripped() {
        let (url, o) = split("http://a/b#ct=500&rt=1500&tt=9000&rc=3&rp=4xx,5xx&er=nearest");
        assert_eq!(url, "http://a/b");
        assert_eq!(o.connect_timeout, Duration::from_millis(500));
        assert_eq!(o.read_timeout, Duration::from_millis(1500));
        assert_eq!(o.total_timeout, Duration::from_millis(9000));
        assert_eq!(o.retries, 3);
        assert!(o.policy.client_errors && o.policy.server_errors && !o.policy.connect);
    }

    #[test]
    fn out_of_range_and_garbage_keep_defaults() {
        let (url, o) = split("http://a/#ct=5&rt=999999&rc=9&rp=bogus&tt=&junk");
        assert_eq!(url, "http://a/");
        assert_eq!(o, UrlOptions::default());
        let (_, all) = split("http://a/#rp=all");
        assert!(all.policy.connect && all.policy.read_timeout && all.policy.server_errors);
    }
}
