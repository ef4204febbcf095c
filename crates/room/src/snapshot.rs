//! What the API shows of an MPC (mpc-api.md §2–3): its lifecycle on the wall clock and every
//! participant entry it has had, the ones that left included.

use std::time::{Instant, SystemTime};

use huddle_roomport::{CallUuid, MemberId, MpcUuid, RecordingId};
use huddle_xml::Role;

use crate::causes::TerminationCause;
use crate::events::{EventName, RoomEvent};
use crate::state::{Participant, Room, Status};

/// A point-in-time view of an MPC, for the API and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpcSnapshot {
    /// MPCUUID.
    pub uuid: MpcUuid,
    /// Friendly name.
    pub name: String,
    /// Status.
    pub status: Status,
    /// When it was created.
    pub created: SystemTime,
    /// When it became Active.
    pub started: Option<SystemTime>,
    /// When it ended.
    pub ended: Option<SystemTime>,
    /// Why it ended.
    pub termination: Option<TerminationCause>,
    /// The first joiner's maxParticipants.
    pub max_participants: u32,
    /// The first joiner's maxDuration, seconds.
    pub max_duration: u32,
    /// The first joiner's stayAlone.
    pub stay_alone: bool,
    /// The recording running now: its id and whether it is paused.
    pub recording: Option<(RecordingId, bool)>,
    /// Every participant entry, in joining order; the ones that left have an exit time.
    pub participants: Vec<ParticipantSnapshot>,
}

/// One participant entry in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSnapshot {
    /// MemberID.
    pub member_id: MemberId,
    /// CallUUID.
    pub call_uuid: CallUuid,
    /// Where the call comes from (the caller's address).
    pub member_address: String,
    /// Role.
    pub role: Role,
    /// Muted (as it was when it left, for a departed entry).
    pub muted: bool,
    /// On hold.
    pub held: bool,
    /// Coach mode.
    pub coach_mode: bool,
    /// startMpcOnEnter.
    pub start_mpc_on_enter: bool,
    /// endMpcOnExit.
    pub end_mpc_on_exit: bool,
    /// When it joined.
    pub joined: SystemTime,
    /// When it left.
    pub exited: Option<SystemTime>,
    /// Why it left (`Participant Call Hangup`, `Kicked Out of Multiparty Call`, ...).
    pub exit_cause: Option<String>,
}

impl ParticipantSnapshot {
    /// Still in the MPC.
    pub fn is_present(&self) -> bool {
        self.exited.is_none()
    }
}

/// Every entry of one MPC, kept by its actor: the state machine forgets a participant that
/// leaves, the API does not.
#[derive(Debug)]
pub(crate) struct Roster {
    /// The MPC's creation on both clocks, to put the state machine's instants on the wall.
    created_wall: SystemTime,
    created: Instant,
    entries: Vec<ParticipantSnapshot>,
}

/// Entries kept per MPC at most: a room where calls come and go for hours stays bounded.
const MAX_ENTRIES: usize = 1000;

impl Roster {
    pub(crate) fn new(created: Instant) -> Self {
        Roster {
            created_wall: SystemTime::now(),
            created,
            entries: Vec::new(),
        }
    }

    fn wall(&self, at: Instant) -> SystemTime {
        self.created_wall + at.saturating_duration_since(self.created)
    }

    /// A participant was admitted.
    pub(crate) fn joined(&mut self, p: &Participant, member_address: &str) {
        if self.entries.len() >= MAX_ENTRIES {
            if let Some(i) = self.entries.iter().position(|e| !e.is_present()) {
                self.entries.remove(i);
            }
        }
        self.entries.push(ParticipantSnapshot {
            member_id: p.member_id,
            call_uuid: p.call_uuid.clone(),
            member_address: member_address.to_string(),
            role: p.role,
            muted: p.muted,
            held: p.held,
            coach_mode: p.coach_mode,
            start_mpc_on_enter: p.start_mpc_on_enter,
            end_mpc_on_exit: p.end_mpc_on_exit,
            joined: self.wall(p.joined_at),
            exited: None,
            exit_cause: None,
        });
    }

    /// Follows a participant's changes and its exit, from the events the MPC emits.
    pub(crate) fn on_event(&mut self, event: &RoomEvent) {
        let Some(member) = &event.member else {
            return;
        };
        let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.member_id == member.member_id && e.is_present())
        else {
            return;
        };
        match event.name {
            EventName::ParticipantMute => e.muted = true,
            EventName::ParticipantUnmute => e.muted = false,
            EventName::ParticipantHold => e.held = true,
            EventName::ParticipantUnhold => e.held = false,
            EventName::ParticipantCoachModeStart => e.coach_mode = true,
            EventName::ParticipantCoachModeStop => e.coach_mode = false,
            EventName::ParticipantExit => {
                e.exited = Some(SystemTime::now());
                e.exit_cause = event
                    .params
                    .iter()
                    .find(|(name, _)| *name == "ParticipantExitCause")
                    .map(|(_, cause)| cause.clone());
            }
            _ => {}
        }
    }

    /// The MPC as it is now.
    pub(crate) fn snapshot(&self, state: &Room) -> MpcSnapshot {
        let participants = self.entries.clone();
        let settings = state.settings();
        MpcSnapshot {
            uuid: state.uuid().clone(),
            name: state.name().to_string(),
            status: state.status(),
            created: self.created_wall,
            started: state.started_at().map(|t| self.wall(t)),
            ended: state.ended_at().map(|t| self.wall(t)),
            termination: state.termination(),
            max_participants: settings.map_or(10, |s| s.max_participants),
            max_duration: settings.map_or(14_400, |s| s.max_duration),
            stay_alone: settings.is_some_and(|s| s.stay_alone),
            recording: state.recording().map(|r| (r.id.clone(), r.paused)),
            participants,
        }
    }
}
