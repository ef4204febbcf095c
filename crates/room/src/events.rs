//! What a room reports (callbacks.md §3): one typed event per EventName, for the callback
//! queue to deliver.

use huddle_xml::{Role, StatusEvent};

/// Every status-callback event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventName {
    /// The MPC resource exists.
    MpcInitialized,
    /// The MPC became Active.
    MpcStart,
    /// The MPC ended.
    MpcEnd,
    /// A participant joined.
    ParticipantJoin,
    /// A participant left.
    ParticipantExit,
    /// Muted.
    ParticipantMute,
    /// Unmuted.
    ParticipantUnmute,
    /// Put on hold.
    ParticipantHold,
    /// Taken off hold.
    ParticipantUnhold,
    /// A supervisor started coaching.
    ParticipantCoachModeStart,
    /// A supervisor stopped coaching (barges in).
    ParticipantCoachModeStop,
    /// Voice activity started.
    ParticipantSpeakStart,
    /// Voice activity stopped.
    ParticipantSpeakStop,
    /// A DTMF digit.
    ParticipantDigitInput,
    /// Audio from the participant started flowing.
    ParticipantAudioStart,
    /// Audio from the participant stopped flowing.
    ParticipantAudioStop,
}

impl EventName {
    /// The wire spelling (`MPCStart`, `ParticipantJoin`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::MpcInitialized => "MPCInitialized",
            EventName::MpcStart => "MPCStart",
            EventName::MpcEnd => "MPCEnd",
            EventName::ParticipantJoin => "ParticipantJoin",
            EventName::ParticipantExit => "ParticipantExit",
            EventName::ParticipantMute => "ParticipantMute",
            EventName::ParticipantUnmute => "ParticipantUnmute",
            EventName::ParticipantHold => "ParticipantHold",
            EventName::ParticipantUnhold => "ParticipantUnhold",
            EventName::ParticipantCoachModeStart => "ParticipantCoachModeStart",
            EventName::ParticipantCoachModeStop => "ParticipantCoachModeStop",
            EventName::ParticipantSpeakStart => "ParticipantSpeakStart",
            EventName::ParticipantSpeakStop => "ParticipantSpeakStop",
            EventName::ParticipantDigitInput => "ParticipantDigitInput",
            EventName::ParticipantAudioStart => "ParticipantAudioStart",
            EventName::ParticipantAudioStop => "ParticipantAudioStop",
        }
    }

    /// The `statusCallbackEvents` group that selects this event.
    pub fn group(self) -> StatusEvent {
        match self {
            EventName::MpcInitialized | EventName::MpcStart | EventName::MpcEnd => {
                StatusEvent::MpcStateChanges
            }
            EventName::ParticipantSpeakStart | EventName::ParticipantSpeakStop => {
                StatusEvent::ParticipantSpeakEvents
            }
            EventName::ParticipantDigitInput => StatusEvent::ParticipantDigitInputEvents,
            EventName::ParticipantAudioStart | EventName::ParticipantAudioStop => {
                StatusEvent::ParticipantAudioEvents
            }
            _ => StatusEvent::ParticipantStateChanges,
        }
    }
}

/// The participant an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// MemberID.
    pub member_id: u64,
    /// Role.
    pub role: Role,
    /// The participant's CallUUID.
    pub call_uuid: String,
    /// Coach mode at the time of the event.
    pub coach_mode: bool,
}

/// One event of one MPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    /// Which event.
    pub name: EventName,
    /// MPCUUID.
    pub mpc_uuid: String,
    /// MPCName.
    pub mpc_name: String,
    /// The participant, for participant events.
    pub member: Option<MemberRef>,
    /// Event-specific parameters (`Digit`, `MPCDuration`, `MPCTerminationCause`, ...).
    pub params: Vec<(&'static str, String)>,
}
