//! The MPC as a deterministic state machine: `handle(input, now) -> outputs`. No tasks, no
//! sockets, no clocks of its own, so every lifecycle rule is unit-tested with simulated time.

use std::time::{Duration, Instant};

use huddle_mixer::{ListenerClass, SpeakerClass};
use huddle_roomport::{CallUuid, IdSource, MemberId, MpcUuid, RecordingId};
use huddle_xml::{
    HttpMethod, MultiPartyCall, RecordFormat, Role, Sound, StatusEvent, UrlWithMethod,
};

use crate::causes::{ExitCause, TerminationCause};
use crate::events::{EventName, MemberRef, RoomEvent};

/// MPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, waiting for a participant that starts it.
    Initialized,
    /// Mixing.
    Active,
    /// Over; a new MPC with the same name is a new resource.
    Ended,
}

impl Status {
    /// `Initialized`, `Active`, `Ended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initialized => "Initialized",
            Status::Active => "Active",
            Status::Ended => "Ended",
        }
    }
}

/// MPC-level settings, taken from the participant that created the MPC (first joiner wins:
/// SDKs write every MPC-level attribute on every participant, mpc-xml.md §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpcSettings {
    /// Seconds from creation until the MPC ends with 2000.
    pub max_duration: u32,
    /// Participants at once.
    pub max_participants: u32,
    /// The MPC starts only once an Agent is in.
    pub wait_for_agent: bool,
    /// Wait music document.
    pub wait_music: Option<UrlWithMethod>,
    /// Hold music for agents.
    pub agent_hold_music: Option<UrlWithMethod>,
    /// Hold music for everyone else.
    pub customer_hold_music: Option<UrlWithMethod>,
    /// Coach voice goes into recordings.
    pub record_coach_voice: bool,
    /// Where status callbacks go.
    pub status_callback: Option<UrlWithMethod>,
    /// Which event groups are sent there.
    pub status_callback_events: Vec<StatusEvent>,
    /// The creator's stayAlone (the API shows it as the MPC's).
    pub stay_alone: bool,
    /// Record the MPC from its start (`record`).
    pub record: bool,
    /// `recordFileFormat`.
    pub record_file_format: RecordFormat,
    /// `recordMinMemberCount`: recording starts once this many are in.
    pub record_min_member_count: u32,
    /// Where recording callbacks go.
    pub recording_callback: Option<UrlWithMethod>,
    /// `recordRoleChannels` (extension): the MPC recording comes with a WAV of one channel
    /// per role.
    pub record_role_channels: bool,
}

impl MpcSettings {
    /// The MPC-level attributes of a joiner's verb.
    pub fn from_verb(mpc: &MultiPartyCall) -> Self {
        MpcSettings {
            max_duration: mpc.max_duration,
            max_participants: mpc.max_participants,
            wait_for_agent: mpc.wait_for_agent,
            wait_music: mpc.wait_music.clone(),
            agent_hold_music: mpc.agent_hold_music.clone(),
            customer_hold_music: mpc.customer_hold_music.clone(),
            record_coach_voice: mpc.record_coach_voice,
            status_callback: mpc.status_callback.clone(),
            status_callback_events: mpc.status_callback_events.clone(),
            stay_alone: mpc.stay_alone,
            record: mpc.record,
            record_file_format: mpc.record_file_format,
            record_min_member_count: mpc.record_min_member_count,
            recording_callback: mpc.recording_callback.clone(),
            record_role_channels: mpc.record_role_channels,
        }
    }
}

/// One participant's state.
#[derive(Debug, Clone)]
pub struct Participant {
    /// MemberID.
    pub member_id: MemberId,
    /// The call's UUID.
    pub call_uuid: CallUuid,
    /// Role (fixed for life).
    pub role: Role,
    /// Muted: hears, is not heard.
    pub muted: bool,
    /// On hold: hears hold music only, is not heard.
    pub held: bool,
    /// Coaching (supervisors only).
    pub coach_mode: bool,
    /// Stays when it is the last one.
    pub stay_alone: bool,
    /// Starts the MPC when it joins.
    pub start_mpc_on_enter: bool,
    /// Ends the MPC when it leaves.
    pub end_mpc_on_exit: bool,
    /// Played to the room when it joins.
    pub enter_sound: Sound,
    /// Played to the room when it leaves.
    pub exit_sound: Sound,
    /// Method for a URL exit sound.
    pub exit_sound_method: HttpMethod,
    /// Its DTMF is relayed to the others.
    pub relay_dtmf: bool,
    /// Where its call continues after leaving.
    pub on_exit_action: Option<UrlWithMethod>,
    /// `recordParticipantTrack`: its own track is recorded whenever the MPC recording runs.
    pub record_track: bool,
    /// When it joined.
    pub joined_at: Instant,
}

impl Participant {
    /// The participant as events name it.
    pub fn member_ref(&self) -> MemberRef {
        MemberRef {
            member_id: self.member_id,
            role: self.role,
            call_uuid: self.call_uuid.clone(),
            coach_mode: self.coach_mode,
        }
    }

    /// The hearing-table class of its voice.
    pub fn speaker_class(&self) -> SpeakerClass {
        match self.role {
            Role::Customer => SpeakerClass::Customer,
            Role::Agent => SpeakerClass::Agent,
            Role::AiAgent => SpeakerClass::AiAgent,
            Role::Supervisor if self.coach_mode => SpeakerClass::Coach,
            Role::Supervisor => SpeakerClass::Supervisor,
        }
    }

    /// The hearing-table class of its ears.
    pub fn listener_class(&self) -> ListenerClass {
        match self.role {
            Role::Customer => ListenerClass::Customer,
            Role::Agent => ListenerClass::Agent,
            Role::AiAgent => ListenerClass::AiAgent,
            Role::Supervisor => ListenerClass::Supervisor,
        }
    }
}

