//! Requests the URLs that drive a call (answer_url, Redirect, onExitActionUrl) with Plivo's
//! call parameters, honouring the URL's fragment options, and returns the raw XML body (the
//! parser checks its encoding and size).

use std::time::Duration;

use huddle_xml::HttpMethod;
use thiserror::Error;
use tokio::time::Instant;

use crate::url_options::{self, UrlOptions};

/// Largest XML document accepted (Plivo's limit).
pub const MAX_XML_BYTES: usize = huddle_xml::MAX_DOCUMENT_BYTES;

/// Why a fetch failed.
#[derive(Debug, Error)]
pub enum FetchError {
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
    },
    /// The body exceeded [`MAX_XML_BYTES`].
    #[error("{url} returned more than {limit} bytes")]
    TooLarge {
        /// URL without fragment.
        url: String,
        /// The limit.
        limit: usize,
    },
}

/// Call parameters sent with every call-flow request (callbacks.md §6).
#[derive(Debug, Clone)]
pub struct CallParams {
    /// CallUUID.
    pub call_uuid: String,
    /// Caller (From user).
    pub from: String,
    /// Callee (To / Request-URI user).
    pub to: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
}

impl CallParams {
    /// The form pairs for one request: the call's identity plus status and event.
    pub fn pairs(&self, call_status: &str, event: &str) -> Vec<(String, String)> {
        vec![
            ("CallUUID".into(), self.call_uuid.clone()),
            ("From".into(), self.from.clone()),
            ("To".into(), self.to.clone()),
            ("Direction".into(), self.direction.into()),
            ("CallStatus".into(), call_status.into()),
            ("Event".into(), event.into()),
        ]
    }
}

enum Attempt {
    Done(Vec<u8>),
    Retry(FetchError),
    Fail(FetchError),
}

/// Fetches a document. Retries follow the URL's `rc`/`rp` options within its `tt` budget.
pub async fn fetch_xml(
    client: &reqwest::Client,
    configured_url: &str,
    method: HttpMethod,
    params: &[(String, String)],
) -> Result<Vec<u8>, FetchError> {
    let (url, options) = url_options::split(configured_url);
    let deadline = Instant::now() + options.total_timeout;
    let mut attempt = 0;
    loop {
        let budget = deadline.saturating_duration_since(Instant::now());
        let outcome =
            match tokio::time::timeout(budget, attempt_once(client, url, method, params, &options))
                .await
            {
                Ok(outcome) => outcome,
                Err(_) => Attempt::Fail(FetchError::Unreachable {
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
    client: &reqwest::Client,
    url: &str,
    method: HttpMethod,
    params: &[(String, String)],
    options: &UrlOptions,
) -> Attempt {
    let request = match method {
        HttpMethod::Get => client.get(url).query(params),
        HttpMethod::Post => client.post(url).form(params),
    };
    // reqwest's connect timeout is per client; bounding the wait for the response head by
    // connect + read timeout gives the per-URL options their meaning without a client per URL.
    let head = tokio::time::timeout(
        options.connect_timeout + options.read_timeout,
        request.send(),
    )
    .await;
    let unreachable = |detail: String| FetchError::Unreachable {
        url: url.to_string(),
        detail,
    };
    let mut response = match head {
        Err(_) => {
            let err = unreachable("timed out waiting for the response".into());
            return retry_if(options.policy.read_timeout, err);
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
        let err = FetchError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        };
        let retry = (status.is_client_error() && options.policy.client_errors)
            || (status.is_server_error() && options.policy.server_errors);
        return retry_if(retry, err);
    }
    let mut body = Vec::new();
    loop {
        match tokio::time::timeout(options.read_timeout, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > MAX_XML_BYTES {
                    return Attempt::Fail(FetchError::TooLarge {
                        url: url.to_string(),
                        limit: MAX_XML_BYTES,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Ok(None)) => break,
            // No retry after a partial response (callbacks.md §1).
            Ok(Err(e)) => return Attempt::Fail(unreachable(e.to_string())),
            Err(_) => return Attempt::Fail(unreachable("timed out reading the body".into())),
        }
    }
    Attempt::Done(body)
}

fn retry_if(retry: bool, err: FetchError) -> Attempt {
    if retry {
        Attempt::Retry(err)
    } else {
        Attempt::Fail(err)
    }
}
