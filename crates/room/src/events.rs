//! What a room reports (callbacks.md §3): one typed event per EventName, for the callback
//! queue to deliver.

use huddle_roomport::{CallUuid, MemberId, MpcUuid};
use huddle_xml::{Role, StatusEvent, UrlWithMethod};

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
    /// The MPC recording started.
    MpcRecordingInitiated,
    /// The MPC recording was paused.
    MpcRecordingPaused,
    /// The MPC recording was resumed.
    MpcRecordingResumed,
    /// The MPC recording's file is complete.
    MpcRecordingCompleted,
    /// The MPC recording could not be made.
    MpcRecordingFailed,
    /// A participant recording started.
    ParticipantRecordingInitiated,
    /// A participant recording was paused.
    ParticipantRecordingPaused,
    /// A participant recording was resumed.
    ParticipantRecordingResumed,
    /// A participant recording's file is complete.
    ParticipantRecordingCompleted,
    /// A participant recording could not be made.
    ParticipantRecordingFailed,
    /// An add-participant request started dialling.
    AddParticipantByApiActionInitiated,
    /// An add-participant request's dialling is decided: a leg answered, or none did.
    AddParticipantByApiActionCompleted,
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
            EventName::MpcRecordingInitiated => "MPCRecordingInitiated",
            EventName::MpcRecordingPaused => "MPCRecordingPaused",
            EventName::MpcRecordingResumed => "MPCRecordingResumed",
            EventName::MpcRecordingCompleted => "MPCRecordingCompleted",
            EventName::MpcRecordingFailed => "MPCRecordingFailed",
            EventName::ParticipantRecordingInitiated => "ParticipantRecordingInitiated",
            EventName::ParticipantRecordingPaused => "ParticipantRecordingPaused",
            EventName::ParticipantRecordingResumed => "ParticipantRecordingResumed",
            EventName::ParticipantRecordingCompleted => "ParticipantRecordingCompleted",
            EventName::ParticipantRecordingFailed => "ParticipantRecordingFailed",
            EventName::AddParticipantByApiActionInitiated => "AddParticipantByAPIActionInitiated",
            EventName::AddParticipantByApiActionCompleted => "AddParticipantByAPIActionCompleted",
        }
    }

    /// A recording event (sent to the recording callback, whatever `statusCallbackEvents`).
    pub fn is_recording(self) -> bool {
        matches!(
            self,
            EventName::MpcRecordingInitiated
                | EventName::MpcRecordingPaused
                | EventName::MpcRecordingResumed
                | EventName::MpcRecordingCompleted
                | EventName::MpcRecordingFailed
                | EventName::ParticipantRecordingInitiated
                | EventName::ParticipantRecordingPaused
                | EventName::ParticipantRecordingResumed
                | EventName::ParticipantRecordingCompleted
                | EventName::ParticipantRecordingFailed
        )
    }

    /// A recording's last event: its file is done or failed (the journal forgets it then).
    pub fn is_recording_end(self) -> bool {
        matches!(
            self,
            EventName::MpcRecordingCompleted
                | EventName::MpcRecordingFailed
                | EventName::ParticipantRecordingCompleted
                | EventName::ParticipantRecordingFailed
        )
    }

    /// The `statusCallbackEvents` group that selects this event (recording events have their
    /// own callback and are listed with the MPC's state changes only for completeness).
    pub fn group(self) -> StatusEvent {
        match self {
            EventName::MpcInitialized
            | EventName::MpcStart
            | EventName::MpcEnd
            | EventName::MpcRecordingInitiated
            | EventName::MpcRecordingPaused
            | EventName::MpcRecordingResumed
            | EventName::MpcRecordingCompleted
            | EventName::MpcRecordingFailed
            | EventName::ParticipantRecordingInitiated
            | EventName::ParticipantRecordingPaused
            | EventName::ParticipantRecordingResumed
            | EventName::ParticipantRecordingCompleted
            | EventName::ParticipantRecordingFailed => StatusEvent::MpcStateChanges,
            EventName::ParticipantSpeakStart | EventName::ParticipantSpeakStop => {
                StatusEvent::ParticipantSpeakEvents
            }
            EventName::ParticipantDigitInput => StatusEvent::ParticipantDigitInputEvents,
            EventName::ParticipantAudioStart | EventName::ParticipantAudioStop => {
                StatusEvent::ParticipantAudioEvents
            }
            EventName::AddParticipantByApiActionInitiated
            | EventName::AddParticipantByApiActionCompleted => StatusEvent::AddParticipantApiEvents,
            _ => StatusEvent::ParticipantStateChanges,
        }
    }
}