/// What a participant hears this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hearing {
    /// Its mix-minus of the room.
    Room(ListenerClass),
    /// Wait music: the MPC has not started.
    WaitMusic,
    /// Agent hold music.
    AgentHoldMusic,
    /// Customer hold music (everyone but agents).
    CustomerHoldMusic,
}

/// How a participant's stay ends, as decided by the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Its call continues (next verb, or the on-exit URL).
    Continue,
    /// Its call is hung up with 4030 (kicked, no on-exit URL).
    HangupKicked,
    /// Its call is hung up with 5030: the server is shutting down, so neither the next verb
    /// nor the on-exit URL is run.
    HangupShutdown,
}

/// Which participants a command applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every participant.
    All,
    /// These member ids.
    Members(Vec<MemberId>),
    /// Every participant, for the `dial_music` of the add-participant request with this
    /// request uuid (which its own stop names).
    DialMusic(String),
}

/// What an MPC hears while a participant added by the API rings (`dial_music`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialMusic {
    /// `real`: a ringback tone (440 + 480 Hz, 2 s on, 4 s off).
    Ringback,
    /// A document of Play, Speak and Wait verbs, played over and over.
    Document(UrlWithMethod),
}

/// The MPC's recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// RecordingUUID (`recording_id`).
    pub id: RecordingId,
    /// File format.
    pub format: RecordFormat,
    /// Where its callbacks go.
    pub callback: Option<UrlWithMethod>,
    /// Paused now.
    pub paused: bool,
}

/// What one participant recording holds (`record_track_type`, mpc-api.md §5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// `participant`: what the member says, one channel. Silence while it is muted, on hold
    /// or not yet heard (the MPC has not started), and while it coaches unless
    /// recordCoachVoice: the recording column of the hearing table.
    Participant,
    /// `all`: the recording around the member, two channels: what it says (as above), then
    /// what it hears.
    Around,
}

impl TrackKind {
    /// The `record_track_type` spelling (`RecordTrackType` of its callbacks).
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Participant => "participant",
            TrackKind::Around => "all",
        }
    }

    /// Channels of its file.
    pub fn channels(self) -> u16 {
        match self {
            TrackKind::Participant => 1,
            TrackKind::Around => 2,
        }
    }
}

/// `record_track_type` as a request gives it: which kinds of participant recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackType {
    /// `participant`.
    Participant,
    /// `all` (the default).
    All,
    /// `both`.
    Both,
}

impl TrackType {
    /// Parses `participant`, `all` or `both`, ignoring case.
    pub fn parse(text: &str) -> Option<TrackType> {
        let text = text.trim();
        [TrackType::Participant, TrackType::All, TrackType::Both]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackType::Participant => "participant",
            TrackType::All => "all",
            TrackType::Both => "both",
        }
    }

    /// The kinds it names.
    pub fn kinds(self) -> &'static [TrackKind] {
        match self {
            TrackType::Participant => &[TrackKind::Participant],
            TrackType::All => &[TrackKind::Around],
            TrackType::Both => &[TrackKind::Participant, TrackKind::Around],
        }
    }
}

/// The roles of the per-role recording's channels, in channel order (`RecordingChannels`).
pub const ROLE_CHANNELS: [Role; 4] = [Role::Customer, Role::Agent, Role::Supervisor, Role::AiAgent];

/// What a recording other than the MPC's own holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackSource {
    /// One participant's voice, or the recording around it.
    Member(MemberRef, TrackKind),
    /// The per-role multichannel WAV (`recordRoleChannels`, an extension).
    Roles,
}

/// A participant recording or the per-role recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRecording {
    /// RecordingUUID.
    pub id: RecordingId,
    /// What it holds.
    pub source: TrackSource,
    /// File format (the per-role recording is always WAV).
    pub format: RecordFormat,
    /// Where its callbacks go.
    pub callback: Option<UrlWithMethod>,
    /// Paused now.
    pub paused: bool,
    /// Started with the MPC recording (recordParticipantTrack, recordRoleChannels): it is
    /// paused, resumed and stopped with it.
    pub with_mpc: bool,
}

impl TrackRecording {
    fn member_id(&self) -> Option<MemberId> {
        match &self.source {
            TrackSource::Member(m, _) => Some(m.member_id),
            TrackSource::Roles => None,
        }
    }

    /// Initiated, paused, resumed: its events' names.
    fn event_names(&self) -> [EventName; 3] {
        match self.source {
            TrackSource::Member(..) => [
                EventName::ParticipantRecordingInitiated,
                EventName::ParticipantRecordingPaused,
                EventName::ParticipantRecordingResumed,
            ],
            TrackSource::Roles => [
                EventName::MpcRecordingInitiated,
                EventName::MpcRecordingPaused,
                EventName::MpcRecordingResumed,
            ],
        }
    }
}

