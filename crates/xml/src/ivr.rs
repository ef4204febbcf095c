//! The verbs of an IVR in front of a queue: `GetDigits`, `GetInput` (DTMF), `DTMF` and
//! `Record`, with Plivo's attribute names and defaults.

use crate::attrs::Attrs;
use crate::error::{Diagnostics, Problem};
use crate::model::{
    AudioTrack, Dtmf, FinishKey, GetDigits, GetInput, HttpMethod, Record, Stream, Verb,
};
use crate::tree::{is_blank, Element, Node};
use crate::values::{self, trim, Invalid, ValueResult};
use crate::verbs::{audio_verb, text_only, AUDIO_VERBS};

/// The keys a caller can press.
const KEYS: &str = "1234567890*#";

/// Longest `<DTMF>` text accepted: enough for any real sequence, small enough that a hostile
/// document cannot keep a call busy for hours.
const MAX_DTMF_CHARS: usize = 256;

fn invalid(message: impl Into<String>, allowed: &str) -> Invalid {
    Invalid {
        message: message.into(),
        allowed: Some(allowed.to_string()),
    }
}

/// `finishOnKey` of GetDigits and GetInput: one key, or `none` / empty for no key.
fn finish_key(s: &str) -> ValueResult<FinishKey> {
    const ALLOWED: &str = "one of 0-9, * or #; none or empty for no key";
    if s.is_empty() || s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if KEYS.contains(c) => Ok(Some(c)),
        _ => Err(invalid("not a single key", ALLOWED)),
    }
}

/// `validDigits`: a non-empty set of keys.
fn valid_digits(s: &str) -> ValueResult<String> {
    const ALLOWED: &str = "one or more of 0-9, * and #";
    if s.is_empty() {
        return Err(invalid("no key is valid", ALLOWED));
    }
    match s.chars().find(|c| !KEYS.contains(*c)) {
        Some(c) => Err(invalid(format!("{c:?} is not a key"), ALLOWED)),
        None => Ok(s.to_string()),
    }
}

/// `<Record finishOnKey>`: any keys, or `none` / empty for none.
fn record_keys(s: &str) -> ValueResult<String> {
    const ALLOWED: &str = "keys among 0-9, * and #; none or empty for no key";
    if s.is_empty() || s.eq_ignore_ascii_case("none") {
        return Ok(String::new());
    }
    match s.chars().find(|c| !KEYS.contains(*c)) {
        Some(c) => Err(invalid(format!("{c:?} is not a key"), ALLOWED)),
        None => Ok(s.to_string()),
    }
}

/// The nested prompts of GetDigits and GetInput: Play, Speak and Wait only.
fn prompts(element: &Element, diag: &mut Diagnostics) -> Vec<Verb> {
    let mut verbs = Vec::new();
    for child in &element.children {
        match child {
            Node::Text(t) if is_blank(&t.text) => {}
            Node::Text(t) => diag.error(
                Problem::at(
                    t.offset,
                    format!("text is not allowed directly inside <{}>", element.name),
                )
                .element(&element.name)
                .value(trim(&t.text)),
            ),
            Node::Element(child) => match audio_verb(child, diag) {
                Some(verb) => verbs.push(verb),
                None => diag.error(
                    Problem::at(
                        child.offset,
                        format!("<{}> is not allowed inside <{}>", child.name, element.name),
                    )
                    .element(&child.name)
                    .allowed(Some(AUDIO_VERBS.join(", "))),
                ),
            },
        }
    }
    verbs
}

/// Every attribute `<GetDigits>` understands.
const GET_DIGITS_ATTRIBUTES: &[&str] = &[
    "action",
    "method",
    "timeout",
    "digitTimeout",
    "finishOnKey",
    "numDigits",
    "retries",
    "validDigits",
    "invalidDigitsSound",
    "playBeep",
    "redirect",
    "log",
];

