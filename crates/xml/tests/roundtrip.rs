//! render -> parse gives back the same model, for every verb and every MPC field.

mod common;

use common::ok;
use huddle_xml::{
    render, AiAgentStream, Document, Hangup, HangupReason, HttpMethod, MultiPartyCall, Play,
    PreAnswer, RecordFormat, Redirect, Role, Sound, Speak, StatusEvent, UrlWithMethod, Verb, Wait,
};

fn url(u: &str, method: HttpMethod) -> Option<UrlWithMethod> {
    Some(UrlWithMethod {
        url: u.to_string(),
        method,
    })
}

/// Every field away from its default.
fn full_mpc() -> MultiPartyCall {
    MultiPartyCall {
        name: "Sales & <Support> \"EU\" 'é'".to_string(),
        role: Role::AiAgent,
        max_duration: 28800,
        max_participants: 2,
        record: true,
        record_file_format: RecordFormat::Wav,
        record_min_member_count: 2,
        wait_for_agent: true,
        record_coach_voice: true,
        record_role_channels: true,
        start_recording_audio: url("https://a.example/start?x=1&y=2", HttpMethod::Post),
        stop_recording_audio: url("https://a.example/stop", HttpMethod::Post),
        wait_music: url("https://a.example/wait", HttpMethod::Post),
        agent_hold_music: url("https://a.example/agent-hold", HttpMethod::Post),
        customer_hold_music: url("https://a.example/customer-hold", HttpMethod::Post),
        status_callback: url("https://a.example/status", HttpMethod::Get),
        status_callback_events: StatusEvent::ALL.to_vec(),
        recording_callback: url("https://a.example/rec", HttpMethod::Post),
        mute: true,
        hold: true,
        coach_mode: false,
        stay_alone: true,
        start_mpc_on_enter: false,
        end_mpc_on_exit: true,
        enter_sound: Sound::Url("https://a.example/enter.xml".into()),
        enter_sound_method: HttpMethod::Post,
        exit_sound: Sound::None,
        exit_sound_method: HttpMethod::Post,
        on_exit_action: url("https://a.example/exit", HttpMethod::Get),
        relay_dtmf_inputs: true,
        ai_agent_stream: AiAgentStream {
            service_url: Some("wss://ai.example/stream?k=v&w=1".into()),
            content_type: "audio/x-l16;rate=16000".into(),
            status_callback_url: Some("https://a.example/stream-status".into()),
            status_callback_method: HttpMethod::Get,
            sampling_rate: Some(16000),
            extra_headers: Some("{\"Authorization\":\"Bearer t\",\n\t\"x\":\"<&>\"}".into()),
        },
        wait_time: Some(1800),
        record_participant_track: true,
        transcript: true,
        transcription_url: Some("https://a.example/transcript".into()),
    }
}

/// Renders, parses and compares; returns the parse warnings.
fn round_trip(doc: &Document) -> Vec<huddle_xml::XmlError> {
    let xml = render(doc);
    assert!(
        xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#),
        "{xml}"
    );
    assert!(xml.ends_with("</Response>"), "{xml}");
    let parsed = ok(&xml);
    assert_eq!(&parsed.document, doc, "{xml}");
    parsed.warnings
}

