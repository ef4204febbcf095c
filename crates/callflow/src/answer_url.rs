//! Fetches a call's XML from its answer_url with Plivo's call parameters (callbacks.md §6).

use std::time::Duration;

use thiserror::Error;

/// Why an answer_url fetch failed; each maps to a Plivo hangup cause.
#[derive(Debug, Error)]
pub enum FetchError {
    /// Connection refused, DNS, timeout.
    #[error("answer_url {url} unreachable: {detail}")]
    Unreachable {
        /// URL without fragment.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// Non-2xx status.
    #[error("answer_url {url} answered HTTP {status}")]
    Status {
        /// URL without fragment.
        url: String,
        /// HTTP status.
        status: u16,
    },
}

/// Parameters Plivo sends to an answer_url.
#[derive(Debug, Clone)]
pub struct CallParams {
    /// CallUUID.
    pub call_uuid: String,
    /// Caller (From user).
    pub from: String,
    /// Callee (To / Request-URI user).
    pub to: String,
    /// inbound / outbound.
    pub direction: &'static str,
    /// ringing, in-progress, ...
    pub call_status: &'static str,
}

impl CallParams {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CallUUID", self.call_uuid.clone()),
            ("From", self.from.clone()),
            ("To", self.to.clone()),
            ("Direction", self.direction.to_string()),
            ("CallStatus", self.call_status.to_string()),
            ("Event", "StartApp".to_string()),
        ]
    }
}

/// Fetches the XML document. The URL fragment (Plivo's per-URL options) is never sent.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    params: &CallParams,
    timeout: Duration,
) -> Result<String, FetchError> {
    let url = url.split('#').next().unwrap_or(url).to_string();
    let request = if method.eq_ignore_ascii_case("GET") {
        client.get(&url).query(&params.pairs())
    } else {
        client.post(&url).form(&params.pairs())
    };
    let response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| FetchError::Unreachable {
            url: url.clone(),
            detail: e.to_string(),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status {
            url,
            status: status.as_u16(),
        });
    }
    response.text().await.map_err(|e| FetchError::Unreachable {
        url,
        detail: e.to_string(),
    })
}
