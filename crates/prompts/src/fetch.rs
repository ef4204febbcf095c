//! HTTP(S) download of an audio file with a size cap and a total timeout.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::Url;

use crate::PromptError;

/// Longest URL quoted in an error message.
const URL_IN_MESSAGES: usize = 200;

/// A downloaded file and what it says about its own format.
pub(crate) struct Fetched {
    pub(crate) bytes: Vec<u8>,
    /// File extension from the URL path, or else the `Content-Type`, for the decoder's probe.
    pub(crate) hint: Option<String>,
}

/// Parses an audio URL and removes its fragment: Plivo uses `#ct=…&rt=…` for per-URL
/// options, and a fragment is never part of an HTTP request.
pub(crate) fn parse_url(raw: &str) -> Result<Url, PromptError> {
    let trimmed = raw.trim();
    let mut url = Url::parse(trimmed).map_err(|e| PromptError::InvalidUrl {
        url: shorten(trimmed),
        detail: e.to_string(),
    })?;
    url.set_fragment(None);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PromptError::InvalidUrl {
            url: shorten(url.as_str()),
            detail: format!("scheme `{}` is not http or https", url.scheme()),
        });
    }
    Ok(url)
}

/// The URL as quoted in messages: fragment already gone, cut to a readable length.
pub(crate) fn shorten(url: &str) -> String {
    crate::error::excerpt(url, URL_IN_MESSAGES)
}

/// GETs `url`, failing on non-2xx answers, bodies over `max_bytes` and anything that takes
/// longer than `timeout` in total.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    url: &Url,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Fetched, PromptError> {
    let shown = shorten(url.as_str());
    match tokio::time::timeout(timeout, fetch_inner(http, url, &shown, max_bytes)).await {
        Ok(result) => result,
        Err(_) => Err(PromptError::Fetch {
            url: shown,
            detail: format!("timed out after {:.1} s", timeout.as_secs_f64()),
        }),
    }
}

async fn fetch_inner(
    http: &reqwest::Client,
    url: &Url,
    shown: &str,
    max_bytes: usize,
) -> Result<Fetched, PromptError> {
    let transport = |e: reqwest::Error| PromptError::Fetch {
        url: shown.to_owned(),
        detail: describe(&e),
    };
    let mut response = http.get(url.clone()).send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(PromptError::Status {
            url: shown.to_owned(),
            status: status.as_u16(),
        });
    }
    let too_large = || PromptError::TooLarge {
        url: shown.to_owned(),
        limit: max_bytes,
    };
    // Refuse early when the server says up front that the file is too big.
    let declared = response.content_length();
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(too_large());
    }
    let hint = extension(response.url()).or_else(|| {
        response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|v| !v.is_empty())
    });
    let mut bytes = Vec::with_capacity(declared.map_or(64 * 1024, |n| n as usize));
    // Chunk by chunk with a running total: a server that lies about (or omits) the length
    // cannot make us buffer more than the cap.
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if bytes.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched { bytes, hint })
}

/// Extension of the last path segment, when it names a format the decoder knows.
fn extension(url: &Url) -> Option<String> {
    let name = url.path_segments()?.next_back()?;
    let (_, ext) = name.rsplit_once('.')?;
    let ext = ext.to_ascii_lowercase();
    matches!(ext.as_str(), "mp3" | "wav" | "wave").then_some(ext)
}

/// reqwest's own message is only the outermost layer ("error sending request"); the cause
/// (connection refused, DNS, TLS) is in the source chain.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    // The URL is already in the surrounding message.
    text.replace(
        &format!(" for url ({})", error.url().map_or("", |u| u.as_str())),
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing_strips_fragment_and_checks_scheme() {
        let u = parse_url(" http://h/a.mp3?x=1#ct=2000&rt=10 ").unwrap();
        assert_eq!(u.as_str(), "http://h/a.mp3?x=1");
        assert!(matches!(
            parse_url("ftp://h/a.mp3"),
            Err(PromptError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(PromptError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn extension_only_for_known_formats() {
        let ext = |s: &str| extension(&Url::parse(s).unwrap());
        assert_eq!(ext("http://h/a/b.MP3?q=1").as_deref(), Some("mp3"));
        assert_eq!(ext("http://h/x.wav").as_deref(), Some("wav"));
        assert_eq!(ext("http://h/x.php"), None);
        assert_eq!(ext("http://h/"), None);
    }
}
