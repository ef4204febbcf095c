//! The typed form of a Plivo `<Response>` document: what the call flow executes.
//!
//! Defaults follow the seed page; where the seed is silent they follow the SDKs, as listed in
//! `spec/mpc-xml.md` §3–4 (each such choice is noted on the field).

/// A whole `<Response>`: verbs in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    /// Children of `<Response>`, in order.
    pub verbs: Vec<Verb>,
}

/// One executable element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Play>`: an audio file.
    Play(Play),
    /// `<Speak>`: text to speech.
    Speak(Speak),
    /// `<Wait>`: a pause.
    Wait(Wait),
    /// `<Hangup>`: end the call.
    Hangup(Hangup),
    /// `<Redirect>`: fetch another document and continue with it.
    Redirect(Redirect),
    /// `<PreAnswer>`: early media before the call is answered.
    PreAnswer(PreAnswer),
    /// `<MultiPartyCall>`: join a room. Boxed: it is much larger than the other verbs.
    MultiPartyCall(Box<MultiPartyCall>),
    /// `<GetDigits>`: collect DTMF digits and send them to an action URL.
    GetDigits(Box<GetDigits>),
    /// `<GetInput inputType="dtmf">`: Plivo's newer input verb, DTMF only here.
    GetInput(Box<GetInput>),
    /// `<DTMF>`: send digits to the caller.
    Dtmf(Dtmf),
    /// `<Record>`: record what the caller says to a file.
    Record(Box<Record>),
    /// `<Conference>`: Plivo's older conference, run as an MPC (see [`Conference`]).
    Conference(Box<Conference>),
    /// `<Stream>`: the call's audio to a WebSocket service (and back when bidirectional).
    Stream(Box<Stream>),
}

/// HTTP method of a URL attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// GET: parameters in the query string.
    Get,
    /// POST: parameters form-encoded in the body.
    Post,
}

impl HttpMethod {
    /// `GET` or `POST`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

/// `<Play loop="n">URL</Play>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play {
    /// http(s) URL of an mp3 or wav file.
    pub url: String,
    /// How many times to play; 0 = until interrupted. Default 1.
    pub loop_count: u32,
}

/// `<Speak voice language loop>text</Speak>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speak {
    /// Text to say; SSML children are flattened to their text.
    pub text: String,
    /// `WOMAN` (default), `MAN` or `Polly.<Name>`; kept as written.
    pub voice: String,
    /// BCP-47 style language, default `en-US`.
    pub language: String,
    /// How many times to say it; 0 = until interrupted. Default 1.
    pub loop_count: u32,
}

/// `<Wait length silence minSilence beep/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// Seconds, default 1.
    pub length_secs: u32,
    /// Silence-detection mode (default false).
    pub silence: bool,
    /// Minimum silence in ms that ends the wait when `silence` is true.
    pub min_silence_ms: Option<u32>,
    /// Answering-machine beep detection, as written (`true`, `false` or `k=v,...`).
    pub beep: Option<String>,
}

/// Why `<Hangup>` ends the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupReason {
    /// Reject the call (603 before answer).
    Rejected,
    /// Signal busy (486 before answer).
    Busy,
}

/// `<Hangup reason schedule/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hangup {
    /// How to reject an unanswered call.
    pub reason: Option<HangupReason>,
    /// Hang up this many seconds later while execution continues.
    pub schedule_secs: Option<u32>,
}

/// `<Redirect method>URL</Redirect>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// http(s) URL returning a new document.
    pub url: String,
    /// Default POST.
    pub method: HttpMethod,
}

/// `<PreAnswer>` with `Play`, `Speak` and `Wait` children only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PreAnswer {
    /// The early-media verbs (only Play, Speak, Wait).
    pub verbs: Vec<Verb>,
}

/// A participant's role in an MPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A call-center agent.
    Agent,
    /// A supervisor (coaching, barging or monitoring).
    Supervisor,
    /// The customer.
    Customer,
    /// An AI agent bridged over WebSocket (`ai-agent`).
    AiAgent,
}

impl Role {
    /// The spelling Plivo uses in callbacks and the API (`Agent`, `Supervisor`, `Customer`,
    /// `ai-agent`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "Agent",
            Role::Supervisor => "Supervisor",
            Role::Customer => "Customer",
            Role::AiAgent => "ai-agent",
        }
    }
}

/// Enter or exit sound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sound {
    /// No sound.
    None,
    /// One beep.
    Beep1,
    /// Two beeps.
    Beep2,
    /// A URL returning Play/Speak/Wait XML.
    Url(String),
}

