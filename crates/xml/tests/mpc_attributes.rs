//! `<MultiPartyCall>` attributes: boundaries, allowed values, spellings (table-driven).

mod common;

use common::{mpc, mpc_doc, mpc_error, ok, one_error};
use huddle_xml::{
    HttpMethod, MultiPartyCall, RecordFormat, Role, Sound, StatusEvent, UrlWithMethod, Verb,
};

/// Asserts the shape of an error about attribute `attr` with value `value`.
fn assert_attr_error(attrs: &str, attr: &str, value: &str, allowed: &str) {
    let e = mpc_error(attrs);
    assert_eq!(e.element.as_deref(), Some("MultiPartyCall"), "{attrs}: {e}");
    assert_eq!(e.attribute.as_deref(), Some(attr), "{attrs}: {e}");
    assert_eq!(e.value.as_deref(), Some(value), "{attrs}: {e}");
    let got = e.allowed.clone().unwrap_or_default();
    assert!(
        got.contains(allowed),
        "{attrs}: allowed {got:?} lacks {allowed:?} ({e})"
    );
    let shown = e.to_string();
    assert!(shown.starts_with("line 1, column "), "{shown}");
    assert!(
        shown.contains(&format!(
            "<MultiPartyCall> attribute `{attr}` = {value:?}: "
        )),
        "{shown}"
    );
    assert!(shown.ends_with(&format!("(allowed: {got})")), "{shown}");
}

type IntField = fn(&MultiPartyCall) -> Option<u32>;

