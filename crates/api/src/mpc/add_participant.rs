//! Add participant (mpc-api.md §5.5): the request becomes the `<MultiPartyCall>` element it
//! stands for, checked by the same parser as any document; a live call (`call_uuid`) is moved
//! to run it, or new legs are dialled (`from` and `to`) and run it once answered.

use std::time::Duration;

use serde_json::Value;

use huddle_callflow::{AfterAnswer, CallStatusCallback, ConfirmKey};
use huddle_room::DialMusic;
use huddle_sip::address::{self, Destination, OutboundCall};
use huddle_xml::{HttpMethod, UrlWithMethod};

use super::request::{bad, Body};
use super::ApiError;

/// API keys that are `<MultiPartyCall>` attributes, in snake case; the attribute is the camel
/// case spelling (attribute names are matched case-insensitively).
const ATTRIBUTES: &[&str] = &[
    "role",
    "max_duration",
    "max_participants",
    "record_min_member_count",
    "wait_music_url",
    "wait_music_method",
    "agent_hold_music_url",
    "agent_hold_music_method",
    "customer_hold_music_url",
    "customer_hold_music_method",
    "recording_callback_url",
    "recording_callback_method",
    "status_callback_url",
    "status_callback_method",
    "status_callback_events",
    "on_exit_action_url",
    "on_exit_action_method",
    "record",
    "record_file_format",
    "record_participant_track",
    // huddle's extension: the per-role multichannel WAV.
    "record_role_channels",
    "stay_alone",
    "coach_mode",
    "mute",
    "hold",
    "start_mpc_on_enter",
    "end_mpc_on_exit",
    "relay_dtmf_inputs",
    "enter_sound",
    "enter_sound_method",
    "exit_sound",
    "exit_sound_method",
    "start_recording_audio",
    "start_recording_audio_method",
    "stop_recording_audio",
    "stop_recording_audio_method",
    "ai_agent_stream_service_url",
    "ai_agent_stream_content_type",
    "ai_agent_stream_sampling_rate",
    "ai_agent_stream_status_callback_url",
    "ai_agent_stream_status_callback_method",
    "ai_agent_stream_extra_headers",
];

fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    for (i, part) in snake.split('_').enumerate() {
        let mut chars = part.chars();
        if let (true, Some(first)) = (i > 0, chars.next()) {
            out.push(first.to_ascii_uppercase());
            out.push_str(chars.as_str());
        } else {
            out.push_str(part);
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Where the participant comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A live call, moved.
    Call(String),
    /// New legs dialled at once; the first to answer joins (several only for agents).
    Dial(Box<Dial>),
    /// An ai-agent stream member (design.md "AI agents"): no call, huddle dials the service.
    Stream,
}

/// The legs to dial for one participant, one entry per destination in each list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// Caller id as given (the response repeats it).
    pub from: String,
    /// Destinations as given.
    pub to: Vec<String>,
    /// Who calls whom on the wire, per destination.
    pub calls: Vec<OutboundCall>,
    /// Ring timeout per destination.
    pub ring_timeouts: Vec<Duration>,
    /// How long to wait before sending each INVITE (`delay_dial`).
    pub delay_dials: Vec<Duration>,
    /// `call_status_callback_url` and its method.
    pub status_callback: Option<CallStatusCallback>,
    /// `send_digits` and `confirm_key` (with its sound).
    pub after_answer: AfterAnswer,
    /// What the MPC hears while the legs ring (`dial_music`; None for `none`).
    pub dial_music: Option<DialMusic>,
}

/// What the request asks for.
pub struct AddParticipant {
    /// Who joins.
    pub source: Source,
    /// The document it runs: one `<MultiPartyCall>`.
    pub document: String,
}

/// Destinations one request may dial at most (the Python SDK's own cap).
const MAX_DESTINATIONS: usize = 20;
/// Plivo's default ring timeout, seconds.
const DEFAULT_RING_SECS: u64 = 45;

