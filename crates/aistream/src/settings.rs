//! A stream's settings, from the `aiAgentStream*` attributes (or the API's snake-case
//! parameters, which become the same attributes).

use huddle_xml::{AiAgentStream, AudioTrack, HttpMethod, UrlWithMethod};

use crate::audio::MediaFormat;

/// Longest service URL (the protocol's limit).
pub const MAX_URL: usize = 2048;
/// Longest extra-headers string (the protocol's limit).
pub const MAX_EXTRA_HEADERS: usize = 512;

/// Why the attributes do not make a stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// No `aiAgentStreamServiceUrl`.
    #[error("aiAgentStreamServiceUrl is required for an AI agent stream")]
    NoUrl,
    /// Not ws:// or wss://, or too long.
    #[error("aiAgentStreamServiceUrl must be a ws:// or wss:// URL of at most 2048 characters")]
    BadUrl,
    /// Type and rate do not make a supported format.
    #[error("aiAgentStreamContentType {0:?} with aiAgentStreamSamplingRate {1:?} is not supported (audio/x-l16;rate=8000, audio/x-l16;rate=16000, audio/x-mulaw;rate=8000)")]
    BadFormat(String, Option<u32>),
    /// Extra headers too long or malformed.
    #[error("aiAgentStreamExtraHeaders must be a JSON object of strings or key=value pairs, at most 512 bytes")]
    BadExtraHeaders,
}

/// What one stream needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// The service's ws:// or wss:// URL.
    pub url: String,
    /// What `media` frames carry.
    pub format: MediaFormat,
    /// Sent as the `extra_headers` string of `start`, `media` and `dtmf`.
    pub extra_headers: String,
    /// Where stream status callbacks go.
    pub status_callback: Option<UrlWithMethod>,
    /// The sides of the call sent (`<Stream audioTrack>`): the `start` event's `tracks` and
    /// each `media` event's `track`. An ai-agent member's stream is inbound (its mix).
    pub track: AudioTrack,
}

impl StreamSettings {
    /// From the parsed attributes.
    pub fn from_xml(s: &AiAgentStream) -> Result<StreamSettings, SettingsError> {
        let url = s.service_url.clone().ok_or(SettingsError::NoUrl)?;
        let scheme_ok = url
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("ws://"))
            || url
                .get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case("wss://"));
        if !scheme_ok || url.len() > MAX_URL {
            return Err(SettingsError::BadUrl);
        }
        let format = MediaFormat::from_content_type(&s.content_type, s.sampling_rate)
            .ok_or_else(|| SettingsError::BadFormat(s.content_type.clone(), s.sampling_rate))?;
        let extra_headers = extra_headers(s.extra_headers.as_deref().unwrap_or(""))?;
        Ok(StreamSettings {
            url,
            format,
            extra_headers,
            status_callback: s.status_callback_url.clone().map(|url| UrlWithMethod {
                url,
                method: s.status_callback_method,
            }),
            track: AudioTrack::Inbound,
        })
    }

    /// The status callback's method (POST when none is set).
    pub fn callback_method(&self) -> HttpMethod {
        self.status_callback
            .as_ref()
            .map_or(HttpMethod::Post, |c| c.method)
    }
}

/// `aiAgentStreamExtraHeaders` as the stream's `extra_headers` string: a JSON object of
/// strings becomes `k=v,k2=v2` (keys sorted); anything else is kept as written.
pub fn extra_headers(written: &str) -> Result<String, SettingsError> {
    let trimmed = written.trim();
    let text = if trimmed.starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(trimmed).map_err(|_| SettingsError::BadExtraHeaders)?;
        let mut pairs = Vec::with_capacity(map.len());
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(SettingsError::BadExtraHeaders),
            };
            pairs.push(format!("{k}={v}"));
        }
        pairs.join(",")
    } else {
        trimmed.to_string()
    };
    if text.len() > MAX_EXTRA_HEADERS || text.chars().any(char::is_control) {
        return Err(SettingsError::BadExtraHeaders);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::Encoding;

    fn attrs(url: &str, ct: &str, rate: Option<u32>, extra: Option<&str>) -> AiAgentStream {
        AiAgentStream {
            service_url: Some(url.into()),
            content_type: ct.into(),
            sampling_rate: rate,
            extra_headers: extra.map(Into::into),
            ..AiAgentStream::default()
        }
    }

    #[test]
    fn settings_from_attributes() {
        let s = StreamSettings::from_xml(&attrs(
            "wss://ai.example/s",
            "audio/x-l16;rate=16000",
            Some(16000),
            Some(r#"{"tenant":"a1","n":3}"#),
        ))
        .unwrap();
        assert_eq!(s.format.encoding(), Encoding::L16);
        assert_eq!(s.format.rate(), 16000);
        assert_eq!(s.extra_headers, "n=3,tenant=a1");
        assert_eq!(s.callback_method(), HttpMethod::Post);
        let s = StreamSettings::from_xml(&attrs(
            "ws://h/",
            "audio/x-mulaw;rate=8000",
            None,
            Some("a=1,b=2"),
        ))
        .unwrap();
        assert_eq!(s.extra_headers, "a=1,b=2");
    }

    #[test]
    fn bad_settings_are_named() {
        let none = AiAgentStream::default();
        assert_eq!(StreamSettings::from_xml(&none), Err(SettingsError::NoUrl));
        let e = StreamSettings::from_xml(&attrs("http://h/", "audio/x-l16;rate=8000", None, None));
        assert_eq!(e, Err(SettingsError::BadUrl));
        let e = StreamSettings::from_xml(&attrs(
            "ws://h/",
            "audio/x-l16;rate=8000",
            Some(16000),
            None,
        ));
        assert!(matches!(e, Err(SettingsError::BadFormat(..))));
        let long = format!("a={}", "x".repeat(600));
        let e = StreamSettings::from_xml(&attrs(
            "ws://h/",
            "audio/x-l16;rate=8000",
            None,
            Some(&long),
        ));
        assert_eq!(e, Err(SettingsError::BadExtraHeaders));
        let e = StreamSettings::from_xml(&attrs(
            "ws://h/",
            "audio/x-l16;rate=8000",
            None,
            Some("{\"a\":[1]}"),
        ));
        assert_eq!(e, Err(SettingsError::BadExtraHeaders));
    }
}