#[test]
fn integer_boundaries() {
    let max_duration: IntField = |m| Some(m.max_duration);
    let max_participants: IntField = |m| Some(m.max_participants);
    let min_members: IntField = |m| Some(m.record_min_member_count);
    let wait_time: IntField = |m| m.wait_time;
    let cases: &[(&str, IntField, &str, Option<u32>, &str)] = &[
        ("maxDuration", max_duration, "299", None, "300 to 28800"),
        ("maxDuration", max_duration, "300", Some(300), ""),
        ("maxDuration", max_duration, "28800", Some(28800), ""),
        ("maxDuration", max_duration, "28801", None, "300 to 28800"),
        ("maxDuration", max_duration, " 600 ", Some(600), ""),
        ("maxDuration", max_duration, "-300", None, "300 to 28800"),
        ("maxDuration", max_duration, "+300", None, "300 to 28800"),
        ("maxDuration", max_duration, "3e2", None, "300 to 28800"),
        ("maxDuration", max_duration, "", None, "300 to 28800"),
        (
            "maxDuration",
            max_duration,
            "99999999999999999999",
            None,
            "300 to 28800",
        ),
        ("maxParticipants", max_participants, "1", None, "2 to 10"),
        ("maxParticipants", max_participants, "2", Some(2), ""),
        ("maxParticipants", max_participants, "10", Some(10), ""),
        ("maxParticipants", max_participants, "11", None, "2 to 10"),
        ("recordMinMemberCount", min_members, "0", None, "1 to 2"),
        ("recordMinMemberCount", min_members, "1", Some(1), ""),
        ("recordMinMemberCount", min_members, "2", Some(2), ""),
        ("recordMinMemberCount", min_members, "3", None, "1 to 2"),
        ("waitTime", wait_time, "-1", None, "0 to 1800"),
        ("waitTime", wait_time, "0", Some(0), ""),
        ("waitTime", wait_time, "1800", Some(1800), ""),
        ("waitTime", wait_time, "1801", None, "0 to 1800"),
    ];
    for &(attr, field, value, want, allowed) in cases {
        let attrs = format!(r#"{attr}="{value}""#);
        match want {
            Some(n) => assert_eq!(field(&mpc(&attrs)), Some(n), "{attrs}"),
            None => assert_attr_error(&attrs, attr, value.trim(), allowed),
        }
    }
}

#[test]
fn integer_defaults() {
    let m = mpc("");
    assert_eq!(
        (
            m.max_duration,
            m.max_participants,
            m.record_min_member_count,
            m.wait_time
        ),
        (14400, 10, 1, None)
    );
}

type BoolField = fn(&MultiPartyCall) -> bool;

#[test]
fn booleans() {
    let fields: &[(&str, BoolField, bool)] = &[
        ("record", |m| m.record, false),
        ("waitForAgent", |m| m.wait_for_agent, false),
        ("recordCoachVoice", |m| m.record_coach_voice, false),
        ("recordRoleChannels", |m| m.record_role_channels, false),
        ("mute", |m| m.mute, false),
        ("hold", |m| m.hold, false),
        ("coachMode", |m| m.coach_mode, true),
        ("stayAlone", |m| m.stay_alone, false),
        ("startMpcOnEnter", |m| m.start_mpc_on_enter, true),
        ("endMpcOnExit", |m| m.end_mpc_on_exit, false),
        ("relayDTMFInputs", |m| m.relay_dtmf_inputs, false),
        (
            "recordParticipantTrack",
            |m| m.record_participant_track,
            false,
        ),
        ("transcript", |m| m.transcript, false),
    ];
    for &(attr, field, default) in fields {
        assert_eq!(field(&mpc("")), default, "default of {attr}");
        for (value, want) in [
            ("true", true),
            ("TRUE", true),
            ("False", false),
            (" false ", false),
        ] {
            assert_eq!(
                field(&mpc(&format!(r#"{attr}="{value}""#))),
                want,
                "{attr}={value}"
            );
        }
        for bad in ["yes", "1", ""] {
            assert_attr_error(&format!(r#"{attr}="{bad}""#), attr, bad, "true, false");
        }
    }
}

type MethodField = fn(&MultiPartyCall) -> Option<HttpMethod>;

#[test]
fn methods() {
    fn pair(u: &Option<UrlWithMethod>) -> Option<HttpMethod> {
        u.as_ref().map(|u| u.method)
    }
    // (URL attribute needed to see the method, method attribute, field, default)
    let fields: &[(&str, &str, MethodField, HttpMethod)] = &[
        (
            "startRecordingAudio",
            "startRecordingAudioMethod",
            |m| pair(&m.start_recording_audio),
            HttpMethod::Get,
        ),
        (
            "stopRecordingAudio",
            "stopRecordingAudioMethod",
            |m| pair(&m.stop_recording_audio),
            HttpMethod::Get,
        ),
        (
            "waitMusicUrl",
            "waitMusicMethod",
            |m| pair(&m.wait_music),
            HttpMethod::Get,
        ),
        (
            "agentHoldMusicUrl",
            "agentHoldMusicMethod",
            |m| pair(&m.agent_hold_music),
            HttpMethod::Get,
        ),
        (
            "customerHoldMusicUrl",
            "customerHoldMusicMethod",
            |m| pair(&m.customer_hold_music),
            HttpMethod::Get,
        ),
        (
            "statusCallbackUrl",
            "statusCallbackMethod",
            |m| pair(&m.status_callback),
            HttpMethod::Post,
        ),
        (
            "recordingCallbackUrl",
            "recordingCallbackMethod",
            |m| pair(&m.recording_callback),
            HttpMethod::Get,
        ),
        (
            "onExitActionUrl",
            "onExitActionMethod",
            |m| pair(&m.on_exit_action),
            HttpMethod::Post,
        ),
        (
            "enterSound",
            "enterSoundMethod",
            |m| Some(m.enter_sound_method),
            HttpMethod::Get,
        ),
        (
            "exitSound",
            "exitSoundMethod",
            |m| Some(m.exit_sound_method),
            HttpMethod::Get,
        ),
        (
            "aiAgentStreamStatusCallbackUrl",
            "aiAgentStreamStatusCallbackMethod",
            |m| Some(m.ai_agent_stream.status_callback_method),
            HttpMethod::Post,
        ),
    ];
    for &(url, method, field, default) in fields {
        let with_url = |extra: &str| format!(r#"{url}="https://h.example/x" {extra}"#);
        assert_eq!(
            field(&mpc(&with_url(""))),
            Some(default),
            "default of {method}"
        );
        for (value, want) in [
            ("GET", HttpMethod::Get),
            ("post", HttpMethod::Post),
            ("Get", HttpMethod::Get),
        ] {
            let attrs = with_url(&format!(r#"{method}="{value}""#));
            assert_eq!(field(&mpc(&attrs)), Some(want), "{attrs}");
        }
        assert_attr_error(
            &with_url(&format!(r#"{method}="PUT""#)),
            method,
            "PUT",
            "GET, POST",
        );
        // A method without its URL is fine, but still has to be a method.
        mpc(&format!(r#"{method}="POST""#));
        assert_attr_error(&format!(r#"{method}="PUT""#), method, "PUT", "GET, POST");
    }
}

#[test]
fn url_pairs() {
    let m = mpc(
        r#"waitMusicUrl="https://h/wait.xml" waitMusicMethod="POST" statusCallbackUrl="HTTP://cb.example:8080/s?x=1" recordingCallbackUrl="https://r.example/""#,
    );
    assert_eq!(
        m.wait_music,
        Some(UrlWithMethod {
            url: "https://h/wait.xml".into(),
            method: HttpMethod::Post
        })
    );
    assert_eq!(
        m.status_callback,
        Some(UrlWithMethod {
            url: "HTTP://cb.example:8080/s?x=1".into(),
            method: HttpMethod::Post
        })
    );
    assert_eq!(
        m.recording_callback,
        Some(UrlWithMethod {
            url: "https://r.example/".into(),
            method: HttpMethod::Get
        })
    );
    let url_attrs = [
        "startRecordingAudio",
        "stopRecordingAudio",
        "waitMusicUrl",
        "agentHoldMusicUrl",
        "customerHoldMusicUrl",
        "statusCallbackUrl",
        "recordingCallbackUrl",
        "onExitActionUrl",
        "transcriptionUrl",
        "aiAgentStreamStatusCallbackUrl",
    ];
    for attr in url_attrs {
        mpc(&format!(r#"{attr}="https://ok.example/a""#));
        for bad in [
            "example.com/x",
            "ftp://example.com/x",
            "https://",
            "http://a b/",
            "",
        ] {
            assert_attr_error(
                &format!(r#"{attr}="{bad}""#),
                attr,
                bad,
                "http:// or https://",
            );
        }
    }
    assert_eq!(
        mpc(r#"transcriptionUrl=" https://t/ ""#)
            .transcription_url
            .as_deref(),
        Some("https://t/")
    );
}

#[test]
fn roles() {
    let cases = [
        ("Agent", Role::Agent),
        ("agent", Role::Agent),
        ("Supervisor", Role::Supervisor),
        ("supervisor", Role::Supervisor),
        ("CUSTOMER", Role::Customer),
        ("ai-agent", Role::AiAgent),
        ("AI-AGENT", Role::AiAgent),
        (" Ai-Agent ", Role::AiAgent),
    ];
    for (value, want) in cases {
        let attrs = format!(r#"role="{value}" aiAgentStreamServiceUrl="wss://ai.example/s""#);
        match common::only_verb(&mpc_doc(&attrs, "r")) {
            Verb::MultiPartyCall(m) => assert_eq!(m.role, want, "{value}"),
            other => panic!("{other:?}"),
        }
    }
    for bad in ["manager", "", "aiagent"] {
        let e = one_error(&mpc_doc(&format!(r#"role="{bad}""#), "r"));
        assert_eq!(e.attribute.as_deref(), Some("role"));
        assert_eq!(e.value.as_deref(), Some(bad));
        assert_eq!(
            e.allowed.as_deref(),
            Some("Agent, Supervisor, Customer, ai-agent")
        );
    }
    let e = one_error(&mpc_doc("", "r"));
    assert!(e.message.contains("`role` is required"), "{e}");
    assert_eq!(
        e.allowed.as_deref(),
        Some("Agent, Supervisor, Customer, ai-agent")
    );
}

#[test]
fn status_callback_events() {
    use StatusEvent::*;
    let cases: &[(&str, &[StatusEvent])] = &[
        (" mpc-state-changes , participant-audio-events ", &[MpcStateChanges, ParticipantAudioEvents]),
        ("PARTICIPANT-SPEAK-EVENTS", &[ParticipantSpeakEvents]),
        (
            "mpc-state-changes,participant-state-changes,participant-speak-events,participant-digit-input-events,add-participant-api-events,participant-audio-events",
            &StatusEvent::ALL,
        ),
        ("mpc-state-changes, participant-state-changes", &[MpcStateChanges, ParticipantStateChanges]),
        ("", &[]),
    ];
    for &(value, want) in cases {
        let m = mpc(&format!(r#"statusCallbackEvents="{value}""#));
        assert_eq!(m.status_callback_events, want, "{value:?}");
    }
    assert_eq!(
        mpc("").status_callback_events,
        vec![MpcStateChanges, ParticipantStateChanges]
    );
    for bad in [
        "mpc-state-changes,bogus-events",
        "mpc-state-changes,,participant-state-changes",
        "all",
    ] {
        let e = mpc_error(&format!(r#"statusCallbackEvents="{bad}""#));
        assert_eq!(e.attribute.as_deref(), Some("statusCallbackEvents"));
        assert_eq!(e.value.as_deref(), Some(bad));
        assert!(
            e.allowed
                .as_deref()
                .unwrap_or("")
                .contains("participant-audio-events"),
            "{e}"
        );
    }
}

#[test]
fn enter_and_exit_sounds() {
    let cases = [
        ("none", Some(Sound::None)),
        ("NONE", Some(Sound::None)),
        ("beep:1", Some(Sound::Beep1)),
        ("Beep:2", Some(Sound::Beep2)),
        (
            "https://s.example/enter.xml",
            Some(Sound::Url("https://s.example/enter.xml".into())),
        ),
        (
            "http://s.example/x",
            Some(Sound::Url("http://s.example/x".into())),
        ),
        ("beep:3", None),
        ("beep", None),
        ("ftp://s.example/x", None),
        ("", None),
    ];
    for attr in ["enterSound", "exitSound"] {
        for (value, want) in &cases {
            let attrs = format!(r#"{attr}="{value}""#);
            match want {
                Some(sound) => {
                    let m = mpc(&attrs);
                    let got = if attr == "enterSound" {
                        m.enter_sound
                    } else {
                        m.exit_sound
                    };
                    assert_eq!(&got, sound, "{attrs}");
                }
                None => assert_attr_error(
                    &attrs,
                    attr,
                    value,
                    "none, beep:1, beep:2, or an http(s) URL",
                ),
            }
        }
    }
    let m = mpc("");
    assert_eq!((m.enter_sound, m.exit_sound), (Sound::Beep1, Sound::Beep2));
}

#[test]
fn record_file_format() {
    assert_eq!(mpc("").record_file_format, RecordFormat::Mp3);
    assert_eq!(
        mpc(r#"recordFileFormat="mp3""#).record_file_format,
        RecordFormat::Mp3
    );
    assert_eq!(
        mpc(r#"recordFileFormat="WAV""#).record_file_format,
        RecordFormat::Wav
    );
    assert_attr_error(
        r#"recordFileFormat="ogg""#,
        "recordFileFormat",
        "ogg",
        "mp3, wav",
    );
}

#[test]
fn ai_agent_stream() {
    let base = r#"role="ai-agent" aiAgentStreamServiceUrl="wss://ai.example/stream""#;
    let doc = |extra: &str| mpc_doc(&format!("{base} {extra}"), "r");
    let m = match common::only_verb(&doc(
        r#"aiAgentStreamContentType="Audio/X-L16 ; rate=16000" aiAgentStreamSamplingRate="16000" aiAgentStreamStatusCallbackUrl="https://cb/" aiAgentStreamStatusCallbackMethod="get" aiAgentStreamExtraHeaders="{&quot;a&quot;:&quot;b&quot;}""#,
    )) {
        Verb::MultiPartyCall(m) => m,
        other => panic!("{other:?}"),
    };
    let s = &m.ai_agent_stream;
    assert_eq!(s.service_url.as_deref(), Some("wss://ai.example/stream"));
    assert_eq!(s.content_type, "audio/x-l16;rate=16000");
    assert_eq!(s.sampling_rate, Some(16000));
    assert_eq!(s.status_callback_url.as_deref(), Some("https://cb/"));
    assert_eq!(s.status_callback_method, HttpMethod::Get);
    assert_eq!(s.extra_headers.as_deref(), Some(r#"{"a":"b"}"#));

    for ct in [
        "audio/x-l16;rate=8000",
        "audio/x-mulaw;rate=8000",
        "AUDIO/X-MULAW;RATE=8000",
    ] {
        ok(&doc(&format!(
            r#"aiAgentStreamContentType="{ct}" aiAgentStreamSamplingRate="8000""#
        )));
    }
    // ws:// is fine too; http(s) is not a WebSocket URL.
    ok(&mpc_doc(
        r#"role="ai-agent" aiAgentStreamServiceUrl="ws://ai.example""#,
        "r",
    ));
    let e = one_error(&mpc_doc(
        r#"role="ai-agent" aiAgentStreamServiceUrl="https://ai.example""#,
        "r",
    ));
    assert_eq!(e.attribute.as_deref(), Some("aiAgentStreamServiceUrl"));
    assert_eq!(e.allowed.as_deref(), Some("a ws:// or wss:// URL"));

    let e = one_error(&doc(r#"aiAgentStreamContentType="audio/x-l16;rate=44100""#));
    assert_eq!(e.attribute.as_deref(), Some("aiAgentStreamContentType"));
    assert!(e
        .allowed
        .as_deref()
        .unwrap_or("")
        .contains("audio/x-mulaw;rate=8000"));

    // The rate must agree with the content type (default audio/x-l16;rate=8000).
    let e = one_error(&doc(
        r#"aiAgentStreamContentType="audio/x-l16;rate=16000" aiAgentStreamSamplingRate="8000""#,
    ));
    assert_eq!(e.attribute.as_deref(), Some("aiAgentStreamSamplingRate"));
    assert_eq!(e.allowed.as_deref(), Some("16000"));
    let e = one_error(&doc(r#"aiAgentStreamSamplingRate="16000""#));
    assert_eq!(e.allowed.as_deref(), Some("8000"));
    let e = one_error(&doc(r#"aiAgentStreamSamplingRate="fast""#));
    assert_eq!(e.value.as_deref(), Some("fast"));

    // Stream attributes on another role are accepted with a warning.
    let parsed = ok(&mpc_doc(
        r#"role="Agent" aiAgentStreamServiceUrl="wss://x""#,
        "r",
    ));
    assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
}

#[test]
fn attribute_names_ignore_case() {
    let m =
        mpc(r#"MAXDURATION="500" maxparticipants="3" RelayDTMFInputs="true" CoachMode="false""#);
    assert_eq!(
        (
            m.max_duration,
            m.max_participants,
            m.relay_dtmf_inputs,
            m.coach_mode
        ),
        (500, 3, true, false)
    );

    // The Go SDK's spellings.
    let m = mpc(
        r#"relayDtmfInputs="true" StartRecordingAudio="https://a/start.xml" StartRecordingAudioMethod="POST" StopRecordingAudio="https://a/stop.xml" StopRecordingAudioMethod="GET""#,
    );
    assert!(m.relay_dtmf_inputs);
    assert_eq!(
        m.start_recording_audio,
        Some(UrlWithMethod {
            url: "https://a/start.xml".into(),
            method: HttpMethod::Post
        })
    );
    assert_eq!(
        m.stop_recording_audio,
        Some(UrlWithMethod {
            url: "https://a/stop.xml".into(),
            method: HttpMethod::Get
        })
    );

    // Errors name the attribute as written.
    assert_attr_error(r#"MaxDuration="1""#, "MaxDuration", "1", "300 to 28800");
}

#[test]
fn duplicates_and_unknown_attributes() {
    let e = mpc_error(r#"mute="true" MUTE="false""#);
    assert_eq!(e.attribute.as_deref(), Some("MUTE"));
    assert!(e.message.contains("duplicate"), "{e}");
    assert_eq!((e.line, e.column), (1, 52), "{e}");

    // An unknown attribute twice is still a duplicate.
    let e = one_error(&mpc_doc(r#"role="Agent" colour="blue" COLOUR="red""#, "r"));
    assert_eq!(e.attribute.as_deref(), Some("COLOUR"));

    let parsed = ok(&mpc_doc(r#"role="Agent" colour="blue""#, "r"));
    assert_eq!(parsed.warnings.len(), 1);
    let w = &parsed.warnings[0];
    assert_eq!(w.attribute.as_deref(), Some("colour"));
    assert!(w.message.contains("unknown attribute"), "{w}");
    assert_eq!((w.line, w.column), (1, 40));
}

#[test]
fn mpc_name() {
    let name_of = |body: &str| match common::only_verb(&mpc_doc(r#"role="Agent""#, body)) {
        Verb::MultiPartyCall(m) => m.name,
        other => panic!("{other:?}"),
    };
    assert_eq!(name_of("\n        my-mpc-name\n    "), "my-mpc-name");
    assert_eq!(name_of("Sales &amp; Support"), "Sales & Support");
    assert_eq!(name_of("<!-- c -->room 1"), "room 1");
    assert_eq!(name_of(&"x".repeat(128)), "x".repeat(128));
    assert_eq!(name_of(&"é".repeat(128)), "é".repeat(128));
    for bad in ["", "   ", "a/b", "a?b", "a#b", &"x".repeat(129), "a&#9;b"] {
        let e = one_error(&mpc_doc(r#"role="Agent""#, bad));
        assert_eq!(e.element.as_deref(), Some("MultiPartyCall"), "{bad:?}");
        assert!(e.allowed.as_deref().unwrap_or("").contains("128"), "{e}");
    }
    let e = one_error(&mpc_doc(r#"role="Agent""#, "room<Play>https://a/b</Play>"));
    assert!(e.message.contains("child element <Play>"), "{e}");
}

#[test]
fn values_are_trimmed() {
    let m = mpc(r#"maxDuration=" 400	" record="
        true" waitMusicUrl="  https://w/x  ""#);
    assert_eq!(m.max_duration, 400);
    assert!(m.record);
    assert_eq!(m.wait_music.map(|w| w.url).as_deref(), Some("https://w/x"));
}