/// `ring_timeout`, `delay_dial`: one number, or `<`-joined numbers, one per destination at
/// most, each in `range` seconds; missing ones are `default`.
fn per_destination(
    body: &Body,
    key: &str,
    destinations: usize,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<Vec<Duration>, ApiError> {
    let written = match body.get(key) {
        None => String::new(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(bad(&format!("{key} has an unusable value: {other}"))),
    };
    let mut values = Vec::with_capacity(destinations);
    if !written.trim().is_empty() {
        for part in written.split('<') {
            let secs = part
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| range.contains(s))
                .ok_or_else(|| {
                    bad(&format!(
                        "{key} must be seconds from {} to {}, not {part:?}",
                        range.start(),
                        range.end()
                    ))
                })?;
            values.push(Duration::from_secs(secs));
        }
    }
    if values.len() > destinations {
        return Err(bad(&format!(
            "{key} has more values than there are destinations in to"
        )));
    }
    values.resize(destinations, Duration::from_secs(default));
    Ok(values)
}

/// The dial-out half of the request: addresses checked (nothing that could add a header to
/// the INVITE), caller name and custom headers made into header text.
fn dial(body: &Body, role: &str, from: &str, to: &str) -> Result<Dial, ApiError> {
    let to: Vec<String> = to.split('<').map(|d| d.trim().to_string()).collect();
    if to.iter().any(String::is_empty) || from.trim().is_empty() {
        return Err(bad("from and every destination in to must be non-empty"));
    }
    if to.len() > MAX_DESTINATIONS {
        return Err(bad(&format!(
            "to has more than {MAX_DESTINATIONS} destinations"
        )));
    }
    if to.len() > 1 && !role.eq_ignore_ascii_case("agent") {
        return Err(bad(
            "several destinations in to are allowed for agents only",
        ));
    }
    let caller = Destination::parse(from, "from").map_err(|e| bad(&e.to_string()))?;
    // Plivo: caller_name defaults to from (a number, the usual case, makes a fine name).
    let display_name = match body.string("caller_name")? {
        Some(name) => Some(address::display_name(&name).map_err(|e| bad(&e.to_string()))?),
        None => match &caller {
            Destination::User(number) => address::display_name(number).ok(),
            Destination::Uri(_) => None,
        },
    };
    let headers = match body.string("sip_headers")? {
        Some(spec) => address::custom_headers(&spec).map_err(|e| bad(&e.to_string()))?,
        None => Vec::new(),
    };
    let mut calls = Vec::with_capacity(to.len());
    for destination in &to {
        calls.push(OutboundCall {
            to: Destination::parse(destination, "to").map_err(|e| bad(&e.to_string()))?,
            from: caller.clone(),
            display_name: display_name.clone(),
            headers: headers.clone(),
        });
    }
    Ok(Dial {
        dial_music: dial_music(body)?,
        status_callback: call_status_callback(body)?,
        after_answer: after_answer(body)?,
        from: from.trim().to_string(),
        ring_timeouts: per_destination(body, "ring_timeout", to.len(), 1..=600, DEFAULT_RING_SECS)?,
        delay_dials: per_destination(body, "delay_dial", to.len(), 0..=120, 0)?,
        to,
        calls,
    })
}

/// An http(s) URL parameter, if present.
fn url(body: &Body, key: &str) -> Result<Option<String>, ApiError> {
    match body.string(key)? {
        None => Ok(None),
        Some(url) if url.trim().is_empty() => Ok(None),
        Some(url) => {
            let url = url.trim();
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://"))
                || url.chars().any(|c| c.is_control() || c == ' ')
            {
                return Err(bad(&format!("{key} must be an http(s) URL, not {url:?}")));
            }
            Ok(Some(url.to_string()))
        }
    }
}

/// A `..._method` parameter: GET or POST in any case, `default` when absent.
pub(super) fn method(body: &Body, key: &str, default: HttpMethod) -> Result<HttpMethod, ApiError> {
    match body.string(key)? {
        None => Ok(default),
        Some(m) if m.eq_ignore_ascii_case("GET") => Ok(HttpMethod::Get),
        Some(m) if m.eq_ignore_ascii_case("POST") => Ok(HttpMethod::Post),
        Some(m) => Err(bad(&format!("{key} must be GET or POST, not {m:?}"))),
    }
}

/// `dial_music`: `real` (the default: a ringback tone), `none`, or the URL of a document of
/// Play, Speak and Wait verbs (fetched with GET, like Plivo's other audio documents).
fn dial_music(body: &Body) -> Result<Option<DialMusic>, ApiError> {
    let Some(value) = body.string("dial_music")? else {
        return Ok(Some(DialMusic::Ringback));
    };
    let value = value.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("real") {
        return Ok(Some(DialMusic::Ringback));
    }
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match url(body, "dial_music") {
        Ok(Some(url)) => Ok(Some(DialMusic::Document(UrlWithMethod {
            url,
            method: HttpMethod::Get,
        }))),
        _ => Err(bad(&format!(
            "dial_music must be real, none or an http(s) URL, not {value:?}"
        ))),
    }
}

/// `call_status_callback_url` (+ `_method`, POST by default): the dialled leg's own callbacks.
fn call_status_callback(body: &Body) -> Result<Option<CallStatusCallback>, ApiError> {
    let method = method(body, "call_status_callback_method", HttpMethod::Post)?;
    Ok(url(body, "call_status_callback_url")?.map(|url| CallStatusCallback { url, method }))
}

/// `send_digits` (with `send_on_preanswer`) and `confirm_key` with `confirm_key_sound_url`
/// (+ `_method`, GET).
fn after_answer(body: &Body) -> Result<AfterAnswer, ApiError> {
    let send_digits = match body.string("send_digits")? {
        Some(d) if d.is_empty() => None,
        Some(d) if huddle_callflow::executor::valid_digits(&d) => Some(d),
        Some(d) => {
            return Err(bad(&format!(
                "send_digits may hold 0-9, *, #, A-D and the waits w and W (64 at most), not {d:?}"
            )))
        }
        None => None,
    };
    let sound_method = method(body, "confirm_key_sound_method", HttpMethod::Get)?;
    let sound_url = url(body, "confirm_key_sound_url")?;
    let confirm = match body.string("confirm_key")? {
        Some(k) if k.is_empty() => None,
        Some(k) => {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(key), None) if key.is_ascii_digit() || key == '#' || key == '*' => {
                    Some(ConfirmKey {
                        key,
                        sound_url,
                        sound_method,
                    })
                }
                _ => {
                    return Err(bad(&format!(
                        "confirm_key must be one of 0-9, # or *, not {k:?}"
                    )))
                }
            }
        }
        None => None,
    };
    let send_on_preanswer = body.bool("send_on_preanswer")?.unwrap_or(false);
    Ok(AfterAnswer {
        send_digits,
        send_on_preanswer,
        confirm,
    })
}