/// Recording file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// MP3 (default).
    Mp3,
    /// WAV.
    Wav,
}

/// A group of status callback events (`statusCallbackEvents`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusEvent {
    /// `mpc-state-changes`
    MpcStateChanges,
    /// `participant-state-changes`
    ParticipantStateChanges,
    /// `participant-speak-events`
    ParticipantSpeakEvents,
    /// `participant-digit-input-events`
    ParticipantDigitInputEvents,
    /// `add-participant-api-events`
    AddParticipantApiEvents,
    /// `participant-audio-events` (seed only)
    ParticipantAudioEvents,
}

impl StatusEvent {
    /// Every group, in the order the seed lists them.
    pub const ALL: [StatusEvent; 6] = [
        StatusEvent::MpcStateChanges,
        StatusEvent::ParticipantStateChanges,
        StatusEvent::ParticipantSpeakEvents,
        StatusEvent::ParticipantDigitInputEvents,
        StatusEvent::AddParticipantApiEvents,
        StatusEvent::ParticipantAudioEvents,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusEvent::MpcStateChanges => "mpc-state-changes",
            StatusEvent::ParticipantStateChanges => "participant-state-changes",
            StatusEvent::ParticipantSpeakEvents => "participant-speak-events",
            StatusEvent::ParticipantDigitInputEvents => "participant-digit-input-events",
            StatusEvent::AddParticipantApiEvents => "add-participant-api-events",
            StatusEvent::ParticipantAudioEvents => "participant-audio-events",
        }
    }
}

/// A URL attribute together with its `*Method` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlWithMethod {
    /// http(s) URL.
    pub url: String,
    /// Method to request it with.
    pub method: HttpMethod,
}

/// The `aiAgentStream*` attributes (seed only; meaningful with `role="ai-agent"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiAgentStream {
    /// `aiAgentStreamServiceUrl`: ws:// or wss:// URL.
    pub service_url: Option<String>,
    /// `aiAgentStreamContentType`, default `audio/x-l16;rate=8000`.
    pub content_type: String,
    /// `aiAgentStreamStatusCallbackUrl`.
    pub status_callback_url: Option<String>,
    /// `aiAgentStreamStatusCallbackMethod`, default POST.
    pub status_callback_method: HttpMethod,
    /// `aiAgentStreamSamplingRate` in Hz, when given (must agree with the content type).
    pub sampling_rate: Option<u32>,
    /// `aiAgentStreamExtraHeaders` as written (JSON object or `k=v,k2=v2`).
    pub extra_headers: Option<String>,
}

impl Default for AiAgentStream {
    fn default() -> Self {
        AiAgentStream {
            service_url: None,
            content_type: "audio/x-l16;rate=8000".to_string(),
            status_callback_url: None,
            status_callback_method: HttpMethod::Post,
            sampling_rate: None,
            extra_headers: None,
        }
    }
}