/// Operator commands (the REST API calls these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start an Initialized MPC.
    Start,
    /// End the MPC (3000).
    End,
    /// End the MPC because the server is shutting down (5030); its members' calls are hung
    /// up.
    Shutdown,
    /// Mute or unmute.
    Mute(Target, bool),
    /// Hold or unhold.
    Hold(Target, bool),
    /// Coach mode on or off (supervisors only).
    CoachMode(MemberId, bool),
    /// Remove participants (4030 unless they have an on-exit URL).
    Kick(Target),
    /// Play an audio file (mp3/wav URL) to participants, over what they hear.
    Play(Target, String),
    /// Stop the plays started with this same target (Plivo: a play started for member 12 is
    /// stopped by a stop for 12, not by one for all).
    StopPlay(Target),
    /// Start recording the MPC.
    StartRecording {
        /// File format.
        format: RecordFormat,
        /// Where its callbacks go (None: the MPC's recordingCallbackUrl).
        callback: Option<UrlWithMethod>,
    },
    /// Stop the recording (the file is finalized).
    StopRecording,
    /// Pause (true) or resume (false) the recording.
    PauseRecording(bool),
    /// Start recording a participant: one recording per kind, with the id given.
    StartParticipantRecording {
        /// Whom.
        member: MemberId,
        /// Which kinds, each with its RecordingUUID.
        tracks: Vec<(TrackKind, RecordingId)>,
        /// File format.
        format: RecordFormat,
        /// Where its callbacks go (None: the MPC's recordingCallbackUrl).
        callback: Option<UrlWithMethod>,
    },
    /// Stop a participant's recordings of these kinds (when it has none of them: all of its
    /// recordings, since SDKs send their default `all` whatever was started).
    StopParticipantRecording(MemberId, TrackType),
    /// Pause (true) or resume (false) a participant's recordings, chosen as for the stop.
    PauseParticipantRecording(MemberId, TrackType, bool),
    /// Play `dial_music` to every participant for at most the given time, until stopped with
    /// `StopPlay(Target::DialMusic(tag))`.
    DialMusic {
        /// The request uuid the music belongs to.
        tag: String,
        /// What to play.
        music: DialMusic,
        /// How long at most (the dial's delay and ring timeout).
        limit: std::time::Duration,
    },
    /// Report an add-participant request's progress (the `AddParticipantByAPIAction*`
    /// events) through the MPC's status callback, with these parameters.
    ApiAction(EventName, Vec<(&'static str, String)>),
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The MPC has ended.
    Ended,
    /// No such member.
    NoSuchMember(MemberId),
    /// Coach mode applies to supervisors only.
    NotASupervisor(MemberId),
    /// Start of an MPC that is already active.
    AlreadyActive,
    /// Start of a recording while one runs.
    AlreadyRecording,
    /// Stop, pause or resume without a recording.
    NotRecording,
    /// Pause of a paused recording, or resume of a running one.
    PauseUnchanged(bool),
    /// Start of a participant recording of a kind that member has running already.
    MemberAlreadyRecording(MemberId),
    /// Stop, pause or resume of a participant that is not being recorded.
    MemberNotRecording(MemberId),
    /// Pause of a participant whose recordings are all paused, or the reverse.
    MemberPauseUnchanged(MemberId, bool),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::Ended => write!(f, "the multiparty call has ended"),
            CommandError::NoSuchMember(m) => write!(f, "no participant with member id {m}"),
            CommandError::NotASupervisor(m) => {
                write!(
                    f,
                    "member {m} is not a supervisor: coach mode applies to supervisors only"
                )
            }
            CommandError::AlreadyActive => write!(f, "the multiparty call is already active"),
            CommandError::AlreadyRecording => write!(f, "the multiparty call is already recording"),
            CommandError::NotRecording => write!(f, "the multiparty call is not recording"),
            CommandError::PauseUnchanged(true) => write!(f, "the recording is already paused"),
            CommandError::PauseUnchanged(false) => write!(f, "the recording is not paused"),
            CommandError::MemberAlreadyRecording(m) => {
                write!(f, "member {m} is already being recorded")
            }
            CommandError::MemberNotRecording(m) => write!(f, "member {m} is not being recorded"),
            CommandError::MemberPauseUnchanged(m, true) => {
                write!(f, "the recording of member {m} is already paused")
            }
            CommandError::MemberPauseUnchanged(m, false) => {
                write!(f, "the recording of member {m} is not paused")
            }
        }
    }
}

/// Inputs to the state machine.
#[derive(Debug, Clone)]
pub enum Input {
    /// A call asks to join with its verb.
    Join {
        /// Its new MemberID.
        member_id: MemberId,
        /// Its CallUUID.
        call_uuid: CallUuid,
        /// The verb.
        mpc: Box<MultiPartyCall>,
    },
    /// A participant's call hung up.
    Hangup {
        /// Who.
        member_id: MemberId,
    },
    /// A participant's call was moved out of the MPC and goes on elsewhere.
    TransferredOut {
        /// Who.
        member_id: MemberId,
    },
    /// An operator command.
    Command(Command),
    /// A DTMF digit from a participant.
    Dtmf {
        /// Who pressed it.
        member_id: MemberId,
        /// The digit.
        digit: char,
        /// How long.
        duration_ms: u32,
    },
    /// Voice activity changed.
    Speaking {
        /// Who.
        member_id: MemberId,
        /// Started (true) or stopped.
        active: bool,
    },
    /// Audio from a participant started or stopped arriving (participant-audio-events).
    AudioFlow {
        /// Who.
        member_id: MemberId,
        /// Started (true) or stopped.
        active: bool,
    },
    /// Time passed (checks maxDuration).
    Tick,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The join succeeded.
    Admitted {
        /// Who.
        member_id: MemberId,
    },
    /// The join was refused; the call goes on with its next verb.
    Refused {
        /// Who.
        member_id: MemberId,
        /// Why, for the log.
        reason: String,
    },
    /// Let a participant go.
    Release {
        /// Who.
        member_id: MemberId,
        /// How.
        release: Release,
        /// Where its call continues.
        on_exit: Option<UrlWithMethod>,
        /// Why, for the on-exit parameters.
        cause: ExitCause,
        /// Its role, for the on-exit parameters.
        role: Role,
    },
    /// Play a sound to every participant not on hold.
    Sound(Sound),
    /// Fetch this Play/Speak/Wait document and play it to every participant not on hold
    /// (a URL enter or exit sound).
    SoundDocument(UrlWithMethod),
    /// Fetch this audio file and play it to these participants (the Play command).
    PlayAudio {
        /// Who hears it.
        members: Vec<MemberId>,
        /// mp3 or wav URL.
        url: String,
        /// The target as the command gave it, which a later stop names.
        form: Target,
    },
    /// Play dial music to these participants, tagged with `form`.
    PlayDialMusic {
        /// Who hears it.
        members: Vec<MemberId>,
        /// What.
        music: DialMusic,
        /// How long at most.
        limit: std::time::Duration,
        /// `Target::DialMusic` of its request, which the stop names.
        form: Target,
    },
    /// Stop the plays started with this target.
    StopAudio {
        /// The target the plays were started with.
        form: Target,
    },
    /// Start writing the recording mix to a file.
    RecordingStart(Recording),
    /// Pause (true) or resume (false) the recording.
    RecordingPause(bool),
    /// Stop the recording: finalize the file, then report it.
    RecordingStop,
    /// Start writing a participant recording or the per-role recording.
    TrackStart(TrackRecording),
    /// Pause (true) or resume (false) that recording.
    TrackPause(RecordingId, bool),
    /// Stop that recording: finalize the file, then report it.
    TrackStop(RecordingId),
    /// Send a digit to every participant but `from`.
    RelayDtmf {
        /// Who pressed it.
        from: MemberId,
        /// The digit.
        digit: char,
        /// How long.
        duration_ms: u32,
    },
    /// An event for callbacks.
    Event(RoomEvent),
    /// The command was refused.
    CommandFailed(CommandError),
    /// The MPC ended; the shell stops once everyone is released.
    Ended(TerminationCause),
}

