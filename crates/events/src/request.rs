//! One request to a customer URL, the way Plivo makes it: parameters in the query (GET) or a
//! form body (POST), signature headers, the URL's fragment options for timeouts and retries.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use huddle_xml::HttpMethod;
use thiserror::Error;
use tokio::time::Instant;

use crate::retry::parse_retry_after;
use crate::signature::Signer;
use crate::url_options::{self, UrlOptions};

/// Why a request failed.
#[derive(Debug, Error)]
pub enum RequestError {
    /// Connection refused, DNS failure, timeout.
    #[error("{url} unreachable: {detail}")]
    Unreachable {
        /// URL without fragment.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A non-2xx answer.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// URL without fragment.
        url: String,
        /// HTTP status.
        status: u16,
        /// The answer's Retry-After, read on 429 and 503 only.
        retry_after: Option<Duration>,
    },
    /// The URL cannot be requested at all (no host, an unsupported scheme, ...).
    #[error("{url} cannot be requested: {detail}")]
    Invalid {
        /// URL without fragment.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The body exceeded the caller's limit.
    #[error("{url} returned more than {limit} bytes")]
    TooLarge {
        /// URL without fragment.
        url: String,
        /// The limit.
        limit: usize,
    },
}

impl RequestError {
    /// Whether the failure may pass by itself, so that trying again later makes sense: the
    /// receiver was unreachable or timed out, or answered 429 or a 5xx. Other answers (4xx),
    /// an unusable URL and an oversized body would fail the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            RequestError::Unreachable { .. } => true,
            RequestError::Status { status, .. } => *status == 429 || (500..600).contains(status),
            RequestError::Invalid { .. } | RequestError::TooLarge { .. } => false,
        }
    }

    /// The wait the receiver asked for with Retry-After (429 and 503 only).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RequestError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The header that numbers a callback's delivery rounds (1 for the first; the URL's own
/// immediate retries share their round's number), so a receiver can tell a retry from a new
/// callback.
pub const ATTEMPT_HEADER: &str = "X-Huddle-Attempt";

/// What to do with the answer's body.
#[derive(Debug, Clone, Copy)]
enum Body {
    /// Read it, up to this many bytes.
    Keep(usize),
    /// Only the status matters (status and recording callbacks).
    Ignore,
}

enum Attempt {
    Done(Vec<u8>),
    Retry(RequestError),
    Fail(RequestError),
}

/// The HTTP client for every request to a customer URL: shared connection pool, and the
/// account's signer when one is configured.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    signer: Option<Arc<Signer>>,
}

impl HttpClient {
    /// Requests through `client`, signed by `signer` when there is one.
    pub fn new(client: reqwest::Client, signer: Option<Signer>) -> Self {
        HttpClient {
            client,
            signer: signer.map(Arc::new),
        }
    }