/// `<MultiPartyCall>`: every attribute of mpc-xml.md §3–4 with its default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiPartyCall {
    /// The MPC's friendly name (element text, trimmed).
    pub name: String,
    /// Required.
    pub role: Role,

    // MPC-level: they take effect from the participant that creates the MPC.
    /// Seconds, 300..=28800, default 14400.
    pub max_duration: u32,
    /// 2..=10, default 10.
    pub max_participants: u32,
    /// Record the MPC; default false.
    pub record: bool,
    /// Default mp3.
    pub record_file_format: RecordFormat,
    /// 1..=2, default 1.
    pub record_min_member_count: u32,
    /// Default false.
    pub wait_for_agent: bool,
    /// Seed states no default; false keeps coaching out of recordings (design.md table).
    pub record_coach_voice: bool,
    /// huddle's extension, default false: while the MPC recording runs, a WAV with one
    /// channel per role (customer, agent, supervisor, ai-agent) is written beside it.
    pub record_role_channels: bool,
    /// Audio XML played when recording starts (method default GET).
    pub start_recording_audio: Option<UrlWithMethod>,
    /// Audio XML played when recording stops (method default GET).
    pub stop_recording_audio: Option<UrlWithMethod>,
    /// Wait music XML (method default GET).
    pub wait_music: Option<UrlWithMethod>,
    /// Agent hold music XML (method default GET).
    pub agent_hold_music: Option<UrlWithMethod>,
    /// Customer hold music XML (method default GET).
    pub customer_hold_music: Option<UrlWithMethod>,
    /// Status callbacks (method default POST, mpc-xml.md §7 item 4).
    pub status_callback: Option<UrlWithMethod>,
    /// Default `mpc-state-changes,participant-state-changes`.
    pub status_callback_events: Vec<StatusEvent>,
    /// Recording callbacks (method default GET, mpc-xml.md §7 item 4).
    pub recording_callback: Option<UrlWithMethod>,

    // Participant-level.
    /// Join muted; default false.
    pub mute: bool,
    /// Join on hold; default false.
    pub hold: bool,
    /// Supervisor coaching; default true (ignored for other roles).
    pub coach_mode: bool,
    /// Default false.
    pub stay_alone: bool,
    /// Default true.
    pub start_mpc_on_enter: bool,
    /// Default false.
    pub end_mpc_on_exit: bool,
    /// Default `beep:1`.
    pub enter_sound: Sound,
    /// Default GET.
    pub enter_sound_method: HttpMethod,
    /// Default `beep:2`.
    pub exit_sound: Sound,
    /// Default GET.
    pub exit_sound_method: HttpMethod,
    /// XML fetched when this participant leaves (method default POST).
    pub on_exit_action: Option<UrlWithMethod>,
    /// Default false.
    pub relay_dtmf_inputs: bool,

    /// The ai-agent stream settings.
    pub ai_agent_stream: AiAgentStream,

    // SDK-only attributes (mpc-xml.md §4), accepted so SDK output parses.
    /// Seconds 0..=1800.
    pub wait_time: Option<u32>,
    /// Default false.
    pub record_participant_track: bool,
    /// Default false.
    pub transcript: bool,
    /// Where a transcription is posted.
    pub transcription_url: Option<String>,
}

impl MultiPartyCall {
    /// A participant with every default applied.
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        MultiPartyCall {
            name: name.into(),
            role,
            max_duration: 14400,
            max_participants: 10,
            record: false,
            record_file_format: RecordFormat::Mp3,
            record_min_member_count: 1,
            wait_for_agent: false,
            record_coach_voice: false,
            record_role_channels: false,
            start_recording_audio: None,
            stop_recording_audio: None,
            wait_music: None,
            agent_hold_music: None,
            customer_hold_music: None,
            status_callback: None,
            status_callback_events: vec![
                StatusEvent::MpcStateChanges,
                StatusEvent::ParticipantStateChanges,
            ],
            recording_callback: None,
            mute: false,
            hold: false,
            coach_mode: true,
            stay_alone: false,
            start_mpc_on_enter: true,
            end_mpc_on_exit: false,
            enter_sound: Sound::Beep1,
            enter_sound_method: HttpMethod::Get,
            exit_sound: Sound::Beep2,
            exit_sound_method: HttpMethod::Get,
            on_exit_action: None,
            relay_dtmf_inputs: false,
            ai_agent_stream: AiAgentStream::default(),
            wait_time: None,
            record_participant_track: false,
            transcript: false,
            transcription_url: None,
        }
    }
}

/// Which key ends digit input early (`finishOnKey`).
pub type FinishKey = Option<char>;

/// `<GetDigits>`: prompts (Play, Speak, Wait) cut by the first digit, then digits collected
/// until `finishOnKey`, `numDigits` or `digitTimeout`; the digits go to `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetDigits {
    /// Where the digits are sent (`Digits` plus the call parameters). Without it the digits
    /// are only logged and the call goes on with the next verb.
    pub action: Option<String>,
    /// Default POST.
    pub method: HttpMethod,
    /// Seconds to wait for the first digit once the prompts ended; default 5.
    pub timeout_secs: u32,
    /// Seconds allowed between two digits; default 2.
    pub digit_timeout_secs: u32,
    /// Default `#`; `none` or empty: no finishing key.
    pub finish_on_key: FinishKey,
    /// Most digits gathered (1..=99, default 99).
    pub num_digits: u32,
    /// Attempts in all (1..=10, default 1): prompts are played again after no input or
    /// invalid digits until the attempts are used up.
    pub retries: u32,
    /// Keys accepted as input; default `1234567890*#`.
    pub valid_digits: String,
    /// Audio (mp3/wav URL) played when a key outside `validDigits` is pressed.
    pub invalid_digits_sound: Option<String>,
    /// A beep before waiting for the digits; default false.
    pub play_beep: bool,
    /// true (default): run the XML the action answers; false: notify it and go on.
    pub redirect: bool,
    /// false keeps the digits out of the server's log; default true.
    pub log: bool,
    /// The nested `Play`, `Speak` and `Wait`, in order.
    pub prompts: Vec<Verb>,
}

