//! Add participant (mpc-api.md §5.5): the request becomes the `<MultiPartyCall>` element it
//! stands for, checked by the same parser as any document; a live call (`call_uuid`) is moved
//! to run it, or new legs are dialled (`from` and `to`) and run it once answered.

use std::time::Duration;

use serde_json::Value;

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
    Dial {
        /// Caller id.
        from: String,
        /// Destinations.
        to: Vec<String>,
        /// Ring timeout per destination.
        ring_timeouts: Vec<Duration>,
    },
    /// An ai-agent stream member (design.md "AI agents"): no call, huddle dials the service.
    Stream,
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

/// `ring_timeout`: one number, or `<`-joined numbers, one per destination at most.
fn ring_timeouts(body: &Body, destinations: usize) -> Result<Vec<Duration>, ApiError> {
    let written = match body.get("ring_timeout") {
        None => String::new(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(bad(&format!("ring_timeout has an unusable value: {other}"))),
    };
    let mut timeouts = Vec::with_capacity(destinations);
    if !written.trim().is_empty() {
        for part in written.split('<') {
            let secs = part
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=600).contains(s))
                .ok_or_else(|| {
                    bad(&format!(
                        "ring_timeout must be seconds from 1 to 600, not {part:?}"
                    ))
                })?;
            timeouts.push(Duration::from_secs(secs));
        }
    }
    if timeouts.len() > destinations {
        return Err(bad(
            "ring_timeout has more values than there are destinations in to",
        ));
    }
    timeouts.resize(destinations, Duration::from_secs(DEFAULT_RING_SECS));
    Ok(timeouts)
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
            (None, Some(from), Some(to)) => {
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
                let ring_timeouts = ring_timeouts(body, to.len())?;
                Source::Dial {
                    from: from.trim().to_string(),
                    to,
                    ring_timeouts,
                }
            }
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
        assert_eq!(
            add.source,
            Source::Dial {
                from: "+1415".into(),
                to: vec!["a".into(), "sip:b@h".into()],
                ring_timeouts: vec![Duration::from_secs(20), Duration::from_secs(30)],
            }
        );
        let add =
            AddParticipant::parse(&body(r#"{"role":"customer","from":"1","to":"2"}"#), "room")
                .unwrap();
        assert!(matches!(add.source, Source::Dial { ring_timeouts, .. }
            if ring_timeouts == vec![Duration::from_secs(45)]));
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
