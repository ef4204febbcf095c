//! What a room writes down so that a restart after a crash can end it properly: the room
//! reports its state through an [`MpcJournal`] (the server keeps it in the store, which sits
//! below this crate), and after a restart [`LiveMpc::end`] turns what was journaled into the
//! events the room would have sent had it ended.
//!
//! Journal calls come from mixing threads and recording writers: an implementation must hand
//! the record on (a channel send) and never touch the disk itself.

use std::path::PathBuf;
use std::time::SystemTime;

use huddle_record::Format;
use huddle_roomport::{MpcUuid, RecordingId};
use huddle_xml::{StatusEvent, UrlWithMethod};

use crate::causes::{ExitCause, TerminationCause};
use crate::events::{EventName, MemberRef, RoomEvent};
use crate::snapshot::MpcSnapshot;
use crate::state::{Status, TrackSource};

/// Where rooms journal themselves.
///
/// The recording's end and the MPC's end are struck off the journal by whoever delivers their
/// callbacks (`MPCRecordingCompleted`/`Failed`, `MPCEnd`), once those are queued durably: a
/// crash in between then repeats the report rather than losing it.
pub trait MpcJournal: Send + Sync {
    /// The MPC changed in a way a restart must know (a member joined or left, mute, hold,
    /// coach mode, start, recording): its state now, replacing what was journaled before.
    fn live(&self, mpc: LiveMpc);
    /// The MPC ended and its room closed: its final view, for the history of ended MPCs.
    fn ended(&self, snapshot: &MpcSnapshot);
    /// A recording is about to be written.
    fn recording_started(&self, recording: LiveRecording);
}

/// A live MPC as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMpc {
    /// Its state and every participant entry.
    pub snapshot: MpcSnapshot,
    /// statusCallbackUrl, from the first joiner.
    pub status_callback: Option<UrlWithMethod>,
    /// statusCallbackEvents, from the first joiner.
    pub status_callback_events: Vec<StatusEvent>,
}

/// A recording being written, as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRecording {
    /// RecordingUUID.
    pub id: RecordingId,
    /// Its MPC.
    pub mpc_uuid: MpcUuid,
    /// Its MPC's name.
    pub mpc_name: String,
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// When it started.
    pub started: SystemTime,
    /// recordingCallbackUrl.
    pub callback: Option<UrlWithMethod>,
    /// Whose recording it is.
    pub kind: RecordingKind,
}

/// Which recording: the MPC's own, or a participant's or the per-role one (which report
/// their end with other names and parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingKind {
    /// The MPC recording.
    Mpc,
    /// A participant recording or the per-role recording.
    Track(TrackSource),
}

impl LiveMpc {
    /// Ends the MPC the way the room would have at `at` for `cause`: a ParticipantExit
    /// (`Multiparty Call Ended`) for every member still in it, then MPCEnd, each with the
    /// status callback its `statusCallbackEvents` select; and the MPC's final view.
    pub fn end(self, at: SystemTime, cause: TerminationCause) -> (Vec<RoomEvent>, MpcSnapshot) {
        let mpc_ended = ExitCause::MpcEnded.name().to_string();
        let (events, mut snapshot) = self.end_events(at, cause, |_| mpc_ended.clone());
        for p in snapshot.participants.iter_mut().filter(|p| p.is_present()) {
            p.exited = Some(at.max(p.joined));
            p.exit_cause = Some(mpc_ended.clone());
        }
        snapshot.status = Status::Ended;
        snapshot.ended = Some(at);
        snapshot.termination = Some(cause);
        snapshot.recording = None;
        (events, snapshot)
    }