impl Default for GetDigits {
    fn default() -> Self {
        GetDigits {
            action: None,
            method: HttpMethod::Post,
            timeout_secs: 5,
            digit_timeout_secs: 2,
            finish_on_key: Some('#'),
            num_digits: 99,
            retries: 1,
            valid_digits: "1234567890*#".to_string(),
            invalid_digits_sound: None,
            play_beep: false,
            redirect: true,
            log: true,
            prompts: Vec::new(),
        }
    }
}

/// `<GetInput>` with `inputType="dtmf"`: same collection as [`GetDigits`] with Plivo's newer
/// attribute names; the action gets `Digits` and `InputType`. Speech input is refused by the
/// parser: this server has no speech recogniser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetInput {
    /// Where the input is sent (required).
    pub action: String,
    /// Default POST.
    pub method: HttpMethod,
    /// Seconds to wait for input once the prompts ended (5..=60, default 15).
    pub execution_timeout_secs: u32,
    /// Seconds allowed between two digits (2..=10); None is `auto` (the default), which
    /// this server runs as [`GetInput::AUTO_DIGIT_END_SECS`].
    pub digit_end_timeout_secs: Option<u32>,
    /// Default `#`; `none` or empty: no finishing key.
    pub finish_on_key: FinishKey,
    /// Most digits gathered (1..=32, default 32).
    pub num_digits: u32,
    /// true (default): run the XML the action answers; false: notify it and go on.
    pub redirect: bool,
    /// false keeps the digits out of the server's log; default true.
    pub log: bool,
    /// The nested `Play`, `Speak` and `Wait`, in order.
    pub prompts: Vec<Verb>,
}

impl GetInput {
    /// What `digitEndTimeout="auto"` means here: Plivo adapts it; a fixed 5 s is the upper
    /// half of Plivo's allowed 2–10 s and gives slow callers time.
    pub const AUTO_DIGIT_END_SECS: u32 = 5;
}

/// `<DTMF async>digits</DTMF>`: RFC 4733 digits to the caller; `w` pauses 0.5 s, `W` 1 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtmf {
    /// Digits `0-9 * # A-D` and pauses `w` `W`, as written.
    pub digits: String,
    /// true (default): the next verbs run while the digits go out.
    pub asynchronous: bool,
}

/// `<Record>`: the caller's voice to a file until a finish key, silence, `maxLength` or
/// hangup; the action gets `RecordUrl`, `RecordingDuration` and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the recording's details are sent when it ends.
    pub action: Option<String>,
    /// Default POST.
    pub method: HttpMethod,
    /// Default mp3.
    pub file_format: RecordFormat,
    /// true (default): run the XML the action answers; false: notify it and go on.
    pub redirect: bool,
    /// Seconds of silence that end the recording (default 15).
    pub timeout_secs: u32,
    /// Longest recording in seconds (1..=14400, default 60).
    pub max_length_secs: u32,
    /// A beep before recording; default true.
    pub play_beep: bool,
    /// Keys that end the recording; default `1234567890*#`; empty for none.
    pub finish_on_key: String,
    /// Notified when the file is complete (method default POST).
    pub callback: Option<UrlWithMethod>,
    /// `recordSession`: record the whole call (what the caller says and hears) in the
    /// background until it hangs up, while the next verbs run; default false.
    pub record_session: bool,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            action: None,
            method: HttpMethod::Post,
            file_format: RecordFormat::Mp3,
            redirect: true,
            timeout_secs: 15,
            max_length_secs: 60,
            play_beep: true,
            finish_on_key: "1234567890*#".to_string(),
            callback: None,
            record_session: false,
        }
    }
}

/// `<Conference>`: Plivo's older conference verb, run on the MPC room engine. Every member is
/// a customer (design.md: customers all hear each other); the conference named `c` is the MPC
/// named `c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    /// The conference (and MPC) name.
    pub name: String,
    /// Join muted (`muted`); default false.
    pub muted: bool,
    /// Default true.
    pub start_conference_on_enter: bool,
    /// Default false.
    pub end_conference_on_exit: bool,
    /// Stay in the conference alone; default true (Plivo's conference default).
    pub stay_alone: bool,
    /// Most members (2..=10, default 10: the MPC's limit).
    pub max_members: u32,
    /// Seconds the conference may last (`timeLimit`, 300..=28800, default 14400).
    pub time_limit_secs: u32,
    /// Music XML played until the conference starts (`waitSound`, method default GET).
    pub wait_sound: Option<UrlWithMethod>,
    /// Default none.
    pub enter_sound: Sound,
    /// Default none.
    pub exit_sound: Sound,
    /// Record the conference; default false.
    pub record: bool,
    /// Default mp3.
    pub record_file_format: RecordFormat,
    /// Fetched for the next XML when the member leaves (`action`, `method` default POST).
    pub action: Option<UrlWithMethod>,
    /// Relay the member's digits to the others (`relayDTMF`); default false.
    pub relay_dtmf: bool,
}