#[test]
fn every_verb() {
    let doc = Document {
        verbs: vec![
            Verb::PreAnswer(PreAnswer {
                verbs: vec![
                    Verb::Play(Play {
                        url: "https://a/early.mp3".into(),
                        loop_count: 3,
                    }),
                    Verb::Speak(Speak {
                        text: "Early <media> & \"quotes\"".into(),
                        voice: "MAN".into(),
                        language: "en-GB".into(),
                        loop_count: 0,
                    }),
                    Verb::Wait(Wait {
                        length_secs: 0,
                        silence: false,
                        min_silence_ms: None,
                        beep: None,
                    }),
                ],
            }),
            Verb::Play(Play {
                url: "https://a/x.mp3?a=1&b=2".into(),
                loop_count: 0,
            }),
            Verb::Speak(Speak {
                text: "Hello ]]> world".into(),
                voice: "Polly.Joanna".into(),
                language: "de-DE".into(),
                loop_count: 10000,
            }),
            Verb::Wait(Wait {
                length_secs: 86400,
                silence: true,
                min_silence_ms: Some(2500),
                beep: Some("duration=300,threshold=256".into()),
            }),
            Verb::Wait(Wait {
                length_secs: 1,
                silence: false,
                min_silence_ms: None,
                beep: Some("TRUE".into()),
            }),
            Verb::MultiPartyCall(Box::new(full_mpc())),
            Verb::MultiPartyCall(Box::new(MultiPartyCall::new("defaults", Role::Customer))),
            Verb::Redirect(Redirect {
                url: "https://a/next".into(),
                method: HttpMethod::Get,
            }),
            Verb::Redirect(Redirect {
                url: "https://a/next".into(),
                method: HttpMethod::Post,
            }),
            Verb::Hangup(Hangup {
                reason: Some(HangupReason::Busy),
                schedule_secs: Some(30),
            }),
            Verb::Hangup(Hangup {
                reason: Some(HangupReason::Rejected),
                schedule_secs: None,
            }),
            Verb::Hangup(Hangup::default()),
        ],
    };
    let warnings = round_trip(&doc);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn each_mpc_field_alone() {
    // One field changed at a time, so a field the renderer forgets cannot hide behind another.
    let base = MultiPartyCall::new("room", Role::Agent);
    let full = full_mpc();
    type Set = fn(&mut MultiPartyCall, &MultiPartyCall);
    let setters: &[Set] = &[
        |m, f| m.role = f.role,
        |m, _| m.role = Role::Supervisor,
        |m, f| m.max_duration = f.max_duration,
        |m, f| m.max_participants = f.max_participants,
        |m, f| m.record = f.record,
        |m, f| m.record_file_format = f.record_file_format,
        |m, f| m.record_min_member_count = f.record_min_member_count,
        |m, f| m.wait_for_agent = f.wait_for_agent,
        |m, f| m.record_coach_voice = f.record_coach_voice,
        |m, f| m.start_recording_audio = f.start_recording_audio.clone(),
        |m, f| m.stop_recording_audio = f.stop_recording_audio.clone(),
        |m, f| m.wait_music = f.wait_music.clone(),
        |m, f| m.agent_hold_music = f.agent_hold_music.clone(),
        |m, f| m.customer_hold_music = f.customer_hold_music.clone(),
        |m, f| m.status_callback = f.status_callback.clone(),
        |m, f| m.status_callback_events = f.status_callback_events.clone(),
        |m, _| m.status_callback_events = Vec::new(),
        |m, f| m.recording_callback = f.recording_callback.clone(),
        |m, f| m.mute = f.mute,
        |m, f| m.hold = f.hold,
        |m, f| m.coach_mode = f.coach_mode,
        |m, f| m.stay_alone = f.stay_alone,
        |m, f| m.start_mpc_on_enter = f.start_mpc_on_enter,
        |m, f| m.end_mpc_on_exit = f.end_mpc_on_exit,
        |m, f| m.enter_sound = f.enter_sound.clone(),
        |m, _| m.enter_sound = Sound::Beep2,
        |m, f| m.enter_sound_method = f.enter_sound_method,
        |m, f| m.exit_sound = f.exit_sound.clone(),
        |m, _| m.exit_sound = Sound::Beep1,
        |m, f| m.exit_sound_method = f.exit_sound_method,
        |m, f| m.on_exit_action = f.on_exit_action.clone(),
        |m, f| m.relay_dtmf_inputs = f.relay_dtmf_inputs,
        |m, f| m.ai_agent_stream.service_url = f.ai_agent_stream.service_url.clone(),
        |m, _| m.ai_agent_stream.content_type = "audio/x-mulaw;rate=8000".into(),
        |m, f| {
            m.ai_agent_stream.status_callback_url = f.ai_agent_stream.status_callback_url.clone()
        },
        |m, f| m.ai_agent_stream.status_callback_method = f.ai_agent_stream.status_callback_method,
        |m, _| m.ai_agent_stream.sampling_rate = Some(8000),
        |m, f| m.ai_agent_stream.extra_headers = f.ai_agent_stream.extra_headers.clone(),
        |m, f| m.wait_time = f.wait_time,
        |m, _| m.wait_time = Some(0),
        |m, f| m.record_participant_track = f.record_participant_track,
        |m, f| m.record_role_channels = f.record_role_channels,
        |m, f| m.transcript = f.transcript,
        |m, f| m.transcription_url = f.transcription_url.clone(),
        |m, f| m.name = f.name.clone(),
    ];
    for (i, set) in setters.iter().enumerate() {
        let mut m = base.clone();
        set(&mut m, &full);
        assert_ne!(m, base, "setter {i} changes nothing");
        round_trip(&Document {
            verbs: vec![Verb::MultiPartyCall(Box::new(m))],
        });
    }
    // A default non-AI participant renders without anything to warn about.
    let warnings = round_trip(&Document {
        verbs: vec![Verb::MultiPartyCall(Box::new(base))],
    });
    assert!(warnings.is_empty(), "{warnings:?}");
    for role in [Role::Agent, Role::Supervisor, Role::Customer, Role::AiAgent] {
        round_trip(&Document {
            verbs: vec![Verb::MultiPartyCall(Box::new(MultiPartyCall::new(
                "r", role,
            )))],
        });
    }
}

#[test]
fn empty_document() {
    assert!(round_trip(&Document::default()).is_empty());
    assert_eq!(
        render(&Document::default()),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#
    );
}

#[test]
fn escaping() {
    let doc = Document {
        verbs: vec![Verb::Wait(Wait {
            length_secs: 1,
            silence: false,
            min_silence_ms: None,
            beep: Some("duration=1".into()),
        })],
    };
    assert!(render(&doc).contains(r#"<Wait length="1" silence="false" beep="duration=1"/>"#));
    let mut m = MultiPartyCall::new("a&b<c>", Role::Agent);
    m.ai_agent_stream.extra_headers = Some("\"q\"\t\n".into());
    let xml = render(&Document {
        verbs: vec![Verb::MultiPartyCall(Box::new(m))],
    });
    assert!(xml.contains(">a&amp;b&lt;c&gt;</MultiPartyCall>"), "{xml}");
    assert!(
        xml.contains(r#"aiAgentStreamExtraHeaders="&quot;q&quot;&#9;&#10;""#),
        "{xml}"
    );
}