/// `<GetDigits>` with its nested prompts.
pub(crate) fn get_digits(element: &Element, diag: &mut Diagnostics) -> GetDigits {
    let a = Attrs::new(element, GET_DIGITS_ATTRIBUTES, diag);
    let d = GetDigits::default();
    let g = GetDigits {
        action: a.url("action", diag),
        method: a.method("method", d.method, diag),
        timeout_secs: a
            .integer("timeout", 1, 3_600, diag)
            .unwrap_or(d.timeout_secs),
        digit_timeout_secs: a
            .integer("digitTimeout", 1, 3_600, diag)
            .unwrap_or(d.digit_timeout_secs),
        finish_on_key: a
            .get("finishOnKey", diag, finish_key)
            .unwrap_or(d.finish_on_key),
        num_digits: a.integer("numDigits", 1, 99, diag).unwrap_or(d.num_digits),
        retries: a.integer("retries", 1, 10, diag).unwrap_or(d.retries),
        valid_digits: a
            .get("validDigits", diag, valid_digits)
            .unwrap_or(d.valid_digits),
        invalid_digits_sound: a.url("invalidDigitsSound", diag),
        play_beep: a.boolean("playBeep", d.play_beep, diag),
        redirect: a.boolean("redirect", d.redirect, diag),
        log: a.boolean("log", d.log, diag),
        prompts: prompts(element, diag),
    };
    if g.action.is_none() && !a.present("action") {
        diag.warn(
            Problem::at(
                element.offset,
                "no action URL: the digits are collected but sent nowhere",
            )
            .element(&element.name),
        );
    }
    g
}

/// Every attribute `<GetInput>` understands; the speech ones are accepted (the SDKs write
/// them) and have no effect with DTMF input.
const GET_INPUT_ATTRIBUTES: &[&str] = &[
    "action",
    "method",
    "inputType",
    "executionTimeout",
    "digitEndTimeout",
    "speechEndTimeout",
    "finishOnKey",
    "numDigits",
    "speechModel",
    "hints",
    "language",
    "interimSpeechResultsCallback",
    "interimSpeechResultsCallbackMethod",
    "log",
    "redirect",
    "profanityFilter",
];

/// `inputType`: only `dtmf` runs here.
fn input_type(s: &str) -> ValueResult<()> {
    const ALLOWED: &str = "dtmf (speech and \"dtmf speech\" need a speech recogniser, which this server does not have)";
    let words: Vec<&str> = s.split_ascii_whitespace().collect();
    let speech = words.iter().any(|w| w.eq_ignore_ascii_case("speech"));
    let known = !words.is_empty()
        && words
            .iter()
            .all(|w| w.eq_ignore_ascii_case("speech") || w.eq_ignore_ascii_case("dtmf"));
    match (known, speech) {
        (true, false) => Ok(()),
        (true, true) => Err(invalid(
            "speech input is not supported: this server has no speech recogniser",
            ALLOWED,
        )),
        (false, _) => Err(invalid("unknown input type", ALLOWED)),
    }
}

/// `<GetInput>` with its nested prompts.
pub(crate) fn get_input(element: &Element, diag: &mut Diagnostics) -> GetInput {
    let a = Attrs::new(element, GET_INPUT_ATTRIBUTES, diag);
    let action = a.url("action", diag);
    if !a.present("action") {
        diag.error(
            Problem::at(element.offset, "attribute `action` is required")
                .element(&element.name)
                .allowed(Some("an http:// or https:// URL".to_string())),
        );
    }
    if a.get("inputType", diag, input_type).is_none() && !a.present("inputType") {
        diag.error(
            Problem::at(element.offset, "attribute `inputType` is required")
                .element(&element.name)
                .allowed(Some("dtmf".to_string())),
        );
    }
    let digit_end = a.get("digitEndTimeout", diag, |v| {
        if v.eq_ignore_ascii_case("auto") {
            Ok(None)
        } else {
            values::integer(v, 2, 10)
                .map(Some)
                .map_err(|e| invalid(e.message, "2 to 10, or auto"))
        }
    });
    // Checked for the SDKs' sake, though only speech uses them.
    a.get("speechEndTimeout", diag, |v| {
        if v.eq_ignore_ascii_case("auto") {
            Ok(())
        } else {
            values::integer(v, 2, 10)
                .map(|_| ())
                .map_err(|e| invalid(e.message, "2 to 10, or auto"))
        }
    });
    a.method("interimSpeechResultsCallbackMethod", HttpMethod::Post, diag);
    a.url("interimSpeechResultsCallback", diag);
    a.boolean("profanityFilter", false, diag);
    GetInput {
        action: action.unwrap_or_default(),
        method: a.method("method", HttpMethod::Post, diag),
        execution_timeout_secs: a.integer("executionTimeout", 5, 60, diag).unwrap_or(15),
        digit_end_timeout_secs: digit_end.flatten(),
        finish_on_key: a.get("finishOnKey", diag, finish_key).unwrap_or(Some('#')),
        num_digits: a.integer("numDigits", 1, 32, diag).unwrap_or(32),
        redirect: a.boolean("redirect", true, diag),
        log: a.boolean("log", true, diag),
        prompts: prompts(element, diag),
    }
}