    /// The end events of an MPC whose room closed (`ended` is its final view) while this
    /// journal entry was still there: the process died before the end was queued, so they
    /// are sent again as the room sent them (members' own exit causes, the MPC's own cause). A
    /// receiver may get some twice, as with any callback in flight at a crash.
    pub fn replay_end(self, ended: &MpcSnapshot) -> Vec<RoomEvent> {
        let at = ended.ended.unwrap_or(ended.created);
        let cause = ended
            .termination
            .unwrap_or(TerminationCause::ServerRestarted);
        let exit_cause = |p: &crate::snapshot::ParticipantSnapshot| {
            ended
                .participants
                .iter()
                .find(|e| e.member_id == p.member_id)
                .and_then(|e| e.exit_cause.clone())
                .unwrap_or_else(|| ExitCause::MpcEnded.name().to_string())
        };
        self.end_events(at, cause, exit_cause).0
    }

    /// ParticipantExit (with `exit_cause`) for every member present, then MPCEnd.
    fn end_events(
        self,
        at: SystemTime,
        cause: TerminationCause,
        exit_cause: impl Fn(&crate::snapshot::ParticipantSnapshot) -> String,
    ) -> (Vec<RoomEvent>, MpcSnapshot) {
        let LiveMpc {
            snapshot,
            status_callback,
            status_callback_events,
        } = self;
        let callback = |name: EventName| {
            status_callback
                .clone()
                .filter(|_| status_callback_events.contains(&name.group()))
        };
        let event = |name, member, params| RoomEvent {
            name,
            mpc_uuid: snapshot.uuid.clone(),
            mpc_name: snapshot.name.clone(),
            member,
            params,
            callback: callback(name),
        };
        let mut events = Vec::new();
        for p in snapshot.participants.iter().filter(|p| p.is_present()) {
            events.push(event(
                EventName::ParticipantExit,
                Some(MemberRef {
                    member_id: p.member_id,
                    role: p.role,
                    call_uuid: p.call_uuid.clone(),
                    coach_mode: p.coach_mode,
                }),
                vec![("ParticipantExitCause", exit_cause(p))],
            ));
        }
        let duration = snapshot.started.map_or(0, |started| {
            at.duration_since(started).map_or(0, |d| d.as_secs())
        });
        events.push(event(
            EventName::MpcEnd,
            None,
            vec![
                ("MPCDuration", duration.to_string()),
                ("MPCTerminationCause", cause.name().to_string()),
                ("MPCTerminationCauseCode", cause.code().to_string()),
            ],
        ));
        (events, snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ParticipantSnapshot;
    use huddle_roomport::MemberId;
    use huddle_xml::{HttpMethod, Role};
    use std::time::Duration;

    fn entry(
        id: u64,
        role: Role,
        exited: Option<SystemTime>,
        t0: SystemTime,
    ) -> ParticipantSnapshot {
        ParticipantSnapshot {
            member_id: MemberId(id),
            call_uuid: format!("call-{id}").into(),
            member_address: "sip:x@127.0.0.1".into(),
            role,
            muted: false,
            held: false,
            coach_mode: role == Role::Supervisor,
            start_mpc_on_enter: true,
            end_mpc_on_exit: false,
            joined: t0,
            exited,
            exit_cause: exited.map(|_| ExitCause::CallHangup.name().to_string()),
        }
    }

    fn live(events: Vec<StatusEvent>) -> (LiveMpc, SystemTime) {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let snapshot = MpcSnapshot {
            uuid: "mpc-1".into(),
            name: "sales".into(),
            status: Status::Active,
            created: t0,
            started: Some(t0 + Duration::from_secs(2)),
            ended: None,
            termination: None,
            max_participants: 10,
            max_duration: 14_400,
            stay_alone: false,
            recording: Some(("rec-1".into(), false)),
            participants: vec![
                entry(10_000, Role::Agent, None, t0),
                entry(
                    10_001,
                    Role::Customer,
                    Some(t0 + Duration::from_secs(5)),
                    t0,
                ),
                entry(10_002, Role::Supervisor, None, t0),
            ],
        };
        let live = LiveMpc {
            snapshot,
            status_callback: Some(UrlWithMethod {
                url: "http://127.0.0.1:9/status".into(),
                method: HttpMethod::Post,
            }),
            status_callback_events: events,
        };
        (live, t0)
    }

    #[test]
    fn a_journaled_mpc_ends_with_an_exit_for_each_member_still_in_it_then_mpc_end() {
        let (live, t0) = live(vec![
            StatusEvent::MpcStateChanges,
            StatusEvent::ParticipantStateChanges,
        ]);
        let at = t0 + Duration::from_secs(62);
        let (events, snapshot) = live.end(at, TerminationCause::ServerRestarted);
        let names: Vec<_> = events.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                EventName::ParticipantExit,
                EventName::ParticipantExit,
                EventName::MpcEnd
            ]
        );
        let members: Vec<_> = events[..2]
            .iter()
            .map(|e| e.member.as_ref().unwrap().member_id.get())
            .collect();
        assert_eq!(members, [10_000, 10_002], "the one that had left gets none");
        assert!(events[1].member.as_ref().unwrap().coach_mode);
        assert!(events.iter().all(|e| e.callback.is_some()));
        assert_eq!(
            events[0].params,
            vec![("ParticipantExitCause", "Multiparty Call Ended".to_string())]
        );
        assert_eq!(
            events[2].params,
            vec![
                ("MPCDuration", "60".to_string()),
                ("MPCTerminationCause", "Server Restarted".to_string()),
                ("MPCTerminationCauseCode", "5100".to_string()),
            ]
        );
        assert_eq!(snapshot.status, Status::Ended);
        assert_eq!(snapshot.ended, Some(at));
        assert_eq!(
            snapshot.termination,
            Some(TerminationCause::ServerRestarted)
        );
        assert_eq!(snapshot.recording, None);
        assert!(snapshot.participants.iter().all(|p| !p.is_present()));
        assert_eq!(
            snapshot.participants[1].exit_cause.as_deref(),
            Some("Participant Call Hangup"),
            "an earlier exit stays as it was"
        );
        assert_eq!(
            snapshot.participants[2].exit_cause.as_deref(),
            Some("Multiparty Call Ended")
        );
    }

