//! Parsers for attribute values and element text, independent of where they appear.
//!
//! Each returns [`Invalid`] with a message and, where there is a closed set, the allowed values;
//! the caller adds element, attribute and position.

use crate::model::{HangupReason, HttpMethod, RecordFormat, Role, Sound, StatusEvent};

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub message: String,
    pub allowed: Option<String>,
}

impl Invalid {
    fn new(message: impl Into<String>, allowed: impl Into<Option<String>>) -> Self {
        Invalid {
            message: message.into(),
            allowed: allowed.into(),
        }
    }
}

/// Result of a value parser.
pub(crate) type ValueResult<T> = Result<T, Invalid>;

/// XML whitespace (the only whitespace trimmed around values).
pub(crate) fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// `s` without leading and trailing XML whitespace.
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(is_xml_space)
}

/// Picks the entry of `table` whose name equals `s` ignoring ASCII case.
fn keyword<T: Copy>(s: &str, table: &[(&str, T)]) -> ValueResult<T> {
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|&(_, value)| value)
        .ok_or_else(|| {
            let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
            Invalid::new("not an allowed value", names.join(", "))
        })
}

/// `true` / `false`, any case.
pub(crate) fn boolean(s: &str) -> ValueResult<bool> {
    keyword(s, &[("true", true), ("false", false)])
}

/// `GET` / `POST`, any case.
pub(crate) fn method(s: &str) -> ValueResult<HttpMethod> {
    keyword(s, &[("GET", HttpMethod::Get), ("POST", HttpMethod::Post)])
}

/// `Agent`, `Supervisor`, `Customer`, `ai-agent`, any case.
pub(crate) fn role(s: &str) -> ValueResult<Role> {
    keyword(
        s,
        &[
            ("Agent", Role::Agent),
            ("Supervisor", Role::Supervisor),
            ("Customer", Role::Customer),
            ("ai-agent", Role::AiAgent),
        ],
    )
}

/// `mp3` / `wav`, any case.
pub(crate) fn record_format(s: &str) -> ValueResult<RecordFormat> {
    keyword(s, &[("mp3", RecordFormat::Mp3), ("wav", RecordFormat::Wav)])
}

/// `rejected` / `busy`, any case.
pub(crate) fn hangup_reason(s: &str) -> ValueResult<HangupReason> {
    keyword(
        s,
        &[
            ("rejected", HangupReason::Rejected),
            ("busy", HangupReason::Busy),
        ],
    )
}

/// A decimal integer in `min..=max`: digits only, no sign.
pub(crate) fn integer(s: &str, min: u32, max: u32) -> ValueResult<u32> {
    let allowed = if max == u32::MAX {
        format!("a whole number from {min}")
    } else {
        format!("{min} to {max}")
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Invalid::new("not a whole number (digits only)", allowed));
    }
    // Digits only, so the only failure is overflow.
    let n = s.parse::<u64>().unwrap_or(u64::MAX);
    match u32::try_from(n) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Invalid::new("out of range", allowed)),
    }
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn http_url(s: &str) -> ValueResult<String> {
    url(s, &["http", "https"], "an http:// or https:// URL")
}

/// A `ws://` or `wss://` URL with a host.
pub(crate) fn ws_url(s: &str) -> ValueResult<String> {
    url(s, &["ws", "wss"], "a ws:// or wss:// URL")
}