/// The output that plays an enter or exit sound, if any.
fn sound_output(sound: &Sound, method: HttpMethod) -> Option<Output> {
    match sound {
        Sound::None => None,
        Sound::Url(url) => Some(Output::SoundDocument(UrlWithMethod {
            url: url.clone(),
            method,
        })),
        beep => Some(Output::Sound(beep.clone())),
    }
}

/// One MPC.
#[derive(Debug)]
pub struct Room {
    uuid: MpcUuid,
    name: String,
    /// Where recording ids come from.
    ids: Box<dyn IdSource>,
    settings: Option<MpcSettings>,
    status: Status,
    created_at: Instant,
    started_at: Option<Instant>,
    ended_at: Option<Instant>,
    termination: Option<TerminationCause>,
    participants: Vec<Participant>,
    peak: usize,
    recording: Option<Recording>,
    /// Participant recordings and the per-role recording running now.
    tracks: Vec<TrackRecording>,
}

impl Room {
    /// A new MPC, created by its first joiner's arrival, drawing the ids it makes (its
    /// recordings') from `ids`.
    pub fn new(uuid: MpcUuid, name: String, now: Instant, ids: Box<dyn IdSource>) -> Self {
        Room {
            uuid,
            name,
            ids,
            settings: None,
            status: Status::Initialized,
            created_at: now,
            started_at: None,
            ended_at: None,
            termination: None,
            participants: Vec::new(),
            peak: 0,
            recording: None,
            tracks: Vec::new(),
        }
    }

    /// MPCUUID.
    pub fn uuid(&self) -> &MpcUuid {
        &self.uuid
    }

    /// Friendly name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// MPC-level settings (None before the first join).
    pub fn settings(&self) -> Option<&MpcSettings> {
        self.settings.as_ref()
    }

    /// Current participants.
    pub fn participants(&self) -> &[Participant] {
        &self.participants
    }

    /// A participant by id.
    pub fn participant(&self, member_id: MemberId) -> Option<&Participant> {
        self.participants.iter().find(|p| p.member_id == member_id)
    }

    /// The recording running now.
    pub fn recording(&self) -> Option<&Recording> {
        self.recording.as_ref()
    }

    /// The participant recordings and the per-role recording running now.
    pub fn tracks(&self) -> &[TrackRecording] {
        &self.tracks
    }

    /// Why it ended.
    pub fn termination(&self) -> Option<TerminationCause> {
        self.termination
    }

    /// When it was created.
    pub fn created_at(&self) -> Instant {
        self.created_at
    }

    /// When it became Active.
    pub fn started_at(&self) -> Option<Instant> {
        self.started_at
    }

    /// When it ended.
    pub fn ended_at(&self) -> Option<Instant> {
        self.ended_at
    }

