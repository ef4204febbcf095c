//! Plivo's asynchronous request form (mpc-api.md §1 "Async variant"): a request with
//! `callback_url` is answered at once with `{"api_id", "message": "async api spawned"}`, and
//! what the synchronous form would have answered is sent to `callback_url` (same `api_id`),
//! signed and queued like every other callback.

use axum::http::StatusCode;
use huddle_callflow::CallContext;
use huddle_events::Webhook;
use huddle_xml::HttpMethod;
use serde_json::Value;

use super::add_participant::method;
use super::request::{bad, Body};
use super::ApiError;

/// Where the outcome of an asynchronous request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncCallback {
    /// `callback_url`.
    pub url: String,
    /// `callback_method` (POST by default).
    pub method: HttpMethod,
}

/// `callback_url` and `callback_method`, if the request is asynchronous.
pub fn parse(body: &Body) -> Result<Option<AsyncCallback>, ApiError> {
    let Some(url) = body
        .string("callback_url")?
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    let url = url.trim().to_string();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://"))
        || url.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err(bad(&format!(
            "callback_url must be an http(s) URL, not {url:?}"
        )));
    }
    let method = method(body, "callback_method", HttpMethod::Post)?;
    Ok(Some(AsyncCallback { url, method }))
}

/// The response body as callback parameters: strings as they are, anything else (the
/// `calls` list) as its JSON text; a failure as `error` with its HTTP `status_code`.
fn params(api_id: &str, outcome: Result<Value, (StatusCode, String)>) -> Vec<(String, String)> {
    let mut params = vec![("api_id".to_string(), api_id.to_string())];
    match outcome {
        Ok(Value::Object(map)) => {
            for (key, value) in map {
                if key == "api_id" {
                    continue;
                }
                let text = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                params.push((key, text));
            }
        }
        Ok(other) => params.push(("result".to_string(), other.to_string())),
        Err((status, message)) => {
            params.push(("error".to_string(), message));
            params.push(("status_code".to_string(), status.as_u16().to_string()));
        }
    }
    params
}

/// Queues the outcome for `callback`.
pub fn report(
    calls: &CallContext,
    callback: &AsyncCallback,
    api_id: &str,
    outcome: Result<Value, (StatusCode, String)>,
) {
    let Some(webhooks) = calls.webhooks.as_ref() else {
        tracing::warn!(url = %callback.url, "no callback delivery: the async outcome is dropped");
        return;
    };
    webhooks.send(
        &format!("api:{api_id}"),
        Webhook {
            url: callback.url.clone(),
            method: callback.method,
            params: params(api_id, outcome),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_become_flat_parameters() {
        let ok = params(
            "a1",
            Ok(json!({"api_id": "x", "message": "m", "calls": [{"to": "1"}]})),
        );
        assert!(ok.contains(&("api_id".into(), "a1".into())));
        assert!(ok.contains(&("message".into(), "m".into())));
        assert!(ok.contains(&("calls".into(), r#"[{"to":"1"}]"#.into())));
        assert!(!ok.contains(&("api_id".into(), "x".into())));
        let failed = params("a2", Err((StatusCode::NOT_FOUND, "gone".into())));
        assert!(failed.contains(&("error".into(), "gone".into())));
        assert!(failed.contains(&("status_code".into(), "404".into())));
    }
}
