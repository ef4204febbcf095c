//! Requests the URLs that drive a call (answer_url, Redirect, onExitActionUrl) with Plivo's
//! call parameters, signed and honouring the URL's fragment options, and returns the raw XML
//! body (the parser checks its encoding and size).

use crate::HttpClient;
use huddle_xml::HttpMethod;

/// Largest XML document accepted (Plivo's limit).
pub const MAX_XML_BYTES: usize = huddle_xml::MAX_DOCUMENT_BYTES;

/// Why a fetch failed.
pub use crate::RequestError as FetchError;

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

/// Fetches a document. Retries follow the URL's `rc`/`rp` options within its `tt` budget.
pub async fn fetch_xml(
    http: &HttpClient,
    configured_url: &str,
    method: HttpMethod,
    params: &[(String, String)],
) -> Result<Vec<u8>, FetchError> {
    http.fetch(configured_url, method, params, MAX_XML_BYTES)
        .await
}