/// `<DTMF>` digits: `0-9 * # A-D` (any case) and the pauses `w`, `W`.
fn dtmf_digits(s: &str) -> ValueResult<String> {
    const ALLOWED: &str = "0-9, *, #, A-D, and w (0.5 s pause) or W (1 s pause)";
    if s.is_empty() {
        return Err(invalid(
            "the digits to send (element text) are required",
            ALLOWED,
        ));
    }
    if s.chars().count() > MAX_DTMF_CHARS {
        return Err(invalid(
            format!("more than {MAX_DTMF_CHARS} digits and pauses"),
            ALLOWED,
        ));
    }
    match s
        .chars()
        .find(|c| !(KEYS.contains(*c) || "ABCDabcdwW".contains(*c)))
    {
        Some(c) => Err(invalid(format!("{c:?} is not a digit or pause"), ALLOWED)),
        None => Ok(s.to_string()),
    }
}

/// `<DTMF async>digits</DTMF>`.
pub(crate) fn dtmf(element: &Element, diag: &mut Diagnostics) -> Dtmf {
    let a = Attrs::new(element, &["async"], diag);
    let asynchronous = a.boolean("async", true, diag);
    let text = text_only(element, diag);
    let digits = dtmf_digits(&text).unwrap_or_else(|e| {
        diag.error(
            Problem::at(element.offset, e.message)
                .element(&element.name)
                .value(&text)
                .allowed(e.allowed),
        );
        text.clone()
    });
    Dtmf {
        digits,
        asynchronous,
    }
}

/// Every attribute `<Record>` understands. The transcription ones are checked and have no
/// effect: this server does not transcribe. `startOnDialAnswer="true"` is refused (no `<Dial>`
/// here).
const RECORD_ATTRIBUTES: &[&str] = &[
    "action",
    "method",
    "fileFormat",
    "redirect",
    "timeout",
    "maxLength",
    "playBeep",
    "finishOnKey",
    "recordSession",
    "startOnDialAnswer",
    "transcriptionType",
    "transcriptionUrl",
    "transcriptionMethod",
    "callbackUrl",
    "callbackMethod",
];

/// `<Record>`; takes no text.
pub(crate) fn record(element: &Element, diag: &mut Diagnostics) -> Record {
    let a = Attrs::new(element, RECORD_ATTRIBUTES, diag);
    let d = Record::default();
    let r = Record {
        action: a.url("action", diag),
        method: a.method("method", d.method, diag),
        file_format: a
            .get("fileFormat", diag, values::record_format)
            .unwrap_or(d.file_format),
        redirect: a.boolean("redirect", d.redirect, diag),
        timeout_secs: a
            .integer("timeout", 1, 3_600, diag)
            .unwrap_or(d.timeout_secs),
        max_length_secs: a
            .integer("maxLength", 1, 14_400, diag)
            .unwrap_or(d.max_length_secs),
        play_beep: a.boolean("playBeep", d.play_beep, diag),
        finish_on_key: a
            .get("finishOnKey", diag, record_keys)
            .unwrap_or(d.finish_on_key),
        callback: a.url_with_method("callbackUrl", "callbackMethod", HttpMethod::Post, diag),
        record_session: a.boolean("recordSession", false, diag),
    };
    // huddle runs no <Dial>, so there is no dialled answer to start on: refusing the attribute
    // is clearer than recording something else than asked (recordSession records the whole
    // call, an MPC's record its room).
    if a.boolean("startOnDialAnswer", false, diag) {
        diag.error(
            Problem::at(
                a.offset("startOnDialAnswer").unwrap_or(element.offset),
                "startOnDialAnswer=\"true\" is not supported: it starts on the answer of a <Dial>, which this server does not run; use recordSession=\"true\" to record the whole call, or the MultiPartyCall's record",
            )
            .element(&element.name)
            .attribute("startOnDialAnswer")
            .value("true")
            .allowed(Some("false".to_string())),
        );
    }
    a.get("transcriptionType", diag, |v| {
        if v.eq_ignore_ascii_case("auto") || v.eq_ignore_ascii_case("hybrid") {
            Ok(())
        } else {
            Err(invalid("not an allowed value", "auto, hybrid"))
        }
    });
    a.url_with_method(
        "transcriptionUrl",
        "transcriptionMethod",
        HttpMethod::Post,
        diag,
    );
    let text = text_only(element, diag);
    if !text.is_empty() {
        diag.error(
            Problem::at(element.offset, "<Record> takes no text")
                .element(&element.name)
                .value(&text),
        );
    }
    r
}