impl AddParticipant {
    /// Reads the request for the MPC `mpc_name`; every problem is a 400 naming it.
    pub fn parse(body: &Body, mpc_name: &str) -> Result<AddParticipant, ApiError> {
        let Some(role) = body.string("role")? else {
            return Err(bad(
                "role is required (agent, supervisor, customer or ai-agent)",
            ));
        };
        let call_uuid = body.string("call_uuid")?;
        let (from, to) = (body.string("from")?, body.string("to")?);
        let streamed = role.eq_ignore_ascii_case("ai-agent")
            && body.get("ai_agent_stream_service_url").is_some();
        let source = match (call_uuid, from, to) {
            (None, None, None) if streamed => Source::Stream,
            (_, _, _) if streamed => {
                return Err(bad(
                    "an ai-agent with ai_agent_stream_service_url joins without call_uuid, from or to",
                ));
            }
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(bad("give either call_uuid or from and to, not both"));
            }
            (Some(uuid), None, None) => Source::Call(uuid),
            (None, Some(from), Some(to)) => Source::Dial(Box::new(dial(body, &role, &from, &to)?)),
            (None, _, _) => return Err(bad("give call_uuid, or both from and to")),
        };
        let mut attributes = String::new();
        for key in ATTRIBUTES {
            let value = match body.get(key) {
                None => continue,
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Object(_)) if *key == "ai_agent_stream_extra_headers" => continue,
                Some(other) => return Err(bad(&format!("{key} has an unusable value: {other}"))),
            };
            attributes.push_str(&format!(" {}=\"{}\"", camel_case(key), escape(&value)));
        }
        // The extra headers are an object in the API; the attribute takes its JSON text.
        if let Some(Value::Object(map)) = body.get("ai_agent_stream_extra_headers") {
            let json = Value::Object(map.clone()).to_string();
            attributes.push_str(&format!(" aiAgentStreamExtraHeaders=\"{}\"", escape(&json)));
        }
        // The REST default differs from the XML one (mpc-xml.md §7 item 4).
        if body.get("status_callback_method").is_none() {
            attributes.push_str(" statusCallbackMethod=\"GET\"");
        }
        let document = format!(
            "<Response><MultiPartyCall{attributes}>{}</MultiPartyCall></Response>",
            escape(mpc_name)
        );
        // The document must be one a call can run: the parser names every bad attribute.
        if let Err(errors) = huddle_xml::parse(&document) {
            let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(bad(&problems.join("; ")));
        }
        Ok(AddParticipant { source, document })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Body {
        Body::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn snake_case_keys_become_attributes() {
        assert_eq!(camel_case("max_duration"), "maxDuration");
        assert_eq!(camel_case("relay_dtmf_inputs"), "relayDtmfInputs");
        assert_eq!(camel_case("role"), "role");
    }

    #[test]
    fn pythons_full_body_becomes_a_valid_element() {
        let add = AddParticipant::parse(
            &body(
                r#"{"role":"agent","call_uuid":"abc","call_status_callback_method":"POST","dial_music":"real","ring_timeout":45,"max_duration":14400,"max_participants":10,"record_min_member_count":1,"wait_music_method":"GET","status_callback_method":"GET","on_exit_action_method":"POST","record":false,"record_file_format":"mp3","status_callback_events":"mpc-state-changes,participant-state-changes","stay_alone":false,"coach_mode":true,"mute":false,"hold":false,"start_mpc_on_enter":true,"end_mpc_on_exit":false,"relay_dtmf_inputs":false,"enter_sound":"beep:1","enter_sound_method":"GET","exit_sound":"beep:2","create_mpc_with_single_participant":true}"#,
            ),
            "room <1>",
        )
        .unwrap();
        assert_eq!(add.source, Source::Call("abc".into()));
        assert!(add.document.contains("maxParticipants=\"10\""));
        assert!(add.document.contains(">room &lt;1&gt;</MultiPartyCall>"));
        let parsed = huddle_xml::parse(&add.document).unwrap();
        assert_eq!(parsed.document.verbs.len(), 1);
    }

    #[test]
    fn dial_out_destinations_and_ring_timeouts() {
        let add = AddParticipant::parse(
            &body(r#"{"role":"Agent","from":"+1415","to":"a< sip:b@h ","ring_timeout":"20<30"}"#),
            "room",
        )
        .unwrap();
        let Source::Dial(dial) = add.source else {
            panic!("a dial-out")
        };
        assert_eq!(dial.from, "+1415");
        assert_eq!(dial.to, vec!["a".to_string(), "sip:b@h".to_string()]);
        assert_eq!(dial.calls[0].to, Destination::User("a".into()));
        assert_eq!(dial.calls[1].to, Destination::Uri("sip:b@h".into()));
        assert_eq!(
            dial.ring_timeouts,
            vec![Duration::from_secs(20), Duration::from_secs(30)]
        );
        assert_eq!(dial.delay_dials, vec![Duration::ZERO; 2]);
        let add = AddParticipant::parse(
            &body(
                r#"{"role":"customer","from":"1","to":"2","delay_dial":3,"caller_name":"Desk \"A\"","sip_headers":"Queue=7"}"#,
            ),
            "room",
        )
        .unwrap();
        let Source::Dial(dial) = add.source else {
            panic!("a dial-out")
        };
        assert_eq!(dial.ring_timeouts, vec![Duration::from_secs(45)]);
        assert_eq!(dial.delay_dials, vec![Duration::from_secs(3)]);
        assert_eq!(
            dial.calls[0].display_name.as_deref(),
            Some("\"Desk \\\"A\\\"\"")
        );
        assert_eq!(
            dial.calls[0].headers,
            vec![("X-Queue".to_string(), "7".to_string())]
        );
    }

    #[test]
    fn bad_requests_name_their_problem() {
        let cases = [
            (r#"{"role":"agent"}"#, 400),
            (r#"{"call_uuid":"abc"}"#, 400),
            (
                r#"{"role":"agent","call_uuid":"abc","from":"1","to":"2"}"#,
                400,
            ),
            (r#"{"role":"agent","from":"1"}"#, 400),
            (r#"{"role":"customer","from":"1","to":"a<b"}"#, 400),
            (
                r#"{"role":"agent","from":"1","to":"a<b","ring_timeout":"5<6<7"}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","ring_timeout":0}"#,
                400,
            ),
            (r#"{"role":"agent","from":"1","to":"a<"}"#, 400),
            (
                r#"{"role":"agent","from":"1","to":"1555\r\nX-Evil: 1"}"#,
                400,
            ),
            (r#"{"role":"agent","from":"1","to":"<sip:a@b>"}"#, 400),
            (r#"{"role":"agent","from":"1","to":"a b"}"#, 400),
            (r#"{"role":"agent","from":"1 2","to":"a"}"#, 400),
            (
                r#"{"role":"agent","from":"1","to":"a","caller_name":"x\ny"}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","sip_headers":"a=b\r\nVia: x"}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","sip_headers":"novalue"}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","delay_dial":500}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","confirm_key":"12"}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","dial_music":"loud"}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","confirm_key":"x"}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","send_digits":"12x"}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","call_status_callback_url":"ftp://x"}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","call_status_callback_method":"PUT","call_status_callback_url":"http://x/"}"#,
                400,
            ),
            (
                r#"{"role":"agent","from":"1","to":"a","confirm_key":"1","confirm_key_sound_url":"http://x/\r\nX-Evil: 1"}"#,
                400,
            ),
            (r#"{"role":"boss","call_uuid":"abc"}"#, 400),
            (
                r#"{"role":"agent","call_uuid":"abc","max_participants":50}"#,
                400,
            ),
            (r#"{"role":"agent","call_uuid":"abc","mute":"maybe"}"#, 400),
            (
                r#"{"role":"agent","call_uuid":"abc","hold":[true,false]}"#,
                400,
            ),
        ];
        for (json, status) in cases {
            match AddParticipant::parse(&body(json), "room") {
                Err(e) => assert_eq!(e.status.as_u16(), status, "{json}: {}", e.message),
                Ok(_) => panic!("{json} accepted"),
            }
        }
    }
}
