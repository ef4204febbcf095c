//! `<MultiPartyCall>`: every attribute of spec mpc-xml.md §3–4, defaults from [`MultiPartyCall::new`].

use crate::attrs::Attrs;
use crate::error::{Diagnostics, Problem};
use crate::model::{HttpMethod, MultiPartyCall, Role};
use crate::tree::Element;
use crate::values;
use crate::verbs::text_only;

/// Every attribute `<MultiPartyCall>` understands, in canonical spelling (matched ignoring case).
pub(crate) const ATTRIBUTES: &[&str] = &[
    "role",
    "maxDuration",
    "maxParticipants",
    "record",
    "recordFileFormat",
    "recordMinMemberCount",
    "waitForAgent",
    "recordCoachVoice",
    "startRecordingAudio",
    "startRecordingAudioMethod",
    "stopRecordingAudio",
    "stopRecordingAudioMethod",
    "waitMusicUrl",
    "waitMusicMethod",
    "agentHoldMusicUrl",
    "agentHoldMusicMethod",
    "customerHoldMusicUrl",
    "customerHoldMusicMethod",
    "statusCallbackUrl",
    "statusCallbackMethod",
    "statusCallbackEvents",
    "recordingCallbackUrl",
    "recordingCallbackMethod",
    "mute",
    "hold",
    "coachMode",
    "stayAlone",
    "startMpcOnEnter",
    "endMpcOnExit",
    "enterSound",
    "enterSoundMethod",
    "exitSound",
    "exitSoundMethod",
    "onExitActionUrl",
    "onExitActionMethod",
    "relayDTMFInputs",
    "aiAgentStreamServiceUrl",
    "aiAgentStreamContentType",
    "aiAgentStreamStatusCallbackUrl",
    "aiAgentStreamStatusCallbackMethod",
    "aiAgentStreamSamplingRate",
    "aiAgentStreamExtraHeaders",
    "waitTime",
    "recordParticipantTrack",
    "transcript",
    "transcriptionUrl",
    // huddle's extension: the per-role multichannel WAV (README "Recording").
    "recordRoleChannels",
];

/// The roles, for error messages.
const ROLES: &str = "Agent, Supervisor, Customer, ai-agent";