/// Every attribute `<Stream>` understands.
const STREAM_ATTRIBUTES: &[&str] = &[
    "bidirectional",
    "audioTrack",
    "streamTimeout",
    "contentType",
    "keepCallAlive",
    "extraHeaders",
    "statusCallbackUrl",
    "statusCallbackMethod",
];

/// Longest `extraHeaders` (Plivo's limit).
const MAX_EXTRA_HEADERS: usize = 512;

/// `<Stream>wss://...</Stream>`.
pub(crate) fn stream(element: &Element, diag: &mut Diagnostics) -> Stream {
    let a = Attrs::new(element, STREAM_ATTRIBUTES, diag);
    let text = text_only(element, diag);
    let url = values::ws_url(&text).unwrap_or_else(|mut e| {
        if text.is_empty() {
            e.message = "the service URL (element text) is required".to_string();
        }
        diag.error(
            Problem::at(element.offset, e.message)
                .element(&element.name)
                .value(&text)
                .allowed(e.allowed),
        );
        text.clone()
    });
    let mut s = Stream::new(url);
    s.bidirectional = a.boolean("bidirectional", false, diag);
    if let Some(track) = a.get("audioTrack", diag, |v| {
        let track = [AudioTrack::Inbound, AudioTrack::Outbound, AudioTrack::Both]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(v))
            .ok_or_else(|| invalid("not an allowed value", "inbound, outbound, both"))?;
        if s.bidirectional && track != AudioTrack::Inbound {
            return Err(invalid(
                "a bidirectional stream sends only the inbound track",
                "inbound",
            ));
        }
        Ok(track)
    }) {
        s.audio_track = track;
    }
    s.stream_timeout_secs = a
        .integer("streamTimeout", 1, 86_400, diag)
        .unwrap_or(s.stream_timeout_secs);
    if let Some((canonical, _)) = a.get("contentType", diag, values::content_type) {
        s.content_type = canonical.to_string();
    }
    s.keep_call_alive = a.boolean("keepCallAlive", false, diag);
    s.extra_headers = a.get("extraHeaders", diag, |v| {
        if v.len() > MAX_EXTRA_HEADERS {
            return Err(invalid(
                format!("longer than {MAX_EXTRA_HEADERS} bytes"),
                "key=value pairs separated by commas, at most 512 bytes",
            ));
        }
        Ok(v.to_string())
    });
    s.status_callback = a.url_with_method(
        "statusCallbackUrl",
        "statusCallbackMethod",
        HttpMethod::Post,
        diag,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(finish_key("#"), Ok(Some('#')));
        assert_eq!(finish_key("NONE"), Ok(None));
        assert_eq!(finish_key(""), Ok(None));
        assert!(finish_key("##").is_err());
        assert!(finish_key("x").is_err());
        assert!(valid_digits("12a").is_err());
        assert!(valid_digits("").is_err());
        assert_eq!(record_keys("none"), Ok(String::new()));
        assert!(record_keys("1w").is_err());
    }

    #[test]
    fn dtmf_text() {
        assert!(dtmf_digits("12w34W#*AbD").is_ok());
        assert!(dtmf_digits("").is_err());
        assert!(dtmf_digits("1 2").is_err());
        assert!(dtmf_digits(&"1".repeat(MAX_DTMF_CHARS + 1)).is_err());
    }

    #[test]
    fn input_types() {
        assert!(input_type("dtmf").is_ok());
        assert!(input_type("DTMF").is_ok());
        let speech = input_type("dtmf speech").unwrap_err();
        assert!(speech.message.contains("speech recogniser"));
        assert!(input_type("speech").is_err());
        assert!(input_type("voice").is_err());
        assert!(input_type("").is_err());
    }
}