impl Conference {
    /// A conference with every default applied.
    pub fn new(name: impl Into<String>) -> Self {
        Conference {
            name: name.into(),
            muted: false,
            start_conference_on_enter: true,
            end_conference_on_exit: false,
            stay_alone: true,
            max_members: 10,
            time_limit_secs: 14400,
            wait_sound: None,
            enter_sound: Sound::None,
            exit_sound: Sound::None,
            record: false,
            record_file_format: RecordFormat::Mp3,
            action: None,
            relay_dtmf: false,
        }
    }

    /// The same membership as a `<MultiPartyCall role="customer">`.
    pub fn to_mpc(&self) -> MultiPartyCall {
        let mut m = MultiPartyCall::new(self.name.clone(), Role::Customer);
        m.mute = self.muted;
        m.start_mpc_on_enter = self.start_conference_on_enter;
        m.end_mpc_on_exit = self.end_conference_on_exit;
        m.stay_alone = self.stay_alone;
        m.max_participants = self.max_members;
        m.max_duration = self.time_limit_secs;
        m.wait_music = self.wait_sound.clone();
        m.enter_sound = self.enter_sound.clone();
        m.exit_sound = self.exit_sound.clone();
        m.record = self.record;
        m.record_file_format = self.record_file_format;
        m.on_exit_action = self.action.clone();
        m.relay_dtmf_inputs = self.relay_dtmf;
        m
    }
}

/// Which audio `<Stream>` sends to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioTrack {
    /// What the caller says (default).
    Inbound,
    /// What the caller hears (what huddle plays, or the room's mix while in an MPC).
    Outbound,
    /// Both, as two tracks.
    Both,
}

impl AudioTrack {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AudioTrack::Inbound => "inbound",
            AudioTrack::Outbound => "outbound",
            AudioTrack::Both => "both",
        }
    }
}

/// `<Stream>`: Plivo's audio stream on one call, over the AI stream protocol
/// (spec/ai-stream.md): huddle dials the service and sends `media`; with `bidirectional` the
/// service's `playAudio` is heard by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The service's ws:// or wss:// URL (element text).
    pub url: String,
    /// The service's audio is played to the caller; default false.
    pub bidirectional: bool,
    /// Default inbound; only inbound with `bidirectional`.
    pub audio_track: AudioTrack,
    /// Seconds after which the stream is stopped (1..=86400, default 86400).
    pub stream_timeout_secs: u32,
    /// Default `audio/x-l16;rate=8000`.
    pub content_type: String,
    /// true: the next verb waits until the stream ends; false (default): the stream runs
    /// beside the next verbs.
    pub keep_call_alive: bool,
    /// `extraHeaders`, as written (`k=v,k2=v2`).
    pub extra_headers: Option<String>,
    /// Stream status callbacks (method default POST).
    pub status_callback: Option<UrlWithMethod>,
}

impl Stream {
    /// A stream to `url` with every default applied.
    pub fn new(url: impl Into<String>) -> Self {
        Stream {
            url: url.into(),
            bidirectional: false,
            audio_track: AudioTrack::Inbound,
            stream_timeout_secs: 86_400,
            content_type: "audio/x-l16;rate=8000".to_string(),
            keep_call_alive: false,
            extra_headers: None,
            status_callback: None,
        }
    }

    /// The same settings in the form of an ai-agent member's attributes, which the stream
    /// client takes.
    pub fn as_ai_agent_stream(&self) -> AiAgentStream {
        AiAgentStream {
            service_url: Some(self.url.clone()),
            content_type: self.content_type.clone(),
            status_callback_url: self.status_callback.as_ref().map(|c| c.url.clone()),
            status_callback_method: self
                .status_callback
                .as_ref()
                .map_or(HttpMethod::Post, |c| c.method),
            sampling_rate: None,
            extra_headers: self.extra_headers.clone(),
        }
    }
}