    /// An unsigned client with a 2 s connect timeout (tests and tools).
    pub fn unsigned() -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        HttpClient::new(client, None)
    }

    /// The account's signer, for requests made outside this client (the AI stream's
    /// WebSocket upgrade is signed with it too).
    pub fn signer(&self) -> Option<&Signer> {
        self.signer.as_deref()
    }

    /// The underlying client, for requests that are not Plivo-style (audio files).
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    /// Requests `configured_url` (fragment options honoured) and returns the body, refusing
    /// one over `limit` bytes. Retries follow the URL's `rc`/`rp` options within its `tt`.
    pub async fn fetch(
        &self,
        configured_url: &str,
        method: HttpMethod,
        params: &[(String, String)],
        limit: usize,
    ) -> Result<Vec<u8>, RequestError> {
        self.with_retries(configured_url, method, params, Body::Keep(limit), None)
            .await
    }

    /// Requests `configured_url` for its status only (a webhook: the body is ignored).
    pub async fn notify(
        &self,
        configured_url: &str,
        method: HttpMethod,
        params: &[(String, String)],
    ) -> Result<(), RequestError> {
        self.with_retries(configured_url, method, params, Body::Ignore, None)
            .await
            .map(drop)
    }

    /// Like [`HttpClient::notify`], for delivery round `round` of a callback (sent in the
    /// [`ATTEMPT_HEADER`] header).
    pub async fn notify_round(
        &self,
        configured_url: &str,
        method: HttpMethod,
        params: &[(String, String)],
        round: u32,
    ) -> Result<(), RequestError> {
        self.with_retries(configured_url, method, params, Body::Ignore, Some(round))
            .await
            .map(drop)
    }

    async fn with_retries(
        &self,
        configured_url: &str,
        method: HttpMethod,
        params: &[(String, String)],
        body: Body,
        round: Option<u32>,
    ) -> Result<Vec<u8>, RequestError> {
        let (url, options) = url_options::split(configured_url);
        let deadline = Instant::now() + options.total_timeout;
        let mut attempt = 0;
        loop {
            let budget = deadline.saturating_duration_since(Instant::now());
            let once = self.attempt_once(url, method, params, &options, body, round);
            let outcome = match tokio::time::timeout(budget, once).await {
                Ok(outcome) => outcome,
                Err(_) => Attempt::Fail(RequestError::Unreachable {
                    url: url.to_string(),
                    detail: format!("no answer within {} ms", options.total_timeout.as_millis()),
                }),
            };
            match outcome {
                Attempt::Done(body) => return Ok(body),
                Attempt::Fail(err) => return Err(err),
                Attempt::Retry(err) if attempt >= options.retries || Instant::now() >= deadline => {
                    return Err(err)
                }
                Attempt::Retry(err) => {
                    attempt += 1;
                    tracing::info!(error = %err, attempt, "retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn attempt_once(
        &self,
        url: &str,
        method: HttpMethod,
        params: &[(String, String)],
        options: &UrlOptions,
        body: Body,
        round: Option<u32>,
    ) -> Attempt {
        let mut request = match method {
            HttpMethod::Get => self.client.get(url).query(params),
            HttpMethod::Post => self.client.post(url).form(params),
        };
        if let Some(signer) = &self.signer {
            for (name, value) in signer.headers(method, url, params) {
                request = request.header(name, value);
            }
        }
        if let Some(round) = round {
            request = request.header(ATTEMPT_HEADER, round);
        }
        // reqwest's connect timeout is per client; bounding the wait for the response head by
        // connect + read timeout gives the per-URL options their meaning without a client per
        // URL.
        let head = tokio::time::timeout(
            options.connect_timeout + options.read_timeout,
            request.send(),
        )
        .await;
        let unreachable = |detail: String| RequestError::Unreachable {
            url: url.to_string(),
            detail,
        };
        let mut response = match head {
            Err(_) => {
                let err = unreachable("timed out waiting for the response".into());
                return retry_if(options.policy.read_timeout, err);
            }
            // Nothing was sent: the URL itself is unusable, and will stay so.
            Ok(Err(e)) if e.is_builder() => {
                return Attempt::Fail(RequestError::Invalid {
                    url: url.to_string(),
                    detail: e.to_string(),
                })
            }
            Ok(Err(e)) => {
                let retry = if e.is_timeout() {
                    options.policy.read_timeout
                } else {
                    options.policy.connect
                };
                return retry_if(retry, unreachable(e.to_string()));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if !status.is_success() {
            let asks_to_wait = matches!(status.as_u16(), 429 | 503);
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .filter(|_| asks_to_wait)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let err = RequestError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                retry_after,
            };
            let retry = (status.is_client_error() && options.policy.client_errors)
                || (status.is_server_error() && options.policy.server_errors);
            return retry_if(retry, err);
        }
        let Body::Keep(limit) = body else {
            return Attempt::Done(Vec::new());
        };
        let mut kept = Vec::new();
        loop {
            match tokio::time::timeout(options.read_timeout, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    if kept.len() + chunk.len() > limit {
                        return Attempt::Fail(RequestError::TooLarge {
                            url: url.to_string(),
                            limit,
                        });
                    }
                    kept.extend_from_slice(&chunk);
                }
                Ok(Ok(None)) => break,
                // No retry after a partial response (callbacks.md §1).
                Ok(Err(e)) => return Attempt::Fail(unreachable(e.to_string())),
                Err(_) => return Attempt::Fail(unreachable("timed out reading the body".into())),
            }
        }
        Attempt::Done(kept)
    }
}

fn retry_if(retry: bool, err: RequestError) -> Attempt {
    if retry {
        Attempt::Retry(err)
    } else {
        Attempt::Fail(err)
    }
}