    /// When the shell must feed [`Input::Tick`] next (maxDuration).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.status == Status::Ended {
            return None;
        }
        let settings = self.settings.as_ref()?;
        Some(self.created_at + Duration::from_secs(u64::from(settings.max_duration)))
    }

    /// Whether a participant's voice goes into the mixes now.
    pub fn contributes(&self, p: &Participant) -> bool {
        self.status == Status::Active && !p.muted && !p.held
    }

    /// What a participant hears now.
    pub fn hearing(&self, p: &Participant) -> Hearing {
        if p.held {
            if p.role == Role::Agent {
                Hearing::AgentHoldMusic
            } else {
                Hearing::CustomerHoldMusic
            }
        } else if self.status != Status::Active {
            Hearing::WaitMusic
        } else {
            Hearing::Room(p.listener_class())
        }
    }

    /// Feeds one input; outputs are appended to `out` in the order they happened.
    pub fn handle(&mut self, input: Input, now: Instant, out: &mut Vec<Output>) {
        match input {
            Input::Join {
                member_id,
                call_uuid,
                mpc,
            } => self.join(member_id, call_uuid, &mpc, now, out),
            Input::Hangup { member_id } => {
                if let Some(p) = self.remove(member_id) {
                    self.after_exit(p, ExitCause::CallHangup, None, now, out);
                }
            }
            Input::TransferredOut { member_id } => {
                if let Some(p) = self.remove(member_id) {
                    self.after_exit(p, ExitCause::Transferred, None, now, out);
                }
            }
            Input::Command(command) => self.command(command, now, out),
            Input::Dtmf {
                member_id,
                digit,
                duration_ms,
            } => {
                let Some(p) = self.participant(member_id) else {
                    return;
                };
                let relay = p.relay_dtmf && self.status == Status::Active;
                let member = p.member_ref();
                self.event(
                    EventName::ParticipantDigitInput,
                    Some(member),
                    vec![("Digit", digit.to_string())],
                    out,
                );
                if relay {
                    out.push(Output::RelayDtmf {
                        from: member_id,
                        digit,
                        duration_ms,
                    });
                }
            }
            Input::Speaking { member_id, active } => {
                let name = if active {
                    EventName::ParticipantSpeakStart
                } else {
                    EventName::ParticipantSpeakStop
                };
                self.member_event(member_id, name, out);
            }
            Input::AudioFlow { member_id, active } => {
                let name = if active {
                    EventName::ParticipantAudioStart
                } else {
                    EventName::ParticipantAudioStop
                };
                self.member_event(member_id, name, out);
            }
            Input::Tick => {
                if let Some(deadline) = self.next_deadline() {
                    if now >= deadline {
                        self.end(TerminationCause::MaxDurationReached, now, out);
                    }
                }
            }
        }
    }

    fn join(
        &mut self,
        member_id: MemberId,
        call_uuid: CallUuid,
        mpc: &MultiPartyCall,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if self.status == Status::Ended {
            out.push(Output::Refused {
                member_id,
                reason: "the multiparty call has ended".into(),
            });
            return;
        }
        let first = self.settings.is_none();
        if first {
            self.settings = Some(MpcSettings::from_verb(mpc));
        }
        let max = self.settings.as_ref().map_or(10, |s| s.max_participants) as usize;
        if self.participants.len() >= max {
            out.push(Output::Refused {
                member_id,
                reason: format!("the multiparty call is full (maxParticipants={max})"),
            });
            return;
        }
        let participant = Participant {
            member_id,
            call_uuid,
            role: mpc.role,
            muted: mpc.mute,
            held: mpc.hold,
            // coachMode means nothing for other roles (the API object reports false).
            coach_mode: mpc.role == Role::Supervisor && mpc.coach_mode,
            stay_alone: mpc.stay_alone,
            start_mpc_on_enter: mpc.start_mpc_on_enter,
            end_mpc_on_exit: mpc.end_mpc_on_exit,
            enter_sound: mpc.enter_sound.clone(),
            exit_sound: mpc.exit_sound.clone(),
            exit_sound_method: mpc.exit_sound_method,
            relay_dtmf: mpc.relay_dtmf_inputs,
            on_exit_action: mpc.on_exit_action.clone(),
            record_track: mpc.record_participant_track,
            joined_at: now,
        };
        let member = participant.member_ref();
        let enter_sound = sound_output(&participant.enter_sound, mpc.enter_sound_method);
        self.participants.push(participant);
        self.peak = self.peak.max(self.participants.len());
        out.push(Output::Admitted { member_id });
        if first {
            self.event(EventName::MpcInitialized, None, Vec::new(), out);
        }
        self.event(EventName::ParticipantJoin, Some(member), Vec::new(), out);
        out.extend(enter_sound);
        let recording = self.recording.is_some();
        self.maybe_start(now, out);
        self.maybe_record(out);
        // A recordParticipantTrack member joining a recording MPC (a recording that starts
        // now took it in already).
        if recording {
            self.start_member_track_with_mpc(member_id, out);
        }
    }

    /// Starts the recording `record` asked for once the MPC is active with enough members.
    fn maybe_record(&mut self, out: &mut Vec<Output>) {
        let Some(settings) = self.settings.as_ref() else {
            return;
        };
        let enough = self.participants.len() >= settings.record_min_member_count as usize;
        if settings.record && self.status == Status::Active && self.recording.is_none() && enough {
            let (format, callback) = (
                settings.record_file_format,
                settings.recording_callback.clone(),
            );
            // `record` asks for one recording, from the start: a stopped one is not restarted.
            if let Some(s) = self.settings.as_mut() {
                s.record = false;
            }
            self.start_recording(format, callback, out);
        }
    }

    fn start_recording(
        &mut self,
        format: RecordFormat,
        callback: Option<UrlWithMethod>,
        out: &mut Vec<Output>,
    ) {
        let recording = Recording {
            id: self.ids.recording_id(),
            format,
            callback,
            paused: false,
        };
        self.recording = Some(recording.clone());
        out.push(Output::RecordingStart(recording));
        self.recording_event(EventName::MpcRecordingInitiated, out);
        if self
            .settings
            .as_ref()
            .is_some_and(|s| s.record_role_channels)
        {
            let track = TrackRecording {
                id: self.ids.recording_id(),
                source: TrackSource::Roles,
                // A multichannel file: WAV whatever the MPC recording's format.
                format: RecordFormat::Wav,
                callback: self.recording.as_ref().and_then(|r| r.callback.clone()),
                paused: false,
                with_mpc: true,
            };
            self.start_track(track, out);
        }
        let members: Vec<MemberId> = self.participants.iter().map(|p| p.member_id).collect();
        for member in members {
            self.start_member_track_with_mpc(member, out);
        }
    }

    /// The participant's own track, if it asked for one (recordParticipantTrack) and the MPC
    /// recording runs, in that recording's format and to its callback.
    fn start_member_track_with_mpc(&mut self, member_id: MemberId, out: &mut Vec<Output>) {
        let Some(recording) = &self.recording else {
            return;
        };
        let Some(p) = self.participant(member_id).filter(|p| p.record_track) else {
            return;
        };
        let running = self.tracks.iter().any(|t| {
            t.member_id() == Some(member_id)
                && matches!(t.source, TrackSource::Member(_, TrackKind::Participant))
        });
        if running {
            return;
        }
        let (source, format, callback, paused) = (
            TrackSource::Member(p.member_ref(), TrackKind::Participant),
            recording.format,
            recording.callback.clone(),
            recording.paused,
        );
        let track = TrackRecording {
            id: self.ids.recording_id(),
            source,
            format,
            callback,
            paused,
            with_mpc: true,
        };
        self.start_track(track, out);
    }

    fn start_track(&mut self, track: TrackRecording, out: &mut Vec<Output>) {
        let paused = track.paused;
        self.tracks.push(track.clone());
        out.push(Output::TrackStart(track.clone()));
        let [initiated, paused_event, _] = track.event_names();
        self.track_event(&track, initiated, out);
        if paused {
            // Joined a paused MPC recording: its track starts paused too.
            out.push(Output::TrackPause(track.id.clone(), true));
            self.track_event(&track, paused_event, out);
        }
    }

    /// Stops the tracks `which` selects (the file is finalized; Completed follows).
    fn stop_tracks(&mut self, which: impl Fn(&TrackRecording) -> bool, out: &mut Vec<Output>) {
        let mut i = 0;
        while i < self.tracks.len() {
            if which(&self.tracks[i]) {
                let track = self.tracks.remove(i);
                out.push(Output::TrackStop(track.id));
            } else {
                i += 1;
            }
        }
    }

    /// Pauses or resumes the tracks `which` selects; the number changed.
    fn pause_tracks(
        &mut self,
        which: impl Fn(&TrackRecording) -> bool,
        pause: bool,
        out: &mut Vec<Output>,
    ) -> usize {
        let mut changed = Vec::new();
        for t in self.tracks.iter_mut().filter(|t| which(t)) {
            if t.paused != pause {
                t.paused = pause;
                changed.push(t.clone());
            }
        }
        for t in &changed {
            out.push(Output::TrackPause(t.id.clone(), pause));
            let [_, paused, resumed] = t.event_names();
            self.track_event(t, if pause { paused } else { resumed }, out);
        }
        changed.len()
    }

    /// A participant or per-role recording event, to the recording's callback.
    fn track_event(&self, track: &TrackRecording, name: EventName, out: &mut Vec<Output>) {
        let (member, mut params) = match &track.source {
            TrackSource::Member(member, kind) => (
                Some(member.clone()),
                vec![("RecordTrackType", kind.as_str().to_string())],
            ),
            TrackSource::Roles => (None, vec![("RecordingChannels", role_channels())]),
        };
        params.insert(0, ("RecordingUUID", track.id.to_string()));
        out.push(Output::Event(RoomEvent {
            name,
            mpc_uuid: self.uuid.clone(),
            mpc_name: self.name.clone(),
            member,
            params,
            callback: track.callback.clone(),
        }));
    }

    fn stop_recording(&mut self, out: &mut Vec<Output>) {
        if self.recording.take().is_some() {
            out.push(Output::RecordingStop);
            self.stop_tracks(|t| t.with_mpc, out);
        }
    }

    /// The member's recordings of the kinds `track` names, or all of its recordings when it
    /// has none of those; an error when it has none at all.
    fn member_tracks(
        &self,
        member: MemberId,
        track: TrackType,
    ) -> Result<Vec<RecordingId>, CommandError> {
        if self.participant(member).is_none() {
            return Err(CommandError::NoSuchMember(member));
        }
        let of_member = |t: &&TrackRecording| t.member_id() == Some(member);
        let kinds = track.kinds();
        let chosen: Vec<RecordingId> = self
            .tracks
            .iter()
            .filter(of_member)
            .filter(|t| matches!(&t.source, TrackSource::Member(_, k) if kinds.contains(k)))
            .map(|t| t.id.clone())
            .collect();
        let chosen = if chosen.is_empty() {
            self.tracks
                .iter()
                .filter(of_member)
                .map(|t| t.id.clone())
                .collect()
        } else {
            chosen
        };
        if chosen.is_empty() {
            return Err(CommandError::MemberNotRecording(member));
        }
        Ok(chosen)
    }

    /// A recording event, to the recording's callback.
    fn recording_event(&self, name: EventName, out: &mut Vec<Output>) {
        let Some(recording) = &self.recording else {
            return;
        };
        out.push(Output::Event(RoomEvent {
            name,
            mpc_uuid: self.uuid.clone(),
            mpc_name: self.name.clone(),
            member: None,
            params: vec![("RecordingUUID", recording.id.to_string())],
            callback: recording.callback.clone(),
        }));
    }

    /// Starts when someone present has startMpcOnEnter and, with waitForAgent, an agent is in.
    fn maybe_start(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.status != Status::Initialized {
            return;
        }
        let wait_for_agent = self.settings.as_ref().is_some_and(|s| s.wait_for_agent);
        let starter = self.participants.iter().any(|p| p.start_mpc_on_enter);
        let agent = self.participants.iter().any(|p| p.role == Role::Agent);
        if starter && (!wait_for_agent || agent) {
            self.start(now, out);
        }
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.status = Status::Active;
        self.started_at = Some(now);
        self.event(EventName::MpcStart, None, Vec::new(), out);
        self.maybe_record(out);
    }

    fn remove(&mut self, member_id: MemberId) -> Option<Participant> {
        let i = self
            .participants
            .iter()
            .position(|p| p.member_id == member_id)?;
        Some(self.participants.remove(i))
    }

    /// Exit event and sound, then the rules that may end the MPC.
    fn after_exit(
        &mut self,
        p: Participant,
        cause: ExitCause,
        release: Option<Release>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        // Its recordings end with its stay.
        self.stop_tracks(|t| t.member_id() == Some(p.member_id), out);
        if let Some(release) = release {
            out.push(Output::Release {
                member_id: p.member_id,
                release: release.clone(),
                on_exit: p.on_exit_action.clone(),
                cause,
                role: p.role,
            });
        }
        self.event(
            EventName::ParticipantExit,
            Some(p.member_ref()),
            vec![("ParticipantExitCause", cause.name().to_string())],
            out,
        );
        if self.status == Status::Ended {
            return;
        }
        if !self.participants.is_empty() {
            out.extend(sound_output(&p.exit_sound, p.exit_sound_method));
        }
        if p.end_mpc_on_exit {
            self.end(TerminationCause::EndMpcOnExit, now, out);
        } else if self.participants.is_empty() {
            self.end(TerminationCause::NoActiveParticipants, now, out);
        } else if self.participants.len() == 1 && !self.participants[0].stay_alone {
            // Only a drop from company to solitude ends the MPC: a first joiner waiting alone
            // for the others is not "staying alone".
            self.end(TerminationCause::StayAloneNotPermitted, now, out);
        }
    }

    fn end(&mut self, cause: TerminationCause, now: Instant, out: &mut Vec<Output>) {
        if self.status == Status::Ended {
            return;
        }
        self.status = Status::Ended;
        self.ended_at = Some(now);
        self.termination = Some(cause);
        // The files are finalized with the MPC (their Completed callbacks follow once written).
        self.stop_recording(out);
        self.stop_tracks(|_| true, out);
        let release = if cause == TerminationCause::ServerShutdown {
            Release::HangupShutdown
        } else {
            Release::Continue
        };
        for p in std::mem::take(&mut self.participants) {
            out.push(Output::Release {
                member_id: p.member_id,
                release: release.clone(),
                on_exit: p.on_exit_action.clone(),
                cause: ExitCause::MpcEnded,
                role: p.role,
            });
            self.event(
                EventName::ParticipantExit,
                Some(p.member_ref()),
                vec![(
                    "ParticipantExitCause",
                    ExitCause::MpcEnded.name().to_string(),
                )],
                out,
            );
        }
        let duration = self
            .started_at
            .map_or(0, |s| now.saturating_duration_since(s).as_secs());
        self.event(
            EventName::MpcEnd,
            None,
            vec![
                ("MPCDuration", duration.to_string()),
                ("MPCTerminationCause", cause.name().to_string()),
                ("MPCTerminationCauseCode", cause.code().to_string()),
            ],
            out,
        );
        out.push(Output::Ended(cause));
    }

    fn command(&mut self, command: Command, now: Instant, out: &mut Vec<Output>) {
        if self.status == Status::Ended {
            out.push(Output::CommandFailed(CommandError::Ended));
            return;
        }
        match command {
            Command::Start => {
                if self.status == Status::Active {
                    out.push(Output::CommandFailed(CommandError::AlreadyActive));
                } else {
                    self.start(now, out);
                }
            }
            Command::End => self.end(TerminationCause::HangupApiTriggered, now, out),
            Command::Shutdown => self.end(TerminationCause::ServerShutdown, now, out),
            Command::ApiAction(name, params) => self.event(name, None, params, out),
            Command::DialMusic { tag, music, limit } => {
                let members = self.participants.iter().map(|p| p.member_id).collect();
                out.push(Output::PlayDialMusic {
                    members,
                    music,
                    limit,
                    form: Target::DialMusic(tag),
                });
            }
            Command::Mute(target, on) => self.set_many(
                &target,
                on,
                |p| &mut p.muted,
                [EventName::ParticipantMute, EventName::ParticipantUnmute],
                out,
            ),
            Command::Hold(target, on) => self.set_many(
                &target,
                on,
                |p| &mut p.held,
                [EventName::ParticipantHold, EventName::ParticipantUnhold],
                out,
            ),
            Command::CoachMode(id, on) => {
                match self.participant(id) {
                    None => out.push(Output::CommandFailed(CommandError::NoSuchMember(id))),
                    Some(p) if p.role != Role::Supervisor => {
                        out.push(Output::CommandFailed(CommandError::NotASupervisor(id)))
                    }
                    Some(_) => {
                        let changed = self.set_flag(
                            id,
                            on,
                            |p| &mut p.coach_mode,
                            EventName::ParticipantCoachModeStart,
                            EventName::ParticipantCoachModeStop,
                            out,
                        );
                        // Toggling coach mode plays beep:1 to the MPC (mpc-api.md §5.8).
                        if changed {
                            out.push(Output::Sound(Sound::Beep1));
                        }
                    }
                }
            }
            Command::Play(target, url) => {
                let Some(members) = self.resolve(&target, out) else {
                    return;
                };
                out.push(Output::PlayAudio {
                    members,
                    url,
                    form: target,
                });
            }
            Command::StartRecording { format, callback } => {
                if self.recording.is_some() {
                    out.push(Output::CommandFailed(CommandError::AlreadyRecording));
                } else {
                    let callback = callback.or_else(|| {
                        self.settings
                            .as_ref()
                            .and_then(|s| s.recording_callback.clone())
                    });
                    self.start_recording(format, callback, out);
                }
            }
            Command::StopRecording => {
                if self.recording.is_none() {
                    out.push(Output::CommandFailed(CommandError::NotRecording));
                } else {
                    self.stop_recording(out);
                }
            }
            Command::PauseRecording(pause) => match self.recording.as_mut() {
                None => out.push(Output::CommandFailed(CommandError::NotRecording)),
                Some(r) if r.paused == pause => {
                    out.push(Output::CommandFailed(CommandError::PauseUnchanged(pause)))
                }
                Some(r) => {
                    r.paused = pause;
                    out.push(Output::RecordingPause(pause));
                    let name = if pause {
                        EventName::MpcRecordingPaused
                    } else {
                        EventName::MpcRecordingResumed
                    };
                    self.recording_event(name, out);
                    self.pause_tracks(|t| t.with_mpc, pause, out);
                }
            },
            Command::StartParticipantRecording {
                member,
                tracks,
                format,
                callback,
            } => {
                let Some(p) = self.participant(member) else {
                    out.push(Output::CommandFailed(CommandError::NoSuchMember(member)));
                    return;
                };
                let member_ref = p.member_ref();
                let running = tracks.iter().any(|(kind, _)| {
                    self.tracks.iter().any(|t| {
                        t.member_id() == Some(member)
                            && matches!(&t.source, TrackSource::Member(_, k) if k == kind)
                    })
                });
                if running {
                    out.push(Output::CommandFailed(CommandError::MemberAlreadyRecording(
                        member,
                    )));
                    return;
                }
                let callback = callback.or_else(|| {
                    self.settings
                        .as_ref()
                        .and_then(|s| s.recording_callback.clone())
                });
                for (kind, id) in tracks {
                    let track = TrackRecording {
                        id,
                        source: TrackSource::Member(member_ref.clone(), kind),
                        format,
                        callback: callback.clone(),
                        paused: false,
                        with_mpc: false,
                    };
                    self.start_track(track, out);
                }
            }
            Command::StopParticipantRecording(member, track) => {
                match self.member_tracks(member, track) {
                    Ok(ids) => self.stop_tracks(|t| ids.contains(&t.id), out),
                    Err(e) => out.push(Output::CommandFailed(e)),
                }
            }
            Command::PauseParticipantRecording(member, track, pause) => {
                match self.member_tracks(member, track) {
                    Ok(ids) => {
                        if self.pause_tracks(|t| ids.contains(&t.id), pause, out) == 0 {
                            out.push(Output::CommandFailed(CommandError::MemberPauseUnchanged(
                                member, pause,
                            )));
                        }
                    }
                    Err(e) => out.push(Output::CommandFailed(e)),
                }
            }
            Command::StopPlay(target) => {
                if self.resolve(&target, out).is_some() {
                    out.push(Output::StopAudio { form: target });
                }
            }
            Command::Kick(target) => {
                let Some(ids) = self.resolve(&target, out) else {
                    return;
                };
                for id in ids {
                    if self.status == Status::Ended {
                        break;
                    }
                    if let Some(p) = self.remove(id) {
                        let release = if p.on_exit_action.is_some() {
                            Release::Continue
                        } else {
                            Release::HangupKicked
                        };
                        self.after_exit(p, ExitCause::KickedOut, Some(release), now, out);
                    }
                }
            }
        }
    }

    fn resolve(&self, target: &Target, out: &mut Vec<Output>) -> Option<Vec<MemberId>> {
        match target {
            Target::All | Target::DialMusic(_) => {
                Some(self.participants.iter().map(|p| p.member_id).collect())
            }
            Target::Members(ids) => {
                if let Some(missing) = ids.iter().find(|id| self.participant(**id).is_none()) {
                    out.push(Output::CommandFailed(CommandError::NoSuchMember(*missing)));
                    return None;
                }
                Some(ids.clone())
            }
        }
    }

    /// Sets a boolean of every targeted participant (`events`: on, off).
    fn set_many(
        &mut self,
        target: &Target,
        on: bool,
        field: impl Fn(&mut Participant) -> &mut bool + Copy,
        events: [EventName; 2],
        out: &mut Vec<Output>,
    ) {
        let Some(ids) = self.resolve(target, out) else {
            return;
        };
        for id in ids {
            self.set_flag(id, on, field, events[0], events[1], out);
        }
    }

    /// Sets a boolean of one participant; an event only on a real change.
    fn set_flag(
        &mut self,
        id: MemberId,
        on: bool,
        field: impl Fn(&mut Participant) -> &mut bool,
        on_event: EventName,
        off_event: EventName,
        out: &mut Vec<Output>,
    ) -> bool {
        let Some(p) = self.participants.iter_mut().find(|p| p.member_id == id) else {
            return false;
        };
        let flag = field(p);
        if *flag == on {
            return false;
        }
        *flag = on;
        let member = p.member_ref();
        self.event(
            if on { on_event } else { off_event },
            Some(member),
            Vec::new(),
            out,
        );
        true
    }

    fn member_event(&self, member_id: MemberId, name: EventName, out: &mut Vec<Output>) {
        if let Some(p) = self.participant(member_id) {
            let member = p.member_ref();
            self.event(name, Some(member), Vec::new(), out);
        }
    }

    fn event(
        &self,
        name: EventName,
        member: Option<MemberRef>,
        params: Vec<(&'static str, String)>,
        out: &mut Vec<Output>,
    ) {
        let callback = self.settings.as_ref().and_then(|s| {
            s.status_callback
                .clone()
                .filter(|_| s.status_callback_events.contains(&name.group()))
        });
        out.push(Output::Event(RoomEvent {
            name,
            mpc_uuid: self.uuid.clone(),
            mpc_name: self.name.clone(),
            member,
            params,
            callback,
        }));
    }
}

/// `RecordingChannels`: the roles of the per-role recording's channels, in order.
pub fn role_channels() -> String {
    ROLE_CHANNELS
        .iter()
        .map(|r| r.as_str().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}