/// The participant an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// MemberID.
    pub member_id: MemberId,
    /// Role.
    pub role: Role,
    /// The participant's CallUUID.
    pub call_uuid: CallUuid,
    /// Coach mode at the time of the event.
    pub coach_mode: bool,
}

/// One event of one MPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    /// Which event.
    pub name: EventName,
    /// MPCUUID.
    pub mpc_uuid: MpcUuid,
    /// MPCName.
    pub mpc_name: String,
    /// The participant, for participant events.
    pub member: Option<MemberRef>,
    /// Event-specific parameters (`Digit`, `MPCDuration`, `MPCTerminationCause`, ...).
    pub params: Vec<(&'static str, String)>,
    /// The MPC's status callback, when its `statusCallbackEvents` select this event.
    pub callback: Option<UrlWithMethod>,
}

impl RoomEvent {
    /// The status callback's parameters (callbacks.md §3.2), stamped `timestamp` and numbered
    /// `sequence` within the MPC. `SequenceNumber` is our extension: callbacks of one MPC are
    /// delivered in order, and the number lets a receiver spot a gap or a retried duplicate.
    pub fn callback_params(&self, timestamp: &str, sequence: u64) -> Vec<(String, String)> {
        let mut params = vec![
            ("EventName".to_string(), self.name.as_str().to_string()),
            ("EventTimestamp".to_string(), timestamp.to_string()),
            ("MPCUUID".to_string(), self.mpc_uuid.to_string()),
            ("MPCName".to_string(), self.mpc_name.clone()),
            ("SequenceNumber".to_string(), sequence.to_string()),
        ];
        if let Some(member) = &self.member {
            params.extend([
                ("MemberID".to_string(), member.member_id.to_string()),
                (
                    "ParticipantRole".to_string(),
                    member.role.as_str().to_string(),
                ),
                (
                    "ParticipantCallUUID".to_string(),
                    member.call_uuid.to_string(),
                ),
                (
                    "ParticipantCoachMode".to_string(),
                    member.coach_mode.to_string(),
                ),
            ]);
        }
        if self.name == EventName::MpcEnd {
            // Self-hosted: nothing is billed.
            params.extend([
                ("MPCBilledDuration".to_string(), "0".to_string()),
                ("MPCBilledAmount".to_string(), "0.00000".to_string()),
            ]);
        }
        params.extend(
            self.params
                .iter()
                .map(|(name, value)| (name.to_string(), value.clone())),
        );
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: EventName, member: Option<MemberRef>) -> RoomEvent {
        RoomEvent {
            name,
            mpc_uuid: "u-1".into(),
            mpc_name: "room1".into(),
            member,
            params: vec![("MPCDuration", "42".into())],
            callback: None,
        }
    }

    fn keys(params: &[(String, String)]) -> Vec<&str> {
        params.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn mpc_events_carry_the_mpc_and_end_carries_billing_and_its_own_params() {
        let params = event(EventName::MpcEnd, None).callback_params("2026-01-02 03:04:05+00:00", 7);
        assert_eq!(
            keys(&params),
            [
                "EventName",
                "EventTimestamp",
                "MPCUUID",
                "MPCName",
                "SequenceNumber",
                "MPCBilledDuration",
                "MPCBilledAmount",
                "MPCDuration"
            ]
        );
        assert_eq!(params[0].1, "MPCEnd");
        assert_eq!(params[1].1, "2026-01-02 03:04:05+00:00");
        assert_eq!(params[4].1, "7");
    }

    #[test]
    fn participant_events_carry_the_participant() {
        let member = MemberRef {
            member_id: MemberId(12),
            role: Role::Supervisor,
            call_uuid: "c-9".into(),
            coach_mode: true,
        };
        let params = event(EventName::ParticipantJoin, Some(member)).callback_params("t", 1);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MemberID"), Some("12"));
        assert_eq!(get("ParticipantRole"), Some("Supervisor"));
        assert_eq!(get("ParticipantCallUUID"), Some("c-9"));
        assert_eq!(get("ParticipantCoachMode"), Some("true"));
        assert_eq!(get("MPCBilledAmount"), None);
    }
}