    #[test]
    fn an_end_the_crash_interrupted_is_replayed_with_the_rooms_own_causes() {
        let (live, t0) = live(vec![
            StatusEvent::MpcStateChanges,
            StatusEvent::ParticipantStateChanges,
        ]);
        // The room's final view: the agent hung up, which left the supervisor alone.
        let mut ended = live.snapshot.clone();
        let at = t0 + Duration::from_secs(32);
        ended.status = Status::Ended;
        ended.ended = Some(at);
        ended.termination = Some(TerminationCause::StayAloneNotPermitted);
        ended.participants[0].exited = Some(at);
        ended.participants[0].exit_cause = Some(ExitCause::CallHangup.name().to_string());
        ended.participants[2].exited = Some(at);
        ended.participants[2].exit_cause = Some(ExitCause::MpcEnded.name().to_string());
        let events = live.replay_end(&ended);
        let exits: Vec<_> = events[..2].iter().map(|e| e.params[0].1.as_str()).collect();
        assert_eq!(exits, ["Participant Call Hangup", "Multiparty Call Ended"]);
        assert_eq!(
            events[2].params,
            vec![
                ("MPCDuration", "30".to_string()),
                (
                    "MPCTerminationCause",
                    "Stay Alone Not Permitted".to_string()
                ),
                ("MPCTerminationCauseCode", "1010".to_string()),
            ]
        );
    }

    #[test]
    fn only_the_selected_groups_get_the_status_callback() {
        let (live, t0) = live(vec![StatusEvent::MpcStateChanges]);
        let (events, _) = live.end(t0, TerminationCause::ServerRestarted);
        let with_callback: Vec<_> = events
            .iter()
            .filter(|e| e.callback.is_some())
            .map(|e| e.name)
            .collect();
        assert_eq!(with_callback, [EventName::MpcEnd]);
        assert_eq!(
            events.last().unwrap().params[0],
            ("MPCDuration", "0".to_string()),
            "ended before it started counting: no negative duration"
        );
    }
}