/// Parses a `<MultiPartyCall>` element. Problems are recorded in `diag`; the returned value is
/// only meaningful when none were.
pub(crate) fn multi_party_call(element: &Element, diag: &mut Diagnostics) -> MultiPartyCall {
    let a = Attrs::new(element, ATTRIBUTES, diag);

    let text = text_only(element, diag);
    let name = values::mpc_name(&text).unwrap_or_else(|invalid| {
        diag.error(
            Problem::at(element.offset, invalid.message)
                .element(&element.name)
                .value(&text)
                .allowed(invalid.allowed),
        );
        text.clone()
    });

    let role = a.get("role", diag, values::role).unwrap_or_else(|| {
        if !a.present("role") {
            diag.error(
                Problem::at(element.offset, "attribute `role` is required")
                    .element(&element.name)
                    .allowed(Some(ROLES.to_string())),
            );
        }
        // Placeholder: the error above (or the bad value's) rejects the document.
        Role::Agent
    });

    let mut m = MultiPartyCall::new(name, role);
    let d = MultiPartyCall::new("", role);
    let (get, post) = (HttpMethod::Get, HttpMethod::Post);

    // MPC-level.
    m.max_duration = a
        .integer("maxDuration", 300, 28_800, diag)
        .unwrap_or(d.max_duration);
    m.max_participants = a
        .integer("maxParticipants", 2, 10, diag)
        .unwrap_or(d.max_participants);
    m.record = a.boolean("record", d.record, diag);
    m.record_file_format = a
        .get("recordFileFormat", diag, values::record_format)
        .unwrap_or(d.record_file_format);
    m.record_min_member_count = a
        .integer("recordMinMemberCount", 1, 2, diag)
        .unwrap_or(d.record_min_member_count);
    m.wait_for_agent = a.boolean("waitForAgent", d.wait_for_agent, diag);
    m.record_coach_voice = a.boolean("recordCoachVoice", d.record_coach_voice, diag);
    m.record_role_channels = a.boolean("recordRoleChannels", d.record_role_channels, diag);
    m.start_recording_audio = a.url_with_method(
        "startRecordingAudio",
        "startRecordingAudioMethod",
        get,
        diag,
    );
    m.stop_recording_audio =
        a.url_with_method("stopRecordingAudio", "stopRecordingAudioMethod", get, diag);
    m.wait_music = a.url_with_method("waitMusicUrl", "waitMusicMethod", get, diag);
    m.agent_hold_music = a.url_with_method("agentHoldMusicUrl", "agentHoldMusicMethod", get, diag);
    m.customer_hold_music =
        a.url_with_method("customerHoldMusicUrl", "customerHoldMusicMethod", get, diag);
    m.status_callback = a.url_with_method("statusCallbackUrl", "statusCallbackMethod", post, diag);
    if let Some(events) = a.get("statusCallbackEvents", diag, values::status_events) {
        m.status_callback_events = events;
    }
    m.recording_callback =
        a.url_with_method("recordingCallbackUrl", "recordingCallbackMethod", get, diag);

    // Participant-level.
    m.mute = a.boolean("mute", d.mute, diag);
    m.hold = a.boolean("hold", d.hold, diag);
    m.coach_mode = a.boolean("coachMode", d.coach_mode, diag);
    m.stay_alone = a.boolean("stayAlone", d.stay_alone, diag);
    m.start_mpc_on_enter = a.boolean("startMpcOnEnter", d.start_mpc_on_enter, diag);
    m.end_mpc_on_exit = a.boolean("endMpcOnExit", d.end_mpc_on_exit, diag);
    if let Some(sound) = a.get("enterSound", diag, values::sound) {
        m.enter_sound = sound;
    }
    m.enter_sound_method = a.method("enterSoundMethod", d.enter_sound_method, diag);
    if let Some(sound) = a.get("exitSound", diag, values::sound) {
        m.exit_sound = sound;
    }
    m.exit_sound_method = a.method("exitSoundMethod", d.exit_sound_method, diag);
    m.on_exit_action = a.url_with_method("onExitActionUrl", "onExitActionMethod", post, diag);
    m.relay_dtmf_inputs = a.boolean("relayDTMFInputs", d.relay_dtmf_inputs, diag);

    ai_agent_stream(&a, &mut m, element, diag);

    // SDK-only.
    m.wait_time = a.integer("waitTime", 0, 1_800, diag);
    m.record_participant_track =
        a.boolean("recordParticipantTrack", d.record_participant_track, diag);
    m.transcript = a.boolean("transcript", d.transcript, diag);
    m.transcription_url = a.url("transcriptionUrl", diag);
    m
}

/// The `aiAgentStream*` attributes.
fn ai_agent_stream(
    a: &Attrs<'_>,
    m: &mut MultiPartyCall,
    element: &Element,
    diag: &mut Diagnostics,
) {
    let s = &mut m.ai_agent_stream;
    s.service_url = a.get("aiAgentStreamServiceUrl", diag, values::ws_url);
    let content_type = a.get("aiAgentStreamContentType", diag, values::content_type);
    let rate = match content_type {
        Some((canonical, rate)) => {
            s.content_type = canonical.to_string();
            Some(rate)
        }
        None if a.present("aiAgentStreamContentType") => None,
        // The default content type, audio/x-l16;rate=8000.
        None => Some(8000),
    };
    s.status_callback_url = a.url("aiAgentStreamStatusCallbackUrl", diag);
    s.status_callback_method = a.method(
        "aiAgentStreamStatusCallbackMethod",
        s.status_callback_method,
        diag,
    );
    s.sampling_rate = a.get("aiAgentStreamSamplingRate", diag, |v| {
        let given = values::integer(v, 1, u32::MAX)?;
        match rate {
            Some(rate) if rate != given => Err(values::Invalid {
                message: format!(
                    "sampling rate disagrees with the content type `{}`",
                    s.content_type
                ),
                allowed: Some(rate.to_string()),
            }),
            _ => Ok(given),
        }
    });
    s.extra_headers = a.string("aiAgentStreamExtraHeaders");

    // Only the service URL is worth a warning: the renderer writes the other stream attributes
    // (with their defaults) on every element.
    if m.role != Role::AiAgent && a.present("aiAgentStreamServiceUrl") {
        diag.warn(
            Problem::at(
                element.offset,
                "aiAgentStreamServiceUrl only applies with role=\"ai-agent\"; ignored",
            )
            .element(&element.name),
        );
    }
    if m.role == Role::AiAgent && !a.present("aiAgentStreamServiceUrl") {
        diag.warn(
            Problem::at(
                element.offset,
                "role ai-agent without aiAgentStreamServiceUrl: no AI service to stream to",
            )
            .element(&element.name),
        );
    }
}