fn url(s: &str, schemes: &[&str], allowed: &str) -> ValueResult<String> {
    let invalid = |message: &str| Invalid::new(message, allowed.to_string());
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(invalid("not a URL"));
    };
    if !schemes.iter().any(|w| w.eq_ignore_ascii_case(scheme)) {
        return Err(invalid("unsupported URL scheme"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("URL contains spaces or control characters"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let host = if host_port.starts_with('[') {
        // IPv6 literal: the host runs to the closing bracket.
        match host_port.find(']') {
            Some(end) => {
                let port = &host_port[end + 1..];
                if !port.is_empty() && !valid_port(port.strip_prefix(':').unwrap_or("x")) {
                    return Err(invalid("URL has a bad port"));
                }
                &host_port[..=end]
            }
            None => return Err(invalid("URL has an unterminated IPv6 address")),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => {
                if !valid_port(port) {
                    return Err(invalid("URL has a bad port"));
                }
                host
            }
            None => host_port,
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(invalid("URL has no host"));
    }
    Ok(s.to_string())
}

fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// `none`, `beep:1`, `beep:2` (any case) or an http(s) URL returning audio XML.
pub(crate) fn sound(s: &str) -> ValueResult<Sound> {
    const ALLOWED: &str = "none, beep:1, beep:2, or an http(s) URL";
    for (name, sound) in [
        ("none", Sound::None),
        ("beep:1", Sound::Beep1),
        ("beep:2", Sound::Beep2),
    ] {
        if name.eq_ignore_ascii_case(s) {
            return Ok(sound);
        }
    }
    http_url(s)
        .map(Sound::Url)
        .map_err(|e| Invalid::new(e.message, ALLOWED.to_string()))
}

/// Comma-separated [`StatusEvent`] names, any case, spaces around items ignored. An empty
/// value means no events.
pub(crate) fn status_events(s: &str) -> ValueResult<Vec<StatusEvent>> {
    let allowed = || {
        StatusEvent::ALL
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|item| {
            let item = trim(item);
            if item.is_empty() {
                return Err(Invalid::new("empty item in the event list", allowed()));
            }
            StatusEvent::ALL
                .iter()
                .copied()
                .find(|e| e.as_str().eq_ignore_ascii_case(item))
                .ok_or_else(|| {
                    Invalid::new(
                        format!("unknown event group `{}`", crate::error::quote(item)),
                        allowed(),
                    )
                })
        })
        .collect()
}

/// The stream content types, in canonical spelling, with their sample rates.
const CONTENT_TYPES: [(&str, u32); 3] = [
    ("audio/x-l16;rate=8000", 8000),
    ("audio/x-l16;rate=16000", 16000),
    ("audio/x-mulaw;rate=8000", 8000),
];

/// `aiAgentStreamContentType`: one of three types, any case, spaces around `;` ignored.
/// Returns the canonical spelling and the sample rate.
pub(crate) fn content_type(s: &str) -> ValueResult<(&'static str, u32)> {
    let (kind, params) = s.split_once(';').unwrap_or((s, ""));
    let kind = trim(kind);
    let params = trim(params);
    CONTENT_TYPES
        .iter()
        .find(|(canonical, _)| {
            let (ck, cp) = canonical.split_once(';').unwrap_or((canonical, ""));
            ck.eq_ignore_ascii_case(kind) && cp.eq_ignore_ascii_case(params)
        })
        .copied()
        .ok_or_else(|| {
            Invalid::new(
                "unsupported content type",
                CONTENT_TYPES.map(|(c, _)| c).join(", "),
            )
        })
}

/// `<Speak voice>`: `WOMAN`, `MAN` (any case) or `Polly.<Name>`; kept as written.
pub(crate) fn voice(s: &str) -> ValueResult<String> {
    let plain = s.eq_ignore_ascii_case("WOMAN") || s.eq_ignore_ascii_case("MAN");
    let polly = s
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("Polly."))
        .and_then(|_| s.get(6..))
        .is_some_and(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if plain || polly {
        Ok(s.to_string())
    } else {
        Err(Invalid::new(
            "unknown voice",
            "WOMAN, MAN, Polly.<Name>".to_string(),
        ))
    }
}

/// `<Speak language>`: a language tag like `en-US` (letters, digits, `-`).
pub(crate) fn language(s: &str) -> ValueResult<String> {
    let ok = !s.is_empty()
        && s.len() <= 35
        && s.as_bytes()[0].is_ascii_alphabetic()
        && s.split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Invalid::new(
            "not a language tag",
            "a tag like en-US (letters, digits and '-')".to_string(),
        ))
    }
}

/// `<Wait beep>`: `true` / `false` (any case) or `key=value,...` with the beep-detection
/// parameters; kept as written.
pub(crate) fn beep(s: &str) -> ValueResult<String> {
    const KEYS: [&str; 4] = ["duration", "inter_silence", "intra_silence", "threshold"];
    if boolean(s).is_ok() {
        return Ok(s.to_string());
    }
    let allowed = || {
        format!(
            "true, false, or key=value pairs separated by commas with keys {}",
            KEYS.join(", ")
        )
    };
    for pair in s.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Invalid::new("not true/false or key=value pairs", allowed()));
        };
        let key = trim(key);
        if !KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(Invalid::new(
                format!("unknown beep parameter `{}`", crate::error::quote(key)),
                allowed(),
            ));
        }
        let value = trim(value);
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(
                format!("beep parameter `{key}` needs a whole number"),
                allowed(),
            ));
        }
    }
    Ok(s.to_string())
}

/// Longest accepted MPC name, in characters.
pub(crate) const MAX_MPC_NAME_CHARS: usize = 128;

/// The MPC friendly name (element text, already trimmed).
pub(crate) fn mpc_name(s: &str) -> ValueResult<String> {
    const ALLOWED: &str = "1 to 128 characters, without '/', '?', '#' or control characters";
    if s.is_empty() {
        return Err(Invalid::new(
            "the MPC name (element text) is required",
            ALLOWED.to_string(),
        ));
    }
    if s.chars().count() > MAX_MPC_NAME_CHARS {
        return Err(Invalid::new("MPC name too long", ALLOWED.to_string()));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| matches!(c, '/' | '?' | '#') || c.is_control())
    {
        return Err(Invalid::new(
            format!("MPC name contains {c:?}"),
            ALLOWED.to_string(),
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "http://a",
            "HTTPS://example.com:8443/x?y#z",
            "https://user:pw@h/",
            "http://[::1]:80/",
        ] {
            assert!(http_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ftp://a",
            "http://",
            "http:///x",
            "http://a b",
            "https://:80",
            "http://h:x/",
            "example.com",
            "http://[::1",
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
        assert!(ws_url("wss://ai.example/x").is_ok());
        assert!(ws_url("https://ai.example/x").is_err());
    }

    #[test]
    fn integers() {
        assert_eq!(integer("007", 0, 10), Ok(7));
        assert!(integer("+1", 0, 10).is_err());
        assert!(integer("99999999999999999999999", 0, u32::MAX).is_err());
        assert_eq!(integer("4294967295", 0, u32::MAX), Ok(u32::MAX));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type("AUDIO/X-L16 ; rate=16000"),
            Ok(("audio/x-l16;rate=16000", 16000))
        );
        assert!(content_type("audio/x-l16;rate=44100").is_err());
        assert!(content_type("audio/x-l16").is_err());
    }

    #[test]
    fn voices_and_languages() {
        assert!(voice("man").is_ok());
        assert!(voice("Polly.Joanna-Neural").is_ok());
        assert!(voice("Polly.").is_err());
        assert!(voice("robot").is_err());
        assert!(language("en-US").is_ok());
        assert!(language("cmn-Hant-TW").is_ok());
        assert!(language("en--US").is_err());
        assert!(language("-en").is_err());
    }
}
